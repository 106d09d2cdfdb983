/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * clock: the agent's one monotonic clock, CLOCK_MONOTONIC in nanoseconds
 * (the clock bpf_ktime_get_ns() reads, so kernel timestamps compare with
 * it). Only the I/O side reads it; pure modules take time as a parameter.
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

#endif /* KB_CLOCK_H */
