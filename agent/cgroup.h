/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup: where a cgroup v2 directory sits, and the cgroups below it. */
#ifndef KB_CGROUP_H
#define KB_CGROUP_H

#include <stdint.h>

/*
 * Find the cgroup v2 mount point in /proc/mounts. Returns 0 or -ENOENT
 * (no cgroup2 mount) / -errno.
 */
int cgroup2_root(char *buf, size_t len);

/* Called for dir itself (rel "") and each cgroup below it; id is the cgroup id. */
typedef void (*cgroup_fn)(void *ctx, uint64_t id, const char *rel);

/* Visit dir and its cgroups down to depth levels below it. 0 or -errno (dir itself). */
int cgroup_walk(const char *dir, uint32_t depth, cgroup_fn fn, void *ctx);

#endif /* KB_CGROUP_H */
