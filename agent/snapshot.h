/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * snapshot: the breakers as the HTTP thread shows them. The loop thread
 * alone runs the breakers; when a page is asked for, it folds each
 * circuit's slots into a snapshot and publishes it, and the HTTP thread
 * renders from that, adding the kernel's counters it reads itself. So
 * the HTTP thread never takes the loop's state, and a scrape of 10,000
 * destinations costs the loop one fold, not the render.
 *
 * A snapshot is immutable once published and freed by whoever drops the
 * last reference (snapshot_get/snapshot_put).
 */
#ifndef KB_SNAPSHOT_H
#define KB_SNAPSHOT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "metrics.h"
#include "status.h"

struct agent;

/* One circuit, its slots folded together: worst state, sums and maxima. */
struct snap_circuit {
	char name[CONFIG_NAME_MAX];	/* a reload may free the config: copies */
	uint32_t host;			/* offset of its host in snapshot.strings */
	uint8_t literal[16];		/* an address or prefix as configured */
	bool has_literal;		/* false for names */
	uint8_t prefix_len;
	uint16_t port;
	enum breaker_mode mode;
	enum breaker_state state;	/* public, worst of its slots */
	uint32_t consecutive_failures;
	double failure_rate, slow_call_rate;
	uint64_t trips_denied;
	uint64_t since_ns;		/* latest transition among its slots */
	uint64_t next_half_open_ns;	/* earliest, when open */
	uint64_t transitions[BS_MACHINE][BS_MACHINE];
	uint32_t addrs, n_addrs;	/* its resolved addresses: snapshot.addrs[addrs...] */
	int32_t members;		/* per_address: its member states from there, else -1 */
	bool per_workload;
	uint32_t wl, n_wl;		/* its workloads: snapshot.wl[wl...] */
	int32_t retired;		/* per_address: snapshot.retired[retired], or -1 */
};

/* What a snapshot's arrays hold room for. */
struct snapshot_room {
	size_t circuits, slots, chars, addrs, members, retired;
};

struct snapshot {
	unsigned refs;			/* under agent_snapshots.lock */
	struct snapshot_room room;
	uint64_t now;			/* CLOCK_MONOTONIC when folded */
	size_t n;
	struct snap_circuit *c;
	uint32_t n_slots;
	int32_t *slot_circuit;		/* slot -> circuit, -1: unused (to sum counters) */
	struct metrics_agent info;	/* what the agent knows of itself */
	uint64_t started_ns;
	char *strings;			/* the hosts */
	uint8_t (*addrs)[16];		/* every circuit's resolved addresses, in a row */
	enum breaker_state *member_states;	/* in a row, for per_address circuits */
	struct kb_dst_stats *retired;	/* what members that went counted, per circuit with any */
	size_t n_retired;
	bool wl_on;			/* workload attribution */
	struct status_wl wl_info;
	struct metrics_wl *wl;		/* every circuit's workloads, in a row */
	size_t n_wl;
};

/* Between the loop and the HTTP thread: what was asked for and what is ready. */
struct agent_snapshots {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct snapshot *cur;		/* the latest published, NULL before the first */
	uint64_t asked, made;		/* a snapshot made at or after ask n is fresh for it */
	int efd;			/* eventfd: the HTTP thread asks the loop */
	bool inited;
	bool closed;			/* the loop is gone: serve the last one at once */
};

/*
 * Fold a's circuits at `now`, into old's memory when it is big enough (old
 * is taken over: used or freed). NULL with errno on failure. Loop thread.
 */
struct snapshot *snapshot_fold(const struct agent *a, uint64_t now, struct snapshot *old);

/* Drop a reference; the last one frees it. Takes snaps->lock. */
void snapshot_put(struct agent_snapshots *snaps, struct snapshot *s);

/*
 * HTTP thread: a snapshot made after this call, waiting for the loop at
 * most wait_ns; past that the latest one there is (stale), or NULL if
 * none was ever made. The caller puts it back.
 */
struct snapshot *snapshot_get(struct agent_snapshots *snaps, uint64_t wait_ns);

/* The loop stopped: pages stop waiting for it. */
void snapshots_close(struct agent_snapshots *snaps);

int snapshots_init(struct agent_snapshots *snaps);
void snapshots_fini(struct agent_snapshots *snaps);

#endif /* KB_SNAPSHOT_H */
