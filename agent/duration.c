// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "duration.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Largest first: duration_text() picks the first unit that divides. */
static const struct {
	const char *unit;
	uint64_t ns;
} duration_units[] = {
	{ "h", NS_PER_H },
	{ "m", NS_PER_MIN },
	{ "s", NS_PER_S },
	{ "ms", NS_PER_MS },
};

const char *duration_text(char *buf, size_t size, uint64_t ns)
{
	size_t i;

	if (!ns)
		return "0s";
	for (i = 0; i < ARRAY_SIZE(duration_units); i++) {
		if (ns % duration_units[i].ns == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", ns / duration_units[i].ns,
				 duration_units[i].unit);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRIu64 "ns", ns);
	return buf;
}

bool duration_leading_zero(const char *s)
{
	return s && s[0] == '0' && s[1] >= '0' && s[1] <= '9';
}

int duration_parse(const char *s, uint64_t *ns)
{
	const char *p = s;
	bool overflow = false;
	uint64_t n = 0;
	size_t i;

	if (!s)
		return -EINVAL;
	/* 0 of any unit is 0: the "0 = off" the documentation writes as a bare 0. */
	if (!strcmp(s, "0")) {
		*ns = 0;
		return 0;
	}
	/* As for integers (config_parse_uint()): YAML 1.1 reads 010 as octal. */
	if (duration_leading_zero(s))
		return -EINVAL;
	/* Keep scanning past an overflow: bad syntax wins over -ERANGE. */
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			overflow = true;
		else
			n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(duration_units); i++) {
		if (strcmp(p, duration_units[i].unit))
			continue;
		if (overflow || n > UINT64_MAX / duration_units[i].ns)
			return -ERANGE;
		*ns = n * duration_units[i].ns;
		return 0;
	}
	return -EINVAL;
}
