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
	free(s->c);
	free(s->slot_circuit);
	free(s->strings);
	free(s->addrs);
	free(s->member_states);
	free(s->retired);
	free(s->wl);
	free(s);
}

/* Fold slot s into its circuit; first: the circuit's first slot. */
static void fold_slot(struct snap_circuit *c, const struct agent_slot *s, uint64_t now, bool first)
{
	enum breaker_state ps = breaker_public_state(&s->br);
	uint64_t dl = breaker_deadline(&s->br);
	double fr = breaker_failure_rate(&s->br, now), sr = breaker_slow_call_rate(&s->br, now);

	if (first || breaker_state_severity(ps) > breaker_state_severity(c->state))
		c->state = ps;
	for (int i = 0; i < BS_MACHINE; i++)
		for (int j = 0; j < BS_MACHINE; j++)
			c->transitions[i][j] += s->br.transitions[i][j];
	if (fr > c->failure_rate)
		c->failure_rate = fr;
	if (sr > c->slow_call_rate)
		c->slow_call_rate = sr;
	if (s->br.consecutive_failures > c->consecutive_failures)
		c->consecutive_failures = s->br.consecutive_failures;
	if (s->br.state_since_ns > c->since_ns)
		c->since_ns = s->br.state_since_ns;
	if (s->br.state == BS_OPEN && dl && (!c->next_half_open_ns || dl < c->next_half_open_ns))
		c->next_half_open_ns = dl;
	c->trips_denied += s->br.denied_trips;
}

/* What a's snapshot needs room for. */
static struct snapshot_room room_of(const struct agent *a)
{
	struct snapshot_room r = { .circuits = a->n_circuits, .slots = a->n_slots, .chars = 1 };

	for (size_t i = 0; i < a->n_circuits; i++) {
		r.addrs += a->circuits[i].n_addrs;
		r.members += a->circuits[i].members ? a->circuits[i].n_addrs : 0;
		r.chars += strlen(a->circuits[i].cfg->host) + 1;
		r.retired += a->circuits[i].retired != NULL;
	}
	return r;
}

static bool room_fits(const struct snapshot_room *have, const struct snapshot_room *need)
{
	return have->circuits >= need->circuits && have->slots >= need->slots &&
	       have->chars >= need->chars && have->addrs >= need->addrs &&
	       have->members >= need->members && have->retired >= need->retired;
}

/*
 * Room for everything: hosts, addresses and member states each in a row.
 * old, a snapshot no page holds any more, is used again when it is big
 * enough: a scrape then touches no fresh pages for it.
 */
static struct snapshot *snapshot_alloc(const struct agent *a, struct snapshot *old)
{
	struct snapshot_room need = room_of(a);
	struct snapshot *s;

	if (old && room_fits(&old->room, &need)) {
		memset(old->c, 0, need.circuits * sizeof(*old->c));
		memset(&old->info, 0, sizeof(old->info));
		return old;
	}
	snapshot_free(old);
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->room = need;
	s->c = calloc(need.circuits ? need.circuits : 1, sizeof(*s->c));
	s->slot_circuit = calloc(need.slots ? need.slots : 1, sizeof(*s->slot_circuit));
	s->strings = malloc(need.chars);
	s->addrs = calloc(need.addrs ? need.addrs : 1, sizeof(*s->addrs));
	s->member_states = calloc(need.members ? need.members : 1, sizeof(*s->member_states));
	s->retired = calloc(need.retired ? need.retired : 1, sizeof(*s->retired));
	if (!s->c || !s->slot_circuit || !s->strings || !s->addrs || !s->member_states ||
	    !s->retired) {
		snapshot_free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

/* Where the next circuit's host, addresses, member states and retired counts go. */
struct fold_pos {
	uint32_t chars, addrs, members, retired;
};

/* What a circuit shows before its slots are folded in. */
static void circuit_entry(struct snapshot *s, struct snap_circuit *sc, const struct agent_circuit *c,
			  struct fold_pos *pos)
{
	const struct config_dst *cfg = c->cfg;
	size_t host_len = strlen(cfg->host) + 1;

	snprintf(sc->name, sizeof(sc->name), "%s", cfg->name);
	sc->host = pos->chars;
	memcpy(s->strings + pos->chars, cfg->host, host_len);
	pos->chars += host_len;
	sc->has_literal = cfg->host_kind != HOST_NAME;
	if (sc->has_literal)
		memcpy(sc->literal, cfg->addr, sizeof(sc->literal));
	sc->prefix_len = cfg->prefix_len;
	sc->port = cfg->port;
	sc->mode = cfg->policy.mode;
	/* A group with no address yet. */
	sc->state = cfg->policy.mode == MODE_OBSERVE ? BS_METRICS_ONLY : BS_CLOSED;
	sc->addrs = pos->addrs;
	sc->n_addrs = c->n_addrs;
	if (c->n_addrs)
		memcpy(s->addrs[pos->addrs], c->addrs, c->n_addrs * sizeof(*s->addrs));
	pos->addrs += c->n_addrs;
	sc->per_workload = c->n_wl;
	sc->members = c->members ? (int32_t)pos->members : -1;
	pos->members += c->members ? c->n_addrs : 0;
	sc->retired = -1;
	if (c->retired) {
		/* Slots fold on top of these: transitions add up the same way. */
		sc->retired = pos->retired;
		s->retired[pos->retired++] = c->retired->stats;
		memcpy(sc->transitions, c->retired->transitions, sizeof(sc->transitions));
		sc->trips_denied = c->retired->trips_denied;
	}
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
	s->info.permits_returned = a->permits_returned;
	s->info.last_poll_seconds = a->last_poll_ns / 1e9;
	s->info.restored = a->restored;
	s->info.compact = a->cfg->metrics_compact;
}

struct snapshot *snapshot_fold(const struct agent *a, uint64_t now, struct snapshot *old)
{
	struct snapshot *s = snapshot_alloc(a, old);
	struct fold_pos pos = { 0 };
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
	for (size_t ci = 0; ci < a->n_circuits; ci++)
		circuit_entry(s, &s->c[ci], &a->circuits[ci], &pos);
	s->n_retired = pos.retired;
	for (size_t i = 0; i < a->n_slots; i++) {
		const struct agent_slot *sl = &a->slots[i];

		s->slot_circuit[i] = sl->used ? (int32_t)sl->circuit : -1;
		if (!sl->used)
			continue;
		s->info.slots_used++;
		fold_slot(&s->c[sl->circuit], sl, now, !seen[sl->circuit]);
		seen[sl->circuit] = true;
	}
	for (size_t ci = 0; ci < a->n_circuits; ci++) {
		const struct agent_circuit *c = &a->circuits[ci];

		for (size_t k = 0; c->members && k < c->n_addrs; k++)
			s->member_states[s->c[ci].members + k] =
				breaker_public_state(&a->slots[c->members[k]].br);
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
	/* The last one, if no page holds it: its memory is folded into again. */
	pthread_mutex_lock(&snaps->lock);
	old = snaps->cur && snaps->cur->refs == 1 ? snaps->cur : NULL;
	if (old)
		snaps->cur = NULL;
	pthread_mutex_unlock(&snaps->lock);
	workloads_refresh(a);
	s = snapshot_fold(a, now, old);
	if (s && a->wl.max && workloads_snapshot(a, s)) {
		snapshot_free(s);
		s = NULL;
		errno = ENOMEM;
	}
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
