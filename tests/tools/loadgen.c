// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loadgen: a paced TCP connect load generator that keeps its own ground truth.
 *
 *   loadgen SECONDS THREADS FAIL_ADDR FAIL_PORT FAIL_RATE [OK_ADDR OK_PORT OK_RATE]
 *
 * THREADS threads each make blocking connects, paced so that together they
 * attempt FAIL_RATE connects/s to FAIL_ADDR:FAIL_PORT (meant to be refused: a
 * closed port) and OK_RATE connects/s to OK_ADDR:OK_PORT (meant to succeed: a
 * listener), for SECONDS. On loopback a refusal (the peer's RST) and an accept
 * both complete inside connect(), so a blocking connect costs microseconds.
 * A successful connect is closed with SO_LINGER 0 (a reset): no TIME_WAIT, so
 * a long run cannot exhaust the ephemeral ports. A rate the threads cannot
 * keep up with is not made up later: the achieved rate is reported.
 *
 * Prints one line of exact counts, by what connect() returned (timeout: the
 * 5 s SO_SNDTIMEO expired and the connect was abandoned, which the kernel
 * sees as a cancel; errno: the last one counted in other, or none):
 *   "elapsed_ms=E fail_refused=R fail_success=S fail_timeout=T fail_other=O
 *    ok_success=S ok_refused=R ok_timeout=T ok_other=O fail_rate=N ok_rate=N
 *    fail_errno=NAME ok_errno=NAME"
 * Exit 0, or 2 on usage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "tool.h"

#define MAX_THREADS 64

struct target {
	struct sockaddr_storage ss;
	socklen_t sl;
	double rate;		/* connects/s, all threads together */
};

struct counts {
	long success, refused, timeout, other;
	int other_errno;	/* the last errno counted in other */
};

struct worker {
	pthread_t tid;
	const struct target *fail, *ok;
	int nthreads;
	long long start_ns, end_ns;
	struct counts fail_c, ok_c;
};

static int parse_target(const char *host, const char *port, const char *rate, struct target *t)
{
	memset(t, 0, sizeof(*t));
	t->rate = atof(rate);
	t->sl = tool_sockaddr(host, port, &t->ss);
	return t->sl ? 0 : -1;
}

static void one_connect(const struct target *t, struct counts *c)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		c->other++;
		c->other_errno = errno;
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&t->ss, t->sl) == 0) {
		c->success++;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	} else if (errno == ECONNREFUSED) {
		c->refused++;
	} else if (errno == EINPROGRESS || errno == EAGAIN) {
		/* SO_SNDTIMEO expired: we abandon it, the kernel sees a cancel */
		c->timeout++;
	} else {
		c->other++;
		c->other_errno = errno;
	}
	close(fd);
}

/* Add what one worker counted to the sum. */
static void counts_add(struct counts *sum, const struct counts *c)
{
	sum->success += c->success;
	sum->refused += c->refused;
	sum->timeout += c->timeout;
	sum->other += c->other;
	if (c->other_errno)
		sum->other_errno = c->other_errno;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	double fail_per_ns = w->fail->rate / w->nthreads / 1e9;
	double ok_per_ns = w->ok ? w->ok->rate / w->nthreads / 1e9 : 0;
	long fail_done = 0, ok_done = 0;
	long long now;

	while ((now = tool_now_ns()) < w->end_ns) {
		long long since = now - w->start_ns;
		long fail_due = (long)(since * fail_per_ns) + 1;
		long ok_due = (long)(since * ok_per_ns) + (ok_per_ns > 0);
		int busy = 0;

		/* Behind schedule: catch up by at most a small burst, never a flood. */
		if (fail_done < fail_due) {
			long burst = fail_due - fail_done > 32 ? 32 : fail_due - fail_done;

			for (long i = 0; i < burst; i++)
				one_connect(w->fail, &w->fail_c);
			fail_done += burst;
			busy = 1;
		}
		if (w->ok && ok_done < ok_due) {
			one_connect(w->ok, &w->ok_c);
			ok_done++;
			busy = 1;
		}
		if (!busy) {
			struct timespec ts = { .tv_nsec = 200000 };

			nanosleep(&ts, NULL);
		}
		/* Fell more than a second behind: drop the backlog, report the real rate. */
		if ((long)(since * fail_per_ns) - fail_done > (long)(fail_per_ns * 1e9))
			fail_done = (long)(since * fail_per_ns);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker w[MAX_THREADS];
	struct target fail, ok;
	struct counts f = { 0 }, o = { 0 };
	long long start, elapsed;
	double seconds;
	int nthreads;

	if (argc != 6 && argc != 9) {
		fprintf(stderr, "usage: loadgen SECONDS THREADS FAIL_ADDR FAIL_PORT FAIL_RATE "
				"[OK_ADDR OK_PORT OK_RATE]\n");
		return 2;
	}
	seconds = atof(argv[1]);
	nthreads = atoi(argv[2]);
	if (seconds <= 0 || seconds > 3600 || nthreads < 1 || nthreads > MAX_THREADS ||
	    parse_target(argv[3], argv[4], argv[5], &fail) ||
	    (argc == 9 && parse_target(argv[6], argv[7], argv[8], &ok))) {
		fprintf(stderr, "loadgen: bad arguments (SECONDS 0..3600, THREADS 1..%d, IP literals)\n",
			MAX_THREADS);
		return 2;
	}
	start = tool_now_ns();
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){
			.fail = &fail, .ok = argc == 9 ? &ok : NULL, .nthreads = nthreads,
			.start_ns = start, .end_ns = start + (long long)(seconds * 1e9),
		};
		if (pthread_create(&w[i].tid, NULL, work, &w[i])) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			return 1;
		}
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].tid, NULL);
		counts_add(&f, &w[i].fail_c);
		counts_add(&o, &w[i].ok_c);
	}
	elapsed = (tool_now_ns() - start) / 1000000;
	printf("elapsed_ms=%lld fail_refused=%ld fail_success=%ld fail_timeout=%ld fail_other=%ld "
	       "ok_success=%ld ok_refused=%ld ok_timeout=%ld ok_other=%ld fail_rate=%ld ok_rate=%ld "
	       "fail_errno=%s ok_errno=%s\n",
	       elapsed, f.refused, f.success, f.timeout, f.other, o.success, o.refused, o.timeout,
	       o.other,
	       (long)((f.refused + f.success + f.timeout + f.other) * 1000 / (elapsed ? elapsed : 1)),
	       (long)((o.refused + o.success + o.timeout + o.other) * 1000 / (elapsed ? elapsed : 1)),
	       f.other_errno ? strerrorname_np(f.other_errno) : "none",
	       o.other_errno ? strerrorname_np(o.other_errno) : "none");
	return 0;
}
