/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http: the metrics endpoint, libmicrohttpd glue only. The server runs its
 * own thread; the body callback must be thread-safe.
 */
#ifndef KB_HTTP_H
#define KB_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Produce a malloc'd body for /metrics. Returns 0 or -errno. */
typedef int (*http_body_fn)(void *ctx, char **body, size_t *len);

struct http_server;

/* Bind host:port (IP literal) and serve. Returns 0 or -errno, logged here. */
int http_start(struct http_server **out, const char *host, uint16_t port,
	       http_body_fn metrics, void *ctx);

/* Stop serving and free; safe on NULL. */
void http_stop(struct http_server *s);

#endif /* KB_HTTP_H */
