/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps shared by kb_observe and kb_enforce. Both objects declare them
 * identically; the agent creates them once (observe) and hands the same fds
 * to the enforce object with bpf_map__reuse_fd() before it loads.
 */
#ifndef KB_MAPS_BPF_H
#define KB_MAPS_BPF_H

#include "kb_abi.h"
#include "kb_judge.h"

/* Destination -> dst_id. Written by the agent, read by both objects. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, struct kb_dst_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} kb_dst SEC(".maps");

/* (port, address prefix) -> dst_id, for CIDR destinations. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, struct kb_lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} kb_dst_lpm SEC(".maps");

/* dst_id -> counters. Written by both objects (per-CPU), read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, __u32);
	__type(value, struct kb_dst_stats);
} kb_stats SEC(".maps");

/* dst_id -> verdict. Written by the agent only, read by both objects. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, __u32);
	__type(value, struct kb_verdict);
} kb_verdicts SEC(".maps");

/* dst_id -> the kernel's trip state and permits. Written by both objects only, read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, __u32);
	__type(value, struct kb_trip);
} kb_trips SEC(".maps");

/* Workload attribution (kb_abi.h); one element. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kb_wl_ctl);
} kb_wl_ctl SEC(".maps");

/*
 * cgroup id (cut at kb_wl_ctl.level) -> workload index. Added by the
 * hooks; the agent deletes the entries of cgroups that are gone.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_WL_CGROUPS);
	__type(key, __u64);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} kb_workloads SEC(".maps");

/* Labels of gone cgroups, for the hooks to hand out again (kb_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, KB_WL_LABELS_MAX);
	__type(value, __u32);
} kb_wl_free SEC(".maps");

/*
 * Workload index -> its label's generation (kb_abi.h). Written by the
 * agent only: bumped when it gives the index back, before kb_wl_free has
 * it. Read by the hooks when they name a connect, and by kb_observe
 * before it counts anything of a named socket for a workload.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KB_WL_LABELS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} kb_wl_gen SEC(".maps");

/* (destination, workload) -> counters. Written by both objects, read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, struct kb_wl_key);
	__type(value, struct kb_wl_stats);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} kb_wstats SEC(".maps");

/*
 * A connect to a configured destination (struct kb_sk): kept in kb_conn
 * while connecting, or in the socket's storage (kb_sk_state) where
 * kb_conn cannot serve (bpf/kb_observe.bpf.c). The workload rides in
 * dst_id's high bits (slots fit in KB_SK_SLOT, as max_destinations is at
 * most 2^20).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_CONN_MAX);
	__type(key, __u64);
	__type(value, struct kb_sk);
} kb_conn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct kb_sk);
} kb_sk_state SEC(".maps");

/* kb_sk.dst_id for a connect to slot whose workload is wl (KB_WL_NONE: none). */
#define KB_WL_NONE 0xffffffffU
static __always_inline __u32 kb_sk_id(__u32 slot, __u32 wl, bool per_workload)
{
	if (wl == KB_WL_NONE)
		return slot;
	return slot | ((wl + 1) & KB_SK_WL_MASK) << KB_SK_WL_SHIFT |
	       (per_workload ? KB_ID_PER_WORKLOAD : 0);
}

/* The generation of workload wl's label now; 0 for one it has none of (other). */
static __always_inline __u32 kb_wl_gen_of(__u32 wl)
{
	__u32 *gen = bpf_map_lookup_elem(&kb_wl_gen, &wl);

	return gen ? *gen : 0;
}

/*
 * ks's dst_id as it counts now (kb_sk_id_current): a record that names no
 * workload costs nothing more, a named one a lookup of its label's
 * generation.
 */
static __always_inline __u32 kb_sk_dst(const struct kb_sk *ks)
{
	__u32 id = ks->dst_id, wl = id >> KB_SK_WL_SHIFT & KB_SK_WL_MASK, zero = 0, *gen;
	struct kb_wl_ctl *c;

	if (!wl)
		return id;
	wl--;
	gen = bpf_map_lookup_elem(&kb_wl_gen, &wl);
	if (!gen || *gen == ks->wl_gen)
		return id;
	c = bpf_map_lookup_elem(&kb_wl_ctl, &zero);
	return kb_sk_id_current(id, ks->wl_gen, *gen, c ? c->max : 0);
}

/* The counters of workload wl's connects to dst, created on first use; NULL when full. */
static __always_inline struct kb_wl_stats *kb_wl_stats_of(__u32 dst, __u32 wl)
{
	struct kb_wl_key key = { .dst = dst, .workload = wl };
	struct kb_wl_stats zero = {}, *s;
	struct kb_wl_ctl *c;
	__u32 idx = 0;

	s = bpf_map_lookup_elem(&kb_wstats, &key);
	if (s)
		return s;
	/* Another CPU may insert first: then the lookup finds its entry. */
	bpf_map_update_elem(&kb_wstats, &key, &zero, BPF_NOEXIST);
	s = bpf_map_lookup_elem(&kb_wstats, &key);
	if (!s) {
		c = bpf_map_lookup_elem(&kb_wl_ctl, &idx);
		if (c)
			__sync_fetch_and_add(&c->lost, 1);
	}
	return s;
}

/* KB_LOOKUP_* bits; each object has its own copy, the agent sets both. */
volatile __u32 kb_lookup_flags = 0;

/*
 * A prefilter before any hashing: bit p of kb_ports is set when some key
 * has port p (network byte order, as in the keys). While kb_ports_exact is
 * set (no key has "any port") a clear bit proves a miss, so a connect to a
 * port nothing is configured for costs a load and a test. Each object has
 * its own copy; the agent's loader sets bits before it adds a key and
 * clears kb_ports_exact before it adds an any-port key.
 */
volatile __u32 kb_ports_exact = 0;
volatile __u32 kb_ports[65536 / 32];

/*
 * The destination a connection belongs to, most specific first: exact
 * (address, port), then (address, any port), then the longest CIDR with
 * that port, then the longest CIDR with any port. The slower steps run
 * only when the agent configured something they could find.
 */
static __always_inline __u32 *kb_lookup_in(const struct kb_dst_key *key, __u32 flags)
{
	struct kb_dst_key any;
	struct kb_lpm_key lk;
	__u32 port = key->port, *id;

	if (kb_ports_exact && !(kb_ports[(port >> 5) & 2047] & (1U << (port & 31))))
		return NULL;
	id = bpf_map_lookup_elem(&kb_dst, key);
	if (id || !(flags & (KB_LOOKUP_ANY_PORT | KB_LOOKUP_PREFIX)))
		return id;
	if (flags & KB_LOOKUP_ANY_PORT) {
		any = *key;
		any.port = 0;
		id = bpf_map_lookup_elem(&kb_dst, &any);
		if (id)
			return id;
	}
	if (!(flags & KB_LOOKUP_PREFIX))
		return NULL;
	__builtin_memset(&lk, 0, sizeof(lk));
	lk.prefixlen = KB_LPM_FULL;
	lk.netns = key->netns;
	lk.port = key->port;
	__builtin_memcpy(lk.addr, key->addr, sizeof(lk.addr));
	id = bpf_map_lookup_elem(&kb_dst_lpm, &lk);
	if (id)
		return id;
	lk.port = 0;
	return bpf_map_lookup_elem(&kb_dst_lpm, &lk);
}

/*
 * The network namespace a socket lives in, as the inode number user space
 * sees for it (CO-RE: struct net and struct ns_common as this kernel has
 * them); 0 when it cannot tell.
 */
static __always_inline __u32 kb_sock_netns(struct bpf_sock *sk)
{
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;

	if (!tp)
		return 0;
	/* Plain loads through the BTF pointer; vmlinux.h makes them CO-RE relocatable. */
	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ns.inum;
}

/*
 * kb_lookup_in for a socket of `sk`: with namespaced destinations
 * configured, the socket's own namespace first, then any namespace.
 */
static __always_inline __u32 *kb_lookup(struct kb_dst_key *key, struct bpf_sock *sk)
{
	__u32 flags = kb_lookup_flags, *id;

	if (flags & KB_LOOKUP_NETNS) {
		key->netns = kb_sock_netns(sk);
		if (key->netns) {
			id = kb_lookup_in(key, flags);
			if (id)
				return id;
		}
		key->netns = 0;
	}
	return kb_lookup_in(key, flags);
}

#endif /* KB_MAPS_BPF_H */
