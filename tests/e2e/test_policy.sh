#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Breaker policies on real sockets:
# - failure rate: successes and failures alternate (never two failures in a
#   row), so only the rate over a 10-call window (threshold 50 %) can trip;
# - backoff: a failed half_open probe re-opens for twice open_duration.
# An open period is read from one /status document: time in state plus time
# to half_open, both taken at the same instant, add up to the period the
# breaker chose, to the millisecond, however late the test reads it.
. "$(dirname "$0")/lib.sh"
t_setup
command -v jq >/dev/null || need "jq not installed (make deps)"
P=$(test_port 1)
T_LISTEN="127.0.0.1:$(free_port)"
agent_config defaults: mode=enforce \
	dest: name=fr host=$T_ADDR port=$P consecutive_failures=0 failure_rate_threshold=50 \
	window_type=count window_size=10 minimum_calls=10 open_duration=5s max_open_duration=20s \
	jitter=0 half_open_permits=1 > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
S='circuit_name="fr"'

log "9 calls alternating success/failure: 4 failures of 9, below 50 % and minimum_calls"
for i in $(seq 1 9); do
	if [ $((i % 2)) = 1 ]; then
		start_listener $T_ADDR "$P" "$T_DIR/l"
		expect_eq "call $i succeeds" "$(field success "$(in_test "$KBTOOL" connect $T_ADDR "$P" 1)")" 1
		kill "$LISTENER"; wait "$LISTENER" 2>/dev/null
	else
		expect_eq "call $i refused" "$(field refused "$(in_test "$KBTOOL" connect $T_ADDR "$P" 1)")" 1
	fi
done
expect_metric "kbreaker_tcp_connects_total{$S,result=\"success\"}" 5
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 4
wait_metric "circuit_breaker_failure_rate{$S}" 0.4444
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1
log "10th call fails: 5 of 10 = 50 %, never 2 in a row: the rate trips it"
in_test "$KBTOOL" connect $T_ADDR "$P" 1 >/dev/null

# open_period_ms: fr's open period in ms from one /status document; fails
# (sets nothing) unless fr is open.
open_period_ms() {
	http_get /status > "$T_DIR/status.json"
	PERIOD=$(jq -er '.destinations[] | select(.name == "fr" and .state == "open") |
		(.time_in_state_seconds + .next_half_open_seconds) * 1000 | round' "$T_DIR/status.json")
}
# expect_period WHAT WANT_MS: both values are rounded to the millisecond.
expect_period() {
	PERIOD=""
	wait_until "$T_WAIT_S" open_period_ms
	[ -n "$PERIOD" ] && [ "$PERIOD" -ge $(($2 - 2)) ] && [ "$PERIOD" -le $(($2 + 2)) ]
	t_check $? "$1: open period '$PERIOD' ms, want $2 (last /status: $(tr -d '\n' < "$T_DIR/status.json"))"
}
expect_period "the trip" 5000
# Open by now, and perhaps already half_open again on a slow machine:
# the transition is what the trip left behind for good.
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"closed\",new_state=\"open\"}" 1
check "trip cause logged as failure_rate" log_has \
	'msg="breaker open" circuit=fr old_state=closed new_state=open mode=enforce cause=failure_rate'

log "backoff: the probe fails, the second open period is twice the first"
wait_state fr half_open
in_test "$KBTOOL" connect $T_ADDR "$P" 1 >/dev/null	# the probe: refused
expect_period "the failed probe" 10000
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"half_open\",new_state=\"open\"}" 1
wait_state fr half_open
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"open\",new_state=\"half_open\"}" 2
t_done
