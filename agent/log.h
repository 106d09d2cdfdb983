/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * log: one logfmt line per event on stderr, where journald picks it up:
 *   ts=2026-11-21T23:40:00.123Z level=info msg="breaker opened" circuit=payments
 * The message is quoted; key=value fields may follow it, written by the caller
 * after the format's first "\t" (a tab separates msg from fields).
 */
#ifndef KB_LOG_H
#define KB_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Lines above this level are dropped. Default: info. */
void log_set_level(enum log_level lvl);
/* Parse "error", "warn", "info", "debug". 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *lvl);

/*
 * Write to fd (stderr) without ever waiting on its reader: a line that
 * does not fit is dropped and counted, and the next one written is
 * preceded by how many were. Before any thread starts. Until called,
 * lines go to stderr as it is (blocking). 0 or -errno: then as it is.
 */
int log_open(int fd);
/* Lines dropped because fd did not take them, ever. Any thread. */
uint64_t log_dropped_total(void);

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* KB_LOG_H */
