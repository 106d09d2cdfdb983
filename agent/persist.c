// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "persist.h"

_Static_assert(BS_MAX == 6 && KB_RES_MAX == 6, "persist_breaker's arrays");
_Static_assert(WINDOW_MAX_BUCKETS == 60 && (WINDOW_MAX_CALLS + 63) / 64 == 16, "persist_window");
_Static_assert(sizeof(struct persist_breaker) + sizeof(struct persist_retired) <=
	       sizeof(((struct persist_record *)0)->room), "persist_breaker outgrew its record");
_Static_assert(BS_MACHINE == 3, "persist_retired's transitions");
_Static_assert(sizeof(struct persist_record) == KB_SAVED_SIZE, "persist_record is kb_saved's value");

static void policy_encode(const struct breaker_policy *p, struct persist_policy *r)
{
	r->mode = p->mode;
	r->consecutive_failures = p->consecutive_failures;
	r->open_duration_ns = p->open_duration_ns;
	r->half_open_permits = p->half_open_permits;
	r->failure_rate_threshold = p->failure_rate_threshold;
	r->window_type = p->window_type;
	r->window_size = p->window_size;
	r->minimum_calls = p->minimum_calls;
	r->slow_call_rate_threshold = p->slow_call_rate_threshold;
	r->slow_call_duration_ns = p->slow_call_duration_ns;
	r->failures = p->failures;
	r->jitter_percent = p->jitter_percent;
	r->max_open_duration_ns = p->max_open_duration_ns;
	r->half_open_successes = p->half_open_successes;
	r->max_half_open_duration_ns = p->max_half_open_duration_ns;
	r->recovery_ramp_ns = p->recovery_ramp_ns;
}

static int policy_decode(const struct persist_policy *r, struct breaker_policy *p)
{
	if (r->mode > MODE_FORCED_OPEN || r->window_type > WINDOW_TIME)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->mode = r->mode;
	p->consecutive_failures = r->consecutive_failures;
	p->open_duration_ns = r->open_duration_ns;
	p->half_open_permits = r->half_open_permits;
	p->failure_rate_threshold = r->failure_rate_threshold;
	p->window_type = r->window_type;
	p->window_size = r->window_size;
	p->minimum_calls = r->minimum_calls;
	p->slow_call_rate_threshold = r->slow_call_rate_threshold;
	p->slow_call_duration_ns = r->slow_call_duration_ns;
	p->failures = r->failures;
	p->jitter_percent = r->jitter_percent;
	p->max_open_duration_ns = r->max_open_duration_ns;
	p->half_open_successes = r->half_open_successes;
	p->max_half_open_duration_ns = r->max_half_open_duration_ns;
	p->recovery_ramp_ns = r->recovery_ramp_ns;
	return 0;
}

static void counts_encode(const struct window_counts *c, __u32 r[3])
{
	r[0] = c->calls;
	r[1] = c->failures;
	r[2] = c->slow;
}

static void counts_decode(const __u32 r[3], struct window_counts *c)
{
	c->calls = r[0];
	c->failures = r[1];
	c->slow = r[2];
}

static void window_encode(const struct window *w, struct persist_window *r)
{
	r->type = w->type;
	r->size = w->size;
	r->pos = w->pos;
	r->n = w->n;
	counts_encode(&w->total, r->total);
	r->n_buckets = w->n_buckets;
	r->bucket_ns = w->bucket_ns;
	r->head = w->head;
	if (w->type == WINDOW_TIME) {
		for (int i = 0; i < WINDOW_MAX_BUCKETS; i++)
			counts_encode(&w->buckets[i], r->buckets[i]);
	} else {
		memcpy(r->fail_bits, w->fail_bits, sizeof(r->fail_bits));
		memcpy(r->slow_bits, w->slow_bits, sizeof(r->slow_bits));
	}
}

/* Only what window.c could have made: its indexes stay inside its arrays. */
static int window_decode(const struct persist_window *r, struct window *w)
{
	uint32_t max = r->type == WINDOW_COUNT ? WINDOW_MAX_CALLS : WINDOW_MAX_SECONDS;

	if (r->type > WINDOW_TIME || r->size > max || r->n > r->size ||
	    r->pos >= WINDOW_MAX_CALLS || r->n_buckets > WINDOW_MAX_BUCKETS ||
	    (r->type == WINDOW_TIME && r->size && (!r->n_buckets || !r->bucket_ns)))
		return -EINVAL;
	memset(w, 0, sizeof(*w));
	w->type = r->type;
	w->size = r->size;
	w->pos = r->pos;
	w->n = r->n;
	counts_decode(r->total, &w->total);
	w->n_buckets = r->n_buckets;
	w->bucket_ns = r->bucket_ns;
	w->head = r->head;
	/* window.c shares the room of the one type's data with the other's. */
	if (w->type == WINDOW_TIME) {
		for (int i = 0; i < WINDOW_MAX_BUCKETS; i++)
			counts_decode(r->buckets[i], &w->buckets[i]);
	} else {
		memcpy(w->fail_bits, r->fail_bits, sizeof(w->fail_bits));
		memcpy(w->slow_bits, r->slow_bits, sizeof(w->slow_bits));
	}
	return 0;
}

void persist_encode(const struct persist_state *st, const char *name, const char *host,
		    uint16_t port, uint32_t netns, struct persist_record *rec)
{
	const struct breaker *b = &st->br;
	struct persist_breaker *r = &rec->br;

	memset(rec, 0, sizeof(*rec));
	rec->version = PERSIST_VERSION;
	rec->size = sizeof(*r);
	snprintf(rec->name, sizeof(rec->name), "%s", name);
	snprintf(rec->host, sizeof(rec->host), "%s", host);
	rec->port = port;
	rec->netns = netns;
	policy_encode(&b->policy, &r->policy);
	r->state = b->state;
	r->cause = b->cause;
	r->consecutive_failures = b->consecutive_failures;
	r->probe_successes = b->probe_successes;
	r->open_streak = b->open_streak;
	r->ramp_step = b->ramp_step;
	r->state_since_ns = b->state_since_ns;
	r->open_until_ns = b->open_until_ns;
	r->half_open_until_ns = b->half_open_until_ns;
	r->ramp_until_ns = b->ramp_until_ns;
	r->rng = b->rng;
	r->denied_trips = b->denied_trips;
	for (int i = 0; i < BS_MACHINE; i++)
		for (int j = 0; j < BS_MACHINE; j++)
			r->transitions[i][j] = b->transitions[i][j];
	window_encode(&b->window, &r->window);
	memcpy(r->lost_seen, st->lost_seen, sizeof(r->lost_seen));
	r->resets_seen = st->resets_seen;
}

bool persist_matches(const struct persist_record *rec, const char *name, const char *host,
		     uint16_t port, uint32_t netns)
{
	return rec->port == port && rec->netns == netns &&
	       !strncmp(rec->name, name, sizeof(rec->name)) &&
	       !strncmp(rec->host, host, sizeof(rec->host));
}

int persist_decode(const struct persist_record *rec, struct persist_state *st)
{
	const struct persist_breaker *r = &rec->br;
	struct breaker *b = &st->br;

	if (rec->version != PERSIST_VERSION || rec->size != sizeof(*r))
		return -EPROTO;
	if ((r->state != BS_CLOSED && r->state != BS_OPEN && r->state != BS_HALF_OPEN) ||
	    r->cause > BC_HALF_OPEN_TIMEOUT || r->ramp_step >= BREAKER_RAMP_STEPS || !r->rng ||
	    rec->member > 1)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	if (policy_decode(&r->policy, &b->policy) || window_decode(&r->window, &b->window))
		return -EINVAL;
	b->state = r->state;
	b->cause = r->cause;
	b->consecutive_failures = r->consecutive_failures;
	b->probe_successes = r->probe_successes;
	b->open_streak = r->open_streak;
	b->ramp_step = r->ramp_step;
	b->state_since_ns = r->state_since_ns;
	b->open_until_ns = r->open_until_ns;
	b->half_open_until_ns = r->half_open_until_ns;
	b->ramp_until_ns = r->ramp_until_ns;
	b->rng = r->rng;
	b->denied_trips = r->denied_trips;
	for (int i = 0; i < BS_MACHINE; i++)
		for (int j = 0; j < BS_MACHINE; j++)
			b->transitions[i][j] = r->transitions[i][j];
	memcpy(st->lost_seen, r->lost_seen, sizeof(st->lost_seen));
	st->resets_seen = r->resets_seen;
	return 0;
}
