// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * http: libmicrohttpd glue: the listen socket, the daemon, routes and
 * replies. Which connections reach libmicrohttpd is http_admit.c's job.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include "http_priv.h"
#include "log.h"

/* libmicrohttpd's idle timeout and memory per connection. */
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

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	log_vmsg(LOG_LVL_DEBUG, fmt, ap);
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);

	if (!resp && mode == MHD_RESPMEM_MUST_FREE)
		free(body);
	return queue(conn, status, ctype, resp);
}

/* A body its producer frees its own way, through its owner, once sent. */
static enum MHD_Result reply_freed(struct MHD_Connection *conn, unsigned status, const char *ctype,
				   void *body, size_t len, void (*free_body)(void *), void *owner)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer_with_free_callback_cls(len, body, free_body, owner);
	if (!resp)
		free_body(owner);
	return queue(conn, status, ctype, resp);
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
	struct http_request req = { 0 };
	char *body = NULL;
	size_t len = 0;
	int status;

	http_mark_answering(s, conn);
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
	req.head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
	req.content_type = r->content_type;
	status = r->body(s->ctx, &req, &body, &len);
	if (status < 0)
		return static_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
	if (req.free_body)
		return reply_freed(conn, status, req.content_type, body, len, req.free_body,
				   req.body_owner ? req.body_owner : body);
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
	s->stop_fd = s->epoll_fd = s->freed_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->freed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (s->stop_fd < 0 || s->freed_fd < 0 || s->epoll_fd < 0) {
		err = -errno;
		log_err("http: eventfd/epoll: %s", strerror(-err));
		goto fail;
	}
	if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->stop_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_STOP }) ||
	    epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->freed_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_FREED }) ||
	    epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_LISTEN })) {
		err = -errno;
		log_err("http: epoll_ctl: %s", strerror(-err));
		goto fail;
	}
	s->pen_cap = http_pen_capacity();
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
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MHD_LIMIT,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
				     MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, s,
				     MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, s,
				     MHD_OPTION_END);
	if (!s->daemon) {
		err = -EIO;
		log_err("http: libmicrohttpd failed to start");
		goto fail;
	}
	err = -pthread_create(&s->acceptor, NULL, http_acceptor_main, s);
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
		http_pen_drop_oldest(s);
	if (s->epoll_fd >= 0)
		close(s->epoll_fd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	/* After the daemon: its closes signal it. */
	if (s->freed_fd >= 0)
		close(s->freed_fd);
	http_free(s);
}
