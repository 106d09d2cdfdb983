/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the agent's own files share, and nothing else includes: slots and
 * their verdicts (slots.c), saved breakers (saved.c), the resolver
 * (resolver.c), reload (reload*.c), snapshots and pages (snapshot.c,
 * pages.c). Every function here runs on the loop thread unless it says
 * otherwise.
 */
#ifndef KB_AGENT_INT_H
#define KB_AGENT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "agent.h"
#include "clock.h"
#include "kb_abi.h"

static inline const struct config_dst *slot_cfg(const struct agent *a, const struct agent_slot *s)
{
	return a->circuits[s->circuit].cfg;
}

/* One breaker per address: only names can be enumerated (config.c allows no other). */
static inline bool grouped(const struct config_dst *cfg)
{
	return cfg->per_address && cfg->host_kind == HOST_NAME;
}

/* A circuit's breakers: one, one per address (per_address) or one per workload. */
static inline size_t circuit_n_slots(const struct agent_circuit *c)
{
	return grouped(c->cfg) ? c->n_addrs : c->n_wl ? c->n_wl : 1;
}

/* Breaker m of a circuit; for a per_address name, address m's breaker too. */
static inline uint32_t circuit_slot(const struct agent_circuit *c, size_t m)
{
	return grouped(c->cfg) ? c->members[m] : c->slot + (c->n_wl ? (uint32_t)m : 0);
}

/* What the kernel's key m of a circuit leads to (kb_abi.h: KB_ID_PER_WORKLOAD). */
static inline uint32_t circuit_key_id(const struct agent_circuit *c, size_t m)
{
	return grouped(c->cfg) ? c->members[m] : c->slot | (c->n_wl ? KB_ID_PER_WORKLOAD : 0);
}

/* Breakers a circuit configured as cfg has, per workload; 0 when it has one. */
static inline uint32_t circuit_n_wl(const struct config *cfg, const struct config_dst *dst)
{
	return dst->per_workload && cfg->workloads_on ? cfg->workloads_max + 1 : 0;
}

/* Is the blast-radius guard the agent's (no trip in the kernel)? */
static inline bool guarded(const struct agent_circuit *c)
{
	return grouped(c->cfg) || (c->n_wl && c->cfg->max_open_percent < 100);
}

/*
 * Whether a kept circuit's guard went from the kernel to the agent or
 * back: its breakers' verdicts change with it (circuit_verdict), even when
 * their policy does not.
 */
static inline bool guard_moved(const struct agent_circuit *was, const struct agent_circuit *now)
{
	return guarded(was) != guarded(now);
}

/* Add b's counters into a's, word by word (every field of kb_dst_stats is a __u64 count). */
static inline void kb_dst_stats_add(struct kb_dst_stats *a, const struct kb_dst_stats *b)
{
	__u64 *d = (__u64 *)a;
	const __u64 *s = (const __u64 *)b;

	for (size_t w = 0; w < sizeof(*a) / sizeof(__u64); w++)
		d[w] += s[w];
}

/* --- slots.c: breakers in slots, their verdicts and their keys ------------ */

/* The verdict for br, serving circuit c. */
void circuit_verdict(const struct agent_circuit *c, const struct breaker *br, struct kb_verdict *v);

/*
 * A probe verdict written over one of the same half_open period (same
 * since_ns) starts a new gen, in which the kernel's count of permits taken
 * starts at zero: v gets only the permits the old one had left, so a
 * period lets exactly half_open_permits through across reloads and
 * restarts (a policy that raises them mid-period gives no more in it).
 * Left are those not taken, and those taken by connects whose SYN has not
 * left (kb_permits_unsent): the new gen would never show those, and the
 * breaker would wait for them for good. A connect between its hook and
 * its SYN (microseconds) as the verdict is written gets one probe more.
 */
void verdict_carry_probes(struct agent *a, uint32_t id, struct kb_verdict *v);

void slot_write_verdict(struct agent *a, uint32_t id, const struct kb_verdict *v);

/* How long the kernel's permit counts must stand still before slot_check_permits() acts. */
#define KB_UNSENT_GRACE_NS 1000000000ULL

void slot_check_permits(struct agent *a, struct agent_slot *s, uint64_t now);

/*
 * A breaker restored from the previous run (saved.c), its policy this
 * run's; was: its state before the new policy. When the verdict the kernel
 * holds is the one it would write, that verdict stays, gen and all, so the
 * counts the kernel keeps in its gen (failures in a row, half-open permits
 * taken) carry on across the restart; else the kernel's count is taken in
 * and a new verdict published.
 */
void slot_resume(struct agent *a, struct agent_slot *s, enum breaker_state was, uint64_t now);

/* Push s's verdict after a change at `now` (old: the state before) and log why it happened. */
void slot_publish(struct agent *a, struct agent_slot *s, enum breaker_state old, const char *cause,
		  uint64_t now);

/* Feed one outcome to s's breaker, the blast-radius guard applied. */
void slot_record(struct agent *a, struct agent_slot *s, enum kb_result res, uint64_t start_ns,
		 uint64_t now);

/* Blast-radius guard: may one more member of s's group open? */
bool slot_may_open(const struct agent *a, const struct agent_slot *s);

/* Feed each slot the resets its counters show beyond those it was fed, where they are failures. */
void agent_apply_resets(struct agent *a, uint64_t now);

/* A closed breaker without events takes the kernel's consecutive count (kb_judge.h). */
void slot_sync_count(struct agent *a, struct agent_slot *s);

/* The kernel tripped s at `at`: adopt it (kb_judge.h), logged with cause, or the breaker's if NULL. */
void slot_adopt_trip(struct agent *a, struct agent_slot *s, uint64_t at, const char *cause);

/* Room for slots[0..n-1], none of them put in use. 0 or -ENOMEM. */
int slots_reserve(struct agent *a, size_t n);

/* Make slots[0..n-1] exist; new ones are unused. 0 or -ENOMEM. */
int slots_extend(struct agent *a, size_t n);

/* Put slot s in use for a fresh breaker of circuit ci (addr: per_address member). */
void slot_init(struct agent_slot *s, uint32_t ci, const struct config_dst *cfg,
	       const kb_addr_t addr, uint64_t now);

/*
 * s's breaker takes policy p (breaker_reconfigure(), whose result it
 * returns). When p makes resets failures, s is marked to take the
 * kernel's count of them as seen (slots_rebase_resets()): resets that
 * came before were not failures.
 */
bool slot_reconfigure(struct agent_slot *s, const struct breaker_policy *p, uint64_t now);

/*
 * s takes the kernel's count of its resets as seen, now: only the resets
 * after this count. A slot whose counters cannot be read is left marked
 * (resets_rebase), for agent_apply_resets() to try again.
 */
void slot_rebase_resets(struct agent *a, struct agent_slot *s);

/* slot_rebase_resets() for every marked slot. */
void slots_rebase_resets(struct agent *a);

void slot_drop(struct agent *a, uint32_t id);

/*
 * Whether key (addr/prefix_len, port, netns) leading to id is one the
 * running configuration has: id's circuit names that address, or has
 * resolved it.
 */
bool circuit_wants_key(const struct agent *a, const uint8_t addr[16], uint8_t prefix_len,
		       uint16_t port, uint32_t netns, uint32_t id);

/* Make the maps hold exactly addrs (sorted, n, ownership taken) for named circuit ci. */
void circuit_set_addrs(struct agent *a, uint32_t ci, kb_addr_t *addrs, size_t n, uint64_t now);

/* Put circuit ci into service; with `restored`, its slot came from the previous run. */
int circuit_start(struct agent *a, uint32_t ci, uint64_t now, bool restored);

/* --- saved.c: breakers kept across restarts (state_dir) ------------------- */

/* Save slot id's breaker if it changed and is kept; clears its dirty mark. */
void slot_save(struct agent *a, uint32_t id);

/* Save slot id's breaker unconditionally (a reload's undo). 0 or -errno. */
int slot_save_now(struct agent *a, uint32_t id);

/* Adopted maps: take back into their slots the breakers still configured (restored[ci]). */
int saved_restore(struct agent *a, bool *restored, uint64_t now);

/* --- resolver.c ----------------------------------------------------------- */

/* Resolve named circuit ci at `now`, in this thread (at start). */
void resolve_circuit(struct agent *a, uint32_t ci, uint64_t now);

/* resolve_name() for the event loop itself (a start), seen by agent_resolving(). */
int resolve_on_loop(const char *name, kb_addr_t **addrs, size_t *n);

/* Start the thread, following the running config's names. 0 or -errno, logged. */
int resolver_start(struct agent *a);

/*
 * The distinct names of circuits, for resolver_follow(): those no circuit
 * has an address for yet first (a reload's new ones). 0 or -ENOMEM.
 */
int resolver_hosts(const struct agent_circuit *circuits, size_t n_circuits,
		   char (**hosts)[CONFIG_HOST_MAX], size_t *n);

/*
 * Follow hosts (taken over) and a->cfg's interval from now on, with a round
 * as soon as the loop has taken the last one's answers.
 */
void resolver_follow(struct agent *a, char (*hosts)[CONFIG_HOST_MAX], size_t n);

/* Stop the thread and free what it holds; without the agent's lock. */
void resolver_stop(struct agent *a);

/* --- workload_names.c ----------------------------------------------------- */

/* Name the workload indexes the kernel handed out since the last call. */
void workloads_refresh(struct agent *a);

/* Each circuit's workloads into snapshot s (circuits already folded). 0 or -ENOMEM. */
int workloads_snapshot(struct agent *a, struct snapshot *s);

/* Workload idx's name, named now if it was not yet. */
const char *agent_workload_name(struct agent *a, uint32_t idx);

/*
 * Every WL_CHECK_NS, look for cgroups the kernel numbered that are gone,
 * naming first the labels it handed out since the last look (no page may
 * ever ask for them); one gone at two looks in a row gives its label back
 * (kb_abi.h): its name, counters and per_workload breakers go, and the
 * kernel hands the index to the next new cgroup.
 */
void workloads_reclaim(struct agent *a, uint64_t now);

/* --- agent.c -------------------------------------------------------------- */


#endif /* KB_AGENT_INT_H */
