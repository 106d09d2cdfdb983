/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http: the agent's HTTP endpoint, libmicrohttpd glue only. The server runs its
 * own threads (an acceptor, libmicrohttpd's); the body callback must be
 * thread-safe.
 */
#ifndef KB_HTTP_H
#define KB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a body function may need of the request. */
struct http_request {
	const char *accept;		/* the Accept header, or NULL */
	bool head;			/* a HEAD: the body's length is all that is sent */
	const char *content_type;	/* in: the route's; out: the answer's */
	void (*free_body)(void *owner);	/* out: how the body is freed once sent; NULL: free() */
	void *body_owner;		/* out: what free_body is given; NULL: the body itself */
};

/*
 * Produce a body (malloc'd, or set req->free_body). The server sends it
 * as it is, without a copy, and frees it once sent or once its response
 * deadline (30 s from the request's arrival) has cut the connection; a
 * body shared between responses is freed each time through its owner.
 * Returns the HTTP
 * status (200, 503, ...) or -errno, which the server answers with 500.
 */
typedef int (*http_body_fn)(void *ctx, struct http_request *req, char **body, size_t *len);

struct http_route {
	const char *path;		/* exact match */
	const char *content_type;
	http_body_fn body;
};

struct http_server;

/*
 * Bind and listen on host:port (IP literal): a taken or bad address is a
 * clear error here, not libmicrohttpd's NULL. Returns the fd or -errno,
 * logged here.
 */
int http_listen(const char *host, uint16_t port);

/*
 * Serve `routes` (n of them, kept by reference) with ctx on listening
 * socket fd, which the server then owns. GET and HEAD only. At most 64
 * connections: beyond that, one whose request has arrived whole evicts the
 * oldest still waiting for its request, and any other is closed at once, so
 * a flood cannot keep a scraper out. Returns 0 or -errno, logged here.
 */
int http_start(struct http_server **out, int fd, const struct http_route *routes, size_t n,
	       void *ctx);

/* Stop serving and free; safe on NULL. */
void http_stop(struct http_server *s);

#endif /* KB_HTTP_H */
