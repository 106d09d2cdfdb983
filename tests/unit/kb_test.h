/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the unit tests share: time units and assertions that name the
 * failing table case (cmocka 1.1 has no message variants). Include after
 * <cmocka.h>.
 */
#ifndef KB_TEST_H
#define KB_TEST_H

#include <stdint.h>
#include <string.h>

#define MS 1000000ULL
#define SEC 1000000000ULL

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define check_eq(ctx, got, want)                                                   \
	do {                                                                       \
		uintmax_t got_ = (uintmax_t)(got), want_ = (uintmax_t)(want);      \
		if (got_ != want_)                                                 \
			fail_msg("%s: %s is %ju, want %ju", (ctx), #got, got_, want_); \
	} while (0)

#define check_int(ctx, got, want)                                                  \
	do {                                                                       \
		intmax_t got_ = (intmax_t)(got), want_ = (intmax_t)(want);         \
		if (got_ != want_)                                                 \
			fail_msg("%s: %s is %jd, want %jd", (ctx), #got, got_, want_); \
	} while (0)

#define check_str(ctx, got, want)                                                  \
	do {                                                                       \
		const char *got_ = (got), *want_ = (want);                         \
		if (strcmp(got_, want_) != 0)                                      \
			fail_msg("%s: %s is \"%s\", want \"%s\"", (ctx), #got, got_, want_); \
	} while (0)

#endif /* KB_TEST_H */
