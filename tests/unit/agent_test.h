/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the unit tests of the running agent share: configs from YAML text,
 * circuits by name, rendered pages, and the check that the fake kernel
 * maps hold exactly what the agent runs on. Failures go through cmocka.
 */
#ifndef KB_AGENT_TEST_H
#define KB_AGENT_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include "agent.h"
#include "config.h"

struct http_request;

uint64_t mono_now(void);

/* Parse yaml (netns files get made-up inodes); fails the test on an error. */
struct config *parse(const char *ctx, const char *yaml);
void drop(struct config *cfg);

const struct agent_circuit *circuit_named(const struct agent *a, const char *name);
bool is_grouped(const struct agent_circuit *c);

/* Call fn as the server does; *body: a malloc'd copy of its body. Returns its status. */
int page_body(struct agent *a, int (*fn)(void *, struct http_request *, char **, size_t *),
	      char **body);

/* The body of an http_body_fn, checked and owned by the caller. */
char *render(const char *ctx, struct agent *a,
	     int (*fn)(void *, struct http_request *, char **, size_t *));

/* Wait for the resolver's eventfd, bounded far above a 1 s round on a loaded machine. */
void wait_answers(const char *ctx, struct agent *a);

/* The maps hold exactly the agent's keys, and each breaker's verdict. */
void check_maps(const char *ctx, const struct agent *a);

#endif /* KB_AGENT_TEST_H */
