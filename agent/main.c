// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbreakerd: argv, start-up, the event loop, teardown in reverse order.
 * Only this file picks exit codes.
 */
#include <errno.h>
#include <malloc.h>
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
#include "beat.h"
#include "bpf.h"
#include "cgroup.h"
#include "clock.h"
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

/* The file's log_level ("" is info), unless --log-level was given: the command line wins. */
static void apply_log_level(const struct config *cfg, bool level_given)
{
	enum log_level lvl = LOG_LVL_INFO;

	if (level_given || (cfg->log_level[0] && log_parse_level(cfg->log_level, &lvl)))
		return;
	log_set_level(lvl);
}

/*
 * SIGHUP: load the file again. A file that fails validation is rejected
 * with the same message --check-config prints, one the agent cannot apply
 * whole with agent_reload()'s, and the running config stays in force. On
 * success *cfg is swapped and the old one freed, and the new log_level
 * applies (level_given: --log-level wins); keys only a start reads are
 * named in a warning, since they stay as they were.
 */
static void reload(struct agent *a, const char *path, struct config **cfg, bool level_given)
{
	char err_text[CONFIG_ERR_MAX], keys[CONFIG_RESTART_KEYS_MAX];
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
	err = agent_reload(a, next, clock_mono_ns());
	if (err) {	/* rejected, logged and counted: the agent still runs on *cfg */
		config_free(next);
		free(next);
		return;
	}
	/* Before the new level: a reload to log_level: error still says what it did not apply. */
	if (config_restart_keys(*cfg, next, keys, sizeof(keys))[0])
		log_warn("reload: %s changed; not applied until the next restart", keys);
	config_keep_start_only(next, *cfg);
	apply_log_level(next, level_given);
	config_free(*cfg);
	free(*cfg);
	*cfg = next;
}

/* The loop's descriptors and what it answers SIGHUP with. */
struct loop {
	struct agent *a;
	const char *path;	/* the configuration file SIGHUP loads again */
	struct config **cfg;
	bool level_given;	/* --log-level: a reload keeps it */
	uint64_t poll_ns;
	int ep, sfd, tfd;
	bool stop;		/* SIGTERM or SIGINT came */
};

/*
 * The signalfd for `signals`, the timerfd and the epoll set with them,
 * the kernel's events, the resolver's answers and pages asking for a
 * snapshot. 0 or -errno, logged.
 */
static int loop_open(struct loop *l, const sigset_t *signals, int events_fd)
{
	int err;

	l->sfd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->sfd < 0 || l->tfd < 0 || l->ep < 0) {
		err = -errno;
		log_err("loop: set up: %s", strerror(-err));
		return err;
	}
	err = epoll_add(l->ep, l->sfd);
	err = err ?: epoll_add(l->ep, l->tfd);
	err = err ?: epoll_add(l->ep, events_fd);
	err = err ?: epoll_add(l->ep, agent_resolver_fd(l->a));
	err = err ?: epoll_add(l->ep, agent_snapshot_fd(l->a));
	if (err)
		log_err("loop: epoll: %s", strerror(-err));
	return err;
}

static void loop_close(struct loop *l)
{
	if (l->ep >= 0)
		close(l->ep);
	if (l->tfd >= 0)
		close(l->tfd);
	if (l->sfd >= 0)
		close(l->sfd);
}

/*
 * SIGHUP reloads; any other signal of the set stops the loop. The pending
 * signals are read first and one reload answers them all: a SIGHUP that
 * comes in during the reload is the next pass's, after the loop has beaten
 * (kb_bpf_alive). Reloading for as long as SIGHUPs kept coming held the
 * loop, and with it every open breaker fell open after failopen_after.
 */
static void read_signals(struct loop *l)
{
	struct signalfd_siginfo si;
	bool hup = false;

	while (read(l->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			hup = true;
			continue;
		}
		log_info("signal %s: stopping", strsignal(si.ssi_signo));
		l->stop = true;
	}
	if (!hup || l->stop)
		return;
	log_info("SIGHUP: reloading %s", l->path);
	sd_notify_msg("RELOADING=1");
	reload(l->a, l->path, l->cfg, l->level_given);
	sd_notify_msg("READY=1");
	l->poll_ns = (*l->cfg)->poll_interval_ns;
}

/* Runs until SIGTERM/SIGINT (signals: the blocked set it reads). Returns 0 or -errno. */
static int run_loop(struct agent *a, struct kb_bpf *bpf, const sigset_t *signals, const char *path,
		    struct config **cfg, bool level_given)
{
	struct loop l = { .a = a, .path = path, .cfg = cfg, .level_given = level_given,
			  .poll_ns = (*cfg)->poll_interval_ns, .ep = -1, .sfd = -1, .tfd = -1 };
	uint64_t next_poll = clock_mono_ns() + l.poll_ns, deadline, now, wake;
	struct epoll_event evs[8];
	int err, n;

	err = loop_open(&l, signals, kb_bpf_events_fd(bpf));
	while (!err && !l.stop) {
		/* Every pass, and at least every beat: the hooks refuse only while the loop runs. */
		now = clock_mono_ns();
		kb_bpf_alive(bpf, now);
		deadline = agent_next_deadline(a);
		wake = deadline && deadline < next_poll ? deadline : next_poll;
		arm_timer(l.tfd, wake < now + KB_ALIVE_BEAT_NS ? wake : now + KB_ALIVE_BEAT_NS);
		n = epoll_wait(l.ep, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			log_err("loop: epoll_wait: %s", strerror(-err));
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t ticks;

			if (evs[i].data.fd == l.sfd)
				read_signals(&l);
			else if (evs[i].data.fd == agent_resolver_fd(a))
				agent_resolved(a, clock_mono_ns());
			else if (evs[i].data.fd == l.tfd &&
				 read(l.tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				log_warn("loop: timerfd: %s", strerror(errno));
		}
		/* Events first: an outcome that precedes a deadline must count before it. */
		now = clock_mono_ns();
		agent_drain(a, now);
		if (now >= next_poll || (deadline && now >= deadline)) {
			agent_tick(a, now);
			if (now >= next_poll)
				next_poll = now + l.poll_ns;
		}
		/* Last: a page sees what this wake-up changed. */
		agent_publish(a, now);
	}
	loop_close(&l);
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
	if (!err && user[0]) {
		err = privs_become(user, keep != 0);
		if (err)
			return err;	/* logged, naming the user */
	}
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

struct options {
	const char *path;	/* the configuration file */
	bool check_only;	/* --check-config */
	bool clear_state;	/* --clear-state */
	bool level_given;	/* --log-level: the command line wins over the file */
};

/* Fill o from argv. 0 to go on, 1 when --help or --version answered, -EINVAL (said) on a usage error. */
static int parse_args(int argc, char **argv, struct options *o)
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
	enum log_level lvl;
	int c;

	while ((c = getopt_long(argc, argv, "c:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->path = optarg;
			break;
		case 'C':
			o->check_only = true;
			break;
		case 'S':
			o->clear_state = true;
			break;
		case 'l':
			o->level_given = true;
			if (log_parse_level(optarg, &lvl)) {
				fprintf(stderr, "kbreakerd: --log-level: unknown level \"%s\" (error, warn, info, debug)\n",
					optarg);
				return -EINVAL;
			}
			log_set_level(lvl);
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		case 'V':
			printf("kbreakerd %s\n", KB_VERSION);
			return 1;
		default:
			fputs(usage, stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kbreakerd: unexpected argument \"%s\"\n%s", argv[optind], usage);
		return -EINVAL;
	}
	/* Each is a one-shot that would otherwise silently win over the other. */
	if (o->check_only && o->clear_state) {
		fprintf(stderr, "kbreakerd: --check-config and --clear-state cannot be used together\n");
		return -EINVAL;
	}
	return 0;
}

/* The configuration at o->path, its log level applied unless given on the command line; NULL (said). */
static struct config *load_config(const struct options *o)
{
	char err_text[CONFIG_ERR_MAX];
	struct config *cfg;

	cfg = malloc(sizeof(*cfg));
	if (!cfg) {
		fprintf(stderr, "kbreakerd: out of memory\n");
		return NULL;
	}
	config_init(cfg);
	if (config_load(cfg, o->path, err_text, sizeof(err_text))) {
		fprintf(stderr, "%s\n", err_text);
		free(cfg);
		return NULL;
	}
	apply_log_level(cfg, o->level_given);
	return cfg;
}

/* --check-config or --clear-state, then done. 0 or -errno. */
static int one_shot(const struct options *o, const struct config *cfg)
{
	int err = 0;

	if (o->check_only) {
		printf("%s: ok, %zu destinations\n", o->path, cfg->n_dsts);
		return 0;
	}
	if (cfg->state_dir[0])
		err = kb_bpf_clear_state(cfg->state_dir);
	if (!err)
		printf("%s: state cleared\n", cfg->state_dir[0] ? cfg->state_dir : "(no state_dir)");
	return err;
}

/* What the running agent holds, torn down in reverse order by daemon_stop(). */
struct kbreakerd {
	struct config *cfg;
	char cgroup[CONFIG_PATH_MAX];
	struct kb_bpf *bpf;
	int http_fd;		/* the bound socket until the HTTP server owns it */
	struct agent a;
	bool agent_up;		/* agent_init() ran: agent_fini() must */
	struct http_server *http;
	struct beat *beat;
};

/*
 * Load and attach the programs, bind the HTTP port, drop privileges, then
 * start the agent and its HTTP server. 0 or -errno, logged; daemon_stop()
 * undoes whatever was done either way.
 */
static int daemon_start(struct kbreakerd *d)
{
	const struct config *cfg = d->cfg;
	struct kb_bpf_opts bo = {
		.capacity = cfg->max_destinations,
		.cgroup = d->cgroup,
		.state_dir = cfg->state_dir[0] ? cfg->state_dir : NULL,
	};
	int err;

	if (cfg->cgroup[0]) {
		snprintf(d->cgroup, sizeof(d->cgroup), "%s", cfg->cgroup);
	} else {
		err = cgroup2_root(d->cgroup, sizeof(d->cgroup));
		if (err) {
			log_err("no cgroup v2 mount in /proc/mounts: %s; kbreaker needs cgroup v2",
				strerror(-err));
			return err;
		}
	}
	bo.lookup_flags = agent_lookup_flags(cfg);
	bo.failopen_after_ns = cfg->failopen_after_ns;
	bo.fastopen_ignore = cfg->fastopen_ignore;
	if (cfg->workloads_on) {
		bo.wl_depth = cfg->workloads_depth;
		bo.wl_max = cfg->workloads_max;
	}
	kb_bpf_setup_logging();
	err = kb_bpf_open(&d->bpf, &bo);
	if (err)
		return err;
	if (!kb_bpf_refuses_with_econnrefused(d->bpf))
		log_warn("kernel lacks bpf_set_retval (5.18+): blocked connects fail with EPERM, not ECONNREFUSED");

	/* Bound while still privileged: a port below 1024 needs CAP_NET_BIND_SERVICE. */
	d->http_fd = http_listen(cfg->listen_host, cfg->listen_port);
	if (d->http_fd < 0)
		return d->http_fd;
	err = drop_privileges(d->bpf, cfg->user);
	if (err)
		return err;
	/* Before agent_init: names resolve there, restored open breakers blocking meanwhile. */
	err = beat_start(&d->beat, d->bpf);
	if (err) {
		log_err("start the beat thread: %s", strerror(-err));
		return err;
	}

	err = agent_init(&d->a, d->cfg, d->bpf, cfg->max_destinations, clock_mono_ns());
	d->agent_up = true;
	agent_set_cgroup(&d->a, d->cgroup);
	if (err)
		return err;
	err = http_start(&d->http, d->http_fd, routes, sizeof(routes) / sizeof(routes[0]), &d->a);
	d->http_fd = -1;
	return err;
}

/* Returns whether the resolver thread was left in a lookup (agent_lookup_left). */
static bool daemon_stop(struct kbreakerd *d)
{
	bool left = false;

	if (d->agent_up)
		agent_stop_publishing(&d->a);	/* a scrape in flight must not wait for the loop */
	http_stop(d->http);
	if (d->http_fd >= 0)
		close(d->http_fd);
	/* Unblock first; the resolver thread may take a moment to finish. */
	kb_bpf_detach_enforcement(d->bpf);
	if (d->agent_up) {
		agent_fini(&d->a);
		left = agent_lookup_left(&d->a);
	}
	beat_stop(d->beat);
	kb_bpf_close(d->bpf);
	/* The thread left behind reads nothing of these. */
	config_free(d->cfg);
	free(d->cfg);
	return left;
}

int main(int argc, char **argv)
{
	struct options o = { .path = DEFAULT_CONFIG };
	struct kbreakerd d = { .http_fd = -1 };
	sigset_t signals;
	int err, rc = 1;
	bool left;

	/*
	 * A page of 10,000 destinations is tens of MB, freed once sent: with a
	 * fixed threshold such buffers are always mapped and go back to the
	 * system when freed, instead of raising glibc's dynamic threshold and
	 * staying in the heap until the next scrape's malloc_trim().
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	err = parse_args(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : 2;
	/* Before any log line: a stderr pipe with no reader must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	err = log_open(STDERR_FILENO);
	if (err)
		log_warn("stderr: cannot reopen it non-blocking (%s): a stalled log reader can hold the agent",
			 strerror(-err));
	d.cfg = load_config(&o);
	if (!d.cfg)
		return 1;
	if (o.check_only || o.clear_state) {
		err = one_shot(&o, d.cfg);
		config_free(d.cfg);
		free(d.cfg);
		return err ? 1 : 0;
	}

	/* Blocked before any thread starts so all of them inherit the mask; the loop reads them. */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &signals, NULL);

	err = daemon_start(&d);
	if (!err) {
		log_info("kbreakerd %s started\tdestinations=%zu cgroup=%s listen=%s:%u", KB_VERSION,
			 d.cfg->n_dsts, d.cgroup, d.cfg->listen_host, d.cfg->listen_port);
		sd_notify_msg("READY=1");
		err = run_loop(&d.a, d.bpf, &signals, o.path, &d.cfg, o.level_given);
		sd_notify_msg("STOPPING=1");
		if (!err)
			rc = 0;
	}
	left = daemon_stop(&d);
	if (rc == 0)
		log_info("kbreakerd stopped; all hooks detached");
	if (left)
		_exit(rc);
	return rc;
}
