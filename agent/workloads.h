/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * workloads: the names of the workload indexes the kernel hands out
 * (kb_abi.h, kb_workloads). Pure: the caller walks the cgroups.
 *
 * An index below max names one cgroup; max is "other". Two indexes may
 * carry one name (a cgroup removed and made again gets a new id and a
 * new index): each name's first index is its canonical one, and what is
 * shown sums over the indexes that share it.
 */
#ifndef KB_WORKLOADS_H
#define KB_WORKLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WL_NAME_MAX 256		/* a workload's name, NUL included */
#define WL_OTHER "other"
#define WL_SELF "."		/* the enforcement cgroup itself */

struct workloads {
	uint32_t max;			/* 0: attribution off */
	uint32_t depth;
	char (*names)[WL_NAME_MAX];	/* [max + 1]; "" = not named yet */
	uint32_t *canon;		/* [max + 1]: first index with the same name */
	uint32_t labelled;		/* named indexes below max */
	uint32_t folded;		/* cgroups the kernel counted as other */
	uint32_t seen_next;		/* kb_wl_ctl.next when the indexes were last named */
	uint64_t reclaimed;		/* indexes given back, their cgroups gone */
	uint64_t checked_ns;		/* the last look for gone cgroups */
	uint64_t swept_ns;		/* the last walk of them all */
	uint64_t *gone;			/* cgroups that look gone since then, sorted */
	size_t n_gone;
};

/*
 * How often the agent looks for cgroups that are gone (workloads_reclaim):
 * labelled ones by their paths, the rest by a walk of them all.
 */
#define WL_CHECK_NS 2000000000ULL
#define WL_SWEEP_NS 60000000000ULL
/*
 * Labels a look gives back at most: each renews the workload's breaker of
 * every per_workload destination, and the loop must beat (failopen_after)
 * through a churn of thousands of cgroups. The rest wait for a next look.
 */
#define WL_RECLAIM_MAX 64

/* Room for max workloads (0: off). 0 or -ENOMEM. */
int workloads_init(struct workloads *w, uint32_t max, uint32_t depth);
void workloads_fini(struct workloads *w);

static inline bool workloads_named(const struct workloads *w, uint32_t idx)
{
	return idx <= w->max && w->names[idx][0];
}

/* Name index idx (below max); a name already given makes idx share its canonical index. */
void workloads_name(struct workloads *w, uint32_t idx, const char *name);

/*
 * Forget index idx's name: its cgroup is gone and the kernel may hand the
 * index out again. Indexes that shared the name keep it.
 */
void workloads_forget(struct workloads *w, uint32_t idx);

/*
 * The name of cgroup `rel` (relative to the enforcement cgroup, "" for
 * itself) as a workload label: rel itself, "." for "". Returns 0, or
 * -ENAMETOOLONG when cut to fit.
 */
int workloads_label(const char *rel, char *out, size_t len);

/*
 * Make label valid UTF-8 in place for /metrics and /status: each byte that
 * is not part of a well-formed sequence becomes '?'. A cgroup's name may
 * be any bytes; Prometheus refuses a whole scrape, and JSON parsers a
 * page, with one invalid sequence in it. Returns how many bytes changed.
 */
size_t workloads_utf8(char *label);

#endif /* KB_WORKLOADS_H */
