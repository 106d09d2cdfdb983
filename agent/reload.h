/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * reload: what agent_reload()'s steps share. reload.c plans the switch and
 * makes it; reload_write.c writes the maps, journaled, and undoes them.
 */
#ifndef KB_RELOAD_H
#define KB_RELOAD_H

#include "agent_int.h"

/*
 * A reload is all or nothing. Everything that can fail comes before the
 * switch: allocations (reload_match), slots (reload_plan), then every map
 * write (reload_write), each journaled with what undoes it, so that a
 * failure puts every entry back as it was. The switch (reload_commit) only
 * moves what those steps made ready. Added names start with no address and
 * no key: the resolver thread looks them up after the switch, never the
 * loop, which must go on ticking and reading signals meanwhile.
 */

enum undo_op {
	UNDO_DEL_DST,	/* a key was added: delete it */
	UNDO_ADD_DST,	/* a key was deleted or taken over: write it back, to id */
	UNDO_VERDICT,	/* a verdict was written: put back the one read before, gen and all */
	UNDO_STATS,	/* counters were zeroed: write back the ones read before */
	UNDO_SAVED,	/* a saved breaker was forgotten: save the running one again */
};

struct undo {
	enum undo_op op;
	uint32_t id;			/* slot; for keys the dst_id to add back */
	kb_addr_t addr;			/* keys */
	uint8_t prefix_len;
	uint16_t port;
	uint32_t netns;
	union {
		struct kb_verdict verdict;	/* UNDO_VERDICT */
		size_t stats;			/* UNDO_STATS: index into reload.stats */
	};
};

/* A kept breaker whose verdict the reload rewrites: what it takes from the kernel. */
struct reload_kept {
	uint32_t id;
	bool synced;			/* takes the kernel's consecutive count, fails */
	uint32_t fails;
	bool counted;			/* its events stop: connects[] were fed as events */
	bool pending;			/* its events start: connects[] past slot.counted are fed first */
	uint64_t connects[KB_RES_MAX];
	uint64_t resets;		/* pending and fails held resets (KB_RESETS_FAIL): the counter; else 0 */
};

/*
 * A kept breaker whose events start takes what the kernel counted since the
 * last once-a-second read (reload_kept.pending), and the resets its count
 * took from the kernel holds past resets_seen, into the window alone: the
 * same on reload_keep()'s copy and in reload_commit().
 */
void reload_feed_pending(struct breaker *br, const uint64_t counted[KB_RES_MAX],
			 uint64_t resets_seen, const struct reload_kept *rk, uint64_t now);

/* Per circuit of the new config. */
struct reload_circuit {
	int32_t from;			/* the running circuit it keeps, -1: added */
};

struct reload {
	const struct config *cfg;
	uint64_t now;
	struct agent_circuit *next;	/* the new circuits; a kept one borrows the running one's arrays */
	struct reload_circuit *info;	/* per new circuit */
	int64_t *old_to_new;		/* running circuit -> new, -1: removed */
	struct undo *undo;		/* map writes done so far; room for all of them */
	size_t n_undo;
	struct kb_dst_stats *stats;	/* counters zeroed so far, as they were */
	size_t n_stats;
	struct reload_kept *kept_slots;	/* by slot, for reload_commit() */
	size_t n_kept;
	char (*hosts)[CONFIG_HOST_MAX];	/* the names the resolver follows after the switch */
	size_t n_hosts;
	size_t kept, added, removed;
	char why[256];			/* what failed, for the one log line */
};


/* Say what failed, for agent_reload's log line, and pass err on. */
__attribute__((format(printf, 3, 4)))
int reload_fail(struct reload *r, int err, const char *fmt, ...);

/* A circuit's keys: its address or prefix, or each address of its name. */
static inline size_t circuit_n_keys(const struct agent_circuit *c)
{
	return c->cfg->host_kind == HOST_NAME ? c->n_addrs : 1;
}

/*
 * Every map write of the reload; on failure everything written is put back
 * and the error returned.
 */
int reload_write(struct agent *a, struct reload *r);

#endif /* KB_RELOAD_H */
