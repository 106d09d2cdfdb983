// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * addr: parsing and printing kbreaker's 16-byte address form, with IPv4 as
 * ::ffff:a.b.c.d. Every case states the exact bytes, return and text.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"
#include "addr.h"

#define V4(a, b, c, d) { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d }

static const uint8_t untouched[16] = { 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
				       0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa };

/* Each literal, its bytes, and the text addr_text() gives back. */
static void test_parse_print(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint8_t addr[16];
		const char *text;	/* printed back; NULL: same as in */
		bool v4;
	} cases[] = {
		{ "127.0.0.1", 0, V4(127, 0, 0, 1), NULL, true },
		{ "0.0.0.0", 0, V4(0, 0, 0, 0), NULL, true },
		{ "255.255.255.255", 0, V4(255, 255, 255, 255), NULL, true },
		{ "::1", 0, { [15] = 1 }, NULL, false },
		{ "::", 0, { 0 }, NULL, false },
		{ "2001:db8::7", 0, { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 }, NULL, false },
		{ "2001:DB8:0:0:0:0:0:7", 0, { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 }, "2001:db8::7", false },
		/* The mapped form written out is the IPv4 address: one destination, one key. */
		{ "::ffff:192.0.2.1", 0, V4(192, 0, 2, 1), "192.0.2.1", true },
		{ "::ffff:c000:201", 0, V4(192, 0, 2, 1), "192.0.2.1", true },
		/* IPv4-compatible (::a.b.c.d) and NAT64 addresses are IPv6. */
		{ "::192.0.2.1", 0, { [12] = 192, 0, 2, 1 }, "::192.0.2.1", false },
		{ "64:ff9b::c000:201", 0, { 0, 0x64, 0xff, 0x9b, [12] = 192, 0, 2, 1 },
		  "64:ff9b::c000:201", false },
		{ "", -EINVAL, { 0 }, NULL, false },
		{ "1.2.3", -EINVAL, { 0 }, NULL, false },
		{ "1.2.3.256", -EINVAL, { 0 }, NULL, false },
		{ "01.2.3.4", -EINVAL, { 0 }, NULL, false },
		{ "1.2.3.4/32", -EINVAL, { 0 }, NULL, false },
		{ "[::1]", -EINVAL, { 0 }, NULL, false },
		{ "fe80::1%lo", -EINVAL, { 0 }, NULL, false },
		{ "::1 ", -EINVAL, { 0 }, NULL, false },
		{ "example.com", -EINVAL, { 0 }, NULL, false },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		char text[ADDR_TEXT_MAX];
		uint8_t addr[16];

		memset(addr, 0xaa, sizeof(addr));
		check_int(cases[i].in, addr_parse(cases[i].in, addr), cases[i].ret);
		if (cases[i].ret) {
			if (memcmp(addr, untouched, 16))
				fail_msg("%s: address written on error", cases[i].in);
			continue;
		}
		if (memcmp(addr, cases[i].addr, 16))
			fail_msg("%s: wrong address bytes", cases[i].in);
		check_eq(cases[i].in, addr_is_v4(addr), cases[i].v4);
		check_str(cases[i].in, addr_text(addr, text, sizeof(text)),
			  cases[i].text ? cases[i].text : cases[i].in);
	}
	assert_int_equal(addr_parse(NULL, (uint8_t[16]){ 0 }), -EINVAL);
}

/* Prefixes: bytes, length in the 128-bit space, and the text status prints. */
static void test_cidr(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint8_t len;
		uint8_t addr[16];
		const char *text;	/* addr_prefix_text(); NULL: same as in */
	} cases[] = {
		{ "10.0.0.0/8", 0, 104, V4(10, 0, 0, 0), NULL },
		{ "192.0.2.0/24", 0, 120, V4(192, 0, 2, 0), NULL },
		{ "0.0.0.0/0", 0, 96, V4(0, 0, 0, 0), NULL },
		{ "192.0.2.1/32", 0, 128, V4(192, 0, 2, 1), "192.0.2.1" },
		{ "fd00::/8", 0, 8, { 0xfd }, NULL },
		{ "::/0", 0, 0, { 0 }, NULL },
		{ "2001:db8::1/128", 0, 128, { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 }, "2001:db8::1" },
		{ "::ffff:10.0.0.0/104", 0, 104, V4(10, 0, 0, 0), "10.0.0.0/8" },
		{ "10.0.0.1/8", -ERANGE, 0, { 0 }, NULL },
		{ "fd00::1/64", -ERANGE, 0, { 0 }, NULL },
		{ "::ffff:10.0.0.0/95", -ERANGE, 0, { 0 }, NULL },
		{ "10.0.0.0/33", -EINVAL, 0, { 0 }, NULL },
		{ "fd00::/129", -EINVAL, 0, { 0 }, NULL },
		{ "10.0.0.0/08", -EINVAL, 0, { 0 }, NULL },
		{ "10.0.0.0/+8", -EINVAL, 0, { 0 }, NULL },
		{ "10.0.0.0/", -EINVAL, 0, { 0 }, NULL },
		{ "10.0.0.0", -EINVAL, 0, { 0 }, NULL },
		{ "/8", -EINVAL, 0, { 0 }, NULL },
		{ "10.0.0.0/8/8", -EINVAL, 0, { 0 }, NULL },
		{ "example.com/8", -EINVAL, 0, { 0 }, NULL },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1/8", -EINVAL, 0, { 0 }, NULL },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		char text[ADDR_TEXT_MAX];
		uint8_t addr[16], len = 77;

		memset(addr, 0xaa, sizeof(addr));
		check_int(cases[i].in, addr_parse_cidr(cases[i].in, addr, &len), cases[i].ret);
		if (cases[i].ret) {
			check_eq(cases[i].in, len, 77);
			if (memcmp(addr, untouched, 16))
				fail_msg("%s: address written on error", cases[i].in);
			continue;
		}
		check_eq(cases[i].in, len, cases[i].len);
		if (memcmp(addr, cases[i].addr, 16))
			fail_msg("%s: wrong address bytes", cases[i].in);
		check_str(cases[i].in, addr_prefix_text(addr, len, text, sizeof(text)),
			  cases[i].text ? cases[i].text : cases[i].in);
	}
	assert_int_equal(addr_parse_cidr(NULL, NULL, NULL), -EINVAL);
}

/* What resolve.c builds from a sockaddr_in, and the longest text there is. */
static void test_from_v4_and_longest(void **state)
{
	static const uint8_t in4[4] = { 198, 51, 100, 9 };
	static const uint8_t want[16] = V4(198, 51, 100, 9);
	uint8_t addr[16], full[16];
	char text[ADDR_TEXT_MAX];

	memset(addr, 0xaa, sizeof(addr));
	addr_from_v4(addr, in4);
	assert_memory_equal(addr, want, 16);
	assert_true(addr_is_v4(addr));
	assert_string_equal(addr_text(addr, text, sizeof(text)), "198.51.100.9");

	assert_int_equal(addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", full), 0);
	assert_false(addr_is_v4(full));
	assert_string_equal(addr_prefix_text(full, 127, text, sizeof(text)),
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
	assert_true(strlen(text) < ADDR_TEXT_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_print),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_from_v4_and_longest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
