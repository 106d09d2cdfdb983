// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdbool.h>
#include <stdlib.h>
#include "page_cache.h"

void page_cache_init(struct page_cache *c)
{
	*c = (struct page_cache){ 0 };
	pthread_mutex_init(&c->lock, NULL);
}

/* Drop a reference under c's lock; the page to free once unlocked, or NULL. */
static struct page_body *put_locked(struct page_cache *c, struct page_body *p)
{
	struct page_body **pp;

	if (--p->refs)
		return NULL;
	for (pp = &c->pages; *pp != p; pp = &(*pp)->next)
		;
	*pp = p->next;
	c->live--;
	return p;
}

static void page_free(struct page_body *p)
{
	if (!p)
		return;
	/* Unmapping tens of MB is no work for under the lock. */
	p->free_text((char *)p->text);
	free(p);
}

/* Let go of the page the cache holds for kind, under c's lock; as put_locked(). */
static struct page_body *let_go_locked(struct page_cache *c, enum page_kind kind)
{
	struct page_body *p = c->recent[kind];

	c->recent[kind] = NULL;
	return p ? put_locked(c, p) : NULL;
}

void page_cache_fini(struct page_cache *c)
{
	struct page_body *gone[PAGE_KINDS];

	pthread_mutex_lock(&c->lock);
	for (int k = 0; k < PAGE_KINDS; k++)
		gone[k] = let_go_locked(c, (enum page_kind)k);
	pthread_mutex_unlock(&c->lock);
	for (int k = 0; k < PAGE_KINDS; k++)
		page_free(gone[k]);
	pthread_mutex_destroy(&c->lock);
}

struct page_body *page_cache_get(struct page_cache *c, enum page_kind kind, bool head, uint64_t now)
{
	struct page_body *p, *gone = NULL;

	pthread_mutex_lock(&c->lock);
	p = c->recent[kind];
	if (p && now < c->share_until_ns[kind]) {
		if (head) {
			p->refs++;
			pthread_mutex_unlock(&c->lock);
			return p;
		}
	} else if (p) {
		gone = let_go_locked(c, kind);
	}
	for (p = c->pages; p && p->kind != kind; p = p->next)
		;
	if (c->live >= PAGES_LIVE && p)
		p->refs++;
	else
		c->live++, p = NULL;	/* room for the page the caller renders */
	pthread_mutex_unlock(&c->lock);
	page_free(gone);
	return p;
}

void page_cache_expire(struct page_cache *c, uint64_t now)
{
	struct page_body *gone[PAGE_KINDS] = { 0 };

	pthread_mutex_lock(&c->lock);
	for (int k = 0; k < PAGE_KINDS; k++)
		if (c->recent[k] && now >= c->share_until_ns[k])
			gone[k] = let_go_locked(c, (enum page_kind)k);
	pthread_mutex_unlock(&c->lock);
	for (int k = 0; k < PAGE_KINDS; k++)
		page_free(gone[k]);
}

void page_cache_cancel(struct page_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->live--;
	pthread_mutex_unlock(&c->lock);
}

struct page_body *page_cache_add(struct page_cache *c, enum page_kind kind, bool head, char *text,
				 size_t len, void (*free_text)(void *text), uint64_t started,
				 uint64_t now)
{
	struct page_body *p = malloc(sizeof(*p)), *gone = NULL;
	uint64_t took = now > started ? now - started : 0;

	if (!p) {
		free_text(text);
		page_cache_cancel(c);
		return NULL;
	}
	*p = (struct page_body){ .text = text, .len = len, .cache = c, .free_text = free_text,
				 .kind = kind, .refs = 1 };
	pthread_mutex_lock(&c->lock);
	p->next = c->pages;
	c->pages = p;
	if (head && took >= PAGE_SHARE_MIN_NS) {
		gone = let_go_locked(c, kind);
		c->recent[kind] = p;
		p->refs++;
		c->share_until_ns[kind] = now + took;
	}
	pthread_mutex_unlock(&c->lock);
	page_free(gone);
	return p;
}

void page_body_put(void *page)
{
	struct page_body *p = page, *gone;
	struct page_cache *c;

	if (!p)
		return;
	c = p->cache;
	pthread_mutex_lock(&c->lock);
	gone = put_locked(c, p);
	pthread_mutex_unlock(&c->lock);
	page_free(gone);
}
