// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "log.h"

/* How long the rest of a line half written may take before it is cut. */
#define LOG_PARTIAL_WAIT_MS 100

static enum log_level log_level = LOG_LVL_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* Where lines go and how: log_open() sets them, before any thread starts. */
static int log_fd = STDERR_FILENO;
static bool log_sock;
/* Whole lines, and the notice of those dropped, never interleave. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t log_dropped;		/* read by log_dropped_total(), any thread */
static uint64_t log_unreported;		/* under log_lock */
static bool log_midline;		/* under log_lock: a line was cut, its newline owed */

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

int log_parse_level(const char *s, enum log_level *lvl)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(s, level_names[i])) {
			*lvl = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_open(int fd)
{
	struct stat st;
	char path[32];
	int nfd;

	if (fstat(fd, &st))
		return -errno;
	log_fd = fd;
	log_sock = S_ISSOCK(st.st_mode);	/* journald: send(MSG_DONTWAIT) per line */
	if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return 0;	/* a file or a socket: nothing to change */
	/*
	 * A pipe or terminal: a private open of it, non-blocking. Setting
	 * O_NONBLOCK on fd itself would change it for every process sharing
	 * the description (the shell that started us).
	 */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd < 0)
		return -errno;
	log_fd = nfd;
	return 0;
}

uint64_t log_dropped_total(void)
{
	return __atomic_load_n(&log_dropped, __ATOMIC_RELAXED);
}

/*
 * Write one line whole, or none of it; true if written. A line cut short
 * (a socket or terminal took part of it) gets LOG_PARTIAL_WAIT_MS for the
 * rest; past that it stays cut, and the next line written starts on a line
 * of its own.
 */
static bool write_line(const char *buf, size_t len)
{
	int waited = 0;
	size_t off = 0;

	while (off < len) {
		ssize_t n = log_sock ? send(log_fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL)
				     : write(log_fd, buf + off, len - off);

		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN && off && waited < LOG_PARTIAL_WAIT_MS) {
			poll(&(struct pollfd){ .fd = log_fd, .events = POLLOUT }, 1, 10);
			waited += 10;
		} else {
			log_midline = off > 0;
			return false;
		}
	}
	return true;
}

static size_t line_head(char *buf, size_t len, enum log_level lvl)
{
	struct timespec now;
	char ts[32];
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(buf, len, "ts=%s.%03ldZ level=%s ", ts, now.tv_nsec / 1000000, level_names[lvl]);
	return n < 0 ? 0 : (size_t)n;
}

static void drop(void)
{
	log_unreported++;
	__atomic_fetch_add(&log_dropped, 1, __ATOMIC_RELAXED);
}

/*
 * A reader that stalls (journald busy, a pipe nobody drains) costs lines,
 * never the loop: held on a write past failopen_after, every open breaker
 * would let connects through. Under log_lock.
 */
static void emit(const char *line, size_t len)
{
	if (log_midline) {
		if (!write_line("\n", 1)) {
			drop();
			return;
		}
		log_midline = false;
	}
	if (log_unreported) {
		char note[128];
		size_t n = line_head(note, sizeof(note), LOG_LVL_WARN);

		n += (size_t)snprintf(note + n, sizeof(note) - n,
				      "msg=\"log lines dropped: stderr did not take them\" dropped=%llu\n",
				      (unsigned long long)log_unreported);
		if (n >= sizeof(note) || !write_line(note, n)) {
			drop();
			return;
		}
		log_unreported = 0;
	}
	if (!write_line(line, len))
		drop();
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	/* Room for all of text, quoted, after the head: a line is never cut here. */
	char text[1024], line[sizeof(text) + 96], *fields, *p;
	size_t n;

	if (lvl > log_level)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	fields = strchr(text, '\t');
	if (fields)
		*fields++ = '\0';
	/* logfmt quoting: the message may hold quotes and newlines from libraries. */
	for (p = text; *p; p++) {
		if (*p == '"')
			*p = '\'';
		else if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	while (p > text && p[-1] == ' ')
		*--p = '\0';
	n = line_head(line, sizeof(line), lvl);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "msg=\"%s\"%s%s\n", text,
			      fields ? " " : "", fields ? fields : "");
	pthread_mutex_lock(&log_lock);
	emit(line, n);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}
