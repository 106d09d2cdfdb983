// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Breakers kept across restarts (state_dir): the agent's side of persist.h. */
#include <errno.h>
#include <stdlib.h>
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

	/* Not rebased yet: saved as not counting resets, the next run rebases it. */
	if (s->resets_rebase)
		st.br.policy.failures &= ~POLICY_FAIL_RESET;
	memcpy(st.lost_seen, s->lost_seen, sizeof(st.lost_seen));
	persist_encode(&st, cfg->name, cfg->host, cfg->port, cfg->netns_ino, rec);
	if (a->circuits[s->circuit].n_wl)
		rec->workload = s->workload + 1;
	if (grouped(cfg)) {
		const struct circuit_retired *gone = a->circuits[s->circuit].retired;

		rec->member = 1;
		memcpy(rec->addr, s->addr, sizeof(rec->addr));
		if (gone) {
			rec->retired.stats = gone->stats;
			memcpy(rec->retired.transitions, gone->transitions, sizeof(gone->transitions));
			rec->retired.trips_denied = gone->trips_denied;
		}
	}
	return true;
}

static uint64_t max_u64(uint64_t x, uint64_t y)
{
	return x > y ? x : y;
}

/*
 * Circuit c takes back what its members that went had counted, from one of
 * its members' records. Each carries a copy as of its last save, and the
 * counts only grow: the largest of each is the latest. 0 or -ENOMEM.
 */
static int retired_take(struct agent_circuit *c, const struct persist_retired *r)
{
	const uint64_t *from = (const uint64_t *)&r->stats;
	uint64_t *to;
	bool any = r->trips_denied != 0;

	for (size_t i = 0; i < sizeof(r->stats) / sizeof(uint64_t); i++)
		any |= from[i] != 0;
	for (int i = 0; i < BS_MACHINE; i++)
		for (int j = 0; j < BS_MACHINE; j++)
			any |= r->transitions[i][j] != 0;
	if (!any)
		return 0;
	if (!c->retired && !(c->retired = calloc(1, sizeof(*c->retired))))
		return -ENOMEM;
	to = (uint64_t *)&c->retired->stats;
	for (size_t i = 0; i < sizeof(r->stats) / sizeof(uint64_t); i++)
		to[i] = max_u64(to[i], from[i]);
	for (int i = 0; i < BS_MACHINE; i++)
		for (int j = 0; j < BS_MACHINE; j++)
			c->retired->transitions[i][j] = max_u64(c->retired->transitions[i][j],
								r->transitions[i][j]);
	c->retired->trips_denied = max_u64(c->retired->trips_denied, r->trips_denied);
	return 0;
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

/* Slot s takes a saved breaker and its counters' bookkeeping back from st. */
static void slot_take_state(struct agent_slot *s, const struct persist_state *st)
{
	s->br = st->br;
	memcpy(s->lost_seen, st->lost_seen, sizeof(s->lost_seen));
	s->resets_seen = st->resets_seen;
	s->resets_rebase = false;	/* the saved count is where this breaker's resets stand */
}

/*
 * Put addr, member id, into per_address circuit c's sorted addresses, as
 * its first resolution expects them: that merges them with the answer, and
 * an address gone retires its member as in a run. 1 for an address it has
 * already (the record is forgotten), 0, or -ENOMEM.
 */
static int member_insert(struct agent_circuit *c, const uint8_t addr[16], uint32_t id)
{
	kb_addr_t *addrs;
	uint32_t *members;
	size_t i = 0;
	int cmp = 1;

	while (i < c->n_addrs && (cmp = memcmp(c->addrs[i], addr, 16)) < 0)
		i++;
	if (i < c->n_addrs && !cmp)
		return 1;
	addrs = realloc(c->addrs, (c->n_addrs + 1) * sizeof(*addrs));
	if (!addrs)
		return -ENOMEM;
	c->addrs = addrs;
	members = realloc(c->members, (c->n_addrs + 1) * sizeof(*members));
	if (!members)
		return -ENOMEM;
	c->members = members;
	memmove(&addrs[i + 1], &addrs[i], (c->n_addrs - i) * sizeof(*addrs));
	memmove(&members[i + 1], &members[i], (c->n_addrs - i) * sizeof(*members));
	memcpy(addrs[i], addr, 16);
	members[i] = id;
	c->n_addrs++;
	return 0;
}

/*
 * Slot id takes circuit ci's breaker back from st; addr: the per_address
 * member of that address. 0, 1 when it does not fit (forget it), or -ENOMEM.
 */
static int restore_slot(struct restore_ctx *rc, uint32_t id, uint32_t ci,
			const struct persist_state *st, const uint8_t *addr)
{
	struct agent *a = rc->a;
	const struct config_dst *cfg = a->circuits[ci].cfg;
	char text[ADDR_TEXT_MAX] = "";
	enum breaker_state was;
	struct agent_slot *s;
	int err;

	if (slots_extend(a, id + 1))
		return -ENOMEM;
	if (addr) {
		err = member_insert(&a->circuits[ci], addr, id);
		if (err)
			return err;
		addr_text(addr, text, sizeof(text));
	} else {
		a->circuits[ci].slot = id;
		rc->restored[ci] = true;
	}
	s = &a->slots[id];
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->circuit = ci;
	if (addr)
		memcpy(s->addr, addr, sizeof(s->addr));
	slot_take_state(s, st);
	a->restored++;
	was = s->br.state;
	slot_reconfigure(s, &cfg->policy, rc->now);
	slot_resume(a, s, was, rc->now);
	log_info("breaker restored\tcircuit=%s%s%s state=%s", cfg->name, addr ? " address=" : "",
		 text, breaker_state_name(breaker_public_state(&s->br)));
	return 0;
}

/*
 * Workload wl's saved breaker back into slot id, a member of circuit ci's
 * block (per_workload): the first member back takes the whole block where
 * it was, the others fresh until their own records come. Published once
 * every record is read (saved_publish_members): a publish saves, and
 * would write over a record not read yet. Only when the workload maps
 * were adopted too: else index wl names some other cgroup now. 0, 1 when
 * the record does not fit (forget it), or -ENOMEM.
 */
static int restore_member(struct restore_ctx *rc, uint32_t id, uint32_t ci, uint32_t wl,
			  const struct persist_state *st)
{
	struct agent *a = rc->a;
	struct agent_circuit *c = &a->circuits[ci];
	uint32_t n = circuit_n_slots(c), base = id - wl;
	struct agent_slot *s;

	if (!kb_bpf_wl_adopted(a->bpf) || wl >= n || id < wl || (uint64_t)base + n > a->capacity)
		return 1;
	if (!rc->restored[ci]) {
		if (slots_extend(a, base + n))
			return -ENOMEM;
		for (uint32_t m = 0; m < n; m++)
			if (a->slots[base + m].used)
				return 1;
		for (uint32_t m = 0; m < n; m++) {
			s = &a->slots[base + m];
			slot_init(s, ci, c->cfg, NULL, rc->now);
			s->workload = m;
			/*
			 * Counted before this run, as a restored breaker's are;
			 * resets too, until a record says where they stand.
			 */
			s->events = true;
			s->resets_rebase = true;
		}
		c->slot = base;
		rc->restored[ci] = true;
		a->restored++;
	} else if (c->slot != base) {
		return 1;
	}
	slot_take_state(&a->slots[id], st);
	return 0;
}

/* Publish the breakers of the per_workload blocks restore_member took back. */
static void saved_publish_members(struct agent *a, const bool *restored, uint64_t now)
{
	for (uint32_t ci = 0; ci < a->n_circuits; ci++) {
		const struct agent_circuit *c = &a->circuits[ci];

		if (!restored[ci] || !c->n_wl)
			continue;
		for (size_t m = 0; m < circuit_n_slots(c); m++) {
			struct agent_slot *s = &a->slots[circuit_slot(c, m)];
			enum breaker_state was = s->br.state;

			slot_reconfigure(s, &c->cfg->policy, now);
			slot_resume(a, s, was, now);
			if (s->br.state != BS_CLOSED)
				log_info("breaker restored\tcircuit=%s workload_index=%zu state=%s",
					 c->cfg->name, m, breaker_state_name(breaker_public_state(&s->br)));
		}
	}
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

		/* A shared breaker's record is not a member's, nor the reverse. */
		if (grouped(cfg) != (rec->member == 1) || !rec->workload != !a->circuits[ci].n_wl ||
		    (!rec->workload && !rec->member && rc->restored[ci]) ||
		    !persist_matches(rec, cfg->name, cfg->host, cfg->port, cfg->netns_ino))
			continue;
		err = id < a->capacity ? persist_decode(rec, &st) : -ERANGE;
		if (err) {
			log_warn("breaker of %s not restored: %s; it starts closed", cfg->name,
				 err == -EPROTO ? "saved by another version" : strerror(-err));
			break;
		}
		if (rec->workload)
			err = restore_member(rc, id, ci, rec->workload - 1u, &st);
		else
			err = restore_slot(rc, id, ci, &st, rec->member ? rec->addr : NULL);
		if (!err && rec->member)
			err = retired_take(&a->circuits[ci], &rec->retired);
		if (err <= 0) {
			rc->err = rc->err ?: err;
			return;
		}
		break;
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
	if (!err)
		saved_publish_members(a, restored, now);
	if (err)
		log_err("bpf: restore saved breakers: %s", strerror(-err));
	/* Outcomes lost while no agent ran are in the counters: look at once. */
	a->rescan_lost = true;
	return err;
}
