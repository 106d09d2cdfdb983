/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * persist: a breaker as a fixed-width, versioned record, so that a
 * restarted kbreakerd (state_dir) takes it back field by field instead of
 * trusting a raw copy of another build's struct. Pure: no I/O, no clock.
 *
 * The record only ever travels between two agents on one host (through
 * the kb_saved map), so it is in host byte order. A change of meaning or
 * layout bumps PERSIST_VERSION; a record of another version is not read,
 * and its breaker starts afresh.
 */
#ifndef KB_PERSIST_H
#define KB_PERSIST_H

#include <stdint.h>
#include <linux/types.h>
#include "breaker.h"
#include "kb_abi.h"

#define PERSIST_VERSION 4

struct persist_policy {
	__u32 mode;
	__u32 consecutive_failures;
	__u64 open_duration_ns;
	__u32 half_open_permits;
	__u32 failure_rate_threshold;
	__u32 window_type;
	__u32 window_size;
	__u32 minimum_calls;
	__u32 slow_call_rate_threshold;
	__u64 slow_call_duration_ns;
	__u32 failures;
	__u32 jitter_percent;
	__u64 max_open_duration_ns;
	__u32 half_open_successes;
	__u32 pad;
	__u64 max_half_open_duration_ns;
	__u64 recovery_ramp_ns;
};

struct persist_window {
	__u32 type;
	__u32 size;
	__u32 pos;
	__u32 n;
	__u32 total[3];			/* calls, failures, slow */
	__u32 n_buckets;
	__u64 bucket_ns;
	__u64 head;
	__u64 fail_bits[16];
	__u64 slow_bits[16];
	__u32 buckets[60][3];		/* calls, failures, slow */
};

/* A breaker and what the agent has applied of the kernel's counters. */
struct persist_breaker {
	struct persist_policy policy;
	__u32 state;
	__u32 cause;
	__u32 consecutive_failures;
	__u32 probe_successes;
	__u32 open_streak;
	__u32 ramp_step;
	__u64 state_since_ns;
	__u64 open_until_ns;
	__u64 half_open_until_ns;
	__u64 ramp_until_ns;
	__u64 rng;
	__u64 denied_trips;
	__u64 transitions[6][6];	/* [old][new], enum breaker_state */
	struct persist_window window;
	__u64 lost_seen[6];		/* kb_dst_stats.lost already applied, by enum kb_result */
	__u64 resets_seen;
};

/* One kb_saved value: whose breaker it is, then the breaker. */
/*
 * What a per_address circuit's members that went had counted (struct
 * circuit_retired), carried by each member's record: the destination's
 * counters stay cumulative across a restart.
 */
struct persist_retired {
	struct kb_dst_stats stats;
	__u64 transitions[3][3];	/* [old][new]: closed, open, half_open */
	__u64 trips_denied;
};

struct persist_record {
	__u32 version;			/* PERSIST_VERSION */
	__u32 size;			/* sizeof(struct persist_breaker) */
	char name[64];			/* circuit_name */
	char host[256];			/* host as configured */
	__u16 port;
	__u16 workload;			/* per_workload: the member's workload index + 1; 0: none */
	__u8 member;			/* 1: a per_address member, the breaker of address addr */
	__u8 pad[3];
	__u32 netns;			/* the destination's namespace (netns:), inode; 0: any */
	__u32 pad2;
	__u8 addr[16];
	union {
		struct {
			struct persist_breaker br;
			struct persist_retired retired;	/* member: its circuit's */
		};
		__u8 room[2024];	/* the map's value size stays put across versions */
	};
};

/* A breaker as the agent keeps it, with its counters' bookkeeping. */
struct persist_state {
	struct breaker br;
	uint64_t lost_seen[KB_RES_MAX];
	uint64_t resets_seen;
};

/* Fill rec (zeroed first) for the circuit name/host/port in namespace netns from st. */
void persist_encode(const struct persist_state *st, const char *name, const char *host,
		    uint16_t port, uint32_t netns, struct persist_record *rec);

/*
 * Whether rec was saved for the circuit name/host/port in namespace netns
 * (by any version): a breaker of another namespace's peer is not this one's.
 */
bool persist_matches(const struct persist_record *rec, const char *name, const char *host,
		     uint16_t port, uint32_t netns);

/*
 * Read rec back into st. Returns 0, or -EPROTO for another version or
 * size, -EINVAL for a value out of range (st is then undefined).
 */
int persist_decode(const struct persist_record *rec, struct persist_state *st);

#endif /* KB_PERSIST_H */
