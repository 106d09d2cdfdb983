// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/utsname.h>
#include "agent.h"
#include "bpf.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static const char *const transition_msgs[BS_MAX] = {
	[BS_CLOSED] = "breaker closed",
	[BS_OPEN] = "breaker opened",
	[BS_HALF_OPEN] = "breaker half-open",
};

/* Push the verdict after a transition and say why it happened. */
static void publish(struct agent *a, struct agent_dst *d, enum breaker_state old,
		    const char *cause)
{
	struct kb_verdict v;
	uint32_t id = d - a->dsts;
	int err;

	breaker_verdict(&d->br, &v);
	err = kb_bpf_set_verdict(a->bpf, id, &v);
	if (err)
		log_err("bpf: write verdict of %s: %s", d->cfg->name, strerror(-err));
	log_info("%s\tcircuit=%s old_state=%s new_state=%s mode=%s cause=%s",
		 transition_msgs[d->br.state] ? transition_msgs[d->br.state] : "breaker changed",
		 d->cfg->name, breaker_state_name(old), breaker_state_name(d->br.state),
		 config_mode_name(d->br.policy.mode), cause);
}

static void record(struct agent *a, struct agent_dst *d, enum kb_result res,
		   uint64_t start_ns, uint64_t now)
{
	enum breaker_state old = d->br.state;

	if (breaker_record(&d->br, res, start_ns, now))
		publish(a, d, old, breaker_result_name(res));
}

static void on_event(void *ctx, const struct kb_event *ev)
{
	struct agent *a = ctx;

	if (ev->dst_id >= a->n_dsts || ev->result >= KB_RES_MAX)
		return;
	record(a, &a->dsts[ev->dst_id], ev->result, ev->ts_ns - ev->latency_ns, ev->ts_ns);
}

int agent_init(struct agent *a, const struct config *cfg, struct kb_bpf *bpf, uint64_t now)
{
	struct utsname u;
	int err;

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	a->cfg = cfg;
	a->bpf = bpf;
	a->started_ns = a->last_tick_ns = now;
	if (!uname(&u))
		snprintf(a->kernel, sizeof(a->kernel), "%s", u.release);
	a->dsts = calloc(cfg->n_dsts ? cfg->n_dsts : 1, sizeof(*a->dsts));
	if (!a->dsts)
		return -ENOMEM;
	a->n_dsts = cfg->n_dsts;
	for (size_t i = 0; i < cfg->n_dsts; i++) {
		struct agent_dst *d = &a->dsts[i];

		d->cfg = &cfg->dsts[i];
		breaker_init(&d->br, &d->cfg->policy, now);
		err = kb_bpf_add_dst(bpf, d->cfg->addr, d->cfg->port, i);
		if (err) {
			log_err("bpf: add destination %s: %s", d->cfg->name, strerror(-err));
			return err;
		}
	}
	a->lost_seen = kb_bpf_lost_total(bpf);
	return 0;
}

void agent_fini(struct agent *a)
{
	free(a->dsts);
	a->dsts = NULL;
	pthread_mutex_destroy(&a->lock);
}

int agent_drain(struct agent *a, uint64_t now)
{
	int n;

	pthread_mutex_lock(&a->lock);
	n = kb_bpf_drain(a->bpf, on_event, a);
	pthread_mutex_unlock(&a->lock);
	if (n < 0)
		log_err("bpf: read events: %s", strerror(-n));
	return n < 0 ? n : 0;
}

/*
 * Outcomes the ring could not hold were still counted per destination.
 * Feed them now, order unknown: failures first, so a burst that overflowed
 * the ring trips the breaker as the same burst in order would have.
 */
static void apply_lost(struct agent *a, uint64_t now)
{
	static const enum kb_result order[] = {
		KB_RES_REFUSED, KB_RES_TIMEOUT, KB_RES_UNREACHABLE, KB_RES_ERROR,
		KB_RES_CANCELLED, KB_RES_SUCCESS,
	};
	struct kb_dst_stats st;
	uint64_t total = kb_bpf_lost_total(a->bpf);

	if (total == a->lost_seen)
		return;
	log_warn("bpf: %llu events did not fit in the ring; applying them from counters",
		 (unsigned long long)(total - a->lost_seen));
	a->lost_seen = total;
	for (size_t i = 0; i < a->n_dsts; i++) {
		struct agent_dst *d = &a->dsts[i];

		if (kb_bpf_read_stats(a->bpf, i, &st))
			continue;
		for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
			enum kb_result r = order[k];

			for (; d->lost_seen[r] < st.lost[r]; d->lost_seen[r]++)
				record(a, d, r, now, now);
		}
	}
}

int agent_tick(struct agent *a, uint64_t now)
{
	pthread_mutex_lock(&a->lock);
	a->last_tick_ns = now;
	a->last_tick_err = 0;
	apply_lost(a, now);
	for (size_t i = 0; i < a->n_dsts; i++) {
		struct agent_dst *d = &a->dsts[i];
		enum breaker_state old = d->br.state;

		if (breaker_tick(&d->br, now))
			publish(a, d, old, "open_duration elapsed");
	}
	pthread_mutex_unlock(&a->lock);
	return 0;
}

uint64_t agent_next_deadline(struct agent *a)
{
	uint64_t next = 0, t;

	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->n_dsts; i++) {
		t = breaker_deadline(&a->dsts[i].br);
		if (t && (!next || t < next))
			next = t;
	}
	pthread_mutex_unlock(&a->lock);
	return next;
}

typedef int (*render_fn)(struct agent *a, FILE *out, const struct kb_dst_stats *stats, uint64_t now);

/*
 * Read every destination's counters and render under the lock (renderers
 * point into the breakers), into a malloc'd body. Returns 200 or -errno.
 */
static int render_body(struct agent *a, render_fn render, char **body, size_t *len)
{
	struct kb_dst_stats *stats;
	FILE *out;
	int err = 0;

	*body = NULL;
	stats = calloc(a->n_dsts ? a->n_dsts : 1, sizeof(*stats));
	if (!stats)
		return -ENOMEM;
	out = open_memstream(body, len);
	if (!out) {
		free(stats);
		return -errno;
	}
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->n_dsts && !err; i++)
		err = kb_bpf_read_stats(a->bpf, i, &stats[i]);
	if (!err)
		err = render(a, out, stats, mono_ns());
	pthread_mutex_unlock(&a->lock);
	if (fclose(out) && !err)
		err = -errno;
	free(stats);
	if (err) {
		log_err("http: render: %s", strerror(-err));
		free(*body);
		*body = NULL;
		return err;
	}
	return 200;
}

static int render_metrics(struct agent *a, FILE *out, const struct kb_dst_stats *stats, uint64_t now)
{
	struct metrics_agent info = {
		.version = KB_VERSION,
		.kernel = a->kernel,
		.events_lost = kb_bpf_lost_total(a->bpf),
	};
	struct metrics_dst *md;
	int err;

	md = calloc(a->n_dsts ? a->n_dsts : 1, sizeof(*md));
	if (!md)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_dsts; i++) {
		md[i].name = a->dsts[i].cfg->name;
		md[i].state = breaker_public_state(&a->dsts[i].br);
		md[i].transitions = (const uint64_t (*)[BS_MAX])a->dsts[i].br.transitions;
		md[i].stats = stats[i];
	}
	err = metrics_render(out, &info, md, a->n_dsts);
	free(md);
	return err;
}

static int render_status(struct agent *a, FILE *out, const struct kb_dst_stats *stats, uint64_t now)
{
	struct status_dst *sd;
	int err;

	sd = calloc(a->n_dsts ? a->n_dsts : 1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_dsts; i++) {
		const struct agent_dst *d = &a->dsts[i];

		sd[i] = (struct status_dst){
			.name = d->cfg->name,
			.addr = d->cfg->addr,
			.port = d->cfg->port,
			.mode = d->br.policy.mode,
			.state = breaker_public_state(&d->br),
			.since_ns = d->br.state_since_ns,
			.next_half_open_ns = breaker_deadline(&d->br),
			.consecutive_failures = d->br.consecutive_failures,
			.stats = stats[i],
		};
	}
	err = status_render(out, KB_VERSION, a->started_ns, now, sd, a->n_dsts);
	free(sd);
	return err;
}

int agent_metrics(void *ctx, char **body, size_t *len)
{
	return render_body(ctx, render_metrics, body, len);
}

int agent_status(void *ctx, char **body, size_t *len)
{
	return render_body(ctx, render_status, body, len);
}

int agent_healthz(void *ctx, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t since, limit = 3 * a->cfg->poll_interval_ns + 1000000000ULL;
	int err, n;

	pthread_mutex_lock(&a->lock);
	since = mono_ns() - a->last_tick_ns;
	err = a->last_tick_err;
	pthread_mutex_unlock(&a->lock);
	if (err)
		n = asprintf(body, "unhealthy: last poll failed: %s\n", strerror(-err));
	else if (since > limit)
		n = asprintf(body, "unhealthy: breaker loop stalled, last poll %.1fs ago\n", since / 1e9);
	else
		n = asprintf(body, "ok\n");
	if (n < 0)
		return -ENOMEM;
	*len = n;
	return err || since > limit ? 503 : 200;
}
