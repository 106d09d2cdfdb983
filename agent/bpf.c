// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf.h"
#include "log.h"
#include "persist.h"
#include "kb_observe.skel.h"
#include "kb_enforce.skel.h"

struct kb_bpf {
	struct kb_observe *obs;
	struct kb_enforce *enf;
	struct ring_buffer *rb;
	int cgroup_fd;
	int ncpus;
	struct kb_dst_stats *percpu;	/* scratch for one per-CPU lookup */
	kb_event_fn event_fn;
	void *event_ctx;
	bool set_retval;
	bool adopted;		/* maps reused from state_dir */
	__u32 last_gen;		/* kb_verdict.gen of the latest write */
	uint64_t portless;	/* keys with port "any": while any, kb_ports proves nothing */
};

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
		obs->maps.kb_trips, obs->maps.kb_sk_state, obs->maps.kb_events, obs->maps.kb_saved, obs->maps.kb_owner,
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

static int set_owner(struct kb_observe *obs, __u32 gen)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(obs->maps.kb_owner), &zero, &gen, BPF_ANY))
		return -errno;
	return 0;
}

/*
 * Observation runs on across a restart through pinned links. Ours attach
 * beside the previous run's, then kb_owner moves to our generation (one
 * store: from then on only ours count), then theirs go and ours are
 * pinned in their place. Nothing is missed and nothing counted twice.
 */
static int attach_observe(struct kb_observe *obs, int cgroup_fd, const char *dir)
{
	struct bpf_link *old[8] = { 0 };
	struct bpf_program *prog;
	char path[4096];
	size_t n_old = 0;
	int err;

	obs->links.kb_sockops = bpf_program__attach_cgroup(obs->progs.kb_sockops, cgroup_fd);
	if (!obs->links.kb_sockops)
		return -errno;
	obs->links.kb_rst_tx = bpf_program__attach(obs->progs.kb_rst_tx);
	if (!obs->links.kb_rst_tx)
		return -errno;
	if (dir) {
		bpf_object__for_each_program(prog, obs->obj) {
			snprintf(path, sizeof(path), "%s/link_%s", dir, bpf_program__name(prog));
			if (n_old < sizeof(old) / sizeof(old[0]))
				old[n_old] = bpf_link__open(path);
			if (old[n_old])
				n_old++;
		}
	}
	err = set_owner(obs, obs->rodata->kb_gen);
	for (size_t i = 0; i < n_old; i++) {
		bpf_link__unpin(old[i]);
		bpf_link__destroy(old[i]);
	}
	if (err || !dir)
		return err;
	bpf_object__for_each_program(prog, obs->obj) {
		struct bpf_link **link = NULL;

		if (prog == obs->progs.kb_sockops)
			link = &obs->links.kb_sockops;
		else if (prog == obs->progs.kb_rst_tx)
			link = &obs->links.kb_rst_tx;
		if (!link || !*link)
			continue;
		snprintf(path, sizeof(path), "%s/link_%s", dir, bpf_program__name(prog));
		err = bpf_link__pin(*link, path);
		if (err) {
			log_err("bpf: pin %s: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

int kb_bpf_clear_state(const char *dir)
{
	struct dirent *de;
	char path[4096];
	int err = 0;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		log_err("state_dir %s: %s", dir, strerror(errno));
		return -errno;
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
	return err;
}

/* Verifier log lines shown at error level: the ones naming the failing instruction. */
#define VERIFIER_TAIL 6

/*
 * A failed load's verifier log arrives as one message. All of it goes to
 * debug; its last lines, which name the failing instruction and why, go
 * to error level, so the reason reaches the user whatever the log level.
 */
static void log_verifier(const char *msg)
{
	const char *begin = strstr(msg, "-- BEGIN PROG LOAD LOG --\n");
	const char *end = begin ? strstr(begin, "-- END PROG LOAD LOG --") : NULL;
	const char *lines[VERIFIER_TAIL], *p, *nl;
	size_t n = 0;

	if (!end)
		return;
	begin += strlen("-- BEGIN PROG LOAD LOG --\n");
	for (p = begin; p < end; p = nl + 1) {
		nl = memchr(p, '\n', end - p);
		if (!nl)
			nl = end;
		log_debug("libbpf: verifier: %.*s", (int)(nl - p), p);
		if (nl > p)
			lines[n++ % VERIFIER_TAIL] = p;
	}
	for (size_t i = n > VERIFIER_TAIL ? n - VERIFIER_TAIL : 0; i < n; i++) {
		p = lines[i % VERIFIER_TAIL];
		nl = memchr(p, '\n', end - p);
		log_err("bpf: verifier: %.*s", (int)((nl ? nl : end) - p), p);
	}
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's warnings are ours to judge: demote one level (xdp-tools). */
	static const enum log_level map[] = {
		[LIBBPF_WARN] = LOG_LVL_INFO,
		[LIBBPF_INFO] = LOG_LVL_DEBUG,
		[LIBBPF_DEBUG] = LOG_LVL_DEBUG + 1,
	};
	char *msg;
	size_t len;

	if ((unsigned)level > LIBBPF_DEBUG || map[level] > LOG_LVL_DEBUG)
		return 0;
	if (vasprintf(&msg, fmt, ap) < 0)
		return 0;
	if (strstr(msg, "-- BEGIN PROG LOAD LOG --")) {
		log_verifier(msg);
	} else {
		len = strlen(msg);
		while (len && msg[len - 1] == '\n')
			msg[--len] = '\0';
		/* Most of libbpf's messages name it already. */
		log_msg(map[level], "%s%s", strncmp(msg, "libbpf: ", 8) ? "libbpf: " : "", msg);
	}
	free(msg);
	return 0;
}

/*
 * The programs need BPF atomics that return a value (fetch-and-add,
 * compare-and-swap: Linux 5.12), which also brings everything else they
 * use (sock_ops socket storage, tp_btf socket storage). Load one such
 * instruction alone, so an older kernel gets one clear line instead of a
 * verifier log. 0, or -EOPNOTSUPP logged.
 */
static int probe_kernel(void)
{
	const struct bpf_insn insns[] = {
		/* *(u64 *)(r10 - 8) = 0 */
		{ .code = BPF_ST | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_10, .off = -8, .imm = 0 },
		/* r1 = 1 */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_1, .imm = 1 },
		/* r1 = atomic_fetch_add((u64 *)(r10 - 8), r1) */
		{ .code = BPF_STX | BPF_ATOMIC | BPF_DW, .dst_reg = BPF_REG_10,
		  .src_reg = BPF_REG_1, .off = -8, .imm = BPF_ADD | BPF_FETCH },
		/* r0 = 0; exit */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct utsname u;
	int fd;

	fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, NULL, "Dual BSD/GPL", insns,
			   sizeof(insns) / sizeof(insns[0]), NULL);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != EINVAL)
		return 0;	/* not a missing feature: the real load will say what */
	uname(&u);
	log_err("kernel %s is too old: kbreaker needs BPF atomic fetch-and-add and "
		"compare-and-swap, in Linux 5.12 and later", u.release);
	return -EOPNOTSUPP;
}

void kb_bpf_setup_logging(void)
{
	libbpf_set_print(libbpf_print);
}

int kb_cgroup2_root(char *buf, size_t len)
{
	char dev[256], dir[4096], type[64];
	int err = -ENOENT;
	FILE *f;

	f = fopen("/proc/mounts", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*s %*d %*d\n", dev, dir, type) == 3) {
		if (strcmp(type, "cgroup2"))
			continue;
		if (strlen(dir) >= len) {
			err = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, dir);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static int share_map(struct bpf_map *dst, const struct bpf_map *src, const char *name)
{
	int err = bpf_map__reuse_fd(dst, bpf_map__fd(src));

	if (err)
		log_err("bpf: share map %s: %s", name, strerror(-err));
	return err;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct kb_bpf *k = ctx;

	if (size >= sizeof(struct kb_event))
		k->event_fn(k->event_ctx, data);
	return 0;
}

/* Set the prefilter bit of a network-order port in both objects (kb_maps.bpf.h). */
static void port_bit_set(struct kb_bpf *k, __u16 nport)
{
	__u32 bit = 1U << (nport & 31);

	__atomic_fetch_or(&k->obs->bss->kb_ports[nport >> 5], bit, __ATOMIC_RELEASE);
	__atomic_fetch_or(&k->enf->bss->kb_ports[nport >> 5], bit, __ATOMIC_RELEASE);
}

static void ports_exact(struct kb_bpf *k)
{
	__u32 exact = !k->portless;

	__atomic_store_n(&k->obs->bss->kb_ports_exact, exact, __ATOMIC_RELEASE);
	__atomic_store_n(&k->enf->bss->kb_ports_exact, exact, __ATOMIC_RELEASE);
}

/*
 * A key is about to exist: its port's bit first, or "exact" off for an
 * any-port key, so the prefilter never hides it. Bits stay set when keys
 * go (a stale bit costs a lookup, never a miss).
 */
static void port_note(struct kb_bpf *k, __u16 nport)
{
	if (nport) {
		port_bit_set(k, nport);
		return;
	}
	k->portless++;
	ports_exact(k);
}

static void port_forget(struct kb_bpf *k, __u16 nport)
{
	if (!nport || !k->portless)
		return;
	k->portless--;
	ports_exact(k);
}

/* The prefilter for keys a previous run left (state_dir), before anything attaches. */
static int ports_adopt(struct kb_bpf *k)
{
	int hfd = bpf_map__fd(k->obs->maps.kb_dst), lfd = bpf_map__fd(k->obs->maps.kb_dst_lpm);
	struct kb_dst_key hk, *hprev = NULL;
	struct kb_lpm_key lk, *lprev = NULL;

	if (!k->adopted) {
		ports_exact(k);	/* new maps: no key yet */
		return 0;
	}
	while (!bpf_map_get_next_key(hfd, hprev, &hk)) {
		port_note(k, hk.port);
		hprev = &hk;
	}
	if (errno != ENOENT)
		return -errno;
	while (!bpf_map_get_next_key(lfd, lprev, &lk)) {
		port_note(k, lk.port);
		lprev = &lk;
	}
	if (errno != ENOENT)
		return -errno;
	ports_exact(k);
	return 0;
}

/*
 * Gens of adopted verdicts (state_dir) must not come again: the kernel
 * would take a previous run's trip for a current one. Start above them all.
 */
static int init_gen(struct kb_bpf *k)
{
	int fd = bpf_map__fd(k->obs->maps.kb_verdicts);
	__u32 n = bpf_map__max_entries(k->obs->maps.kb_verdicts);
	struct kb_verdict v;

	k->last_gen = 0;
	for (__u32 id = 0; k->adopted && id < n; id++) {
		if (bpf_map_lookup_elem(fd, &id, &v))
			return -errno;
		if (v.gen > k->last_gen)
			k->last_gen = v.gen;
	}
	return 0;
}

int kb_bpf_open(struct kb_bpf **out, const struct kb_bpf_opts *opts)
{
	struct bpf_link *link;
	struct statfs sfs;
	struct kb_bpf *k;
	int err;

	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->cgroup_fd = -1;
	k->ncpus = libbpf_num_possible_cpus();
	if (k->ncpus <= 0) {
		err = k->ncpus ? k->ncpus : -EINVAL;
		log_err("bpf: count possible CPUs: %s", strerror(-err));
		goto fail;
	}
	k->percpu = calloc(k->ncpus, sizeof(*k->percpu));
	if (!k->percpu) {
		err = -ENOMEM;
		goto fail;
	}

	err = probe_kernel();
	if (err)
		goto fail;
	k->obs = kb_observe__open();
	if (!k->obs) {
		err = -errno;
		log_err("bpf: open kb_observe: %s", strerror(-err));
		goto fail;
	}
	bpf_map__set_max_entries(k->obs->maps.kb_dst, opts->capacity);
	bpf_map__set_max_entries(k->obs->maps.kb_dst_lpm, opts->capacity);
	bpf_map__set_max_entries(k->obs->maps.kb_stats, opts->capacity);
	bpf_map__set_max_entries(k->obs->maps.kb_verdicts, opts->capacity);
	bpf_map__set_max_entries(k->obs->maps.kb_trips, opts->capacity);
	bpf_map__set_max_entries(k->obs->maps.kb_saved, opts->capacity);
	k->obs->rodata->kb_gen = 1;
	if (opts->state_dir) {
		err = prepare_state_dir(opts->state_dir);
		err = err ?: pin_maps(k->obs, opts->state_dir, &k->adopted);
		if (err)
			goto fail;
		/* Take over from whichever run counts now; wrap-around skips 0 (nobody). */
		k->obs->rodata->kb_gen = pinned_owner(opts->state_dir) + 1 ?: 1;
	}
	err = kb_observe__load(k->obs);
	if (err == -EPERM) {
		log_err("bpf: load kb_observe: %s: loading BPF needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_RESOURCE)",
			strerror(-err));
		goto fail;
	}
	if (err) {
		if (k->adopted)
			log_err("bpf: the state in %s does not fit this configuration or version "
				"(max_destinations changed?); kbreakerd --clear-state starts afresh: %s",
				opts->state_dir, strerror(-err));
		else
			log_err("bpf: load kb_observe: %s", strerror(-err));
		goto fail;
	}

	k->enf = kb_enforce__open();
	if (!k->enf) {
		err = -errno;
		log_err("bpf: open kb_enforce: %s", strerror(-err));
		goto fail;
	}
	err = share_map(k->enf->maps.kb_dst, k->obs->maps.kb_dst, "kb_dst");
	err = err ?: share_map(k->enf->maps.kb_dst_lpm, k->obs->maps.kb_dst_lpm, "kb_dst_lpm");
	err = err ?: share_map(k->enf->maps.kb_stats, k->obs->maps.kb_stats, "kb_stats");
	err = err ?: share_map(k->enf->maps.kb_verdicts, k->obs->maps.kb_verdicts, "kb_verdicts");
	err = err ?: share_map(k->enf->maps.kb_trips, k->obs->maps.kb_trips, "kb_trips");
	if (err)
		goto fail;
	err = kb_enforce__load(k->enf);
	if (err) {
		log_err("bpf: load kb_enforce: %s", strerror(-err));
		goto fail;
	}
	err = ports_adopt(k);
	if (err) {
		log_err("bpf: read the destinations kept in %s: %s", opts->state_dir, strerror(-err));
		goto fail;
	}
	k->set_retval = libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
						BPF_FUNC_set_retval, NULL) == 1;

	k->cgroup_fd = open(opts->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k->cgroup_fd < 0) {
		err = -errno;
		log_err("bpf: open cgroup %s: %s", opts->cgroup, strerror(-err));
		goto fail;
	}
	/* attach on any other directory fails with a bare EBADF */
	if (fstatfs(k->cgroup_fd, &sfs) == 0 && sfs.f_type != CGROUP2_SUPER_MAGIC) {
		err = -ENOTDIR;
		log_err("bpf: cgroup %s: not a cgroup v2 directory", opts->cgroup);
		goto fail;
	}
	err = attach_observe(k->obs, k->cgroup_fd, opts->state_dir);
	if (err) {
		log_err("bpf: attach observation (sockops to %s, tp_btf/tcp_send_reset): %s",
			opts->cgroup, strerror(-err));
		goto fail;
	}
	err = init_gen(k);
	if (err)
		goto fail;

	link = bpf_program__attach_cgroup(k->enf->progs.kb_connect4, k->cgroup_fd);
	if (!link) {
		err = -errno;
		log_err("bpf: attach cgroup/connect4 to %s: %s", opts->cgroup, strerror(-err));
		goto fail;
	}
	k->enf->links.kb_connect4 = link;
	link = bpf_program__attach_cgroup(k->enf->progs.kb_connect6, k->cgroup_fd);
	if (!link) {
		err = -errno;
		log_err("bpf: attach cgroup/connect6 to %s: %s", opts->cgroup, strerror(-err));
		goto fail;
	}
	k->enf->links.kb_connect6 = link;

	k->rb = ring_buffer__new(bpf_map__fd(k->obs->maps.kb_events), on_sample, k, NULL);
	if (!k->rb) {
		err = -errno;
		log_err("bpf: ring buffer: %s", strerror(-err));
		goto fail;
	}
	*out = k;
	return 0;
fail:
	kb_bpf_close(k);
	return err;
}

void kb_bpf_detach_enforcement(struct kb_bpf *k)
{
	if (!k || !k->enf)
		return;
	bpf_link__destroy(k->enf->links.kb_connect4);
	bpf_link__destroy(k->enf->links.kb_connect6);
	k->enf->links.kb_connect4 = NULL;
	k->enf->links.kb_connect6 = NULL;
}

void kb_bpf_close(struct kb_bpf *k)
{
	if (!k)
		return;
	ring_buffer__free(k->rb);
	/* Enforcement first: from here on every connect is allowed. */
	kb_enforce__destroy(k->enf);
	kb_observe__destroy(k->obs);
	if (k->cgroup_fd >= 0)
		close(k->cgroup_fd);
	free(k->percpu);
	free(k);
}

/* Build the map key for (addr/prefix_len, port): hash for full addresses, LPM for prefixes. */
static int dst_map_key(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		       uint32_t netns, struct kb_dst_key *hk, struct kb_lpm_key *lk)
{
	if (prefix_len > 128)
		return -EINVAL;
	if (prefix_len == 128) {
		memset(hk, 0, sizeof(*hk));
		memcpy(hk->addr, addr, sizeof(hk->addr));
		hk->port = htons(port);
		hk->netns = netns;
		return bpf_map__fd(k->obs->maps.kb_dst);
	}
	memset(lk, 0, sizeof(*lk));
	lk->prefixlen = KB_LPM_PRE + prefix_len;
	lk->netns = netns;
	lk->port = htons(port);
	memcpy(lk->addr, addr, sizeof(lk->addr));
	return bpf_map__fd(k->obs->maps.kb_dst_lpm);
}

int kb_bpf_add_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id)
{
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd = dst_map_key(k, addr, prefix_len, port, netns, &hk, &lk), err;
	void *key = prefix_len == 128 ? (void *)&hk : (void *)&lk;

	if (fd < 0)
		return fd;
	/* Noted before the key exists; only a new key counts as one more any-port key. */
	port_note(k, htons(port));
	if (!bpf_map_update_elem(fd, key, &dst_id, BPF_NOEXIST))
		return 0;
	err = errno == EEXIST && !bpf_map_update_elem(fd, key, &dst_id, BPF_EXIST) ? 0 : -errno;
	port_forget(k, htons(port));
	return err;
}

int kb_bpf_del_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns)
{
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd = dst_map_key(k, addr, prefix_len, port, netns, &hk, &lk);

	if (fd < 0)
		return fd;
	if (bpf_map_delete_elem(fd, prefix_len == 128 ? (void *)&hk : (void *)&lk)) {
		if (errno != ENOENT)
			return -errno;
		return 0;
	}
	port_forget(k, htons(port));
	return 0;
}

void kb_bpf_set_lookup_flags(struct kb_bpf *k, uint32_t flags)
{
	/* Both objects read their own copy; a plain store into the mmap'd .bss suffices. */
	__atomic_store_n(&k->obs->bss->kb_lookup_flags, flags, __ATOMIC_RELEASE);
	__atomic_store_n(&k->enf->bss->kb_lookup_flags, flags, __ATOMIC_RELEASE);
}

int kb_bpf_set_verdict(struct kb_bpf *k, uint32_t dst_id, const struct kb_verdict *v)
{
	struct kb_verdict w = *v;

	/* A new gen starts the kernel's trip state afresh (kb_judge.h); 0 means none. */
	w.gen = ++k->last_gen ?: ++k->last_gen;
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_verdicts), &dst_id, &w, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_read_trip(struct kb_bpf *k, uint32_t dst_id, struct kb_trip *t, struct kb_verdict *v)
{
	if (bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_trips), &dst_id, t) ||
	    bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_verdicts), &dst_id, v))
		return -errno;
	return 0;
}

int kb_bpf_get_verdict(struct kb_bpf *k, uint32_t dst_id, struct kb_verdict *v)
{
	if (bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_verdicts), &dst_id, v))
		return -errno;
	return 0;
}

int kb_bpf_put_verdict(struct kb_bpf *k, uint32_t dst_id, const struct kb_verdict *v)
{
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_verdicts), &dst_id, v, BPF_ANY))
		return -errno;
	return 0;
}

/* Destinations per batched lookup: bounds the buffer to BATCH x CPUs values. */
#define STATS_BATCH 128

static void sum_cpus(const struct kb_dst_stats *percpu, int ncpus, struct kb_dst_stats *sum)
{
	__u64 *dst = (__u64 *)sum;
	size_t words = sizeof(*sum) / sizeof(__u64);

	memset(sum, 0, sizeof(*sum));
	for (int cpu = 0; cpu < ncpus; cpu++) {
		const __u64 *src = (const __u64 *)&percpu[cpu];

		for (size_t w = 0; w < words; w++)
			dst[w] += src[w];
	}
}

int kb_bpf_read_all_stats(struct kb_bpf *k, uint32_t n, struct kb_dst_stats *sums)
{
	int fd = bpf_map__fd(k->obs->maps.kb_stats), err = 0;
	struct kb_dst_stats *vals;
	__u32 keys[STATS_BATCH] = { 0 }, in = 0, out = 0;

	vals = calloc((size_t)STATS_BATCH * k->ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (uint32_t done = 0; done < n && !err;) {
		__u32 count = n - done < STATS_BATCH ? n - done : STATS_BATCH;

		/* Arrays batch by index: the token is the next key. */
		if (bpf_map_lookup_batch(fd, done ? &in : NULL, &out, keys, vals, &count, NULL) &&
		    errno != ENOENT) {
			err = -errno;
			break;
		}
		if (!count)
			break;
		for (__u32 i = 0; i < count && done + i < n; i++)
			sum_cpus(&vals[(size_t)i * k->ncpus], k->ncpus, &sums[keys[i]]);
		done += count;
		in = out;
	}
	free(vals);
	return err;
}

int kb_bpf_reset_stats(struct kb_bpf *k, uint32_t dst_id)
{
	memset(k->percpu, 0, k->ncpus * sizeof(*k->percpu));
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_stats), &dst_id, k->percpu, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_set_stats(struct kb_bpf *k, uint32_t dst_id, const struct kb_dst_stats *sum)
{
	memset(k->percpu, 0, k->ncpus * sizeof(*k->percpu));
	k->percpu[0] = *sum;
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_stats), &dst_id, k->percpu, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_read_stats(struct kb_bpf *k, uint32_t dst_id, struct kb_dst_stats *sum)
{
	if (bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_stats), &dst_id, k->percpu))
		return -errno;
	sum_cpus(k->percpu, k->ncpus, sum);
	return 0;
}

int kb_bpf_events_fd(const struct kb_bpf *k)
{
	return ring_buffer__epoll_fd(k->rb);
}

int kb_bpf_drain(struct kb_bpf *k, kb_event_fn fn, void *ctx)
{
	k->event_fn = fn;
	k->event_ctx = ctx;
	return ring_buffer__consume(k->rb);
}

uint64_t kb_bpf_lost_total(const struct kb_bpf *k)
{
	return __atomic_load_n(&k->obs->bss->kb_lost_total, __ATOMIC_RELAXED);
}

static size_t obj_prog_stats(struct bpf_object *obj, struct kb_prog_stats *out, size_t n, size_t max)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);

		if (n == max || bpf_program__fd(prog) < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			continue;
		out[n].name = bpf_program__name(prog);
		out[n].run_cnt = info.run_cnt;
		out[n].run_time_ns = info.run_time_ns;
		out[n].recursion_misses = info.recursion_misses;
		n++;
	}
	return n;
}

size_t kb_bpf_prog_stats(struct kb_bpf *k, struct kb_prog_stats *out, size_t max)
{
	size_t n = obj_prog_stats(k->obs->obj, out, 0, max);

	return obj_prog_stats(k->enf->obj, out, n, max);
}

bool kb_bpf_adopted(const struct kb_bpf *k)
{
	return k->adopted;
}

int kb_bpf_prune_dsts(struct kb_bpf *k, kb_dst_keep_fn keep, void *ctx)
{
	int hfd = bpf_map__fd(k->obs->maps.kb_dst), lfd = bpf_map__fd(k->obs->maps.kb_dst_lpm);
	struct kb_dst_key hk, hnext, *hprev = NULL;
	struct kb_lpm_key lk, lnext, *lprev = NULL;
	__u32 id;

	/* Deleting the key just visited keeps the walk going from it. */
	while (!bpf_map_get_next_key(hfd, hprev, &hnext)) {
		hk = hnext;
		hprev = &hk;
		if (!bpf_map_lookup_elem(hfd, &hk, &id) &&
		    !keep(ctx, hk.addr, 128, ntohs(hk.port), hk.netns, id) &&
		    !bpf_map_delete_elem(hfd, &hk))
			port_forget(k, hk.port);
	}
	while (!bpf_map_get_next_key(lfd, lprev, &lnext)) {
		lk = lnext;
		lprev = &lk;
		if (!bpf_map_lookup_elem(lfd, &lk, &id) &&
		    !keep(ctx, lk.addr, lk.prefixlen - KB_LPM_PRE, ntohs(lk.port), lk.netns, id) &&
		    !bpf_map_delete_elem(lfd, &lk))
			port_forget(k, lk.port);
	}
	return 0;
}

int kb_bpf_saved_each(struct kb_bpf *k, kb_saved_fn fn, void *ctx)
{
	int fd = bpf_map__fd(k->obs->maps.kb_saved);
	struct persist_record *v;
	__u32 key, next, *prev = NULL;

	v = malloc(sizeof(*v));
	if (!v)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, v))
			fn(ctx, key, v);
	}
	free(v);
	return 0;
}

int kb_bpf_saved_put(struct kb_bpf *k, uint32_t dst_id, const struct persist_record *rec)
{
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_saved), &dst_id, rec, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_saved_del(struct kb_bpf *k, uint32_t dst_id)
{
	if (bpf_map_delete_elem(bpf_map__fd(k->obs->maps.kb_saved), &dst_id) && errno != ENOENT)
		return -errno;
	return 0;
}

int kb_bpf_probe_access(struct kb_bpf *k)
{
	struct kb_verdict v;
	__u32 id = 0;

	if (bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_verdicts), &id, &v))
		return -errno;
	return 0;
}

bool kb_bpf_refuses_with_econnrefused(const struct kb_bpf *k)
{
	return k->set_retval;
}
