#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The kernel matrix: for each kernel of KB_KERNELS, tests/vm/check.sh in a
# qemu guest booted on it (tests/vm/run.sh), or on this machine for
# "host". One summary line per kernel; the rows of $KB_BUILD/vm/results.tsv
# (kernel, distribution, result, refusal errno, e2e counts, seconds); each
# kernel's full output in $KB_BUILD/vm/logs/NAME.log, its console in
# NAME.console. Exit 0 when every kernel passed (an unsupported one passes
# when its start-up check does).
# Environment:
#   KB_KERNELS   names from tests/vm/kernels, and "host" (default: all of them;
#                host runs first, alone)
#   KB_VM_JOBS   guests at a time (default 1)
#   KB_VM_E2E    the end-to-end tests a guest runs (tests/vm/check.sh; "all")
#   KB_HOST_MODE host's check.sh mode: supported (default) or probe, when
#                the suite has just run on the host (make test)
#   KB_VM_TIMEOUT  seconds per kernel before it is killed and failed (default 2700)
#   and what tests/vm/run.sh takes (KB_VM_SMP, KB_VM_KVM, ...)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

read -ra kernels <<<"${KB_KERNELS:-$(vm_kernel_names | tr '\n' ' ') host}"
[ ${#kernels[@]} -gt 0 ] || vm_die "KB_KERNELS is empty"
jobs=${KB_VM_JOBS:-1}
export KB_VM_TIMEOUT=${KB_VM_TIMEOUT:-2700}
for b in kbreakerd kbtool kbfloor; do
	[ -x "$KB_BUILD/$b" ] || vm_die "no $KB_BUILD/$b: make all $KB_BUILD/kbtool $KB_BUILD/kbfloor first"
done
for k in "${kernels[@]}"; do [ "$k" = host ] || vm_kernel "$k"; done
[ "$(id -u)" = 0 ] || vm_die "the matrix runs as root (the end-to-end tests need it)"

logs=$VM_DIR/logs
mkdir -p "$logs"
rel_logs=$(realpath --relative-to="$VM_TOP" "$logs")

# attempt NAME MODE LOG: the kernel's check, once, its output in LOG; its status.
attempt() {
	local child rc=0
	if [ "$1" = host ]; then
		(cd "$VM_TOP" && CI=true exec timeout --kill-after=10 "$KB_VM_TIMEOUT" \
			tests/vm/check.sh "$2" "$KB_BUILD") >"$3" 2>&1 &
	else
		KB_VM_CONSOLE=$logs/$1.console "$VM_SRC/run.sh" "$1" -- \
			env KB_VM_E2E="${KB_VM_E2E:-}" tests/vm/check.sh "$2" "$KB_BUILD" >"$3" 2>&1 &
	fi
	child=$!
	trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM
	wait "$child" || rc=$?
	trap - TERM
	return "$rc"
}

# one NAME: run the kernel's check; leave NAME.line (the summary) and
# NAME.tsv (its results row) in $logs.
one() {
	local name=$1 release dist mode log=$logs/$1.log start rc=0 e2e refusal result line hang retried=
	if [ "$name" = host ]; then
		release=$(uname -r) mode=${KB_HOST_MODE:-supported}
		dist="host, $(. /etc/os-release && echo "$PRETTY_NAME")"
	else
		vm_kernel "$name"
		mode=$K_SUPPORT dist=$K_DIST
	fi
	start=$SECONDS
	attempt "$name" "$mode" "$log" || rc=$?
	# A guest whose own kernel hung (soft lockup or RCU stall, then
	# softlockup_panic) under emulation reports nothing; it gets one more
	# boot, and the summary says so. A failed check is never retried.
	if [ "$rc" = 125 ] && hang=$(grep -m1 -E 'soft lockup|self-detected stall' "$logs/$name.console" 2>/dev/null); then
		mv "$log" "$logs/$name.hung.log"
		mv "$logs/$name.console" "$logs/$name.hung.console"
		rc=0
		attempt "$name" "$mode" "$log" || rc=$?
		retried=" (booted twice: the first guest's kernel hung, \"${hang#*] }\", see $rel_logs/$name.hung.console)"
	fi
	[ "$name" = host ] || release=$(cat "$K_DIR/release" 2>/dev/null || echo "$name (not fetched)")
	local secs=$((SECONDS - start))

	e2e=$(sed -n 's/^e2e: \(.*\)$/\1/p' "$log" | tail -n 1)
	refusal=$(sed -n 's/^refusal: label=[^ ]* observed=\(.*\)$/\1/p' "$log" | tail -n 1)
	if [ "$mode" != unsupported ]; then
		[ "$rc" = 0 ] && result=PASS || result=FAIL
		[ "$mode" = probe ] && e2e="run by make test-e2e above"
		line="e2e ${e2e:-no result}, refusal ${refusal:-unknown}: $result"
	else
		[ "$rc" = 0 ] && result=unsupported || result=FAIL
		line="unsupported, start-up check ($(sed -n 's/^startup: //p' "$log" | tail -n 1)): $([ "$rc" = 0 ] && echo PASS || echo FAIL)"
	fi
	case $rc in
	124) line="$line, no result within $KB_VM_TIMEOUT s" ;;
	125) line="$line, the guest reported no exit status" ;;
	esac
	[ "$result" = FAIL ] && line="$line (see $rel_logs/$name.log)"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$release" "$dist" "$result" "${refusal:--}" "${e2e:--}" "$secs" > "$logs/$name.tsv"
	printf 'kernel %s (%s): %s%s [%dm%02ds]\n' "$release" "$dist" "$line" "$retried" $((secs / 60)) $((secs % 60)) > "$logs/$name.line"
	# what failed, in the summary itself: CI keeps only its own output
	[ "$result" != FAIL ] || grep -E 'FAIL|BUG:|panic|vm: ' "$log" | head -n 12 | sed 's/^ */    /' >> "$logs/$name.line" || true
}

pids=() names=() next=0 failed=0
cleanup() {
	local p
	for p in "${pids[@]}"; do [ -z "$p" ] || kill -TERM "$p" 2>/dev/null; done
	wait
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# launch NAME: start its job; NAME.line appears when it is done.
launch() {
	rm -f "$logs/$1".{line,tsv,console,hung.log,hung.console}
	one "$1" &
	pids+=($!) names+=("$1")
}
# report: print the next kernel's line once its job has ended, in order.
report() {
	local name=${names[$next]}
	wait "${pids[$next]}" || true
	pids[$next]=
	next=$((next + 1))
	if [ -s "$logs/$name.line" ]; then cat "$logs/$name.line"
	else echo "kernel $name: the matrix job ended without a result"
	fi
	[ "$(cut -f3 "$logs/$name.tsv" 2>/dev/null)" != FAIL ] && [ -s "$logs/$name.tsv" ] || failed=$((failed + 1))
}
done_in_order() { [ "$next" -lt ${#names[@]} ] && [ -e "$logs/${names[$next]}.line" ]; }

start=$SECONDS
# The host's own run goes first and alone: guests beside it would load its timings.
for name in "${kernels[@]}"; do
	[ "$name" != host ] || { launch host; report; }
done
for name in "${kernels[@]}"; do
	[ "$name" != host ] || continue
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
	while done_in_order; do report; done
	launch "$name"
done
while [ "$next" -lt ${#names[@]} ]; do report; done

{
	printf 'kernel\tdistribution\tresult\trefusal\te2e\tseconds\n'
	for name in "${kernels[@]}"; do cat "$logs/$name.tsv" 2>/dev/null || true; done
} > "$VM_DIR/results.tsv"
secs=$((SECONDS - start))
vm_say "matrix: ${#kernels[@]} kernels in $((secs / 60))m$((secs % 60))s, $failed failed; $VM_DIR/results.tsv"
[ "$failed" = 0 ]
