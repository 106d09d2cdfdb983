#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run every tests/e2e/test_*.sh; print "N passed, N failed[, N skipped]".
# Usage: tests/e2e/run.sh BUILD_DIR [TEST...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd); shift || true
export KBREAKERD="$build/kbreakerd" KBTOOL="$build/kbtool" PROMTOOL="${PROMTOOL:-promtool}"
passed=0 failed=0 skipped=0 times="" failed_names=""
tests=("$@"); [ ${#tests[@]} -gt 0 ] || tests=("$here"/test_*.sh)
# A signal stops the running test, which cleans up after itself, then the
# run. Each test runs as a waited-for job so the signal is acted on at once.
T=""
stop() {
	[ -n "$T" ] && kill -TERM "$T" 2>/dev/null && wait "$T"
	echo "e2e: stopped by a signal during $(basename "$t"): $passed passed, $failed failed, $skipped skipped"
	exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM
for t in "${tests[@]}"; do
	echo "  E2E      $(basename "$t")"
	start=$SECONDS
	bash "$t" & T=$!
	wait "$T"; rc=$?; T=""
	times="$times $(basename "$t" .sh)=$((SECONDS - start))s"
	case $rc in
	0) passed=$((passed + 1)) ;;
	77) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)); failed_names="$failed_names $(basename "$t" .sh)" ;;
	esac
done
# The kernel matrix runs these in qemu: the CI time budget is spent here.
echo "e2e: seconds per test:$times"
# CI shows only the end of the log: name what failed where it is seen.
[ -z "$failed_names" ] || echo "e2e: failed:$failed_names"
echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
