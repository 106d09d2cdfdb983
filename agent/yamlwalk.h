/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * yamlwalk: the hardened libyaml walker under config.c's schema. It knows
 * YAML, not kbreaker: limits, file:line:col messages, and a walk of a
 * mapping's pairs through tables of {key, type, offset, size, min, max} rows.
 * Pure: nothing here logs or exits; errors are text for the caller.
 *
 * Two passes over the text. The event pass refuses what libyaml's document
 * model would hide or amplify: anchors and aliases (one node reachable twice,
 * "billion laughs"), deep nesting, NUL characters, more than one document.
 * The document pass hands the node tree to the schema.
 *
 * (Not "yaml.h": with -Iagent that name would hide libyaml's <yaml.h>.)
 */
#ifndef KB_YAMLWALK_H
#define KB_YAMLWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#define YAMLWALK_MAX_DEPTH 32	/* kbreaker's format needs 3; the cap bounds hostile input */
#define YAMLWALK_MAX_ROWS 32	/* keys one mapping may hold, across its tables (bits of seen.set) */
#define YAMLWALK_KEY_ECHO 40	/* room for a key or value echoed in a message */
#define YAMLWALK_WHERE_MAX 96	/* room for a message prefix such as `destination "x": ` */

/* offset and size of a member, for a row's offset and size. */
#define YAMLWALK_FIELD(type, member) offsetof(type, member), sizeof(((type *)0)->member)

/* One text being walked; fname, buf, len, err and errlen are set by the caller. */
struct yamlwalk {
	const char *fname;		/* names the text in messages */
	const unsigned char *buf;
	size_t len;
	char *err;			/* "fname:line:col: <where><message>" */
	size_t errlen;
	const char *where;		/* message prefix, "" by default (see yamlwalk_where()) */
	char where_buf[YAMLWALK_WHERE_MAX];
	yaml_document_t doc;		/* valid between yamlwalk_load() and yamlwalk_unload() */
	bool loaded;
};

/* One key a mapping may hold: type is the schema's own enum, the rest its to interpret. */
struct yamlwalk_key {
	const char *key;
	int type;
	size_t offset;		/* of the field in the struct the table describes */
	size_t size;
	uint64_t min, max;
};

/* One struct a mapping fills, with the rows that describe it. */
struct yamlwalk_table {
	const struct yamlwalk_key *rows;
	size_t n_rows;
	void *base;
};

/* What yamlwalk_map() found; bit i is the i-th row counted across the tables. */
struct yamlwalk_seen {
	uint32_t set;
	yaml_node_t *val[YAMLWALK_MAX_ROWS];
};

/* Stores one value: 0 or a negative errno, with the message already in w->err. */
typedef int (*yamlwalk_set_fn)(void *ctx, const struct yamlwalk_key *row, const yaml_node_t *v,
			       void *base);

/* snprintf into err (when errlen is not 0). */
__attribute__((format(printf, 3, 4)))
void yamlwalk_errf(char *err, size_t errlen, const char *fmt, ...);

/*
 * path, then the formatted text (": message", ":line:col: message"). When
 * both do not fit, the path is cut from the left to "...tail", so the text
 * survives whole; only a text that alone would fill err is cut, at its end,
 * leaving the path its last 64 bytes.
 */
__attribute__((format(printf, 4, 5)))
void yamlwalk_pathf(char *err, size_t errlen, const char *path, const char *fmt, ...);

/* "fname:line:col: <where><message>" (fname cut as yamlwalk_pathf() does) at mark (0-based, printed 1-based); returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
int yamlwalk_fail(struct yamlwalk *w, yaml_mark_t mark, const char *fmt, ...);

/* "fname: out of memory"; returns -ENOMEM. */
int yamlwalk_nomem(struct yamlwalk *w);

/* Set the message prefix to the formatted text (at most YAMLWALK_WHERE_MAX - 1 bytes). */
__attribute__((format(printf, 2, 3)))
void yamlwalk_where(struct yamlwalk *w, const char *fmt, ...);

/*
 * Check and load the text: at most max_bytes, no NUL, UTF-8, one document,
 * no anchors or aliases, nesting at most YAMLWALK_MAX_DEPTH, and a mapping
 * at the top. Returns 0 with *root set, -EINVAL or -ENOMEM with the message
 * in w->err. Call yamlwalk_unload() either way.
 */
int yamlwalk_load(struct yamlwalk *w, size_t max_bytes, yaml_node_t **root);

/* Release the document yamlwalk_load() built; safe to call twice. */
void yamlwalk_unload(struct yamlwalk *w);

/* Node id -> node of the loaded document. */
yaml_node_t *yamlwalk_node(struct yamlwalk *w, int id);

/* Node -> its id. */
int yamlwalk_node_id(struct yamlwalk *w, const yaml_node_t *n);

/* A scalar node's text. */
static inline const char *yamlwalk_scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* `key:`, `key: ~` and `key: null` all mean "not given". */
bool yamlwalk_is_null(const yaml_node_t *n);

/* s made fit for a message: ASCII, one line, no quotes, "..." past YAMLWALK_KEY_ECHO. */
const char *yamlwalk_printable(char out[YAMLWALK_KEY_ECHO], const char *s);

/* The value node of `key` in mapping node map_id, or NULL (map_id 0: no mapping). */
const yaml_node_t *yamlwalk_find_value(struct yamlwalk *w, int map_id, const char *key);

/*
 * Walk map's pairs in file order (so the first error reported is the first
 * in the file): each key must be a scalar naming a row of one of the tables,
 * given once; set(ctx, row, value, table base) stores it. seen says which
 * rows were given and their value nodes. Returns 0 or the first error.
 */
int yamlwalk_map(struct yamlwalk *w, const yaml_node_t *map, const struct yamlwalk_table *tabs,
		 size_t n_tabs, struct yamlwalk_seen *seen, yamlwalk_set_fn set, void *ctx);

#endif /* KB_YAMLWALK_H */
