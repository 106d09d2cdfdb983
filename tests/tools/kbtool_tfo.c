// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbtool's TCP Fast Open and setsockopt commands, for test_fastopen: a
 * deferred connect (TCP_FASTOPEN_CONNECT), whose SYN leaves at the first
 * write with no connect hook on the way, and the calls a cgroup setsockopt
 * program must see or pass untouched.
 *
 *   kbtool tfolisten ADDR PORT SECONDS READY_FILE
 *	listen with TCP Fast Open on; each connection gets a child that reads
 *	one byte (120 s at most) and echoes it; prints "accepted=N" at the end
 *	(as listen: SECONDS, SIGTERM, READY_FILE)
 *   kbtool tfoconnect ADDR PORT [compat] [wait] [val=N]
 *	one socket with TCP_FASTOPEN_CONNECT (set to N, 1 by default; compat:
 *	through the 32-bit syscall); wait: then prints "ready" and waits for a
 *	line on stdin; then connects and prints "setopt=ERR opt=V connect=ERR
 *	state=S" (V: the option read back; S: the TCP state once connect()
 *	returned, syn_sent for a deferred connect, whose SYN waits for the
 *	first write), then after a line on stdin writes one byte and waits 5 s
 *	at most for the echo: "write=ERR echo=0|1 syn_data=0|1" (syn_data: the
 *	byte went in the SYN and the peer took it)
 *   kbtool tfosend ADDR PORT
 *	sendto(MSG_FASTOPEN) of one byte on a new socket (this caches the
 *	peer's Fast Open cookie), then the echo: "send=ERR echo=0|1 syn_data=0|1"
 *   kbtool compat
 *	whether a 32-bit syscall (int $0x80) works here: prints "compat=yes"
 *	or "compat=no" (no IA-32 emulation, or not x86-64)
 *   kbtool bigopt
 *	setsockopt(SO_RCVBUF) on a TCP socket with an 8 KiB buffer (longer
 *	than a page: what a cgroup setsockopt program must pass untouched);
 *	prints "bigopt=ERR"
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "kbtool.h"

/* In a child of its own, so that no connection waits on another: read one byte, echo it. */
static void echo_one(int c)
{
	struct timeval tv = { .tv_sec = 120 };
	char b;

	if (fork())
		return;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	_exit(read(c, &b, 1) == 1 && write(c, &b, 1) == 1 ? 0 : 1);
}

int do_tfolisten(int argc, char **argv)
{
	struct tool_dst d;
	sigset_t unblocked;
	long long end = 0;
	long accepted = 0;
	int fd, c, one = 1, qlen = 16;
	FILE *ready;

	if (argc < 6)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	catch_sigterm(&unblocked);
	fd = socket(d.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)) ||
	    bind(fd, tool_dst_sa(&d), d.len) || listen(fd, SOMAXCONN)) {
		perror("kbtool: tfolisten");
		return 1;
	}
	ready = fopen(argv[5], "w");
	if (ready)
		fclose(ready);
	if (atol(argv[4]) > 0)
		end = now_us() + atol(argv[4]) * 1000000LL;
	signal(SIGCHLD, SIG_IGN);	/* no zombies; the children end by themselves */
	while (!got_sigterm && wait_readable(fd, end, &unblocked)) {
		while ((c = accept4(fd, NULL, NULL, 0)) >= 0) {
			accepted++;
			echo_one(c);
			close(c);
		}
	}
	printf("accepted=%ld\n", accepted);
	return 0;
}

/* The echo of one byte, then whether the byte rode in the SYN: "echo=E syn_data=S". */
static void print_echo(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct tcp_info ti = { 0 };
	socklen_t len = sizeof(ti);
	char b;
	bool echo = poll(&p, 1, 5000) == 1 && read(fd, &b, 1) == 1;

	getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	printf(" echo=%d syn_data=%d\n", echo, !!(ti.tcpi_options & TCPI_OPT_SYN_DATA));
}

static const char *tcp_state_name(int fd)
{
	struct tcp_info ti = { 0 };
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return "unknown";
	return ti.tcpi_state == TCP_ESTABLISHED ? "established" :
	       ti.tcpi_state == TCP_SYN_SENT ? "syn_sent" : "other";
}

/*
 * setsockopt of an int as a 32-bit program calls it: int $0x80, the
 * kernel's compat path (i386 setsockopt is 366), its buffer below 4 GiB.
 * 0 or the errno.
 */
static int setsockopt_compat(int fd, int level, int name, int val)
{
#ifdef __x86_64__
	int *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
			-1, 0);
	long ret;

	if (low == MAP_FAILED)
		return errno;
	*low = val;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(366L), "b"((long)fd), "c"((long)level), "d"((long)name),
			   "S"((long)(uintptr_t)low), "D"((long)sizeof(int))
			 : "memory", "r8", "r9", "r10", "r11");
	munmap(low, 4096);
	return ret < 0 ? (int)-ret : 0;
#else
	return ENOSYS;
#endif
}

int do_compat(void)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		int p[2];

		/*
		 * Any call will do; where int $0x80 is not served it kills the
		 * child. Killed plainly: a sanitizer's handler would report the
		 * expected fault as an error in the test's log.
		 */
		signal(SIGSEGV, SIG_DFL);
		_exit(pipe(p) || setsockopt_compat(p[1], IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1) !=
					 ENOTSOCK);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 1;
	printf("compat=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "no");
	return 0;
}

int do_tfoconnect(int argc, char **argv)
{
	bool compat = false, wait_line = false;
	struct tool_dst d;
	int fd, val = 1, opt = -1, set, err;
	socklen_t len = sizeof(opt);
	char line[64];

	if (argc < 4)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "compat"))
			compat = true;
		else if (!strcmp(argv[i], "wait"))
			wait_line = true;
		else if (!strncmp(argv[i], "val=", 4))
			val = atoi(argv[i] + 4);
		else
			return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = socket(d.ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("kbtool: socket");
		return 1;
	}
	if (compat)
		set = setsockopt_compat(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, val);
	else
		set = setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &val, sizeof(val)) ? errno : 0;
	if (wait_line) {
		printf("ready\n");
		if (!fgets(line, sizeof(line), stdin))
			return 0;
	}
	getsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &opt, &len);
	err = connect(fd, tool_dst_sa(&d), d.len) ? errno : 0;
	printf("setopt=%s opt=%d connect=%s state=%s\n", err_name(set), opt, err_name(err),
	       err ? "none" : tcp_state_name(fd));
	if (err)
		return 0;
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	err = write(fd, "x", 1) == 1 ? 0 : errno;
	printf("write=%s", err_name(err));
	print_echo(fd);
	return 0;
}

int do_tfosend(int argc, char **argv)
{
	struct tool_dst d;
	int fd, err;

	if (argc < 4)
		return 2;
	tool_dst_arg("kbtool", argv[2], argv[3], &d);
	fd = socket(d.ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("kbtool: socket");
		return 1;
	}
	err = sendto(fd, "x", 1, MSG_FASTOPEN, tool_dst_sa(&d), d.len) == 1 ? 0 : errno;
	printf("send=%s", err_name(err));
	if (err)
		printf(" echo=0 syn_data=0\n");
	else
		print_echo(fd);
	return 0;
}

int do_bigopt(void)
{
	static int buf[2048] = { 65536 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), err;

	if (fd < 0) {
		perror("kbtool: socket");
		return 1;
	}
	err = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, buf, sizeof(buf)) ? errno : 0;
	printf("bigopt=%s\n", err_name(err));
	return 0;
}
