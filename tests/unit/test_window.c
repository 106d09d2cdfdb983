// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the sliding windows: the count ring and the time buckets,
 * with the instant each call enters and leaves asserted to the nanosecond.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"

#include "window.h"

#define T0 (1000 * SEC)

static void check_counts(const char *ctx, const struct window *w, uint64_t now, uint32_t calls,
			 uint32_t failures, uint32_t slow)
{
	struct window_counts c = window_counts(w, now);

	check_eq(ctx, c.calls, calls);
	check_eq(ctx, c.failures, failures);
	check_eq(ctx, c.slow, slow);
}

static void test_init_and_clamp(void **state)
{
	struct window w;

	memset(&w, 0x5a, sizeof(w));
	window_init(&w, WINDOW_COUNT, 5);
	check_eq("count", w.size, 5);
	check_counts("count empty", &w, T0, 0, 0, 0);
	window_init(&w, WINDOW_COUNT, WINDOW_MAX_CALLS + 1);
	check_eq("count clamp", w.size, WINDOW_MAX_CALLS);
	window_init(&w, WINDOW_TIME, 10);
	check_eq("time 10", w.n_buckets, 10);
	check_eq("time 10", w.bucket_ns, SEC);
	window_init(&w, WINDOW_TIME, 120);
	check_eq("time 120", w.n_buckets, WINDOW_MAX_BUCKETS);
	check_eq("time 120", w.bucket_ns, 2 * SEC);
	window_init(&w, WINDOW_TIME, WINDOW_MAX_SECONDS + 5);
	check_eq("time clamp", w.size, WINDOW_MAX_SECONDS);
	check_eq("time clamp", w.bucket_ns, 60 * SEC);

	/* Size 0 holds nothing, of either type. */
	window_init(&w, WINDOW_COUNT, 0);
	window_add(&w, true, true, T0);
	check_counts("count 0", &w, T0, 0, 0, 0);
	window_init(&w, WINDOW_TIME, 0);
	window_add(&w, true, true, T0);
	check_counts("time 0", &w, T0, 0, 0, 0);
}

/* One letter per call: S success, F failure, s slow success, f slow failure. */
static void add_seq(struct window *w, const char *seq, uint64_t now)
{
	for (; *seq; seq++)
		window_add(w, *seq == 'F' || *seq == 'f', *seq == 's' || *seq == 'f', now);
}

static void test_count_ring(void **state)
{
	static const struct {
		const char *name;
		uint32_t size;
		const char *seq;
		uint32_t calls, failures, slow;
	} cases[] = {
		{ "empty", 4, "", 0, 0, 0 },
		{ "partly full", 4, "FS", 2, 1, 0 },
		{ "exactly full", 4, "FSfs", 4, 2, 2 },
		{ "oldest failure leaves", 4, "FSSSS", 4, 0, 0 },
		{ "oldest slow leaves", 4, "sSSSF", 4, 1, 0 },
		{ "wraps twice", 3, "FFFSSSFFS", 3, 2, 0 },
		{ "size 1", 1, "FFS", 1, 0, 0 },
		{ "size 1 failure last", 1, "SSf", 1, 1, 1 },
		{ "slot reused clears bits", 2, "ffSS", 2, 0, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct window w;

		window_init(&w, WINDOW_COUNT, cases[i].size);
		add_seq(&w, cases[i].seq, T0);
		/* Count windows do not age: any time gives the same answer. */
		check_counts(cases[i].name, &w, T0, cases[i].calls, cases[i].failures, cases[i].slow);
		check_counts(cases[i].name, &w, T0 + 3600 * SEC, cases[i].calls, cases[i].failures,
			     cases[i].slow);
	}
}

/* A full ring of the largest size, bit by bit across the 64-bit words. */
static void test_count_max(void **state)
{
	struct window w;
	uint32_t i;

	window_init(&w, WINDOW_COUNT, WINDOW_MAX_CALLS);
	for (i = 0; i < WINDOW_MAX_CALLS; i++)
		window_add(&w, i % 2, i % 3 == 0, T0);
	check_counts("full", &w, T0, WINDOW_MAX_CALLS, WINDOW_MAX_CALLS / 2, 334);
	for (i = 0; i < WINDOW_MAX_CALLS; i++)
		window_add(&w, false, false, T0);
	check_counts("replaced", &w, T0, WINDOW_MAX_CALLS, 0, 0);
	window_reset(&w);
	check_eq("reset keeps size", w.size, WINDOW_MAX_CALLS);
	check_counts("reset", &w, T0, 0, 0, 0);
}

/*
 * 10 s window, 1 s buckets: a call ending in second s counts until the
 * bucket of second s + 10 begins, and not a nanosecond longer.
 */
static void test_time_expiry_exact(void **state)
{
	struct window w;
	uint64_t t = T0 + 300 * MS;	/* inside bucket 1000 */

	window_init(&w, WINDOW_TIME, 10);
	window_add(&w, true, false, t);
	check_counts("same instant", &w, t, 1, 1, 0);
	check_counts("bucket start", &w, T0, 1, 1, 0);
	check_counts("9 s later", &w, T0 + 9 * SEC, 1, 1, 0);
	check_counts("last ns", &w, T0 + 10 * SEC - 1, 1, 1, 0);
	check_counts("expired", &w, T0 + 10 * SEC, 0, 0, 0);
	check_counts("long expired", &w, T0 + 1000 * SEC, 0, 0, 0);
	/* Asking about an earlier time than the newest bucket sees no future buckets. */
	check_counts("before it", &w, T0 - 1, 0, 0, 0);

	/* Calls spread over buckets leave one bucket at a time. */
	window_init(&w, WINDOW_TIME, 3);
	window_add(&w, true, false, T0);
	window_add(&w, false, true, T0 + SEC);
	window_add(&w, false, false, T0 + 2 * SEC + 999 * MS);
	window_add(&w, true, true, T0 + 2 * SEC);
	check_counts("3 buckets", &w, T0 + 2 * SEC, 4, 2, 2);
	check_counts("first gone", &w, T0 + 3 * SEC, 3, 1, 2);
	check_counts("second gone", &w, T0 + 4 * SEC, 2, 1, 1);
	check_counts("all gone", &w, T0 + 5 * SEC, 0, 0, 0);
}

/* Adding after a gap clears the buckets skipped; a gap longer than the window clears all. */
static void test_time_advance(void **state)
{
	struct window w;

	window_init(&w, WINDOW_TIME, 4);
	window_add(&w, true, false, T0);
	window_add(&w, true, false, T0 + SEC);
	window_add(&w, false, false, T0 + 5 * SEC);	/* bucket T0 + 1 s is gone */
	check_counts("gap 4", &w, T0 + 5 * SEC, 1, 0, 0);
	window_add(&w, true, true, T0 + 100 * SEC);	/* everything is gone */
	check_counts("gap 95", &w, T0 + 100 * SEC, 1, 1, 1);
	/* The slot of an old bucket is reused cleanly. */
	window_add(&w, true, false, T0 + 104 * SEC);
	check_counts("reuse", &w, T0 + 104 * SEC, 1, 1, 0);
}

/* A call a little out of order lands in its own bucket; one older than the window is dropped. */
static void test_time_out_of_order(void **state)
{
	struct window w;

	window_init(&w, WINDOW_TIME, 5);
	window_add(&w, false, false, T0 + 4 * SEC);
	window_add(&w, true, false, T0 + SEC);		/* 3 s late, still inside */
	check_counts("late inside", &w, T0 + 4 * SEC, 2, 1, 0);
	check_counts("late leaves first", &w, T0 + 6 * SEC, 1, 0, 0);
	window_add(&w, true, true, T0 - SEC);		/* older than the oldest bucket */
	check_counts("too late", &w, T0 + 4 * SEC, 2, 1, 0);
	window_add(&w, true, true, T0 - 100 * SEC);
	check_counts("far too late", &w, T0 + 4 * SEC, 2, 1, 0);
}

/* 120 s window: 60 buckets of 2 s; expiry is at bucket granularity. */
static void test_time_coarse_buckets(void **state)
{
	struct window w;

	window_init(&w, WINDOW_TIME, 120);
	window_add(&w, true, false, T0 + SEC);		/* bucket [T0, T0 + 2 s) */
	check_counts("inside", &w, T0 + 119 * SEC, 1, 1, 0);
	check_counts("last ns", &w, T0 + 120 * SEC - 1, 1, 1, 0);
	check_counts("expired", &w, T0 + 120 * SEC, 0, 0, 0);
}

/* Near time 0 the bucket arithmetic must not wrap. */
static void test_time_near_zero(void **state)
{
	struct window w;

	window_init(&w, WINDOW_TIME, 3);
	window_add(&w, true, false, 0);
	window_add(&w, false, false, SEC);
	check_counts("zero", &w, SEC, 2, 1, 0);
	check_counts("zero expired", &w, 3 * SEC, 1, 0, 0);
	check_counts("at 0", &w, 0, 1, 1, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_and_clamp),
		cmocka_unit_test(test_count_ring),
		cmocka_unit_test(test_count_max),
		cmocka_unit_test(test_time_expiry_exact),
		cmocka_unit_test(test_time_advance),
		cmocka_unit_test(test_time_out_of_order),
		cmocka_unit_test(test_time_coarse_buckets),
		cmocka_unit_test(test_time_near_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
