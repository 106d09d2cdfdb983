// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <string.h>
#include "breaker.h"

_Static_assert(POLICY_FAIL_REFUSED == 1u << KB_RES_REFUSED, "failure bit order");
_Static_assert(POLICY_FAIL_TIMEOUT == 1u << KB_RES_TIMEOUT, "failure bit order");
_Static_assert(POLICY_FAIL_UNREACHABLE == 1u << KB_RES_UNREACHABLE, "failure bit order");
_Static_assert(POLICY_FAIL_ERROR == 1u << KB_RES_ERROR, "failure bit order");
_Static_assert(POLICY_FAIL_RESET >= 1u << KB_RES_MAX, "reset bit clear of results");

static const char *const state_names[BS_MAX] = {
	[BS_CLOSED] = "closed",
	[BS_OPEN] = "open",
	[BS_HALF_OPEN] = "half_open",
	[BS_METRICS_ONLY] = "metrics_only",
	[BS_DISABLED] = "disabled",
	[BS_FORCED_OPEN] = "forced_open",
};

static const char *const result_names[KB_RES_MAX] = {
	[KB_RES_SUCCESS] = "success",
	[KB_RES_REFUSED] = "refused",
	[KB_RES_TIMEOUT] = "timeout",
	[KB_RES_UNREACHABLE] = "unreachable",
	[KB_RES_ERROR] = "error",
	[KB_RES_CANCELLED] = "cancelled",
};

static const char *const cause_names[] = {
	[BC_NONE] = "",
	[BC_CONSECUTIVE] = "consecutive_failures",
	[BC_FAILURE_RATE] = "failure_rate",
	[BC_SLOW_CALL_RATE] = "slow_call_rate",
	[BC_PROBE] = "probe_failed",
	[BC_HALF_OPEN_TIMEOUT] = "half_open_timeout",
};

const char *breaker_state_name(enum breaker_state s)
{
	return (unsigned)s < BS_MAX ? state_names[s] : "unknown";
}

const char *breaker_result_name(enum kb_result res)
{
	return (unsigned)res < KB_RES_MAX ? result_names[res] : "unknown";
}

const char *breaker_cause_name(enum breaker_cause c)
{
	return (unsigned)c < sizeof(cause_names) / sizeof(cause_names[0]) ? cause_names[c]
									   : "unknown";
}

bool breaker_policy_is_failure(const struct breaker_policy *p, enum kb_result res)
{
	/* Only the four connect failures can be listed; success and cancelled never fail. */
	return (unsigned)res < KB_RES_MAX && (p->failures & POLICY_FAIL_DEFAULT & 1u << res);
}

bool breaker_is_failure(enum kb_result res)
{
	static const struct breaker_policy dflt = { .failures = POLICY_FAIL_DEFAULT };

	return breaker_policy_is_failure(&dflt, res);
}

static bool running(const struct breaker *b)
{
	return b->policy.mode != MODE_DISABLED && b->policy.mode != MODE_FORCED_OPEN;
}

/* xorshift64: jitter only needs to differ between hosts, not to be secret. */
static uint64_t next_random(struct breaker *b)
{
	uint64_t x = b->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b->rng = x;
	return x;
}

void breaker_seed(struct breaker *b, uint64_t seed)
{
	/* splitmix64 finaliser: nearby seeds give unrelated streams. */
	seed += 0x9e3779b97f4a7c15ULL;
	seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ULL;
	seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebULL;
	seed ^= seed >> 31;
	b->rng = seed | 1;	/* xorshift must not start at 0 */
}

/* open_duration doubled per re-open since the last close, capped, then jittered. */
static uint64_t open_period(struct breaker *b)
{
	const struct breaker_policy *p = &b->policy;
	uint64_t period = p->open_duration_ns ? p->open_duration_ns : 1;
	uint64_t cap = p->max_open_duration_ns > period ? p->max_open_duration_ns : period;
	uint32_t i;

	for (i = 1; i < b->open_streak && period < cap; i++)
		period = period > cap / 2 ? cap : period * 2;
	if (p->jitter_percent) {
		uint32_t pct = p->jitter_percent > 100 ? 100 : p->jitter_percent;
		uint64_t delta = (uint64_t)((unsigned __int128)period * pct / 100);
		uint64_t r = next_random(b) >> 32;

		/* Uniform over [period - delta, period + delta]. */
		period = period - delta + (uint64_t)(((unsigned __int128)(2 * delta + 1) * r) >> 32);
		if (!period)
			period = 1;
	}
	return period;
}

static void set_state(struct breaker *b, enum breaker_state to, uint64_t now)
{
	b->transitions[b->state][to]++;
	b->state = to;
	b->state_since_ns = now;
	b->consecutive_failures = 0;
	b->probe_successes = 0;
	b->open_until_ns = 0;
	b->half_open_until_ns = 0;
	b->ramp_until_ns = 0;
	b->ramp_step = 0;
}

static void enter_open(struct breaker *b, uint64_t now, enum breaker_cause cause)
{
	set_state(b, BS_OPEN, now);
	b->open_streak++;
	b->cause = cause;
	b->open_until_ns = now + open_period(b);
}

static void enter_half_open(struct breaker *b, uint64_t now)
{
	set_state(b, BS_HALF_OPEN, now);
	if (b->policy.max_half_open_duration_ns)
		b->half_open_until_ns = now + b->policy.max_half_open_duration_ns;
}

static void enter_closed(struct breaker *b, uint64_t now)
{
	set_state(b, BS_CLOSED, now);
	b->open_streak = 0;
	window_reset(&b->window);
	if (b->policy.recovery_ramp_ns)
		b->ramp_until_ns = now + b->policy.recovery_ramp_ns;
}

void breaker_init(struct breaker *b, const struct breaker_policy *policy, uint64_t now)
{
	memset(b, 0, sizeof(*b));
	b->policy = *policy;
	b->state = BS_CLOSED;
	b->state_since_ns = now;
	window_init(&b->window, policy->window_type, policy->window_size);
	breaker_seed(b, now ^ (uint64_t)(uintptr_t)b);
}

/* The trip condition a closed breaker meets now, or BC_NONE. */
static enum breaker_cause trip_cause(const struct breaker *b, uint64_t now)
{
	const struct breaker_policy *p = &b->policy;
	struct window_counts c;
	uint64_t min;

	if (p->consecutive_failures && b->consecutive_failures >= p->consecutive_failures)
		return BC_CONSECUTIVE;
	if (!p->failure_rate_threshold && !p->slow_call_rate_threshold)
		return BC_NONE;
	/* As resilience4j: a count window smaller than minimum_calls evaluates when full. */
	min = p->minimum_calls ? p->minimum_calls : 1;
	if (b->window.type == WINDOW_COUNT && min > b->window.size)
		min = b->window.size;
	c = window_counts(&b->window, now);
	if (!c.calls || c.calls < min)
		return BC_NONE;
	if (p->failure_rate_threshold &&
	    (uint64_t)c.failures * 100 >= (uint64_t)p->failure_rate_threshold * c.calls)
		return BC_FAILURE_RATE;
	if (p->slow_call_rate_threshold &&
	    (uint64_t)c.slow * 100 >= (uint64_t)p->slow_call_rate_threshold * c.calls)
		return BC_SLOW_CALL_RATE;
	return BC_NONE;
}

/* One counted call in closed; trips when a condition holds and the guard allows. */
static bool closed_call(struct breaker *b, bool failure, bool slow, uint64_t now, bool may_open)
{
	enum breaker_cause cause;

	window_add(&b->window, failure, slow, now);
	if (failure)
		b->consecutive_failures++;
	else
		b->consecutive_failures = 0;
	cause = trip_cause(b, now);
	if (cause == BC_NONE)
		return false;
	if (!may_open) {
		b->denied_trips++;
		return false;
	}
	enter_open(b, now, cause);
	return true;
}

bool breaker_record_guarded(struct breaker *b, enum kb_result res, uint64_t start_ns,
			    uint64_t now, bool may_open)
{
	const struct breaker_policy *p = &b->policy;
	bool failure, slow;
	uint32_t needed;

	if (!running(b))
		return false;
	/*
	 * A connect begun before the current state says nothing about it: a
	 * SYN that times out 2 minutes later must not re-trip a breaker that
	 * has since recovered, nor count as a probe.
	 */
	if (start_ns < b->state_since_ns)
		return false;
	if ((unsigned)res >= KB_RES_MAX)
		return false;
	failure = breaker_policy_is_failure(p, res);

	switch (b->state) {
	case BS_CLOSED:
		/* Cancelled: the peer said nothing. Unlisted failures: the user said ignore. */
		if (!failure && res != KB_RES_SUCCESS)
			return false;
		/* start after end (clocks of two CPUs) is a fast call, not a wrapped slow one. */
		slow = p->slow_call_duration_ns && now > start_ns &&
		       now - start_ns > p->slow_call_duration_ns;
		return closed_call(b, failure, slow, now, may_open);
	case BS_HALF_OPEN:
		/*
		 * A cancelled probe used up a permit the kernel will not give
		 * back; waiting for it would block the destination for good.
		 * It proved nothing, so it counts against recovery, as does any
		 * outcome but success.
		 */
		if (res != KB_RES_SUCCESS) {
			enter_open(b, now, BC_PROBE);
			return true;
		}
		needed = p->half_open_successes ? p->half_open_successes : p->half_open_permits;
		if (needed > p->half_open_permits)
			needed = p->half_open_permits;
		if (++b->probe_successes < needed)
			return false;
		enter_closed(b, now);
		return true;
	default:
		/* open: connects that slipped in before the verdict landed. */
		return false;
	}
}

bool breaker_record(struct breaker *b, enum kb_result res, uint64_t start_ns, uint64_t now)
{
	return breaker_record_guarded(b, res, start_ns, now, true);
}

bool breaker_record_reset_guarded(struct breaker *b, uint64_t now, bool may_open)
{
	if (!running(b) || b->state != BS_CLOSED || !(b->policy.failures & POLICY_FAIL_RESET))
		return false;
	return closed_call(b, true, false, now, may_open);
}

bool breaker_record_reset(struct breaker *b, uint64_t now)
{
	return breaker_record_reset_guarded(b, now, true);
}

/* Ramp step at `now`: floor(elapsed * STEPS / length), so step k starts at ceil(k * length / STEPS). */
static uint32_t ramp_step_at(const struct breaker *b, uint64_t now)
{
	uint64_t len = b->ramp_until_ns - b->state_since_ns;
	uint64_t elapsed = now > b->state_since_ns ? now - b->state_since_ns : 0;

	if (elapsed >= len)
		return BREAKER_RAMP_STEPS;
	return (uint32_t)((unsigned __int128)elapsed * BREAKER_RAMP_STEPS / len);
}

bool breaker_tick(struct breaker *b, uint64_t now)
{
	uint32_t step;

	if (!running(b))
		return false;
	switch (b->state) {
	case BS_OPEN:
		if (now < b->open_until_ns)
			return false;
		enter_half_open(b, now);
		return true;
	case BS_HALF_OPEN:
		/* Probes that never report (lost, or never tried) must not hold half_open forever. */
		if (!b->half_open_until_ns || now < b->half_open_until_ns)
			return false;
		enter_open(b, now, BC_HALF_OPEN_TIMEOUT);
		return true;
	default:
		if (!b->ramp_until_ns)
			return false;
		step = ramp_step_at(b, now);
		if (step >= BREAKER_RAMP_STEPS) {
			b->ramp_until_ns = 0;
			b->ramp_step = 0;
			return true;
		}
		if (step <= b->ramp_step)
			return false;
		b->ramp_step = step;
		return true;
	}
}

/* n calls into the closed window, neither slow. */
static void window_count(struct breaker *b, bool failure, uint64_t n, uint64_t now)
{
	/* A count window holds at most its size: older calls would only fall out again. */
	if (b->policy.window_type == WINDOW_COUNT && n > b->policy.window_size)
		n = b->policy.window_size;
	while (n--)
		window_add(&b->window, failure, false, now);
}

void breaker_count(struct breaker *b, enum kb_result res, uint64_t n, uint64_t now)
{
	bool failure;

	if (!running(b) || b->state != BS_CLOSED || (unsigned)res >= KB_RES_MAX)
		return;
	failure = breaker_policy_is_failure(&b->policy, res);
	if (!failure && res != KB_RES_SUCCESS)
		return;
	window_count(b, failure, n, now);
}

void breaker_count_resets(struct breaker *b, uint64_t n, uint64_t now)
{
	if (running(b) && b->state == BS_CLOSED && (b->policy.failures & POLICY_FAIL_RESET))
		window_count(b, true, n, now);
}

void breaker_adopt_count(struct breaker *b, uint32_t consecutive)
{
	if (running(b) && b->state == BS_CLOSED)
		b->consecutive_failures = consecutive;
}

bool breaker_adopt_trip(struct breaker *b, uint64_t at)
{
	if (!running(b) || (b->state != BS_CLOSED && b->state != BS_HALF_OPEN))
		return false;
	if (at < b->state_since_ns)
		at = b->state_since_ns;
	enter_open(b, at, b->state == BS_HALF_OPEN ? BC_PROBE : BC_CONSECUTIVE);
	return true;
}

uint64_t breaker_deadline(const struct breaker *b)
{
	uint64_t len, k;

	if (!running(b))
		return 0;
	switch (b->state) {
	case BS_OPEN:
		return b->open_until_ns;
	case BS_HALF_OPEN:
		return b->half_open_until_ns;
	default:
		if (!b->ramp_until_ns)
			return 0;
		len = b->ramp_until_ns - b->state_since_ns;
		k = b->ramp_step + 1;
		return b->state_since_ns +
		       (uint64_t)(((unsigned __int128)k * len + BREAKER_RAMP_STEPS - 1) /
				  BREAKER_RAMP_STEPS);
	}
}

bool breaker_ramping(const struct breaker *b)
{
	return running(b) && b->state == BS_CLOSED && b->ramp_until_ns;
}

void breaker_verdict(const struct breaker *b, struct kb_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (b->policy.mode == MODE_DISABLED) {
		v->action = KB_ACT_ALLOW;
		return;
	}
	if (b->policy.mode == MODE_FORCED_OPEN) {
		v->action = KB_ACT_BLOCK;
		return;
	}
	/* Observe mode decides as enforce would, so the kernel can count would_block. */
	v->observe = b->policy.mode == MODE_OBSERVE;
	v->fail_mask = b->policy.failures & ((1U << KB_RES_MAX) - 1);
	if (b->policy.failures & POLICY_FAIL_RESET)
		v->fail_mask |= KB_RESETS_FAIL;
	v->since_ns = b->state_since_ns;
	switch (b->state) {
	case BS_OPEN:
		/* Outcomes change nothing while open: no count, no wake-up. */
		v->action = KB_ACT_BLOCK;
		break;
	case BS_HALF_OPEN:
		/* Written once on entry to half_open; the hooks count permits down. */
		v->action = KB_ACT_PROBE;
		v->permits = b->policy.half_open_permits;
		/* A failed probe re-opens at once, in the kernel; every probe decides. */
		v->trip_after = 1;
		v->wake_mask = (1U << KB_RES_MAX) - 1;
		v->events = 1;
		break;
	default:
		/*
		 * Closed: the kernel trips on consecutive failures itself and
		 * carries on from the breaker's count. Rates need the agent's
		 * window: failures wake it when a rate can trip.
		 */
		v->trip_after = b->policy.consecutive_failures;
		v->fails_base = b->consecutive_failures;
		if (b->policy.failure_rate_threshold)
			v->wake_mask = v->fail_mask & ~KB_RESETS_FAIL;
		/*
		 * The agent needs each outcome in order only where a rule of its
		 * own decides: rates over a window, slow calls. Consecutive
		 * failures alone, resets among them (kb_judge_reset), are the
		 * kernel's to count; the window then only feeds the
		 * failure-rate gauge, from counters (breaker_count).
		 */
		v->events = b->policy.failure_rate_threshold || b->policy.slow_call_rate_threshold;
		if (b->ramp_until_ns) {
			/* 5%, 10%, ... 95%: all is reached when the ramp ends (ALLOW). */
			v->action = KB_ACT_RAMP;
			v->admit = (uint32_t)((uint64_t)KB_ADMIT_ONE * (b->ramp_step + 1) /
					      (BREAKER_RAMP_STEPS + 1));
		} else {
			v->action = KB_ACT_ALLOW;
		}
		break;
	}
}

enum breaker_state breaker_public_state(const struct breaker *b)
{
	switch (b->policy.mode) {
	case MODE_ENFORCE:
		return b->state;
	case MODE_DISABLED:
		return BS_DISABLED;
	case MODE_FORCED_OPEN:
		return BS_FORCED_OPEN;
	default:
		return BS_METRICS_ONLY;
	}
}

static double rate(uint32_t part, uint32_t calls)
{
	return calls ? (double)part / calls : 0.0;
}

double breaker_failure_rate(const struct breaker *b, uint64_t now)
{
	struct window_counts c = window_counts(&b->window, now);

	return rate(c.failures, c.calls);
}

double breaker_slow_call_rate(const struct breaker *b, uint64_t now)
{
	struct window_counts c = window_counts(&b->window, now);

	return rate(c.slow, c.calls);
}

uint32_t breaker_window_calls(const struct breaker *b, uint64_t now)
{
	return window_counts(&b->window, now).calls;
}

/* Closed and fresh at `now`, as after breaker_init but keeping the counters. */
static void restart_closed(struct breaker *b, uint64_t now)
{
	if (b->state != BS_CLOSED)
		set_state(b, BS_CLOSED, now);
	b->state_since_ns = now;
	b->consecutive_failures = 0;
	b->ramp_until_ns = 0;
	b->ramp_step = 0;
	b->open_streak = 0;
	window_init(&b->window, b->policy.window_type, b->policy.window_size);
}

bool breaker_reconfigure(struct breaker *b, const struct breaker_policy *new_policy, uint64_t now)
{
	const struct breaker_policy old = b->policy;
	enum breaker_state pub = breaker_public_state(b);
	struct kb_verdict before, after;
	bool was_running = running(b);

	breaker_verdict(b, &before);
	b->policy = *new_policy;
	if (!running(b) || !was_running) {
		restart_closed(b, now);
	} else {
		if (old.window_type != new_policy->window_type ||
		    old.window_size != new_policy->window_size)
			window_init(&b->window, new_policy->window_type, new_policy->window_size);
		if (b->state == BS_HALF_OPEN)
			b->half_open_until_ns = new_policy->max_half_open_duration_ns
				? b->state_since_ns + new_policy->max_half_open_duration_ns : 0;
		if (b->state == BS_CLOSED && b->ramp_until_ns) {
			b->ramp_until_ns = b->state_since_ns + new_policy->recovery_ramp_ns;
			b->ramp_step = new_policy->recovery_ramp_ns ? ramp_step_at(b, now)
								    : BREAKER_RAMP_STEPS;
			if (b->ramp_step >= BREAKER_RAMP_STEPS) {
				b->ramp_until_ns = 0;
				b->ramp_step = 0;
			}
		}
	}
	breaker_verdict(b, &after);
	return memcmp(&before, &after, sizeof(before)) || pub != breaker_public_state(b);
}

bool breaker_group_may_open(size_t open_now, size_t group_size, uint32_t max_open_percent)
{
	if (!open_now || max_open_percent >= 100)
		return true;
	return (uint64_t)(open_now + 1) * 100 <= (uint64_t)max_open_percent * group_size;
}

int breaker_state_severity(enum breaker_state s)
{
	static const int rank[BS_MAX] = {
		[BS_FORCED_OPEN] = 6, [BS_OPEN] = 5, [BS_HALF_OPEN] = 4,
		[BS_CLOSED] = 3, [BS_METRICS_ONLY] = 2, [BS_DISABLED] = 1,
	};

	return (unsigned)s < BS_MAX ? rank[s] : 0;
}
