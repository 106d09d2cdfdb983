// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nowake.so: LD_PRELOAD shim for the poll-only trip-latency baseline.
 * kbreakerd adds the ring buffer's epoll fd to its loop's epoll set; this
 * shim drops that one registration (an epoll fd added to an epoll set), so
 * the agent reads events only when its poll timer fires. Benchmark use only;
 * the agent itself has no such switch.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	static int (*real)(int, int, int, struct epoll_event *);
	char path[64], target[64];
	ssize_t n;

	if (!real)
		real = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
	if (op == EPOLL_CTL_ADD) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (!strcmp(target, "anon_inode:[eventpoll]"))
				return 0;
		}
	}
	return real(epfd, op, fd, ev);
}
