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

#include "breaker.h"

#define MS 1000000ULL
#define SEC 1000000000ULL
/* A start time far from 0, so "0 means unset" mistakes cannot pass by accident. */
#define T0 (1000 * SEC)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* cmocka 1.1 has no message variants: name the failing table case ourselves. */
#define check_eq(ctx, got, want)                                                   \
	do {                                                                       \
		uintmax_t got_ = (uintmax_t)(got), want_ = (uintmax_t)(want);      \
		if (got_ != want_)                                                 \
			fail_msg("%s: %s is %ju, want %ju", (ctx), #got, got_, want_); \
	} while (0)

#define check_int(ctx, got, want)                                                  \
	do {                                                                       \
		intmax_t got_ = (intmax_t)(got), want_ = (intmax_t)(want);         \
		if (got_ != want_)                                                 \
			fail_msg("%s: %s is %jd, want %jd", (ctx), #got, got_, want_); \
	} while (0)

#define check_str(ctx, got, want)                                                  \
	do {                                                                       \
		const char *got_ = (got), *want_ = (want);                         \
		if (strcmp(got_, want_) != 0)                                      \
			fail_msg("%s: %s is \"%s\", want \"%s\"", (ctx), #got, got_, want_); \
	} while (0)

static struct breaker_policy policy_of(enum breaker_mode mode, uint32_t failures,
				       uint64_t open_ns, uint32_t permits)
{
	struct breaker_policy p = {
		.mode = mode,
		.consecutive_failures = failures,
		.open_duration_ns = open_ns,
		.half_open_permits = permits,
	};
	return p;
}

/* Local, so this test links against breaker.c alone. */
static const char *mode_label(enum breaker_mode mode)
{
	return mode == MODE_OBSERVE ? "observe" : "enforce";
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
	check_eq(ctx, v.pad, 0);
	check_eq(ctx, v.admit, 0);
	check_eq(ctx, v.permits, permits);
	check_eq(ctx, v.observe, b->policy.mode == MODE_OBSERVE);
}

/* Every transition counter equals want[old][new]. */
static void check_transitions(const char *ctx, const struct breaker *b,
			      const uint64_t want[BS_MAX][BS_MAX])
{
	for (int from = 0; from < BS_MAX; from++) {
		for (int to = 0; to < BS_MAX; to++) {
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

/* --- init --------------------------------------------------------------- */

static void test_init(void **state)
{
	static const uint64_t none[BS_MAX][BS_MAX];
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
		uint64_t want_tr[BS_MAX][BS_MAX] = { { 0 } };
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
		uint64_t now = T0;
		struct breaker b;

		snprintf(name, sizeof(name), "permits %u", permits[i]);
		breaker_init(&b, &p, now);
		uint64_t entered = to_half_open(&b, &now);

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
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	uint64_t entered = to_half_open(&b, &now);

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
		uint64_t want_tr[BS_MAX][BS_MAX] = { { 0 } };
		uint64_t now = T0;
		struct breaker b;

		breaker_init(&b, &p, now);
		uint64_t entered = to_half_open(&b, &now);

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
		uint64_t now = T0;
		struct breaker b;

		breaker_init(&b, &p, now);
		uint64_t entered = to_half_open(&b, &now);
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
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	uint64_t entered = to_half_open(&b, &now);

	for (int n = 0; n < 100; n++) {
		assert_false(breaker_record(&b, KB_RES_SUCCESS, entered - 1 - n, entered + n));
		assert_false(breaker_record(&b, KB_RES_TIMEOUT, entered - 1 - n, entered + n));
	}
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(b.probe_successes, 0);
	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered + 200, entered + 300));
	assert_int_equal(b.state, BS_CLOSED);
}

/*
 * A connect begun before the breaker closed (a SYN retrying across the whole
 * open period) must not re-trip the recovered breaker, even at threshold 1.
 */
static void test_closed_ignores_outcomes_begun_before(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 1);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	uint64_t entered = to_half_open(&b, &now);

	assert_true(breaker_record(&b, KB_RES_SUCCESS, entered, entered + MS));
	assert_int_equal(b.state, BS_CLOSED);
	assert_false(breaker_record(&b, KB_RES_TIMEOUT, T0 - 1, entered + 127 * SEC));
	assert_false(breaker_record(&b, KB_RES_REFUSED, entered + MS - 1, entered + 128 * SEC));
	assert_int_equal(b.state, BS_CLOSED);
	assert_int_equal(b.consecutive_failures, 0);
	/* One begun at the closing instant or later counts. */
	assert_true(breaker_record(&b, KB_RES_REFUSED, entered + MS, entered + 129 * SEC));
	assert_int_equal(b.state, BS_OPEN);
}

/*
 * Ticking half_open does nothing: it has no timer of its own, only probe
 * outcomes leave it. (If half_open gains a timeout for probes that never
 * report, this is the test to change.)
 */
static void test_half_open_tick_noop(void **state)
{
	struct breaker_policy p = policy_of(MODE_ENFORCE, 1, 5 * SEC, 2);
	uint64_t now = T0;
	struct breaker b;

	breaker_init(&b, &p, now);
	uint64_t entered = to_half_open(&b, &now);

	assert_false(breaker_tick(&b, entered));
	assert_false(breaker_tick(&b, entered + 5 * SEC));
	assert_false(breaker_tick(&b, entered + 3600 * SEC));
	assert_int_equal(b.state, BS_HALF_OPEN);
	assert_int_equal(b.state_since_ns, entered);
	assert_int_equal(breaker_deadline(&b), 0);
}

/* --- full cycle, enforce and observe ------------------------------------ */

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

/* Run the cycle in `mode`, asserting after every step; the final breaker goes to *out. */
static void run_cycle(enum breaker_mode mode, struct breaker *out)
{
	struct breaker_policy p = policy_of(mode, 3, 5 * SEC, 2);
	uint64_t want_tr[BS_MAX][BS_MAX] = { { 0 } };
	struct breaker b;

	breaker_init(&b, &p, T0);
	for (size_t i = 0; i < ARRAY_SIZE(cycle); i++) {
		const struct step *s = &cycle[i];
		enum breaker_state before = b.state;
		char name[64];
		bool changed;

		snprintf(name, sizeof(name), "%s step %zu", mode_label(mode), i);
		if (s->op == OP_RECORD)
			changed = breaker_record(&b, s->res, s->start_ns, s->now);
		else
			changed = breaker_tick(&b, s->now);

		check_eq(name, changed, s->want_changed);
		check_eq(name, b.state, s->want_state);
		check_eq(name, breaker_deadline(&b), s->want_deadline);
		if (changed) {
			want_tr[before][s->want_state]++;
			check_eq(name, b.state_since_ns, s->now);
		}
		check_transitions(name, &b, want_tr);

		/* Observe mode gets the same verdict with observe set: the hooks allow, counting would_block. */
		if (mode == MODE_OBSERVE)
			check_eq(name, breaker_public_state(&b), BS_METRICS_ONLY);
		else
			check_eq(name, breaker_public_state(&b), s->want_state);
		{
			if (s->want_state == BS_OPEN)
				check_verdict(name, &b, KB_ACT_BLOCK, 0);
			else if (s->want_state == BS_HALF_OPEN)
				check_verdict(name, &b, KB_ACT_PROBE, 2);
			else
				check_verdict(name, &b, KB_ACT_ALLOW, 0);
		}
	}

	/* The totals, spelt out. */
	uint64_t totals[BS_MAX][BS_MAX] = { { 0 } };

	totals[BS_CLOSED][BS_OPEN] = 3;
	totals[BS_OPEN][BS_HALF_OPEN] = 3;
	totals[BS_HALF_OPEN][BS_CLOSED] = 2;
	totals[BS_HALF_OPEN][BS_OPEN] = 1;
	check_transitions(mode_label(mode), &b, totals);
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
	/* The exported state never enters the machine's counters. */
	for (int s = 0; s < BS_MAX; s++) {
		assert_int_equal(b.transitions[s][BS_METRICS_ONLY], 0);
		assert_int_equal(b.transitions[BS_METRICS_ONLY][s], 0);
	}
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
		cmocka_unit_test(test_half_open_tick_noop),
		cmocka_unit_test(test_closed_ignores_outcomes_begun_before),
		cmocka_unit_test(test_cycle_enforce),
		cmocka_unit_test(test_cycle_observe),
		cmocka_unit_test(test_observe_every_state),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_result_names_and_failure),
		cmocka_unit_test(test_unknown_result_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
