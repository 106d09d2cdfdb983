// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * log: a reader that takes nothing costs lines, never a wait. Over a pipe
 * and a stream socket (journald's stderr) that nobody reads, every line
 * either arrives whole or is counted dropped, and the first line written
 * once the reader drains says how many were. A hang fails by SIGALRM.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "../../agent/log.h"
#include "kb_test.h"

#define LINES 200

/*
 * Everything readable on fd, NUL-terminated, in buf: until nothing more
 * comes for 100 ms.
 */
static size_t drain(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t off = 0;
	ssize_t n;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (off < len - 1) {
		n = read(fd, buf + off, len - 1 - off);
		if (n > 0)
			off += (size_t)n;
		else if (n == 0 || errno != EAGAIN || poll(&p, 1, 100) != 1 || !(p.revents & POLLIN))
			break;
	}
	buf[off] = '\0';
	return off;
}

/* Lines in buf, each checked whole: "ts=" to its newline, nothing after the last. */
static size_t whole_lines(const char *ctx, const char *buf)
{
	size_t n = 0;

	for (const char *p = buf; *p; n++) {
		const char *nl = strchr(p, '\n');

		if (strncmp(p, "ts=", 3) || !nl)
			fail_msg("%s: line %zu is not whole: \"%.60s\"", ctx, n + 1, p);
		p = nl + 1;
	}
	return n;
}

/* Log LINES lines to a writer nobody reads, then drain it through rfd. */
static void check_stalled(const char *ctx, int wfd, int rfd)
{
	static char buf[1 << 20];
	uint64_t before = log_dropped_total(), dropped;
	char want[64];
	size_t got;

	assert_int_equal(log_open(wfd), 0);
	alarm(10);
	for (int i = 0; i < LINES; i++)
		log_info("line %d of a reader that stalls\tpad=%s", i,
			 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	alarm(0);
	dropped = log_dropped_total() - before;
	got = whole_lines(ctx, (drain(rfd, buf, sizeof(buf)), buf));
	if (!dropped || got == 0)
		fail_msg("%s: %zu lines written, %ju dropped: the writer never filled", ctx, got,
			 (uintmax_t)dropped);
	check_eq(ctx, got + dropped, LINES);
	/* Drained: the count first, then the line. */
	log_warn("after");
	drain(rfd, buf, sizeof(buf));
	check_eq(ctx, whole_lines(ctx, buf), 2);
	snprintf(want, sizeof(want), "dropped=%ju\n", (uintmax_t)dropped);
	if (!strstr(buf, "level=warn msg=\"log lines dropped: stderr did not take them\" ") ||
	    !strstr(buf, want) || !strstr(strstr(buf, want), "msg=\"after\"\n"))
		fail_msg("%s: after draining: \"%s\", want the count (%s) then \"after\"", ctx, buf,
			 want);
	check_eq(ctx, log_dropped_total() - before, dropped);
}

static void test_pipe(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	check_stalled("pipe", p[1], p[0]);
	close(p[0]);
	close(p[1]);
}

static void test_stream_socket(void **state)
{
	int s[2], small = 4096;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	check_stalled("socket", s[0], s[1]);
	close(s[0]);
	close(s[1]);
}

/* A file takes every line; a message past its buffer is cut there, still one line. */
static void test_file(void **state)
{
	static char buf[1 << 16];
	char path[] = "/tmp/kb-test-log.XXXXXX", big[1500];
	uint64_t before = log_dropped_total();
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(log_open(fd), 0);
	for (int i = 0; i < LINES; i++)
		log_info("line %d", i);
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	lseek(fd, 0, SEEK_SET);
	drain(fd, buf, sizeof(buf));
	check_eq("file", whole_lines("file", buf), LINES + 1);
	check_eq("file", log_dropped_total() - before, 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe),
		cmocka_unit_test(test_stream_socket),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
