// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * killconnect: measure how long a destination stays blocked after the agent dies.
 *
 *   killconnect PID ADDR PORT LIMIT_MS [SIGNO]
 *	Sends SIGNO (default SIGKILL; SIGSEGV stands in for a crash) to PID, then
 *	connects to ADDR:PORT in a tight loop (blocking connects: on loopback a
 *	refusal and an accept both answer at once) until one succeeds or
 *	LIMIT_MS pass. Prints one line:
 *	"success=0|1 elapsed_us=N attempts=N refused=N other=N"
 *	elapsed_us runs from just before kill() to the return of the first
 *	successful connect. Exit 0 if a connect succeeded, 1 if not, 2 on usage.
 *
 * Run it inside the cgroup whose hooks are under test.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "tool.h"

static long long now_us(void)
{
	return tool_now_ns() / 1000;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	long long t0, limit_us, elapsed = 0;
	long attempts = 0, refused = 0, other = 0;
	socklen_t sl;
	pid_t pid;
	int ok = 0, signo = SIGKILL;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: killconnect PID ADDR PORT LIMIT_MS [SIGNO]\n");
		return 2;
	}
	pid = atoi(argv[1]);
	if (argc == 6)
		signo = atoi(argv[5]);
	limit_us = atol(argv[4]) * 1000LL;
	sl = tool_sockaddr(argv[2], argv[3], &ss);
	if (!sl) {
		fprintf(stderr, "killconnect: bad address %s\n", argv[2]);
		return 2;
	}
	if (pid <= 1) {
		fprintf(stderr, "killconnect: bad pid %s\n", argv[1]);
		return 2;
	}

	t0 = now_us();
	if (kill(pid, signo)) {
		perror("killconnect: kill");
		return 2;
	}
	while ((elapsed = now_us() - t0) < limit_us) {
		/* 1 s send timeout: a lost SYN must not hold the loop past the limit for long. */
		struct timeval tv = { .tv_sec = 1 };
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			perror("killconnect: socket");
			return 2;
		}
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		attempts++;
		if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
			elapsed = now_us() - t0;
			ok = 1;
			close(fd);
			break;
		}
		if (tool_outcome(errno) == TOOL_REFUSED)
			refused++;
		else
			other++;
		close(fd);
	}
	printf("success=%d elapsed_us=%lld attempts=%ld refused=%ld other=%ld\n", ok, elapsed,
	       attempts, refused, other);
	return ok ? 0 : 1;
}
