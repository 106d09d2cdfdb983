/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * status: the /status JSON document (what kbreakerctl reads). Pure
 * rendering; times are relative to `now`, so the text is reproducible.
 *
 * Built with json-c, so every string is escaped:
 *
 * {"version":"0.1.0","uptime_seconds":12.5,"destinations":[
 *   {"name":"payments","host":"127.0.0.1","address":"127.0.0.1","port":8080,
 *    "mode":"enforce","state":"open","time_in_state_seconds":3.2,
 *    "next_half_open_seconds":6.8,"consecutive_failures":0,"failure_rate":0.75,
 *    "connects":{"success":1,"refused":3,...},"failures":3,"blocked":4,
 *    "addresses":[{"address":"127.0.0.1","state":"open"}]}]}
 *
 * address is the literal or CIDR ("10.0.0.0/8"), or the first resolved
 * address of a name ("" if none); port 0 is "any". addresses lists a
 * name's resolved addresses, each with its own state when per_address.
 * next_half_open_seconds is null unless a breaker is open.
 *
 * With workload attribution on, the document has "workloads":{"depth":1,
 * "max":50,"labelled":2,"folded":0} (else null), and each destination
 * "breaker":"shared"|"per_workload" and "workloads":[{"workload":"A",
 * "connects":{...},"failures":1,"blocked":2,"state":"open"}], state only
 * for per_workload, in the order given (most failures first).
 */
#ifndef KB_STATUS_H
#define KB_STATUS_H

#include <stdio.h>
#include <stdint.h>
#include "breaker.h"
#include "metrics.h"

struct status_dst {
	const char *name;
	const char *host;		/* as configured */
	const uint8_t *addr;		/* 16 bytes, IPv4 mapped; NULL for names */
	uint8_t prefix_len;		/* 128: one address */
	uint16_t port;			/* 0: any */
	const uint8_t (*addrs)[16];	/* names: resolved addresses */
	size_t n_addrs;
	enum breaker_state *member_states;	/* per_address: state of addrs[i]; else NULL */
	enum breaker_mode mode;
	enum breaker_state state;	/* public state */
	uint64_t since_ns;
	uint64_t next_half_open_ns;	/* 0: none */
	uint32_t consecutive_failures;
	double failure_rate;		/* 0..1 */
	const struct kb_dst_stats *stats;	/* summed over CPUs (and addresses); NULL: none */
	bool per_workload;		/* breaker: per_workload */
	const struct metrics_wl *wl;	/* its workloads, attribution on */
	size_t n_wl;
};

/* Workload attribution, as configured and as seen. */
struct status_wl {
	uint32_t depth, max;
	uint32_t labelled, folded;
};

/* Write the document (json-c: names and hosts are escaped). Returns 0, -ENOMEM or -EIO. */
int status_render(FILE *out, const char *version, uint64_t started_ns, uint64_t now,
		  const struct status_dst *dsts, size_t n, const struct status_wl *wl);

#endif /* KB_STATUS_H */
