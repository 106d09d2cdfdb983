/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bpf_priv: what bpf.c (open, probe the kernel, attach), bpf_pin.c
 * (state_dir), bpf_maps.c (map reads, writes and walks) and bpf_workloads.c
 * share. Nothing else includes it.
 */
#ifndef KB_BPF_PRIV_H
#define KB_BPF_PRIV_H

#include "bpf.h"
#include "kb_observe.skel.h"
#include "kb_enforce.skel.h"

struct kb_bpf {
	struct kb_observe *obs;
	struct kb_enforce *enf;
	struct ring_buffer *rb;
	int cgroup_fd;
	int state_fd;		/* state_dir, locked while we use it; -1: none */
	int ncpus;
	struct kb_dst_stats *percpu;	/* scratch for one per-CPU lookup */
	kb_event_fn event_fn;
	void *event_ctx;
	bool set_retval;
	bool no_batch;		/* kb_stats has no batch lookups here: one lookup each */
	bool atomics;		/* BPF atomic fetch: the programs' plain build, else *_locked (kb_judge.h) */
	bool adopted;		/* maps reused from state_dir */
	bool wl_adopted;	/* and the workload maps too, numbered under the same settings */
	uint32_t wl_max;	/* workloads: max; 0 = attribution off */
	__u32 last_gen;		/* kb_verdict.gen of the latest write */
	uint64_t portless;	/* keys with port "any": while any, kb_ports proves nothing */
	uint64_t grace_ns;	/* atomic: the beat thread reads it (kb_bpf_alive) */
};

/*
 * The ports prefilter for the destination keys a previous run left
 * (state_dir), or "no key yet" for new maps; before anything attaches.
 * 0 or -errno.
 */
int kb_bpf_ports_adopt(struct kb_bpf *k);

/*
 * Start verdict gens above every adopted one (state_dir): the kernel would
 * take a previous run's trip for a current one. 0 or -errno.
 */
int kb_bpf_gen_init(struct kb_bpf *k);

/*
 * Pin the maps in opts->state_dir (mounting bpffs at /sys/fs/bpf if need
 * be), adopting what a previous run left there, and take the generation
 * after the one counting now. Before the load. 0 or -errno, logged.
 */
int kb_bpf_pin(struct kb_bpf *k, const struct kb_bpf_opts *opts);

/*
 * Attach kb_sockops (or the *_locked build loaded instead) to the cgroup;
 * with dir, take over from the previous run's pinned link and pin ours in
 * its place. 0 or -errno.
 */
int kb_bpf_attach_observe(struct kb_observe *obs, int cgroup_fd, const char *dir);

/* kb_wstats' size for capacity destinations and wl_max workloads. */
uint32_t kb_bpf_wl_stats_max(uint32_t capacity, uint32_t wl_max);

/*
 * Unpin the workload maps in dir when they were numbered under other
 * settings, so that the load creates them afresh. 1: pinned ones kept,
 * 0: none kept, or -errno.
 */
int kb_bpf_wl_unpin_stale(const char *dir, const struct kb_bpf_opts *opts, uint32_t stats_max);

/* Give the kernel its settings, before the hooks attach. 0 or -errno. */
int kb_bpf_wl_start(struct kb_bpf *k, const struct kb_bpf_opts *opts);

#endif /* KB_BPF_PRIV_H */
