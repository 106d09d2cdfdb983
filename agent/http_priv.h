/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http_priv: what http.c (the libmicrohttpd glue: listen, start, stop,
 * routes) and http_admit.c (connection admission, the pen and the acceptor
 * thread) share. Nothing outside those two includes it.
 */
#ifndef KB_HTTP_PRIV_H
#define KB_HTTP_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <microhttpd.h>
#include "http.h"

/* Connections served at once; see "Admission" in http_admit.c for the rest. */
#define HTTP_MAX_CONNECTIONS 64
/*
 * libmicrohttpd's own limit, never reached: room for the evicted ones it is
 * closing. Under 0.9.75's epoll batch (128 events): given a full batch, it
 * waits again, with its whole timeout (up to HTTP_IDLE_TIMEOUT_S), before
 * acting on any of it, and with every entry taken nothing wakes it. Its
 * epoll set holds these and its wake-up descriptor, so 126 never fill a batch.
 */
#define HTTP_MHD_EPOLL_BATCH 128
#define HTTP_MHD_CONNECTIONS (HTTP_MHD_EPOLL_BATCH - 2)
/*
 * The limit libmicrohttpd is given. It counts a connection until it has
 * cleaned it up, after telling us of its close (which frees the entry): at
 * HTTP_MHD_CONNECTIONS it would refuse, and close, a request just admitted.
 */
#define HTTP_MHD_LIMIT (HTTP_MHD_CONNECTIONS + HTTP_MAX_CONNECTIONS)
/*
 * The pen: connections held at most. Each costs a descriptor and a
 * socket's kernel memory, its receive buffer cut to HTTP_PEEK_BYTES; the
 * descriptor limit is raised to fit (see http_pen_capacity).
 */
#define HTTP_PARK_MAX 1024
/*
 * An answer's bytes the kernel holds for a client not reading them, per
 * connection (SO_SNDBUF; the kernel doubles it). Left to autotuning it
 * reaches tcp_wmem's maximum, 4 MiB by default: 64 slow readers would pin
 * 256 MiB. 512 KiB in flight still fills a 1 ms path at 500 MB/s.
 */
#define HTTP_SNDBUF (256 * 1024)

struct http_conn {
	bool used;
	bool started;		/* libmicrohttpd has taken it up */
	bool shut;		/* shut down by us: libmicrohttpd is closing it */
	bool answering;		/* its request is complete and being answered */
	int fd;
	unsigned long long age;	/* order of its start or last answer: lower is older */
	long long added_ms;
	long long deadline_ms;	/* its request, or while answering its response, must be done by then */
	dev_t dev;		/* which socket fd is: checked before a shutdown */
	ino_t ino;
};

/* A connection in the pen; fd -1 once it has left out of turn. */
struct http_parked {
	int fd;
	bool whole;		/* its request is whole: it waits for an entry, in turn */
	long long deadline_ms;	/* its request must be whole by then to be served */
};

/*
 * epoll tags in the acceptor: the stop signal, the listen socket, an entry
 * freed, then pen slot i as EV_PEN + i.
 */
enum { EV_STOP, EV_LISTEN, EV_FREED, EV_PEN };

struct http_server {
	struct MHD_Daemon *daemon;
	const struct http_route *routes;
	size_t n_routes;
	void *ctx;
	int listen_fd;
	int stop_fd;			/* eventfd: the acceptor ends when it is readable */
	int freed_fd;			/* eventfd: an entry is free (a connection closed, or dropped unstarted) */
	int epoll_fd;			/* the acceptor's: stop_fd, listen_fd, the pen */
	pthread_t acceptor;
	bool acceptor_running;
	/* The pen, a ring in the order of arrival: the acceptor's alone. */
	struct http_parked *pen;
	unsigned pen_cap, pen_head, pen_len;
	unsigned pen_whole;		/* of those, how many have their request whole */
	pthread_mutex_t lock;		/* everything below */
	unsigned long long next_age;
	/* Since the last report: connections put in the pen, closed unserved, evicted. */
	unsigned long long parked, dropped, evicted;
	/* One per connection libmicrohttpd may hold: admit() hands it no more. */
	struct http_conn conns[HTTP_MHD_CONNECTIONS];
};

#define CONNS_END(s) ((s)->conns + HTTP_MHD_CONNECTIONS)
/* The acceptor thread (arg: the server): accepts, admits, holds; ends at stop_fd. */
void *http_acceptor_main(void *arg);

/*
 * How many connections the pen may hold, raising the descriptor limit to
 * make room where it can; 0 if there is none.
 */
unsigned http_pen_capacity(void);

/* Close the pen's oldest connection (or skip its empty slot); the pen must not be empty. */
void http_pen_drop_oldest(struct http_server *s);

/* MHD_NotifyConnectionCallback (cls: the server): track starts and closes. */
void http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			enum MHD_ConnectionNotificationCode code);

/* MHD_RequestCompletedCallback (cls: the server): the connection waits for its next request. */
void http_on_completed(void *cls, struct MHD_Connection *conn, void **req_ctx,
		       enum MHD_RequestTerminationCode toe);

/* A request on conn has arrived whole and is being answered: eviction passes it over. */
void http_mark_answering(struct http_server *s, struct MHD_Connection *conn);

#endif /* KB_HTTP_PRIV_H */
