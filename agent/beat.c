// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include "agent.h"
#include "beat.h"
#include "bpf.h"
#include "clock.h"

struct beat {
	struct kb_bpf *bpf;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;	/* on CLOCK_MONOTONIC, the hooks' clock */
	bool stop;
};

static void *beat_main(void *arg)
{
	struct beat *b = arg;
	struct timespec until;

	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec++;
		while (!b->stop && pthread_cond_timedwait(&b->wake, &b->lock, &until) != ETIMEDOUT)
			;
		if (!b->stop && agent_resolving())
			kb_bpf_alive(b->bpf, clock_mono_ns());
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

int beat_start(struct beat **out, struct kb_bpf *bpf)
{
	struct beat *b = calloc(1, sizeof(*b));
	pthread_condattr_t attr;
	int err;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	b->bpf = bpf;
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&b->wake, &attr);
	pthread_condattr_destroy(&attr);
	err = pthread_create(&b->thread, NULL, beat_main, b);
	if (err) {
		pthread_cond_destroy(&b->wake);
		pthread_mutex_destroy(&b->lock);
		free(b);
		return -err;
	}
	*out = b;
	return 0;
}

void beat_stop(struct beat *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	pthread_cond_destroy(&b->wake);
	pthread_mutex_destroy(&b->lock);
	free(b);
}
