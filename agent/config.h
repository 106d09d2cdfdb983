/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * config: kbreakerd's YAML configuration, parsed with libyaml and validated.
 * Pure: no logging, no exits. Every error names file:line:col.
 */
#ifndef KB_CONFIG_H
#define KB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_NAME_MAX 64	/* destination name, NUL included */
#define CONFIG_HOST_MAX 256	/* host as written, NUL included */
#define CONFIG_PATH_MAX 4096
#define CONFIG_ERR_MAX 512	/* room for one "file:line:col: message" */
#define CONFIG_MAX_FILE_BYTES (1 << 20)
#define CONFIG_MAX_DESTINATIONS 65536

enum breaker_mode {
	MODE_ENFORCE = 0,	/* blocks open destinations */
	MODE_OBSERVE = 1,	/* state machine runs, never blocks: metrics_only */
};

/* Breaker policy; `defaults:` fills it, each destination may override any key. */
struct breaker_policy {
	enum breaker_mode mode;
	uint32_t consecutive_failures;	/* trip after this many failures in a row, >= 1 */
	uint64_t open_duration_ns;	/* open -> half_open after this long, > 0 */
	uint32_t half_open_permits;	/* probes let through; all must succeed, >= 1 */
};

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
	struct breaker_policy policy;
	int line;			/* 1-based position of the entry, for messages */
};

struct config {
	char listen_host[CONFIG_HOST_MAX];	/* IP literal; default 127.0.0.1 */
	uint16_t listen_port;			/* default 9877 */
	char cgroup[CONFIG_PATH_MAX];		/* "" = cgroup v2 root, found at run time */
	uint64_t poll_interval_ns;		/* default 100ms, 1ms..1h */
	uint64_t resolve_interval_ns;		/* DNS re-resolution; default 30s, 1s..24h */
	uint32_t max_destinations;		/* BPF map capacity; default 16384, 1..1048576 */
	struct breaker_policy defaults;
	struct config_dst *dsts;
	size_t n_dsts;
};

/* Fill cfg with the built-in defaults and no destinations. */
void config_init(struct config *cfg);

/*
 * Parse YAML text `buf` (len bytes) named `fname` in messages into cfg.
 * Returns 0, or -EINVAL (-ENOMEM) with "fname:line:col: message" in err (1-based line
 * and column). On error cfg is left empty (config_free-safe).
 */
int config_parse(struct config *cfg, const char *fname, const char *buf, size_t len,
		 char *err, size_t errlen);

/* Read and parse a file. Returns 0 or -errno; err says why, naming the file. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Release what config_parse allocated; cfg is empty afterwards. */
void config_free(struct config *cfg);

/*
 * Parse a duration: a non-negative integer followed by ms, s, m or h
 * ("100ms", "10s", "5m", "1h"). Returns 0 or -EINVAL; overflow is -ERANGE.
 */
int config_parse_duration(const char *s, uint64_t *ns);

/* Parse an IPv4 or IPv6 literal into the normalised 16-byte form. 0 or -EINVAL. */
int config_parse_addr(const char *s, uint8_t addr[16]);

/* Canonical text for a mode: "enforce" or "observe". */
const char *config_mode_name(enum breaker_mode mode);

#endif /* KB_CONFIG_H */
