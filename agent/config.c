// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * config: kbreakerd's YAML file -> struct config.
 *
 * yamlwalk.c checks and loads the text and walks each mapping with the key
 * tables below. This file walks the structure (top level, defaults:,
 * workloads:, destinations:) and holds the public calls; config_value.c stores each
 * leaf value, config_check.c applies the rules across keys once the walk is
 * done. Nothing here logs or exits: a bad reload is an error string for the
 * caller.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "config_schema.h"
#include "duration.h"
#include "window.h"

#define FIELD YAMLWALK_FIELD

/* Shared by `defaults:` and every destination; the order is known to config_check.c. */
const struct yamlwalk_key config_policy_keys[N_POLICY_KEYS] = {
	[POL_MODE] = { "mode", KEY_MODE, FIELD(struct breaker_policy, mode), 0, 0 },
	[POL_CF] = { "consecutive_failures", KEY_UINT,
		     FIELD(struct breaker_policy, consecutive_failures), 0, 1000000 },
	[POL_OPEN] = { "open_duration", KEY_DURATION,
		       FIELD(struct breaker_policy, open_duration_ns), NS_PER_MS, 24 * NS_PER_H },
	[POL_PERMITS] = { "half_open_permits", KEY_UINT,
			  FIELD(struct breaker_policy, half_open_permits), 1, 100000 },
	[POL_FRT] = { "failure_rate_threshold", KEY_UINT,
		      FIELD(struct breaker_policy, failure_rate_threshold), 0, 100 },
	[POL_WTYPE] = { "window_type", KEY_WINDOW_TYPE, FIELD(struct breaker_policy, window_type),
			0, 0 },
	/* Checked again against window_type once both are known: count windows hold <= 1000. */
	[POL_WSIZE] = { "window_size", KEY_WINDOW_SIZE, FIELD(struct breaker_policy, window_size),
			1, WINDOW_MAX_SECONDS },
	[POL_MINCALLS] = { "minimum_calls", KEY_UINT, FIELD(struct breaker_policy, minimum_calls),
			   1, 1000000 },
	[POL_SLOW_DUR] = { "slow_call_duration_threshold", KEY_DURATION,
			   FIELD(struct breaker_policy, slow_call_duration_ns), NS_PER_MS, NS_PER_H },
	[POL_SLOW_RATE] = { "slow_call_rate_threshold", KEY_UINT,
			    FIELD(struct breaker_policy, slow_call_rate_threshold), 0, 100 },
	[POL_FAILURES] = { "failures", KEY_FAILURES, FIELD(struct breaker_policy, failures), 0, 0 },
	[POL_MAX_OPEN] = { "max_open_duration", KEY_DURATION,
			   FIELD(struct breaker_policy, max_open_duration_ns), 0, 24 * NS_PER_H },
	[POL_JITTER] = { "jitter", KEY_UINT, FIELD(struct breaker_policy, jitter_percent), 0, 100 },
	[POL_SUCCESSES] = { "half_open_successes", KEY_UINT,
			    FIELD(struct breaker_policy, half_open_successes), 1, 100000 },
	[POL_MAX_HALF] = { "max_half_open_duration", KEY_DURATION,
			   FIELD(struct breaker_policy, max_half_open_duration_ns), 0, 24 * NS_PER_H },
	[POL_RAMP] = { "recovery_ramp", KEY_DURATION, FIELD(struct breaker_policy, recovery_ramp_ns),
		       0, 24 * NS_PER_H },
};

/* name, host and port are required; the order is known to parse_dst(). */
enum { DST_NAME, DST_HOST, DST_PORT, DST_PER_ADDRESS, DST_MAX_OPEN_PCT, DST_NETNS, DST_BREAKER,
       DST_REQUIRED = 3 };
static const struct yamlwalk_key dst_keys[] = {
	[DST_NAME] = { "name", KEY_NAME, FIELD(struct config_dst, name), 1, CONFIG_NAME_MAX - 1 },
	[DST_HOST] = { "host", KEY_HOST, FIELD(struct config_dst, host), 1, CONFIG_HOST_MAX - 1 },
	[DST_PORT] = { "port", KEY_PORT, FIELD(struct config_dst, port), 1, 65535 },
	[DST_PER_ADDRESS] = { "per_address", KEY_BOOL, FIELD(struct config_dst, per_address), 0, 1 },
	[DST_MAX_OPEN_PCT] = { "max_open_percent", KEY_UINT,
			       FIELD(struct config_dst, max_open_percent), 1, 100 },
	[DST_NETNS] = { "netns", KEY_PATH, FIELD(struct config_dst, netns), 1, CONFIG_NETNS_MAX - 1 },
	/* Per destination only: a breaker per workload is a choice about one service. */
	[DST_BREAKER] = { "breaker", KEY_BREAKER, FIELD(struct config_dst, per_workload), 0, 1 },
};

/* workloads: fills fields of the config itself; being there is what turns attribution on. */
static const struct yamlwalk_key workload_keys[] = {
	{ "depth", KEY_UINT, FIELD(struct config, workloads_depth), 1, CONFIG_WORKLOADS_DEPTH_MAX },
	{ "max", KEY_UINT, FIELD(struct config, workloads_max), 1, CONFIG_WORKLOADS_MAX },
};

static const struct yamlwalk_key top_keys[] = {
	{ "listen", KEY_LISTEN, FIELD(struct config, listen_host), 0, 0 },
	{ "cgroup", KEY_PATH, FIELD(struct config, cgroup), 0, CONFIG_PATH_MAX - 1 },
	{ "state_dir", KEY_PATH, FIELD(struct config, state_dir), 0, CONFIG_PATH_MAX - 64 },
	{ "log_level", KEY_LOG_LEVEL, FIELD(struct config, log_level), 0, sizeof(((struct config *)0)->log_level) - 1 },
	{ "user", KEY_USER, FIELD(struct config, user), 0, sizeof(((struct config *)0)->user) - 1 },
	{ "poll_interval", KEY_DURATION, FIELD(struct config, poll_interval_ns), NS_PER_MS, NS_PER_H },
	{ "resolve_interval", KEY_DURATION, FIELD(struct config, resolve_interval_ns), NS_PER_S,
	  24 * NS_PER_H },
	/* At least two of the loop's one-second beats: one late beat must not open everything. */
	{ "failopen_after", KEY_DURATION, FIELD(struct config, failopen_after_ns), 2 * NS_PER_S,
	  NS_PER_H },
	{ "metrics_compact", KEY_BOOL, FIELD(struct config, metrics_compact), 0, 1 },
	{ "fastopen_connect", KEY_FASTOPEN, FIELD(struct config, fastopen_ignore), 0, 1 },
	{ "max_destinations", KEY_UINT, FIELD(struct config, max_destinations), 1,
	  CONFIG_MAX_DESTINATIONS },
	{ "defaults", KEY_POLICY, FIELD(struct config, defaults), 0, 0 },
	{ "workloads", KEY_WORKLOADS, FIELD(struct config, workloads_on), 0, 0 },
	/* max is cfg->max_destinations, known before the walk (see peek_max_destinations()). */
	{ "destinations", KEY_DSTS, FIELD(struct config, dsts), 0, CONFIG_MAX_DESTINATIONS },
};

_Static_assert(ARRAY_SIZE(dst_keys) + N_POLICY_KEYS <= YAMLWALK_MAX_ROWS, "seen.val too small");
_Static_assert(ARRAY_SIZE(top_keys) <= YAMLWALK_MAX_ROWS, "seen.val too small");
_Static_assert(ARRAY_SIZE(workload_keys) <= YAMLWALK_MAX_ROWS, "seen.val too small");

static int set_value(void *ctx, const struct yamlwalk_key *row, const yaml_node_t *v, void *base);

static int walk_map(struct parse *p, const yaml_node_t *map, const struct yamlwalk_table *tabs,
		    size_t n_tabs, struct yamlwalk_seen *seen)
{
	return yamlwalk_map(&p->w, map, tabs, n_tabs, seen, set_value, p);
}

static int parse_policy(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			void *base)
{
	struct yamlwalk_table tab = { config_policy_keys, N_POLICY_KEYS, field_of(row, base) };
	struct yamlwalk_seen seen;
	int ret;

	if (yamlwalk_is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return fail(p, v->start_mark, "%s: expected a mapping", row->key);
	p->w.where = "defaults: ";
	ret = walk_map(p, v, &tab, 1, &seen);
	p->w.where = "";
	p->defaults_id = yamlwalk_node_id(&p->w, v);
	p->defaults_set = seen.set;
	return ret;
}

static int parse_workloads(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			   void *base)
{
	struct yamlwalk_table tab = { workload_keys, ARRAY_SIZE(workload_keys), base };
	struct yamlwalk_seen seen;
	int ret;

	/*
	 * A null value means "not given" for every other key, yet here being
	 * given is the switch: refuse both readings and say what to write.
	 */
	if (v->type != YAML_MAPPING_NODE)
		return fail(p, v->start_mark, "%s: expected a mapping; write %s: {} for the defaults",
			    row->key, row->key);
	p->w.where = "workloads: ";
	ret = walk_map(p, v, &tab, 1, &seen);
	p->w.where = "";
	*(uint8_t *)field_of(row, base) = 1;
	return ret;
}

/* Messages inside a destination name it, once its name is known to be printable. */
static void where_dst(struct parse *p, const yaml_node_t *map, size_t idx)
{
	yaml_node_pair_t *pair;

	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node(p, pair->key), *v = node(p, pair->value);

		if (k->type == YAML_SCALAR_NODE && !strcmp(yamlwalk_scalar(k), "name") &&
		    v->type == YAML_SCALAR_NODE && config_valid_name(yamlwalk_scalar(v))) {
			yamlwalk_where(&p->w, "destination \"%s\": ", yamlwalk_scalar(v));
			return;
		}
	}
	yamlwalk_where(&p->w, "destination #%zu: ", idx + 1);
}

/* The rules within one destination; those that need the whole file are config_check()'s. */
static int check_dst_keys(struct parse *p, const struct config_dst *d,
			  const struct yamlwalk_seen *seen)
{
	/* A prefix's addresses cannot be listed: only a name's answers can. */
	if (d->per_address && d->host_kind != HOST_NAME)
		return fail(p, seen->val[DST_PER_ADDRESS]->start_mark,
			    "per_address: needs a host that is a DNS name");
	/* Both split one destination into breakers; the kernel keys a slot by one or the other. */
	if (d->per_workload && d->per_address)
		return fail(p, seen->val[DST_BREAKER]->start_mark,
			    "breaker: per_workload cannot be combined with per_address: true");
	/* A share of a group of one breaker would do nothing: say so. */
	if (!d->per_address && !d->per_workload && seen->set & 1u << DST_MAX_OPEN_PCT)
		return fail(p, seen->val[DST_MAX_OPEN_PCT]->start_mark,
			    "max_open_percent: needs per_address: true or breaker: per_workload");
	return 0;
}

static int parse_dst(struct parse *p, const yaml_node_t *map, size_t idx, struct config_dst *d,
		     struct dst_info *info)
{
	struct yamlwalk_table tabs[] = {
		{ dst_keys, ARRAY_SIZE(dst_keys), d },
		{ config_policy_keys, N_POLICY_KEYS, &d->policy },
	};
	struct yamlwalk_seen seen;
	size_t i;
	int ret;

	if (map->type != YAML_MAPPING_NODE) {
		yamlwalk_where(&p->w, "destination #%zu: ", idx + 1);
		ret = fail(p, map->start_mark, "expected a mapping");
		goto out;
	}
	where_dst(p, map, idx);
	d->max_open_percent = 100;
	ret = walk_map(p, map, tabs, ARRAY_SIZE(tabs), &seen);
	for (i = 0; !ret && i < DST_REQUIRED; i++)
		if (!(seen.set & 1u << i))
			ret = fail(p, map->start_mark, "missing required key \"%s\"", dst_keys[i].key);
	if (!ret)
		ret = check_dst_keys(p, d, &seen);
	if (ret)
		goto out;
	d->line = map->start_mark.line + 1;
	if (seen.set & 1u << DST_NETNS) {
		d->netns_line = seen.val[DST_NETNS]->start_mark.line + 1;
		d->netns_col = seen.val[DST_NETNS]->start_mark.column + 1;
	}
	info->policy_set = seen.set >> ARRAY_SIZE(dst_keys);
	info->name_mark = seen.val[DST_NAME]->start_mark;
	info->host_mark = seen.val[DST_HOST]->start_mark;
	if (d->per_workload)
		info->breaker_mark = seen.val[DST_BREAKER]->start_mark;
	info->map_id = yamlwalk_node_id(&p->w, map);
out:
	p->w.where = "";
	return ret;
}

static int parse_dsts(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		      void *base)
{
	struct config *cfg = base;
	yaml_node_item_t *items = v->data.sequence.items.start;
	size_t i, n;
	int ret;

	if (yamlwalk_is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(p, v->start_mark, "%s: expected a sequence", row->key);
	n = v->data.sequence.items.top - items;
	if (n > p->max_dsts)
		return fail(p, v->start_mark, "%s: more than %" PRIu32 " entries (max_destinations)",
			    row->key, p->max_dsts);
	if (!n)
		return 0;
	cfg->dsts = calloc(n, sizeof(*cfg->dsts));
	p->info = calloc(n, sizeof(*p->info));
	if (!cfg->dsts || !p->info)
		return yamlwalk_nomem(&p->w);
	cfg->n_dsts = n;
	for (i = 0; i < n; i++) {
		ret = parse_dst(p, node(p, items[i]), i, &cfg->dsts[i], &p->info[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* defaults:, workloads: and destinations: are structure, walked here; the rest are leaves. */
static int set_value(void *ctx, const struct yamlwalk_key *row, const yaml_node_t *v, void *base)
{
	struct parse *p = ctx;

	if (row->type == KEY_POLICY)
		return parse_policy(p, row, v, base);
	if (row->type == KEY_WORKLOADS)
		return parse_workloads(p, row, v, base);
	if (row->type == KEY_DSTS)
		return parse_dsts(p, row, v, base);
	return config_set_leaf(p, row, v, base);
}

/*
 * destinations: is bounded by max_destinations, which may come later in the
 * file. A value that does not parse is left for the walk to report in order.
 */
static void peek_max_destinations(struct parse *p, const yaml_node_t *root, uint32_t dflt)
{
	int root_id = yamlwalk_node_id(&p->w, root);
	const yaml_node_t *v = yamlwalk_find_value(&p->w, root_id, "max_destinations");
	uint64_t u;

	p->max_dsts = dflt;
	if (v && v->type == YAML_SCALAR_NODE &&
	    !config_parse_uint(yamlwalk_scalar(v), CONFIG_MAX_DESTINATIONS, &u) && u >= 1)
		p->max_dsts = u;
}

static int load_and_walk(struct parse *p, struct config *cfg)
{
	struct yamlwalk_table tab = { top_keys, ARRAY_SIZE(top_keys), cfg };
	struct yamlwalk_seen seen;
	yaml_node_t *root;
	int ret;

	ret = yamlwalk_load(&p->w, CONFIG_MAX_FILE_BYTES, &root);
	if (!ret) {
		peek_max_destinations(p, root, cfg->max_destinations);
		ret = walk_map(p, root, &tab, 1, &seen);
	}
	if (!ret)
		ret = config_check(p, cfg);
	yamlwalk_unload(&p->w);
	return ret;
}

void config_policy_defaults(struct breaker_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->mode = MODE_ENFORCE;
	p->consecutive_failures = 5;
	p->open_duration_ns = 10 * NS_PER_S;
	p->half_open_permits = 3;
	p->window_type = WINDOW_COUNT;
	p->window_size = 100;
	p->minimum_calls = 10;
	p->slow_call_duration_ns = NS_PER_S;
	p->failures = POLICY_FAIL_DEFAULT;
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->listen_host, "127.0.0.1");
	cfg->listen_port = 9877;
	cfg->poll_interval_ns = 100 * NS_PER_MS;
	cfg->resolve_interval_ns = 30 * NS_PER_S;
	cfg->failopen_after_ns = 10 * NS_PER_S;
	cfg->max_destinations = 16384;
	cfg->workloads_depth = 1;
	cfg->workloads_max = 50;
	config_policy_defaults(&cfg->defaults);
}

/*
 * cfg is output only: its old contents are not read or freed. Parsing goes
 * into a scratch config so a failure cannot leave half a file behind.
 */
int config_parse(struct config *cfg, const char *fname, const char *buf, size_t len,
		 char *err, size_t errlen)
{
	struct parse p = {
		.w = {
			.fname = fname ? fname : "<config>",
			.buf = (const unsigned char *)(buf ? buf : ""),
			.len = buf ? len : 0,
			.err = err,
			.errlen = errlen,
			.where = "",
		},
	};
	struct config tmp;
	int ret;

	config_init(&tmp);
	if (errlen)
		err[0] = '\0';
	ret = load_and_walk(&p, &tmp);
	free(p.info);
	if (ret) {
		config_free(&tmp);
		config_init(cfg);
	} else {
		*cfg = tmp;
	}
	return ret;
}

void config_free(struct config *cfg)
{
	free(cfg->dsts);
	config_init(cfg);
}


