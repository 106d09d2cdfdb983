// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What the unit tests of the running agent share (agent_test.h). */
#include <poll.h>
#include <pthread.h>
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

#include "agent_test.h"
#include "fakes.h"
#include "http.h"

uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

struct config *parse(const char *ctx, const char *yaml)
{
	struct config *cfg = malloc(sizeof(*cfg));
	char err[CONFIG_ERR_MAX];

	assert_non_null(cfg);
	config_init(cfg);
	if (config_parse(cfg, "test.yaml", yaml, strlen(yaml), err, sizeof(err)))
		fail_msg("%s: %s", ctx, err);
	/* What config_load() finds with stat(): an inode per namespace file. */
	for (size_t i = 0; i < cfg->n_dsts; i++)
		if (cfg->dsts[i].netns[0])
			cfg->dsts[i].netns_ino = 4026530000u + (uint32_t)strlen(cfg->dsts[i].netns);
	return cfg;
}

void drop(struct config *cfg)
{
	config_free(cfg);
	free(cfg);
}

const struct agent_circuit *circuit_named(const struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->n_circuits; i++)
		if (!strcmp(a->circuits[i].cfg->name, name))
			return &a->circuits[i];
	return NULL;
}

bool is_grouped(const struct agent_circuit *c)
{
	return c->cfg->per_address && c->cfg->host_kind == HOST_NAME;
}

/* The body of an http_body_fn, checked and owned by the caller. */
int page_body(struct agent *a, int (*fn)(void *, struct http_request *, char **, size_t *),
	      char **body)
{
	struct http_request req = { 0 };
	size_t len = 0;
	char *raw = NULL;
	int status = fn(a, &req, &raw, &len);

	/* As the server does: the body is freed the producer's way, once sent. */
	*body = raw ? strndup(raw, len) : NULL;
	assert_true(!raw || *body);
	if (req.free_body)
		req.free_body(req.body_owner ? req.body_owner : raw);
	else
		free(raw);
	return status;
}

struct page_job {
	struct agent *a;
	int (*fn)(void *, struct http_request *, char **, size_t *);
	char *body;
	int status;
	bool done;		/* atomic */
};

static void *page_thread(void *arg)
{
	struct page_job *j = arg;

	j->status = page_body(j->a, j->fn, &j->body);
	__atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * As kbreakerd serves a page: the HTTP thread asks, this thread (the loop)
 * folds the snapshot when the eventfd says so.
 */
char *render(const char *ctx, struct agent *a,
	     int (*fn)(void *, struct http_request *, char **, size_t *))
{
	struct page_job j = { .a = a, .fn = fn };
	struct pollfd p = { .fd = agent_snapshot_fd(a), .events = POLLIN };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, page_thread, &j), 0);
	for (int i = 0; i < 300 && !__atomic_load_n(&j.done, __ATOMIC_ACQUIRE); i++)
		if (poll(&p, 1, 100) == 1)
			assert_int_equal(agent_publish(a, mono_now()), 0);
	pthread_join(t, NULL);
	if (j.status != 200)
		fail_msg("%s: rendering failed (%d)", ctx, j.status);
	return j.body;
}

/* Number of keys of the agent's circuits that map to the slot the agent gave them. */
static size_t check_keys(const char *ctx, const struct agent *a)
{
	struct fake_key k;
	size_t n = 0;

	for (size_t i = 0; i < a->n_circuits; i++) {
		const struct agent_circuit *c = &a->circuits[i];
		bool name = c->cfg->host_kind == HOST_NAME;

		for (size_t m = 0; m < (name ? c->n_addrs : 1); m++) {
			bool found = false;

			memset(&k, 0, sizeof(k));
			memcpy(k.addr, name ? c->addrs[m] : c->cfg->addr, 16);
			k.prefix_len = name ? 128 : c->cfg->prefix_len;
			k.port = c->cfg->port;
			k.netns = c->cfg->netns_ino;
			k.id = is_grouped(c) ? c->members[m] :
			       c->slot | (c->n_wl ? KB_ID_PER_WORKLOAD : 0);
			for (size_t j = 0; j < fake_maps.n_keys && !found; j++)
				found = !memcmp(&fake_maps.keys[j], &k, sizeof(k));
			if (!found)
				fail_msg("%s: no key of %s for address %zu to slot %u", ctx, c->cfg->name,
					 m, k.id);
			n++;
		}
	}
	return n;
}

/*
 * The maps hold exactly the agent's keys, and each breaker's verdict; no
 * saved breaker is left for a slot not in use (a restart would take it back).
 */
void check_maps(const char *ctx, const struct agent *a)
{
	check_eq(ctx, fake_maps.n_keys, check_keys(ctx, a));
	for (size_t id = 0; id < a->n_slots; id++) {
		const struct agent_slot *s = &a->slots[id];
		struct kb_verdict want, got = fake_maps.verdicts[id];

		if (!s->used) {
			check_eq(ctx, got.action, KB_ACT_ALLOW);
			if (fake_maps.saved_used[id])
				fail_msg("%s: a saved breaker in slot %zu, not in use", ctx, id);
			continue;
		}
		breaker_verdict(&s->br, &want);
		if (is_grouped(&a->circuits[s->circuit]) ||
		    (a->circuits[s->circuit].n_wl && a->circuits[s->circuit].cfg->max_open_percent < 100)) {
			want.trip_after = 0;
			want.wake_mask |= want.fail_mask & ~KB_RESETS_FAIL;
			want.events = 1;
		}
		check_eq(ctx, got.gen != 0, true);
		want.gen = got.gen;
		if (memcmp(&want, &got, sizeof(want)))
			fail_msg("%s: kb_verdicts[%zu] of %s is not its breaker's verdict", ctx, id,
				 a->circuits[s->circuit].cfg->name);
		check_eq(ctx, s->events, got.events);
	}
}

void wait_answers(const char *ctx, struct agent *a)
{
	struct pollfd p = { .fd = agent_resolver_fd(a), .events = POLLIN };

	if (poll(&p, 1, 30000) != 1)
		fail_msg("%s: no answer from the resolver in 30 s", ctx);
}
