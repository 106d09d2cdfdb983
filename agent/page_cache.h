/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * page_cache: the rendered pages (/metrics, /status) still being sent, and
 * how many may be. A page of 10,000 destinations is tens of MB and is held
 * until its client has taken all of it, so clients that read slowly could
 * each hold one: at most PAGES_LIVE are rendered and held at once; a
 * request beyond that is given the newest page of its kind already
 * rendered, shared, and renders only if there is none. Below the limit
 * every request renders, but a HEAD after a HEAD's long render of its
 * kind: for as long again after it, a HEAD is given that page, held by
 * the cache meanwhile. A HEAD's page is freed at once (no body to send),
 * so without it every HEAD would render, each in turn on the one HTTP
 * thread, with /healthz queued behind them; now HEADs render each kind at
 * most half of the time. A GET's page is held while it is sent, so GETs
 * reach the limit instead, and below it a GET's page is never staler than
 * its request; nor is a GET's or a cheap page ever held, so scrapes leave
 * nothing behind. A held page goes at the next request of its kind after
 * its window, or at page_cache_expire(). Pure bookkeeping under a mutex,
 * no I/O, no clock: the caller passes the times.
 */
#ifndef KB_PAGE_CACHE_H
#define KB_PAGE_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rendered pages held at once before requests share them. */
#define PAGES_LIVE 4

/* A render at least this long is shared for as long again after it. */
#define PAGE_SHARE_MIN_NS 1000000ULL

/* What a page is; a request is only ever given a page of its own kind. */
enum page_kind {
	PAGE_METRICS,		/* /metrics, Prometheus text */
	PAGE_OPENMETRICS,	/* /metrics, OpenMetrics */
	PAGE_STATUS,		/* /status */
	PAGE_KINDS
};

struct page_cache;

/* A rendered page, shared by the responses sending it. */
struct page_body {
	const char *text;
	size_t len;
	/* Below: the cache's, under its lock. */
	struct page_cache *cache;
	struct page_body *next;		/* the cache's list of live pages, newest first */
	void (*free_text)(void *text);
	enum page_kind kind;
	unsigned refs;
};

/*
 * With one renderer at a time (libmicrohttpd's one thread), at most
 * PAGES_LIVE + PAGE_KINDS - 1 pages are alive: at the limit, only a kind
 * with none alive renders one (a page the cache holds counts as alive).
 */
struct page_cache {
	pthread_mutex_t lock;
	unsigned live;			/* pages alive or being rendered */
	struct page_body *pages;	/* those alive, newest first */
	/* Each kind's last long render: a reference of the cache's, shared until then. */
	struct page_body *recent[PAGE_KINDS];
	uint64_t share_until_ns[PAGE_KINDS];
};

void page_cache_init(struct page_cache *c);

/* Once every response's page is released; lets go of the cache's own. */
void page_cache_fini(struct page_cache *c);

/*
 * A page of kind to send for a request at now (a monotonic clock, ns), a
 * HEAD or not, or NULL: render one, then page_cache_add() it (or page_cache_cancel() if
 * that failed). A page returned is the caller's reference, for
 * page_body_put().
 */
struct page_body *page_cache_get(struct page_cache *c, enum page_kind kind, bool head,
				 uint64_t now);

/*
 * The page rendered after page_cache_get() returned NULL, for a HEAD or
 * not, begun at started and done at now: text (len bytes, freed with
 * free_text) becomes a page with one reference, the caller's. NULL if out
 * of memory: text is freed, and the room given back.
 */
struct page_body *page_cache_add(struct page_cache *c, enum page_kind kind, bool head, char *text,
				 size_t len, void (*free_text)(void *text), uint64_t started,
				 uint64_t now);

/*
 * Let go of the pages held for HEADs whose window is over at now, so an
 * agent that is asked nothing more does not keep tens of MB (called from
 * the agent's poll).
 */
void page_cache_expire(struct page_cache *c, uint64_t now);

/* Rendering failed after page_cache_get() returned NULL: give its room back. */
void page_cache_cancel(struct page_cache *c);

/* Drop a reference to a page (struct page_body *); the last frees it. */
void page_body_put(void *page);

#endif /* KB_PAGE_CACHE_H */
