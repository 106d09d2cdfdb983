// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bpf_maps: every read, write and walk of the maps once they are loaded:
 * destination keys and the ports prefilter, verdicts, trips, counters,
 * saved breakers and the event ring. bpf.c opens, loads and attaches.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf_priv.h"
#include "log.h"
#include "persist.h"

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

int kb_bpf_ports_adopt(struct kb_bpf *k)
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

int kb_bpf_gen_init(struct kb_bpf *k)
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
		   uint32_t netns, uint32_t dst_id, uint32_t *held)
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
	err = -errno;
	port_forget(k, htons(port));
	if (err != -EEXIST)
		return err;
	if (bpf_map_lookup_elem(fd, key, held))
		return errno == ENOENT ? -EAGAIN : -errno;
	return *held == dst_id ? 0 : -EEXIST;
}

int kb_bpf_set_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id)
{
	uint32_t held;
	int err = kb_bpf_add_dst(k, addr, prefix_len, port, netns, dst_id, &held);
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd;

	if (err != -EEXIST)
		return err;
	fd = dst_map_key(k, addr, prefix_len, port, netns, &hk, &lk);
	if (bpf_map_update_elem(fd, prefix_len == 128 ? (void *)&hk : (void *)&lk, &dst_id, BPF_EXIST))
		return -errno;
	return 0;
}

int kb_bpf_get_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t *dst_id)
{
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd = dst_map_key(k, addr, prefix_len, port, netns, &hk, &lk);

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, prefix_len == 128 ? (void *)&hk : (void *)&lk, dst_id))
		return -errno;
	return 0;
}

int kb_bpf_del_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id)
{
	struct kb_dst_key hk;
	struct kb_lpm_key lk;
	int fd = dst_map_key(k, addr, prefix_len, port, netns, &hk, &lk);
	void *key = prefix_len == 128 ? (void *)&hk : (void *)&lk;
	uint32_t held;

	if (fd < 0)
		return fd;
	/* Only the agent writes these keys: what it reads here is what the delete removes. */
	if (bpf_map_lookup_elem(fd, key, &held))
		return errno == ENOENT ? 0 : -errno;
	if (held != dst_id)
		return 0;	/* another destination's now */
	if (bpf_map_delete_elem(fd, key)) {
		if (errno != ENOENT)
			return -errno;
		return 0;
	}
	port_forget(k, htons(port));
	return 0;
}

void kb_bpf_set_lookup_flags(struct kb_bpf *k, uint32_t flags)
{
	/*
	 * Both objects read their own copy in their mmap'd .bss: a release
	 * store into each, no syscall (the hooks read it with a plain load).
	 */
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

/*
 * The kernel's ENOTSUPP, which reaches user space as is: what a map type
 * without batch operations answers (per-CPU arrays on 5.10).
 */
#define KERNEL_ENOTSUPP 524

/* Counters of destinations [first, first + n) in STATS_BATCH batches; vals for one batch. */
static int read_stats_batched(struct kb_bpf *k, int fd, uint32_t first, uint32_t n,
			      struct kb_dst_stats *vals, struct kb_dst_stats *sums)
{
	__u32 keys[STATS_BATCH] = { 0 }, in = first - 1, out = 0;

	for (uint32_t done = 0; done < n;) {
		__u32 count = n - done < STATS_BATCH ? n - done : STATS_BATCH;

		/* The batch token is the last key read: the next batch starts after it. */
		if (bpf_map_lookup_batch(fd, first + done ? &in : NULL, &out, keys, vals, &count, NULL) &&
		    errno != ENOENT)
			return -errno;
		if (!count)
			break;
		for (__u32 i = 0; i < count && done + i < n; i++)
			sum_cpus(&vals[(size_t)i * k->ncpus], k->ncpus, &sums[keys[i] - first]);
		done += count;
		in = out;
	}
	return 0;
}

/* The same, one lookup per destination, for kernels without batches. */
static int read_stats_each(struct kb_bpf *k, int fd, uint32_t first, uint32_t n,
			   struct kb_dst_stats *vals, struct kb_dst_stats *sums)
{
	for (uint32_t i = 0; i < n; i++) {
		__u32 key = first + i;

		if (bpf_map_lookup_elem(fd, &key, vals))
			return -errno;
		sum_cpus(vals, k->ncpus, &sums[i]);
	}
	return 0;
}

int kb_bpf_read_stats_range(struct kb_bpf *k, uint32_t first, uint32_t n, struct kb_dst_stats *sums)
{
	int fd = bpf_map__fd(k->obs->maps.kb_stats), err;
	struct kb_dst_stats *vals;

	vals = calloc((size_t)STATS_BATCH * k->ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	/* The loop and page renders both read: either may find batches missing. */
	err = __atomic_load_n(&k->no_batch, __ATOMIC_RELAXED) ? -KERNEL_ENOTSUPP
		: read_stats_batched(k, fd, first, n, vals, sums);
	if (err == -KERNEL_ENOTSUPP || err == -EOPNOTSUPP) {
		if (!__atomic_exchange_n(&k->no_batch, true, __ATOMIC_RELAXED))
			log_info("bpf: no batch lookups in this kernel: counters are read one "
				 "destination at a time");
		err = read_stats_each(k, fd, first, n, vals, sums);
	}
	free(vals);
	return err;
}

int kb_bpf_read_all_stats(struct kb_bpf *k, uint32_t n, struct kb_dst_stats *sums)
{
	return kb_bpf_read_stats_range(k, 0, n, sums);
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
	size_t n = 0, cap = bpf_map__max_entries(k->obs->maps.kb_saved);
	struct persist_record *v;
	__u32 *keys, *prev = NULL;

	/*
	 * Every key first: fn may delete records, and a hash map walked on from
	 * a deleted key starts again at its first, so records would be seen twice.
	 */
	keys = calloc(cap ? cap : 1, sizeof(*keys));
	v = malloc(sizeof(*v));
	if (!keys || !v) {
		free(keys);
		free(v);
		return -ENOMEM;
	}
	while (n < cap && !bpf_map_get_next_key(fd, prev, &keys[n])) {
		prev = &keys[n];
		n++;
	}
	for (size_t i = 0; i < n; i++)
		if (!bpf_map_lookup_elem(fd, &keys[i], v))
			fn(ctx, keys[i], v);
	free(keys);
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

void kb_bpf_alive(struct kb_bpf *k, uint64_t now)
{
	uint64_t grace = __atomic_load_n(&k->grace_ns, __ATOMIC_RELAXED);

	__atomic_store_n(&k->enf->bss->kb_alive_until_ns, now + grace, __ATOMIC_RELAXED);
}

void kb_bpf_set_failopen_after(struct kb_bpf *k, uint64_t ns)
{
	__atomic_store_n(&k->grace_ns, ns ? ns : KB_ALIVE_GRACE_NS, __ATOMIC_RELAXED);
}

uint64_t kb_bpf_failopen_total(const struct kb_bpf *k)
{
	return __atomic_load_n(&k->enf->bss->kb_failopen_total, __ATOMIC_RELAXED);
}

uint64_t kb_bpf_fastopen_ignored_total(const struct kb_bpf *k)
{
	return __atomic_load_n(&k->enf->bss->kb_fastopen_ignored_total, __ATOMIC_RELAXED);
}

uint64_t kb_bpf_fastopen_refused_total(const struct kb_bpf *k)
{
	return __atomic_load_n(&k->enf->bss->kb_fastopen_refused_total, __ATOMIC_RELAXED);
}
