// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bpf_workloads: the kernel's side of workload attribution (kb_abi.h):
 * its settings, the cgroups it has numbered and its per-workload counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf_priv.h"
#include "config.h"
#include "log.h"

/*
 * The workload maps numbered under one setting. Not kb_wl_gen: kb_conn and
 * kb_sk_state stay when these start afresh, and their records' generations
 * must keep meaning what they meant (kb_bpf_wl_start bumps them all).
 */
static const char *const wl_pinned[] = { "kb_wl_ctl", "kb_workloads", "kb_wstats", "kb_wl_free" };

_Static_assert(CONFIG_WORKLOADS_MAX < KB_WL_LABELS_MAX, "kb_wl_free and kb_wl_gen hold every index");

int kb_bpf_wl_gen_bump(struct kb_bpf *k, uint32_t idx)
{
	int fd = bpf_map__fd(k->obs->maps.kb_wl_gen);
	__u32 gen;

	if (bpf_map_lookup_elem(fd, &idx, &gen))
		return -errno;
	gen++;
	if (bpf_map_update_elem(fd, &idx, &gen, BPF_ANY))
		return -errno;
	return 0;
}

uint32_t kb_bpf_wl_stats_max(uint32_t capacity, uint32_t wl_max)
{
	uint64_t n = (uint64_t)capacity * (wl_max + 1);

	if (!wl_max)
		return 1;	/* off: the map must exist, nothing goes in */
	return n < KB_WL_STATS_MAX ? (uint32_t)n : KB_WL_STATS_MAX;
}

/* The pinned settings and counter capacity, or -errno (-ENOENT: nothing pinned). */
static int pinned_wl(const char *dir, struct kb_wl_ctl *ctl, __u32 *stats_max)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info), zero = 0;
	char path[4096];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/kb_wl_ctl", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_map_lookup_elem(fd, &zero, ctl))
		err = -errno;
	close(fd);
	snprintf(path, sizeof(path), "%s/kb_wstats", dir);
	fd = err ? -1 : bpf_obj_get(path);
	if (fd < 0)
		return err ?: -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = -errno;
	*stats_max = info.max_entries;
	close(fd);
	return err;
}

/* The enforcement cgroup's id: its directory's inode number (kernfs, 64-bit). 0 or -errno. */
static int cgroup_id(const char *dir, __u64 *id)
{
	struct stat st;

	if (stat(dir, &st))
		return -errno;
	*id = st.st_ino;
	return 0;
}

int kb_bpf_wl_unpin_stale(const char *dir, const struct kb_bpf_opts *opts, uint32_t stats_max)
{
	struct kb_wl_ctl ctl;
	char path[4096];
	__u32 have_max = 0;
	__u64 base = 0;
	int err;

	err = pinned_wl(dir, &ctl, &have_max);
	if (err == -ENOENT)
		return 0;
	if (!err && opts->wl_max)
		err = cgroup_id(opts->cgroup, &base);
	if (!err && ctl.base == base && ctl.depth == opts->wl_depth && ctl.max == opts->wl_max &&
	    have_max == stats_max)
		return 1;
	/*
	 * Numbered under other settings (or unreadable): the indexes would name
	 * other cgroups. Workload counts start afresh; per-destination ones stay.
	 */
	log_info("workload attribution starts afresh\tstate_dir=%s reason=%s", dir,
		 err ? strerror(-err) : "workloads: changed");
	for (size_t i = 0; i < sizeof(wl_pinned) / sizeof(wl_pinned[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, wl_pinned[i]);
		if (unlink(path) && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/*
 * kb_wl_free afresh from kb_workloads: every label below next that no
 * cgroup holds, each with a new generation (kb_abi.h), whatever the
 * previous run did before it stopped. What a previous run pushed is there
 * already; what it took from kb_workloads without pushing yet, or a hook
 * numbered but lost (kb_enforce.bpf.c), comes back here. Before the hooks
 * attach: no writer meanwhile. 0 or -errno.
 */
static int wl_free_rebuild(struct kb_bpf *k, uint32_t max, uint32_t next)
{
	int fq = bpf_map__fd(k->obs->maps.kb_wl_free), fw = bpf_map__fd(k->obs->maps.kb_workloads);
	uint32_t n = next < max ? next : max, idx;
	__u64 key, cur, *prev = NULL;
	bool *held;
	int err = 0;

	while (!bpf_map_lookup_and_delete_elem(fq, NULL, &idx))
		;
	if (!n)
		return 0;
	held = calloc(n, sizeof(*held));
	if (!held)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fw, prev, &cur)) {
		key = cur;
		prev = &key;
		if (!bpf_map_lookup_elem(fw, &key, &idx) && idx < n)
			held[idx] = true;
	}
	for (idx = 0; idx < n && !err; idx++) {
		if (held[idx])
			continue;
		err = kb_bpf_wl_gen_bump(k, idx);
		if (!err && bpf_map_update_elem(fq, NULL, &idx, BPF_ANY))
			err = -errno;
	}
	free(held);
	return err;
}

int kb_bpf_wl_start(struct kb_bpf *k, const struct kb_bpf_opts *opts)
{
	int fd = bpf_map__fd(k->obs->maps.kb_wl_ctl);
	struct kb_wl_ctl ctl;
	__u32 zero = 0;
	__u64 base = 0;
	int err;

	if (opts->wl_max) {
		err = cgroup_id(opts->cgroup, &base);
		if (err)
			return err;
	}
	k->wl_max = opts->wl_max;
	if (bpf_map_lookup_elem(fd, &zero, &ctl))
		return -errno;
	/*
	 * next, lost and level are the kernel's; before the hooks attach
	 * nothing else writes them. A level found under other settings is
	 * found again.
	 */
	if (ctl.base != base || ctl.depth != opts->wl_depth)
		ctl.level = 0;
	ctl.base = base;
	ctl.depth = opts->wl_depth;
	ctl.max = opts->wl_max;
	if (bpf_map_update_elem(fd, &zero, &ctl, BPF_ANY))
		return -errno;
	/*
	 * Workload maps made afresh beside a previous run's kb_conn and
	 * kb_sk_state: their records' indexes name no cgroup any more, and
	 * the kept kb_wl_gen a new generation of every index tells them so.
	 */
	for (__u32 idx = 0; k->adopted && !k->wl_adopted && idx < KB_WL_LABELS_MAX; idx++) {
		err = kb_bpf_wl_gen_bump(k, idx);
		if (err)
			return err;
	}
	return opts->wl_max ? wl_free_rebuild(k, ctl.max, ctl.next) : 0;
}

int kb_bpf_wl_ctl(struct kb_bpf *k, struct kb_wl_ctl *ctl)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_wl_ctl), &zero, ctl))
		return -errno;
	return 0;
}

int kb_bpf_workloads_each(struct kb_bpf *k, kb_workload_fn fn, void *ctx)
{
	int fd = bpf_map__fd(k->obs->maps.kb_workloads);
	__u64 key, next, *prev = NULL;
	__u32 idx;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &idx))
			fn(ctx, key, idx);
	}
	return errno == ENOENT ? 0 : -errno;
}

int kb_bpf_conn_sweep(struct kb_bpf *k, uint64_t now)
{
	int fd = bpf_map__fd(k->obs->maps.kb_conn), n = 0;
	__u64 key = 0, next;
	struct kb_sk rec;
	bool more;

	/*
	 * Cookies start at 1: from key 0, which no socket has, the kernel
	 * starts at the first. Then the next key first, as one deleted would
	 * send the walk back to the start.
	 */
	more = !bpf_map_get_next_key(fd, &key, &key);
	for (int i = 0; more && i < KB_CONN_MAX; i++) {
		more = !bpf_map_get_next_key(fd, &key, &next);
		if (!bpf_map_lookup_elem(fd, &key, &rec) && kb_conn_stale(&rec, now) &&
		    !bpf_map_delete_elem(fd, &key))
			n++;
		key = next;
	}
	return n;
}

int kb_bpf_wstats_each(struct kb_bpf *k, kb_wstats_fn fn, void *ctx)
{
	int fd = bpf_map__fd(k->obs->maps.kb_wstats);
	struct kb_wl_key key, next, *prev = NULL;
	struct kb_wl_stats st;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &st))
			fn(ctx, &key, &st);
	}
	return errno == ENOENT ? 0 : -errno;
}

int kb_bpf_workload_gone(struct kb_bpf *k, uint64_t cgroup, uint32_t idx)
{
	__u64 key = cgroup;

	if (bpf_map_delete_elem(bpf_map__fd(k->obs->maps.kb_workloads), &key) && errno != ENOENT)
		return -errno;
	if (idx < k->wl_max && bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_wl_free), NULL, &idx, BPF_ANY))
		return -errno;
	return 0;
}

#define WL_ANY UINT32_MAX

/*
 * Delete the kb_wstats entries of destination dst (WL_ANY: any) and of
 * the workloads set in gone[0..n) (NULL: any). The keys are gathered
 * first: a walk that deletes as it goes starts over after each delete.
 * 0 or -errno.
 */
static int wstats_forget(struct kb_bpf *k, uint32_t dst, const bool *gone, uint32_t n_gone)
{
	int fd = bpf_map__fd(k->obs->maps.kb_wstats), err = 0;
	struct kb_wl_key key, next, *prev = NULL, *del = NULL, *more;
	size_t n = 0, alloc = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if ((dst != WL_ANY && key.dst != dst) ||
		    (gone && (key.workload >= n_gone || !gone[key.workload])))
			continue;
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 64;
			more = realloc(del, alloc * sizeof(*del));
			if (!more) {
				err = -ENOMEM;
				break;
			}
			del = more;
		}
		del[n++] = key;
	}
	for (size_t i = 0; i < n && !err; i++)
		if (bpf_map_delete_elem(fd, &del[i]) && errno != ENOENT)
			err = -errno;
	free(del);
	return err;
}

int kb_bpf_wstats_forget(struct kb_bpf *k, uint32_t dst)
{
	return wstats_forget(k, dst, NULL, 0);
}

int kb_bpf_wstats_forget_workloads(struct kb_bpf *k, const bool *gone, uint32_t n)
{
	return wstats_forget(k, WL_ANY, gone, n);
}
