/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kb_judge.h - the rules the kernel applies on its own: the consecutive-
 * failure trip and the half_open permits, over struct kb_trip.
 *
 * Compiled into the BPF objects and into the unit tests (tests/unit/
 * test_judge.c), so the rule the tests prove is the rule the kernel runs.
 * Include after kb_abi.h (and, in BPF, bpf_helpers.h).
 *
 * Two ways to change struct kb_trip, chosen by `locked`, a constant at
 * every call site:
 * - false: BPF atomics that return a value (fetch-and-add, compare-and-
 *   swap: Linux 5.12+), from __sync builtins that clang's BPF target
 *   (-mcpu=v3) and the host compiler both turn into atomic instructions;
 * - true: plain loads and stores under kb_trip.lock (bpf_spin_lock, Linux
 *   5.1+), for older kernels. Their verifier refuses a program in which an
 *   atomic fetch appears at all, even where it can never run, so each BPF
 *   program is built one way or the other and the agent loads the one the
 *   kernel takes.
 */
#ifndef KB_JUDGE_H
#define KB_JUDGE_H

#ifdef __bpf__
#define KB_JUDGE_INLINE static __always_inline
#define kb_lock(l) bpf_spin_lock(l)
#define kb_unlock(l) bpf_spin_unlock(l)
#else
#include <stdbool.h>
#define KB_JUDGE_INLINE static inline __attribute__((unused))
/* The unit tests' stand-in for bpf_spin_lock: a spin on the lock word. */
static inline void kb_lock(struct bpf_spin_lock *l)
{
	while (__atomic_exchange_n(&l->val, 1, __ATOMIC_ACQUIRE))
		;
}

static inline void kb_unlock(struct bpf_spin_lock *l)
{
	__atomic_store_n(&l->val, 0, __ATOMIC_RELEASE);
}
#endif

/* The count a gen-packed word holds for gen: 0 when it is another gen's. */
KB_JUDGE_INLINE __u32 kb_word_count(__u64 w, __u32 gen)
{
	return (__u32)(w >> 32) == gen ? (__u32)w : 0;
}

/*
 * Set in a fails word by a success in its gen: the agent's fails_base (the
 * failures it had counted when it wrote the verdict) is behind that
 * success, and no longer counts.
 */
#define KB_FAILS_RESET 0x80000000U

/*
 * Failures in a row under verdict v, given the kernel's fails word: its
 * count in v's gen on top of the agent's fails_base, or alone once a
 * success in that gen reset the run.
 */
KB_JUDGE_INLINE __u32 kb_fails_in_row(const struct kb_verdict *v, __u64 fails)
{
	__u32 n = kb_word_count(fails, v->gen);

	return n & KB_FAILS_RESET ? n & ~KB_FAILS_RESET : v->fails_base + n;
}

/*
 * Add one to *w's count for gen and return the count before the add.
 * A word still holding an older gen is restarted at one with a compare-
 * and-swap; two tries suffice, as only the first caller of a new gen
 * restarts it and the loser then finds the new gen. Returns -1 only if
 * both tries lost (a verdict written twice in between). locked: the
 * caller holds the lock that guards *w.
 */
KB_JUDGE_INLINE long long kb_word_add(__u64 *w, __u32 gen, bool locked)
{
	__u64 fresh = (__u64)gen << 32 | 1, old;

	if (locked) {
		old = *w;
		*w = (__u32)(old >> 32) == gen ? old + 1 : fresh;
		return (__u32)(old >> 32) == gen ? (__u32)old : 0;
	}
#ifdef __bpf__
#pragma unroll
#endif
	for (int i = 0; i < 2; i++) {
		old = *(volatile __u64 *)w;
		if ((__u32)(old >> 32) == gen)
			return (__u32)__sync_fetch_and_add(w, 1);
		if (__sync_val_compare_and_swap(w, old, fresh) == old)
			return 0;
	}
	return -1;
}

/*
 * KB_ACT_PROBE: take one of `permits` connects for gen. Exactly `permits`
 * callers get 1 however many CPUs race; the rest get 0.
 */
KB_JUDGE_INLINE int kb_take_permit(struct kb_trip *t, __u32 gen, __u32 permits, bool locked)
{
	long long before;

	/* Once spent, refusals leave the word alone: no count to wrap. */
	if (kb_word_count(*(volatile __u64 *)&t->probes, gen) >= permits)
		return 0;
	if (locked)
		kb_lock(&t->lock);
	before = kb_word_add(&t->probes, gen, locked);
	if (locked)
		kb_unlock(&t->lock);
	return before >= 0 && before < permits;
}

/*
 * TCP_CONNECT_CB of a connect under v, its SYN about to leave: a probe's
 * permit is spent for good. One taken by a connect that failed before its
 * SYN (no route, no local port, another program's refusal, a wrong
 * sin_family) is not, and kb_permits_unsent() shows it to the agent, which
 * alone can give it back (a new gen): else the breaker waits for an outcome
 * that never comes.
 */
KB_JUDGE_INLINE void kb_probe_sent(const struct kb_verdict *v, struct kb_trip *t, bool locked)
{
	if (v->action != KB_ACT_PROBE || !v->gen)
		return;
	if (locked)
		kb_lock(&t->lock);
	kb_word_add(&t->sent, v->gen, locked);
	if (locked)
		kb_unlock(&t->lock);
}

/*
 * Permits of v's gen taken by connects whose SYN has not left. A connect
 * between its hook and its TCP_CONNECT_CB is one for microseconds; one
 * that failed in between, for good. A Fast Open connect deferred to its
 * first write (TCP_FASTOPEN_CONNECT) is one until it writes: given back
 * after the agent's grace, its SYN is then one probe more, rather than
 * holding the breaker half_open should it never write (fastopen_connect:
 * ignore turns the option off, or refuses the connect).
 */
KB_JUDGE_INLINE __u32 kb_permits_unsent(const struct kb_verdict *v, const struct kb_trip *t)
{
	__u32 taken = kb_word_count(t->probes, v->gen), sent = kb_word_count(t->sent, v->gen);

	if (v->action != KB_ACT_PROBE || !v->gen)
		return 0;
	if (taken > v->permits)
		taken = v->permits;
	return taken > sent ? taken - sent : 0;
}

/* What the connect hooks do for v, counting a kernel trip in t. */
KB_JUDGE_INLINE __u32 kb_effective_action(const struct kb_verdict *v, const struct kb_trip *t)
{
	if (t && t->tripped == v->gen && v->gen)
		return KB_ACT_BLOCK;
	return v->action;
}

/* kb_judge's changes to t for an outcome that counts (see there). */
KB_JUDGE_INLINE __u32 kb_judge_trip(const struct kb_verdict *v, struct kb_trip *t, __u32 res,
				    __u64 now, bool locked)
{
	__u64 reset = (__u64)v->gen << 32 | KB_FAILS_RESET;
	__u32 gen = v->gen, act = v->action, old;
	long long before;

	if (res == KB_RES_SUCCESS) {
		/* Written once per run of successes, not on every one. */
		if (*(volatile __u64 *)&t->fails != reset)
			*(volatile __u64 *)&t->fails = reset;
		return 0;
	}
	before = kb_word_add(&t->fails, gen, locked);
	if (before < 0 || !v->trip_after ||
	    (before & KB_FAILS_RESET ? 0 : (__u64)v->fails_base) + (before & ~KB_FAILS_RESET) + 1 <
	    v->trip_after)
		return 0;
	if (act != KB_ACT_ALLOW && act != KB_ACT_RAMP && act != KB_ACT_PROBE)
		return 0;
	old = *(volatile __u32 *)&t->tripped;
	if (old == gen)
		return 0;	/* tripped already, by this outcome's peers */
	if (locked)
		t->tripped = gen;
	else if (__sync_val_compare_and_swap(&t->tripped, old, gen) != old)
		return 0;
	t->tripped_ns = now;
	return KB_EV_TRIPPED;
}

/*
 * One outcome of a connect begun at syn_ns, judged against the agent's
 * verdict v at `now`. A success restarts the consecutive count, the agent's
 * fails_base with it; a failure (v->fail_mask) adds one, and the failure
 * that brings the count in a row (kb_fails_in_row) to trip_after opens the
 * breaker in the kernel, while the
 * action is one a failure may end (allow, ramp, probe). Returns
 * KB_EV_TRIPPED to the one caller whose outcome tripped it, else 0.
 */
KB_JUDGE_INLINE __u32 kb_judge(const struct kb_verdict *v, struct kb_trip *t, __u32 res,
			       __u64 syn_ns, __u64 now, bool locked)
{
	__u32 flags;

	if (!v->gen || syn_ns < v->since_ns)
		return 0;	/* begun before the breaker's current state */
	if (res != KB_RES_SUCCESS && (res >= 32 || !(v->fail_mask & (1U << res))))
		return 0;
	if (locked)
		kb_lock(&t->lock);
	flags = kb_judge_trip(v, t, res, now, locked);
	if (locked)
		kb_unlock(&t->lock);
	return flags;
}

/*
 * A reset on a connection to v's destination, at `now`: a failure in the
 * same count as a connect's where v says so (KB_RESETS_FAIL), while the
 * breaker is closed (allow, ramp), as the agent counts them. Whenever the
 * connection began: a reset ends it now. Returns KB_EV_TRIPPED if it
 * tripped the breaker, else 0.
 */
KB_JUDGE_INLINE __u32 kb_judge_reset(const struct kb_verdict *v, struct kb_trip *t, __u64 now,
				     bool locked)
{
	__u32 flags;

	if (!v->gen || !(v->fail_mask & KB_RESETS_FAIL) ||
	    (v->action != KB_ACT_ALLOW && v->action != KB_ACT_RAMP))
		return 0;
	if (locked)
		kb_lock(&t->lock);
	flags = kb_judge_trip(v, t, KB_RES_ERROR, now, locked);
	if (locked)
		kb_unlock(&t->lock);
	return flags;
}

#endif /* KB_JUDGE_H */
