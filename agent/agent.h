/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * agent: the breakers of a running kbreakerd and their link to the kernel.
 * Feeds kernel events to breakers, ticks them, pushes verdicts into the
 * maps, and renders metrics for the HTTP thread. Every entry point takes
 * the agent's lock, so the event loop and the HTTP thread may both call in.
 */
#ifndef KB_AGENT_H
#define KB_AGENT_H

#include <pthread.h>
#include <stdint.h>
#include "breaker.h"
#include "config.h"
#include "resolve.h"

struct kb_bpf;

struct agent_dst {
	const struct config_dst *cfg;
	struct breaker br;
	uint64_t lost_seen[KB_RES_MAX];	/* kb_dst_stats.lost already applied */
	kb_addr_t *addrs;		/* HOST_NAME: the addresses in the maps now */
	size_t n_addrs;
};

struct agent {
	pthread_mutex_t lock;
	const struct config *cfg;
	struct kb_bpf *bpf;
	struct agent_dst *dsts;
	size_t n_dsts;
	uint64_t lost_seen;		/* kb_bpf_lost_total() already handled */
	uint64_t started_ns;
	uint64_t last_tick_ns;		/* the loop's heartbeat, for /healthz */
	int last_tick_err;
	uint64_t resolve_errors;	/* failed name resolutions */
	uint64_t map_errors;		/* failed map writes */
	char kernel[65];
	/* The resolver thread re-resolves names every resolve_interval. */
	pthread_t resolver;
	pthread_cond_t resolver_wake;
	bool resolver_running;
	bool stopping;
};

/*
 * Register cfg's destinations in the maps (names resolved once, here) and
 * start every breaker closed; start the resolver thread if names exist.
 */
int agent_init(struct agent *a, const struct config *cfg, struct kb_bpf *bpf, uint64_t now);
/* Stop the resolver thread and free; the maps go with kb_bpf_close(). */
void agent_fini(struct agent *a);

/* Drain the kernel's event queue into the breakers. */
int agent_drain(struct agent *a, uint64_t now);

/* Time-based transitions and late (lost) events. Returns 0 or -errno. */
int agent_tick(struct agent *a, uint64_t now);

/* Earliest breaker deadline, or 0 when none is timed. */
uint64_t agent_next_deadline(struct agent *a);

/* http_body_fn for /metrics: Prometheus text. */
int agent_metrics(void *agent, char **body, size_t *len);

/* http_body_fn for /status: JSON, see status.h. */
int agent_status(void *agent, char **body, size_t *len);

/*
 * http_body_fn for /healthz: 200 "ok" while the loop ticks and its last
 * tick succeeded; 503 with a one-line reason otherwise.
 */
int agent_healthz(void *agent, char **body, size_t *len);

#endif /* KB_AGENT_H */
