// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include "status.h"

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

void status_addr_text(const uint8_t addr[16], char *buf, size_t len)
{
	if (!memcmp(addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)))
		inet_ntop(AF_INET, addr + 12, buf, len);
	else
		inet_ntop(AF_INET6, addr, buf, len);
}

static double secs(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e9 : 0.0;
}

int status_render(FILE *out, const char *version, uint64_t started_ns, uint64_t now,
		  const struct status_dst *dsts, size_t n)
{
	char addr[INET6_ADDRSTRLEN];

	/* Names are [A-Za-z0-9_.-] and addresses are inet_ntop text: nothing to escape. */
	fprintf(out, "{\"version\":\"%s\",\"uptime_seconds\":%.3f,\"destinations\":[",
		version, secs(started_ns, now));
	for (size_t i = 0; i < n; i++) {
		const struct status_dst *d = &dsts[i];
		uint64_t failures = 0;

		status_addr_text(d->addr, addr, sizeof(addr));
		fprintf(out, "%s\n{\"name\":\"%s\",\"address\":\"%s\",\"port\":%u,\"mode\":\"%s\","
			"\"state\":\"%s\",\"time_in_state_seconds\":%.3f,",
			i ? "," : "", d->name, addr, d->port, config_mode_name(d->mode),
			breaker_state_name(d->state), secs(d->since_ns, now));
		if (d->next_half_open_ns)
			fprintf(out, "\"next_half_open_seconds\":%.3f,", secs(now, d->next_half_open_ns));
		else
			fputs("\"next_half_open_seconds\":null,", out);
		fprintf(out, "\"consecutive_failures\":%u,\"failure_rate\":%.4f,\"connects\":{",
			d->consecutive_failures, d->failure_rate);
		for (int r = 0; r < KB_RES_MAX; r++) {
			fprintf(out, "%s\"%s\":%llu", r ? "," : "", breaker_result_name(r),
				(unsigned long long)d->stats.connects[r]);
			if (breaker_is_failure(r))
				failures += d->stats.connects[r];
		}
		fprintf(out, "},\"failures\":%llu,\"blocked\":%llu}", (unsigned long long)failures,
			(unsigned long long)d->stats.blocked);
	}
	fputs("\n]}\n", out);
	return ferror(out) ? -EIO : 0;
}
