// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Half_open permits taken by connects that failed before their SYN (no
 * route, no local port, another program's refusal) go back in a new gen
 * once the kernel's counts have stood still for KB_UNSENT_GRACE_NS, and
 * never while a probe may still be on its way or has tripped the breaker.
 * The real agent runs against fakes.c; the test plays the kernel's part
 * in struct kb_trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"

#include "agent.h"
#include "agent_int.h"
#include "agent_test.h"
#include "fakes.h"

#define SEC 1000000000ULL
#define MS 1000000ULL

static const char yaml[] =
	"max_destinations: 4\n"
	"destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80, mode: enforce, consecutive_failures: 1,\n"
	"      open_duration: 1s, half_open_permits: 2 }\n";

struct run {
	struct config *cfg;
	struct agent a;
	uint32_t id;
	uint64_t now;
};

/* d tripped by one refusal, then half_open after its open second. */
static void to_half_open(struct run *r)
{
	r->cfg = parse("permits", yaml);
	r->now = mono_now();
	assert_int_equal(agent_init(&r->a, r->cfg, fake_bpf_open(), 4, r->now), 0);
	r->id = circuit_named(&r->a, "d")->slot;
	fake_event(r->id, KB_RES_REFUSED, r->now);
	assert_int_equal(agent_drain(&r->a, r->now), 0);
	check_eq("tripped", r->a.slots[r->id].br.state, BS_OPEN);
	r->now += SEC;
	assert_int_equal(agent_tick(&r->a, r->now), 0);
	check_eq("after open_duration", r->a.slots[r->id].br.state, BS_HALF_OPEN);
	check_eq("probe verdict", fake_maps.verdicts[r->id].action, KB_ACT_PROBE);
	check_eq("permits", fake_maps.verdicts[r->id].permits, 2);
}

static void finish(struct run *r)
{
	agent_fini(&r->a);
	drop(r->cfg);
}

/* The kernel's part: n permits taken and `sent` SYNs out, in the verdict's gen. */
static void kernel(uint32_t id, uint32_t taken, uint32_t sent)
{
	uint64_t gen = fake_maps.verdicts[id].gen;

	fake_maps.trips[id].probes = gen << 32 | taken;
	fake_maps.trips[id].sent = gen << 32 | sent;
}

static void tick(struct run *r, uint64_t after_ns)
{
	r->now += after_ns;
	assert_int_equal(agent_tick(&r->a, r->now), 0);
}

/* Two permits taken, one SYN out: the other permit comes back, and only it. */
static void test_unsent_given_back(void **state)
{
	struct run r = { 0 };
	uint32_t gen;

	(void)state;
	to_half_open(&r);
	gen = fake_maps.verdicts[r.id].gen;
	kernel(r.id, 2, 1);
	tick(&r, 100 * MS);
	tick(&r, KB_UNSENT_GRACE_NS - 200 * MS);
	check_eq("not before the grace", fake_maps.verdicts[r.id].gen, gen);
	tick(&r, 200 * MS);
	check_eq("a new gen", fake_maps.verdicts[r.id].gen != gen, true);
	check_eq("still probing", fake_maps.verdicts[r.id].action, KB_ACT_PROBE);
	check_eq("the sent probe keeps its permit", fake_maps.verdicts[r.id].permits, 1);
	check_eq("same period", fake_maps.verdicts[r.id].since_ns, r.a.slots[r.id].br.state_since_ns);
	check_eq("counted", r.a.permits_returned, 1);
	check_eq("half_open", r.a.slots[r.id].br.state, BS_HALF_OPEN);
	/* The new gen starts the kernel's counts at 0: nothing more is owed. */
	gen = fake_maps.verdicts[r.id].gen;
	tick(&r, 2 * KB_UNSENT_GRACE_NS);
	check_eq("once", fake_maps.verdicts[r.id].gen, gen);
	check_eq("once", r.a.permits_returned, 1);
	finish(&r);
}

/* Counts that move are connects on their way: the grace starts again. */
static void test_moving_counts_wait(void **state)
{
	struct run r = { 0 };
	uint32_t gen;

	(void)state;
	to_half_open(&r);
	gen = fake_maps.verdicts[r.id].gen;
	kernel(r.id, 1, 0);
	tick(&r, 100 * MS);
	kernel(r.id, 2, 1);
	tick(&r, KB_UNSENT_GRACE_NS - 50 * MS);
	check_eq("grace restarted", fake_maps.verdicts[r.id].gen, gen);
	/* Its SYN left: nothing owed. */
	kernel(r.id, 2, 2);
	tick(&r, 2 * KB_UNSENT_GRACE_NS);
	tick(&r, 2 * KB_UNSENT_GRACE_NS);
	check_eq("all sent", fake_maps.verdicts[r.id].gen, gen);
	check_eq("all sent", r.a.permits_returned, 0);
	finish(&r);
}

/* A probe that failed tripped the breaker in the kernel: that stands. */
static void test_tripped_stands(void **state)
{
	struct run r = { 0 };
	uint32_t gen;

	(void)state;
	to_half_open(&r);
	gen = fake_maps.verdicts[r.id].gen;
	kernel(r.id, 2, 1);
	fake_maps.trips[r.id].tripped = gen;
	tick(&r, 100 * MS);
	tick(&r, 2 * KB_UNSENT_GRACE_NS);
	check_eq("the trip's gen stays", fake_maps.verdicts[r.id].gen, gen);
	check_eq("nothing given back", r.a.permits_returned, 0);
	finish(&r);
}

/*
 * A reload in the grace second writes a new gen: a permit whose SYN never
 * left goes over to it, not lost with the old gen's counts (found by
 * review: the breaker then waited for good), while one whose SYN left
 * stays spent.
 */
static void test_reload_keeps_unsent(void **state)
{
	static const char more[] =
		"max_destinations: 4\n"
		"destinations:\n"
		"  - { name: d, host: 10.0.0.1, port: 80, mode: enforce, consecutive_failures: 1,\n"
		"      open_duration: 1s, half_open_permits: 3 }\n";
	struct run r = { 0 };
	struct config *next;
	uint32_t gen;

	(void)state;
	to_half_open(&r);
	gen = fake_maps.verdicts[r.id].gen;
	kernel(r.id, 2, 1);
	tick(&r, 100 * MS);
	next = parse("more permits", more);
	assert_int_equal(agent_reload(&r.a, next, r.now), 0);
	drop(r.cfg);
	r.cfg = next;
	check_eq("a new gen", fake_maps.verdicts[r.id].gen != gen, true);
	check_eq("same period", r.a.slots[r.id].br.state, BS_HALF_OPEN);
	/* Of the old 2: one spent (its SYN left), one back; a raise gives no more in the period. */
	check_eq("permits", fake_maps.verdicts[r.id].permits, 1);
	finish(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unsent_given_back),
		cmocka_unit_test(test_moving_counts_wait),
		cmocka_unit_test(test_tripped_stands),
		cmocka_unit_test(test_reload_keeps_unsent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
