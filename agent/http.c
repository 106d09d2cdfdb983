// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include "http.h"
#include "log.h"

/*
 * Limits: libmicrohttpd's defaults are no idle timeout and unbounded
 * connections per client; a scrape endpoint needs a handful of either.
 */
#define HTTP_MAX_CONNECTIONS 64
#define HTTP_MAX_PER_IP 16
#define HTTP_IDLE_TIMEOUT_S 10
#define HTTP_CONN_MEMORY (32 * 1024)
/*
 * A request must arrive whole within this long of the connection or of its
 * previous request. libmicrohttpd's timeout counts idle time only, so a
 * client trickling a header line every few seconds would hold a slot for
 * ever; the watchdog thread shuts such connections down.
 */
#define HTTP_REQUEST_DEADLINE_MS 15000
#define HTTP_WATCHDOG_MS 500

struct http_conn {
	bool used;
	bool shut;
	int fd;
	long long deadline_ms;
	struct sockaddr_storage peer;	/* who fd talks to: checked before a shutdown */
	socklen_t peer_len;
};

/*
 * Whether fd still is the connection this entry was made for. Should a
 * close ever go unreported, its number may belong to a new connection (or
 * to anything else) by now: compare the peer before touching it.
 */
static bool same_peer(const struct http_conn *c)
{
	struct sockaddr_storage now;
	socklen_t len = sizeof(now);

	return !getpeername(c->fd, (struct sockaddr *)&now, &len) && len == c->peer_len &&
	       !memcmp(&now, &c->peer, len);
}

struct http_server {
	struct MHD_Daemon *daemon;
	const struct http_route *routes;
	size_t n_routes;
	void *ctx;
	pthread_mutex_t lock;		/* conns, stopping */
	pthread_cond_t wake;
	pthread_t watchdog;
	bool watchdog_running, stopping;
	/* One more than MHD admits: it may notify a start before refusing. */
	struct http_conn conns[HTTP_MAX_CONNECTIONS + 1];
};

static void http_free(struct http_server *s);

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* MHD_NotifyConnectionCallback: track each connection's request deadline. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	const union MHD_ConnectionInfo *info;
	struct http_conn *c;

	pthread_mutex_lock(&s->lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		for (c = s->conns; c < s->conns + HTTP_MAX_CONNECTIONS + 1 && c->used; c++)
			;
		if (info && c < s->conns + HTTP_MAX_CONNECTIONS + 1) {
			*c = (struct http_conn){ .used = true, .fd = info->connect_fd,
						 .deadline_ms = mono_ms() + HTTP_REQUEST_DEADLINE_MS,
						 .peer_len = sizeof(c->peer) };
			if (getpeername(c->fd, (struct sockaddr *)&c->peer, &c->peer_len))
				c->used = false;	/* gone already: nothing to watch */
			else
				*socket_ctx = c;
		}
	} else if (*socket_ctx) {
		/* Closed: MHD closes the fd after this returns, so the watchdog never sees it reused. */
		((struct http_conn *)*socket_ctx)->used = false;
		*socket_ctx = NULL;
	}
	pthread_mutex_unlock(&s->lock);
}

/* MHD_RequestCompletedCallback: the next request on this connection gets a fresh deadline. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_ctx,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	pthread_mutex_lock(&s->lock);
	if (info && info->socket_context)
		((struct http_conn *)info->socket_context)->deadline_ms =
			mono_ms() + HTTP_REQUEST_DEADLINE_MS;
	pthread_mutex_unlock(&s->lock);
}

static void *watchdog_main(void *arg)
{
	struct http_server *s = arg;
	struct timespec until;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		long long now = mono_ms();

		for (struct http_conn *c = s->conns; c < s->conns + HTTP_MAX_CONNECTIONS + 1; c++) {
			if (!c->used || c->shut || now < c->deadline_ms)
				continue;
			c->shut = true;
			if (!same_peer(c))
				continue;
			/* MHD sees the end of the stream and closes it as usual. */
			shutdown(c->fd, SHUT_RDWR);
			log_debug("http: request deadline passed; connection shut down");
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += HTTP_WATCHDOG_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&s->wake, &s->lock, &until);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
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
	int status;

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
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 64)) {
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

	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->routes = routes;
	s->n_routes = n;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	s->daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0,
				     NULL, NULL, on_request, s,
				     /* first, so MHD's own start-up messages come through it too */
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				     MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
				     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_IP,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
				     MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_END);
	if (!s->daemon) {
		log_err("http: libmicrohttpd failed to start");
		close(fd);
		http_free(s);
		return -EIO;
	}
	if (pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0)
		s->watchdog_running = true;
	else
		log_warn("http: no request watchdog thread; slow clients are cut by the idle timeout only");
	/* From here MHD owns fd: MHD_stop_daemon closes the listen socket it was given. */
	*out = s;
	return 0;
}

static void http_free(struct http_server *s)
{
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void http_stop(struct http_server *s)
{
	if (!s)
		return;
	if (s->watchdog_running) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->watchdog, NULL);
	}
	MHD_stop_daemon(s->daemon);
	http_free(s);
}
