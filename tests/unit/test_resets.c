// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Resets count as failures from the moment a policy says so, and only
 * from then: resets the kernel counted before (under a policy without
 * `reset`, in the previous run) never reach the breaker. The kernel counts
 * them among the failures in a row and trips on them (kb_judge_reset), so
 * that count outlives the agent. The real agent runs against fakes.c; the
 * test plays the kernel (fake_reset).
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

/* A rate that never trips here, so that every outcome reaches the agent in order (events). */
#define RATE "failure_rate_threshold: 90, minimum_calls: 100"

static const char rate_saved[] = HEAD PERSIST "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80, consecutive_failures: 3, " RESET ", " RATE " }\n";

static const char reset3[] = HEAD "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80, consecutive_failures: 3, " RESET " }\n";

static const char rate3[] = HEAD "destinations:\n"
	"  - { name: d, host: 10.0.0.1, port: 80, consecutive_failures: 3, " RESET ", " RATE " }\n";

static enum breaker_state state_of(const struct agent *a, const char *name)
{
	return a->slots[circuit_named(a, name)->slot].br.state;
}

/* The kernel sees resets on name's connections until its counters show rx and tx. */
static void resets(const struct agent *a, const char *name, uint64_t rx, uint64_t tx, uint64_t now)
{
	uint32_t id = circuit_named(a, name)->slot;

	while (fake_maps.stats[id].resets_rx < rx)
		fake_reset(id, true, now);
	while (fake_maps.stats[id].resets_tx < tx)
		fake_reset(id, false, now);
}

/* d's counters show rx + tx resets, then the agent runs at now: d's state must then be want. */
static void poll_d(struct agent *a, uint64_t rx, uint64_t tx, uint64_t now, enum breaker_state want,
		   const char *ctx)
{
	resets(a, "d", rx, tx, now);
	assert_int_equal(agent_drain(a, now), 0);
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
	resets(&a, "d", 1, 0, now + 1);
	resets(&a, "e", 5, 5, now + 1);
	assert_int_equal(agent_tick(&a, now + 1), 0);
	check_eq("d, one reset", state_of(&a, "d"), BS_CLOSED);
	check_eq("e, ten resets", state_of(&a, "e"), BS_CLOSED);
	/* The kernel trips on the second: the agent learns it from the event, before any poll. */
	resets(&a, "d", 1, 1, now + 2);
	check_eq("tripped", fake_maps.trips[circuit_named(&a, "d")->slot].tripped != 0, true);
	assert_int_equal(agent_drain(&a, now + 2), 0);
	check_eq("d, two resets", state_of(&a, "d"), BS_OPEN);
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
	resets(&a, "d", 5, 5, now);
	reload_to(&a, &cfg, with_reset, now + 1);
	poll_d(&a, 6, 6, now + 2, BS_OPEN, "d, two resets since the reload");
	agent_fini(&a);
	drop(cfg);
}

/*
 * A reload that added reset could not read the counters to rebase d (as
 * it leaves a failed read: marked): the next poll rebases it, and the
 * resets before the reload stay out of d's own count (a rate: events).
 */
static void test_rebase_at_poll(void **state)
{
	struct config *cfg = parse("before", plain);
	uint64_t now = mono_now();
	struct agent_slot *d;
	struct agent a;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	resets(&a, "d", 5, 5, now);
	reload_to(&a, &cfg, rate3, now + 1);
	d = &a.slots[circuit_named(&a, "d")->slot];
	check_eq("events", d->events, true);
	d->resets_seen = 0;
	d->resets_rebase = true;
	poll_d(&a, 5, 5, now + 2, BS_CLOSED, "d, the resets before the reload");
	check_eq("rebased", d->resets_rebase, false);
	check_eq("rebased", d->resets_seen, 10);
	check_eq("none in a row", d->br.consecutive_failures, 0);
	poll_d(&a, 7, 5, now + 3, BS_CLOSED, "d, two resets since");
	poll_d(&a, 8, 5, now + 4, BS_OPEN, "d, three resets since");
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

/*
 * Reset a failure in both runs: the count of failures in a row, resets
 * among them, carries over a restart (the kernel's), and resets made while
 * no agent ran count at the start.
 */
static void restart_keeps_count(bool while_stopped)
{
	const char *ctx = while_stopped ? "a reset while stopped" : "no reset while stopped";
	struct config *cfg = parse(ctx, reset_saved);
	uint64_t now = mono_now();
	struct agent a;
	uint32_t id;

	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	id = circuit_named(&a, "d")->slot;
	poll_d(&a, 1, 0, now + 1, BS_CLOSED, ctx);
	check_eq(ctx, a.slots[id].br.consecutive_failures, 1);
	agent_fini(&a);
	drop(cfg);

	cfg = parse(ctx, reset_saved);
	if (while_stopped)
		fake_reset(id, false, now + 2);	/* the kernel outlives the agent */
	assert_int_equal(agent_init(&a, cfg, fake_bpf_adopt(), 8, now + 3), 0);
	check_eq(ctx, a.restored, 1);
	check_eq(ctx, a.slots[id].br.consecutive_failures, 1 + while_stopped);
	check_eq(ctx, a.slots[id].resets_seen, 1 + while_stopped);
	if (while_stopped) {
		poll_d(&a, 1, 1, now + 4, BS_OPEN, ctx);
	} else {
		poll_d(&a, 1, 0, now + 4, BS_CLOSED, ctx);
		poll_d(&a, 2, 0, now + 5, BS_OPEN, ctx);
	}
	agent_fini(&a);
	drop(cfg);
}

static void test_restart_keeps_count(void **state)
{
	(void)state;
	restart_keeps_count(false);
	restart_keeps_count(true);
}

/*
 * The same where the agent counts outcomes in order too (a rate): the
 * count it takes from the kernel at the start holds the reset made while
 * stopped, which must not then count once more.
 */
static void test_restart_with_events(void **state)
{
	struct config *cfg = parse("first run", rate_saved);
	uint64_t now = mono_now();
	struct agent a;
	uint32_t id;

	(void)state;
	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	id = circuit_named(&a, "d")->slot;
	check_eq("events", a.slots[id].events, true);
	poll_d(&a, 1, 0, now + 1, BS_CLOSED, "one reset");
	check_eq("one reset", a.slots[id].br.consecutive_failures, 1);
	agent_fini(&a);
	drop(cfg);

	cfg = parse("second run", rate_saved);
	fake_reset(id, false, now + 2);
	assert_int_equal(agent_init(&a, cfg, fake_bpf_adopt(), 8, now + 3), 0);
	check_eq("restored", a.restored, 1);
	check_eq("events again", a.slots[id].events, true);
	check_eq("restored count", a.slots[id].br.consecutive_failures, 2);
	poll_d(&a, 1, 1, now + 4, BS_CLOSED, "the reset while stopped, once");
	check_eq("counted once", a.slots[id].br.consecutive_failures, 2);
	poll_d(&a, 2, 1, now + 5, BS_OPEN, "a third reset");
	agent_fini(&a);
	drop(cfg);
}

/*
 * Two resets not polled yet, then a reload that moves d's count from the
 * kernel's to the agent's own (a rate added: events) or back: they count
 * once, whichever way, and a third opens it.
 */
static void reload_switches(const char *from, const char *to, bool events_after)
{
	const char *ctx = events_after ? "to events" : "from events";
	struct config *cfg = parse(ctx, from);
	uint64_t now = mono_now();
	struct agent a;
	uint32_t id;

	assert_int_equal(agent_init(&a, cfg, fake_bpf_open(), 8, now), 0);
	id = circuit_named(&a, "d")->slot;
	check_eq(ctx, a.slots[id].events, !events_after);
	resets(&a, "d", 2, 0, now + 1);
	reload_to(&a, &cfg, to, now + 2);
	check_eq(ctx, a.slots[id].events, events_after);
	check_eq(ctx, a.slots[id].br.consecutive_failures, 2);
	poll_d(&a, 2, 0, now + 3, BS_CLOSED, ctx);
	check_eq(ctx, a.slots[id].br.consecutive_failures, 2);
	poll_d(&a, 3, 0, now + 4, BS_OPEN, ctx);
	agent_fini(&a);
	drop(cfg);
}

static void test_reload_switches(void **state)
{
	(void)state;
	reload_switches(reset3, rate3, true);
	reload_switches(rate3, reset3, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_from_start),
		cmocka_unit_test(test_reload_adds_reset),
		cmocka_unit_test(test_restart_adds_reset),
		cmocka_unit_test(test_reload_then_resets),
		cmocka_unit_test(test_rebase_at_poll),
		cmocka_unit_test(test_stop_after_reload),
		cmocka_unit_test(test_restart_keeps_count),
		cmocka_unit_test(test_restart_with_events),
		cmocka_unit_test(test_reload_switches),
	};

	return cmocka_run_group_tests_name("resets", tests, NULL, NULL);
}
