// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bpf_pin: what state_dir keeps across a restart. The maps are pinned there
 * and adopted by the next start; the observing link is pinned too, and a
 * restart hands observation over from the previous run's link to ours
 * without missing or doubling a count.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf_priv.h"
#include "log.h"

/*
 * state_dir must sit on bpffs. The usual /sys/fs/bpf is often not mounted
 * (no systemd): mount it there, as systemd would.
 */
static int prepare_state_dir(const char *dir)
{
	char parent[4096], *slash;
	struct statfs sf;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent) {
		log_err("state_dir %s: must be a directory below a bpf filesystem mount", dir);
		return -EINVAL;
	}
	*slash = '\0';
	if (statfs(parent, &sf)) {
		log_err("state_dir %s: %s: %s", dir, parent, strerror(errno));
		return -errno;
	}
	if (sf.f_type != BPF_FS_MAGIC && !strcmp(parent, "/sys/fs/bpf")) {
		if (mount("bpf", parent, "bpf", 0, "mode=0700")) {
			log_err("state_dir %s: mount bpffs on %s: %s", dir, parent, strerror(errno));
			return -errno;
		}
		log_info("mounted bpffs\tpath=%s", parent);
		if (statfs(parent, &sf))
			return -errno;
	}
	if (sf.f_type != BPF_FS_MAGIC) {
		log_err("state_dir %s: %s is not a bpf filesystem", dir, parent);
		return -EINVAL;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_err("state_dir %s: %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Maps pinned in state_dir, by their names. */
static int pin_maps(struct kb_observe *obs, const char *dir, bool *adopted)
{
	struct bpf_map *maps[] = {
		obs->maps.kb_dst, obs->maps.kb_dst_lpm, obs->maps.kb_stats, obs->maps.kb_verdicts,
		obs->maps.kb_trips, obs->maps.kb_sk_state, obs->maps.kb_conn, obs->maps.kb_events,
		obs->maps.kb_saved, obs->maps.kb_owner, obs->maps.kb_wl_ctl, obs->maps.kb_workloads,
		obs->maps.kb_wstats, obs->maps.kb_wl_free, obs->maps.kb_wl_gen,
	};
	char path[4096];
	int err;

	snprintf(path, sizeof(path), "%s/kb_saved", dir);
	*adopted = !access(path, F_OK);
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(maps[i]));
		err = bpf_map__set_pin_path(maps[i], path);
		if (err)
			return err;
	}
	return 0;
}

/* The generation counting now (kb_owner), from the pinned map; 0 if none. */
static __u32 pinned_owner(const char *dir)
{
	char path[4096];
	__u32 zero = 0, owner = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/kb_owner", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_map_lookup_elem(fd, &zero, &owner))
		owner = 0;
	close(fd);
	return owner;
}

/*
 * Two agents on one state_dir would adopt the same maps and both run their
 * hooks on them: probe permits taken twice, refusals counted twice, two
 * writers of every verdict. The lock goes with the process, however it
 * ends, so a restart finds it free. Returns the locked directory's fd, or
 * -errno (-ENOENT: no such directory).
 */
static int lock_state_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (fd < 0) {
		err = -errno;
		if (err != -ENOENT)
			log_err("state_dir %s: %s", dir, strerror(-err));
		return err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		err = -errno;
		if (err == -EWOULDBLOCK)
			log_err("state_dir %s: in use by another kbreakerd (two on the same state would "
				"both enforce and count on it)", dir);
		else
			log_err("state_dir %s: lock: %s", dir, strerror(-err));
		close(fd);
		return err;
	}
	return fd;
}

int kb_bpf_pin(struct kb_bpf *k, const struct kb_bpf_opts *opts)
{
	const char *dir = opts->state_dir;
	int err;

	err = prepare_state_dir(dir);
	if (!err) {
		k->state_fd = lock_state_dir(dir);
		err = k->state_fd < 0 ? k->state_fd : 0;
	}
	err = err ?: kb_bpf_wl_unpin_stale(dir, opts, kb_bpf_wl_stats_max(opts->capacity, opts->wl_max));
	if (err < 0)
		return err;
	k->wl_adopted = err == 1;
	err = pin_maps(k->obs, dir, &k->adopted);
	if (err)
		return err;
	/* Take over from whichever run counts now; wrap-around skips 0 (nobody). */
	k->obs->rodata->kb_gen = pinned_owner(dir) + 1 ?: 1;
	return 0;
}

static int set_owner(struct kb_observe *obs, __u32 gen)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(obs->maps.kb_owner), &zero, &gen, BPF_ANY))
		return -errno;
	return 0;
}

/* kb_rst_tx (tp_btf/tcp_send_reset) counted resets sent until kb_sockops did. */
static const char *const gone_progs[] = { "kb_rst_tx" };

/* The previous run's pinned link of program name into *old: 1, or 0 if none. */
static size_t open_old_link(const char *dir, const char *name, struct bpf_link **old)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/link_%s", dir, name);
	/* libbpf would log a missing one: nothing to say on a first start. */
	*old = access(path, F_OK) ? NULL : bpf_link__open(path);
	return *old != NULL;
}

/*
 * Wait until every BPF program that started before the call has returned
 * (an RCU grace period): an update of a map-in-map makes the kernel wait
 * so (maybe_wait_bpf_programs()), and user space has no plainer way to.
 * 0 or -errno.
 */
static int wait_bpf_programs(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts);
	int inner, outer, err = 0;
	__u32 zero = 0;

	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kb_grace_in", 4, 4, 1, NULL);
	if (inner < 0)
		return -errno;
	opts.inner_map_fd = inner;
	outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "kb_grace", 4, 4, 1, &opts);
	if (outer < 0 || bpf_map_update_elem(outer, &zero, &inner, BPF_ANY))
		err = -errno;
	if (outer >= 0)
		close(outer);
	close(inner);
	return err;
}

/*
 * Observation runs on across a restart through pinned links. Ours attach
 * beside the previous run's, then kb_owner moves to our generation (one
 * store: from then on only ours count), then theirs go and ours are
 * pinned in their place. Nothing is missed and nothing counted twice.
 *
 * Between the attach and the move, a grace period: a callback that read
 * the cgroup's program list before ours joined it runs theirs alone, and
 * would find kb_owner already moved and count nothing.
 */
int kb_bpf_attach_observe(struct kb_observe *obs, int cgroup_fd, const char *dir)
{
	bool locked = bpf_program__fd(obs->progs.kb_sockops) < 0;
	struct bpf_program *prog, *ours = locked ? obs->progs.kb_sockops_locked : obs->progs.kb_sockops;
	struct bpf_link *old[8] = { 0 }, **link = locked ? &obs->links.kb_sockops_locked
						     : &obs->links.kb_sockops;
	char path[4096];
	size_t n_old = 0;
	int err;

	*link = bpf_program__attach_cgroup(ours, cgroup_fd);
	if (!*link)
		return -errno;
	if (dir) {
		bpf_object__for_each_program(prog, obs->obj)
			if (n_old < sizeof(old) / sizeof(old[0]))
				n_old += open_old_link(dir, bpf_program__name(prog), &old[n_old]);
		/* Programs an older version attached, pinned, and this one has not. */
		for (size_t i = 0; i < sizeof(gone_progs) / sizeof(gone_progs[0]); i++)
			if (n_old < sizeof(old) / sizeof(old[0]))
				n_old += open_old_link(dir, gone_progs[i], &old[n_old]);
	}
	err = n_old ? wait_bpf_programs() : 0;
	if (err)
		log_warn("bpf: wait for running programs before the hand-over: %s; an outcome "
			 "in flight may go uncounted", strerror(-err));
	err = set_owner(obs, obs->rodata->kb_gen);
	for (size_t i = 0; i < n_old; i++) {
		bpf_link__unpin(old[i]);
		bpf_link__destroy(old[i]);
	}
	if (err || !dir)
		return err;
	snprintf(path, sizeof(path), "%s/link_%s", dir, bpf_program__name(ours));
	err = bpf_link__pin(*link, path);
	if (err)
		log_err("bpf: pin %s: %s", path, strerror(-err));
	return err;
}

int kb_bpf_clear_state(const char *dir)
{
	int lock = lock_state_dir(dir), fd, err = 0;
	struct dirent *de;
	char path[4096];
	DIR *d;

	if (lock < 0)
		return lock == -ENOENT ? 0 : lock;
	fd = dup(lock);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		err = -errno;
		log_err("state_dir %s: %s", dir, strerror(-err));
		if (fd >= 0)
			close(fd);
		close(lock);
		return err;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) && !err) {
			err = -errno;
			log_err("state_dir: remove %s: %s", path, strerror(errno));
		}
	}
	closedir(d);
	if (!err && rmdir(dir)) {
		err = -errno;
		log_err("state_dir: remove %s: %s", dir, strerror(errno));
	}
	close(lock);
	return err;
}
