// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the HTTP thread serves: /metrics, /status and /healthz, rendered
 * from the loop's latest snapshot (snapshot.h) and the kernel's counters,
 * which the HTTP thread reads from the maps itself.
 */
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
#include "pagebuf.h"
#include "snapshot.h"
#include "status.h"

/* How long a page waits for the loop to fold a fresh snapshot before serving the last one. */
#define SNAPSHOT_WAIT_NS (5 * 1000000000ULL)

/* One page being rendered: its snapshot and the kernel's counters per circuit. */
struct page {
	struct snapshot *snap;
	struct kb_dst_stats *slots;		/* per slot; a circuit's sum in its first slot */
	const struct kb_dst_stats **stats;	/* per circuit: its sum */
};

static void page_done(struct agent *a, struct page *p)
{
	snapshot_put(&a->snaps, p->snap);
	free(p->slots);
	free(p->stats);
}

/*
 * Sum each circuit's slots into its first one and point the circuit at it;
 * with what its members that went counted (p->slots has room past n_slots
 * for a circuit that has no slot left). 0 or -ENOMEM.
 */
static int page_sum(struct page *p)
{
	static const struct kb_dst_stats none;
	const struct snapshot *s = p->snap;
	int32_t *first = malloc((s->n ? s->n : 1) * sizeof(*first));

	if (!first)
		return -ENOMEM;
	for (size_t c = 0; c < s->n; c++)
		first[c] = -1;
	for (uint32_t i = 0; i < s->n_slots; i++) {
		int32_t c = s->slot_circuit[i];

		if (c < 0)
			continue;
		if (first[c] < 0)
			first[c] = i;
		else
			kb_dst_stats_add(&p->slots[first[c]], &p->slots[i]);
	}
	for (size_t c = 0; c < s->n; c++) {
		if (s->c[c].retired < 0)
			continue;
		if (first[c] < 0)
			first[c] = s->n_slots + s->c[c].retired;
		kb_dst_stats_add(&p->slots[first[c]], &s->retired[s->c[c].retired]);
	}
	for (size_t c = 0; c < s->n; c++)
		p->stats[c] = first[c] >= 0 ? &p->slots[first[c]] : &none;
	free(first);
	return 0;
}

/* The snapshot, and the kernel's counters of its slots summed per circuit. 0 or -errno. */
static int page_start(struct agent *a, struct page *p)
{
	struct snapshot *s;
	int err;

	memset(p, 0, sizeof(*p));
	s = p->snap = snapshot_get(&a->snaps, SNAPSHOT_WAIT_NS);
	if (!s)
		return -EAGAIN;	/* the loop never answered */
	p->slots = calloc(s->n_slots + s->n_retired ? s->n_slots + s->n_retired : 1,
			  sizeof(*p->slots));
	p->stats = malloc((s->n ? s->n : 1) * sizeof(*p->stats));
	err = p->slots && p->stats ? kb_bpf_read_all_stats(a->bpf, s->n_slots, p->slots) : -ENOMEM;
	err = err ?: page_sum(p);
	if (err)
		page_done(a, p);
	return err;
}

/*
 * The body rendered into pb through out (closed here), or the error
 * logged. Returns 200, 503 when the loop never answered (its body says
 * so), or -errno.
 */
static int page_end(const char *what, struct http_request *req, struct pagebuf *pb, FILE *out,
		    int err, char **body, size_t *len)
{
	int n;

	if (out && fclose(out) && !err)
		err = -errno;
	if (out && !err) {
		*body = pagebuf_take(pb, len);
		req->free_body = pagebuf_free;
		return *body ? 200 : -ENOMEM;
	}
	pagebuf_discard(pb);
	if (err == -EAGAIN) {
		n = asprintf(body, "unavailable: the breaker loop has not answered\n");
		if (n < 0)
			return -ENOMEM;
		*len = n;
		return 503;
	}
	log_err("http: render %s: %s", what, strerror(-err));
	*body = NULL;
	return err;
}

/* Circuit i of s as status.c takes it. */
static void status_entry(const struct snapshot *s, size_t i, const struct kb_dst_stats *stats,
			 struct status_dst *sd)
{
	const struct snap_circuit *c = &s->c[i];

	*sd = (struct status_dst){
		.name = c->name,
		.host = s->strings + c->host,
		.addr = c->has_literal ? c->literal : NULL,
		.prefix_len = c->prefix_len,
		.port = c->port,
		.addrs = (const uint8_t (*)[16])s->addrs[c->addrs],
		.n_addrs = c->n_addrs,
		.member_states = c->members >= 0 ? &s->member_states[c->members] : NULL,
		.mode = c->mode,
		.state = c->state,
		.since_ns = c->since_ns,
		.next_half_open_ns = c->next_half_open_ns,
		.consecutive_failures = c->consecutive_failures,
		.failure_rate = c->failure_rate,
		.stats = stats,
		.per_workload = c->per_workload,
		.wl = c->n_wl ? &s->wl[c->wl] : NULL,
		.n_wl = c->n_wl,
	};
}

/* Renders page p into out. 0 or -errno. */
typedef int page_render_fn(struct agent *a, const struct page *p, FILE *out, bool openmetrics);

/*
 * What both pages do around their rendering: snapshot, counters, buffer;
 * or, with PAGES_LIVE pages held by responses still being sent (or, for a
 * HEAD, right after a HEAD's long render of this kind), the newest one of this
 * kind instead (page_cache.h), and *rendered is false. The
 * page is the response's to release (req->free_body). 200, 503 or -errno.
 */
static int page_serve(struct agent *a, enum page_kind kind, const char *what,
		      page_render_fn *render, struct http_request *req, char **body, size_t *len,
		      bool *rendered)
{
	uint64_t started = clock_mono_ns();
	struct pagebuf pb = { 0 };
	struct page_body *pg;
	struct page p;
	FILE *out;
	int err, status;

	*body = NULL;
	*rendered = false;
	pg = page_cache_get(&a->pages, kind, req->head, started);
	if (!pg) {
		err = page_start(a, &p);
		if (err) {
			page_cache_cancel(&a->pages);
			return page_end(what, req, &pb, NULL, err, body, len);
		}
		out = pagebuf_open(&pb);
		err = out ? render(a, &p, out, kind == PAGE_OPENMETRICS) : -errno;
		page_done(a, &p);
		status = page_end(what, req, &pb, out, err, body, len);
		if (status != 200) {
			page_cache_cancel(&a->pages);
			return status;
		}
		*rendered = true;
		pg = page_cache_add(&a->pages, kind, req->head, *body, *len, pagebuf_free, started,
				    clock_mono_ns());
		if (!pg) {
			*body = NULL;
			return -ENOMEM;
		}
	}
	*body = (char *)pg->text;
	*len = pg->len;
	req->free_body = page_body_put;
	req->body_owner = pg;
	return 200;
}

static int render_status(struct agent *a, const struct page *p, FILE *out, bool openmetrics)
{
	const struct snapshot *s = p->snap;
	struct status_dst *sd;
	int err;

	sd = malloc((s->n ? s->n : 1) * sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		status_entry(s, i, p->stats[i], &sd[i]);
	err = status_render(out, KB_VERSION, s->started_ns, s->now, sd, s->n,
			    s->wl_on ? &s->wl_info : NULL);
	free(sd);
	return err;
}

int agent_status(void *ctx, struct http_request *req, char **body, size_t *len)
{
	bool rendered;

	return page_serve(ctx, PAGE_STATUS, "/status", render_status, req, body, len, &rendered);
}

/* OpenMetrics when the Accept header names it (Prometheus asks for it first). */
static bool wants_openmetrics(const char *accept)
{
	return accept && strstr(accept, "application/openmetrics-text");
}

/* Render /metrics from page p into out. */
static int render_metrics(struct agent *a, const struct page *p, FILE *out, bool openmetrics)
{
	const struct snapshot *s = p->snap;
	double wall_now = clock_wall_s();
	uint64_t mono_now = clock_mono_ns();
	struct kb_prog_stats progs[16];
	struct metrics_agent info = s->info;
	struct metrics_dst *md;
	int err;

	md = malloc((s->n ? s->n : 1) * sizeof(*md));
	if (!md)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		const struct snap_circuit *c = &s->c[i];

		md[i] = (struct metrics_dst){
			.name = c->name,
			.state = c->state,
			.transitions = c->transitions,
			.stats = p->stats[i],
			.failure_rate = c->failure_rate,
			.slow_call_rate = c->slow_call_rate,
			.consecutive_failures = c->consecutive_failures,
			.trips_denied = c->trips_denied,
			.last_transition_wall = wall_now - (double)(mono_now - c->since_ns) / 1e9,
			.wl = c->n_wl ? &s->wl[c->wl] : NULL,
			.n_wl = c->n_wl,
		};
	}
	info.version = KB_VERSION;
	info.kernel = a->kernel;
	info.progs = progs;
	info.n_progs = kb_bpf_prog_stats(a->bpf, progs, sizeof(progs) / sizeof(progs[0]));
	info.refuses_with_econnrefused = kb_bpf_refuses_with_econnrefused(a->bpf);
	info.events_lost = kb_bpf_lost_total(a->bpf);
	info.connects_failopen = kb_bpf_failopen_total(a->bpf);
	info.fastopen_ignored = kb_bpf_fastopen_ignored_total(a->bpf);
	info.fastopen_refused = kb_bpf_fastopen_refused_total(a->bpf);
	info.log_dropped = log_dropped_total();
	info.last_scrape_seconds = __atomic_load_n(&a->last_scrape_ns, __ATOMIC_RELAXED) / 1e9;
	info.openmetrics = openmetrics;
	err = metrics_render(out, &info, md, s->n);
	free(md);
	return err;
}

int agent_metrics(void *ctx, struct http_request *req, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t t0 = clock_mono_ns();
	bool openmetrics = wants_openmetrics(req->accept), rendered;
	int err;

	err = page_serve(a, openmetrics ? PAGE_OPENMETRICS : PAGE_METRICS, "/metrics", render_metrics,
			 req, body, len, &rendered);
	if (err != 200)
		return err;
	if (openmetrics)
		req->content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
	/* A page shared, not rendered: no buffers to give back, no render to time. */
	if (!rendered)
		return 200;
	/* A large scrape's buffers go back to the system, not to a high-water RSS. */
	malloc_trim(0);
	__atomic_store_n(&a->last_scrape_ns, clock_mono_ns() - t0, __ATOMIC_RELAXED);
	return 200;
}

int agent_healthz(void *ctx, struct http_request *req, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t since, limit;
	int n;

	since = clock_mono_ns() - __atomic_load_n(&a->last_tick_ns, __ATOMIC_RELAXED);
	limit = 3 * __atomic_load_n(&a->poll_interval_ns, __ATOMIC_RELAXED) + 1000000000ULL;
	if (since > limit)
		n = asprintf(body, "unhealthy: breaker loop stalled, last poll %.1fs ago\n", since / 1e9);
	else
		n = asprintf(body, "ok\n");
	if (n < 0)
		return -ENOMEM;
	*len = n;
	return since > limit ? 503 : 200;
}
