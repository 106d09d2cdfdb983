// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * page_cache.c: below PAGES_LIVE every request renders; at the limit a
 * request is given the newest page of its kind, and renders only when its
 * kind has none, so no more than PAGES_LIVE + PAGE_KINDS - 1 pages are
 * ever alive; a page is freed with its last reference, and once every
 * response is done nothing is held, but for a HEAD's long render: given to
 * its kind's HEADs for as long again as it took, then let go, at the next
 * request or by page_cache_expire().
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

/*
 * A request for kind at now (ns), a HEAD or a GET: the page it is given,
 * rendering (and counting) one if it must, which takes took ns.
 */
static struct page_body *request_at(struct page_cache *c, enum page_kind kind, int *renders,
				    bool head, uint64_t now, uint64_t took)
{
	struct page_body *p = page_cache_get(c, kind, head, now);
	char *text;

	if (p)
		return p;
	(*renders)++;
	text = malloc(16);
	assert_non_null(text);
	snprintf(text, 16, "page %d", *renders);
	p = page_cache_add(c, kind, head, text, strlen(text), free_text, now, now + took);
	assert_non_null(p);
	return p;
}

/* The same for a render too quick to be held (below PAGE_SHARE_MIN_NS). */
static struct page_body *request(struct page_cache *c, enum page_kind kind, int *renders)
{
	return request_at(c, kind, renders, false, 0, PAGE_SHARE_MIN_NS - 1);
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
	assert_null(page_cache_get(&c, PAGE_METRICS, false, 0));
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

/*
 * A HEAD's long render (T ns) is given to every HEAD of its kind for T
 * after it, each done before the next: held by the cache meanwhile, and
 * let go after. A GET meanwhile renders (below the limit a GET's page is
 * never staler than its request); other kinds are not held back.
 */
static void test_a_long_render_is_shared_as_long_again(void **state)
{
	const uint64_t T = 70 * PAGE_SHARE_MIN_NS, t0 = 1000 * PAGE_SHARE_MIN_NS;
	struct page_body *p, *first, *st;
	struct page_cache c;
	int renders = 0;

	page_cache_init(&c);
	freed = 0;
	first = request_at(&c, PAGE_METRICS, &renders, true, t0, T);
	check_int("long render", first->refs, 2);	/* the response's and the cache's */
	page_body_put(first);
	check_int("held", freed, 0);
	check_int("held", c.live, 1);
	/* Until t0 + 2T (done at t0 + T, as long again): HEADs share it, never render. */
	for (uint64_t now = t0 + T; now < t0 + 2 * T; now += T / 7) {
		p = request_at(&c, PAGE_METRICS, &renders, true, now, T);
		assert_ptr_equal(p, first);
		page_body_put(p);
	}
	check_int("shared", renders, 1);
	/* A GET meanwhile renders its own, quick: not held, freed when done. */
	p = request_at(&c, PAGE_METRICS, &renders, false, t0 + T + 1, 10);
	check_int("GET", renders, 2);
	page_body_put(p);
	check_int("GET's page freed", freed, 1);
	/* Another kind renders its own meanwhile. */
	st = request_at(&c, PAGE_STATUS, &renders, true, t0 + T, 10);
	check_int("status", renders, 3);
	page_body_put(st);
	check_int("status not held", freed, 2);
	/* At t0 + 2T the window is over: the held page goes, the HEAD renders. */
	p = request_at(&c, PAGE_METRICS, &renders, true, t0 + 2 * T, 10);
	check_int("after", renders, 4);
	check_int("after: the old page freed", freed, 3);
	page_body_put(p);
	check_int("all done", c.live, 0);
	check_int("all done", freed, 4);
	/* A long render still held at the end is let go by fini. */
	p = request_at(&c, PAGE_OPENMETRICS, &renders, true, t0, T);
	page_body_put(p);
	check_int("held at the end", c.live, 1);
	page_cache_fini(&c);
	check_int("fini", freed, 5);
}

/*
 * A GET's long render is never held: a scrape leaves nothing behind, and
 * the HEAD after it renders. A page held for HEADs goes at
 * page_cache_expire() once its window is over, not before, and only the
 * cache's reference: a response still sending it keeps it.
 */
static void test_scrapes_leave_nothing_held(void **state)
{
	const uint64_t T = 50 * PAGE_SHARE_MIN_NS, t0 = 1000 * PAGE_SHARE_MIN_NS;
	struct page_body *p, *head, *get;
	struct page_cache c;
	int renders = 0;

	page_cache_init(&c);
	freed = 0;
	p = request_at(&c, PAGE_METRICS, &renders, false, t0, T);
	check_int("GET, long", p->refs, 1);
	page_body_put(p);
	check_int("GET's page freed", freed, 1);
	check_int("GET's page freed", c.live, 0);
	p = request_at(&c, PAGE_METRICS, &renders, true, t0 + T, 10);
	check_int("HEAD after it renders", renders, 2);
	page_body_put(p);
	check_int("quick HEAD not held", c.live, 0);

	/* Held for HEADs; a GET takes a reference to its own page meanwhile. */
	head = request_at(&c, PAGE_METRICS, &renders, true, t0 + 2 * T, T);
	page_body_put(head);
	get = request_at(&c, PAGE_STATUS, &renders, false, t0 + 2 * T, T);
	check_int("held", c.live, 2);
	page_cache_expire(&c, t0 + 4 * T - 1);
	check_int("window not over", c.live, 2);
	check_int("window not over", freed, 2);
	/* A HEAD still sending the held page when it expires keeps it. */
	p = request_at(&c, PAGE_METRICS, &renders, true, t0 + 4 * T - 1, 10);
	assert_ptr_equal(p, head);
	page_cache_expire(&c, t0 + 4 * T);
	check_int("expired, still sent", freed, 2);
	page_body_put(p);
	check_int("expired, sent", freed, 3);
	check_int("the GET's is its own", c.live, 1);
	page_body_put(get);
	check_int("all done", c.live, 0);
	check_int("all done", freed, 4);
	page_cache_expire(&c, t0 + 5 * T);
	page_cache_fini(&c);
	check_int("fini", freed, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_renders_below_the_limit),
		cmocka_unit_test(test_shares_the_newest_at_the_limit),
		cmocka_unit_test(test_a_failed_render_gives_its_room_back),
		cmocka_unit_test(test_a_long_render_is_shared_as_long_again),
		cmocka_unit_test(test_scrapes_leave_nothing_held),
	};

	return cmocka_run_group_tests_name("page_cache", tests, NULL, NULL);
}
