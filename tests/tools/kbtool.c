// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbtool: real sockets for the end-to-end tests.
 *
 *   kbtool connect ADDR PORT COUNT [TIMEOUT_MS] [bind=ADDR] [dev=IFNAME] [family=N]
 *	COUNT sequential blocking TCP connects (COUNT 0: until SIGTERM, which
 *	ends the loop between two connects, never inside one); one reset by
 *	the peer before connect() returned is a success; prints one line
 *	of counts: "success=S refused=R timeout=T unreachable=U eperm=P other=O
 *	max_us=M", then "errno=NAME" for the last error counted in other.
 *	bind=ADDR binds each socket to ADDR (any port) first, dev=IFNAME to
 *	that device (SO_BINDTODEVICE); family=N puts N in the address's
 *	sa_family (a connect the kernel refuses before its SYN).
 *   kbtool pconnect ADDR PORT COUNT [TIMEOUT_MS]
 *	COUNT non-blocking connects at once, each ended by its outcome or by
 *	the timeout (then closed unfinished: "pending" counts those); same line
 *	as connect plus pending=P.
 *   kbtool spconnect ADDR PORT COUNT [TIMEOUT_MS]
 *	pconnect polling without sleeping, then reading SO_ERROR at once: the
 *	error is taken as soon as the kernel stores it, which is before the
 *	kernel has closed the socket.
 *   kbtool fconnect ADDR PORT COUNT
 *	COUNT blocking connects at once, one per child process; same line.
 *	Unlike pconnect, no caller reads SO_ERROR (which clears the socket's
 *	error) before the kernel itself ends the connect.
 *   kbtool cancel ADDR PORT COUNT
 *	non-blocking connects closed at once, before they complete (use a
 *	peer that drops SYNs); prints "pending=P" (not yet finished at close)
 *   kbtool rst ADDR PORT COUNT [from=SADDR SPORT]
 *	connect, then close with SO_LINGER 0 so an RST is sent; prints counts;
 *	from: each socket bound to SADDR:SPORT first (SO_REUSEADDR)
 *   kbtool hold ADDR PORT COUNT
 *	connect, then read until the peer ends the connection (at most 30 s);
 *	prints "success=S reset=R eof=E" (a kbtool listen --rst peer resets)
 *   kbtool rstlater ADDR PORT COUNT
 *	COUNT connects kept open; prints "connected=N" (flushed), then waits
 *	for a line on stdin (a test may move the process to another cgroup
 *	meanwhile) and closes with SO_LINGER 0 as many as the line's number
 *	says, or all the rest for any other line: prints "aborted=N" (N in
 *	all, flushed) after each line, until all are
 *   kbtool lconnect ADDR PORT [TIMEOUT_MS]
 *	one blocking TCP connect per line read on stdin, all from this one
 *	process (a test can move it to another cgroup between two lines), until
 *	EOF; after each connect prints the line of connect for that connect
 *	alone (flushed), so the caller can wait for it
 *   kbtool sconnect ADDR PORT [ADDR PORT...]
 *	one socket connected to each destination in turn (blocking, 5 s at
 *	most each; Linux lets a socket whose connect failed connect again);
 *	prints each connect's error name ("none" for a success) on one line
 *   kbtool reuse ADDR PORT ADDR2 PORT2
 *	one socket: connected to ADDR PORT, that connection ended gracefully
 *	(FIN sent, then read to the peer's end), disconnected with AF_UNSPEC,
 *	then connected to ADDR2 PORT2 and read to that peer's end (5 s at most
 *	each step); prints each step's error name ("none", "eof") on one line
 *   kbtool cgconnect ADDR PORT PARALLEL [TIMEOUT_MS]
 *	per cgroup v2 directory read on stdin (one a line), a child process
 *	that joins that cgroup (its cgroup.procs) and makes one blocking
 *	connect; PARALLEL children at most at once. Prints the line of fconnect
 *	plus nocg=N: children that could not join their cgroup (no connect).
 *   kbtool mvconnect ADDR PORT PARALLEL [TIMEOUT_MS]
 *	cgconnect, but each child makes its socket before it joins the
 *	cgroup: a socket of the parent's cgroup, connected from another.
 *   kbtool notify-recv PATH SECONDS
 *	bind a unix datagram socket at PATH (as systemd's NOTIFY_SOCKET) and
 *	print each message received, one per line, for SECONDS (0: until
 *	SIGTERM, after printing what is already queued)
 *   kbtool udp ADDR PORT
 *	connect() a UDP socket; prints "udp=ok" or "udp=<errno name>"
 *   kbtool udpsink ADDR PORT SECONDS READY_FILE
 *	bind a UDP socket and take every datagram, answering none, for
 *	SECONDS (a name server that does not reply); touches READY_FILE once
 *	bound; prints "datagrams=N"
 *   kbtool listen ADDR PORT SECONDS READY_FILE [--rst]
 *	accept (and close) for SECONDS (0: no limit) or until SIGTERM, then
 *	accept what is still queued and print "accepted=N"; touches READY_FILE
 *	once listening so the caller need not guess. The backlog is SOMAXCONN
 *	(the namespace's net.core.somaxconn caps it): a listener the scheduler
 *	starves neither drops SYNs nor the handshakes' last ACKs, so every
 *	connect that succeeded is accepted. With --rst each accepted connection
 *	is closed with SO_LINGER 0 (an RST to the client).
 *   kbtool connlisten ADDR PORT SECONDS READY_FILE
 *	connect to ADDR:PORT, then listen on the same socket (the port its
 *	connect bound, written to READY_FILE) and accept as listen does; at the
 *	end prints "connect=ERR accepted=N", or "connect=ERR listen=ERR" and
 *	exits 3 when the kernel refuses listen() on that socket
 *   kbtool get http://ADDR:PORT/PATH
 *	an HTTP/1.0 GET of a literal address (IPv6 in brackets); the body on
 *	stdout. Exit status as curl -sf: 7 no connection, 22 a status of 400 or
 *	more, 56 a broken reply. curl needs seconds to start in a guest under
 *	emulation, and the tests scrape /metrics hundreds of times.
 *   kbtool tfolisten|tfoconnect|tfosend|compat|bigopt ...
 *	TCP Fast Open and setsockopt commands: see kbtool_tfo.c
 *   kbtool attached CGROUP
 *	programs attached to the cgroup directory CGROUP at the hooks kbreaker
 *	uses (connect4, connect6, sock_ops, setsockopt), from BPF_PROG_QUERY: prints
 *	"attached=N", or fails. bpftool 7.1's `cgroup show` lists nothing on
 *	Linux 5.10 (it stops at the first attach type that kernel lacks).
 *
 * ADDR is an IPv4 or IPv6 literal; an IPv6 literal uses an AF_INET6 socket,
 * so ::ffff:a.b.c.d exercises the IPv4-mapped path.
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
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "kbtool.h"

struct tally {
	long success, refused, timeout, unreach, eperm, other, pending, reset, eof, max_us;
};

/* Count a connect that ended with err (0: connected); returns its outcome. */
static enum tool_outcome count_err(struct tally *t, int err)
{
	enum tool_outcome o = tool_outcome(err);
	long *n[] = {
		[TOOL_SUCCESS] = &t->success, [TOOL_REFUSED] = &t->refused,
		[TOOL_TIMEOUT] = &t->timeout, [TOOL_UNREACH] = &t->unreach,
		[TOOL_EPERM] = &t->eperm, [TOOL_OTHER] = &t->other,
	};

	(*n[o])++;
	return o;
}

static void print_tally(const struct tally *t)
{
	printf("success=%ld refused=%ld timeout=%ld unreachable=%ld eperm=%ld other=%ld "
	       "pending=%ld reset=%ld eof=%ld max_us=%ld\n", t->success, t->refused, t->timeout,
	       t->unreach, t->eperm, t->other, t->pending, t->reset, t->eof, t->max_us);
}

/*
 * The batch commands (ADDR PORT COUNT [...]): main parses the destination and
 * the count; argv[5] on is each command's own.
 */
static int run_pconnect(const struct tool_dst *d, long count, int argc, char **argv, bool cancel,
			bool spin)
{
	int timeout_ms = argc > 5 ? atoi(argv[5]) : 10000;
	struct tally t = { 0 };
	struct pollfd *p;
	long open_fds;
	long long end;

	p = calloc(count, sizeof(*p));
	for (long i = 0; i < count; i++) {
		p[i].fd = socket(d->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		p[i].events = POLLOUT;
		if (connect(p[i].fd, tool_dst_sa(d), d->len) == 0) {
			t.success++;
			close(p[i].fd);
			p[i].fd = -1;
		} else if (errno != EINPROGRESS) {
			count_err(&t, errno);
			close(p[i].fd);
			p[i].fd = -1;
		} else if (cancel) {
			t.pending++;
			close(p[i].fd);
			p[i].fd = -1;
		}
	}
	end = now_us() + timeout_ms * 1000LL;
	for (;;) {
		open_fds = 0;
		for (long i = 0; i < count; i++)
			open_fds += p[i].fd >= 0;
		if (!open_fds || now_us() >= end)
			break;
		if (poll(p, count, spin ? 0 : (int)((end - now_us()) / 1000) + 1) <= 0)
			continue;
		for (long i = 0; i < count; i++) {
			int err = 0;
			socklen_t el = sizeof(err);

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
			count_err(&t, err);
			close(p[i].fd);
			p[i].fd = -1;
		}
	}
	for (long i = 0; i < count; i++) {
		if (p[i].fd >= 0) {
			t.pending++;
			close(p[i].fd);
		}
	}
	free(p);
	print_tally(&t);
	return 0;
}

static int do_pconnect(const struct tool_dst *d, long count, int argc, char **argv)
{
	return run_pconnect(d, count, argc, argv, false, false);
}

static int do_spconnect(const struct tool_dst *d, long count, int argc, char **argv)
{
	return run_pconnect(d, count, argc, argv, false, true);
}

static int do_cancel(const struct tool_dst *d, long count, int argc, char **argv)
{
	return run_pconnect(d, count, argc, argv, true, false);
}

static int do_fconnect(const struct tool_dst *d, long count, int argc, char **argv)
{
	struct tally t = { 0 };
	int status;

	for (long i = 0; i < count; i++) {
		if (fork() == 0) {
			int fd = socket(d->ss.ss_family, SOCK_STREAM, 0);

			/* The exit status carries the errno (0: connected). */
			_exit(connect(fd, tool_dst_sa(d), d->len) ? errno : 0);
		}
	}
	while (wait(&status) > 0)
		count_err(&t, WIFEXITED(status) ? WEXITSTATUS(status) : EINTR);
	print_tally(&t);
	return 0;
}

/* A cgconnect child that could not join its cgroup (errno values are below). */
#define CG_NOT_JOINED 255

static void cg_count(struct tally *t, long *nocg, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == CG_NOT_JOINED)
		(*nocg)++;
	else
		count_err(t, WIFEXITED(status) ? WEXITSTATUS(status) : EINTR);
}

/*
 * Join cgroup dir, then connect from a new socket; late: make the socket
 * first, in the parent's cgroup, and join dir only before its connect.
 */
static void cg_child(const struct tool_dst *d, const char *dir, int timeout_ms, bool late)
{
	char path[4200];
	FILE *f;
	int fd = -1;

	if (late) {
		fd = tool_tcp_socket(d->ss.ss_family, timeout_ms);
		if (fd < 0)
			_exit(errno);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "w");
	if (!f)
		_exit(CG_NOT_JOINED);
	if (fprintf(f, "%d\n", (int)getpid()) < 0) {
		fclose(f);
		_exit(CG_NOT_JOINED);
	}
	if (fclose(f))
		_exit(CG_NOT_JOINED);
	if (!late)
		fd = tool_tcp_socket(d->ss.ss_family, timeout_ms);
	if (fd < 0)
		_exit(errno);
	/* The exit status carries the errno (0: connected). */
	_exit(connect(fd, tool_dst_sa(d), d->len) ? errno : 0);
}

static int cg_connects(const struct tool_dst *d, long parallel, int argc, char **argv, bool late)
{
	int timeout_ms = argc > 5 ? atoi(argv[5]) : 5000, status, rc = 0;
	long running = 0, nocg = 0;
	struct tally t = { 0 };
	char dir[4096];

	if (parallel < 1)
		return 2;
	while (fgets(dir, sizeof(dir), stdin)) {
		pid_t pid;

		dir[strcspn(dir, "\n")] = 0;
		if (!*dir)
			continue;
		if (running == parallel && wait(&status) > 0) {
			running--;
			cg_count(&t, &nocg, status);
		}
		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			rc = 1;
			break;
		}
		if (pid == 0)
			cg_child(d, dir, timeout_ms, late);
		running++;
	}
	while (wait(&status) > 0)
		cg_count(&t, &nocg, status);
	printf("success=%ld refused=%ld timeout=%ld unreachable=%ld eperm=%ld other=%ld nocg=%ld\n",
	       t.success, t.refused, t.timeout, t.unreach, t.eperm, t.other, nocg);
	return rc;
}

static int do_cgconnect(const struct tool_dst *d, long parallel, int argc, char **argv)
{
	return cg_connects(d, parallel, argc, argv, false);
}

static int do_mvconnect(const struct tool_dst *d, long parallel, int argc, char **argv)
{
	return cg_connects(d, parallel, argc, argv, true);
}

static int rst_or_hold(const struct tool_dst *d, long count, bool hold, const struct tool_dst *src)
{
	struct tally t = { 0 };
	int one = 1;

	for (long i = 0; i < count; i++) {
		/* The peer resets at once, but a loaded machine may take seconds to schedule it. */
		struct timeval tv = { .tv_sec = 30 };
		int fd = socket(d->ss.ss_family, SOCK_STREAM, 0);
		char buf[64];
		ssize_t n;

		if (src->len && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
				 bind(fd, tool_dst_sa(src), src->len))) {
			perror("kbtool rst: bind");
			return 1;
		}
		if (connect(fd, tool_dst_sa(d), d->len)) {
			/*
			 * The handshake completed and the peer's reset came before
			 * connect() returned (a starved caller): both happened.
			 */
			if (hold && errno == ECONNRESET) {
				t.success++;
				t.reset++;
			} else {
				count_err(&t, errno);
			}
			close(fd);
			continue;
		}
		t.success++;
		if (!hold) {
			tool_close_rst(fd);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == ECONNRESET)
			t.reset++;
		else if (n == 0)
			t.eof++;
		else
			t.other++;
		close(fd);
	}
	print_tally(&t);
	return 0;
}

static int do_rst(const struct tool_dst *d, long count, int argc, char **argv)
{
	struct tool_dst src = { .len = 0 };

	if (argc > 6 && !strncmp(argv[5], "from=", 5))
		tool_dst_arg("kbtool", argv[5] + 5, argv[6], &src);
	return rst_or_hold(d, count, false, &src);
}

static int do_hold(const struct tool_dst *d, long count, int argc, char **argv)
{
	return rst_or_hold(d, count, true, &(struct tool_dst){ .len = 0 });
}

static int do_rstlater(const struct tool_dst *d, long count, int argc, char **argv)
{
	long connected = 0, aborted = 0;
	char line[64];
	int fds[64];

	if (count > (long)(sizeof(fds) / sizeof(fds[0])))
		return 2;
	for (long i = 0; i < count; i++) {
		fds[connected] = socket(d->ss.ss_family, SOCK_STREAM, 0);
		if (fds[connected] < 0)
			continue;
		if (connect(fds[connected], tool_dst_sa(d), d->len)) {
			close(fds[connected]);
			continue;
		}
		connected++;
	}
	printf("connected=%ld\n", connected);
	fflush(stdout);
	/* Each line a number aborts that many more; any other line, all the rest. */
	while (aborted < connected && fgets(line, sizeof(line), stdin)) {
		long n = strtol(line, NULL, 10);

		for (long k = 0; aborted < connected && (n <= 0 || k < n); k++)
			tool_close_rst(fds[aborted++]);
		printf("aborted=%ld\n", aborted);
		fflush(stdout);
	}
	return aborted == connected ? 0 : 1;
}

/* SIGTERM held pending, for loops that check it between two steps. */
static void block_sigterm(sigset_t *term)
{
	sigemptyset(term);
	sigaddset(term, SIGTERM);
	sigprocmask(SIG_BLOCK, term, NULL);
}

static bool sigterm_pending(void)
{
	sigset_t pending;

	return !sigpending(&pending) && sigismember(&pending, SIGTERM);
}

static int do_connect(const struct tool_dst *dst, long count, int argc, char **argv)
{
	int timeout_ms = 5000, last_other = 0;
	struct tool_dst src = { .len = 0 }, odd = *dst;
	const struct tool_dst *d = &odd;
	const char *dev = NULL;
	struct tally t = { 0 };
	sigset_t term;

	for (int i = 5; i < argc; i++) {
		if (!strncmp(argv[i], "bind=", 5))
			tool_dst_arg("kbtool", argv[i] + 5, "0", &src);
		else if (!strncmp(argv[i], "dev=", 4))
			dev = argv[i] + 4;
		else if (!strncmp(argv[i], "family=", 7))
			odd.ss.ss_family = (sa_family_t)atoi(argv[i] + 7);
		else
			timeout_ms = atoi(argv[i]);
	}

	/* Until SIGTERM: the signal waits until the connect in flight has ended. */
	if (!count)
		block_sigterm(&term);
	for (long i = 0; count ? i < count : !sigterm_pending(); i++) {
		int fd = tool_tcp_socket(dst->ss.ss_family, timeout_ms), err = 0;
		long long t0;

		if (fd < 0) {
			perror("socket");
			return 1;
		}
		if (src.len && bind(fd, tool_dst_sa(&src), src.len)) {
			perror("kbtool connect: bind");
			return 1;
		}
		if (dev && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, strlen(dev))) {
			perror("kbtool connect: SO_BINDTODEVICE");
			return 1;
		}
		t0 = now_us();
		if (connect(fd, tool_dst_sa(d), d->len))
			err = errno;
		t0 = now_us() - t0;
		if (t0 > t.max_us)
			t.max_us = t0;
		close(fd);
		/*
		 * A blocking connect() fails with these only once its handshake
		 * is done: the peer accepted and reset it (after its FIN: EPIPE)
		 * before this caller, starved, returned. The kernel counted a
		 * success; so does this tally (seen in a 6.12 guest under TCG).
		 */
		if (err == ECONNRESET || err == EPIPE)
			err = 0;
		if (count_err(&t, err) == TOOL_OTHER)
			last_other = err;
	}
	printf("success=%ld refused=%ld timeout=%ld unreachable=%ld eperm=%ld other=%ld max_us=%ld "
	       "errno=%s\n", t.success, t.refused, t.timeout, t.unreach, t.eperm, t.other, t.max_us,
	       err_name(last_other));
	return 0;
}

static int do_lconnect(int argc, char **argv)
{
	int timeout_ms = argc > 4 ? atoi(argv[4]) : 5000;
	struct tool_dst d;
	char line[256];

	if (argc < 4)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	setvbuf(stdin, NULL, _IONBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		struct tally t = { 0 };
		int fd = tool_tcp_socket(d.ss.ss_family, timeout_ms), err = 0;
		long long t0;

		if (fd < 0) {
			perror("socket");
			return 1;
		}
		t0 = now_us();
		if (connect(fd, tool_dst_sa(&d), d.len))
			err = errno;
		t.max_us = now_us() - t0;
		close(fd);
		count_err(&t, err);
		printf("success=%ld refused=%ld timeout=%ld unreachable=%ld eperm=%ld other=%ld max_us=%ld "
		       "errno=%s\n", t.success, t.refused, t.timeout, t.unreach, t.eperm, t.other, t.max_us,
		       err_name(err));
		fflush(stdout);
	}
	return 0;
}

static int do_sconnect(int argc, char **argv)
{
	struct tool_dst d;
	int fd = -1, err;

	if (argc < 4 || argc % 2)
		return 2;
	for (int i = 2; i < argc; i += 2) {
		tool_dst_arg("kbtool", argv[i], argv[i + 1], &d);
		if (fd < 0)
			fd = tool_tcp_socket(d.ss.ss_family, 5000);
		if (fd < 0) {
			perror("socket");
			return 1;
		}
		err = connect(fd, tool_dst_sa(&d), d.len) ? errno : 0;
		printf("%s%s", i > 2 ? " " : "", err_name(err));
	}
	putchar('\n');
	close(fd);
	return 0;
}

/* Reads until the peer ends the connection: "eof", or the error's name. */
static const char *read_to_end(int fd)
{
	struct timeval tv = { .tv_sec = 5 };
	char buf[512];
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	return n ? strerrorname_np(errno) : "eof";
}

static int do_reuse(int argc, char **argv)
{
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	struct tool_dst a, b;
	int fd, err;

	if (argc < 6)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &a);
	tool_dst_arg("kbtool", argv[4], argv[5], &b);
	fd = tool_tcp_socket(a.ss.ss_family, 5000);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	err = connect(fd, tool_dst_sa(&a), a.len) ? errno : 0;
	printf("%s", err_name(err));
	if (!err) {
		shutdown(fd, SHUT_WR);
		printf(" %s", read_to_end(fd));
	}
	err = connect(fd, &unspec, sizeof(unspec)) ? errno : 0;
	printf(" %s", err_name(err));
	err = connect(fd, tool_dst_sa(&b), b.len) ? errno : 0;
	printf(" %s", err_name(err));
	if (!err)
		printf(" %s", read_to_end(fd));
	putchar('\n');
	close(fd);
	return 0;
}

static int do_udp(int argc, char **argv)
{
	struct tool_dst d;
	int fd;

	if (argc < 4)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	fd = socket(d.ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, tool_dst_sa(&d), d.len)) {
		printf("udp=%s\n", strerrorname_np(errno));
		return 0;
	}
	close(fd);
	printf("udp=ok\n");
	return 0;
}

/*
 * A UDP port that takes every datagram and answers none, for SECONDS: a
 * name server that does not reply. Touches READY_FILE once bound; prints
 * "datagrams=N".
 */
static int do_udpsink(int argc, char **argv)
{
	struct tool_dst d;
	char buf[512];
	long n = 0;
	time_t end;
	FILE *f;
	int fd;

	if (argc < 6)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	end = time(NULL) + atol(argv[4]);
	fd = socket(d.ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, tool_dst_sa(&d), d.len)) {
		perror("kbtool udpsink: bind");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 1 }, sizeof(struct timeval));
	f = fopen(argv[5], "w");
	if (f)
		fclose(f);
	while (time(NULL) < end)
		if (recv(fd, buf, sizeof(buf), 0) >= 0)
			n++;
	close(fd);
	printf("datagrams=%ld\n", n);
	return 0;
}

/* accept and close what is queued on the non-blocking fd; returns how many. */
static long accept_queued(int fd, bool rst)
{
	long n = 0;
	int c;

	while ((c = accept(fd, NULL, NULL)) >= 0) {
		n++;
		if (rst)
			tool_close_rst(c);
		else
			close(c);
	}
	return n;
}

bool wait_readable(int fd, long long end_us, const sigset_t *unblocked)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec ts, *tsp = NULL;

	if (end_us) {
		long long left = end_us - now_us();

		if (left <= 0)
			return false;
		ts.tv_sec = left / 1000000;
		ts.tv_nsec = left % 1000000 * 1000;
		tsp = &ts;
	}
	/* SIGTERM is blocked except inside ppoll: it cannot slip in before the wait. */
	return ppoll(&p, 1, tsp, unblocked) >= 0 || errno == EINTR;
}

volatile sig_atomic_t got_sigterm;

static void on_term(int sig)
{
	got_sigterm = 1;
}

void catch_sigterm(sigset_t *unblocked)
{
	struct sigaction sa = { .sa_handler = on_term };
	sigset_t term;

	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, unblocked);
	sigdelset(unblocked, SIGTERM);
}

/*
 * Accept (accept_queued) on the non-blocking listener fd for seconds (0:
 * no limit) or until SIGTERM; returns how many, those the kernel completed
 * before the stop included.
 */
static long accept_until(int fd, long seconds, bool rst, const sigset_t *unblocked)
{
	long long end = seconds > 0 ? now_us() + seconds * 1000000LL : 0;
	long accepted = 0;

	while (!got_sigterm && wait_readable(fd, end, unblocked))
		accepted += accept_queued(fd, rst);
	return accepted + accept_queued(fd, rst);
}

static int do_listen(int argc, char **argv)
{
	struct tool_dst d;
	sigset_t unblocked;
	int fd, one = 1;
	bool rst = argc > 6 && !strcmp(argv[6], "--rst");
	FILE *ready;

	if (argc < 6)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	catch_sigterm(&unblocked);
	fd = socket(d.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, tool_dst_sa(&d), d.len) || listen(fd, SOMAXCONN)) {
		perror("kbtool: listen");
		return 1;
	}
	ready = fopen(argv[5], "w");
	if (ready)
		fclose(ready);
	printf("accepted=%ld\n", accept_until(fd, atol(argv[4]), rst, &unblocked));
	return 0;
}

/*
 * connlisten: connect, then listen on the same socket (its port, bound by
 * the connect), which hands the callbacks the connect asked for to every
 * connection it accepts.
 */
static int do_connlisten(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct tool_dst d;
	sigset_t unblocked;
	int fd, err;
	FILE *ready;

	if (argc < 6)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	catch_sigterm(&unblocked);
	fd = socket(d.ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("kbtool: socket");
		return 1;
	}
	err = connect(fd, tool_dst_sa(&d), d.len) ? errno : 0;
	/* Some kernels (6.18.44-fc-v1045) refuse listen() on a socket that connected: say so. */
	if (listen(fd, SOMAXCONN)) {
		printf("connect=%s listen=%s\n", err_name(err), err_name(errno));
		return 3;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) || fcntl(fd, F_SETFL, O_NONBLOCK)) {
		perror("kbtool: connlisten");
		return 1;
	}
	ready = fopen(argv[5], "w");
	if (ready) {
		fprintf(ready, "%u\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
		fclose(ready);
	}
	printf("connect=%s accepted=%ld\n", err_name(err),
	       accept_until(fd, atol(argv[4]), false, &unblocked));
	return 0;
}

/* Print each datagram queued on the non-blocking fd, one per line. */
static void print_queued(int fd)
{
	char buf[256];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) >= 0) {
		buf[n] = '\0';
		printf("%s\n", buf);
	}
}

static int do_notify_recv(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	sigset_t unblocked;
	long long end = 0;
	long seconds;
	int fd;

	if (argc < 4 || strlen(argv[2]) >= sizeof(sa.sun_path))
		return 2;
	strcpy(sa.sun_path, argv[2]);
	seconds = atol(argv[3]);
	catch_sigterm(&unblocked);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("kbtool: notify socket");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (seconds > 0)
		end = now_us() + seconds * 1000000LL;
	while (!got_sigterm && wait_readable(fd, end, &unblocked))
		print_queued(fd);
	/* What was sent before the stop is printed, not lost. */
	print_queued(fd);
	return 0;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *name;
	int (*run)(const struct tool_dst *d, long count, int argc, char **argv);
} batches[] = {
	{ "connect", do_connect }, { "pconnect", do_pconnect }, { "spconnect", do_spconnect },
	{ "fconnect", do_fconnect }, { "cancel", do_cancel }, { "rst", do_rst }, { "hold", do_hold },
	{ "cgconnect", do_cgconnect }, { "mvconnect", do_mvconnect }, { "rstlater", do_rstlater },
};

static int do_attached(int argc, char **argv)
{
	static const enum bpf_attach_type hooks[] = {
		BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_SOCK_OPS,
		BPF_CGROUP_SETSOCKOPT,
	};
	unsigned long total = 0;
	int fd;

	if (argc < 3)
		return 2;
	fd = open(argv[2], O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(hooks); i++) {
		union bpf_attr attr;

		memset(&attr, 0, sizeof(attr));
		attr.query.target_fd = fd;
		attr.query.attach_type = hooks[i];
		if (syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr))) {
			perror("kbtool: BPF_PROG_QUERY");
			close(fd);
			return 1;
		}
		total += attr.query.prog_cnt;
	}
	close(fd);
	printf("attached=%lu\n", total);
	return 0;
}

/* write() all of buf; false on error. */
static bool write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

/*
 * "http://ADDR:PORT/PATH" split into its parts: ADDR in place in url, the
 * port copied to port (the path starts right after it); false if it is not
 * one.
 */
static bool split_url(char *url, char **host, char port[8], const char **path)
{
	char *p;
	size_t n;

	if (strncmp(url, "http://", 7))
		return false;
	p = url + 7;
	if (*p == '[') {
		*host = ++p;
		p = strchr(p, ']');
		if (!p)
			return false;
		*p++ = '\0';
	} else {
		*host = p;
		p += strcspn(p, ":/");
	}
	if (*p != ':')
		return false;
	*p++ = '\0';
	n = strcspn(p, "/");
	if (!n || n > 7)
		return false;
	memcpy(port, p, n);
	port[n] = '\0';
	*path = p[n] ? p + n : "/";
	return true;
}

static int do_get(int argc, char **argv)
{
	static char buf[65536];
	char req[1024], port[8], *host, *body, *end;
	struct timeval tv = { .tv_sec = 60 };
	struct sockaddr_storage ss;
	size_t have = 0;
	const char *path;
	socklen_t sl;
	ssize_t n;
	int fd, status;

	if (argc != 3 || !split_url(argv[2], &host, port, &path)) {
		fprintf(stderr, "usage: kbtool get http://ADDR:PORT/PATH\n");
		return 2;
	}
	sl = tool_sockaddr_arg("kbtool", host, port, &ss);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	/* A stuck agent fails the scrape instead of hanging the test. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl))
		return 7;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n", path, host, port);
	if (!write_all(fd, req, strlen(req)))
		return 7;
	/* HTTP/1.0: the body runs to the end of the connection, never chunked. */
	while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
		if (have == sizeof(buf) - 1)
			return 56;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			return 56;
		have += (size_t)n;
	}
	buf[have] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return 56;
	if (status >= 400)
		return 22;
	body = end + 4;
	if (!write_all(STDOUT_FILENO, body, have - (size_t)(body - buf)))
		return 23;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (!write_all(STDOUT_FILENO, buf, (size_t)n))
			return 23;
	close(fd);
	return n < 0 ? 56 : 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	struct tool_dst d;

	for (size_t i = 0; i < ARRAY_SIZE(batches); i++) {
		if (strcmp(cmd, batches[i].name))
			continue;
		if (argc < 5)
			return 2;
		tool_dst_arg("kbtool", argv[2], argv[3], &d);
		return batches[i].run(&d, atol(argv[4]), argc, argv);
	}
	if (!strcmp(cmd, "notify-recv"))
		return do_notify_recv(argc, argv);
	if (!strcmp(cmd, "udp"))
		return do_udp(argc, argv);
	if (!strcmp(cmd, "udpsink"))
		return do_udpsink(argc, argv);
	if (!strcmp(cmd, "lconnect"))
		return do_lconnect(argc, argv);
	if (!strcmp(cmd, "sconnect"))
		return do_sconnect(argc, argv);
	if (!strcmp(cmd, "reuse"))
		return do_reuse(argc, argv);
	if (!strcmp(cmd, "listen"))
		return do_listen(argc, argv);
	if (!strcmp(cmd, "connlisten"))
		return do_connlisten(argc, argv);
	if (!strcmp(cmd, "attached"))
		return do_attached(argc, argv);
	if (!strcmp(cmd, "tfolisten"))
		return do_tfolisten(argc, argv);
	if (!strcmp(cmd, "tfoconnect"))
		return do_tfoconnect(argc, argv);
	if (!strcmp(cmd, "tfosend"))
		return do_tfosend(argc, argv);
	if (!strcmp(cmd, "bigopt"))
		return do_bigopt();
	if (!strcmp(cmd, "compat"))
		return do_compat();
	if (!strcmp(cmd, "get"))
		return do_get(argc, argv);
	fprintf(stderr, "usage: kbtool connect|pconnect|spconnect|fconnect|cancel|rst|hold|rstlater|cgconnect|mvconnect|lconnect|sconnect|reuse|notify-recv|udp|udpsink|listen|connlisten|tfolisten|tfoconnect|tfosend|compat|bigopt|attached|get ...\n");
	return 2;
}
