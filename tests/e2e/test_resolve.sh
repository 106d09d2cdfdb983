#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A destination given by name follows its addresses: the agent resolves it at
# start and every resolve_interval; an address that appears is counted for
# the breaker, one that disappears is removed from the maps. The name lives
# in an /etc/hosts bind-mounted over the real one in the agent's own mount
# namespace, so the host's file is never touched.
. "$(dirname "$0")/lib.sh"
t_setup
P=$(test_port 1)
T_LISTEN="127.0.0.1:$(free_port)"
NAME=svc.kbreaker-test.invalid

printf '127.0.0.1 localhost\n%s %s\n' "$T_NET.0.5" "$NAME" > "$T_DIR/hosts"
agent_config resolve_interval=1s defaults: mode=observe consecutive_failures=1000000 \
	dest: name=svc host=$NAME port=$P > "$T_DIR/kb.yaml"
start_agent_hosts "$T_DIR/hosts" "$T_DIR/kb.yaml"

M='kbreaker_tcp_connects_total{circuit_name="svc",result="refused"}'
log "resolved at start: $T_NET.0.5"
in_test "$KBTOOL" connect $T_NET.0.5 "$P" 4 >/dev/null
expect_metric "$M" 4
in_test "$KBTOOL" connect $T_NET.0.6 "$P" 2 >/dev/null
expect_metric "$M" 4

log "the name moves to $T_NET.0.6 and gains $T_ADDR6"
# Rewrite in place: the bind mount follows the inode.
printf '127.0.0.1 localhost\n%s %s\n%s %s\n' "$T_NET.0.6" "$NAME" "$T_ADDR6" "$NAME" > "$T_DIR/hosts"
moved() {
	log_has "msg=\"address removed\" circuit=svc .*address=${T_NET//./\\.}\\.0\\.5\$" &&
	log_has "msg=\"address added\" circuit=svc .*address=${T_NET//./\\.}\\.0\\.6\$" &&
	log_has "msg=\"address added\" circuit=svc .*address=$T_ADDR6\$"
}
wait_until "$T_WAIT_S" moved
check "re-resolution logged: $T_NET.0.5 removed, $T_NET.0.6 and $T_ADDR6 added" moved
in_test "$KBTOOL" connect $T_NET.0.6 "$P" 3 >/dev/null
in_test "$KBTOOL" connect $T_ADDR6 "$P" 2 >/dev/null
in_test "$KBTOOL" connect $T_NET.0.5 "$P" 5 >/dev/null
expect_metric "$M" 9

log "the name stops resolving: the agent keeps the last good addresses"
expect_metric 'kbreaker_resolve_errors_total' 0
printf '127.0.0.1 localhost\n' > "$T_DIR/hosts"
# One error per failed round (every resolve_interval): how many a slow
# machine counts before its scrape is its own business; one at least.
wait_until "$T_WAIT_S" metric_above 'kbreaker_resolve_errors_total' 0
expect_ge "resolve errors counted" "$(metric 'kbreaker_resolve_errors_total')" 1
check "resolve failure logged, addresses kept" \
	log_has "msg=\"resolve $NAME for svc: .*; keeping 2 known addresses\""
in_test "$KBTOOL" connect $T_NET.0.6 "$P" 1 >/dev/null
in_test "$KBTOOL" connect $T_ADDR6 "$P" 1 >/dev/null
expect_metric "$M" 11

# One address and port, two destinations: a literal (lit) and a name that
# resolves to it (dup). The kernel's key leads to one of them; the literal
# outranks the name, and neither ever removes the other's key.
DUP=dup.kbreaker-test.invalid A=$T_NET.0.7
printf '127.0.0.1 localhost\n%s %s\n' "$A" "$DUP" > "$T_DIR/hosts"
ML='kbreaker_tcp_connects_total{circuit_name="lit",result="refused"}'
MD='kbreaker_tcp_connects_total{circuit_name="dup",result="refused"}'
reloads=0
# reload_to DEST...: the same agent settings with these destinations; SIGHUP.
reload_to() {
	agent_config resolve_interval=1s defaults: mode=observe consecutive_failures=1000000 \
		dest: name=svc host=$NAME port=$P "$@" > "$T_DIR/kb.yaml"
	kill -HUP "$T_AGENT_PID"
	reloads=$((reloads + 1))
	wait_metric 'kbreaker_config_reloads_total{result="success"}' "$reloads"
}
lit=(dest: name=lit host=$A port=$P) dup=(dest: name=dup host=$DUP port=$P)

log "a literal and a name for $A:$P, added by one reload: the literal's"
reload_to "${lit[@]}" "${dup[@]}"
check "the name's address logged as taken" \
	log_has "msg=\"address taken\" circuit=dup host=$DUP address=${A//./\\.} port=$P by=lit"
in_test "$KBTOOL" connect "$A" "$P" 2 >/dev/null
expect_metric "$ML" 2
expect_metric "$MD" 0

log "the literal removed: the name takes the address at its next resolution"
reload_to "${dup[@]}"
dup_has() { in_test "$KBTOOL" connect "$A" "$P" 1 >/dev/null; metric_above "$MD" 0; }
wait_until "$T_WAIT_S" dup_has
check "dup counts $A:$P" metric_above "$MD" 0
d=$(metric "$MD")
in_test "$KBTOOL" connect "$A" "$P" 2 >/dev/null
expect_metric "$MD" $((d + 2))

log "the literal added back: it takes the key from the name"
reload_to "${dup[@]}" "${lit[@]}"
check "the take-over logged" \
	log_has "msg=\"address taken\" circuit=lit address=${A//./\\.} port=$P from=dup"
in_test "$KBTOOL" connect "$A" "$P" 3 >/dev/null
expect_metric "$ML" 3
expect_metric "$MD" $((d + 2))
wait_until "$T_WAIT_S" log_has "msg=\"address removed\" circuit=dup .*address=${A//./\\.}: another destination's"
check "the name let the address go" \
	log_has "msg=\"address removed\" circuit=dup .*address=${A//./\\.}: another destination's"

log "the name removed: the literal's key stays"
reload_to "${lit[@]}"
in_test "$KBTOOL" connect "$A" "$P" 2 >/dev/null
expect_metric "$ML" 5

# per_address: each address its own breaker; the destination's counters
# are their sum, and stay so when an address goes.
PA=pa.kbreaker-test.invalid
printf '127.0.0.1 localhost\n%s %s\n%s %s\n' "$T_NET.0.8" "$PA" "$T_NET.0.9" "$PA" > "$T_DIR/hosts"
MP='kbreaker_tcp_connects_total{circuit_name="pa",result="refused"}'
log "per_address: 4 + 2 refused on two addresses, then the name drops $T_NET.0.8"
reload_to dest: name=pa host=$PA port=$P per_address=true
in_test "$KBTOOL" connect "$T_NET.0.8" "$P" 4 >/dev/null
in_test "$KBTOOL" connect "$T_NET.0.9" "$P" 2 >/dev/null
expect_metric "$MP" 6
printf '127.0.0.1 localhost\n%s %s\n' "$T_NET.0.9" "$PA" > "$T_DIR/hosts"
pa_dropped() { log_has "msg=\"address removed\" circuit=pa .*address=${T_NET//./\\.}\\.0\\.8\$"; }
wait_until "$T_WAIT_S" pa_dropped
check "$T_NET.0.8 removed" pa_dropped
expect_metric "$MP" 6
expect_eq "/status: pa refused" "$(http_get /status | jq '.destinations[] | select(.name == "pa") | .connects.refused')" 6
in_test "$KBTOOL" connect "$T_NET.0.9" "$P" 1 >/dev/null
expect_metric "$MP" 7
t_done
