// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "table.h"

enum { COL_NAME, COL_ADDR, COL_STATE, COL_RATE, COL_CONNECTS, COL_FAILURES, COL_BLOCKED,
       COL_TIME, COL_MAX };

static const char *const headers[COL_MAX] = {
	"NAME", "ADDRESS", "STATE", "FAILURE RATE", "CONNECTS", "FAILURES", "BLOCKED", "TIME IN STATE",
};

#define CELL_MAX 96
#define COL_GAP 3

struct json_object *table_parse(const char *body, size_t len, char *err, size_t err_len)
{
	struct json_tokener *tok = json_tokener_new();
	enum json_tokener_error jerr;
	struct json_object *doc, *dsts;
	size_t end;

	if (!tok || len > INT_MAX) {
		if (tok)
			json_tokener_free(tok);
		snprintf(err, err_len, "response too large to parse");
		errno = ENOMEM;
		return NULL;
	}
	doc = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	/* One document, all of it: --json passes the body on as it came. */
	while (doc && end < len && strchr(" \t\r\n", body[end]) && body[end])
		end++;
	if (doc && (end < len || strlen(body) != len)) {
		json_object_put(doc);
		snprintf(err, err_len, "response is not one JSON document: more after byte %zu", end);
		errno = EINVAL;
		return NULL;
	}
	if (!doc) {
		snprintf(err, err_len, "response is not JSON: %s",
			 jerr == json_tokener_continue ? "unexpected end of data" : json_tokener_error_desc(jerr));
		errno = EINVAL;
		return NULL;
	}
	if (!json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "destinations", &dsts) ||
	    !json_object_is_type(dsts, json_type_array)) {
		snprintf(err, err_len, "response has no \"destinations\" array (is this a kbreakerd /status?)");
		json_object_put(doc);
		errno = EINVAL;
		return NULL;
	}
	return doc;
}

void table_duration(double secs, char *buf, size_t len)
{
	uint64_t s;

	if (secs < 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (secs < 1.0) {
		snprintf(buf, len, "%dms", (int)(secs * 1000));
		return;
	}
	if (secs < 60.0) {
		snprintf(buf, len, "%.1fs", secs);
		return;
	}
	s = (uint64_t)secs;
	if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* The member if present and of type t, else NULL. */
static struct json_object *get(struct json_object *o, const char *key, enum json_type t)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

static int is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static struct json_object *get_number(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !is_number(v))
		return NULL;
	return v;
}

static void cell_u64(struct json_object *v, char *buf, size_t len)
{
	if (v)
		snprintf(buf, len, "%" PRId64, json_object_get_int64(v));
	else
		snprintf(buf, len, "-");
}

/*
 * address:port; [v6]:port; port 0 or absent is "any". A name with other
 * than one address (none yet, or several) shows as the name.
 */
static void cell_addr(struct json_object *d, char *buf, size_t len)
{
	struct json_object *a = get(d, "address", json_type_string), *p = get(d, "port", json_type_int);
	struct json_object *h = get(d, "host", json_type_string), *all = get(d, "addresses", json_type_array);
	const char *addr = a && *json_object_get_string(a) ? json_object_get_string(a) : "-";
	int port = p ? json_object_get_int(p) : 0;
	char port_text[16];

	if (h && *json_object_get_string(h) && all && json_object_array_length(all) != 1)
		addr = json_object_get_string(h);

	if (port > 0)
		snprintf(port_text, sizeof(port_text), "%d", port);
	else
		snprintf(port_text, sizeof(port_text), "*");
	if (strchr(addr, ':'))
		snprintf(buf, len, "[%s]:%s", addr, port_text);
	else
		snprintf(buf, len, "%s:%s", addr, port_text);
}

/* Sum of every result in "connects", whatever results the agent reports. */
static void cell_connects(struct json_object *d, char *buf, size_t len)
{
	struct json_object *c = get(d, "connects", json_type_object);
	int64_t sum = 0;

	if (!c) {
		snprintf(buf, len, "-");
		return;
	}
	json_object_object_foreach(c, key, val) {
		(void)key;
		if (is_number(val))
			sum += json_object_get_int64(val);
	}
	snprintf(buf, len, "%" PRId64, sum);
}

static void fill_row(struct json_object *d, char row[COL_MAX][CELL_MAX])
{
	struct json_object *v;

	v = get(d, "name", json_type_string);
	snprintf(row[COL_NAME], CELL_MAX, "%s", v ? json_object_get_string(v) : "-");
	cell_addr(d, row[COL_ADDR], CELL_MAX);
	v = get(d, "state", json_type_string);
	snprintf(row[COL_STATE], CELL_MAX, "%s", v ? json_object_get_string(v) : "-");
	v = get_number(d, "failure_rate");
	if (v)
		snprintf(row[COL_RATE], CELL_MAX, "%.1f%%", json_object_get_double(v) * 100.0);
	else
		snprintf(row[COL_RATE], CELL_MAX, "-");
	cell_connects(d, row[COL_CONNECTS], CELL_MAX);
	cell_u64(get_number(d, "failures"), row[COL_FAILURES], CELL_MAX);
	cell_u64(get_number(d, "blocked"), row[COL_BLOCKED], CELL_MAX);
	v = get_number(d, "time_in_state_seconds");
	table_duration(v ? json_object_get_double(v) : -1.0, row[COL_TIME], CELL_MAX);
}

/*
 * Length of the UTF-8 character at p that a terminal prints as a
 * character: 0 for a byte that does not start one, and for C1 controls.
 */
static size_t utf8_char(const unsigned char *p)
{
	size_t n = p[0] >= 0xf5 ? 0 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;

	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 2 && p[0] == 0xc2 && p[1] < 0xa0) || (n == 3 && p[0] == 0xe0 && p[1] < 0xa0) ||
	    (n == 3 && p[0] == 0xed && p[1] >= 0xa0) || (n == 4 && p[0] == 0xf0 && p[1] < 0x90) ||
	    (n == 4 && p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

/*
 * Write s (out NULL: only measure) with every byte a terminal would act on
 * (C0, DEL, C1) or could not print as \xHH: a cgroup's name is anyone's
 * text. Returns the columns written.
 */
static size_t put_cell(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t cols = 0, n;

	while (*p) {
		n = *p >= 0x20 && *p < 0x7f ? 1 : *p >= 0x80 ? utf8_char(p) : 0;
		if (n) {
			if (out)
				fwrite(p, 1, n, out);
			p += n;
			cols++;
			continue;
		}
		if (out)
			fprintf(out, "\\x%02x", *p);
		p++;
		cols += 4;
	}
	return cols;
}

static void print_row(FILE *out, const char *const *cells, const size_t *width, int ncols)
{
	for (int c = 0; c < ncols; c++) {
		size_t cols = put_cell(out, cells[c]);

		if (c == ncols - 1)
			fputc('\n', out);
		else
			fprintf(out, "%*s", (int)(width[c] + COL_GAP - cols), "");
	}
}

int table_render(FILE *out, struct json_object *doc)
{
	struct json_object *dsts = get(doc, "destinations", json_type_array);
	size_t n = dsts ? json_object_array_length(dsts) : 0, width[COL_MAX];
	char (*rows)[COL_MAX][CELL_MAX];
	const char *cells[COL_MAX];

	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	for (int c = 0; c < COL_MAX; c++)
		width[c] = put_cell(NULL, headers[c]);
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(dsts, i);

		if (!json_object_is_type(d, json_type_object))
			d = NULL;
		if (d)
			fill_row(d, rows[i]);
		else
			for (int c = 0; c < COL_MAX; c++)
				snprintf(rows[i][c], CELL_MAX, "-");
		for (int c = 0; c < COL_MAX; c++)
			if (put_cell(NULL, rows[i][c]) > width[c])
				width[c] = put_cell(NULL, rows[i][c]);
	}
	print_row(out, headers, width, COL_MAX);
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < COL_MAX; c++)
			cells[c] = rows[i][c];
		print_row(out, cells, width, COL_MAX);
	}
	if (!n)
		fputs("(no destinations configured)\n", out);
	free(rows);
	return ferror(out) ? -EIO : 0;
}

enum { WCOL_DST, WCOL_WORKLOAD, WCOL_BREAKER, WCOL_STATE, WCOL_CONNECTS, WCOL_FAILURES,
       WCOL_BLOCKED, WCOL_MAX };

static const char *const wheaders[WCOL_MAX] = {
	"DESTINATION", "WORKLOAD", "BREAKER", "STATE", "CONNECTS", "FAILURES", "BLOCKED",
};

/*
 * One (destination, workload) row. The names point into the document (a
 * cgroup path has no useful bound, so it is not copied into a cell); the
 * counts are rendered here.
 */
struct wrow {
	const char *text[WCOL_MAX];
	char connects[24], failures[24], blocked[24];
};

/* o's member key if it is a string, else "-". */
static const char *string_or_dash(struct json_object *o, const char *key)
{
	struct json_object *v = o ? get(o, key, json_type_string) : NULL;

	return v ? json_object_get_string(v) : "-";
}

/* A destination's "workloads" array, or NULL if it has none. */
static struct json_object *dst_workloads(struct json_object *dsts, size_t i)
{
	struct json_object *d = json_object_array_get_idx(dsts, i);

	return json_object_is_type(d, json_type_object) ? get(d, "workloads", json_type_array) : NULL;
}

static void fill_wrow(struct json_object *d, struct json_object *w, struct wrow *r)
{
	r->text[WCOL_DST] = string_or_dash(d, "name");
	r->text[WCOL_WORKLOAD] = string_or_dash(w, "workload");
	r->text[WCOL_BREAKER] = string_or_dash(d, "breaker");
	/* Only a per_workload destination's workloads have a breaker of their own. */
	r->text[WCOL_STATE] = string_or_dash(w, "state");
	if (w) {
		cell_connects(w, r->connects, sizeof(r->connects));
		cell_u64(get_number(w, "failures"), r->failures, sizeof(r->failures));
		cell_u64(get_number(w, "blocked"), r->blocked, sizeof(r->blocked));
	} else {
		snprintf(r->connects, sizeof(r->connects), "-");
		snprintf(r->failures, sizeof(r->failures), "-");
		snprintf(r->blocked, sizeof(r->blocked), "-");
	}
	r->text[WCOL_CONNECTS] = r->connects;
	r->text[WCOL_FAILURES] = r->failures;
	r->text[WCOL_BLOCKED] = r->blocked;
}

int table_render_workloads(FILE *out, struct json_object *doc)
{
	struct json_object *dsts = get(doc, "destinations", json_type_array), *ws;
	size_t ndst = dsts ? json_object_array_length(dsts) : 0, n = 0, width[WCOL_MAX];
	struct wrow *rows;

	if (!get(doc, "workloads", json_type_object))
		return -ENODATA;
	for (size_t i = 0; i < ndst; i++) {
		ws = dst_workloads(dsts, i);
		n += ws ? json_object_array_length(ws) : 0;
	}
	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < ndst; i++) {
		struct json_object *d = json_object_array_get_idx(dsts, i);

		ws = dst_workloads(dsts, i);
		for (size_t j = 0; ws && j < json_object_array_length(ws); j++) {
			struct json_object *w = json_object_array_get_idx(ws, j);

			fill_wrow(d, json_object_is_type(w, json_type_object) ? w : NULL, &rows[n++]);
		}
	}
	for (int c = 0; c < WCOL_MAX; c++) {
		width[c] = put_cell(NULL, wheaders[c]);
		for (size_t i = 0; i < n; i++)
			if (put_cell(NULL, rows[i].text[c]) > width[c])
				width[c] = put_cell(NULL, rows[i].text[c]);
	}
	print_row(out, wheaders, width, WCOL_MAX);
	for (size_t i = 0; i < n; i++)
		print_row(out, rows[i].text, width, WCOL_MAX);
	free(rows);
	return ferror(out) ? -EIO : 0;
}
