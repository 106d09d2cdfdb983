// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the breaker state machine. Time is injected: every "now" is a
 * plain CLOCK_MONOTONIC-style ns value chosen by the test, so each transition
 * is asserted at the exact nanosecond it is due.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"

#include "breaker.h"
#include "config.h"

/* A start time far from 0, so "0 means unset" mistakes cannot pass by accident. */
#define T0 (1000 * SEC)

static struct breaker_policy policy_of(enum breaker_mode mode, uint32_t failures,
				       uint64_t open_ns, uint32_t permits)
{
	struct breaker_policy p;

	/* The built-in policy: every newer policy off, failures: the four connect failures. */
	config_policy_defaults(&p);
	p.mode = mode;
	p.consecutive_failures = failures;
	p.open_duration_ns = open_ns;
	p.half_open_permits = permits;
	return p;
}

/* One letter per outcome in sequence strings: S R T U E C. */
static enum kb_result result_of(char c)
{
	switch (c) {
	case 'S': return KB_RES_SUCCESS;
	case 'R': return KB_RES_REFUSED;
	case 'T': return KB_RES_TIMEOUT;
	case 'U': return KB_RES_UNREACHABLE;
	case 'E': return KB_RES_ERROR;
	case 'C': return KB_RES_CANCELLED;
	default:
		fail_msg("bad outcome letter '%c'", c);
		return KB_RES_MAX;
	}
}

static void check_verdict(const char *ctx, const struct breaker *b, enum kb_action action,
			  int64_t permits)
{
	struct kb_verdict v;

	/* Poison it: the verdict must be fully written, padding included (ABI). */
	memset(&v, 0xa5, sizeof(v));
	breaker_verdict(b, &v);
	check_eq(ctx, v.action, action);
	check_eq(ctx, v.gen, 0);	/* stamped by the loader */
	check_eq(ctx, v.admit, 0);
	check_eq(ctx, v.permits, permits);
	check_eq(ctx, v.observe, b->policy.mode == MODE_OBSERVE);
}

/* Every transition counter equals want[old][new]. */
static void check_transitions(const char *ctx, const struct breaker *b,
			      const uint64_t want[BS_MACHINE][BS_MACHINE])
{
	for (int from = 0; from < BS_MACHINE; from++) {
		for (int to = 0; to < BS_MACHINE; to++) {
			if (b->transitions[from][to] != want[from][to])
				fail_msg("%s: transitions[%s][%s] is %ju, want %ju", ctx,
					 breaker_state_name(from), breaker_state_name(to),
					 (uintmax_t)b->transitions[from][to],
					 (uintmax_t)want[from][to]);
		}
	}
}

/*
 * Feed outcomes one per ms, each connect begun 1 ms before it ends, advancing
 * *now. Returns the index of the one call that reported a state change, or
 * -1 if none did; fails on a second change.
 */
static int feed(const char *ctx, struct breaker *b, const char *seq, uint64_t *now)
{
	int changed_at = -1;

	for (int i = 0; seq[i]; i++) {
		*now += MS;
		if (!breaker_record(b, result_of(seq[i]), *now - MS, *now))
			continue;
		if (changed_at >= 0)
			fail_msg("%s: state changed at outcome %d and again at %d", ctx,
				 changed_at, i);
		changed_at = i;
	}
	return changed_at;
}

/* Trip a fresh closed breaker at *now + 1 ms; returns the trip time. */
static uint64_t trip(struct breaker *b, uint64_t *now)
{
	for (uint32_t i = 1; i < b->policy.consecutive_failures; i++) {
		*now += MS;
		assert_false(breaker_record(b, KB_RES_REFUSED, *now - MS, *now));
	}
	*now += MS;
	assert_true(breaker_record(b, KB_RES_REFUSED, *now - MS, *now));
	assert_int_equal(b->state, BS_OPEN);
	return *now;
}

/* From closed, trip and tick exactly at the deadline; returns half_open's entry time. */
static uint64_t to_half_open(struct breaker *b, uint64_t *now)
{
	uint64_t tripped = trip(b, now);

	*now = tripped + b->policy.open_duration_ns;
	assert_true(breaker_tick(b, *now));
	assert_int_equal(b->state, BS_HALF_OPEN);
	return *now;
}

/* One call into the machine and what it must leave behind (run_steps). */
enum op { OP_RECORD, OP_TICK };

struct step {
	enum op op;
	enum kb_result res;	/* OP_RECORD */
	uint64_t start_ns;	/* OP_RECORD */
	uint64_t now;
	bool want_changed;
	enum breaker_state want_state;	/* machine state */
	uint64_t want_deadline;
};

/* Init *b with policy p at T0 and take it to half_open; returns the entry time. */
static uint64_t init_half_open(struct breaker *b, const struct breaker_policy *p)
{
	uint64_t now = T0;

	breaker_init(b, p, now);
	return to_half_open(b, &now);
}

/* --- init --------------------------------------------------------------- */

static void test_init(void **state)
{
	static const uint64_t none[BS_MACHINE][BS_MACHINE];
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
	struct breaker b;

	memset(&b, 0x5a, sizeof(b));	/* init must not rely on a zeroed struct */
	breaker_init(&b, &p, T0);

	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(breaker_public_state(&b), BS_CLOSED);
	assert_int_equal(b.consecutive_failures, 0);
	assert_int_equal(b.probe_successes, 0);
	assert_int_equal(b.state_since_ns, T0);
	assert_int_equal(b.open_until_ns, 0);
	assert_int_equal(breaker_deadline(&b), 0);
	check_verdict("init", &b, KB_ACT_ALLOW, 0);
	check_transitions("init", &b, none);

	/* The policy is copied: the caller's copy may change or go away. */
	assert_memory_equal(&b.policy, &p, sizeof(p));
	p.consecutive_failures = 1;
	uint64_t now = T0;
	assert_false(breaker_record(&b, KB_RES_REFUSED, now, now + MS));
	assert_int_equal(b.state, BS_CLOSED);
}

/* --- closed ------------------------------------------------------------- */

static void test_closed_sequences(void **state)
{
	static const struct {
		const char *name;
		uint32_t threshold;
		const char *seq;
		int want_trip_at;	/* index of the tripping outcome, -1: stays closed */
		uint32_t want_consecutive;
	} cases[] = {
		{ "below threshold", 3, "RR", -1, 2 },
		{ "threshold reached", 3, "RRR", 2, 0 },
		{ "success resets", 3, "RRSRR", -1, 2 },
		{ "success resets, then trips", 3, "RRSRRR", 5, 0 },
		{ "success every third", 3, "RRSRRSRRS", -1, 0 },
		{ "only successes", 3, "SSSSS", -1, 0 },
		{ "mixed failure kinds", 3, "RTU", 2, 0 },
		{ "mixed failure kinds 2", 3, "TUE", 2, 0 },
		{ "refused counts", 3, "RRR", 2, 0 },
		{ "timeout counts", 3, "TTT", 2, 0 },
		{ "unreachable counts", 3, "UUU", 2, 0 },
		{ "error counts", 3, "EEE", 2, 0 },
		{ "cancelled alone", 3, "CCCCCC", -1, 0 },
		{ "cancelled keeps count", 3, "RRC", -1, 2 },
		{ "cancelled neither resets nor counts", 3, "RCRCR", 4, 0 },
		{ "cancelled does not count", 3, "RCCCCR", -1, 2 },
		{ "success after cancelled resets", 3, "RRCSR", -1, 1 },
		{ "ignored once open", 3, "RRRSRRRR", 2, 0 },
		{ "threshold 1 refused", 1, "R", 0, 0 },
		{ "threshold 1 timeout", 1, "T", 0, 0 },
		{ "threshold 1 unreachable", 1, "U", 0, 0 },
		{ "threshold 1 error", 1, "E", 0, 0 },
		{ "threshold 1 after successes", 1, "SSSCT", 4, 0 },
		{ "threshold 1 cancelled", 1, "CCC", -1, 0 },
		{ "threshold 5", 5, "RRRRSRRRRR", 9, 0 },
		{ "threshold 5 below", 5, "RRRRSRRRR", -1, 4 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = cases[i].name;
		struct breaker_policy p = policy_of(MODE_ENFORCE, cases[i].threshold, 5 * SEC, 2);
		uint64_t want_tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
		uint64_t now = T0;
		struct breaker b;

		breaker_init(&b, &p, now);
		check_int(name, feed(name, &b, cases[i].seq, &now), cases[i].want_trip_at);
		check_eq(name, b.consecutive_failures, cases[i].want_consecutive);
		if (cases[i].want_trip_at < 0) {
			check_eq(name, b.state, BS_CLOSED);
			check_eq(name, breaker_deadline(&b), 0);
			check_verdict(name, &b, KB_ACT_ALLOW, 0);
		} else {
			/* Tripped at T0 + (index + 1) ms. */
			uint64_t tripped = T0 + (uint64_t)(cases[i].want_trip_at + 1) * MS;

			check_eq(name, b.state, BS_OPEN);
			check_eq(name, b.state_since_ns, tripped);
			check_eq(name, breaker_deadline(&b), tripped + 5 * SEC);
			check_verdict(name, &b, KB_ACT_BLOCK, 0);
			want_tr[BS_CLOSED][BS_OPEN] = 1;
		}
		check_transitions(name, &b, want_tr);
	}
}

/* The trip reports a change exactly once, on the threshold-th failure. */
static void test_closed_trip_returns_true_once(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 4, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	for (uint32_t i = 1; i <= 3; i++) {
		now += MS;
		assert_false(breaker_record(&b, KB_RES_TIMEOUT, now - MS, now));
		assert_int_equal(b.state, BS_CLOSED);
		assert_int_equal(b.consecutive_failures, i);
		check_verdict("closed", &b, KB_ACT_ALLOW, 0);
	}
	now += MS;
	assert_true(breaker_record(&b, KB_RES_TIMEOUT, now - MS, now));
	assert_int_equal(b.state, BS_OPEN);
	now += MS;
	assert_false(breaker_record(&b, KB_RES_TIMEOUT, now - MS, now));
	assert_int_equal(b.transitions[BS_CLOSED][BS_OPEN], 1);
}

/* Ticking a closed breaker never does anything, however late. */
static void test_closed_tick_noop(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 1);
	struct breaker b;
	uint64_t now = T0;

	breaker_init(&b, &p, T0);
	feed("closed tick", &b, "RR", &now);
	assert_false(breaker_tick(&b, T0));
	assert_false(breaker_tick(&b, T0 + 5 * SEC));
	assert_false(breaker_tick(&b, UINT64_MAX));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.consecutive_failures, 2);
	assert_int_equal(b.state_since_ns, T0);
}

/* --- open --------------------------------------------------------------- */

static void test_open_verdict_and_deadline(void **state)
{
	static const struct {
		const char *name;
		uint32_t threshold;
		uint64_t open_ns;
	} cases[] = {
		{ "1 ns", 1, 1 },
		{ "100 ms", 2, 100 * MS },
		{ "30 s", 3, 30 * SEC },
		{ "1 h", 5, 3600 * SEC },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = cases[i].name;
		struct breaker_policy p = policy_of(MODE_ENFORCE, cases[i].threshold,
						    cases[i].open_ns, 2);
		uint64_t now = T0;
		struct breaker b;

		breaker_init(&b, &p, now);
		uint64_t tripped = trip(&b, &now);
		uint64_t deadline = tripped + cases[i].open_ns;

		check_eq(name, b.state, BS_OPEN);
		check_eq(name, breaker_public_state(&b), BS_OPEN);
		check_eq(name, b.open_until_ns, deadline);
		check_eq(name, breaker_deadline(&b), deadline);
		check_verdict(name, &b, KB_ACT_BLOCK, 0);

		/* Before the deadline nothing happens, even 1 ns before. */
		check_eq(name, breaker_tick(&b, tripped), false);
		check_eq(name, breaker_tick(&b, deadline - 1), false);
		check_eq(name, b.state, BS_OPEN);
		check_eq(name, breaker_deadline(&b), deadline);

		/* Exactly at the deadline: half_open, entered at that instant. */
		check_eq(name, breaker_tick(&b, deadline), true);
		check_eq(name, b.state, BS_HALF_OPEN);
		check_eq(name, b.state_since_ns, deadline);
		check_eq(name, breaker_deadline(&b), 0);
		check_eq(name, b.transitions[BS_OPEN][BS_HALF_OPEN], 1);

		/* A second tick at the same instant has nothing to do. */
		check_eq(name, breaker_tick(&b, deadline), false);
		check_eq(name, b.transitions[BS_OPEN][BS_HALF_OPEN], 1);
	}
}

/* A late tick still moves to half_open, entered at the tick's time. */
static void test_open_late_tick(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 2);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	uint64_t tripped = trip(&b, &now);
	uint64_t late = tripped + 5 * SEC + 750 * MS;

	assert_true(breaker_tick(&b, late));
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(b.state_since_ns, late);
	check_verdict("late tick", &b, KB_ACT_PROBE, 2);
}

/* Outcomes arriving while open (connects that slipped in) change nothing. */
static void test_open_ignores_outcomes(void **state)
{
	static const enum kb_result results[] = {
		KB_RES_SUCCESS, KB_RES_REFUSED, KB_RES_TIMEOUT,
		KB_RES_UNREACHABLE, KB_RES_ERROR, KB_RES_CANCELLED,
	};

	for (size_t i = 0; i < ARRAY_SIZE(results); i++) {
		const char *name = breaker_result_name(results[i]);
		struct breaker_policy p = policy_of(MODE_ENFORCE, 2, 5 * SEC, 1);
		uint64_t now = T0;
		struct breaker b;

		breaker_init(&b, &p, now);
		uint64_t tripped = trip(&b, &now);

		/* Begun before the trip and after it; many of them. */
		for (int n = 0; n < 10; n++) {
			check_eq(name, breaker_record(&b, results[i], tripped - SEC, tripped + MS), false);
			check_eq(name, breaker_record(&b, results[i], tripped + MS, tripped + 2 * MS), false);
		}
		check_eq(name, b.state, BS_OPEN);
		check_eq(name, b.state_since_ns, tripped);
		check_eq(name, b.consecutive_failures, 0);
		check_eq(name, b.probe_successes, 0);
		check_eq(name, breaker_deadline(&b), tripped + 5 * SEC);
		check_verdict(name, &b, KB_ACT_BLOCK, 0);
		check_eq(name, b.transitions[BS_CLOSED][BS_OPEN], 1);
		check_eq(name, b.transitions[BS_OPEN][BS_OPEN], 0);
	}
}

/* --- half_open ---------------------------------------------------------- */

static void test_half_open_permits_close(void **state)
{
	static const uint32_t permits[] = { 1, 2, 3, 10 };

	for (size_t i = 0; i < ARRAY_SIZE(permits); i++) {
		char name[32];
		struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, permits[i]);
		struct breaker b;
		uint64_t entered = init_half_open(&b, &p), now = entered;

		snprintf(name, sizeof(name), "permits %u", permits[i]);

		check_eq(name, breaker_public_state(&b), BS_HALF_OPEN);
		check_verdict(name, &b, KB_ACT_PROBE, permits[i]);

		for (uint32_t n = 1; n < permits[i]; n++) {
			now += MS;
			check_eq(name, breaker_record(&b, KB_RES_SUCCESS, entered, now), false);
			check_eq(name, b.state, BS_HALF_OPEN);
			check_eq(name, b.probe_successes, n);
			/* The verdict is written once on entry: permits do not shrink here. */
			check_verdict(name, &b, KB_ACT_PROBE, permits[i]);
		}
		now += MS;
		check_eq(name, breaker_record(&b, KB_RES_SUCCESS, entered, now), true);
		check_eq(name, b.state, BS_CLOSED);
		check_eq(name, b.state_since_ns, now);
		check_eq(name, b.consecutive_failures, 0);
		check_eq(name, b.probe_successes, 0);
		check_eq(name, breaker_deadline(&b), 0);
		check_verdict(name, &b, KB_ACT_ALLOW, 0);
		check_eq(name, b.transitions[BS_HALF_OPEN][BS_CLOSED], 1);

		/* Closed again with a fresh count: threshold - 1 failures do not trip. */
		check_int(name, feed(name, &b, "RR", &now), -1);
		check_eq(name, b.state, BS_CLOSED);
		check_int(name, feed(name, &b, "R", &now), 0);
		check_eq(name, b.state, BS_OPEN);
		check_eq(name, b.transitions[BS_CLOSED][BS_OPEN], 2);
	}
}

/* Consecutive failures left over from before the trip do not survive a recovery. */
static void test_half_open_close_resets_count(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 1);
	struct breaker b;
	uint64_t entered = init_half_open(&b, &p), now = entered;

	now += MS;
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, now));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.consecutive_failures, 0);
	now += MS;
	assert_false(breaker_record(&b, KB_RES_ERROR, now - MS, now));
	assert_int_equal(b.consecutive_failures, 1);
}

static void test_half_open_failure_reopens(void **state)
{
	static const struct {
		const char *name;
		uint32_t permits;
		uint32_t successes_first;
		enum kb_result fail;
		uint64_t fail_after;	/* after half_open entry */
	} cases[] = {
		{ "first probe refused", 1, 0, KB_RES_REFUSED, 3 * MS },
		{ "first probe timeout", 3, 0, KB_RES_TIMEOUT, 2 * SEC },
		{ "first probe unreachable", 3, 0, KB_RES_UNREACHABLE, 40 * MS },
		{ "first probe error", 3, 0, KB_RES_ERROR, 1 },
		{ "last probe fails", 3, 2, KB_RES_REFUSED, 9 * SEC },
		{ "middle probe fails", 5, 2, KB_RES_TIMEOUT, 500 * MS },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = cases[i].name;
		struct breaker_policy p = policy_of(MODE_ENFORCE, 2, 5 * SEC, cases[i].permits);
		uint64_t want_tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
		struct breaker b;
		uint64_t entered = init_half_open(&b, &p);

		for (uint32_t n = 0; n < cases[i].successes_first; n++)
			check_eq(name, breaker_record(&b, KB_RES_SUCCESS, entered, entered + n + 1), false);
		check_eq(name, b.probe_successes, cases[i].successes_first);

		uint64_t failed = entered + cases[i].fail_after;

		check_eq(name, breaker_record(&b, cases[i].fail, entered, failed), true);
		check_eq(name, b.state, BS_OPEN);
		check_eq(name, b.state_since_ns, failed);
		/* A fresh open period from the failure, not from the first trip. */
		check_eq(name, b.open_until_ns, failed + 5 * SEC);
		check_eq(name, breaker_deadline(&b), failed + 5 * SEC);
		check_eq(name, b.probe_successes, 0);
		check_verdict(name, &b, KB_ACT_BLOCK, 0);
		want_tr[BS_CLOSED][BS_OPEN] = 1;
		want_tr[BS_OPEN][BS_HALF_OPEN] = 1;
		want_tr[BS_HALF_OPEN][BS_OPEN] = 1;
		check_transitions(name, &b, want_tr);

		check_eq(name, breaker_tick(&b, failed + 5 * SEC - 1), false);
		check_eq(name, breaker_tick(&b, failed + 5 * SEC), true);
		check_eq(name, b.state, BS_HALF_OPEN);

		/* Successes before the re-open do not carry over: all permits again. */
		entered = failed + 5 * SEC;
		for (uint32_t n = 1; n < cases[i].permits; n++)
			check_eq(name, breaker_record(&b, KB_RES_SUCCESS, entered, entered + n), false);
		check_eq(name, breaker_record(&b, KB_RES_SUCCESS, entered, entered + SEC), true);
		check_eq(name, b.state, BS_CLOSED);
		want_tr[BS_OPEN][BS_HALF_OPEN] = 2;
		want_tr[BS_HALF_OPEN][BS_CLOSED] = 1;
		check_transitions(name, &b, want_tr);
	}
}

/*
 * Connects begun before half_open (stale, in flight across the open period)
 * say nothing about recovery: ignored whatever their outcome. A connect begun
 * exactly at the entry instant is a probe.
 */
static void test_half_open_stale_and_cancelled(void **state)
{
	static const struct {
		const char *name;
		enum kb_result res;
		int64_t start_rel;	/* start_ns relative to half_open entry */
		bool want_changed;
		enum breaker_state want_state;
		uint32_t want_probe_successes;
	} cases[] = {
		{ "stale success", KB_RES_SUCCESS, -1, false, BS_HALF_OPEN, 0 },
		{ "stale success, long ago", KB_RES_SUCCESS, -(int64_t)(6 * SEC), false, BS_HALF_OPEN, 0 },
		{ "stale refused", KB_RES_REFUSED, -1, false, BS_HALF_OPEN, 0 },
		{ "stale timeout", KB_RES_TIMEOUT, -(int64_t)(127 * SEC), false, BS_HALF_OPEN, 0 },
		{ "stale unreachable", KB_RES_UNREACHABLE, -(int64_t)MS, false, BS_HALF_OPEN, 0 },
		{ "stale error", KB_RES_ERROR, -1, false, BS_HALF_OPEN, 0 },
		{ "stale cancelled", KB_RES_CANCELLED, -1, false, BS_HALF_OPEN, 0 },
		/* A cancelled probe spent a permit and proved nothing: back to open. */
		{ "fresh cancelled", KB_RES_CANCELLED, 0, true, BS_OPEN, 0 },
		{ "fresh cancelled later", KB_RES_CANCELLED, (int64_t)MS, true, BS_OPEN, 0 },
		{ "success at entry instant", KB_RES_SUCCESS, 0, false, BS_HALF_OPEN, 1 },
		{ "success after entry", KB_RES_SUCCESS, 1, false, BS_HALF_OPEN, 1 },
		{ "failure at entry instant", KB_RES_REFUSED, 0, true, BS_OPEN, 0 },
		{ "failure after entry", KB_RES_TIMEOUT, 1, true, BS_OPEN, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = cases[i].name;
		struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
		struct breaker b;
		uint64_t entered = init_half_open(&b, &p);
		uint64_t ended = entered + 10 * MS;

		check_eq(name, breaker_record(&b, cases[i].res,
					      entered + cases[i].start_rel, ended),
			 cases[i].want_changed);
		check_eq(name, b.state, cases[i].want_state);
		check_eq(name, b.probe_successes, cases[i].want_probe_successes);
		if (cases[i].want_state == BS_HALF_OPEN) {
			check_eq(name, b.state_since_ns, entered);
			check_verdict(name, &b, KB_ACT_PROBE, 2);
			check_eq(name, b.transitions[BS_HALF_OPEN][BS_OPEN], 0);
		} else {
			check_eq(name, breaker_deadline(&b), ended + 5 * SEC);
			check_eq(name, b.transitions[BS_HALF_OPEN][BS_OPEN], 1);
		}
	}
}

/* Many stale outcomes in a row neither close nor re-open; real probes still decide. */
static void test_half_open_stale_flood(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 1);
	struct breaker b;
	uint64_t entered = init_half_open(&b, &p);

	for (int n = 0; n < 100; n++) {
		assert_false(breaker_record(&b, KB_RES_SUCCESS, entered - 1 - n, entered + n));
		assert_false(breaker_record(&b, KB_RES_TIMEOUT, entered - 1 - n, entered + n));
	}
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(b.probe_successes, 0);
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered + 200, entered + 300));
	assert_int_equal(b.state, BS_CLOSED);
}

/* When a breaker of threshold n, open 5 s, tripped by n failures a ms apart from T0, enters half_open. */
#define HALF_OPEN_AT(n) (T0 + (n) * MS + 5 * SEC)

static void run_steps(const char *ctx, struct breaker *b, const struct step *steps, size_t n);

/* Sequences from half_open, each step asserted by run_steps. */
static void test_half_open_sequences(void **state)
{
#define E1 HALF_OPEN_AT(1)
	/*
	 * A connect begun before the breaker closed (a SYN retrying across the
	 * whole open period) must not re-trip the recovered breaker, even at
	 * threshold 1; one begun at the closing instant or later counts.
	 */
	static const struct step closed_ignores_older[] = {
		{ OP_RECORD, KB_RES_SUCCESS, E1, E1 + MS, true, BS_CLOSED, 0 },
		{ OP_RECORD, KB_RES_TIMEOUT, T0 - 1, E1 + 127 * SEC, false, BS_CLOSED, 0 },
		{ OP_RECORD, KB_RES_REFUSED, E1 + MS - 1, E1 + 128 * SEC, false, BS_CLOSED, 0 },
		{ OP_RECORD, KB_RES_REFUSED, E1 + MS, E1 + 129 * SEC, true, BS_OPEN, E1 + 134 * SEC },
	};
	/*
	 * Ticking half_open does nothing: it has no timer of its own, only probe
	 * outcomes leave it. (If half_open gains a timeout for probes that never
	 * report, this is the case to change.)
	 */
	static const struct step tick_noop[] = {
		{ OP_TICK, 0, 0, E1, false, BS_HALF_OPEN, 0 },
		{ OP_TICK, 0, 0, E1 + 5 * SEC, false, BS_HALF_OPEN, 0 },
		{ OP_TICK, 0, 0, E1 + 3600 * SEC, false, BS_HALF_OPEN, 0 },
	};
#undef E1
	static const struct {
		const char *name;
		uint32_t failures, permits;
		const struct step *steps;
		size_t n_steps;
	} cases[] = {
		{ "closed ignores outcomes begun before", 1, 1, closed_ignores_older,
		  ARRAY_SIZE(closed_ignores_older) },
		{ "half_open tick does nothing", 1, 2, tick_noop, ARRAY_SIZE(tick_noop) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct breaker_policy p = policy_of(MODE_ENFORCE, cases[i].failures, 5 * SEC,
						    cases[i].permits);
		struct breaker b;

		check_eq(cases[i].name, init_half_open(&b, &p), HALF_OPEN_AT(cases[i].failures));
		run_steps(cases[i].name, &b, cases[i].steps, cases[i].n_steps);
	}
}

/* --- full cycle, enforce and observe ------------------------------------ */

/* threshold 3, open 5 s, 2 permits */
#define TRIP1 (T0 + 3 * MS)
#define HALF1 (TRIP1 + 5 * SEC)
#define CLOSE1 (HALF1 + 20 * MS)
#define TRIP2 (CLOSE1 + 3 * SEC)
#define HALF2 (TRIP2 + 5 * SEC + 7 * MS)	/* ticked late */
#define REOPEN (HALF2 + 30 * MS)
#define HALF3 (REOPEN + 5 * SEC)
#define CLOSE2 (HALF3 + 2 * SEC)

static const struct step cycle[] = {
	/* closed: two failures, a success resets, three more trip */
	{ OP_RECORD, KB_RES_REFUSED, T0 - MS, T0 + 1, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_TIMEOUT, T0 - MS, T0 + 2, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_SUCCESS, T0, T0 + 3, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_CANCELLED, T0, T0 + MS, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_UNREACHABLE, T0, T0 + MS, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_ERROR, T0, T0 + 2 * MS, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_REFUSED, T0, TRIP1, true, BS_OPEN, HALF1 },
	/* open: outcomes ignored, tick early does nothing, on time moves on */
	{ OP_RECORD, KB_RES_SUCCESS, T0, TRIP1 + MS, false, BS_OPEN, HALF1 },
	{ OP_RECORD, KB_RES_REFUSED, T0, TRIP1 + MS, false, BS_OPEN, HALF1 },
	{ OP_TICK, 0, 0, TRIP1 + SEC, false, BS_OPEN, HALF1 },
	{ OP_TICK, 0, 0, HALF1 - 1, false, BS_OPEN, HALF1 },
	{ OP_TICK, 0, 0, HALF1, true, BS_HALF_OPEN, 0 },
	/* half_open: a stale failure and a stale cancel are ignored, two probes close */
	{ OP_RECORD, KB_RES_TIMEOUT, TRIP1 - SEC, HALF1 + MS, false, BS_HALF_OPEN, 0 },
	{ OP_RECORD, KB_RES_SUCCESS, HALF1 + 1, HALF1 + 10 * MS, false, BS_HALF_OPEN, 0 },
	{ OP_RECORD, KB_RES_CANCELLED, HALF1 - 2, HALF1 + 15 * MS, false, BS_HALF_OPEN, 0 },
	{ OP_RECORD, KB_RES_SUCCESS, HALF1 + 3, CLOSE1, true, BS_CLOSED, 0 },
	{ OP_TICK, 0, 0, CLOSE1 + SEC, false, BS_CLOSED, 0 },
	/* closed again: trips after three fresh failures */
	{ OP_RECORD, KB_RES_ERROR, CLOSE1, CLOSE1 + SEC, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_ERROR, CLOSE1, CLOSE1 + 2 * SEC, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_ERROR, CLOSE1, TRIP2, true, BS_OPEN, TRIP2 + 5 * SEC },
	{ OP_TICK, 0, 0, HALF2, true, BS_HALF_OPEN, 0 },
	/* half_open: one good probe, then a failing one re-opens for a fresh 5 s */
	{ OP_RECORD, KB_RES_SUCCESS, HALF2, HALF2 + 10 * MS, false, BS_HALF_OPEN, 0 },
	{ OP_RECORD, KB_RES_REFUSED, HALF2 + 1, REOPEN, true, BS_OPEN, HALF3 },
	{ OP_RECORD, KB_RES_SUCCESS, HALF2 + 2, REOPEN + MS, false, BS_OPEN, HALF3 },
	{ OP_TICK, 0, 0, HALF3 - 1, false, BS_OPEN, HALF3 },
	{ OP_TICK, 0, 0, HALF3, true, BS_HALF_OPEN, 0 },
	/* the success before the re-open does not count: two more needed */
	{ OP_RECORD, KB_RES_SUCCESS, HALF3, HALF3 + SEC, false, BS_HALF_OPEN, 0 },
	{ OP_RECORD, KB_RES_SUCCESS, HALF3 + MS, CLOSE2, true, BS_CLOSED, 0 },
	/* and round again: threshold 3 from zero */
	{ OP_RECORD, KB_RES_REFUSED, CLOSE2, CLOSE2 + 1, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_REFUSED, CLOSE2, CLOSE2 + 2, false, BS_CLOSED, 0 },
	{ OP_RECORD, KB_RES_REFUSED, CLOSE2, CLOSE2 + 3, true, BS_OPEN, CLOSE2 + 3 + 5 * SEC },
};

/*
 * Run steps on b, asserting after each: the change reported, the machine
 * state, the deadline, state_since_ns (the step's time on a change, else
 * unchanged), every transition counter (on top of those b had), the public
 * state and the verdict.
 */
static void run_steps(const char *ctx, struct breaker *b, const struct step *steps, size_t n)
{
	uint64_t want_tr[BS_MACHINE][BS_MACHINE];

	memcpy(want_tr, b->transitions, sizeof(want_tr));
	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		enum breaker_state before = b->state;
		uint64_t since = b->state_since_ns;
		char name[96];
		bool changed;

		snprintf(name, sizeof(name), "%s step %zu", ctx, i);
		if (s->op == OP_RECORD)
			changed = breaker_record(b, s->res, s->start_ns, s->now);
		else
			changed = breaker_tick(b, s->now);

		check_eq(name, changed, s->want_changed);
		check_eq(name, b->state, s->want_state);
		check_eq(name, breaker_deadline(b), s->want_deadline);
		if (changed)
			want_tr[before][s->want_state]++;
		check_eq(name, b->state_since_ns, changed ? s->now : since);
		check_transitions(name, b, want_tr);

		/* Observe mode gets the same verdict with observe set: the hooks allow, counting would_block. */
		if (b->policy.mode == MODE_OBSERVE)
			check_eq(name, breaker_public_state(b), BS_METRICS_ONLY);
		else
			check_eq(name, breaker_public_state(b), s->want_state);
		if (s->want_state == BS_OPEN)
			check_verdict(name, b, KB_ACT_BLOCK, 0);
		else if (s->want_state == BS_HALF_OPEN)
			check_verdict(name, b, KB_ACT_PROBE, b->policy.half_open_permits);
		else
			check_verdict(name, b, KB_ACT_ALLOW, 0);
	}
}

/* Run the cycle in `mode`; the final breaker goes to *out. */
static void run_cycle(enum breaker_mode mode, struct breaker *out)
{
	struct breaker_policy p = policy_of(mode, 3, 5 * SEC, 2);
	struct breaker b;

	breaker_init(&b, &p, T0);
	run_steps(config_mode_name(mode), &b, cycle, ARRAY_SIZE(cycle));

	/* The totals, spelt out. */
	uint64_t totals[BS_MACHINE][BS_MACHINE] = { { 0 } };

	totals[BS_CLOSED][BS_OPEN] = 3;
	totals[BS_OPEN][BS_HALF_OPEN] = 3;
	totals[BS_HALF_OPEN][BS_CLOSED] = 2;
	totals[BS_HALF_OPEN][BS_OPEN] = 1;
	check_transitions(config_mode_name(mode), &b, totals);
	*out = b;
}

static void test_cycle_enforce(void **state)
{
	struct breaker b;

	run_cycle(MODE_ENFORCE, &b);
}

/* Observe mode: the same machine, the same transitions, but never blocks. */
static void test_cycle_observe(void **state)
{
	struct breaker enforce, observe;

	run_cycle(MODE_ENFORCE, &enforce);
	run_cycle(MODE_OBSERVE, &observe);
	assert_int_equal(observe.state, enforce.state);
	assert_int_equal(observe.consecutive_failures, enforce.consecutive_failures);
	assert_int_equal(observe.probe_successes, enforce.probe_successes);
	assert_int_equal(observe.state_since_ns, enforce.state_since_ns);
	assert_int_equal(observe.open_until_ns, enforce.open_until_ns);
	assert_memory_equal(observe.transitions, enforce.transitions, sizeof(enforce.transitions));
}

/* Observe mode in each machine state, reached through the public API only. */
static void test_observe_every_state(void **state)
{
	struct breaker_policy p = policy_of(MODE_OBSERVE, 1, 5 * SEC, 3);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(breaker_public_state(&b), BS_METRICS_ONLY);
	check_verdict("observe closed", &b, KB_ACT_ALLOW, 0);

	uint64_t tripped = trip(&b, &now);

	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(breaker_public_state(&b), BS_METRICS_ONLY);
	assert_int_equal(breaker_deadline(&b), tripped + 5 * SEC);
	check_verdict("observe open", &b, KB_ACT_BLOCK, 0);

	assert_false(breaker_tick(&b, tripped + 5 * SEC - 1));
	assert_true(breaker_tick(&b, tripped + 5 * SEC));
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(breaker_public_state(&b), BS_METRICS_ONLY);
	check_verdict("observe half_open", &b, KB_ACT_PROBE, 3);
	assert_int_equal(b.transitions[BS_CLOSED][BS_OPEN], 1);
	assert_int_equal(b.transitions[BS_OPEN][BS_HALF_OPEN], 1);
	/* The exported state never enters the machine's counters: those two are all. */
	uint64_t sum = 0;
	for (int from = 0; from < BS_MACHINE; from++)
		for (int to = 0; to < BS_MACHINE; to++)
			sum += b.transitions[from][to];
	assert_int_equal(sum, 2);
}

/* --- names and classification ------------------------------------------- */

static void test_state_names(void **state)
{
	static const struct {
		enum breaker_state s;
		const char *want;
	} cases[] = {
		{ BS_CLOSED, "closed" },
		{ BS_OPEN, "open" },
		{ BS_HALF_OPEN, "half_open" },
		{ BS_METRICS_ONLY, "metrics_only" },
		{ BS_DISABLED, "disabled" },
		{ BS_FORCED_OPEN, "forced_open" },
		{ BS_MAX, "unknown" },
		{ (enum breaker_state)100, "unknown" },
		{ (enum breaker_state)-1, "unknown" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char name[32];

		snprintf(name, sizeof(name), "state %d", (int)cases[i].s);
		check_str(name, breaker_state_name(cases[i].s), cases[i].want);
	}
}

static void test_result_names_and_failure(void **state)
{
	static const struct {
		enum kb_result res;
		const char *want_name;
		bool want_failure;
	} cases[] = {
		{ KB_RES_SUCCESS, "success", false },
		{ KB_RES_REFUSED, "refused", true },
		{ KB_RES_TIMEOUT, "timeout", true },
		{ KB_RES_UNREACHABLE, "unreachable", true },
		{ KB_RES_ERROR, "error", true },
		{ KB_RES_CANCELLED, "cancelled", false },
		{ KB_RES_MAX, "unknown", false },
		{ (enum kb_result)77, "unknown", false },
		{ (enum kb_result)-1, "unknown", false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char name[32];

		snprintf(name, sizeof(name), "result %d", (int)cases[i].res);
		check_str(name, breaker_result_name(cases[i].res), cases[i].want_name);
		check_eq(name, breaker_is_failure(cases[i].res), cases[i].want_failure);
	}
}

/* An out-of-range result (a newer BPF object?) is neither failure nor success. */
static void test_unknown_result_ignored(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	assert_false(breaker_record(&b, (enum kb_result)KB_RES_MAX, T0, T0 + 1));
	assert_int_equal(b.state, BS_CLOSED);
	uint64_t entered = to_half_open(&b, &now);
	assert_false(breaker_record(&b, (enum kb_result)42, entered, entered + 1));
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(b.probe_successes, 0);
}

/* --- policies beyond consecutive failures -------------------------------- */

/* A policy with consecutive failures off and the given rate settings. */
static struct breaker_policy rate_policy(uint32_t frt, enum window_type type, uint32_t size,
					 uint32_t min_calls)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 0, 5 * SEC, 1);

	p.failure_rate_threshold = frt;
	p.window_type = type;
	p.window_size = size;
	p.minimum_calls = min_calls;
	return p;
}

static void test_consecutive_disabled(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 0, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	assert_int_equal(feed("cf 0", &b, "RRRRRRRRRRRRRRRRRRRRTTTTTUUUUUEEEEE", &now), -1);
	assert_int_equal(b.state, BS_CLOSED);
	/* Still counted, for the metric. */
	assert_int_equal(b.consecutive_failures, 35);
}

static void test_failure_rate_count(void **state)
{
	static const struct {
		const char *name;
		uint32_t threshold, size, min_calls;
		const char *seq;
		int want_trip_at;
		enum breaker_cause want_cause;
	} cases[] = {
		{ "50% at minimum", 50, 10, 4, "SRSR", 3, BC_FAILURE_RATE },
		{ "below minimum", 50, 10, 4, "RRR", -1, BC_NONE },
		{ "at minimum, all failed", 50, 10, 4, "RRRR", 3, BC_FAILURE_RATE },
		{ "under 50% never", 50, 100, 2, "SSRSRSRSRSRSR", -1, BC_NONE },
		{ "a success can trip too", 25, 10, 4, "RRSS", 3, BC_FAILURE_RATE },
		{ "a success keeps it under", 75, 10, 4, "RRSS", -1, BC_NONE },
		{ "old failures leave the window", 50, 4, 4, "RSSSRSSSRSSS", -1, BC_NONE },
		{ "window of 4 fills with failures", 50, 4, 4, "SSSSSSRR", 7, BC_FAILURE_RATE },
		{ "100% needs every call failed", 100, 4, 4, "RRRSRRRR", 7, BC_FAILURE_RATE },
		{ "minimum above count window: window size", 50, 5, 20, "SSRRR", 4, BC_FAILURE_RATE },
		{ "cancelled is not a call", 50, 10, 4, "RCCCSCR", -1, BC_NONE },
		{ "minimum 0 means 1", 50, 10, 0, "R", 0, BC_FAILURE_RATE },
		{ "no window, no rate", 50, 0, 4, "RRRRRRRR", -1, BC_NONE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = cases[i].name;
		struct breaker_policy p = rate_policy(cases[i].threshold, WINDOW_COUNT, cases[i].size,
						      cases[i].min_calls);
		uint64_t now = T0;
		struct breaker b;

		breaker_init(&b, &p, now);
		check_int(name, feed(name, &b, cases[i].seq, &now), cases[i].want_trip_at);
		check_eq(name, b.state, cases[i].want_trip_at < 0 ? BS_CLOSED : BS_OPEN);
		check_eq(name, b.cause, cases[i].want_cause);
	}
}

/* The rate functions expose what the window holds, 0..1. */
static void test_rates_exposed(void **state)
{
	struct breaker_policy p = rate_policy(0, WINDOW_COUNT, 4, 1);
	uint64_t now = T0;
	struct breaker b;

	p.slow_call_duration_ns = 100 * MS;
	breaker_init(&b, &p, now);
	assert_true(breaker_failure_rate(&b, now) == 0.0);
	assert_true(breaker_slow_call_rate(&b, now) == 0.0);
	assert_int_equal(breaker_window_calls(&b, now), 0);
	feed("rates", &b, "RSSS", &now);
	assert_true(breaker_failure_rate(&b, now) == 0.25);
	assert_int_equal(breaker_window_calls(&b, now), 4);
	/* 1 ms connects are not slow; one of 200 ms is. */
	now += SEC;
	assert_false(breaker_record(&b, KB_RES_SUCCESS, now - 200 * MS, now));
	assert_true(breaker_slow_call_rate(&b, now) == 0.25);
	assert_true(breaker_failure_rate(&b, now) == 0.0);
}

/* Time windows: failures older than the window stop counting at the exact second. */
static void test_failure_rate_time(void **state)
{
	struct breaker_policy p = rate_policy(50, WINDOW_TIME, 10, 4);
	struct breaker b;

	breaker_init(&b, &p, T0);
	/* Two failures in second 0, two successes in second 5. */
	assert_false(breaker_record(&b, KB_RES_REFUSED, T0, T0 + 100 * MS));
	assert_false(breaker_record(&b, KB_RES_REFUSED, T0, T0 + 200 * MS));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 5 * SEC));
	assert_true(breaker_failure_rate(&b, T0 + 5 * SEC) > 0.66);
	/* The 4th call reaches minimum_calls with 2 of 4 failed: 50% trips, on a success. */
	assert_true(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 5 * SEC));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(b.cause, BC_FAILURE_RATE);
}

static void test_failure_rate_time_expiry(void **state)
{
	struct breaker_policy p = rate_policy(50, WINDOW_TIME, 10, 4);
	struct breaker b;

	breaker_init(&b, &p, T0);
	/* Second 0: three successes, one failure (25%). */
	assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 1));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 2));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 3));
	assert_false(breaker_record(&b, KB_RES_REFUSED, T0, T0 + 4));
	assert_true(breaker_failure_rate(&b, T0 + 4) == 0.25);
	/* Second 9: one failure: 2 of 5, 40%. */
	assert_false(breaker_record(&b, KB_RES_REFUSED, T0, T0 + 9 * SEC));
	assert_true(breaker_failure_rate(&b, T0 + 10 * SEC - 1) == 0.4);
	/* At T0 + 10 s second 0 left: 1 of 1 is 100%, but below minimum_calls. */
	assert_true(breaker_failure_rate(&b, T0 + 10 * SEC) == 1.0);
	assert_int_equal(breaker_window_calls(&b, T0 + 10 * SEC), 1);
	assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 10 * SEC));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, T0 + 10 * SEC + 1));
	assert_int_equal(b.state, BS_CLOSED);	/* 1 of 3 */
	/* The 4th call, a failure: 2 of 4 = 50%: trip. */
	assert_true(breaker_record(&b, KB_RES_TIMEOUT, T0, T0 + 11 * SEC));
	assert_int_equal(b.cause, BC_FAILURE_RATE);
}

static void test_slow_call_rate(void **state)
{
	struct breaker_policy p = rate_policy(0, WINDOW_COUNT, 4, 4);
	uint64_t now = T0 + SEC;
	struct breaker b;

	p.slow_call_duration_ns = 100 * MS;
	p.slow_call_rate_threshold = 50;
	breaker_init(&b, &p, T0);
	/* Exactly the threshold is not slow; 1 ns more is. */
	assert_false(breaker_record(&b, KB_RES_SUCCESS, now - 100 * MS, now));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, now - 100 * MS - 1, now));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, now - MS, now));
	assert_true(breaker_slow_call_rate(&b, now) > 0.33 && breaker_slow_call_rate(&b, now) < 0.34);
	assert_true(breaker_record(&b, KB_RES_SUCCESS, now - SEC, now));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(b.cause, BC_SLOW_CALL_RATE);

	/* A connect that "ended before it began" (per-CPU clocks) is not slow. */
	breaker_init(&b, &p, T0);
	for (int i = 0; i < 10; i++)
		assert_false(breaker_record(&b, KB_RES_SUCCESS, now + 1, now));
	assert_true(breaker_slow_call_rate(&b, now) == 0.0);

	/* Threshold 0 never trips on slow calls; duration 0 makes no call slow. */
	p.slow_call_rate_threshold = 0;
	breaker_init(&b, &p, T0);
	for (int i = 0; i < 10; i++)
		assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, now));
	p.slow_call_rate_threshold = 50;
	p.slow_call_duration_ns = 0;
	breaker_init(&b, &p, T0);
	for (int i = 0; i < 10; i++)
		assert_false(breaker_record(&b, KB_RES_SUCCESS, T0, now));
	assert_true(breaker_slow_call_rate(&b, now) == 0.0);
}

/* Every enabled condition trips; the cause names the first that held. */
static void test_combined_policies(void **state)
{
	static const struct {
		const char *name;
		uint32_t cf, frt, srt;
		const char *seq;	/* 's' is a slow success */
		int want_trip_at;
		enum breaker_cause want_cause;
	} cases[] = {
		{ "consecutive first", 3, 90, 0, "SRRR", 3, BC_CONSECUTIVE },
		{ "rate first", 5, 50, 0, "RSRSRS", 2, BC_FAILURE_RATE },
		{ "slow first", 5, 90, 50, "sSsR", 2, BC_SLOW_CALL_RATE },
		{ "both rates: failure checked first", 0, 50, 50, "fsRS", 2, BC_FAILURE_RATE },
		{ "none", 4, 80, 80, "RSRsRSRs", -1, BC_NONE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = cases[i].name;
		struct breaker_policy p = rate_policy(cases[i].frt, WINDOW_COUNT, 10, 3);
		uint64_t now = T0;
		struct breaker b;
		int changed_at = -1;

		p.consecutive_failures = cases[i].cf;
		p.slow_call_rate_threshold = cases[i].srt;
		p.slow_call_duration_ns = 100 * MS;
		breaker_init(&b, &p, now);
		for (int k = 0; cases[i].seq[k] && changed_at < 0; k++) {
			char c = cases[i].seq[k];
			bool slow = c == 's' || c == 'f';
			enum kb_result res = c == 'R' || c == 'f' ? KB_RES_REFUSED : KB_RES_SUCCESS;

			now += SEC;
			if (breaker_record(&b, res, now - (slow ? 500 * MS : MS), now))
				changed_at = k;
		}
		check_int(name, changed_at, cases[i].want_trip_at);
		check_eq(name, b.cause, cases[i].want_cause);
	}
}

static void test_failures_list(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 2, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	/* Only refused counts: timeouts neither count nor reset the count. */
	p.failures = POLICY_FAIL_REFUSED;
	breaker_init(&b, &p, now);
	assert_int_equal(feed("refused only", &b, "RTTUUEEC", &now), -1);
	assert_int_equal(b.consecutive_failures, 1);
	assert_int_equal(breaker_window_calls(&b, now), 1);
	assert_int_equal(feed("refused only", &b, "R", &now), 0);
	assert_true(breaker_policy_is_failure(&p, KB_RES_REFUSED));
	assert_false(breaker_policy_is_failure(&p, KB_RES_TIMEOUT));
	assert_false(breaker_policy_is_failure(&p, (enum kb_result)KB_RES_MAX));

	/* In half_open an unlisted failure proved nothing: it re-opens, as cancelled does. */
	now = b.open_until_ns;
	assert_true(breaker_tick(&b, now));
	assert_true(breaker_record(&b, KB_RES_TIMEOUT, now, now + MS));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(b.cause, BC_PROBE);

	/* failures: [] - nothing fails; success and cancel are never failures. */
	p.failures = 0;
	now = T0;
	breaker_init(&b, &p, now);
	assert_int_equal(feed("none", &b, "RRRRTTTTUUUUEEEE", &now), -1);
	p.failures = POLICY_FAIL_DEFAULT | POLICY_FAIL_RESET | 1u << KB_RES_SUCCESS |
		     1u << KB_RES_CANCELLED;
	assert_false(breaker_policy_is_failure(&p, KB_RES_SUCCESS));
	assert_false(breaker_policy_is_failure(&p, KB_RES_CANCELLED));
}

static void test_resets(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	/* Not listed (the default): ignored. */
	breaker_init(&b, &p, now);
	for (int i = 0; i < 10; i++)
		assert_false(breaker_record_reset(&b, now + i));
	assert_int_equal(b.consecutive_failures, 0);

	p.failures |= POLICY_FAIL_RESET;
	breaker_init(&b, &p, now);
	assert_false(breaker_record_reset(&b, now + 1));
	assert_int_equal(feed("reset", &b, "R", &now), -1);
	assert_int_equal(b.consecutive_failures, 2);
	assert_false(breaker_record_reset_guarded(&b, now + 2, false));
	assert_int_equal(b.denied_trips, 1);
	assert_true(breaker_record_reset(&b, now + 3));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(breaker_window_calls(&b, now + 3), 4);
	/* Open and half_open: ignored. */
	assert_false(breaker_record_reset(&b, now + 4));
	assert_true(breaker_tick(&b, b.open_until_ns));
	assert_false(breaker_record_reset(&b, b.state_since_ns + 1));
	assert_int_equal(b.state, BS_HALF_OPEN);

	/* A stopped machine ignores them. */
	p.mode = MODE_DISABLED;
	breaker_init(&b, &p, now);
	assert_false(breaker_record_reset(&b, now + 1));
	assert_int_equal(b.consecutive_failures, 0);
}

/* Re-open without a close in between: open_duration 1 s, 2 s, 4 s, capped at 5 s. */
static void test_backoff(void **state)
{
	static const uint64_t want[] = { 1 * SEC, 2 * SEC, 4 * SEC, 5 * SEC, 5 * SEC };
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	p.max_open_duration_ns = 5 * SEC;
	breaker_init(&b, &p, now);
	trip(&b, &now);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		char name[32];

		snprintf(name, sizeof(name), "open %zu", i + 1);
		check_eq(name, b.open_streak, i + 1);
		check_eq(name, breaker_deadline(&b) - b.state_since_ns, want[i]);
		now = breaker_deadline(&b);
		check_eq(name, breaker_tick(&b, now), true);
		/* A failing probe re-opens for the next, longer period. */
		check_eq(name, breaker_record(&b, KB_RES_REFUSED, now, now + MS), true);
		now += MS;
	}
	/* Closing resets the backoff: the next trip opens for open_duration again. */
	now = breaker_deadline(&b);
	assert_true(breaker_tick(&b, now));
	assert_true(breaker_record(&b, KB_RES_SUCCESS, now, now + MS));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.open_streak, 0);
	now += MS;
	trip(&b, &now);
	assert_int_equal(breaker_deadline(&b) - now, SEC);

	/* No max_open_duration (or one not above open_duration): no backoff. */
	for (int k = 0; k < 2; k++) {
		p.max_open_duration_ns = k ? SEC / 2 : 0;
		now = T0;
		breaker_init(&b, &p, now);
		trip(&b, &now);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(breaker_deadline(&b) - b.state_since_ns, SEC);
			now = breaker_deadline(&b);
			assert_true(breaker_tick(&b, now));
			assert_true(breaker_record(&b, KB_RES_REFUSED, now, now + MS));
		}
	}

	/* Doubling saturates at the cap without overflowing, however long the streak. */
	p.open_duration_ns = 3 * SEC;
	p.max_open_duration_ns = 24 * 3600 * SEC;
	now = T0;
	breaker_init(&b, &p, now);
	trip(&b, &now);
	for (int i = 0; i < 100; i++) {
		now = breaker_deadline(&b);
		assert_true(breaker_tick(&b, now));
		assert_true(breaker_record(&b, KB_RES_REFUSED, now, now));
		assert_true(breaker_deadline(&b) - now <= 24 * 3600 * SEC);
	}
	assert_int_equal(breaker_deadline(&b) - now, 24 * 3600 * SEC);
}

/* Jittered periods stay within +-jitter% and spread over the range. */
static void test_jitter_bounds(void **state)
{
	static const struct {
		uint32_t pct;
		uint64_t open_ns;
		uint32_t streak;	/* opens before the measured one */
		uint64_t lo, hi;
	} cases[] = {
		{ 20, 10 * SEC, 0, 8 * SEC, 12 * SEC },
		{ 1, 10 * SEC, 0, 9900 * MS, 10100 * MS },
		{ 50, 10 * SEC, 2, 10 * SEC, 30 * SEC },	/* after backoff to 20 s */
		{ 100, 2 * SEC, 0, 1, 4 * SEC },
		{ 250, 2 * SEC, 0, 1, 4 * SEC },		/* clamped to 100% */
		{ 30, 1, 0, 1, 1 },				/* too short to vary */
		{ 100, 1, 0, 1, 2 },				/* never 0 */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t min = UINT64_MAX, max = 0;
		char name[32];

		snprintf(name, sizeof(name), "jitter %u%%", cases[i].pct);
		for (uint64_t seed = 0; seed < 2000; seed++) {
			struct breaker_policy p = policy_of(MODE_ENFORCE, 1, cases[i].open_ns, 1);
			uint64_t now = T0, period;
			struct breaker b;

			p.jitter_percent = cases[i].pct;
			p.max_open_duration_ns = 20 * SEC;
			breaker_init(&b, &p, now);
			breaker_seed(&b, seed);
			trip(&b, &now);
			for (uint32_t k = 0; k < cases[i].streak; k++) {
				now = breaker_deadline(&b);
				assert_true(breaker_tick(&b, now));
				assert_true(breaker_record(&b, KB_RES_REFUSED, now, now));
			}
			period = breaker_deadline(&b) - b.state_since_ns;
			if (period < cases[i].lo || period > cases[i].hi)
				fail_msg("%s seed %ju: period %ju outside [%ju, %ju]", name,
					 (uintmax_t)seed, (uintmax_t)period, (uintmax_t)cases[i].lo,
					 (uintmax_t)cases[i].hi);
			min = period < min ? period : min;
			max = period > max ? period : max;
		}
		/* 2000 draws cover the range: each end within 1% of it. */
		uint64_t span = cases[i].hi - cases[i].lo;

		if (min > cases[i].lo + span / 100 || max + span / 100 < cases[i].hi)
			fail_msg("%s: draws span only [%ju, %ju]", name, (uintmax_t)min, (uintmax_t)max);
	}
}

/* The same seed gives the same periods; seed 0 works. */
static void test_jitter_deterministic(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 10 * SEC, 1);
	struct breaker a, b;
	uint64_t na = T0, nb = T0;

	p.jitter_percent = 50;
	breaker_init(&a, &p, T0);
	breaker_init(&b, &p, T0);
	breaker_seed(&a, 0);
	breaker_seed(&b, 0);
	assert_true(a.rng != 0);
	trip(&a, &na);
	trip(&b, &nb);
	assert_int_equal(a.open_until_ns, b.open_until_ns);
}

static void test_half_open_successes(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 5);
	struct breaker b;

	p.half_open_successes = 2;
	uint64_t entered = init_half_open(&b, &p);

	check_verdict("successes", &b, KB_ACT_PROBE, 5);
	assert_false(breaker_record(&b, KB_RES_SUCCESS, entered, entered + 1));
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, entered + 2));
	assert_int_equal(b.state, BS_CLOSED);
	/* The remaining probes began before the close: ignored, even failures. */
	assert_false(breaker_record(&b, KB_RES_REFUSED, entered, entered + 3));
	assert_int_equal(b.state, BS_CLOSED);

	/* More successes than permits (a hand-built policy) needs all permits. */
	p.half_open_successes = 9;
	p.half_open_permits = 2;
	entered = init_half_open(&b, &p);
	assert_false(breaker_record(&b, KB_RES_SUCCESS, entered, entered + 1));
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, entered + 2));
}

/* A silent half_open goes back to open after max_half_open_duration, with backoff. */
static void test_half_open_timeout(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 2);
	struct breaker b;

	p.max_half_open_duration_ns = 3 * SEC;
	p.max_open_duration_ns = 60 * SEC;
	uint64_t entered = init_half_open(&b, &p);

	assert_int_equal(breaker_deadline(&b), entered + 3 * SEC);
	assert_false(breaker_tick(&b, entered + 3 * SEC - 1));
	assert_false(breaker_record(&b, KB_RES_SUCCESS, entered, entered + SEC));
	assert_true(breaker_tick(&b, entered + 3 * SEC));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(b.cause, BC_HALF_OPEN_TIMEOUT);
	assert_int_equal(b.transitions[BS_HALF_OPEN][BS_OPEN], 1);
	/* The second open period is doubled. */
	assert_int_equal(breaker_deadline(&b), entered + 3 * SEC + 10 * SEC);
	check_verdict("timeout", &b, KB_ACT_BLOCK, 0);
}

static void test_modes_stopped(void **state)
{
	static const struct {
		enum breaker_mode mode;
		enum breaker_state pub;
		enum kb_action action;
	} cases[] = {
		{ MODE_DISABLED, BS_DISABLED, KB_ACT_ALLOW },
		{ MODE_FORCED_OPEN, BS_FORCED_OPEN, KB_ACT_BLOCK },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = config_mode_name(cases[i].mode);
		struct breaker_policy p = policy_of(cases[i].mode, 1, 5 * SEC, 1);
		static const uint64_t none[BS_MACHINE][BS_MACHINE];
		struct kb_verdict v;
		uint64_t now = T0;
		struct breaker b;

		p.recovery_ramp_ns = 10 * SEC;
		breaker_init(&b, &p, now);
		check_int(name, feed(name, &b, "RRRRTTTTSSCC", &now), -1);
		check_eq(name, breaker_record_reset(&b, now), false);
		check_eq(name, breaker_tick(&b, UINT64_MAX), false);
		check_eq(name, breaker_deadline(&b), 0);
		check_eq(name, breaker_public_state(&b), cases[i].pub);
		check_eq(name, breaker_ramping(&b), false);
		check_transitions(name, &b, none);
		memset(&v, 0xa5, sizeof(v));
		breaker_verdict(&b, &v);
		check_eq(name, v.action, cases[i].action);
		check_eq(name, v.observe, 0);
		check_eq(name, v.permits, 0);
		check_eq(name, v.admit, 0);
		check_eq(name, v.gen, 0);
	}
}

/* The ramp: 19 steps of 5%, then ALLOW at recovery_ramp's end, each due at breaker_deadline. */
static void test_recovery_ramp(void **state)
{
	static const uint64_t lengths[] = { 19 * SEC, 10 * SEC, 30 * SEC + 7, 19 };

	for (size_t i = 0; i < ARRAY_SIZE(lengths); i++) {
		struct breaker_policy p = policy_of(MODE_OBSERVE, 1, 5 * SEC, 1);
		uint64_t now = T0, closed, len = lengths[i];
		struct kb_verdict v;
		struct breaker b;
		char name[48];

		snprintf(name, sizeof(name), "ramp %ju ns", (uintmax_t)len);
		p.recovery_ramp_ns = len;
		breaker_init(&b, &p, now);
		/* No ramp at start. */
		check_eq(name, breaker_ramping(&b), false);
		uint64_t entered = to_half_open(&b, &now);

		closed = entered + MS;
		check_eq(name, breaker_record(&b, KB_RES_SUCCESS, entered, closed), true);
		check_eq(name, b.state, BS_CLOSED);
		check_eq(name, breaker_ramping(&b), true);
		check_eq(name, breaker_public_state(&b), BS_METRICS_ONLY);
		for (uint32_t step = 0; step < BREAKER_RAMP_STEPS; step++) {
			uint64_t due = closed + (((uint64_t)step + 1) * len + 18) / 19;

			breaker_verdict(&b, &v);
			check_eq(name, v.action, KB_ACT_RAMP);
			check_eq(name, v.admit, (uint64_t)KB_ADMIT_ONE * (step + 1) / 20);
			check_eq(name, v.observe, 1);
			check_eq(name, v.permits, 0);
			check_eq(name, breaker_deadline(&b), due);
			check_eq(name, breaker_tick(&b, due - 1), false);
			check_eq(name, breaker_tick(&b, due), true);
		}
		check_eq(name, breaker_ramping(&b), false);
		check_eq(name, breaker_deadline(&b), 0);
		breaker_verdict(&b, &v);
		check_eq(name, v.action, KB_ACT_ALLOW);
		check_eq(name, v.admit, 0);
		check_eq(name, breaker_tick(&b, UINT64_MAX), false);
		check_eq(name, b.transitions[BS_HALF_OPEN][BS_CLOSED], 1);
	}
}

/* A late tick jumps steps; a very late one ends the ramp; a trip during the ramp opens. */
static void test_recovery_ramp_jumps_and_trips(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 2, 5 * SEC, 1);
	struct kb_verdict v;
	struct breaker b;
	uint64_t now;

	p.recovery_ramp_ns = 19 * SEC;
	uint64_t entered = init_half_open(&b, &p);

	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, entered));
	assert_true(breaker_tick(&b, entered + 10 * SEC + 5));
	breaker_verdict(&b, &v);
	assert_int_equal(v.admit, KB_ADMIT_ONE * 11ULL / 20);
	assert_false(breaker_tick(&b, entered + 11 * SEC - 1));
	/* Failures during the ramp trip as in closed. */
	now = entered + 11 * SEC;
	assert_false(breaker_record(&b, KB_RES_REFUSED, now, now));
	assert_true(breaker_record(&b, KB_RES_REFUSED, now, now + 1));
	assert_int_equal(b.state, BS_OPEN);
	assert_false(breaker_ramping(&b));
	check_verdict("tripped in ramp", &b, KB_ACT_BLOCK, 0);
	/* Recover again: a fresh ramp from the new close. */
	now = breaker_deadline(&b);
	assert_true(breaker_tick(&b, now));
	assert_true(breaker_record(&b, KB_RES_SUCCESS, now, now + 1));
	assert_int_equal(breaker_deadline(&b), now + 1 + SEC);
	/* Ticked long after its end: straight to ALLOW. */
	assert_true(breaker_tick(&b, now + 3600 * SEC));
	check_verdict("after ramp", &b, KB_ACT_ALLOW, 0);
	/* A tick before the close instant (out-of-order clocks) does nothing. */
	p.recovery_ramp_ns = 19 * SEC;
	entered = init_half_open(&b, &p);
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, entered + SEC));
	assert_false(breaker_tick(&b, entered));
}

static void test_group_may_open(void **state)
{
	static const struct {
		size_t open_now, group;
		uint32_t pct;
		bool want;
	} cases[] = {
		{ 0, 3, 50, true },	/* one may always open */
		{ 1, 3, 50, false },	/* 2 of 3 > 50% */
		{ 1, 4, 50, true },	/* 2 of 4 = 50% */
		{ 2, 4, 50, false },
		{ 0, 1, 1, true },
		{ 1, 1, 100, true },
		{ 5, 10, 100, true },
		{ 9, 10, 100, true },
		{ 9, 10, 99, false },
		{ 1, 100, 1, false },
		{ 1, 200, 1, true },
		{ 0, 0, 10, true },
		{ 3, 0, 10, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char name[48];

		snprintf(name, sizeof(name), "%zu of %zu at %u%%", cases[i].open_now, cases[i].group,
			 cases[i].pct);
		check_eq(name, breaker_group_may_open(cases[i].open_now, cases[i].group, cases[i].pct),
			 cases[i].want);
	}
}

/* A denied trip stays closed, keeps its counts and trips on the next outcome once allowed. */
static void test_guarded_record(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 2, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, now, now + 1, false));
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, now, now + 2, false));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.denied_trips, 1);
	assert_int_equal(b.consecutive_failures, 2);
	check_verdict("denied", &b, KB_ACT_ALLOW, 0);
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, now, now + 3, false));
	assert_int_equal(b.denied_trips, 2);
	assert_true(breaker_record_guarded(&b, KB_RES_REFUSED, now, now + 4, true));
	assert_int_equal(b.state, BS_OPEN);
	/* half_open re-opens regardless of the guard. */
	now = breaker_deadline(&b);
	assert_true(breaker_tick(&b, now));
	assert_true(breaker_record_guarded(&b, KB_RES_REFUSED, now, now + 1, false));
	assert_int_equal(b.state, BS_OPEN);

	/* A success resets a denied consecutive trip. */
	breaker_init(&b, &p, T0);
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, T0, T0 + 1, false));
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, T0, T0 + 2, false));
	assert_false(breaker_record_guarded(&b, KB_RES_SUCCESS, T0, T0 + 3, true));
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, T0, T0 + 4, true));
	assert_int_equal(b.state, BS_CLOSED);

	/* A rate still over the threshold trips on the next call, even a success. */
	p = rate_policy(50, WINDOW_COUNT, 10, 2);
	breaker_init(&b, &p, T0);
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, T0, T0 + 1, false));
	assert_false(breaker_record_guarded(&b, KB_RES_REFUSED, T0, T0 + 2, false));
	assert_int_equal(b.denied_trips, 1);
	assert_true(breaker_record_guarded(&b, KB_RES_SUCCESS, T0, T0 + 3, true));
	assert_int_equal(b.cause, BC_FAILURE_RATE);
}

/* --- the kernel's half ------------------------------------------------------ */

/*
 * The verdict tells the kernel when to trip by itself and when to wake the
 * agent: closed trips at consecutive_failures (carrying the count so far),
 * half_open at the first failed probe; open counts nothing.
 */
static void test_verdict_kernel_trip(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
	uint32_t all = (1U << KB_RES_MAX) - 1, fails = POLICY_FAIL_DEFAULT;
	uint64_t now = T0;
	struct kb_verdict v;
	struct breaker b;

	breaker_init(&b, &p, now);
	feed("kernel", &b, "RR", &now);
	breaker_verdict(&b, &v);
	assert_int_equal(v.action, KB_ACT_ALLOW);
	assert_int_equal(v.trip_after, 3);
	assert_int_equal(v.fails_base, 2);
	assert_int_equal(v.fail_mask, fails);
	assert_int_equal(v.since_ns, b.state_since_ns);
	assert_int_equal(v.wake_mask, 0);	/* no rate: only the kernel's trip wakes the agent */

	breaker_init(&b, &p, now);
	uint64_t entered = to_half_open(&b, &now);

	breaker_verdict(&b, &v);
	assert_int_equal(v.action, KB_ACT_PROBE);
	assert_int_equal(v.trip_after, 1);
	assert_int_equal(v.fails_base, 0);
	assert_int_equal(v.since_ns, entered);
	assert_int_equal(v.wake_mask, all);

	assert_true(breaker_record(&b, KB_RES_TIMEOUT, entered, entered + 1));
	breaker_verdict(&b, &v);
	assert_int_equal(v.action, KB_ACT_BLOCK);
	assert_int_equal(v.trip_after, 0);
	assert_int_equal(v.wake_mask, 0);

	/* A failure rate needs the agent's window: failures wake it. */
	p.failure_rate_threshold = 50;
	breaker_init(&b, &p, now);
	breaker_verdict(&b, &v);
	assert_int_equal(v.wake_mask, fails);

	/* consecutive_failures 0: the kernel never trips. */
	p.consecutive_failures = 0;
	breaker_init(&b, &p, now);
	breaker_verdict(&b, &v);
	assert_int_equal(v.trip_after, 0);

	/* disabled and forced_open: fixed verdicts, nothing counted. */
	p.mode = MODE_FORCED_OPEN;
	breaker_init(&b, &p, now);
	breaker_verdict(&b, &v);
	assert_int_equal(v.action, KB_ACT_BLOCK);
	assert_int_equal(v.trip_after, 0);
	assert_int_equal(v.fail_mask, 0);
}

/* Which verdicts ask the kernel for every outcome in order: only where a rule of the agent's decides. */
static void test_verdict_events(void **state)
{
	static const struct {
		const char *name;
		uint32_t rate, slow_rate, failures;
		bool half_open;
		uint32_t want;
	} cases[] = {
		{ "consecutive only: the kernel's", 0, 0, POLICY_FAIL_DEFAULT, false, 0 },
		{ "failure rate", 50, 0, POLICY_FAIL_DEFAULT, false, 1 },
		{ "slow calls", 0, 50, POLICY_FAIL_DEFAULT, false, 1 },
		{ "resets among failures: the kernel's", 0, 0, POLICY_FAIL_DEFAULT | POLICY_FAIL_RESET,
		  false, 0 },
		{ "resets and a rate", 50, 0, POLICY_FAIL_DEFAULT | POLICY_FAIL_RESET, false, 1 },
		{ "half_open probes", 0, 0, POLICY_FAIL_DEFAULT, true, 1 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
		uint64_t now = T0;
		struct kb_verdict v;
		struct breaker b;

		p.failure_rate_threshold = cases[i].rate;
		p.slow_call_rate_threshold = cases[i].slow_rate;
		p.failures = cases[i].failures;
		breaker_init(&b, &p, now);
		if (cases[i].half_open)
			to_half_open(&b, &now);
		breaker_verdict(&b, &v);
		check_eq(cases[i].name, v.events, cases[i].want);
	}
}

/* Counter-fed outcomes fill the window for the rate gauge, and never trip or count in a row. */
static void test_count_feeds_window(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
	uint64_t now = T0;
	struct breaker b;

	p.window_size = 10;
	breaker_init(&b, &p, now);
	breaker_count(&b, KB_RES_REFUSED, 5, now);
	breaker_count(&b, KB_RES_SUCCESS, 15, now);
	breaker_count(&b, KB_RES_CANCELLED, 7, now);	/* neither success nor failure */
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.consecutive_failures, 0);
	assert_int_equal(breaker_window_calls(&b, now), 10);	/* a count window holds 10 */
	breaker_count(&b, KB_RES_TIMEOUT, 4, now);
	assert_int_equal(b.state, BS_CLOSED);
	assert_true(breaker_failure_rate(&b, now) == 0.4);
	/* The kernel's consecutive count is taken as it stands, while closed only. */
	breaker_adopt_count(&b, 2);
	assert_int_equal(b.consecutive_failures, 2);
	/* Not closed: nothing to feed. */
	breaker_init(&b, &p, now);
	to_half_open(&b, &now);
	breaker_count(&b, KB_RES_REFUSED, 3, now);
	assert_int_equal(b.state, BS_HALF_OPEN);
	breaker_adopt_count(&b, 7);
	assert_int_equal(b.consecutive_failures, 0);
}

/*
 * Resets the kernel counted in a row already (its count adopted): failures
 * in the window alone, only while closed and where `reset` is a failure.
 */
static void test_count_resets(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
	uint64_t now = T0, calls;
	struct kb_verdict v;
	struct breaker b;

	p.window_size = 10;
	breaker_init(&b, &p, now);
	breaker_count_resets(&b, 4, now);
	assert_int_equal(breaker_window_calls(&b, now), 0);	/* not failures here */
	breaker_verdict(&b, &v);
	assert_int_equal(v.fail_mask & KB_RESETS_FAIL, 0);

	p.failures |= POLICY_FAIL_RESET;
	p.failure_rate_threshold = 50;
	p.minimum_calls = 100;
	breaker_init(&b, &p, now);
	breaker_count_resets(&b, 4, now);
	breaker_count(&b, KB_RES_SUCCESS, 4, now);
	assert_int_equal(breaker_window_calls(&b, now), 8);
	assert_true(breaker_failure_rate(&b, now) == 0.5);
	assert_int_equal(b.consecutive_failures, 0);	/* the kernel's to count */
	assert_int_equal(b.state, BS_CLOSED);
	breaker_count_resets(&b, 25, now);
	assert_int_equal(breaker_window_calls(&b, now), 10);	/* a count window holds 10 */
	assert_true(breaker_failure_rate(&b, now) == 1.0);
	breaker_verdict(&b, &v);
	assert_int_equal(v.fail_mask & KB_RESETS_FAIL, KB_RESETS_FAIL);
	assert_int_equal(v.wake_mask & KB_RESETS_FAIL, 0);	/* wake bits are results' */

	p.window_type = WINDOW_TIME;
	breaker_init(&b, &p, now);
	breaker_count_resets(&b, 25, now);
	assert_int_equal(breaker_window_calls(&b, now), 25);
	/* Not closed, or not running: nothing to feed. */
	to_half_open(&b, &now);
	calls = breaker_window_calls(&b, now);
	breaker_count_resets(&b, 3, now);
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(breaker_window_calls(&b, now), calls);
	p.mode = MODE_DISABLED;
	breaker_init(&b, &p, now);
	breaker_count_resets(&b, 3, now);
	assert_int_equal(breaker_window_calls(&b, now), 0);
}

/* A kernel trip is adopted as it stands: closed or half_open opens at its time. */
static void test_adopt_trip(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	feed("adopt", &b, "R", &now);
	/* Our breaker counted one failure; the kernel counted three (a raced success). */
	assert_true(breaker_adopt_trip(&b, now + 10));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(b.cause, BC_CONSECUTIVE);
	assert_int_equal(b.state_since_ns, now + 10);
	assert_int_equal(b.open_until_ns, now + 10 + 5 * SEC);
	/* Open already: nothing to adopt. */
	assert_false(breaker_adopt_trip(&b, now + 20));

	breaker_init(&b, &p, now);
	uint64_t entered = to_half_open(&b, &now);

	assert_true(breaker_adopt_trip(&b, entered + 1));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(b.cause, BC_PROBE);

	/* A trip stamped before the state began opens from the state's start. */
	p.mode = MODE_OBSERVE;
	breaker_init(&b, &p, now);
	assert_true(breaker_adopt_trip(&b, now - 5));
	assert_int_equal(b.state_since_ns, now);
	p.mode = MODE_DISABLED;
	breaker_init(&b, &p, now);
	assert_false(breaker_adopt_trip(&b, now));
}

/* --- reload --------------------------------------------------------------- */

static void test_reconfigure_keeps_state(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 3, 5 * SEC, 2), q;
	uint64_t now = T0;
	struct breaker b;

	/* closed: the consecutive count survives; a lower threshold applies at the next failure. */
	breaker_init(&b, &p, now);
	feed("reload", &b, "RR", &now);
	q = p;
	q.consecutive_failures = 2;
	/* The kernel trips on the threshold too: the verdict carries it, so it changes. */
	assert_true(breaker_reconfigure(&b, &q, now));
	assert_int_equal(b.consecutive_failures, 2);
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(feed("reload", &b, "R", &now), 0);

	/* open: state, deadline and transitions kept; enforce -> observe changes the verdict. */
	uint64_t deadline = breaker_deadline(&b);

	q.mode = MODE_OBSERVE;
	q.open_duration_ns = 60 * SEC;
	assert_true(breaker_reconfigure(&b, &q, now));
	assert_int_equal(b.state, BS_OPEN);
	assert_int_equal(breaker_deadline(&b), deadline);
	assert_int_equal(breaker_public_state(&b), BS_METRICS_ONLY);
	assert_int_equal(b.transitions[BS_CLOSED][BS_OPEN], 1);
	/* Nothing the verdict shows changed: false. */
	assert_false(breaker_reconfigure(&b, &q, now));

	/* half_open: a new max_half_open_duration counts from the entry. */
	assert_true(breaker_tick(&b, deadline));
	q.max_half_open_duration_ns = 2 * SEC;
	assert_false(breaker_reconfigure(&b, &q, deadline + SEC));
	assert_int_equal(breaker_deadline(&b), deadline + 2 * SEC);
	q.max_half_open_duration_ns = 0;
	assert_false(breaker_reconfigure(&b, &q, deadline + SEC));
	assert_int_equal(breaker_deadline(&b), 0);
	/* New permits: the verdict changes, the agent rewrites it. */
	q.half_open_permits = 4;
	assert_true(breaker_reconfigure(&b, &q, deadline + SEC));
	check_verdict("permits", &b, KB_ACT_PROBE, 4);
}

static void test_reconfigure_window(void **state)
{
	struct breaker_policy p = rate_policy(50, WINDOW_COUNT, 10, 5), q;
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	feed("window", &b, "SSRS", &now);
	/* Same window, other threshold: counts kept. */
	q = p;
	q.failure_rate_threshold = 20;
	breaker_reconfigure(&b, &q, now);
	assert_int_equal(breaker_window_calls(&b, now), 4);
	/* Another size: the window restarts. */
	q.window_size = 20;
	breaker_reconfigure(&b, &q, now);
	assert_int_equal(breaker_window_calls(&b, now), 0);
	feed("window", &b, "SSRS", &now);
	/* Another type: restarts too. */
	q.window_type = WINDOW_TIME;
	q.window_size = 10;
	breaker_reconfigure(&b, &q, now);
	assert_int_equal(breaker_window_calls(&b, now), 0);
	assert_int_equal(b.window.type, WINDOW_TIME);
}

static void test_reconfigure_modes(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 1), q;
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	trip(&b, &now);
	/* Into disabled: the machine stops, reset to closed (counted), verdict ALLOW. */
	q = p;
	q.mode = MODE_DISABLED;
	assert_true(breaker_reconfigure(&b, &q, now + SEC));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.transitions[BS_OPEN][BS_CLOSED], 1);
	assert_int_equal(breaker_public_state(&b), BS_DISABLED);
	assert_int_equal(breaker_deadline(&b), 0);
	/* disabled -> forced_open: verdict BLOCK, no transition. */
	q.mode = MODE_FORCED_OPEN;
	assert_true(breaker_reconfigure(&b, &q, now + 2 * SEC));
	check_verdict("forced", &b, KB_ACT_BLOCK, 0);
	assert_int_equal(b.transitions[BS_OPEN][BS_CLOSED], 1);
	assert_int_equal(b.transitions[BS_CLOSED][BS_CLOSED], 0);
	/* Back to enforce: closed and fresh at the reload instant. */
	q.mode = MODE_ENFORCE;
	assert_true(breaker_reconfigure(&b, &q, now + 3 * SEC));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.state_since_ns, now + 3 * SEC);
	/* Connects begun before the reload are stale. */
	assert_false(breaker_record(&b, KB_RES_REFUSED, now + 3 * SEC - 1, now + 4 * SEC));
	assert_true(breaker_record(&b, KB_RES_REFUSED, now + 3 * SEC, now + 4 * SEC));
}

/* enforce closed and disabled give the same verdict (ALLOW) but not the same public state. */
static void test_reconfigure_public_state_only(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 0, 1), q;
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	q = p;
	q.mode = MODE_DISABLED;
	assert_true(breaker_reconfigure(&b, &q, now));
	assert_true(breaker_reconfigure(&b, &p, now));
	/* A hand-built open_duration of 0 opens for 1 ns. */
	trip(&b, &now);
	assert_int_equal(breaker_deadline(&b), now + 1);
}

static void test_reconfigure_ramp(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 1), q;
	struct kb_verdict v;
	struct breaker b;
	uint64_t closed;

	p.recovery_ramp_ns = 19 * SEC;
	uint64_t entered = init_half_open(&b, &p);

	closed = entered + 1;
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, closed));
	/* Longer ramp, same start: step 4 of a 38 s ramp at +9.5 s... admit falls back. */
	assert_true(breaker_tick(&b, closed + 9 * SEC));
	q = p;
	q.recovery_ramp_ns = 38 * SEC;
	assert_true(breaker_reconfigure(&b, &q, closed + 9 * SEC));
	breaker_verdict(&b, &v);
	assert_int_equal(v.admit, KB_ADMIT_ONE * 5ULL / 20);
	assert_int_equal(breaker_deadline(&b), closed + 10 * SEC);
	/* Shorter than what has elapsed: the ramp ends. */
	q.recovery_ramp_ns = 5 * SEC;
	assert_true(breaker_reconfigure(&b, &q, closed + 9 * SEC));
	assert_false(breaker_ramping(&b));
	/* Ramp turned off mid-way ends it at once. */
	entered = init_half_open(&b, &p);
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, entered + 1));
	q.recovery_ramp_ns = 0;
	assert_true(breaker_reconfigure(&b, &q, entered + 2));
	check_verdict("ramp off", &b, KB_ACT_ALLOW, 0);
}

static void test_cause_names(void **state)
{
	static const struct {
		enum breaker_cause c;
		const char *want;
	} cases[] = {
		{ BC_NONE, "" },
		{ BC_CONSECUTIVE, "consecutive_failures" },
		{ BC_FAILURE_RATE, "failure_rate" },
		{ BC_SLOW_CALL_RATE, "slow_call_rate" },
		{ BC_PROBE, "probe_failed" },
		{ BC_HALF_OPEN_TIMEOUT, "half_open_timeout" },
		{ (enum breaker_cause)99, "unknown" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		check_str("cause", breaker_cause_name(cases[i].c), cases[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_closed_sequences),
		cmocka_unit_test(test_closed_trip_returns_true_once),
		cmocka_unit_test(test_closed_tick_noop),
		cmocka_unit_test(test_open_verdict_and_deadline),
		cmocka_unit_test(test_open_late_tick),
		cmocka_unit_test(test_open_ignores_outcomes),
		cmocka_unit_test(test_half_open_permits_close),
		cmocka_unit_test(test_half_open_close_resets_count),
		cmocka_unit_test(test_half_open_failure_reopens),
		cmocka_unit_test(test_half_open_stale_and_cancelled),
		cmocka_unit_test(test_half_open_stale_flood),
		cmocka_unit_test(test_half_open_sequences),
		cmocka_unit_test(test_cycle_enforce),
		cmocka_unit_test(test_cycle_observe),
		cmocka_unit_test(test_observe_every_state),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_result_names_and_failure),
		cmocka_unit_test(test_unknown_result_ignored),
		cmocka_unit_test(test_consecutive_disabled),
		cmocka_unit_test(test_failure_rate_count),
		cmocka_unit_test(test_rates_exposed),
		cmocka_unit_test(test_failure_rate_time),
		cmocka_unit_test(test_failure_rate_time_expiry),
		cmocka_unit_test(test_slow_call_rate),
		cmocka_unit_test(test_combined_policies),
		cmocka_unit_test(test_failures_list),
		cmocka_unit_test(test_resets),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_jitter_deterministic),
		cmocka_unit_test(test_half_open_successes),
		cmocka_unit_test(test_half_open_timeout),
		cmocka_unit_test(test_modes_stopped),
		cmocka_unit_test(test_recovery_ramp),
		cmocka_unit_test(test_recovery_ramp_jumps_and_trips),
		cmocka_unit_test(test_group_may_open),
		cmocka_unit_test(test_guarded_record),
		cmocka_unit_test(test_reconfigure_keeps_state),
		cmocka_unit_test(test_verdict_kernel_trip),
		cmocka_unit_test(test_adopt_trip),
		cmocka_unit_test(test_verdict_events),
		cmocka_unit_test(test_count_feeds_window),
		cmocka_unit_test(test_count_resets),
		cmocka_unit_test(test_reconfigure_window),
		cmocka_unit_test(test_reconfigure_modes),
		cmocka_unit_test(test_reconfigure_ramp),
		cmocka_unit_test(test_reconfigure_public_state_only),
		cmocka_unit_test(test_cause_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
