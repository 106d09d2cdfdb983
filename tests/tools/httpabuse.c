// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * httpabuse: a hostile HTTP client for the metrics endpoint's hardening test.
 * Every mode is bounded in time; none retries.
 *
 *   httpabuse send HOST PORT TIMEOUT_MS
 *	Connect, write stdin (at most 1 MiB) as the raw request, then copy the
 *	response to stdout until the server closes or TIMEOUT_MS pass. A write the
 *	server cuts short (EPIPE, ECONNRESET) is not an error: what it answered, if
 *	anything, is still read. Exit 0 if the server closed the connection, 3 if
 *	it was still open at the timeout, 1 on a local error.
 *
 *   httpabuse trickle HOST PORT EVERY_S MAX_S
 *	a request that never completes, one more header line every EVERY_S
 *	seconds, so it is never idle; same output as slow
 *   httpabuse slow HOST PORT MAX_S
 *	Slowloris: send the first line and one header of a request, never the
 *	blank line that ends it, then wait. Prints "closed_after_ms=N" when the
 *	server drops the connection, or "open_after_ms=N" at MAX_S.
 *
 *   httpabuse flood HOST PORT N HOLD_S [NSRC [half|idle [reopen]]]
 *	Open N connections at once (non-blocking), spread over NSRC source
 *	addresses 127.0.1.1 .. 127.0.1.NSRC (default 1: the kernel picks); each
 *	sends a partial request ("half", the default) or nothing ("idle"). Hold
 *	them HOLD_S seconds, then close all. With "reopen", a connection the
 *	server closes (or that fails) is opened again at once from the same
 *	source, as an attacker keeping N connections up would. Prints one line:
 *	"opened=N connected=C failed=F closed_by_server=S reopened=R open_at_end=O"
 *	(opened and connected count every attempt, reopened ones included).
 *	SIGTERM ends the hold early, with the same line.
 *
 *   httpabuse slowread HOST PORT N HOLD_S PATH KIB_S
 *	Keep N connections that each send a whole "GET PATH" and then take the
 *	answer at KIB_S KiB a second, through an 8 KiB receive buffer: a client
 *	making the server hold its response as long as it can. Held HOLD_S
 *	seconds (SIGTERM ends it early), then prints "opened=N closed_by_server=S
 *	bytes=B longest_ms=L": S connections saw the server's end (after the
 *	rest of what it had sent, which the kernel delivers even once the
 *	server has closed), the longest after L ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include "tool.h"

#define MAX_REQUEST (1 << 20)
#define MAX_FLOOD 4096
/* slowread: each connection's receive buffer, and how often it reads (its rate's share). */
#define SLOWREAD_RCVBUF 8192
#define SLOWREAD_TICK_MS 100

static long long now_ms(void)
{
	return tool_now_ns() / 1000000;
}

static int connect_to(const char *host, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = tool_sockaddr_arg("httpabuse", host, port, &ss);
	struct timeval tv = { .tv_sec = 2 };
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sl)) {
		perror("httpabuse: connect");
		close(fd);
		return -1;
	}
	return fd;
}

/* Wait for input on fd until deadline; 1 readable, 0 timed out. */
static int wait_in(int fd, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	long long left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return poll(&p, 1, (int)left) > 0;
}

static int do_send(int argc, char **argv)
{
	char *req = malloc(MAX_REQUEST), buf[16384];
	size_t len = 0, off = 0;
	long long deadline;
	ssize_t n;
	int fd;

	if (argc != 5 || !req)
		return 2;
	while (len < MAX_REQUEST && (n = read(0, req + len, MAX_REQUEST - len)) > 0)
		len += n;
	fd = connect_to(argv[2], argv[3]);
	if (fd < 0)
		return 1;
	deadline = now_ms() + atol(argv[4]);
	while (off < len) {
		n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;	/* the server stopped reading: read what it said */
		off += n;
	}
	free(req);
	for (;;) {
		if (!wait_in(fd, deadline)) {
			close(fd);
			return 3;
		}
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;	/* EOF or reset: closed by the server */
		fwrite(buf, 1, n, stdout);
	}
	close(fd);
	return 0;
}

static int do_slow(int argc, char **argv)
{
	static const char partial[] = "GET /metrics HTTP/1.1\r\nHost: kbreaker\r\n";
	long long t0, deadline;
	char buf[4096];
	int fd;

	if (argc != 5)
		return 2;
	fd = connect_to(argv[2], argv[3]);
	if (fd < 0)
		return 1;
	t0 = now_ms();
	deadline = t0 + atol(argv[4]) * 1000LL;
	if (send(fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL) < 0) {
		printf("closed_after_ms=%lld\n", now_ms() - t0);
		return 0;
	}
	while (wait_in(fd, deadline)) {
		if (read(fd, buf, sizeof(buf)) <= 0) {
			printf("closed_after_ms=%lld\n", now_ms() - t0);
			close(fd);
			return 0;
		}
	}
	printf("open_after_ms=%lld\n", now_ms() - t0);
	close(fd);
	return 0;
}

/*
 * trickle HOST PORT EVERY_S MAX_S: a request that never ends, one header
 * line every EVERY_S seconds, so the connection is never idle; prints
 * closed_after_ms=N or open_after_ms=N like slow.
 */
static int do_trickle(int argc, char **argv)
{
	static const char start[] = "GET /metrics HTTP/1.1\r\nHost: kbreaker\r\n";
	long long t0, deadline, next;
	char buf[4096], line[64];
	int fd, n = 0;

	if (argc != 6)
		return 2;
	fd = connect_to(argv[2], argv[3]);
	if (fd < 0)
		return 1;
	t0 = now_ms();
	deadline = t0 + atol(argv[5]) * 1000LL;
	if (send(fd, start, sizeof(start) - 1, MSG_NOSIGNAL) < 0)
		goto closed;
	for (next = t0 + atol(argv[4]) * 1000LL; now_ms() < deadline;) {
		long long until = next < deadline ? next : deadline;

		if (wait_in(fd, until)) {
			if (read(fd, buf, sizeof(buf)) <= 0)
				goto closed;
			continue;
		}
		if (now_ms() < next)
			continue;
		snprintf(line, sizeof(line), "X-Trickle-%d: x\r\n", n++);
		if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
			goto closed;
		next += atol(argv[4]) * 1000LL;
	}
	printf("open_after_ms=%lld\n", now_ms() - t0);
	close(fd);
	return 0;
closed:
	printf("closed_after_ms=%lld\n", now_ms() - t0);
	close(fd);
	return 0;
}

/* One flood connection: socket, source address, non-blocking connect; -1 on failure. */
static int flood_open(const struct sockaddr_storage *dst, socklen_t dst_len, long nsrc, long i)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (nsrc > 1) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(0x7f000100u + 1 + i % nsrc);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src))) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (const struct sockaddr *)dst, dst_len) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static volatile sig_atomic_t flood_stop;

static void on_term(int sig)
{
	flood_stop = 1;
}

static int do_flood(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };	/* no SA_RESTART: poll returns */
	static const char partial[] = "GET /metrics HTTP/1.1\r\nHost: kbreaker\r\n";
	static struct pollfd pfd[MAX_FLOOD];
	static char state[MAX_FLOOD];	/* 0 connecting, 1 connected, 2 failed, 3 closed by server */
	long n_conns, nsrc, opened = 0, connected = 0, failed = 0, closed = 0, reopened = 0,
	     open_end = 0;
	bool idle = false, reopen = false;
	struct sockaddr_storage ss;
	struct rlimit rl;
	long long deadline;
	socklen_t sl;
	char buf[4096];

	if (argc < 6 || argc > 9)
		return 2;
	sl = tool_sockaddr_arg("httpabuse", argv[2], argv[3], &ss);
	n_conns = atol(argv[4]);
	nsrc = argc >= 7 ? atol(argv[6]) : 1;
	if (argc >= 8)
		idle = !strcmp(argv[7], "idle");
	if (argc == 9)
		reopen = !strcmp(argv[8], "reopen");
	if (n_conns < 1 || n_conns > MAX_FLOOD || nsrc < 1 || nsrc > 254 || ss.ss_family != AF_INET ||
	    (argc >= 8 && !idle && strcmp(argv[7], "half")) || (argc == 9 && !reopen)) {
		fprintf(stderr, "httpabuse: flood: N in 1..%d, NSRC in 1..254, half|idle, reopen; IPv4 only\n",
			MAX_FLOOD);
		return 2;
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)n_conns + 16) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigaction(SIGTERM, &sa, NULL);
	deadline = now_ms() + atol(argv[5]) * 1000LL;
	for (long i = 0; i < n_conns; i++) {
		pfd[i].fd = flood_open(&ss, sl, nsrc, i);
		pfd[i].events = POLLOUT;
		state[i] = pfd[i].fd < 0 ? 2 : 0;
		if (pfd[i].fd < 0)
			failed++;
		else
			opened++;
	}
	while (!flood_stop && now_ms() < deadline) {
		int r = poll(pfd, n_conns, (int)(deadline - now_ms()));

		if (r <= 0)
			continue;
		for (long i = 0; i < n_conns; i++) {
			int err = 0;
			socklen_t el = sizeof(err);

			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			if (state[i] == 0) {
				getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || (pfd[i].revents & (POLLERR | POLLHUP))) {
					state[i] = 2;
					failed++;
				} else {
					state[i] = 1;
					connected++;
					if (!idle)
						send(pfd[i].fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL);
					pfd[i].events = POLLIN;
					continue;
				}
			} else if (read(pfd[i].fd, buf, sizeof(buf)) <= 0) {
				state[i] = 3;
				closed++;
			} else {
				continue;
			}
			close(pfd[i].fd);
			pfd[i].fd = -1;
			if (!reopen)
				continue;
			pfd[i].fd = flood_open(&ss, sl, nsrc, i);
			pfd[i].events = POLLOUT;
			if (pfd[i].fd < 0) {
				failed++;
				continue;	/* not retried: nothing here spins */
			}
			state[i] = 0;
			opened++;
			reopened++;
		}
	}
	for (long i = 0; i < n_conns; i++) {
		if (pfd[i].fd < 0)
			continue;
		if (state[i] == 1)
			open_end++;
		close(pfd[i].fd);
	}
	printf("opened=%ld connected=%ld failed=%ld closed_by_server=%ld reopened=%ld open_at_end=%ld\n",
	       opened, connected, failed, closed, reopened, open_end);
	return 0;
}

/* A slow reader's connection: small receive buffer (set before connect: it sizes the window). */
static int slowread_open(const struct sockaddr_storage *dst, socklen_t dst_len)
{
	int fd = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rcvbuf = SLOWREAD_RCVBUF;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(fd, (const struct sockaddr *)dst, dst_len) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static int do_slowread(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };	/* no SA_RESTART: poll returns */
	static struct pollfd pfd[MAX_FLOOD];
	static long long opened_ms[MAX_FLOOD];
	static bool done[MAX_FLOOD];
	long n_conns, opened = 0, closed = 0;
	long long deadline, next_tick, bytes = 0, longest = 0, per_tick;
	struct sockaddr_storage ss;
	char req[512], buf[SLOWREAD_RCVBUF];
	socklen_t sl;
	int req_len;

	if (argc != 8)
		return 2;
	sl = tool_sockaddr_arg("httpabuse", argv[2], argv[3], &ss);
	n_conns = atol(argv[4]);
	req_len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: kbreaker\r\n\r\n", argv[6]);
	per_tick = atol(argv[7]) * 1024 * SLOWREAD_TICK_MS / 1000;
	if (n_conns < 1 || n_conns > MAX_FLOOD || req_len >= (int)sizeof(req) || per_tick < 1) {
		fprintf(stderr, "httpabuse: slowread: N in 1..%d, a short PATH, KIB_S >= 1\n", MAX_FLOOD);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	deadline = now_ms() + atol(argv[5]) * 1000LL;
	next_tick = now_ms();
	for (long i = 0; i < n_conns; i++)
		pfd[i].fd = -1;
	while (!flood_stop && now_ms() < deadline) {
		long long now = now_ms();

		if (now >= next_tick) {
			/* Each connection takes what one tick allows; one closed stays closed. */
			for (long i = 0; i < n_conns; i++) {
				long long got = 0;
				ssize_t n = 0;

				if (pfd[i].fd >= 0 && !pfd[i].events) {
					while (got < per_tick) {
						size_t want = per_tick - got < (long long)sizeof(buf)
							      ? (size_t)(per_tick - got) : sizeof(buf);

						n = read(pfd[i].fd, buf, want);
						if (n <= 0)
							break;
						got += n;
					}
					bytes += got;
					if (n > 0 || (n < 0 && errno == EAGAIN))
						continue;
					closed++;
					if (now - opened_ms[i] > longest)
						longest = now - opened_ms[i];
					close(pfd[i].fd);
					pfd[i].fd = -1;
					done[i] = true;
				}
				if (pfd[i].fd < 0 && !done[i]) {
					pfd[i].fd = slowread_open(&ss, sl);
					pfd[i].events = POLLOUT;
					opened_ms[i] = now;
					opened += pfd[i].fd >= 0;
					done[i] = pfd[i].fd < 0;
				}
			}
			next_tick = now + SLOWREAD_TICK_MS;
		}
		if (poll(pfd, n_conns, (int)(next_tick - now_ms())) <= 0)
			continue;
		for (long i = 0; i < n_conns; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLOUT | POLLERR | POLLHUP)))
				continue;
			/* Connected (or failed: the next tick's read tells): the request, whole. */
			send(pfd[i].fd, req, req_len, MSG_NOSIGNAL);
			pfd[i].events = 0;
		}
	}
	for (long i = 0; i < n_conns; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	printf("opened=%ld closed_by_server=%ld bytes=%lld longest_ms=%lld\n", opened, closed, bytes,
	       longest);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "send"))
		return do_send(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "slow"))
		return do_slow(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "trickle"))
		return do_trickle(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "flood"))
		return do_flood(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "slowread"))
		return do_slowread(argc, argv);
	fprintf(stderr, "usage: httpabuse send|slow|trickle|flood|slowread ...\n");
	return 2;
}
