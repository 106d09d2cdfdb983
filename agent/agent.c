// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netdb.h>
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

/* Put the addresses of a name into the maps and drop the ones it lost. */
static void apply_addrs(struct agent *a, struct agent_dst *d, kb_addr_t *addrs, size_t n)
{
	uint32_t id = d - a->dsts;
	size_t i = 0, j = 0;
	int err;

	/* Both lists are sorted: one merge pass finds what came and what went. */
	while (i < d->n_addrs || j < n) {
		int c = i == d->n_addrs ? 1 : j == n ? -1 : memcmp(d->addrs[i], addrs[j], 16);
		char text[64];

		if (c == 0) {
			i++, j++;
			continue;
		}
		status_addr_text(c < 0 ? d->addrs[i] : addrs[j], text, sizeof(text));
		if (c < 0)
			err = kb_bpf_del_dst(a->bpf, d->addrs[i++], 128, d->cfg->port);
		else
			err = kb_bpf_add_dst(a->bpf, addrs[j++], 128, d->cfg->port, id);
		if (err) {
			a->map_errors++;
			log_err("bpf: %s address %s of %s: %s", c < 0 ? "remove" : "add", text,
				d->cfg->name, strerror(-err));
		} else {
			log_info("%s\tcircuit=%s host=%s address=%s",
				 c < 0 ? "address removed" : "address added", d->cfg->name, d->cfg->host, text);
		}
	}
	free(d->addrs);
	d->addrs = addrs;
	d->n_addrs = n;
}

static void resolve_dst(struct agent *a, struct agent_dst *d, bool locked)
{
	kb_addr_t *addrs;
	size_t n;
	int err;

	/* Resolve without the lock: DNS may take seconds. */
	err = resolve_name(d->cfg->host, &addrs, &n);
	if (!locked)
		pthread_mutex_lock(&a->lock);
	if (err) {
		a->resolve_errors++;
		log_warn("resolve %s for %s: %s; keeping %zu known addresses", d->cfg->host,
			 d->cfg->name, gai_strerror(err), d->n_addrs);
	} else {
		apply_addrs(a, d, addrs, n);
	}
	if (!locked)
		pthread_mutex_unlock(&a->lock);
}

static void *resolver_main(void *arg)
{
	struct agent *a = arg;
	struct timespec until;

	for (;;) {
		pthread_mutex_lock(&a->lock);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += a->cfg->resolve_interval_ns / 1000000000ULL;
		until.tv_nsec += a->cfg->resolve_interval_ns % 1000000000ULL;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!a->stopping &&
		       pthread_cond_timedwait(&a->resolver_wake, &a->lock, &until) != ETIMEDOUT)
			;
		if (a->stopping) {
			pthread_mutex_unlock(&a->lock);
			return NULL;
		}
		pthread_mutex_unlock(&a->lock);
		for (size_t i = 0; i < a->n_dsts; i++)
			if (a->dsts[i].cfg->host_kind == HOST_NAME)
				resolve_dst(a, &a->dsts[i], false);
	}
}

int agent_init(struct agent *a, const struct config *cfg, struct kb_bpf *bpf, uint64_t now)
{
	pthread_condattr_t ca;
	uint32_t flags = 0;
	bool names = false;
	struct utsname u;
	int err;

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->resolver_wake, &ca);
	pthread_condattr_destroy(&ca);
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
		if (d->cfg->host_kind == HOST_NAME) {
			names = true;
			if (!d->cfg->port)
				flags |= KB_LOOKUP_ANY_PORT;
			resolve_dst(a, d, true);
			continue;
		}
		if (d->cfg->prefix_len < 128)
			flags |= KB_LOOKUP_PREFIX;
		else if (!d->cfg->port)
			flags |= KB_LOOKUP_ANY_PORT;
		err = kb_bpf_add_dst(bpf, d->cfg->addr, d->cfg->prefix_len, d->cfg->port, i);
		if (err) {
			log_err("bpf: add destination %s: %s%s", d->cfg->name, strerror(-err),
				err == -E2BIG || err == -ENOSPC ? " (raise max_destinations)" : "");
			return err;
		}
	}
	kb_bpf_set_lookup_flags(bpf, flags);
	a->lost_seen = kb_bpf_lost_total(bpf);
	if (names) {
		err = pthread_create(&a->resolver, NULL, resolver_main, a);
		if (err) {
			log_err("resolver thread: %s", strerror(err));
			return -err;
		}
		a->resolver_running = true;
	}
	return 0;
}

void agent_fini(struct agent *a)
{
	if (a->resolver_running) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_signal(&a->resolver_wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->resolver, NULL);
	}
	for (size_t i = 0; i < a->n_dsts; i++)
		free(a->dsts[i].addrs);
	free(a->dsts);
	a->dsts = NULL;
	pthread_cond_destroy(&a->resolver_wake);
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
