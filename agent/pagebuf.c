// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include "pagebuf.h"

/* The mapping starts with its own size, so the text alone is enough to free it. */
#define HEADER 64
#define HUGE_PAGE (2UL << 20)

static int grow(struct pagebuf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : HUGE_PAGE;
	char *p;

	while (cap < HEADER + need + 1)
		cap *= 2;
	if (cap == b->cap)
		return 0;
	p = b->base ? mremap(b->base, b->cap, cap, MREMAP_MAYMOVE)
		    : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Only advice: without THP the buffer still works, page by page. */
	madvise(p, cap, MADV_HUGEPAGE);
	b->base = p;
	b->cap = cap;
	b->data = p + HEADER;
	return 0;
}

static ssize_t pagebuf_write(void *cookie, const char *buf, size_t n)
{
	struct pagebuf *b = cookie;
	int err = grow(b, b->len + n);

	if (err) {
		errno = -err;
		return -1;
	}
	memcpy(b->data + b->len, buf, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

FILE *pagebuf_open(struct pagebuf *b)
{
	static const cookie_io_functions_t io = { .write = pagebuf_write };

	memset(b, 0, sizeof(*b));
	return fopencookie(b, "w", io);
}

char *pagebuf_take(struct pagebuf *b, size_t *len)
{
	char *text;

	if (!b->base && grow(b, 0))
		return NULL;
	memcpy(b->base, &b->cap, sizeof(b->cap));
	text = b->data;
	*len = b->len;
	memset(b, 0, sizeof(*b));
	return text;
}

void pagebuf_discard(struct pagebuf *b)
{
	if (b->base)
		munmap(b->base, b->cap);
	memset(b, 0, sizeof(*b));
}

void pagebuf_free(void *text)
{
	char *base;
	size_t cap;

	if (!text)
		return;
	base = (char *)text - HEADER;
	memcpy(&cap, base, sizeof(cap));
	munmap(base, cap);
}
