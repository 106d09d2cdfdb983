/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * duration: the one way kbreaker reads and writes a duration, shared by
 * the config parser and kbreakerctl's flags. Pure.
 */
#ifndef KB_DURATION_H
#define KB_DURATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS 1000000ULL
#define NS_PER_S (1000 * NS_PER_MS)
#define NS_PER_MIN (60 * NS_PER_S)
#define NS_PER_H (60 * NS_PER_MIN)

/*
 * Parse a non-negative integer followed by ms, s, m or h ("100ms", "10s",
 * "5m", "1h"), or a bare "0", into nanoseconds. Returns 0, -EINVAL (also
 * for a leading zero: "010s"), or -ERANGE on overflow.
 */
int duration_parse(const char *s, uint64_t *ns);

/* Whether s starts with a leading zero ("010s", "00"), which duration_parse() rejects. */
bool duration_leading_zero(const char *s);

/* The shortest exact text for ns in the largest unit that divides it ("90s", "2m"). */
const char *duration_text(char *buf, size_t size, uint64_t ns);

#endif /* KB_DURATION_H */
