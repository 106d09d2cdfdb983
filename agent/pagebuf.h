/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pagebuf: a stdio stream into memory for pages of tens of MB (/metrics
 * of 10,000 destinations). Like open_memstream(), but the memory is its
 * own mapping, advised for transparent huge pages: filling 26 MB then
 * takes 13 page faults instead of 6,500, and freeing it gives all of it
 * back to the system at once.
 */
#ifndef KB_PAGEBUF_H
#define KB_PAGEBUF_H

#include <stddef.h>
#include <stdio.h>

struct pagebuf {
	char *data;		/* the text, after fclose() */
	size_t len;
	size_t cap;		/* bytes mapped for it, header included */
	char *base;
};

/* A stream writing into b (zeroed first). NULL with errno on failure. */
FILE *pagebuf_open(struct pagebuf *b);

/*
 * After fclose(): the text, NUL-terminated, and its length, for
 * pagebuf_free(); NULL when nothing could be mapped. b lets go of it.
 */
char *pagebuf_take(struct pagebuf *b, size_t *len);

/* Free text from pagebuf_take(); matches MHD_ContentReaderFreeCallback. */
void pagebuf_free(void *text);

/* After fclose(), instead of pagebuf_take(): unmap what was written. */
void pagebuf_discard(struct pagebuf *b);

#endif /* KB_PAGEBUF_H */
