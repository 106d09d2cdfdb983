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
#include <linux/types.h>
#include "kb_abi.h"
#include "breaker.h"
#include "prog_stats.h"
#include "workloads.h"

/* One workload's share of a destination (attribution on). */
struct metrics_wl {
	char name[WL_NAME_MAX];
	int state;			/* per_workload: its breaker's public state; shared: -1 */
	struct kb_wl_stats st;
};

struct metrics_dst {
	const char *name;
	enum breaker_state state;			/* public state */
	const uint64_t (*transitions)[BS_MACHINE];	/* [old][new] */
	const struct kb_dst_stats *stats;		/* summed over CPUs (and slots); NULL: none */
	double failure_rate;				/* 0..1, over the window */
	double slow_call_rate;				/* 0..1, over the window */
	uint32_t consecutive_failures;
	uint64_t trips_denied;				/* held back by the blast-radius guard */
	double last_transition_wall;			/* unix seconds */
	const struct metrics_wl *wl;			/* its workloads, attribution on */
	size_t n_wl;
};

struct metrics_agent {
	const char *version;
	const char *kernel;		/* uname release */
	uint64_t events_lost;		/* outcomes the ring could not hold */
	uint64_t connects_failopen;	/* let through, the agent not alive (kb_bpf_alive) */
	uint64_t fastopen_ignored;	/* setsockopt(TCP_FASTOPEN_CONNECT, 1) turned into 0 */
	uint64_t fastopen_refused;	/* connects with it set where that did not run */
	uint64_t log_dropped;		/* log lines stderr did not take (log_dropped_total) */
	uint32_t capacity;		/* breakers the maps hold (max_destinations) */
	uint64_t slots_used;		/* breakers in use */
	bool reload_ok;			/* the last (re)load was accepted */
	int64_t last_reload_ok_wall;	/* unix seconds */
	uint64_t reloads_ok, reloads_failed;
	uint64_t resolve_errors;
	uint64_t map_errors;
	uint64_t permits_returned;
	bool refuses_with_econnrefused;	/* bpf_set_retval available */
	const struct kb_prog_stats *progs;	/* per BPF program */
	size_t n_progs;
	double last_poll_seconds;	/* how long the last poll took */
	double last_scrape_seconds;	/* how long the previous /metrics took */
	uint64_t restored;		/* breakers taken over from the previous run */
	bool compact;			/* omit zero-valued per-destination series */
	bool wl_on;			/* workload attribution */
	uint32_t wl_labelled;		/* workloads with their own label */
	uint32_t wl_folded;		/* cgroups counted as workload "other" */
	uint64_t wl_reclaimed;		/* labels given back, their cgroups gone */
	bool openmetrics;		/* OpenMetrics 1.0 instead of text 0.0.4 */
};

/* How a shared sample writer reads and prints the field a family names. */
enum metrics_value {
	MV_NONE,	/* the family's writer knows its own values */
	MV_U64,		/* uint64_t, as an integer */
	MV_U32,		/* uint32_t, as an integer */
	MV_BOOL,	/* bool, as 0 or 1 */
	MV_I64,		/* int64_t, as an integer */
	MV_SECONDS,	/* double seconds, to the microsecond */
	MV_RATE,	/* double share, 0 to 1, to four places */
	MV_WALL,	/* double unix seconds, to the millisecond; never left out as zero */
	MV_NS_SECONDS,	/* uint64_t nanoseconds, as seconds */
};

struct metrics_family;

/* Write the samples of family f (never its HELP and TYPE lines). */
typedef void metrics_samples_fn(FILE *out, const struct metrics_family *f,
				const struct metrics_agent *agent,
				const struct metrics_dst *dsts, size_t n);

/* One metric family: the one place its name, type, unit and help are written. */
struct metrics_family {
	const char *name;	/* as its samples carry it: a counter's ends in _total */
	const char *type;	/* gauge, counter or histogram */
	const char *unit;	/* the unit its name ends in (OpenMetrics), NULL if none */
	const char *help;
	metrics_samples_fn *samples;
	size_t field;		/* the shared writers: offset of the value in their struct */
	enum metrics_value value;
	bool workloads;		/* only while workload attribution is on */
};

/* Every family metrics_render writes, in order. */
extern const struct metrics_family metrics_families[];
extern const size_t metrics_n_families;

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
