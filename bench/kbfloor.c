// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kbfloor: the least any cgroup program at kbreaker's hooks can cost.
 *
 *   kbfloor [--sockopt] CGROUP SECONDS [PORT...]
 *	Attaches to CGROUP a connect4 and a connect6 program that allow
 *	everything, and a sock_ops program that does nothing but, at
 *	TCP_CONNECT_CB for a peer on one of the PORTs, turn on the state, RTO
 *	and retransmit callbacks, as kb_observe does for a configured
 *	destination. --sockopt: also a setsockopt program that passes every
 *	option on as given (kb_enforce's with fastopen_connect: ignore, which
 *	the kernel matrix's guests hold at the hook too: tests/vm/check.sh);
 *	not for bench/run.sh, whose connects each make a setsockopt call and
 *	whose agent attaches no such program.
 *	Prints "attached" and holds the links for SECONDS or until
 *	SIGTERM/SIGINT; they go with the process.
 *
 * bench/run.sh times connects with these attached against nothing and
 * against kbreakerd: what the kernel charges for dispatching to the hooks
 * at all, and what kbreaker's own work adds above it. The programs are a
 * handful of instructions loaded with bpf(2), so the floor carries no
 * map, helper or compiler choice of kbreaker's.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <sys/syscall.h>

#define MAX_PORTS 16

static struct bpf_insn insn(__u8 code, __u8 dst, __u8 src, __s16 off, __s32 imm)
{
	struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };

	return i;
}

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int prog_load(const char *name, enum bpf_prog_type type, enum bpf_attach_type expected,
		     const struct bpf_insn *insns, unsigned int n)
{
	static char log[4096];
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	snprintf(attr.prog_name, sizeof(attr.prog_name), "%s", name);
	attr.prog_type = type;
	attr.expected_attach_type = expected;
	attr.insns = (__u64)(unsigned long)insns;
	attr.insn_cnt = n;
	attr.license = (__u64)(unsigned long)"Dual BSD/GPL";
	attr.log_buf = (__u64)(unsigned long)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd < 0)
		fprintf(stderr, "kbfloor: BPF_PROG_LOAD: %s\n%s", strerror(errno), log);
	return fd;
}

static int link_create(int prog, int cgroup, enum bpf_attach_type type)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = prog;
	attr.link_create.target_fd = cgroup;
	attr.link_create.attach_type = type;
	fd = sys_bpf(BPF_LINK_CREATE, &attr);
	if (fd < 0)
		fprintf(stderr, "kbfloor: BPF_LINK_CREATE: %s\n", strerror(errno));
	return fd;
}

/* The sock_ops program: callbacks on for connects to ports[], nothing else. */
static unsigned int sockops_insns(struct bpf_insn *p, const __u16 *ports, int n)
{
	unsigned int i = 0;
	int k;

	if (!n) {	/* nothing to turn on: the verifier refuses unreachable code */
		p[i++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
		p[i++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
		return i;
	}
	p[i++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0);
	p[i++] = insn(BPF_LDX | BPF_MEM | BPF_W, 2, 6, offsetof(struct bpf_sock_ops, op), 0);
	/* to "allow": past the port load, n tests, the jump and the 3 insns of "set" */
	p[i++] = insn(BPF_JMP | BPF_JNE | BPF_K, 2, 0, (__s16)(n + 5), BPF_SOCK_OPS_TCP_CONNECT_CB);
	/* Network-order port in the upper 16 bits on little-endian hosts (see kb_observe). */
	p[i++] = insn(BPF_LDX | BPF_MEM | BPF_W, 2, 6, offsetof(struct bpf_sock_ops, remote_port), 0);
	for (k = 0; k < n; k++)	/* to "set": past the remaining tests and the jump */
		p[i++] = insn(BPF_JMP32 | BPF_JEQ | BPF_K, 2, 0, (__s16)(n - k),
			      (__s32)((__u32)htons(ports[k]) << 16));
	p[i++] = insn(BPF_JMP | BPF_JA, 0, 0, 3, 0);
	/* set: */
	p[i++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0);
	p[i++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0,
		      BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG |
		      BPF_SOCK_OPS_RETRANS_CB_FLAG);
	p[i++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sock_ops_cb_flags_set);
	/* allow: */
	p[i++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
	p[i++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return i;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct bpf_insn allow[2], ops[10 + MAX_PORTS], sockopt[4];
	struct sigaction sa = { .sa_handler = on_term };
	struct timespec tick = { .tv_nsec = 10000000 };
	bool with_sockopt = argc > 1 && !strcmp(argv[1], "--sockopt");
	int cg, p4, p6, pops, pso = 0, nports;
	__u16 ports[MAX_PORTS];
	long ticks;

	if (with_sockopt) {
		argv++;
		argc--;
	}
	nports = argc - 3;
	if (argc < 3 || nports > MAX_PORTS) {
		fprintf(stderr, "usage: kbfloor [--sockopt] CGROUP SECONDS [PORT...] (at most %d ports)\n",
			MAX_PORTS);
		return 2;
	}
	for (int k = 0; k < nports; k++)
		ports[k] = (__u16)atoi(argv[3 + k]);
	cg = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		fprintf(stderr, "kbfloor: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	allow[0] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
	allow[1] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	p4 = prog_load("floor_connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, allow, 2);
	p6 = prog_load("floor_connect6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT, allow, 2);
	pops = prog_load("floor_sockops", BPF_PROG_TYPE_SOCK_OPS, 0, ops, sockops_insns(ops, ports, nports));
	/* optlen 0: the caller's own buffer, at any length (a page or more too). */
	sockopt[0] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, 0);
	sockopt[1] = insn(BPF_STX | BPF_MEM | BPF_W, 1, 2, offsetof(struct bpf_sockopt, optlen), 0);
	sockopt[2] = allow[0];
	sockopt[3] = allow[1];
	if (with_sockopt)
		pso = prog_load("floor_sockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT,
				sockopt, 4);
	if (p4 < 0 || p6 < 0 || pops < 0 || pso < 0 ||
	    link_create(p4, cg, BPF_CGROUP_INET4_CONNECT) < 0 ||
	    link_create(p6, cg, BPF_CGROUP_INET6_CONNECT) < 0 ||
	    link_create(pops, cg, BPF_CGROUP_SOCK_OPS) < 0 ||
	    (with_sockopt && link_create(pso, cg, BPF_CGROUP_SETSOCKOPT) < 0))
		return 1;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("attached\n");
	fflush(stdout);
	for (ticks = atol(argv[2]) * 100; !stop && ticks > 0; ticks--)
		nanosleep(&tick, NULL);
	return 0;
}
