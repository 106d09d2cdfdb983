// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for config_parse() (agent/config.c, linked alone with -lyaml).
 * Built with -fsanitize=fuzzer,address,undefined by mk/trust.mk; `make fuzz`
 * runs it for FUZZ_SECONDS, `make fuzz-short` (part of `make test`) for 30 s.
 *
 * Besides memory errors, leaks and undefined behaviour, it checks the
 * parser's contract: 0 or -EINVAL/-ENOMEM; on error a NUL-terminated message
 * that names the file and leaves cfg empty; on success values within the
 * documented ranges.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "duration.h"

#define FNAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *err)
{
	if (cond)
		return;
	fprintf(stderr, "fuzz_config: contract broken: %s (err: \"%s\")\n", what, err);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONFIG_ERR_MAX];
	struct config cfg;
	int ret;

	memset(err, 'X', sizeof(err));
	config_init(&cfg);
	ret = config_parse(&cfg, FNAME, (const char *)data, size, err, sizeof(err));
	check(ret == 0 || ret == -EINVAL || ret == -ENOMEM, "return value", "");
	check(memchr(err, 0, sizeof(err)) != NULL, "message not NUL-terminated", "");
	if (ret) {
		check(!strncmp(err, FNAME ":", strlen(FNAME) + 1), "message names the file", err);
		check(cfg.n_dsts == 0 && cfg.dsts == NULL, "cfg empty after an error", err);
	} else {
		check(cfg.listen_port > 0, "listen port", err);
		check(cfg.poll_interval_ns >= NS_PER_MS, "poll_interval", err);
		/* Below two beats, one late beat would let every open destination through. */
		check(cfg.failopen_after_ns >= 2 * NS_PER_S && cfg.failopen_after_ns <= NS_PER_H,
		      "failopen_after", err);
		check(cfg.n_dsts <= CONFIG_MAX_DESTINATIONS, "destination count", err);
		check(cfg.n_dsts == 0 || cfg.dsts != NULL, "destinations array", err);
		for (size_t i = 0; i < cfg.n_dsts; i++) {
			const struct config_dst *d = &cfg.dsts[i];

			check(memchr(d->name, 0, sizeof(d->name)) && d->name[0], "name", err);
			check(memchr(d->host, 0, sizeof(d->host)) != NULL, "host", err);
			/* agent/config.c's ranges; consecutive_failures: 0 turns the count off. */
			check(d->policy.consecutive_failures <= 1000000, "consecutive_failures", err);
			check(d->policy.half_open_permits >= 1 && d->policy.half_open_permits <= 100000,
			      "half_open_permits", err);
			check(d->policy.open_duration_ns >= NS_PER_MS &&
			      d->policy.open_duration_ns <= 24 * NS_PER_H, "open_duration", err);
			check(d->prefix_len <= 128, "prefix_len", err);
		}
	}
	config_free(&cfg);
	check(cfg.n_dsts == 0, "config_free empties cfg", "");
	return 0;
}
