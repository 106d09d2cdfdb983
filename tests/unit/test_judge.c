// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The rules the kernel applies on its own (include/kb_judge.h), compiled
 * here from the very header the BPF objects include: the consecutive-
 * failure trip, resets among the failures, gens starting the kernel's
 * state afresh, and permits. Every test of these runs twice: with
 * atomics, as kernels from 5.12 run it, and under kb_trip.lock, as older
 * ones do. Last, which records of kb_conn the agent may delete (kb_abi.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>
#include <linux/types.h>
#include "kb_abi.h"
#include "kb_judge.h"
#include "kb_test.h"

#define FAILS ((1U << KB_RES_REFUSED) | (1U << KB_RES_TIMEOUT) | (1U << KB_RES_UNREACHABLE))

/* Which build of the rule the running test exercises. */
static bool locked;

static int use_atomics(void **state)
{
	(void)state;
	locked = false;
	return 0;
}

static int use_lock(void **state)
{
	(void)state;
	locked = true;
	return 0;
}

static struct kb_verdict verdict(__u32 action, __u32 gen, __u32 trip_after, __u32 base)
{
	struct kb_verdict v = {
		.action = action, .gen = gen, .trip_after = trip_after,
		.fails_base = base, .fail_mask = FAILS, .since_ns = 100,
	};

	return v;
}

/* A string of outcomes: S success, R refused, T timeout, C cancelled, E error (X: judge_all). */
static __u32 result_of(char c)
{
	switch (c) {
	case 'S': return KB_RES_SUCCESS;
	case 'R': return KB_RES_REFUSED;
	case 'T': return KB_RES_TIMEOUT;
	case 'C': return KB_RES_CANCELLED;
	default: return KB_RES_ERROR;
	}
}

/*
 * Judge each outcome of the string in turn, the kth at 1000 + k, connects
 * begun at 200 (X: a reset). Returns the index of the one that tripped,
 * -1 if none did; fails on a second trip.
 */
static int judge_all(const struct kb_verdict *v, struct kb_trip *t, const char *name,
		     const char *outcomes)
{
	int tripped_at = -1;

	for (int k = 0; outcomes[k]; k++) {
		__u32 got = outcomes[k] == 'X' ? kb_judge_reset(v, t, 1000 + k, locked) :
			    kb_judge(v, t, result_of(outcomes[k]), 200, 1000 + k, locked);

		if (got != KB_EV_TRIPPED)
			continue;
		if (tripped_at >= 0)
			fail_msg("%s: tripped twice", name);
		tripped_at = k;
	}
	return tripped_at;
}

static void test_judge_table(void **state)
{
	static const struct {
		const char *name;
		__u32 action, trip_after, base;
		const char *outcomes;
		int trips_at;		/* index of the outcome that trips; -1: none */
		__u32 fails_after;	/* failures in a row at the end (kb_fails_in_row) */
	} cases[] = {
		{ "three refused trip at the third", KB_ACT_ALLOW, 3, 0, "RRR", 2, 3 },
		{ "a success restarts the count", KB_ACT_ALLOW, 3, 0, "RRSRR", -1, 2 },
		{ "the agent's base counts", KB_ACT_ALLOW, 3, 2, "R", 0, 3 },
		{ "a success voids the agent's base", KB_ACT_ALLOW, 5, 4, "SR", -1, 1 },
		{ "then trip_after more in a row trip", KB_ACT_ALLOW, 3, 2, "SRRR", 3, 3 },
		{ "failures, a success, failures: the last run counts", KB_ACT_ALLOW, 3, 1, "RSRR", -1, 2 },
		{ "unlisted results are not failures", KB_ACT_ALLOW, 2, 0, "CECE", -1, 0 },
		{ "cancelled keeps the count", KB_ACT_ALLOW, 2, 0, "RCR", 2, 2 },
		{ "trip_after 0 never trips", KB_ACT_ALLOW, 0, 0, "RRRRRR", -1, 6 },
		{ "trips once, later failures do not", KB_ACT_ALLOW, 2, 0, "RRRR", 1, 4 },
		{ "a ramp may trip", KB_ACT_RAMP, 1, 0, "T", 0, 1 },
		{ "a probe may trip", KB_ACT_PROBE, 1, 0, "SR", 1, 1 },
		{ "blocked already: no trip", KB_ACT_BLOCK, 1, 0, "RR", -1, 2 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kb_verdict v = verdict(cases[i].action, 7, cases[i].trip_after, cases[i].base);
		struct kb_trip t = { 0 };
		int tripped_at = judge_all(&v, &t, cases[i].name, cases[i].outcomes);

		check_int(cases[i].name, tripped_at, cases[i].trips_at);
		check_eq(cases[i].name, kb_fails_in_row(&v, t.fails), cases[i].fails_after);
		check_eq(cases[i].name, t.tripped, tripped_at >= 0 ? 7 : 0);
		if (tripped_at >= 0) {
			check_eq(cases[i].name, t.tripped_ns, 1000 + tripped_at);
			check_eq(cases[i].name, kb_effective_action(&v, &t), KB_ACT_BLOCK);
		} else {
			check_eq(cases[i].name, kb_effective_action(&v, &t), cases[i].action);
		}
	}
}

/*
 * Resets (X) among connect outcomes: failures in the same count where the
 * verdict says so (KB_RESETS_FAIL), and only while closed (allow, ramp).
 * A reset ends its connection now, whenever it began: it has no start to judge.
 */
static void test_judge_resets(void **state)
{
	static const struct {
		const char *name;
		__u32 action, trip_after, base;
		bool resets_fail;
		const char *outcomes;
		int trips_at;
		__u32 fails_after;
	} cases[] = {
		{ "two resets trip at the second", KB_ACT_ALLOW, 2, 0, true, "XX", 1, 2 },
		{ "resets and refusals count together", KB_ACT_ALLOW, 3, 0, true, "RXR", 2, 3 },
		{ "the agent's base counts", KB_ACT_ALLOW, 3, 2, true, "X", 0, 3 },
		{ "a success between restarts the count", KB_ACT_ALLOW, 2, 0, true, "XSX", -1, 1 },
		{ "a ramp may trip", KB_ACT_RAMP, 1, 0, true, "X", 0, 1 },
		{ "not failures: no count", KB_ACT_ALLOW, 1, 0, false, "XXX", -1, 0 },
		{ "nor with refusals", KB_ACT_ALLOW, 2, 0, false, "RXXX", -1, 1 },
		{ "half_open: a probe's outcome decides, not a reset", KB_ACT_PROBE, 1, 0, true, "X", -1, 0 },
		{ "blocked: no count", KB_ACT_BLOCK, 1, 0, true, "XX", -1, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kb_verdict v = verdict(cases[i].action, 7, cases[i].trip_after, cases[i].base);
		struct kb_trip t = { 0 };
		int tripped_at;

		if (cases[i].resets_fail)
			v.fail_mask |= KB_RESETS_FAIL;
		tripped_at = judge_all(&v, &t, cases[i].name, cases[i].outcomes);
		check_int(cases[i].name, tripped_at, cases[i].trips_at);
		check_eq(cases[i].name, kb_fails_in_row(&v, t.fails), cases[i].fails_after);
		check_eq(cases[i].name, t.tripped, tripped_at >= 0 ? 7 : 0);
	}
	/* gen 0 is "never written": nothing counts. */
	{
		struct kb_verdict v = verdict(KB_ACT_ALLOW, 0, 1, 0);
		struct kb_trip t = { 0 };

		v.fail_mask |= KB_RESETS_FAIL;
		assert_int_equal(kb_judge_reset(&v, &t, 1000, locked), 0);
		assert_int_equal(t.fails, 0);
	}
}

/* Outcomes of connects begun before the verdict's state say nothing. */
static void test_judge_since(void **state)
{
	struct kb_verdict v = verdict(KB_ACT_ALLOW, 3, 1, 0);
	struct kb_trip t = { 0 };

	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 99, 1000, locked), 0);
	assert_int_equal(t.fails, 0);
	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 100, 1000, locked), KB_EV_TRIPPED);
	/* gen 0 is "never written": the kernel does nothing for it. */
	v.gen = 0;
	t = (struct kb_trip){ 0 };
	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 200, 1000, locked), 0);
	assert_int_equal(kb_effective_action(&v, &t), KB_ACT_ALLOW);
}

/*
 * A new verdict (gen) starts the kernel's state afresh without a write
 * from user space: an old trip no longer blocks, old failures no longer
 * count, old permits come back.
 */
static void test_gen_restarts(void **state)
{
	struct kb_verdict v = verdict(KB_ACT_ALLOW, 1, 2, 0);
	struct kb_trip t = { 0 };

	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 200, 1, locked), 0);
	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 200, 2, locked), KB_EV_TRIPPED);
	assert_int_equal(kb_effective_action(&v, &t), KB_ACT_BLOCK);

	v = verdict(KB_ACT_ALLOW, 2, 2, 0);
	assert_int_equal(kb_effective_action(&v, &t), KB_ACT_ALLOW);
	assert_int_equal(kb_word_count(t.fails, 2), 0);
	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 200, 3, locked), 0);
	assert_int_equal(kb_word_count(t.fails, 2), 1);
	assert_int_equal(kb_judge(&v, &t, KB_RES_REFUSED, 200, 4, locked), KB_EV_TRIPPED);
	assert_int_equal(t.tripped, 2);
	assert_int_equal(t.tripped_ns, 4);

	v = verdict(KB_ACT_PROBE, 3, 1, 0);
	v.permits = 2;
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 1);
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 1);
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 0);
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 0);
	assert_int_equal(kb_word_count(t.probes, 3), 2);	/* refusals leave it alone */
	assert_int_equal(kb_take_permit(&t, 4, 1, locked), 1);
	assert_int_equal(kb_take_permit(&t, 4, 1, locked), 0);
}

/*
 * A permit taken by a connect whose SYN never left shows as unsent, and
 * only in its gen and under a probe verdict; a SYN that leaves spends one.
 */
static void test_permits_unsent(void **state)
{
	struct kb_verdict v = verdict(KB_ACT_PROBE, 3, 1, 0), allow = verdict(KB_ACT_ALLOW, 3, 1, 0);
	struct kb_trip t = { 0 };

	v.permits = 2;
	assert_int_equal(kb_permits_unsent(&v, &t), 0);
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 1);
	assert_int_equal(kb_permits_unsent(&v, &t), 1);
	kb_probe_sent(&v, &t, locked);
	assert_int_equal(kb_permits_unsent(&v, &t), 0);
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 1);
	assert_int_equal(kb_take_permit(&t, 3, 2, locked), 0);
	assert_int_equal(kb_permits_unsent(&v, &t), 1);
	/* Refusals past the permits are no probes. */
	assert_int_equal(kb_word_count(t.probes, 3), 2);
	/* Not a probe verdict: nothing is sent, nothing is owed. */
	kb_probe_sent(&allow, &t, locked);
	assert_int_equal(kb_word_count(t.sent, 3), 1);
	assert_int_equal(kb_permits_unsent(&allow, &t), 0);
	/* A new gen (the agent gave them back) starts both counts afresh. */
	v.gen = 4;
	v.permits = 1;
	assert_int_equal(kb_permits_unsent(&v, &t), 0);
	assert_int_equal(kb_take_permit(&t, 4, 1, locked), 1);
	kb_probe_sent(&v, &t, locked);
	assert_int_equal(kb_word_count(t.sent, 4), 1);
	assert_int_equal(kb_permits_unsent(&v, &t), 0);
	/* More SYNs than permits (observe mode lets every connect through): none owed. */
	kb_probe_sent(&v, &t, locked);
	assert_int_equal(kb_permits_unsent(&v, &t), 0);
}

#define RACERS 4
#define TRIES 20000

static struct kb_trip race_trip;
static struct kb_verdict race_verdict;

/* Run fn on RACERS threads at once over a zeroed race_trip; the sum of what they counted. */
static unsigned race(void *(*fn)(void *))
{
	unsigned counts[RACERS] = { 0 }, total = 0;
	pthread_t th[RACERS];

	memset(&race_trip, 0, sizeof(race_trip));
	for (int i = 0; i < RACERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, fn, &counts[i]), 0);
	for (int i = 0; i < RACERS; i++) {
		pthread_join(th[i], NULL);
		total += counts[i];
	}
	return total;
}

static void *take_many(void *arg)
{
	unsigned *taken = arg;

	for (int i = 0; i < TRIES; i++)
		*taken += kb_take_permit(&race_trip, 9, 1000, locked);
	return NULL;
}

/* Exactly `permits` callers pass however many threads race for them. */
static void test_permits_race(void **state)
{
	assert_int_equal(race(take_many), 1000);
}

static void *fail_many(void *arg)
{
	unsigned *trips = arg;

	for (int i = 0; i < TRIES; i++)
		*trips += kb_judge(&race_verdict, &race_trip, KB_RES_REFUSED, 200, 1000, locked) ==
			  KB_EV_TRIPPED;
	return NULL;
}

/* Failures racing on every thread: each one counted, and one trip. */
static void test_trip_race(void **state)
{
	race_verdict = verdict(KB_ACT_ALLOW, 5, TRIES, 0);
	assert_int_equal(race(fail_many), 1);
	assert_int_equal(kb_word_count(race_trip.fails, 5), RACERS * TRIES);
	assert_int_equal(race_trip.tripped, 5);
}

/* Only a named record that never went on to its SYN, and only once stale. */
static void test_conn_stale(void **state)
{
	const __u64 t0 = 5000000000ULL;
	struct kb_sk named = { .syn_ns = t0, .dst_id = 7, .retrans = KB_CONN_NAMED };
	struct kb_sk sent = { .syn_ns = t0, .dst_id = 7, .retrans = 0 };

	(void)state;
	assert_false(kb_conn_stale(&named, t0 + KB_CONN_STALE_NS - 1));
	assert_true(kb_conn_stale(&named, t0 + KB_CONN_STALE_NS));
	/* A connect under way, or its retransmits counted: never, however old. */
	assert_false(kb_conn_stale(&sent, t0 + 100 * KB_CONN_STALE_NS));
	sent.retrans = 3;
	assert_false(kb_conn_stale(&sent, t0 + 100 * KB_CONN_STALE_NS));
	/* Filed after the agent read its clock: not old, not wrapped round. */
	assert_false(kb_conn_stale(&named, t0 - 1));
	assert_false(kb_conn_stale(&named, t0));
}

#define BOTH(t) cmocka_unit_test_setup(t, use_atomics), cmocka_unit_test_setup(t, use_lock)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_judge_table),
		BOTH(test_judge_since),
		BOTH(test_judge_resets),
		BOTH(test_gen_restarts),
		BOTH(test_permits_unsent),
		BOTH(test_permits_race),
		BOTH(test_trip_race),
		cmocka_unit_test(test_conn_stale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
