/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kb_judge.h - the rules the kernel applies on its own: the consecutive-
 * failure trip and the half_open permits, over struct kb_trip.
 *
 * Compiled into the BPF objects and into the unit tests (tests/unit/
 * test_judge.c), so the rule the tests prove is the rule the kernel runs.
 * Include after kb_abi.h. Only __sync builtins and plain 64-bit loads and
 * stores, which both clang's BPF target (-mcpu=v3, Linux 5.12+ atomics)
 * and the host compiler turn into atomic instructions.
 */
#ifndef KB_JUDGE_H
#define KB_JUDGE_H

#ifdef __bpf__
#define KB_JUDGE_INLINE static __always_inline
#else
#define KB_JUDGE_INLINE static inline __attribute__((unused))
#endif

/* The count a gen-packed word holds for gen: 0 when it is another gen's. */
KB_JUDGE_INLINE __u32 kb_word_count(__u64 w, __u32 gen)
{
	return (__u32)(w >> 32) == gen ? (__u32)w : 0;
}

/*
 * Add one to *w's count for gen and return the count before the add.
 * A word still holding an older gen is restarted at one with a compare-
 * and-swap; two tries suffice, as only the first caller of a new gen
 * restarts it and the loser then finds the new gen. Returns -1 only if
 * both tries lost (a verdict written twice in between).
 */
KB_JUDGE_INLINE long long kb_word_add(__u64 *w, __u32 gen)
{
	__u64 fresh = (__u64)gen << 32 | 1, old;

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
KB_JUDGE_INLINE int kb_take_permit(struct kb_trip *t, __u32 gen, __u32 permits)
{
	long long before;

	/* Once spent, refusals leave the word alone: no count to wrap. */
	if (kb_word_count(*(volatile __u64 *)&t->probes, gen) >= permits)
		return 0;
	before = kb_word_add(&t->probes, gen);
	return before >= 0 && before < permits;
}

/* What the connect hooks do for v, counting a kernel trip in t. */
KB_JUDGE_INLINE __u32 kb_effective_action(const struct kb_verdict *v, const struct kb_trip *t)
{
	if (t && t->tripped == v->gen && v->gen)
		return KB_ACT_BLOCK;
	return v->action;
}

/*
 * One outcome of a connect begun at syn_ns, judged against the agent's
 * verdict v at `now`. A success restarts the consecutive count; a failure
 * (v->fail_mask) adds one, and the failure that brings fails_base plus the
 * kernel's count to trip_after opens the breaker in the kernel, while the
 * action is one a failure may end (allow, ramp, probe). Returns
 * KB_EV_TRIPPED to the one caller whose outcome tripped it, else 0.
 */
KB_JUDGE_INLINE __u32 kb_judge(const struct kb_verdict *v, struct kb_trip *t, __u32 res,
			       __u64 syn_ns, __u64 now)
{
	__u32 gen = v->gen, act = v->action, old;
	long long before;

	if (!gen || syn_ns < v->since_ns)
		return 0;	/* begun before the breaker's current state */
	if (res == KB_RES_SUCCESS) {
		if (kb_word_count(*(volatile __u64 *)&t->fails, gen))
			*(volatile __u64 *)&t->fails = (__u64)gen << 32;
		return 0;
	}
	if (res >= 32 || !(v->fail_mask & (1U << res)))
		return 0;
	before = kb_word_add(&t->fails, gen);
	if (before < 0 || !v->trip_after || (__u64)v->fails_base + before + 1 < v->trip_after)
		return 0;
	if (act != KB_ACT_ALLOW && act != KB_ACT_RAMP && act != KB_ACT_PROBE)
		return 0;
	old = *(volatile __u32 *)&t->tripped;
	if (old == gen || __sync_val_compare_and_swap(&t->tripped, old, gen) != old)
		return 0;	/* tripped already, by this outcome's peers */
	t->tripped_ns = now;
	return KB_EV_TRIPPED;
}

#endif /* KB_JUDGE_H */
