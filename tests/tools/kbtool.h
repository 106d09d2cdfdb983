/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What kbtool's files share: the clock in microseconds, an errno's name,
 * SIGTERM handling for the servers, and the commands kbtool_tfo.c serves.
 */
#ifndef KB_TOOLS_KBTOOL_H
#define KB_TOOLS_KBTOOL_H

#include <signal.h>
#include <stdbool.h>
#include "tool.h"

static inline long long now_us(void)
{
	return tool_now_ns() / 1000;
}

/* "none" for 0, else the errno's name (ECONNREFUSED), as the tests match it. */
static inline const char *err_name(int err)
{
	return err ? strerrorname_np(err) : "none";
}

/* Set once a SIGTERM caught by catch_sigterm() arrived. */
extern volatile sig_atomic_t got_sigterm;

/* SIGTERM blocked, caught when unblocked (in ppoll with *unblocked). */
void catch_sigterm(sigset_t *unblocked);

/*
 * Wait for fd to become readable, until end_us (0: no limit) or SIGTERM;
 * false once end_us has passed or on an error other than EINTR.
 */
bool wait_readable(int fd, long long end_us, const sigset_t *unblocked);

/* TCP Fast Open and setsockopt commands (kbtool_tfo.c); argv as main's. */
int do_tfolisten(int argc, char **argv);
int do_tfoconnect(int argc, char **argv);
int do_tfosend(int argc, char **argv);
int do_compat(void);
int do_bigopt(void);

#endif /* KB_TOOLS_KBTOOL_H */
