// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A reload's map writes, each journaled with what undoes it. */
#include <errno.h>
#include <string.h>
#include "bpf.h"
#include "kb_judge.h"
#include "log.h"
#include "reload.h"
#include "addr.h"

static struct undo *undo_push(struct reload *r, enum undo_op op, uint32_t id)
{
	struct undo *u = &r->undo[r->n_undo++];

	u->op = op;
	u->id = id;
	return u;
}

/*
 * The name of the new configuration's destination whose key leads to id, or
 * NULL. A kept one's keys are still the running circuit's until the switch.
 */
static const char *reload_holder(const struct agent *a, const struct reload *r, uint32_t id)
{
	for (size_t i = 0; i < r->cfg->n_dsts; i++) {
		const struct agent_circuit *c = r->info[i].from >= 0 ? &a->circuits[r->info[i].from]
								      : &r->next[i];

		for (size_t m = 0; m < circuit_n_keys(c); m++)
			if (circuit_key_id(c, m) == id)
				return r->cfg->dsts[i].name;
	}
	return NULL;
}

/*
 * Add or remove key m of circuit c, journaled. A key that is there already
 * for another destination (one the new configuration keeps, or has just
 * added) goes to a literal address, which outranks a name that resolves to
 * it, as at start (circuit_key_add); a name leaves it, and lets the address
 * go at its next resolution.
 */
static int reload_key(struct agent *a, struct reload *r, const struct agent_circuit *c, size_t m,
		      bool add)
{
	bool name = c->cfg->host_kind == HOST_NAME;
	const uint8_t *addr = name ? c->addrs[m] : c->cfg->addr;
	uint8_t prefix_len = name ? 128 : c->cfg->prefix_len;
	uint16_t port = c->cfg->port;
	uint32_t netns = c->cfg->netns_ino, id = circuit_key_id(c, m), held = 0;
	const char *other;
	struct undo *u;
	char text[ADDR_TEXT_MAX];
	int err;

	if (add) {
		err = kb_bpf_add_dst(a->bpf, addr, prefix_len, port, netns, id, &held);
	} else {
		/* Nothing to remove, or undo, where the key is not c's. */
		err = kb_bpf_get_dst(a->bpf, addr, prefix_len, port, netns, &held);
		if (err == -ENOENT || (!err && held != id))
			return 0;
		err = err ?: kb_bpf_del_dst(a->bpf, addr, prefix_len, port, netns, id);
	}
	if (err == -EEXIST && (other = reload_holder(a, r, held))) {
		addr_text(addr, text, sizeof(text));
		log_warn("address taken\tcircuit=%s%s%s address=%s port=%u %s=%s%s", c->cfg->name,
			 name ? " host=" : "", name ? c->cfg->host : "", text, port,
			 name ? "by" : "from", other,
			 name ? ": not watched by this destination"
			      : ": a destination's own address outranks a name that resolves to it");
		if (name)
			return 0;
	}
	if (err == -EEXIST) {
		err = kb_bpf_set_dst(a->bpf, addr, prefix_len, port, netns, id);
		if (!err) {
			/* Undone by writing the key back to what it led to. */
			u = undo_push(r, UNDO_ADD_DST, held);
			goto journal;
		}
	}
	if (err) {
		addr_text(addr, text, sizeof(text));
		return reload_fail(r, err, "bpf: %s %s/%u of %s%s", add ? "add" : "remove", text,
				   prefix_len, c->cfg->name,
				   err == -E2BIG || err == -ENOSPC ? " (raise max_destinations)" : "");
	}
	u = undo_push(r, add ? UNDO_DEL_DST : UNDO_ADD_DST, id);
journal:
	memcpy(u->addr, addr, sizeof(u->addr));
	u->prefix_len = prefix_len;
	u->port = port;
	u->netns = netns;
	return 0;
}

/*
 * Write slot id's verdict (a new gen), journaled with the one it replaces:
 * *was if the caller read it, else read here.
 */
static int reload_verdict(struct agent *a, struct reload *r, uint32_t id, const struct kb_verdict *v,
			  const struct kb_verdict *was)
{
	struct kb_verdict old, next = *v;
	int err = 0;

	if (!was)
		err = kb_bpf_get_verdict(a->bpf, id, &old);
	verdict_carry_probes(a, id, &next);
	err = err ?: kb_bpf_set_verdict(a->bpf, id, &next);
	if (err)
		return reload_fail(r, err, "bpf: write verdict of slot %u", id);
	undo_push(r, UNDO_VERDICT, id)->verdict = was ? *was : old;
	return 0;
}

/*
 * A kept breaker about to get a new verdict, br (reconfigured): take what
 * only the kernel knows into br, and into rk for reload_commit() to take
 * the same way. *was gets the verdict now in the map.
 */
static int reload_keep(struct agent *a, struct reload *r, const struct agent_slot *s,
		       struct breaker *br, struct reload_kept *rk, struct kb_verdict *was)
{
	uint32_t id = s - a->slots;
	struct kb_verdict v;
	struct kb_dst_stats st;
	struct kb_trip trip;
	int err;

	rk->id = id;
	rk->resets = 0;
	/* slot_sync_count()'s, as slot_publish() does before a new gen starts the kernel's count afresh. */
	rk->synced = !s->events && br->state == BS_CLOSED;
	err = rk->synced ? kb_bpf_read_trip(a->bpf, id, &trip, was) : kb_bpf_get_verdict(a->bpf, id, was);
	rk->synced = !err && rk->synced && was->gen && was->since_ns == br->state_since_ns;
	if (rk->synced) {
		rk->fails = kb_fails_in_row(was, trip.fails);
		breaker_adopt_count(br, rk->fails);
	}
	/*
	 * What mark_counted() reads when events stop, read now: the switch
	 * cannot fail. When they start, what apply_counts() has not fed yet
	 * would reach the breaker neither way.
	 */
	circuit_verdict(&r->next[r->old_to_new[s->circuit]], br, &v);
	rk->counted = s->events && !v.events;
	rk->pending = !s->events && v.events;
	if (!err && (rk->counted || rk->pending)) {
		err = kb_bpf_read_stats(a->bpf, id, &st);
		memcpy(rk->connects, st.connects, sizeof(rk->connects));
		/* Resets since agent_reload() fed them are in fails: not to be fed once more. */
		rk->resets = rk->pending && rk->synced && (was->fail_mask & KB_RESETS_FAIL) ?
			     st.resets_rx + st.resets_tx : 0;
	}
	if (err)
		return reload_fail(r, err, "bpf: read the kernel's state of slot %u", id);
	reload_feed_pending(br, s->counted, s->resets_seen, rk, r->now);
	return 0;
}

void reload_feed_pending(struct breaker *br, const uint64_t counted[KB_RES_MAX],
			 uint64_t resets_seen, const struct reload_kept *rk, uint64_t now)
{
	if (!rk->pending)
		return;
	for (int res = 0; res < KB_RES_MAX; res++)
		if (rk->connects[res] > counted[res])
			breaker_count(br, res, rk->connects[res] - counted[res], now);
	if (rk->resets > resets_seen)
		breaker_count_resets(br, rk->resets - resets_seen, now);
}

/* Zero slot id's counters for a new breaker, journaled with what they were. */
static int reload_reset_stats(struct agent *a, struct reload *r, uint32_t id)
{
	int err;

	err = kb_bpf_read_stats(a->bpf, id, &r->stats[r->n_stats]);
	err = err ?: kb_bpf_reset_stats(a->bpf, id);
	if (err)
		return reload_fail(r, err, "bpf: reset counters of slot %u", id);
	undo_push(r, UNDO_STATS, id)->stats = r->n_stats++;
	return 0;
}

/* Forget a removed breaker's saved state; undone by saving the running breaker again. */
static int reload_forget(struct agent *a, struct reload *r, uint32_t id)
{
	int err = kb_bpf_saved_del(a->bpf, id);

	if (err)
		return reload_fail(r, err, "bpf: forget saved breaker of slot %u", id);
	undo_push(r, UNDO_SAVED, id);
	return 0;
}

/* Put back, last first, every map entry the reload wrote. */
static void reload_undo(struct agent *a, struct reload *r)
{
	while (r->n_undo) {
		const struct undo *u = &r->undo[--r->n_undo];
		int err = 0;

		switch (u->op) {
		case UNDO_DEL_DST:
			err = kb_bpf_del_dst(a->bpf, u->addr, u->prefix_len, u->port, u->netns, u->id);
			break;
		case UNDO_ADD_DST:
			err = kb_bpf_set_dst(a->bpf, u->addr, u->prefix_len, u->port, u->netns, u->id);
			break;
		case UNDO_VERDICT:
			err = kb_bpf_put_verdict(a->bpf, u->id, &u->verdict);
			break;
		case UNDO_STATS:
			err = kb_bpf_set_stats(a->bpf, u->id, &r->stats[u->stats]);
			break;
		case UNDO_SAVED:
			err = slot_save_now(a, u->id);
			break;
		}
		/* A second failure: this entry now differs from what the agent runs on. */
		if (err) {
			a->map_errors++;
			log_err("bpf: reload: put back map entry of slot %u (undo %d): %s", u->id, u->op,
				strerror(-err));
		}
	}
}

/*
 * In an order the hooks can bear at any
 * point: removed destinations out and unblocked; new breakers' counters
 * and verdicts in place before a key leads to them; the new keys; kept
 * breakers' new verdicts. A failure undoes what was written.
 */
int reload_write(struct agent *a, struct reload *r)
{
	static const struct kb_verdict allow = { .action = KB_ACT_ALLOW };
	struct kb_verdict v, was;
	struct breaker br;
	int err = 0;

	for (size_t j = 0; j < a->n_circuits && !err; j++) {
		const struct agent_circuit *c = &a->circuits[j];

		if (r->old_to_new[j] >= 0)
			continue;
		for (size_t m = 0; m < circuit_n_keys(c) && !err; m++)
			err = reload_key(a, r, c, m, false);
		for (size_t m = 0; m < circuit_n_slots(c) && !err; m++) {
			err = reload_verdict(a, r, circuit_slot(c, m), &allow, NULL);
			/* Every member's too: a record left would come back at a restart. */
			if (!err && a->persist)
				err = reload_forget(a, r, circuit_slot(c, m));
		}
	}
	for (size_t i = 0; i < r->cfg->n_dsts && !err; i++) {
		const struct agent_circuit *c = &r->next[i];

		if (r->info[i].from >= 0)
			continue;
		for (size_t m = 0; m < circuit_n_slots(c) && !err; m++) {
			/* The breaker reload_commit() starts: same policy, same now. */
			breaker_init(&br, &c->cfg->policy, r->now);
			circuit_verdict(c, &br, &v);
			err = reload_reset_stats(a, r, circuit_slot(c, m));
			err = err ?: reload_verdict(a, r, circuit_slot(c, m), &v, NULL);
			/* Another destination's workload counts: not undone, the slot was free. */
			if (!err && m == 0 && a->wl.max)
				kb_bpf_wstats_forget(a->bpf, circuit_slot(c, 0));
		}
	}
	for (size_t i = 0; i < r->cfg->n_dsts && !err; i++)
		for (size_t m = 0; r->info[i].from < 0 && m < circuit_n_keys(&r->next[i]) && !err; m++)
			err = reload_key(a, r, &r->next[i], m, true);
	for (size_t k = 0; k < a->n_slots && !err; k++) {
		const struct agent_slot *s = &a->slots[k];
		const struct config_dst *cfg;

		if (!s->used || r->old_to_new[s->circuit] < 0)
			continue;
		/* On a copy: the breaker itself changes in reload_commit(), the same way. */
		cfg = r->next[r->old_to_new[s->circuit]].cfg;
		br = s->br;
		if (!breaker_reconfigure(&br, &cfg->policy, r->now) &&
		    !guard_moved(&a->circuits[s->circuit], &r->next[r->old_to_new[s->circuit]]))
			continue;
		err = reload_keep(a, r, s, &br, &r->kept_slots[r->n_kept], &was);
		if (err)
			break;
		r->n_kept++;
		circuit_verdict(&r->next[r->old_to_new[s->circuit]], &br, &v);
		err = reload_verdict(a, r, k, &v, &was);
	}
	if (err)
		reload_undo(a, r);
	return err;
}

