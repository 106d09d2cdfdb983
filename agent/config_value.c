// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * config_value: one setter per key type. Each reads one YAML value, checks
 * it against its row's [min, max] and stores it at the row's offset, or
 * says what a valid value looks like, at the value's file:line:col.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config_schema.h"
#include "duration.h"
#include "window.h"

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

static const char *const mode_names[] = {
	[MODE_ENFORCE] = "enforce",
	[MODE_OBSERVE] = "observe",
	[MODE_DISABLED] = "disabled",
	[MODE_FORCED_OPEN] = "forced_open",
};

int config_parse_uint(const char *s, uint64_t max, uint64_t *out)
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

bool config_valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n >= 1 && n < CONFIG_NAME_MAX && !s[n];
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
	if (config_parse_uint(colon + 1, 65535, &port) || !port)
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

	if (config_parse_uint(yamlwalk_scalar(v), row->max, &u) || u < row->min)
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
	if (ret == -EINVAL && duration_leading_zero(yamlwalk_scalar(v)))
		return fail(p, v->start_mark, "%s: a duration has no leading zeros (10s, not 010s)",
			    row->key);
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

	if (!config_parse_uint(s, row->max, &u) && u >= row->min) {
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

/* One of two words into a 1-byte field (0, 1): the file says what, and a third would fit. */
static int set_word(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base, const char *w0, const char *w1)
{
	uint8_t *field = field_of(row, base);
	const char *s = yamlwalk_scalar(v);

	if (!strcmp(s, w0))
		*field = 0;
	else if (!strcmp(s, w1))
		*field = 1;
	else
		return fail(p, v->start_mark, "%s: must be \"%s\" or \"%s\"", row->key, w0, w1);
	return 0;
}

static int set_breaker(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		       void *base)
{
	return set_word(p, row, v, base, "shared", "per_workload");
}

static int set_fastopen(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
			void *base)
{
	return set_word(p, row, v, base, "allow", "ignore");
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

	if (strcmp(s, "any") && (config_parse_uint(s, row->max, &u) || u < row->min))
		return fail(p, v->start_mark,
			    "%s: must be an integer between %" PRIu64 " and %" PRIu64 " or \"any\"",
			    row->key, row->min, row->max);
	*(uint16_t *)field_of(row, base) = u;
	return 0;
}

static int set_name(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	if (!config_valid_name(yamlwalk_scalar(v)))
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

/* One setter per leaf key_type; scalar: anything else is refused first. */
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
	[KEY_BREAKER] = { set_breaker, true },
	[KEY_FASTOPEN] = { set_fastopen, true },
};

int config_set_leaf(struct parse *p, const struct yamlwalk_key *row, const yaml_node_t *v,
		    void *base)
{
	if ((size_t)row->type >= ARRAY_SIZE(setters) || !setters[row->type].set)
		return fail(p, v->start_mark, "%s: unhandled key type", row->key);
	if (setters[row->type].scalar && v->type != YAML_SCALAR_NODE)
		return fail(p, v->start_mark, "%s: expected a scalar", row->key);
	return setters[row->type].set(p, row, v, base);
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
