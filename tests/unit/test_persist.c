// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * persist.c: a breaker saved by one agent is the same breaker, field by
 * field and in what it does next, when the next agent reads it back; a
 * record of another version or with a value out of range is refused.
 */
#include <errno.h>
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
#include "persist.h"

#define T0 (1000 * SEC)

/*
 * A breaker with its fields away from their zero values: opened twice,
 * closed and ramping; with `reopen`, then open again with its backoff
 * streak after a failed probe.
 */
static void busy_breaker(struct persist_state *st, enum window_type type, bool reopen)
{
	struct breaker_policy p;
	struct breaker *b = &st->br;
	uint64_t now = T0;

	config_policy_defaults(&p);
	p.consecutive_failures = 3;
	p.failure_rate_threshold = 50;
	p.window_type = type;
	p.window_size = type == WINDOW_COUNT ? 100 : 120;
	p.minimum_calls = 4;
	p.slow_call_duration_ns = 50 * MS;
	p.slow_call_rate_threshold = 80;
	p.open_duration_ns = 2 * SEC;
	p.max_open_duration_ns = 60 * SEC;
	p.jitter_percent = 10;
	p.half_open_permits = 2;
	p.half_open_successes = 1;
	p.max_half_open_duration_ns = 30 * SEC;
	p.recovery_ramp_ns = 20 * SEC;
	memset(st, 0, sizeof(*st));
	breaker_init(b, &p, now);
	breaker_seed(b, 42);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3; i++, now += MS)
			breaker_record(b, KB_RES_REFUSED, now, now + MS);
		assert_int_equal(b->state, BS_OPEN);
		now = breaker_deadline(b);
		assert_true(breaker_tick(b, now));
		breaker_record(b, KB_RES_SUCCESS, now, now + MS);
		now += MS;
	}
	assert_int_equal(b->state, BS_CLOSED);
	for (int i = 0; i < 3; i++, now += SEC)
		breaker_record(b, i == 1 ? KB_RES_TIMEOUT : KB_RES_SUCCESS, now - i * 40 * MS, now);
	assert_true(breaker_ramping(b));
	breaker_record_guarded(b, KB_RES_REFUSED, now, now + MS, false);
	for (int i = 0; reopen && i < 3; i++, now += MS)
		breaker_record(b, KB_RES_REFUSED, now, now + MS);
	if (reopen) {
		now = breaker_deadline(b);
		assert_true(breaker_tick(b, now));
		assert_true(breaker_record(b, KB_RES_REFUSED, now, now + MS));
		assert_int_equal(b->state, BS_OPEN);
		assert_int_equal(b->open_streak, 2);
	}
	for (int r = 0; r < KB_RES_MAX; r++)
		st->lost_seen[r] = 1000 + r;
	st->resets_seen = 77;
}

static void check_round_trip(enum window_type type, bool reopen)
{
	struct persist_state st, back;
	struct persist_record rec;
	struct kb_verdict v1, v2;
	uint64_t now;

	busy_breaker(&st, type, reopen);
	persist_encode(&st, "db", "db.internal", 5432, 0, &rec);
	assert_int_equal(rec.version, PERSIST_VERSION);
	assert_true(persist_matches(&rec, "db", "db.internal", 5432, 0));
	assert_int_equal(persist_decode(&rec, &back), 0);
	/* Field by field: both started from zeroed memory, so padding compares too. */
	assert_memory_equal(&back, &st, sizeof(st));
	/* And what it does next: the same outcomes give the same states and verdicts. */
	now = st.br.state_since_ns + 3 * SEC;
	for (int i = 0; i < 40; i++, now += 500 * MS) {
		enum kb_result res = i % 5 ? KB_RES_REFUSED : KB_RES_SUCCESS;

		assert_int_equal(breaker_record(&st.br, res, now - MS, now),
				 breaker_record(&back.br, res, now - MS, now));
		assert_int_equal(breaker_tick(&st.br, now), breaker_tick(&back.br, now));
		breaker_verdict(&st.br, &v1);
		breaker_verdict(&back.br, &v2);
		assert_memory_equal(&v1, &v2, sizeof(v1));
		assert_true(breaker_failure_rate(&st.br, now) == breaker_failure_rate(&back.br, now));
	}
}

static void test_round_trip_count_window(void **state)
{
	check_round_trip(WINDOW_COUNT, false);
	check_round_trip(WINDOW_COUNT, true);
}

static void test_round_trip_time_window(void **state)
{
	check_round_trip(WINDOW_TIME, false);
	check_round_trip(WINDOW_TIME, true);
}

static void test_matches(void **state)
{
	struct persist_state st;
	struct persist_record rec;

	busy_breaker(&st, WINDOW_COUNT, false);
	persist_encode(&st, "db", "10.0.0.0/8", 0, 4026531840U, &rec);
	assert_true(persist_matches(&rec, "db", "10.0.0.0/8", 0, 4026531840U));
	assert_false(persist_matches(&rec, "db2", "10.0.0.0/8", 0, 4026531840U));
	assert_false(persist_matches(&rec, "db", "10.0.0.0/9", 0, 4026531840U));
	assert_false(persist_matches(&rec, "db", "10.0.0.0/8", 1, 4026531840U));
	/* Found by review: a destination whose netns: changed took the old namespace's breaker. */
	assert_false(persist_matches(&rec, "db", "10.0.0.0/8", 0, 4026531841U));
	assert_false(persist_matches(&rec, "db", "10.0.0.0/8", 0, 0));
}

/* Another version's record, or one whose size is not this version's. */
static void test_other_version(void **state)
{
	struct persist_state st, back;
	struct persist_record rec;

	busy_breaker(&st, WINDOW_COUNT, false);
	persist_encode(&st, "db", "h", 1, 0, &rec);
	rec.version = 1;
	assert_int_equal(persist_decode(&rec, &back), -EPROTO);
	rec.version = PERSIST_VERSION;
	rec.size -= 8;
	assert_int_equal(persist_decode(&rec, &back), -EPROTO);
}

/* Each value that breaker.c or window.c could never have made is refused. */
static void test_out_of_range(void **state)
{
	static const struct {
		const char *field;
		size_t offset, width;
		uint64_t value;
	} bad[] = {
#define F(f, v) { #f, offsetof(struct persist_breaker, f), sizeof(((struct persist_breaker *)0)->f), v }
		F(state, BS_METRICS_ONLY),
		F(state, 99),
		F(cause, BC_HALF_OPEN_TIMEOUT + 1),
		F(ramp_step, BREAKER_RAMP_STEPS),
		F(rng, 0),
		F(policy.mode, MODE_FORCED_OPEN + 1),
		F(policy.window_type, 2),
		F(window.type, 2),
		F(window.size, WINDOW_MAX_CALLS + 1),
		F(window.n, 101),
		F(window.pos, WINDOW_MAX_CALLS),
		F(window.n_buckets, WINDOW_MAX_BUCKETS + 1),
#undef F
	};
	struct persist_state st, back;
	struct persist_record rec, good;

	busy_breaker(&st, WINDOW_COUNT, false);
	persist_encode(&st, "db", "h", 1, 0, &good);
	assert_int_equal(persist_decode(&good, &back), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		rec = good;
		if (bad[i].width == 8)
			memcpy((char *)&rec.br + bad[i].offset, &bad[i].value, 8);
		else
			memcpy((char *)&rec.br + bad[i].offset, &(uint32_t){ bad[i].value }, 4);
		if (persist_decode(&rec, &back) != -EINVAL)
			fail_msg("%s = %ju was accepted", bad[i].field, (uintmax_t)bad[i].value);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_count_window),
		cmocka_unit_test(test_round_trip_time_window),
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_other_version),
		cmocka_unit_test(test_out_of_range),
	};

	return cmocka_run_group_tests_name("persist", tests, NULL, NULL);
}
