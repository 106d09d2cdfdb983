// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbbench: the clients and helpers of `make bench`. Real sockets, bounded loops.
 *
 *   kbbench loop open|fin|closed ADDR PORT N [PROCS]
 *	N x (socket, connect, [accept], close) to ADDR:PORT; "open" and "fin"
 *	listen on ADDR:PORT in this process and accept each connection.
 *	Sockets close with SO_LINGER 0 (RST) so no TIME_WAIT piles up over
 *	many rounds; with "fin" the client closes first, gracefully, and each
 *	connect leaves a TIME_WAIT for 60 s (reused only a second on): keep N
 *	well below the ephemeral port range.
 *	With PROCS, a cgroup's cgroup.procs file, the process joins that cgroup
 *	once it made its listener: the server's sockets (accepted ones inherit
 *	the listener's cgroup) stay outside, like a peer on another host, and
 *	only the client's connects are in the cgroup. `ip netns exec` remounts
 *	/sys, so the caller opens the file before and passes /dev/fd/N.
 *	Prints "ns_per_op=X ok=N bad=M".
 *   kbbench lat ADDR PORT N [TIMEOUT_MS]
 *	N sequential blocking connects; times connect() alone.
 *	Prints "n= p50_ns= p90_ns= p99_ns= min_ns= max_ns= success= refused= timeout= other=".
 *   kbbench trip ADDR PORT FAILS TRIPS OPEN_MS SETTLE_MS
 *	Trip latency (see bench/README.md): FAILS refused connects; the instant
 *	the last returns, listen on PORT and spin connect() until one fails
 *	with ECONNREFUSED: the breaker's verdict is in force. Then wait for
 *	half_open, let one probe succeed, wait SETTLE_MS for the agent to
 *	close the breaker, repeat. Prints percentiles of the trip latency and
 *	"blocked=" (connects this client saw refused by the hook).
 *   kbbench load ADDR PORT RATE SECONDS
 *	Paced connects at RATE per second (to a closed port: failing connects).
 *	Prints "connects= seconds= rate=".
 *   kbbench stats
 *	Numbers on stdin, one a line; prints "n= median= p25= p75= iqr= p99= min= max=".
 *   kbbench enable-stats SECONDS
 *	bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME) held for SECONDS or until
 *	SIGTERM/SIGINT: run_time_ns/run_cnt are counted only meanwhile.
 */
#include <errno.h>
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
#include "../tests/tools/tool.h"


static void sleep_ns(long long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* tool_tcp_socket, or the end of the program. */
static int tcp_socket(int family, int timeout_ms)
{
	int fd = tool_tcp_socket(family, timeout_ms);

	if (fd < 0) {
		perror("kbbench: socket");
		exit(1);
	}
	return fd;
}

/* A bound socket; listening only when backlog > 0. */
static int bound_socket(const struct sockaddr_storage *ss, socklen_t sl, int backlog)
{
	int fd = socket(ss->ss_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)ss, sl) || (backlog > 0 && listen(fd, backlog))) {
		perror("kbbench: bind/listen");
		exit(1);
	}
	return fd;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static long long pct(const long long *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p / 100.0 * n);
	return v[i >= n ? n - 1 : i];
}

/* Move this process into the cgroup of procs, its cgroup.procs ("0" names the writer). */
static int join_cgroup(const char *procs)
{
	FILE *f;
	int bad;

	f = fopen(procs, "w");
	if (!f) {
		perror(procs);
		return -1;
	}
	bad = fputs("0\n", f) < 0;
	bad |= fclose(f) != 0;
	if (bad)
		perror(procs);
	return bad ? -1 : 0;
}

static int do_loop(int argc, char **argv)
{
	struct sockaddr_storage ss;
	long ok = 0, bad = 0, n;
	int open_port, graceful, lfd = -1;
	long long t0;
	socklen_t sl;

	if (argc < 6)
		return 2;
	graceful = !strcmp(argv[2], "fin");
	open_port = graceful || !strcmp(argv[2], "open");
	sl = tool_sockaddr_arg("kbbench", argv[3], argv[4], &ss);
	n = atol(argv[5]);
	if (open_port)
		lfd = bound_socket(&ss, sl, 1024);
	if (argc > 6 && join_cgroup(argv[6]))
		return 1;
	t0 = tool_now_ns();
	for (long i = 0; i < n; i++) {
		int fd = tcp_socket(ss.ss_family, 0), rc = connect(fd, (struct sockaddr *)&ss, sl);

		if (open_port) {
			if (rc == 0) {
				int c = accept(lfd, NULL, NULL);

				if (graceful)
					close(fd);
				else
					tool_close_rst(fd);
				if (c >= 0)
					close(c);
				ok++;
				continue;
			}
			bad++;
		} else {
			if (rc && errno == ECONNREFUSED)
				ok++;
			else
				bad++;
		}
		tool_close_rst(fd);
	}
	t0 = tool_now_ns() - t0;
	printf("ns_per_op=%.1f ok=%ld bad=%ld\n", n ? (double)t0 / n : 0.0, ok, bad);
	if (lfd >= 0)
		close(lfd);
	return 0;
}

static int do_lat(int argc, char **argv)
{
	long n_outcome[TOOL_OTHER + 1] = { 0 };
	struct sockaddr_storage ss;
	long long *v;
	socklen_t sl;
	long n;
	int timeout_ms;

	if (argc < 5)
		return 2;
	sl = tool_sockaddr_arg("kbbench", argv[2], argv[3], &ss);
	n = atol(argv[4]);
	timeout_ms = argc > 5 ? atoi(argv[5]) : 5000;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return 1;
	for (long i = 0; i < n; i++) {
		int fd = tcp_socket(ss.ss_family, timeout_ms), rc, err;
		long long t0 = tool_now_ns();

		rc = connect(fd, (struct sockaddr *)&ss, sl);
		err = rc ? errno : 0;
		v[i] = tool_now_ns() - t0;
		tool_close_rst(fd);
		n_outcome[tool_outcome(err)]++;
	}
	qsort(v, n, sizeof(*v), cmp_ll);
	printf("n=%ld p50_ns=%lld p90_ns=%lld p99_ns=%lld min_ns=%lld max_ns=%lld "
	       "success=%ld refused=%ld timeout=%ld other=%ld\n",
	       n, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99), n ? v[0] : 0, n ? v[n - 1] : 0,
	       n_outcome[TOOL_SUCCESS], n_outcome[TOOL_REFUSED], n_outcome[TOOL_TIMEOUT],
	       /* This line has no column of its own for unreachable or EPERM. */
	       n_outcome[TOOL_UNREACH] + n_outcome[TOOL_EPERM] + n_outcome[TOOL_OTHER]);
	free(v);
	return 0;
}

/* One connect; 0 on success (accepted and closed), else the errno. */
static int try_connect(const struct sockaddr_storage *ss, socklen_t sl, int lfd)
{
	int fd = tcp_socket(ss->ss_family, 1000), err = 0;

	if (connect(fd, (const struct sockaddr *)ss, sl))
		err = errno;
	if (!err && lfd >= 0) {
		int c = accept(lfd, NULL, NULL);

		if (c >= 0)
			close(c);
	}
	tool_close_rst(fd);
	return err;
}

static int do_trip(int argc, char **argv)
{
	struct sockaddr_storage ss;
	long fails, trips, done = 0, blocked = 0, early = 0, missed = 0, spins = 0;
	long long open_ns, settle_ns, *v;
	socklen_t sl;

	if (argc < 8)
		return 2;
	sl = tool_sockaddr_arg("kbbench", argv[2], argv[3], &ss);
	fails = atol(argv[4]);
	trips = atol(argv[5]);
	open_ns = atoll(argv[6]) * 1000000LL;
	settle_ns = atoll(argv[7]) * 1000000LL;
	v = calloc(trips ? trips : 1, sizeof(*v));
	if (!v)
		return 1;
	for (long t = 0; t < trips; t++) {
		int lfd = bound_socket(&ss, sl, 0), err = 0, tripped = 0;
		long long t0, deadline;

		/* Bound, not listening: the peer answers SYNs with RST. */
		for (long k = 0; k < fails; k++) {
			err = try_connect(&ss, sl, -1);
			if (err != ECONNREFUSED)
				early++;
		}
		t0 = tool_now_ns();
		if (listen(lfd, 4096)) {
			perror("kbbench: listen");
			return 1;
		}
		deadline = t0 + 2000000000LL;
		while (tool_now_ns() < deadline) {
			err = try_connect(&ss, sl, lfd);
			if (err == ECONNREFUSED) {
				v[done++] = tool_now_ns() - t0;
				blocked++;
				tripped = 1;
				break;
			}
			spins++;
		}
		if (!tripped && ++missed >= 3 && !done) {
			/* No verdict three times over: no agent, or not this destination. */
			fprintf(stderr, "kbbench: trip: no verdict in force after 3 tries; giving up\n");
			break;
		}
		/* half_open after open_duration: the probe's refusals are the hook's too. */
		sleep_ns(open_ns);
		deadline = tool_now_ns() + 5000000000LL;
		while ((err = try_connect(&ss, sl, lfd)) == ECONNREFUSED && tool_now_ns() < deadline) {
			blocked++;
			sleep_ns(2000000);
		}
		if (err == ECONNREFUSED)
			blocked++;
		close(lfd);
		/* Successes do not wake the agent: it closes the breaker at its next poll. */
		sleep_ns(settle_ns);
	}
	qsort(v, done, sizeof(*v), cmp_ll);
	printf("trips=%ld p50_ns=%lld p90_ns=%lld p99_ns=%lld min_ns=%lld max_ns=%lld "
	       "blocked=%ld early=%ld missed=%ld successes_before_verdict=%ld\n",
	       done, pct(v, done, 50), pct(v, done, 90), pct(v, done, 99), done ? v[0] : 0,
	       done ? v[done - 1] : 0, blocked, early, missed, spins);
	free(v);
	return 0;
}

static int do_load(int argc, char **argv)
{
	struct sockaddr_storage ss;
	long long t0, end, now, rate, sent = 0;
	socklen_t sl;

	if (argc < 6)
		return 2;
	sl = tool_sockaddr_arg("kbbench", argv[2], argv[3], &ss);
	rate = atoll(argv[4]);
	t0 = tool_now_ns();
	end = t0 + atoll(argv[5]) * 1000000000LL;
	while ((now = tool_now_ns()) < end) {
		long long due = (now - t0) * rate / 1000000000LL;

		if (sent >= due) {
			sleep_ns((sent + 1) * 1000000000LL / rate - (now - t0));
			continue;
		}
		try_connect(&ss, sl, -1);
		sent++;
	}
	now = tool_now_ns() - t0;
	printf("connects=%lld seconds=%.2f rate=%.0f\n", sent, now / 1e9, sent / (now / 1e9));
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Linear-interpolated quantile of a sorted array (as R's type 7). */
static double quantile(const double *v, size_t n, double q)
{
	double h = (n - 1) * q;
	size_t lo = (size_t)h;

	if (!n)
		return 0;
	if (lo + 1 >= n)
		return v[n - 1];
	return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

static int do_stats(void)
{
	size_t n = 0, cap = 1024;
	double *v = malloc(cap * sizeof(*v)), x;

	if (!v)
		return 1;
	while (scanf("%lf", &x) == 1) {
		if (n == cap) {
			double *nv = realloc(v, (cap *= 2) * sizeof(*v));

			if (!nv)
				return 1;
			v = nv;
		}
		v[n++] = x;
	}
	qsort(v, n, sizeof(*v), cmp_d);
	printf("n=%zu median=%.1f p25=%.1f p75=%.1f iqr=%.1f p99=%.1f min=%.1f max=%.1f\n", n,
	       quantile(v, n, 0.5), quantile(v, n, 0.25), quantile(v, n, 0.75),
	       quantile(v, n, 0.75) - quantile(v, n, 0.25), quantile(v, n, 0.99),
	       n ? v[0] : 0, n ? v[n - 1] : 0);
	free(v);
	return 0;
}

static volatile sig_atomic_t stop_waiting;

static void on_term(int sig)
{
	(void)sig;
	stop_waiting = 1;
}

static int do_enable_stats(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	union bpf_attr attr;
	long long end;
	int fd;

	if (argc < 3)
		return 2;
	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	fd = syscall(__NR_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
	if (fd < 0) {
		perror("kbbench: BPF_ENABLE_STATS");
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("enabled\n");
	fflush(stdout);
	end = tool_now_ns() + atoll(argv[2]) * 1000000000LL;
	while (!stop_waiting && tool_now_ns() < end)
		sleep_ns(10000000);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "loop"))
		return do_loop(argc, argv);
	if (!strcmp(cmd, "lat"))
		return do_lat(argc, argv);
	if (!strcmp(cmd, "trip"))
		return do_trip(argc, argv);
	if (!strcmp(cmd, "load"))
		return do_load(argc, argv);
	if (!strcmp(cmd, "stats"))
		return do_stats();
	if (!strcmp(cmd, "enable-stats"))
		return do_enable_stats(argc, argv);
	fprintf(stderr, "usage: kbbench loop|lat|trip|load|stats|enable-stats ...\n");
	return 2;
}
