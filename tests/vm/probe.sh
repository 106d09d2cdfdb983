#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The kernel matrix's own checks, in a namespace and cgroup of their own
# (the end-to-end tests' lib.sh). Needs KBREAKERD and KBTOOL, root.
#   refusal  trip a breaker on a refused connect, then connect while it is
#            open: prints "refusal: label=L observed=O", L from
#            kbreaker_build_info{refusal=...}, O the errno connect() gave;
#            passes when they agree and the hook blocked the connect.
#   startup  for a kernel declared unsupported: kbreakerd must exit
#            non-zero with one error line and leave nothing attached;
#            prints "startup: MESSAGE".
# Usage: tests/vm/probe.sh refusal|startup
. "$(dirname "$0")/../e2e/lib.sh"
# The errno itself is what this checks: EPERM is not folded into refused here.
unset KB_EPERM_IS_REFUSED
[ -x "${KBREAKERD:-}" ] && [ -x "${KBTOOL:-}" ] || { echo "  [$T_NAME] FAIL: KBREAKERD and KBTOOL must name built binaries"; exit 1; }
mode=${1:-}
case $mode in refusal|startup) ;; *) echo "usage: tests/vm/probe.sh refusal|startup" >&2; exit 2 ;; esac
t_setup
command -v bpftool >/dev/null || need "bpftool missing"

PORT=$((20000 + RANDOM % 12000))
T_LISTEN="127.0.0.1:$(free_port)"
cat > "$T_DIR/kb.yaml" <<EOC
listen: $T_LISTEN
cgroup: $T_CG
poll_interval: 1s
defaults:
  mode: enforce
  consecutive_failures: 1
  open_duration: 60s
destinations:
  - name: svc
    host: 127.0.0.1
    port: $PORT
EOC

refusal() {
	local label out observed
	start_agent "$T_DIR/kb.yaml"
	label=$(scrape | sed -n 's/^kbreaker_build_info{.*refusal="\([^"]*\)".*/\1/p')
	log "a refused connect (nothing listens) trips the breaker"
	out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
	expect_eq "the tripping connect" "$(field refused "$out")" 1
	wait_state svc open 5 || t_done
	log "open: the hook refuses"
	out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
	if [ "$(field refused "$out")" = 1 ]; then observed=ECONNREFUSED
	elif [ "$(field eperm "$out")" = 1 ]; then observed=EPERM
	else observed="other($out)"
	fi
	wait_metric "kbreaker_connects_blocked_total{circuit_name=\"svc\"}" 1
	echo "refusal: label=${label:-absent} observed=$observed"
	expect_eq "errno of a blocked connect vs kbreaker_build_info's refusal label" "$observed" "${label:-absent}"
}

startup() {
	local rc errs
	timeout 60 "$KBREAKERD" -c "$T_DIR/kb.yaml" > "$T_DIR/out" 2> "$T_DIR/err"; rc=$?
	T_CHECKS=$((T_CHECKS + 1))
	case $rc in
	0) fail "kbreakerd started (exit 0)" ;;
	124) fail "kbreakerd still running after 60 s" ;;
	esac
	# An error line: logfmt at level=error, or a bare message (test_startup's rule).
	errs=$(grep -v '^ts=' "$T_DIR/err"; grep '^ts=.* level=error ' "$T_DIR/err")
	echo "startup: exit $rc: $(head -n 1 <<<"$errs" | sed 's/^ts=[^ ]* //')"
	expect_eq "error lines" "$(grep -c . <<<"$errs")" 1
	[ "$(grep -c . <<<"$errs")" = 1 ] || sed 's/^/      /' "$T_DIR/err"
	expect_eq "programs on the test cgroup" "$(attached_progs "$T_CG")" 0
	expect_eq "kb_ programs loaded" "$(bpftool prog show 2>/dev/null | grep -c ' name kb_')" 0
}

"$mode"
t_done
