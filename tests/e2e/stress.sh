#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The end-to-end suite on a loaded machine: one CPU hog per core for as long
# as tests/e2e/run.sh runs, stopped on every way out of this script.
# Usage: tests/e2e/stress.sh BUILD_DIR [TEST...]   (what run.sh takes)
#   STRESS_CPUS   hogs (default: every core, nproc)
#   STRESS_MAX_S  the hogs' own time limit, should this script be killed
#                 before it can stop them (default 3 h)
# stress-ng when installed (make deps), else plain busy loops.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cpus=${STRESS_CPUS:-$(nproc)}
max_s=${STRESS_MAX_S:-10800}
HOG=""

# The hogs die with this script: on its exit (trap), with it (the kernel's
# parent-death signal, should it be killed outright), or at max_s.
stop_hog() {
	[ -n "$HOG" ] || return 0
	kill -TERM "$HOG" 2>/dev/null
	wait "$HOG" 2>/dev/null
	HOG=""
}
trap stop_hog EXIT

if command -v stress-ng >/dev/null; then
	setpriv --pdeathsig KILL stress-ng --cpu "$cpus" --cpu-load 100 --timeout "${max_s}s" --quiet &
	HOG=$!
	what="stress-ng --cpu $cpus"
else
	# A bash job of busy loops; TERM to it ends them (they are its children).
	setpriv --pdeathsig KILL bash -c '
		trap "kill \$(jobs -p) 2>/dev/null; exit 0" TERM
		for _ in $(seq 1 "$1"); do timeout "$2" bash -c "while :; do :; done" & done
		wait' hog "$cpus" "$max_s" &
	HOG=$!
	what="$cpus busy loops"
fi
# The hog must be running, or this is just the plain suite.
sleep 1
kill -0 "$HOG" 2>/dev/null || { echo "stress: the CPU hog ($what) did not start"; exit 1; }
echo "  STRESS   $what, one per core, for the whole suite"
# A waited-for job, so a signal is acted on at once: passed on to run.sh,
# which stops the running test; then the hogs stop (EXIT).
"$here/run.sh" "$@" &
RUN=$!
trap 'kill -INT "$RUN"; wait "$RUN"; exit 130' INT
trap 'kill -TERM "$RUN"; wait "$RUN"; exit 143' TERM
wait "$RUN"
