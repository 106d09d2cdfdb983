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
t_done
