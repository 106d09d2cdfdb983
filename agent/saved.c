// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Breakers kept across restarts (state_dir): the agent's side of persist.h. */
#include <errno.h>
#include <string.h>
#include "agent_int.h"
#include "bpf.h"
#include "log.h"
#include "persist.h"

/* The record of slot id; false for a slot that is not kept. */
static bool saved_fill(const struct agent *a, uint32_t id, struct persist_record *rec)
{
	const struct agent_slot *s = &a->slots[id];
	const struct config_dst *cfg = slot_cfg(a, s);
	struct persist_state st = { .br = s->br, .resets_seen = s->resets_seen };

	/* per_address and per_workload members start afresh: their addresses or cgroups may differ */
	if (grouped(cfg) || a->circuits[s->circuit].n_wl)
		return false;
	memcpy(st.lost_seen, s->lost_seen, sizeof(st.lost_seen));
	persist_encode(&st, cfg->name, cfg->host, cfg->port, rec);
	return true;
}

int slot_save_now(struct agent *a, uint32_t id)
{
	struct persist_record rec;

	if (!saved_fill(a, id, &rec))
		return 0;
	return kb_bpf_saved_put(a->bpf, id, &rec);
}

void slot_save(struct agent *a, uint32_t id)
{
	int err;

	a->slots[id].dirty = false;
	err = a->persist ? slot_save_now(a, id) : 0;
	if (err) {
		a->map_errors++;
		log_err("bpf: save breaker %s: %s", slot_cfg(a, &a->slots[id])->name, strerror(-err));
	}
}

struct restore_ctx {
	struct agent *a;
	bool *restored;		/* per circuit */
	uint64_t now;
	int err;
};

/* Slot id takes circuit ci's breaker back from st. 0 or -ENOMEM. */
static int restore_slot(struct restore_ctx *rc, uint32_t id, uint32_t ci,
			const struct persist_state *st)
{
	struct agent *a = rc->a;
	const struct config_dst *cfg = a->circuits[ci].cfg;
	enum breaker_state was;
	struct agent_slot *s;

	if (slots_extend(a, id + 1))
		return -ENOMEM;
	s = &a->slots[id];
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->circuit = ci;
	s->br = st->br;
	memcpy(s->lost_seen, st->lost_seen, sizeof(s->lost_seen));
	s->resets_seen = st->resets_seen;
	a->circuits[ci].slot = id;
	rc->restored[ci] = true;
	a->restored++;
	was = s->br.state;
	breaker_reconfigure(&s->br, &cfg->policy, rc->now);
	/* Counted before this run: mark it fed, should no events come from here on. */
	s->events = true;
	/* The verdict map kept the old verdict; write the current one anyway. */
	slot_publish(a, s, was, "restart", rc->now);
	log_info("breaker restored\tcircuit=%s state=%s", cfg->name,
		 breaker_state_name(breaker_public_state(&s->br)));
	return 0;
}

/* kb_saved_fn: one saved breaker back into its old slot if its destination is still configured. */
static void restore_one(void *ctx, uint32_t id, const struct persist_record *rec)
{
	static const struct kb_verdict allow = { .action = KB_ACT_ALLOW };
	struct restore_ctx *rc = ctx;
	struct agent *a = rc->a;
	struct persist_state st;
	int err;

	for (uint32_t ci = 0; ci < a->n_circuits; ci++) {
		const struct config_dst *cfg = a->circuits[ci].cfg;

		if (rc->restored[ci] || grouped(cfg) || a->circuits[ci].n_wl ||
		    !persist_matches(rec, cfg->name, cfg->host, cfg->port))
			continue;
		err = id < a->capacity ? persist_decode(rec, &st) : -ERANGE;
		if (err) {
			log_warn("breaker of %s not restored: %s; it starts closed", cfg->name,
				 err == -EPROTO ? "saved by another version" : strerror(-err));
			break;
		}
		rc->err = restore_slot(rc, id, ci, &st);
		return;
	}
	/* Not configured any more (or unreadable): unblock and forget it. */
	slot_write_verdict(a, id, &allow);
	kb_bpf_saved_del(a->bpf, id);
	/*
	 * Sockets tagged for it may still count into its slot for a while:
	 * known, the slot goes to a new breaker only after never-used ones.
	 * Without the memory it is only that preference that is lost.
	 */
	if (id < a->capacity)
		slots_extend(a, id + 1);
}

int saved_restore(struct agent *a, bool *restored, uint64_t now)
{
	struct restore_ctx rc = { .a = a, .restored = restored, .now = now };
	int err;

	/*
	 * The adopted keys stay while the configuration's are written over
	 * them (same slots, same ids): no connect goes unattributed meanwhile.
	 * What the configuration no longer has is pruned once it is in.
	 */
	err = kb_bpf_saved_each(a->bpf, restore_one, &rc);
	err = err ?: rc.err;
	if (err)
		log_err("bpf: restore saved breakers: %s", strerror(-err));
	/* Outcomes lost while no agent ran are in the counters: look at once. */
	a->rescan_lost = true;
	return err;
}
