// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * config: kbreakerd's YAML file -> struct config, the schema half.
 *
 * yamlwalk.c checks and loads the text and walks each mapping; here are the
 * key tables it walks with, a setter per value type, and the rules across
 * keys checked once the walk is done (defaults inherited, window sizes,
 * unique names and addresses). Nothing here logs or exits: a bad reload is
 * an error string for the caller.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "config.h"
#include "duration.h"
#include "window.h"
#include "yamlwalk.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define FIELD YAMLWALK_FIELD

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
	KEY_POLICY,	/* mapping walked with policy_keys */
	KEY_DSTS,	/* sequence of at most max destination mappings; base is a config */
};

/* Shared by `defaults:` and every destination. */
/* The order is known to validate_policy(). */
enum {
	POL_MODE, POL_CF, POL_OPEN, POL_PERMITS, POL_FRT, POL_WTYPE, POL_WSIZE, POL_MINCALLS,
	POL_SLOW_DUR, POL_SLOW_RATE, POL_FAILURES, POL_MAX_OPEN, POL_JITTER, POL_SUCCESSES,
	POL_MAX_HALF, POL_RAMP,
};
static const struct yamlwalk_key policy_keys[] = {
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
enum { DST_NAME, DST_HOST, DST_PORT, DST_PER_ADDRESS, DST_MAX_OPEN_PCT, DST_NETNS,
       DST_REQUIRED = 3 };
static const struct yamlwalk_key dst_keys[] = {
	[DST_NAME] = { "name", KEY_NAME, FIELD(struct config_dst, name), 1, CONFIG_NAME_MAX - 1 },
	[DST_HOST] = { "host", KEY_HOST, FIELD(struct config_dst, host), 1, CONFIG_HOST_MAX - 1 },
	[DST_PORT] = { "port", KEY_PORT, FIELD(struct config_dst, port), 1, 65535 },
	[DST_PER_ADDRESS] = { "per_address", KEY_BOOL, FIELD(struct config_dst, per_address), 0, 1 },
	[DST_MAX_OPEN_PCT] = { "max_open_percent", KEY_UINT,
			       FIELD(struct config_dst, max_open_percent), 1, 100 },
	[DST_NETNS] = { "netns", KEY_PATH, FIELD(struct config_dst, netns), 1, CONFIG_PATH_MAX - 1 },
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
	{ "metrics_compact", KEY_BOOL, FIELD(struct config, metrics_compact), 0, 1 },
	{ "max_destinations", KEY_UINT, FIELD(struct config, max_destinations), 1,
	  CONFIG_MAX_DESTINATIONS },
	{ "defaults", KEY_POLICY, FIELD(struct config, defaults), 0, 0 },
	/* max is cfg->max_destinations, known before the walk (see peek_max_destinations()). */
	{ "destinations", KEY_DSTS, FIELD(struct config, dsts), 0, CONFIG_MAX_DESTINATIONS },
};

#define FAILURE_NAMES "refused, timeout, unreachable, error or reset"
static const struct {
	const char *name;
	uint32_t bit;
} failure_names[] = {
	{ "refused", POLICY_FAIL_REFUSED },
	{ "timeout", POLICY_FAIL_TIMEOUT },
	{ "unreachable", POLICY_FAIL_UNREACHABLE },
	{ "error", POLICY_FAIL_ERROR },
	{ "reset", POLICY_FAIL_RESET },
};

_Static_assert(ARRAY_SIZE(dst_keys) + ARRAY_SIZE(policy_keys) <= YAMLWALK_MAX_ROWS, "seen.val too small");
_Static_assert(ARRAY_SIZE(top_keys) <= YAMLWALK_MAX_ROWS, "seen.val too small");

static const char *const mode_names[] = {
	[MODE_ENFORCE] = "enforce",
	[MODE_OBSERVE] = "observe",
	[MODE_DISABLED] = "disabled",
	[MODE_FORCED_OPEN] = "forced_open",
};

/* Kept per destination until the walk ends: defaults and duplicates come last. */
struct dst_info {
	uint32_t policy_set;		/* bit i: policy_keys[i] given by the destination */
	yaml_mark_t name_mark, host_mark;
	int map_id;			/* the destination's mapping node, for later messages */
};

struct parse {
	struct yamlwalk w;
	struct dst_info *info;		/* parallel to cfg->dsts */
	int defaults_id;		/* the defaults: mapping node, 0 if none */
	uint32_t defaults_set;		/* bit i: policy_keys[i] given in defaults: */
	uint32_t max_dsts;		/* max_destinations, as peeked before the walk */
};

/* Messages carry "file:line:col: <where>"; always -EINVAL so callers can return it. */
#define fail(p, mark, ...) yamlwalk_fail(&(p)->w, (mark), __VA_ARGS__)

static yaml_node_t *node(struct parse *p, int id)
{
	return yamlwalk_node(&p->w, id);
}

/*
 * Strict decimal: digits only, no sign, no leading zero (octal to a YAML 1.1
 * reader). max must leave room for one more digit in 64 bits.
 */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > max)
			return -ERANGE;
	}
	*out = n;
	return 0;
}

static bool valid_user(const char *s)
{
	if (!(*s == '_' || (*s >= 'a' && *s <= 'z')))
		return false;
	for (s++; *s; s++)
		if (!(*s == '_' || *s == '-' || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static bool valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n >= 1 && n < CONFIG_NAME_MAX && !s[n];
}


static void *field_of(const struct yamlwalk_key *row, void *base)
{
	return (char *)base + row->offset;
}

static int parse_listen(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			void *base)
{
	struct config *cfg = base;
	const char *s = yamlwalk_scalar(v), *host = s, *colon, *rb;
	char buf[CONFIG_HOST_MAX];
	uint8_t addr[16];
	uint64_t port;
	size_t hlen;
	int af = AF_INET;

	if (s[0] == '[') {
		rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			goto syntax;
		host = s + 1;
		hlen = rb - host;
		colon = rb + 1;
		af = AF_INET6;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto syntax;
		hlen = colon - s;
		if (memchr(s, ':', hlen))
			return fail(p, v->start_mark,
				    "%s: IPv6 addresses need brackets, as in \"[::1]:9877\"", row->key);
	}
	if (hlen >= sizeof(buf))
		goto bad_host;
	memcpy(buf, host, hlen);
	buf[hlen] = '\0';
	if (inet_pton(af, buf, addr) != 1)
		goto bad_host;
	if (parse_uint(colon + 1, 65535, &port) || !port)
		return fail(p, v->start_mark, "%s: port must be an integer between 1 and 65535",
			    row->key);
	memcpy(cfg->listen_host, buf, hlen + 1);
	cfg->listen_port = port;
	return 0;
syntax:
	return fail(p, v->start_mark, "%s: must be host:port, as in 127.0.0.1:9877 or \"[::1]:9877\"",
		    row->key);
bad_host:
	return fail(p, v->start_mark, "%s: host must be an IP address", row->key);
}

static int set_value(void *ctx, const struct yamlwalk_key *row, const yaml_node_t *v, void *base);

static int walk_map(struct parse *p, const yaml_node_t *map, const struct yamlwalk_table *tabs,
		    size_t n_tabs, struct yamlwalk_seen *seen)
{
	return yamlwalk_map(&p->w, map, tabs, n_tabs, seen, set_value, p);
}

/* `failures: [refused, timeout]`: each name once; `[]` means nothing fails. */
static int parse_failures(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			  void *base)
{
	uint32_t *mask = field_of(row, base);
	yaml_node_item_t *item;
	uint32_t m = 0;
	size_t i;

	if (yamlwalk_is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(p, v->start_mark, "%s: expected a sequence", row->key);
	for (item = v->data.sequence.items.start; item < v->data.sequence.items.top; item++) {
		yaml_node_t *e = node(p, *item);
		char echo[YAMLWALK_KEY_ECHO];

		if (e->type != YAML_SCALAR_NODE)
			return fail(p, e->start_mark, "%s: expected a list of " FAILURE_NAMES, row->key);
		for (i = 0; i < ARRAY_SIZE(failure_names); i++)
			if (!strcmp(yamlwalk_scalar(e), failure_names[i].name))
				break;
		if (i == ARRAY_SIZE(failure_names))
			return fail(p, e->start_mark, "%s: unknown result \"%s\", expected " FAILURE_NAMES,
				    row->key, yamlwalk_printable(echo, yamlwalk_scalar(e)));
		if (m & failure_names[i].bit)
			return fail(p, e->start_mark, "%s: \"%s\" listed twice", row->key,
				    failure_names[i].name);
		m |= failure_names[i].bit;
	}
	*mask = m;
	return 0;
}

/* An IP literal (ADDR), a prefix (CIDR) or a DNS name (NAME, resolved at run time). */
static int parse_host(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		      struct config_dst *d)
{
	const char *s = yamlwalk_scalar(v);
	int ret;

	if (strchr(s, '/')) {
		ret = addr_parse_cidr(s, d->addr, &d->prefix_len);
		if (ret == -ERANGE)
			return fail(p, v->start_mark, "%s: address has bits set after the prefix length",
				    row->key);
		if (ret)
			return fail(p, v->start_mark,
				    "%s: must be a CIDR prefix such as 10.0.0.0/8 or fd00::/8", row->key);
		d->host_kind = HOST_CIDR;
		return 0;
	}
	if (!addr_parse(s, d->addr)) {
		d->host_kind = HOST_ADDR;
		d->prefix_len = 128;
		return 0;
	}
	if (!config_valid_hostname(s))
		return fail(p, v->start_mark, "%s: must be an IP address, a CIDR prefix or a DNS name",
			    row->key);
	memset(d->addr, 0, sizeof(d->addr));
	d->host_kind = HOST_NAME;
	d->prefix_len = 0;
	return 0;
}

static int parse_policy(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			void *base)
{
	struct yamlwalk_table tab = { policy_keys, ARRAY_SIZE(policy_keys), field_of(row, base) };
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

/* Messages inside a destination name it, once its name is known to be printable. */
static void where_dst(struct parse *p, const yaml_node_t *map, size_t idx)
{
	yaml_node_pair_t *pair;

	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node(p, pair->key), *v = node(p, pair->value);

		if (k->type == YAML_SCALAR_NODE && !strcmp(yamlwalk_scalar(k), "name") &&
		    v->type == YAML_SCALAR_NODE && valid_name(yamlwalk_scalar(v))) {
			yamlwalk_where(&p->w, "destination \"%s\": ", yamlwalk_scalar(v));
			return;
		}
	}
	yamlwalk_where(&p->w, "destination #%zu: ", idx + 1);
}

static int parse_dst(struct parse *p, const yaml_node_t *map, size_t idx, struct config_dst *d,
		     struct dst_info *info)
{
	struct yamlwalk_table tabs[] = {
		{ dst_keys, ARRAY_SIZE(dst_keys), d },
		{ policy_keys, ARRAY_SIZE(policy_keys), &d->policy },
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
	if (!ret && d->per_address && d->host_kind == HOST_ADDR)
		ret = fail(p, seen.val[DST_PER_ADDRESS]->start_mark,
			   "per_address: needs a host that is a DNS name or a CIDR prefix");
	/* A share of a group of one breaker would do nothing: say so. */
	if (!ret && !d->per_address && seen.set & 1u << DST_MAX_OPEN_PCT)
		ret = fail(p, seen.val[DST_MAX_OPEN_PCT]->start_mark,
			   "max_open_percent: needs per_address: true");
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
	if (!cfg->dsts || !p->info) {
		return yamlwalk_nomem(&p->w);
	}
	cfg->n_dsts = n;
	for (i = 0; i < n; i++) {
		ret = parse_dst(p, node(p, items[i]), i, &cfg->dsts[i], &p->info[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* The string kinds: s was checked against max < size. */
static int set_text(const struct yamlwalk_key *row, void *base, const char *s)
{
	memcpy(field_of(row, base), s, strlen(s) + 1);
	return 0;
}

static int set_uint(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	void *field = field_of(row, base);
	uint64_t u;

	if (parse_uint(yamlwalk_scalar(v), row->max, &u) || u < row->min)
		return fail(p, v->start_mark, "%s: must be an integer between %" PRIu64 " and %" PRIu64,
			    row->key, row->min, row->max);
	if (row->size == sizeof(uint8_t))
		*(uint8_t *)field = u;
	else if (row->size == sizeof(uint16_t))
		*(uint16_t *)field = u;
	else
		*(uint32_t *)field = u;
	return 0;
}

static int set_duration(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			void *base)
{
	char lo[32], hi[32];
	uint64_t u;
	int ret;

	ret = duration_parse(yamlwalk_scalar(v), &u);
	if (ret == -EINVAL)
		return fail(p, v->start_mark, "%s: must be a duration such as 100ms, 10s, 5m or 1h",
			    row->key);
	if (ret || u < row->min || u > row->max)
		return fail(p, v->start_mark, "%s: must be between %s and %s", row->key,
			    duration_text(lo, sizeof(lo), row->min),
			    duration_text(hi, sizeof(hi), row->max));
	*(uint64_t *)field_of(row, base) = u;
	return 0;
}

static int set_mode(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(mode_names); i++) {
		if (!strcmp(yamlwalk_scalar(v), mode_names[i])) {
			*(enum breaker_mode *)field_of(row, base) = (enum breaker_mode)i;
			return 0;
		}
	}
	return fail(p, v->start_mark,
		    "%s: must be \"enforce\", \"observe\", \"disabled\" or \"forced_open\"", row->key);
}

static int set_window_type(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			   void *base)
{
	enum window_type *field = field_of(row, base);
	const char *s = yamlwalk_scalar(v);

	if (!strcmp(s, "count"))
		*field = WINDOW_COUNT;
	else if (!strcmp(s, "time"))
		*field = WINDOW_TIME;
	else
		return fail(p, v->start_mark, "%s: must be \"count\" or \"time\"", row->key);
	return 0;
}

/* A count of calls or seconds, or a duration in whole seconds. */
static int set_window_size(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			   void *base)
{
	uint32_t *field = field_of(row, base);
	const char *s = yamlwalk_scalar(v);
	uint64_t u;

	if (!parse_uint(s, row->max, &u) && u >= row->min) {
		*field = u;
		return 0;
	}
	if (!duration_parse(s, &u) && u % NS_PER_S == 0 && u >= row->min * NS_PER_S &&
	    u <= row->max * NS_PER_S) {
		*field = u / NS_PER_S;
		return 0;
	}
	return fail(p, v->start_mark, "%s: must be a number of calls (1 to %u) or seconds (1s to 1h)",
		    row->key, WINDOW_MAX_CALLS);
}

static int set_bool(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	uint8_t *field = field_of(row, base);
	const char *s = yamlwalk_scalar(v);

	if (!strcmp(s, "true"))
		*field = 1;
	else if (!strcmp(s, "false"))
		*field = 0;
	else
		return fail(p, v->start_mark, "%s: must be true or false", row->key);
	return 0;
}

static int set_port(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	const char *s = yamlwalk_scalar(v);
	uint64_t u = 0;

	if (strcmp(s, "any") && (parse_uint(s, row->max, &u) || u < row->min))
		return fail(p, v->start_mark,
			    "%s: must be an integer between %" PRIu64 " and %" PRIu64 " or \"any\"",
			    row->key, row->min, row->max);
	*(uint16_t *)field_of(row, base) = u;
	return 0;
}

static int set_name(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	if (!valid_name(yamlwalk_scalar(v)))
		return fail(p, v->start_mark, "%s: must be 1 to %" PRIu64 " characters of [A-Za-z0-9_.-]",
			    row->key, row->max);
	return set_text(row, base, yamlwalk_scalar(v));
}

static int set_host(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	int ret;

	if (strlen(yamlwalk_scalar(v)) > row->max)
		return fail(p, v->start_mark, "%s: longer than %" PRIu64 " characters", row->key,
			    row->max);
	ret = parse_host(p, row, v, base);
	return ret ? ret : set_text(row, base, yamlwalk_scalar(v));
}

static int set_path(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	const char *s = yamlwalk_is_null(v) ? "" : yamlwalk_scalar(v);

	/* Relative would depend on the daemon's cwd; existence is checked at run time. */
	if (s[0] && s[0] != '/')
		return fail(p, v->start_mark, "%s: must be an absolute path", row->key);
	if (strlen(s) > row->max)
		return fail(p, v->start_mark, "%s: longer than %" PRIu64 " characters", row->key,
			    row->max);
	return set_text(row, base, s);
}

static int set_log_level(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			 void *base)
{
	const char *s = yamlwalk_scalar(v);

	if (strcmp(s, "error") && strcmp(s, "warn") && strcmp(s, "info") && strcmp(s, "debug"))
		return fail(p, v->start_mark, "%s: must be \"error\", \"warn\", \"info\" or \"debug\"",
			    row->key);
	return set_text(row, base, s);
}

/* The account itself is looked up at run time; here only its shape. */
static int set_user(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	const char *s = yamlwalk_scalar(v);

	if (!valid_user(s) || strlen(s) > row->max)
		return fail(p, v->start_mark,
			    "%s: must be a user name of at most %" PRIu64 " characters of [a-z0-9_-]",
			    row->key, row->max);
	return set_text(row, base, s);
}

typedef int (*setter_fn)(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			 void *base);

/* One setter per key_type; scalar: the walk refuses anything else first. */
static const struct {
	setter_fn set;
	bool scalar;
} setters[] = {
	[KEY_UINT] = { set_uint, true },
	[KEY_DURATION] = { set_duration, true },
	[KEY_MODE] = { set_mode, true },
	[KEY_WINDOW_TYPE] = { set_window_type, true },
	[KEY_WINDOW_SIZE] = { set_window_size, true },
	[KEY_FAILURES] = { parse_failures, false },
	[KEY_BOOL] = { set_bool, true },
	[KEY_PORT] = { set_port, true },
	[KEY_NAME] = { set_name, true },
	[KEY_HOST] = { set_host, true },
	[KEY_LISTEN] = { parse_listen, true },
	[KEY_PATH] = { set_path, true },
	[KEY_LOG_LEVEL] = { set_log_level, true },
	[KEY_USER] = { set_user, true },
	[KEY_POLICY] = { parse_policy, false },
	[KEY_DSTS] = { parse_dsts, false },
};

static int set_value(void *ctx, const struct yamlwalk_key *row, const yaml_node_t *v, void *base)
{
	struct parse *p = ctx;

	if ((size_t)row->type >= ARRAY_SIZE(setters) || !setters[row->type].set)
		return fail(p, v->start_mark, "%s: unhandled key type", row->key);
	if (setters[row->type].scalar && v->type != YAML_SCALAR_NODE)
		return fail(p, v->start_mark, "%s: expected a scalar", row->key);
	return setters[row->type].set(p, row, v, base);
}

/* Runs after the whole walk, since `defaults:` may follow `destinations:`. */
static void inherit_defaults(struct config *cfg, const struct dst_info *info)
{
	size_t i, r;

	for (i = 0; i < cfg->n_dsts; i++) {
		for (r = 0; r < ARRAY_SIZE(policy_keys); r++) {
			if (info[i].policy_set & 1u << r)
				continue;
			memcpy((char *)&cfg->dsts[i].policy + policy_keys[r].offset,
			       (char *)&cfg->defaults + policy_keys[r].offset, policy_keys[r].size);
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
			return yamlwalk_find_value(&p->w, src->own_id, policy_keys[keys[i]].key);
	for (i = 0; i < 2; i++)
		if (keys[i] >= 0 && src->dflt_set & 1u << keys[i])
			return yamlwalk_find_value(&p->w, src->dflt_id, policy_keys[keys[i]].key);
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
	/* The same address and port in two namespaces are two destinations. */
	return c ? c : strcmp(a->netns, b->netns);
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

/*
 * destinations: is bounded by max_destinations, which may come later in the
 * file. A value that does not parse is left for the walk to report in order.
 */
static void peek_max_destinations(struct parse *p, const yaml_node_t *root, uint32_t dflt)
{
	const yaml_node_t *v = yamlwalk_find_value(&p->w, yamlwalk_node_id(&p->w, root), "max_destinations");
	uint64_t u;

	p->max_dsts = dflt;
	if (v && v->type == YAML_SCALAR_NODE && !parse_uint(yamlwalk_scalar(v), CONFIG_MAX_DESTINATIONS, &u) &&
	    u >= 1)
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
	if (!ret) {
		inherit_defaults(cfg, p->info);
		ret = validate_policies(p, cfg);
	}
	if (!ret)
		ret = check_unique(p, cfg);
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
	cfg->max_destinations = 16384;
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

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/*
 * A destination's netns: names a namespace file (/run/netns/NAME,
 * /proc/PID/ns/net); the kernel knows the namespace by that file's inode.
 * Found at load, so a namespace that is gone fails the start or the reload.
 */
static int find_netns(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct statfs sf;
	struct stat st;
	const char *why;

	for (size_t i = 0; i < cfg->n_dsts; i++) {
		struct config_dst *d = &cfg->dsts[i];

		if (!d->netns[0])
			continue;
		if (stat(d->netns, &st) || statfs(d->netns, &sf))
			why = strerror(errno);
		else if (sf.f_type != NSFS_MAGIC)
			why = "not a namespace file (want /run/netns/NAME or /proc/PID/ns/net)";
		else {
			d->netns_ino = (uint32_t)st.st_ino;
			continue;
		}
		yamlwalk_errf(err, errlen, "%s:%d:%d: destination \"%s\": netns: %s: %s", path, d->netns_line,
		     d->netns_col, d->name, d->netns, why);
		config_free(cfg);
		return -EINVAL;
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int ret;

	config_init(cfg);
	if (errlen)
		err[0] = '\0';
	ret = yamlwalk_read_file(path, CONFIG_MAX_FILE_BYTES, &buf, &len, err, errlen);
	if (!ret)
		ret = config_parse(cfg, path, buf, len, err, errlen);
	if (!ret)
		ret = find_netns(cfg, path, err, errlen);
	free(buf);
	return ret;
}

void config_free(struct config *cfg)
{
	free(cfg->dsts);
	config_init(cfg);
}


const char *config_mode_name(enum breaker_mode mode)
{
	return (unsigned)mode < ARRAY_SIZE(mode_names) ? mode_names[mode] : "enforce";
}

bool config_valid_hostname(const char *s)
{
	const char *label = s, *p;
	bool digits = true;

	if (!s || !*s || strlen(s) > 253)
		return false;
	for (p = s;; p++) {
		if (*p == '.' || !*p) {
			/* 1..63 characters, no hyphen at either end. */
			if (p == label || p - label > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			if (!*p)
				return !digits;
			label = p + 1;
			digits = true;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-') {
			digits = false;
		} else if (*p < '0' || *p > '9') {
			return false;
		}
	}
}
