// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbreakerd: argv, start-up, the event loop, teardown in reverse order.
 * Only this file picks exit codes.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include "agent.h"
#include "bpf.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "privs.h"

#define DEFAULT_CONFIG "/etc/kbreaker/kbreaker.yaml"

static const struct http_route routes[] = {
	{ "/metrics", "text/plain; version=0.0.4; charset=utf-8", agent_metrics },
	{ "/status", "application/json", agent_status },
	{ "/healthz", "text/plain; charset=utf-8", agent_healthz },
};

static const char usage[] =
	"Usage: kbreakerd [-c FILE] [--check-config | --clear-state] [--log-level LEVEL]\n"
	"\n"
	"A host-wide TCP circuit breaker: observes connect outcomes per destination in\n"
	"the kernel and refuses connects to open destinations with ECONNREFUSED.\n"
	"\n"
	"  -c, --config FILE     YAML configuration (default " DEFAULT_CONFIG ")\n"
	"      --check-config    validate the configuration and exit (0 valid, 1 invalid)\n"
	"      --clear-state     remove what state_dir keeps across restarts and exit\n"
	"  -l, --log-level LEVEL error, warn, info (default) or debug\n"
	"  -h, --help            show this help and exit\n"
	"  -V, --version         show the version and exit\n"
	"\n"
	"Runs as root (loads BPF programs, attaches cgroup hooks). SIGTERM or SIGINT\n"
	"detaches everything and exits 0.\n";

/*
 * Tell systemd (Type=notify) how we are doing: one datagram to
 * $NOTIFY_SOCKET, no libsystemd. Silent when not run by systemd.
 */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	len = strlen(path);
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	       offsetof(struct sockaddr_un, sun_path) + len);
	close(fd);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int epoll_add(int ep, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static void arm_timer(int tfd, uint64_t at_ns)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = at_ns / 1000000000ULL, .tv_nsec = at_ns % 1000000000ULL },
	};

	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * SIGHUP: load the file again. A file that fails validation is rejected
 * with the same message --check-config prints, one the agent cannot apply
 * whole with agent_reload()'s, and the running config stays in force. On
 * success *cfg is swapped and the old one freed.
 */
static void reload(struct agent *a, const char *path, struct config **cfg)
{
	char err_text[CONFIG_ERR_MAX];
	struct config *next;
	int err;

	next = malloc(sizeof(*next));
	if (!next) {
		agent_reload_failed(a);
		log_err("reload: out of memory; keeping the running configuration");
		return;
	}
	config_init(next);
	err = config_load(next, path, err_text, sizeof(err_text));
	if (err) {
		agent_reload_failed(a);
		log_err("reload rejected, keeping the running configuration: %s", err_text);
		config_free(next);
		free(next);
		return;
	}
	if (strcmp(next->listen_host, (*cfg)->listen_host) || next->listen_port != (*cfg)->listen_port ||
	    strcmp(next->cgroup, (*cfg)->cgroup))
		log_warn("reload: listen and cgroup changes take effect at the next restart");
	err = agent_reload(a, next, now_ns());
	if (err) {	/* rejected, logged and counted: the agent still runs on *cfg */
		config_free(next);
		free(next);
		return;
	}
	config_free(*cfg);
	free(*cfg);
	*cfg = next;
}

/* Runs until SIGTERM/SIGINT. Returns 0 or -errno. */
static int run_loop(struct agent *a, struct kb_bpf *bpf, const char *path, struct config **cfg)
{
	int ep = -1, sfd = -1, tfd = -1, efd = kb_bpf_events_fd(bpf), err;
	uint64_t poll_ns = (*cfg)->poll_interval_ns, next_poll = now_ns() + poll_ns, deadline, now;
	struct epoll_event evs[4];
	sigset_t mask;
	bool stop = false;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || ep < 0) {
		err = -errno;
		log_err("loop: set up: %s", strerror(-err));
		goto out;
	}
	err = epoll_add(ep, sfd);
	err = err ?: epoll_add(ep, tfd);
	err = err ?: epoll_add(ep, efd);
	if (err) {
		log_err("loop: epoll: %s", strerror(-err));
		goto out;
	}

	while (!stop) {
		deadline = agent_next_deadline(a);
		arm_timer(tfd, deadline && deadline < next_poll ? deadline : next_poll);
		int n = epoll_wait(ep, evs, 4, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			log_err("loop: epoll_wait: %s", strerror(-err));
			break;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd) {
				struct signalfd_siginfo si;

				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) {
						log_info("SIGHUP: reloading %s", path);
						sd_notify_msg("RELOADING=1");
						reload(a, path, cfg);
						sd_notify_msg("READY=1");
						poll_ns = (*cfg)->poll_interval_ns;
						continue;
					}
					log_info("signal %s: stopping", strsignal(si.ssi_signo));
					stop = true;
				}
			} else if (fd == tfd) {
				uint64_t ticks;

				if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					log_warn("loop: timerfd: %s", strerror(errno));
			}
		}
		/* Events first: an outcome that precedes a deadline must count before it. */
		now = now_ns();
		agent_drain(a, now);
		if (now >= next_poll || (deadline && now >= deadline)) {
			agent_tick(a, now);
			if (now >= next_poll)
				next_poll = now + poll_ns;
		}
	}
out:
	if (ep >= 0)
		close(ep);
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
	return err;
}

/*
 * Everything privileged is done: programs loaded and attached, the port
 * bound. Keep no capability if the kernel lets this process use its maps
 * without one (recent kernels, unprivileged_bpf_disabled notwithstanding),
 * else CAP_BPF alone. Before any thread starts: capabilities are per thread.
 */
static int drop_privileges(struct kb_bpf *bpf, const char *user)
{
	/* Switching user needs these until it is done; they are not kept. */
	uint64_t keep = 0, sw = user[0] ? PRIVS_CAP(CAP_SETUID) | PRIVS_CAP(CAP_SETGID) : 0;
	int err;

	if (geteuid() != 0)
		return 0;
	err = privs_lower(sw);
	if (!err && kb_bpf_probe_access(bpf)) {
		keep = PRIVS_CAP(CAP_BPF);
		err = privs_lower(keep | sw);
		if (!err && kb_bpf_probe_access(bpf)) {
			/* Kernels before 5.8 know no CAP_BPF: map access needs CAP_SYS_ADMIN. */
			keep |= PRIVS_CAP(CAP_SYS_ADMIN);
			err = privs_lower(keep | sw);
		}
	}
	if (!err && user[0])
		err = privs_become(user, keep != 0);
	err = err ?: privs_limit(keep);
	if (err) {
		log_err("drop capabilities: %s", strerror(-err));
		return err;
	}
	log_info("capabilities dropped\tkept=%s user=%s", !keep ? "none" :
		 keep & PRIVS_CAP(CAP_SYS_ADMIN) ? "CAP_BPF,CAP_SYS_ADMIN" : "CAP_BPF",
		 user[0] ? user : "root");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "clear-state", no_argument, NULL, 'S' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *path = DEFAULT_CONFIG;
	char err_text[CONFIG_ERR_MAX], cgroup[CONFIG_PATH_MAX];
	struct http_server *http = NULL;
	struct kb_bpf *bpf = NULL;
	struct config *cfg;
	struct agent a;
	bool check_only = false, clear_state = false, agent_up = false, level_given = false;
	enum log_level lvl;
	sigset_t mask;
	int c, err, rc = 1, http_fd = -1;

	while ((c = getopt_long(argc, argv, "c:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'S':
			clear_state = true;
			break;
		case 'l':
			level_given = true;
			if (log_parse_level(optarg, &lvl)) {
				fprintf(stderr, "kbreakerd: --log-level: unknown level \"%s\" (error, warn, info, debug)\n",
					optarg);
				return 2;
			}
			log_set_level(lvl);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("kbreakerd %s\n", KB_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kbreakerd: unexpected argument \"%s\"\n%s", argv[optind], usage);
		return 2;
	}

	cfg = malloc(sizeof(*cfg));
	if (!cfg) {
		fprintf(stderr, "kbreakerd: out of memory\n");
		return 1;
	}
	config_init(cfg);
	if (config_load(cfg, path, err_text, sizeof(err_text))) {
		fprintf(stderr, "%s\n", err_text);
		free(cfg);
		return 1;
	}
	/* The command line wins over the file. */
	if (!level_given && cfg->log_level[0] && !log_parse_level(cfg->log_level, &lvl))
		log_set_level(lvl);
	if (check_only) {
		printf("%s: ok, %zu destinations\n", path, cfg->n_dsts);
		config_free(cfg);
		free(cfg);
		return 0;
	}
	if (clear_state) {
		err = cfg->state_dir[0] ? kb_bpf_clear_state(cfg->state_dir) : 0;
		if (!err)
			printf("%s: state cleared\n", cfg->state_dir[0] ? cfg->state_dir : "(no state_dir)");
		config_free(cfg);
		free(cfg);
		return err ? 1 : 0;
	}

	/* Block the signals before any thread starts so all of them inherit the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (cfg->cgroup[0]) {
		snprintf(cgroup, sizeof(cgroup), "%s", cfg->cgroup);
	} else {
		err = kb_cgroup2_root(cgroup, sizeof(cgroup));
		if (err) {
			log_err("no cgroup v2 mount in /proc/mounts: %s; kbreaker needs cgroup v2",
				strerror(-err));
			goto out;
		}
	}

	kb_bpf_setup_logging();
	struct kb_bpf_opts bo = {
		.capacity = cfg->max_destinations,
		.cgroup = cgroup,
		.state_dir = cfg->state_dir[0] ? cfg->state_dir : NULL,
	};
	err = kb_bpf_open(&bpf, &bo);
	if (err)
		goto out;
	if (!kb_bpf_refuses_with_econnrefused(bpf))
		log_warn("kernel lacks bpf_set_retval (5.18+): blocked connects fail with EPERM, not ECONNREFUSED");

	/* Bound while still privileged: a port below 1024 needs CAP_NET_BIND_SERVICE. */
	http_fd = http_listen(cfg->listen_host, cfg->listen_port);
	if (http_fd < 0)
		goto out;
	err = drop_privileges(bpf, cfg->user);
	if (err)
		goto out;

	err = agent_init(&a, cfg, bpf, cfg->max_destinations, now_ns());
	agent_up = true;
	if (err)
		goto out;
	err = http_start(&http, http_fd, routes, sizeof(routes) / sizeof(routes[0]), &a);
	http_fd = -1;
	if (err)
		goto out;

	log_info("kbreakerd %s started\tdestinations=%zu cgroup=%s listen=%s:%u", KB_VERSION,
		 cfg->n_dsts, cgroup, cfg->listen_host, cfg->listen_port);
	sd_notify_msg("READY=1");
	err = run_loop(&a, bpf, path, &cfg);
	sd_notify_msg("STOPPING=1");
	if (!err)
		rc = 0;
out:
	http_stop(http);
	if (http_fd >= 0)
		close(http_fd);
	/* Unblock first; the resolver thread may take a moment to finish. */
	kb_bpf_detach_enforcement(bpf);
	if (agent_up)
		agent_fini(&a);
	kb_bpf_close(bpf);
	config_free(cfg);
	free(cfg);
	if (rc == 0)
		log_info("kbreakerd stopped; all hooks detached");
	return rc;
}
