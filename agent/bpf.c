// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf.h"
#include "log.h"
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
};

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's warnings are ours to judge: demote one level (xdp-tools). */
	static const enum log_level map[] = {
		[LIBBPF_WARN] = LOG_LVL_INFO,
		[LIBBPF_INFO] = LOG_LVL_DEBUG,
		[LIBBPF_DEBUG] = LOG_LVL_DEBUG + 1,
	};
	char line[1024];

	if ((unsigned)level > LIBBPF_DEBUG || map[level] > LOG_LVL_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_msg(map[level], "libbpf: %s", line);
	return 0;
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

int kb_bpf_open(struct kb_bpf **out, const struct kb_bpf_opts *opts)
{
	struct bpf_link *link;
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
	err = kb_observe__load(k->obs);
	if (err) {
		log_err("bpf: load kb_observe (the verifier's reason is logged above at level info): %s",
			strerror(-err));
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
	if (err)
		goto fail;
	err = kb_enforce__load(k->enf);
	if (err) {
		log_err("bpf: load kb_enforce (the verifier's reason is logged above at level info): %s",
			strerror(-err));
		goto fail;
	}
	k->set_retval = libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
						BPF_FUNC_set_retval, NULL) == 1;

	err = kb_observe__attach(k->obs);
	if (err) {
		log_err("bpf: attach tp_btf/inet_sock_set_state: %s", strerror(-err));
		goto fail;
	}

	k->cgroup_fd = open(opts->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k->cgroup_fd < 0) {
		err = -errno;
		log_err("bpf: open cgroup %s: %s", opts->cgroup, strerror(-err));
		goto fail;
	}
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
		       struct kb_dst_key *hk, struct kb_lpm_key *lk)
{
	if (prefix_len > 128)
		return -EINVAL;
	if (prefix_len == 128) {
		memset(hk, 0, sizeof(*hk));
		memcpy(hk->addr, addr, sizeof(hk->addr));
		hk->port = htons(port);
		return bpf_map__fd(k->obs->maps.kb_dst);
	}
	memset(lk, 0, sizeof(*lk));
	lk->prefixlen = 16 + prefix_len;
	lk->port = htons(port);
	memcpy(lk->addr, addr, sizeof(lk->addr));
	return bpf_map__fd(k->obs->maps.kb_dst_lpm);
}

int kb_bpf_add_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t dst_id)
{
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd = dst_map_key(k, addr, prefix_len, port, &hk, &lk);

	if (fd < 0)
		return fd;
	if (bpf_map_update_elem(fd, prefix_len == 128 ? (void *)&hk : (void *)&lk, &dst_id, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_del_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port)
{
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd = dst_map_key(k, addr, prefix_len, port, &hk, &lk);

	if (fd < 0)
		return fd;
	if (bpf_map_delete_elem(fd, prefix_len == 128 ? (void *)&hk : (void *)&lk) && errno != ENOENT)
		return -errno;
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
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_verdicts), &dst_id, v, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_reset_stats(struct kb_bpf *k, uint32_t dst_id)
{
	memset(k->percpu, 0, k->ncpus * sizeof(*k->percpu));
	if (bpf_map_update_elem(bpf_map__fd(k->obs->maps.kb_stats), &dst_id, k->percpu, BPF_ANY))
		return -errno;
	return 0;
}

int kb_bpf_read_stats(struct kb_bpf *k, uint32_t dst_id, struct kb_dst_stats *sum)
{
	const __u64 *src;
	__u64 *dst = (__u64 *)sum;
	size_t words = sizeof(*sum) / sizeof(__u64);

	if (bpf_map_lookup_elem(bpf_map__fd(k->obs->maps.kb_stats), &dst_id, k->percpu))
		return -errno;
	memset(sum, 0, sizeof(*sum));
	for (int cpu = 0; cpu < k->ncpus; cpu++) {
		src = (const __u64 *)&k->percpu[cpu];
		for (size_t w = 0; w < words; w++)
			dst[w] += src[w];
	}
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
