/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * beat: while the event loop waits on a name lookup of its own (a start's,
 * with restored breakers already enforced; agent_resolving()), a thread
 * tells the hooks every second that the agent is alive (kb_bpf_alive): one
 * lookup may outlast the grace, and the agent is not hung. A reload's names
 * are the resolver thread's, never the loop's. Anything else that holds the
 * loop up, and SIGSTOP, stops the beat too, and the hooks fail open.
 */
#ifndef KB_BEAT_H
#define KB_BEAT_H

struct beat;
struct kb_bpf;

/* Start the thread, after capabilities are dropped. 0 or -errno. */
int beat_start(struct beat **out, struct kb_bpf *bpf);

/* Stop and free it (NULL: nothing). */
void beat_stop(struct beat *b);

#endif /* KB_BEAT_H */
