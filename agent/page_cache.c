// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdlib.h>
#include "page_cache.h"

void page_cache_init(struct page_cache *c)
{
	pthread_mutex_init(&c->lock, NULL);
	c->live = 0;
	c->pages = NULL;
}

void page_cache_fini(struct page_cache *c)
{
	pthread_mutex_destroy(&c->lock);
}

struct page_body *page_cache_get(struct page_cache *c, enum page_kind kind)
{
	struct page_body *p;

	pthread_mutex_lock(&c->lock);
	for (p = c->pages; p && p->kind != kind; p = p->next)
		;
	if (c->live >= PAGES_LIVE && p)
		p->refs++;
	else
		c->live++, p = NULL;	/* room for the page the caller renders */
	pthread_mutex_unlock(&c->lock);
	return p;
}

void page_cache_cancel(struct page_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->live--;
	pthread_mutex_unlock(&c->lock);
}

struct page_body *page_cache_add(struct page_cache *c, enum page_kind kind, char *text, size_t len,
				 void (*free_text)(void *text))
{
	struct page_body *p = malloc(sizeof(*p));

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
	pthread_mutex_unlock(&c->lock);
	return p;
}

void page_body_put(void *page)
{
	struct page_body *p = page, **pp;
	struct page_cache *c;

	if (!p)
		return;
	c = p->cache;
	pthread_mutex_lock(&c->lock);
	if (--p->refs) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	for (pp = &c->pages; *pp != p; pp = &(*pp)->next)
		;
	*pp = p->next;
	c->live--;
	pthread_mutex_unlock(&c->lock);
	/* Unmapping tens of MB is no work for under the lock. */
	p->free_text((char *)p->text);
	free(p);
}
