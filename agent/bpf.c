// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bpf: open, probe the kernel, load and attach; detach and close. Pinning
 * and the hand-over at a restart are in bpf_pin.c, what is done with the
 * maps once loaded in bpf_maps.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf_priv.h"
#include "clock.h"
#include "log.h"

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
 * Which build of the programs this kernel takes (kb_judge.h): 1 when it
 * has BPF atomics that return a value (fetch-and-add, compare-and-swap:
 * Linux 5.12), found by loading one such instruction alone; 0 when it has
 * not, and the programs keep their breakers under bpf_spin_lock. A kernel
 * without what both builds need (socket casts in sock_ops, Linux 5.10)
 * gets one clear line instead of a verifier log: -EOPNOTSUPP, logged.
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
		return 1;
	}
	if (errno != EINVAL)
		return 1;	/* not a missing feature: the real load will say what */
	/* 0: missing; < 0: cannot tell, and the real load will say what. */
	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_skc_to_tcp_sock, NULL))
		return 0;
	uname(&u);
	log_err("kernel %s is too old: kbreaker needs BPF socket casts in sock_ops "
		"programs (bpf_skc_to_tcp_sock), in Linux 5.10 and later", u.release);
	return -EOPNOTSUPP;
}

void kb_bpf_setup_logging(void)
{
	libbpf_set_print(libbpf_print);
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

/* The handle and its per-CPU scratch buffer. NULL with errno set. */
static struct kb_bpf *handle_new(void)
{
	struct kb_bpf *k;
	int err;

	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->cgroup_fd = -1;
	k->state_fd = -1;
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
	return k;
fail:
	free(k);
	errno = -err;
	return NULL;
}

/*
 * Open kb_observe, size its maps, pin them in state_dir (adopting what a
 * previous run left there) and load it. 0 or -errno, logged.
 */
static int load_observe(struct kb_bpf *k, const struct kb_bpf_opts *opts)
{
	struct bpf_map *sized[6];
	int err;

	k->obs = kb_observe__open();
	if (!k->obs) {
		err = -errno;
		log_err("bpf: open kb_observe: %s", strerror(-err));
		return err;
	}
	sized[0] = k->obs->maps.kb_dst;
	sized[1] = k->obs->maps.kb_dst_lpm;
	sized[2] = k->obs->maps.kb_stats;
	sized[3] = k->obs->maps.kb_verdicts;
	sized[4] = k->obs->maps.kb_trips;
	sized[5] = k->obs->maps.kb_saved;
	for (size_t i = 0; i < sizeof(sized) / sizeof(sized[0]); i++)
		bpf_map__set_max_entries(sized[i], opts->capacity);
	bpf_map__set_max_entries(k->obs->maps.kb_wstats, kb_bpf_wl_stats_max(opts->capacity, opts->wl_max));
	k->obs->rodata->kb_gen = 1;
	if (opts->state_dir) {
		err = kb_bpf_pin(k, opts);
		if (err)
			return err;
	}
	bpf_program__set_autoload(k->obs->progs.kb_sockops, k->atomics);
	bpf_program__set_autoload(k->obs->progs.kb_sockops_locked, !k->atomics);
	err = kb_observe__load(k->obs);
	if (err == -EPERM)
		log_err("bpf: load kb_observe: %s: loading BPF needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_RESOURCE)",
			strerror(-err));
	else if (err && k->adopted)
		log_err("bpf: the state in %s does not fit this configuration or version "
			"(max_destinations changed?); kbreakerd --clear-state starts afresh: %s",
			opts->state_dir, strerror(-err));
	else if (err)
		log_err("bpf: load kb_observe: %s", strerror(-err));
	return err;
}

/* Open kb_enforce on kb_observe's maps and load it. 0 or -errno, logged. */
static int load_enforce(struct kb_bpf *k, const struct kb_bpf_opts *opts)
{
	int err;

	k->enf = kb_enforce__open();
	if (!k->enf) {
		err = -errno;
		log_err("bpf: open kb_enforce: %s", strerror(-err));
		return err;
	}
	err = share_map(k->enf->maps.kb_dst, k->obs->maps.kb_dst, "kb_dst");
	err = err ?: share_map(k->enf->maps.kb_dst_lpm, k->obs->maps.kb_dst_lpm, "kb_dst_lpm");
	err = err ?: share_map(k->enf->maps.kb_stats, k->obs->maps.kb_stats, "kb_stats");
	err = err ?: share_map(k->enf->maps.kb_verdicts, k->obs->maps.kb_verdicts, "kb_verdicts");
	err = err ?: share_map(k->enf->maps.kb_trips, k->obs->maps.kb_trips, "kb_trips");
	err = err ?: share_map(k->enf->maps.kb_wl_ctl, k->obs->maps.kb_wl_ctl, "kb_wl_ctl");
	err = err ?: share_map(k->enf->maps.kb_workloads, k->obs->maps.kb_workloads, "kb_workloads");
	err = err ?: share_map(k->enf->maps.kb_wstats, k->obs->maps.kb_wstats, "kb_wstats");
	err = err ?: share_map(k->enf->maps.kb_wl_free, k->obs->maps.kb_wl_free, "kb_wl_free");
	err = err ?: share_map(k->enf->maps.kb_wl_gen, k->obs->maps.kb_wl_gen, "kb_wl_gen");
	err = err ?: share_map(k->enf->maps.kb_sk_state, k->obs->maps.kb_sk_state, "kb_sk_state");
	err = err ?: share_map(k->enf->maps.kb_conn, k->obs->maps.kb_conn, "kb_conn");
	if (err)
		return err;
	bpf_program__set_autoload(k->enf->progs.kb_connect4, k->atomics);
	bpf_program__set_autoload(k->enf->progs.kb_connect6, k->atomics);
	bpf_program__set_autoload(k->enf->progs.kb_connect4_locked, !k->atomics);
	bpf_program__set_autoload(k->enf->progs.kb_connect6_locked, !k->atomics);
	/* Not loaded unless attached: /metrics lists every program loaded. */
	bpf_program__set_autoload(k->enf->progs.kb_sockopt, opts->fastopen_ignore);
	k->enf->rodata->kb_fastopen_guard = opts->fastopen_ignore;
	err = kb_enforce__load(k->enf);
	if (err)
		log_err("bpf: load kb_enforce: %s", strerror(-err));
	return err;
}

/* Attach one of kb_enforce's programs to the cgroup. 0 or -errno, logged. */
static int attach_hook(struct kb_bpf *k, struct bpf_program *prog, struct bpf_link **link,
		       const char *hook, const char *cgroup)
{
	int err;

	*link = bpf_program__attach_cgroup(prog, k->cgroup_fd);
	if (*link)
		return 0;
	err = -errno;
	log_err("bpf: attach cgroup/%s to %s: %s", hook, cgroup, strerror(-err));
	return err;
}

/*
 * Open the cgroup, attach observation, then (verdict gens settled) the
 * connect hooks, and the setsockopt one if asked. 0 or -errno, logged.
 */
static int attach_all(struct kb_bpf *k, const struct kb_bpf_opts *opts)
{
	const char *cgroup = opts->cgroup;
	struct kb_enforce *e = k->enf;
	bool a = k->atomics;
	struct statfs sfs;
	int err;

	k->cgroup_fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k->cgroup_fd < 0) {
		err = -errno;
		log_err("bpf: open cgroup %s: %s", cgroup, strerror(-err));
		return err;
	}
	/* attach on any other directory fails with a bare EBADF */
	if (fstatfs(k->cgroup_fd, &sfs) == 0 && sfs.f_type != CGROUP2_SUPER_MAGIC) {
		log_err("bpf: cgroup %s: not a cgroup v2 directory", cgroup);
		return -ENOTDIR;
	}
	err = kb_bpf_attach_observe(k->obs, k->cgroup_fd, opts->state_dir);
	if (err) {
		log_err("bpf: attach observation (sockops to %s): %s",
			cgroup, strerror(-err));
		return err;
	}
	err = kb_bpf_gen_init(k);
	if (err)
		return err;
	/* The build load_enforce() loaded (kb_judge.h). */
	err = attach_hook(k, a ? e->progs.kb_connect4 : e->progs.kb_connect4_locked,
			  a ? &e->links.kb_connect4 : &e->links.kb_connect4_locked, "connect4", cgroup);
	err = err ?: attach_hook(k, a ? e->progs.kb_connect6 : e->progs.kb_connect6_locked,
				 a ? &e->links.kb_connect6 : &e->links.kb_connect6_locked,
				 "connect6", cgroup);
	if (err || !opts->fastopen_ignore)
		return err;
	return attach_hook(k, e->progs.kb_sockopt, &e->links.kb_sockopt, "setsockopt", cgroup);
}

int kb_bpf_open(struct kb_bpf **out, const struct kb_bpf_opts *opts)
{
	struct kb_bpf *k;
	int err;

	k = handle_new();
	if (!k)
		return -errno;
	err = probe_kernel();
	k->atomics = err > 0;
	err = err < 0 ? err : load_observe(k, opts);
	err = err ?: load_enforce(k, opts);
	if (err)
		goto fail;
	err = kb_bpf_ports_adopt(k);
	if (err) {
		log_err("bpf: read the destinations kept in %s: %s", opts->state_dir, strerror(-err));
		goto fail;
	}
	err = kb_bpf_wl_start(k, opts);
	if (err) {
		log_err("bpf: workload settings: %s", strerror(-err));
		goto fail;
	}
	k->set_retval = libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
						BPF_FUNC_set_retval, NULL) == 1;
	kb_bpf_set_lookup_flags(k, opts->lookup_flags);
	kb_bpf_set_failopen_after(k, opts->failopen_after_ns);
	kb_bpf_alive(k, clock_mono_ns());
	err = attach_all(k, opts);
	if (err)
		goto fail;
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
	bpf_link__destroy(k->enf->links.kb_sockopt);
	k->enf->links.kb_connect4 = NULL;
	k->enf->links.kb_connect6 = NULL;
	k->enf->links.kb_sockopt = NULL;
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
	if (k->state_fd >= 0)
		close(k->state_fd);
	free(k->percpu);
	free(k);
}

/*
 * A program's name in metrics: a *_locked build (kb_judge.h) goes by its
 * twin's, so series and alerts stay the same on every kernel.
 */
static const char *prog_label(struct bpf_object *obj, struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog), *end = strrchr(name, '_');
	struct bpf_program *twin;
	char base[64];

	if (!end || strcmp(end, "_locked") || (size_t)(end - name) >= sizeof(base))
		return name;
	snprintf(base, sizeof(base), "%.*s", (int)(end - name), name);
	twin = bpf_object__find_program_by_name(obj, base);
	return twin ? bpf_program__name(twin) : name;
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
		out[n].name = prog_label(obj, prog);
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

bool kb_bpf_wl_adopted(const struct kb_bpf *k)
{
	return k->wl_adopted;
}

bool kb_bpf_adopted(const struct kb_bpf *k)
{
	return k->adopted;
}

bool kb_bpf_refuses_with_econnrefused(const struct kb_bpf *k)
{
	return k->set_retval;
}
