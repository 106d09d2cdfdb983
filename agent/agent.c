// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's life and the loop's entry points: start, events, ticks, stop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/utsname.h>
#include "agent_int.h"
#include "bpf.h"
#include "kb_judge.h"
#include "log.h"

uint32_t agent_lookup_flags(const struct config *cfg)
{
	uint32_t flags = 0;

	for (size_t i = 0; i < cfg->n_dsts; i++) {
		const struct config_dst *d = &cfg->dsts[i];

		if (d->host_kind == HOST_CIDR)
			flags |= KB_LOOKUP_PREFIX;
		else if (!d->port)
			flags |= KB_LOOKUP_ANY_PORT;
		if (d->netns_ino)
			flags |= KB_LOOKUP_NETNS;
	}
	if (cfg->workloads_on)
		flags |= KB_LOOKUP_WORKLOADS;
	return flags;
}

/* kb_dst_keep_fn: whether a key left by the previous run is one this configuration has. */
static bool key_wanted(void *ctx, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		       uint32_t netns, uint32_t id)
{
	return circuit_wants_key(ctx, addr, prefix_len, port, netns, id);
}

/*
 * Adopted maps, once the configuration is in: drop the keys it does not
 * have, and unblock the slots no breaker took back (the previous run's
 * per_address members): whatever becomes of them, nothing stays blocked.
 */
static void adopted_cleanup(struct agent *a)
{
	static const struct kb_verdict allow = { .action = KB_ACT_ALLOW };

	kb_bpf_prune_dsts(a->bpf, key_wanted, a);
	for (size_t i = 0; i < a->n_slots; i++)
		if (!a->slots[i].used)
			slot_write_verdict(a, i, &allow);
}

int agent_init(struct agent *a, const struct config *cfg, struct kb_bpf *bpf,
	       uint32_t capacity, uint64_t now)
{
	struct utsname u;
	bool *restored;
	int err = 0;

	memset(a, 0, sizeof(*a));
	page_cache_init(&a->pages);
	a->cfg = cfg;
	a->bpf = bpf;
	a->capacity = capacity;
	a->poll_interval_ns = cfg->poll_interval_ns;
	a->started_ns = a->last_tick_ns = now;
	a->last_reload_ok = true;
	a->last_reload_ok_wall = time(NULL);
	if (!uname(&u))
		snprintf(a->kernel, sizeof(a->kernel), "%s", u.release);
	a->circuits = calloc(cfg->n_dsts ? cfg->n_dsts : 1, sizeof(*a->circuits));
	if (!a->circuits)
		return -ENOMEM;
	a->n_circuits = cfg->n_dsts;
	for (uint32_t ci = 0; ci < cfg->n_dsts; ci++) {
		a->circuits[ci].cfg = &cfg->dsts[ci];
		a->circuits[ci].n_wl = circuit_n_wl(cfg, &cfg->dsts[ci]);
	}
	if (workloads_init(&a->wl, cfg->workloads_on ? cfg->workloads_max : 0, cfg->workloads_depth))
		return -ENOMEM;
	a->persist = cfg->state_dir[0] != '\0';
	restored = calloc(cfg->n_dsts ? cfg->n_dsts : 1, sizeof(*restored));
	if (!restored)
		return -ENOMEM;
	if (kb_bpf_adopted(bpf)) {
		err = saved_restore(a, restored, now);
		if (err) {
			free(restored);
			return err;
		}
	}
	for (uint32_t ci = 0; ci < cfg->n_dsts && !err; ci++)
		err = circuit_start(a, ci, now, restored[ci]);
	free(restored);
	if (err)
		return err;
	slots_rebase_resets(a);
	if (kb_bpf_adopted(bpf))
		adopted_cleanup(a);
	a->lost_seen = kb_bpf_lost_total(bpf);
	err = snapshots_init(&a->snaps);
	if (err) {
		log_err("http: snapshot eventfd: %s", strerror(-err));
		return err;
	}
	/* Always started: a reload may bring the first name. */
	return resolver_start(a);
}

void agent_fini(struct agent *a)
{
	/* Saved first: the resolver thread may finish a lookup of seconds before it stops. */
	for (size_t i = 0; i < a->n_slots; i++)
		if (a->slots[i].used && a->slots[i].dirty)
			slot_save(a, i);
	resolver_stop(a);
	for (size_t i = 0; i < a->n_circuits; i++) {
		free(a->circuits[i].addrs);
		free(a->circuits[i].members);
		free(a->circuits[i].retired);
	}
	free(a->circuits);
	free(a->slots);
	workloads_fini(&a->wl);
	a->circuits = NULL;
	a->slots = NULL;
	snapshots_fini(&a->snaps);
	page_cache_fini(&a->pages);
}

/*
 * Resets count as failures only where the policy says so: only those slots
 * are read, and only the resets since it said so count. The kernel counts
 * them among the failures in a row (kb_judge_reset) and trips on them;
 * here they reach the agent's own breaker.
 */
static void slot_apply_resets(struct agent *a, struct agent_slot *s, uint64_t now)
{
	struct kb_dst_stats st;
	uint64_t total;

	if (!s->used || !(s->br.policy.failures & POLICY_FAIL_RESET))
		return;
	if (s->resets_rebase) {
		/* Resets before its mark were not its failures; the read then failed. */
		slot_rebase_resets(a, s);
		return;
	}
	if (kb_bpf_read_stats(a->bpf, s - a->slots, &st))
		return;
	total = st.resets_rx + st.resets_tx;
	if (total <= s->resets_seen)
		return;
	s->dirty = true;
	if (!s->events) {
		/* In the kernel's count already: the window's alone, the count is the kernel's. */
		breaker_count_resets(&s->br, total - s->resets_seen, now);
		s->resets_seen = total;
		slot_sync_count(a, s);
		return;
	}
	for (; s->resets_seen < total; s->resets_seen++) {
		enum breaker_state old = s->br.state;

		if (breaker_record_reset_guarded(&s->br, now, slot_may_open(a, s)))
			slot_publish(a, s, old, "reset", now);
	}
}

/* One outcome from the ring, or a kernel trip. */
static void on_event(void *ctx, const struct kb_event *ev)
{
	struct agent *a = ctx;
	struct agent_slot *s;

	if (ev->dst_id >= a->n_slots || !a->slots[ev->dst_id].used || ev->result >= KB_RES_MAX)
		return;	/* a socket tagged for a destination since removed */
	s = &a->slots[ev->dst_id];
	/* A reset that tripped: this slot's resets now, not at the next poll. */
	if (ev->flags & KB_EV_RESET)
		slot_apply_resets(a, s, ev->ts_ns);
	else
		slot_record(a, s, ev->result, ev->ts_ns - ev->latency_ns, ev->ts_ns);
	if (ev->flags & KB_EV_TRIPPED)
		slot_adopt_trip(a, s, ev->ts_ns, ev->flags & KB_EV_RESET ? "reset" : NULL);
}

int agent_drain(struct agent *a, uint64_t now)
{
	int n;

	n = kb_bpf_drain(a->bpf, on_event, a);
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
	uint64_t total = kb_bpf_lost_total(a->bpf);
	struct kb_dst_stats st;

	if (total == a->lost_seen && !a->rescan_lost)
		return;
	if (total != a->lost_seen)
		log_warn("bpf: %llu events did not fit in the ring; applying them from counters",
			 (unsigned long long)(total - a->lost_seen));
	a->lost_seen = total;
	a->rescan_lost = false;
	for (size_t i = 0; i < a->n_slots; i++) {
		struct agent_slot *s = &a->slots[i];
		struct kb_verdict v;
		struct kb_trip trip;

		if (!s->used)
			continue;
		/* A kernel trip whose event was lost is in force all the same; a reset's, with its resets. */
		if (!kb_bpf_read_trip(a->bpf, i, &trip, &v) && v.gen && trip.tripped == v.gen) {
			slot_apply_resets(a, s, trip.tripped_ns);
			slot_adopt_trip(a, s, trip.tripped_ns, NULL);
		}
		if (kb_bpf_read_stats(a->bpf, i, &st))
			continue;
		for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
			enum kb_result r = order[k];

			for (; s->lost_seen[r] < st.lost[r]; s->lost_seen[r]++)
				slot_record(a, s, r, now, now);
		}
	}
}

void agent_apply_resets(struct agent *a, uint64_t now)
{
	for (size_t i = 0; i < a->n_slots; i++)
		slot_apply_resets(a, &a->slots[i], now);
}

/*
 * Breakers whose verdict queues no events learn their outcomes from the
 * kernel's counters, once a second: their window feeds only the rate
 * gauges, the trip is the kernel's.
 */
#define COUNT_INTERVAL_NS 1000000000ULL

/* Read in chunks: a buffer for all 10,000 would be fresh mapped memory every second. */
#define COUNT_CHUNK 256

/* How often stale records leave kb_conn: often enough against their 60 s age (kb_abi.h). */
#define CONN_SWEEP_NS 10000000000ULL

/* Feed slot s the outcomes its counters st show beyond what it was fed. */
static void count_slot(struct agent *a, struct agent_slot *s, const struct kb_dst_stats *st,
		       uint64_t now)
{
	for (int r = 0; r < KB_RES_MAX; r++) {
		if (st->connects[r] <= s->counted[r])
			continue;
		breaker_count(&s->br, r, st->connects[r] - s->counted[r], now);
		s->counted[r] = st->connects[r];
		s->dirty = true;
	}
	if (s->dirty)
		slot_sync_count(a, s);
}

static void apply_counts(struct agent *a, uint64_t now)
{
	struct kb_dst_stats *sums;
	bool any = false;

	if (now - a->last_count_ns < COUNT_INTERVAL_NS)
		return;
	a->last_count_ns = now;
	for (size_t i = 0; i < a->n_slots && !any; i++)
		any = a->slots[i].used && !a->slots[i].events;
	if (!any)
		return;
	sums = malloc(COUNT_CHUNK * sizeof(*sums));
	for (uint32_t first = 0; sums && first < a->n_slots; first += COUNT_CHUNK) {
		uint32_t n = a->n_slots - first < COUNT_CHUNK ? a->n_slots - first : COUNT_CHUNK;

		if (kb_bpf_read_stats_range(a->bpf, first, n, sums))
			break;	/* the rest next second */
		for (uint32_t i = 0; i < n; i++)
			if (a->slots[first + i].used && !a->slots[first + i].events)
				count_slot(a, &a->slots[first + i], &sums[i], now);
	}
	free(sums);
}

int agent_tick(struct agent *a, uint64_t now)
{
	__atomic_store_n(&a->last_tick_ns, now, __ATOMIC_RELAXED);
	apply_lost(a, now);
	agent_apply_resets(a, now);
	apply_counts(a, now);
	for (size_t i = 0; i < a->n_slots; i++) {
		struct agent_slot *s = &a->slots[i];
		enum breaker_state old = s->br.state;

		if (s->used && breaker_tick(&s->br, now))
			slot_publish(a, s, old, old == BS_OPEN ? "open_duration_elapsed" :
					   old == BS_HALF_OPEN ? "max_half_open_duration" : "ramp", now);
		else if (s->used && s->dirty)
			slot_save(a, i);	/* windows and counts, at most once a poll */
		if (s->used && s->br.state == BS_HALF_OPEN)
			slot_check_permits(a, s, now);
	}
	workloads_reclaim(a, now);
	/* May unmap a page of tens of MB here: about a millisecond, well inside a beat. */
	page_cache_expire(&a->pages, now);
	/* Even with attribution off: a restart may have adopted the previous run's records. */
	if (now - a->conn_swept_ns >= CONN_SWEEP_NS) {
		a->conn_swept_ns = now;
		kb_bpf_conn_sweep(a->bpf, now);
	}
	a->last_poll_ns = clock_mono_ns() - now;
	return 0;
}

uint64_t agent_next_deadline(struct agent *a)
{
	uint64_t next = 0, t;

	/* Called after every wake-up: scan only when a verdict changed. */
	if (a->deadline_stale) {
		for (size_t i = 0; i < a->n_slots; i++) {
			if (!a->slots[i].used)
				continue;
			t = breaker_deadline(&a->slots[i].br);
			if (t && (!next || t < next))
				next = t;
		}
		a->next_deadline = next;
		a->deadline_stale = false;
	}
	next = a->next_deadline;
	return next;
}

