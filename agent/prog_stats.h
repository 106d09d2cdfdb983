/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * prog_stats: what the kernel counts of each loaded BPF program
 * (struct bpf_prog_info), as plain values. bpf.c fills it, metrics.c
 * renders it; neither needs the other's headers for it.
 */
#ifndef KB_PROG_STATS_H
#define KB_PROG_STATS_H

#include <stdint.h>

struct kb_prog_stats {
	const char *name;	/* program name, as in bpftool prog show */
	uint64_t run_cnt;	/* 0 unless kernel.bpf_stats_enabled */
	uint64_t run_time_ns;
	uint64_t recursion_misses;	/* runs the kernel skipped: the program was already running on that CPU */
};

#endif /* KB_PROG_STATS_H */
