// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * http_admit: which connections libmicrohttpd gets, and when. The acceptor
 * thread, the pen, eviction and the request and response deadlines; http.c
 * is the rest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "clock.h"
#include "http_priv.h"
#include "log.h"

/*
 * Admission. The server accepts connections itself and hands them to
 * libmicrohttpd (MHD_add_connection), so that it can look at each one first.
 * Up to HTTP_MAX_CONNECTIONS are served. Beyond that, a connection whose
 * request has arrived whole is always admitted and the oldest connection
 * still waiting for its request is shut down to make room (evict_one); any
 * other new connection goes to the pen: held, unread, until its request is
 * whole (then admitted, if within the request deadline), its client gives
 * up or the pen is full (then the oldest there is closed). A whole request
 * that finds every entry taken (most by connections libmicrohttpd is still
 * closing) waits in the pen too, and whole requests there are admitted in
 * their order of arrival, before any new one that would wait, as entries
 * are freed: under a flood of whole requests a scrape waits its turn, it is
 * not turned away unless the pen overflows. A scraper sends
 * its request as it connects, so a flood, however many connections it holds
 * and from whichever address, never keeps it out; and a flood that reopens
 * what it loses finds nothing to reopen while the pen holds it, so it cannot
 * keep the server busy either. (Closing held connections after a while
 * would only make a flood reopen them all at once, again and again.) No
 * per-address limit: a local flood comes from 127.0.0.1 like the scraper,
 * and such a limit would turn the scraper away.
 */

/* Accepts between two looks at the stop signal and the clock. */
#define HTTP_ACCEPT_BATCH 256
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
/*
 * An answer must be taken whole within this long of its request: a page
 * is held until its client has read all of it, and a client reading a
 * little at a time is never idle. Far beyond Prometheus's default scrape
 * timeout (10 s), so a scraper that waits longer has given up already.
 */
#define HTTP_RESPONSE_DEADLINE_MS 30000
#define HTTP_WATCHDOG_MS 500
/* At most one report of what was held, closed and evicted in this long: a flood makes thousands. */
#define HTTP_REPORT_MS 10000

static long long mono_ms(void)
{
	return (long long)(clock_mono_ns() / 1000000);
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

/*
 * Shut a connection down; libmicrohttpd sees the end of the stream and closes
 * it as usual. One being answered is reset instead: its answer is cut short
 * anyway, and libmicrohttpd, blocked on a full send buffer, would not see a
 * shutdown before its idle timeout, the entry and up to 2 x HTTP_SNDBUF of
 * the kernel's memory held all along, then left to an orphan in FIN_WAIT1
 * for as long as the client reads. A disconnect (connect to AF_UNSPEC) sends
 * a reset, frees the send queue at once and reports the error, so
 * libmicrohttpd closes the connection now; should it fail, a zero linger
 * makes libmicrohttpd's close send the reset.
 */
static void shut(struct http_conn *c)
{
	c->shut = true;
	if (!same_socket(c))
		return;
	if (c->answering) {
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &(struct linger){ .l_onoff = 1 },
			   sizeof(struct linger));
		if (!connect(c->fd, &unspec, sizeof(unspec)))
			return;
	}
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

/*
 * Entry c is free again (s->lock held). Whole requests may wait in the pen
 * for it: the acceptor's next wait returns at once, even when it is the
 * acceptor that frees it, rather than at the watchdog's next pass.
 */
static void entry_free(struct http_server *s, struct http_conn *c)
{
	c->used = false;
	eventfd_write(s->freed_fd, 1);
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
 * request that has not sent one whole; failing that, the oldest being
 * answered (a slow reader); failing that (every other one has its request
 * pending), the oldest. A pending request is passed over while there is a
 * reader to cut: under a flood of whole requests libmicrohttpd starts many
 * at once, and each start would otherwise shut one admitted before it and
 * not yet read, a scrape's among them.
 */
static void evict_one(struct http_server *s, const struct http_conn *keep)
{
	bool passed[HTTP_MHD_CONNECTIONS] = { 0 };
	struct http_conn *c, *oldest, *reader, *victim;

	for (;;) {
		oldest = reader = victim = NULL;
		for (c = s->conns; c < CONNS_END(s); c++) {
			if (!c->used || c->shut || c == keep)
				continue;
			if (!oldest || c->age < oldest->age)
				oldest = c;
			if (c->answering && (!reader || c->age < reader->age))
				reader = c;
			if (!c->answering && !passed[c - s->conns] && (!victim || c->age < victim->age))
				victim = c;
		}
		if (!victim || peek_request(victim->fd) != PEEK_WHOLE)
			break;
		passed[victim - s->conns] = true;
	}
	if (!victim)
		victim = reader ? reader : oldest;
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
void http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
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
		entry_free(s, *socket_ctx);
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

void http_mark_answering(struct http_server *s, struct MHD_Connection *conn)
{
	struct http_conn *c = conn_entry(conn);

	if (!c)
		return;
	pthread_mutex_lock(&s->lock);
	c->answering = true;
	c->deadline_ms = mono_ms() + HTTP_RESPONSE_DEADLINE_MS;
	pthread_mutex_unlock(&s->lock);
}

/*
 * MHD_RequestCompletedCallback: the connection waits for its next request,
 * with a fresh deadline, and counts as new for eviction.
 */
void http_on_completed(void *cls, struct MHD_Connection *conn, void **req_ctx,
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

/* A pen slot is empty now (its connection closed or admitted). */
static void pen_release(struct http_server *s, struct http_parked *p)
{
	if (p->fd >= 0 && p->whole)
		s->pen_whole--;
	p->fd = -1;
	p->whole = false;
}

/* Close the pen's oldest connection (or skip its empty slot). */
void http_pen_drop_oldest(struct http_server *s)
{
	struct http_parked *p = &s->pen[s->pen_head];

	if (p->fd >= 0)
		close(p->fd);
	pen_release(s, p);
	s->pen_head = (s->pen_head + 1) % s->pen_cap;
	s->pen_len--;
}

/*
 * Hold fd, unread, until its request is whole or its client gives up; if
 * whole already, until an entry is free and its turn comes (pen_admit_whole).
 */
static void pen_park(struct http_server *s, int fd, bool whole)
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
		http_pen_drop_oldest(s);
	}
	i = (s->pen_head + s->pen_len++) % s->pen_cap;
	p = &s->pen[i];
	*p = (struct http_parked){ .fd = fd, .deadline_ms = mono_ms() + HTTP_REQUEST_DEADLINE_MS };
	if (whole)
		s->pen_whole++, p->whole = true;
	/* What it may send while held stays small: enough to see a whole request. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	ev.data.u64 = EV_PEN + i;
	if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		pen_release(s, p);
		count(s, &s->dropped);
		return;
	}
	count(s, &s->parked);
}

static void give(struct http_server *s, struct http_conn *c, int fd);

/*
 * Admit the pen's whole requests in their order of arrival while entries
 * are free; close those past their deadline (too late, as they would be if
 * served).
 */
static void pen_admit_whole(struct http_server *s)
{
	for (unsigned k = 0; k < s->pen_len && s->pen_whole; k++) {
		struct http_parked *p = &s->pen[(s->pen_head + k) % s->pen_cap];
		struct http_conn *c;
		int fd = p->fd;

		if (fd < 0 || !p->whole)
			continue;
		if (mono_ms() > p->deadline_ms) {
			close(fd);
			pen_release(s, p);
			count(s, &s->dropped);
			continue;
		}
		c = admit(s, fd, true);
		if (!c)
			return;
		epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		pen_release(s, p);
		give(s, c, fd);
	}
}

/*
 * Something arrived on a held connection (edge-triggered: new bytes, or the
 * end): once its request is whole it waits its turn (pen_admit_whole); close
 * it once its client is done or its request deadline has passed. A stale
 * event may name a slot reused since; what is done then depends on that
 * slot's connection alone, so that is harmless.
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
		if (!p->whole)
			s->pen_whole++, p->whole = true;
		return;
	case PEEK_PARTIAL:
		if (!client_done(fd))
			return;
		break;	/* a request never to be completed */
	case PEEK_GONE:
		break;
	}
	close(fd);
	pen_release(s, p);
}

/*
 * A new connection: admit it, hold it or close it. A whole request waits
 * behind those in the pen, and in the pen if every entry is taken (most by
 * connections being closed: a moment's overload).
 */
static void hand_over(struct http_server *s, int fd, enum peek_result input)
{
	struct http_conn *c = NULL;

	if (input == PEEK_GONE) {
		close(fd);
		return;
	}
	if (input != PEEK_WHOLE || !s->pen_whole)
		c = admit(s, fd, input == PEEK_WHOLE);
	if (!c) {
		pen_park(s, fd, input == PEEK_WHOLE);
		return;
	}
	give(s, c, fd);
}

/* Hand fd, admitted to entry c, to libmicrohttpd. */
static void give(struct http_server *s, struct http_conn *c, int fd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	/* MHD closes fd if it fails; the entry goes now, before the number can be reused. */
	if (getpeername(fd, (struct sockaddr *)&peer, &len)) {
		pthread_mutex_lock(&s->lock);
		entry_free(s, c);
		pthread_mutex_unlock(&s->lock);
		close(fd);	/* gone already */
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ HTTP_SNDBUF }, sizeof(int));
	if (MHD_add_connection(s->daemon, fd, (struct sockaddr *)&peer, len) != MHD_YES) {
		pthread_mutex_lock(&s->lock);
		if (!c->started)
			entry_free(s, c);
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
 * Every HTTP_WATCHDOG_MS: shut down connections past their request or
 * response deadline (libmicrohttpd then closes them and frees what they
 * were sent), forget any that libmicrohttpd dropped before starting them, and
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
				entry_free(s, c);
			continue;
		}
		if (c->shut || now < c->deadline_ms)
			continue;
		shut(c);
		log_debug("http: %s deadline passed; connection shut down",
			  c->answering ? "response" : "request");
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
void *http_acceptor_main(void *arg)
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
			eventfd_t v;

			if (evs[i].data.u64 == EV_STOP)
				return NULL;
			if (evs[i].data.u64 == EV_LISTEN)
				accept_ready = true;
			else if (evs[i].data.u64 == EV_FREED)
				eventfd_read(s->freed_fd, &v);
			else
				pen_event(s, (unsigned)(evs[i].data.u64 - EV_PEN));
		}
		pen_admit_whole(s);
		if (accept_ready) {
			err = accept_some(s);
			if (err && s->pen_len) {
				/* Out of descriptors: a few of the pen's oldest give theirs up. */
				for (int k = 0; k < 16 && s->pen_len; k++)
					http_pen_drop_oldest(s);
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
unsigned http_pen_capacity(void)
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
