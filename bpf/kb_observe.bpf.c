// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kb_observe: the outcome of every TCP connect this host makes to a
 * configured destination, whatever process makes it.
 *
 * inet_sock_set_state is the one place every outcome passes through:
 * CLOSE -> SYN_SENT marks the start, SYN_SENT -> ESTABLISHED a success and
 * SYN_SENT -> CLOSE a failure whose cause the kernel has already stored in
 * sk_err (tcp_reset, tcp_write_err and tcp_v[46]_err set it before
 * tcp_done). A tp_btf program rather than a kprobe: it is stable ABI-wise,
 * cheaper, and kprobes are not available everywhere.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "kb_maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define ETIMEDOUT 110
#define ECONNREFUSED 111
#define ENETUNREACH 101
#define EHOSTUNREACH 113

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Per-socket state, set at SYN_SENT only for configured destinations. */
struct kb_sk {
	__u64 syn_ns;	/* SYN sent; 0 once the outcome is counted */
	__u32 dst_id;
	__s32 err;	/* the error last reported while connecting */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct kb_sk);
} kb_sk_state SEC(".maps");

/* Connect outcomes in order, for the agent's breakers. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KB_EVENTS_BYTES);
} kb_events SEC(".maps");

/* Breakers saved for the agent's next start; never touched by the programs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, __u32);
	__type(value, struct kb_saved);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} kb_saved SEC(".maps");

/*
 * Which loaded copy of these programs counts. With state_dir, a restarted
 * agent attaches its programs beside the previous run's (pinned) ones,
 * then moves kb_owner to its own kb_gen and detaches the old: at every
 * instant exactly one copy counts, so a restart neither misses nor
 * doubles an outcome. Pinned with the maps; written by the agent only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} kb_owner SEC(".maps");

/* This copy's generation, set by the agent before load. */
const volatile __u32 kb_gen = 0;

static __always_inline bool kb_counting(void)
{
	__u32 zero = 0, *owner = bpf_map_lookup_elem(&kb_owner, &zero);

	return owner && *owner == kb_gen;
}

/* Sum of kb_dst_stats.lost over all destinations: lets the agent skip the scan while 0. */
__u64 kb_lost_total = 0;

/*
 * Histogram slot of a latency in microseconds: floor(log2(us)), at most
 * KB_LAT_SLOTS - 1. Only constants are ever assigned, so every verifier
 * (5.10's included) knows the result is a valid index; the shift-and-or
 * log2 leaves an unbounded register that 6.1's verifier rejects.
 */
static __always_inline __u32 kb_lat_slot(__u64 us)
{
	__u32 slot = 0;

#pragma unroll
	for (int i = 1; i < KB_LAT_SLOTS; i++)
		if (us >> i)
			slot = i;
	return slot;
}

static __always_inline enum kb_result kb_classify(int err)
{
	switch (err) {
	case 0:
		return KB_RES_CANCELLED;
	case ECONNREFUSED:
		return KB_RES_REFUSED;
	case ETIMEDOUT:
		return KB_RES_TIMEOUT;
	case EHOSTUNREACH:
	case ENETUNREACH:
		return KB_RES_UNREACHABLE;
	default:
		return KB_RES_ERROR;
	}
}

/* Fill key with the socket's peer, IPv4 as IPv4-mapped IPv6. */
static __always_inline int kb_sk_key(const struct sock *sk, struct kb_dst_key *key)
{
	__u16 family = sk->__sk_common.skc_family;

	key->port = sk->__sk_common.skc_dport;
	if (family == AF_INET) {
		__u32 a = sk->__sk_common.skc_daddr;

		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], &a, 4);
		return 0;
	}
	if (family == AF_INET6) {
		/* A mapped peer on an AF_INET6 socket is already ::ffff:a.b.c.d here. */
		BPF_CORE_READ_INTO(&key->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		return 0;
	}
	return -1;
}

/*
 * The kernel's half of the breaker: count consecutive failures against the
 * agent's verdict and trip at its threshold. Returns KB_EV_TRIPPED when
 * this outcome tripped it.
 */
static __always_inline __u32 kb_judge(struct kb_verdict *v, enum kb_result res, __u64 syn_ns)
{
	__u32 act, n;

	if (syn_ns < v->since_ns)
		return 0;	/* begun before the breaker's current state */
	if (res == KB_RES_SUCCESS) {
		if (v->fails)
			v->fails = 0;
		return 0;
	}
	if (!(v->fail_mask & (1U << res)))
		return 0;
	n = __sync_fetch_and_add(&v->fails, 1) + 1;
	if (!v->trip_after || n < v->trip_after)
		return 0;
	act = v->action;
	if (act != KB_ACT_ALLOW && act != KB_ACT_RAMP && act != KB_ACT_PROBE)
		return 0;
	/* Only from what the agent wrote: a concurrent agent verdict wins. */
	return __sync_val_compare_and_swap(&v->action, act, KB_ACT_BLOCK) == act ? KB_EV_TRIPPED : 0;
}

static __always_inline void kb_count(__u32 dst_id, enum kb_result res, __u64 now, __u64 syn_ns)
{
	struct kb_dst_stats *st = bpf_map_lookup_elem(&kb_stats, &dst_id);
	struct kb_verdict *v = bpf_map_lookup_elem(&kb_verdicts, &dst_id);
	__u64 lat = now - syn_ns, wake = BPF_RB_NO_WAKEUP;
	struct kb_event *ev;
	__u32 flags = 0;

	/* Bounds the array index for the verifier; kb_classify never exceeds it. */
	if (!st || res >= KB_RES_MAX)
		return;
	/*
	 * Per-CPU values, yet atomic adds: BPF programs only disable
	 * migration, so two tasks on one CPU may interleave; an uncontended
	 * locked add costs a few ns and never loses a count.
	 */
	__sync_fetch_and_add(&st->connects[res], 1);
	if (res == KB_RES_SUCCESS) {
		__u32 slot = kb_lat_slot(lat / 1000);

		__sync_fetch_and_add(&st->lat_slots[slot], 1);
		__sync_fetch_and_add(&st->lat_sum_ns, lat);
	}
	if (v) {
		flags = kb_judge(v, res, syn_ns);
		/*
		 * A wake-up costs microseconds (an IPI): only for what the agent
		 * must act on now. The rest waits for its poll, in order.
		 */
		if (flags || (v->wake_mask & (1U << res)))
			wake = BPF_RB_FORCE_WAKEUP;
	}

	ev = bpf_ringbuf_reserve(&kb_events, sizeof(*ev), 0);
	if (!ev) {
		__sync_fetch_and_add(&st->lost[res], 1);
		__sync_fetch_and_add(&kb_lost_total, 1);
		return;
	}
	ev->ts_ns = now;
	ev->latency_ns = lat;
	ev->dst_id = dst_id;
	ev->result = res;
	ev->flags = flags;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, wake);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kb_sock_state, struct sock *sk, int oldstate, int newstate)
{
	struct kb_dst_key key = {};
	enum kb_result res;
	struct kb_sk *ks;
	__u32 *dst_id;

	/* Most transitions are none of ours: decide from the arguments before touching sk. */
	if (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP || !kb_counting())
		return 0;

	if (newstate == TCP_SYN_SENT) {
		if (kb_sk_key(sk, &key))
			return 0;
		dst_id = kb_lookup(&key);
		if (!dst_id)
			return 0;
		ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ks)
			return 0;
		ks->dst_id = *dst_id;
		ks->err = 0;
		ks->syn_ns = bpf_ktime_get_ns();
		return 0;
	}

	/*
	 * SYN_RECV too: a simultaneous open (or a connect that picked its own
	 * port as source on loopback) goes SYN_SENT -> SYN_RECV -> ESTABLISHED.
	 * syn_ns != 0 marks an outcome still to count, so it counts once.
	 */
	ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, 0);
	if (!ks || !ks->syn_ns)
		return 0;
	if (newstate == TCP_ESTABLISHED)
		res = KB_RES_SUCCESS;
	else if (newstate == TCP_CLOSE)
		/*
		 * No hard error: a soft one (an ICMP error that arrived while
		 * connect() held the socket, which the caller already saw)
		 * still says why the caller gave up; none at all is a cancel.
		 */
		res = kb_classify(sk->sk_err ?: ks->err ?: sk->sk_err_soft);
	else
		return 0;
	kb_count(ks->dst_id, res, bpf_ktime_get_ns(), ks->syn_ns);
	ks->syn_ns = 0;
	return 0;
}

/*
 * An application may read (and so clear) sk_err with SO_ERROR before the
 * socket reaches CLOSE: an ICMP error that arrives while connect() holds
 * the socket lock is reported this way. Remember the error as reported, so
 * the close that follows is classified by it and not as a cancel.
 */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(kb_sk_err, const struct sock *sk)
{
	struct kb_sk *ks;
	int err;

	if (sk->__sk_common.skc_state != TCP_SYN_SENT || sk->sk_protocol != IPPROTO_TCP ||
	    !kb_counting())
		return 0;
	err = sk->sk_err;
	if (!err)
		return 0;
	ks = bpf_sk_storage_get(&kb_sk_state, (struct sock *)sk, NULL, 0);
	if (ks)
		ks->err = err;
	return 0;
}

/*
 * Resets and retransmits count only for sockets tagged at SYN_SENT: this
 * host opened them, to a configured destination. An accepted connection
 * from a peer with the same address carries no tag and counts nowhere.
 */
static __always_inline struct kb_dst_stats *kb_tagged_stats(const struct sock *sk)
{
	struct kb_sk *ks;

	if (!sk || !kb_counting())
		return NULL;
	/* bpf_sk_storage_get returns NULL for request and timewait socks. */
	ks = bpf_sk_storage_get(&kb_sk_state, (struct sock *)sk, NULL, 0);
	if (!ks)
		return NULL;
	return bpf_map_lookup_elem(&kb_stats, &ks->dst_id);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(kb_rst_rx, struct sock *sk)
{
	struct kb_dst_stats *st;

	/* An RST to our SYN is a refused connect, counted by kb_sock_state. */
	if (sk->__sk_common.skc_state == TCP_SYN_SENT)
		return 0;
	st = kb_tagged_stats(sk);
	if (st)
		__sync_fetch_and_add(&st->resets_rx, 1);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(kb_rst_tx, const struct sock *sk)
{
	struct kb_dst_stats *st = kb_tagged_stats(sk);

	if (st)
		__sync_fetch_and_add(&st->resets_tx, 1);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(kb_retrans, const struct sock *sk)
{
	struct kb_dst_stats *st = kb_tagged_stats(sk);

	if (st)
		__sync_fetch_and_add(&st->retransmits, 1);
	return 0;
}
