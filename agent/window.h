/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * window: the sliding window a breaker computes its failure and slow-call
 * rates over. Pure, fixed-size (no allocation), time is a parameter.
 *
 * count: the last `size` calls (1..WINDOW_MAX_CALLS), one bit each for
 *   "failed" and "slow" in a ring.
 * time: the last `size` seconds (1..WINDOW_MAX_SECONDS) in min(size, 60)
 *   buckets of size/buckets each: 1 s buckets up to 60 s, coarser beyond
 *   (a 120 s window has 2 s buckets). Bucket e holds calls that ended in
 *   [e * width, (e + 1) * width); at `now` the window holds the bucket now
 *   falls in and the buckets - 1 before it, so a call leaves the window
 *   exactly when the bucket `buckets` after its own begins.
 */
#ifndef KB_WINDOW_H
#define KB_WINDOW_H

#include <stdbool.h>
#include <stdint.h>
#include "policy.h"

#define WINDOW_MAX_CALLS 1000
#define WINDOW_MAX_SECONDS 3600
#define WINDOW_MAX_BUCKETS 60

struct window_counts {
	uint32_t calls;
	uint32_t failures;
	uint32_t slow;
};

struct window {
	enum window_type type;
	uint32_t size;			/* count: calls; time: seconds; 0 = no window */
	/* count */
	uint32_t pos;			/* ring slot the next call goes to */
	uint32_t n;			/* calls held, <= size */
	struct window_counts total;	/* count: sums over the ring */
	/* time */
	uint32_t n_buckets;
	uint64_t bucket_ns;
	uint64_t head;			/* index (now / bucket_ns) of the newest bucket */
	/* A window is one type for life: the two never hold data at once. */
	union {
		struct {
			uint64_t fail_bits[(WINDOW_MAX_CALLS + 63) / 64];
			uint64_t slow_bits[(WINDOW_MAX_CALLS + 63) / 64];
		};
		struct window_counts buckets[WINDOW_MAX_BUCKETS];	/* bucket e at [e % n_buckets] */
	};
};

/*
 * Empty window of `type` and `size` (calls or seconds). Sizes above the
 * maximum are clamped to it; size 0 makes a window that holds nothing.
 */
void window_init(struct window *w, enum window_type type, uint32_t size);

/* Forget every call, keeping type and size. */
void window_reset(struct window *w);

/*
 * Add one call that ended at `now`. A time window drops a call older than
 * its oldest bucket (events may arrive a little out of order).
 */
void window_add(struct window *w, bool failure, bool slow, uint64_t now);

/* The calls, failures and slow calls the window holds at `now`. */
struct window_counts window_counts(const struct window *w, uint64_t now);

#endif /* KB_WINDOW_H */
