// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbreakerctl: the operator's view of a running kbreakerd, read from its
 * /status endpoint. argv, the commands and exit codes live here; the HTTP
 * GET is fetch.c, the table table.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "duration.h"
#include "fetch.h"
#include "table.h"

#define DEFAULT_URL "http://127.0.0.1:9877"
#define URL_MAX 1024
#define ERR_MAX (URL_MAX + 1024)

static const char usage[] =
	"Usage: kbreakerctl [--url URL] [--timeout DURATION] COMMAND [OPTIONS]\n"
	"\n"
	"Show the circuit breakers of a running kbreakerd.\n"
	"\n"
	"Commands:\n"
	"  status [--json] [--by-workload]\n"
	"                            one table of every destination (or the raw /status JSON);\n"
	"                            --by-workload: one row per destination and workload\n"
	"                            (needs workloads: in the agent's config)\n"
	"  watch [--interval DURATION] [--count N]\n"
	"                            refresh the table every DURATION, 10ms to 1h (default\n"
	"                            1s), N times\n"
	"                            (default: until interrupted)\n"
	"\n"
	"Options:\n"
	"  -u, --url URL             the agent's HTTP endpoint (default $KBREAKER_URL or\n"
	"                            " DEFAULT_URL ")\n"
	"  -t, --timeout DURATION    give up on a request after DURATION, 1ms to 1h\n"
	"                            (default 5s)\n"
	"  -h, --help                show this help and exit\n"
	"  -V, --version             show the version and exit\n"
	"\n"
	"DURATION is an integer with a unit: ms, s, m, h (e.g. 500ms, 2s).\n"
	"Exit status: 0 ok, 1 the agent could not be read (or, for the table of\n"
	"--by-workload, its workload attribution is off), 2 usage error.\n";

struct ctl_opts {
	const char *url;
	long timeout_ms;
	long interval_ms;
	long count;		/* watch: 0 = until interrupted */
	int json;
	int by_workload;	/* status --by-workload */
	int watch_opts;		/* --interval or --count given */
};

/* A duration (agent/duration.h: "500ms", "2s", "1m") -> milliseconds in [min_ms, max_ms]. 0 or -EINVAL. */
static int parse_duration_ms(const char *s, long min_ms, long max_ms, long *out)
{
	uint64_t ns;

	if (duration_parse(s, &ns) || ns % NS_PER_MS || ns / NS_PER_MS < (uint64_t)min_ms ||
	    ns / NS_PER_MS > (uint64_t)max_ms)
		return -EINVAL;
	*out = (long)(ns / NS_PER_MS);
	return 0;
}

/* base URL + "/status", without doubling a trailing slash. */
static int status_url(const char *base, char *buf, size_t len)
{
	size_t n = strlen(base);

	while (n && base[n - 1] == '/')
		n--;
	if (snprintf(buf, len, "%.*s/status", (int)n, base) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * GET /status and parse it. Returns the document, or NULL with the reason,
 * prefixed as kbreakerctl prints it, in err.
 */
static struct json_object *read_status(const struct ctl_opts *o, char **raw, char *err, size_t err_len)
{
	char url[URL_MAX], why[256];
	struct fetch_result res;
	struct json_object *doc;

	if (status_url(o->url, url, sizeof(url))) {
		snprintf(err, err_len, "kbreakerctl: URL too long");
		return NULL;
	}
	if (fetch_get(url, o->timeout_ms, &res)) {
		if (res.too_large)
			snprintf(err, err_len, "kbreakerctl: %s: %s", url, res.err);
		else
			snprintf(err, err_len, "kbreakerctl: cannot reach %s: %s", o->url, res.err);
		return NULL;
	}
	if (res.http_status != 200) {
		snprintf(err, err_len, "kbreakerctl: %s: HTTP %ld", url, res.http_status);
		fetch_result_free(&res);
		return NULL;
	}
	doc = table_parse(res.body, res.len, why, sizeof(why));
	if (!doc) {
		snprintf(err, err_len, "kbreakerctl: %s: %s", url, why);
		fetch_result_free(&res);
		return NULL;
	}
	if (raw)
		*raw = res.body;
	else
		fetch_result_free(&res);
	return doc;
}

/* Flush stdout; a failed write, now or earlier, is said once. 0 or 1. */
static int flush_out(void)
{
	errno = 0;
	if (!fflush(stdout) && !ferror(stdout))
		return 0;
	fprintf(stderr, "kbreakerctl: cannot write the output: %s\n", strerror(errno ? errno : EIO));
	return 1;
}

static int cmd_status(const struct ctl_opts *o)
{
	char err[ERR_MAX], *raw = NULL;
	struct json_object *doc;
	int rc = 0;

	doc = read_status(o, o->json ? &raw : NULL, err, sizeof(err));
	if (!doc) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* --json: the agent's document as it sent it, already known to parse. */
	if (o->json) {
		fputs(raw, stdout);
	} else if (o->by_workload) {
		rc = table_render_workloads(stdout, doc);
		if (rc == -ENODATA)
			fprintf(stderr, "kbreakerctl: workload attribution is off (workloads: in the agent's config)\n");
		rc = rc ? 1 : 0;
	} else if (table_render(stdout, doc)) {
		rc = 1;
	}
	free(raw);
	json_object_put(doc);
	return flush_out() ? 1 : rc;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Redraw the table every interval. On a terminal each frame replaces the
 * last; otherwise frames follow each other, separated by a blank line.
 * An unreachable agent is shown in the frame and retried. Returns 1 when
 * the last frame failed.
 */
static int cmd_watch(const struct ctl_opts *o)
{
	int tty = isatty(STDOUT_FILENO), ok = 0;
	char err[ERR_MAX], stamp[32];
	struct json_object *doc;
	time_t t;

	for (long i = 0; o->count == 0 || i < o->count; i++) {
		if (i)
			sleep_ms(o->interval_ms);
		doc = read_status(o, NULL, err, sizeof(err));
		t = time(NULL);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (i)
			fputc('\n', stdout);
		if (o->interval_ms % 1000)
			printf("Every %ldms: %s  %s\n\n", o->interval_ms, o->url, stamp);
		else
			printf("Every %lds: %s  %s\n\n", o->interval_ms / 1000, o->url, stamp);
		ok = doc != NULL;
		if (doc) {
			table_render(stdout, doc);
			json_object_put(doc);
		} else {
			printf("%s\n", err);
		}
		if (flush_out())
			return 1;
	}
	return ok ? 0 : 1;
}

/* One option getopt_long() returned, into o. -1 to go on, else main()'s exit status. */
static int take_option(int c, struct ctl_opts *o)
{
	char *end;

	switch (c) {
	case 'u':
		if (!*optarg) {
			fprintf(stderr, "kbreakerctl: --url: empty\n");
			return 2;
		}
		o->url = optarg;
		return -1;
	case 't':
		if (parse_duration_ms(optarg, 1, 3600000, &o->timeout_ms)) {
			fprintf(stderr, "kbreakerctl: --timeout: \"%s\" is not a duration between 1ms and 1h\n",
				optarg);
			return 2;
		}
		return -1;
	case 'j':
		o->json = 1;
		return -1;
	case 'w':
		o->by_workload = 1;
		return -1;
	case 'i':
		if (parse_duration_ms(optarg, 10, 3600000, &o->interval_ms)) {
			fprintf(stderr, "kbreakerctl: --interval: \"%s\" is not a duration between 10ms and 1h\n",
				optarg);
			return 2;
		}
		o->watch_opts = 1;
		return -1;
	case 'n':
		errno = 0;
		o->count = strtol(optarg, &end, 10);
		if (errno || end == optarg || *end || o->count < 1) {
			fprintf(stderr, "kbreakerctl: --count: \"%s\" is not a positive integer\n", optarg);
			return 2;
		}
		o->watch_opts = 1;
		return -1;
	case 'h':
		fputs(usage, stdout);
		return 0;
	case 'V':
		printf("kbreakerctl %s\n", KB_VERSION);
		return 0;
	default:
		fputs(usage, stderr);
		return 2;
	}
}

/* The one command left after the options, if it goes with them; NULL after saying why. */
static const char *take_command(int argc, char **argv, const struct ctl_opts *o)
{
	const char *cmd;

	if (optind >= argc) {
		fprintf(stderr, "kbreakerctl: missing command (status or watch)\n%s", usage);
		return NULL;
	}
	cmd = argv[optind];
	if (optind + 1 < argc) {
		fprintf(stderr, "kbreakerctl: unexpected argument \"%s\"\n", argv[optind + 1]);
		return NULL;
	}
	if (strcmp(cmd, "status") && strcmp(cmd, "watch")) {
		fprintf(stderr, "kbreakerctl: unknown command \"%s\" (status or watch)\n", cmd);
		return NULL;
	}
	if (!strcmp(cmd, "status") && o->watch_opts) {
		fprintf(stderr, "kbreakerctl: --interval and --count belong to watch\n");
		return NULL;
	}
	if (!strcmp(cmd, "watch") && o->json) {
		fprintf(stderr, "kbreakerctl: --json belongs to status\n");
		return NULL;
	}
	if (!strcmp(cmd, "watch") && o->by_workload) {
		fprintf(stderr, "kbreakerctl: --by-workload belongs to status\n");
		return NULL;
	}
	return cmd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "by-workload", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct ctl_opts o = { .url = DEFAULT_URL, .timeout_ms = 5000, .interval_ms = 1000 };
	const char *cmd, *env = getenv("KBREAKER_URL");
	int c, rc;

	if (env && *env)
		o.url = env;
	while ((c = getopt_long(argc, argv, "u:t:jn:hV", opts, NULL)) != -1) {
		rc = take_option(c, &o);
		if (rc >= 0)
			return rc;
	}
	cmd = take_command(argc, argv, &o);
	if (!cmd)
		return 2;
	if (fetch_init()) {
		fprintf(stderr, "kbreakerctl: cannot initialise libcurl\n");
		return 1;
	}
	rc = !strcmp(cmd, "status") ? cmd_status(&o) : cmd_watch(&o);
	fetch_fini();
	return rc;
}
