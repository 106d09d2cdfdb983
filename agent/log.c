// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "log.h"

static enum log_level log_level = LOG_LVL_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

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

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char text[1024], ts[32], *fields, *p;
	struct timespec now;
	struct tm tm;

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
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "ts=%s.%03ldZ level=%s msg=\"%s\"%s%s\n", ts, now.tv_nsec / 1000000,
		level_names[lvl], text, fields ? " " : "", fields ? fields : "");
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}
