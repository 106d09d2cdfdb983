/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * config_schema: what the config module's three files share, and nothing
 * else includes. config.c holds the key tables and walks the structure
 * (top level, defaults:, workloads:, destinations:), config_value.c stores one value of
 * each key type, config_check.c applies the rules across keys once the walk
 * is done.
 */
#ifndef KB_CONFIG_SCHEMA_H
#define KB_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "yamlwalk.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A row's type: how config_value.c reads the value and stores it. */
enum key_type {
	KEY_UINT,	/* decimal integer in [min, max], 2- or 4-byte field */
	KEY_DURATION,	/* duration_parse() in [min, max] ns */
	KEY_MODE,	/* enforce | observe | disabled | forced_open */
	KEY_WINDOW_TYPE,	/* count | time */
	KEY_WINDOW_SIZE,	/* integer (calls or seconds) or whole-second duration, in [min, max] */
	KEY_FAILURES,	/* sequence of result names -> POLICY_FAIL_* mask */
	KEY_BOOL,	/* true | false, 1-byte field */
	KEY_PORT,	/* 1..65535 or "any" (0) */
	KEY_NAME,	/* destination name, 1..max chars of [A-Za-z0-9_.-] */
	KEY_HOST,	/* IP literal, CIDR or DNS name, at most max chars; base is a config_dst */
	KEY_LISTEN,	/* "host:port"; base is a config */
	KEY_PATH,	/* absolute path of at most max chars, or empty */
	KEY_LOG_LEVEL,	/* error | warn | info | debug, as text */
	KEY_USER,	/* a user name: [a-z_][a-z0-9_-]*, at most max chars */
	KEY_BREAKER,	/* shared (0) | per_workload (1), 1-byte field */
	KEY_FASTOPEN,	/* allow (0) | ignore (1), 1-byte field */
	KEY_POLICY,	/* mapping walked with config_policy_keys */
	KEY_DSTS,	/* sequence of at most max destination mappings; base is a config */
	KEY_WORKLOADS,	/* mapping of workloads: keys; the field is its 1-byte "present" */
};

/* Rows of config_policy_keys, shared by `defaults:` and every destination. */
enum {
	POL_MODE, POL_CF, POL_OPEN, POL_PERMITS, POL_FRT, POL_WTYPE, POL_WSIZE, POL_MINCALLS,
	POL_SLOW_DUR, POL_SLOW_RATE, POL_FAILURES, POL_MAX_OPEN, POL_JITTER, POL_SUCCESSES,
	POL_MAX_HALF, POL_RAMP, N_POLICY_KEYS
};

extern const struct yamlwalk_key config_policy_keys[N_POLICY_KEYS];

/* Kept per destination until the walk ends: defaults and duplicates come last. */
struct dst_info {
	uint32_t policy_set;		/* bit i: config_policy_keys[i] given by the destination */
	yaml_mark_t name_mark, host_mark;
	yaml_mark_t breaker_mark;	/* breaker:'s value, when per_workload */
	int map_id;			/* the destination's mapping node, for later messages */
};

struct parse {
	struct yamlwalk w;
	struct dst_info *info;		/* parallel to cfg->dsts */
	int defaults_id;		/* the defaults: mapping node, 0 if none */
	uint32_t defaults_set;		/* bit i: config_policy_keys[i] given in defaults: */
	uint32_t max_dsts;		/* max_destinations, as peeked before the walk */
};

/* Messages carry "file:line:col: <where>"; always -EINVAL so callers can return it. */
#define fail(p, mark, ...) yamlwalk_fail(&(p)->w, (mark), __VA_ARGS__)

static inline yaml_node_t *node(struct parse *p, int id)
{
	return yamlwalk_node(&p->w, id);
}

static inline void *field_of(const struct yamlwalk_key *row, void *base)
{
	return (char *)base + row->offset;
}

/*
 * Strict decimal: digits only, no sign, no leading zero (octal to a YAML 1.1
 * reader), at most max. 0, -EINVAL or -ERANGE. max must leave room for one
 * more digit in 64 bits.
 */
int config_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* A destination name: 1..CONFIG_NAME_MAX - 1 characters of [A-Za-z0-9_.-]. */
bool config_valid_name(const char *s);

/* Store v, a value of any type but the mappings and KEY_DSTS, as row says. 0 or -EINVAL. */
int config_set_leaf(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base);

/*
 * After the walk: destinations inherit what `defaults:` set and they did
 * not, then every policy's rules across keys, then unique names and
 * addresses, then what per_workload destinations need (workloads:, slots).
 * 0, -EINVAL or -ENOMEM, with the message in p->w.err.
 */
int config_check(struct parse *p, struct config *cfg);

#endif /* KB_CONFIG_SCHEMA_H */
