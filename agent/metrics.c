// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "metrics.h"

/*
 * Histogram buckets, as log2 slots of microseconds: slot i holds
 * [2^i, 2^(i+1)) us, so bucket le=2^k us is the sum of slots 0..k-1.
 * Every other power of two from 64 us to 4.2 s keeps the series per
 * destination at 11 while covering loopback to a transcontinental SYN retry.
 */
static const unsigned bucket_log2_us[] = { 6, 8, 10, 12, 14, 16, 18, 20, 22 };

/*
 * The transitions the machine makes; exported at 0 too (unless compact), so
 * that rate() and increase() see the first one.
 */
static const enum breaker_state core_transitions[][2] = {
	{ BS_CLOSED, BS_OPEN },
	{ BS_OPEN, BS_HALF_OPEN },
	{ BS_HALF_OPEN, BS_CLOSED },
	{ BS_HALF_OPEN, BS_OPEN },
};

/* Room for any value's text: a 20-digit integer or a double with nine places. */
#define VALUE_TEXT 64

/* Room for a sample's line as a rule; a longer one is written the slow way. */
#define LINE_TEXT 1024

static void family_of(FILE *out, bool openmetrics, const struct metrics_family *f)
{
	size_t len = strlen(f->name);

	/* OpenMetrics names a counter family without the _total its samples carry. */
	if (openmetrics && !strcmp(f->type, "counter") && len > 6 && !strcmp(f->name + len - 6, "_total"))
		len -= 6;
	fprintf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, f->name, f->help, (int)len,
		f->name, f->type);
}

/*
 * A scrape of 10,000 destinations writes 400,000 samples: printf's parsing
 * and the FILE's lock were most of its time. A sample's line is built by
 * hand and written with one unlocked call (the FILE is the rendering
 * thread's alone); integers and zeros are formatted without printf.
 */

/* v in decimal, as %llu writes it. */
static void u64_text(char *buf, uint64_t v)
{
	char rev[20];
	size_t n = 0, i;

	do {
		rev[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = rev[n - 1 - i];
	buf[n] = '\0';
}

/* d with `places` decimals, as %.*f writes it: by printf, unless it is +0. */
static void fixed_text(char *buf, double d, int places)
{
	if (d == 0 && !signbit(d)) {
		buf[0] = '0';
		buf[1] = '.';
		memset(buf + 2, '0', places);
		buf[2 + places] = '\0';
	} else {
		snprintf(buf, VALUE_TEXT, "%.*f", places, d);
	}
}

/* The text of the value at base + field, read as `value` says; returns whether it is zero. */
static bool value_text(char *buf, const void *base, size_t field, enum metrics_value value)
{
	const void *p = (const char *)base + field;
	uint64_t u;
	double d;

	switch (value) {
	case MV_U64:
	case MV_NS_SECONDS:
		memcpy(&u, p, sizeof(u));
		if (value == MV_U64)
			u64_text(buf, u);
		else
			fixed_text(buf, u / 1e9, 9);
		return !u;
	case MV_U32:
		u64_text(buf, *(const uint32_t *)p);
		return !*(const uint32_t *)p;
	case MV_BOOL:
		u64_text(buf, *(const bool *)p);
		return !*(const bool *)p;
	case MV_I64:
		snprintf(buf, VALUE_TEXT, "%lld", (long long)*(const int64_t *)p);
		return !*(const int64_t *)p;
	case MV_SECONDS:
	case MV_RATE:
	case MV_WALL:
		memcpy(&d, p, sizeof(d));
		fixed_text(buf, d, value == MV_SECONDS ? 6 : value == MV_RATE ? 4 : 3);
		return value != MV_WALL && !d;
	case MV_NONE:
		break;
	}
	buf[0] = '\0';
	return true;
}

/* Appends s to the line being built in buf (LINE_TEXT) at *len; false when it would not fit. */
static bool put(char *buf, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (*len + n > LINE_TEXT)
		return false;
	memcpy(buf + *len, s, n);
	*len += n;
	return true;
}

/* name{circuit_name="circuit",extra} value, built first and written with one call. */
static void line(FILE *out, const char *name, const char *circuit, const char *extra,
		 const char *value)
{
	char buf[LINE_TEXT];
	size_t len = 0;
	bool fits = put(buf, &len, name) && put(buf, &len, "{circuit_name=\"") &&
		    put(buf, &len, circuit) && put(buf, &len, extra ? "\"," : "\"} ");

	if (extra)
		fits = fits && put(buf, &len, extra) && put(buf, &len, "} ");
	fits = fits && put(buf, &len, value) && put(buf, &len, "\n");
	if (fits) {
		fwrite_unlocked(buf, 1, len, out);
		return;
	}
	fprintf(out, "%s{circuit_name=\"%s\"%s%s} %s\n", name, circuit, extra ? "," : "",
		extra ? extra : "", value);
}

/*
 * One sample of a per-destination family: name{circuit_name="...",extra}
 * value. Compact mode leaves out the zero ones.
 */
static void sample(FILE *out, const struct metrics_agent *agent, const char *name,
		   const char *circuit, const char *extra, bool zero, const char *value)
{
	if (!agent->compact || !zero)
		line(out, name, circuit, extra, value);
}

/* A counter sample; the family's samples share its name. */
static void count(FILE *out, const struct metrics_agent *agent, const char *name,
		  const char *circuit, const char *extra, uint64_t v)
{
	char text[VALUE_TEXT];

	u64_text(text, v);
	sample(out, agent, name, circuit, extra, !v, text);
}

static bool is_core_transition(int from, int to)
{
	for (size_t i = 0; i < sizeof(core_transitions) / sizeof(core_transitions[0]); i++)
		if ((int)core_transitions[i][0] == from && (int)core_transitions[i][1] == to)
			return true;
	return false;
}

static void build_info(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		       const struct metrics_dst *dsts, size_t n)
{
	fprintf(out, "%s{version=\"%s\",kernel=\"%s\",refusal=\"%s\"} 1\n", f->name,
		agent->version, agent->kernel,
		agent->refuses_with_econnrefused ? "ECONNREFUSED" : "EPERM");
}

static void destinations(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
			 const struct metrics_dst *dsts, size_t n)
{
	fprintf(out, "%s %zu\n", f->name, n);
}

/* An agent-wide value, struct metrics_agent's field f->field: always written. */
static void agent_value(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
			const struct metrics_dst *dsts, size_t n)
{
	char text[VALUE_TEXT];

	value_text(text, agent, f->field, f->value);
	fprintf(out, "%s %s\n", f->name, text);
}

static void reloads(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		    const struct metrics_dst *dsts, size_t n)
{
	fprintf(out, "%s{result=\"success\"} %llu\n", f->name, (unsigned long long)agent->reloads_ok);
	fprintf(out, "%s{result=\"failure\"} %llu\n", f->name, (unsigned long long)agent->reloads_failed);
}

/* One sample per BPF program: struct kb_prog_stats's field f->field. */
static void program_value(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
			  const struct metrics_dst *dsts, size_t n)
{
	char text[VALUE_TEXT];

	for (size_t i = 0; i < agent->n_progs; i++) {
		value_text(text, &agent->progs[i], f->field, f->value);
		fprintf(out, "%s{program=\"%s\"} %s\n", f->name, agent->progs[i].name, text);
	}
}

/* One sample per destination: struct metrics_dst's field f->field. */
static void dst_value(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		      const struct metrics_dst *dsts, size_t n)
{
	char text[VALUE_TEXT];

	for (size_t i = 0; i < n; i++) {
		bool zero = value_text(text, &dsts[i], f->field, f->value);

		sample(out, agent, f->name, dsts[i].name, NULL, zero, text);
	}
}

/* A destination's counters; none (NULL) reads as zero. */
static const struct kb_dst_stats *stats_of(const struct metrics_dst *d)
{
	static const struct kb_dst_stats none;

	return d->stats ? d->stats : &none;
}

/* A per-destination counter kept in kb_dst_stats: f->field is its offset there. */
static void dst_stat(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		     const struct metrics_dst *dsts, size_t n)
{
	char text[VALUE_TEXT];

	for (size_t i = 0; i < n; i++) {
		bool zero = value_text(text, stats_of(&dsts[i]), f->field, f->value);

		sample(out, agent, f->name, dsts[i].name, NULL, zero, text);
	}
}

static void dst_state(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		      const struct metrics_dst *dsts, size_t n)
{
	char extra[BS_MAX][32];

	for (int s = 0; s < BS_MAX; s++)
		snprintf(extra[s], sizeof(extra[s]), "state=\"%s\"", breaker_state_name(s));
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < BS_MAX; s++) {
			bool on = dsts[i].state == (enum breaker_state)s;

			sample(out, agent, f->name, dsts[i].name, extra[s], !on, on ? "1" : "0");
		}
}

static void dst_transitions(FILE *out, const struct metrics_family *f,
			    const struct metrics_agent *agent, const struct metrics_dst *dsts, size_t n)
{
	char extra[BS_MACHINE][BS_MACHINE][64];
	bool core[BS_MACHINE][BS_MACHINE];

	for (int from = 0; from < BS_MACHINE; from++)
		for (int to = 0; to < BS_MACHINE; to++) {
			snprintf(extra[from][to], sizeof(extra[from][to]),
				 "old_state=\"%s\",new_state=\"%s\"", breaker_state_name(from),
				 breaker_state_name(to));
			core[from][to] = is_core_transition(from, to);
		}
	for (size_t i = 0; i < n; i++)
		for (int from = 0; from < BS_MACHINE; from++)
			for (int to = 0; to < BS_MACHINE; to++) {
				uint64_t v = dsts[i].transitions[from][to];

				if (v || core[from][to])
					count(out, agent, f->name, dsts[i].name, extra[from][to], v);
			}
}

static void dst_connects(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
			 const struct metrics_dst *dsts, size_t n)
{
	char extra[KB_RES_MAX][32];

	for (int r = 0; r < KB_RES_MAX; r++)
		snprintf(extra[r], sizeof(extra[r]), "result=\"%s\"", breaker_result_name(r));
	for (size_t i = 0; i < n; i++)
		for (int r = 0; r < KB_RES_MAX; r++)
			count(out, agent, f->name, dsts[i].name, extra[r], stats_of(&dsts[i])->connects[r]);
}

static void dst_resets(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		       const struct metrics_dst *dsts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		count(out, agent, f->name, dsts[i].name, "direction=\"received\"", stats_of(&dsts[i])->resets_rx);
		count(out, agent, f->name, dsts[i].name, "direction=\"sent\"", stats_of(&dsts[i])->resets_tx);
	}
}

/* A histogram whose buckets are all written once it has a sample, even in compact mode. */
static void dst_latency(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
			const struct metrics_dst *dsts, size_t n)
{
	enum { BUCKETS = sizeof(bucket_log2_us) / sizeof(bucket_log2_us[0]) };
	char bucket[128], sum[128], count_name[128], le[BUCKETS + 1][32], text[VALUE_TEXT];

	snprintf(bucket, sizeof(bucket), "%s_bucket", f->name);
	snprintf(sum, sizeof(sum), "%s_sum", f->name);
	snprintf(count_name, sizeof(count_name), "%s_count", f->name);
	for (int b = 0; b < BUCKETS; b++)
		snprintf(le[b], sizeof(le[b]), "le=\"%.6f\"", (double)(1ULL << bucket_log2_us[b]) / 1e6);
	snprintf(le[BUCKETS], sizeof(le[BUCKETS]), "le=\"+Inf\"");
	for (size_t i = 0; i < n; i++) {
		const struct kb_dst_stats *st = stats_of(&dsts[i]);
		uint64_t cum = 0, total = 0;
		unsigned slot = 0;

		for (int s = 0; s < KB_LAT_SLOTS; s++)
			total += st->lat_slots[s];
		if (agent->compact && !total)
			continue;
		for (int b = 0; b < BUCKETS; b++) {
			for (; slot < bucket_log2_us[b]; slot++)
				cum += st->lat_slots[slot];
			u64_text(text, cum);
			line(out, bucket, dsts[i].name, le[b], text);
		}
		u64_text(text, total);
		line(out, bucket, dsts[i].name, le[BUCKETS], text);
		fixed_text(text, (double)st->lat_sum_ns / 1e9, 9);
		line(out, sum, dsts[i].name, NULL, text);
		u64_text(text, total);
		line(out, count_name, dsts[i].name, NULL, text);
	}
}

/*
 * workload="name" with the name escaped as the text format wants: a
 * cgroup's name may hold any byte but '/' and NUL.
 */
static void wl_label(char *buf, size_t len, const char *name, const char *more)
{
	size_t o = snprintf(buf, len, "workload=\"");

	for (const char *p = name; *p && o + 3 < len; p++) {
		if (*p == '\\' || *p == '"' || *p == '\n')
			buf[o++] = '\\';
		buf[o++] = *p == '\n' ? 'n' : *p;
	}
	snprintf(buf + o, len - o, "\"%s%s", more ? "," : "", more ? more : "");
}

/* Room for workload="name",more: every name byte escaped, and the rest. */
#define WL_LABEL_TEXT (2 * WL_NAME_MAX + 64)

static void wl_connects(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
			const struct metrics_dst *dsts, size_t n)
{
	char extra[WL_LABEL_TEXT], result[32];

	for (size_t i = 0; i < n; i++)
		for (size_t w = 0; w < dsts[i].n_wl; w++)
			for (int r = 0; r < KB_RES_MAX; r++) {
				snprintf(result, sizeof(result), "result=\"%s\"", breaker_result_name(r));
				wl_label(extra, sizeof(extra), dsts[i].wl[w].name, result);
				count(out, agent, f->name, dsts[i].name, extra, dsts[i].wl[w].st.connects[r]);
			}
}

static void wl_blocked(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		       const struct metrics_dst *dsts, size_t n)
{
	char extra[WL_LABEL_TEXT];

	for (size_t i = 0; i < n; i++)
		for (size_t w = 0; w < dsts[i].n_wl; w++) {
			wl_label(extra, sizeof(extra), dsts[i].wl[w].name, NULL);
			count(out, agent, f->name, dsts[i].name, extra, dsts[i].wl[w].st.blocked);
		}
}

static void wl_state(FILE *out, const struct metrics_family *f, const struct metrics_agent *agent,
		     const struct metrics_dst *dsts, size_t n)
{
	char extra[WL_LABEL_TEXT], state[32];

	for (size_t i = 0; i < n; i++)
		for (size_t w = 0; w < dsts[i].n_wl; w++)
			for (int s = 0; dsts[i].wl[w].state >= 0 && s < BS_MAX; s++) {
				bool on = dsts[i].wl[w].state == s;

				snprintf(state, sizeof(state), "state=\"%s\"", breaker_state_name(s));
				wl_label(extra, sizeof(extra), dsts[i].wl[w].name, state);
				sample(out, agent, f->name, dsts[i].name, extra, !on, on ? "1" : "0");
			}
}

#define AGENT(f, v) .samples = agent_value, .field = offsetof(struct metrics_agent, f), .value = (v)
#define PROG(f, v) .samples = program_value, .field = offsetof(struct kb_prog_stats, f), .value = (v)
#define DST(f, v) .samples = dst_value, .field = offsetof(struct metrics_dst, f), .value = (v)
#define STAT(f, v) .samples = dst_stat, .field = offsetof(struct kb_dst_stats, f), .value = (v)

const struct metrics_family metrics_families[] = {
	{ "kbreaker_build_info", "gauge", NULL,
	  "kbreaker version, the kernel it runs on and the errno blocked connects get; always 1.",
	  .samples = build_info },
	{ "kbreaker_destinations", "gauge", NULL, "Configured destinations (circuits).",
	  .samples = destinations },
	{ "kbreaker_breakers", "gauge", NULL,
	  "Breakers in use: one per destination, one per address with per_address.",
	  AGENT(slots_used, MV_U64) },
	{ "kbreaker_breakers_capacity", "gauge", NULL,
	  "Breakers the kernel maps can hold (max_destinations).", AGENT(capacity, MV_U32) },
	{ "kbreaker_config_reload_success", "gauge", NULL,
	  "Whether the last configuration load or reload was accepted.", AGENT(reload_ok, MV_BOOL) },
	{ "kbreaker_config_last_reload_success_timestamp_seconds", "gauge", "seconds",
	  "When the running configuration was loaded.", AGENT(last_reload_ok_wall, MV_I64) },
	{ "kbreaker_config_reloads_total", "counter", NULL, "Configuration reloads by result.",
	  .samples = reloads },
	{ "kbreaker_resolve_errors_total", "counter", NULL,
	  "Failed resolutions of destination names; the last good addresses stay in force.",
	  AGENT(resolve_errors, MV_U64) },
	{ "kbreaker_map_errors_total", "counter", NULL, "Failed writes to the kernel maps.",
	  AGENT(map_errors, MV_U64) },
	{ "kbreaker_probe_permits_returned_total", "counter", NULL,
	  "Half-open probe permits given back: their connects failed before sending a SYN.",
	  AGENT(permits_returned, MV_U64) },
	{ "kbreaker_breakers_restored", "gauge", NULL,
	  "Breakers taken over from the previous run at start (state_dir).", AGENT(restored, MV_U64) },
	{ "kbreaker_poll_duration_seconds", "gauge", "seconds", "How long the agent's last poll took.",
	  AGENT(last_poll_seconds, MV_SECONDS) },
	{ "kbreaker_scrape_duration_seconds", "gauge", "seconds",
	  "How long rendering the previous /metrics took.", AGENT(last_scrape_seconds, MV_SECONDS) },
	{ "kbreaker_bpf_program_runs_total", "counter", NULL,
	  "Runs of each BPF program; counted while kernel.bpf_stats_enabled is 1.",
	  PROG(run_cnt, MV_U64) },
	{ "kbreaker_bpf_program_run_seconds_total", "counter", "seconds",
	  "Time spent in each BPF program; counted while kernel.bpf_stats_enabled is 1.",
	  PROG(run_time_ns, MV_NS_SECONDS) },
	{ "kbreaker_bpf_program_recursion_misses_total", "counter", NULL,
	  "Runs of each BPF program the kernel skipped because it was already running on that "
	  "CPU; kbreaker's programs run where the kernel never skips them, so this stays 0.",
	  PROG(recursion_misses, MV_U64) },
	{ "kbreaker_events_lost_total", "counter", NULL,
	  "Connect outcomes the kernel could not queue for the breakers; counted anyway, applied late.",
	  AGENT(events_lost, MV_U64) },
	{ "kbreaker_connects_failopen_total", "counter", NULL,
	  "Connects to open destinations the hooks let through because the agent had not run its "
	  "loop for failopen_after (stopped or hung): it could not have ended the block.",
	  AGENT(connects_failopen, MV_U64) },
	{ "kbreaker_fastopen_connect_ignored_total", "counter", NULL,
	  "setsockopt(TCP_FASTOPEN_CONNECT, 1) calls in the enforcement cgroup turned into 0 "
	  "(fastopen_connect: ignore), so that every SYN passes a connect hook.",
	  AGENT(fastopen_ignored, MV_U64) },
	{ "kbreaker_fastopen_connects_refused_total", "counter", NULL,
	  "Connects to enforced destinations refused because their socket had TCP_FASTOPEN_CONNECT "
	  "set where the setsockopt program does not run (a 32-bit syscall, before the agent "
	  "started); fastopen_connect: ignore.", AGENT(fastopen_refused, MV_U64) },
	{ "kbreaker_log_lines_dropped_total", "counter", NULL,
	  "Log lines dropped because stderr (a pipe, terminal or journald socket) did not take "
	  "them: the agent does not wait on a stalled reader.", AGENT(log_dropped, MV_U64) },
	{ "circuit_breaker_state", "gauge", NULL,
	  "Breaker state: 1 for the current state, 0 for the others.", .samples = dst_state },
	{ "circuit_breaker_state_transition_total", "counter", NULL, "Breaker state transitions.",
	  .samples = dst_transitions },
	{ "circuit_breaker_failure_rate", "gauge", NULL,
	  "Failed share of the calls in the breaker's window, 0 to 1.", DST(failure_rate, MV_RATE) },
	{ "circuit_breaker_slow_call_rate", "gauge", NULL,
	  "Share of the calls in the breaker's window slower than slow_call_duration_threshold, 0 to 1.",
	  DST(slow_call_rate, MV_RATE) },
	{ "circuit_breaker_consecutive_failures", "gauge", NULL,
	  "Failures in a row while closed: failed connects, and resets where they are failures.",
	  DST(consecutive_failures, MV_U32) },
	{ "circuit_breaker_last_transition_timestamp_seconds", "gauge", "seconds",
	  "When the breaker last changed state (start-up if never).",
	  DST(last_transition_wall, MV_WALL) },
	{ "kbreaker_tcp_connects_total", "counter", NULL,
	  "TCP connects to the destination by outcome, as the kernel saw them.",
	  .samples = dst_connects },
	{ "kbreaker_connects_blocked_total", "counter", NULL,
	  "TCP connects the breaker refused with ECONNREFUSED before a packet left.",
	  STAT(blocked, MV_U64) },
	{ "kbreaker_connects_would_block_total", "counter", NULL,
	  "Observe mode: TCP connects the breaker would have refused.",
	  STAT(would_block, MV_U64) },
	{ "kbreaker_trips_denied_total", "counter", NULL,
	  "Trips the blast-radius guard (max_open_percent) held back: the breaker stayed closed.",
	  DST(trips_denied, MV_U64) },
	{ "kbreaker_tcp_resets_total", "counter", NULL,
	  "TCP resets on connections this host opened to the destination, by direction.",
	  .samples = dst_resets },
	{ "kbreaker_tcp_retransmits_total", "counter", NULL,
	  "TCP segments retransmitted on connections this host opened to the destination.",
	  STAT(retransmits, MV_U64) },
	{ "kbreaker_tcp_connect_duration_seconds", "histogram", "seconds",
	  "Time from SYN sent to ESTABLISHED for successful connects.", .samples = dst_latency },
	{ "kbreaker_workloads", "gauge", NULL,
	  "Workloads (cgroups cut at workloads.depth) with their own workload label.",
	  AGENT(wl_labelled, MV_U32), .workloads = true },
	{ "kbreaker_workloads_folded", "gauge", NULL,
	  "Workloads past workloads.max, counted as workload=\"other\".",
	  AGENT(wl_folded, MV_U32), .workloads = true },
	{ "kbreaker_workloads_reclaimed_total", "counter", NULL,
	  "Workload labels given back because their cgroup was gone; the next new cgroup takes one.",
	  AGENT(wl_reclaimed, MV_U64), .workloads = true },
	{ "kbreaker_workload_tcp_connects_total", "counter", NULL,
	  "TCP connects to the destination by workload and outcome, as the kernel saw them.",
	  .samples = wl_connects, .workloads = true },
	{ "kbreaker_workload_connects_blocked_total", "counter", NULL,
	  "TCP connects of the workload the breaker refused with ECONNREFUSED before a packet left.",
	  .samples = wl_blocked, .workloads = true },
	{ "circuit_breaker_workload_state", "gauge", NULL,
	  "breaker: per_workload destinations: each workload's breaker state, 1 for the current one.",
	  .samples = wl_state, .workloads = true },
};

const size_t metrics_n_families = sizeof(metrics_families) / sizeof(metrics_families[0]);

int metrics_render(FILE *out, const struct metrics_agent *agent,
		   const struct metrics_dst *dsts, size_t n)
{
	for (const struct metrics_family *f = metrics_families; f < metrics_families + metrics_n_families; f++) {
		if (f->workloads && !agent->wl_on)
			continue;
		family_of(out, agent->openmetrics, f);
		f->samples(out, f, agent, dsts, n);
	}
	if (agent->openmetrics)
		fputs("# EOF\n", out);
	return ferror(out) ? -EIO : 0;
}
