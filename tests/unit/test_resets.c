// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Resets count as failures from the moment a policy says so, and only
 * from then: resets the kernel counted before (under a policy without
 * `reset`, in the previous run) never reach the breaker. The real agent
 * runs against fakes.c; the test plays the kernel's counters.
 */
#include <stdarg.h>
#include <stdbool.h>
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

#define HEAD "resolve_interval: 24h\nmax_destinations: 8\n" \
	     "defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n"
#define PERSIST "state_dir: /sys/fs/bpf/kb-unit\n"
#define RESET "failures: [refused, timeout, unreachable, error, reset]"

static const char plain[] = HEAD "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80 }\n"
	"  - { name: e, host: 10.0.0.2, port: 80 }\n";

static const char with_reset[] = HEAD "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80, " RESET " }\n"
	"  - { name: e, host: 10.0.0.2, port: 80 }\n";

static const char plain_saved[] = HEAD PERSIST "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80 }\n";

static const char reset_saved[] = HEAD PERSIST "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80, " RESET " }\n";

static enum breaker_state state_of(const struct agent *a, const char *name)
{
	return a->slots[circuit_named(a, name)->slot].br.state;
}

static void resets(const struct agent *a, const char *name, uint64_t rx, uint64_t tx)
{
	uint32_t id = circuit_named(a, name)->slot;

	fake_maps.stats[id].resets_rx = rx;
	fake_maps.stats[id].resets_tx = tx;
}

/* d's counters show rx + tx resets at the next poll, at now: d's state must then be want. */
static void poll_d(struct agent *a, uint64_t rx, uint64_t tx, uint64_t now, enum breaker_state want,
		   const char *ctx)
{
	resets(a, "d", rx, tx);
	assert_int_equal(agent_tick(a, now), 0);
	check_eq(ctx, state_of(a, "d"), want);
}

/* Reload a to yaml; the config it ran before is freed, *cfg is the new one. */
static void reload_to(struct agent *a, struct config **cfg, const char *yaml, uint64_t now)
{
	struct config *next = parse("reload", yaml);

	assert_int_equal(agent_reload(a, next, now), 0);
	drop(*cfg);
	*cfg = next;
}

/* From the start: two resets in a row open d; e's resets are not failures. */
static void test_policy_from_start(void **state)
{
	struct config *cfg = parse("start", with_reset);
	uint64_t now = mono_now();
	struct agent a;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	resets(&a, "d", 1, 0);
	resets(&a, "e", 5, 5);
	assert_int_equal(agent_tick(&a, now + 1), 0);
	check_eq("d, one reset", state_of(&a, "d"), BS_CLOSED);
	check_eq("e, ten resets", state_of(&a, "e"), BS_CLOSED);
	poll_d(&a, 1, 1, now + 2, BS_OPEN, "d, two resets");
	check_eq("e, ten resets", state_of(&a, "e"), BS_CLOSED);
	agent_fini(&a);
	drop(cfg);
}

/* A reload that adds reset: the ten resets before it are not failures, the next two are. */
static void test_reload_adds_reset(void **state)
{
	struct config *cfg = parse("before", plain);
	uint64_t now = mono_now();
	struct agent a;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	poll_d(&a, 5, 5, now + 1, BS_CLOSED, "d, resets not failures yet");
	reload_to(&a, &cfg, with_reset, now + 2);
	poll_d(&a, 5, 5, now + 3, BS_CLOSED, "d, resets before the reload");
	poll_d(&a, 6, 5, now + 4, BS_CLOSED, "d, one reset since");
	poll_d(&a, 7, 5, now + 5, BS_OPEN, "d, two resets since");
	agent_fini(&a);
	drop(cfg);
}

/* A restart whose config adds reset: the previous run's resets are not failures. */
static void test_restart_adds_reset(void **state)
{
	struct config *cfg = parse("first run", plain_saved);
	uint64_t now = mono_now();
	struct agent a;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	poll_d(&a, 4, 4, now + 1, BS_CLOSED, "d, resets not failures yet");
	agent_fini(&a);
	drop(cfg);

	cfg = parse("second run", reset_saved);
	assert_int_equal(agent_init(&a, cfg, fake_bpf_adopt(), 8, now + 2), 0);
	check_eq("restored", a.restored, 1);
	poll_d(&a, 4, 4, now + 3, BS_CLOSED, "d, the first run's resets");
	poll_d(&a, 5, 5, now + 4, BS_OPEN, "d, two resets since");
	agent_fini(&a);
	drop(cfg);
}

/* Resets right after the reload, before any poll: they count. */
static void test_reload_then_resets(void **state)
{
	struct config *cfg = parse("before", plain);
	uint64_t now = mono_now();
	struct agent a;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	resets(&a, "d", 5, 5);
	reload_to(&a, &cfg, with_reset, now + 1);
	poll_d(&a, 6, 6, now + 2, BS_OPEN, "d, two resets since the reload");
	agent_fini(&a);
	drop(cfg);
}

/*
 * Stopped right after a reload that added reset (no poll in between),
 * restarted with the same config: the resets before the reload stay out,
 * whether or not the counters could be read at the reload.
 */
static void stop_after_reload(bool readable)
{
	const char *ctx = readable ? "counters read" : "counters unreadable";
	struct config *cfg = parse(ctx, plain_saved);
	uint64_t now = mono_now();
	struct agent_slot *d;
	struct agent a;

	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	poll_d(&a, 4, 4, now + 1, BS_CLOSED, ctx);
	reload_to(&a, &cfg, reset_saved, now + 2);
	d = &a.slots[circuit_named(&a, "d")->slot];
	check_eq(ctx, d->resets_seen, 8);
	if (!readable) {
		/* As the reload leaves it when the read fails. */
		d->resets_seen = 0;
		d->resets_rebase = true;
		fault_arm(1);
		slots_rebase_resets(&a);
		check_eq(ctx, fault_fired(), true);
		fault_arm(0);
		check_eq(ctx, d->resets_seen, 0);
	}
	check_eq(ctx, d->resets_rebase, !readable);
	agent_fini(&a);
	drop(cfg);

	cfg = parse(ctx, reset_saved);
	assert_int_equal(agent_init(&a, cfg, fake_bpf_adopt(), 8, now + 3), 0);
	check_eq(ctx, a.restored, 1);
	poll_d(&a, 4, 4, now + 4, BS_CLOSED, ctx);
	poll_d(&a, 5, 5, now + 5, BS_OPEN, ctx);
	agent_fini(&a);
	drop(cfg);
}

static void test_stop_after_reload(void **state)
{
	(void)state;
	stop_after_reload(true);
	stop_after_reload(false);
}

/* Reset a failure in both runs: resets made while no agent ran count at the start. */
static void test_restart_keeps_count(void **state)
{
	struct config *cfg = parse("first run", reset_saved);
	uint64_t now = mono_now();
	struct agent a;
	uint32_t id;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	id = circuit_named(&a, "d")->slot;
	poll_d(&a, 1, 0, now + 1, BS_CLOSED, "d, one reset");
	check_eq("one reset", a.slots[id].br.consecutive_failures, 1);
	agent_fini(&a);
	drop(cfg);

	cfg = parse("second run", reset_saved);
	fake_maps.stats[id].resets_tx = 2;	/* the kernel's counters outlive the agent */
	assert_int_equal(agent_init(&a, cfg, fake_bpf_adopt(), 8, now + 2), 0);
	check_eq("restored", a.restored, 1);
	check_eq("the first run's reset seen", a.slots[id].resets_seen, 1);
	poll_d(&a, 1, 2, now + 3, BS_OPEN, "d, two resets while stopped");
	agent_fini(&a);
	drop(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_from_start),
		cmocka_unit_test(test_reload_adds_reset),
		cmocka_unit_test(test_restart_adds_reset),
		cmocka_unit_test(test_reload_then_resets),
		cmocka_unit_test(test_stop_after_reload),
		cmocka_unit_test(test_restart_keeps_count),
	};

	return cmocka_run_group_tests_name("resets", tests, NULL, NULL);
}
