// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The resolver thread: names re-resolved every resolve_interval. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent_int.h"
#include "log.h"

/* Resolve named circuit ci; with drop_lock, the lock is dropped around DNS. */
static void resolve_one(struct agent *a, uint32_t ci, bool drop_lock)
{
	char host[CONFIG_HOST_MAX];
	kb_addr_t *addrs;
	size_t n;
	int err;

	snprintf(host, sizeof(host), "%s", a->circuits[ci].cfg->host);
	if (drop_lock)
		pthread_mutex_unlock(&a->lock);
	err = resolve_name(host, &addrs, &n);
	if (drop_lock)
		pthread_mutex_lock(&a->lock);
	/* A reload may have replaced the circuit while DNS ran, or we are stopping. */
	if (a->stopping || ci >= a->n_circuits || strcmp(a->circuits[ci].cfg->host, host)) {
		if (!err)
			free(addrs);
		return;
	}
	if (err) {
		a->resolve_errors++;
		log_warn("resolve %s for %s: %s; keeping %zu known addresses", host,
			 a->circuits[ci].cfg->name, gai_strerror(err), a->circuits[ci].n_addrs);
		return;
	}
	circuit_set_addrs(a, ci, addrs, n, clock_mono_ns());
}

void resolve_circuit(struct agent *a, uint32_t ci)
{
	resolve_one(a, ci, false);
}

static void *resolver_main(void *arg)
{
	struct agent *a = arg;
	struct timespec until;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		uint64_t ns = a->cfg->resolve_interval_ns;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += ns / 1000000000ULL + (until.tv_nsec + ns % 1000000000ULL) / 1000000000ULL;
		until.tv_nsec = (until.tv_nsec + ns % 1000000000ULL) % 1000000000ULL;
		while (!a->stopping &&
		       pthread_cond_timedwait(&a->resolver_wake, &a->lock, &until) != ETIMEDOUT)
			;
		for (uint32_t ci = 0; !a->stopping && ci < a->n_circuits; ci++)
			if (a->circuits[ci].cfg->host_kind == HOST_NAME)
				resolve_one(a, ci, true);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int resolver_start(struct agent *a)
{
	pthread_condattr_t ca;
	int err;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->resolver_wake, &ca);
	pthread_condattr_destroy(&ca);
	err = pthread_create(&a->resolver, NULL, resolver_main, a);
	if (err) {
		pthread_cond_destroy(&a->resolver_wake);
		log_err("resolver thread: %s", strerror(err));
		return -err;
	}
	a->resolver_running = true;
	return 0;
}

void resolver_wake(struct agent *a)
{
	pthread_cond_signal(&a->resolver_wake);
}

void resolver_stop(struct agent *a)
{
	if (!a->resolver_running)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	pthread_cond_signal(&a->resolver_wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->resolver, NULL);
	pthread_cond_destroy(&a->resolver_wake);
	a->resolver_running = false;
}
