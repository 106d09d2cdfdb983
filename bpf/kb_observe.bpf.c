// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kb_observe: the outcome of every TCP connect that a process in the
 * enforcement cgroup makes to a configured destination.
 *
 * A cgroup sock_ops program, attached to the same cgroup as the connect
 * hooks, so what feeds a breaker is exactly what the breaker blocks: a
 * socket created outside the cgroup runs none of this and counts nowhere.
 * TCP_CONNECT_CB looks the destination up once and, for configured ones
 * only, records the connect (kb_conn, below) and asks for its state, RTO
 * and retransmit callbacks: SYN_SENT -> ESTABLISHED is a success,
 * SYN_SENT -> CLOSE a failure whose cause the kernel has already stored in
 * sk_err (tcp_reset and tcp_v[46]_err set it before tcp_done), and a later
 * CLOSE with ECONNRESET or EPIPE a reset received, and one straight from
 * ESTABLISHED or CLOSE_WAIT with no error a reset sent (an abort). A
 * connect that times out is counted at its last RTO_CB, just before
 * tcp_write_err.
 * Sockets of other destinations never call back again, and nothing of
 * kbreaker runs for a socket made outside the cgroup.
 *
 * getsockopt(SO_ERROR) takes no lock: it may clear sk_err between the
 * kernel's store and tcp_done, and before Linux 6.10 tcp_write_err and
 * tcp_v[46]_err even wake the socket's waiters in between. So the idiom of
 * every non-blocking connect (Go, Java NIO, asyncio: poll, then SO_ERROR)
 * can empty the error before the state callback reads it. Hence a timeout
 * is taken from the RTO callback, which runs before the error is stored,
 * and an empty error is read with the socket's lock owner: a user's close
 * or disconnect holds the socket (a cancel or an abort), an error from a
 * timer or an ICMP message does not.
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
#define ECONNRESET 104
#define EPIPE 32

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Connect outcomes in order, for the agent's breakers. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KB_EVENTS_BYTES);
} kb_events SEC(".maps");

/*
 * Breakers saved for the agent's next start (agent/persist.h); never touched
 * by the programs. Sizes, not types: a key with BTF and a value without is
 * refused, and libbpf would log an error and create it again without BTF.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, KB_SAVED_SIZE);
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
static __always_inline int kb_skops_key(const struct bpf_sock_ops *skops, struct kb_dst_key *key)
{
	__u32 port = skops->remote_port, a;

	/*
	 * remote_port holds the network-order port in its upper 16 bits on
	 * little-endian hosts (an ABI quirk kept for compatibility), in its
	 * lower 16 elsewhere; a connect's port is never 0.
	 */
	key->port = port > 0xffff ? port >> 16 : port;
	if (skops->family == AF_INET) {
		a = skops->remote_ip4;
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], &a, 4);
		return 0;
	}
	if (skops->family == AF_INET6) {
		/* A mapped peer on an AF_INET6 socket is already ::ffff:a.b.c.d here. */
		a = skops->remote_ip6[0]; __builtin_memcpy(&key->addr[0], &a, 4);
		a = skops->remote_ip6[1]; __builtin_memcpy(&key->addr[4], &a, 4);
		a = skops->remote_ip6[2]; __builtin_memcpy(&key->addr[8], &a, 4);
		a = skops->remote_ip6[3]; __builtin_memcpy(&key->addr[12], &a, 4);
		return 0;
	}
	return -1;
}

static __always_inline void kb_count(__u32 dst_id, enum kb_result res, __u64 now, __u64 syn_ns,
				     bool locked)
{
	struct kb_dst_stats *st = bpf_map_lookup_elem(&kb_stats, &dst_id);
	struct kb_verdict *v = bpf_map_lookup_elem(&kb_verdicts, &dst_id);
	struct kb_trip *t = bpf_map_lookup_elem(&kb_trips, &dst_id);
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
	if (!v || !t)
		return;
	flags = kb_judge(v, t, res, syn_ns, now, locked);
	/* The order of outcomes matters only to some policies; a trip always does. */
	if (!flags && !v->events)
		return;
	/*
	 * A wake-up costs microseconds (an IPI): only for what the agent
	 * must act on now. The rest waits for its poll, in order.
	 */
	if (flags || (v->wake_mask & (1U << res)))
		wake = BPF_RB_FORCE_WAKEUP;

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

/*
 * A reset on a connection to dst_id, counted already: a failure in a
 * row where the verdict says so (kb_judge_reset). Only a trip is queued,
 * to wake the agent; other resets wait for its poll, in the counters.
 */
static __always_inline void kb_judge_reset_of(__u32 dst_id, bool locked)
{
	struct kb_verdict *v = bpf_map_lookup_elem(&kb_verdicts, &dst_id);
	struct kb_trip *t = bpf_map_lookup_elem(&kb_trips, &dst_id);
	struct kb_event *ev;
	__u64 now;

	if (!v || !t)
		return;
	now = bpf_ktime_get_ns();
	if (!kb_judge_reset(v, t, now, locked))
		return;
	ev = bpf_ringbuf_reserve(&kb_events, sizeof(*ev), 0);
	if (!ev) {
		/* The agent then finds the trip in kb_trips (apply_lost). */
		__sync_fetch_and_add(&kb_lost_total, 1);
		return;
	}
	ev->ts_ns = now;
	ev->latency_ns = 0;
	ev->dst_id = dst_id;
	ev->result = 0;
	ev->flags = KB_EV_TRIPPED | KB_EV_RESET;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP);
}

/*
 * The workload kb_enforce gave the socket's storage at connect (kb_sk),
 * "other" once its label went to another cgroup (kb_sk_dst). A connect
 * whose named record the agent deleted as stale (a Fast Open connect
 * deferred to a late first write, kb_abi.h) counts as "other" too, so that
 * its outcome still counts somewhere.
 */
static __always_inline __u32 kb_sk_workload(const struct kb_sk *ks)
{
	__u32 tag = kb_sk_dst(ks) >> KB_SK_WL_SHIFT & KB_SK_WL_MASK, zero = 0;
	struct kb_wl_ctl *c;

	if (tag)
		return tag - 1;
	c = bpf_map_lookup_elem(&kb_wl_ctl, &zero);
	return c ? c->max : 0;
}

/* Count outcome res for the workload of dst_id (as kb_sk_dst gives it). */
static __always_inline void kb_count_workload(__u32 dst_id, enum kb_result res)
{
	__u32 wl = dst_id >> KB_SK_WL_SHIFT & KB_SK_WL_MASK, slot = dst_id & KB_SK_SLOT;
	struct kb_wl_stats *ws;

	if (!wl || res >= KB_RES_MAX)
		return;
	wl--;
	/* A per_workload destination's counters are its first slot's. */
	ws = kb_wl_stats_of(dst_id & KB_ID_PER_WORKLOAD ? slot - wl : slot, wl);
	if (ws)
		__sync_fetch_and_add(&ws->connects[res], 1);
}

/*
 * Where a connect to a configured destination is kept (struct kb_sk): in
 * kb_conn, by socket cookie, from TCP_CONNECT_CB (or the connect hook that
 * names its workload) until the outcome is counted. A hash element costs
 * about half of what making a socket's storage does, in the program and
 * again when the socket is freed (BENCHMARKS.md), and most sockets need
 * nothing of theirs after the outcome: their destination is looked up
 * again when they close, and only if the close has something to count
 * (a reset, retransmits the callbacks missed). The socket's storage
 * (kb_sk_state) keeps it instead when kb_conn is full, and from the
 * outcome on for a connection that retransmits (its count so far must
 * last as long as the socket does) or whose destination has a breaker per
 * workload (its slot is the workload's).
 */

/*
 * A socket that connected to a configured destination before (then
 * AF_UNSPEC, or a connect that failed) keeps its callbacks, and may keep
 * its storage or a record the hook filed. Connecting now to a destination
 * not configured, it forgets them, or this connection's resets and
 * retransmits would count for the earlier destination. Its callbacks stay
 * on: another sock_ops program may have asked for them too.
 */
static __always_inline void kb_forget(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	__u64 cookie;

	if (!(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG))
		return;
	bpf_sk_storage_delete(&kb_sk_state, sk);
	cookie = bpf_get_socket_cookie(skops);
	bpf_map_delete_elem(&kb_conn, &cookie);
}

/* A SYN leaves for slot: a half_open probe's permit is spent (kb_judge.h). */
static __always_inline void kb_sent(__u32 slot, bool locked)
{
	struct kb_verdict *v = bpf_map_lookup_elem(&kb_verdicts, &slot);
	struct kb_trip *t;

	if (!v || v->action != KB_ACT_PROBE)
		return;
	t = bpf_map_lookup_elem(&kb_trips, &slot);
	if (t)
		kb_probe_sent(v, t, locked);
}

/* BPF_SOCK_OPS_TCP_CONNECT_CB: SYN about to leave; record connects to configured destinations. */
static __always_inline void kb_on_connect(struct bpf_sock_ops *skops, bool locked)
{
	struct kb_dst_key key = {};
	struct kb_sk rec = {}, *ks;
	__u32 *dst_id, id, wl;
	bool per_workload, in_conn = false;
	struct bpf_sock *sk;
	__u64 cookie;

	if (kb_skops_key(skops, &key))
		return;
	sk = skops->sk;
	if (!sk)
		return;
	dst_id = kb_lookup(&key, sk);
	if (!dst_id) {
		kb_forget(skops, sk);
		return;
	}
	id = *dst_id & KB_ID_SLOT;
	rec.syn_ns = bpf_ktime_get_ns();
	rec.dst_id = id;
	cookie = bpf_get_socket_cookie(skops);
	if (kb_lookup_flags & KB_LOOKUP_WORKLOADS) {
		/*
		 * The connect hook filed it, named, just before; while a
		 * restarted agent's copy runs beside the old one, the other
		 * copy may have taken it over already.
		 */
		ks = bpf_map_lookup_elem(&kb_conn, &cookie);
		if (ks) {
			rec.dst_id = ks->dst_id;
			rec.wl_gen = ks->wl_gen;
			if (ks->retrans == KB_CONN_NAMED) {
				ks->retrans = 0;
				ks->syn_ns = rec.syn_ns;
			}
			in_conn = true;
		}
	} else {
		in_conn = !bpf_map_update_elem(&kb_conn, &cookie, &rec, BPF_ANY);
	}
	/*
	 * Storage an earlier connect of this socket left starts over; without
	 * a record in kb_conn it is made (or the hook made it, to name the
	 * workload: kb_conn was full).
	 */
	ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, in_conn ? 0 : BPF_SK_STORAGE_GET_F_CREATE);
	if (ks) {
		if (!in_conn && (kb_lookup_flags & KB_LOOKUP_WORKLOADS)) {
			wl = kb_sk_workload(ks);
			per_workload = *dst_id & KB_ID_PER_WORKLOAD;
			rec.dst_id = kb_sk_id(per_workload ? id + wl : id, wl, per_workload);
			rec.wl_gen = ks->wl_gen;
		}
		ks->dst_id = rec.dst_id;
		ks->wl_gen = rec.wl_gen;
		ks->retrans = 0;
		ks->syn_ns = in_conn ? 0 : rec.syn_ns;
		ks->flags = 0;
	}
	kb_sent(rec.dst_id & KB_SK_SLOT, locked);
	if (!ks && !in_conn)
		return;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG |
				  BPF_SOCK_OPS_RTO_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG);
}

/* The counters of the slot ks's connect counts into. */
static __always_inline struct kb_dst_stats *kb_sk_stats(const struct kb_sk *ks)
{
	__u32 slot = kb_sk_dst(ks) & KB_SK_SLOT;

	return bpf_map_lookup_elem(&kb_stats, &slot);
}

/* The error the kernel stored before closing, else a soft one. */
static __always_inline int kb_sk_error(const struct tcp_sock *tp)
{
	/*
	 * No hard error: a soft one (an ICMP error that arrived while
	 * connect() held the socket, which the caller already saw) still says
	 * why the caller gave up; none at all is a cancel.
	 */
	return tp->inet_conn.icsk_inet.sk.sk_err ?: tp->inet_conn.icsk_inet.sk.sk_err_soft;
}

/*
 * Whether a task holds the socket (lock_sock): true in close(), shutdown
 * and connect(AF_UNSPEC), false in a timer or a received packet's or ICMP
 * message's softirq, which run only while no task holds it.
 */
static __always_inline bool kb_sk_user_owned(const struct tcp_sock *tp)
{
	return tp->inet_conn.icsk_inet.sk.sk_lock.owned;
}

/*
 * The outcome of a connect that ended in CLOSE without a success. An
 * empty error in a softirq is one the caller took with SO_ERROR before the
 * kernel closed the socket (an ICMP error: see the top of this file); its
 * kind is gone, but it is a failure, never a cancel.
 */
static __always_inline enum kb_result kb_close_result(const struct tcp_sock *tp)
{
	int err = kb_sk_error(tp);

	if (!err && !kb_sk_user_owned(tp))
		return KB_RES_ERROR;
	return kb_classify(err);
}

/*
 * The record of skops's tagged socket: its connect in kb_conn (*cookie
 * set; only while connecting), else its storage (*cookie 0: the kernel's
 * cookies start at 1); NULL when it kept none.
 *
 * A record still as the hook filed it (KB_CONN_NAMED) is a connect that
 * has not reached TCP_CONNECT_CB, on a socket whose callbacks an earlier
 * connect asked for: nothing to count. Once the socket leaves SYN_SENT
 * without it (closed, or connected to a destination not configured after
 * a connect that failed before its SYN), it never will be: a state change
 * (moved) drops it.
 */
static __always_inline struct kb_sk *kb_rec_of(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					       __u32 state, bool moved, __u64 *cookie)
{
	struct kb_sk *ks;

	*cookie = 0;
	if (state == TCP_SYN_SENT || state == TCP_SYN_RECV) {
		*cookie = bpf_get_socket_cookie(skops);
		ks = bpf_map_lookup_elem(&kb_conn, cookie);
		if (ks && ks->retrans != KB_CONN_NAMED)
			return ks;
		if (ks && moved)
			bpf_map_delete_elem(&kb_conn, cookie);
		*cookie = 0;
	}
	return bpf_sk_storage_get(&kb_sk_state, sk, NULL, 0);
}

/*
 * The slot of a tagged socket that kept no record: its destination, looked
 * up again. Where that destination has a breaker per workload, which
 * workload's is not known: "other"'s (first slot + max), as for a connect
 * whose workload is not known (kb_sk_id_current), not the first
 * workload's.
 */
static __always_inline int kb_slot_again(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					 __u32 *slot)
{
	struct kb_dst_key key = {};
	struct kb_wl_ctl *c;
	__u32 *id, zero = 0;

	if (kb_skops_key(skops, &key))
		return -1;
	id = kb_lookup(&key, sk);
	if (!id)
		return -1;
	*slot = *id & KB_ID_SLOT;
	if (*id & KB_ID_PER_WORKLOAD) {
		c = bpf_map_lookup_elem(&kb_wl_ctl, &zero);
		if (c)
			*slot += c->max;
	}
	return 0;
}

/* The socket of a callback this copy counts, or NULL. */
static __always_inline struct tcp_sock *kb_counted_sk(struct bpf_sock_ops *skops,
						      struct bpf_sock **skp)
{
	struct bpf_sock *sk = skops->sk;

	*skp = sk;
	if (!sk || !kb_counting())
		return NULL;
	return bpf_skc_to_tcp_sock(sk);
}

/*
 * A connect's record leaves kb_conn once its outcome is counted; while
 * the socket lives on, a retransmit count goes on in its storage, and so
 * does the slot of a breaker per workload, which no lookup gives again.
 */
static __always_inline void kb_conn_end(struct bpf_sock *sk, const struct kb_sk *rec, __u64 cookie,
					bool closing)
{
	struct kb_sk *ks;

	if ((rec->retrans || (rec->dst_id & KB_ID_PER_WORKLOAD)) && !closing) {
		ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (ks) {
			ks->dst_id = rec->dst_id;
			ks->wl_gen = rec->wl_gen;
			ks->retrans = rec->retrans;
			ks->syn_ns = 0;
			ks->flags = 0;
		}
	}
	bpf_map_delete_elem(&kb_conn, &cookie);
}

/* BPF_SOCK_OPS_STATE_CB, for tagged sockets only. */
static __always_inline void kb_on_state(struct bpf_sock_ops *skops, bool locked)
{
	int oldstate = skops->args[0], newstate = skops->args[1], err;
	enum { KB_RESET_NONE, KB_RESET_RX, KB_RESET_TX } reset = KB_RESET_NONE;
	__u32 slot, counted = 0, total, dst;
	struct kb_dst_stats *st;
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	enum kb_result res;
	bool outcome = false;
	struct kb_sk *ks;
	__u64 cookie;

	/* A CLOSE from CLOSE says nothing new: the first one counted all. */
	if ((newstate != TCP_CLOSE && newstate != TCP_ESTABLISHED) || oldstate == TCP_CLOSE)
		return;
	tp = kb_counted_sk(skops, &sk);
	if (!tp)
		return;
	ks = kb_rec_of(skops, sk, oldstate, true, &cookie);
	if (ks && (ks->flags & KB_SK_PASSIVE))
		return;
	/*
	 * SYN_RECV too: a simultaneous open (or a connect that picked its own
	 * port as source on loopback) goes SYN_SENT -> SYN_RECV -> ESTABLISHED.
	 * syn_ns != 0 marks an outcome still to count, so it counts once.
	 */
	/* Where it counts: a label given to another cgroup since is not this socket's. */
	dst = ks ? kb_sk_dst(ks) : 0;
	if (ks && ks->syn_ns && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
		res = newstate == TCP_ESTABLISHED ? KB_RES_SUCCESS : kb_close_result(tp);
		kb_count(dst & KB_SK_SLOT, res, bpf_ktime_get_ns(), ks->syn_ns, locked);
		kb_count_workload(dst, res);
		ks->syn_ns = 0;
		outcome = true;
	}
	if (newstate != TCP_CLOSE) {
		if (ks && cookie)
			kb_conn_end(sk, ks, cookie, false);
		return;
	}
	/*
	 * Retransmits RETRANS_CB never reported (a tail loss probe retransmits
	 * without it), from the socket's own total: tcp_done() runs before
	 * tcp_disconnect() clears it.
	 */
	total = tp->total_retrans;
	if (ks) {
		counted = ks->retrans;
		ks->retrans = total;
		if (cookie)
			kb_conn_end(sk, ks, cookie, true);
	}
	if (!outcome && oldstate != TCP_SYN_SENT) {
		/* tcp_reset() stores ECONNRESET (EPIPE in CLOSE_WAIT) just before tcp_done(). */
		err = kb_sk_error(tp);
		if (err == ECONNRESET || err == EPIPE)
			reset = KB_RESET_RX;
		/*
		 * An abort: tcp_disconnect() (SO_LINGER 0) and a close with
		 * unread data enter CLOSE straight from ESTABLISHED or
		 * CLOSE_WAIT, then send the RST and only then set sk_err, both
		 * with the socket held. A graceful close passes through FIN_WAIT
		 * or LAST_ACK; an error has set sk_err before tcp_done(), and a
		 * timer's (a keepalive or retransmit timeout) may have been taken
		 * by SO_ERROR already, but a timer never runs while a task holds
		 * the socket.
		 */
		else if ((oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT) &&
			 !tp->inet_conn.icsk_inet.sk.sk_err && kb_sk_user_owned(tp))
			reset = KB_RESET_TX;
	}
	/*
	 * Most connections end with nothing left to count: a socket that kept
	 * no record then skips looking its destination up again.
	 */
	if (total <= counted && reset == KB_RESET_NONE)
		return;
	if (ks)
		slot = dst & KB_SK_SLOT;
	else if (kb_slot_again(skops, sk, &slot))
		return;
	st = bpf_map_lookup_elem(&kb_stats, &slot);
	if (!st)
		return;
	if (total > counted)
		__sync_fetch_and_add(&st->retransmits, total - counted);
	if (reset == KB_RESET_RX)
		__sync_fetch_and_add(&st->resets_rx, 1);
	else if (reset == KB_RESET_TX)
		__sync_fetch_and_add(&st->resets_tx, 1);
	if (reset != KB_RESET_NONE)
		kb_judge_reset_of(slot, locked);
}

/*
 * BPF_SOCK_OPS_RTO_CB, for tagged sockets only: args[2] is set when the
 * kernel gives up, and tcp_write_err() follows at once with sk_err_soft or
 * else ETIMEDOUT as the error. A connect's outcome is counted here, before
 * anything can take the error away; the CLOSE that follows finds it
 * counted.
 */
static __always_inline void kb_on_rto(struct bpf_sock_ops *skops, bool locked)
{
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	enum kb_result res;
	struct kb_sk *ks;
	__u64 cookie;
	__u32 dst;

	if (!skops->args[2])
		return;
	tp = kb_counted_sk(skops, &sk);
	if (!tp)
		return;
	ks = kb_rec_of(skops, sk, skops->state, false, &cookie);
	if (!ks || !ks->syn_ns)
		return;
	res = kb_classify(tp->inet_conn.icsk_inet.sk.sk_err_soft ?: ETIMEDOUT);
	dst = kb_sk_dst(ks);
	kb_count(dst & KB_SK_SLOT, res, bpf_ktime_get_ns(), ks->syn_ns, locked);
	kb_count_workload(dst, res);
	ks->syn_ns = 0;
}

/*
 * BPF_SOCK_OPS_RETRANS_CB, for tagged sockets only. args[1] is the segments
 * the kernel just added to its RetransSegs; args[2] the send's error, not
 * looked at: RetransSegs counts a retransmit a local firewall dropped too.
 * A socket with no record gets storage to remember them in; if none can
 * be made, the close counts them instead.
 */
static __always_inline void kb_on_retrans(struct bpf_sock_ops *skops)
{
	struct kb_dst_stats *st;
	struct bpf_sock *sk;
	struct kb_sk *ks;
	__u64 cookie;
	__u32 slot;

	if (!kb_counted_sk(skops, &sk))
		return;
	ks = kb_rec_of(skops, sk, skops->state, false, &cookie);
	if (ks && (ks->flags & KB_SK_PASSIVE))
		return;
	if (!ks) {
		if (kb_slot_again(skops, sk, &slot))
			return;
		ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ks)
			return;
		ks->dst_id = slot;
		ks->wl_gen = 0;
		ks->retrans = 0;
		ks->syn_ns = 0;
		ks->flags = 0;
	}
	st = kb_sk_stats(ks);
	if (st)
		__sync_fetch_and_add(&st->retransmits, skops->args[1]);
	ks->retrans += skops->args[1];
}

/*
 * BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: an accepted socket copies its
 * listener's callbacks, and a listener that connected before (to a
 * configured destination: kb_forget keeps them) hands them on. Such a
 * socket keeps no record, and its peer, any client's choice of address
 * and port, would be looked up as a destination (kb_slot_again): marked
 * passive, its callbacks count nothing. Only sockets that carry the
 * callbacks pay for the storage.
 *
 * A simultaneous open (a loopback connect that picked its own port as
 * source) runs this callback too, on our own connect: it has its record,
 * in kb_conn or in storage, which an accepted socket never has (storage
 * is not cloned, its cookie is new). That one is not marked.
 */
static __always_inline void kb_on_passive(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct kb_sk *ks;
	__u64 cookie;

	if (!sk || !(skops->bpf_sock_ops_cb_flags & (BPF_SOCK_OPS_STATE_CB_FLAG |
						      BPF_SOCK_OPS_RETRANS_CB_FLAG)))
		return;
	if (bpf_sk_storage_get(&kb_sk_state, sk, NULL, 0))
		return;
	cookie = bpf_get_socket_cookie(skops);
	if (bpf_map_lookup_elem(&kb_conn, &cookie))
		return;
	ks = bpf_sk_storage_get(&kb_sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (ks)
		ks->flags = KB_SK_PASSIVE;
}

static __always_inline int kb_sockops_run(struct bpf_sock_ops *skops, bool locked)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		kb_on_connect(skops, locked);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		kb_on_state(skops, locked);
		break;
	case BPF_SOCK_OPS_RTO_CB:
		kb_on_rto(skops, locked);
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		kb_on_retrans(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		kb_on_passive(skops);
		break;
	}
	return 1;
}

SEC("sockops")
int kb_sockops(struct bpf_sock_ops *skops)
{
	return kb_sockops_run(skops, false);
}

/* The same for kernels before 5.12 (kb_judge.h); the agent loads one of the two. */
SEC("sockops")
int kb_sockops_locked(struct bpf_sock_ops *skops)
{
	return kb_sockops_run(skops, true);
}
