/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy: what a breaker is told to do, as plain types. Below window and
 * breaker (which run a policy) and config (which fills one from YAML), so
 * every include points down. Types only: no functions, no I/O.
 */
#ifndef KB_POLICY_H
#define KB_POLICY_H

#include <stdint.h>

enum breaker_mode {
	MODE_ENFORCE = 0,	/* blocks open destinations */
	MODE_OBSERVE = 1,	/* state machine runs, never blocks: metrics_only */
	MODE_DISABLED = 2,	/* machine stopped, always allows: disabled */
	MODE_FORCED_OPEN = 3,	/* machine stopped, always blocks: forced_open */
};

enum window_type {
	WINDOW_COUNT = 0,	/* the last window_size calls */
	WINDOW_TIME = 1,	/* the calls of the last window_size seconds */
};

/*
 * breaker_policy.failures: which outcomes count as failures. Bit i is
 * enum kb_result i (breaker.c asserts it); reset is an RST on an established
 * connection, counted in a row by the kernel (KB_RESETS_FAIL) and fed to the
 * agent's breaker from the counters (agent_apply_resets()).
 */
#define POLICY_FAIL_REFUSED (1u << 1)
#define POLICY_FAIL_TIMEOUT (1u << 2)
#define POLICY_FAIL_UNREACHABLE (1u << 3)
#define POLICY_FAIL_ERROR (1u << 4)
#define POLICY_FAIL_RESET (1u << 8)
#define POLICY_FAIL_DEFAULT \
	(POLICY_FAIL_REFUSED | POLICY_FAIL_TIMEOUT | POLICY_FAIL_UNREACHABLE | POLICY_FAIL_ERROR)

/*
 * Breaker policy; `defaults:` fills it, each destination may override any key.
 * A zeroed field means "off" (or "the natural default" where noted), so a
 * policy built by hand needs only the fields it uses; config_policy_defaults()
 * gives the built-in values.
 */
struct breaker_policy {
	enum breaker_mode mode;
	uint32_t consecutive_failures;	/* trip after this many failures in a row; 0: off */
	uint64_t open_duration_ns;	/* first open period, > 0 */
	uint32_t half_open_permits;	/* probes let through in half_open, >= 1 */
	uint32_t failure_rate_threshold;	/* percent of calls in the window; 0: off */
	enum window_type window_type;
	uint32_t window_size;		/* count: calls (1..1000); time: seconds (1..3600) */
	uint32_t minimum_calls;		/* rates are evaluated from this many calls on; 0 = 1 */
	uint64_t slow_call_duration_ns;	/* a call is slow when it took longer; 0: none is */
	uint32_t slow_call_rate_threshold;	/* percent of calls in the window; 0: off */
	uint32_t failures;		/* POLICY_FAIL_* */
	uint64_t max_open_duration_ns;	/* backoff cap, >= open_duration; 0: no backoff */
	uint32_t jitter_percent;	/* open periods vary by +-this percent, 0..100 */
	uint32_t half_open_successes;	/* successes that close half_open; 0: all permits */
	uint64_t max_half_open_duration_ns;	/* half_open -> open after this long; 0: never */
	uint64_t recovery_ramp_ns;	/* admission ramp after closing; 0: off */
};

#endif /* KB_POLICY_H */
