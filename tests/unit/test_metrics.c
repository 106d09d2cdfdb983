// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* metrics_render: the exposition text, compared exactly. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "metrics.h"

static char *render(const struct metrics_agent *info, const struct metrics_dst *d, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	assert_int_equal(metrics_render(out, info, d, n), 0);
	assert_int_equal(fclose(out), 0);
	return buf;
}

/* Where the per-destination families begin in a rendering. */
static const char *per_destination(const char *text)
{
	const char *body = strstr(text, "# HELP circuit_breaker_state ");

	assert_non_null(body);
	return body;
}

/* The HELP and TYPE lines of each per-destination family, as every test expects them. */
#define HEAD_STATE \
	"# HELP circuit_breaker_state Breaker state: 1 for the current state, 0 for the others.\n" \
	"# TYPE circuit_breaker_state gauge\n"
#define HEAD_TRANSITIONS \
	"# HELP circuit_breaker_state_transition_total Breaker state transitions.\n" \
	"# TYPE circuit_breaker_state_transition_total counter\n"
#define HEAD_FAILURE_RATE \
	"# HELP circuit_breaker_failure_rate Failed share of the calls in the breaker's window, 0 to 1.\n" \
	"# TYPE circuit_breaker_failure_rate gauge\n"
#define HEAD_SLOW_CALL_RATE \
	"# HELP circuit_breaker_slow_call_rate Share of the calls in the breaker's window slower than slow_call_duration_threshold, 0 to 1.\n" \
	"# TYPE circuit_breaker_slow_call_rate gauge\n"
#define HEAD_CONSECUTIVE \
	"# HELP circuit_breaker_consecutive_failures Failures in a row while closed: failed connects, and resets where they are failures.\n" \
	"# TYPE circuit_breaker_consecutive_failures gauge\n"
#define HEAD_LAST_TRANSITION \
	"# HELP circuit_breaker_last_transition_timestamp_seconds When the breaker last changed state (start-up if never).\n" \
	"# TYPE circuit_breaker_last_transition_timestamp_seconds gauge\n"
#define HEAD_CONNECTS \
	"# HELP kbreaker_tcp_connects_total TCP connects to the destination by outcome, as the kernel saw them.\n" \
	"# TYPE kbreaker_tcp_connects_total counter\n"
#define HEAD_BLOCKED \
	"# HELP kbreaker_connects_blocked_total TCP connects the breaker refused with ECONNREFUSED before a packet left.\n" \
	"# TYPE kbreaker_connects_blocked_total counter\n"
#define HEAD_WOULD_BLOCK \
	"# HELP kbreaker_connects_would_block_total Observe mode: TCP connects the breaker would have refused.\n" \
	"# TYPE kbreaker_connects_would_block_total counter\n"
#define HEAD_TRIPS_DENIED \
	"# HELP kbreaker_trips_denied_total Trips the blast-radius guard (max_open_percent) held back: the breaker stayed closed.\n" \
	"# TYPE kbreaker_trips_denied_total counter\n"
#define HEAD_RESETS \
	"# HELP kbreaker_tcp_resets_total TCP resets on connections this host opened to the destination, by direction.\n" \
	"# TYPE kbreaker_tcp_resets_total counter\n"
#define HEAD_RETRANSMITS \
	"# HELP kbreaker_tcp_retransmits_total TCP segments retransmitted on connections this host opened to the destination.\n" \
	"# TYPE kbreaker_tcp_retransmits_total counter\n"
#define HEAD_LATENCY \
	"# HELP kbreaker_tcp_connect_duration_seconds Time from SYN sent to ESTABLISHED for successful connects.\n" \
	"# TYPE kbreaker_tcp_connect_duration_seconds histogram\n"

static const char want_empty[] =
	"# HELP kbreaker_build_info kbreaker version, the kernel it runs on and the errno blocked connects get; always 1.\n"
	"# TYPE kbreaker_build_info gauge\n"
	"kbreaker_build_info{version=\"1.2.3\",kernel=\"6.1.0\",refusal=\"ECONNREFUSED\"} 1\n"
	"# HELP kbreaker_destinations Configured destinations (circuits).\n"
	"# TYPE kbreaker_destinations gauge\n"
	"kbreaker_destinations 0\n"
	"# HELP kbreaker_breakers Breakers in use: one per destination, one per address with per_address.\n"
	"# TYPE kbreaker_breakers gauge\n"
	"kbreaker_breakers 0\n"
	"# HELP kbreaker_breakers_capacity Breakers the kernel maps can hold (max_destinations).\n"
	"# TYPE kbreaker_breakers_capacity gauge\n"
	"kbreaker_breakers_capacity 16384\n"
	"# HELP kbreaker_config_reload_success Whether the last configuration load or reload was accepted.\n"
	"# TYPE kbreaker_config_reload_success gauge\n"
	"kbreaker_config_reload_success 1\n"
	"# HELP kbreaker_config_last_reload_success_timestamp_seconds When the running configuration was loaded.\n"
	"# TYPE kbreaker_config_last_reload_success_timestamp_seconds gauge\n"
	"kbreaker_config_last_reload_success_timestamp_seconds 1700000000\n"
	"# HELP kbreaker_config_reloads_total Configuration reloads by result.\n"
	"# TYPE kbreaker_config_reloads_total counter\n"
	"kbreaker_config_reloads_total{result=\"success\"} 2\n"
	"kbreaker_config_reloads_total{result=\"failure\"} 1\n"
	"# HELP kbreaker_resolve_errors_total Failed resolutions of destination names; the last good addresses stay in force.\n"
	"# TYPE kbreaker_resolve_errors_total counter\n"
	"kbreaker_resolve_errors_total 3\n"
	"# HELP kbreaker_map_errors_total Failed writes to the kernel maps.\n"
	"# TYPE kbreaker_map_errors_total counter\n"
	"kbreaker_map_errors_total 4\n"
	"# HELP kbreaker_probe_permits_returned_total Half-open probe permits given back: their connects failed before sending a SYN.\n"
	"# TYPE kbreaker_probe_permits_returned_total counter\n"
	"kbreaker_probe_permits_returned_total 5\n"
	"# HELP kbreaker_breakers_restored Breakers taken over from the previous run at start (state_dir).\n"
	"# TYPE kbreaker_breakers_restored gauge\n"
	"kbreaker_breakers_restored 0\n"
	"# HELP kbreaker_poll_duration_seconds How long the agent's last poll took.\n"
	"# TYPE kbreaker_poll_duration_seconds gauge\n"
	"kbreaker_poll_duration_seconds 0.000000\n"
	"# HELP kbreaker_scrape_duration_seconds How long rendering the previous /metrics took.\n"
	"# TYPE kbreaker_scrape_duration_seconds gauge\n"
	"kbreaker_scrape_duration_seconds 0.000000\n"
	"# HELP kbreaker_bpf_program_runs_total Runs of each BPF program; counted while kernel.bpf_stats_enabled is 1.\n"
	"# TYPE kbreaker_bpf_program_runs_total counter\n"
	"# HELP kbreaker_bpf_program_run_seconds_total Time spent in each BPF program; counted while kernel.bpf_stats_enabled is 1.\n"
	"# TYPE kbreaker_bpf_program_run_seconds_total counter\n"
	"# HELP kbreaker_bpf_program_recursion_misses_total Runs of each BPF program the kernel skipped because it was already running on that CPU; kbreaker's programs run where the kernel never skips them, so this stays 0.\n"
	"# TYPE kbreaker_bpf_program_recursion_misses_total counter\n"
	"# HELP kbreaker_events_lost_total Connect outcomes the kernel could not queue for the breakers; counted anyway, applied late.\n"
	"# TYPE kbreaker_events_lost_total counter\n"
	"kbreaker_events_lost_total 7\n"
	"# HELP kbreaker_connects_failopen_total Connects to open destinations the hooks let through because the agent had not run its loop for failopen_after (stopped or hung): it could not have ended the block.\n"
	"# TYPE kbreaker_connects_failopen_total counter\n"
	"kbreaker_connects_failopen_total 3\n"
	"# HELP kbreaker_fastopen_connect_ignored_total setsockopt(TCP_FASTOPEN_CONNECT, 1) calls in the enforcement cgroup turned into 0 (fastopen_connect: ignore), so that every SYN passes a connect hook.\n"
	"# TYPE kbreaker_fastopen_connect_ignored_total counter\n"
	"kbreaker_fastopen_connect_ignored_total 4\n"
	"# HELP kbreaker_fastopen_connects_refused_total Connects to enforced destinations refused because their socket had TCP_FASTOPEN_CONNECT set where the setsockopt program does not run (a 32-bit syscall, before the agent started); fastopen_connect: ignore.\n"
	"# TYPE kbreaker_fastopen_connects_refused_total counter\n"
	"kbreaker_fastopen_connects_refused_total 6\n"
	"# HELP kbreaker_log_lines_dropped_total Log lines dropped because stderr (a pipe, terminal or journald socket) did not take them: the agent does not wait on a stalled reader.\n"
	"# TYPE kbreaker_log_lines_dropped_total counter\n"
	"kbreaker_log_lines_dropped_total 5\n"
	HEAD_STATE
	HEAD_TRANSITIONS
	HEAD_FAILURE_RATE
	HEAD_SLOW_CALL_RATE
	HEAD_CONSECUTIVE
	HEAD_LAST_TRANSITION
	HEAD_CONNECTS
	HEAD_BLOCKED
	HEAD_WOULD_BLOCK
	HEAD_TRIPS_DENIED
	HEAD_RESETS
	HEAD_RETRANSMITS
	HEAD_LATENCY;

static void test_no_destinations(void **state)
{
	struct metrics_agent info = {
		.version = "1.2.3", .kernel = "6.1.0", .events_lost = 7, .connects_failopen = 3,
		.fastopen_ignored = 4, .fastopen_refused = 6, .log_dropped = 5,
		.capacity = 16384,
		.reload_ok = 1, .last_reload_ok_wall = 1700000000, .reloads_ok = 2,
		.reloads_failed = 1, .resolve_errors = 3, .map_errors = 4,
		.permits_returned = 5,
		.refuses_with_econnrefused = 1,
	};
	char *text = render(&info, NULL, 0);

	assert_string_equal(text, want_empty);
	free(text);
}

static void test_one_destination(void **state)
{
	struct metrics_agent info = { .version = "1.2.3", .kernel = "6.1.0" };
	uint64_t tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
	struct kb_dst_stats st = { 0 };
	struct metrics_dst d = { .name = "payments", .state = BS_HALF_OPEN, .transitions = tr,
				 .stats = &st };
	const char *body;
	char *text;

	tr[BS_CLOSED][BS_OPEN] = 2;
	tr[BS_OPEN][BS_HALF_OPEN] = 1;
	st.connects[KB_RES_SUCCESS] = 6;
	st.connects[KB_RES_REFUSED] = 5;
	st.connects[KB_RES_TIMEOUT] = 1;
	st.blocked = 9;
	d.failure_rate = 5.0 / 11;
	d.slow_call_rate = 0.1;
	d.consecutive_failures = 2;
	d.last_transition_wall = 1700000123.25;
	st.would_block = 4;
	d.trips_denied = 8;
	st.resets_rx = 2;
	st.resets_tx = 3;
	st.retransmits = 11;
	st.lat_slots[0] = 1;	/* < 2 us */
	st.lat_slots[5] = 2;	/* [32, 64) us: in le=0.000064 */
	st.lat_slots[6] = 1;	/* [64, 128) us: first in le=0.000256 */
	st.lat_slots[23] = 2;	/* >= 8.4 s: only in +Inf */
	st.lat_sum_ns = 1500000000ULL;
	text = render(&info, &d, 1);
	body = per_destination(text);
	assert_string_equal(body,
		HEAD_STATE
		"circuit_breaker_state{circuit_name=\"payments\",state=\"closed\"} 0\n"
		"circuit_breaker_state{circuit_name=\"payments\",state=\"open\"} 0\n"
		"circuit_breaker_state{circuit_name=\"payments\",state=\"half_open\"} 1\n"
		"circuit_breaker_state{circuit_name=\"payments\",state=\"metrics_only\"} 0\n"
		"circuit_breaker_state{circuit_name=\"payments\",state=\"disabled\"} 0\n"
		"circuit_breaker_state{circuit_name=\"payments\",state=\"forced_open\"} 0\n"
		HEAD_TRANSITIONS
		"circuit_breaker_state_transition_total{circuit_name=\"payments\",old_state=\"closed\",new_state=\"open\"} 2\n"
		"circuit_breaker_state_transition_total{circuit_name=\"payments\",old_state=\"open\",new_state=\"half_open\"} 1\n"
		"circuit_breaker_state_transition_total{circuit_name=\"payments\",old_state=\"half_open\",new_state=\"closed\"} 0\n"
		"circuit_breaker_state_transition_total{circuit_name=\"payments\",old_state=\"half_open\",new_state=\"open\"} 0\n"
		HEAD_FAILURE_RATE
		"circuit_breaker_failure_rate{circuit_name=\"payments\"} 0.4545\n"
		HEAD_SLOW_CALL_RATE
		"circuit_breaker_slow_call_rate{circuit_name=\"payments\"} 0.1000\n"
		HEAD_CONSECUTIVE
		"circuit_breaker_consecutive_failures{circuit_name=\"payments\"} 2\n"
		HEAD_LAST_TRANSITION
		"circuit_breaker_last_transition_timestamp_seconds{circuit_name=\"payments\"} 1700000123.250\n"
		HEAD_CONNECTS
		"kbreaker_tcp_connects_total{circuit_name=\"payments\",result=\"success\"} 6\n"
		"kbreaker_tcp_connects_total{circuit_name=\"payments\",result=\"refused\"} 5\n"
		"kbreaker_tcp_connects_total{circuit_name=\"payments\",result=\"timeout\"} 1\n"
		"kbreaker_tcp_connects_total{circuit_name=\"payments\",result=\"unreachable\"} 0\n"
		"kbreaker_tcp_connects_total{circuit_name=\"payments\",result=\"error\"} 0\n"
		"kbreaker_tcp_connects_total{circuit_name=\"payments\",result=\"cancelled\"} 0\n"
		HEAD_BLOCKED
		"kbreaker_connects_blocked_total{circuit_name=\"payments\"} 9\n"
		HEAD_WOULD_BLOCK
		"kbreaker_connects_would_block_total{circuit_name=\"payments\"} 4\n"
		HEAD_TRIPS_DENIED
		"kbreaker_trips_denied_total{circuit_name=\"payments\"} 8\n"
		HEAD_RESETS
		"kbreaker_tcp_resets_total{circuit_name=\"payments\",direction=\"received\"} 2\n"
		"kbreaker_tcp_resets_total{circuit_name=\"payments\",direction=\"sent\"} 3\n"
		HEAD_RETRANSMITS
		"kbreaker_tcp_retransmits_total{circuit_name=\"payments\"} 11\n"
		HEAD_LATENCY
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.000064\"} 3\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.000256\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.001024\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.004096\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.016384\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.065536\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"0.262144\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"1.048576\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"4.194304\"} 4\n"
		"kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"payments\",le=\"+Inf\"} 6\n"
		"kbreaker_tcp_connect_duration_seconds_sum{circuit_name=\"payments\"} 1.500000000\n"
		"kbreaker_tcp_connect_duration_seconds_count{circuit_name=\"payments\"} 6\n");
	free(text);
}

/* Transitions outside the core four appear once they have happened. */
static void test_extra_transition_shown_when_nonzero(void **state)
{
	struct metrics_agent info = { .version = "v", .kernel = "k" };
	uint64_t tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
	struct metrics_dst d = { .name = "a", .state = BS_CLOSED, .transitions = tr };
	char *text;

	text = render(&info, &d, 1);
	assert_null(strstr(text, "old_state=\"open\",new_state=\"closed\""));
	free(text);
	tr[BS_OPEN][BS_CLOSED] = 1;
	text = render(&info, &d, 1);
	assert_non_null(strstr(text, "circuit_breaker_state_transition_total{circuit_name=\"a\","
				     "old_state=\"open\",new_state=\"closed\"} 1\n"));
	free(text);
}

/* Numbers at their edges come out as printf would write them: the renderer formats them by hand. */
static void test_number_edges(void **state)
{
	struct metrics_agent info = { .version = "v", .kernel = "k" };
	uint64_t tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
	struct kb_dst_stats st = { 0 };
	struct metrics_dst d = { .name = "edge", .state = BS_CLOSED, .transitions = tr, .stats = &st,
				 .failure_rate = 1.0, .consecutive_failures = UINT32_MAX };
	char *text;

	tr[BS_CLOSED][BS_OPEN] = UINT64_MAX;
	tr[BS_OPEN][BS_HALF_OPEN] = 10;
	st.connects[KB_RES_SUCCESS] = 9;
	st.blocked = 1000000000000000000ULL;
	st.lat_slots[0] = 1;
	st.lat_sum_ns = 1;
	text = render(&info, &d, 1);
	assert_non_null(strstr(text, "{circuit_name=\"edge\",old_state=\"closed\",new_state=\"open\"} "
				     "18446744073709551615\n"));
	assert_non_null(strstr(text, "{circuit_name=\"edge\",old_state=\"open\",new_state=\"half_open\"} 10\n"));
	assert_non_null(strstr(text, "{circuit_name=\"edge\",old_state=\"half_open\",new_state=\"closed\"} 0\n"));
	assert_non_null(strstr(text, "circuit_breaker_failure_rate{circuit_name=\"edge\"} 1.0000\n"));
	assert_non_null(strstr(text, "circuit_breaker_slow_call_rate{circuit_name=\"edge\"} 0.0000\n"));
	assert_non_null(strstr(text, "circuit_breaker_consecutive_failures{circuit_name=\"edge\"} 4294967295\n"));
	assert_non_null(strstr(text, "circuit_breaker_last_transition_timestamp_seconds{circuit_name=\"edge\"} 0.000\n"));
	assert_non_null(strstr(text, "result=\"success\"} 9\n"));
	assert_non_null(strstr(text, "kbreaker_connects_blocked_total{circuit_name=\"edge\"} 1000000000000000000\n"));
	assert_non_null(strstr(text, "_sum{circuit_name=\"edge\"} 0.000000001\n"));
	free(text);
}

/* Compact: only what is not zero, per destination. */
static void test_compact(void **state)
{
	struct metrics_agent info = { .version = "v", .kernel = "k", .compact = true };
	uint64_t tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
	struct kb_dst_stats st = { 0 };
	struct metrics_dst d = {
		.name = "db", .state = BS_OPEN, .transitions = tr, .consecutive_failures = 0,
		.failure_rate = 1.0, .last_transition_wall = 1700000000.0, .stats = &st,
	};
	const char *body;
	char *text;

	tr[BS_CLOSED][BS_OPEN] = 1;
	st.connects[KB_RES_REFUSED] = 5;
	st.blocked = 2;
	text = render(&info, &d, 1);
	body = per_destination(text);
	assert_string_equal(body,
		HEAD_STATE
		"circuit_breaker_state{circuit_name=\"db\",state=\"open\"} 1\n"
		HEAD_TRANSITIONS
		"circuit_breaker_state_transition_total{circuit_name=\"db\",old_state=\"closed\",new_state=\"open\"} 1\n"
		HEAD_FAILURE_RATE
		"circuit_breaker_failure_rate{circuit_name=\"db\"} 1.0000\n"
		HEAD_SLOW_CALL_RATE
		HEAD_CONSECUTIVE
		HEAD_LAST_TRANSITION
		"circuit_breaker_last_transition_timestamp_seconds{circuit_name=\"db\"} 1700000000.000\n"
		HEAD_CONNECTS
		"kbreaker_tcp_connects_total{circuit_name=\"db\",result=\"refused\"} 5\n"
		HEAD_BLOCKED
		"kbreaker_connects_blocked_total{circuit_name=\"db\"} 2\n"
		HEAD_WOULD_BLOCK
		HEAD_TRIPS_DENIED
		HEAD_RESETS
		HEAD_RETRANSMITS
		HEAD_LATENCY);
	free(text);
}

/* OpenMetrics: counter families named without _total, samples with it, # EOF last. */
static void test_openmetrics(void **state)
{
	struct metrics_agent info = { .version = "v", .kernel = "k", .openmetrics = true };
	uint64_t tr[BS_MACHINE][BS_MACHINE] = { { 0 } };
	struct kb_dst_stats st = { 0 };
	struct metrics_dst d = { .name = "db", .state = BS_CLOSED, .transitions = tr, .stats = &st };
	char *text;
	size_t len;

	st.connects[KB_RES_SUCCESS] = 3;
	text = render(&info, &d, 1);
	assert_non_null(strstr(text, "# TYPE kbreaker_tcp_connects counter\n"));
	assert_non_null(strstr(text, "kbreaker_tcp_connects_total{circuit_name=\"db\",result=\"success\"} 3\n"));
	assert_non_null(strstr(text, "# TYPE circuit_breaker_state_transition counter\n"));
	assert_non_null(strstr(text, "# TYPE circuit_breaker_state gauge\n"));
	assert_non_null(strstr(text, "# TYPE kbreaker_tcp_connect_duration_seconds histogram\n"));
	assert_null(strstr(text, "# TYPE kbreaker_tcp_connects_total"));
	len = strlen(text);
	assert_true(len > 6);
	assert_string_equal(text + len - 6, "# EOF\n");
	free(text);
}

/* Per-program BPF statistics: runs and seconds per program name. */
static void test_program_stats(void **state)
{
	struct kb_prog_stats progs[] = {
		{ .name = "kb_sock_state", .run_cnt = 10, .run_time_ns = 1500, .recursion_misses = 4 },
		{ .name = "kb_connect4", .run_cnt = 3, .run_time_ns = 2000000001 },
	};
	struct metrics_agent info = { .version = "v", .kernel = "k", .progs = progs, .n_progs = 2 };
	char *text = render(&info, NULL, 0);

	assert_non_null(strstr(text,
		"kbreaker_bpf_program_runs_total{program=\"kb_sock_state\"} 10\n"
		"kbreaker_bpf_program_runs_total{program=\"kb_connect4\"} 3\n"
		"# HELP kbreaker_bpf_program_run_seconds_total "));
	assert_non_null(strstr(text,
		"kbreaker_bpf_program_run_seconds_total{program=\"kb_sock_state\"} 0.000001500\n"
		"kbreaker_bpf_program_run_seconds_total{program=\"kb_connect4\"} 2.000000001\n"));
	assert_non_null(strstr(text,
		"kbreaker_bpf_program_recursion_misses_total{program=\"kb_sock_state\"} 4\n"
		"kbreaker_bpf_program_recursion_misses_total{program=\"kb_connect4\"} 0\n"));
	free(text);
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && !memcmp(s + len - n, suffix, n);
}

/*
 * The table every family comes from keeps Prometheus' naming rules: a
 * counter's samples end in _total, a unit is the name's last word, a help
 * is one line; and each family is written once, HELP and TYPE together.
 */
static void test_family_table(void **state)
{
	struct metrics_agent info = { .version = "v", .kernel = "k", .wl_on = true };
	char *text = render(&info, NULL, 0), head[512];

	assert_true(metrics_n_families > 0);
	for (size_t i = 0; i < metrics_n_families; i++) {
		const struct metrics_family *f = &metrics_families[i];
		size_t len = strlen(f->name);
		bool counter = !strcmp(f->type, "counter");

		assert_true(counter || !strcmp(f->type, "gauge") || !strcmp(f->type, "histogram"));
		assert_int_equal(counter, ends_with(f->name, len, "_total"));
		if (counter)
			len -= strlen("_total");
		if (f->unit) {
			assert_true(ends_with(f->name, len, f->unit));
			assert_true(len > strlen(f->unit) && f->name[len - strlen(f->unit) - 1] == '_');
		} else {
			assert_false(ends_with(f->name, len, "_seconds"));
		}
		assert_non_null(f->help);
		assert_null(strchr(f->help, '\n'));
		assert_non_null(f->samples);
		snprintf(head, sizeof(head), "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
			 f->type);
		assert_non_null(strstr(text, head));
		assert_null(strstr(strstr(text, head) + 1, head));
	}
	free(text);
}

/* Workload families: only with attribution on; a cgroup's name escaped in its label. */
static void test_workloads(void **state)
{
	struct metrics_agent info = { .version = "v", .kernel = "k", .compact = true };
	struct metrics_wl wl[2] = {
		{ .name = "svc\"a\\b\nc", .state = -1 },
		{ .name = "other", .state = -1 },
	};
	static const uint64_t transitions[BS_MACHINE][BS_MACHINE];
	struct metrics_dst d = { .name = "db", .transitions = transitions, .wl = wl, .n_wl = 2 };
	char *text;

	wl[0].st.connects[KB_RES_REFUSED] = 2;
	wl[1].st.blocked = 5;
	text = render(&info, &d, 1);
	assert_null(strstr(text, "kbreaker_workload"));
	free(text);
	info.wl_on = true;
	info.wl_labelled = 1;
	info.wl_folded = 7;
	text = render(&info, &d, 1);
	assert_non_null(strstr(text, "kbreaker_workload_tcp_connects_total{circuit_name=\"db\","
			       "workload=\"svc\\\"a\\\\b\\nc\",result=\"refused\"} 2\n"));
	assert_non_null(strstr(text, "kbreaker_workload_connects_blocked_total{circuit_name=\"db\","
			       "workload=\"other\"} 5\n"));
	assert_non_null(strstr(text, "kbreaker_workloads 1\n"));
	assert_non_null(strstr(text, "kbreaker_workloads_folded 7\n"));
	/* shared: no per-workload state */
	assert_null(strstr(text, "circuit_breaker_workload_state{"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_destinations),
		cmocka_unit_test(test_one_destination),
		cmocka_unit_test(test_extra_transition_shown_when_nonzero),
		cmocka_unit_test(test_number_edges),
		cmocka_unit_test(test_program_stats),
		cmocka_unit_test(test_compact),
		cmocka_unit_test(test_openmetrics),
		cmocka_unit_test(test_family_table),
		cmocka_unit_test(test_workloads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
