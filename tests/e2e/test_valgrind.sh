#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# kbreakerd under valgrind (memcheck) through one whole scenario: start,
# refused connects trip a breaker, open (a connect is blocked), half_open,
# a probe succeeds, closed; /metrics, /status and /healthz scraped; SIGTERM.
# Valgrind must report zero errors and zero definitely or indirectly lost
# bytes, and kbreakerd must exit 0. tests/tools/valgrind.supp holds the only
# suppressions (each explained there); none covers kbreaker's own code.
. "$(dirname "$0")/lib.sh"
# An ASan build cannot run under valgrind; test-asan covers it with ASan's
# own leak checker, so there is nothing to check here (not a missing precondition).
if ldd "$KBREAKERD" 2>/dev/null | grep -q libasan; then
	echo "  [$T_NAME] SKIP: ASan build (valgrind runs on the plain build)"; exit 77
fi
command -v valgrind >/dev/null || need "valgrind not installed (make deps)"
t_setup
SUPP="$(dirname "$0")/../tools/valgrind.supp"

PORT=$(test_port 1)
T_LISTEN="127.0.0.1:$(free_port)"
agent_config poll_interval=100ms \
	defaults: mode=enforce consecutive_failures=2 open_duration=2s half_open_permits=1 \
	dest: name=svc host=$T_ADDR port=$PORT \
	dest: name=six host=$T_ADDR6 port=$PORT mode=observe > "$T_DIR/kb.yaml"
S='circuit_name="svc"'

log "start kbreakerd under valgrind"
# Valgrind's start takes seconds where a plain one takes milliseconds.
T_AGENT_START_S=$((T_WAIT_S * 5)) start_agent_cmd valgrind --tool=memcheck --leak-check=full \
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	--track-origins=yes --suppressions="$SUPP" --log-file="$T_DIR/valgrind.log" \
	"$KBREAKERD" -c "$T_DIR/kb.yaml" --log-level debug

log "trip, open (blocked), half_open, probe succeeds, closed"
# The kernel trips the breaker on the 2nd refusal, before that connect()
# returns: the 3rd is refused by the hook, whatever the agent's speed.
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 3)
expect_eq "refused (2 by the peer, 1 by the hook)" "$(field refused "$out")" 3
wait_state svc open
start_listener $T_ADDR "$PORT" "$T_DIR/listen.out"
wait_state svc half_open
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 1)
expect_eq "probe" "$(field success "$out")" 1
wait_state svc closed
out=$(in_test "$KBTOOL" connect $T_ADDR6 "$PORT" 3)
expect_eq "observe destination refused" "$(field refused "$out")" 3
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 2
expect_metric "kbreaker_tcp_connects_total{$S,result=\"success\"}" 1
expect_metric "kbreaker_connects_blocked_total{$S}" 1
for p in /metrics /status /healthz /nope; do
	curl -s "http://$T_LISTEN$p" > /dev/null
	curl -s -X POST "http://$T_LISTEN$p" > /dev/null
	curl -sI "http://$T_LISTEN$p" > /dev/null
done
kill "$LISTENER"; wait "$LISTENER"
expect_eq "listener accepted (the probe)" "$(cat "$T_DIR/listen.out")" "accepted=1"

log "SIGTERM; valgrind's verdict"
kill -TERM "$T_AGENT_PID"
wait "$T_AGENT_PID"; rc=$?
T_AGENT_PID=""
expect_eq "exit status (99: valgrind found errors)" "$rc" 0
sum=$(grep -m1 'ERROR SUMMARY' "$T_DIR/valgrind.log" | sed 's/^==[0-9]*== //')
log "$sum"
grep -E 'definitely lost|indirectly lost|possibly lost|still reachable|All heap blocks' "$T_DIR/valgrind.log" |
	sed 's/^==[0-9]*== */      /'
expect_eq "valgrind errors" "$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$T_DIR/valgrind.log" | head -1)" 0
for k in definitely indirectly; do
	lost=$(sed -n "s/.*$k lost: \([0-9,]*\) bytes.*/\1/p" "$T_DIR/valgrind.log" | head -1)
	expect_eq "$k lost bytes" "${lost:-0}" 0
done
expect_eq "programs attached afterwards" "$(attached_progs "$T_CG")" 0
if [ "$T_FAILED" -gt 0 ]; then
	log "valgrind log:"; sed 's/^/      /' "$T_DIR/valgrind.log" | tail -80
fi
t_done
