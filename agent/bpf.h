/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bpf: loads kb_observe and kb_enforce, attaches them, and is the only
 * module that touches their maps (bpf.c: open, probe, attach; bpf_maps.c:
 * the maps). The connect hooks' links are never pinned: when kbreakerd
 * exits for any reason the kernel detaches them and nothing stays blocked
 * (fail open). Without state_dir nothing is pinned; with it the maps and
 * the observing links are, so observation goes on across a restart.
 */
#ifndef KB_BPF_H
#define KB_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "kb_abi.h"
#include "prog_stats.h"

struct kb_bpf;

struct kb_bpf_opts {
	uint32_t capacity;	/* destinations the maps hold */
	const char *cgroup;	/* cgroup v2 directory for the connect hooks */
	/*
	 * bpffs directory, or NULL: maps and the observing links are pinned
	 * there and adopted by the next start, so counts, queued events and
	 * saved breakers survive a restart. The connect hooks are never
	 * pinned: when the agent is gone nothing is blocked.
	 */
	const char *state_dir;
	/*
	 * KB_LOOKUP_*, set before anything attaches: the programs of a restart
	 * take over from the previous run's at once, and until set they look
	 * up exact keys only (no prefix, any-port or netns destination, no
	 * workload names).
	 */
	uint32_t lookup_flags;
	uint32_t wl_depth;	/* workloads: levels below cgroup that make one (kb_wl_ctl) */
	uint32_t wl_max;	/* workloads: labelled ones; 0 = attribution off */
	uint64_t failopen_after_ns;	/* the liveness grace (kb_bpf_alive); 0: the default */
	/* fastopen_connect: ignore: kb_sockopt at cgroup/setsockopt, unpinned like the hooks */
	bool fastopen_ignore;
};

typedef void (*kb_event_fn)(void *ctx, const struct kb_event *ev);

typedef void (*kb_workload_fn)(void *ctx, uint64_t cgroup_id, uint32_t index);
typedef void (*kb_wstats_fn)(void *ctx, const struct kb_wl_key *key, const struct kb_wl_stats *st);

/* Route libbpf's messages through our logger, one level down. */
void kb_bpf_setup_logging(void);

/* Load, size and attach everything. Returns 0 or -errno, logged here. */
int kb_bpf_open(struct kb_bpf **out, const struct kb_bpf_opts *opts);

/* Run counts of every program; fills up to max, returns how many. */
size_t kb_bpf_prog_stats(struct kb_bpf *k, struct kb_prog_stats *out, size_t max);

/* Whether the maps came from a previous run (state_dir). */
bool kb_bpf_adopted(const struct kb_bpf *k);

/*
 * Whether the workload maps did too, numbered under the same workloads:
 * settings, so that a workload's index still names the same cgroup.
 */
bool kb_bpf_wl_adopted(const struct kb_bpf *k);

/*
 * Remove the destination keys `keep` says no to: what a previous run left
 * that this configuration does not have. keep gets the key as an address,
 * prefix length (128: exact), host-order port and namespace inode (0: any),
 * and the dst_id it maps to. 0 or -errno.
 */
typedef bool (*kb_dst_keep_fn)(void *ctx, const uint8_t addr[16], uint8_t prefix_len,
			       uint16_t port, uint32_t netns, uint32_t dst_id);
int kb_bpf_prune_dsts(struct kb_bpf *k, kb_dst_keep_fn keep, void *ctx);

struct persist_record;
typedef void (*kb_saved_fn)(void *ctx, uint32_t dst_id, const struct persist_record *rec);

/* Hand every saved breaker (persist.h) to fn. 0 or -errno. */
int kb_bpf_saved_each(struct kb_bpf *k, kb_saved_fn fn, void *ctx);
int kb_bpf_saved_put(struct kb_bpf *k, uint32_t dst_id, const struct persist_record *rec);
int kb_bpf_saved_del(struct kb_bpf *k, uint32_t dst_id);

/*
 * Remove everything kept in state_dir: the pinned observing links detach,
 * the maps go once nothing uses them. 0 or -errno (logged).
 */
int kb_bpf_clear_state(const char *state_dir);

/* Detach the connect hooks now: nothing is blocked from here on. Safe on NULL. */
void kb_bpf_detach_enforcement(struct kb_bpf *k);

/* Detach and free; safe on NULL. */
void kb_bpf_close(struct kb_bpf *k);

/*
 * Map addr/prefix_len (addr as in kb_dst_key; 128 = one address, less = a
 * CIDR in the IPv4-mapped space), port (host order, 0 = any) and netns (a
 * network namespace's inode number, 0 = any) to dst_id.
 */
int kb_bpf_add_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id, uint32_t *held);
/*
 * kb_bpf_add_dst() returns -EEXIST, with the id the key leads to in *held,
 * when the key is there for another id: a key is one destination's, and only
 * its caller knows whether that one still wants it. kb_bpf_set_dst() writes
 * the key whatever it led to.
 */
int kb_bpf_set_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id);
/* The id the key leads to; -ENOENT if there is none. */
int kb_bpf_get_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t *dst_id);

/* Remove such an entry if it leads to dst_id; a missing one, or another's, is not an error. */
int kb_bpf_del_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id);

/* Which lookups the hooks try after the exact hash misses (KB_LOOKUP_*). */
void kb_bpf_set_lookup_flags(struct kb_bpf *k, uint32_t flags);

/* Write dst_id's verdict under a new gen (the agent's one write per transition). */
int kb_bpf_set_verdict(struct kb_bpf *k, uint32_t dst_id, const struct kb_verdict *v);

/* The kernel's trip state of dst_id and the verdict it is judged against. 0 or -errno. */
int kb_bpf_read_trip(struct kb_bpf *k, uint32_t dst_id, struct kb_trip *t, struct kb_verdict *v);

/* dst_id's verdict as the map holds it, gen included. 0 or -errno. */
int kb_bpf_get_verdict(struct kb_bpf *k, uint32_t dst_id, struct kb_verdict *v);

/*
 * Put back a verdict kb_bpf_get_verdict() read, gen and all, undoing a
 * kb_bpf_set_verdict(): the kernel's trip state of that gen (kb_trips)
 * counts again as it did. 0 or -errno.
 */
int kb_bpf_put_verdict(struct kb_bpf *k, uint32_t dst_id, const struct kb_verdict *v);

/*
 * Sum the per-CPU counters of destinations 0..n-1 into sums[] with batched
 * lookups (a few syscalls for thousands of destinations). Callers serialize.
 */
int kb_bpf_read_all_stats(struct kb_bpf *k, uint32_t n, struct kb_dst_stats *sums);

/* The same for destinations first..first+n-1, into sums[0..n-1]. */
int kb_bpf_read_stats_range(struct kb_bpf *k, uint32_t first, uint32_t n, struct kb_dst_stats *sums);

/* Zero a destination's counters on every CPU (a slot taken by a new destination). */
int kb_bpf_reset_stats(struct kb_bpf *k, uint32_t dst_id);

/*
 * Set a destination's counters to `sum`, all on one CPU: every reader sums
 * the CPUs, so this puts back what kb_bpf_read_stats() read. Callers serialize.
 */
int kb_bpf_set_stats(struct kb_bpf *k, uint32_t dst_id, const struct kb_dst_stats *sum);

/* Sum the per-CPU counters of one destination into *sum. Callers serialize: it uses one scratch buffer. */
int kb_bpf_read_stats(struct kb_bpf *k, uint32_t dst_id, struct kb_dst_stats *sum);

/* An fd that polls readable when events are queued. */
int kb_bpf_events_fd(const struct kb_bpf *k);

/* Hand every queued event to fn, in order. Returns the count or -errno. */
int kb_bpf_drain(struct kb_bpf *k, kb_event_fn fn, void *ctx);

/* Events that did not fit in the ring, ever; read without a syscall. */
uint64_t kb_bpf_lost_total(const struct kb_bpf *k);

/*
 * The agent is alive: the hooks go on refusing for the grace
 * (failopen_after, KB_ALIVE_GRACE_NS unless set) after now
 * (CLOCK_MONOTONIC ns), and let every connect through past that. Its loop
 * calls this at least every KB_ALIVE_BEAT_NS, the beat thread too while
 * the loop waits on a start's lookup; a stopped or hung agent then blocks
 * nothing after the grace, as a dead one blocks nothing at once.
 */
#define KB_ALIVE_BEAT_NS 1000000000ULL
#define KB_ALIVE_GRACE_NS (10 * KB_ALIVE_BEAT_NS)
void kb_bpf_alive(struct kb_bpf *k, uint64_t now);

/* A new grace (a reload's failopen_after), from the next kb_bpf_alive on. */
void kb_bpf_set_failopen_after(struct kb_bpf *k, uint64_t ns);

/* Connects the hooks let through because the agent was not alive (kb_bpf_alive), ever. */
uint64_t kb_bpf_failopen_total(const struct kb_bpf *k);

/* setsockopt(TCP_FASTOPEN_CONNECT, 1) calls in the cgroup turned into 0, ever. */
uint64_t kb_bpf_fastopen_ignored_total(const struct kb_bpf *k);
/* Connects refused for a TCP_FASTOPEN_CONNECT set where kb_sockopt did not run, ever. */
uint64_t kb_bpf_fastopen_refused_total(const struct kb_bpf *k);

/* Whether this process may still use the maps (a harmless lookup). 0 or -errno. */
int kb_bpf_probe_access(struct kb_bpf *k);

/* Whether refusals carry ECONNREFUSED (bpf_set_retval) rather than EPERM. */
bool kb_bpf_refuses_with_econnrefused(const struct kb_bpf *k);

/* --- bpf_workloads.c: workload attribution -------------------------------- */

/* The kernel's settings and counts of it. 0 or -errno. */
int kb_bpf_wl_ctl(struct kb_bpf *k, struct kb_wl_ctl *ctl);

/* Every cgroup the hooks numbered so far, with its index. 0 or -errno. */
int kb_bpf_workloads_each(struct kb_bpf *k, kb_workload_fn fn, void *ctx);

/*
 * Delete the connects the hooks filed for attribution that never sent a
 * SYN (kb_conn_stale, kb_abi.h) as of now (CLOCK_MONOTONIC). Returns how
 * many.
 */
int kb_bpf_conn_sweep(struct kb_bpf *k, uint64_t now);

/* Every (destination, workload) counter. 0 or -errno. */
int kb_bpf_wstats_each(struct kb_bpf *k, kb_wstats_fn fn, void *ctx);

/* Drop destination dst's workload counters: its slot serves a new one. 0 or -errno. */
int kb_bpf_wstats_forget(struct kb_bpf *k, uint32_t dst);

/*
 * Drop the counters, at every destination, of each workload index i below
 * n with gone[i] set: those indexes serve new workloads. One walk of the
 * map for them all. 0 or -errno.
 */
int kb_bpf_wstats_forget_workloads(struct kb_bpf *k, const bool *gone, uint32_t n);

/*
 * A new generation for workload index idx (kb_wl_gen): what sockets named
 * under the old one do counts as "other" from now on. Before the index
 * goes back (kb_bpf_workload_gone). 0 or -errno.
 */
int kb_bpf_wl_gen_bump(struct kb_bpf *k, uint32_t idx);

/*
 * The cgroup is gone: delete its entry, and give index idx back to the
 * hooks when it is a label (below max). 0 or -errno.
 */
int kb_bpf_workload_gone(struct kb_bpf *k, uint64_t cgroup, uint32_t idx);

#endif /* KB_BPF_H */
