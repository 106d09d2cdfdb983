/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the test and benchmark tools share (kbtool, loadgen, killconnect,
 * httpabuse in tests/tools, bench/kbbench.c): the one way to turn an address
 * argument into a socket address (an IPv4 or IPv6 literal; an IPv6 one,
 * ::ffff:a.b.c.d included, gives an AF_INET6 address), the clock, a close
 * that resets, and how a connect's errno is counted.
 */
#ifndef KB_TOOLS_TOOL_H
#define KB_TOOLS_TOOL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Fill *ss; returns its length, or 0 when host is not an IP literal. */
static inline socklen_t tool_sockaddr(const char *host, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(atoi(port));
		return sizeof(*in4);
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(atoi(port));
		return sizeof(*in6);
	}
	return 0;
}

/* The same from a command line: a bad address ends the program (status 2). */
static inline socklen_t tool_sockaddr_arg(const char *prog, const char *host, const char *port,
					  struct sockaddr_storage *ss)
{
	socklen_t sl = tool_sockaddr(host, port, ss);

	if (!sl) {
		fprintf(stderr, "%s: bad address %s\n", prog, host);
		exit(2);
	}
	return sl;
}

/* A destination from the command line, as most commands take it. */
struct tool_dst {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* *d from ADDR PORT; a bad address ends the program (status 2). */
static inline void tool_dst_arg(const char *prog, const char *host, const char *port,
				struct tool_dst *d)
{
	d->len = tool_sockaddr_arg(prog, host, port, &d->ss);
}

static inline const struct sockaddr *tool_dst_sa(const struct tool_dst *d)
{
	return (const struct sockaddr *)&d->ss;
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline long long tool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* close() with SO_LINGER 0: the peer gets an RST and no TIME_WAIT is left behind. */
static inline void tool_close_rst(int fd)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	close(fd);
}

/* A TCP socket whose blocking connect gives up after timeout_ms (0: the kernel's own limit). */
static inline int tool_tcp_socket(int family, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000 };
	int fd = socket(family, SOCK_STREAM, 0);

	/* SO_SNDTIMEO bounds a blocking connect. */
	if (fd >= 0 && timeout_ms > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* What a connect ended with, as the tools count it. */
enum tool_outcome { TOOL_SUCCESS, TOOL_REFUSED, TOOL_TIMEOUT, TOOL_UNREACH, TOOL_EPERM, TOOL_OTHER };

/*
 * The outcome of a connect that ended with err (0: connected). EINPROGRESS and
 * EAGAIN are a blocking connect's SO_SNDTIMEO running out: a timeout. Before
 * Linux 5.18 the connect hooks refuse with EPERM: with KB_EPERM_IS_REFUSED=1
 * in the environment (tests/e2e/lib.sh sets it on such kernels) that counts
 * as refused, so a test's counts mean the same on every kernel;
 * tests/vm/probe.sh checks the hook's errno itself.
 */
static inline enum tool_outcome tool_outcome(int err)
{
	const char *eperm = getenv("KB_EPERM_IS_REFUSED");

	switch (err) {
	case 0: return TOOL_SUCCESS;
	case ECONNREFUSED: return TOOL_REFUSED;
	case ETIMEDOUT: case EINPROGRESS: case EAGAIN: return TOOL_TIMEOUT;
	case EHOSTUNREACH: case ENETUNREACH: return TOOL_UNREACH;
	case EPERM: return eperm && !strcmp(eperm, "1") ? TOOL_REFUSED : TOOL_EPERM;
	default: return TOOL_OTHER;
	}
}

#endif /* KB_TOOLS_TOOL_H */
