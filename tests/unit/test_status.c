// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* status_render: the /status JSON document, compared exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"
#include "addr.h"
#include "status.h"


static char *render(const struct status_dst *d, size_t n, uint64_t started, uint64_t now)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	assert_int_equal(status_render(out, "1.2.3", started, now, d, n, NULL), 0);
	assert_int_equal(fclose(out), 0);
	return buf;
}

static void test_empty(void **state)
{
	char *text = render(NULL, 0, 10 * SEC, 12 * SEC + SEC / 2);

	assert_string_equal(text, "{\"version\":\"1.2.3\",\"uptime_seconds\":2.500,\"destinations\":[],\"workloads\":null}\n");
	free(text);
}

/* A literal, a CIDR and a per_address name, each as kbreakerctl reads them. */
static void test_destinations(void **state)
{
	uint8_t v4[16], net[16], a1[16], a2[16];
	uint8_t prefix;
	const uint8_t (*addrs)[16];
	enum breaker_state members[2] = { BS_OPEN, BS_CLOSED };
	uint8_t both[2][16];
	struct kb_dst_stats st[3];
	struct status_dst d[3];
	char *text;

	assert_int_equal(addr_parse("127.0.0.1", v4), 0);
	assert_int_equal(addr_parse_cidr("10.1.0.0/16", net, &prefix), 0);
	assert_int_equal(addr_parse("::1", a1), 0);
	assert_int_equal(addr_parse("192.0.2.7", a2), 0);
	memcpy(both[0], a1, 16);
	memcpy(both[1], a2, 16);
	addrs = (const uint8_t (*)[16])both;
	memset(d, 0, sizeof(d));
	memset(st, 0, sizeof(st));
	d[0] = (struct status_dst){
		.name = "db", .host = "127.0.0.1", .addr = v4, .prefix_len = 128, .port = 5432,
		.mode = MODE_ENFORCE, .state = BS_OPEN, .since_ns = 100 * SEC,
		.next_half_open_ns = 107 * SEC, .failure_rate = 0.75, .stats = &st[0],
	};
	st[0].connects[KB_RES_SUCCESS] = 1;
	st[0].connects[KB_RES_REFUSED] = 3;
	st[0].blocked = 4;
	d[1] = (struct status_dst){
		.name = "net", .host = "10.1.0.0/16", .addr = net, .prefix_len = prefix, .port = 0,
		.mode = MODE_OBSERVE, .state = BS_METRICS_ONLY, .since_ns = 90 * SEC, .stats = &st[1],
	};
	st[1].would_block = 2;
	d[2] = (struct status_dst){
		.name = "api", .host = "api.example", .port = 443, .mode = MODE_ENFORCE,
		.state = BS_OPEN, .since_ns = 101 * SEC, .consecutive_failures = 2,
		.addrs = addrs, .n_addrs = 2, .member_states = members, .stats = &st[2],
	};
	st[2].connects[KB_RES_TIMEOUT] = 5;
	text = render(d, 3, 0, 103 * SEC);
	assert_string_equal(text,
		"{\"version\":\"1.2.3\",\"uptime_seconds\":103.000,\"destinations\":["
		"{\"name\":\"db\",\"host\":\"127.0.0.1\",\"address\":\"127.0.0.1\",\"port\":5432,"
		"\"mode\":\"enforce\",\"state\":\"open\",\"time_in_state_seconds\":3.000,"
		"\"next_half_open_seconds\":4.000,\"consecutive_failures\":0,\"failure_rate\":0.7500,"
		"\"connects\":{\"success\":1,\"refused\":3,\"timeout\":0,\"unreachable\":0,\"error\":0,"
		"\"cancelled\":0},\"failures\":3,\"blocked\":4,\"would_block\":0,\"addresses\":[],\"breaker\":\"shared\",\"workloads\":[]},"
		"{\"name\":\"net\",\"host\":\"10.1.0.0/16\",\"address\":\"10.1.0.0/16\",\"port\":0,"
		"\"mode\":\"observe\",\"state\":\"metrics_only\",\"time_in_state_seconds\":13.000,"
		"\"next_half_open_seconds\":null,\"consecutive_failures\":0,\"failure_rate\":0.0000,"
		"\"connects\":{\"success\":0,\"refused\":0,\"timeout\":0,\"unreachable\":0,\"error\":0,"
		"\"cancelled\":0},\"failures\":0,\"blocked\":0,\"would_block\":2,\"addresses\":[],\"breaker\":\"shared\",\"workloads\":[]},"
		"{\"name\":\"api\",\"host\":\"api.example\",\"address\":\"::1\",\"port\":443,"
		"\"mode\":\"enforce\",\"state\":\"open\",\"time_in_state_seconds\":2.000,"
		"\"next_half_open_seconds\":null,\"consecutive_failures\":2,\"failure_rate\":0.0000,"
		"\"connects\":{\"success\":0,\"refused\":0,\"timeout\":5,\"unreachable\":0,\"error\":0,"
		"\"cancelled\":0},\"failures\":5,\"blocked\":0,\"would_block\":0,\"addresses\":["
		"{\"address\":\"::1\",\"state\":\"open\"},{\"address\":\"192.0.2.7\",\"state\":\"closed\"}],"
		"\"breaker\":\"shared\",\"workloads\":[]}"
		"],\"workloads\":null}\n");
	free(text);
}

/* Workloads: the attribution block, and per destination its workloads in the order given. */
static void test_workloads(void **state)
{
	struct metrics_wl wl[2] = {
		{ .name = "A", .state = BS_OPEN },
		{ .name = "b\"q", .state = BS_CLOSED },
	};
	struct status_wl info = { .depth = 1, .max = 50, .labelled = 2, .folded = 3 };
	struct status_dst d = {
		.name = "db", .host = "127.0.0.1", .port = 5432, .mode = MODE_ENFORCE,
		.state = BS_OPEN, .per_workload = true, .wl = wl, .n_wl = 2,
	};
	char *buf = NULL, *text;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	wl[0].st.connects[KB_RES_REFUSED] = 3;
	wl[0].st.connects[KB_RES_CANCELLED] = 1;
	wl[0].st.blocked = 2;
	wl[1].st.connects[KB_RES_SUCCESS] = 1;
	assert_non_null(out);
	assert_int_equal(status_render(out, "1.2.3", 0, SEC, &d, 1, &info), 0);
	assert_int_equal(fclose(out), 0);
	text = buf;
	assert_non_null(strstr(text, "\"breaker\":\"per_workload\",\"workloads\":["
		"{\"workload\":\"A\",\"connects\":{\"success\":0,\"refused\":3,\"timeout\":0,"
		"\"unreachable\":0,\"error\":0,\"cancelled\":1},\"failures\":3,\"blocked\":2,"
		"\"state\":\"open\"},"
		"{\"workload\":\"b\\\"q\",\"connects\":{\"success\":1,\"refused\":0,\"timeout\":0,"
		"\"unreachable\":0,\"error\":0,\"cancelled\":0},\"failures\":0,\"blocked\":0,"
		"\"state\":\"closed\"}]}],"
		"\"workloads\":{\"depth\":1,\"max\":50,\"labelled\":2,\"folded\":3}}\n"));
	/* shared: no state per workload */
	free(text);
	buf = NULL;
	out = open_memstream(&buf, &len);
	d.per_workload = false;
	wl[0].state = wl[1].state = -1;
	assert_int_equal(status_render(out, "1.2.3", 0, SEC, &d, 1, &info), 0);
	assert_int_equal(fclose(out), 0);
	assert_non_null(strstr(buf, "\"breaker\":\"shared\""));
	assert_null(strstr(buf, "\"state\":\"closed\"}"));
	free(buf);
}

/* Whatever a name holds, the document stays JSON: quotes, backslashes and controls escaped. */
static void test_escaping(void **state)
{
	struct status_dst d = {
		.name = "a\"b\\c\n", .host = "h</x>", .mode = MODE_ENFORCE, .state = BS_CLOSED,
	};
	char *text = render(&d, 1, 0, 0);

	assert_non_null(strstr(text, "\"name\":\"a\\\"b\\\\c\\n\",\"host\":\"h</x>\""));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_destinations),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_workloads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
