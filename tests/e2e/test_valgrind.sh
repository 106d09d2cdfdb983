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

PORT=$((30000 + RANDOM % 10000))
T_LISTEN="127.0.0.1:$(free_port)"
cat > "$T_DIR/kb.yaml" <<EOC
listen: $T_LISTEN
cgroup: $T_CG
poll_interval: 100ms
defaults:
  mode: enforce
  consecutive_failures: 2
  open_duration: 2s
  half_open_permits: 1
destinations:
  - name: svc
    host: 127.0.0.1
    port: $PORT
  - name: six
    host: ::1
    port: $PORT
    mode: observe
EOC
S='circuit_name="svc"'

log "start kbreakerd under valgrind"
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=yes \
	--suppressions="$SUPP" --log-file="$T_DIR/valgrind.log" \
	"$KBREAKERD" -c "$T_DIR/kb.yaml" --log-level debug > "$T_DIR/agent.log" 2>&1 &
T_AGENT_PID=$!
for _ in $(seq 1 600); do
	curl -sf "http://$T_LISTEN/metrics" > /dev/null 2>&1 && break
	kill -0 "$T_AGENT_PID" 2>/dev/null || break
	sleep 0.1
done
curl -sf "http://$T_LISTEN/metrics" > /dev/null ||
	{ fail "agent did not come up under valgrind"; cat "$T_DIR/valgrind.log"; t_done; }

log "trip, open (blocked), half_open, probe succeeds, closed"
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 2)
expect_eq "refused" "$(field refused "$out")" 2
wait_state svc open 5
start_listener 127.0.0.1 "$PORT" 60 "$T_DIR/listen.out"
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
expect_eq "blocked while open" "$(field refused "$out")" 1
wait_state svc half_open 10
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
expect_eq "probe" "$(field success "$out")" 1
wait_state svc closed 10
out=$(in_test "$KBTOOL" connect ::1 "$PORT" 3)
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
expect_eq "programs attached afterwards" "$(bpftool cgroup show "$T_CG" 2>/dev/null | grep -vc '^ID')" 0
if [ "$T_FAILED" -gt 0 ]; then
	log "valgrind log:"; sed 's/^/      /' "$T_DIR/valgrind.log" | tail -80
fi
t_done
