// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <string.h>
#include "window.h"

#define NS_PER_S 1000000000ULL

void window_init(struct window *w, enum window_type type, uint32_t size)
{
	uint32_t max = type == WINDOW_TIME ? WINDOW_MAX_SECONDS : WINDOW_MAX_CALLS;

	memset(w, 0, sizeof(*w));
	w->type = type;
	w->size = size > max ? max : size;
	if (type == WINDOW_TIME && w->size) {
		w->n_buckets = w->size < WINDOW_MAX_BUCKETS ? w->size : WINDOW_MAX_BUCKETS;
		w->bucket_ns = (uint64_t)w->size * NS_PER_S / w->n_buckets;
	}
}

void window_reset(struct window *w)
{
	window_init(w, w->type, w->size);
}

static bool bit(const uint64_t *bits, uint32_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

static void set_bit(uint64_t *bits, uint32_t i, bool on)
{
	if (on)
		bits[i / 64] |= 1ULL << (i % 64);
	else
		bits[i / 64] &= ~(1ULL << (i % 64));
}

static void count_add(struct window *w, bool failure, bool slow)
{
	if (w->n == w->size) {
		/* Full: the oldest call, in the slot about to be reused, leaves. */
		w->total.calls--;
		w->total.failures -= bit(w->fail_bits, w->pos);
		w->total.slow -= bit(w->slow_bits, w->pos);
	} else {
		w->n++;
	}
	set_bit(w->fail_bits, w->pos, failure);
	set_bit(w->slow_bits, w->pos, slow);
	w->total.calls++;
	w->total.failures += failure;
	w->total.slow += slow;
	w->pos = (w->pos + 1) % w->size;
}

static void time_add(struct window *w, bool failure, bool slow, uint64_t now)
{
	uint64_t e = now / w->bucket_ns, i;
	struct window_counts *c;

	if (e > w->head) {
		/* Empty the buckets the clock moved past: at most all of them. */
		for (i = w->head + 1; i <= e && i <= w->head + w->n_buckets; i++)
			memset(&w->buckets[i % w->n_buckets], 0, sizeof(w->buckets[0]));
		w->head = e;
	} else if (e + w->n_buckets <= w->head) {
		return;	/* older than the oldest bucket */
	}
	c = &w->buckets[e % w->n_buckets];
	c->calls++;
	c->failures += failure;
	c->slow += slow;
}

void window_add(struct window *w, bool failure, bool slow, uint64_t now)
{
	if (!w->size)
		return;
	if (w->type == WINDOW_TIME)
		time_add(w, failure, slow, now);
	else
		count_add(w, failure, slow);
}

struct window_counts window_counts(const struct window *w, uint64_t now)
{
	struct window_counts sum = { 0 };
	uint64_t e, i;

	if (!w->size)
		return sum;
	if (w->type != WINDOW_TIME)
		return w->total;
	/* Buckets head - n + 1 .. head hold data; those within n of now's bucket count. */
	e = now / w->bucket_ns;
	for (i = 0; i < w->n_buckets && i <= w->head; i++) {
		uint64_t b = w->head - i;
		const struct window_counts *c = &w->buckets[b % w->n_buckets];

		if (b > e || b + w->n_buckets <= e)
			continue;
		sum.calls += c->calls;
		sum.failures += c->failures;
		sum.slow += c->slow;
	}
	return sum;
}
