// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What the HTTP thread asks of the agent: /metrics, /status, /healthz. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "agent_int.h"
#include "bpf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

/* Worst first: a group shows the most severe of its members' states. */
static int severity(enum breaker_state s)
{
	static const int rank[BS_MAX] = {
		[BS_FORCED_OPEN] = 6, [BS_OPEN] = 5, [BS_HALF_OPEN] = 4,
		[BS_CLOSED] = 3, [BS_METRICS_ONLY] = 2, [BS_DISABLED] = 1,
	};

	return (unsigned)s < BS_MAX ? rank[s] : 0;
}

/* One circuit as the renderers see it: its slots folded together. */
struct circuit_view {
	enum breaker_state state;
	uint64_t transitions[BS_MAX][BS_MAX];
	struct kb_dst_stats stats;
	double failure_rate, slow_call_rate;
	uint32_t consecutive_failures;
	uint64_t since_ns;		/* latest transition among its slots */
	uint64_t next_half_open_ns;	/* earliest, when open */
};

static void fold_slot(struct circuit_view *v, const struct agent_slot *s,
		      const struct kb_dst_stats *st, uint64_t now, bool first)
{
	enum breaker_state ps = breaker_public_state(&s->br);
	const __u64 *src = (const __u64 *)st;
	__u64 *dst = (__u64 *)&v->stats;
	uint64_t dl = breaker_deadline(&s->br);
	double fr = breaker_failure_rate(&s->br, now), sr = breaker_slow_call_rate(&s->br, now);

	if (first || severity(ps) > severity(v->state))
		v->state = ps;
	for (int i = 0; i < BS_MAX; i++)
		for (int j = 0; j < BS_MAX; j++)
			v->transitions[i][j] += s->br.transitions[i][j];
	for (size_t w = 0; w < sizeof(*st) / sizeof(__u64); w++)
		dst[w] += src[w];
	if (fr > v->failure_rate)
		v->failure_rate = fr;
	if (sr > v->slow_call_rate)
		v->slow_call_rate = sr;
	if (s->br.consecutive_failures > v->consecutive_failures)
		v->consecutive_failures = s->br.consecutive_failures;
	if (s->br.state_since_ns > v->since_ns)
		v->since_ns = s->br.state_since_ns;
	if (s->br.state == BS_OPEN && dl && (!v->next_half_open_ns || dl < v->next_half_open_ns))
		v->next_half_open_ns = dl;
}

/* Fold every circuit's slots (stats read from the maps). Lock held. */
static int build_views(struct agent *a, struct circuit_view *views, uint64_t now)
{
	struct kb_dst_stats *st;
	bool *seen;
	int err;

	seen = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*seen));
	st = calloc(a->n_slots ? a->n_slots : 1, sizeof(*st));
	err = seen && st ? kb_bpf_read_all_stats(a->bpf, a->n_slots, st) : -ENOMEM;
	if (err) {
		free(seen);
		free(st);
		return err;
	}
	for (size_t i = 0; i < a->n_slots; i++) {
		const struct agent_slot *s = &a->slots[i];
		struct circuit_view *v;

		if (!s->used)
			continue;
		v = &views[s->circuit];
		fold_slot(v, s, &st[i], now, !seen[s->circuit]);
		seen[s->circuit] = true;
	}
	for (size_t c = 0; c < a->n_circuits; c++)
		if (!seen[c])	/* a group with no address yet */
			views[c].state = a->circuits[c].cfg->policy.mode == MODE_OBSERVE ?
					 BS_METRICS_ONLY : BS_CLOSED;
	free(seen);
	free(st);
	return 0;
}

typedef int (*render_fn)(struct agent *a, FILE *out, const struct circuit_view *views,
			 uint64_t now);

/* Render under the lock into a malloc'd body. Returns 200 or -errno. */
static int render_body(struct agent *a, render_fn render, char **body, size_t *len)
{
	struct circuit_view *views;
	uint64_t now = clock_mono_ns();
	FILE *out;
	int err;

	*body = NULL;
	out = open_memstream(body, len);
	if (!out)
		return -errno;
	pthread_mutex_lock(&a->lock);
	views = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*views));
	err = views ? build_views(a, views, now) : -ENOMEM;
	if (!err)
		err = render(a, out, views, now);
	pthread_mutex_unlock(&a->lock);
	free(views);
	if (fclose(out) && !err)
		err = -errno;
	if (err) {
		log_err("http: render: %s", strerror(-err));
		free(*body);
		*body = NULL;
		return err;
	}
	return 200;
}

static int render_status(struct agent *a, FILE *out, const struct circuit_view *views, uint64_t now)
{
	struct status_dst *sd;
	int err;

	sd = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_circuits; i++) {
		const struct agent_circuit *c = &a->circuits[i];
		const struct circuit_view *v = &views[i];

		sd[i] = (struct status_dst){
			.name = c->cfg->name,
			.host = c->cfg->host,
			.addr = c->cfg->host_kind == HOST_NAME ? NULL : c->cfg->addr,
			.prefix_len = c->cfg->prefix_len,
			.port = c->cfg->port,
			.mode = c->cfg->policy.mode,
			.state = v->state,
			.since_ns = v->since_ns,
			.next_half_open_ns = v->next_half_open_ns,
			.consecutive_failures = v->consecutive_failures,
			.failure_rate = v->failure_rate,
			.stats = v->stats,
			.addrs = (const uint8_t (*)[16])c->addrs,
			.n_addrs = c->n_addrs,
		};
		if (c->members) {
			sd[i].member_states = calloc(c->n_addrs ? c->n_addrs : 1, sizeof(enum breaker_state));
			if (!sd[i].member_states) {
				err = -ENOMEM;
				goto out;
			}
			for (size_t k = 0; k < c->n_addrs; k++)
				sd[i].member_states[k] = breaker_public_state(&a->slots[c->members[k]].br);
		}
	}
	err = status_render(out, KB_VERSION, a->started_ns, now, sd, a->n_circuits);
out:
	for (size_t i = 0; i < a->n_circuits; i++)
		free(sd[i].member_states);
	free(sd);
	return err;
}

/* OpenMetrics when the Accept header names it (Prometheus asks for it first). */
static bool wants_openmetrics(const char *accept)
{
	return accept && strstr(accept, "application/openmetrics-text");
}

/* What /metrics shows of the agent itself. Lock held. */
static void metrics_info_fill(const struct agent *a, struct metrics_agent *info)
{
	info->events_lost = kb_bpf_lost_total(a->bpf);
	info->capacity = a->capacity;
	info->reload_ok = a->last_reload_ok;
	info->last_reload_ok_wall = a->last_reload_ok_wall;
	info->reloads_ok = a->reloads_ok;
	info->reloads_failed = a->reloads_failed;
	info->resolve_errors = a->resolve_errors;
	info->map_errors = a->map_errors;
	info->last_poll_seconds = a->last_poll_ns / 1e9;
	info->last_scrape_seconds = a->last_scrape_ns / 1e9;
	info->restored = a->restored;
	info->compact = a->cfg->metrics_compact;
	for (size_t i = 0; i < a->n_slots; i++)
		info->slots_used += a->slots[i].used;
}

/* The circuits as /metrics shows them, copied out of the agent. */
struct metrics_copy {
	size_t n;
	char (*names)[CONFIG_NAME_MAX];
	struct circuit_view *views;
	struct metrics_dst *md;
};

static void metrics_copy_free(struct metrics_copy *mc)
{
	free(mc->views);
	free(mc->names);
	free(mc->md);
}

/* Copy everything /metrics renders, under the lock. 0 or -errno. */
static int metrics_copy(struct agent *a, struct metrics_copy *mc, struct metrics_agent *info,
			uint64_t now, double wall_now)
{
	int err;

	pthread_mutex_lock(&a->lock);
	mc->n = a->n_circuits;
	mc->views = calloc(mc->n ? mc->n : 1, sizeof(*mc->views));
	mc->names = calloc(mc->n ? mc->n : 1, sizeof(*mc->names));
	mc->md = calloc(mc->n ? mc->n : 1, sizeof(*mc->md));
	err = mc->views && mc->names && mc->md ? build_views(a, mc->views, now) : -ENOMEM;
	if (!err)
		metrics_info_fill(a, info);
	for (size_t i = 0; !err && i < mc->n; i++) {
		const struct circuit_view *v = &mc->views[i];

		/* A reload may free the config once the lock is dropped: copy the name. */
		snprintf(mc->names[i], sizeof(mc->names[i]), "%s", a->circuits[i].cfg->name);
		mc->md[i] = (struct metrics_dst){
			.name = mc->names[i],
			.state = v->state,
			.transitions = v->transitions,
			.stats = v->stats,
			.failure_rate = v->failure_rate,
			.slow_call_rate = v->slow_call_rate,
			.consecutive_failures = v->consecutive_failures,
			.last_transition_wall = wall_now - (double)(now - v->since_ns) / 1e9,
		};
	}
	pthread_mutex_unlock(&a->lock);
	return err;
}

/*
 * /metrics copies what it needs under the lock and renders without it: at
 * thousands of destinations rendering takes tens of milliseconds, which
 * must not delay a trip.
 */
int agent_metrics(void *ctx, struct http_request *req, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t now = clock_mono_ns();
	struct kb_prog_stats progs[16];
	struct metrics_agent info = {
		.version = KB_VERSION,
		.kernel = a->kernel,
		.progs = progs,
		.n_progs = kb_bpf_prog_stats(a->bpf, progs, sizeof(progs) / sizeof(progs[0])),
		.refuses_with_econnrefused = kb_bpf_refuses_with_econnrefused(a->bpf),
		.openmetrics = wants_openmetrics(req->accept),
	};
	struct metrics_copy mc = { 0 };
	FILE *out = NULL;
	int err;

	*body = NULL;
	err = metrics_copy(a, &mc, &info, now, (double)time(NULL));
	out = err ? NULL : open_memstream(body, len);
	if (!err && !out)
		err = -errno;
	if (!err) {
		err = metrics_render(out, &info, mc.md, mc.n);
		if (fclose(out) && !err)
			err = -errno;
	}
	metrics_copy_free(&mc);
	if (err) {
		log_err("http: render /metrics: %s", strerror(-err));
		free(*body);
		*body = NULL;
		return err;
	}
	if (info.openmetrics)
		req->content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
	/* A large scrape's buffers go back to the system, not to a high-water RSS. */
	malloc_trim(0);
	pthread_mutex_lock(&a->lock);
	a->last_scrape_ns = clock_mono_ns() - now;
	pthread_mutex_unlock(&a->lock);
	return 200;
}

int agent_status(void *ctx, struct http_request *req, char **body, size_t *len)
{
	return render_body(ctx, render_status, body, len);
}

int agent_healthz(void *ctx, struct http_request *req, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t since, limit;
	int n;

	pthread_mutex_lock(&a->lock);
	since = clock_mono_ns() - a->last_tick_ns;
	limit = 3 * a->poll_interval_ns + 1000000000ULL;
	pthread_mutex_unlock(&a->lock);
	if (since > limit)
		n = asprintf(body, "unhealthy: breaker loop stalled, last poll %.1fs ago\n", since / 1e9);
	else
		n = asprintf(body, "ok\n");
	if (n < 0)
		return -ENOMEM;
	*len = n;
	return since > limit ? 503 : 200;
}
