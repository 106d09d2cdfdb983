// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "resolve.h"

static int cmp_addr(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(kb_addr_t));
}

size_t resolve_sort_unique(kb_addr_t *addrs, size_t n)
{
	size_t out = 0;

	if (!n)
		return 0;
	qsort(addrs, n, sizeof(*addrs), cmp_addr);
	for (size_t i = 1; i < n; i++)
		if (memcmp(addrs[i], addrs[out], sizeof(kb_addr_t)))
			memcpy(addrs[++out], addrs[i], sizeof(kb_addr_t));
	return out + 1;
}

int resolve_name(const char *name, kb_addr_t **addrs, size_t *n)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	kb_addr_t *v;
	size_t count = 0;
	int err;

	err = getaddrinfo(name, NULL, &hints, &res);
	if (err)
		return err;
	for (ai = res; ai; ai = ai->ai_next)
		count++;
	v = calloc(count ? count : 1, sizeof(*v));
	if (!v) {
		freeaddrinfo(res);
		return EAI_MEMORY;
	}
	count = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ai->ai_addr;

			addr_from_v4(v[count++], &sin->sin_addr);
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ai->ai_addr;

			memcpy(v[count], &sin6->sin6_addr, 16);
			count++;
		}
	}
	freeaddrinfo(res);
	*addrs = v;
	*n = resolve_sort_unique(v, count);
	return 0;
}
