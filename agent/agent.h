/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * agent: the breakers of a running kbreakerd and their link to the kernel.
 * Feeds kernel events to breakers, ticks them, pushes verdicts into the
 * maps, follows names and reloads, and renders /metrics, /status and
 * /healthz for the HTTP thread.
 *
 * Threads: the event loop alone calls the agent_* entry points that
 * change it, so the agent has no lock. The resolver thread hands its
 * answers to the loop (agent_resolved) and the HTTP thread renders from
 * snapshots the loop folds when asked (agent_publish, snapshot.h); each
 * meets the loop through an eventfd and a small lock of its own.
 *
 * A circuit is one configured destination (one circuit_name). Its breakers
 * live in slots; a slot's index is its dst_id in the kernel maps and stays
 * the same for the slot's life, across reloads, so counts are kept. A
 * circuit has one slot, or with per_address one slot per address.
 */
#ifndef KB_AGENT_H
#define KB_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "breaker.h"
#include "config.h"
#include "page_cache.h"
#include "resolve.h"
#include "snapshot.h"
#include "workloads.h"

struct kb_bpf;

struct agent_slot {
	bool used;
	uint32_t circuit;		/* index into agent.circuits */
	kb_addr_t addr;			/* per_address members: their address */
	struct breaker br;
	uint64_t lost_seen[KB_RES_MAX];	/* kb_dst_stats.lost already applied */
	uint64_t resets_seen;		/* resets already fed to the breaker */
	bool resets_rebase;		/* resets_seen is not this breaker's: take the kernel's count as seen */
	bool dirty;			/* changed since last saved (state_dir) */
	bool events;			/* its verdict queues every outcome (kb_verdict.events) */
	uint64_t counted[KB_RES_MAX];	/* no events: kernel counts already fed to the window */
	uint32_t workload;		/* per_workload members: the workload index */
	struct {			/* half_open: permits taken whose SYN never left */
		uint32_t gen, taken, sent;
		uint64_t since_ns;	/* first seen so; 0: none */
	} unsent;
};

/*
 * What per_address members counted before their address went: the
 * circuit's counters stay cumulative while its members come and go.
 */
struct circuit_retired {
	struct kb_dst_stats stats;
	uint64_t transitions[BS_MACHINE][BS_MACHINE];
	uint64_t trips_denied;
};

struct agent_circuit {
	const struct config_dst *cfg;
	uint32_t slot;			/* its breaker, unless per_address */
	kb_addr_t *addrs;		/* HOST_NAME: the addresses in the maps now, sorted */
	uint32_t *members;		/* per_address: slot of addrs[i] */
	size_t n_addrs;
	uint32_t n_wl;			/* per_workload: its breakers, slot + 0 .. slot + n_wl - 1 */
	struct circuit_retired *retired;	/* per_address, once a member went; else NULL */
};

/*
 * The resolver thread and what it shares with the loop, under its own
 * lock: the names to follow in, the answers out (resolver.c).
 */
struct agent_resolver {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool ready, running, stopping, woken;
	bool left;			/* stopped in a lookup: left to the process's exit */
	uint64_t interval_ns;
	char (*hosts)[CONFIG_HOST_MAX];	/* distinct names of the running config */
	size_t n_hosts;
	struct resolved *answers;	/* not yet taken by the loop */
	size_t n_answers;
	int efd;			/* eventfd: answers are waiting */
};

struct agent {
	const struct config *cfg;
	struct kb_bpf *bpf;
	struct agent_circuit *circuits;
	size_t n_circuits;
	struct agent_slot *slots;
	size_t n_slots;			/* slots in use range; unused ones have used == false */
	size_t slots_alloc;		/* slots[] allocated length */
	uint32_t capacity;		/* slots the kernel maps hold */
	bool persist;			/* save breakers for the next start (state_dir) */
	uint64_t restored;		/* breakers taken over from the previous run */
	uint64_t lost_seen;		/* kb_bpf_lost_total() already handled */
	bool rescan_lost;		/* look at every slot's lost counters once */
	uint64_t next_deadline;		/* earliest breaker deadline, 0: none */
	bool deadline_stale;		/* a verdict changed since next_deadline was found */
	uint64_t started_ns;
	uint64_t last_tick_ns;		/* the loop's heartbeat, for /healthz (atomic) */
	uint64_t poll_interval_ns;	/* atomic: /healthz reads it */
	uint64_t last_count_ns;		/* when event-less breakers were last fed from counters */
	uint64_t last_poll_ns;		/* how long the last agent_tick took */
	uint64_t conn_swept_ns;		/* the last sweep of kb_conn (kb_bpf_conn_sweep) */
	uint64_t last_scrape_ns;	/* how long the previous /metrics render took (atomic) */
	uint64_t resolve_errors;	/* failed name resolutions */
	uint64_t map_errors;		/* failed map writes */
	uint64_t permits_returned;	/* half_open permits given back (slot_check_permits) */
	uint64_t reloads_ok, reloads_failed;
	bool last_reload_ok;
	int64_t last_reload_ok_wall;	/* unix seconds of the last good (re)load */
	char kernel[65];
	struct workloads wl;		/* names of the workload indexes */
	char wl_dir[CONFIG_PATH_MAX];	/* the enforcement cgroup, where they are named */
	struct agent_resolver res;
	struct agent_snapshots snaps;
	struct page_cache pages;	/* the pages being sent, shared beyond PAGES_LIVE */
};

/* The lookup flags cfg's destinations need in the kernel (kb_bpf_opts.lookup_flags). */
uint32_t agent_lookup_flags(const struct config *cfg);

/*
 * Register cfg's destinations in the maps (names resolved once, here),
 * start every breaker closed, start the resolver thread. cfg must outlive
 * the agent or be replaced by agent_reload(). Returns 0 or -errno, logged.
 */
int agent_init(struct agent *a, const struct config *cfg, struct kb_bpf *bpf,
	       uint32_t capacity, uint64_t now);

/* The enforcement cgroup's directory, where workloads are named; after agent_init(). */
void agent_set_cgroup(struct agent *a, const char *dir);

/*
 * Save the breakers that changed, then stop the resolver thread (it may be
 * in a lookup) and free; the maps go with kb_bpf_close().
 */
void agent_fini(struct agent *a);

/*
 * Switch to cfg at `now`: circuits whose name, host and port are unchanged
 * keep their breakers and counts (policy changes apply to them), new ones
 * start closed, removed ones are unblocked and dropped. All or nothing:
 * 0 when cfg is in force (the agent keeps it; the caller may free the
 * config it replaced), or -errno, logged and counted as a failed reload,
 * with nothing changed: breakers, kernel maps and the running config stay,
 * and the agent holds no pointer into cfg (the caller frees it).
 * -EINVAL: max_destinations changed; -ENOSPC: an added destination finds
 * no free slot; -ENOMEM; or the error of a map access.
 */
int agent_reload(struct agent *a, const struct config *cfg, uint64_t now);

/* Record that a reload was rejected (for metrics). */
void agent_reload_failed(struct agent *a);

/* Drain the kernel's event queue into the breakers. */
int agent_drain(struct agent *a, uint64_t now);

/* Time-based transitions, late (lost) events and resets. Returns 0 or -errno. */
int agent_tick(struct agent *a, uint64_t now);

/* Earliest breaker deadline, or 0 when none is timed. */
uint64_t agent_next_deadline(struct agent *a);

/* The descriptor that becomes readable when a page asks for a snapshot. */
int agent_snapshot_fd(const struct agent *a);

/* Fold and publish a snapshot if a page asked for one since the last. 0 or -errno. */
int agent_publish(struct agent *a, uint64_t now);

/* The loop is done: pages get the last snapshot without waiting for another. */
void agent_stop_publishing(struct agent *a);

/* The descriptor that becomes readable when the resolver has answers. */
int agent_resolver_fd(const struct agent *a);

/* Whether the event loop waits on a name lookup of its own now (any thread may ask). */
bool agent_resolving(void);

/* Apply the resolver's answers (names whose addresses changed or failed). 0 or -errno. */
int agent_resolved(struct agent *a, uint64_t now);

/*
 * After agent_fini(): the resolver thread was left in a lookup, with the
 * state it uses. The process must end with _exit(), which stops it there,
 * not return from main() or call exit(), which would unwind that state.
 */
bool agent_lookup_left(const struct agent *a);

struct http_request;

/*
 * http_body_fn for /metrics: Prometheus text format 0.0.4, or OpenMetrics
 * 1.0 when the scraper's Accept header asks for it.
 */
int agent_metrics(void *agent, struct http_request *req, char **body, size_t *len);

/* http_body_fn for /status: JSON, see status.h. */
int agent_status(void *agent, struct http_request *req, char **body, size_t *len);

/*
 * http_body_fn for /healthz: 200 "ok" while the loop ticks; 503 with a
 * one-line reason otherwise.
 */
int agent_healthz(void *agent, struct http_request *req, char **body, size_t *len);

#endif /* KB_AGENT_H */
