/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Link seams for tests that run the agent without a kernel (fakes.c): the
 * kb_bpf_* calls against maps kept in memory, resolve_name() against a
 * table, log_msg() (linked with --wrap) recorded instead of printed, and
 * malloc/calloc/realloc (--wrap too) that, like every fallible map call,
 * fail on demand: fault_arm(n) makes the nth such call from then on fail
 * once, on the thread that armed it.
 */
#ifndef KB_FAKES_H
#define KB_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "kb_abi.h"
#include "persist.h"

struct kb_bpf;

/*
 * Fail the nth fallible call from now on (allocation: NULL, map call: -EIO);
 * 0 disarms, leaving fault_calls() and fault_fired() as the armed run left them.
 */
void fault_arm(unsigned nth);

/* Fallible calls made since fault_arm(). */
unsigned fault_calls(void);

/* Whether the armed failure happened. */
bool fault_fired(void);

#define FAKE_SLOTS 64	/* dst_ids the fake maps hold */
#define FAKE_KEYS 256	/* kb_dst and kb_dst_lpm entries together */
#define FAKE_WORKLOADS 160	/* kb_workloads entries */
#define FAKE_WSTATS 256	/* kb_wstats entries */

/* A kb_dst (prefix_len 128) or kb_dst_lpm entry. */
struct fake_key {
	uint8_t addr[16];
	uint8_t prefix_len;
	uint8_t pad;
	uint16_t port;		/* host order */
	uint32_t netns;		/* namespace inode, 0: any */
	uint32_t id;
};

/*
 * What the kernel maps hold. Keys stay sorted, so two equal maps compare
 * equal byte for byte.
 */
struct fake_maps {
	size_t n_keys;
	struct fake_key keys[FAKE_KEYS];
	struct kb_verdict verdicts[FAKE_SLOTS];	/* gen as kb_bpf_set_verdict() stamps it */
	struct kb_trip trips[FAKE_SLOTS];	/* the kernel's; the agent only reads them */
	struct kb_dst_stats stats[FAKE_SLOTS];	/* the sum over CPUs */
	bool saved_used[FAKE_SLOTS];
	struct persist_record saved[FAKE_SLOTS];
	uint32_t lookup_flags;
	uint64_t failopen_after_ns;			/* kb_bpf_set_failopen_after */
	struct kb_wl_ctl wl_ctl;			/* kb_wl_ctl */
	size_t n_workloads;
	struct { uint64_t cgroup; uint32_t index; } workloads[FAKE_WORKLOADS];	/* kb_workloads */
	size_t n_free;
	uint32_t free[FAKE_WORKLOADS];			/* kb_wl_free, oldest first */
	uint32_t wl_gen[FAKE_WORKLOADS];		/* kb_wl_gen */
	uint32_t free_gen[FAKE_WORKLOADS];		/* kb_wl_gen[free[i]] when pushed */
	size_t n_wstats;
	unsigned wstats_walks;			/* forgets: each a walk of kb_wstats */
	struct { struct kb_wl_key key; struct kb_wl_stats st; } wstats[FAKE_WSTATS];	/* kb_wstats */
};

extern struct fake_maps fake_maps;

/* Empty maps and event queue, and the handle to pass for them. */
struct kb_bpf *fake_bpf_open(void);

/* The maps as the last agent left them, adopted as a restarted agent finds them pinned. */
struct kb_bpf *fake_bpf_adopt(void);

/* After fake_bpf_adopt(): the workload maps were made afresh (workloads: changed). */
void fake_wl_renumbered(void);

/* The kernel saw a new cgroup: index it as kb_enforce does (kb_abi.h); returns the index. */
uint32_t fake_workload(uint64_t cgroup);

/* The kernel counted n outcomes res (KB_RES_MAX: refusals) of workload wl to slot dst. */
void fake_wl_count(uint32_t dst, uint32_t wl, int res, uint64_t n);

/* Queue one outcome for the next kb_bpf_drain(). */
void fake_event(uint32_t dst_id, enum kb_result res, uint64_t ts_ns);

/*
 * The kernel saw a reset, received (rx) or sent, on a connection to
 * dst_id: kb_observe counts it, judges it under the verdict in force
 * (kb_judge_reset) and queues the trip, if it tripped.
 */
void fake_reset(uint32_t dst_id, bool rx, uint64_t ts_ns);

/* resolve_name() answers from names[] (kept by reference); a name not there is EAI_NONAME. */
struct fake_name {
	const char *name;
	const char *addrs[4];	/* IP literals, NULL after the last */
};
void fake_names(const struct fake_name *names, size_t n);

/*
 * hold: every resolve_name() from then on waits until released, on any
 * thread: a name server that does not answer. After 10 s a held lookup
 * gives up (EAI_AGAIN), so that code which waits on it fails a test
 * rather than hangs it.
 */
void fake_names_hold(bool hold);

/* Lookups waiting on a hold now. */
unsigned fake_names_waiting(void);

/* resolve_name() calls made on the calling thread so far. */
unsigned fake_lookups_here(void);

/* Forget the error lines logged so far. */
void fake_log_reset(void);

/* Error lines logged since fake_log_reset(), and the first of them ("" if none). */
unsigned fake_log_errors(void);
const char *fake_log_first_error(void);

#endif /* KB_FAKES_H */
