// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <string.h>
#include "breaker.h"

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

const char *breaker_state_name(enum breaker_state s)
{
	return (unsigned)s < BS_MAX ? state_names[s] : "unknown";
}

const char *breaker_result_name(enum kb_result res)
{
	return (unsigned)res < KB_RES_MAX ? result_names[res] : "unknown";
}

bool breaker_is_failure(enum kb_result res)
{
	switch (res) {
	case KB_RES_REFUSED:
	case KB_RES_TIMEOUT:
	case KB_RES_UNREACHABLE:
	case KB_RES_ERROR:
		return true;
	default:
		return false;
	}
}

static void set_state(struct breaker *b, enum breaker_state to, uint64_t now)
{
	b->transitions[b->state][to]++;
	b->state = to;
	b->state_since_ns = now;
	b->consecutive_failures = 0;
	b->probe_successes = 0;
	b->open_until_ns = to == BS_OPEN ? now + b->policy.open_duration_ns : 0;
}

void breaker_init(struct breaker *b, const struct breaker_policy *policy, uint64_t now)
{
	memset(b, 0, sizeof(*b));
	b->policy = *policy;
	b->state = BS_CLOSED;
	b->state_since_ns = now;
}

bool breaker_record(struct breaker *b, enum kb_result res, uint64_t start_ns, uint64_t now)
{
	bool failure = breaker_is_failure(res);

	/*
	 * A connect begun before the current state says nothing about it: a
	 * SYN that times out 2 minutes later must not re-trip a breaker that
	 * has since recovered, nor count as a probe.
	 */
	if (start_ns < b->state_since_ns)
		return false;
	if ((unsigned)res >= KB_RES_MAX)
		return false;

	switch (b->state) {
	case BS_CLOSED:
		if (res == KB_RES_CANCELLED)
			return false;	/* the peer said nothing */
		if (!failure) {
			b->consecutive_failures = 0;
			return false;
		}
		if (++b->consecutive_failures < b->policy.consecutive_failures)
			return false;
		set_state(b, BS_OPEN, now);
		return true;
	case BS_HALF_OPEN:
		/*
		 * A cancelled probe used up a permit the kernel will not give
		 * back; waiting for it would block the destination for good.
		 * It proved nothing, so it counts against recovery.
		 */
		if (failure || res == KB_RES_CANCELLED) {
			set_state(b, BS_OPEN, now);
			return true;
		}
		if (++b->probe_successes < b->policy.half_open_permits)
			return false;
		set_state(b, BS_CLOSED, now);
		return true;
	default:
		/* open: connects that slipped in before the verdict landed. */
		return false;
	}
}

bool breaker_tick(struct breaker *b, uint64_t now)
{
	if (b->state != BS_OPEN || now < b->open_until_ns)
		return false;
	set_state(b, BS_HALF_OPEN, now);
	return true;
}

uint64_t breaker_deadline(const struct breaker *b)
{
	return b->state == BS_OPEN ? b->open_until_ns : 0;
}

void breaker_verdict(const struct breaker *b, struct kb_verdict *v)
{
	memset(v, 0, sizeof(*v));
	/* Observe mode decides as enforce would, so the kernel can count would_block. */
	v->observe = b->policy.mode == MODE_OBSERVE;
	switch (b->state) {
	case BS_OPEN:
		v->action = KB_ACT_BLOCK;
		break;
	case BS_HALF_OPEN:
		/* Written once on entry to half_open; the hooks count permits down. */
		v->action = KB_ACT_PROBE;
		v->permits = b->policy.half_open_permits;
		break;
	default:
		v->action = KB_ACT_ALLOW;
		break;
	}
}

enum breaker_state breaker_public_state(const struct breaker *b)
{
	return b->policy.mode != MODE_ENFORCE ? BS_METRICS_ONLY : b->state;
}
