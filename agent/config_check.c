// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * config_check: the rules across keys, applied once the walk is done (so
 * `defaults:` may come after `destinations:`): inheritance, each policy's
 * consistency, unique names and addresses, the netns files config_load()
 * looks up, and what per_workload destinations need. Messages point at the
 * key that decided, in the destination or in defaults:. Also the one
 * comparison a reload makes with the running config (start-only keys).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_schema.h"
#include "duration.h"
#include "window.h"

/* Runs after the whole walk, since `defaults:` may follow `destinations:`. */
static void inherit_defaults(struct config *cfg, const struct dst_info *info)
{
	size_t i, r;

	for (i = 0; i < cfg->n_dsts; i++) {
		for (r = 0; r < N_POLICY_KEYS; r++) {
			if (info[i].policy_set & 1u << r)
				continue;
			memcpy((char *)&cfg->dsts[i].policy + config_policy_keys[r].offset,
			       (char *)&cfg->defaults + config_policy_keys[r].offset, config_policy_keys[r].size);
		}
	}
}

/* Where a policy was written: its own mapping, the defaults it inherits, and a fallback. */
struct policy_src {
	uint32_t own_set;
	int own_id;
	uint32_t dflt_set;
	int dflt_id;
	yaml_mark_t fallback;
};

/*
 * The node that gave policy key `a` (or else `b`, -1 for none) its value:
 * the policy's own mapping first, then defaults:. NULL for built-in values.
 */
static const yaml_node_t *policy_node(struct parse *p, const struct policy_src *src, int a, int b)
{
	int keys[2] = { a, b }, i;

	for (i = 0; i < 2; i++)
		if (keys[i] >= 0 && src->own_set & 1u << keys[i])
			return yamlwalk_find_value(&p->w, src->own_id, config_policy_keys[keys[i]].key);
	for (i = 0; i < 2; i++)
		if (keys[i] >= 0 && src->dflt_set & 1u << keys[i])
			return yamlwalk_find_value(&p->w, src->dflt_id, config_policy_keys[keys[i]].key);
	return NULL;
}

static yaml_mark_t policy_mark(struct parse *p, const struct policy_src *src, int a, int b)
{
	const yaml_node_t *n = policy_node(p, src, a, b);

	return n ? n->start_mark : src->fallback;
}

/* Rules across keys, checked once defaults are inherited. */
static int validate_policy(struct parse *p, const struct breaker_policy *pol,
			   const struct policy_src *src)
{
	const yaml_node_t *size;
	char buf[32];

	if (pol->window_type == WINDOW_COUNT) {
		size = policy_node(p, src, POL_WSIZE, -1);
		if (size && duration_parse(yamlwalk_scalar(size), &(uint64_t){ 0 }) != -EINVAL)
			return fail(p, policy_mark(p, src, POL_WSIZE, POL_WTYPE),
				    "window_size: a duration needs window_type: time");
		if (pol->window_size > WINDOW_MAX_CALLS)
			return fail(p, policy_mark(p, src, POL_WSIZE, POL_WTYPE),
				    "window_size: a count window holds 1 to %u calls", WINDOW_MAX_CALLS);
	}
	if (pol->half_open_successes > pol->half_open_permits)
		return fail(p, policy_mark(p, src, POL_SUCCESSES, POL_PERMITS),
			    "half_open_successes: must not exceed half_open_permits (%" PRIu32 ")",
			    pol->half_open_permits);
	if (pol->max_open_duration_ns && pol->max_open_duration_ns < pol->open_duration_ns)
		return fail(p, policy_mark(p, src, POL_MAX_OPEN, POL_OPEN),
			    "max_open_duration: must not be shorter than open_duration (%s)",
			    duration_text(buf, sizeof(buf), pol->open_duration_ns));
	return 0;
}

static int validate_policies(struct parse *p, const struct config *cfg)
{
	struct policy_src src = { .own_set = p->defaults_set, .own_id = p->defaults_id };
	size_t i;
	int ret;

	p->w.where = "defaults: ";
	ret = validate_policy(p, &cfg->defaults, &src);
	for (i = 0; !ret && i < cfg->n_dsts; i++) {
		const yaml_node_t *map = node(p, p->info[i].map_id);

		yamlwalk_where(&p->w, "destination \"%s\": ", cfg->dsts[i].name);
		src = (struct policy_src){
			.own_set = p->info[i].policy_set, .own_id = p->info[i].map_id,
			.dflt_set = p->defaults_set, .dflt_id = p->defaults_id,
			.fallback = map->start_mark,
		};
		ret = validate_policy(p, &cfg->dsts[i].policy, &src);
	}
	p->w.where = "";
	return ret;
}

typedef int (*dst_key_fn)(const struct config_dst *a, const struct config_dst *b);

static int name_key(const struct config_dst *a, const struct config_dst *b)
{
	return strcmp(a->name, b->name);
}

/* Names apart from addresses; a name by its text (case-insensitive), an address by prefix. */
static int addr_key(const struct config_dst *a, const struct config_dst *b)
{
	bool na = a->host_kind == HOST_NAME, nb = b->host_kind == HOST_NAME;
	int c;

	if (na != nb)
		return (int)na - (int)nb;
	if (na)
		c = strcasecmp(a->host, b->host);
	else if (!(c = memcmp(a->addr, b->addr, sizeof(a->addr))))
		c = (int)a->prefix_len - (int)b->prefix_len;
	if (!c)
		c = (int)a->port - (int)b->port;
	if (c)
		return c;
	/*
	 * The same address and port in two namespaces are two destinations.
	 * Once config_load() has found the namespaces, two paths to one
	 * namespace file are one namespace, as in the kernel's keys.
	 */
	if (a->netns_ino || b->netns_ino)
		return (a->netns_ino > b->netns_ino) - (a->netns_ino < b->netns_ino);
	return strcmp(a->netns, b->netns);
}

/* Ties break on position, so equal keys sort in file order. */
static int by_key(const void *a, const void *b, dst_key_fn key)
{
	const struct config_dst *x = *(const struct config_dst *const *)a;
	const struct config_dst *y = *(const struct config_dst *const *)b;
	int c = key(x, y);

	return c ? c : (x > y) - (x < y);
}

static int by_name(const void *a, const void *b)
{
	return by_key(a, b, name_key);
}

static int by_addr(const void *a, const void *b)
{
	return by_key(a, b, addr_key);
}

/*
 * Sorting keeps 65536 destinations off a quadratic path. Of all repeats,
 * report the one earliest in the file, as a linear scan would; *first gets
 * the entry it repeats.
 */
static const struct config_dst *find_repeat(const struct config_dst **v, size_t n,
					    dst_key_fn key, int (*by)(const void *, const void *),
					    const struct config_dst **first)
{
	const struct config_dst *rep = NULL;
	size_t i;

	qsort(v, n, sizeof(*v), by);
	for (i = 1; i < n; i++) {
		if (!key(v[i - 1], v[i]) && (!rep || v[i] < rep)) {
			rep = v[i];
			*first = v[i - 1];
		}
	}
	return rep;
}

static int check_unique(struct parse *p, const struct config *cfg)
{
	const struct config_dst **v, *rep, *first = NULL;
	size_t i;
	int ret = 0;

	if (cfg->n_dsts < 2)
		return 0;
	v = malloc(cfg->n_dsts * sizeof(*v));
	if (!v) {
		return yamlwalk_nomem(&p->w);
	}
	for (i = 0; i < cfg->n_dsts; i++)
		v[i] = &cfg->dsts[i];
	rep = find_repeat(v, cfg->n_dsts, name_key, by_name, &first);
	if (rep) {
		ret = fail(p, p->info[rep - cfg->dsts].name_mark, "duplicate destination name \"%s\"",
			   rep->name);
		goto out;
	}
	rep = find_repeat(v, cfg->n_dsts, addr_key, by_addr, &first);
	if (rep)
		ret = fail(p, p->info[rep - cfg->dsts].host_mark,
			   "destination \"%s\": same %s and port as destination \"%s\"", rep->name,
			   rep->host_kind == HOST_NAME ? "host name" : "address", first->name);
out:
	free(v);
	return ret;
}

int config_netns_repeat(const struct config *cfg, const struct config_dst **rep,
			const struct config_dst **first)
{
	const struct config_dst **v;

	*rep = NULL;
	if (cfg->n_dsts < 2)
		return 0;
	v = malloc(cfg->n_dsts * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_dsts; i++)
		v[i] = &cfg->dsts[i];
	*rep = find_repeat(v, cfg->n_dsts, addr_key, by_addr, first);
	free(v);
	return 0;
}

uint64_t config_slots_needed(const struct config *cfg)
{
	uint64_t n = 0;
	size_t i;

	/* per_address names are not counted: their addresses are only known at run time. */
	for (i = 0; i < cfg->n_dsts; i++)
		n += cfg->dsts[i].per_workload ? (uint64_t)cfg->workloads_max + 1 : 1;
	return n;
}

/*
 * After the walk, since workloads: may follow destinations:. A per_workload
 * destination needs attribution on, and max + 1 slots (each labelled
 * workload and "other") of max_destinations. Every destination takes at
 * least one and parse_dsts() held their count to max_destinations, so the
 * budget is first exceeded at a per_workload destination: report that one.
 */
static int check_workloads(struct parse *p, const struct config *cfg)
{
	uint64_t total = config_slots_needed(cfg), used = cfg->n_dsts;
	size_t i;
	int ret = 0;

	for (i = 0; !ret && i < cfg->n_dsts; i++) {
		const struct config_dst *d = &cfg->dsts[i];

		if (!d->per_workload)
			continue;
		yamlwalk_where(&p->w, "destination \"%s\": ", d->name);
		used += cfg->workloads_max;
		if (!cfg->workloads_on)
			ret = fail(p, p->info[i].breaker_mark, "breaker: per_workload needs "
				   "workloads: (attribution) turned on");
		else if (used > cfg->max_destinations)
			ret = fail(p, p->info[i].breaker_mark, "breaker: per_workload: the "
				   "destinations need %" PRIu64 " breaker slots, more than "
				   "max_destinations (%" PRIu32 "); each per_workload one takes "
				   "workloads: max + 1 (%" PRIu64 ")", total, cfg->max_destinations,
				   (uint64_t)cfg->workloads_max + 1);
	}
	p->w.where = "";
	return ret;
}

int config_check(struct parse *p, struct config *cfg)
{
	int ret;

	inherit_defaults(cfg, p->info);
	ret = validate_policies(p, cfg);
	ret = ret ? ret : check_unique(p, cfg);
	return ret ? ret : check_workloads(p, cfg);
}

static const char *workloads_text(char *buf, size_t len, const struct config *cfg)
{
	if (!cfg->workloads_on)
		return "off";
	snprintf(buf, len, "depth %" PRIu32 ", max %" PRIu32, cfg->workloads_depth,
		 cfg->workloads_max);
	return buf;
}

int config_start_only_changed(const struct config *cur, const struct config *next, char *err,
			      size_t errlen)
{
	char was[48], now[48];

	/* The kernel's workload table and per_workload slot ranges are sized at start. */
	if (cur->workloads_on == next->workloads_on &&
	    (!cur->workloads_on || (cur->workloads_depth == next->workloads_depth &&
				    cur->workloads_max == next->workloads_max)))
		return 0;
	yamlwalk_errf(err, errlen,
		      "workloads: cannot change while running (%s -> %s), restart kbreakerd",
		      workloads_text(was, sizeof(was), cur),
		      workloads_text(now, sizeof(now), next));
	return -EINVAL;
}

const char *config_restart_keys(const struct config *cur, const struct config *next, char *buf,
				size_t len)
{
	const struct {
		const char *key;
		bool changed;
	} keys[] = {
		{ "listen", strcmp(cur->listen_host, next->listen_host) ||
			    cur->listen_port != next->listen_port },
		{ "cgroup", strcmp(cur->cgroup, next->cgroup) },
		{ "state_dir", strcmp(cur->state_dir, next->state_dir) },
		{ "user", strcmp(cur->user, next->user) },
		{ "fastopen_connect", cur->fastopen_ignore != next->fastopen_ignore },
	};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(keys) && n < len; i++)
		if (keys[i].changed)
			n += snprintf(buf + n, len - n, "%s%s", n ? ", " : "", keys[i].key);
	return buf;
}

void config_keep_start_only(struct config *next, const struct config *cur)
{
	memcpy(next->listen_host, cur->listen_host, sizeof(next->listen_host));
	next->listen_port = cur->listen_port;
	memcpy(next->cgroup, cur->cgroup, sizeof(next->cgroup));
	memcpy(next->state_dir, cur->state_dir, sizeof(next->state_dir));
	memcpy(next->user, cur->user, sizeof(next->user));
	next->fastopen_ignore = cur->fastopen_ignore;
}
