// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The resolver thread re-resolves names every resolve_interval, and looks
 * up a reload's new names. It never takes the agent's lock: the loop hands
 * it the names to follow (resolver_follow) and takes its answers back
 * (agent_resolved), woken by an eventfd. DNS may take seconds; breakers,
 * reloads and signals never wait for it. Only a start looks names up on the
 * loop, before it serves.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "agent_int.h"
#include "log.h"

/* One answer for a name. */
struct resolved {
	char host[CONFIG_HOST_MAX];
	kb_addr_t *addrs;	/* sorted; owned */
	size_t n;
	int err;		/* EAI_*, 0 */
};

/* A named circuit takes an answer. Loop thread. */
static void take_answer(struct agent *a, uint32_t ci, const struct resolved *r, uint64_t now)
{
	struct agent_circuit *c = &a->circuits[ci];
	kb_addr_t *addrs;

	if (r->err) {
		a->resolve_errors++;
		log_warn("resolve %s for %s: %s; keeping %zu known addresses", r->host, c->cfg->name,
			 gai_strerror(r->err), c->n_addrs);
		return;
	}
	/* Each circuit owns its array: two may follow one name. */
	addrs = malloc((r->n ? r->n : 1) * sizeof(*addrs));
	if (!addrs) {
		log_err("resolve %s for %s: out of memory", r->host, c->cfg->name);
		return;
	}
	if (r->n)
		memcpy(addrs, r->addrs, r->n * sizeof(*addrs));
	circuit_set_addrs(a, ci, addrs, r->n, now);
}

/* Lookups the event loop is waiting on, a start's: the beat (beat.h) keeps the hooks going. */
static int loop_lookups;

bool agent_resolving(void)
{
	return __atomic_load_n(&loop_lookups, __ATOMIC_RELAXED) > 0;
}

int resolve_on_loop(const char *name, kb_addr_t **addrs, size_t *n)
{
	int err;

	__atomic_add_fetch(&loop_lookups, 1, __ATOMIC_RELAXED);
	err = resolve_name(name, addrs, n);
	__atomic_sub_fetch(&loop_lookups, 1, __ATOMIC_RELAXED);
	return err;
}

void resolve_circuit(struct agent *a, uint32_t ci, uint64_t now)
{
	struct resolved r = { 0 };

	snprintf(r.host, sizeof(r.host), "%s", a->circuits[ci].cfg->host);
	r.err = resolve_on_loop(r.host, &r.addrs, &r.n);
	take_answer(a, ci, &r, now);
	if (!r.err)
		free(r.addrs);
}

/* Queue an answer for the loop and wake it. Takes ownership of r's addresses. */
static void answer(struct agent_resolver *res, const struct resolved *r)
{
	struct resolved *p;
	uint64_t one = 1;

	pthread_mutex_lock(&res->lock);
	p = realloc(res->answers, (res->n_answers + 1) * sizeof(*p));
	if (p) {
		res->answers = p;
		p[res->n_answers++] = *r;
	}
	pthread_mutex_unlock(&res->lock);
	if (!p) {
		log_err("resolve %s: out of memory", r->host);
		if (!r->err)
			free(r->addrs);
		return;
	}
	if (write(res->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("resolver: eventfd: %s", strerror(errno));
}

/*
 * Wait for the next round: resolve_interval, or a wake-up (resolver_follow),
 * then for the loop to have taken the last round's answers, so that they do
 * not pile up and a reload's names are not put off a whole interval. False
 * when stopping. Resolver lock held.
 */
static bool wait_round(struct agent_resolver *res)
{
	struct timespec until;
	bool due = false;
	uint64_t at;

	at = clock_mono_ns() + res->interval_ns;
	until.tv_sec = at / 1000000000ULL;
	until.tv_nsec = at % 1000000000ULL;
	while (!res->stopping) {
		due = due || res->woken;
		res->woken = false;
		if (due && !res->n_answers)
			break;
		if (due)
			pthread_cond_wait(&res->wake, &res->lock);	/* agent_resolved() signals */
		else if (pthread_cond_timedwait(&res->wake, &res->lock, &until) == ETIMEDOUT)
			due = true;
	}
	return !res->stopping;
}

static void *resolver_main(void *arg)
{
	struct agent_resolver *res = arg;
	char (*hosts)[CONFIG_HOST_MAX];
	size_t n;

	pthread_mutex_lock(&res->lock);
	while (wait_round(res)) {
		n = res->n_hosts;
		hosts = malloc((n ? n : 1) * sizeof(*hosts));
		if (hosts && n)
			memcpy(hosts, res->hosts, n * sizeof(*hosts));
		pthread_mutex_unlock(&res->lock);
		/* Stopping: the names left are not looked up (DNS may take seconds each). */
		for (size_t i = 0; hosts && i < n && !__atomic_load_n(&res->stopping, __ATOMIC_RELAXED); i++) {
			struct resolved r = { 0 };

			snprintf(r.host, sizeof(r.host), "%s", hosts[i]);
			r.err = resolve_name(r.host, &r.addrs, &r.n);
			answer(res, &r);
		}
		if (!hosts)
			log_err("resolver: out of memory for %zu names", n);
		free(hosts);
		pthread_mutex_lock(&res->lock);
	}
	pthread_mutex_unlock(&res->lock);
	return NULL;
}

/* qsort_r comparator: circuit indices by the circuits' host names. */
static int by_host(const void *x, const void *y, void *circuits)
{
	const struct agent_circuit *c = circuits;

	return strcmp(c[*(const uint32_t *)x].cfg->host, c[*(const uint32_t *)y].cfg->host);
}

/*
 * The distinct names of the circuits in order (sorted by host), and for
 * each whether a circuit that follows it has an address. Returns how many.
 */
static size_t distinct_hosts(const struct agent_circuit *circuits, const uint32_t *order, size_t m,
			     char (*hosts)[CONFIG_HOST_MAX], bool *known)
{
	size_t n = 0;

	for (size_t i = 0; i < m; i++) {
		const struct agent_circuit *c = &circuits[order[i]];

		if (!n || strcmp(hosts[n - 1], c->cfg->host)) {
			snprintf(hosts[n], sizeof(hosts[0]), "%s", c->cfg->host);
			known[n++] = false;
		}
		known[n - 1] |= c->n_addrs > 0;
	}
	return n;
}

int resolver_hosts(const struct agent_circuit *circuits, size_t n_circuits,
		   char (**out)[CONFIG_HOST_MAX], size_t *n_out)
{
	char (*hosts)[CONFIG_HOST_MAX], (*sorted)[CONFIG_HOST_MAX];
	uint32_t *order;
	bool *known;
	size_t m = 0, n, k = 0;

	for (size_t ci = 0; ci < n_circuits; ci++)
		m += circuits[ci].cfg->host_kind == HOST_NAME;
	order = malloc((m ? m : 1) * sizeof(*order));
	known = malloc((m ? m : 1) * sizeof(*known));
	sorted = malloc((m ? m : 1) * sizeof(*sorted));
	hosts = malloc((m ? m : 1) * sizeof(*hosts));
	if (!order || !known || !sorted || !hosts) {
		free(order);
		free(known);
		free(sorted);
		free(hosts);
		return -ENOMEM;
	}
	m = 0;
	for (uint32_t ci = 0; ci < n_circuits; ci++)
		if (circuits[ci].cfg->host_kind == HOST_NAME)
			order[m++] = ci;
	/* Sorted, so a name that several circuits follow is looked up once. */
	qsort_r(order, m, sizeof(*order), by_host, (void *)circuits);
	n = distinct_hosts(circuits, order, m, sorted, known);
	/* Names with no address yet first: a reload's new ones do not wait for every other lookup. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++)
			if (known[i] == (pass == 1))
				memcpy(hosts[k++], sorted[i], sizeof(hosts[0]));
	free(order);
	free(known);
	free(sorted);
	*out = hosts;
	*n_out = n;
	return 0;
}

void resolver_follow(struct agent *a, char (*hosts)[CONFIG_HOST_MAX], size_t n)
{
	struct agent_resolver *res = &a->res;

	pthread_mutex_lock(&res->lock);
	free(res->hosts);
	res->hosts = hosts;
	res->n_hosts = n;
	res->interval_ns = a->cfg->resolve_interval_ns;
	res->woken = true;
	pthread_cond_signal(&res->wake);
	pthread_mutex_unlock(&res->lock);
}

bool agent_lookup_left(const struct agent *a)
{
	return a->res.left;
}

int agent_resolver_fd(const struct agent *a)
{
	return a->res.efd;
}

int agent_resolved(struct agent *a, uint64_t now)
{
	struct agent_resolver *res = &a->res;
	struct resolved *answers;
	uint64_t count;
	size_t n;

	if (read(res->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&res->lock);
	answers = res->answers;
	n = res->n_answers;
	res->answers = NULL;
	res->n_answers = 0;
	pthread_cond_signal(&res->wake);	/* a round may wait for these to be taken */
	pthread_mutex_unlock(&res->lock);
	/* Names a reload dropped since the question find no circuit: the answer goes. */
	for (size_t i = 0; i < n; i++)
		for (uint32_t ci = 0; ci < a->n_circuits; ci++)
			if (a->circuits[ci].cfg->host_kind == HOST_NAME &&
			    !strcmp(a->circuits[ci].cfg->host, answers[i].host))
				take_answer(a, ci, &answers[i], now);
	for (size_t i = 0; i < n; i++)
		if (!answers[i].err)
			free(answers[i].addrs);
	free(answers);
	return 0;
}

int resolver_start(struct agent *a)
{
	struct agent_resolver *res = &a->res;
	pthread_condattr_t ca;
	int err;

	res->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (res->efd < 0) {
		err = -errno;
		log_err("resolver: eventfd: %s", strerror(-err));
		return err;
	}
	pthread_mutex_init(&res->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&res->wake, &ca);
	pthread_condattr_destroy(&ca);
	res->ready = true;
	res->interval_ns = a->cfg->resolve_interval_ns;
	err = resolver_hosts(a->circuits, a->n_circuits, &res->hosts, &res->n_hosts);
	err = err ?: -pthread_create(&res->thread, NULL, resolver_main, res);
	if (err) {
		log_err("resolver thread: %s", strerror(-err));
		return err;
	}
	res->running = true;
	return 0;
}

/*
 * How long a stop waits for a lookup in flight. A name server that does
 * not answer holds getaddrinfo() for its whole timeout (up to 30 s with
 * resolv.conf's defaults), and a supervisor restarting the agent would
 * wait as long.
 */
#define RESOLVER_STOP_WAIT_NS 1000000000ULL

void resolver_stop(struct agent *a)
{
	struct agent_resolver *res = &a->res;
	struct timespec until;
	uint64_t at;

	if (res->running) {
		pthread_mutex_lock(&res->lock);
		__atomic_store_n(&res->stopping, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&res->wake);
		pthread_mutex_unlock(&res->lock);
		/* pthread_timedjoin_np() waits on CLOCK_REALTIME. */
		clock_gettime(CLOCK_REALTIME, &until);
		at = (uint64_t)until.tv_sec * 1000000000ULL + until.tv_nsec + RESOLVER_STOP_WAIT_NS;
		until.tv_sec = at / 1000000000ULL;
		until.tv_nsec = at % 1000000000ULL;
		if (pthread_timedjoin_np(res->thread, NULL, &until)) {
			/* Its state stays for it: the process ends without freeing it (agent_lookup_left). */
			log_info("resolver: a name lookup is still in flight; not waiting for it");
			res->left = true;
			return;
		}
		res->running = false;
	}
	if (!res->ready)
		return;
	for (size_t i = 0; i < res->n_answers; i++)
		if (!res->answers[i].err)
			free(res->answers[i].addrs);
	free(res->answers);
	free(res->hosts);
	pthread_cond_destroy(&res->wake);
	pthread_mutex_destroy(&res->lock);
	close(res->efd);
	res->ready = false;
}
