/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * resolve: a DNS name to the set of its TCP addresses (IPv4 and IPv6),
 * normalised to the 16-byte IPv4-mapped form, sorted, without duplicates.
 * Blocking: called from the resolver thread, and from the event loop only
 * at start, before it serves (resolve_on_loop, seen by the beat).
 */
#ifndef KB_RESOLVE_H
#define KB_RESOLVE_H

#include <stddef.h>
#include "addr.h"

/*
 * Resolve name into a malloc'd array *addrs of *n addresses. Returns 0 or
 * an EAI_* code (negative in glibc), which gai_strerror() explains.
 */
int resolve_name(const char *name, kb_addr_t **addrs, size_t *n);

/* Sort and drop duplicates in place; returns the new count. */
size_t resolve_sort_unique(kb_addr_t *addrs, size_t n);

#endif /* KB_RESOLVE_H */
