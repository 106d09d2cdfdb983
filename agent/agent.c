// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include "agent.h"
#include "bpf.h"
#include "log.h"
#include "metrics.h"

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

int agent_metrics(void *ctx, char **body, size_t *len)
{
	struct agent *a = ctx;
	struct metrics_agent info = { .version = KB_VERSION, .kernel = a->kernel };
	struct metrics_dst *md;
	FILE *out;
	int err = 0;

	md = calloc(a->n_dsts ? a->n_dsts : 1, sizeof(*md));
	if (!md)
		return -ENOMEM;
	out = open_memstream(body, len);
	if (!out) {
		free(md);
		return -errno;
	}
	pthread_mutex_lock(&a->lock);
	info.events_lost = kb_bpf_lost_total(a->bpf);
	for (size_t i = 0; i < a->n_dsts && !err; i++) {
		md[i].name = a->dsts[i].cfg->name;
		md[i].state = breaker_public_state(&a->dsts[i].br);
		md[i].transitions = (const uint64_t (*)[BS_MAX])a->dsts[i].br.transitions;
		err = kb_bpf_read_stats(a->bpf, i, &md[i].stats);
	}
	/* Rendered under the lock: transitions point into the breakers. */
	if (!err)
		err = metrics_render(out, &info, md, a->n_dsts);
	pthread_mutex_unlock(&a->lock);
	if (fclose(out) && !err)
		err = -errno;
	free(md);
	if (err) {
		log_err("metrics: render: %s", strerror(-err));
		free(*body);
		*body = NULL;
	}
	return err;
}
