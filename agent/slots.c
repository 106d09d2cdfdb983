// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Breakers in slots: their verdicts in the kernel, their keys, their addresses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "agent_int.h"
#include "bpf.h"
#include "kb_judge.h"
#include "log.h"
#include "addr.h"

void circuit_verdict(const struct agent_circuit *c, const struct breaker *br, struct kb_verdict *v)
{
	breaker_verdict(br, v);
	if (guarded(c)) {
		/* The blast-radius guard is the agent's: no trip in the kernel, wake it instead. */
		v->trip_after = 0;
		v->wake_mask |= v->fail_mask & ~KB_RESETS_FAIL;
		v->events = 1;
	}
}

void verdict_carry_probes(struct agent *a, uint32_t id, struct kb_verdict *v)
{
	struct kb_verdict cur;
	struct kb_trip t;
	__u32 spent;

	if (v->action != KB_ACT_PROBE || kb_bpf_read_trip(a->bpf, id, &t, &cur) || !cur.gen ||
	    cur.action != KB_ACT_PROBE || cur.since_ns != v->since_ns)
		return;
	spent = kb_word_count(t.probes, cur.gen) - kb_permits_unsent(&cur, &t);
	spent = spent < cur.permits ? spent : cur.permits;
	if (v->permits > cur.permits - spent)
		v->permits = cur.permits - spent;
}

/*
 * Half_open s: permits taken by connects that failed before their SYN
 * (kb_judge.h) go back in a new gen, once the kernel's counts have stood
 * still for KB_UNSENT_GRACE_NS: a connect between its hook and its SYN
 * takes microseconds, one that failed there never gets further. Without
 * this the breaker would wait for outcomes that never come, refusing a
 * destination that may have recovered.
 */
void slot_check_permits(struct agent *a, struct agent_slot *s, uint64_t now)
{
	struct kb_verdict cur, v;
	struct kb_trip t;
	uint32_t id = s - a->slots, unsent, taken, sent;
	int err;

	/* Tripped: a probe failed, and the breaker opens again as soon as the loop reads it. */
	if (s->br.state != BS_HALF_OPEN || kb_bpf_read_trip(a->bpf, id, &t, &cur) ||
	    !(unsent = kb_permits_unsent(&cur, &t)) || cur.since_ns != s->br.state_since_ns ||
	    t.tripped == cur.gen) {
		s->unsent.since_ns = 0;
		return;
	}
	taken = kb_word_count(t.probes, cur.gen);
	sent = kb_word_count(t.sent, cur.gen);
	if (!s->unsent.since_ns || s->unsent.gen != cur.gen || s->unsent.taken != taken ||
	    s->unsent.sent != sent) {
		s->unsent.gen = cur.gen;
		s->unsent.taken = taken;
		s->unsent.sent = sent;
		s->unsent.since_ns = now;
		return;
	}
	if (now - s->unsent.since_ns < KB_UNSENT_GRACE_NS)
		return;
	s->unsent.since_ns = 0;
	v = cur;
	v.permits = cur.permits - sent;
	err = kb_bpf_set_verdict(a->bpf, id, &v);
	if (err) {
		a->map_errors++;
		log_err("bpf: write verdict of slot %u: %s", id, strerror(-err));
		return;
	}
	a->permits_returned += unsent;
	log_info("probe permits given back: their connects failed before sending\tcircuit=%s "
		 "permits=%u", slot_cfg(a, s)->name, unsent);
}

void slot_write_verdict(struct agent *a, uint32_t id, const struct kb_verdict *verdict)
{
	struct kb_verdict v = *verdict;
	int err;

	verdict_carry_probes(a, id, &v);
	err = kb_bpf_set_verdict(a->bpf, id, &v);

	if (err) {
		a->map_errors++;
		log_err("bpf: write verdict of slot %u: %s", id, strerror(-err));
	}
}

/*
 * A breaker without events learns its consecutive count from the kernel,
 * which counts it (kb_judge.h): what the agent wrote as the base plus the
 * kernel's count in that verdict's gen, while the breaker is in the state
 * that verdict was written for.
 */
static bool sync_count(struct agent *a, struct agent_slot *s, struct kb_verdict *v)
{
	struct kb_trip t;

	if (s->events || s->br.state != BS_CLOSED ||
	    kb_bpf_read_trip(a->bpf, s - a->slots, &t, v) || !v->gen ||
	    v->since_ns != s->br.state_since_ns)
		return false;
	breaker_adopt_count(&s->br, kb_fails_in_row(v, t.fails));
	return true;
}

void slot_sync_count(struct agent *a, struct agent_slot *s)
{
	struct kb_verdict v;

	sync_count(a, s, &v);
}

/*
 * s took the kernel's count, which held resets too (v said KB_RESETS_FAIL):
 * those the agent had not seen go to the window alone, or a restart would
 * count them twice.
 */
static void resets_in_count(struct agent *a, struct agent_slot *s, const struct kb_verdict *v,
			    uint64_t now)
{
	struct kb_dst_stats st;
	uint64_t total;

	if (!(v->fail_mask & KB_RESETS_FAIL) || s->resets_rebase)
		return;
	if (kb_bpf_read_stats(a->bpf, s - a->slots, &st)) {
		s->resets_rebase = true;	/* taken as seen at the next poll, not counted twice */
		return;
	}
	total = st.resets_rx + st.resets_tx;
	if (total > s->resets_seen)
		breaker_count_resets(&s->br, total - s->resets_seen, now);
	s->resets_seen = total;
}

/*
 * From now on s's outcomes reach it from counters, not events: what the
 * kernel counted so far came as events already.
 */
static void mark_counted(struct agent *a, struct agent_slot *s)
{
	struct kb_dst_stats st;

	if (!kb_bpf_read_stats(a->bpf, s - a->slots, &st))
		memcpy(s->counted, st.connects, sizeof(s->counted));
}

void slot_publish(struct agent *a, struct agent_slot *s, enum breaker_state old, const char *cause,
		  uint64_t now)
{
	const struct config_dst *cfg = slot_cfg(a, s);
	struct kb_verdict v;
	char addr[ADDR_TEXT_MAX] = "";

	/* The new verdict starts a new gen: carry the kernel's count over into its base. */
	slot_sync_count(a, s);
	circuit_verdict(&a->circuits[s->circuit], &s->br, &v);
	if (s->events && !v.events)
		mark_counted(a, s);
	s->events = v.events;
	slot_write_verdict(a, s - a->slots, &v);
	slot_save(a, s - a->slots);
	/* Deadlines only move when a verdict does: find the next one again. */
	a->deadline_stale = true;
	if (old == s->br.state)
		return;	/* a ramp step: no transition to tell */
	if (grouped(cfg))
		addr_text(s->addr, addr, sizeof(addr));
	log_info("breaker %s\tcircuit=%s%s%s%s%s old_state=%s new_state=%s mode=%s cause=%s "
		 "failure_rate=%.2f", breaker_state_name(s->br.state), cfg->name,
		 addr[0] ? " address=" : "", addr,
		 a->circuits[s->circuit].n_wl ? " workload=" : "",
		 a->circuits[s->circuit].n_wl ? agent_workload_name(a, s->workload) : "",
		 breaker_state_name(old),
		 breaker_state_name(s->br.state), config_mode_name(s->br.policy.mode), cause,
		 breaker_failure_rate(&s->br, now));
}

void slot_resume(struct agent *a, struct agent_slot *s, enum breaker_state was, uint64_t now)
{
	struct kb_verdict want, have;

	/* The kernel's count of failures in a row, in the verdict the previous run wrote. */
	s->events = false;
	if (sync_count(a, s, &have))
		resets_in_count(a, s, &have, now);
	circuit_verdict(&a->circuits[s->circuit], &s->br, &want);
	if (!kb_bpf_get_verdict(a->bpf, s - a->slots, &have) && have.gen) {
		want.gen = have.gen;
		want.fails_base = have.fails_base;
		if (was == s->br.state && !memcmp(&want, &have, sizeof(want))) {
			/* Its own: it stays, gen and all, and so do the kernel's counts in it. */
			s->events = want.events;
			if (!s->events)
				mark_counted(a, s);
			a->deadline_stale = true;
			return;
		}
	}
	/* Counted before this run: fed from the counters as they are now, should no events come. */
	s->events = true;
	slot_publish(a, s, was, "restart", now);
}

/*
 * Members the guard weighs: each address, or each workload seen so far
 * (the labelled ones and, once anything folded, "other").
 */
static size_t group_size(const struct agent *a, const struct agent_circuit *c)
{
	size_t seen;

	if (!c->n_wl)
		return c->n_addrs;
	seen = a->wl.labelled + (a->wl.folded > 0);
	return seen ? seen : 1;
}

/* Blast-radius guard: may one more member of s's group open? */
bool slot_may_open(const struct agent *a, const struct agent_slot *s)
{
	const struct agent_circuit *c = &a->circuits[s->circuit];
	size_t open_now = 0;

	if (!guarded(c))
		return true;
	for (size_t i = 0; i < circuit_n_slots(c); i++) {
		enum breaker_state st = a->slots[circuit_slot(c, i)].br.state;

		open_now += st == BS_OPEN || st == BS_HALF_OPEN;
	}
	return breaker_group_may_open(open_now, group_size(a, c), c->cfg->max_open_percent);
}

void slot_record(struct agent *a, struct agent_slot *s, enum kb_result res,
		   uint64_t start_ns, uint64_t now)
{
	enum breaker_state old = s->br.state;

	s->dirty = true;
	/* An open names its rule: a success may open one (a slow call, minimum_calls reached). */
	if (breaker_record_guarded(&s->br, res, start_ns, now, slot_may_open(a, s)))
		slot_publish(a, s, old, s->br.state == BS_OPEN ? breaker_cause_name(s->br.cause) :
			     breaker_result_name(res), now);
}

/*
 * The kernel opened s's breaker on its own (kb_judge.h) and blocks until
 * our next verdict. Its count is the truth: adopt the trip, even where
 * our breaker has not counted the same failures (CPUs raced a success
 * past a failure), and write the verdict that carries it on.
 */
void slot_adopt_trip(struct agent *a, struct agent_slot *s, uint64_t at, const char *cause)
{
	enum breaker_state old = s->br.state;

	s->dirty = true;
	if (breaker_adopt_trip(&s->br, at))
		slot_publish(a, s, old, cause ? cause : breaker_cause_name(s->br.cause), at);
}

/* --- slots --------------------------------------------------------------- */

int slots_reserve(struct agent *a, size_t n)
{
	size_t alloc = a->slots_alloc ? a->slots_alloc : 64;
	struct agent_slot *p;

	if (n <= a->slots_alloc)
		return 0;
	while (alloc < n)
		alloc *= 2;
	if (alloc > a->capacity)
		alloc = a->capacity;
	p = realloc(a->slots, alloc * sizeof(*p));
	if (!p)
		return -ENOMEM;
	a->slots = p;
	a->slots_alloc = alloc;
	return 0;
}

int slots_extend(struct agent *a, size_t n)
{
	int err = slots_reserve(a, n);

	if (err)
		return err;
	for (; a->n_slots < n; a->n_slots++)
		memset(&a->slots[a->n_slots], 0, sizeof(a->slots[0]));
	return 0;
}

void slot_init(struct agent_slot *s, uint32_t ci, const struct config_dst *cfg,
	       const kb_addr_t addr, uint64_t now)
{
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->circuit = ci;
	if (addr)
		memcpy(s->addr, addr, sizeof(s->addr));
	breaker_init(&s->br, &cfg->policy, now);
}

bool slot_reconfigure(struct agent_slot *s, const struct breaker_policy *p, uint64_t now)
{
	if (!(s->br.policy.failures & POLICY_FAIL_RESET) && (p->failures & POLICY_FAIL_RESET))
		s->resets_rebase = true;
	return breaker_reconfigure(&s->br, p, now);
}

void slot_rebase_resets(struct agent *a, struct agent_slot *s)
{
	struct kb_dst_stats st;

	s->resets_rebase = true;
	if (kb_bpf_read_stats(a->bpf, s - a->slots, &st))
		return;
	s->resets_seen = st.resets_rx + st.resets_tx;
	s->resets_rebase = false;
	s->dirty = true;
}

void slots_rebase_resets(struct agent *a)
{
	for (size_t i = 0; i < a->n_slots; i++)
		if (a->slots[i].used && a->slots[i].resets_rebase)
			slot_rebase_resets(a, &a->slots[i]);
}

/* The first of n consecutive unused slots, or -ENOSPC / -ENOMEM. Never-used ones go first. */
static int64_t slots_find(struct agent *a, size_t n)
{
	size_t id, run = 0;

	if (a->n_slots + n <= a->capacity) {
		id = a->n_slots;
		return slots_extend(a, id + n) ? -ENOMEM : (int64_t)id;
	}
	for (id = 0; id < a->n_slots; id++) {
		run = a->slots[id].used ? 0 : run + 1;
		if (run == n)
			return id + 1 - n;
	}
	return -ENOSPC;
}

/*
 * Take n consecutive slots for new breakers of circuit ci (n > 1: one per
 * workload). Never-used slots go first: a socket tagged for a removed
 * destination may still count into its old slot for a while. Returns the
 * first slot id or -ENOSPC / -ENOMEM.
 */
static int64_t slot_take_n(struct agent *a, uint32_t ci, const kb_addr_t addr, size_t n,
			   uint64_t now)
{
	int64_t first = slots_find(a, n);
	int err;

	if (first < 0)
		return first;
	for (size_t m = 0; m < n; m++) {
		uint32_t id = first + m;
		struct agent_slot *s = &a->slots[id];

		slot_init(s, ci, a->circuits[ci].cfg, addr, now);
		s->workload = m;
		err = kb_bpf_reset_stats(a->bpf, id);
		if (err) {
			a->map_errors++;
			log_err("bpf: reset counters of slot %u: %s", id, strerror(-err));
			/* A previous destination's resets: not this one's failures. */
			slot_rebase_resets(a, s);
		}
		/* A fresh breaker may start in forced_open: its verdict is not always ALLOW. */
		slot_publish(a, s, s->br.state, "start", now);
	}
	if (a->wl.max)
		kb_bpf_wstats_forget(a->bpf, first);	/* a previous destination's */
	return first;
}

static int64_t slot_take(struct agent *a, uint32_t ci, const kb_addr_t addr, uint64_t now)
{
	return slot_take_n(a, ci, addr, 1, now);
}

void slot_drop(struct agent *a, uint32_t id)
{
	struct kb_verdict allow = { .action = KB_ACT_ALLOW };

	/* Unblock first: the map key may outlive this call if its delete fails. */
	slot_write_verdict(a, id, &allow);
	a->slots[id].used = false;
	if (a->persist)
		kb_bpf_saved_del(a->bpf, id);
}

/* --- addresses ----------------------------------------------------------- */

bool circuit_wants_key(const struct agent *a, const uint8_t addr[16], uint8_t prefix_len,
		       uint16_t port, uint32_t netns, uint32_t id)
{
	const struct agent_circuit *c;
	const struct agent_slot *s;

	if ((id & KB_ID_SLOT) >= a->n_slots || !a->slots[id & KB_ID_SLOT].used)
		return false;
	s = &a->slots[id & KB_ID_SLOT];
	c = &a->circuits[s->circuit];
	if (id != circuit_key_id(c, 0) && !grouped(c->cfg))
		return false;	/* shared then, per_workload now, or the other way */
	if (c->cfg->port != port || c->cfg->netns_ino != netns)
		return false;
	if (c->cfg->host_kind != HOST_NAME)
		return prefix_len == c->cfg->prefix_len && !memcmp(addr, c->cfg->addr, 16);
	if (prefix_len != 128)
		return false;
	if (grouped(c->cfg))
		return !memcmp(addr, s->addr, 16);
	for (size_t i = 0; i < c->n_addrs; i++)
		if (!memcmp(addr, c->addrs[i], 16))
			return true;
	return false;
}

static void warn_taken(const struct agent_circuit *c, const char *addr, const char *other)
{
	log_warn("address taken\tcircuit=%s host=%s address=%s port=%u by=%s: not watched by this "
		 "destination", c->cfg->name, c->cfg->host, addr, c->cfg->port, other);
}

/*
 * Point key addr/prefix_len of circuit c at id. A key is one destination's:
 * one that another still wants stays its own, unless c names the address
 * itself (a literal outranks a name that happens to resolve to it; the
 * name lets it go at its next resolution). A key nobody wants (a previous
 * run's) is taken. 0, -EEXIST (another's; logged) or -errno (logged).
 */
static int circuit_key_add(struct agent *a, const struct agent_circuit *c, const kb_addr_t addr,
			   uint8_t prefix_len, uint32_t id)
{
	const struct config_dst *cfg = c->cfg;
	const char *other;
	char text[ADDR_TEXT_MAX];
	uint32_t held;
	int err;

	err = kb_bpf_add_dst(a->bpf, addr, prefix_len, cfg->port, cfg->netns_ino, id, &held);
	if (err == -EEXIST && circuit_wants_key(a, addr, prefix_len, cfg->port, cfg->netns_ino, held)) {
		other = a->circuits[a->slots[held & KB_ID_SLOT].circuit].cfg->name;
		addr_text(addr, text, sizeof(text));
		if (cfg->host_kind == HOST_NAME) {
			warn_taken(c, text, other);
			return -EEXIST;
		}
		log_warn("address taken\tcircuit=%s address=%s port=%u from=%s: a destination's own "
			 "address outranks a name that resolves to it", cfg->name, text, cfg->port, other);
	}
	if (err == -EEXIST)
		err = kb_bpf_set_dst(a->bpf, addr, prefix_len, cfg->port, cfg->netns_ino, id);
	if (err) {
		a->map_errors++;
		addr_text(addr, text, sizeof(text));
		log_err("bpf: add %s/%u of %s: %s%s", text, prefix_len, cfg->name, strerror(-err),
			err == -E2BIG || err == -ENOSPC ? " (raise max_destinations)" : "");
	}
	return err;
}

/*
 * Whether resolved address addr of named circuit c is another destination's,
 * one that wants it: logged, before c takes a slot for it.
 */
static bool circuit_key_taken(struct agent *a, const struct agent_circuit *c, const kb_addr_t addr)
{
	char text[ADDR_TEXT_MAX];
	uint32_t held;

	if (kb_bpf_get_dst(a->bpf, addr, 128, c->cfg->port, c->cfg->netns_ino, &held) ||
	    !circuit_wants_key(a, addr, 128, c->cfg->port, c->cfg->netns_ino, held))
		return false;
	addr_text(addr, text, sizeof(text));
	warn_taken(c, text, a->circuits[a->slots[held & KB_ID_SLOT].circuit].cfg->name);
	return true;
}

static void circuit_key_del(struct agent *a, const struct agent_circuit *c, const kb_addr_t addr,
			    uint8_t prefix_len, uint32_t id)
{
	char text[ADDR_TEXT_MAX];
	int err;

	err = kb_bpf_del_dst(a->bpf, addr, prefix_len, c->cfg->port, c->cfg->netns_ino, id);
	if (err) {
		a->map_errors++;
		addr_text(addr, text, sizeof(text));
		log_err("bpf: remove %s/%u of %s: %s", text, prefix_len, c->cfg->name, strerror(-err));
	}
}

/*
 * Whether c still holds resolved address addr under id. Another destination
 * may have taken it (a literal address outranks a name, and a reload leaves
 * a name what another holds); a key that went missing, or that leads where
 * nothing wants it, is written again.
 */
static bool circuit_key_held(struct agent *a, const struct agent_circuit *c, const kb_addr_t addr,
			     uint32_t id)
{
	uint32_t held;
	int err = kb_bpf_get_dst(a->bpf, addr, 128, c->cfg->port, c->cfg->netns_ino, &held);

	if (err == -ENOENT || (!err && held != id &&
			       !circuit_wants_key(a, addr, 128, c->cfg->port, c->cfg->netns_ino, held)))
		return circuit_key_add(a, c, addr, 128, id) != -EEXIST;
	return err || held == id;
}

/* Member id of per_address circuit c goes: what it counted stays the circuit's. */
static void member_retire(struct agent *a, struct agent_circuit *c, uint32_t id)
{
	const struct agent_slot *s = &a->slots[id];
	struct kb_dst_stats st;
	int err;

	if (!c->retired && !(c->retired = calloc(1, sizeof(*c->retired)))) {
		log_err("circuit %s: out of memory: the counts of a member that went are lost",
			c->cfg->name);
		return;
	}
	err = kb_bpf_read_stats(a->bpf, id, &st);
	if (err) {
		a->map_errors++;
		log_err("bpf: read counters of slot %u: %s", id, strerror(-err));
	} else {
		kb_dst_stats_add(&c->retired->stats, &st);
	}
	for (int i = 0; i < BS_MACHINE; i++)
		for (int j = 0; j < BS_MACHINE; j++)
			c->retired->transitions[i][j] += s->br.transitions[i][j];
	c->retired->trips_denied += s->br.denied_trips;
	/* Every member's record carries them (state_dir): saved again by the next tick. */
	for (size_t k = 0; k < a->n_slots; k++)
		if (a->slots[k].used && a->slots[k].circuit == (uint32_t)(c - a->circuits))
			a->slots[k].dirty = true;
}

/*
 * Make the maps hold exactly `addrs` (sorted, n) for a named circuit, taking
 * ownership of the array. One merge pass over both sorted lists finds what
 * came and what went; per_address members come and go with their address.
 */
void circuit_set_addrs(struct agent *a, uint32_t ci, kb_addr_t *addrs, size_t n, uint64_t now)
{
	struct agent_circuit *c = &a->circuits[ci];
	uint32_t *members = NULL;
	size_t i = 0, j = 0;
	char text[ADDR_TEXT_MAX];

	if (grouped(c->cfg)) {
		members = calloc(n ? n : 1, sizeof(*members));
		if (!members) {
			log_err("resolve %s: out of memory", c->cfg->name);
			free(addrs);
			return;
		}
	}
	while (i < c->n_addrs || j < n) {
		int cmp = i == c->n_addrs ? 1 : j == n ? -1 : memcmp(c->addrs[i], addrs[j], 16);

		if (cmp == 0 && !circuit_key_held(a, c, addrs[j],
						   members ? c->members[i] : circuit_key_id(c, 0))) {
			/* Another destination's now: let it go, without touching its key. */
			addr_text(addrs[j], text, sizeof(text));
			if (members) {
				member_retire(a, c, c->members[i]);
				slot_drop(a, c->members[i]);
			}
			log_info("address removed\tcircuit=%s host=%s address=%s: another destination's",
				 c->cfg->name, c->cfg->host, text);
			memmove(&addrs[j], &addrs[j + 1], (n - j - 1) * sizeof(*addrs));
			n--, i++;
			continue;
		}
		if (cmp == 0) {
			if (members)
				members[j] = c->members[i];
			i++, j++;
			continue;
		}
		addr_text(cmp < 0 ? c->addrs[i] : addrs[j], text, sizeof(text));
		if (cmp < 0) {
			circuit_key_del(a, c, c->addrs[i], 128,
					members ? c->members[i] : circuit_key_id(c, 0));
			if (members) {
				member_retire(a, c, c->members[i]);
				slot_drop(a, c->members[i]);
			}
			log_info("address removed\tcircuit=%s host=%s address=%s", c->cfg->name,
				 c->cfg->host, text);
			i++;
			continue;
		}
		if (members && circuit_key_taken(a, c, addrs[j])) {
			/* No slot for it: tried again at the next resolution. */
			memmove(&addrs[j], &addrs[j + 1], (n - j - 1) * sizeof(*addrs));
			n--;
			continue;
		}
		if (members) {
			int64_t id = slot_take(a, ci, addrs[j], now);

			if (id < 0) {
				log_err("circuit %s: no slot for address %s: %s (raise max_destinations)",
					c->cfg->name, text, strerror((int)-id));
				/* Keep the lists parallel: drop the address we cannot serve. */
				memmove(&addrs[j], &addrs[j + 1], (n - j - 1) * sizeof(*addrs));
				n--;
				continue;
			}
			members[j] = id;
		}
		if (circuit_key_add(a, c, addrs[j], 128, members ? members[j] : circuit_key_id(c, 0)) ==
		    -EEXIST) {
			/* Another destination's: tried again at the next resolution. */
			if (members)
				slot_drop(a, members[j]);
			memmove(&addrs[j], &addrs[j + 1], (n - j - 1) * sizeof(*addrs));
			n--;
			continue;
		}
		log_info("address added\tcircuit=%s host=%s address=%s", c->cfg->name, c->cfg->host, text);
		j++;
	}
	free(c->addrs);
	free(c->members);
	c->addrs = addrs;
	c->members = members;
	c->n_addrs = n;
}


/* --- circuits ------------------------------------------------------------ */

/*
 * Put circuit ci (cfg set) into service. Names resolve here. With
 * `restored`, c->slot already holds its breaker from the previous run.
 */
int circuit_start(struct agent *a, uint32_t ci, uint64_t now, bool restored)
{
	struct agent_circuit *c = &a->circuits[ci];
	int64_t id;

	if (!restored && !grouped(c->cfg)) {
		id = slot_take_n(a, ci, NULL, circuit_n_slots(c), now);
		if (id < 0) {
			log_err("circuit %s: %s (raise max_destinations)", c->cfg->name, strerror((int)-id));
			return (int)id;
		}
		c->slot = id;
	}
	if (c->cfg->host_kind == HOST_NAME)
		resolve_circuit(a, ci, now);
	else
		circuit_key_add(a, c, c->cfg->addr, c->cfg->prefix_len, circuit_key_id(c, 0));
	return 0;
}

