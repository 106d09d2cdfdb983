// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include "status.h"

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_v4(const uint8_t addr[16])
{
	return !memcmp(addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
}

void status_addr_text(const uint8_t addr[16], char *buf, size_t len)
{
	if (is_v4(addr))
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
	char addr[INET6_ADDRSTRLEN + 4];

	/* Names are [A-Za-z0-9_.-] and addresses are inet_ntop text: nothing to escape. */
	fprintf(out, "{\"version\":\"%s\",\"uptime_seconds\":%.3f,\"destinations\":[",
		version, secs(started_ns, now));
	for (size_t i = 0; i < n; i++) {
		const struct status_dst *d = &dsts[i];
		uint64_t failures = 0;

		addr[0] = '\0';
		if (d->addr) {
			status_addr_text(d->addr, addr, sizeof(addr));
			if (d->prefix_len < 128)
				snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), "/%u",
					 is_v4(d->addr) ? d->prefix_len - 96 : d->prefix_len);
		} else if (d->n_addrs) {
			status_addr_text(d->addrs[0], addr, sizeof(addr));
		}
		/* host is a validated literal, CIDR or RFC 1123 name: nothing to escape. */
		fprintf(out, "%s\n{\"name\":\"%s\",\"host\":\"%s\",\"address\":\"%s\",\"port\":%u,"
			"\"mode\":\"%s\",\"state\":\"%s\",\"time_in_state_seconds\":%.3f,",
			i ? "," : "", d->name, d->host ? d->host : "", addr, d->port,
			config_mode_name(d->mode), breaker_state_name(d->state), secs(d->since_ns, now));
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
		fprintf(out, "},\"failures\":%llu,\"blocked\":%llu,\"would_block\":%llu,\"addresses\":[",
			(unsigned long long)failures, (unsigned long long)d->stats.blocked,
			(unsigned long long)d->stats.would_block);
		for (size_t k = 0; k < d->n_addrs; k++) {
			status_addr_text(d->addrs[k], addr, sizeof(addr));
			fprintf(out, "%s{\"address\":\"%s\"", k ? "," : "", addr);
			if (d->member_states)
				fprintf(out, ",\"state\":\"%s\"", breaker_state_name(d->member_states[k]));
			fputc('}', out);
		}
		fputs("]}", out);
	}
	fputs("\n]}\n", out);
	return ferror(out) ? -EIO : 0;
}
