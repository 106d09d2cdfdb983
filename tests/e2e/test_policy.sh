#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Breaker policies on real sockets:
# - failure rate: successes and failures alternate (never two failures in a
#   row), so only the rate over a 10-call window (threshold 50 %) can trip;
# - backoff: a failed half_open probe re-opens for twice open_duration.
. "$(dirname "$0")/lib.sh"
t_setup
P=$((20000 + RANDOM % 12000))
T_LISTEN="127.0.0.1:$(free_port)"
cat > "$T_DIR/kb.yaml" <<EOC
listen: $T_LISTEN
cgroup: $T_CG
defaults: { mode: enforce }
destinations:
  - name: fr
    host: 127.0.0.1
    port: $P
    consecutive_failures: 0
    failure_rate_threshold: 50
    window_type: count
    window_size: 10
    minimum_calls: 10
    open_duration: 1s
    max_open_duration: 8s
    jitter: 0
    half_open_permits: 1
EOC
start_agent "$T_DIR/kb.yaml"
S='circuit_name="fr"'

log "9 calls alternating success/failure: 4 failures of 9, below 50 % and minimum_calls"
for i in $(seq 1 9); do
	if [ $((i % 2)) = 1 ]; then
		start_listener 127.0.0.1 "$P" 5 "$T_DIR/l"
		in_test "$KBTOOL" connect 127.0.0.1 "$P" 1 >/dev/null
		kill "$LISTENER"; wait "$LISTENER" 2>/dev/null
	else
		in_test "$KBTOOL" connect 127.0.0.1 "$P" 1 >/dev/null
	fi
done
expect_metric "kbreaker_tcp_connects_total{$S,result=\"success\"}" 5
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 4
wait_metric "circuit_breaker_failure_rate{$S}" 0.4444
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1
log "10th call fails: 5 of 10 = 50 %, never 2 in a row: the rate trips it"
in_test "$KBTOOL" connect 127.0.0.1 "$P" 1 >/dev/null
wait_state fr open 2
T_CHECKS=$((T_CHECKS + 1))
grep -q 'msg="breaker open" circuit=fr old_state=closed new_state=open mode=enforce cause=failure_rate' \
	"$T_DIR/agent.log" || fail "trip cause not failure_rate"

log "backoff: the probe fails, the second open period is twice the first"
wait_state fr half_open 3
in_test "$KBTOOL" connect 127.0.0.1 "$P" 1 >/dev/null	# the probe: refused
wait_state fr open 2
wait_state fr half_open 4
# Open periods from the agent's own log: open -> half_open, twice.
ms() { sed -E 's/^ts=[0-9-]+T([0-9]+):([0-9]+):([0-9.]+)Z.*/\1 \2 \3/' | awk '{ printf "%d\n", ($1 * 3600 + $2 * 60 + $3) * 1000 }'; }
opens=($(grep 'msg="breaker open" circuit=fr' "$T_DIR/agent.log" | ms))
halfs=($(grep 'msg="breaker half_open" circuit=fr' "$T_DIR/agent.log" | ms))
first=$((halfs[0] - opens[0])) second=$((halfs[1] - opens[1]))
log "open periods: ${first} ms, then ${second} ms"
T_CHECKS=$((T_CHECKS + 2))
[ "$first" -ge 990 ] && [ "$first" -le 1300 ] || fail "first open period $first ms, want ~1000"
[ "$second" -ge 1990 ] && [ "$second" -le 2300 ] || fail "second open period $second ms, want ~2000"
t_done
