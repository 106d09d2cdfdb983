/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * clock: the agent's one monotonic clock, CLOCK_MONOTONIC in nanoseconds
 * (the clock bpf_ktime_get_ns() reads, so kernel timestamps compare with
 * it), and the wall clock for the metrics that show one. Only the I/O
 * side reads them; pure modules take time as a parameter.
 */
#ifndef KB_CLOCK_H
#define KB_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * CLOCK_REALTIME in seconds, to the nanosecond: a wall time derived from
 * a monotonic age (now - age) must not move by up to a second from one
 * scrape to the next, as whole seconds from time() would make it.
 */
static inline double clock_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif /* KB_CLOCK_H */
