// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The resolver thread hands its answers to the loop: the eventfd becomes
 * readable, agent_resolved() applies them under the agent's lock. New
 * addresses come into the maps, a failed lookup keeps the known ones, and
 * an answer for a name a reload dropped meanwhile changes nothing. A
 * reload's new names are the thread's to look up, never the loop's. The
 * real agent runs against fakes.c (names from a table).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "kb_test.h"

#include "agent.h"
#include "agent_int.h"
#include "agent_test.h"
#include "bpf.h"
#include "config.h"
#include "fakes.h"

static const struct fake_name before[] = {
	{ "svc.test", { "10.8.0.1" } },
	{ "pool.test", { "10.9.0.1", "10.9.0.2" } },
};

static const struct fake_name moved[] = {
	{ "svc.test", { "10.8.0.3", "10.8.0.2" } },
	{ "pool.test", { "10.9.0.2", "10.9.0.3", "10.9.0.4" } },
};

static const struct fake_name gone[] = {
	{ "other.test", { "10.7.0.1" } },
};

/* Two circuits follow svc.test: each gets the answer. */
static const char config[] =
	"resolve_interval: 1s\nmax_destinations: 16\n"
	"defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n"
	"destinations:\n"
	"  - { name: svc, host: svc.test, port: 80 }\n"
	"  - { name: svc2, host: svc.test, port: 81 }\n"
	"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
	"  - { name: lit, host: 10.0.0.1, port: 80 }\n";

static const char without_svc[] =
	"resolve_interval: 1s\nmax_destinations: 16\n"
	"defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n"
	"destinations:\n"
	"  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
	"  - { name: lit, host: 10.0.0.1, port: 80 }\n";

/* Apply answers until cond holds; every round answers every name. */
static void resolved_until(const char *ctx, struct agent *a, bool (*cond)(struct agent *))
{
	for (int round = 0; round < 5 && !cond(a); round++) {
		wait_answers(ctx, a);
		assert_int_equal(agent_resolved(a, mono_now()), 0);
	}
	if (!cond(a))
		fail_msg("%s: not reached after 5 answers", ctx);
}

static bool moved_in(struct agent *a)
{
	return circuit_named(a, "svc")->n_addrs == 2 && circuit_named(a, "svc2")->n_addrs == 2 &&
	       circuit_named(a, "pool")->n_addrs == 3;
}

static bool both_failed(struct agent *a)
{
	return a->resolve_errors >= 2;
}

static void test_answers_reach_the_loop(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));	/* a failure leaves its thread on it */
	struct config *cfg = parse("config", config);
	const struct agent_circuit *svc;
	char text[64];

	assert_non_null(a);
	fake_names(before, ARRAY_SIZE(before));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, mono_now()), 0);
	check_eq("svc", circuit_named(a, "svc")->n_addrs, 1);
	check_maps("start", a);

	fake_names(moved, ARRAY_SIZE(moved));
	resolved_until("moved", a, moved_in);
	check_maps("moved", a);
	svc = circuit_named(a, "svc");
	snprintf(text, sizeof(text), "%u.%u", svc->addrs[0][14], svc->addrs[0][15]);
	check_str("svc's first address", text, "0.2");
	check_eq("resolve errors", a->resolve_errors, 0);

	/* A lookup that fails keeps what was known, and is counted once per circuit. */
	fake_names(gone, ARRAY_SIZE(gone));
	resolved_until("gone", a, both_failed);
	check_eq("svc", circuit_named(a, "svc")->n_addrs, 2);
	check_eq("svc2", circuit_named(a, "svc2")->n_addrs, 2);
	check_maps("gone", a);
	agent_fini(a);
	drop(cfg);
	free(a);
}

/* Answers waiting while a reload drops their name are not applied to anything. */
static void test_answer_for_a_dropped_name(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct config *cfg = parse("config", config), *next = parse("reload", without_svc);

	assert_non_null(a);
	fake_names(before, ARRAY_SIZE(before));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, mono_now()), 0);
	fake_names(moved, ARRAY_SIZE(moved));
	wait_answers("moved", a);
	assert_int_equal(agent_reload(a, next, mono_now()), 0);
	drop(cfg);
	assert_int_equal(agent_resolved(a, mono_now()), 0);
	check_eq("circuits", a->n_circuits, 2);
	check_maps("after the reload", a);
	agent_fini(a);
	drop(next);
	free(a);
}

static bool pool_moved(struct agent *a)
{
	return circuit_named(a, "pool")->n_addrs == 3;
}

/* Whether /metrics says pool had `refused` refused connects. */
static void check_pool_refused(const char *ctx, struct agent *a, unsigned refused)
{
	char want[128], *body = render(ctx, a, agent_metrics);

	snprintf(want, sizeof(want),
		 "\nkbreaker_tcp_connects_total{circuit_name=\"pool\",result=\"refused\"} %u\n", refused);
	if (!strstr(body, want))
		fail_msg("%s: no%s", ctx, want);
	free(body);
}

/*
 * A per_address member whose address went keeps its counts in the
 * destination's: its counters never go backwards while it is configured.
 */
static void test_member_counts_stay(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct config *cfg = parse("config", config);
	const struct agent_circuit *pool;

	assert_non_null(a);
	fake_names(before, ARRAY_SIZE(before));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, mono_now()), 0);
	pool = circuit_named(a, "pool");
	assert_int_equal(pool->n_addrs, 2);	/* 10.9.0.1 and 10.9.0.2 */
	fake_maps.stats[pool->members[0]].connects[KB_RES_REFUSED] = 4;
	fake_maps.stats[pool->members[1]].connects[KB_RES_REFUSED] = 2;
	check_pool_refused("two addresses", a, 6);

	fake_names(moved, ARRAY_SIZE(moved));	/* 10.9.0.1 goes, .3 and .4 come */
	resolved_until("moved", a, pool_moved);
	check_pool_refused("10.9.0.1 gone", a, 6);
	check_maps("10.9.0.1 gone", a);
	agent_fini(a);
	drop(cfg);
	free(a);
}

/* One address and port, two destinations: a name (dup) and a literal (lit). */
static const struct fake_name dup_names[] = {
	{ "dup.test", { "10.0.0.1" } },
};

#define DUP_HEAD "resolve_interval: 1s\nmax_destinations: 16\n" \
	"defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n" \
	"destinations:\n"
#define DUP "  - { name: dup, host: dup.test, port: 80 }\n"
#define LIT "  - { name: lit, host: 10.0.0.1, port: 80 }\n"

static bool dup_let_go(struct agent *a)
{
	return circuit_named(a, "dup")->n_addrs == 0;
}

static bool dup_took(struct agent *a)
{
	return circuit_named(a, "dup")->n_addrs == 1;
}

/* The key of 10.0.0.1:80 leads to circuit name's breaker. */
static void check_owner(const char *ctx, struct agent *a, const char *name)
{
	const struct agent_circuit *c = circuit_named(a, name);
	uint8_t addr[16] = { [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 1 };
	uint32_t id = ~0U;

	assert_int_equal(kb_bpf_get_dst(a->bpf, addr, 128, 80, 0, &id), 0);
	if (id != circuit_key_id(c, 0))
		fail_msg("%s: 10.0.0.1:80 leads to slot %u, not %s's (%u)", ctx, id, name,
			 circuit_key_id(c, 0));
}

/* agent_reload to yaml; the running config is dropped, the new one returned. */
static struct config *reload_to(struct agent *a, struct config *cur, const char *ctx, const char *yaml)
{
	struct config *next = parse(ctx, yaml);

	assert_int_equal(agent_reload(a, next, mono_now()), 0);
	drop(cur);
	return next;
}

/*
 * The literal outranks the name, at start and in a reload; the name takes
 * the address when the literal goes; and neither ever removes the other's
 * key (a reload that dropped one of them used to unplug the other). dup:
 * the name's line, one breaker or one per address.
 */
static void one_address_two_destinations(const char *dup)
{
	struct agent *a = calloc(1, sizeof(*a));
	char both[512], lit_first[512], only_dup[512];
	struct config *cfg;

	snprintf(both, sizeof(both), "%s%s%s", DUP_HEAD, dup, LIT);
	snprintf(lit_first, sizeof(lit_first), "%s%s%s", DUP_HEAD, LIT, dup);
	snprintf(only_dup, sizeof(only_dup), "%s%s", DUP_HEAD, dup);
	cfg = parse("both", both);
	assert_non_null(a);
	fake_names(dup_names, ARRAY_SIZE(dup_names));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, mono_now()), 0);
	check_owner("start, the name first", a, "lit");
	resolved_until("start: dup lets go", a, dup_let_go);
	check_owner("dup let go", a, "lit");
	check_maps("dup let go", a);

	cfg = reload_to(a, cfg, "lit removed", only_dup);
	resolved_until("lit removed: dup takes it", a, dup_took);
	check_owner("lit removed", a, "dup");
	check_maps("lit removed", a);

	cfg = reload_to(a, cfg, "lit back", both);
	check_owner("lit back", a, "lit");
	resolved_until("lit back: dup lets go", a, dup_let_go);
	check_maps("lit back", a);

	cfg = reload_to(a, cfg, "dup removed", DUP_HEAD LIT);
	check_owner("dup removed", a, "lit");
	check_maps("dup removed", a);

	cfg = reload_to(a, cfg, "lit first", lit_first);
	check_owner("lit first", a, "lit");
	resolved_until("lit first: dup has none", a, dup_let_go);
	check_maps("lit first", a);
	agent_fini(a);
	drop(cfg);
	free(a);
}

static void test_one_address_two_destinations(void **state)
{
	one_address_two_destinations(DUP);
}

static void test_one_address_per_address_name(void **state)
{
	one_address_two_destinations("  - { name: dup, host: dup.test, port: 80, per_address: true }\n");
}

/* --- a reload's names are the resolver thread's ----------------------------- */

static const struct fake_name bg_names[] = {
	{ "api.test", { "10.5.0.1" } },
	{ "pool.test", { "10.9.0.1", "10.9.0.2" } },
	{ "web.test", { "10.4.0.1" } },
};

#define PERSIST_DIR "state_dir: /sys/fs/bpf/kb-unit\n"
#define BG_HEAD "resolve_interval: 24h\nmax_destinations: 16\n" PERSIST_DIR \
	"defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1h }\n" \
	"destinations:\n" \
	"  - { name: lit, host: 10.0.0.1, port: 80 }\n" \
	"  - { name: api, host: api.test, port: 80 }\n"
#define POOL "  - { name: pool, host: pool.test, port: 8080, per_address: true }\n"
#define WEB "  - { name: web, host: web.test, port: 80 }\n"

static bool added_resolved(struct agent *a)
{
	return circuit_named(a, "pool")->n_addrs == 2 && circuit_named(a, "web")->n_addrs == 1;
}

static bool web_resolved(struct agent *a)
{
	return circuit_named(a, "web")->n_addrs == 1;
}

/*
 * A reload that adds names looks none up on the loop (found by review: one
 * lookup after another against a name server that did not answer froze
 * the loop: no ticks, no SIGTERM). They start with no address and no key,
 * first in the resolver's next round, and take its answers.
 */
static void test_reload_leaves_names_to_the_resolver(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct config *cfg = parse("config", BG_HEAD), *next = parse("reload", BG_HEAD POOL WEB);
	unsigned lookups;

	assert_non_null(a);
	fake_names(bg_names, ARRAY_SIZE(bg_names));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, mono_now()), 0);
	lookups = fake_lookups_here();
	assert_int_equal(agent_reload(a, next, mono_now()), 0);
	drop(cfg);
	check_eq("lookups on the loop", fake_lookups_here() - lookups, 0);
	check_eq("pool", circuit_named(a, "pool")->n_addrs, 0);
	check_eq("web", circuit_named(a, "web")->n_addrs, 0);
	check_eq("resolve errors", a->resolve_errors, 0);
	check_maps("reloaded", a);
	/* The names with no address first; api, known, after them. */
	check_eq("names followed", a->res.n_hosts, 3);
	check_str("first", a->res.hosts[0], "pool.test");
	check_str("second", a->res.hosts[1], "web.test");
	check_str("third", a->res.hosts[2], "api.test");

	resolved_until("answered", a, added_resolved);
	check_maps("answered", a);
	check_eq("resolve errors", a->resolve_errors, 0);
	agent_fini(a);
	drop(next);
	free(a);
}

static bool woken(struct agent *a)
{
	bool w;

	pthread_mutex_lock(&a->res.lock);
	w = a->res.woken;
	pthread_mutex_unlock(&a->res.lock);
	return w;
}

static size_t answers_waiting(struct agent *a)
{
	size_t n;

	pthread_mutex_lock(&a->res.lock);
	n = a->res.n_answers;
	pthread_mutex_unlock(&a->res.lock);
	return n;
}

/*
 * A reload while the last round's answers wait for the loop: its names are
 * looked up once the loop took them, not a resolve_interval (here 24 h)
 * later.
 */
static void test_reload_while_answers_wait(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct config *cfg = parse("config", BG_HEAD), *pool = parse("pool", BG_HEAD POOL),
		      *web = parse("web", BG_HEAD POOL WEB);

	assert_non_null(a);
	fake_names(bg_names, ARRAY_SIZE(bg_names));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, mono_now()), 0);
	assert_int_equal(agent_reload(a, pool, mono_now()), 0);
	drop(cfg);
	/* Its round over: both answers wait, the thread waits for the next round. */
	for (int i = 0; i < 30000 && answers_waiting(a) < 2; i++)
		usleep(1000);
	check_eq("answers waiting", answers_waiting(a), 2);
	assert_int_equal(agent_reload(a, web, mono_now()), 0);
	drop(pool);
	/* The thread has seen the reload's wake-up, with the answers still there. */
	for (int i = 0; i < 30000 && woken(a); i++)
		usleep(1000);
	check_eq("wake-up seen", woken(a), false);
	check_eq("web", circuit_named(a, "web")->n_addrs, 0);
	resolved_until("web's round", a, web_resolved);
	check_maps("answered", a);
	agent_fini(a);
	drop(web);
	free(a);
}

struct fini_job {
	struct agent *a;
	pthread_t thread;
};

static void *fini_thread(void *arg)
{
	struct fini_job *j = arg;

	agent_fini(j->a);
	return NULL;
}

/* Whether slot id's saved breaker has its one failure (a change no tick saved yet). */
static bool saved_failure(uint32_t id)
{
	return __atomic_load_n(&fake_maps.saved_used[id], __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&fake_maps.saved[id].br.consecutive_failures, __ATOMIC_ACQUIRE) == 1;
}

/*
 * agent_fini saves what changed before it waits for the resolver thread,
 * which may be in a lookup that takes seconds: a supervisor's SIGKILL
 * meanwhile loses nothing (found by review).
 */
static void test_fini_saves_first(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct config *cfg = parse("config", BG_HEAD), *next = parse("reload", BG_HEAD WEB);
	struct fini_job j = { .a = a };
	bool saved = false, waiting = true;
	uint32_t lit;
	uint64_t now = mono_now();

	assert_non_null(a);
	fake_names(bg_names, ARRAY_SIZE(bg_names));
	assert_int_equal(agent_init(a, cfg, fake_bpf_open(), 16, now), 0);
	lit = circuit_named(a, "lit")->slot;
	fake_event(lit, KB_RES_REFUSED, now);
	assert_int_equal(agent_drain(a, now), 0);	/* saved by the next tick, or at the end */
	check_eq("saved before the end", saved_failure(lit), false);
	fake_names_hold(true);
	assert_int_equal(agent_reload(a, next, mono_now()), 0);
	drop(cfg);
	for (int i = 0; i < 30000 && !fake_names_waiting(); i++)
		usleep(1000);
	check_eq("the resolver's lookup waits", fake_names_waiting(), 1);

	assert_int_equal(pthread_create(&j.thread, NULL, fini_thread, &j), 0);
	/* Saved seen first, the lookup still waiting after: saved while it waited. */
	for (int i = 0; i < 30000 && !saved && waiting; i++) {
		usleep(1000);
		saved = saved_failure(lit);
		waiting = fake_names_waiting() > 0;
	}
	fake_names_hold(false);
	pthread_join(j.thread, NULL);
	if (!saved || !waiting)
		fail_msg("lit's failure not saved while the resolver's lookup still waited");
	check_eq("saved at the end", saved_failure(lit), true);
	drop(next);
	free(a);
}

/* A failed test must not leave the next one's lookups waiting. */
static int release_names(void **state)
{
	fake_names_hold(false);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers_reach_the_loop),
		cmocka_unit_test(test_answer_for_a_dropped_name),
		cmocka_unit_test(test_one_address_two_destinations),
		cmocka_unit_test(test_one_address_per_address_name),
		cmocka_unit_test(test_member_counts_stay),
		cmocka_unit_test(test_reload_leaves_names_to_the_resolver),
		cmocka_unit_test(test_reload_while_answers_wait),
		cmocka_unit_test_teardown(test_fini_saves_first, release_names),
	};

	return cmocka_run_group_tests_name("agent_resolver", tests, NULL, NULL);
}
