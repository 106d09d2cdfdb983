// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "agent_int.h"
#include "log.h"
#include "snapshot.h"

static void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	free(s->sd);
	free(s->md);
	free(s->transitions);
	free(s->slot_circuit);
	free(s->names);
	free(s->hosts);
	free(s->literals);
	free(s->addrs);
	free(s->member_states);
	free(s);
}

/* Worst first: a group shows the most severe of its members' states. */
static int severity(enum breaker_state s)
{
	static const int rank[BS_MAX] = {
		[BS_FORCED_OPEN] = 6, [BS_OPEN] = 5, [BS_HALF_OPEN] = 4,
		[BS_CLOSED] = 3, [BS_METRICS_ONLY] = 2, [BS_DISABLED] = 1,
	};

	return (unsigned)s < BS_MAX ? rank[s] : 0;
}

/* Fold slot s into circuit ci's entries; first: the circuit's first slot. */
static void fold_slot(struct snapshot *snap, size_t ci, const struct agent_slot *s, bool first)
{
	struct status_dst *sd = &snap->sd[ci];
	struct metrics_dst *md = &snap->md[ci];
	enum breaker_state ps = breaker_public_state(&s->br);
	uint64_t dl = breaker_deadline(&s->br), now = snap->now;
	double fr = breaker_failure_rate(&s->br, now), sr = breaker_slow_call_rate(&s->br, now);

	if (first || severity(ps) > severity(sd->state))
		sd->state = ps;
	for (int i = 0; i < BS_MAX; i++)
		for (int j = 0; j < BS_MAX; j++)
			snap->transitions[ci][i][j] += s->br.transitions[i][j];
	if (fr > sd->failure_rate)
		sd->failure_rate = fr;
	if (sr > md->slow_call_rate)
		md->slow_call_rate = sr;
	md->trips_denied += s->br.denied_trips;
	if (s->br.consecutive_failures > sd->consecutive_failures)
		sd->consecutive_failures = s->br.consecutive_failures;
	if (s->br.state_since_ns > sd->since_ns)
		sd->since_ns = s->br.state_since_ns;
	if (s->br.state == BS_OPEN && dl && (!sd->next_half_open_ns || dl < sd->next_half_open_ns))
		sd->next_half_open_ns = dl;
}

/* Room for everything, addresses and member states in a row. */
static struct snapshot *snapshot_alloc(const struct agent *a)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	size_t n = a->n_circuits ? a->n_circuits : 1, n_addrs = 1, n_members = 1;

	if (!s)
		return NULL;
	for (size_t i = 0; i < a->n_circuits; i++) {
		n_addrs += a->circuits[i].n_addrs;
		n_members += a->circuits[i].members ? a->circuits[i].n_addrs : 0;
	}
	s->sd = calloc(n, sizeof(*s->sd));
	s->md = calloc(n, sizeof(*s->md));
	s->transitions = calloc(n, sizeof(*s->transitions));
	s->slot_circuit = calloc(a->n_slots ? a->n_slots : 1, sizeof(*s->slot_circuit));
	s->names = calloc(n, sizeof(*s->names));
	s->hosts = calloc(n, sizeof(*s->hosts));
	s->literals = calloc(n, sizeof(*s->literals));
	s->addrs = calloc(n_addrs, sizeof(*s->addrs));
	s->member_states = calloc(n_members, sizeof(*s->member_states));
	if (!s->sd || !s->md || !s->transitions || !s->slot_circuit || !s->names || !s->hosts ||
	    !s->literals || !s->addrs || !s->member_states) {
		snapshot_free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

/* What a circuit shows before its slots are folded in. */
static void circuit_entry(struct snapshot *s, size_t ci, const struct agent_circuit *c,
			  uint8_t (**addrs)[16], enum breaker_state **members)
{
	const struct config_dst *cfg = c->cfg;

	snprintf(s->names[ci], sizeof(s->names[ci]), "%s", cfg->name);
	snprintf(s->hosts[ci], sizeof(s->hosts[ci]), "%s", cfg->host);
	if (c->n_addrs)
		memcpy(*addrs, c->addrs, c->n_addrs * sizeof(**addrs));
	s->sd[ci] = (struct status_dst){
		.name = s->names[ci],
		.host = s->hosts[ci],
		.prefix_len = cfg->prefix_len,
		.port = cfg->port,
		.mode = cfg->policy.mode,
		/* A group with no address yet. */
		.state = cfg->policy.mode == MODE_OBSERVE ? BS_METRICS_ONLY : BS_CLOSED,
		.addrs = (const uint8_t (*)[16])*addrs,
		.n_addrs = c->n_addrs,
	};
	if (cfg->host_kind != HOST_NAME) {
		memcpy(s->literals[ci], cfg->addr, sizeof(s->literals[ci]));
		s->sd[ci].addr = s->literals[ci];
	}
	*addrs += c->n_addrs;
	if (c->members) {
		s->sd[ci].member_states = *members;
		*members += c->n_addrs;
	}
	s->md[ci].name = s->names[ci];
	s->md[ci].transitions = s->transitions[ci];
}

/* What the agent knows of itself, for /metrics. */
static void agent_entry(struct snapshot *s, const struct agent *a)
{
	s->started_ns = a->started_ns;
	s->info.capacity = a->capacity;
	s->info.reload_ok = a->last_reload_ok;
	s->info.last_reload_ok_wall = a->last_reload_ok_wall;
	s->info.reloads_ok = a->reloads_ok;
	s->info.reloads_failed = a->reloads_failed;
	s->info.resolve_errors = a->resolve_errors;
	s->info.map_errors = a->map_errors;
	s->info.last_poll_seconds = a->last_poll_ns / 1e9;
	s->info.restored = a->restored;
	s->info.compact = a->cfg->metrics_compact;
}

struct snapshot *snapshot_fold(const struct agent *a, uint64_t now)
{
	struct snapshot *s = snapshot_alloc(a);
	uint8_t (*addrs)[16];
	enum breaker_state *members;
	bool *seen;

	if (!s)
		return NULL;
	seen = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*seen));
	if (!seen) {
		snapshot_free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->now = now;
	s->n = a->n_circuits;
	s->n_slots = a->n_slots;
	addrs = s->addrs;
	members = s->member_states;
	for (size_t ci = 0; ci < a->n_circuits; ci++)
		circuit_entry(s, ci, &a->circuits[ci], &addrs, &members);
	for (size_t i = 0; i < a->n_slots; i++) {
		const struct agent_slot *sl = &a->slots[i];

		s->slot_circuit[i] = sl->used ? (int32_t)sl->circuit : -1;
		if (!sl->used)
			continue;
		s->info.slots_used++;
		fold_slot(s, sl->circuit, sl, !seen[sl->circuit]);
		seen[sl->circuit] = true;
	}
	for (size_t ci = 0; ci < a->n_circuits; ci++) {
		const struct agent_circuit *c = &a->circuits[ci];

		for (size_t k = 0; c->members && k < c->n_addrs; k++)
			s->sd[ci].member_states[k] = breaker_public_state(&a->slots[c->members[k]].br);
		s->md[ci].state = s->sd[ci].state;
		s->md[ci].failure_rate = s->sd[ci].failure_rate;
		s->md[ci].consecutive_failures = s->sd[ci].consecutive_failures;
	}
	agent_entry(s, a);
	free(seen);
	return s;
}

void snapshot_put(struct agent_snapshots *snaps, struct snapshot *s)
{
	bool last;

	if (!s)
		return;
	pthread_mutex_lock(&snaps->lock);
	last = !--s->refs;
	pthread_mutex_unlock(&snaps->lock);
	if (last)
		snapshot_free(s);
}

struct snapshot *snapshot_get(struct agent_snapshots *snaps, uint64_t wait_ns)
{
	uint64_t ask, one = 1, at = clock_mono_ns() + wait_ns;
	struct timespec until = { .tv_sec = at / 1000000000ULL, .tv_nsec = at % 1000000000ULL };
	struct snapshot *s;

	pthread_mutex_lock(&snaps->lock);
	ask = ++snaps->asked;
	pthread_mutex_unlock(&snaps->lock);
	if (write(snaps->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("http: ask the loop: %s", strerror(errno));
	pthread_mutex_lock(&snaps->lock);
	while (snaps->made < ask && !snaps->closed &&
	       pthread_cond_timedwait(&snaps->ready, &snaps->lock, &until) != ETIMEDOUT)
		;
	s = snaps->cur;
	if (s)
		s->refs++;
	pthread_mutex_unlock(&snaps->lock);
	return s;
}

int agent_snapshot_fd(const struct agent *a)
{
	return a->snaps.efd;
}

int agent_publish(struct agent *a, uint64_t now)
{
	struct agent_snapshots *snaps = &a->snaps;
	struct snapshot *s, *old;
	uint64_t asked, count;
	int err;

	if (read(snaps->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&snaps->lock);
	asked = snaps->asked;
	pthread_mutex_unlock(&snaps->lock);
	if (asked == snaps->made)
		return 0;
	s = snapshot_fold(a, now);
	if (!s) {
		err = -errno;
		log_err("http: snapshot of %zu circuits: %s", a->n_circuits, strerror(-err));
		return err;
	}
	s->refs = 1;	/* snaps->cur's */
	pthread_mutex_lock(&snaps->lock);
	old = snaps->cur;
	snaps->cur = s;
	snaps->made = asked;
	pthread_cond_broadcast(&snaps->ready);
	pthread_mutex_unlock(&snaps->lock);
	snapshot_put(snaps, old);
	return 0;
}

void snapshots_close(struct agent_snapshots *snaps)
{
	if (!snaps->inited)
		return;
	pthread_mutex_lock(&snaps->lock);
	snaps->closed = true;
	pthread_cond_broadcast(&snaps->ready);
	pthread_mutex_unlock(&snaps->lock);
}

void agent_stop_publishing(struct agent *a)
{
	snapshots_close(&a->snaps);
}

int snapshots_init(struct agent_snapshots *snaps)
{
	pthread_condattr_t ca;

	snaps->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (snaps->efd < 0)
		return -errno;
	pthread_mutex_init(&snaps->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&snaps->ready, &ca);
	pthread_condattr_destroy(&ca);
	snaps->inited = true;
	return 0;
}

void snapshots_fini(struct agent_snapshots *snaps)
{
	if (!snaps->inited)
		return;
	snapshot_put(snaps, snaps->cur);
	pthread_cond_destroy(&snaps->ready);
	pthread_mutex_destroy(&snaps->lock);
	close(snaps->efd);
	snaps->inited = false;
}
