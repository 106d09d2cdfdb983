// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * page_cache.c: below PAGES_LIVE every request renders; at the limit a
 * request is given the newest page of its kind, and renders only when its
 * kind has none, so no more than PAGES_LIVE + PAGE_KINDS - 1 pages are
 * ever alive; a page is freed with its last reference, and once every
 * response is done nothing is held.
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

#include "page_cache.h"

static int freed;

static void free_text(void *text)
{
	freed++;
	free(text);
}

/* A request for kind: the page it is given, rendering (and counting) one if it must. */
static struct page_body *request(struct page_cache *c, enum page_kind kind, int *renders)
{
	struct page_body *p = page_cache_get(c, kind);
	char *text;

	if (p)
		return p;
	(*renders)++;
	text = malloc(16);
	assert_non_null(text);
	snprintf(text, 16, "page %d", *renders);
	p = page_cache_add(c, kind, text, strlen(text), free_text);
	assert_non_null(p);
	return p;
}

static void test_renders_below_the_limit(void **state)
{
	struct page_cache c;
	struct page_body *held[PAGES_LIVE];
	int renders = 0;

	page_cache_init(&c);
	freed = 0;
	/* A response done before the next request: each one renders, none is shared. */
	for (int i = 0; i < 3 * PAGES_LIVE; i++) {
		struct page_body *p = request(&c, PAGE_METRICS, &renders);

		check_int("sequential", renders, i + 1);
		page_body_put(p);
	}
	check_int("sequential", freed, 3 * PAGES_LIVE);
	/* Held at once: the first PAGES_LIVE render, each its own page. */
	for (int i = 0; i < PAGES_LIVE; i++)
		held[i] = request(&c, PAGE_METRICS, &renders);
	check_int("held", renders, 3 * PAGES_LIVE + PAGES_LIVE);
	for (int i = 1; i < PAGES_LIVE; i++)
		assert_ptr_not_equal(held[i], held[i - 1]);
	for (int i = 0; i < PAGES_LIVE; i++)
		page_body_put(held[i]);
	check_int("all done", c.live, 0);
	assert_null(c.pages);
	page_cache_fini(&c);
}

static void test_shares_the_newest_at_the_limit(void **state)
{
	struct page_cache c;
	struct page_body *held[PAGES_LIVE], *p, *st, *st2, *om, *om2;
	int renders = 0;

	page_cache_init(&c);
	freed = 0;
	for (int i = 0; i < PAGES_LIVE; i++)
		held[i] = request(&c, PAGE_METRICS, &renders);
	/* At the limit: the newest of its kind, shared, not rendered. */
	for (int i = 0; i < 10; i++) {
		p = request(&c, PAGE_METRICS, &renders);
		assert_ptr_equal(p, held[PAGES_LIVE - 1]);
		check_int("shared", p->refs, 2);
		page_body_put(p);
	}
	check_int("shared", renders, PAGES_LIVE);
	/* Another kind with none alive renders, once; then it is shared too. */
	st = request(&c, PAGE_STATUS, &renders);
	check_int("status", renders, PAGES_LIVE + 1);
	st2 = request(&c, PAGE_STATUS, &renders);
	assert_ptr_equal(st2, st);
	om = request(&c, PAGE_OPENMETRICS, &renders);
	om2 = request(&c, PAGE_OPENMETRICS, &renders);
	assert_ptr_equal(om2, om);
	check_int("every kind", renders, PAGES_LIVE + 2);
	check_int("every kind", c.live, PAGES_LIVE + PAGE_KINDS - 1);
	/* The newest page goes while older ones of its kind stay: the next newest is given. */
	page_body_put(held[PAGES_LIVE - 1]);
	check_int("newest gone", freed, 1);
	p = request(&c, PAGE_METRICS, &renders);
	assert_ptr_equal(p, held[PAGES_LIVE - 2]);
	page_body_put(p);
	/* Still at the limit (3 + 1 + 1 + the shared ones): no render. */
	check_int("newest gone", renders, PAGES_LIVE + 2);
	/* The pages go with their last reference; below the limit requests render again. */
	page_body_put(st);
	page_body_put(st2);
	page_body_put(om2);
	page_body_put(om);
	for (int i = 0; i < PAGES_LIVE - 1; i++)
		page_body_put(held[i]);
	check_int("all done", c.live, 0);
	check_int("all done", freed, PAGES_LIVE + 2);
	p = request(&c, PAGE_METRICS, &renders);
	check_int("fresh", renders, PAGES_LIVE + 3);
	page_body_put(p);
	page_cache_fini(&c);
}

static void test_a_failed_render_gives_its_room_back(void **state)
{
	struct page_cache c;
	struct page_body *held[PAGES_LIVE];
	int renders = 0;

	page_cache_init(&c);
	for (int i = 0; i < PAGES_LIVE - 1; i++)
		held[i] = request(&c, PAGE_METRICS, &renders);
	/* The last room: taken by a render that fails, then given back. */
	assert_null(page_cache_get(&c, PAGE_METRICS));
	check_int("rendering", c.live, PAGES_LIVE);
	page_cache_cancel(&c);
	check_int("cancelled", c.live, PAGES_LIVE - 1);
	held[PAGES_LIVE - 1] = request(&c, PAGE_METRICS, &renders);
	check_int("rendered instead", renders, PAGES_LIVE);
	for (int i = 0; i < PAGES_LIVE; i++)
		page_body_put(held[i]);
	check_int("all done", c.live, 0);
	page_cache_fini(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_renders_below_the_limit),
		cmocka_unit_test(test_shares_the_newest_at_the_limit),
		cmocka_unit_test(test_a_failed_render_gives_its_room_back),
	};

	return cmocka_run_group_tests_name("page_cache", tests, NULL, NULL);
}
