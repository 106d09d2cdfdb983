// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fakes.h's link seams: the kb_bpf_* calls agent.c makes, resolve_name(),
 * and the allocator, each able to fail when fault_arm() says so.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bpf.h"
#include "config.h"
#include "fakes.h"
#include "kb_judge.h"
#include "log.h"
#include "resolve.h"

/* --- the fault injector ---------------------------------------------------- */

static unsigned fault_nth, fault_count;
static bool fault_hit;
static pthread_t fault_thread;

void fault_arm(unsigned nth)
{
	fault_nth = nth;
	if (!nth)
		return;	/* what the armed run did stays readable */
	fault_count = 0;
	fault_hit = false;
	fault_thread = pthread_self();
}

unsigned fault_calls(void)
{
	return fault_count;
}

bool fault_fired(void)
{
	return fault_hit;
}

/* Counts one fallible call; true when it is the one to fail. Other threads never fail. */
static bool fault_here(void)
{
	if (!fault_nth || !pthread_equal(pthread_self(), fault_thread))
		return false;
	if (++fault_count != fault_nth)
		return false;
	fault_hit = true;
	return true;
}

/* A map call on dst_id: -EIO when the armed failure falls on it, oob past the maps' end, else 0. */
static int fake_call(uint32_t dst_id, int oob)
{
	if (fault_here())
		return -EIO;
	return dst_id >= FAKE_SLOTS ? oob : 0;
}

/* --- the allocator (-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc) -------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
	if (fault_here()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (fault_here()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fault_here()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

/* --- the maps --------------------------------------------------------------- */

struct kb_bpf {
	int unused;
};

struct fake_maps fake_maps;

static struct kb_bpf fake_handle;
static struct kb_event fake_queue[256];
static size_t fake_queued;
static uint32_t fake_last_gen;
static bool fake_adopted;
static bool fake_wl_adopted;

struct kb_bpf *fake_bpf_open(void)
{
	memset(&fake_maps, 0, sizeof(fake_maps));
	fake_queued = 0;
	fake_last_gen = 0;
	fake_adopted = false;
	fake_wl_adopted = false;
	return &fake_handle;
}

struct kb_bpf *fake_bpf_adopt(void)
{
	fake_queued = 0;
	fake_adopted = true;
	fake_wl_adopted = true;
	return &fake_handle;
}

void fake_wl_renumbered(void)
{
	fake_wl_adopted = false;
}

void fake_event(uint32_t dst_id, enum kb_result res, uint64_t ts_ns)
{
	if (fake_queued < sizeof(fake_queue) / sizeof(fake_queue[0]))
		fake_queue[fake_queued++] = (struct kb_event){
			.ts_ns = ts_ns, .dst_id = dst_id, .result = res,
		};
}

void fake_reset(uint32_t dst_id, bool rx, uint64_t ts_ns)
{
	struct kb_dst_stats *st = &fake_maps.stats[dst_id];

	if (rx)
		st->resets_rx++;
	else
		st->resets_tx++;
	if (kb_judge_reset(&fake_maps.verdicts[dst_id], &fake_maps.trips[dst_id], ts_ns, false) &&
	    fake_queued < sizeof(fake_queue) / sizeof(fake_queue[0]))
		fake_queue[fake_queued++] = (struct kb_event){
			.ts_ns = ts_ns, .dst_id = dst_id, .flags = KB_EV_TRIPPED | KB_EV_RESET,
		};
}

/* Keys compare as the kernel's do: every byte before the value. */
static int key_cmp(const struct fake_key *x, const struct fake_key *y)
{
	return memcmp(x, y, offsetof(struct fake_key, id));
}

/* Index of the key, or where it would go (*found false). */
static size_t key_find(const struct fake_key *k, bool *found)
{
	size_t lo = 0, hi = fake_maps.n_keys;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = key_cmp(&fake_maps.keys[mid], k);

		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static int key_make(const uint8_t addr[16], uint8_t prefix_len, uint16_t port, uint32_t netns,
		    struct fake_key *k)
{
	if (prefix_len > 128)
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, addr, sizeof(k->addr));
	k->prefix_len = prefix_len;
	k->port = port;
	k->netns = netns;
	return 0;
}

/* Where key (addr, prefix_len, port, netns) is or would go; -errno on a fault. */
static int fake_key_at(const uint8_t addr[16], uint8_t prefix_len, uint16_t port, uint32_t netns,
		       struct fake_key *key, size_t *i, bool *found)
{
	int err;

	if (fault_here())
		return -EIO;
	err = key_make(addr, prefix_len, port, netns, key);
	if (err)
		return err;
	*i = key_find(key, found);
	return 0;
}

int kb_bpf_add_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id, uint32_t *held)
{
	struct fake_key key;
	bool found;
	size_t i;
	int err = fake_key_at(addr, prefix_len, port, netns, &key, &i, &found);

	if (err)
		return err;
	if (found) {
		*held = fake_maps.keys[i].id;
		return *held == dst_id ? 0 : -EEXIST;
	}
	if (fake_maps.n_keys == FAKE_KEYS)
		return -E2BIG;
	key.id = dst_id;
	memmove(&fake_maps.keys[i + 1], &fake_maps.keys[i],
		(fake_maps.n_keys - i) * sizeof(fake_maps.keys[0]));
	fake_maps.keys[i] = key;
	fake_maps.n_keys++;
	return 0;
}

int kb_bpf_set_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id)
{
	struct fake_key key;
	bool found;
	size_t i;
	uint32_t held;
	int err = fake_key_at(addr, prefix_len, port, netns, &key, &i, &found);

	if (err)
		return err;
	if (found) {
		fake_maps.keys[i].id = dst_id;
		return 0;
	}
	return kb_bpf_add_dst(k, addr, prefix_len, port, netns, dst_id, &held);
}

int kb_bpf_get_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t *dst_id)
{
	struct fake_key key;
	bool found;
	size_t i;
	int err = fake_key_at(addr, prefix_len, port, netns, &key, &i, &found);

	if (err)
		return err;
	if (!found)
		return -ENOENT;
	*dst_id = fake_maps.keys[i].id;
	return 0;
}

int kb_bpf_del_dst(struct kb_bpf *k, const uint8_t addr[16], uint8_t prefix_len, uint16_t port,
		   uint32_t netns, uint32_t dst_id)
{
	struct fake_key key;
	bool found;
	size_t i;
	int err = fake_key_at(addr, prefix_len, port, netns, &key, &i, &found);

	if (err)
		return err;
	if (!found || fake_maps.keys[i].id != dst_id)
		return 0;
	fake_maps.n_keys--;
	memmove(&fake_maps.keys[i], &fake_maps.keys[i + 1],
		(fake_maps.n_keys - i) * sizeof(fake_maps.keys[0]));
	memset(&fake_maps.keys[fake_maps.n_keys], 0, sizeof(fake_maps.keys[0]));
	return 0;
}

int kb_bpf_prune_dsts(struct kb_bpf *k, kb_dst_keep_fn keep, void *ctx)
{
	size_t kept = 0;

	if (fault_here())
		return -EIO;
	for (size_t i = 0; i < fake_maps.n_keys; i++) {
		const struct fake_key *key = &fake_maps.keys[i];

		if (keep(ctx, key->addr, key->prefix_len, key->port, key->netns, key->id))
			fake_maps.keys[kept++] = *key;
	}
	memset(&fake_maps.keys[kept], 0, (fake_maps.n_keys - kept) * sizeof(fake_maps.keys[0]));
	fake_maps.n_keys = kept;
	return 0;
}

void kb_bpf_set_lookup_flags(struct kb_bpf *k, uint32_t flags)
{
	fake_maps.lookup_flags = flags;
}

void kb_bpf_set_failopen_after(struct kb_bpf *k, uint64_t ns)
{
	fake_maps.failopen_after_ns = ns;
}

/* As the real one: every write a new gen, never 0. */
int kb_bpf_set_verdict(struct kb_bpf *k, uint32_t dst_id, const struct kb_verdict *v)
{
	struct kb_verdict w = *v;
	int err = fake_call(dst_id, -E2BIG);

	if (err)
		return err;
	w.gen = ++fake_last_gen ?: ++fake_last_gen;
	fake_maps.verdicts[dst_id] = w;
	return 0;
}

int kb_bpf_put_verdict(struct kb_bpf *k, uint32_t dst_id, const struct kb_verdict *v)
{
	int err = fake_call(dst_id, -E2BIG);

	if (!err)
		fake_maps.verdicts[dst_id] = *v;
	return err;
}

int kb_bpf_get_verdict(struct kb_bpf *k, uint32_t dst_id, struct kb_verdict *v)
{
	int err = fake_call(dst_id, -ENOENT);

	if (!err)
		*v = fake_maps.verdicts[dst_id];
	return err;
}

int kb_bpf_read_trip(struct kb_bpf *k, uint32_t dst_id, struct kb_trip *t, struct kb_verdict *v)
{
	int err = fake_call(dst_id, -ENOENT);

	if (err)
		return err;
	*t = fake_maps.trips[dst_id];
	*v = fake_maps.verdicts[dst_id];
	return 0;
}

int kb_bpf_read_stats_range(struct kb_bpf *k, uint32_t first, uint32_t n, struct kb_dst_stats *sums)
{
	if (fault_here())
		return -EIO;
	for (uint32_t i = 0; i < n && first + i < FAKE_SLOTS; i++)
		sums[i] = fake_maps.stats[first + i];
	return 0;
}

int kb_bpf_read_all_stats(struct kb_bpf *k, uint32_t n, struct kb_dst_stats *sums)
{
	return kb_bpf_read_stats_range(k, 0, n, sums);
}

int kb_bpf_reset_stats(struct kb_bpf *k, uint32_t dst_id)
{
	static const struct kb_dst_stats zero;

	return kb_bpf_set_stats(k, dst_id, &zero);
}

int kb_bpf_set_stats(struct kb_bpf *k, uint32_t dst_id, const struct kb_dst_stats *sum)
{
	int err = fake_call(dst_id, -E2BIG);

	if (!err)
		fake_maps.stats[dst_id] = *sum;
	return err;
}

int kb_bpf_read_stats(struct kb_bpf *k, uint32_t dst_id, struct kb_dst_stats *sum)
{
	int err = fake_call(dst_id, -ENOENT);

	if (!err)
		*sum = fake_maps.stats[dst_id];
	return err;
}

int kb_bpf_drain(struct kb_bpf *k, kb_event_fn fn, void *ctx)
{
	size_t n = fake_queued;

	if (fault_here())
		return -EIO;
	for (size_t i = 0; i < n; i++)
		fn(ctx, &fake_queue[i]);
	fake_queued = 0;
	return (int)n;
}

uint64_t kb_bpf_lost_total(const struct kb_bpf *k)
{
	return 0;
}

uint64_t kb_bpf_failopen_total(const struct kb_bpf *k)
{
	return 0;
}

uint64_t kb_bpf_fastopen_ignored_total(const struct kb_bpf *k)
{
	return 0;
}

uint64_t kb_bpf_fastopen_refused_total(const struct kb_bpf *k)
{
	return 0;
}

size_t kb_bpf_prog_stats(struct kb_bpf *k, struct kb_prog_stats *out, size_t max)
{
	return 0;
}

bool kb_bpf_adopted(const struct kb_bpf *k)
{
	return fake_adopted;
}

bool kb_bpf_wl_adopted(const struct kb_bpf *k)
{
	return fake_wl_adopted;
}

bool kb_bpf_refuses_with_econnrefused(const struct kb_bpf *k)
{
	return true;
}

/* --- workloads --------------------------------------------------------------- */

uint32_t fake_workload(uint64_t cgroup)
{
	struct kb_wl_ctl *c = &fake_maps.wl_ctl;
	uint32_t n;

	for (size_t i = 0; i < fake_maps.n_workloads; i++)
		if (fake_maps.workloads[i].cgroup == cgroup)
			return fake_maps.workloads[i].index;
	/* As the hooks: a label given back first, oldest first (a queue). */
	if (fake_maps.n_free) {
		n = fake_maps.free[0];
		memmove(fake_maps.free, fake_maps.free + 1, --fake_maps.n_free * sizeof(*fake_maps.free));
	} else {
		n = c->next++;
	}
	n = n < c->max ? n : c->max;
	if (fake_maps.n_workloads < FAKE_WORKLOADS) {
		fake_maps.workloads[fake_maps.n_workloads].cgroup = cgroup;
		fake_maps.workloads[fake_maps.n_workloads++].index = n;
	}
	return n;
}

void fake_wl_count(uint32_t dst, uint32_t wl, int res, uint64_t n)
{
	size_t i;

	for (i = 0; i < fake_maps.n_wstats; i++)
		if (fake_maps.wstats[i].key.dst == dst && fake_maps.wstats[i].key.workload == wl)
			break;
	if (i == fake_maps.n_wstats) {
		if (i == FAKE_WSTATS)
			return;
		memset(&fake_maps.wstats[i], 0, sizeof(fake_maps.wstats[i]));
		fake_maps.wstats[i].key = (struct kb_wl_key){ .dst = dst, .workload = wl };
		fake_maps.n_wstats++;
	}
	if (res == KB_RES_MAX)
		fake_maps.wstats[i].st.blocked += n;
	else
		fake_maps.wstats[i].st.connects[res] += n;
}

int kb_bpf_wl_ctl(struct kb_bpf *k, struct kb_wl_ctl *ctl)
{
	if (fault_here())
		return -EIO;
	*ctl = fake_maps.wl_ctl;
	return 0;
}

int kb_bpf_conn_sweep(struct kb_bpf *k, uint64_t now)
{
	(void)k;
	(void)now;
	return 0;
}

int kb_bpf_workloads_each(struct kb_bpf *k, kb_workload_fn fn, void *ctx)
{
	if (fault_here())
		return -EIO;
	for (size_t i = 0; i < fake_maps.n_workloads; i++)
		fn(ctx, fake_maps.workloads[i].cgroup, fake_maps.workloads[i].index);
	return 0;
}

int kb_bpf_wstats_each(struct kb_bpf *k, kb_wstats_fn fn, void *ctx)
{
	if (fault_here())
		return -EIO;
	for (size_t i = 0; i < fake_maps.n_wstats; i++)
		fn(ctx, &fake_maps.wstats[i].key, &fake_maps.wstats[i].st);
	return 0;
}

int kb_bpf_workload_gone(struct kb_bpf *k, uint64_t cgroup, uint32_t idx)
{
	size_t out = 0;

	if (fault_here())
		return -EIO;
	for (size_t i = 0; i < fake_maps.n_workloads; i++)
		if (fake_maps.workloads[i].cgroup != cgroup)
			fake_maps.workloads[out++] = fake_maps.workloads[i];
	fake_maps.n_workloads = out;
	if (idx < fake_maps.wl_ctl.max && fake_maps.n_free < FAKE_WORKLOADS) {
		fake_maps.free_gen[fake_maps.n_free] = idx < FAKE_WORKLOADS ? fake_maps.wl_gen[idx] : 0;
		fake_maps.free[fake_maps.n_free++] = idx;
	}
	return 0;
}

int kb_bpf_wl_gen_bump(struct kb_bpf *k, uint32_t idx)
{
	if (fault_here())
		return -EIO;
	if (idx >= FAKE_WORKLOADS)
		return -E2BIG;
	fake_maps.wl_gen[idx]++;
	return 0;
}

#define FAKE_ANY UINT32_MAX

/* Drop the kb_wstats entries of destination dst (FAKE_ANY: any) and of the workloads set in gone (NULL: any). */
static int wstats_forget(uint32_t dst, const bool *gone, uint32_t n_gone)
{
	size_t out = 0;

	if (fault_here())
		return -EIO;
	fake_maps.wstats_walks++;
	for (size_t i = 0; i < fake_maps.n_wstats; i++) {
		uint32_t wl = fake_maps.wstats[i].key.workload;

		if ((dst != FAKE_ANY && fake_maps.wstats[i].key.dst != dst) ||
		    (gone && (wl >= n_gone || !gone[wl])))
			fake_maps.wstats[out++] = fake_maps.wstats[i];
	}
	fake_maps.n_wstats = out;
	return 0;
}

int kb_bpf_wstats_forget(struct kb_bpf *k, uint32_t dst)
{
	return wstats_forget(dst, NULL, 0);
}

int kb_bpf_wstats_forget_workloads(struct kb_bpf *k, const bool *gone, uint32_t n)
{
	return wstats_forget(FAKE_ANY, gone, n);
}

int kb_bpf_saved_each(struct kb_bpf *k, kb_saved_fn fn, void *ctx)
{
	if (fault_here())
		return -EIO;
	for (uint32_t id = 0; id < FAKE_SLOTS; id++)
		if (fake_maps.saved_used[id])
			fn(ctx, id, &fake_maps.saved[id]);
	return 0;
}

int kb_bpf_saved_put(struct kb_bpf *k, uint32_t dst_id, const struct persist_record *saved)
{
	int err = fake_call(dst_id, -E2BIG);

	if (err)
		return err;
	fake_maps.saved[dst_id] = *saved;
	fake_maps.saved_used[dst_id] = true;
	return 0;
}

int kb_bpf_saved_del(struct kb_bpf *k, uint32_t dst_id)
{
	if (fault_here())
		return -EIO;
	if (dst_id < FAKE_SLOTS) {
		memset(&fake_maps.saved[dst_id], 0, sizeof(fake_maps.saved[0]));
		fake_maps.saved_used[dst_id] = false;
	}
	return 0;
}

/* --- names ------------------------------------------------------------------ */

/* The resolver thread looks names up while a test changes the table. */
static pthread_mutex_t fake_names_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_names_released = PTHREAD_COND_INITIALIZER;
static const struct fake_name *fake_table;
static size_t fake_n_names;
static bool fake_hold;
static unsigned fake_waiting;
static __thread unsigned lookups_here;

void fake_names_hold(bool hold)
{
	pthread_mutex_lock(&fake_names_lock);
	fake_hold = hold;
	pthread_cond_broadcast(&fake_names_released);
	pthread_mutex_unlock(&fake_names_lock);
}

unsigned fake_names_waiting(void)
{
	unsigned n;

	pthread_mutex_lock(&fake_names_lock);
	n = fake_waiting;
	pthread_mutex_unlock(&fake_names_lock);
	return n;
}

unsigned fake_lookups_here(void)
{
	return lookups_here;
}

void fake_names(const struct fake_name *names, size_t n)
{
	pthread_mutex_lock(&fake_names_lock);
	fake_table = names;
	fake_n_names = n;
	pthread_mutex_unlock(&fake_names_lock);
}

static int addr_cmp(const void *x, const void *y)
{
	return memcmp(x, y, sizeof(kb_addr_t));
}

/* As the real one: sorted addresses in a calloc'd array, EAI_MEMORY when that fails. */
static int lookup(const char *name, kb_addr_t **addrs, size_t *n)
{
	for (size_t i = 0; i < fake_n_names; i++) {
		const struct fake_name *f = &fake_table[i];
		size_t count = 0;
		kb_addr_t *v;

		if (strcmp(f->name, name))
			continue;
		while (count < sizeof(f->addrs) / sizeof(f->addrs[0]) && f->addrs[count])
			count++;
		v = calloc(count ? count : 1, sizeof(*v));
		if (!v)
			return EAI_MEMORY;
		for (size_t k = 0; k < count; k++)
			if (addr_parse(f->addrs[k], v[k])) {
				free(v);
				return EAI_FAIL;
			}
		qsort(v, count, sizeof(*v), addr_cmp);
		*addrs = v;
		*n = count;
		return 0;
	}
	return EAI_NONAME;
}

int resolve_name(const char *name, kb_addr_t **addrs, size_t *n)
{
	struct timespec until;
	int err = 0;

	lookups_here++;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&fake_names_lock);
	for (fake_waiting++; fake_hold && !err;)
		err = pthread_cond_timedwait(&fake_names_released, &fake_names_lock, &until);
	fake_waiting--;
	err = err ? EAI_AGAIN : lookup(name, addrs, n);
	pthread_mutex_unlock(&fake_names_lock);
	return err;
}

/* --- the log (-Wl,--wrap=log_msg) ------------------------------------------- */

static unsigned log_errors;
static char log_first[1024];

void __wrap_log_msg(enum log_level lvl, const char *fmt, ...);

void __wrap_log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl != LOG_LVL_ERR || log_errors++)
		return;
	va_start(ap, fmt);
	vsnprintf(log_first, sizeof(log_first), fmt, ap);
	va_end(ap);
}

void fake_log_reset(void)
{
	log_errors = 0;
	log_first[0] = '\0';
}

unsigned fake_log_errors(void)
{
	return log_errors;
}

const char *fake_log_first_error(void)
{
	return log_first;
}
