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
#include "kb_maps.bpf.h"

#define ECONNREFUSED 111
#define SOCK_STREAM 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Returns 1 to allow, 0 to refuse. */
static __always_inline int kb_decide(struct kb_dst_key *key, struct bpf_sock *sk)
{
	struct kb_dst_stats *st;
	struct kb_verdict *v;
	struct kb_trip *t;
	__u32 *dst_id;

	dst_id = kb_lookup(key, sk);
	if (!dst_id)
		return 1;
	v = bpf_map_lookup_elem(&kb_verdicts, dst_id);
	t = bpf_map_lookup_elem(&kb_trips, dst_id);
	if (!v || !t)
		return 1;
	switch (kb_effective_action(v, t)) {
	case KB_ACT_BLOCK:
		break;
	case KB_ACT_PROBE:
		if (kb_take_permit(t, v->gen, v->permits))
			return 1;
		break;
	case KB_ACT_RAMP:
		if ((bpf_get_prandom_u32() & (KB_ADMIT_ONE - 1)) < v->admit)
			return 1;
		break;
	default:
		return 1;
	}

	st = bpf_map_lookup_elem(&kb_stats, dst_id);
	if (v->observe) {
		if (st)
			__sync_fetch_and_add(&st->would_block, 1);
		return 1;
	}
	if (st)
		__sync_fetch_and_add(&st->blocked, 1);
	/*
	 * bpf_set_retval() (5.18+) turns the refusal into ECONNREFUSED, what a
	 * dead peer's RST would give. Older kernels report EPERM. The check is a
	 * CO-RE relocation against the running kernel's enum bpf_func_id, so the
	 * dead branch is removed before the verifier sees the helper call.
	 */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_set_retval))
		bpf_set_retval(-ECONNREFUSED);
	return 0;
}

SEC("cgroup/connect4")
int kb_connect4(struct bpf_sock_addr *ctx)
{
	struct kb_dst_key key = {};
	__u32 a;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	a = ctx->user_ip4;
	key.addr[10] = 0xff;
	key.addr[11] = 0xff;
	__builtin_memcpy(&key.addr[12], &a, 4);
	key.port = (__u16)ctx->user_port;
	return kb_decide(&key, ctx->sk);
}

SEC("cgroup/connect6")
int kb_connect6(struct bpf_sock_addr *ctx)
{
	struct kb_dst_key key = {};
	__u32 a;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	/* Context fields must be read as 4-byte words. IPv4-mapped peers land on
	 * the same key as connect4 builds. */
	a = ctx->user_ip6[0]; __builtin_memcpy(&key.addr[0], &a, 4);
	a = ctx->user_ip6[1]; __builtin_memcpy(&key.addr[4], &a, 4);
	a = ctx->user_ip6[2]; __builtin_memcpy(&key.addr[8], &a, 4);
	a = ctx->user_ip6[3]; __builtin_memcpy(&key.addr[12], &a, 4);
	key.port = (__u16)ctx->user_port;
	return kb_decide(&key, ctx->sk);
}
