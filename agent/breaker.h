/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * breaker: one circuit breaker state machine per destination.
 * Pure: time is a parameter (CLOCK_MONOTONIC ns, the clock BPF's
 * bpf_ktime_get_ns() reads), randomness is a seeded xorshift state in the
 * breaker, no I/O. The agent feeds it connect outcomes in kernel order and
 * ticks it; it answers with the verdict for the kernel.
 *
 *   closed --(consecutive_failures in a row, or failure or slow-call rate
 *             over the window >= its threshold after minimum_calls)--> open
 *   open --(open period elapsed)--> half_open
 *   half_open --(half_open_successes probes succeed)--> closed (+ ramp)
 *   half_open --(a probe fails or is cancelled)--> open
 *   half_open --(max_half_open_duration without a verdict)--> open
 *
 * The open period is open_duration, doubled on each re-open without a close
 * in between, capped at max_open_duration, then varied by +-jitter percent.
 * After closing, recovery_ramp admits a share of connects rising in 5%
 * steps (KB_ACT_RAMP) until it ends; a trip during the ramp works as in
 * closed. Modes: observe runs the machine and reports metrics_only; disabled
 * and forced_open stop it (always allow, always block).
 *
 * Outcomes of connects begun before the current state was entered are ignored.
 */
#ifndef KB_BREAKER_H
#define KB_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "kb_abi.h"
#include "policy.h"
#include "window.h"

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

/* The states the machine itself moves between (closed, open, half_open): its transitions' room. */
#define BS_MACHINE (BS_HALF_OPEN + 1)

/* Why the breaker last opened. */
enum breaker_cause {
	BC_NONE = 0,
	BC_CONSECUTIVE,		/* consecutive_failures */
	BC_FAILURE_RATE,	/* failure_rate_threshold */
	BC_SLOW_CALL_RATE,	/* slow_call_rate_threshold */
	BC_PROBE,		/* a half_open probe failed or was cancelled */
	BC_HALF_OPEN_TIMEOUT,	/* max_half_open_duration passed */
};

/* The recovery ramp: admit rises in RAMP_STEPS steps of 5%, reaching all at its end. */
#define BREAKER_RAMP_STEPS 19

struct breaker {
	struct breaker_policy policy;
	enum breaker_state state;	/* machine state: closed, open or half_open */
	uint32_t consecutive_failures;
	uint32_t probe_successes;	/* in half_open */
	uint64_t state_since_ns;
	uint64_t open_until_ns;		/* in open */
	uint64_t transitions[BS_MACHINE][BS_MACHINE];	/* [old][new] */
	struct window window;		/* closed: calls since it was entered */
	uint32_t open_streak;		/* opens since the last close: backoff exponent + 1 */
	uint64_t half_open_until_ns;	/* in half_open with max_half_open_duration; else 0 */
	uint64_t ramp_until_ns;		/* closed and ramping: the ramp's end; else 0 */
	uint32_t ramp_step;		/* 0..BREAKER_RAMP_STEPS - 1 while ramping */
	enum breaker_cause cause;	/* of the last open */
	uint64_t denied_trips;		/* trips the blast-radius guard refused (kbreaker_trips_denied_total) */
	uint64_t rng;			/* xorshift64 state for jitter, never 0 */
};

/*
 * Start closed at `now` under `policy` (copied). The jitter generator is
 * seeded from now and b's address; breaker_seed() makes it deterministic.
 */
void breaker_init(struct breaker *b, const struct breaker_policy *policy, uint64_t now);

/* Seed the jitter generator (any value; 0 is mapped to a fixed non-zero one). */
void breaker_seed(struct breaker *b, uint64_t seed);

/*
 * Feed one connect outcome: the connect began (SYN sent) at start_ns and
 * ended at now (latency = now - start_ns, compared with
 * slow_call_duration_threshold). Returns true when the state changed, i.e.
 * the kernel verdict must be rewritten.
 */
bool breaker_record(struct breaker *b, enum kb_result res, uint64_t start_ns, uint64_t now);

/*
 * breaker_record with the blast-radius guard's answer: with may_open false a
 * closed breaker that meets a trip condition stays closed, counts the
 * refusal in denied_trips and keeps its counts, so it trips on the next
 * recorded outcome that still meets the condition once the guard allows.
 * The guard concerns closed -> open only: half_open re-opens regardless
 * (it was already counted as open).
 */
bool breaker_record_guarded(struct breaker *b, enum kb_result res, uint64_t start_ns,
			    uint64_t now, bool may_open);

/*
 * An RST on an established connection at `now` (the agent saw a resets
 * counter rise). With `reset` in failures it is a failed call in closed
 * (window and consecutive count; never slow); otherwise, and in any other
 * state, ignored. Returns true when the state changed.
 */
bool breaker_record_reset(struct breaker *b, uint64_t now);
bool breaker_record_reset_guarded(struct breaker *b, uint64_t now, bool may_open);

/*
 * Apply time-based transitions due at `now`: open -> half_open,
 * half_open -> open after max_half_open_duration, ramp steps and the ramp's
 * end. Returns true when the verdict changed.
 */
bool breaker_tick(struct breaker *b, uint64_t now);

/*
 * n outcomes `res` of a breaker whose verdict queues no events (counted in
 * the kernel, read from its counters): into the closed window at `now`,
 * for its rates' gauges. The consecutive count and trips are the
 * kernel's, so neither changes here.
 */
void breaker_count(struct breaker *b, enum kb_result res, uint64_t n, uint64_t now);

/*
 * n resets the kernel already counted among the failures in a row that
 * breaker_adopt_count() took: into the closed window alone, where `reset`
 * is in failures.
 */
void breaker_count_resets(struct breaker *b, uint64_t n, uint64_t now);

/*
 * The kernel's count of consecutive failures, for a closed breaker whose
 * outcomes it does not see one by one: the truth it carries on from.
 */
void breaker_adopt_count(struct breaker *b, uint32_t consecutive);

/*
 * The kernel tripped this breaker at `at` (kb_judge.h): take the trip as
 * it stands rather than re-derive it. Opens a closed or half_open breaker;
 * returns whether the state changed.
 */
bool breaker_adopt_trip(struct breaker *b, uint64_t at);

/* When breaker_tick next has something to do, or 0 when nothing is timed. */
uint64_t breaker_deadline(const struct breaker *b);

/* The verdict the connect hooks should apply now. */
void breaker_verdict(const struct breaker *b, struct kb_verdict *v);

/* The state users see: disabled, forced_open, metrics_only (observe) or the machine state. */
enum breaker_state breaker_public_state(const struct breaker *b);

/* Whether a closed breaker is in its recovery ramp. */
bool breaker_ramping(const struct breaker *b);

/* Failures / calls in the window at `now`, 0..1 (0 with no calls). */
double breaker_failure_rate(const struct breaker *b, uint64_t now);

/* Slow calls / calls in the window at `now`, 0..1 (0 with no calls). */
double breaker_slow_call_rate(const struct breaker *b, uint64_t now);

/* Calls in the window at `now`. */
uint32_t breaker_window_calls(const struct breaker *b, uint64_t now);

/*
 * Switch to new_policy at `now`, keeping state and counts where they still
 * mean something:
 * - enforce <-> observe: everything kept.
 * - into disabled or forced_open: the machine stops and is reset to closed
 *   (a state change is counted in transitions); out of them: closed, fresh.
 * - window_type or window_size changed: the window restarts empty; other
 *   window settings apply to the next evaluation.
 * - a lower consecutive_failures or rate threshold takes effect on the next
 *   recorded outcome, not at once.
 * - open: the current open period stands; open_duration, backoff and jitter
 *   apply to the next one. half_open: the new max_half_open_duration counts
 *   from half_open's entry; the new half_open_successes applies to the next
 *   success. Ramping: the ramp keeps its start, gets the new length, ends
 *   at once if recovery_ramp became 0 or already elapsed.
 * Returns true when the verdict changed (the agent must rewrite it).
 */
bool breaker_reconfigure(struct breaker *b, const struct breaker_policy *new_policy, uint64_t now);

/*
 * Blast-radius guard: whether one more breaker of a group of group_size
 * (per_address) breakers may open while open_now of them are open or
 * half_open. At most max_open_percent of the group may be, but one may
 * always open (Envoy's max_ejection_percent rule), and 100 never limits.
 */
bool breaker_group_may_open(size_t open_now, size_t group_size, uint32_t max_open_percent);

/* "closed", "open", "half_open", ... as in the metrics' state label. */
const char *breaker_state_name(enum breaker_state s);

/* "consecutive_failures", "failure_rate", ... for logs; "" for BC_NONE. */
const char *breaker_cause_name(enum breaker_cause c);

/* Whether a result counts as a failure under the default `failures:` (cancelled and success do not). */
bool breaker_is_failure(enum kb_result res);

/* Whether a result counts as a failure under b's policy. */
bool breaker_policy_is_failure(const struct breaker_policy *p, enum kb_result res);

/* "success", "refused", ... as in the metrics' result label. */
const char *breaker_result_name(enum kb_result res);

/* Worst first: a group shows the most severe of its members' states. Higher is worse. */
int breaker_state_severity(enum breaker_state s);

#endif /* KB_BREAKER_H */
