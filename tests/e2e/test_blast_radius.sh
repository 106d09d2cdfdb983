#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Blast-radius guard on real sockets: a name with three addresses, one
# breaker per address (per_address), max_open_percent 50. All three fail;
# exactly one opens (open_duration 1h: it stays the one) and blocks, the
# other two are refused a trip by the guard and keep reaching the peer,
# round after round. The name lives in an /etc/hosts bind-mounted in the
# agent's own mount namespace.
. "$(dirname "$0")/lib.sh"
t_setup
P=$(test_port 1)
T_LISTEN="127.0.0.1:$(free_port)"
NAME=group.kbreaker-test.invalid
printf '%s %s\n' "$T_NET.0.11" "$NAME" "$T_NET.0.12" "$NAME" "$T_NET.0.13" "$NAME" > "$T_DIR/hosts"
agent_config defaults: mode=enforce consecutive_failures=2 open_duration=1h \
	dest: name=grp host=$NAME port=$P per_address=true max_open_percent=50 > "$T_DIR/kb.yaml"
start_agent_hosts "$T_DIR/hosts" "$T_DIR/kb.yaml"
expect_metric 'kbreaker_breakers' 3

# members STATE_ERE: the group's addresses whose breaker is in a matching state now.
members() {
	http_get /status | grep -o "\"address\":\"$T_NET\.0\.1[123]\",\"state\":\"[a-z_]*\"" |
		grep -E "\"state\":\"($1)\"" | grep -o "$T_NET\.0\.1[123]"
}
one_open() { [ "$(members 'open|half_open' | wc -l)" = 1 ]; }

# round: 2 connects to each address; every one is refused (by the peer or,
# for the open member, by the hook).
ROUNDS=0
round() {
	local ip
	for ip in $T_NET.0.11 $T_NET.0.12 $T_NET.0.13; do
		expect_eq "round $((ROUNDS + 1)): refused connects to $ip" \
			"$(field refused "$(in_test "$KBTOOL" connect "$ip" "$P" 2)")" 2
	done
	ROUNDS=$((ROUNDS + 1))
}

log "round 1: 2 refused connects to each address; one member opens, the guard holds the others"
round
wait_until "$T_WAIT_S" one_open
check "one member open after round 1" one_open
OPEN=$(members 'open|half_open')
log "open: $OPEN"
check "the open member's trip logged" log_has "msg=\"breaker open\" circuit=grp address=$OPEN "
log "rounds 2-6: the open member blocks, the other two reach the peer"
for _ in 2 3 4 5 6; do
	round
	expect_eq "open members after round $ROUNDS" "$(members 'open|half_open' | tr '\n' ' ')" "$OPEN "
done
# Round 1 reached the peer everywhere; since then 2 connects a round were blocked.
expect_metric 'kbreaker_connects_blocked_total{circuit_name="grp"}' $(( (ROUNDS - 1) * 2 ))
expect_metric 'kbreaker_tcp_connects_total{circuit_name="grp",result="refused"}' $(( 6 + (ROUNDS - 1) * 4 ))
expect_eq "breaker open lines in the log" "$(grep -c 'msg="breaker open" circuit=grp' "$T_DIR/agent.log")" 1
# The two held back: a trip denied at the 2nd refusal, then at every refusal of every later round.
wait_metric 'kbreaker_trips_denied_total{circuit_name="grp"}' $(( 2 * (1 + 2 * (ROUNDS - 1)) ))
t_done
