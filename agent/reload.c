// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* agent_reload(): match and plan, then the writes (reload_write.c) and the switch. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bpf.h"
#include "log.h"
#include "reload.h"
#include "addr.h"

int reload_fail(struct reload *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return err;
}

/* qsort_r comparator: circuit indices by the circuits' names. */
static int by_circuit_name(const void *x, const void *y, void *circuits)
{
	const struct agent_circuit *c = circuits;

	return strcmp(c[*(const uint32_t *)x].cfg->name, c[*(const uint32_t *)y].cfg->name);
}

/* The old circuit with cfg's name, or -1. order: indices sorted by name. */
static int64_t find_old(const struct agent_circuit *old, const uint32_t *order, size_t n,
			const struct config_dst *cfg)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(old[order[mid]].cfg->name, cfg->name);

		if (!c)
			return order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Same destination in two configs: its breakers carry over a reload. */
static bool same_destination(const struct config_dst *x, const struct config_dst *y)
{
	return !strcmp(x->name, y->name) && !strcmp(x->host, y->host) && x->port == y->port &&
	       x->per_address == y->per_address && x->netns_ino == y->netns_ino &&
	       x->per_workload == y->per_workload;
}


/* Pair the new circuits with the running ones they keep. */
static int reload_match(struct agent *a, struct reload *r)
{
	struct agent_circuit *old = a->circuits;
	size_t n_old = a->n_circuits, n = r->cfg->n_dsts;
	uint32_t *order;

	r->next = calloc(n ? n : 1, sizeof(*r->next));
	r->info = calloc(n ? n : 1, sizeof(*r->info));
	r->old_to_new = calloc(n_old ? n_old : 1, sizeof(*r->old_to_new));
	order = calloc(n_old ? n_old : 1, sizeof(*order));
	if (!r->next || !r->info || !r->old_to_new || !order) {
		free(order);
		return reload_fail(r, -ENOMEM, "match %zu circuits", n);
	}
	for (size_t j = 0; j < n_old; j++) {
		order[j] = j;
		r->old_to_new[j] = -1;
	}
	/* Sorted by name, so matching a config of n destinations is n log n; names are unique. */
	qsort_r(order, n_old, sizeof(*order), by_circuit_name, old);
	for (size_t i = 0; i < n; i++) {
		const struct config_dst *cfg = &r->cfg->dsts[i];
		int64_t j = find_old(old, order, n_old, cfg);

		r->info[i].from = j >= 0 && same_destination(old[j].cfg, cfg) ? (int32_t)j : -1;
		if (r->info[i].from >= 0) {
			/* As it will be after the switch; its arrays stay the running circuit's. */
			r->next[i] = old[j];
			r->old_to_new[j] = i;
		} else {
			r->next[i].n_wl = circuit_n_wl(r->cfg, cfg);
		}
		r->next[i].cfg = cfg;
		r->kept += r->info[i].from >= 0;
	}
	r->added = n - r->kept;
	r->removed = n_old - r->kept;
	free(order);
	return 0;
}

/* Where new breakers' slots come from, best first. */
struct slot_pick {
	size_t never;		/* next never-used slot */
	size_t unused;		/* next to look at among slots unused before the reload */
	size_t freed;		/* next to look at among slots the reload frees */
};

/* slot_take's order, then slots of removed circuits. Returns the id or -ENOSPC. */
static int64_t pick_slot(const struct agent *a, const struct reload *r, struct slot_pick *p)
{
	if (p->never < a->capacity)
		return p->never++;
	for (; p->unused < a->n_slots; p->unused++)
		if (!a->slots[p->unused].used)
			return p->unused++;
	/* Last: a socket tagged for the removed destination may still count into its slot. */
	for (; p->freed < a->n_slots; p->freed++)
		if (a->slots[p->freed].used && r->old_to_new[a->slots[p->freed].circuit] < 0)
			return p->freed++;
	return -ENOSPC;
}

/*
 * Give each new breaker its slot and make room for the journal and the
 * slots: after this only map writes can fail.
 */
static int reload_plan(struct agent *a, struct reload *r)
{
	struct slot_pick pick = { .never = a->n_slots };
	size_t writes = 0, breakers = 0, kept = 0, top = a->n_slots;

	/* A removed circuit's keys, and per breaker a verdict and its saved state. */
	for (size_t j = 0; j < a->n_circuits; j++)
		if (r->old_to_new[j] < 0)
			writes += circuit_n_keys(&a->circuits[j]) + 2 * circuit_n_slots(&a->circuits[j]);
	/* A kept breaker's verdict, when its new policy changes it. */
	for (size_t k = 0; k < a->n_slots; k++)
		kept += a->slots[k].used && r->old_to_new[a->slots[k].circuit] >= 0;
	writes += kept;
	for (size_t i = 0; i < r->cfg->n_dsts; i++) {
		struct agent_circuit *c = &r->next[i];
		int64_t id;

		/*
		 * An added name has no address yet (the resolver thread looks it up);
		 * a group's members come with its addresses.
		 */
		if (r->info[i].from >= 0 || grouped(c->cfg))
			continue;
		if (c->n_wl) {
			/* Consecutive slots, from never-used ones only: simple, and rarely short. */
			if (pick.never + c->n_wl > a->capacity)
				return reload_fail(r, -ENOSPC, "circuit %s: no %u consecutive slots left "
						   "(raise max_destinations)", c->cfg->name, c->n_wl);
			c->slot = pick.never;
			pick.never += c->n_wl;
			top = pick.never > top ? pick.never : top;
		} else {
			id = pick_slot(a, r, &pick);
			if (id < 0)
				return reload_fail(r, (int)id, "circuit %s: no slot left (raise max_destinations)",
						   c->cfg->name);
			c->slot = id;
			top = (size_t)id + 1 > top ? (size_t)id + 1 : top;
		}
		/* Its keys, and per breaker its counters and its verdict. */
		writes += circuit_n_keys(c) + 2 * circuit_n_slots(c);
		breakers += circuit_n_slots(c);
	}
	r->undo = calloc(writes ? writes : 1, sizeof(*r->undo));
	r->stats = calloc(breakers ? breakers : 1, sizeof(*r->stats));
	r->kept_slots = calloc(kept ? kept : 1, sizeof(*r->kept_slots));
	if (!r->undo || !r->stats || !r->kept_slots)
		return reload_fail(r, -ENOMEM, "journal of %zu map writes", writes);
	if (resolver_hosts(r->next, r->cfg->n_dsts, &r->hosts, &r->n_hosts))
		return reload_fail(r, -ENOMEM, "names of %zu circuits", r->cfg->n_dsts);
	if (slots_reserve(a, top))
		return reload_fail(r, -ENOMEM, "%zu slots", top);
	return 0;
}

/* Put added circuit i's breakers in their slots and say what it serves. */
static void reload_start(struct agent *a, struct reload *r, uint32_t i)
{
	const struct agent_circuit *c = &r->next[i];
	struct kb_verdict v;

	log_info("circuit added\tcircuit=%s host=%s", c->cfg->name, c->cfg->host);
	for (size_t m = 0; m < circuit_n_slots(c); m++) {
		uint32_t id = circuit_slot(c, m);
		struct agent_slot *s;

		for (; a->n_slots <= id; a->n_slots++)
			memset(&a->slots[a->n_slots], 0, sizeof(a->slots[0]));
		s = &a->slots[id];
		slot_init(s, i, c->cfg, NULL, r->now);
		s->workload = c->n_wl ? m : 0;
		circuit_verdict(c, &s->br, &v);
		s->events = v.events;
		s->dirty = true;	/* saved by the next tick */
	}
}

/*
 * The switch: the new circuits and breakers take over. Nothing here can
 * fail, and the maps already hold what it makes true.
 */
static void reload_commit(struct agent *a, struct reload *r)
{
	struct agent_circuit *old = a->circuits;
	const struct reload_kept *rk = r->kept_slots;
	struct kb_verdict v;
	char addr[ADDR_TEXT_MAX];

	/* Kept breakers follow their circuit and take the new policy, as reload_write() did. */
	for (size_t k = 0; k < a->n_slots; k++) {
		struct agent_slot *s = &a->slots[k];
		enum breaker_state was = s->br.state;
		const struct config_dst *cfg;
		bool moved;

		if (!s->used)
			continue;
		if (r->old_to_new[s->circuit] < 0) {
			s->used = false;
			continue;
		}
		moved = guard_moved(&old[s->circuit], &r->next[r->old_to_new[s->circuit]]);
		s->circuit = r->old_to_new[s->circuit];
		cfg = r->next[s->circuit].cfg;
		if (!slot_reconfigure(s, &cfg->policy, r->now) && !moved)
			continue;
		/* reload_write() kept every slot it wrote a verdict for, in this order. */
		if (rk->synced)
			breaker_adopt_count(&s->br, rk->fails);
		reload_feed_pending(&s->br, s->counted, s->resets_seen, rk, r->now);
		if (rk->counted || rk->pending)
			memcpy(s->counted, rk->connects, sizeof(s->counted));
		if (rk->resets > s->resets_seen)
			s->resets_seen = rk->resets;
		rk++;
		circuit_verdict(&r->next[s->circuit], &s->br, &v);
		s->events = v.events;
		s->dirty = true;	/* saved by the next tick */
		if (was == s->br.state)
			continue;
		addr[0] = '\0';
		if (grouped(cfg))
			addr_text(s->addr, addr, sizeof(addr));
		log_info("breaker %s\tcircuit=%s%s%s old_state=%s new_state=%s mode=%s cause=reload "
			 "failure_rate=%.2f", breaker_state_name(s->br.state), cfg->name,
			 addr[0] ? " address=" : "", addr, breaker_state_name(was),
			 breaker_state_name(s->br.state), config_mode_name(s->br.policy.mode),
			 breaker_failure_rate(&s->br, r->now));
	}
	for (size_t j = 0; j < a->n_circuits; j++) {
		if (r->old_to_new[j] >= 0)
			continue;
		log_info("circuit removed\tcircuit=%s", old[j].cfg->name);
		free(old[j].addrs);
		free(old[j].members);
		free(old[j].retired);
	}
	for (uint32_t i = 0; i < r->cfg->n_dsts; i++)
		if (r->info[i].from < 0)
			reload_start(a, r, i);
	a->circuits = r->next;
	a->n_circuits = r->cfg->n_dsts;
	a->cfg = r->cfg;
	r->next = NULL;
	free(old);
	kb_bpf_set_lookup_flags(a->bpf, agent_lookup_flags(r->cfg));
	kb_bpf_set_failopen_after(a->bpf, r->cfg->failopen_after_ns);
	__atomic_store_n(&a->poll_interval_ns, r->cfg->poll_interval_ns, __ATOMIC_RELAXED);
	a->deadline_stale = true;	/* a new policy may move a deadline without a new verdict */
	a->reloads_ok++;
	a->last_reload_ok = true;
	a->last_reload_ok_wall = time(NULL);
	resolver_follow(a, r->hosts, r->n_hosts);
	r->hosts = NULL;
}

static void reload_free(struct reload *r)
{
	/* Only a reload that did not switch still owns its added circuits' arrays. */
	for (size_t i = 0; r->next && r->info && i < r->cfg->n_dsts; i++) {
		if (r->info[i].from >= 0)
			continue;
		free(r->next[i].addrs);
		free(r->next[i].members);
	}
	free(r->next);
	free(r->info);
	free(r->old_to_new);
	free(r->undo);
	free(r->stats);
	free(r->kept_slots);
	free(r->hosts);
}

int agent_reload(struct agent *a, const struct config *cfg, uint64_t now)
{
	struct reload r = { .cfg = cfg, .now = now };
	int err;

	if (cfg->max_destinations != a->capacity) {
		err = reload_fail(&r, -EINVAL, "max_destinations cannot change while running "
				  "(%u -> %u), restart kbreakerd", a->capacity, cfg->max_destinations);
	} else {
		err = config_start_only_changed(a->cfg, cfg, r.why, sizeof(r.why));
		err = err ?: reload_match(a, &r);
	}
	if (!err) {
		/*
		 * Resets not fed yet, fed under the policy they came under: a
		 * breaker whose count is the kernel's (resets in it) and one
		 * whose count is its own (not yet) may trade places.
		 */
		agent_apply_resets(a, now);
		err = reload_plan(a, &r);
		err = err ?: reload_write(a, &r);
		if (!err) {
			reload_commit(a, &r);
			/* After the switch, which cannot fail: a failed read waits for the next poll. */
			slots_rebase_resets(a);
		}
	}
	reload_free(&r);
	if (err) {
		log_err("reload rejected, keeping the running configuration: %s: %s", r.why,
			strerror(-err));
		agent_reload_failed(a);
		return err;
	}
	log_info("configuration reloaded\tkept=%zu added=%zu removed=%zu", r.kept, r.added, r.removed);
	return 0;
}

void agent_reload_failed(struct agent *a)
{
	a->reloads_failed++;
	a->last_reload_ok = false;
}

