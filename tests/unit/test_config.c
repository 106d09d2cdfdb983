// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the config parser. Every rule has a case asserting the exact
 * line a user would see; fixtures in tests/data are loaded by path relative to
 * the repository root, where the tests run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sys/stat.h>
#include "kb_test.h"

#include "config.h"
#include "duration.h"

#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/*
 * Parse len bytes; want NULL means "must parse". Reports instead of failing,
 * so one run lists every broken case of a table. Returns 1 on a mismatch.
 */
static int try_case(const char *name, const char *yaml, size_t len, const char *want)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	int ret, bad = 0;

	ret = config_parse(&cfg, "kb.yaml", yaml, len, err, sizeof(err));
	if (!want) {
		if (ret) {
			print_error("%s: returned %d: %s\n", name, ret, err);
			bad = 1;
		}
	} else if (ret != -EINVAL || strcmp(err, want)) {
		print_error("%s: returned %d\n  got  %s\n  want %s\n", name, ret, ret ? err : "",
			    want);
		bad = 1;
	} else if (cfg.dsts || cfg.n_dsts) {
		print_error("%s: cfg not left empty after an error\n", name);
		bad = 1;
	}
	config_free(&cfg);
	return bad;
}

static void expect_err(const char *name, const char *yaml, size_t len, const char *want)
{
	if (try_case(name, yaml, len, want))
		fail_msg("%s", name);
}

static const char full_yaml[] =
	"# every key; destinations before the defaults they inherit\n"	/* 1 */
	"destinations:\n"						/* 2 */
	"  - name: payments\n"						/* 3 */
	"    host: 127.0.0.1\n"
	"    port: 8080\n"
	"    consecutive_failures: 3\n"
	"  - name: search.v2\n"						/* 7 */
	"    host: \"2001:db8::10\"\n"
	"    port: 443\n"
	"    mode: enforce\n"
	"    open_duration: 1m\n"
	"    half_open_permits: 1\n"
	"  - {name: legacy_db, host: \"::ffff:10.0.0.7\", port: 5432}\n"	/* 13 */
	"listen: \"[::1]:9900\"\n"
	"cgroup: /sys/fs/cgroup/kbreaker.slice\n"
	"poll_interval: 250ms\n"
	"defaults:\n"
	"  mode: observe\n"
	"  consecutive_failures: 7\n"
	"  open_duration: 30s\n"
	"  half_open_permits: 2\n";

static void check_policy(const char *ctx, const struct breaker_policy *p, enum breaker_mode mode,
			 uint32_t failures, uint64_t open_ns, uint32_t permits)
{
	check_eq(ctx, p->mode, mode);
	check_eq(ctx, p->consecutive_failures, failures);
	check_eq(ctx, p->open_duration_ns, open_ns);
	check_eq(ctx, p->half_open_permits, permits);
}

static void test_full(void **state)
{
	static const uint8_t v4[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x10 };
	static const uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 7 };
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	const struct config_dst *d;

	assert_int_equal(config_parse(&cfg, "kb.yaml", full_yaml, strlen(full_yaml), err,
				      sizeof(err)), 0);
	check_str("listen", cfg.listen_host, "::1");
	check_eq("listen", cfg.listen_port, 9900);
	check_str("cgroup", cfg.cgroup, "/sys/fs/cgroup/kbreaker.slice");
	check_eq("poll", cfg.poll_interval_ns, 250 * MS);
	check_policy("defaults", &cfg.defaults, MODE_OBSERVE, 7, 30 * SEC, 2);
	assert_int_equal(cfg.n_dsts, 3);

	d = &cfg.dsts[0];
	check_str("payments", d->name, "payments");
	check_str("payments", d->host, "127.0.0.1");
	assert_memory_equal(d->addr, v4, 16);
	check_eq("payments", d->port, 8080);
	check_eq("payments", d->line, 3);
	/* One override, the rest inherited from defaults that come later in the file. */
	check_policy("payments", &d->policy, MODE_OBSERVE, 3, 30 * SEC, 2);

	d = &cfg.dsts[1];
	check_str("search", d->name, "search.v2");
	check_str("search", d->host, "2001:db8::10");
	assert_memory_equal(d->addr, v6, 16);
	check_eq("search", d->port, 443);
	check_eq("search", d->line, 7);
	check_policy("search", &d->policy, MODE_ENFORCE, 7, MIN, 1);

	d = &cfg.dsts[2];
	check_str("legacy", d->name, "legacy_db");
	check_str("legacy", d->host, "::ffff:10.0.0.7");	/* as written */
	assert_memory_equal(d->addr, mapped, 16);
	check_eq("legacy", d->port, 5432);
	check_eq("legacy", d->line, 13);
	check_policy("legacy", &d->policy, MODE_OBSERVE, 7, 30 * SEC, 2);

	config_free(&cfg);
	assert_null(cfg.dsts);
	assert_int_equal(cfg.n_dsts, 0);
}

/* Absent keys take the built-in defaults, in defaults: and in a destination. */
static void test_builtin_defaults(void **state)
{
	static const char *const yamls[] = {
		"destinations: []\n",
		"destinations:\ndefaults:\ncgroup:\n",
		"defaults: ~\ncgroup: \"\"\ndestinations: null\n",
		"destinations:\n  - {name: a, host: \"::1\", port: 1}\n",
	};
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(yamls); i++) {
		assert_int_equal(config_parse(&cfg, "kb.yaml", yamls[i], strlen(yamls[i]), err,
					      sizeof(err)), 0);
		check_str(yamls[i], cfg.listen_host, "127.0.0.1");
		check_eq(yamls[i], cfg.listen_port, 9877);
		check_str(yamls[i], cfg.cgroup, "");
		check_eq(yamls[i], cfg.poll_interval_ns, 100 * MS);
		check_policy(yamls[i], &cfg.defaults, MODE_ENFORCE, 5, 10 * SEC, 3);
		if (cfg.n_dsts)
			check_policy(yamls[i], &cfg.dsts[0].policy, MODE_ENFORCE, 5, 10 * SEC, 3);
		else
			assert_null(cfg.dsts);
		config_free(&cfg);
	}
}

static void test_init_and_mode_names(void **state)
{
	struct config cfg;

	config_init(&cfg);
	check_str("init", cfg.listen_host, "127.0.0.1");
	check_eq("init", cfg.listen_port, 9877);
	check_policy("init", &cfg.defaults, MODE_ENFORCE, 5, 10 * SEC, 3);
	assert_null(cfg.dsts);
	config_free(&cfg);
	assert_string_equal(config_mode_name(MODE_ENFORCE), "enforce");
	assert_string_equal(config_mode_name(MODE_OBSERVE), "observe");
}

#define DST "destinations:\n  - name: a\n    host: 10.0.0.1\n    port: 80\n"
#define RANGE_CF "must be an integer between 0 and 1000000"
#define MODE_RULE "mode: must be \"enforce\", \"observe\", \"disabled\" or \"forced_open\""
#define PORT_RULE "port: must be an integer between 1 and 65535 or \"any\""
#define HOST_RULE "host: must be an IP address, a CIDR prefix or a DNS name"
#define CIDR_RULE "host: must be a CIDR prefix such as 10.0.0.0/8 or fd00::/8"
#define WSIZE_RULE "window_size: must be a number of calls (1 to 1000) or seconds (1s to 1h)"
#define WSIZE_COUNT "window_size: a count window holds 1 to 1000 calls"
#define FAIL_NAMES "refused, timeout, unreachable, error or reset"
#define LISTEN_FMT "listen: must be host:port, as in 127.0.0.1:9877 or \"[::1]:9877\""
#define LISTEN_PORT "listen: port must be an integer between 1 and 65535"
#define BAD_DUR "must be a duration such as 100ms, 10s, 5m or 1h"
#define LEADING_ZERO "a duration has no leading zeros (10s, not 010s)"
#define NAME_RULE "name: must be 1 to 63 characters of [A-Za-z0-9_.-]"
#define ALIAS "anchors and aliases are not allowed"
#define MOP_RULE "max_open_percent: needs per_address: true or breaker: per_workload"
#define WL_MAP "workloads: expected a mapping; write workloads: {} for the defaults"
#define WL_DEPTH "workloads: depth: must be an integer between 1 and 16"
#define WL_MAX "workloads: max: must be an integer between 1 and 1000"
#define BREAKER_A "destination \"a\": breaker: must be \"shared\" or \"per_workload\""
#define SLOTS "breaker: per_workload: the destinations need "
#define PW_OFF "breaker: per_workload needs workloads: (attribution) turned on"
#define PW "    breaker: per_workload\n"

static const struct {
	const char *name;
	const char *yaml;
	const char *want_err;	/* NULL: must parse */
} cases[] = {
	/* document shape */
	{ "empty file", "", "kb.yaml:1:1: empty document, expected a mapping" },
	{ "comments only", "# nothing here\n\n", "kb.yaml:1:1: empty document, expected a mapping" },
	{ "root scalar", "hello\n", "kb.yaml:1:1: the top level must be a mapping" },
	{ "root sequence", "- listen: 127.0.0.1:1\n", "kb.yaml:1:1: the top level must be a mapping" },
	{ "two documents", "poll_interval: 1s\n---\npoll_interval: 2s\n",
	  "kb.yaml:2:1: only one document is allowed" },
	{ "yaml syntax", "defaults:\n  mode: enforce\n bad: 1\n",
	  "kb.yaml:3:2: did not find expected key" },
	{ "unterminated quote", "listen: \"127.0.0.1:1\n",
	  "kb.yaml:2:1: found unexpected end of stream" },
	{ "unquoted IPv6 listen", "listen: [::1]:9877\n",
	  "kb.yaml:1:10: did not find expected node content" },

	/* keys */
	{ "unknown top key", "listen: 127.0.0.1:9877\nfoo: 1\n", "kb.yaml:2:1: unknown key \"foo\"" },
	{ "unknown key echo", "\"a\\tb\\\"c\": 1\n", "kb.yaml:1:1: unknown key \"a?b?c\"" },
	{ "unknown key long",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 1\n",
	  "kb.yaml:1:1: unknown key \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"" },
	{ "duplicate top key", "poll_interval: 1s\ncgroup: /a\npoll_interval: 2s\n",
	  "kb.yaml:3:1: duplicate key \"poll_interval\"" },
	{ "key not scalar", "? [listen]\n: 127.0.0.1:1\n", "kb.yaml:1:3: keys must be scalars" },
	{ "quoted key ok", "\"poll_interval\": 2s\n", NULL },

	/* listen */
	{ "listen ok v4", "listen: 0.0.0.0:65535\n", NULL },
	{ "listen ok mapped", "listen: \"[::ffff:127.0.0.1]:1\"\n", NULL },
	{ "listen no port", "listen: 127.0.0.1\n", "kb.yaml:1:9: " LISTEN_FMT },
	{ "listen empty port", "listen: \"127.0.0.1:\"\n", "kb.yaml:1:9: " LISTEN_PORT },
	{ "listen port 0", "listen: 127.0.0.1:0\n", "kb.yaml:1:9: " LISTEN_PORT },
	{ "listen port big", "listen: 127.0.0.1:65536\n", "kb.yaml:1:9: " LISTEN_PORT },
	{ "listen port name", "listen: 127.0.0.1:http\n", "kb.yaml:1:9: " LISTEN_PORT },
	{ "listen port zero-led", "listen: 127.0.0.1:09877\n", "kb.yaml:1:9: " LISTEN_PORT },
	{ "listen hostname", "listen: localhost:9877\n",
	  "kb.yaml:1:9: listen: host must be an IP address" },
	{ "listen no host", "listen: \":9877\"\n", "kb.yaml:1:9: listen: host must be an IP address" },
	{ "listen v6 no brackets", "listen: ::1:9877\n",
	  "kb.yaml:1:9: listen: IPv6 addresses need brackets, as in \"[::1]:9877\"" },
	{ "listen brackets no port", "listen: \"[::1]\"\n", "kb.yaml:1:9: " LISTEN_FMT },
	{ "listen unclosed bracket", "listen: \"[::1:9877\"\n", "kb.yaml:1:9: " LISTEN_FMT },
	{ "listen v4 in brackets", "listen: \"[127.0.0.1]:80\"\n",
	  "kb.yaml:1:9: listen: host must be an IP address" },
	{ "listen sequence", "listen:\n  - 127.0.0.1:1\n", "kb.yaml:2:3: listen: expected a scalar" },

	/* cgroup */
	{ "cgroup relative", "cgroup: sys/fs/cgroup\n", "kb.yaml:1:9: cgroup: must be an absolute path" },
	{ "cgroup dot", "cgroup: ./x\n", "kb.yaml:1:9: cgroup: must be an absolute path" },
	{ "state_dir relative", "state_dir: bpf/kb\n", "kb.yaml:1:12: state_dir: must be an absolute path" },
	{ "log_level unknown", "log_level: loud\n",
	  "kb.yaml:1:12: log_level: must be \"error\", \"warn\", \"info\" or \"debug\"" },
	{ "user with a capital", "user: Nobody\n",
	  "kb.yaml:1:7: user: must be a user name of at most 31 characters of [a-z0-9_-]" },
	{ "user too long", "user: abcdefghijabcdefghijabcdefghijab\n",
	  "kb.yaml:1:7: user: must be a user name of at most 31 characters of [a-z0-9_-]" },
	{ "metrics_compact not a bool", "metrics_compact: maybe\n",
	  "kb.yaml:1:18: metrics_compact: must be true or false" },
	{ "cgroup mapping", "cgroup: {a: b}\n", "kb.yaml:1:9: cgroup: expected a scalar" },

	/* poll_interval */
	{ "poll 1ms", "poll_interval: 1ms\n", NULL },
	{ "poll 1h", "poll_interval: 1h\n", NULL },
	{ "poll bare number", "poll_interval: 100\n", "kb.yaml:1:16: poll_interval: " BAD_DUR },
	{ "poll fraction", "poll_interval: 1.5s\n", "kb.yaml:1:16: poll_interval: " BAD_DUR },
	{ "poll negative", "poll_interval: -1s\n", "kb.yaml:1:16: poll_interval: " BAD_DUR },
	{ "poll space", "poll_interval: 10 s\n", "kb.yaml:1:16: poll_interval: " BAD_DUR },
	{ "poll null", "poll_interval:\n", "kb.yaml:1:15: poll_interval: " BAD_DUR },
	{ "poll zero", "poll_interval: 0ms\n",
	  "kb.yaml:1:16: poll_interval: must be between 1ms and 1h" },
	{ "poll bare zero", "poll_interval: 0\n",
	  "kb.yaml:1:16: poll_interval: must be between 1ms and 1h" },
	{ "poll leading zero", "poll_interval: 0100ms\n",
	  "kb.yaml:1:16: poll_interval: " LEADING_ZERO },
	{ "poll zeros", "poll_interval: 00\n", "kb.yaml:1:16: poll_interval: " LEADING_ZERO },
	{ "poll too long", "poll_interval: 61m\n",
	  "kb.yaml:1:16: poll_interval: must be between 1ms and 1h" },
	{ "poll overflow", "poll_interval: 99999999999999999999h\n",
	  "kb.yaml:1:16: poll_interval: must be between 1ms and 1h" },
	{ "poll mapping", "poll_interval: {}\n", "kb.yaml:1:16: poll_interval: expected a scalar" },

	/* defaults */
	{ "defaults scalar", "defaults: 5\n", "kb.yaml:1:11: defaults: expected a mapping" },
	{ "defaults sequence", "defaults: []\n", "kb.yaml:1:11: defaults: expected a mapping" },
	{ "defaults unknown", "defaults:\n  mode: observe\n  timeout: 1s\n",
	  "kb.yaml:3:3: defaults: unknown key \"timeout\"" },
	{ "defaults duplicate", "defaults:\n  mode: observe\n  mode: enforce\n",
	  "kb.yaml:3:3: defaults: duplicate key \"mode\"" },
	{ "mode bad", "defaults:\n  mode: block\n",
	  "kb.yaml:2:9: defaults: " MODE_RULE },
	{ "mode case", "defaults:\n  mode: Enforce\n",
	  "kb.yaml:2:9: defaults: " MODE_RULE },
	{ "cf bounds ok", "defaults: {consecutive_failures: 1000000, half_open_permits: 100000}\n",
	  NULL },
	{ "cf zero disables", "defaults:\n  consecutive_failures: 0\n", NULL },
	{ "cf too big", "defaults:\n  consecutive_failures: 1000001\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf negative", "defaults:\n  consecutive_failures: -1\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf plus", "defaults:\n  consecutive_failures: +5\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf fraction", "defaults:\n  consecutive_failures: 1.5\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf hex", "defaults:\n  consecutive_failures: 0x10\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf octal-looking", "defaults:\n  consecutive_failures: 010\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf empty string", "defaults:\n  consecutive_failures: \"\"\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf overflow", "defaults:\n  consecutive_failures: 99999999999999999999999\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: " RANGE_CF },
	{ "cf sequence", "defaults:\n  consecutive_failures: [5]\n",
	  "kb.yaml:2:25: defaults: consecutive_failures: expected a scalar" },
	{ "open bounds ok", "defaults: {open_duration: 24h}\n", NULL },
	{ "open zero", "defaults:\n  open_duration: 0s\n",
	  "kb.yaml:2:18: defaults: open_duration: must be between 1ms and 24h" },
	{ "open too long", "defaults:\n  open_duration: 1441m\n",
	  "kb.yaml:2:18: defaults: open_duration: must be between 1ms and 24h" },
	{ "open bare", "defaults:\n  open_duration: 10\n",
	  "kb.yaml:2:18: defaults: open_duration: " BAD_DUR },
	{ "open bare zero", "defaults:\n  open_duration: 0\n",
	  "kb.yaml:2:18: defaults: open_duration: must be between 1ms and 24h" },
	{ "open leading zero", "defaults:\n  open_duration: 0010s\n",
	  "kb.yaml:2:18: defaults: open_duration: " LEADING_ZERO },
	{ "permits zero", "defaults:\n  half_open_permits: 0\n",
	  "kb.yaml:2:22: defaults: half_open_permits: must be an integer between 1 and 100000" },
	{ "permits too big", "defaults:\n  half_open_permits: 100001\n",
	  "kb.yaml:2:22: defaults: half_open_permits: must be an integer between 1 and 100000" },

	/* destinations */
	{ "dsts mapping", "destinations: {}\n", "kb.yaml:1:15: destinations: expected a sequence" },
	{ "dsts scalar", "destinations: payments\n",
	  "kb.yaml:1:15: destinations: expected a sequence" },
	{ "dst scalar", "destinations:\n  - payments\n",
	  "kb.yaml:2:5: destination #1: expected a mapping" },
	{ "dst missing name", "destinations:\n  - host: 10.0.0.1\n    port: 80\n",
	  "kb.yaml:2:5: destination #1: missing required key \"name\"" },
	{ "dst missing host", "destinations:\n  - name: payments\n    port: 80\n",
	  "kb.yaml:2:5: destination \"payments\": missing required key \"host\"" },
	{ "dst missing port", DST "  - name: payments\n    host: 10.0.0.2\n",
	  "kb.yaml:5:5: destination \"payments\": missing required key \"port\"" },
	{ "dst unknown key", DST "    timeout: 1s\n",
	  "kb.yaml:5:5: destination \"a\": unknown key \"timeout\"" },
	{ "dst duplicate key", DST "    port: 81\n", "kb.yaml:5:5: destination \"a\": duplicate key \"port\"" },
	{ "dst name later", "destinations:\n  - port: 0\n    name: late\n",
	  "kb.yaml:2:11: destination \"late\": " PORT_RULE },
	{ "name charset", "destinations:\n  - name: pay/ments\n",
	  "kb.yaml:2:11: destination #1: " NAME_RULE },
	{ "name space", "destinations:\n  - name: \"pay ments\"\n",
	  "kb.yaml:2:11: destination #1: " NAME_RULE },
	{ "name empty", "destinations:\n  - name: \"\"\n", "kb.yaml:2:11: destination #1: " NAME_RULE },
	{ "name 63 ok",
	  "destinations:\n  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
	  "    host: ::1\n    port: 1\n", NULL },
	{ "name 64",
	  "destinations:\n  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  "kb.yaml:2:11: destination #1: " NAME_RULE },
	{ "name number ok", "destinations:\n  - {name: 42, host: \"::1\", port: 1}\n", NULL },
	{ "host name ok", DST "  - name: b\n    host: example.com\n    port: 80\n", NULL },
	{ "host name bad", DST "  - name: b\n    host: exa_mple.com\n    port: 80\n",
	  "kb.yaml:6:11: destination \"b\": " HOST_RULE },
	{ "host brackets", DST "  - name: b\n    host: \"[::1]\"\n    port: 80\n",
	  "kb.yaml:6:11: destination \"b\": " HOST_RULE },
	{ "host short v4", DST "  - name: b\n    host: 10.1\n    port: 80\n",
	  "kb.yaml:6:11: destination \"b\": " HOST_RULE },
	{ "host zone", DST "  - name: b\n    host: fe80::1%eth0\n    port: 80\n",
	  "kb.yaml:6:11: destination \"b\": " HOST_RULE },
	{ "host mapping", DST "  - name: b\n    host: {}\n",
	  "kb.yaml:6:11: destination \"b\": host: expected a scalar" },
	{ "port zero", DST "  - name: b\n    host: ::1\n    port: 0\n",
	  "kb.yaml:7:11: destination \"b\": " PORT_RULE },
	{ "port big", DST "  - name: b\n    host: ::1\n    port: 65536\n",
	  "kb.yaml:7:11: destination \"b\": " PORT_RULE },
	{ "port negative", DST "  - name: b\n    host: ::1\n    port: -1\n",
	  "kb.yaml:7:11: destination \"b\": " PORT_RULE },
	{ "port text", DST "  - name: b\n    host: ::1\n    port: 80a\n",
	  "kb.yaml:7:11: destination \"b\": " PORT_RULE },
	{ "dst override cf", DST "    consecutive_failures: 1000001\n",
	  "kb.yaml:5:27: destination \"a\": consecutive_failures: " RANGE_CF },
	{ "dst override mode", DST "    mode: off\n",
	  "kb.yaml:5:11: destination \"a\": " MODE_RULE },
	{ "dst override open", DST "    open_duration: 25h\n",
	  "kb.yaml:5:20: destination \"a\": open_duration: must be between 1ms and 24h" },
	{ "dst override permits", DST "    half_open_permits: x\n",
	  "kb.yaml:5:24: destination \"a\": half_open_permits: must be an integer between 1 and 100000" },
	{ "duplicate name", DST "  - name: a\n    host: 10.0.0.2\n    port: 80\n",
	  "kb.yaml:5:11: duplicate destination name \"a\"" },
	{ "duplicate name first repeat",
	  "destinations:\n"
	  "  - {name: x, host: \"::1\", port: 1}\n"
	  "  - {name: a, host: \"::1\", port: 2}\n"
	  "  - {name: a, host: \"::1\", port: 3}\n"
	  "  - {name: x, host: \"::1\", port: 4}\n",
	  "kb.yaml:4:12: duplicate destination name \"a\"" },
	{ "duplicate address mapped", DST "  - name: b\n    host: ::ffff:10.0.0.1\n    port: 80\n",
	  "kb.yaml:6:11: destination \"b\": same address and port as destination \"a\"" },
	{ "duplicate address v6", DST
	  "  - {name: b, host: \"2001:db8::1\", port: 80}\n"
	  "  - {name: c, host: \"2001:DB8:0::1\", port: 80}\n",
	  "kb.yaml:6:21: destination \"c\": same address and port as destination \"b\"" },
	{ "same address other port", DST "  - name: b\n    host: 10.0.0.1\n    port: 81\n", NULL },
	{ "same address, one in a namespace",
	  DST "  - {name: b, host: 10.0.0.1, port: 80, netns: /run/netns/x}\n", NULL },
	{ "same address, two namespaces",
	  DST "  - {name: b, host: 10.0.0.1, port: 80, netns: /run/netns/x}\n"
	  "  - {name: c, host: 10.0.0.1, port: 80, netns: /run/netns/y}\n", NULL },
	{ "same address, same namespace",
	  DST "  - {name: b, host: 10.0.0.1, port: 80, netns: /run/netns/x}\n"
	  "  - {name: c, host: 10.0.0.1, port: 80, netns: /run/netns/x}\n",
	  "kb.yaml:6:21: destination \"c\": same address and port as destination \"b\"" },
	{ "netns relative", DST "    netns: run/netns/x\n",
	  "kb.yaml:5:12: destination \"a\": netns: must be an absolute path" },

	/* issue 4: policy keys */
	{ "mode disabled", "defaults:\n  mode: disabled\n", NULL },
	{ "mode forced_open", DST "    mode: forced_open\n", NULL },
	{ "frt bounds ok", "defaults: {failure_rate_threshold: 100}\n", NULL },
	{ "frt zero off", "defaults: {failure_rate_threshold: 0}\n", NULL },
	{ "frt 101", "defaults:\n  failure_rate_threshold: 101\n",
	  "kb.yaml:2:27: defaults: failure_rate_threshold: must be an integer between 0 and 100" },
	{ "frt percent sign", "defaults:\n  failure_rate_threshold: 50%\n",
	  "kb.yaml:2:27: defaults: failure_rate_threshold: must be an integer between 0 and 100" },
	{ "window_type bad", "defaults:\n  window_type: sliding\n",
	  "kb.yaml:2:16: defaults: window_type: must be \"count\" or \"time\"" },
	{ "window count 1000", "defaults: {window_type: count, window_size: 1000}\n", NULL },
	{ "window count 1001", "defaults:\n  window_type: count\n  window_size: 1001\n",
	  "kb.yaml:3:16: defaults: " WSIZE_COUNT },
	{ "window count default type 1001", "defaults:\n  window_size: 1001\n",
	  "kb.yaml:2:16: defaults: " WSIZE_COUNT },
	{ "window time 3600", "defaults: {window_type: time, window_size: 3600}\n", NULL },
	{ "window time 1h", "defaults: {window_type: time, window_size: 1h}\n", NULL },
	{ "window time 60s", "defaults: {window_size: 60s, window_type: time}\n", NULL },
	{ "window count duration", "defaults:\n  window_size: 60s\n",
	  "kb.yaml:2:16: defaults: window_size: a duration needs window_type: time" },
	{ "window 3601", "defaults:\n  window_size: 3601\n", "kb.yaml:2:16: defaults: " WSIZE_RULE },
	{ "window 0", "defaults:\n  window_size: 0\n", "kb.yaml:2:16: defaults: " WSIZE_RULE },
	{ "window fraction of s", "defaults:\n  window_size: 1500ms\n",
	  "kb.yaml:2:16: defaults: " WSIZE_RULE },
	{ "window 2h", "defaults:\n  window_size: 2h\n", "kb.yaml:2:16: defaults: " WSIZE_RULE },
	{ "window 0s", "defaults:\n  window_size: 0s\n", "kb.yaml:2:16: defaults: " WSIZE_RULE },
	{ "window time 010s", "defaults:\n  window_type: time\n  window_size: 010s\n",
	  "kb.yaml:3:16: defaults: " WSIZE_RULE },
	{ "window dst size, defaults type", DST "    window_size: 2000\n"
	  "defaults: {window_type: time}\n", NULL },
	{ "window dst type count, defaults size", DST "    window_type: count\n"
	  "defaults: {window_type: time, window_size: 2000}\n",
	  "kb.yaml:5:18: destination \"a\": " WSIZE_COUNT },
	{ "window dst type count, defaults duration", DST "    window_type: count\n"
	  "defaults: {window_type: time, window_size: 30s}\n",
	  "kb.yaml:5:18: destination \"a\": window_size: a duration needs window_type: time" },
	{ "minimum_calls 0", "defaults:\n  minimum_calls: 0\n",
	  "kb.yaml:2:18: defaults: minimum_calls: must be an integer between 1 and 1000000" },
	{ "slow duration ok", "defaults: {slow_call_duration_threshold: 500ms}\n", NULL },
	{ "slow duration 0", "defaults:\n  slow_call_duration_threshold: 0ms\n",
	  "kb.yaml:2:33: defaults: slow_call_duration_threshold: must be between 1ms and 1h" },
	{ "slow rate 101", "defaults:\n  slow_call_rate_threshold: 101\n",
	  "kb.yaml:2:29: defaults: slow_call_rate_threshold: must be an integer between 0 and 100" },
	{ "failures ok", "defaults: {failures: [refused, reset]}\n", NULL },
	{ "failures empty", "defaults: {failures: []}\n", NULL },
	{ "failures null", "defaults: {failures: }\n", NULL },
	{ "failures scalar", "defaults:\n  failures: refused\n",
	  "kb.yaml:2:13: defaults: failures: expected a sequence" },
	{ "failures unknown", "defaults:\n  failures: [refused, cancelled]\n",
	  "kb.yaml:2:23: defaults: failures: unknown result \"cancelled\", expected " FAIL_NAMES },
	{ "failures twice", "defaults:\n  failures: [timeout, timeout]\n",
	  "kb.yaml:2:23: defaults: failures: \"timeout\" listed twice" },
	{ "failures nested", "defaults:\n  failures: [[refused]]\n",
	  "kb.yaml:2:14: defaults: failures: expected a list of " FAIL_NAMES },
	{ "max_open ok", "defaults: {open_duration: 1s, max_open_duration: 5m}\n", NULL },
	{ "max_open 0 off", "defaults: {max_open_duration: 0s}\n", NULL },
	{ "max_open equal", "defaults: {max_open_duration: 10s}\n", NULL },
	{ "max_open shorter", "defaults:\n  max_open_duration: 5s\n",
	  "kb.yaml:2:22: defaults: max_open_duration: must not be shorter than open_duration (10s)" },
	{ "max_open shorter than dst open", DST "    open_duration: 2m\n"
	  "defaults: {max_open_duration: 1m}\n",
	  "kb.yaml:5:20: destination \"a\": max_open_duration: must not be shorter than "
	  "open_duration (2m)" },
	{ "max_open 25h", "defaults:\n  max_open_duration: 25h\n",
	  "kb.yaml:2:22: defaults: max_open_duration: must be between 0s and 24h" },
	{ "jitter 100", "defaults: {jitter: 100}\n", NULL },
	{ "jitter 101", "defaults:\n  jitter: 101\n",
	  "kb.yaml:2:11: defaults: jitter: must be an integer between 0 and 100" },
	{ "successes ok", "defaults: {half_open_permits: 5, half_open_successes: 5}\n", NULL },
	{ "successes 0", "defaults:\n  half_open_successes: 0\n",
	  "kb.yaml:2:24: defaults: half_open_successes: must be an integer between 1 and 100000" },
	{ "successes above permits", "defaults:\n  half_open_successes: 4\n",
	  "kb.yaml:2:24: defaults: half_open_successes: must not exceed half_open_permits (3)" },
	{ "successes above dst permits", DST "    half_open_permits: 1\n"
	  "defaults: {half_open_successes: 2}\n",
	  "kb.yaml:5:24: destination \"a\": half_open_successes: must not exceed "
	  "half_open_permits (1)" },
	{ "max_half_open ok", "defaults: {max_half_open_duration: 30s, recovery_ramp: 1m}\n", NULL },
	{ "off as a bare 0", "defaults: {max_open_duration: 0, max_half_open_duration: 0, "
	  "recovery_ramp: 0}\n", NULL },
	{ "slow duration bare 0", "defaults:\n  slow_call_duration_threshold: 0\n",
	  "kb.yaml:2:33: defaults: slow_call_duration_threshold: must be between 1ms and 1h" },
	{ "max_half_open bare", "defaults:\n  max_half_open_duration: 30\n",
	  "kb.yaml:2:27: defaults: max_half_open_duration: " BAD_DUR },
	{ "recovery_ramp 25h", "defaults:\n  recovery_ramp: 25h\n",
	  "kb.yaml:2:18: defaults: recovery_ramp: must be between 0s and 24h" },

	/* issue 4: hosts, ports, groups */
	{ "cidr v4", DST "  - {name: b, host: 10.0.0.0/8, port: 80}\n", NULL },
	{ "cidr v6", DST "  - {name: b, host: \"fd00::/8\", port: 80}\n", NULL },
	{ "cidr host bits", DST "  - {name: b, host: 10.0.0.1/8, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": host: address has bits set after the prefix length" },
	{ "cidr too long", DST "  - {name: b, host: 10.0.0.0/33, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " CIDR_RULE },
	{ "cidr empty length", DST "  - {name: b, host: 10.0.0.0/, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " CIDR_RULE },
	{ "cidr name", DST "  - {name: b, host: example.com/8, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " CIDR_RULE },
	{ "dns name", DST "  - {name: b, host: db-1.Internal, port: any}\n", NULL },
	{ "dns single label", DST "  - {name: b, host: localhost, port: 80}\n", NULL },
	{ "dns leading hyphen", DST "  - {name: b, host: -db.internal, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " HOST_RULE },
	{ "dns trailing hyphen", DST "  - {name: b, host: db-.internal, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " HOST_RULE },
	{ "dns empty label", DST "  - {name: b, host: db..internal, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " HOST_RULE },
	{ "dns trailing dot", DST "  - {name: b, host: db.internal., port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " HOST_RULE },
	{ "dns numeric tld", DST "  - {name: b, host: 10.1.2, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": " HOST_RULE },
	{ "port any", DST "  - {name: b, host: 10.0.0.1, port: any}\n", NULL },
	{ "port Any", DST "  - {name: b, host: 10.0.0.1, port: Any}\n",
	  "kb.yaml:5:37: destination \"b\": " PORT_RULE },
	{ "per_address cidr", DST "  - {name: b, host: 10.0.0.0/24, port: 80, per_address: true,"
	  " max_open_percent: 50}\n",
	  "kb.yaml:5:57: destination \"b\": per_address: needs a host that is a DNS name" },
	{ "per_address name max_open_percent", DST "  - {name: b, host: db.internal, port: 80,"
	  " per_address: true, max_open_percent: 50}\n", NULL },
	{ "per_address name", DST "  - {name: b, host: db.internal, port: 80, per_address: false}\n",
	  NULL },
	{ "per_address address", DST "    per_address: true\n",
	  "kb.yaml:5:18: destination \"a\": per_address: needs a host that is a DNS name" },
	{ "per_address yes", DST "    per_address: yes\n",
	  "kb.yaml:5:18: destination \"a\": per_address: must be true or false" },
	{ "max_open_percent 0", DST "    max_open_percent: 0\n",
	  "kb.yaml:5:23: destination \"a\": max_open_percent: must be an integer between 1 and 100" },
	{ "max_open_percent without per_address", DST "  - {name: b, host: 10.0.0.0/24, port: 80,"
	  " max_open_percent: 50}\n",
	  "kb.yaml:5:62: destination \"b\": " MOP_RULE },
	{ "max_open_percent per_address false", DST "  - {name: b, host: 10.0.0.0/24, port: 80,"
	  " per_address: false, max_open_percent: 50}\n",
	  "kb.yaml:5:82: destination \"b\": " MOP_RULE },
	{ "max_open_percent in defaults", "defaults:\n  max_open_percent: 50\n",
	  "kb.yaml:2:3: defaults: unknown key \"max_open_percent\"" },
	{ "duplicate cidr", DST "  - {name: b, host: 10.0.0.0/8, port: 80}\n"
	  "  - {name: c, host: \"::ffff:10.0.0.0/104\", port: 80}\n",
	  "kb.yaml:6:21: destination \"c\": same address and port as destination \"b\"" },
	{ "cidr /32 is the address", DST "  - {name: b, host: 10.0.0.1/32, port: 80}\n",
	  "kb.yaml:5:21: destination \"b\": same address and port as destination \"a\"" },
	{ "nested cidrs ok", DST "  - {name: b, host: 10.0.0.0/8, port: 80}\n"
	  "  - {name: c, host: 10.0.0.0/16, port: 80}\n", NULL },
	{ "duplicate dns name", DST "  - {name: b, host: db.internal, port: 80}\n"
	  "  - {name: c, host: DB.internal, port: 80}\n",
	  "kb.yaml:6:21: destination \"c\": same host name and port as destination \"b\"" },
	{ "dns name other port", DST "  - {name: b, host: db.internal, port: 80}\n"
	  "  - {name: c, host: db.internal, port: any}\n", NULL },

	/* issue 4: top-level keys */
	{ "resolve ok", "resolve_interval: 1m\n", NULL },
	{ "failopen ok", "failopen_after: 2s\n", NULL },
	{ "fastopen ignore", "fastopen_connect: ignore\n", NULL },
	{ "fastopen bool", "fastopen_connect: false\n",
	  "kb.yaml:1:19: fastopen_connect: must be \"allow\" or \"ignore\"" },
	{ "failopen 1s", "failopen_after: 1s\n",
	  "kb.yaml:1:17: failopen_after: must be between 2s and 1h" },
	{ "failopen 2h", "failopen_after: 2h\n",
	  "kb.yaml:1:17: failopen_after: must be between 2s and 1h" },
	{ "resolve 500ms", "resolve_interval: 500ms\n",
	  "kb.yaml:1:19: resolve_interval: must be between 1s and 24h" },
	{ "max_destinations 0", "max_destinations: 0\n",
	  "kb.yaml:1:19: max_destinations: must be an integer between 1 and 1048576" },
	{ "max_destinations big", "max_destinations: 1048577\n",
	  "kb.yaml:1:19: max_destinations: must be an integer between 1 and 1048576" },
	{ "max_destinations later", DST "  - {name: b, host: 10.0.0.2, port: 80}\n"
	  "max_destinations: 1\n",
	  "kb.yaml:2:3: destinations: more than 1 entries (max_destinations)" },
	{ "max_destinations enough", DST "max_destinations: 1\n", NULL },
	{ "max_destinations bad, dsts first", DST "  - {name: b, host: 10.0.0.2, port: 80}\n"
	  "max_destinations: x\n",
	  "kb.yaml:6:19: max_destinations: must be an integer between 1 and 1048576" },

	/* issue 15: workloads: */
	{ "workloads empty mapping", "workloads: {}\n", NULL },
	{ "workloads bounds low", "workloads:\n  depth: 1\n  max: 1\n", NULL },
	{ "workloads bounds high", "workloads: {depth: 16, max: 1000}\n", NULL },
	{ "workloads null", "workloads:\n", "kb.yaml:1:11: " WL_MAP },
	{ "workloads tilde", "workloads: ~\n", "kb.yaml:1:12: " WL_MAP },
	{ "workloads scalar", "workloads: on\n", "kb.yaml:1:12: " WL_MAP },
	{ "workloads sequence", "workloads: [depth]\n", "kb.yaml:1:12: " WL_MAP },
	{ "workloads depth 0", "workloads:\n  depth: 0\n", "kb.yaml:2:10: " WL_DEPTH },
	{ "workloads depth 17", "workloads:\n  depth: 17\n", "kb.yaml:2:10: " WL_DEPTH },
	{ "workloads depth text", "workloads:\n  depth: two\n", "kb.yaml:2:10: " WL_DEPTH },
	{ "workloads depth negative", "workloads: {depth: -1}\n", "kb.yaml:1:20: " WL_DEPTH },
	{ "workloads depth null", "workloads:\n  depth:\n", "kb.yaml:2:9: " WL_DEPTH },
	{ "workloads depth mapping", "workloads:\n  depth: {}\n",
	  "kb.yaml:2:10: workloads: depth: expected a scalar" },
	{ "workloads max 0", "workloads:\n  max: 0\n", "kb.yaml:2:8: " WL_MAX },
	{ "workloads max 1001", "workloads:\n  depth: 2\n  max: 1001\n", "kb.yaml:3:8: " WL_MAX },
	{ "workloads max zero-led", "workloads:\n  max: 050\n", "kb.yaml:2:8: " WL_MAX },
	{ "workloads unknown key", "workloads:\n  depth: 2\n  levels: 3\n",
	  "kb.yaml:3:3: workloads: unknown key \"levels\"" },
	{ "workloads duplicate key", "workloads:\n  max: 2\n  max: 3\n",
	  "kb.yaml:3:3: workloads: duplicate key \"max\"" },
	{ "workloads twice", "workloads: {}\nworkloads: {}\n",
	  "kb.yaml:2:1: duplicate key \"workloads\"" },
	{ "workloads in defaults", "defaults:\n  workloads: {}\n",
	  "kb.yaml:2:3: defaults: unknown key \"workloads\"" },

	/* issue 15: breaker: */
	{ "breaker shared", DST "    breaker: shared\n", NULL },
	{ "breaker per_workload", DST PW "workloads: {}\n", NULL },
	{ "breaker per_workload, workloads first", "workloads: {depth: 2}\n" DST PW, NULL },
	{ "breaker bad", DST "    breaker: per_address\n", "kb.yaml:5:14: " BREAKER_A },
	{ "breaker case", DST "    breaker: Shared\n", "kb.yaml:5:14: " BREAKER_A },
	{ "breaker bool", DST "    breaker: true\n", "kb.yaml:5:14: " BREAKER_A },
	{ "breaker empty", DST "    breaker: \"\"\n", "kb.yaml:5:14: " BREAKER_A },
	{ "breaker sequence", DST "    breaker: [shared]\n",
	  "kb.yaml:5:14: destination \"a\": breaker: expected a scalar" },
	{ "breaker in defaults", "defaults:\n  breaker: shared\n",
	  "kb.yaml:2:3: defaults: unknown key \"breaker\"" },
	{ "per_workload without workloads", DST PW, "kb.yaml:5:14: destination \"a\": " PW_OFF },
	{ "per_workload without workloads, second", DST "  - name: b\n    host: 10.0.0.2\n"
	  "    port: 80\n" PW, "kb.yaml:8:14: destination \"b\": " PW_OFF },
	{ "per_workload and per_address",
	  "workloads: {}\ndestinations:\n"
	  "  - {name: b, host: db.internal, port: 80, per_address: true, breaker: per_workload}\n",
	  "kb.yaml:3:72: destination \"b\": breaker: per_workload cannot be combined with "
	  "per_address: true" },
	{ "per_workload and per_address false", "workloads: {}\ndestinations:\n"
	  "  - {name: b, host: db.internal, port: 80, per_address: false, breaker: per_workload}\n",
	  NULL },
	{ "per_workload cidr", "workloads: {}\ndestinations:\n"
	  "  - {name: b, host: 10.0.0.0/8, port: any, breaker: per_workload}\n", NULL },
	{ "max_open_percent with per_workload", DST PW "    max_open_percent: 20\nworkloads: {}\n",
	  NULL },
	{ "max_open_percent with shared", DST "    breaker: shared\n    max_open_percent: 20\n",
	  "kb.yaml:6:23: destination \"a\": " MOP_RULE },
	{ "slots exactly max_destinations", "max_destinations: 51\nworkloads: {}\n" DST PW, NULL },
	{ "slots one past max_destinations", "max_destinations: 51\nworkloads: {}\n" DST PW
	  "  - {name: b, host: 10.0.0.2, port: 80}\n",
	  "kb.yaml:7:14: destination \"a\": " SLOTS "52 breaker slots, more than "
	  "max_destinations (51); each per_workload one takes workloads: max + 1 (51)" },
	{ "slots first exceeded at the second",
	  "workloads: {max: 1}\nmax_destinations: 4\ndestinations:\n"
	  "  - {name: a, host: 10.0.0.1, port: 80, breaker: per_workload}\n"
	  "  - {name: b, host: 10.0.0.2, port: 80, breaker: per_workload}\n"
	  "  - {name: c, host: 10.0.0.3, port: 80, breaker: per_workload}\n",
	  "kb.yaml:5:50: destination \"b\": " SLOTS "6 breaker slots, more than "
	  "max_destinations (4); each per_workload one takes workloads: max + 1 (2)" },
	{ "slots default max_destinations", "workloads: {max: 1000}\ndestinations:\n"
	  "  - {name: a, host: 10.0.0.1, port: 80, breaker: per_workload}\n", NULL },
	/* A per_address name's addresses are known at run time only: one slot here. */
	{ "slots per_address name counts one", "max_destinations: 3\nworkloads: {max: 1}\n"
	  "destinations:\n"
	  "  - {name: a, host: 10.0.0.1, port: 80, breaker: per_workload}\n"
	  "  - {name: b, host: db.internal, port: 80, per_address: true}\n", NULL },

	/* hostile input */
	{ "anchor", "defaults: &d\n  mode: observe\n", "kb.yaml:1:11: " ALIAS },
	{ "anchor scalar", "poll_interval: &p 1s\n", "kb.yaml:1:16: " ALIAS },
	{ "alias", "poll_interval: *p\n", "kb.yaml:1:16: " ALIAS },
	{ "merge key", "destinations:\n  - <<: {name: a}\n", "kb.yaml:2:5: destination #1: unknown key \"<<\"" },
	{ "NUL escape", DST "  - name: \"b\\0c\"\n", "kb.yaml:5:11: NUL characters are not allowed" },
	{ "bad UTF-8", "poll_interval: 1s\nlisten: \xff\n", "kb.yaml:2:9: invalid leading UTF-8 octet" },
	{ "bad UTF-8 after BOM and CRLF", "\xef\xbb\xbfpoll_interval: 1s\r\ncgroup: /\xc3\xa9\xc3\r\n",
	  "kb.yaml:2:12: invalid trailing UTF-8 octet" },
	{ "control character", "cgroup: /a\x01\n", "kb.yaml:1:11: control characters are not allowed" },
	{ "UTF-16", "\xfe\xff\x4e\x4e", "kb.yaml:1:1: only UTF-8 is supported" },
	{ "UTF-8 ok", "\xef\xbb\xbf# caf\xc3\xa9\ncgroup: /sys/fs/cgroup/caf\xc3\xa9\n", NULL },
};

static void test_cases(void **state)
{
	int bad = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		bad += try_case(cases[i].name, cases[i].yaml, strlen(cases[i].yaml), cases[i].want_err);
	if (bad)
		fail_msg("%d of %zu cases failed", bad, ARRAY_SIZE(cases));
}

/* Inputs a string literal cannot hold: NUL bytes, and sizes at the limits. */
static void test_generated(void **state)
{
	static const char nul[] = "poll_interval: 1s\nlisten: 1\0\n";
	size_t big = 16384 + 1, i;
	char want[CONFIG_ERR_MAX];
	char *s, *p;

	expect_err("NUL byte", nul, sizeof(nul) - 1, "kb.yaml:2:10: NUL bytes are not allowed");

	s = calloc(1, CONFIG_MAX_FILE_BYTES + 2);
	assert_non_null(s);

	memset(s, ' ', CONFIG_MAX_FILE_BYTES + 1);
	expect_err("buffer too big", s, CONFIG_MAX_FILE_BYTES + 1, "kb.yaml: file is larger than 1 MiB");

	/* 40 nested flow sequences: refused at the 33rd. */
	memset(s, 0, CONFIG_MAX_FILE_BYTES + 2);
	p = s + sprintf(s, "cgroup: ");
	for (i = 0; i < 40; i++)
		*p++ = '[';
	for (i = 0; i < 40; i++)
		*p++ = ']';
	expect_err("deep nesting", s, strlen(s), "kb.yaml:1:40: nesting deeper than 32 levels");

	/* Cheap to write, so it must be refused before anything is allocated per entry. */
	p = s + sprintf(s, "destinations: [");
	for (i = 0; i < big; i++)
		p += sprintf(p, "{},");
	strcpy(p, "]\n");
	expect_err("too many destinations", s, strlen(s),
		   "kb.yaml:1:15: destinations: more than 16384 entries (max_destinations)");

	p = s + sprintf(s, "cgroup: /");
	memset(p, 'a', CONFIG_PATH_MAX - 2);
	strcpy(p + CONFIG_PATH_MAX - 2, "\n");
	expect_err("cgroup 4095", s, strlen(s), NULL);
	strcpy(p + CONFIG_PATH_MAX - 2, "a\n");
	expect_err("cgroup 4096", s, strlen(s), "kb.yaml:1:9: cgroup: longer than 4095 characters");

	p = s + sprintf(s, DST "  - name: b\n    host: 10.0.0.9\n    port: 80\n    netns: /");
	memset(p, 'n', CONFIG_NETNS_MAX - 1);
	strcpy(p + CONFIG_NETNS_MAX - 1, "\n");
	expect_err("netns 256", s, strlen(s),
		   "kb.yaml:8:12: destination \"b\": netns: longer than 255 characters");

	p = s + sprintf(s, DST "  - name: b\n    host: ");
	memset(p, '1', CONFIG_HOST_MAX);
	strcpy(p + CONFIG_HOST_MAX, "\n");
	expect_err("host 256", s, strlen(s),
		   "kb.yaml:6:11: destination \"b\": host: longer than 255 characters");

	/* Long names are not echoed: the message cannot outgrow CONFIG_ERR_MAX. */
	p = s + sprintf(s, "destinations:\n  - name: ");
	memset(p, 'n', 1000);
	strcpy(p + 1000, "\n");
	snprintf(want, sizeof(want), "kb.yaml:2:11: destination #1: %s", NAME_RULE);
	expect_err("name 1000", s, strlen(s), want);
	free(s);
}

/* On error cfg is empty even when it held a config or the error came late. */
static void test_error_leaves_cfg_empty(void **state)
{
	static const char late[] = DST "  - name: b\n    host: 10.0.0.2\n    port: 0\n";
	struct config cfg;
	char err[CONFIG_ERR_MAX], small[8];

	assert_int_equal(config_parse(&cfg, "kb.yaml", full_yaml, strlen(full_yaml), err,
				      sizeof(err)), 0);
	config_free(&cfg);
	assert_int_equal(config_parse(&cfg, "kb.yaml", late, strlen(late), err, sizeof(err)), -EINVAL);
	assert_null(cfg.dsts);
	assert_int_equal(cfg.n_dsts, 0);
	check_eq("after error", cfg.listen_port, 9877);
	config_free(&cfg);

	/* A short buffer truncates; no buffer at all is allowed. */
	assert_int_equal(config_parse(&cfg, "kb.yaml", late, strlen(late), small, sizeof(small)),
			 -EINVAL);
	assert_string_equal(small, "kb.yaml");
	assert_int_equal(config_parse(&cfg, "kb.yaml", late, strlen(late), NULL, 0), -EINVAL);
	config_free(&cfg);
}

static void test_durations(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t ns;
	} cases_d[] = {
		{ "0ms", 0, 0 },
		{ "1ms", 0, MS },
		{ "100ms", 0, 100 * MS },
		{ "10s", 0, 10 * SEC },
		{ "5m", 0, 5 * MIN },
		{ "1h", 0, HOUR },
		{ "0", 0, 0 },
		{ "0s", 0, 0 },
		{ "0h", 0, 0 },
		{ "007s", -EINVAL, 0 },
		{ "0010s", -EINVAL, 0 },
		{ "00s", -EINVAL, 0 },
		{ "00", -EINVAL, 0 },
		{ "01", -EINVAL, 0 },
		{ "0x", -EINVAL, 0 },
		{ "10", -EINVAL, 0 },
		{ "100", -EINVAL, 0 },
		{ "18446744073709ms", 0, 18446744073709ULL * MS },
		{ "5124095h", 0, 5124095ULL * HOUR },
		{ "18446744073710ms", -ERANGE, 0 },
		{ "5124096h", -ERANGE, 0 },
		{ "18446744073709551616s", -ERANGE, 0 },
		{ "99999999999999999999999999ms", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "ms", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "+1s", -EINVAL, 0 },
		{ " 1s", -EINVAL, 0 },
		{ "1s ", -EINVAL, 0 },
		{ "1 s", -EINVAL, 0 },
		{ "1S", -EINVAL, 0 },
		{ "1us", -EINVAL, 0 },
		{ "1ns", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },
		{ "1hh", -EINVAL, 0 },
		{ "1m1s", -EINVAL, 0 },
		{ "0x10s", -EINVAL, 0 },
		{ "99999999999999999999999x", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases_d); i++) {
		uint64_t ns = 12345;
		int ret = duration_parse(cases_d[i].in, &ns);

		check_int(cases_d[i].in, ret, cases_d[i].ret);
		check_eq(cases_d[i].in, ns, cases_d[i].ret ? 12345 : cases_d[i].ns);
	}
	assert_int_equal(duration_parse(NULL, NULL), -EINVAL);
}

/* A bare 0 turns a duration off where 0 is in range, overriding defaults: that set it. */
static void test_bare_zero(void **state)
{
	static const char yaml[] =
		"defaults: {max_open_duration: 5m, max_half_open_duration: 30s, recovery_ramp: 1m}\n"
		"destinations:\n"
		"  - {name: a, host: 10.0.0.1, port: 80, max_open_duration: 0,\n"
		"     max_half_open_duration: 0, recovery_ramp: 0}\n";
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	if (config_parse(&cfg, "kb.yaml", yaml, strlen(yaml), err, sizeof(err)))
		fail_msg("%s", err);
	check_eq("defaults max_open", cfg.defaults.max_open_duration_ns, 5 * MIN);
	check_eq("a max_open", cfg.dsts[0].policy.max_open_duration_ns, 0);
	check_eq("a max_half_open", cfg.dsts[0].policy.max_half_open_duration_ns, 0);
	check_eq("a recovery_ramp", cfg.dsts[0].policy.recovery_ramp_ns, 0);
	config_free(&cfg);
}

static void test_addresses(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint8_t addr[16];
	} cases_a[] = {
		{ "127.0.0.1", 0, { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 } },
		{ "::ffff:127.0.0.1", 0, { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 } },
		{ "::FFFF:7f00:1", 0, { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 } },
		{ "0.0.0.0", 0, { [10] = 0xff, [11] = 0xff } },
		{ "255.255.255.255", 0, { [10] = 0xff, [11] = 0xff, 255, 255, 255, 255 } },
		{ "::1", 0, { [15] = 1 } },
		{ "::", 0, { 0 } },
		{ "2001:db8::1", 0, { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } },
		{ "fe80::1:2", 0, { 0xfe, 0x80, [13] = 1, [15] = 2 } },
		{ "::127.0.0.1", 0, { [12] = 127, 0, 0, 1 } },	/* compatible, not mapped */
		{ "", -EINVAL, { 0 } },
		{ "localhost", -EINVAL, { 0 } },
		{ "1.2.3", -EINVAL, { 0 } },
		{ "1.2.3.4.5", -EINVAL, { 0 } },
		{ "256.1.1.1", -EINVAL, { 0 } },
		{ "01.2.3.4", -EINVAL, { 0 } },
		{ "0x7f.0.0.1", -EINVAL, { 0 } },
		{ " 1.2.3.4", -EINVAL, { 0 } },
		{ "1.2.3.4 ", -EINVAL, { 0 } },
		{ "[::1]", -EINVAL, { 0 } },
		{ "fe80::1%lo", -EINVAL, { 0 } },
		{ "1::2::3", -EINVAL, { 0 } },
		{ "12345::1", -EINVAL, { 0 } },
	};
	static const uint8_t untouched[16] = { 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
					       0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases_a); i++) {
		uint8_t addr[16];

		memset(addr, 0xaa, sizeof(addr));
		check_int(cases_a[i].in, addr_parse(cases_a[i].in, addr), cases_a[i].ret);
		if (memcmp(addr, cases_a[i].ret ? untouched : cases_a[i].addr, 16))
			fail_msg("%s: wrong address bytes", cases_a[i].in);
	}
}

/* A temp file of len bytes: a valid config padded with a comment. */
static void write_file(const char *path, size_t len)
{
	static const char head[] = "poll_interval: 1s\n#";
	char *buf = malloc(len);
	int fd;

	assert_non_null(buf);
	memset(buf, 'x', len);
	memcpy(buf, head, sizeof(head) - 1);
	buf[len - 1] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
}

static void test_load(void **state)
{
	char dir[] = "/tmp/kb-test-config-XXXXXX";
	char path[256], want[CONFIG_ERR_MAX], err[CONFIG_ERR_MAX];
	struct config cfg;

	assert_non_null(mkdtemp(dir));

	snprintf(path, sizeof(path), "%s/missing.yaml", dir);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_null(cfg.dsts);
	config_free(&cfg);

	assert_int_equal(config_load(&cfg, dir, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: Is a directory", dir);
	assert_string_equal(err, want);

	snprintf(path, sizeof(path), "%s/max.yaml", dir);
	write_file(path, CONFIG_MAX_FILE_BYTES);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	check_eq("max size", cfg.poll_interval_ns, SEC);
	config_free(&cfg);

	write_file(path, CONFIG_MAX_FILE_BYTES + 1);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -EFBIG);
	snprintf(want, sizeof(want), "%s: file is larger than 1 MiB", path);
	assert_string_equal(err, want);
	assert_null(cfg.dsts);

	/* netns: the namespace file's inode, or the file, line and column of a bad one. */
	static const struct {
		const char *netns, *why;
	} ns[] = {
		{ "/proc/self/ns/net", NULL },
		{ "/proc/self/ns/kb-none", "No such file or directory" },
		{ "/proc/self/status", "not a namespace file (want /run/netns/NAME or /proc/PID/ns/net)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ns); i++) {
		struct stat st;
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fprintf(f, "destinations:\n  - {name: a, host: 10.0.0.1, port: 80, netns: %s}\n",
			ns[i].netns);
		fclose(f);
		if (!ns[i].why) {
			assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
			assert_int_equal(stat(ns[i].netns, &st), 0);
			check_eq(ns[i].netns, cfg.dsts[0].netns_ino, (uint32_t)st.st_ino);
			config_free(&cfg);
			continue;
		}
		assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -EINVAL);
		snprintf(want, sizeof(want), "%s:2:48: destination \"a\": netns: %s: %s", path,
			 ns[i].netns, ns[i].why);
		check_str(ns[i].netns, err, want);
		assert_null(cfg.dsts);
	}

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* want: "..." and as much of path's tail as fits before text in CONFIG_ERR_MAX - 1 bytes. */
static void cut_path(char *want, const char *path, const char *text)
{
	size_t room = CONFIG_ERR_MAX - 1 - strlen(text) - 3;

	snprintf(want, CONFIG_ERR_MAX, "...%s%s", path + strlen(path) - room, text);
}

/*
 * A path too long for the message with it keeps its tail, after "...": the
 * line, column and message survive whole (they were lost to the path).
 */
static void test_long_path(void **state)
{
	static const char bad[] = "poll_interval: 0s\n";
	static const char text[] = ":1:16: poll_interval: must be between 1ms and 1h";
	char dir[] = "/tmp/kb-test-config-XXXXXX";
	char path[700], want[CONFIG_ERR_MAX], err[CONFIG_ERR_MAX], comp[201];
	struct config cfg;
	FILE *f;

	memset(comp, 'd', sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s/%s/%s/kb.yaml", dir, comp, comp, comp);
	check_eq("path length", strlen(path) > 600, 1);

	/* The parser's file:line:col. */
	assert_int_equal(config_parse(&cfg, path, bad, strlen(bad), err, sizeof(err)), -EINVAL);
	cut_path(want, path, text);
	check_str("parse", err, want);
	check_eq("parse length", strlen(err), CONFIG_ERR_MAX - 1);

	/* A path of multi-byte characters is not cut inside one. */
	{
		char wide[601];

		for (size_t i = 0; i < 600; i += 2)
			memcpy(wide + i, "\xc3\xa9", 2);
		wide[600] = '\0';
		assert_int_equal(config_parse(&cfg, wide, bad, strlen(bad), err, sizeof(err)),
				 -EINVAL);
		check_eq("utf-8 cut", !strncmp(err, "...\xc3\xa9", 5), 1);
		check_str("utf-8 text", err + strlen(err) - strlen(text), text);
	}

	/* config_load()'s own messages: a missing file, a bad netns. */
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -ENOENT);
	cut_path(want, path, ": No such file or directory");
	check_str("missing", err, want);

	for (char *slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		assert_int_equal(mkdir(path, 0700), 0);
		*slash = '/';
		if (!strcmp(slash, "/kb.yaml"))
			break;
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("destinations:\n  - {name: a, host: 10.0.0.1, port: 80, netns: /proc/self/status}\n", f);
	fclose(f);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	cut_path(want, path, ":2:48: destination \"a\": netns: /proc/self/status: not a namespace "
		 "file (want /run/netns/NAME or /proc/PID/ns/net)");
	check_str("netns", err, want);

	assert_int_equal(unlink(path), 0);
	for (char *slash = strrchr(path, '/'); slash > path + strlen(dir); slash = strrchr(path, '/')) {
		*slash = '\0';
		assert_int_equal(rmdir(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

static void test_fixture_valid(void **state)
{
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	if (config_load(&cfg, "tests/data/valid.yaml", err, sizeof(err)))
		fail_msg("%s", err);
	check_str("valid", cfg.listen_host, "::1");
	check_eq("valid", cfg.listen_port, 9877);
	check_str("valid", cfg.cgroup, "/sys/fs/cgroup/kbreaker.slice");
	check_eq("valid", cfg.poll_interval_ns, 50 * MS);
	check_policy("defaults", &cfg.defaults, MODE_ENFORCE, 10, 30 * SEC, 2);
	assert_int_equal(cfg.n_dsts, 2);
	check_str("payments", cfg.dsts[0].name, "payments");
	check_eq("payments", cfg.dsts[0].port, 8080);
	check_policy("payments", &cfg.dsts[0].policy, MODE_ENFORCE, 3, 30 * SEC, 2);
	check_str("search", cfg.dsts[1].name, "search");
	assert_memory_equal(cfg.dsts[1].addr, v6, 16);
	check_policy("search", &cfg.dsts[1].policy, MODE_OBSERVE, 10, 2 * MIN, 2);
	config_free(&cfg);
}

static void test_fixture_errors(void **state)
{
	static const struct {
		const char *path;
		const char *want_err;
	} fixtures[] = {
		{ "tests/data/bad-port.yaml",
		  "tests/data/bad-port.yaml:5:11: destination \"payments\": port: "
		  "must be an integer between 1 and 65535 or \"any\"" },
		{ "tests/data/dup-address.yaml",
		  "tests/data/dup-address.yaml:7:11: destination \"payments-v6\": "
		  "same address and port as destination \"payments\"" },
		{ "tests/data/missing-port.yaml",
		  "tests/data/missing-port.yaml:4:5: destination \"payments\": "
		  "missing required key \"port\"" },
		{ "tests/data/bad-window.yaml",
		  "tests/data/bad-window.yaml:8:18: destination \"payments\": window_size: a duration "
		  "needs window_type: time" },
		{ "tests/data/bad-cidr.yaml",
		  "tests/data/bad-cidr.yaml:3:11: destination \"payments\": host: address has bits set "
		  "after the prefix length" },
		{ "tests/data/bad-per-address.yaml",
		  "tests/data/bad-per-address.yaml:5:18: destination \"payments\": per_address: needs a "
		  "host that is a DNS name" },
		{ "tests/data/bad-breaker.yaml",
		  "tests/data/bad-breaker.yaml:5:14: destination \"payments\": breaker: "
		  "per_workload needs workloads: (attribution) turned on" },
		{ "tests/data/alias.yaml",
		  "tests/data/alias.yaml:1:11: anchors and aliases are not allowed" },
	};
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fixtures); i++) {
		check_int(fixtures[i].path, config_load(&cfg, fixtures[i].path, err, sizeof(err)),
			 -EINVAL);
		check_str(fixtures[i].path, err, fixtures[i].want_err);
		assert_null(cfg.dsts);
	}
}

/* tests/data/engine.yaml: every engine key lands in its field, inherited where not overridden. */
static void test_fixture_engine(void **state)
{
	static const uint8_t net10[16] = { [10] = 0xff, [11] = 0xff, 10, 1 };
	static const uint8_t net6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	static const uint8_t zero[16];
	const struct breaker_policy *d;
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	if (config_load(&cfg, "tests/data/engine.yaml", err, sizeof(err)))
		fail_msg("%s", err);
	check_eq("resolve", cfg.resolve_interval_ns, 2 * MIN);
	check_eq("failopen", cfg.failopen_after_ns, 45 * SEC);
	check_eq("fastopen", cfg.fastopen_ignore, 1);
	check_eq("max_dsts", cfg.max_destinations, 8);
	d = &cfg.defaults;
	check_policy("defaults", d, MODE_OBSERVE, 0, 5 * SEC, 4);
	check_eq("defaults", d->failure_rate_threshold, 50);
	check_eq("defaults", d->window_type, WINDOW_TIME);
	check_eq("defaults", d->window_size, 30);
	check_eq("defaults", d->minimum_calls, 20);
	check_eq("defaults", d->slow_call_duration_ns, 250 * MS);
	check_eq("defaults", d->slow_call_rate_threshold, 80);
	check_eq("defaults", d->failures, POLICY_FAIL_REFUSED | POLICY_FAIL_TIMEOUT | POLICY_FAIL_RESET);
	check_eq("defaults", d->max_open_duration_ns, 2 * MIN);
	check_eq("defaults", d->jitter_percent, 10);
	check_eq("defaults", d->half_open_successes, 2);
	check_eq("defaults", d->max_half_open_duration_ns, 30 * SEC);
	check_eq("defaults", d->recovery_ramp_ns, MIN);
	assert_int_equal(cfg.n_dsts, 3);

	check_eq("payments", cfg.dsts[0].host_kind, HOST_CIDR);
	assert_memory_equal(cfg.dsts[0].addr, net10, 16);
	check_eq("payments", cfg.dsts[0].prefix_len, 96 + 16);
	check_eq("payments", cfg.dsts[0].per_address, 0);
	check_eq("payments", cfg.dsts[0].max_open_percent, 100);
	check_eq("payments", cfg.dsts[0].policy.window_type, WINDOW_COUNT);
	check_eq("payments", cfg.dsts[0].policy.window_size, 200);
	check_eq("payments", cfg.dsts[0].policy.recovery_ramp_ns, MIN);

	check_eq("search", cfg.dsts[1].host_kind, HOST_NAME);
	check_str("search", cfg.dsts[1].host, "search.internal");
	assert_memory_equal(cfg.dsts[1].addr, zero, 16);
	check_eq("search", cfg.dsts[1].prefix_len, 0);
	check_eq("search", cfg.dsts[1].port, 0);
	check_eq("search", cfg.dsts[1].per_address, 1);
	check_eq("search", cfg.dsts[1].max_open_percent, 50);
	check_eq("search", cfg.dsts[1].policy.mode, MODE_FORCED_OPEN);
	check_eq("search", cfg.dsts[1].policy.failures, 0);
	check_eq("search", cfg.dsts[1].policy.window_size, 30);

	check_eq("legacy", cfg.dsts[2].host_kind, HOST_CIDR);
	assert_memory_equal(cfg.dsts[2].addr, net6, 16);
	check_eq("legacy", cfg.dsts[2].prefix_len, 32);
	check_eq("legacy", cfg.dsts[2].per_address, 0);
	check_eq("legacy", cfg.dsts[2].policy.mode, MODE_DISABLED);
	config_free(&cfg);
}

/* The built-in values of the engine keys, and the names of the new modes. */
static void test_engine_defaults(void **state)
{
	struct breaker_policy p;
	struct config cfg;

	memset(&p, 0x5a, sizeof(p));
	config_policy_defaults(&p);
	check_policy("builtin", &p, MODE_ENFORCE, 5, 10 * SEC, 3);
	check_eq("builtin", p.failure_rate_threshold, 0);
	check_eq("builtin", p.window_type, WINDOW_COUNT);
	check_eq("builtin", p.window_size, 100);
	check_eq("builtin", p.minimum_calls, 10);
	check_eq("builtin", p.slow_call_duration_ns, SEC);
	check_eq("builtin", p.slow_call_rate_threshold, 0);
	check_eq("builtin", p.failures, POLICY_FAIL_DEFAULT);
	check_eq("builtin", p.max_open_duration_ns, 0);
	check_eq("builtin", p.jitter_percent, 0);
	check_eq("builtin", p.half_open_successes, 0);
	check_eq("builtin", p.max_half_open_duration_ns, 0);
	check_eq("builtin", p.recovery_ramp_ns, 0);
	config_init(&cfg);
	check_eq("init", cfg.resolve_interval_ns, 30 * SEC);
	check_eq("init", cfg.failopen_after_ns, 10 * SEC);
	check_eq("init", cfg.fastopen_ignore, 0);
	check_eq("init", cfg.max_destinations, 16384);
	assert_memory_equal(&cfg.defaults, &p, sizeof(p));
	check_str("modes", config_mode_name(MODE_DISABLED), "disabled");
	check_str("modes", config_mode_name(MODE_FORCED_OPEN), "forced_open");
	check_str("modes", config_mode_name((enum breaker_mode)42), "enforce");
}

static void test_cidr_and_hostname(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint8_t len;
		uint8_t addr[16];
	} cidrs[] = {
		{ "10.0.0.0/8", 0, 104, { [10] = 0xff, [11] = 0xff, 10 } },
		{ "0.0.0.0/0", 0, 96, { [10] = 0xff, [11] = 0xff } },
		{ "192.168.1.128/25", 0, 121, { [10] = 0xff, [11] = 0xff, 192, 168, 1, 128 } },
		{ "10.0.0.1/32", 0, 128, { [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 } },
		{ "fd00::/8", 0, 8, { 0xfd } },
		{ "::/0", 0, 0, { 0 } },
		{ "2001:db8::1/128", 0, 128, { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } },
		{ "10.0.0.1/31", -ERANGE, 0, { 0 } },
		{ "192.168.1.129/25", -ERANGE, 0, { 0 } },
		{ "fd00::1/64", -ERANGE, 0, { 0 } },
		{ "10.0.0.0/33", -EINVAL, 0, { 0 } },
		{ "fd00::/129", -EINVAL, 0, { 0 } },
		{ "10.0.0.0/08", -EINVAL, 0, { 0 } },
		{ "10.0.0.0/-1", -EINVAL, 0, { 0 } },
		{ "10.0.0.0/", -EINVAL, 0, { 0 } },
		{ "/8", -EINVAL, 0, { 0 } },
		{ "10.0.0.0", -EINVAL, 0, { 0 } },
		{ "10.0.0/8", -EINVAL, 0, { 0 } },
		{ "10.0.0.0/8/8", -EINVAL, 0, { 0 } },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1/8", -EINVAL, 0, { 0 } },
	};
	static const struct {
		const char *in;
		bool want;
	} names[] = {
		{ "example.com", true },
		{ "a", true },
		{ "x-1.y-2.z", true },
		{ "1.example", true },
		{ "example.c0m", true },
		{ "EXAMPLE.COM", true },
		{ "", false },
		{ ".", false },
		{ "a.", false },
		{ ".a", false },
		{ "a..b", false },
		{ "-a", false },
		{ "a-", false },
		{ "a_b", false },
		{ "a b", false },
		{ "10.1.2.3", false },
		{ "10", false },
		{ "a.123", false },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b", true },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b", false },
	};
	char long_name[300];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cidrs); i++) {
		uint8_t addr[16], len = 77;

		memset(addr, 0xaa, sizeof(addr));
		check_int(cidrs[i].in, addr_parse_cidr(cidrs[i].in, addr, &len), cidrs[i].ret);
		if (cidrs[i].ret) {
			check_eq(cidrs[i].in, len, 77);
			continue;
		}
		check_eq(cidrs[i].in, len, cidrs[i].len);
		if (memcmp(addr, cidrs[i].addr, 16))
			fail_msg("%s: wrong address bytes", cidrs[i].in);
	}
	assert_int_equal(addr_parse_cidr(NULL, NULL, NULL), -EINVAL);
	for (i = 0; i < ARRAY_SIZE(names); i++)
		check_eq(names[i].in, config_valid_hostname(names[i].in), names[i].want);
	assert_false(config_valid_hostname(NULL));
	/* 253 characters is the most: 63 x 4 labels = 255 with dots. */
	memset(long_name, 'a', sizeof(long_name));
	for (i = 50; i < 260; i += 51)
		long_name[i] = '.';
	long_name[253] = '\0';
	assert_true(config_valid_hostname(long_name));
	long_name[253] = 'a';
	long_name[254] = '\0';
	assert_false(config_valid_hostname(long_name));
}

/* The agent-wide keys kbreakerd reads besides the destinations. */
static void test_agent_keys(void **state)
{
	static const char yaml[] =
		"log_level: debug\n"
		"user: nobody\n"
		"state_dir: /sys/fs/bpf/kb\n"
		"metrics_compact: true\n";
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	config_init(&cfg);
	assert_string_equal(cfg.log_level, "");
	assert_string_equal(cfg.user, "");
	assert_string_equal(cfg.state_dir, "");
	assert_int_equal(cfg.metrics_compact, 0);
	assert_int_equal(config_parse(&cfg, "kb.yaml", yaml, sizeof(yaml) - 1, err, sizeof(err)), 0);
	assert_string_equal(cfg.log_level, "debug");
	assert_string_equal(cfg.user, "nobody");
	assert_string_equal(cfg.state_dir, "/sys/fs/bpf/kb");
	assert_int_equal(cfg.metrics_compact, 1);
	config_free(&cfg);
}

/*
 * Two paths to one namespace (config_load finds the inodes): the second
 * destination repeats the first; other namespaces, or none, do not.
 */
static void test_netns_repeat(void **state)
{
	static const char yaml[] =
		"destinations:\n"
		"  - { name: a, host: 127.0.0.1, port: 5, netns: /run/netns/x }\n"
		"  - { name: b, host: 127.0.0.1, port: 5, netns: /var/run/netns/x }\n"
		"  - { name: c, host: 127.0.0.1, port: 5 }\n"
		"  - { name: d, host: db.example, port: 5, netns: /run/netns/y }\n"
		"  - { name: e, host: db.example, port: 5, netns: /proc/1/ns/net }\n";
	const struct config_dst *rep, *first = NULL;
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	config_init(&cfg);
	assert_int_equal(config_parse(&cfg, "kb.yaml", yaml, sizeof(yaml) - 1, err, sizeof(err)), 0);
	cfg.dsts[0].netns_ino = 7, cfg.dsts[1].netns_ino = 8;
	cfg.dsts[3].netns_ino = 9, cfg.dsts[4].netns_ino = 10;
	assert_int_equal(config_netns_repeat(&cfg, &rep, &first), 0);
	assert_null(rep);
	cfg.dsts[4].netns_ino = 9;	/* e is in d's namespace */
	assert_int_equal(config_netns_repeat(&cfg, &rep, &first), 0);
	assert_ptr_equal(rep, &cfg.dsts[4]);
	assert_ptr_equal(first, &cfg.dsts[3]);
	cfg.dsts[1].netns_ino = 7;	/* and b in a's: reported first, as earlier in the file */
	assert_int_equal(config_netns_repeat(&cfg, &rep, &first), 0);
	assert_ptr_equal(rep, &cfg.dsts[1]);
	assert_ptr_equal(first, &cfg.dsts[0]);
	config_free(&cfg);
}

/* workloads: off by default; {} turns it on with the defaults; values land in their fields. */
static void test_workloads(void **state)
{
	static const struct {
		const char *yaml;
		uint8_t on;
		uint32_t depth, max;
	} wl[] = {
		{ "listen: 127.0.0.1:1\n", 0, 1, 50 },
		{ "workloads: {}\n", 1, 1, 50 },
		{ "workloads:\n  depth: 3\n", 1, 3, 50 },
		{ "workloads:\n  max: 7\n", 1, 1, 7 },
		{ "workloads: {max: 1000, depth: 16}\n", 1, CONFIG_WORKLOADS_DEPTH_MAX,
		  CONFIG_WORKLOADS_MAX },
	};
	char err[CONFIG_ERR_MAX];
	struct config cfg;
	size_t i;

	config_init(&cfg);
	check_eq("init", cfg.workloads_on, 0);
	check_eq("init", cfg.workloads_depth, 1);
	check_eq("init", cfg.workloads_max, 50);
	for (i = 0; i < ARRAY_SIZE(wl); i++) {
		if (config_parse(&cfg, "kb.yaml", wl[i].yaml, strlen(wl[i].yaml), err,
				 sizeof(err)))
			fail_msg("%s: %s", wl[i].yaml, err);
		check_eq(wl[i].yaml, cfg.workloads_on, wl[i].on);
		check_eq(wl[i].yaml, cfg.workloads_depth, wl[i].depth);
		check_eq(wl[i].yaml, cfg.workloads_max, wl[i].max);
		config_free(&cfg);
	}
}

/* tests/data/workloads.yaml: breaker: per destination, slots counted against max_destinations. */
static void test_fixture_workloads(void **state)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	if (config_load(&cfg, "tests/data/workloads.yaml", err, sizeof(err)))
		fail_msg("%s", err);
	check_eq("workloads", cfg.workloads_on, 1);
	check_eq("workloads", cfg.workloads_depth, 2);
	check_eq("workloads", cfg.workloads_max, 10);
	assert_int_equal(cfg.n_dsts, 3);
	check_eq("payments", cfg.dsts[0].per_workload, 1);
	check_eq("payments", cfg.dsts[0].per_address, 0);
	check_eq("payments", cfg.dsts[0].max_open_percent, 25);
	check_eq("search", cfg.dsts[1].per_workload, 0);
	check_eq("search", cfg.dsts[1].max_open_percent, 100);
	check_eq("cache", cfg.dsts[2].per_workload, 0);
	/* 11 (max + 1) for payments, one each for the others: max_destinations exactly. */
	check_eq("slots", config_slots_needed(&cfg), 13);
	check_eq("slots", cfg.max_destinations, 13);
	config_free(&cfg);
	config_init(&cfg);
	check_eq("slots empty", config_slots_needed(&cfg), 0);
}

#define RELOAD "workloads: cannot change while running "

/* A reload may not change workloads: (start only); the message says from what to what. */
static void test_start_only(void **state)
{
	static const struct {
		const char *name;
		uint8_t on[2];
		uint32_t depth[2], max[2];
		const char *want;	/* NULL: no change a start must make */
	} so[] = {
		{ "both off", { 0, 0 }, { 1, 1 }, { 50, 50 }, NULL },
		{ "same", { 1, 1 }, { 2, 2 }, { 20, 20 }, NULL },
		/* Off, the values are the defaults no one chose: nothing to size by them. */
		{ "off, values apart", { 0, 0 }, { 1, 4 }, { 50, 8 }, NULL },
		{ "off to on", { 0, 1 }, { 1, 1 }, { 50, 50 },
		  RELOAD "(off -> depth 1, max 50), restart kbreakerd" },
		{ "on to off", { 1, 0 }, { 3, 1 }, { 9, 50 },
		  RELOAD "(depth 3, max 9 -> off), restart kbreakerd" },
		{ "depth", { 1, 1 }, { 1, 2 }, { 50, 50 },
		  RELOAD "(depth 1, max 50 -> depth 2, max 50), restart kbreakerd" },
		{ "max", { 1, 1 }, { 16, 16 }, { 1000, 999 },
		  RELOAD "(depth 16, max 1000 -> depth 16, max 999), restart kbreakerd" },
	};
	struct config cfg[2];
	char err[CONFIG_ERR_MAX];
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(so); i++) {
		for (j = 0; j < 2; j++) {
			config_init(&cfg[j]);
			cfg[j].workloads_on = so[i].on[j];
			cfg[j].workloads_depth = so[i].depth[j];
			cfg[j].workloads_max = so[i].max[j];
		}
		strcpy(err, "untouched");
		if (!so[i].want) {
			check_int(so[i].name, config_start_only_changed(&cfg[0], &cfg[1], err,
									  sizeof(err)), 0);
			check_str(so[i].name, err, "untouched");
			continue;
		}
		check_int(so[i].name, config_start_only_changed(&cfg[0], &cfg[1], err, sizeof(err)),
			  -EINVAL);
		check_str(so[i].name, err, so[i].want);
	}
}

/* The keys a reload cannot apply, named when they change (the rest of the file applies). */
static void test_restart_keys(void **state)
{
	static const struct {
		const char *name, *yaml[2], *want;
	} rk[] = {
		{ "none", { "log_level: warn\n", "log_level: error\npoll_interval: 1s\n" }, "" },
		{ "listen port", { "listen: 127.0.0.1:9000\n", "listen: 127.0.0.1:9001\n" }, "listen" },
		{ "listen host", { "listen: 127.0.0.1:9000\n", "listen: \"[::1]:9000\"\n" }, "listen" },
		{ "cgroup", { "cgroup: /sys/fs/cgroup/a\n", "cgroup: /sys/fs/cgroup/b\n" }, "cgroup" },
		{ "state_dir added", { "user: nobody\n", "state_dir: /sys/fs/bpf/kb\nuser: nobody\n" },
		  "state_dir" },
		{ "user removed", { "user: nobody\n", "log_level: info\n" }, "user" },
		{ "fastopen_connect", { "fastopen_connect: allow\n", "fastopen_connect: ignore\n" },
		  "fastopen_connect" },
		{ "fastopen_connect default", { "log_level: info\n", "fastopen_connect: allow\n" }, "" },
		{ "all five", { "user: nobody\n",
				"listen: 127.0.0.1:9001\ncgroup: /sys/fs/cgroup/a\n"
				"state_dir: /sys/fs/bpf/kb\nuser: kb\nfastopen_connect: ignore\n" },
		  "listen, cgroup, state_dir, user, fastopen_connect" },
	};
	char err[CONFIG_ERR_MAX], keys[CONFIG_RESTART_KEYS_MAX];
	struct config cfg[2];

	for (size_t i = 0; i < ARRAY_SIZE(rk); i++) {
		for (size_t j = 0; j < 2; j++)
			if (config_parse(&cfg[j], "kb.yaml", rk[i].yaml[j], strlen(rk[i].yaml[j]), err,
					 sizeof(err)))
				fail_msg("%s: %s", rk[i].name, err);
		check_str(rk[i].name, config_restart_keys(&cfg[0], &cfg[1], keys, sizeof(keys)),
			  rk[i].want);
		/*
		 * Accepted, the new config keeps what runs (found by review: the
		 * same file again said nothing, going back to what runs warned).
		 */
		config_keep_start_only(&cfg[1], &cfg[0]);
		check_str(rk[i].name, config_restart_keys(&cfg[0], &cfg[1], keys, sizeof(keys)), "");
		config_free(&cfg[0]);
		config_free(&cfg[1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_keys),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_builtin_defaults),
		cmocka_unit_test(test_init_and_mode_names),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_generated),
		cmocka_unit_test(test_error_leaves_cfg_empty),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_bare_zero),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_fixture_valid),
		cmocka_unit_test(test_fixture_errors),
		cmocka_unit_test(test_fixture_engine),
		cmocka_unit_test(test_engine_defaults),
		cmocka_unit_test(test_cidr_and_hostname),
		cmocka_unit_test(test_netns_repeat),
		cmocka_unit_test(test_workloads),
		cmocka_unit_test(test_fixture_workloads),
		cmocka_unit_test(test_start_only),
		cmocka_unit_test(test_restart_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
