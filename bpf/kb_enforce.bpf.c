// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kb_enforce: cgroup connect4/connect6 hooks that refuse TCP connects to
 * open destinations before a packet leaves, so the caller fails in
 * microseconds instead of waiting on a dead peer.
 *
 * Fails open: a destination the maps do not know, a verdict it cannot
 * read, or an action it does not understand is allowed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "kb_maps.bpf.h"

#define ECONNREFUSED 111
#define SOCK_STREAM 1
#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define TCP_FASTOPEN_CONNECT 30

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Until when the agent counts as alive (bpf_ktime_get_ns: CLOCK_MONOTONIC);
 * it moves this on every second. Past it the agent is stopped or hung and
 * can no longer end a block, so nothing is blocked, as when it is gone;
 * kb_failopen_total counts the connects let through meanwhile.
 */
volatile __u64 kb_alive_until_ns = 0;
__u64 kb_failopen_total = 0;
/* fastopen_connect: ignore. Set before load: the verifier drops what it guards when off. */
const volatile bool kb_fastopen_guard = false;
/* setsockopt(TCP_FASTOPEN_CONNECT, 1) calls kb_sockopt turned into 0. */
__u64 kb_fastopen_ignored_total = 0;
/* Connects refused for a TCP_FASTOPEN_CONNECT that kb_sockopt never saw. */
__u64 kb_fastopen_refused_total = 0;

/*
 * The cgroup level that makes a workload: the enforcement cgroup's own,
 * found once among the task's ancestors, plus depth. -1: the task is not
 * below the enforcement cgroup (a socket made inside, connected from
 * outside), asked of every task: the level found for another says nothing
 * of this one.
 */
static __always_inline int kb_wl_level(struct kb_wl_ctl *c)
{
	__u32 found = c->level;

	if (found) {
		found--;
		if (found < c->depth ||
		    bpf_get_current_ancestor_cgroup_id(found - c->depth) != c->base)
			return -1;
		return found;
	}
	for (int i = 0; i < KB_WL_LEVELS; i++)
		if (bpf_get_current_ancestor_cgroup_id(i) == c->base) {
			found = i + c->depth;
			/* Every CPU finds the same: the store needs no order. */
			c->level = found + 1;
			return found;
		}
	return -1;
}

/*
 * The workload of the task connecting now: its cgroup's ancestor at the
 * workload level, or its own cgroup when shallower, as an index that
 * kb_workloads hands out on first sight (kb_abi.h). A task outside the
 * enforcement cgroup, connecting a socket made inside, is "other": it
 * names no workload, and must not take a label a workload would get.
 */
static __always_inline __u32 kb_workload(bool locked)
{
	struct kb_wl_ctl *c;
	__u32 zero = 0, *w, n, max;
	bool reused;
	__u64 cg = 0;
	int level;

	c = bpf_map_lookup_elem(&kb_wl_ctl, &zero);
	if (!c || !c->max)
		return KB_WL_NONE;
	max = c->max;
	level = kb_wl_level(c);
	if (level < 0)
		return max;
	cg = bpf_get_current_ancestor_cgroup_id(level);
	if (!cg)
		cg = bpf_get_current_cgroup_id();
	w = bpf_map_lookup_elem(&kb_workloads, &cg);
	if (w)
		return *w < max ? *w : max;
	/*
	 * A gone cgroup's label first; else a new index: past max every new
	 * cgroup is "other". next counts on past max (the agent reports
	 * next - max as folded), short of wrapping round to indexes given.
	 */
	reused = !bpf_map_pop_elem(&kb_wl_free, &n);
	if (!reused && locked) {
		bpf_spin_lock(&c->lock);
		n = c->next < (1U << 31) ? c->next++ : max;
		bpf_spin_unlock(&c->lock);
	} else if (!reused) {
		n = c->next < (1U << 31) ? __sync_fetch_and_add(&c->next, 1) : max;
	}
	if (n > max)
		n = max;
	if (!bpf_map_update_elem(&kb_workloads, &cg, &n, BPF_NOEXIST))
		return n;
	/*
	 * Lost the race to another CPU, or full: a label taken back goes
	 * back (a new index stays unused until the agent's next start).
	 */
	if (reused && n < max)
		bpf_map_push_elem(&kb_wl_free, &n, 0);
	w = bpf_map_lookup_elem(&kb_workloads, &cg);
	return w && *w < max ? *w : max;
}

/*
 * File the connect, named, for kb_observe (struct kb_sk): it has no cgroup
 * of its own to ask. In kb_conn, which its TCP_CONNECT_CB looks in anyway;
 * else in the socket's storage.
 */
static __always_inline void kb_name_connect(struct bpf_sock_addr *ctx, struct bpf_sock *sk,
					    __u32 id, __u32 wl)
{
	struct kb_sk rec = { .dst_id = id, .retrans = KB_CONN_NAMED }, *ks;
	__u64 cookie = bpf_get_socket_cookie(ctx);

	/* After the index was taken (kb_workload): a label given back was bumped before. */
	rec.wl_gen = kb_wl_gen_of(wl);
	rec.syn_ns = bpf_ktime_get_ns();
	if (!bpf_map_update_elem(&kb_conn, &cookie, &rec, BPF_ANY))
		return;
	ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (ks) {
		ks->dst_id = id;
		ks->wl_gen = rec.wl_gen;
	}
}

/*
 * Refuse the connect. bpf_set_retval() (5.18+) turns the refusal into
 * ECONNREFUSED, what a dead peer's RST would give. Older kernels report
 * EPERM. The check is a CO-RE relocation against the running kernel's enum
 * bpf_func_id, so the dead branch is removed before the verifier sees the
 * helper call.
 */
static __always_inline int kb_refuse(void)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_set_retval))
		bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/*
 * A socket whose SYN may wait for its first write: TCP_FASTOPEN_CONNECT
 * set where kb_sockopt does not run (a 32-bit syscall: the kernel runs no
 * cgroup setsockopt program for compat calls; or before the agent started).
 */
static __always_inline bool kb_fastopen_deferrable(struct bpf_sock *sk)
{
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;

	return tp && BPF_CORE_READ_BITFIELD(tp, fastopen_connect);
}

/*
 * Whether v enforces anything: not observe, and not disabled (an allow
 * that no failure can ever change).
 */
static __always_inline bool kb_enforced(const struct kb_verdict *v)
{
	return !v->observe && (v->action != KB_ACT_ALLOW || v->fail_mask);
}

/* Returns 1 to allow, 0 to refuse. locked: see kb_judge.h. */
static __always_inline int kb_decide(struct kb_dst_key *key, struct bpf_sock_addr *ctx,
				     struct bpf_sock *sk, bool locked)
{
	__u32 *dst_id, id, slot, action, wl = KB_WL_NONE;
	struct kb_dst_stats *st;
	struct kb_wl_stats *ws;
	struct kb_verdict *v;
	struct kb_trip *t;

	dst_id = kb_lookup(key, sk);
	if (!dst_id)
		return 1;
	id = *dst_id & KB_ID_SLOT;
	slot = id;
	if (kb_lookup_flags & KB_LOOKUP_WORKLOADS) {
		wl = kb_workload(locked);
		if (wl != KB_WL_NONE && (*dst_id & KB_ID_PER_WORKLOAD))
			slot = id + wl;
	}
	v = bpf_map_lookup_elem(&kb_verdicts, &slot);
	t = bpf_map_lookup_elem(&kb_trips, &slot);
	if (!v || !t)
		goto allow;
	action = kb_effective_action(v, t);
	/*
	 * Let through now, its SYN could leave once the breaker is open:
	 * refused, unless the agent is not alive (fail open; not counted as
	 * such, the breaker may be closed). A block is counted as one below.
	 */
	if (kb_fastopen_guard && action != KB_ACT_BLOCK && kb_enforced(v) &&
	    kb_fastopen_deferrable(sk)) {
		if (bpf_ktime_get_ns() > kb_alive_until_ns)
			goto allow;
		__sync_fetch_and_add(&kb_fastopen_refused_total, 1);
		return kb_refuse();
	}
	switch (action) {
	case KB_ACT_BLOCK:
		break;
	case KB_ACT_PROBE:
		if (kb_take_permit(t, v->gen, v->permits, locked))
			goto allow;
		break;
	case KB_ACT_RAMP:
		if ((bpf_get_prandom_u32() & (KB_ADMIT_ONE - 1)) < v->admit)
			goto allow;
		break;
	default:
		goto allow;
	}

	st = bpf_map_lookup_elem(&kb_stats, &slot);
	if (v->observe) {
		if (st)
			__sync_fetch_and_add(&st->would_block, 1);
		goto allow;
	}
	/* Read only on the way to a refusal: an allowed connect pays nothing for it. */
	if (bpf_ktime_get_ns() > kb_alive_until_ns) {
		__sync_fetch_and_add(&kb_failopen_total, 1);
		goto allow;
	}
	if (st)
		__sync_fetch_and_add(&st->blocked, 1);
	if (wl != KB_WL_NONE) {
		ws = kb_wl_stats_of(id, wl);
		if (ws)
			__sync_fetch_and_add(&ws->blocked, 1);
	}
	return kb_refuse();
allow:
	if (wl != KB_WL_NONE && sk)
		kb_name_connect(ctx, sk, kb_sk_id(slot, wl, *dst_id & KB_ID_PER_WORKLOAD), wl);
	return 1;
}

/*
 * The peer for a TCP connect to the unspecified address, as
 * ip_route_connect() picks it: the socket's IPv4 source (inet_saddr, which
 * inet_bind() leaves empty for a broadcast or multicast address and
 * inet6_bind() sets for an IPv6 socket), or 127.0.0.1. Looked up as given,
 * 0.0.0.0 would pass an open breaker of any local address that
 * TCP_CONNECT_CB then counts. The hooks also write it in: a socket bound
 * to a device would have the kernel pick that device's address instead.
 */
static __always_inline __u32 kb_any4_peer(struct bpf_sock *sk)
{
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;
	__u32 src = tp ? tp->inet_conn.icsk_inet.inet_saddr : 0;

	return src ? src : bpf_htonl(0x7f000001);
}

static __always_inline void kb_key_ip4(struct kb_dst_key *key, __u32 a)
{
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	__builtin_memcpy(&key->addr[12], &a, 4);
}

/*
 * A connect the hooks judge: TCP, and of the socket's family. Another
 * family fails in tcp_v4_connect() / tcp_v6_connect() before its SYN, so
 * no outcome would ever give back a half_open permit it took.
 */
static __always_inline bool kb_judged(struct bpf_sock_addr *ctx, __u32 family)
{
	return ctx->type == SOCK_STREAM && ctx->protocol == IPPROTO_TCP &&
	       ctx->user_family == family;
}

static __always_inline int kb_connect4_run(struct bpf_sock_addr *ctx, bool locked)
{
	struct kb_dst_key key = {};
	struct bpf_sock *sk = ctx->sk;
	__u32 a;

	if (!kb_judged(ctx, AF_INET))
		return 1;
	a = ctx->user_ip4;
	if (!a) {
		a = kb_any4_peer(sk);
		ctx->user_ip4 = a;
	}
	kb_key_ip4(&key, a);
	key.port = (__u16)ctx->user_port;
	return kb_decide(&key, ctx, sk, locked);
}

/*
 * The peer of a connect6 to the unspecified address, as tcp_v6_connect()
 * picks it: :: reaches ::1, or 127.0.0.1 for a socket bound to a mapped
 * address; ::ffff:0.0.0.0 goes the IPv4 way (kb_any4_peer).
 */
static __always_inline void kb_any6_peer(struct kb_dst_key *key, struct bpf_sock *sk, bool mapped)
{
	bool src_mapped = false;

	if (sk)
		src_mapped = !sk->src_ip6[0] && !sk->src_ip6[1] && sk->src_ip6[2] == bpf_htonl(0xffff);
	__builtin_memset(key->addr, 0, sizeof(key->addr));
	if (mapped)
		kb_key_ip4(key, kb_any4_peer(sk));
	else if (src_mapped)
		kb_key_ip4(key, bpf_htonl(0x7f000001));
	else
		key->addr[15] = 1;
}

static __always_inline int kb_connect6_run(struct bpf_sock_addr *ctx, bool locked)
{
	struct kb_dst_key key = {};
	struct bpf_sock *sk = ctx->sk;
	__u32 a0, a1, a2, a3;

	if (!kb_judged(ctx, AF_INET6))
		return 1;
	/* Context fields must be read as 4-byte words. IPv4-mapped peers land on
	 * the same key as connect4 builds. */
	a0 = ctx->user_ip6[0];
	a1 = ctx->user_ip6[1];
	a2 = ctx->user_ip6[2];
	a3 = ctx->user_ip6[3];
	__builtin_memcpy(&key.addr[0], &a0, 4);
	__builtin_memcpy(&key.addr[4], &a1, 4);
	__builtin_memcpy(&key.addr[8], &a2, 4);
	__builtin_memcpy(&key.addr[12], &a3, 4);
	if (!a0 && !a1 && !a3 && (!a2 || a2 == bpf_htonl(0xffff))) {
		kb_any6_peer(&key, sk, a2);
		/*
		 * Written in, as connect4 does. barrier_var(): else clang may
		 * store through ctx plus an offset it keeps in a register, a
		 * modified context pointer the verifier refuses.
		 */
		__builtin_memcpy(&a2, &key.addr[8], 4);
		__builtin_memcpy(&a3, &key.addr[12], 4);
		barrier_var(ctx);
		ctx->user_ip6[2] = a2;
		barrier_var(ctx);
		ctx->user_ip6[3] = a3;
	}
	key.port = (__u16)ctx->user_port;
	return kb_decide(&key, ctx, sk, locked);
}

SEC("cgroup/connect4")
int kb_connect4(struct bpf_sock_addr *ctx)
{
	return kb_connect4_run(ctx, false);
}

SEC("cgroup/connect6")
int kb_connect6(struct bpf_sock_addr *ctx)
{
	return kb_connect6_run(ctx, false);
}

/* The same two for kernels before 5.12 (kb_judge.h); the agent loads one pair. */
SEC("cgroup/connect4")
int kb_connect4_locked(struct bpf_sock_addr *ctx)
{
	return kb_connect4_run(ctx, true);
}

SEC("cgroup/connect6")
int kb_connect6_locked(struct bpf_sock_addr *ctx)
{
	return kb_connect6_run(ctx, true);
}

/*
 * fastopen_connect: ignore (attached only then). A socket with
 * TCP_FASTOPEN_CONNECT and a cached cookie is judged at connect() but sends
 * its SYN at its first write, with no hook on the way: staged while a breaker
 * is closed, it would reach the destination once open. Turning it on becomes
 * turning it off: the call succeeds (the kernel's handler still runs, with
 * its own errors for a bad value, a listening socket or Fast Open off) and
 * the SYN leaves at connect(), after the hook. sendto(MSG_FASTOPEN) still
 * sends data in the SYN, and passes the hook. Any socket type: SMC hands
 * SOL_TCP options to a TCP socket of its own, past this hook.
 */
SEC("cgroup/setsockopt")
int kb_sockopt(struct bpf_sockopt *ctx)
{
	__u8 *p = ctx->optval, *end = ctx->optval_end;

	if (ctx->level == SOL_TCP && ctx->optname == TCP_FASTOPEN_CONNECT &&
	    ctx->optlen >= 4 && p + 4 <= end && *(__u32 *)p == 1) {
		*(__u32 *)p = 0;
		ctx->optlen = 4;	/* the buffer changed: the kernel takes it, not the caller's */
		__sync_fetch_and_add(&kb_fastopen_ignored_total, 1);
		return 1;
	}
	/* Every other option as given: 0 is "the caller's own buffer", at any length. */
	ctx->optlen = 0;
	return 1;
}
