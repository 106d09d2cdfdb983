// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/utsname.h>
#include "agent.h"
#include "bpf.h"
#include "kb_judge.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static const struct config_dst *slot_cfg(const struct agent *a, const struct agent_slot *s)
{
	return a->circuits[s->circuit].cfg;
}

/*
 * One breaker per address: only names can be enumerated. A CIDR asked for
 * per_address gets one breaker, and a warning at start.
 */
static bool grouped(const struct config_dst *cfg)
{
	return cfg->per_address && cfg->host_kind == HOST_NAME;
}

/* --- state kept across restarts (state_dir) ------------------------------- */

/* What kb_saved.blob holds: this build's breaker and its bookkeeping. */
struct saved_blob {
	struct breaker br;
	uint64_t lost_seen[KB_RES_MAX];
	uint64_t resets_seen;
};
_Static_assert(sizeof(struct saved_blob) <= KB_SAVED_BLOB, "breaker too large to save");

/* Bump when struct breaker changes meaning without changing size. */
#define SAVED_VERSION 1

/* What kb_saved keeps of slot id; false for a slot that is not kept. */
static bool saved_fill(const struct agent *a, uint32_t id, struct kb_saved *saved)
{
	const struct agent_slot *s = &a->slots[id];
	const struct config_dst *cfg = a->circuits[s->circuit].cfg;
	struct saved_blob blob = { .br = s->br, .resets_seen = s->resets_seen };

	if (grouped(cfg))
		return false;	/* per_address members start afresh: their addresses may differ */
	memset(saved, 0, sizeof(*saved));
	saved->version = SAVED_VERSION;
	saved->blob_size = sizeof(blob);
	snprintf(saved->name, sizeof(saved->name), "%s", cfg->name);
	snprintf(saved->host, sizeof(saved->host), "%s", cfg->host);
	saved->port = cfg->port;
	memcpy(blob.lost_seen, s->lost_seen, sizeof(blob.lost_seen));
	memcpy(saved->blob, &blob, sizeof(blob));
	return true;
}

static void save_slot(struct agent *a, uint32_t id)
{
	struct kb_saved saved;
	int err;

	a->slots[id].dirty = false;
	if (!a->persist || !saved_fill(a, id, &saved))
		return;
	err = kb_bpf_saved_put(a->bpf, id, &saved);
	if (err) {
		a->map_errors++;
		log_err("bpf: save breaker %s: %s", saved.name, strerror(-err));
	}
}

/* --- verdicts ------------------------------------------------------------ */

static void write_verdict(struct agent *a, uint32_t id, const struct kb_verdict *v)
{
	int err = kb_bpf_set_verdict(a->bpf, id, v);

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
static void sync_count(struct agent *a, struct agent_slot *s)
{
	struct kb_verdict v;
	struct kb_trip t;

	if (s->events || s->br.state != BS_CLOSED ||
	    kb_bpf_read_trip(a->bpf, s - a->slots, &t, &v) || !v.gen ||
	    v.since_ns != s->br.state_since_ns)
		return;
	breaker_adopt_count(&s->br, v.fails_base + kb_word_count(t.fails, v.gen));
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

/* Push the verdict after a change and say why it happened. */
static void publish(struct agent *a, struct agent_slot *s, enum breaker_state old, const char *cause)
{
	const struct config_dst *cfg = slot_cfg(a, s);
	struct kb_verdict v;
	char addr[64] = "";

	/* The new verdict starts a new gen: carry the kernel's count over into its base. */
	sync_count(a, s);
	breaker_verdict(&s->br, &v);
	if (grouped(cfg)) {
		/* The blast-radius guard is the agent's: no trip in the kernel, wake it instead. */
		v.trip_after = 0;
		v.wake_mask |= v.fail_mask;
		v.events = 1;
	}
	if (s->events && !v.events)
		mark_counted(a, s);
	s->events = v.events;
	write_verdict(a, s - a->slots, &v);
	save_slot(a, s - a->slots);
	/* Deadlines only move when a verdict does: find the next one again. */
	a->deadline_stale = true;
	if (old == s->br.state)
		return;	/* a ramp step: no transition to tell */
	if (grouped(cfg))
		status_addr_text(s->addr, addr, sizeof(addr));
	log_info("breaker %s\tcircuit=%s%s%s old_state=%s new_state=%s mode=%s cause=%s "
		 "failure_rate=%.2f", breaker_state_name(s->br.state), cfg->name,
		 addr[0] ? " address=" : "", addr, breaker_state_name(old),
		 breaker_state_name(s->br.state), config_mode_name(s->br.policy.mode), cause,
		 breaker_failure_rate(&s->br, mono_ns()));
}

/* Blast-radius guard: may one more member of s's group open? */
static bool may_open(const struct agent *a, const struct agent_slot *s)
{
	const struct agent_circuit *c = &a->circuits[s->circuit];
	size_t open_now = 0;

	if (!grouped(c->cfg))
		return true;
	for (size_t i = 0; i < c->n_addrs; i++) {
		enum breaker_state st = a->slots[c->members[i]].br.state;

		open_now += st == BS_OPEN || st == BS_HALF_OPEN;
	}
	return breaker_group_may_open(open_now, c->n_addrs, c->cfg->max_open_percent);
}

static void record(struct agent *a, struct agent_slot *s, enum kb_result res,
		   uint64_t start_ns, uint64_t now)
{
	enum breaker_state old = s->br.state;

	s->dirty = true;
	if (breaker_record_guarded(&s->br, res, start_ns, now, may_open(a, s)))
		publish(a, s, old, breaker_is_failure(res) || res == KB_RES_CANCELLED ?
			breaker_cause_name(s->br.cause) : breaker_result_name(res));
}

/*
 * The kernel opened s's breaker on its own (kb_judge.h) and blocks until
 * our next verdict. Its count is the truth: adopt the trip, even where
 * our breaker has not counted the same failures (CPUs raced a success
 * past a failure), and write the verdict that carries it on.
 */
static void adopt_trip(struct agent *a, struct agent_slot *s, uint64_t at)
{
	enum breaker_state old = s->br.state;

	s->dirty = true;
	if (breaker_adopt_trip(&s->br, at))
		publish(a, s, old, "kernel trip");
}

static void on_event(void *ctx, const struct kb_event *ev)
{
	struct agent *a = ctx;
	struct agent_slot *s;

	if (ev->dst_id >= a->n_slots || !a->slots[ev->dst_id].used || ev->result >= KB_RES_MAX)
		return;	/* a socket tagged for a destination since removed */
	s = &a->slots[ev->dst_id];
	record(a, s, ev->result, ev->ts_ns - ev->latency_ns, ev->ts_ns);
	if (ev->flags & KB_EV_TRIPPED)
		adopt_trip(a, s, ev->ts_ns);
}

/* --- slots --------------------------------------------------------------- */

/* Room for slots[0..n-1], none of them put in use. 0 or -ENOMEM. */
static int slots_reserve(struct agent *a, size_t n)
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

/* Make slots[0..n-1] exist; new ones are unused. 0 or -ENOMEM. */
static int slots_extend(struct agent *a, size_t n)
{
	int err = slots_reserve(a, n);

	if (err)
		return err;
	for (; a->n_slots < n; a->n_slots++)
		memset(&a->slots[a->n_slots], 0, sizeof(a->slots[0]));
	return 0;
}

/*
 * Take a slot for a new breaker of circuit ci. Never-used slots go first: a
 * socket tagged for a removed destination may still count into its old
 * slot for a while. Returns the slot id or -ENOSPC / -ENOMEM.
 */
static int64_t slot_take(struct agent *a, uint32_t ci, const kb_addr_t addr, uint64_t now)
{
	struct agent_slot *s;
	size_t id;
	int err;

	if (a->n_slots < a->capacity) {
		id = a->n_slots;
		if (slots_extend(a, id + 1))
			return -ENOMEM;
	} else {
		for (id = 0; id < a->n_slots && a->slots[id].used; id++)
			;
		if (id == a->n_slots)
			return -ENOSPC;
	}
	s = &a->slots[id];
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->circuit = ci;
	if (addr)
		memcpy(s->addr, addr, sizeof(s->addr));
	breaker_init(&s->br, &a->circuits[ci].cfg->policy, now);
	err = kb_bpf_reset_stats(a->bpf, id);
	if (err) {
		a->map_errors++;
		log_err("bpf: reset counters of slot %zu: %s", id, strerror(-err));
	}
	/* A fresh breaker may start in forced_open: its verdict is not always ALLOW. */
	publish(a, s, s->br.state, "start");
	return id;
}

static void slot_drop(struct agent *a, uint32_t id)
{
	struct kb_verdict allow = { .action = KB_ACT_ALLOW };

	/* Unblock first: the map key may outlive this call if its delete fails. */
	write_verdict(a, id, &allow);
	a->slots[id].used = false;
	if (a->persist)
		kb_bpf_saved_del(a->bpf, id);
}

/* --- addresses ----------------------------------------------------------- */

static void map_add(struct agent *a, const struct agent_circuit *c, const kb_addr_t addr,
		    uint8_t prefix_len, uint32_t id)
{
	char text[64];
	int err;

	err = kb_bpf_add_dst(a->bpf, addr, prefix_len, c->cfg->port, c->cfg->netns_ino, id);
	if (err) {
		a->map_errors++;
		status_addr_text(addr, text, sizeof(text));
		log_err("bpf: add %s/%u of %s: %s%s", text, prefix_len, c->cfg->name, strerror(-err),
			err == -E2BIG || err == -ENOSPC ? " (raise max_destinations)" : "");
	}
}

static void map_del(struct agent *a, const struct agent_circuit *c, const kb_addr_t addr,
		    uint8_t prefix_len)
{
	char text[64];
	int err;

	err = kb_bpf_del_dst(a->bpf, addr, prefix_len, c->cfg->port, c->cfg->netns_ino);
	if (err) {
		a->map_errors++;
		status_addr_text(addr, text, sizeof(text));
		log_err("bpf: remove %s/%u of %s: %s", text, prefix_len, c->cfg->name, strerror(-err));
	}
}

/*
 * Make the maps hold exactly `addrs` (sorted, n) for a named circuit, taking
 * ownership of the array. One merge pass over both sorted lists finds what
 * came and what went; per_address members come and go with their address.
 */
static void apply_addrs(struct agent *a, uint32_t ci, kb_addr_t *addrs, size_t n, uint64_t now)
{
	struct agent_circuit *c = &a->circuits[ci];
	uint32_t *members = NULL;
	size_t i = 0, j = 0;
	char text[64];

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

		if (cmp == 0) {
			if (members)
				members[j] = c->members[i];
			i++, j++;
			continue;
		}
		status_addr_text(cmp < 0 ? c->addrs[i] : addrs[j], text, sizeof(text));
		if (cmp < 0) {
			map_del(a, c, c->addrs[i], 128);
			if (members)
				slot_drop(a, c->members[i]);
			log_info("address removed\tcircuit=%s host=%s address=%s", c->cfg->name,
				 c->cfg->host, text);
			i++;
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
		map_add(a, c, addrs[j], 128, members ? members[j] : c->slot);
		log_info("address added\tcircuit=%s host=%s address=%s", c->cfg->name, c->cfg->host, text);
		j++;
	}
	free(c->addrs);
	free(c->members);
	c->addrs = addrs;
	c->members = members;
	c->n_addrs = n;
}

/* Resolve a named circuit; called with the lock held, dropped around DNS. */
static void resolve_circuit(struct agent *a, uint32_t ci, bool drop_lock)
{
	char host[CONFIG_HOST_MAX];
	kb_addr_t *addrs;
	size_t n;
	int err;

	snprintf(host, sizeof(host), "%s", a->circuits[ci].cfg->host);
	if (drop_lock)
		pthread_mutex_unlock(&a->lock);
	err = resolve_name(host, &addrs, &n);
	if (drop_lock)
		pthread_mutex_lock(&a->lock);
	/* A reload may have replaced the circuit while DNS ran, or we are stopping. */
	if (a->stopping || ci >= a->n_circuits || strcmp(a->circuits[ci].cfg->host, host)) {
		if (!err)
			free(addrs);
		return;
	}
	if (err) {
		a->resolve_errors++;
		log_warn("resolve %s for %s: %s; keeping %zu known addresses", host,
			 a->circuits[ci].cfg->name, gai_strerror(err), a->circuits[ci].n_addrs);
		return;
	}
	apply_addrs(a, ci, addrs, n, mono_ns());
}

static void *resolver_main(void *arg)
{
	struct agent *a = arg;
	struct timespec until;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		uint64_t ns = a->cfg->resolve_interval_ns;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += ns / 1000000000ULL + (until.tv_nsec + ns % 1000000000ULL) / 1000000000ULL;
		until.tv_nsec = (until.tv_nsec + ns % 1000000000ULL) % 1000000000ULL;
		while (!a->stopping &&
		       pthread_cond_timedwait(&a->resolver_wake, &a->lock, &until) != ETIMEDOUT)
			;
		for (uint32_t ci = 0; !a->stopping && ci < a->n_circuits; ci++)
			if (a->circuits[ci].cfg->host_kind == HOST_NAME)
				resolve_circuit(a, ci, true);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* --- circuits ------------------------------------------------------------ */

/*
 * Put circuit ci (cfg set) into service. Names resolve here. With
 * `restored`, c->slot already holds its breaker from the previous run.
 */
static int circuit_start(struct agent *a, uint32_t ci, uint64_t now, bool restored)
{
	struct agent_circuit *c = &a->circuits[ci];
	int64_t id;

	if (!restored && !grouped(c->cfg)) {
		if (c->cfg->per_address)
			log_warn("circuit %s: per_address needs a name to enumerate; one breaker for %s",
				 c->cfg->name, c->cfg->host);
		id = slot_take(a, ci, NULL, now);
		if (id < 0) {
			log_err("circuit %s: %s (raise max_destinations)", c->cfg->name, strerror((int)-id));
			return (int)id;
		}
		c->slot = id;
	}
	if (c->cfg->host_kind == HOST_NAME)
		resolve_circuit(a, ci, false);
	else
		map_add(a, c, c->cfg->addr, c->cfg->prefix_len, c->slot);
	return 0;
}

static uint32_t lookup_flags(const struct config *cfg)
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
	return flags;
}

/* Same destination in two configs: its breakers carry over a reload. */
static bool same_destination(const struct config_dst *x, const struct config_dst *y)
{
	return !strcmp(x->name, y->name) && !strcmp(x->host, y->host) && x->port == y->port &&
	       x->per_address == y->per_address && x->netns_ino == y->netns_ino;
}

/* kb_dst_keep_fn: whether a key left by the previous run is one this configuration has. */
static bool key_wanted(void *ctx, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		       uint32_t netns, uint32_t id)
{
	const struct agent *a = ctx;
	const struct agent_circuit *c;
	const struct agent_slot *s;

	if (id >= a->n_slots || !a->slots[id].used)
		return false;
	s = &a->slots[id];
	c = &a->circuits[s->circuit];
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

struct restore_ctx {
	struct agent *a;
	bool *restored;		/* per circuit */
	uint64_t now;
	int err;
};

/* One saved breaker: back into its old slot if its destination is still configured. */
static void restore_one(void *ctx, uint32_t id, const struct kb_saved *saved)
{
	struct restore_ctx *rc = ctx;
	struct agent *a = rc->a;
	struct saved_blob blob;
	struct agent_slot *s;

	for (uint32_t ci = 0; ci < a->n_circuits; ci++) {
		const struct config_dst *cfg = a->circuits[ci].cfg;
		enum breaker_state was;

		if (rc->restored[ci] || grouped(cfg) || strcmp(cfg->name, saved->name) ||
		    strcmp(cfg->host, saved->host) || cfg->port != saved->port)
			continue;
		if (saved->version != SAVED_VERSION || saved->blob_size != sizeof(blob) ||
		    id >= a->capacity)
			break;	/* another build's layout: start this one afresh */
		if (slots_extend(a, id + 1)) {
			rc->err = -ENOMEM;
			return;
		}
		memcpy(&blob, saved->blob, sizeof(blob));
		s = &a->slots[id];
		memset(s, 0, sizeof(*s));
		s->used = true;
		s->circuit = ci;
		s->br = blob.br;
		memcpy(s->lost_seen, blob.lost_seen, sizeof(s->lost_seen));
		s->resets_seen = blob.resets_seen;
		a->circuits[ci].slot = id;
		rc->restored[ci] = true;
		a->restored++;
		was = s->br.state;
		breaker_reconfigure(&s->br, &cfg->policy, rc->now);
		/* Counted before this run: mark it fed, should no events come from here on. */
		s->events = true;
		/* The verdict map kept the old verdict; write the current one anyway. */
		publish(a, s, was, "restart");
		log_info("breaker restored\tcircuit=%s state=%s", cfg->name,
			 breaker_state_name(breaker_public_state(&s->br)));
		return;
	}
	/* Not configured any more (or unreadable): unblock and forget it. */
	{
		struct kb_verdict allow = { .action = KB_ACT_ALLOW };

		write_verdict(a, id, &allow);
		kb_bpf_saved_del(a->bpf, id);
	}
}

/* Adopted maps from a previous run: take back the breakers still configured. */
static int restore(struct agent *a, bool *restored, uint64_t now)
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

int agent_init(struct agent *a, const struct config *cfg, struct kb_bpf *bpf,
	       uint32_t capacity, uint64_t now)
{
	pthread_condattr_t ca;
	struct utsname u;
	bool *restored;
	int err = 0;

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->resolver_wake, &ca);
	pthread_condattr_destroy(&ca);
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
	for (uint32_t ci = 0; ci < cfg->n_dsts; ci++)
		a->circuits[ci].cfg = &cfg->dsts[ci];
	a->persist = cfg->state_dir[0] != '\0';
	restored = calloc(cfg->n_dsts ? cfg->n_dsts : 1, sizeof(*restored));
	if (!restored)
		return -ENOMEM;
	if (kb_bpf_adopted(bpf)) {
		err = restore(a, restored, now);
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
	if (kb_bpf_adopted(bpf))
		kb_bpf_prune_dsts(bpf, key_wanted, a);
	kb_bpf_set_lookup_flags(bpf, lookup_flags(cfg));
	a->lost_seen = kb_bpf_lost_total(bpf);
	/* Always started: a reload may bring the first name. */
	err = pthread_create(&a->resolver, NULL, resolver_main, a);
	if (err) {
		log_err("resolver thread: %s", strerror(err));
		return -err;
	}
	a->resolver_running = true;
	return 0;
}

void agent_fini(struct agent *a)
{
	if (a->resolver_running) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_signal(&a->resolver_wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->resolver, NULL);
	}
	for (size_t i = 0; i < a->n_slots; i++)
		if (a->slots[i].used && a->slots[i].dirty)
			save_slot(a, i);
	for (size_t i = 0; i < a->n_circuits; i++) {
		free(a->circuits[i].addrs);
		free(a->circuits[i].members);
	}
	free(a->circuits);
	free(a->slots);
	a->circuits = NULL;
	a->slots = NULL;
	pthread_cond_destroy(&a->resolver_wake);
	pthread_mutex_destroy(&a->lock);
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

/* --- reload --------------------------------------------------------------- */

/*
 * A reload is all or nothing. Everything that can fail comes before the
 * switch: allocations and names (reload_match, reload_resolve), slots
 * (reload_plan), then every map write (reload_write), each journaled with
 * what undoes it, so that a failure puts every entry back as it was. The
 * switch (reload_commit) only moves what those steps made ready.
 */

enum undo_op {
	UNDO_DEL_DST,	/* a key was added: delete it */
	UNDO_ADD_DST,	/* a key was deleted: add it back, to id */
	UNDO_VERDICT,	/* a verdict was written: put back the one read before, gen and all */
	UNDO_STATS,	/* counters were zeroed: write back the ones read before */
	UNDO_SAVED,	/* a saved breaker was forgotten: save the running one again */
};

struct undo {
	enum undo_op op;
	uint32_t id;			/* slot; for keys the dst_id to add back */
	kb_addr_t addr;			/* keys */
	uint8_t prefix_len;
	uint16_t port;
	uint32_t netns;
	union {
		struct kb_verdict verdict;	/* UNDO_VERDICT */
		size_t stats;			/* UNDO_STATS: index into reload.stats */
	};
};

/* A kept breaker whose verdict the reload rewrites: what it takes from the kernel. */
struct reload_kept {
	uint32_t id;
	bool synced;			/* takes the kernel's consecutive count, fails */
	uint32_t fails;
	bool counted;			/* its events stop: connects[] were fed as events */
	uint64_t connects[KB_RES_MAX];
};

/* Per circuit of the new config. */
struct reload_circuit {
	int32_t from;			/* the running circuit it keeps, -1: added */
	int resolve_err;		/* added names: EAI_* of the lookup, 0 */
	size_t dropped;			/* added groups: addresses past the last free slot */
};

struct reload {
	const struct config *cfg;
	uint64_t now;
	struct agent_circuit *next;	/* the new circuits, private until the switch */
	struct reload_circuit *info;	/* per new circuit */
	int64_t *old_to_new;		/* running circuit -> new, -1: removed */
	struct undo *undo;		/* map writes done so far; room for all of them */
	size_t n_undo;
	struct kb_dst_stats *stats;	/* counters zeroed so far, as they were */
	size_t n_stats;
	struct reload_kept *kept_slots;	/* by slot, for reload_commit() */
	size_t n_kept;
	size_t kept, added, removed;
	char why[256];			/* what failed, for the one log line */
};

/* Say what failed, for agent_reload's log line, and pass err on. */
__attribute__((format(printf, 3, 4)))
static int reload_fail(struct reload *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return err;
}

/* A circuit's breakers: one, or with per_address one per address. */
static size_t circuit_n_slots(const struct agent_circuit *c)
{
	return grouped(c->cfg) ? c->n_addrs : 1;
}

/* Breaker m of a circuit; for a name, address m's breaker too. */
static uint32_t circuit_slot(const struct agent_circuit *c, size_t m)
{
	return grouped(c->cfg) ? c->members[m] : c->slot;
}

/* A circuit's keys: its address or prefix, or each address of its name. */
static size_t circuit_n_keys(const struct agent_circuit *c)
{
	return c->cfg->host_kind == HOST_NAME ? c->n_addrs : 1;
}

/* Pair the new circuits with the running ones they keep. Lock held. */
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

		r->next[i].cfg = cfg;
		r->info[i].from = j >= 0 && same_destination(old[j].cfg, cfg) ? (int32_t)j : -1;
		if (r->info[i].from >= 0)
			r->old_to_new[j] = i;
		r->kept += r->info[i].from >= 0;
	}
	r->added = n - r->kept;
	r->removed = n_old - r->kept;
	free(order);
	return 0;
}

/*
 * Look up the added names. Without the lock: DNS may take seconds. A name
 * that does not resolve starts with no address, as at start; the resolver
 * thread tries again.
 */
static int reload_resolve(struct reload *r)
{
	for (size_t i = 0; i < r->cfg->n_dsts; i++) {
		struct agent_circuit *c = &r->next[i];
		int err;

		if (r->info[i].from >= 0 || c->cfg->host_kind != HOST_NAME)
			continue;
		err = resolve_name(c->cfg->host, &c->addrs, &c->n_addrs);
		if (err == EAI_MEMORY)
			return reload_fail(r, -ENOMEM, "resolve %s for %s", c->cfg->host, c->cfg->name);
		r->info[i].resolve_err = err;
	}
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
 * slots: after this only map writes can fail. Lock held.
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

		if (r->info[i].from >= 0)
			continue;
		if (grouped(c->cfg)) {
			c->members = calloc(c->n_addrs ? c->n_addrs : 1, sizeof(*c->members));
			if (!c->members)
				return reload_fail(r, -ENOMEM, "circuit %s: %zu members", c->cfg->name,
						   c->n_addrs);
			for (size_t m = 0; m < c->n_addrs; m++) {
				id = pick_slot(a, r, &pick);
				if (id < 0) {
					/* As the resolver does: a group serves the addresses there is room for. */
					r->info[i].dropped = c->n_addrs - m;
					c->n_addrs = m;
					break;
				}
				c->members[m] = id;
				top = (size_t)id + 1 > top ? (size_t)id + 1 : top;
			}
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
	if (slots_reserve(a, top))
		return reload_fail(r, -ENOMEM, "%zu slots", top);
	return 0;
}

static struct undo *undo_push(struct reload *r, enum undo_op op, uint32_t id)
{
	struct undo *u = &r->undo[r->n_undo++];

	u->op = op;
	u->id = id;
	return u;
}

/* Add or remove key m of circuit c, journaled. */
static int reload_key(struct agent *a, struct reload *r, const struct agent_circuit *c, size_t m,
		      bool add)
{
	bool name = c->cfg->host_kind == HOST_NAME;
	const uint8_t *addr = name ? c->addrs[m] : c->cfg->addr;
	uint8_t prefix_len = name ? 128 : c->cfg->prefix_len;
	uint32_t id = circuit_slot(c, m);
	struct undo *u;
	char text[64];
	int err;

	err = add ? kb_bpf_add_dst(a->bpf, addr, prefix_len, c->cfg->port, c->cfg->netns_ino, id)
		  : kb_bpf_del_dst(a->bpf, addr, prefix_len, c->cfg->port, c->cfg->netns_ino);
	if (err) {
		status_addr_text(addr, text, sizeof(text));
		return reload_fail(r, err, "bpf: %s %s/%u of %s%s", add ? "add" : "remove", text,
				   prefix_len, c->cfg->name,
				   err == -E2BIG || err == -ENOSPC ? " (raise max_destinations)" : "");
	}
	u = undo_push(r, add ? UNDO_DEL_DST : UNDO_ADD_DST, id);
	memcpy(u->addr, addr, sizeof(u->addr));
	u->prefix_len = prefix_len;
	u->port = c->cfg->port;
	u->netns = c->cfg->netns_ino;
	return 0;
}

/* The verdict publish() writes for br, serving a circuit configured as cfg. */
static void reload_verdict_of(const struct config_dst *cfg, const struct breaker *br,
			      struct kb_verdict *v)
{
	breaker_verdict(br, v);
	if (grouped(cfg)) {
		/* The blast-radius guard is the agent's: no trip in the kernel, wake it instead. */
		v->trip_after = 0;
		v->wake_mask |= v->fail_mask;
		v->events = 1;
	}
}

/*
 * Write slot id's verdict (a new gen), journaled with the one it replaces:
 * *was if the caller read it, else read here.
 */
static int reload_verdict(struct agent *a, struct reload *r, uint32_t id, const struct kb_verdict *v,
			  const struct kb_verdict *was)
{
	struct kb_verdict old;
	int err = 0;

	if (!was)
		err = kb_bpf_get_verdict(a->bpf, id, &old);
	err = err ?: kb_bpf_set_verdict(a->bpf, id, v);
	if (err)
		return reload_fail(r, err, "bpf: write verdict of slot %u", id);
	undo_push(r, UNDO_VERDICT, id)->verdict = was ? *was : old;
	return 0;
}

/*
 * A kept breaker about to get a new verdict, br (reconfigured): take what
 * only the kernel knows into br, and into rk for reload_commit() to take
 * the same way. *was gets the verdict now in the map. Lock held.
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
	/* sync_count()'s, as publish() does before a new gen starts the kernel's count afresh. */
	rk->synced = !s->events && br->state == BS_CLOSED;
	err = rk->synced ? kb_bpf_read_trip(a->bpf, id, &trip, was) : kb_bpf_get_verdict(a->bpf, id, was);
	rk->synced = rk->synced && was->gen && was->since_ns == br->state_since_ns;
	if (rk->synced) {
		rk->fails = was->fails_base + kb_word_count(trip.fails, was->gen);
		breaker_adopt_count(br, rk->fails);
	}
	/* What mark_counted() reads when events stop, read now: the switch cannot fail. */
	reload_verdict_of(r->next[r->old_to_new[s->circuit]].cfg, br, &v);
	rk->counted = s->events && !v.events;
	if (!err && rk->counted) {
		err = kb_bpf_read_stats(a->bpf, id, &st);
		memcpy(rk->connects, st.connects, sizeof(rk->connects));
	}
	if (err)
		return reload_fail(r, err, "bpf: read the kernel's state of slot %u", id);
	return 0;
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

/* Put back, last first, every map entry the reload wrote. Lock held. */
static void reload_undo(struct agent *a, struct reload *r)
{
	struct kb_saved saved;

	while (r->n_undo) {
		const struct undo *u = &r->undo[--r->n_undo];
		int err = 0;

		switch (u->op) {
		case UNDO_DEL_DST:
			err = kb_bpf_del_dst(a->bpf, u->addr, u->prefix_len, u->port, u->netns);
			break;
		case UNDO_ADD_DST:
			err = kb_bpf_add_dst(a->bpf, u->addr, u->prefix_len, u->port, u->netns, u->id);
			break;
		case UNDO_VERDICT:
			err = kb_bpf_put_verdict(a->bpf, u->id, &u->verdict);
			break;
		case UNDO_STATS:
			err = kb_bpf_set_stats(a->bpf, u->id, &r->stats[u->stats]);
			break;
		case UNDO_SAVED:
			if (saved_fill(a, u->id, &saved))
				err = kb_bpf_saved_put(a->bpf, u->id, &saved);
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
 * Every map write of the reload, in an order the hooks can bear at any
 * point: removed destinations out and unblocked; new breakers' counters
 * and verdicts in place before a key leads to them; the new keys; kept
 * breakers' new verdicts. A failure undoes what was written. Lock held.
 */
static int reload_write(struct agent *a, struct reload *r)
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
			if (!err && a->persist && !grouped(c->cfg))
				err = reload_forget(a, r, c->slot);
		}
	}
	for (size_t i = 0; i < r->cfg->n_dsts && !err; i++) {
		const struct agent_circuit *c = &r->next[i];

		if (r->info[i].from >= 0)
			continue;
		for (size_t m = 0; m < circuit_n_slots(c) && !err; m++) {
			/* The breaker reload_commit() starts: same policy, same now. */
			breaker_init(&br, &c->cfg->policy, r->now);
			reload_verdict_of(c->cfg, &br, &v);
			err = reload_reset_stats(a, r, circuit_slot(c, m));
			err = err ?: reload_verdict(a, r, circuit_slot(c, m), &v, NULL);
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
		if (!breaker_reconfigure(&br, &cfg->policy, r->now))
			continue;
		err = reload_keep(a, r, s, &br, &r->kept_slots[r->n_kept], &was);
		if (err)
			break;
		r->n_kept++;
		reload_verdict_of(cfg, &br, &v);
		err = reload_verdict(a, r, k, &v, &was);
	}
	if (err)
		reload_undo(a, r);
	return err;
}

/* Put added circuit i's breakers in their slots and say what it serves. Lock held. */
static void reload_start(struct agent *a, struct reload *r, uint32_t i)
{
	const struct agent_circuit *c = &r->next[i];
	struct kb_verdict v;
	char text[64];

	log_info("circuit added\tcircuit=%s host=%s", c->cfg->name, c->cfg->host);
	if (c->cfg->per_address && !grouped(c->cfg))
		log_warn("circuit %s: per_address needs a name to enumerate; one breaker for %s",
			 c->cfg->name, c->cfg->host);
	for (size_t m = 0; m < circuit_n_slots(c); m++) {
		uint32_t id = circuit_slot(c, m);
		struct agent_slot *s;

		for (; a->n_slots <= id; a->n_slots++)
			memset(&a->slots[a->n_slots], 0, sizeof(a->slots[0]));
		s = &a->slots[id];
		memset(s, 0, sizeof(*s));
		s->used = true;
		s->circuit = i;
		if (grouped(c->cfg))
			memcpy(s->addr, c->addrs[m], sizeof(s->addr));
		breaker_init(&s->br, &c->cfg->policy, r->now);
		reload_verdict_of(c->cfg, &s->br, &v);
		s->events = v.events;
		s->dirty = true;	/* saved by the next tick */
	}
	if (c->cfg->host_kind != HOST_NAME)
		return;
	if (r->info[i].resolve_err) {
		a->resolve_errors++;
		log_warn("resolve %s for %s: %s; keeping 0 known addresses", c->cfg->host, c->cfg->name,
			 gai_strerror(r->info[i].resolve_err));
	}
	for (size_t m = 0; m < c->n_addrs + r->info[i].dropped; m++) {
		status_addr_text(c->addrs[m], text, sizeof(text));
		if (m < c->n_addrs)
			log_info("address added\tcircuit=%s host=%s address=%s", c->cfg->name,
				 c->cfg->host, text);
		else
			log_err("circuit %s: no slot for address %s: %s (raise max_destinations)",
				c->cfg->name, text, strerror(ENOSPC));
	}
}

/*
 * The switch: the new circuits and breakers take over. Nothing here can
 * fail, and the maps already hold what it makes true. Lock held.
 */
static void reload_commit(struct agent *a, struct reload *r)
{
	struct agent_circuit *old = a->circuits;
	const struct reload_kept *rk = r->kept_slots;
	struct kb_verdict v;
	char addr[64];

	/* Kept breakers follow their circuit and take the new policy, as reload_write() did. */
	for (size_t k = 0; k < a->n_slots; k++) {
		struct agent_slot *s = &a->slots[k];
		enum breaker_state was = s->br.state;
		const struct config_dst *cfg;

		if (!s->used)
			continue;
		if (r->old_to_new[s->circuit] < 0) {
			s->used = false;
			continue;
		}
		s->circuit = r->old_to_new[s->circuit];
		cfg = r->next[s->circuit].cfg;
		if (!breaker_reconfigure(&s->br, &cfg->policy, r->now))
			continue;
		/* reload_write() kept every slot it wrote a verdict for, in this order. */
		if (rk->synced)
			breaker_adopt_count(&s->br, rk->fails);
		if (rk->counted)
			memcpy(s->counted, rk->connects, sizeof(s->counted));
		rk++;
		reload_verdict_of(cfg, &s->br, &v);
		s->events = v.events;
		s->dirty = true;	/* saved by the next tick */
		if (was == s->br.state)
			continue;
		addr[0] = '\0';
		if (grouped(cfg))
			status_addr_text(s->addr, addr, sizeof(addr));
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
	}
	for (uint32_t i = 0; i < r->cfg->n_dsts; i++) {
		const struct config_dst *cfg = r->next[i].cfg;

		if (r->info[i].from < 0) {
			reload_start(a, r, i);
			continue;
		}
		r->next[i] = old[r->info[i].from];
		r->next[i].cfg = cfg;
	}
	a->circuits = r->next;
	a->n_circuits = r->cfg->n_dsts;
	a->cfg = r->cfg;
	r->next = NULL;
	free(old);
	kb_bpf_set_lookup_flags(a->bpf, lookup_flags(r->cfg));
	a->poll_interval_ns = r->cfg->poll_interval_ns;
	a->deadline_stale = true;	/* a new policy may move a deadline without a new verdict */
	a->reloads_ok++;
	a->last_reload_ok = true;
	a->last_reload_ok_wall = time(NULL);
	pthread_cond_signal(&a->resolver_wake);
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
}

int agent_reload(struct agent *a, const struct config *cfg, uint64_t now)
{
	struct reload r = { .cfg = cfg, .now = now };
	int err;

	if (cfg->max_destinations != a->capacity) {
		err = reload_fail(&r, -EINVAL, "max_destinations cannot change while running "
				  "(%u -> %u), restart kbreakerd", a->capacity, cfg->max_destinations);
	} else {
		pthread_mutex_lock(&a->lock);
		err = reload_match(a, &r);
		pthread_mutex_unlock(&a->lock);
	}
	err = err ?: reload_resolve(&r);
	if (!err) {
		pthread_mutex_lock(&a->lock);
		err = reload_plan(a, &r);
		err = err ?: reload_write(a, &r);
		if (!err)
			reload_commit(a, &r);
		pthread_mutex_unlock(&a->lock);
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
	pthread_mutex_lock(&a->lock);
	a->reloads_failed++;
	a->last_reload_ok = false;
	pthread_mutex_unlock(&a->lock);
}

/* --- the loop's entry points ---------------------------------------------- */

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
		/* A kernel trip whose event was lost is in force all the same. */
		if (!kb_bpf_read_trip(a->bpf, i, &trip, &v) && v.gen && trip.tripped == v.gen)
			adopt_trip(a, s, trip.tripped_ns);
		if (kb_bpf_read_stats(a->bpf, i, &st))
			continue;
		for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
			enum kb_result r = order[k];

			for (; s->lost_seen[r] < st.lost[r]; s->lost_seen[r]++)
				record(a, s, r, now, now);
		}
	}
}

/* Resets count as failures only where the policy says so: only those slots are read. */
static void apply_resets(struct agent *a, uint64_t now)
{
	struct kb_dst_stats st;

	for (size_t i = 0; i < a->n_slots; i++) {
		struct agent_slot *s = &a->slots[i];
		uint64_t total;

		if (!s->used || !(s->br.policy.failures & POLICY_FAIL_RESET) ||
		    kb_bpf_read_stats(a->bpf, i, &st))
			continue;
		total = st.resets_rx + st.resets_tx;
		for (; s->resets_seen < total; s->resets_seen++) {
			enum breaker_state old = s->br.state;

			s->dirty = true;
			if (breaker_record_reset_guarded(&s->br, now, may_open(a, s)))
				publish(a, s, old, "reset");
		}
	}
}

/*
 * Breakers whose verdict queues no events learn their outcomes from the
 * kernel's counters, once a second: their window feeds only the rate
 * gauges, the trip is the kernel's.
 */
#define COUNT_INTERVAL_NS 1000000000ULL

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
	sums = calloc(a->n_slots, sizeof(*sums));
	if (!sums || kb_bpf_read_all_stats(a->bpf, a->n_slots, sums)) {
		free(sums);
		return;	/* next second */
	}
	for (size_t i = 0; i < a->n_slots; i++) {
		struct agent_slot *s = &a->slots[i];

		if (!s->used || s->events)
			continue;
		for (int r = 0; r < KB_RES_MAX; r++) {
			if (sums[i].connects[r] <= s->counted[r])
				continue;
			breaker_count(&s->br, r, sums[i].connects[r] - s->counted[r], now);
			s->counted[r] = sums[i].connects[r];
			s->dirty = true;
		}
		if (s->dirty)
			sync_count(a, s);
	}
	free(sums);
}

int agent_tick(struct agent *a, uint64_t now)
{
	pthread_mutex_lock(&a->lock);
	a->last_tick_ns = now;
	apply_lost(a, now);
	apply_resets(a, now);
	apply_counts(a, now);
	for (size_t i = 0; i < a->n_slots; i++) {
		struct agent_slot *s = &a->slots[i];
		enum breaker_state old = s->br.state;

		if (s->used && breaker_tick(&s->br, now))
			publish(a, s, old, old == BS_OPEN ? "open period elapsed" :
					   old == BS_HALF_OPEN ? "max_half_open_duration" : "ramp");
		else if (s->used && s->dirty)
			save_slot(a, i);	/* windows and counts, at most once a poll */
	}
	a->last_poll_ns = mono_ns() - now;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

uint64_t agent_next_deadline(struct agent *a)
{
	uint64_t next = 0, t;

	pthread_mutex_lock(&a->lock);
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
	pthread_mutex_unlock(&a->lock);
	return next;
}

/* --- rendering ------------------------------------------------------------ */

/* Worst first: a group shows the most severe of its members' states. */
static int severity(enum breaker_state s)
{
	static const int rank[BS_MAX] = {
		[BS_FORCED_OPEN] = 6, [BS_OPEN] = 5, [BS_HALF_OPEN] = 4,
		[BS_CLOSED] = 3, [BS_METRICS_ONLY] = 2, [BS_DISABLED] = 1,
	};

	return (unsigned)s < BS_MAX ? rank[s] : 0;
}

/* One circuit as the renderers see it: its slots folded together. */
struct circuit_view {
	enum breaker_state state;
	uint64_t transitions[BS_MAX][BS_MAX];
	struct kb_dst_stats stats;
	double failure_rate, slow_call_rate;
	uint32_t consecutive_failures;
	uint64_t since_ns;		/* latest transition among its slots */
	uint64_t next_half_open_ns;	/* earliest, when open */
};

static void fold_slot(struct circuit_view *v, const struct agent_slot *s,
		      const struct kb_dst_stats *st, uint64_t now, bool first)
{
	enum breaker_state ps = breaker_public_state(&s->br);
	const __u64 *src = (const __u64 *)st;
	__u64 *dst = (__u64 *)&v->stats;
	uint64_t dl = breaker_deadline(&s->br);
	double fr = breaker_failure_rate(&s->br, now), sr = breaker_slow_call_rate(&s->br, now);

	if (first || severity(ps) > severity(v->state))
		v->state = ps;
	for (int i = 0; i < BS_MAX; i++)
		for (int j = 0; j < BS_MAX; j++)
			v->transitions[i][j] += s->br.transitions[i][j];
	for (size_t w = 0; w < sizeof(*st) / sizeof(__u64); w++)
		dst[w] += src[w];
	if (fr > v->failure_rate)
		v->failure_rate = fr;
	if (sr > v->slow_call_rate)
		v->slow_call_rate = sr;
	if (s->br.consecutive_failures > v->consecutive_failures)
		v->consecutive_failures = s->br.consecutive_failures;
	if (s->br.state_since_ns > v->since_ns)
		v->since_ns = s->br.state_since_ns;
	if (s->br.state == BS_OPEN && dl && (!v->next_half_open_ns || dl < v->next_half_open_ns))
		v->next_half_open_ns = dl;
}

/* Fold every circuit's slots (stats read from the maps). Lock held. */
static int build_views(struct agent *a, struct circuit_view *views, uint64_t now)
{
	struct kb_dst_stats *st;
	bool *seen;
	int err;

	seen = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*seen));
	st = calloc(a->n_slots ? a->n_slots : 1, sizeof(*st));
	err = seen && st ? kb_bpf_read_all_stats(a->bpf, a->n_slots, st) : -ENOMEM;
	if (err) {
		free(seen);
		free(st);
		return err;
	}
	for (size_t i = 0; i < a->n_slots; i++) {
		const struct agent_slot *s = &a->slots[i];
		struct circuit_view *v;

		if (!s->used)
			continue;
		v = &views[s->circuit];
		fold_slot(v, s, &st[i], now, !seen[s->circuit]);
		seen[s->circuit] = true;
	}
	for (size_t c = 0; c < a->n_circuits; c++)
		if (!seen[c])	/* a group with no address yet */
			views[c].state = a->circuits[c].cfg->policy.mode == MODE_OBSERVE ?
					 BS_METRICS_ONLY : BS_CLOSED;
	free(seen);
	free(st);
	return 0;
}

typedef int (*render_fn)(struct agent *a, FILE *out, const struct circuit_view *views,
			 uint64_t now);

/* Render under the lock into a malloc'd body. Returns 200 or -errno. */
static int render_body(struct agent *a, render_fn render, char **body, size_t *len)
{
	struct circuit_view *views;
	uint64_t now = mono_ns();
	FILE *out;
	int err;

	*body = NULL;
	out = open_memstream(body, len);
	if (!out)
		return -errno;
	pthread_mutex_lock(&a->lock);
	views = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*views));
	err = views ? build_views(a, views, now) : -ENOMEM;
	if (!err)
		err = render(a, out, views, now);
	pthread_mutex_unlock(&a->lock);
	free(views);
	if (fclose(out) && !err)
		err = -errno;
	if (err) {
		log_err("http: render: %s", strerror(-err));
		free(*body);
		*body = NULL;
		return err;
	}
	return 200;
}

static int render_status(struct agent *a, FILE *out, const struct circuit_view *views, uint64_t now)
{
	struct status_dst *sd;
	int err;

	sd = calloc(a->n_circuits ? a->n_circuits : 1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_circuits; i++) {
		const struct agent_circuit *c = &a->circuits[i];
		const struct circuit_view *v = &views[i];

		sd[i] = (struct status_dst){
			.name = c->cfg->name,
			.host = c->cfg->host,
			.addr = c->cfg->host_kind == HOST_NAME ? NULL : c->cfg->addr,
			.prefix_len = c->cfg->prefix_len,
			.port = c->cfg->port,
			.mode = c->cfg->policy.mode,
			.state = v->state,
			.since_ns = v->since_ns,
			.next_half_open_ns = v->next_half_open_ns,
			.consecutive_failures = v->consecutive_failures,
			.failure_rate = v->failure_rate,
			.stats = v->stats,
			.addrs = (const uint8_t (*)[16])c->addrs,
			.n_addrs = c->n_addrs,
		};
		if (c->members) {
			sd[i].member_states = calloc(c->n_addrs ? c->n_addrs : 1, sizeof(enum breaker_state));
			if (!sd[i].member_states) {
				err = -ENOMEM;
				goto out;
			}
			for (size_t k = 0; k < c->n_addrs; k++)
				sd[i].member_states[k] = breaker_public_state(&a->slots[c->members[k]].br);
		}
	}
	err = status_render(out, KB_VERSION, a->started_ns, now, sd, a->n_circuits);
out:
	for (size_t i = 0; i < a->n_circuits; i++)
		free(sd[i].member_states);
	free(sd);
	return err;
}

/* OpenMetrics when the Accept header names it (Prometheus asks for it first). */
static bool wants_openmetrics(const char *accept)
{
	return accept && strstr(accept, "application/openmetrics-text");
}

/*
 * /metrics copies what it needs under the lock and renders without it: at
 * thousands of destinations rendering takes tens of milliseconds, which
 * must not delay a trip.
 */
int agent_metrics(void *ctx, struct http_request *req, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t t0 = mono_ns(), now = t0;
	double wall_now = (double)time(NULL);
	struct kb_prog_stats progs[16];
	struct metrics_agent info = {
		.version = KB_VERSION,
		.kernel = a->kernel,
		.progs = progs,
		.n_progs = kb_bpf_prog_stats(a->bpf, progs, sizeof(progs) / sizeof(progs[0])),
		.refuses_with_econnrefused = kb_bpf_refuses_with_econnrefused(a->bpf),
		.openmetrics = wants_openmetrics(req->accept),
	};
	char (*names)[CONFIG_NAME_MAX] = NULL;
	struct circuit_view *views = NULL;
	struct metrics_dst *md = NULL;
	size_t n;
	FILE *out;
	int err;

	*body = NULL;
	pthread_mutex_lock(&a->lock);
	n = a->n_circuits;
	views = calloc(n ? n : 1, sizeof(*views));
	names = calloc(n ? n : 1, sizeof(*names));
	md = calloc(n ? n : 1, sizeof(*md));
	err = views && names && md ? build_views(a, views, now) : -ENOMEM;
	if (!err) {
		info.events_lost = kb_bpf_lost_total(a->bpf);
		info.capacity = a->capacity;
		info.reload_ok = a->last_reload_ok;
		info.last_reload_ok_wall = a->last_reload_ok_wall;
		info.reloads_ok = a->reloads_ok;
		info.reloads_failed = a->reloads_failed;
		info.resolve_errors = a->resolve_errors;
		info.map_errors = a->map_errors;
		info.last_poll_seconds = a->last_poll_ns / 1e9;
		info.last_scrape_seconds = a->last_scrape_ns / 1e9;
		info.restored = a->restored;
		info.compact = a->cfg->metrics_compact;
		for (size_t i = 0; i < a->n_slots; i++)
			info.slots_used += a->slots[i].used;
		for (size_t i = 0; i < n; i++) {
			const struct circuit_view *v = &views[i];

			/* A reload may free the config once the lock is dropped: copy the name. */
			snprintf(names[i], sizeof(names[i]), "%s", a->circuits[i].cfg->name);
			md[i] = (struct metrics_dst){
				.name = names[i],
				.state = v->state,
				.transitions = v->transitions,
				.stats = v->stats,
				.failure_rate = v->failure_rate,
				.slow_call_rate = v->slow_call_rate,
				.consecutive_failures = v->consecutive_failures,
				.last_transition_wall = wall_now - (double)(now - v->since_ns) / 1e9,
			};
		}
	}
	pthread_mutex_unlock(&a->lock);

	out = err ? NULL : open_memstream(body, len);
	if (!err && !out)
		err = -errno;
	if (!err) {
		err = metrics_render(out, &info, md, n);
		if (fclose(out) && !err)
			err = -errno;
	}
	free(views);
	free(names);
	free(md);
	if (err) {
		log_err("http: render /metrics: %s", strerror(-err));
		free(*body);
		*body = NULL;
		return err;
	}
	if (info.openmetrics)
		req->content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
	/* A large scrape's buffers go back to the system, not to a high-water RSS. */
	malloc_trim(0);
	pthread_mutex_lock(&a->lock);
	a->last_scrape_ns = mono_ns() - t0;
	pthread_mutex_unlock(&a->lock);
	return 200;
}

int agent_status(void *ctx, struct http_request *req, char **body, size_t *len)
{
	return render_body(ctx, render_status, body, len);
}

int agent_healthz(void *ctx, struct http_request *req, char **body, size_t *len)
{
	struct agent *a = ctx;
	uint64_t since, limit;
	int n;

	pthread_mutex_lock(&a->lock);
	since = mono_ns() - a->last_tick_ns;
	limit = 3 * a->poll_interval_ns + 1000000000ULL;
	pthread_mutex_unlock(&a->lock);
	if (since > limit)
		n = asprintf(body, "unhealthy: breaker loop stalled, last poll %.1fs ago\n", since / 1e9);
	else
		n = asprintf(body, "ok\n");
	if (n < 0)
		return -ENOMEM;
	*len = n;
	return since > limit ? 503 : 200;
}
