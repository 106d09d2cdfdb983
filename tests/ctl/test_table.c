// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbreakerctl's tables (ctl/table.c) from canned /status documents, compared
 * exactly: no agent, no network. Fixtures in tests/data/ctl-* are loaded by
 * path relative to the top of the tree, where `make test-unit` runs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"
#include "table.h"

#define WORKLOADS_DOC "tests/data/ctl-status-workloads.json"

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *in = fopen(path, "r"), *out = open_memstream(&buf, &len);
	int c;

	if (!in)
		fail_msg("%s: %s", path, strerror(errno));
	assert_non_null(out);
	while ((c = fgetc(in)) != EOF)
		fputc(c, out);
	assert_int_equal(ferror(in), 0);
	fclose(in);
	assert_int_equal(fclose(out), 0);
	return buf;
}

static struct json_object *parse(const char *ctx, const char *body)
{
	struct json_object *doc;
	char err[256];

	doc = table_parse(body, strlen(body), err, sizeof(err));
	if (!doc)
		fail_msg("%s: %s", ctx, err);
	return doc;
}

/* render(out, doc) into a string; its return value in *rc. */
static char *render(int (*fn)(FILE *, struct json_object *), struct json_object *doc, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	*rc = fn(out, doc);
	assert_int_equal(fclose(out), 0);
	return buf;
}

/* fn's table of the document text doc is want, exactly. */
static void expect_table(int (*fn)(FILE *, struct json_object *), const char *ctx, const char *doc,
			 const char *want)
{
	struct json_object *d = parse(ctx, doc);
	char *text;
	int rc;

	text = render(fn, d, &rc);
	check_int(ctx, rc, 0);
	check_str(ctx, text, want);
	free(text);
	json_object_put(d);
}

/*
 * --by-workload on the canned document: destinations in its order, each
 * one's workloads in its order (the agent's: failures descending), none for
 * cache (no workload rows); STATE "-" for catalog's shared breaker; a
 * connects result kbreakerctl does not know ("reset") still counted.
 */
static void test_workloads_canned(void **state)
{
	char *body = slurp(WORKLOADS_DOC), *text;
	struct json_object *doc = parse(WORKLOADS_DOC, body);
	int rc;

	text = render(table_render_workloads, doc, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text,
		"DESTINATION   WORKLOAD                      BREAKER        STATE       CONNECTS   FAILURES   BLOCKED\n"
		"payments      system.slice/orders.service   per_workload   open        5          4          5\n"
		"payments      other                         per_workload   half_open   3          1          1\n"
		"payments      A                             per_workload   closed      2          0          0\n"
		"catalog       cgroup-4242                   shared         -           2          2          0\n"
		"catalog       .                             shared         -           9          0          0\n");
	free(text);
	json_object_put(doc);
	free(body);
}

/* The plain table of the same document: the new fields change nothing. */
static void test_status_canned(void **state)
{
	char *body = slurp(WORKLOADS_DOC), *text;
	struct json_object *doc = parse(WORKLOADS_DOC, body);
	int rc;

	text = render(table_render, doc, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text,
		"NAME       ADDRESS          STATE          FAILURE RATE   CONNECTS   FAILURES   BLOCKED   TIME IN STATE\n"
		"payments   127.0.0.1:8080   open           62.5%          8          5          6         4.1s\n"
		"cache      [::1]:6379       closed         0.0%           0          0          0         1m15s\n"
		"catalog    10.1.0.0/16:*    metrics_only   50.0%          4          2          0         1m15s\n");
	free(text);
	json_object_put(doc);
	free(body);
}

static void test_workloads_cases(void **state)
{
	static const char header[] =
		"DESTINATION   WORKLOAD   BREAKER   STATE   CONNECTS   FAILURES   BLOCKED\n";
	static const struct {
		const char *name;
		const char *doc;
		int rc;
		const char *want;
	} cases[] = {
		{ "attribution off", "{\"workloads\":null,\"destinations\":[{\"name\":\"a\",\"workloads\":[]}]}",
		  -ENODATA, "" },
		{ "an agent older than attribution", "{\"destinations\":[{\"name\":\"a\"}]}", -ENODATA, "" },
		{ "workloads not an object", "{\"workloads\":1,\"destinations\":[]}", -ENODATA, "" },
		{ "on, nothing counted yet",
		  "{\"workloads\":{\"depth\":1,\"max\":50,\"labelled\":0,\"folded\":0},"
		  "\"destinations\":[{\"name\":\"a\",\"breaker\":\"shared\",\"workloads\":[]},{\"name\":\"b\"}]}",
		  0, header },
		{ "on, no destinations", "{\"workloads\":{},\"destinations\":[]}", 0, header },
		/* Missing fields and a row that is not an object are "-", never a crash. */
		{ "fields missing",
		  "{\"workloads\":{},\"destinations\":[7,{\"workloads\":[{},3]},"
		  "{\"name\":\"c\",\"breaker\":\"per_workload\",\"workloads\":[{\"workload\":\"web\",\"failures\":1.0}]}]}",
		  0,
		  "DESTINATION   WORKLOAD   BREAKER        STATE   CONNECTS   FAILURES   BLOCKED\n"
		  "-             -          -              -       -          -          -\n"
		  "-             -          -              -       -          -          -\n"
		  "c             web        per_workload   -       -          1          -\n" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct json_object *doc = parse(cases[i].name, cases[i].doc);
		char *text;
		int rc;

		text = render(table_render_workloads, doc, &rc);
		check_int(cases[i].name, rc, cases[i].rc);
		check_str(cases[i].name, text, cases[i].want);
		free(text);
		json_object_put(doc);
	}
}

/*
 * A workload is named after a cgroup, and whoever may make one picks the
 * name (found by review): what a terminal would act on, or cannot print,
 * is written \xHH; columns count characters, not bytes.
 */
static void test_hostile_names(void **state)
{
	static const char doc[] =
		"{\"workloads\":{},\"destinations\":[{\"name\":\"a\",\"breaker\":\"shared\",\"workloads\":["
		"{\"workload\":\"evil\\u001b[2J\\u001b[31mX\",\"connects\":{\"success\":1}},"
		"{\"workload\":\"nl\\nrow\\u007f\\u009b\",\"connects\":{\"success\":2}},"
		"{\"workload\":\"caf\u00e9\",\"connects\":{\"success\":3}},"
		"{\"workload\":\"bad\xff\xfe\",\"connects\":{\"success\":4}}]}]}";
	expect_table(table_render_workloads, "hostile names", doc,
		"DESTINATION   WORKLOAD                BREAKER   STATE   CONNECTS   FAILURES   BLOCKED\n"
		"a             evil\\x1b[2J\\x1b[31mX    shared    -       1          -          -\n"
		"a             nl\\x0arow\\x7f\\xc2\\x9b   shared    -       2          -          -\n"
		"a             caf\u00e9                    shared    -       3          -          -\n"
		"a             bad\\xff\\xfe             shared    -       4          -          -\n");
}

/* One JSON document, all of the body: --json hands it on as it came. */
static void test_parse_whole_body(void **state)
{
	static const struct {
		const char *name;
		const char *body;
		size_t len;	/* 0: strlen */
		bool ok;
	} cases[] = {
		{ "one document", "{\"destinations\":[]}", 0, true },
		{ "trailing white space", "{\"destinations\":[]}\n \t\r\n", 0, true },
		{ "trailing bytes", "{\"destinations\":[]} garbage", 0, false },
		{ "two documents", "{\"destinations\":[]}{\"x\":1}", 0, false },
		{ "a NUL inside", "{\"destinations\":[]}\0junk", 24, false },
		{ "cut short", "{\"destinations\":[", 0, false },
		{ "empty", "", 0, false },
		{ "not a /status", "{\"x\":[]}", 0, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
		struct json_object *d;
		char err[256] = "";

		d = table_parse(cases[i].body, len, err, sizeof(err));
		check_int(cases[i].name, d != NULL, cases[i].ok);
		if (!cases[i].ok)
			check_int(cases[i].name, err[0] != '\0', 1);
		json_object_put(d);
	}
}

/* ADDRESS: a name with none or several addresses shows as the name; v6 prefixes in brackets. */
static void test_address_cell(void **state)
{
	static const char doc[] =
		"{\"destinations\":["
		"{\"name\":\"unres\",\"host\":\"no.such.invalid\",\"address\":\"\",\"addresses\":[],\"port\":443},"
		"{\"name\":\"pool\",\"host\":\"pool.test\",\"address\":\"10.0.0.1\","
		"\"addresses\":[{\"address\":\"10.0.0.1\"},{\"address\":\"10.0.0.2\"}],\"port\":80},"
		"{\"name\":\"one\",\"host\":\"one.test\",\"address\":\"10.0.0.3\","
		"\"addresses\":[{\"address\":\"10.0.0.3\"}],\"port\":80},"
		"{\"name\":\"v6net\",\"host\":\"fd00::/8\",\"address\":\"fd00::/8\",\"addresses\":[],\"port\":443},"
		"{\"name\":\"old\",\"address\":\"10.0.0.4\",\"port\":0}]}";
	expect_table(table_render, "addresses", doc,
		"NAME    ADDRESS               STATE   FAILURE RATE   CONNECTS   FAILURES   BLOCKED   TIME IN STATE\n"
		"unres   no.such.invalid:443   -       -              -          -          -         -\n"
		"pool    pool.test:80          -       -              -          -          -         -\n"
		"one     10.0.0.3:80           -       -              -          -          -         -\n"
		"v6net   [fd00::/8]:443        -       -              -          -          -         -\n"
		"old     10.0.0.4:*            -       -              -          -          -         -\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workloads_canned),
		cmocka_unit_test(test_status_canned),
		cmocka_unit_test(test_workloads_cases),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_parse_whole_body),
		cmocka_unit_test(test_address_cell),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
