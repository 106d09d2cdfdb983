/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * breaker: one circuit breaker state machine per destination.
 * Pure: time is a parameter (CLOCK_MONOTONIC ns, the clock BPF's
 * bpf_ktime_get_ns() reads), no I/O. The agent feeds it connect outcomes in
 * kernel order and ticks it; it answers with the verdict for the kernel.
 *
 *   closed --(consecutive_failures failures in a row)--> open
 *   open --(open_duration elapsed)--> half_open
 *   half_open --(half_open_permits probes all succeed)--> closed
 *   half_open --(any probe fails or is cancelled)--> open
 *
 * Outcomes of connects begun before the current state was entered are ignored.
 */
#ifndef KB_BREAKER_H
#define KB_BREAKER_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/types.h>
#include "kb_abi.h"
#include "config.h"

/* The exported states; the order is the metrics' label order. */
enum breaker_state {
	BS_CLOSED = 0,
	BS_OPEN,
	BS_HALF_OPEN,
	BS_METRICS_ONLY,	/* observe mode: the machine runs, nothing is blocked */
	BS_DISABLED,
	BS_FORCED_OPEN,
	BS_MAX,
};

struct breaker {
	struct breaker_policy policy;
	enum breaker_state state;	/* machine state: closed, open or half_open */
	uint32_t consecutive_failures;
	uint32_t probe_successes;	/* in half_open */
	uint64_t state_since_ns;
	uint64_t open_until_ns;		/* in open */
	uint64_t transitions[BS_MAX][BS_MAX];	/* [old][new], machine states */
};

/* Start closed at `now` under `policy` (copied). */
void breaker_init(struct breaker *b, const struct breaker_policy *policy, uint64_t now);

/*
 * Feed one connect outcome: the connect began (SYN sent) at start_ns and
 * ended at now. Returns true when the state changed, i.e. the kernel
 * verdict must be rewritten.
 */
bool breaker_record(struct breaker *b, enum kb_result res, uint64_t start_ns, uint64_t now);

/* Apply time-based transitions due at `now`. Returns true when the state changed. */
bool breaker_tick(struct breaker *b, uint64_t now);

/* When breaker_tick next has something to do, or 0 when nothing is timed. */
uint64_t breaker_deadline(const struct breaker *b);

/* The verdict the connect hooks should apply now. */
void breaker_verdict(const struct breaker *b, struct kb_verdict *v);

/* The state users see: the machine state, or metrics_only in observe mode. */
enum breaker_state breaker_public_state(const struct breaker *b);

/* "closed", "open", "half_open", ... as in the metrics' state label. */
const char *breaker_state_name(enum breaker_state s);

/* Whether a result counts as a failure (cancelled and success do not). */
bool breaker_is_failure(enum kb_result res);

/* "success", "refused", ... as in the metrics' result label. */
const char *breaker_result_name(enum kb_result res);

#endif /* KB_BREAKER_H */
