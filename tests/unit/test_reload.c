// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * agent_reload is all or nothing. The real agent.c runs against fakes.c:
 * kernel maps in memory, names from a table, and an allocator and map
 * calls that fail on demand. Each case fails the 1st, 2nd, ... fallible
 * call of the reload until one runs through without an injected failure;
 * after each failure the running config, every breaker and every map entry
 * must be exactly as before, the reload counted as failed, and the config
 * that lost freed by the caller (ASan sees any pointer the agent kept).
 * Then the clean reload must give the new config's breakers and keys, and
 * look no name up itself: added names have no address until the resolver
 * thread's answers come (agent_resolved), as after a failed lookup.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "kb_test.h"

#include "agent.h"
#include "agent_test.h"
#include "breaker.h"
#include "config.h"
#include "fakes.h"
#include "http.h"

static const struct fake_name hosts[] = {
	{ "pool.test", { "10.9.0.2", "10.9.0.1" } },
	{ "svc.test", { "10.8.0.1" } },
	{ "newpool.test", { "10.7.0.3", "10.7.0.1", "10.7.0.2" } },
	{ "wide.test", { "10.6.0.1", "10.6.0.2", "10.6.0.3", "10.6.0.4" } },
};

/* What one circuit must look like after the clean reload. */
struct want_circuit {
	const char *name;
	enum breaker_state state;	/* public state of its (first) breaker */
	uint64_t opens;			/* closed -> open transitions: counts carried over */
	size_t n_addrs;			/* right after the reload */
	size_t resolved;		/* added names: once the resolver answered */
	bool counted;			/* its events stopped: kernel counts taken as fed */
	bool fed;			/* its events started: the kernel's counts are in its window */
	uint32_t consecutive;		/* consecutive failures, checked when not 0 */
};

struct reload_case {
	const char *name;
	const char *before;		/* the running config */
	const char *after;		/* the one the reload switches to */
	const char *trip[4];		/* circuits opened before the reload */
	int want_err;			/* 0: the clean reload succeeds */
	struct want_circuit want[12];	/* after a successful reload */
};

#define HEAD "resolve_interval: 24h\n" \
	     "defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n"
#define PERSIST "state_dir: /sys/fs/bpf/kb-unit\n"

static const struct reload_case cases[] = {
	{
		.name = "kept, changed, removed and added of every kind, saved state",
		.before = HEAD PERSIST "max_destinations: 32\ndestinations:\n"
			"  - { name: keep, host: 10.0.0.1, port: 80 }\n"
			"  - { name: gone, host: 10.0.0.2, port: 80 }\n"
			"  - { name: chg, host: 10.0.0.3, port: 80, consecutive_failures: 5 }\n"
			"  - { name: net, host: 10.1.0.0/16, port: 443 }\n"
			"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
			"  - { name: svc, host: svc.test, port: 9090 }\n"
			"  - { name: inns, host: 10.0.0.6, port: 80, netns: /run/netns/blue }\n"
			"  - { name: movens, host: 10.0.0.7, port: 80, netns: /run/netns/blue }\n",
		.after = HEAD PERSIST "max_destinations: 32\nfailopen_after: 3s\ndestinations:\n"
			"  - { name: inns, host: 10.0.0.6, port: 80, netns: /run/netns/blue }\n"
			"  - { name: movens, host: 10.0.0.7, port: 80, netns: /run/netns/green2 }\n"
			"  - { name: keep, host: 10.0.0.1, port: 80 }\n"
			"  - { name: chg, host: 10.0.0.3, port: 80, consecutive_failures: 2 }\n"
			"  - { name: svc, host: svc.test, port: 9090 }\n"
			"  - { name: new, host: 10.0.0.4, port: any }\n"
			"  - { name: newnet, host: 10.2.0.0/16, port: 443 }\n"
			"  - { name: newpool, host: newpool.test, port: 8080, per_address: true }\n"
			"  - { name: forced, host: 10.0.0.5, port: 80, mode: forced_open }\n"
			"  - { name: nxdomain, host: missing.test, port: 80 }\n"
			"  - { name: gone2, host: 10.0.0.2, port: 80 }\n",
		.trip = { "keep", "gone", "pool", "inns" },
		.want = {
			{ "inns", BS_OPEN, 1, 0 },
			{ "movens", BS_CLOSED, 0, 0 },
			{ "keep", BS_OPEN, 1, 0 },
			/* Its one failure, counted by the kernel alone, carries over. */
			{ "chg", BS_CLOSED, 0, 0, .consecutive = 1 },
			{ "svc", BS_CLOSED, 0, 1 },
			{ "new", BS_CLOSED, 0, 0 },
			{ "newnet", BS_CLOSED, 0, 0 },
			{ "newpool", BS_CLOSED, 0, 0, .resolved = 3 },
			{ "forced", BS_FORCED_OPEN, 0, 0 },
			{ "nxdomain", BS_CLOSED, 0, 0 },
			{ "gone2", BS_CLOSED, 0, 0 },
		},
	},
	{
		/*
		 * Only the guard changes hands (found by review): the kernel must
		 * stop tripping db's workloads on its own, each verdict rewritten.
		 */
		.name = "per_workload: max_open_percent 100 -> 50 moves the guard to the agent",
		.before = HEAD "workloads: { depth: 1, max: 2 }\nmax_destinations: 16\ndestinations:\n"
			"  - { name: db, host: 10.0.0.1, port: 80, breaker: per_workload }\n",
		.after = HEAD "workloads: { depth: 1, max: 2 }\nmax_destinations: 16\ndestinations:\n"
			"  - { name: db, host: 10.0.0.1, port: 80, breaker: per_workload, max_open_percent: 50 }\n",
		.want = { { "db", BS_CLOSED, 0, 0 } },
	},
	{
		.name = "per_workload: max_open_percent 50 -> 100 gives the trip back to the kernel",
		.before = HEAD "workloads: { depth: 1, max: 2 }\nmax_destinations: 16\ndestinations:\n"
			"  - { name: db, host: 10.0.0.1, port: 80, breaker: per_workload, max_open_percent: 50 }\n",
		.after = HEAD "workloads: { depth: 1, max: 2 }\nmax_destinations: 16\ndestinations:\n"
			"  - { name: db, host: 10.0.0.1, port: 80, breaker: per_workload }\n",
		.want = { { "db", BS_CLOSED, 0, 0 } },
	},
	{
		/* No slot was ever unused: the new breakers take the removed ones' slots. */
		.name = "at capacity, slots of removed circuits taken over",
		.before = HEAD "max_destinations: 4\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n"
			"  - { name: b, host: 10.0.0.2, port: 80 }\n"
			"  - { name: c, host: 10.0.0.3, port: 80 }\n"
			"  - { name: d, host: 10.0.0.4, port: 80 }\n",
		.after = HEAD "max_destinations: 4\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n"
			"  - { name: c, host: 10.0.0.3, port: 80 }\n"
			"  - { name: e, host: 10.0.0.5, port: 80 }\n"
			"  - { name: f, host: 10.0.0.6, port: 80 }\n",
		.trip = { "b", "c" },
		.want = {
			{ "a", BS_CLOSED, 0, 0 },
			{ "c", BS_OPEN, 1, 0 },
			{ "e", BS_CLOSED, 0, 0 },
			{ "f", BS_CLOSED, 0, 0 },
		},
	},
	{
		.name = "every kept breaker takes a new policy",
		.before = HEAD PERSIST "max_destinations: 16\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n"
			"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
			"  - { name: rate, host: 10.0.0.2, port: 80, failure_rate_threshold: 50 }\n",
		.after = HEAD PERSIST "max_destinations: 16\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80, mode: observe }\n"
			"  - { name: pool, host: pool.test, port: 8080, per_address: true, mode: disabled }\n"
			"  - { name: rate, host: 10.0.0.2, port: 80 }\n",
		.trip = { "a", "pool" },
		.want = {
			{ "a", BS_METRICS_ONLY, 1, 0 },
			{ "pool", BS_DISABLED, 1, 2 },
			{ "rate", BS_CLOSED, 0, 0, .counted = true },
		},
	},
	{
		/*
		 * Found by review: outcomes the kernel counted since the last
		 * once-a-second read went neither to the window (read no more)
		 * nor as events (begun after them), and a rate missed its trip.
		 */
		.name = "events start: the kernel's counts not read yet reach the window",
		.before = HEAD "max_destinations: 4\ndestinations:\n"
			"  - { name: cnt, host: 10.0.0.3, port: 80, consecutive_failures: 1000,\n"
			"      window_size: 1000 }\n",
		.after = HEAD "max_destinations: 4\ndestinations:\n"
			"  - { name: cnt, host: 10.0.0.3, port: 80, consecutive_failures: 1000,\n"
			"      window_size: 1000, failure_rate_threshold: 90, minimum_calls: 10 }\n",
		.want = {
			{ "cnt", BS_CLOSED, 0, 0, .counted = true, .fed = true },
		},
	},
	{
		/* Five slots: a keeps its own, b takes one, the group of four gets the three left. */
		.name = "a group larger than the free slots serves what fits",
		.before = HEAD "max_destinations: 5\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n",
		.after = HEAD "max_destinations: 5\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n"
			"  - { name: b, host: 10.0.0.2, port: 80 }\n"
			"  - { name: wide, host: wide.test, port: 80, per_address: true }\n",
		.want = {
			{ "a", BS_CLOSED, 0, 0 },
			{ "b", BS_CLOSED, 0, 0 },
			/* Three slots left: the resolver's answer gets as many members. */
			{ "wide", BS_CLOSED, 0, 0, .resolved = 3 },
		},
	},
	{
		/* Three slots, all taken: a and pool's two addresses. */
		.name = "no slot for a new circuit: rejected",
		.before = HEAD "max_destinations: 3\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n"
			"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n",
		.after = HEAD "max_destinations: 3\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n"
			"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
			"  - { name: b, host: 10.0.0.2, port: 80 }\n",
		.trip = { "a" },
		.want_err = -ENOSPC,
	},
	{
		.name = "max_destinations changed: rejected",
		.before = HEAD "max_destinations: 8\ndestinations:\n"
			"  - { name: a, host: 10.0.0.1, port: 80 }\n",
		.after = HEAD "max_destinations: 9\ndestinations:\n"
			"  - { name: b, host: 10.0.0.2, port: 80 }\n",
		.trip = { "a" },
		.want_err = -EINVAL,
	},
};

/* /metrics says whether the last reload was accepted, and counts both kinds. */
static void check_reload_metrics(const char *ctx, struct agent *a, int ok, uint64_t good, uint64_t bad)
{
	char *body = render(ctx, a, agent_metrics), want[128];

	snprintf(want, sizeof(want), "\nkbreaker_config_reload_success %d\n", ok);
	if (!strstr(body, want))
		fail_msg("%s: /metrics lacks \"%s\"", ctx, want + 1);
	snprintf(want, sizeof(want), "\nkbreaker_config_reloads_total{result=\"success\"} %ju\n",
		 (uintmax_t)good);
	if (!strstr(body, want))
		fail_msg("%s: /metrics lacks \"%s\"", ctx, want + 1);
	snprintf(want, sizeof(want), "\nkbreaker_config_reloads_total{result=\"failure\"} %ju\n",
		 (uintmax_t)bad);
	if (!strstr(body, want))
		fail_msg("%s: /metrics lacks \"%s\"", ctx, want + 1);
	free(body);
	/* /status reads every circuit's config: a pointer into a freed one shows under ASan. */
	free(render(ctx, a, agent_status));
}

/* Everything a failed reload must leave as it was. */
struct agent_copy {
	const struct config *cfg;
	struct agent_circuit *circuits;
	size_t n_circuits, n_slots;
	struct agent_circuit *circ;	/* copies, with copies of addrs and members */
	struct agent_slot *slots;
	uint64_t map_errors, resolve_errors, reloads_ok, restored, poll_interval_ns;
	struct fake_maps maps;
};

static struct agent_copy *snap_take(const struct agent *a)
{
	struct agent_copy *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->cfg = a->cfg;
	s->circuits = a->circuits;
	s->n_circuits = a->n_circuits;
	s->n_slots = a->n_slots;
	s->circ = calloc(a->n_circuits + 1, sizeof(*s->circ));
	s->slots = calloc(a->n_slots + 1, sizeof(*s->slots));
	assert_true(s->circ && s->slots);
	for (size_t i = 0; i < a->n_circuits; i++) {
		const struct agent_circuit *c = &a->circuits[i];

		s->circ[i] = *c;
		s->circ[i].addrs = calloc(c->n_addrs + 1, sizeof(kb_addr_t));
		s->circ[i].members = calloc(c->n_addrs + 1, sizeof(uint32_t));
		assert_true(s->circ[i].addrs && s->circ[i].members);
		if (c->n_addrs)
			memcpy(s->circ[i].addrs, c->addrs, c->n_addrs * sizeof(kb_addr_t));
		if (c->members && c->n_addrs)
			memcpy(s->circ[i].members, c->members, c->n_addrs * sizeof(uint32_t));
	}
	if (a->n_slots)
		memcpy(s->slots, a->slots, a->n_slots * sizeof(*s->slots));
	s->map_errors = a->map_errors;
	s->resolve_errors = a->resolve_errors;
	s->reloads_ok = a->reloads_ok;
	s->restored = a->restored;
	s->poll_interval_ns = a->poll_interval_ns;
	s->maps = fake_maps;
	return s;
}

static void snap_free(struct agent_copy *s)
{
	for (size_t i = 0; i < s->n_circuits; i++) {
		free(s->circ[i].addrs);
		free(s->circ[i].members);
	}
	free(s->circ);
	free(s->slots);
	free(s);
}

/* Which part of a breaker differs, for a message that says more than "slot 3". */
static const char *breaker_diff(const struct breaker *x, const struct breaker *y)
{
	if (x->state != y->state)
		return "state";
	if (memcmp(x->transitions, y->transitions, sizeof(x->transitions)))
		return "transitions";
	if (x->consecutive_failures != y->consecutive_failures)
		return "consecutive_failures";
	if (memcmp(&x->policy, &y->policy, sizeof(x->policy)))
		return "policy";
	if (memcmp(&x->window, &y->window, sizeof(x->window)))
		return "window";
	return memcmp(x, y, sizeof(*x)) ? "a field" : NULL;
}

static void snap_check(const char *ctx, const struct agent *a, const struct agent_copy *s)
{
	const struct fake_maps *m = &s->maps;

	if (a->cfg != s->cfg)
		fail_msg("%s: the running config pointer changed", ctx);
	if (a->circuits != s->circuits || a->n_circuits != s->n_circuits)
		fail_msg("%s: the circuits were replaced", ctx);
	check_eq(ctx, a->n_slots, s->n_slots);
	for (size_t i = 0; i < a->n_circuits; i++) {
		const struct agent_circuit *c = &a->circuits[i], *w = &s->circ[i];

		if (c->cfg != w->cfg || c->slot != w->slot || c->n_addrs != w->n_addrs ||
		    (c->n_addrs && memcmp(c->addrs, w->addrs, c->n_addrs * sizeof(kb_addr_t))) ||
		    (c->members && memcmp(c->members, w->members, c->n_addrs * sizeof(uint32_t))))
			fail_msg("%s: circuit %s changed", ctx, w->cfg->name);
	}
	for (size_t k = 0; k < a->n_slots; k++) {
		const struct agent_slot *x = &a->slots[k], *y = &s->slots[k];
		const char *what = breaker_diff(&x->br, &y->br);

		if (what)
			fail_msg("%s: breaker of slot %zu (%s): %s changed", ctx, k,
				 y->used ? s->circ[y->circuit].cfg->name : "unused", what);
		if (memcmp(x, y, sizeof(*x)))
			fail_msg("%s: slot %zu changed", ctx, k);
	}
	check_eq(ctx, a->map_errors, s->map_errors);
	check_eq(ctx, a->resolve_errors, s->resolve_errors);
	check_eq(ctx, a->reloads_ok, s->reloads_ok);
	check_eq(ctx, a->restored, s->restored);
	check_eq(ctx, a->poll_interval_ns, s->poll_interval_ns);
	check_eq(ctx, a->last_reload_ok, false);
	/* The maps: byte for byte, one at a time so the message names the one that differs. */
	if (fake_maps.n_keys != m->n_keys ||
	    memcmp(fake_maps.keys, m->keys, sizeof(m->keys)))
		fail_msg("%s: kb_dst/kb_dst_lpm hold %zu keys, had %zu (or other ids)", ctx,
			 fake_maps.n_keys, m->n_keys);
	for (size_t id = 0; id < FAKE_SLOTS; id++) {
		if (memcmp(&fake_maps.verdicts[id], &m->verdicts[id], sizeof(m->verdicts[id])))
			fail_msg("%s: kb_verdicts[%zu] changed (gen %u, was %u)", ctx, id,
				 fake_maps.verdicts[id].gen, m->verdicts[id].gen);
		if (memcmp(&fake_maps.trips[id], &m->trips[id], sizeof(m->trips[id])))
			fail_msg("%s: kb_trips[%zu] changed", ctx, id);
		if (memcmp(&fake_maps.stats[id], &m->stats[id], sizeof(m->stats[id])))
			fail_msg("%s: kb_stats[%zu] changed", ctx, id);
		if (fake_maps.saved_used[id] != m->saved_used[id] ||
		    memcmp(&fake_maps.saved[id], &m->saved[id], sizeof(m->saved[id])))
			fail_msg("%s: kb_saved[%zu] changed", ctx, id);
	}
	check_eq(ctx, fake_maps.lookup_flags, m->lookup_flags);
	check_eq(ctx, fake_maps.failopen_after_ns, m->failopen_after_ns);
}

/* Open every breaker of the named circuits with two refusals each. */
static void trip(const char *ctx, struct agent *a, const char *const *names, uint64_t now)
{
	for (size_t t = 0; t < 4 && names[t]; t++) {
		const struct agent_circuit *c = circuit_named(a, names[t]);

		if (!c)
			fail_msg("%s: no circuit %s to trip", ctx, names[t]);
		for (size_t m = 0; m < (is_grouped(c) ? c->n_addrs : 1); m++)
			for (int i = 0; i < 2; i++)
				fake_event(is_grouped(c) ? c->members[m] : c->slot, KB_RES_REFUSED, now);
	}
	assert_int_equal(agent_drain(a, now), 0);
	/* Saves what changed, as each poll does: kb_saved then matches the breakers. */
	assert_int_equal(agent_tick(a, now), 0);
}

/* What the kernel writes on its own: counters of every slot, failures counted in a gen. */
static void kernel_writes(void)
{
	for (uint32_t id = 0; id < FAKE_SLOTS; id++) {
		fake_maps.stats[id].connects[KB_RES_SUCCESS] = 100 + id;
		fake_maps.stats[id].connects[KB_RES_REFUSED] = 3 * id;
		fake_maps.stats[id].blocked = 7 * id;
		fake_maps.trips[id].fails = (uint64_t)fake_maps.verdicts[id].gen << 32 | 1;
	}
}

static void check_after(const char *ctx, const struct agent *a, const struct reload_case *tc)
{
	size_t w;

	check_maps(ctx, a);
	for (w = 0; w < ARRAY_SIZE(tc->want) && tc->want[w].name; w++) {
		const struct want_circuit *want = &tc->want[w];
		const struct agent_circuit *c = circuit_named(a, want->name);
		const struct breaker *br;

		if (!c)
			fail_msg("%s: no circuit %s after the reload", ctx, want->name);
		check_eq(ctx, c->n_addrs, want->n_addrs);
		if (is_grouped(c) && !c->n_addrs)
			continue;
		br = &a->slots[is_grouped(c) ? c->members[0] : c->slot].br;
		if (breaker_public_state(br) != want->state)
			fail_msg("%s: %s is %s, want %s", ctx, want->name,
				 breaker_state_name(breaker_public_state(br)),
				 breaker_state_name(want->state));
		check_eq(ctx, br->transitions[BS_CLOSED][BS_OPEN], want->opens);
		if (want->consecutive)
			check_eq(ctx, br->consecutive_failures, want->consecutive);
		if (want->counted) {
			uint32_t id = is_grouped(c) ? c->members[0] : c->slot;

			if (memcmp(a->slots[id].counted, fake_maps.stats[id].connects,
				   sizeof(a->slots[id].counted)))
				fail_msg("%s: %s: counted is not the kernel's count", ctx, want->name);
		}
		if (want->fed) {
			const struct kb_dst_stats *st = &fake_maps.stats[c->slot];

			check_eq(ctx, br->window.total.calls,
				 st->connects[KB_RES_SUCCESS] + st->connects[KB_RES_REFUSED]);
			check_eq(ctx, br->window.total.failures, st->connects[KB_RES_REFUSED]);
		}
	}
	for (w = 0; w < ARRAY_SIZE(tc->want) && tc->want[w].name; w++)
		;
	check_eq(ctx, a->n_circuits, w);
}

/* Whether every added name of the case has its addresses from the resolver. */
static bool all_resolved(const struct agent *a, const struct reload_case *tc)
{
	for (size_t w = 0; w < ARRAY_SIZE(tc->want) && tc->want[w].name; w++)
		if (tc->want[w].resolved &&
		    circuit_named(a, tc->want[w].name)->n_addrs != tc->want[w].resolved)
			return false;
	return true;
}

/* Apply the answers of the round the reload asked for until the added names have theirs. */
static void check_resolved(const char *ctx, struct agent *a, const struct reload_case *tc)
{
	for (int i = 0; i < 20 && !all_resolved(a, tc); i++) {
		wait_answers(ctx, a);
		assert_int_equal(agent_resolved(a, mono_now()), 0);
	}
	for (size_t w = 0; w < ARRAY_SIZE(tc->want) && tc->want[w].name; w++)
		if (tc->want[w].resolved)
			check_eq(ctx, circuit_named(a, tc->want[w].name)->n_addrs, tc->want[w].resolved);
	check_maps(ctx, a);
}

/* agent_reload with its nth fallible call failed (0: none) and its error lines recorded. */
static int reload_nth(struct agent *a, const struct config *cfg, uint64_t now, unsigned nth)
{
	int err;

	fake_log_reset();
	fault_arm(nth);
	err = agent_reload(a, cfg, now);
	fault_arm(0);
	return err;
}

static void run_case(const struct reload_case *tc)
{
	uint64_t t0 = mono_now();
	struct config *running = parse(tc->name, tc->before), *next;
	/* On the heap: a failed check leaves its resolver thread running on it. */
	struct agent *a = malloc(sizeof(*a));
	struct agent_copy *before;
	char ctx[256];
	unsigned n, lookups;
	int err = 0;

	assert_non_null(a);
	fake_names(hosts, ARRAY_SIZE(hosts));
	assert_int_equal(agent_init(a, running, fake_bpf_open(), running->max_destinations, t0), 0);
	check_maps(tc->name, a);
	trip(tc->name, a, tc->trip, t0 + SEC);
	kernel_writes();
	before = snap_take(a);
	lookups = fake_lookups_here();	/* agent_init's, at start, are the loop's own */

	for (n = 1;; n++) {
		snprintf(ctx, sizeof(ctx), "%s: failure at call %u", tc->name, n);
		next = parse(ctx, tc->after);
		err = reload_nth(a, next, t0 + 10 * SEC, n);
		if (!fault_fired())
			break;	/* every fallible call of the reload has failed once */
		if (!err)
			fail_msg("%s: the reload succeeded anyway", ctx);
		/* Logged once, where the reload gives up, saying so. */
		if (fake_log_errors() != 1 ||
		    strncmp(fake_log_first_error(), "reload rejected, keeping the running configuration: ", 52))
			fail_msg("%s: %u error lines, the first: %s", ctx, fake_log_errors(),
				 fake_log_first_error());
		/* The contract: a rejected config is the caller's to free at once. */
		drop(next);
		snap_check(ctx, a, before);
		check_reload_metrics(ctx, a, 0, 0, n);
	}
	/* The run without a failure made n - 1 fallible calls: each was failed once above. */
	snprintf(ctx, sizeof(ctx), "%s: clean reload", tc->name);
	check_eq(ctx, fault_calls(), n - 1);
	print_message("%s: %u failure points\n", tc->name, n - 1);
	if (tc->want_err) {
		check_int(ctx, err, tc->want_err);
		check_eq(ctx, fake_log_errors(), 1);
		drop(next);
		snap_check(ctx, a, before);
		check_reload_metrics(ctx, a, 0, 0, n);
	} else {
		check_int(ctx, err, 0);
		if (a->cfg != next)
			fail_msg("%s: the new config is not the running one", ctx);
		/* The contract: the replaced config is the caller's to free at once. */
		drop(running);
		running = next;
		check_reload_metrics(ctx, a, 1, 1, n - 1);
		/* The hooks' grace is the new one (a rejected reload kept it: snap_check). */
		check_eq(ctx, fake_maps.failopen_after_ns, next->failopen_after_ns);
		check_after(ctx, a, tc);
		check_resolved(ctx, a, tc);
	}
	/* Not one lookup on this thread, the loop's: DNS may take seconds. */
	check_eq(ctx, fake_lookups_here() - lookups, 0);
	snap_free(before);
	agent_fini(a);
	free(a);
	drop(running);
}

static void test_reload_case(void **state)
{
	run_case(*state);
}

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(cases)];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		tests[i] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = test_reload_case,
			.initial_state = (void *)&cases[i],
		};
	return cmocka_run_group_tests_name("agent_reload", tests, NULL, NULL);
}
