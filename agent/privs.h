/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * privs: give up capabilities once the programs are loaded and attached.
 * What is left to do (map updates through fds already held, reading
 * events) needs at most CAP_BPF, and on recent kernels nothing at all.
 * Capabilities are per thread: call before starting any thread.
 */
#ifndef KB_PRIVS_H
#define KB_PRIVS_H

#include <stdint.h>

/* A bit per capability number, as in /proc/PID/status CapEff. */
#define PRIVS_CAP(n) (1ULL << (n))

/* Keep exactly `keep` in the permitted and effective sets. 0 or -errno. */
int privs_limit(uint64_t keep);

/* Lower the effective set to `keep`, leaving the permitted set: reversible. */
int privs_lower(uint64_t keep);

/*
 * Become `user` (its uid, gid, no supplementary groups), keeping the
 * permitted capabilities when keep_caps (the kernel clears them on setuid
 * otherwise). 0 or -errno; an unknown user is -ENOENT. Logs why.
 */
int privs_become(const char *user, int keep_caps);

#endif /* KB_PRIVS_H */
