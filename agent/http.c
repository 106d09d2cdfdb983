// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <microhttpd.h>
#include "http.h"
#include "log.h"

/*
 * Admission. The server accepts connections itself and hands them to
 * libmicrohttpd (MHD_add_connection), so that it can look at each one first.
 * Up to HTTP_MAX_CONNECTIONS are served. Beyond that, a connection whose
 * request has arrived whole is always admitted and the oldest connection
 * still waiting for its request is shut down to make room (evict_one); any
 * other new connection goes to the pen: held, unread, until its request is
 * whole (then admitted, if within the request deadline), its client gives
 * up or the pen is full (then the oldest there is closed). A scraper sends
 * its request as it connects, so a flood, however many connections it holds
 * and from whichever address, never keeps it out; and a flood that reopens
 * what it loses finds nothing to reopen while the pen holds it, so it cannot
 * keep the server busy either. (Closing held connections after a while
 * would only make a flood reopen them all at once, again and again.) No
 * per-address limit: a local flood comes from 127.0.0.1 like the scraper,
 * and such a limit would turn the scraper away.
 */
#define HTTP_MAX_CONNECTIONS 64
/* libmicrohttpd's own limit, never reached: room for the evicted ones it is closing. */
#define HTTP_MHD_CONNECTIONS (2 * HTTP_MAX_CONNECTIONS)
#define HTTP_IDLE_TIMEOUT_S 10
#define HTTP_CONN_MEMORY (32 * 1024)
/*
 * Connections the kernel completes while the acceptor is busy wait here; a
 * full queue drops a SYN, and the client retries only after 1 s. The kernel
 * caps this at net.core.somaxconn.
 */
#define HTTP_LISTEN_BACKLOG 4096
/*
 * TCP_DEFER_ACCEPT: the kernel hands a connection over once its first bytes
 * arrive (or after about this long). A scraper's connection so arrives with
 * its request already in the socket, where admission sees it; idle ones wait
 * in the kernel, not in a slot.
 */
#define HTTP_DEFER_ACCEPT_S 5
/* Accepts between two looks at the stop signal and the clock. */
#define HTTP_ACCEPT_BATCH 256
/*
 * The pen: connections held at most. Each costs a descriptor and a
 * socket's kernel memory, its receive buffer cut to HTTP_PEEK_BYTES; the
 * descriptor limit is raised to fit (see pen_capacity).
 */
#define HTTP_PARK_MAX 1024
/* Descriptors left for the rest of the agent (BPF objects, config, resolver). */
#define HTTP_FD_RESERVE 256
/* How much of a connection's unread input admission and eviction look at. */
#define HTTP_PEEK_BYTES 4096
/*
 * A request must arrive whole within this long of the connection or of its
 * previous request. libmicrohttpd's timeout counts idle time only, so a
 * client trickling a header line every few seconds would hold a slot for
 * ever; the acceptor thread shuts such connections down.
 */
#define HTTP_REQUEST_DEADLINE_MS 15000
#define HTTP_WATCHDOG_MS 500
/* At most one report of what was held, closed and evicted in this long: a flood makes thousands. */
#define HTTP_REPORT_MS 10000

struct http_conn {
	bool used;
	bool started;		/* libmicrohttpd has taken it up */
	bool shut;		/* shut down by us: libmicrohttpd is closing it */
	bool answering;		/* its request is complete and being answered */
	int fd;
	unsigned long long age;	/* order of its start or last answer: lower is older */
	long long added_ms;
	long long deadline_ms;
	dev_t dev;		/* which socket fd is: checked before a shutdown */
	ino_t ino;
};

/* A connection in the pen; fd -1 once it has left out of turn. */
struct http_parked {
	int fd;
	long long deadline_ms;	/* its request must be whole by then to be served */
};

/* epoll tags in the acceptor: the stop signal, the listen socket, then pen slot i as EV_PEN + i. */
enum { EV_STOP, EV_LISTEN, EV_PEN };

struct http_server {
	struct MHD_Daemon *daemon;
	const struct http_route *routes;
	size_t n_routes;
	void *ctx;
	int listen_fd;
	int stop_fd;			/* eventfd: the acceptor ends when it is readable */
	int epoll_fd;			/* the acceptor's: stop_fd, listen_fd, the pen */
	pthread_t acceptor;
	bool acceptor_running;
	/* The pen, a ring in the order of arrival: the acceptor's alone. */
	struct http_parked *pen;
	unsigned pen_cap, pen_head, pen_len;
	pthread_mutex_t lock;		/* everything below */
	unsigned long long next_age;
	/* Since the last report: connections put in the pen, closed unserved, evicted. */
	unsigned long long parked, dropped, evicted;
	/* One per connection libmicrohttpd may hold: admit() hands it no more. */
	struct http_conn conns[HTTP_MHD_CONNECTIONS];
};

#define CONNS_END(s) ((s)->conns + HTTP_MHD_CONNECTIONS)

static void http_free(struct http_server *s);

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * Whether fd still is the socket this entry was made for. Should a close
 * ever go unreported, its number may belong to a new connection (or to
 * anything else) by now: compare the inode before touching it.
 */
static bool same_socket(const struct http_conn *c)
{
	struct stat st;

	return !fstat(c->fd, &st) && st.st_dev == c->dev && st.st_ino == c->ino;
}

/* Shut a connection down; libmicrohttpd sees the end of the stream and closes it as usual. */
static void shut(struct http_conn *c)
{
	c->shut = true;
	if (same_socket(c))
		shutdown(c->fd, SHUT_RDWR);
}

/* What a connection's unread input says of its client. */
enum peek_result {
	PEEK_PARTIAL,	/* nothing yet, or part of a request */
	PEEK_WHOLE,	/* a whole request head waits: a client that did its part */
	PEEK_GONE,	/* closed or reset with nothing to read */
};

/*
 * Look at fd's unread input. (libmicrohttpd reads and answers a request in
 * one go, so what it has read of a connection that is not answering is
 * incomplete: the unread rest tells.)
 */
static enum peek_result peek_request(int fd)
{
	char buf[HTTP_PEEK_BYTES];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return memmem(buf, n, "\n\r\n", 3) || memmem(buf, n, "\n\n", 2) ? PEEK_WHOLE : PEEK_PARTIAL;
	return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ? PEEK_GONE : PEEK_PARTIAL;
}

/* Whether the client has ended its side (sent FIN) or the connection is gone. */
static bool client_done(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || ti.tcpi_state != TCP_ESTABLISHED;
}

static int live_conns(const struct http_server *s)
{
	int n = 0;

	for (const struct http_conn *c = s->conns; c < CONNS_END(s); c++)
		n += c->used && !c->shut;
	return n;
}

/*
 * Make room for one connection: shut down the oldest one waiting for a
 * request that has not sent one whole; failing that (every other one is
 * being answered, a slow reader, or has its request pending), the oldest.
 */
static void evict_one(struct http_server *s, const struct http_conn *keep)
{
	bool passed[HTTP_MHD_CONNECTIONS] = { 0 };
	struct http_conn *c, *oldest, *victim;

	for (;;) {
		oldest = victim = NULL;
		for (c = s->conns; c < CONNS_END(s); c++) {
			if (!c->used || c->shut || c == keep)
				continue;
			if (!oldest || c->age < oldest->age)
				oldest = c;
			if (!c->answering && !passed[c - s->conns] && (!victim || c->age < victim->age))
				victim = c;
		}
		if (!victim || peek_request(victim->fd) != PEEK_WHOLE)
			break;
		passed[victim - s->conns] = true;
	}
	if (!victim)
		victim = oldest;
	if (!victim)
		return;
	shut(victim);
	s->evicted++;
}

/*
 * MHD_NotifyConnectionCallback. A start makes room if the connection took
 * the server over its limit: here, in libmicrohttpd's thread, no connection
 * is between being read and being answered while evict_one looks.
 */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	const union MHD_ConnectionInfo *info;
	struct http_conn *c;
	struct stat st;

	pthread_mutex_lock(&s->lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = CONNS_END(s);
		if (info && !fstat(info->connect_fd, &st))
			for (c = s->conns; c < CONNS_END(s); c++)
				if (c->used && !c->started && c->fd == info->connect_fd &&
				    c->dev == st.st_dev && c->ino == st.st_ino)
					break;
		if (c < CONNS_END(s)) {
			c->started = true;
			*socket_ctx = c;
			if (live_conns(s) > HTTP_MAX_CONNECTIONS)
				evict_one(s, c);
		}
	} else if (*socket_ctx) {
		/* Closed: libmicrohttpd closes the fd after this returns, so it is never seen reused. */
		((struct http_conn *)*socket_ctx)->used = false;
		*socket_ctx = NULL;
	}
	pthread_mutex_unlock(&s->lock);
}

/* The connection's entry (NULL if untracked), for the request callbacks. */
static struct http_conn *conn_entry(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info ? info->socket_context : NULL;
}

/*
 * MHD_RequestCompletedCallback: the connection waits for its next request,
 * with a fresh deadline, and counts as new for eviction.
 */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_ctx,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct http_conn *c = conn_entry(conn);

	if (!c)
		return;
	pthread_mutex_lock(&s->lock);
	c->answering = false;
	c->age = s->next_age++;
	c->deadline_ms = mono_ms() + HTTP_REQUEST_DEADLINE_MS;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Reserve an entry for fd if admission lets it in (see "Admission" above);
 * NULL if not.
 */
static struct http_conn *admit(struct http_server *s, int fd, bool whole)
{
	struct http_conn *c, *free_slot = NULL;
	struct stat st;

	if (fstat(fd, &st))
		return NULL;
	pthread_mutex_lock(&s->lock);
	for (c = s->conns; c < CONNS_END(s) && !free_slot; c++)
		if (!c->used)
			free_slot = c;
	if (!free_slot || (!whole && live_conns(s) >= HTTP_MAX_CONNECTIONS)) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	c = free_slot;
	*c = (struct http_conn){ .used = true, .fd = fd, .age = s->next_age++,
				 .added_ms = mono_ms(),
				 .deadline_ms = mono_ms() + HTTP_REQUEST_DEADLINE_MS,
				 .dev = st.st_dev, .ino = st.st_ino };
	pthread_mutex_unlock(&s->lock);
	return c;
}

static void count(struct http_server *s, unsigned long long *counter)
{
	pthread_mutex_lock(&s->lock);
	(*counter)++;
	pthread_mutex_unlock(&s->lock);
}

/* Close the pen's oldest connection (or skip its empty slot). */
static void pen_drop_oldest(struct http_server *s)
{
	struct http_parked *p = &s->pen[s->pen_head];

	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	s->pen_head = (s->pen_head + 1) % s->pen_cap;
	s->pen_len--;
}

/* Hold fd, unread, until its request is whole or its client gives up. */
static void pen_park(struct http_server *s, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
	int rcvbuf = HTTP_PEEK_BYTES;
	struct http_parked *p;
	unsigned i;

	if (!s->pen_cap) {
		close(fd);
		count(s, &s->dropped);
		return;
	}
	if (s->pen_len == s->pen_cap) {
		if (s->pen[s->pen_head].fd >= 0)
			count(s, &s->dropped);
		pen_drop_oldest(s);
	}
	i = (s->pen_head + s->pen_len++) % s->pen_cap;
	p = &s->pen[i];
	*p = (struct http_parked){ .fd = fd, .deadline_ms = mono_ms() + HTTP_REQUEST_DEADLINE_MS };
	/* What it may send while held stays small: enough to see a whole request. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	ev.data.u64 = EV_PEN + i;
	if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		p->fd = -1;
		count(s, &s->dropped);
		return;
	}
	count(s, &s->parked);
}

static void hand_over(struct http_server *s, int fd, enum peek_result input);

/*
 * Something arrived on a held connection (edge-triggered: new bytes, or the
 * end): admit it once its request is whole, close it once its client is
 * done or its request deadline has passed. A stale event may name a slot
 * reused since; what is done then depends on that slot's connection alone,
 * so that is harmless.
 */
static void pen_event(struct http_server *s, unsigned i)
{
	struct http_parked *p = &s->pen[i];
	int fd = p->fd;

	if (fd < 0)
		return;
	switch (peek_request(fd)) {
	case PEEK_WHOLE:
		if (mono_ms() > p->deadline_ms)
			break;	/* too late, as it would be if served */
		epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		p->fd = -1;
		hand_over(s, fd, PEEK_WHOLE);
		return;
	case PEEK_PARTIAL:
		if (!client_done(fd))
			return;
		break;	/* a request never to be completed */
	case PEEK_GONE:
		break;
	}
	close(fd);
	p->fd = -1;
}

/* A new connection, or one leaving the pen: admit it, hold it or close it. */
static void hand_over(struct http_server *s, int fd, enum peek_result input)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	struct http_conn *c;

	if (input == PEEK_GONE) {
		close(fd);
		return;
	}
	c = admit(s, fd, input == PEEK_WHOLE);
	if (!c) {
		if (input == PEEK_WHOLE) {
			/* Every entry taken, most by connections being closed: a moment's overload. */
			close(fd);
			count(s, &s->dropped);
		} else {
			pen_park(s, fd);
		}
		return;
	}
	/* MHD closes fd if it fails; the entry goes now, before the number can be reused. */
	if (getpeername(fd, (struct sockaddr *)&peer, &len)) {
		pthread_mutex_lock(&s->lock);
		c->used = false;
		pthread_mutex_unlock(&s->lock);
		close(fd);	/* gone already */
		return;
	}
	if (MHD_add_connection(s->daemon, fd, (struct sockaddr *)&peer, len) != MHD_YES) {
		pthread_mutex_lock(&s->lock);
		if (!c->started)
			c->used = false;
		pthread_mutex_unlock(&s->lock);
	}
}

/* Accept what is queued, up to HTTP_ACCEPT_BATCH. Returns -errno if accept failed for want of resources. */
static int accept_some(struct http_server *s)
{
	for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				return -errno;
			continue;	/* ECONNABORTED, EINTR, a network error: the next one */
		}
		hand_over(s, fd, peek_request(fd));
	}
	return 0;
}

/*
 * Every HTTP_WATCHDOG_MS: shut down connections past their request
 * deadline, forget any that libmicrohttpd dropped before starting them, and
 * report now and then what was held, closed unserved and evicted.
 */
static void watchdog_pass(struct http_server *s, long long *reported_ms)
{
	long long now = mono_ms();

	pthread_mutex_lock(&s->lock);
	for (struct http_conn *c = s->conns; c < CONNS_END(s); c++) {
		if (!c->used)
			continue;
		if (!c->started) {
			if (now - c->added_ms >= HTTP_WATCHDOG_MS && !same_socket(c))
				c->used = false;
			continue;
		}
		if (c->shut || now < c->deadline_ms)
			continue;
		shut(c);
		log_debug("http: request deadline passed; connection shut down");
	}
	if ((s->parked || s->dropped || s->evicted) && now - *reported_ms >= HTTP_REPORT_MS) {
		/* Counts since the last report: put in the pen, closed unserved, evicted. */
		log_warn("http: connection limit reached; incomplete connections held or closed\t"
			 "limit=%d parked=%llu closed=%llu evicted=%llu", HTTP_MAX_CONNECTIONS, s->parked,
			 s->dropped, s->evicted);
		s->parked = s->dropped = s->evicted = 0;
		*reported_ms = now;
	}
	pthread_mutex_unlock(&s->lock);
}

/* The acceptor thread: accepts, admits and holds connections, and runs the watchdog. */
static void *acceptor_main(void *arg)
{
	struct http_server *s = arg;
	long long next_pass = mono_ms() + HTTP_WATCHDOG_MS, reported_ms = 0, paused_until = 0;
	struct epoll_event evs[64];
	bool listening = true;

	for (;;) {
		long long now = mono_ms();
		bool accept_ready = false;
		int n, err;

		if (listening != (now >= paused_until)) {
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_LISTEN };

			listening = !listening;
			epoll_ctl(s->epoll_fd, listening ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->listen_fd, &ev);
		}
		n = epoll_wait(s->epoll_fd, evs, sizeof(evs) / sizeof(evs[0]),
			       (int)(next_pass > now ? next_pass - now : 0));
		if (n < 0 && errno != EINTR) {
			log_err("http: epoll_wait: %s; no more connections are accepted", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == EV_STOP)
				return NULL;
			if (evs[i].data.u64 == EV_LISTEN)
				accept_ready = true;
			else
				pen_event(s, (unsigned)(evs[i].data.u64 - EV_PEN));
		}
		if (accept_ready) {
			err = accept_some(s);
			if (err && s->pen_len) {
				/* Out of descriptors: a few of the pen's oldest give theirs up. */
				for (int k = 0; k < 16 && s->pen_len; k++)
					pen_drop_oldest(s);
			} else if (err) {
				/* Nothing to give up: leave the queue alone until the next pass. */
				log_warn("http: accept: %s; pausing for %d ms", strerror(-err), HTTP_WATCHDOG_MS);
				paused_until = mono_ms() + HTTP_WATCHDOG_MS;
			}
		}
		if (mono_ms() >= next_pass) {
			watchdog_pass(s, &reported_ms);
			next_pass = mono_ms() + HTTP_WATCHDOG_MS;
		}
	}
	return NULL;
}

/*
 * How many connections the pen may hold: HTTP_PARK_MAX if the descriptor
 * limit allows, raising the soft limit toward the hard one to make room
 * (the agent uses no select(), so descriptors above 1024 are fine); fewer,
 * or none, if it does not.
 */
static unsigned pen_capacity(void)
{
	rlim_t want = HTTP_PARK_MAX + HTTP_MHD_CONNECTIONS + HTTP_FD_RESERVE, spare;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	if (rl.rlim_cur < want && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur <= HTTP_MHD_CONNECTIONS + HTTP_FD_RESERVE)
		return 0;
	spare = rl.rlim_cur - HTTP_MHD_CONNECTIONS - HTTP_FD_RESERVE;
	return spare < HTTP_PARK_MAX ? (unsigned)spare : HTTP_PARK_MAX;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	log_vmsg(LOG_LVL_DEBUG, fmt, ap);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result static_reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return reply(conn, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
		     MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_ctx)
{
	struct http_server *s = cls;
	const struct http_route *r;
	struct http_request req;
	char *body = NULL;
	size_t len = 0;
	struct http_conn *c = conn_entry(conn);
	int status;

	if (c) {
		pthread_mutex_lock(&s->lock);
		c->answering = true;
		pthread_mutex_unlock(&s->lock);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return static_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (!strcmp(url, "/"))
		return static_reply(conn, MHD_HTTP_OK,
				    "kbreaker: /metrics (Prometheus), /status (JSON), /healthz\n");
	for (r = s->routes; r < s->routes + s->n_routes; r++)
		if (!strcmp(url, r->path))
			break;
	if (r == s->routes + s->n_routes)
		return static_reply(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	req.accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	req.content_type = r->content_type;
	status = r->body(s->ctx, &req, &body, &len);
	if (status < 0)
		return static_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
	return reply(conn, status, req.content_type, body, len, MHD_RESPMEM_MUST_FREE);
}

int http_listen(const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd, one = 1, err;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		sl = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		sl = sizeof(*in6);
	} else {
		err = -EINVAL;
		goto fail;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &(int){ HTTP_DEFER_ACCEPT_S }, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, HTTP_LISTEN_BACKLOG)) {
		err = -errno;
		close(fd);
		goto fail;
	}
	return fd;
fail:
	log_err("http: listen on %s port %u: %s", host, port, strerror(-err));
	return err;
}

int http_start(struct http_server **out, int fd, const struct http_route *routes, size_t n,
	       void *ctx)
{
	struct http_server *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->routes = routes;
	s->n_routes = n;
	s->ctx = ctx;
	s->listen_fd = fd;
	s->stop_fd = s->epoll_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (s->stop_fd < 0 || s->epoll_fd < 0) {
		err = -errno;
		log_err("http: eventfd/epoll: %s", strerror(-err));
		goto fail;
	}
	if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->stop_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_STOP }) ||
	    epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_LISTEN })) {
		err = -errno;
		log_err("http: epoll_ctl: %s", strerror(-err));
		goto fail;
	}
	s->pen_cap = pen_capacity();
	s->pen = calloc(s->pen_cap ? s->pen_cap : 1, sizeof(*s->pen));
	if (!s->pen) {
		err = -ENOMEM;
		goto fail;
	}
	if (s->pen_cap < HTTP_PARK_MAX)
		log_warn("http: descriptor limit allows holding %u incomplete connections, not %d",
			 s->pen_cap, HTTP_PARK_MAX);
	/* No listen socket of its own: every connection comes from the acceptor. */
	s->daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC |
				     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0,
				     NULL, NULL, on_request, s,
				     /* first, so MHD's own start-up messages come through it too */
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MHD_CONNECTIONS,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
				     MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_END);
	if (!s->daemon) {
		err = -EIO;
		log_err("http: libmicrohttpd failed to start");
		goto fail;
	}
	err = -pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (err) {
		log_err("http: acceptor thread: %s", strerror(-err));
		goto fail;
	}
	s->acceptor_running = true;
	*out = s;
	return 0;
fail:
	http_stop(s);
	return err;
}

static void http_free(struct http_server *s)
{
	free(s->pen);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void http_stop(struct http_server *s)
{
	if (!s)
		return;
	/* No new connections first, then the ones libmicrohttpd holds. */
	if (s->acceptor_running) {
		eventfd_write(s->stop_fd, 1);
		pthread_join(s->acceptor, NULL);
	}
	close(s->listen_fd);
	while (s->pen_len)
		pen_drop_oldest(s);
	if (s->epoll_fd >= 0)
		close(s->epoll_fd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	http_free(s);
}
