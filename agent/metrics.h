/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * metrics: Prometheus text exposition (format 0.0.4) of what the agent
 * knows. Pure rendering: the caller gathers the values and owns the stream.
 */
#ifndef KB_METRICS_H
#define KB_METRICS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include "breaker.h"
#include "bpf.h"

struct metrics_dst {
	const char *name;
	enum breaker_state state;			/* public state */
	const uint64_t (*transitions)[BS_MAX];		/* [old][new] */
	struct kb_dst_stats stats;			/* summed over CPUs */
	double failure_rate;				/* 0..1, over the window */
	double slow_call_rate;				/* 0..1, over the window */
	uint32_t consecutive_failures;
	double last_transition_wall;			/* unix seconds */
};

struct metrics_agent {
	const char *version;
	const char *kernel;		/* uname release */
	uint64_t events_lost;		/* outcomes the ring could not hold */
	uint32_t capacity;		/* breakers the maps hold (max_destinations) */
	uint64_t slots_used;		/* breakers in use */
	bool reload_ok;			/* the last (re)load was accepted */
	int64_t last_reload_ok_wall;	/* unix seconds */
	uint64_t reloads_ok, reloads_failed;
	uint64_t resolve_errors;
	uint64_t map_errors;
	bool refuses_with_econnrefused;	/* bpf_set_retval available */
	const struct kb_prog_stats *progs;	/* per BPF program */
	size_t n_progs;
	double last_poll_seconds;	/* how long the last poll took */
	double last_scrape_seconds;	/* how long the previous /metrics took */
	uint64_t restored;		/* breakers taken over from the previous run */
	bool compact;			/* omit zero-valued per-destination series */
	bool openmetrics;		/* OpenMetrics 1.0 instead of text 0.0.4 */
};

/*
 * Write every metric family for `n` destinations to out. Compact leaves
 * out per-destination series whose value is 0 (the states a breaker is not
 * in, counters that never moved, empty histograms): what thousands of idle
 * destinations need. OpenMetrics names counter families without their
 * _total suffix and ends with # EOF. Returns 0 or -EIO.
 */
int metrics_render(FILE *out, const struct metrics_agent *agent,
		   const struct metrics_dst *dsts, size_t n);

#endif /* KB_METRICS_H */
