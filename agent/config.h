/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * config: kbreakerd's YAML configuration, parsed with libyaml and validated.
 * Pure: no logging, no exits. Every error names file:line:col.
 */
#ifndef KB_CONFIG_H
#define KB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "addr.h"
#include "policy.h"

#define CONFIG_NAME_MAX 64	/* destination name, NUL included */
#define CONFIG_HOST_MAX 256	/* host as written, NUL included */
#define CONFIG_PATH_MAX 4096
/*
 * A destination's netns: path, NUL included. Per destination, so not
 * PATH_MAX: 10,000 destinations would carry 40 MB of empty paths.
 */
#define CONFIG_NETNS_MAX 256
#define CONFIG_ERR_MAX 512	/* room for one "file:line:col: message" */
#define CONFIG_MAX_FILE_BYTES (1 << 20)
#define CONFIG_MAX_DESTINATIONS 1048576	/* the most max_destinations may allow */
#define CONFIG_WORKLOADS_MAX 1000	/* the most workloads: max may allow */
#define CONFIG_WORKLOADS_DEPTH_MAX 16	/* the deepest workloads: depth may reach */

enum host_kind {
	HOST_ADDR = 0,	/* an IPv4 or IPv6 literal */
	HOST_CIDR,	/* a prefix: every address inside belongs to this destination */
	HOST_NAME,	/* a DNS name, resolved (and re-resolved) at run time */
};

struct config_dst {
	char name[CONFIG_NAME_MAX];
	char host[CONFIG_HOST_MAX];	/* as written in the file */
	enum host_kind host_kind;
	uint8_t addr[16];		/* ADDR/CIDR: network order; IPv4 as ::ffff:a.b.c.d */
	uint8_t prefix_len;		/* in that 128-bit space: 128 for ADDR, 96+n for IPv4 /n */
	uint16_t port;			/* host order, 1..65535; 0 = any port ("any") */
	uint8_t per_address;		/* NAME only: one breaker per address (0 or 1) */
	uint8_t per_workload;		/* breaker: per_workload (0 or 1); max + 1 slots */
	uint32_t max_open_percent;	/* per_address/per_workload: most open at once, 1..100 */
	char netns[CONFIG_NETNS_MAX];	/* network namespace file; "" = every namespace */
	uint32_t netns_ino;		/* its inode number, set by config_load(); 0 = any */
	struct breaker_policy policy;
	int line;			/* 1-based position of the entry, for messages */
	int netns_line, netns_col;	/* position of netns:'s value, for config_load()'s messages */
};

struct config {
	char listen_host[CONFIG_HOST_MAX];	/* IP literal; default 127.0.0.1 */
	uint16_t listen_port;			/* default 9877 */
	char cgroup[CONFIG_PATH_MAX];		/* "" = cgroup v2 root, found at run time */
	char state_dir[CONFIG_PATH_MAX];	/* bpffs directory for state kept across restarts; "" = none */
	uint64_t poll_interval_ns;		/* default 100ms, 1ms..1h */
	uint64_t resolve_interval_ns;		/* DNS re-resolution; default 30s, 1s..24h */
	uint64_t failopen_after_ns;		/* a stopped loop's hooks let all through; 10s, 2s..1h */
	uint32_t max_destinations;		/* BPF map capacity; default 16384, 1..1048576 */
	uint8_t metrics_compact;		/* omit zero-valued per-destination series (0 or 1) */
	uint8_t fastopen_ignore;		/* fastopen_connect: ignore (1) or allow (0); start only */
	char log_level[8];			/* "error".."debug"; "" = info unless --log-level */
	char user[32];				/* run as this user once attached; "" = stay root */
	uint8_t workloads_on;			/* workloads: present, attribution on; start only */
	uint32_t workloads_depth;		/* cgroup levels under ours, 1..16; default 1 */
	uint32_t workloads_max;			/* labelled workloads, 1..1000; default 50 */
	struct breaker_policy defaults;
	struct config_dst *dsts;
	size_t n_dsts;
};

/* Fill p with the built-in policy (what `defaults:` holds when it sets nothing). */
void config_policy_defaults(struct breaker_policy *p);

/* Fill cfg with the built-in defaults and no destinations. */
void config_init(struct config *cfg);

/*
 * Parse YAML text `buf` (len bytes) named `fname` in messages into cfg.
 * Returns 0, or -EINVAL (-ENOMEM) with "fname:line:col: message" in err (1-based line
 * and column). On error cfg is left empty (config_free-safe).
 */
int config_parse(struct config *cfg, const char *fname, const char *buf, size_t len,
		 char *err, size_t errlen);

/*
 * Read and parse a file, then find each destination's netns: file (stat)
 * and keep its inode number. Returns 0 or -errno; err says why, naming
 * the file (and line and column where the text is at fault).
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/*
 * Whether next changes a key that only a start reads (workloads:): the
 * kernel's maps and programs were sized from it. Returns 0, or -EINVAL with
 * "workloads: cannot change while running (...), restart kbreakerd" in err.
 * Pure; a reload calls it with the running config and the new one.
 */
int config_start_only_changed(const struct config *cur, const struct config *next, char *err,
			      size_t errlen);

/*
 * The keys read at start only that next changes from cur and a reload
 * leaves as they were (listen, cgroup, state_dir, user, fastopen_connect), named in buf as
 * "listen, user"; "" when none. len >= CONFIG_RESTART_KEYS_MAX holds all.
 * Pure: the reload warns with it.
 */
#define CONFIG_RESTART_KEYS_MAX 64
const char *config_restart_keys(const struct config *cur, const struct config *next, char *buf,
				size_t len);

/*
 * next, accepted by a reload, takes cur's start-only keys: the values in
 * force, so that it says what runs and the next reload's warning compares
 * with that, not with a file that was never applied.
 */
void config_keep_start_only(struct config *next, const struct config *cur);

/*
 * Once the namespaces are found (netns_ino): the first destination, in file
 * order, with the same host, port and namespace as an earlier one, *first,
 * though its netns path differs (/run/netns/X, /var/run/netns/X); *rep is
 * NULL if there is none. 0 or -ENOMEM.
 */
int config_netns_repeat(const struct config *cfg, const struct config_dst **rep,
			const struct config_dst **first);

/* Breaker slots cfg's destinations take: 1 each, workloads_max + 1 per per_workload one. */
uint64_t config_slots_needed(const struct config *cfg);

/* Release what config_parse allocated; cfg is empty afterwards. */
void config_free(struct config *cfg);

/*
 * Whether s is a DNS host name by RFC 1123: dot-separated labels of 1..63
 * [A-Za-z0-9-], no label starting or ending with '-', at most 253 characters,
 * and a last label that is not all digits (so "10.1" is not a name).
 */
bool config_valid_hostname(const char *s);

/* Canonical text for a mode: "enforce", "observe", "disabled" or "forced_open". */
const char *config_mode_name(enum breaker_mode mode);

#endif /* KB_CONFIG_H */
