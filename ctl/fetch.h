/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * fetch: one HTTP GET through libcurl, the body in memory. kbreakerctl's only
 * network code.
 */
#ifndef KB_CTL_FETCH_H
#define KB_CTL_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct fetch_result {
	char *body;		/* NUL-terminated, malloc'd; NULL on transport error */
	size_t len;
	long http_status;	/* 0 when no response arrived */
	bool too_large;		/* the body passed the limit: not a /status document */
	char err[256];		/* why, when the request failed */
};

/* Process-wide setup/teardown (curl_global_*). 0 or -EIO. */
int fetch_init(void);
void fetch_fini(void);

/*
 * GET url with a timeout. Returns 0 when a response arrived (any status; see
 * http_status) or -errno with res->err set ("Connection refused", ...).
 */
int fetch_get(const char *url, long timeout_ms, struct fetch_result *res);

/* Free res->body. */
void fetch_result_free(struct fetch_result *res);

#endif /* KB_CTL_FETCH_H */
