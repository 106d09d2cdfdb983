// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include "addr.h"

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool addr_is_v4(const uint8_t addr[16])
{
	return !memcmp(addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
}

void addr_from_v4(uint8_t addr[16], const void *v4)
{
	memcpy(addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
	memcpy(addr + 12, v4, 4);
}

/* An IPv4 or IPv6 literal into a; *v4 says which. 0 or -EINVAL. */
static int parse_literal(const char *s, uint8_t a[16], bool *v4)
{
	uint8_t in4[4];

	*v4 = inet_pton(AF_INET, s, in4) == 1;
	if (*v4) {
		addr_from_v4(a, in4);
		return 0;
	}
	return inet_pton(AF_INET6, s, a) == 1 ? 0 : -EINVAL;
}

int addr_parse(const char *s, uint8_t addr[16])
{
	uint8_t a[16];
	bool v4;

	if (!s || parse_literal(s, a, &v4))
		return -EINVAL;
	memcpy(addr, a, sizeof(a));
	return 0;
}

/* A prefix length as written: decimal, no sign, no leading zero, at most max. */
static int parse_prefix_len(const char *s, unsigned int max, unsigned int *out)
{
	unsigned int n = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		n = n * 10 + (unsigned int)(*s - '0');
		if (n > max)
			return -EINVAL;
	}
	*out = n;
	return 0;
}

int addr_parse_cidr(const char *s, uint8_t addr[16], uint8_t *prefix_len)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	char buf[INET6_ADDRSTRLEN];
	unsigned int n, len, i;
	uint8_t a[16];
	bool v4;

	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, slash - s);
	buf[slash - s] = '\0';
	if (parse_literal(buf, a, &v4) || parse_prefix_len(slash + 1, v4 ? 32 : 128, &n))
		return -EINVAL;
	len = v4 ? 96 + n : n;
	/* 10.0.0.1/8 is more likely a typo than a way to write 10.0.0.0/8. */
	for (i = len; i < 128; i++)
		if (a[i / 8] & 0x80 >> (i % 8))
			return -ERANGE;
	memcpy(addr, a, sizeof(a));
	*prefix_len = len;
	return 0;
}

const char *addr_text(const uint8_t addr[16], char *buf, size_t len)
{
	if (addr_is_v4(addr))
		inet_ntop(AF_INET, addr + 12, buf, len);
	else
		inet_ntop(AF_INET6, addr, buf, len);
	return buf;
}

const char *addr_prefix_text(const uint8_t addr[16], uint8_t prefix_len, char *buf, size_t len)
{
	size_t n;

	addr_text(addr, buf, len);
	n = strlen(buf);
	if (prefix_len < 128 && n < len)
		snprintf(buf + n, len - n, "/%u", addr_is_v4(addr) ? prefix_len - 96u : prefix_len);
	return buf;
}
