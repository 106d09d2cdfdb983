/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps shared by kb_observe and kb_enforce. Both objects declare them
 * identically; the agent creates them once (observe) and hands the same fds
 * to the enforce object with bpf_map__reuse_fd() before it loads.
 */
#ifndef KB_MAPS_BPF_H
#define KB_MAPS_BPF_H

#include "kb_abi.h"

/* Destination -> dst_id. Written by the agent, read by both objects. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, struct kb_dst_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} kb_dst SEC(".maps");

/* dst_id -> counters. Written by both objects (per-CPU), read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, __u32);
	__type(value, struct kb_dst_stats);
} kb_stats SEC(".maps");

/* dst_id -> verdict. Written by the agent, read (and permits taken) by kb_enforce. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KB_MAX_DESTINATIONS_DEFAULT);
	__type(key, __u32);
	__type(value, struct kb_verdict);
} kb_verdicts SEC(".maps");

#endif /* KB_MAPS_BPF_H */
