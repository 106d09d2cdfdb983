// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "yamlwalk.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(YAMLWALK_MAX_ROWS <= 32, "seen.set has 32 bits");

void yamlwalk_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define PATH_KEEP 64	/* of a long path, what even the longest message leaves of it */

/* The buffer a message may fill before path goes in front: all of err but PATH_KEEP bytes. */
static size_t text_room(size_t errlen, const char *path)
{
	size_t keep = strnlen(path, PATH_KEEP);

	return keep < errlen ? errlen - keep : 1;
}

/*
 * Put path in front of the text err holds. A path too long for both loses
 * its head to "...": the line, column and message are what the reader
 * needs, and the path's tail still tells the file apart.
 */
static void put_path(char *err, size_t errlen, const char *path)
{
	size_t text = strlen(err), plen = strlen(path), room = errlen - 1 - text, dots = 0;
	const char *from = path;

	if (plen > room) {
		dots = room > 3 ? 3 : 0;
		from = path + plen - (room - dots);
		/* Not inside a UTF-8 character. */
		while ((*(const unsigned char *)from & 0xc0) == 0x80)
			from++;
		plen = strlen(from);
	}
	memmove(err + dots + plen, err, text + 1);
	memcpy(err, "...", dots);
	memcpy(err + dots, from, plen);
}

void yamlwalk_pathf(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, text_room(errlen, path), fmt, ap);
	va_end(ap);
	put_path(err, errlen, path);
}

int yamlwalk_fail(struct yamlwalk *w, yaml_mark_t mark, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (!w->errlen)
		return -EINVAL;
	room = text_room(w->errlen, w->fname);
	n = snprintf(w->err, room, ":%zu:%zu: %s", mark.line + 1, mark.column + 1,
		     w->where ? w->where : "");
	if (n >= 0 && (size_t)n < room) {
		va_start(ap, fmt);
		vsnprintf(w->err + n, room - n, fmt, ap);
		va_end(ap);
	}
	put_path(w->err, w->errlen, w->fname);
	return -EINVAL;
}

int yamlwalk_nomem(struct yamlwalk *w)
{
	yamlwalk_pathf(w->err, w->errlen, w->fname, ": out of memory");
	return -ENOMEM;
}

void yamlwalk_where(struct yamlwalk *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->where_buf, sizeof(w->where_buf), fmt, ap);
	va_end(ap);
	w->where = w->where_buf;
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

static int parser_fail(struct yamlwalk *w, const yaml_parser_t *parser)
{
	yaml_mark_t mark = parser->problem_mark;

	if (parser->error == YAML_MEMORY_ERROR)
		return yamlwalk_nomem(w);
	if (parser->error == YAML_READER_ERROR)
		mark = offset_mark(w->buf, w->len, parser->problem_offset);
	return yamlwalk_fail(w, mark, "%s", parser->problem ? parser->problem : "invalid YAML");
}

/* What one event breaks of the rules the document pass relies on; 0 if nothing. */
static int check_event(struct yamlwalk *w, const yaml_event_t *ev, int *depth, int *docs)
{
	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
		/* A BOM may select UTF-16; offsets and messages assume UTF-8. */
		if (ev->data.stream_start.encoding != YAML_UTF8_ENCODING)
			return yamlwalk_fail(w, ev->start_mark, "only UTF-8 is supported");
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		/* yaml_parser_load() would silently ignore the rest. */
		if (++*docs > 1)
			return yamlwalk_fail(w, ev->start_mark, "only one document is allowed");
		return 0;
	case YAML_ALIAS_EVENT:
		return yamlwalk_fail(w, ev->start_mark, "anchors and aliases are not allowed");
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor)
			return yamlwalk_fail(w, ev->start_mark, "anchors and aliases are not allowed");
		/* "\0" escapes would cut the value short behind strcmp()'s back. */
		if (memchr(ev->data.scalar.value, 0, ev->data.scalar.length))
			return yamlwalk_fail(w, ev->start_mark, "NUL characters are not allowed");
		return 0;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
							  : ev->data.mapping_start.anchor)
			return yamlwalk_fail(w, ev->start_mark, "anchors and aliases are not allowed");
		if (++*depth > YAMLWALK_MAX_DEPTH)
			return yamlwalk_fail(w, ev->start_mark, "nesting deeper than %d levels",
					     YAMLWALK_MAX_DEPTH);
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		--*depth;
		return 0;
	default:
		return 0;
	}
}

static int scan_events(struct yamlwalk *w)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, docs = 0, ret = 0;
	bool done = false;

	if (!yaml_parser_initialize(&parser))
		return yamlwalk_nomem(w);
	yaml_parser_set_input_string(&parser, w->buf, w->len);
	while (!ret && !done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			ret = parser_fail(w, &parser);
			break;
		}
		ret = check_event(w, &ev, &depth, &docs);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return ret;
}

int yamlwalk_load(struct yamlwalk *w, size_t max_bytes, yaml_node_t **root)
{
	yaml_mark_t start = { 0 };
	yaml_parser_t parser;
	const unsigned char *nul;
	int ret;

	if (w->len > max_bytes) {
		yamlwalk_pathf(w->err, w->errlen, w->fname, ": file is larger than %zu MiB",
			       max_bytes >> 20);
		return -EINVAL;
	}
	/* libyaml would call it a control character; name it plainly. */
	nul = memchr(w->buf, 0, w->len);
	if (nul)
		return yamlwalk_fail(w, offset_mark(w->buf, w->len, nul - w->buf),
				     "NUL bytes are not allowed");
	ret = scan_events(w);
	if (ret)
		return ret;
	if (!yaml_parser_initialize(&parser))
		return yamlwalk_nomem(w);
	yaml_parser_set_input_string(&parser, w->buf, w->len);
	/* On failure libyaml has already deleted the document. */
	if (!yaml_parser_load(&parser, &w->doc)) {
		ret = parser_fail(w, &parser);
		yaml_parser_delete(&parser);
		return ret;
	}
	yaml_parser_delete(&parser);
	w->loaded = true;
	*root = yaml_document_get_root_node(&w->doc);
	if (!*root)
		return yamlwalk_fail(w, start, "empty document, expected a mapping");
	if ((*root)->type != YAML_MAPPING_NODE)
		return yamlwalk_fail(w, (*root)->start_mark, "the top level must be a mapping");
	return 0;
}

void yamlwalk_unload(struct yamlwalk *w)
{
	if (w->loaded)
		yaml_document_delete(&w->doc);
	w->loaded = false;
}

yaml_node_t *yamlwalk_node(struct yamlwalk *w, int id)
{
	return yaml_document_get_node(&w->doc, id);
}

int yamlwalk_node_id(struct yamlwalk *w, const yaml_node_t *n)
{
	return (int)(n - w->doc.nodes.start) + 1;
}

bool yamlwalk_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (i = 0; i < ARRAY_SIZE(nulls); i++)
		if (!strcmp(yamlwalk_scalar(n), nulls[i]))
			return true;
	return false;
}

const char *yamlwalk_printable(char out[YAMLWALK_KEY_ECHO], const char *s)
{
	size_t i;

	for (i = 0; s[i] && i < YAMLWALK_KEY_ECHO - 1; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' ? s[i] : '?';
	out[i] = '\0';
	if (s[i])
		memcpy(out + YAMLWALK_KEY_ECHO - 4, "...", 4);
	return out;
}

const yaml_node_t *yamlwalk_find_value(struct yamlwalk *w, int map_id, const char *key)
{
	yaml_node_t *map = map_id ? yamlwalk_node(w, map_id) : NULL;
	yaml_node_pair_t *pair;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yamlwalk_node(w, pair->key);

		if (k->type == YAML_SCALAR_NODE && !strcmp(yamlwalk_scalar(k), key))
			return yamlwalk_node(w, pair->value);
	}
	return NULL;
}

static const struct yamlwalk_key *find_key(const struct yamlwalk_table *tabs, size_t n_tabs,
					   const char *key, const struct yamlwalk_table **tab,
					   unsigned int *bit)
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

int yamlwalk_map(struct yamlwalk *w, const yaml_node_t *map, const struct yamlwalk_table *tabs,
		 size_t n_tabs, struct yamlwalk_seen *seen, yamlwalk_set_fn set, void *ctx)
{
	yaml_node_pair_t *pair;
	char echo[YAMLWALK_KEY_ECHO];

	memset(seen, 0, sizeof(*seen));
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yamlwalk_node(w, pair->key), *v = yamlwalk_node(w, pair->value);
		const struct yamlwalk_key *row;
		const struct yamlwalk_table *tab;
		unsigned int bit;
		int ret;

		if (k->type != YAML_SCALAR_NODE)
			return yamlwalk_fail(w, k->start_mark, "keys must be scalars");
		row = find_key(tabs, n_tabs, yamlwalk_scalar(k), &tab, &bit);
		if (!row)
			return yamlwalk_fail(w, k->start_mark, "unknown key \"%s\"",
					     yamlwalk_printable(echo, yamlwalk_scalar(k)));
		if (seen->set & 1u << bit)
			return yamlwalk_fail(w, k->start_mark, "duplicate key \"%s\"", row->key);
		seen->set |= 1u << bit;
		seen->val[bit] = v;
		ret = set(ctx, row, v, tab->base);
		if (ret)
			return ret;
	}
	return 0;
}
