#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# What the kernel matrix runs on one kernel, in a guest or on the host:
#   supported    the end-to-end tests that exercise the kernel, then the refusal probe
#   probe        the refusal probe only (the suite has just run on this kernel)
#   unsupported  the start-up probe only
# Exit 0 when everything passed. Usage: tests/vm/check.sh MODE BUILD_DIR
# KB_VM_E2E: the tests a supported kernel runs, names without .sh, or "all".
# The default leaves out what only user space decides (HTTP serving,
# kbreakerctl, install, Prometheus rules, valgrind, the command line,
# start-up errors, name resolution): under emulation they would cost most
# of the time and prove nothing about the kernel.
set -uo pipefail
[ $# = 2 ] || { echo "usage: tests/vm/check.sh supported|probe|unsupported BUILD_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$2" && pwd) || exit 1
export KBREAKERD="$build/kbreakerd" KBTOOL="$build/kbtool"
KERNEL_E2E="test_accuracy test_scope test_loop test_restart test_scale test_failopen test_policy
	    test_reload test_blast_radius test_load test_workloads test_preconnect test_fastopen"
# Under emulation (a guest of tests/vm/run.sh, which has /run/kbvm), empty
# programs stay attached at kbreaker's four cgroup hooks, on a cgroup of
# their own, for the whole run (bench/kbfloor.c, no ports: it turns nothing
# on). The hooks' static keys then never flip while a test connects: QEMU's
# TCG once ran a half-patched key, "Oops: int3" at __inet_stream_connect,
# when a SIGKILLed agent's last connect4 link went as another vCPU
# connected. The kernel's live patching is safe on hardware, and the host's
# own run keeps the keys flipping as a user's agent would.
floor_pid= floor_cg=
floor_stop() {
	[ -n "$floor_pid" ] || return 0
	kill -TERM "$floor_pid" 2>/dev/null
	wait "$floor_pid" 2>/dev/null
	rmdir "$floor_cg" 2>/dev/null
	rm -f "$floor_out"
	floor_pid=
}
if [ -d /run/kbvm ]; then
	floor_cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)/kbvm-floor
	floor_out=$(mktemp)
	mkdir -p "$floor_cg"
	"$build/kbfloor" --sockopt "$floor_cg" 86400 >"$floor_out" 2>&1 &
	floor_pid=$!
	trap floor_stop EXIT
	for _ in $(seq 100); do	# 10 s; it attaches in milliseconds
		grep -q '^attached$' "$floor_out" && break
		kill -0 "$floor_pid" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q '^attached$' "$floor_out"; then
		echo "  FLOOR    empty programs held at the hooks (no static key flips)"
	else
		echo "  FLOOR    not attached, the run goes on without: $(tr '\n' ' ' <"$floor_out")"
		floor_stop
	fi
fi

tests=()
if [ "${KB_VM_E2E:-}" != all ]; then
	for t in ${KB_VM_E2E:-$KERNEL_E2E}; do tests+=("$here/../e2e/$t.sh"); done
fi
rc=0
case $1 in
supported)
	"$here/../e2e/run.sh" "$build" "${tests[@]}" || rc=1
	echo "  PROBE    refusal"
	"$here/probe.sh" refusal || rc=1 ;;
probe)
	echo "  PROBE    refusal"
	"$here/probe.sh" refusal || rc=1 ;;
unsupported)
	echo "  PROBE    startup"
	"$here/probe.sh" startup || rc=1 ;;
*) echo "check.sh: mode '$1' is not supported, probe or unsupported" >&2; exit 2 ;;
esac
exit $rc
