// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include "metrics.h"

/*
 * Histogram buckets, as log2 slots of microseconds: slot i holds
 * [2^i, 2^(i+1)) us, so bucket le=2^k us is the sum of slots 0..k-1.
 * Every other power of two from 64 us to 4.2 s keeps the series per
 * destination at 11 while covering loopback to a transcontinental SYN retry.
 */
static const unsigned bucket_log2_us[] = { 6, 8, 10, 12, 14, 16, 18, 20, 22 };

/* The transitions the machine makes; always exported so rate() sees the first one. */
static const enum breaker_state core_transitions[][2] = {
	{ BS_CLOSED, BS_OPEN },
	{ BS_OPEN, BS_HALF_OPEN },
	{ BS_HALF_OPEN, BS_CLOSED },
	{ BS_HALF_OPEN, BS_OPEN },
};

static void family_of(FILE *out, bool openmetrics, const char *name, const char *type,
		      const char *help)
{
	size_t len = strlen(name);

	/* OpenMetrics names a counter family without the _total its samples carry. */
	if (openmetrics && !strcmp(type, "counter") && len > 6 && !strcmp(name + len - 6, "_total"))
		len -= 6;
	fprintf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len, name, type);
}

#define family(out, name, type, help) family_of(out, agent->openmetrics, name, type, help)

/*
 * One sample of a per-destination family: name{circuit_name="...",extra}
 * value. Compact mode leaves out the zero ones.
 */
__attribute__((format(printf, 7, 8)))
static void sample(FILE *out, const struct metrics_agent *agent, const char *name,
		   const char *circuit, const char *extra, bool zero, const char *fmt, ...)
{
	va_list ap;

	if (agent->compact && zero)
		return;
	fprintf(out, "%s{circuit_name=\"%s\"%s%s} ", name, circuit, extra ? "," : "",
		extra ? extra : "");
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

/* A counter sample; the family's samples share its name. */
static void count(FILE *out, const struct metrics_agent *agent, const char *name,
		  const char *circuit, const char *extra, uint64_t v)
{
	sample(out, agent, name, circuit, extra, !v, "%llu", (unsigned long long)v);
}

static int is_core_transition(int from, int to)
{
	for (size_t i = 0; i < sizeof(core_transitions) / sizeof(core_transitions[0]); i++)
		if ((int)core_transitions[i][0] == from && (int)core_transitions[i][1] == to)
			return 1;
	return 0;
}

int metrics_render(FILE *out, const struct metrics_agent *agent,
		   const struct metrics_dst *dsts, size_t n)
{
	family(out, "kbreaker_build_info", "gauge",
	       "kbreaker version, the kernel it runs on and the errno blocked connects get; always 1.");
	fprintf(out, "kbreaker_build_info{version=\"%s\",kernel=\"%s\",refusal=\"%s\"} 1\n",
		agent->version, agent->kernel,
		agent->refuses_with_econnrefused ? "ECONNREFUSED" : "EPERM");

	family(out, "kbreaker_destinations", "gauge", "Configured destinations (circuits).");
	fprintf(out, "kbreaker_destinations %zu\n", n);

	family(out, "kbreaker_breakers", "gauge",
	       "Breakers in use: one per destination, one per address with per_address.");
	fprintf(out, "kbreaker_breakers %llu\n", (unsigned long long)agent->slots_used);

	family(out, "kbreaker_breakers_capacity", "gauge",
	       "Breakers the kernel maps can hold (max_destinations).");
	fprintf(out, "kbreaker_breakers_capacity %u\n", agent->capacity);

	family(out, "kbreaker_config_reload_success", "gauge",
	       "Whether the last configuration load or reload was accepted.");
	fprintf(out, "kbreaker_config_reload_success %d\n", agent->reload_ok);

	family(out, "kbreaker_config_last_reload_success_timestamp_seconds", "gauge",
	       "When the running configuration was loaded.");
	fprintf(out, "kbreaker_config_last_reload_success_timestamp_seconds %lld\n",
		(long long)agent->last_reload_ok_wall);

	family(out, "kbreaker_config_reloads_total", "counter", "Configuration reloads by result.");
	fprintf(out, "kbreaker_config_reloads_total{result=\"success\"} %llu\n",
		(unsigned long long)agent->reloads_ok);
	fprintf(out, "kbreaker_config_reloads_total{result=\"failure\"} %llu\n",
		(unsigned long long)agent->reloads_failed);

	family(out, "kbreaker_resolve_errors_total", "counter",
	       "Failed resolutions of destination names; the last good addresses stay in force.");
	fprintf(out, "kbreaker_resolve_errors_total %llu\n", (unsigned long long)agent->resolve_errors);

	family(out, "kbreaker_map_errors_total", "counter", "Failed writes to the kernel maps.");
	fprintf(out, "kbreaker_map_errors_total %llu\n", (unsigned long long)agent->map_errors);

	family(out, "kbreaker_breakers_restored", "gauge",
	       "Breakers taken over from the previous run at start (state_dir).");
	fprintf(out, "kbreaker_breakers_restored %llu\n", (unsigned long long)agent->restored);

	family(out, "kbreaker_poll_duration_seconds", "gauge", "How long the agent's last poll took.");
	fprintf(out, "kbreaker_poll_duration_seconds %.6f\n", agent->last_poll_seconds);

	family(out, "kbreaker_scrape_duration_seconds", "gauge",
	       "How long rendering the previous /metrics took.");
	fprintf(out, "kbreaker_scrape_duration_seconds %.6f\n", agent->last_scrape_seconds);

	family(out, "kbreaker_bpf_program_runs_total", "counter",
	       "Runs of each BPF program; counted while kernel.bpf_stats_enabled is 1.");
	for (size_t i = 0; i < agent->n_progs; i++)
		fprintf(out, "kbreaker_bpf_program_runs_total{program=\"%s\"} %llu\n",
			agent->progs[i].name, (unsigned long long)agent->progs[i].run_cnt);

	family(out, "kbreaker_bpf_program_run_seconds_total", "counter",
	       "Time spent in each BPF program; counted while kernel.bpf_stats_enabled is 1.");
	for (size_t i = 0; i < agent->n_progs; i++)
		fprintf(out, "kbreaker_bpf_program_run_seconds_total{program=\"%s\"} %.9f\n",
			agent->progs[i].name, agent->progs[i].run_time_ns / 1e9);

	family(out, "kbreaker_bpf_program_recursion_misses_total", "counter",
	       "Runs of each BPF program the kernel skipped because it was already running on that "
	       "CPU (an interrupt's softirq); an outcome can go uncounted this way.");
	for (size_t i = 0; i < agent->n_progs; i++)
		fprintf(out, "kbreaker_bpf_program_recursion_misses_total{program=\"%s\"} %llu\n",
			agent->progs[i].name, (unsigned long long)agent->progs[i].recursion_misses);

	family(out, "kbreaker_events_lost_total", "counter",
	       "Connect outcomes the kernel could not queue for the breakers; counted anyway, applied late.");
	fprintf(out, "kbreaker_events_lost_total %llu\n", (unsigned long long)agent->events_lost);

	family(out, "circuit_breaker_state", "gauge",
	       "Breaker state: 1 for the current state, 0 for the others.");
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < BS_MAX; s++) {
			char extra[32];
			int on = dsts[i].state == (enum breaker_state)s;

			snprintf(extra, sizeof(extra), "state=\"%s\"", breaker_state_name(s));
			sample(out, agent, "circuit_breaker_state", dsts[i].name, extra, !on, "%d", on);
		}

	family(out, "circuit_breaker_state_transition_total", "counter",
	       "Breaker state transitions.");
	for (size_t i = 0; i < n; i++)
		for (int from = 0; from < BS_MAX; from++)
			for (int to = 0; to < BS_MAX; to++) {
				uint64_t v = dsts[i].transitions[from][to];
				char extra[64];

				if (!v && !is_core_transition(from, to))
					continue;
				snprintf(extra, sizeof(extra), "old_state=\"%s\",new_state=\"%s\"",
					 breaker_state_name(from), breaker_state_name(to));
				count(out, agent, "circuit_breaker_state_transition_total", dsts[i].name,
				      extra, v);
			}

	family(out, "circuit_breaker_failure_rate", "gauge",
	       "Failed share of the calls in the breaker's window, 0 to 1.");
	for (size_t i = 0; i < n; i++)
		sample(out, agent, "circuit_breaker_failure_rate", dsts[i].name, NULL,
		       !dsts[i].failure_rate, "%.4f", dsts[i].failure_rate);

	family(out, "circuit_breaker_slow_call_rate", "gauge",
	       "Share of the calls in the breaker's window slower than slow_call_duration_threshold, 0 to 1.");
	for (size_t i = 0; i < n; i++)
		sample(out, agent, "circuit_breaker_slow_call_rate", dsts[i].name, NULL,
		       !dsts[i].slow_call_rate, "%.4f", dsts[i].slow_call_rate);

	family(out, "circuit_breaker_consecutive_failures", "gauge",
	       "Failed connects in a row while closed.");
	for (size_t i = 0; i < n; i++)
		count(out, agent, "circuit_breaker_consecutive_failures", dsts[i].name, NULL,
		      dsts[i].consecutive_failures);

	family(out, "circuit_breaker_last_transition_timestamp_seconds", "gauge",
	       "When the breaker last changed state (start-up if never).");
	for (size_t i = 0; i < n; i++)
		sample(out, agent, "circuit_breaker_last_transition_timestamp_seconds", dsts[i].name,
		       NULL, false, "%.3f", dsts[i].last_transition_wall);

	family(out, "kbreaker_tcp_connects_total", "counter",
	       "TCP connects to the destination by outcome, as the kernel saw them.");
	for (size_t i = 0; i < n; i++)
		for (int r = 0; r < KB_RES_MAX; r++) {
			char extra[32];

			snprintf(extra, sizeof(extra), "result=\"%s\"", breaker_result_name(r));
			count(out, agent, "kbreaker_tcp_connects_total", dsts[i].name, extra,
			      dsts[i].stats.connects[r]);
		}

	family(out, "kbreaker_connects_blocked_total", "counter",
	       "TCP connects the breaker refused with ECONNREFUSED before a packet left.");
	for (size_t i = 0; i < n; i++)
		count(out, agent, "kbreaker_connects_blocked_total", dsts[i].name, NULL,
		      dsts[i].stats.blocked);

	family(out, "kbreaker_connects_would_block_total", "counter",
	       "Observe mode: TCP connects the breaker would have refused.");
	for (size_t i = 0; i < n; i++)
		count(out, agent, "kbreaker_connects_would_block_total", dsts[i].name, NULL,
		      dsts[i].stats.would_block);

	family(out, "kbreaker_tcp_resets_total", "counter",
	       "TCP resets on connections this host opened to the destination, by direction.");
	for (size_t i = 0; i < n; i++) {
		count(out, agent, "kbreaker_tcp_resets_total", dsts[i].name, "direction=\"received\"",
		      dsts[i].stats.resets_rx);
		count(out, agent, "kbreaker_tcp_resets_total", dsts[i].name, "direction=\"sent\"",
		      dsts[i].stats.resets_tx);
	}

	family(out, "kbreaker_tcp_retransmits_total", "counter",
	       "TCP segments retransmitted on connections this host opened to the destination.");
	for (size_t i = 0; i < n; i++)
		count(out, agent, "kbreaker_tcp_retransmits_total", dsts[i].name, NULL,
		      dsts[i].stats.retransmits);

	family(out, "kbreaker_tcp_connect_duration_seconds", "histogram",
	       "Time from SYN sent to ESTABLISHED for successful connects.");
	for (size_t i = 0; i < n; i++) {
		const struct kb_dst_stats *st = &dsts[i].stats;
		unsigned long long cum = 0, total = 0;
		unsigned slot = 0;

		for (int s = 0; s < KB_LAT_SLOTS; s++)
			total += st->lat_slots[s];
		if (agent->compact && !total)
			continue;
		for (size_t b = 0; b < sizeof(bucket_log2_us) / sizeof(bucket_log2_us[0]); b++) {
			for (; slot < bucket_log2_us[b]; slot++)
				cum += st->lat_slots[slot];
			fprintf(out, "kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"%s\","
				"le=\"%.6f\"} %llu\n", dsts[i].name,
				(double)(1ULL << bucket_log2_us[b]) / 1e6, cum);
		}
		fprintf(out, "kbreaker_tcp_connect_duration_seconds_bucket{circuit_name=\"%s\",le=\"+Inf\"} %llu\n",
			dsts[i].name, total);
		fprintf(out, "kbreaker_tcp_connect_duration_seconds_sum{circuit_name=\"%s\"} %.9f\n",
			dsts[i].name, (double)st->lat_sum_ns / 1e9);
		fprintf(out, "kbreaker_tcp_connect_duration_seconds_count{circuit_name=\"%s\"} %llu\n",
			dsts[i].name, total);
	}
	if (agent->openmetrics)
		fputs("# EOF\n", out);
	return ferror(out) ? -EIO : 0;
}
