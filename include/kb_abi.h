/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kb_abi.h - the one contract between kbreaker's BPF programs and the agent.
 *
 * Included by BPF code (after vmlinux.h) and by user space (after
 * <linux/types.h>). Fixed-width types only, explicit padding, no pointers.
 */
#ifndef KB_ABI_H
#define KB_ABI_H

#ifndef __bpf__
#include <linux/bpf.h>	/* struct bpf_spin_lock; BPF code has it from vmlinux.h */
#endif

/*
 * Outcome of one actively opened TCP connection (SYN_SENT -> ...).
 * The order is ABI: it indexes kb_dst_stats.connects and user-space tables.
 */
enum kb_result {
	KB_RES_SUCCESS = 0,	/* SYN_SENT -> ESTABLISHED */
	KB_RES_REFUSED = 1,	/* RST to our SYN: ECONNREFUSED */
	KB_RES_TIMEOUT = 2,	/* SYN retries exhausted: ETIMEDOUT */
	KB_RES_UNREACHABLE = 3,	/* ICMP unreachable: EHOSTUNREACH/ENETUNREACH */
	KB_RES_ERROR = 4,	/* any other socket error */
	KB_RES_CANCELLED = 5,	/* closed by the application before completion */
	KB_RES_MAX = 6,
};

/* What the connect hooks do for a destination. */
enum kb_action {
	KB_ACT_ALLOW = 0,	/* closed, disabled, or unknown: fail open */
	KB_ACT_BLOCK = 1,	/* open, forced_open: refuse with ECONNREFUSED */
	KB_ACT_PROBE = 2,	/* half_open: let kb_verdict.permits through */
	KB_ACT_RAMP = 3,	/* recovering: admit a kb_verdict.admit share at random */
};

/* kb_verdict.admit is a share of 65536: admit when (random & 0xffff) < admit. */
#define KB_ADMIT_ONE 65536U

/* Connect latency histogram: slot i counts latencies in [2^i, 2^(i+1)) us, slot 0 also < 1 us. */
#define KB_LAT_SLOTS 24

/*
 * The destination maps' size as the BPF objects are compiled. The agent
 * always sets it before load from max_destinations (default 16384, see
 * config.c), so this number only matters to a tool loading the objects alone.
 */
#define KB_MAX_DESTINATIONS_DEFAULT 1024

/*
 * Key of kb_dst: a destination address and port, in a network namespace.
 * addr is IPv6 in network byte order; IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d) so AF_INET, AF_INET6 and mapped sockets all meet here.
 * port is in network byte order. netns is the inode number of the
 * connecting socket's network namespace (what stat(2) gives for
 * /run/netns/NAME or /proc/PID/ns/net), or 0 for any namespace. Zero the
 * whole key before filling it: hash maps compare raw bytes, padding included.
 */
struct kb_dst_key {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
	__u32 netns;
};
_Static_assert(sizeof(struct kb_dst_key) == 24, "kb_dst_key ABI");

/*
 * Key of kb_dst_lpm, for CIDR destinations: namespace and port first, then
 * the address, so one prefix length covers all three. prefixlen = 48 + the
 * address prefix (IPv4 /n is 96 + n in the mapped space); port 0 means any
 * port, netns 0 any namespace.
 */
struct kb_lpm_key {
	__u32 prefixlen;
	__u32 netns;
	__u16 port;		/* network byte order */
	__u8 addr[16];
	__u16 pad;
};
_Static_assert(sizeof(struct kb_lpm_key) == 28, "kb_lpm_key ABI");

/* kb_lpm_key.prefixlen bits before the address: netns and port. */
#define KB_LPM_PRE 48
/* Full match in kb_dst_lpm: 48 netns and port bits + 128 address bits. */
#define KB_LPM_FULL (KB_LPM_PRE + 128)

/*
 * kb_lookup_flags (a global in each object, written by the agent): which
 * slower lookups are worth trying after the exact (address, port) hash
 * misses. Unset, an unconfigured connect costs one hash lookup.
 */
#define KB_LOOKUP_ANY_PORT 0x1	/* kb_dst holds (address, any port) entries */
#define KB_LOOKUP_PREFIX 0x2	/* kb_dst_lpm holds entries */
#define KB_LOOKUP_NETNS 0x4	/* some entries name a network namespace */
#define KB_LOOKUP_WORKLOADS 0x8	/* attribution on: kb_wl_ctl.max is set */

/*
 * kb_dst and kb_dst_lpm values: the destination's breaker slot, with
 * KB_ID_PER_WORKLOAD when it has one breaker per workload. Its breakers
 * then fill max + 1 consecutive slots from that one: slot + workload.
 */
#define KB_ID_PER_WORKLOAD 0x80000000U
#define KB_ID_SLOT 0x7fffffffU

/*
 * Workloads (attribution): the connect hooks name the cgroup a connect
 * comes from, cut `depth` levels below the enforcement cgroup, and
 * kb_workloads gives it an index on first sight: 0..max-1 each its own
 * label, max for every later one ("other"). kb_wl_ctl.max 0: off.
 *
 * The hooks find the enforcement cgroup's level themselves, by its id
 * among the task's ancestors: a path seen through a container's cgroup
 * namespace or bind mount would give the agent a wrong one.
 *
 * Labels come back: once a cgroup is gone, the agent deletes its entry
 * and pushes its index onto kb_wl_free, and the hooks hand out indexes
 * from there before new ones from next. Sockets of the gone cgroup may
 * live on (their processes moved elsewhere), named with the index: so
 * each index has a generation (kb_wl_gen), which the agent bumps before
 * it gives the index back, and a connect is named with the generation it
 * saw. What a socket named under an older one does later (its outcome,
 * resets, retransmits) counts as "other" (kb_sk_id_current), never for
 * the cgroup the label went to.
 */
struct kb_wl_ctl {
	__u64 base;	/* agent: the enforcement cgroup's id (its directory's inode) */
	__u32 depth;	/* agent: levels below it that make a workload */
	__u32 max;	/* agent: labelled workloads; 0 = attribution off */
	__u32 next;	/* kernel: indexes handed out so far (may pass max) */
	__u32 lost;	/* kernel: workload counts dropped, kb_wstats full */
	__u32 level;	/* kernel: 1 + the level that makes a workload; 0 = not found yet */
	struct bpf_spin_lock lock;	/* kernels before 5.12: guards next (kb_judge.h) */
};
_Static_assert(sizeof(struct kb_wl_ctl) == 32, "kb_wl_ctl ABI");

/* kb_wl_free's room: the most labelled workloads there may be. */
#define KB_WL_LABELS_MAX 1024

/* Deepest enforcement cgroup level the hooks look for (cgroup v2 nests far less in practice). */
#define KB_WL_LEVELS 32

/* Key of kb_wstats: a destination (its first slot) and a workload index. */
struct kb_wl_key {
	__u32 dst;
	__u32 workload;
};
_Static_assert(sizeof(struct kb_wl_key) == 8, "kb_wl_key ABI");

/* Counters of one workload's connects to one destination; cumulative. */
struct kb_wl_stats {
	__u64 connects[KB_RES_MAX];	/* by enum kb_result */
	__u64 blocked;			/* refused by the connect hooks */
};
_Static_assert(sizeof(struct kb_wl_stats) == (KB_RES_MAX + 1) * 8, "kb_wl_stats ABI");

/*
 * A connect to a configured destination while it is in progress: kb_conn,
 * keyed by socket cookie, from the connect until its outcome is counted
 * (bpf/kb_observe.bpf.c). With attribution on, the connect hook files it
 * first, named (dst_id carries the workload), with retrans KB_CONN_NAMED
 * and syn_ns the hook's time; TCP_CONNECT_CB then takes it over. A connect
 * that fails before its SYN (no route, no free local port) never gets
 * there: the agent deletes such records once KB_CONN_STALE_NS old. A
 * deferred Fast Open connect (TCP_FASTOPEN_CONNECT) sends its SYN at its
 * first write: one that waits longer counts as workload "other"
 * (fastopen_connect: ignore turns the option off, or refuses the connect). The
 * agent reads a record, then deletes it by key: a takeover, or a new
 * connect of the same socket, that falls between the two (microseconds,
 * once every 10 s, and only on a socket whose record is that old) loses
 * that connect's workload, or its count.
 */
struct kb_sk {
	__u64 syn_ns;	/* SYN sent; 0 once the outcome is counted */
	__u32 dst_id;	/* slot | (workload + 1) << KB_SK_WL_SHIFT | KB_ID_PER_WORKLOAD */
	__u32 retrans;	/* segments counted into retransmits so far */
	__u32 wl_gen;	/* kb_wl_gen of the workload when the hook named the connect */
	__u32 flags;	/* KB_SK_*; 0 in kb_conn */
};
_Static_assert(sizeof(struct kb_sk) == 24, "kb_sk ABI");

/* kb_sk.flags: an accepted socket, whose callbacks count nothing (kb_observe.bpf.c). */
#define KB_SK_PASSIVE 1U

#define KB_SK_SLOT 0xfffffU
#define KB_SK_WL_SHIFT 20
#define KB_SK_WL_MASK 0x7ffU	/* workload + 1; 0: none */

#define KB_CONN_MAX 16384
#define KB_CONN_NAMED 0xffffffffU
/*
 * Far beyond the microseconds between a connect hook and its SYN: a record
 * taken over between a sweep's read and its delete would lose its count.
 */
#define KB_CONN_STALE_NS 60000000000ULL

/* Whether the agent may delete record r at time now (bpf_ktime_get_ns' clock). */
static inline int kb_conn_stale(const struct kb_sk *r, __u64 now)
{
	return r->retrans == KB_CONN_NAMED && now > r->syn_ns && now - r->syn_ns >= KB_CONN_STALE_NS;
}

/*
 * kb_sk.dst_id as it counts now, for a record named with generation
 * wl_gen of its workload's label, whose generation is cur: the same while
 * they agree (or the record names no workload); else the label was given
 * back since (its cgroup gone) and may be another cgroup's, so the record
 * counts as workload "other" (index max), and for a per_workload
 * destination in its "other" breaker's slot (first slot + max).
 */
static inline __u32 kb_sk_id_current(__u32 dst_id, __u32 wl_gen, __u32 cur, __u32 max)
{
	__u32 tag = dst_id >> KB_SK_WL_SHIFT & KB_SK_WL_MASK, slot = dst_id & KB_SK_SLOT;

	if (!tag || wl_gen == cur || !max)
		return dst_id;
	if (dst_id & KB_ID_PER_WORKLOAD)
		slot = slot - (tag - 1) + max;
	return (slot & KB_SK_SLOT) | ((max + 1) & KB_SK_WL_MASK) << KB_SK_WL_SHIFT |
	       (dst_id & KB_ID_PER_WORKLOAD);
}

/* Distinct cgroups kb_workloads remembers; past it every new one is "other" unremembered. */
#define KB_WL_CGROUPS 65536
/* kb_wstats entries, at most: destinations x (max + 1) are cut to this. */
#define KB_WL_STATS_MAX (1U << 20)

/*
 * Per-destination counters, cumulative since the maps were created.
 * kb_stats is per-CPU: writers never share a cache line; the agent sums CPUs
 * and takes deltas, so a late or missed poll loses nothing.
 */
struct kb_dst_stats {
	__u64 connects[KB_RES_MAX];	/* by enum kb_result */
	__u64 blocked;			/* connects refused by the connect hooks */
	__u64 would_block;		/* observe mode: connects it would have refused */
	__u64 resets_rx;		/* RST received on an established connection */
	__u64 resets_tx;		/* RST sent on an established connection */
	__u64 retransmits;		/* segments retransmitted */
	__u64 lat_slots[KB_LAT_SLOTS];	/* successful connect latency, log2(us) */
	__u64 lat_sum_ns;		/* sum of successful connect latencies */
	__u64 lost[KB_RES_MAX];		/* outcomes counted but not queued: ring full */
};
_Static_assert(sizeof(struct kb_dst_stats) == (2 * KB_RES_MAX + 6 + KB_LAT_SLOTS) * 8,
	       "kb_dst_stats ABI");

/*
 * Policy for one destination: written whole by the agent (and only by the
 * agent) on each of its transitions; read by both objects. Every write
 * carries a new `gen`, which starts afresh the kernel's own state for the
 * destination (struct kb_trip). With `observe` set the hooks decide the
 * same way but allow, counting would_block instead of blocked.
 */
struct kb_verdict {
	__u32 action;		/* enum kb_action */
	__u32 admit;		/* KB_ACT_RAMP: share of KB_ADMIT_ONE let through */
	__u32 permits;		/* KB_ACT_PROBE: connects let through in this gen */
	__u32 observe;		/* 0 or 1 */
	__u32 trip_after;	/* consecutive failures that trip in the kernel; 0: never */
	__u32 fail_mask;	/* 1 << enum kb_result for each result that is a failure; KB_RESETS_FAIL */
	__u32 fails_base;	/* consecutive failures the agent had counted at this write */
	__u32 wake_mask;	/* 1 << enum kb_result for each result that wakes the agent at once */
	__u32 gen;		/* never 0; differs from the previous write's */
	__u32 events;		/* 1: queue every outcome on kb_events; 0: only kernel trips */
	__u64 since_ns;		/* outcomes of connects begun earlier are ignored */
};
_Static_assert(sizeof(struct kb_verdict) == 48, "kb_verdict ABI");

/*
 * In kb_verdict.fail_mask: a reset, received or sent, on a connection to
 * the destination is a failure too, in the kernel's count of failures in
 * a row (kb_judge_reset), so that resets trip as soon as connects do and
 * the count outlives the agent. Above every enum kb_result bit.
 */
#define KB_RESETS_FAIL (1U << 31)

/*
 * The kernel's half of a breaker: written only by the BPF programs
 * (atomically, see kb_judge.h), read by the agent, never written by it.
 * Each word packs the verdict gen it belongs to in its high 32 bits, so a
 * new verdict starts it at zero without a store from user space: a word
 * whose gen is not the verdict's counts as zero.
 *
 * A kernel trip: at trip_after consecutive failures the kernel sets
 * `tripped` to the verdict's gen, and from then on the hooks block as if
 * the action were KB_ACT_BLOCK until the agent, woken by the event, adopts
 * the trip and writes its next verdict (a new gen).
 */
struct kb_trip {
	__u64 fails;		/* gen << 32 | consecutive failures in gen */
	__u64 probes;		/* gen << 32 | KB_ACT_PROBE permits taken in gen */
	__u32 tripped;		/* gen the kernel tripped in; 0: none */
	struct bpf_spin_lock lock;	/* kernels before 5.12 only (kb_judge.h) */
	__u64 tripped_ns;	/* bpf_ktime_get_ns() of the trip */
	__u64 sent;		/* gen << 32 | KB_ACT_PROBE connects whose SYN left in gen */
};
_Static_assert(sizeof(struct kb_trip) == 40, "kb_trip ABI");

/*
 * One connect outcome, in ring-buffer order, queued only for destinations
 * whose policy needs the order (kb_verdict.events: count windows, slow
 * calls, half_open probes, the blast-radius guard) and for every kernel
 * trip, a reset's too; the agent reads the others' counters. Counters
 * stay the truth for metrics. Only outcomes that decide something
 * (kb_verdict.wake_mask, a kernel trip) wake the agent at once; the rest
 * wait for its poll.
 */
#define KB_EV_TRIPPED 0x1	/* this outcome tripped the breaker in the kernel */
#define KB_EV_RESET 0x2		/* not a connect's outcome: a reset that tripped it (result 0) */

struct kb_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 latency_ns;	/* SYN sent -> outcome */
	__u32 dst_id;
	__u32 result;		/* enum kb_result */
	__u32 flags;		/* KB_EV_* */
	__u32 pad;
};
_Static_assert(sizeof(struct kb_event) == 32, "kb_event ABI");

/*
 * Value size of kb_saved, keyed by dst_id: a breaker kept across an agent
 * restart (state_dir). The kernel only stores it; its layout is the
 * agent's own (agent/persist.h).
 */
#define KB_SAVED_SIZE 2384

/* Ring buffer size in bytes (power of two, multiple of the page size). */
#define KB_EVENTS_BYTES (1U << 20)

#endif /* KB_ABI_H */
