// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Naming the workload indexes the kernel hands out: which cgroup each
 * one is (kb_workloads), and where that cgroup sits below the
 * enforcement cgroup (a walk, only when an index is still unnamed).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "agent_int.h"
#include "bpf.h"
#include "cgroup.h"
#include "log.h"

/* A cgroup found by the walk. */
struct wl_found {
	uint64_t id;
	char name[WL_NAME_MAX];
};

struct wl_walk {
	struct wl_found *found;
	size_t n, alloc;
	bool oom;
};

/* Room for one more item of `size` bytes in *items (n held, *alloc allocated). */
static bool room_for_one(void **items, size_t n, size_t *alloc, size_t size)
{
	size_t more = *alloc ? *alloc * 2 : 64;
	void *p;

	if (n < *alloc)
		return true;
	p = realloc(*items, more * size);
	if (!p)
		return false;
	*items = p;
	*alloc = more;
	return true;
}

static void walk_one(void *ctx, uint64_t id, const char *rel)
{
	struct wl_walk *w = ctx;
	struct wl_found *p;

	if (!room_for_one((void **)&w->found, w->n, &w->alloc, sizeof(*w->found))) {
		w->oom = true;
		return;
	}
	p = &w->found[w->n++];
	p->id = id;
	/* Found all the same: the reclaim must not take a live cgroup for gone. */
	if (workloads_label(rel, p->name, sizeof(p->name)))
		snprintf(p->name, sizeof(p->name), "cgroup-%" PRIu64, id);
}

struct wl_name_ctx {
	struct agent *a;
	struct wl_walk walk;
	bool walked;
	bool failed;	/* some index stays unnamed for now */
};

/* kb_workload_fn: name index idx after cgroup id, walking the cgroups once if needed. */
static void name_one(void *ctx, uint64_t id, uint32_t idx)
{
	struct wl_name_ctx *nc = ctx;
	struct workloads *w = &nc->a->wl;
	char name[WL_NAME_MAX];
	int err;

	if (idx >= w->max || workloads_named(w, idx))
		return;
	if (!nc->walked) {
		nc->walked = true;
		err = cgroup_walk(nc->a->wl_dir, w->depth, walk_one, &nc->walk);
		if (err)
			log_warn("workloads: walk %s: %s", nc->a->wl_dir, strerror(-err));
	}
	if (nc->walk.oom) {
		nc->failed = true;	/* named on a later look */
		return;
	}
	for (size_t i = 0; i < nc->walk.n; i++)
		if (nc->walk.found[i].id == id) {
			workloads_name(w, idx, nc->walk.found[i].name);
			return;
		}
	/* Gone before we looked, or reached from outside the enforcement cgroup. */
	snprintf(name, sizeof(name), "cgroup-%" PRIu64, id);
	workloads_name(w, idx, name);
}

/* With force, look even when no index was handed out since the last look. */
static void refresh(struct agent *a, bool force)
{
	struct wl_name_ctx nc = { .a = a };
	struct kb_wl_ctl ctl;
	int err;

	if (!a->wl.max || kb_bpf_wl_ctl(a->bpf, &ctl) || (ctl.next == a->wl.seen_next && !force))
		return;
	err = kb_bpf_workloads_each(a->bpf, name_one, &nc);
	if (err)
		log_warn("workloads: read the kernel's table: %s", strerror(-err));
	else if (!nc.failed)
		a->wl.seen_next = ctl.next;
	a->wl.folded = ctl.next > a->wl.max ? ctl.next - a->wl.max : 0;
	free(nc.walk.found);
}

void workloads_refresh(struct agent *a)
{
	refresh(a, false);
}

const char *agent_workload_name(struct agent *a, uint32_t idx)
{
	if (idx > a->wl.max)
		return "?";
	/*
	 * The kernel counts next before it adds the cgroup to its table: a
	 * look in between saw the new next without the entry. Every counted
	 * index has its entry by now.
	 */
	if (!workloads_named(&a->wl, idx))
		refresh(a, true);
	return workloads_named(&a->wl, idx) ? a->wl.names[idx] : "?";
}

/* A cgroup the kernel numbered: its id and index. */
struct wl_entry {
	uint64_t id;
	uint32_t idx;
};

struct wl_entries {
	struct wl_entry *e;
	size_t n, alloc;
	bool oom;
};

static void entry_one(void *ctx, uint64_t id, uint32_t idx)
{
	struct wl_entries *es = ctx;

	if (!room_for_one((void **)&es->e, es->n, &es->alloc, sizeof(*es->e))) {
		es->oom = true;
		return;
	}
	es->e[es->n++] = (struct wl_entry){ .id = id, .idx = idx };
}

static int by_id(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static bool has_id(const uint64_t *ids, size_t n, uint64_t id)
{
	return n && bsearch(&id, ids, n, sizeof(*ids), by_id);
}

/*
 * Workload idx's breakers start afresh: the index's next cgroup is
 * another workload. Transitions stay, they are the destination's history.
 */
static void renew_breakers(struct agent *a, uint32_t idx, uint64_t now)
{
	for (uint32_t ci = 0; ci < a->n_circuits; ci++) {
		const struct agent_circuit *c = &a->circuits[ci];
		struct agent_slot *s;
		struct breaker was;

		if (!c->n_wl || idx >= c->n_wl)
			continue;
		s = &a->slots[c->slot + idx];
		was = s->br;
		breaker_init(&s->br, &c->cfg->policy, now);
		memcpy(s->br.transitions, was.transitions, sizeof(was.transitions));
		s->br.denied_trips = was.denied_trips;
		/* What its counters hold is the gone workload's: not fed again. */
		s->events = true;
		slot_rebase_resets(a, s);
		slot_publish(a, s, was.state, "workload_gone", now);
	}
}

/*
 * The cgroups of a look found gone, their labels given back together:
 * one walk of kb_wstats for them all, not one each (a walk is a syscall
 * per key: thousands of them at hundreds of workloads, and churn of
 * hundreds of cgroups held the loop past failopen_after).
 */
struct wl_reclaim {
	const struct wl_entry **e;	/* at most WL_RECLAIM_MAX */
	size_t n;
	bool *labels;			/* [max]: the labels among them, wstats to forget */
};

/*
 * The cgroup of entry e is gone: its label starts on its way back
 * (reclaim_end gives it back), unless its generation cannot move on.
 */
static void reclaim_begin(struct agent *a, struct wl_reclaim *r, const struct wl_entry *e,
			  uint64_t now)
{
	int err;

	/*
	 * First a new generation: from here on, what the gone cgroup's
	 * sockets do counts as other, not for this label (kb_abi.h). Without
	 * it the label stays the gone cgroup's: tried again at a later look.
	 */
	if (e->idx < a->wl.max) {
		err = kb_bpf_wl_gen_bump(a->bpf, e->idx);
		if (err) {
			a->map_errors++;
			log_err("bpf: new generation of workload index %u: %s", e->idx, strerror(-err));
			return;
		}
		renew_breakers(a, e->idx, now);
		r->labels[e->idx] = true;
	}
	r->e[r->n++] = e;
}

/* Forget the gone labels' counters, then give them back. */
static void reclaim_end(struct agent *a, struct wl_reclaim *r)
{
	/* Before the indexes go back, so that their next cgroups find nothing of these. */
	int forgot = kb_bpf_wstats_forget_workloads(a->bpf, r->labels, a->wl.max), err;

	for (size_t i = 0; i < r->n; i++) {
		const struct wl_entry *e = r->e[i];

		err = 0;
		if (e->idx < a->wl.max) {
			log_info("workload gone\tworkload=%s index=%u", a->wl.names[e->idx][0] ?
				 a->wl.names[e->idx] : "?", e->idx);
			workloads_forget(&a->wl, e->idx);
			a->wl.reclaimed++;
			err = forgot;
		}
		err = err ?: kb_bpf_workload_gone(a->bpf, e->id, e->idx);
		if (err) {
			a->map_errors++;
			log_err("bpf: give back workload index %u: %s", e->idx, strerror(-err));
		}
	}
}

/*
 * The path of labelled entry e's cgroup, from its name: false when the
 * name is not one (other, not named yet, or the cgroup-ID of one the
 * walk never found), and only a walk can tell.
 */
static bool entry_path(const struct agent *a, const struct wl_entry *e, char *path, size_t len)
{
	char fallback[32];
	int n;

	if (e->idx >= a->wl.max || !workloads_named(&a->wl, e->idx))
		return false;
	snprintf(fallback, sizeof(fallback), "cgroup-%" PRIu64, e->id);
	if (!strcmp(a->wl.names[e->idx], fallback))
		return false;
	n = snprintf(path, len, "%s/%s", a->wl_dir, a->wl.names[e->idx]);
	return n > 0 && (size_t)n < len;
}

static int found_by_id(const void *x, const void *y)
{
	const struct wl_found *a = x, *b = y;

	return a->id < b->id ? -1 : a->id > b->id;
}

/*
 * Walk every cgroup: the ids found, sorted into *ids, and a name for each
 * labelled entry of es still unnamed (a cgroup-ID one for a cgroup the
 * walk did not find: gone already). False when it could not see them all.
 */
static bool walk_ids(struct agent *a, const struct wl_entries *es, uint64_t **ids, size_t *n)
{
	struct wl_walk live = { 0 };
	struct wl_found key, *f;
	char name[WL_NAME_MAX];
	bool ok;

	ok = !cgroup_walk(a->wl_dir, a->wl.depth, walk_one, &live) && !live.oom;
	if (ok && live.n)
		qsort(live.found, live.n, sizeof(*live.found), found_by_id);
	*ids = ok && live.n ? malloc(live.n * sizeof(**ids)) : NULL;
	ok = ok && (!live.n || *ids);
	for (size_t i = 0; ok && i < live.n; i++)
		(*ids)[i] = live.found[i].id;
	*n = ok ? live.n : 0;
	for (size_t i = 0; ok && i < es->n; i++) {
		const struct wl_entry *e = &es->e[i];

		if (e->idx >= a->wl.max || workloads_named(&a->wl, e->idx))
			continue;
		key.id = e->id;
		f = live.n ? bsearch(&key, live.found, live.n, sizeof(*live.found), found_by_id) : NULL;
		if (!f)
			snprintf(name, sizeof(name), "cgroup-%" PRIu64, e->id);
		workloads_name(&a->wl, e->idx, f ? f->name : name);
	}
	free(live.found);
	return ok;
}

/*
 * Whether this look needs a walk of every cgroup: for entry e, which has
 * no path to stat. Once a minute for any such entry; and at once for a
 * label the kernel handed out since the last look (not named yet: no
 * scrape may ever ask for it, and it must be named while its cgroup is
 * there, and found gone within two looks when it is not), or one that
 * looked gone at the last look and is to be looked at again. Both are
 * rare: a walk costs nothing while no workload comes or goes.
 */
static bool walk_for(const struct agent *a, const struct wl_entry *e, bool sweep)
{
	return sweep || (e->idx < a->wl.max && !workloads_named(&a->wl, e->idx)) ||
	       has_id(a->wl.gone, a->wl.n_gone, e->id);
}

void workloads_reclaim(struct agent *a, uint64_t now)
{
	const struct wl_entry *batch[WL_RECLAIM_MAX];
	struct wl_reclaim r = { .e = batch };
	struct wl_entries es = { 0 };
	uint64_t *gone = NULL, *ids = NULL;
	size_t n_gone = 0, n_ids = 0;
	bool walked = false, was_gone, sweep;
	char path[PATH_MAX];
	struct stat st;
	int live;

	if (!a->wl.max || now - a->wl.checked_ns < WL_CHECK_NS)
		return;
	a->wl.checked_ns = now;
	if (kb_bpf_workloads_each(a->bpf, entry_one, &es) || es.oom || !es.n)
		goto out;
	gone = malloc(es.n * sizeof(*gone));
	r.labels = calloc(a->wl.max, sizeof(*r.labels));
	if (!gone || !r.labels)
		goto out;
	/*
	 * A labelled cgroup is looked up by its path: a few stats. The rest
	 * (other, unnamed) only by a walk of every cgroup (walk_for). The
	 * entries were read first: a cgroup made since is not one of them.
	 */
	sweep = now - a->wl.swept_ns >= WL_SWEEP_NS;
	for (size_t i = 0; i < es.n && !walked; i++)
		walked = !entry_path(a, &es.e[i], path, sizeof(path)) && walk_for(a, &es.e[i], sweep);
	if (walked) {
		if (sweep)
			a->wl.swept_ns = now;
		walked = walk_ids(a, &es, &ids, &n_ids);
	}
	for (size_t i = 0; i < es.n; i++) {
		const struct wl_entry *e = &es.e[i];

		was_gone = has_id(a->wl.gone, a->wl.n_gone, e->id);
		if (entry_path(a, e, path, sizeof(path)))
			live = !stat(path, &st) ? st.st_ino == e->id : errno == ENOENT || errno == ENOTDIR ? 0 : -1;
		else
			live = walked ? has_id(ids, n_ids, e->id) : -1;
		if (live < 0) {
			/* Not looked at this time: as it was. */
			if (was_gone)
				gone[n_gone++] = e->id;
		} else if (!live) {
			/* Past the look's batch: the next look's, 2 s on. */
			if (!was_gone || r.n == WL_RECLAIM_MAX)
				gone[n_gone++] = e->id;
			else
				reclaim_begin(a, &r, e, now);
		}
	}
	if (r.n)
		reclaim_end(a, &r);
	qsort(gone, n_gone, sizeof(*gone), by_id);
	free(a->wl.gone);
	a->wl.gone = gone;
	a->wl.n_gone = n_gone;
	gone = NULL;
out:
	free(r.labels);
	free(gone);
	free(ids);
	free(es.e);
}

void agent_set_cgroup(struct agent *a, const char *dir)
{
	snprintf(a->wl_dir, sizeof(a->wl_dir), "%s", dir);
}

/* A workload's counters as gathered: its circuit, before names are merged. */
struct wl_rec {
	uint32_t circuit;
	struct metrics_wl v;
};

struct wl_gather {
	struct agent *a;
	struct wl_rec *recs;
	size_t n, alloc;
	bool oom;
};

/* kb_wstats_fn: one (destination slot, workload index) counter. */
static void gather_one(void *ctx, const struct kb_wl_key *key, const struct kb_wl_stats *st)
{
	struct wl_gather *g = ctx;
	struct agent *a = g->a;
	const struct agent_circuit *c;
	struct wl_rec *r;
	uint32_t canon;

	if (key->dst >= a->n_slots || !a->slots[key->dst].used || key->workload > a->wl.max)
		return;	/* a removed destination's, until its slot is taken again */
	if (!room_for_one((void **)&g->recs, g->n, &g->alloc, sizeof(*g->recs))) {
		g->oom = true;
		return;
	}
	r = &g->recs[g->n++];
	r->circuit = a->slots[key->dst].circuit;
	c = &a->circuits[r->circuit];
	canon = a->wl.canon[key->workload];
	snprintf(r->v.name, sizeof(r->v.name), "%s", agent_workload_name(a, canon));
	/* Before records are merged by name: two names that read the same make one series. */
	workloads_utf8(r->v.name);
	r->v.state = c->n_wl ? (int)breaker_public_state(&a->slots[c->slot + key->workload].br) : -1;
	r->v.st = *st;
}

static int by_circuit_name(const void *x, const void *y)
{
	const struct wl_rec *a = x, *b = y;

	if (a->circuit != b->circuit)
		return a->circuit < b->circuit ? -1 : 1;
	return strcmp(a->v.name, b->v.name);
}

static uint64_t wl_failures(const struct metrics_wl *w)
{
	uint64_t n = 0;

	for (int r = 0; r < KB_RES_MAX; r++)
		n += breaker_is_failure(r) ? w->st.connects[r] : 0;
	return n;
}

/* What pages show: per circuit, most failures first, then by name. */
static int by_circuit_failures(const void *x, const void *y)
{
	const struct wl_rec *a = x, *b = y;
	uint64_t fa = wl_failures(&a->v), fb = wl_failures(&b->v);

	if (a->circuit != b->circuit)
		return a->circuit < b->circuit ? -1 : 1;
	if (fa != fb)
		return fa > fb ? -1 : 1;
	return strcmp(a->v.name, b->v.name);
}

/* Sum records of one circuit that carry one name (per_address members, renamed cgroups). */
static size_t merge_names(struct wl_rec *recs, size_t n)
{
	size_t out = 0;

	if (!n)
		return 0;	/* recs may be NULL: qsort must not see it */
	qsort(recs, n, sizeof(*recs), by_circuit_name);
	for (size_t i = 0; i < n; i++) {
		struct wl_rec *o = out ? &recs[out - 1] : NULL;

		if (!o || by_circuit_name(o, &recs[i])) {
			recs[out++] = recs[i];
			continue;
		}
		for (int r = 0; r < KB_RES_MAX; r++)
			o->v.st.connects[r] += recs[i].v.st.connects[r];
		o->v.st.blocked += recs[i].v.st.blocked;
		if (breaker_state_severity(recs[i].v.state) > breaker_state_severity(o->v.state))
			o->v.state = recs[i].v.state;
	}
	qsort(recs, out, sizeof(*recs), by_circuit_failures);
	return out;
}

int workloads_snapshot(struct agent *a, struct snapshot *s)
{
	struct wl_gather g = { .a = a };
	struct metrics_wl *wl;
	int err;

	err = kb_bpf_wstats_each(a->bpf, gather_one, &g);
	if (err)
		log_warn("workloads: read the counters: %s", strerror(-err));
	if (g.oom) {
		free(g.recs);
		return -ENOMEM;
	}
	g.n = merge_names(g.recs, g.n);
	wl = calloc(g.n ? g.n : 1, sizeof(*wl));
	if (!wl) {
		free(g.recs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < g.n; i++) {
		struct snap_circuit *sc = &s->c[g.recs[i].circuit];

		if (!sc->n_wl++)
			sc->wl = i;
		wl[i] = g.recs[i].v;
	}
	free(g.recs);
	free(s->wl);
	s->wl = wl;
	s->n_wl = g.n;
	s->wl_on = true;
	s->info.wl_on = true;
	s->info.wl_labelled = a->wl.labelled;
	s->info.wl_folded = a->wl.folded;
	s->info.wl_reclaimed = a->wl.reclaimed;
	s->wl_info = (struct status_wl){ .depth = a->wl.depth, .max = a->wl.max,
					 .labelled = a->wl.labelled, .folded = a->wl.folded };
	return 0;
}
