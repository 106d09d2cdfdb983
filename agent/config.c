// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * config: kbreakerd's YAML file -> struct config.
 *
 * Two passes over the text. The event pass refuses what libyaml's document
 * model would hide or amplify: anchors and aliases (one node reachable twice,
 * "billion laughs"), deep nesting, NUL characters, more than one document.
 * The document pass walks the node tree with the key tables below. Nothing
 * here logs or exits: a bad reload is an error string for the caller.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "config.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define FIELD(type, member) offsetof(type, member), sizeof(((type *)0)->member)

#define NS_PER_MS 1000000ULL
#define NS_PER_S (1000 * NS_PER_MS)
#define NS_PER_MIN (60 * NS_PER_S)
#define NS_PER_H (60 * NS_PER_MIN)

#define MAX_DEPTH 32	/* our format needs 3; the cap bounds hostile input */
#define MAX_ROWS 8	/* keys one mapping may hold, across its tables */
#define KEY_ECHO 40	/* room for an unknown key echoed in a message */

/* Largest first: duration_text() picks the first unit that divides. */
static const struct {
	const char *unit;
	uint64_t ns;
} duration_units[] = {
	{ "h", NS_PER_H },
	{ "m", NS_PER_MIN },
	{ "s", NS_PER_S },
	{ "ms", NS_PER_MS },
};

enum key_type {
	KEY_UINT,	/* decimal integer in [min, max], 2- or 4-byte field */
	KEY_DURATION,	/* config_parse_duration() in [min, max] ns */
	KEY_MODE,	/* enforce | observe */
	KEY_NAME,	/* destination name, 1..max chars of [A-Za-z0-9_.-] */
	KEY_HOST,	/* IP literal, at most max chars; base is a config_dst */
	KEY_LISTEN,	/* "host:port"; base is a config */
	KEY_PATH,	/* absolute path of at most max chars, or empty */
	KEY_POLICY,	/* mapping walked with policy_keys */
	KEY_DSTS,	/* sequence of at most max destination mappings; base is a config */
};

struct key_row {
	const char *key;
	enum key_type type;
	size_t offset;	/* of the field in the struct the table describes */
	size_t size;
	uint64_t min, max;
};

/* Shared by `defaults:` and every destination. */
static const struct key_row policy_keys[] = {
	{ "mode", KEY_MODE, FIELD(struct breaker_policy, mode), 0, 0 },
	{ "consecutive_failures", KEY_UINT,
	  FIELD(struct breaker_policy, consecutive_failures), 1, 1000000 },
	{ "open_duration", KEY_DURATION,
	  FIELD(struct breaker_policy, open_duration_ns), NS_PER_MS, 24 * NS_PER_H },
	{ "half_open_permits", KEY_UINT,
	  FIELD(struct breaker_policy, half_open_permits), 1, 100000 },
};

/* Every row is required; the order is known to parse_dst(). */
enum { DST_NAME, DST_HOST, DST_PORT };
static const struct key_row dst_keys[] = {
	[DST_NAME] = { "name", KEY_NAME, FIELD(struct config_dst, name), 1, CONFIG_NAME_MAX - 1 },
	[DST_HOST] = { "host", KEY_HOST, FIELD(struct config_dst, host), 1, CONFIG_HOST_MAX - 1 },
	[DST_PORT] = { "port", KEY_UINT, FIELD(struct config_dst, port), 1, 65535 },
};

static const struct key_row top_keys[] = {
	{ "listen", KEY_LISTEN, FIELD(struct config, listen_host), 0, 0 },
	{ "cgroup", KEY_PATH, FIELD(struct config, cgroup), 0, CONFIG_PATH_MAX - 1 },
	{ "poll_interval", KEY_DURATION, FIELD(struct config, poll_interval_ns), NS_PER_MS, NS_PER_H },
	{ "defaults", KEY_POLICY, FIELD(struct config, defaults), 0, 0 },
	{ "destinations", KEY_DSTS, FIELD(struct config, dsts), 0, CONFIG_MAX_DESTINATIONS },
};

_Static_assert(ARRAY_SIZE(dst_keys) + ARRAY_SIZE(policy_keys) <= MAX_ROWS, "seen.val too small");
_Static_assert(ARRAY_SIZE(top_keys) <= MAX_ROWS, "seen.val too small");

/* One struct a mapping fills, with the rows that describe it. */
struct table {
	const struct key_row *rows;
	size_t n_rows;
	void *base;
};

/* What walk_map() found; bit i is the i-th row counted across the tables. */
struct seen {
	uint32_t set;
	yaml_node_t *val[MAX_ROWS];
};

/* Kept per destination until the walk ends: defaults and duplicates come last. */
struct dst_info {
	uint32_t policy_set;		/* bit i: policy_keys[i] given by the destination */
	yaml_mark_t name_mark, host_mark;
};

struct parse {
	const char *fname;
	const unsigned char *buf;
	size_t len;
	char *err;
	size_t errlen;
	yaml_document_t doc;
	const char *where;		/* message prefix: "", "defaults: ", `destination "x": ` */
	char where_buf[CONFIG_NAME_MAX + 32];
	struct dst_info *info;		/* parallel to cfg->dsts */
};

__attribute__((format(printf, 3, 4)))
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "file:line:col: <where><message>"; always -EINVAL so callers can return it. */
__attribute__((format(printf, 3, 4)))
static int fail(struct parse *p, yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->errlen)
		return -EINVAL;
	n = snprintf(p->err, p->errlen, "%s:%zu:%zu: %s", p->fname, mark.line + 1,
		     mark.column + 1, p->where);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * libyaml's reader errors (bad UTF-8, control characters) carry a byte offset
 * instead of a mark. Count the way its scanner does: lines on \n, \r\n or \r,
 * columns in characters, a leading BOM not counted.
 */
static yaml_mark_t offset_mark(const unsigned char *buf, size_t len, size_t off)
{
	yaml_mark_t m = { .index = off };
	size_t i = 0;

	if (off > len)
		off = len;
	if (off >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		i = 3;
	for (; i < off; i++) {
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')
			continue;
		if (buf[i] == '\n' || buf[i] == '\r') {
			m.line++;
			m.column = 0;
		} else if ((buf[i] & 0xc0) != 0x80) {
			m.column++;
		}
	}
	return m;
}

static int yaml_fail(struct parse *p, const yaml_parser_t *parser)
{
	yaml_mark_t mark = parser->problem_mark;

	if (parser->error == YAML_MEMORY_ERROR) {
		errf(p->err, p->errlen, "%s: out of memory", p->fname);
		return -ENOMEM;
	}
	if (parser->error == YAML_READER_ERROR)
		mark = offset_mark(p->buf, p->len, parser->problem_offset);
	return fail(p, mark, "%s", parser->problem ? parser->problem : "invalid YAML");
}

static int scan_events(struct parse *p)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, docs = 0, ret = 0;
	bool done = false;

	if (!yaml_parser_initialize(&parser)) {
		errf(p->err, p->errlen, "%s: out of memory", p->fname);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, p->buf, p->len);
	while (!ret && !done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			ret = yaml_fail(p, &parser);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
			/* A BOM may select UTF-16; offsets and messages assume UTF-8. */
			if (ev.data.stream_start.encoding != YAML_UTF8_ENCODING)
				ret = fail(p, ev.start_mark, "only UTF-8 is supported");
			break;
		case YAML_DOCUMENT_START_EVENT:
			/* yaml_parser_load() would silently ignore the rest. */
			if (++docs > 1)
				ret = fail(p, ev.start_mark, "only one document is allowed");
			break;
		case YAML_ALIAS_EVENT:
			ret = fail(p, ev.start_mark, "anchors and aliases are not allowed");
			break;
		case YAML_SCALAR_EVENT:
			if (ev.data.scalar.anchor)
				ret = fail(p, ev.start_mark, "anchors and aliases are not allowed");
			/* "\0" escapes would cut the value short behind strcmp()'s back. */
			else if (memchr(ev.data.scalar.value, 0, ev.data.scalar.length))
				ret = fail(p, ev.start_mark, "NUL characters are not allowed");
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
								 : ev.data.mapping_start.anchor)
				ret = fail(p, ev.start_mark, "anchors and aliases are not allowed");
			else if (++depth > MAX_DEPTH)
				ret = fail(p, ev.start_mark, "nesting deeper than %d levels", MAX_DEPTH);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return ret;
}

static yaml_node_t *node(struct parse *p, int id)
{
	return yaml_document_get_node(&p->doc, id);
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* `key:`, `key: ~` and `key: null` all mean "not given". */
static bool is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (i = 0; i < ARRAY_SIZE(nulls); i++)
		if (!strcmp(scalar(n), nulls[i]))
			return true;
	return false;
}

/* Keys are echoed in messages: keep them short, ASCII and on one line. */
static const char *printable(char out[KEY_ECHO], const char *s)
{
	size_t i;

	for (i = 0; s[i] && i < KEY_ECHO - 1; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' ? s[i] : '?';
	out[i] = '\0';
	if (s[i])
		memcpy(out + KEY_ECHO - 4, "...", 4);
	return out;
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

static bool valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n >= 1 && n < CONFIG_NAME_MAX && !s[n];
}

static const char *duration_text(char *buf, size_t size, uint64_t ns)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(duration_units); i++) {
		if (ns % duration_units[i].ns == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", ns / duration_units[i].ns,
				 duration_units[i].unit);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRIu64 "ns", ns);
	return buf;
}

static int parse_listen(struct parse *p, const struct key_row *row, const yaml_node_t *v,
			struct config *cfg)
{
	const char *s = scalar(v), *host = s, *colon, *rb;
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

static int walk_map(struct parse *p, const yaml_node_t *map, const struct table *tabs,
		    size_t n_tabs, struct seen *seen);

static int parse_policy(struct parse *p, const struct key_row *row, const yaml_node_t *v,
			struct breaker_policy *pol)
{
	struct table tab = { policy_keys, ARRAY_SIZE(policy_keys), pol };
	struct seen seen;
	int ret;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return fail(p, v->start_mark, "%s: expected a mapping", row->key);
	p->where = "defaults: ";
	ret = walk_map(p, v, &tab, 1, &seen);
	p->where = "";
	return ret;
}

/* Messages inside a destination name it, once its name is known to be printable. */
static void where_dst(struct parse *p, const yaml_node_t *map, size_t idx)
{
	yaml_node_pair_t *pair;

	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node(p, pair->key), *v = node(p, pair->value);

		if (k->type == YAML_SCALAR_NODE && !strcmp(scalar(k), "name") &&
		    v->type == YAML_SCALAR_NODE && valid_name(scalar(v))) {
			snprintf(p->where_buf, sizeof(p->where_buf), "destination \"%s\": ", scalar(v));
			p->where = p->where_buf;
			return;
		}
	}
	snprintf(p->where_buf, sizeof(p->where_buf), "destination #%zu: ", idx + 1);
	p->where = p->where_buf;
}

static int parse_dst(struct parse *p, const yaml_node_t *map, size_t idx, struct config_dst *d,
		     struct dst_info *info)
{
	struct table tabs[] = {
		{ dst_keys, ARRAY_SIZE(dst_keys), d },
		{ policy_keys, ARRAY_SIZE(policy_keys), &d->policy },
	};
	struct seen seen;
	size_t i;
	int ret;

	if (map->type != YAML_MAPPING_NODE) {
		snprintf(p->where_buf, sizeof(p->where_buf), "destination #%zu: ", idx + 1);
		p->where = p->where_buf;
		ret = fail(p, map->start_mark, "expected a mapping");
		goto out;
	}
	where_dst(p, map, idx);
	ret = walk_map(p, map, tabs, ARRAY_SIZE(tabs), &seen);
	for (i = 0; !ret && i < ARRAY_SIZE(dst_keys); i++)
		if (!(seen.set & 1u << i))
			ret = fail(p, map->start_mark, "missing required key \"%s\"", dst_keys[i].key);
	if (ret)
		goto out;
	d->line = map->start_mark.line + 1;
	info->policy_set = seen.set >> ARRAY_SIZE(dst_keys);
	info->name_mark = seen.val[DST_NAME]->start_mark;
	info->host_mark = seen.val[DST_HOST]->start_mark;
out:
	p->where = "";
	return ret;
}

static int parse_dsts(struct parse *p, const struct key_row *row, const yaml_node_t *v,
		      struct config *cfg)
{
	yaml_node_item_t *items = v->data.sequence.items.start;
	size_t i, n;
	int ret;

	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(p, v->start_mark, "%s: expected a sequence", row->key);
	n = v->data.sequence.items.top - items;
	if (n > row->max)
		return fail(p, v->start_mark, "%s: more than %" PRIu64 " entries", row->key, row->max);
	if (!n)
		return 0;
	cfg->dsts = calloc(n, sizeof(*cfg->dsts));
	p->info = calloc(n, sizeof(*p->info));
	if (!cfg->dsts || !p->info) {
		errf(p->err, p->errlen, "%s: out of memory", p->fname);
		return -ENOMEM;
	}
	cfg->n_dsts = n;
	for (i = 0; i < n; i++) {
		ret = parse_dst(p, node(p, items[i]), i, &cfg->dsts[i], &p->info[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int set_value(struct parse *p, const struct key_row *row, const yaml_node_t *v, void *base)
{
	char *field = (char *)base + row->offset;
	char lo[32], hi[32];
	const char *s;
	uint64_t u;
	int ret;

	if (row->type == KEY_POLICY)
		return parse_policy(p, row, v, (struct breaker_policy *)field);
	if (row->type == KEY_DSTS)
		return parse_dsts(p, row, v, base);
	if (v->type != YAML_SCALAR_NODE)
		return fail(p, v->start_mark, "%s: expected a scalar", row->key);
	s = scalar(v);

	switch (row->type) {
	case KEY_UINT:
		if (parse_uint(s, row->max, &u) || u < row->min)
			return fail(p, v->start_mark,
				    "%s: must be an integer between %" PRIu64 " and %" PRIu64,
				    row->key, row->min, row->max);
		if (row->size == sizeof(uint16_t))
			*(uint16_t *)field = u;
		else
			*(uint32_t *)field = u;
		return 0;
	case KEY_DURATION:
		ret = config_parse_duration(s, &u);
		if (ret == -EINVAL)
			return fail(p, v->start_mark,
				    "%s: must be a duration such as 100ms, 10s, 5m or 1h", row->key);
		if (ret || u < row->min || u > row->max)
			return fail(p, v->start_mark, "%s: must be between %s and %s", row->key,
				    duration_text(lo, sizeof(lo), row->min),
				    duration_text(hi, sizeof(hi), row->max));
		*(uint64_t *)field = u;
		return 0;
	case KEY_MODE:
		if (!strcmp(s, "enforce"))
			*(enum breaker_mode *)field = MODE_ENFORCE;
		else if (!strcmp(s, "observe"))
			*(enum breaker_mode *)field = MODE_OBSERVE;
		else
			return fail(p, v->start_mark, "%s: must be \"enforce\" or \"observe\"", row->key);
		return 0;
	case KEY_NAME:
		if (!valid_name(s))
			return fail(p, v->start_mark,
				    "%s: must be 1 to %" PRIu64 " characters of [A-Za-z0-9_.-]",
				    row->key, row->max);
		break;
	case KEY_HOST:
		if (strlen(s) > row->max)
			return fail(p, v->start_mark, "%s: longer than %" PRIu64 " characters",
				    row->key, row->max);
		if (config_parse_addr(s, ((struct config_dst *)base)->addr))
			return fail(p, v->start_mark, "%s: must be an IPv4 or IPv6 address", row->key);
		((struct config_dst *)base)->host_kind = HOST_ADDR;
		((struct config_dst *)base)->prefix_len = 128;
		break;
	case KEY_LISTEN:
		return parse_listen(p, row, v, base);
	case KEY_PATH:
		if (is_null(v))
			s = "";
		/* Relative would depend on the daemon's cwd; existence is checked at run time. */
		if (s[0] && s[0] != '/')
			return fail(p, v->start_mark, "%s: must be an absolute path", row->key);
		if (strlen(s) > row->max)
			return fail(p, v->start_mark, "%s: longer than %" PRIu64 " characters",
				    row->key, row->max);
		break;
	default:
		return fail(p, v->start_mark, "%s: unhandled key type", row->key);
	}
	/* The string kinds: length was checked against max < size. */
	memcpy(field, s, strlen(s) + 1);
	return 0;
}

static const struct key_row *find_key(const struct table *tabs, size_t n_tabs, const char *key,
				      const struct table **tab, unsigned int *bit)
{
	unsigned int b = 0;
	size_t t, r;

	for (t = 0; t < n_tabs; t++) {
		for (r = 0; r < tabs[t].n_rows; r++, b++) {
			if (!strcmp(tabs[t].rows[r].key, key)) {
				*tab = &tabs[t];
				*bit = b;
				return &tabs[t].rows[r];
			}
		}
	}
	return NULL;
}

/* Pairs in file order, so the first error reported is the first in the file. */
static int walk_map(struct parse *p, const yaml_node_t *map, const struct table *tabs,
		    size_t n_tabs, struct seen *seen)
{
	yaml_node_pair_t *pair;
	char echo[KEY_ECHO];

	memset(seen, 0, sizeof(*seen));
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node(p, pair->key), *v = node(p, pair->value);
		const struct key_row *row;
		const struct table *tab;
		unsigned int bit;
		int ret;

		if (k->type != YAML_SCALAR_NODE)
			return fail(p, k->start_mark, "keys must be scalars");
		row = find_key(tabs, n_tabs, scalar(k), &tab, &bit);
		if (!row)
			return fail(p, k->start_mark, "unknown key \"%s\"", printable(echo, scalar(k)));
		if (seen->set & 1u << bit)
			return fail(p, k->start_mark, "duplicate key \"%s\"", row->key);
		seen->set |= 1u << bit;
		seen->val[bit] = v;
		ret = set_value(p, row, v, tab->base);
		if (ret)
			return ret;
	}
	return 0;
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

typedef int (*dst_key_fn)(const struct config_dst *a, const struct config_dst *b);

static int name_key(const struct config_dst *a, const struct config_dst *b)
{
	return strcmp(a->name, b->name);
}

static int addr_key(const struct config_dst *a, const struct config_dst *b)
{
	int c = memcmp(a->addr, b->addr, sizeof(a->addr));

	return c ? c : (int)a->port - (int)b->port;
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
		errf(p->err, p->errlen, "%s: out of memory", p->fname);
		return -ENOMEM;
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
			   "destination \"%s\": same address and port as destination \"%s\"",
			   rep->name, first->name);
out:
	free(v);
	return ret;
}

static int load_and_walk(struct parse *p, struct config *cfg)
{
	struct table tab = { top_keys, ARRAY_SIZE(top_keys), cfg };
	yaml_mark_t start = { 0 };
	yaml_parser_t parser;
	yaml_node_t *root;
	struct seen seen;
	int ret;

	if (!yaml_parser_initialize(&parser)) {
		errf(p->err, p->errlen, "%s: out of memory", p->fname);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, p->buf, p->len);
	/* On failure libyaml has already deleted the document. */
	if (!yaml_parser_load(&parser, &p->doc)) {
		ret = yaml_fail(p, &parser);
		yaml_parser_delete(&parser);
		return ret;
	}
	yaml_parser_delete(&parser);

	root = yaml_document_get_root_node(&p->doc);
	if (!root)
		ret = fail(p, start, "empty document, expected a mapping");
	else if (root->type != YAML_MAPPING_NODE)
		ret = fail(p, root->start_mark, "the top level must be a mapping");
	else
		ret = walk_map(p, root, &tab, 1, &seen);
	if (!ret) {
		inherit_defaults(cfg, p->info);
		ret = check_unique(p, cfg);
	}
	yaml_document_delete(&p->doc);
	return ret;
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->listen_host, "127.0.0.1");
	cfg->listen_port = 9877;
	cfg->poll_interval_ns = 100 * NS_PER_MS;
	cfg->resolve_interval_ns = 30 * NS_PER_S;
	cfg->max_destinations = 16384;
	cfg->defaults.mode = MODE_ENFORCE;
	cfg->defaults.consecutive_failures = 5;
	cfg->defaults.open_duration_ns = 10 * NS_PER_S;
	cfg->defaults.half_open_permits = 3;
}

/*
 * cfg is output only: its old contents are not read or freed. Parsing goes
 * into a scratch config so a failure cannot leave half a file behind.
 */
int config_parse(struct config *cfg, const char *fname, const char *buf, size_t len,
		 char *err, size_t errlen)
{
	struct parse p = {
		.fname = fname ? fname : "<config>",
		.buf = (const unsigned char *)(buf ? buf : ""),
		.len = buf ? len : 0,
		.err = err,
		.errlen = errlen,
		.where = "",
	};
	struct config tmp;
	const unsigned char *nul;
	int ret;

	config_init(&tmp);
	if (errlen)
		err[0] = '\0';
	if (p.len > CONFIG_MAX_FILE_BYTES) {
		errf(err, errlen, "%s: file is larger than %d MiB", p.fname, CONFIG_MAX_FILE_BYTES >> 20);
		ret = -EINVAL;
		goto out;
	}
	/* libyaml would call it a control character; name it plainly. */
	nul = memchr(p.buf, 0, p.len);
	if (nul) {
		ret = fail(&p, offset_mark(p.buf, p.len, nul - p.buf), "NUL bytes are not allowed");
		goto out;
	}
	ret = scan_events(&p);
	if (!ret)
		ret = load_and_walk(&p, &tmp);
out:
	free(p.info);
	if (ret) {
		config_free(&tmp);
		config_init(cfg);
	} else {
		*cfg = tmp;
	}
	return ret;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret;

	config_init(cfg);
	if (errlen)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	/* One byte past the limit tells "too big" apart; read to EOF, st_size lies for pipes. */
	buf = malloc(CONFIG_MAX_FILE_BYTES + 1);
	if (!buf) {
		ret = -ENOMEM;
		errf(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	for (;;) {
		n = read(fd, buf + len, CONFIG_MAX_FILE_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			errf(err, errlen, "%s: %s", path, strerror(-ret));
			goto out;
		}
		if (!n)
			break;
		len += n;
		if (len > CONFIG_MAX_FILE_BYTES) {
			ret = -EFBIG;
			errf(err, errlen, "%s: file is larger than %d MiB", path,
			     CONFIG_MAX_FILE_BYTES >> 20);
			goto out;
		}
	}
	ret = config_parse(cfg, path, buf, len, err, errlen);
out:
	free(buf);
	close(fd);
	return ret;
}

void config_free(struct config *cfg)
{
	free(cfg->dsts);
	config_init(cfg);
}

int config_parse_duration(const char *s, uint64_t *ns)
{
	const char *p = s;
	bool overflow = false;
	uint64_t n = 0;
	size_t i;

	if (!s)
		return -EINVAL;
	/* Keep scanning past an overflow: bad syntax wins over -ERANGE. */
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			overflow = true;
		else
			n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(duration_units); i++) {
		if (strcmp(p, duration_units[i].unit))
			continue;
		if (overflow || n > UINT64_MAX / duration_units[i].ns)
			return -ERANGE;
		*ns = n * duration_units[i].ns;
		return 0;
	}
	return -EINVAL;
}

int config_parse_addr(const char *s, uint8_t addr[16])
{
	uint8_t a[16] = { 0 };

	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, a + 12) == 1) {
		a[10] = a[11] = 0xff;
	} else if (inet_pton(AF_INET6, s, a) != 1) {
		return -EINVAL;
	}
	memcpy(addr, a, sizeof(a));
	return 0;
}

const char *config_mode_name(enum breaker_mode mode)
{
	return mode == MODE_OBSERVE ? "observe" : "enforce";
}
