// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A restarted agent (state_dir) finds the maps the last one pinned and
 * takes back, into the same slots, the breakers its configuration still
 * has: state, counts and transitions as they were, the new policy applied.
 * What the configuration dropped is unblocked and forgotten, and a record
 * it cannot read starts its breaker afresh. The real agent runs against
 * fakes.c, whose maps outlive agent_fini() as pinned maps do.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kb_test.h"

#include "agent.h"
#include "agent_int.h"
#include "agent_test.h"
#include "breaker.h"
#include "config.h"
#include "fakes.h"
#include "persist.h"

static const struct fake_name hosts[] = {
	{ "pool.test", { "10.9.0.2", "10.9.0.1" } },
};

#define HEAD "resolve_interval: 24h\nstate_dir: /sys/fs/bpf/kb-unit\nmax_destinations: 16\n" \
	     "defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n" \
	     "destinations:\n"

static const char before[] = HEAD
	"  - { name: a, host: 10.0.0.1, port: 80 }\n"
	"  - { name: b, host: 10.0.0.2, port: 80, consecutive_failures: 5 }\n"
	"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
	"  - { name: net, host: 10.1.0.0/16, port: 443 }\n"
	"  - { name: gone, host: 10.0.0.3, port: 80 }\n";

/* a and net as they were; b with a new policy; pool again; gone dropped; c new. */
static const char after[] = HEAD
	"  - { name: c, host: 10.0.0.9, port: 80 }\n"
	"  - { name: net, host: 10.1.0.0/16, port: 443 }\n"
	"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
	"  - { name: b, host: 10.0.0.2, port: 80, consecutive_failures: 3 }\n"
	"  - { name: a, host: 10.0.0.1, port: 80 }\n";

/* What a circuit's breaker was when the first agent stopped. */
struct was {
	const char *name;
	uint32_t slot;
	struct breaker br;
};

struct run {
	struct config *cfg;
	struct agent a;
	struct was was[5];
	struct was pool[2];	/* pool's members, by address */
	kb_addr_t pool_addr[2];
};

static void refuse(struct agent *a, uint32_t id, int n, uint64_t now)
{
	for (int i = 0; i < n; i++)
		fake_event(id, KB_RES_REFUSED, now);
}

/* The first agent: a, gone and pool's members open, b one failure down. */
static void first_run(struct run *r, uint64_t now)
{
	const char *names[] = { "a", "b", "pool", "net", "gone" };
	uint32_t id;

	r->cfg = parse("first run", before);
	assert_int_equal(agent_init(&r->a, r->cfg, fake_bpf_open(), 16, now), 0);
	/* Names resolve on the real clock: outcomes come after that. */
	now = mono_now();
	refuse(&r->a, circuit_named(&r->a, "a")->slot, 2, now);
	/* b's outcomes queue no events: its one failure is counted in the kernel. */
	id = circuit_named(&r->a, "b")->slot;
	fake_maps.trips[id].fails = (uint64_t)fake_maps.verdicts[id].gen << 32 | 1;
	fake_maps.stats[id].connects[KB_RES_REFUSED] = 1;
	refuse(&r->a, circuit_named(&r->a, "gone")->slot, 2, now);
	for (size_t m = 0; m < 2; m++)
		refuse(&r->a, circuit_named(&r->a, "pool")->members[m], 2, now);
	assert_int_equal(agent_drain(&r->a, now), 0);
	assert_int_equal(agent_tick(&r->a, now), 0);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct agent_circuit *c = circuit_named(&r->a, names[i]);
		id = is_grouped(c) ? c->members[0] : c->slot;
		r->was[i] = (struct was){ names[i], id, r->a.slots[id].br };
	}
	for (size_t m = 0; m < 2; m++) {
		const struct agent_circuit *c = circuit_named(&r->a, "pool");

		r->pool[m] = (struct was){ "pool", c->members[m], r->a.slots[c->members[m]].br };
		memcpy(r->pool_addr[m], c->addrs[m], 16);
	}
	assert_int_equal(r->was[0].br.state, BS_OPEN);
	assert_int_equal(r->was[1].br.consecutive_failures, 1);
	agent_fini(&r->a);
	drop(r->cfg);
}

static const struct was *was_of(const struct run *r, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(r->was); i++)
		if (!strcmp(r->was[i].name, name))
			return &r->was[i];
	fail_msg("no circuit %s in the first run", name);
	return NULL;
}

/* Circuit name's breaker is the first run's, in the same slot, under its new policy. */
static void check_taken_back(const struct run *r, const struct agent *a, const char *name)
{
	const struct agent_circuit *c = circuit_named(a, name);
	const struct was *w = was_of(r, name);
	const struct breaker *br = &a->slots[c->slot].br;

	check_eq(name, c->slot, w->slot);
	check_eq(name, br->state, w->br.state);
	check_eq(name, br->state_since_ns, w->br.state_since_ns);
	check_eq(name, br->open_until_ns, w->br.open_until_ns);
	check_eq(name, br->consecutive_failures, w->br.consecutive_failures);
	if (memcmp(br->transitions, w->br.transitions, sizeof(br->transitions)))
		fail_msg("%s: transitions differ from the first run's", name);
	check_eq(name, br->policy.consecutive_failures, c->cfg->policy.consecutive_failures);
}

/*
 * pool's members for the first run's addresses from `first` on are that
 * run's, in the same slots, open and blocking as they were.
 */
static void check_members_back(const struct run *r, const struct agent *a, size_t first)
{
	const struct agent_circuit *c = circuit_named(a, "pool");

	check_eq("pool members", c->n_addrs, 2 - first);
	for (size_t m = 0; m < c->n_addrs; m++) {
		const struct was *w = &r->pool[first + m];
		const struct agent_slot *s = &a->slots[c->members[m]];

		check_eq("pool member's address", memcmp(c->addrs[m], r->pool_addr[first + m], 16), 0);
		check_eq("pool member's address", memcmp(s->addr, c->addrs[m], 16), 0);
		check_eq("pool member's slot", c->members[m], w->slot);
		check_eq("pool member", s->br.state, BS_OPEN);
		check_eq("pool member", s->br.open_until_ns, w->br.open_until_ns);
		if (memcmp(s->br.transitions, w->br.transitions, sizeof(s->br.transitions)))
			fail_msg("pool member %zu: transitions differ from the first run's", m);
		check_eq("pool member", fake_maps.verdicts[c->members[m]].action, KB_ACT_BLOCK);
	}
}

static void test_restart_takes_breakers_back(void **state)
{
	uint64_t t0 = mono_now();
	/* On the heap: a failed check leaves the agent's thread running on it. */
	struct run *r = calloc(1, sizeof(*r));
	struct agent *b = &r->a;
	uint32_t gone;

	assert_non_null(r);

	fake_names(hosts, ARRAY_SIZE(hosts));
	first_run(r, t0);
	gone = was_of(r, "gone")->slot;
	check_eq("gone", fake_maps.verdicts[gone].action, KB_ACT_BLOCK);
	check_eq("gone", fake_maps.saved_used[gone], true);
	check_eq("pool", fake_maps.verdicts[was_of(r, "pool")->slot].action, KB_ACT_BLOCK);
	check_eq("pool", fake_maps.saved_used[was_of(r, "pool")->slot], true);

	r->cfg = parse("second run", after);
	assert_int_equal(agent_init(b, r->cfg, fake_bpf_adopt(), 16, t0 + 5 * SEC), 0);
	/* a, b, net and pool's two members. */
	check_eq("restored", b->restored, 5);
	check_taken_back(r, b, "a");
	check_taken_back(r, b, "b");
	check_taken_back(r, b, "net");
	check_eq("b", b->slots[circuit_named(b, "b")->slot].br.policy.consecutive_failures, 3);
	check_members_back(r, b, 0);
	check_eq("c", b->slots[circuit_named(b, "c")->slot].br.state, BS_CLOSED);
	/* gone: unblocked, forgotten, and no key leads to it any more. */
	check_eq("gone", fake_maps.verdicts[gone].action, KB_ACT_ALLOW);
	check_eq("gone", fake_maps.saved_used[gone], false);
	check_eq("gone", b->slots[gone].used, false);
	check_maps("second run", b);
	/* Still open from the first run: a's next connect is refused. */
	check_eq("a", fake_maps.verdicts[circuit_named(b, "a")->slot].action, KB_ACT_BLOCK);
	agent_fini(b);
	drop(r->cfg);
	free(r);
}

/*
 * An address the name no longer gives when the agent comes back: its
 * member is taken back, then retired by the first resolution as in a
 * run (unblocked, forgotten, its counts kept with the destination).
 */
static void test_member_gone_while_down(void **state)
{
	static const struct fake_name fewer[] = { { "pool.test", { "10.9.0.2" } } };
	uint64_t t0 = mono_now();
	struct run *r = calloc(1, sizeof(*r));
	struct agent *b = &r->a;
	const struct agent_circuit *c;
	uint32_t gone;

	assert_non_null(r);

	fake_names(hosts, ARRAY_SIZE(hosts));
	first_run(r, t0);
	gone = r->pool[0].slot;
	/* What the kernel counted for it before the first agent stopped. */
	fake_maps.stats[gone].connects[KB_RES_REFUSED] = 2;

	fake_names(fewer, ARRAY_SIZE(fewer));
	r->cfg = parse("second run", after);
	assert_int_equal(agent_init(b, r->cfg, fake_bpf_adopt(), 16, t0 + 5 * SEC), 0);
	check_eq("restored", b->restored, 5);
	check_members_back(r, b, 1);
	check_eq("gone member", b->slots[gone].used, false);
	check_eq("gone member", fake_maps.verdicts[gone].action, KB_ACT_ALLOW);
	check_eq("gone member", fake_maps.saved_used[gone], false);
	c = circuit_named(b, "pool");
	assert_non_null(c->retired);
	check_eq("gone member's refusals", c->retired->stats.connects[KB_RES_REFUSED], 2);
	check_eq("gone member's trips", c->retired->transitions[BS_CLOSED][BS_OPEN],
		 r->pool[0].br.transitions[BS_CLOSED][BS_OPEN]);
	check_maps("second run", b);
	agent_fini(b);
	drop(r->cfg);
	free(r);
}

/*
 * A destination whose netns: changed while no agent ran is another peer:
 * its breaker starts closed, as a reload starts it (found by review: the
 * open breaker of the old namespace came back and refused the new one's
 * connects).
 */
static void test_netns_changed(void **state)
{
	static const char in_a[] = HEAD "  - { name: db, host: 10.0.0.1, port: 80, netns: /run/netns/a }\n";
	static const char in_bb[] = HEAD "  - { name: db, host: 10.0.0.1, port: 80, netns: /run/netns/bb }\n";
	uint64_t t0 = mono_now();
	struct run *r = calloc(1, sizeof(*r));
	struct agent *a = &r->a;
	uint32_t id;

	assert_non_null(r);
	r->cfg = parse("namespace a", in_a);
	assert_int_equal(agent_init(a, r->cfg, fake_bpf_open(), 16, t0), 0);
	id = circuit_named(a, "db")->slot;
	refuse(a, id, 2, mono_now());
	assert_int_equal(agent_drain(a, mono_now()), 0);
	assert_int_equal(agent_tick(a, mono_now()), 0);
	check_eq("open in a", a->slots[id].br.state, BS_OPEN);
	check_eq("saved", fake_maps.saved_used[id], true);
	agent_fini(a);
	drop(r->cfg);

	r->cfg = parse("namespace bb", in_bb);
	assert_int_equal(agent_init(a, r->cfg, fake_bpf_adopt(), 16, t0 + 5 * SEC), 0);
	check_eq("restored", a->restored, 0);
	id = circuit_named(a, "db")->slot;
	check_eq("closed in bb", a->slots[id].br.state, BS_CLOSED);
	check_eq("allowed in bb", fake_maps.verdicts[id].action, KB_ACT_ALLOW);
	check_maps("namespace bb", a);
	agent_fini(a);
	drop(r->cfg);

	/* And back: a's own record is gone with the restart that did not take it. */
	r->cfg = parse("namespace a again", in_a);
	assert_int_equal(agent_init(a, r->cfg, fake_bpf_adopt(), 16, t0 + 10 * SEC), 0);
	check_eq("closed in a again", a->slots[circuit_named(a, "db")->slot].br.state, BS_CLOSED);
	agent_fini(a);
	drop(r->cfg);
	free(r);
}

/*
 * A member that went while the first agent ran: what it counted stays the
 * destination's across the restart (found by review: the counters went
 * back to the surviving member's), through the surviving member's record.
 */
static void test_member_gone_before_restart(void **state)
{
	static const struct fake_name fewer[] = { { "pool.test", { "10.9.0.2" } } };
	uint64_t t0 = mono_now();
	struct run *r = calloc(1, sizeof(*r));
	struct agent *a = &r->a;
	const struct agent_circuit *c;
	uint32_t gone, ci;

	assert_non_null(r);

	fake_names(hosts, ARRAY_SIZE(hosts));
	r->cfg = parse("first run", before);
	assert_int_equal(agent_init(a, r->cfg, fake_bpf_open(), 16, t0), 0);
	c = circuit_named(a, "pool");
	ci = c - a->circuits;
	gone = c->members[0];
	refuse(a, gone, 2, mono_now());
	assert_int_equal(agent_drain(a, mono_now()), 0);
	fake_maps.stats[gone].connects[KB_RES_REFUSED] = 2;
	fake_names(fewer, ARRAY_SIZE(fewer));
	resolve_circuit(a, ci, mono_now());
	c = circuit_named(a, "pool");
	check_eq("members left", c->n_addrs, 1);
	assert_non_null(c->retired);
	check_eq("retired refusals", c->retired->stats.connects[KB_RES_REFUSED], 2);
	check_eq("retired trips", c->retired->transitions[BS_CLOSED][BS_OPEN], 1);
	/* The survivor's record carries them from the next tick on. */
	assert_int_equal(agent_tick(a, mono_now()), 0);
	check_eq("survivor saved", fake_maps.saved_used[c->members[0]], true);
	agent_fini(a);
	drop(r->cfg);

	r->cfg = parse("second run", before);
	assert_int_equal(agent_init(a, r->cfg, fake_bpf_adopt(), 16, t0 + 5 * SEC), 0);
	c = circuit_named(a, "pool");
	check_eq("members", c->n_addrs, 1);
	assert_non_null(c->retired);
	check_eq("retired refusals after the restart", c->retired->stats.connects[KB_RES_REFUSED], 2);
	check_eq("retired trips after the restart", c->retired->transitions[BS_CLOSED][BS_OPEN], 1);
	check_maps("second run", a);
	agent_fini(a);
	drop(r->cfg);
	free(r);
}

/* A record of another version, or with a value no breaker has, starts that breaker afresh. */
static void test_unreadable_record_starts_afresh(void **state)
{
	uint64_t t0 = mono_now();
	struct run *r = calloc(1, sizeof(*r));
	struct agent *b = &r->a;
	const struct agent_circuit *c;
	uint32_t a_id, net_id;

	assert_non_null(r);

	fake_names(hosts, ARRAY_SIZE(hosts));
	first_run(r, t0);
	a_id = was_of(r, "a")->slot;
	net_id = was_of(r, "net")->slot;
	fake_maps.saved[a_id].br.state = 99;
	fake_maps.saved[net_id].version = 1;
	fake_maps.saved[r->pool[1].slot].member = 2;

	r->cfg = parse("second run", after);
	assert_int_equal(agent_init(b, r->cfg, fake_bpf_adopt(), 16, t0 + 5 * SEC), 0);
	/* b and pool's first member. */
	check_eq("restored", b->restored, 2);
	check_taken_back(r, b, "b");
	c = circuit_named(b, "pool");
	check_eq("pool", c->n_addrs, 2);
	check_eq("pool", b->slots[c->members[0]].br.state, BS_OPEN);
	check_eq("pool", b->slots[c->members[1]].br.state, BS_CLOSED);
	check_eq("pool", fake_maps.verdicts[c->members[1]].action, KB_ACT_ALLOW);
	check_eq("a", b->slots[circuit_named(b, "a")->slot].br.state, BS_CLOSED);
	check_eq("a", fake_maps.verdicts[circuit_named(b, "a")->slot].action, KB_ACT_ALLOW);
	check_eq("net", b->slots[circuit_named(b, "net")->slot].br.state, BS_CLOSED);
	/* Saved again from the new breakers, in this version. */
	assert_int_equal(agent_tick(b, t0 + 6 * SEC), 0);
	check_eq("a", fake_maps.saved[circuit_named(b, "a")->slot].version, PERSIST_VERSION);
	check_maps("second run", b);
	agent_fini(b);
	drop(r->cfg);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restart_takes_breakers_back),
		cmocka_unit_test(test_member_gone_while_down),
		cmocka_unit_test(test_netns_changed),
		cmocka_unit_test(test_member_gone_before_restart),
		cmocka_unit_test(test_unreadable_record_starts_afresh),
	};

	return cmocka_run_group_tests_name("agent_restore", tests, NULL, NULL);
}

