#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Connects the hooks see before the kernel has picked their peer or sent
# their SYN (found by review).
# - Unspecified peers: a TCP connect to 0.0.0.0 reaches the socket's own
#   address or 127.0.0.1, one to :: reaches ::1 (or 127.0.0.1 from a socket
#   bound to a mapped address), one to ::ffff:0.0.0.0 the IPv4 way. An open
#   breaker on the address reached refuses each, as it refuses the address
#   given plainly; a port nothing is configured for still connects. The
#   hooks write the peer they judged in, so a socket bound to a device
#   does not reach that device's address instead.
# - Half_open permits of connects that never sent a SYN: a wrong sa_family
#   takes none; a connect that fails on its route (no address, no route)
#   took one, and the agent gives it back once the kernel's counts stand
#   still, so that the recovered destination closes the breaker instead of
#   staying refused for ever.
. "$(dirname "$0")/lib.sh"
t_setup
command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 || need "setpriv or user nobody missing"
P=$(test_port 3)
FREE=$((P + 1))
RP=$((P + 2))
NOROUTE=10.77.0.1
DEVADDR=10.78.0.9
T_LISTEN="127.0.0.1:$(free_port)"
agent_config poll_interval=100ms defaults: mode=enforce consecutive_failures=2 open_duration=1h \
	dest: name=lo4 host=127.0.0.1 port=$P \
	dest: name=own host=$T_ADDR port=$P \
	dest: name=lo6 host=::1 port=$P \
	dest: name=dev host=$DEVADDR port=$FREE \
	dest: name=pr host=$NOROUTE port=$RP consecutive_failures=1 open_duration=1s \
		half_open_permits=1 > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
ip -n "$T_NS" link add kbdev type veth peer name kbdev-peer && ip -n "$T_NS" addr add $DEVADDR/32 dev kbdev &&
	ip -n "$T_NS" link set kbdev up && ip -n "$T_NS" link set kbdev-peer up ||
	need "cannot make a veth pair in the namespace"

log "trip lo4, own, lo6 and dev: two refusals each, the addresses given plainly"
for a in 127.0.0.1 $T_ADDR ::1; do
	expect_field "$a refused twice" refused 2 in_test "$KBTOOL" connect "$a" "$P" 2
done
expect_field "$DEVADDR refused twice" refused 2 in_test "$KBTOOL" connect $DEVADDR "$FREE" 2
for c in lo4 own lo6 dev; do wait_state $c open; done
start_listener 127.0.0.1 "$P" "$T_DIR/l4"; L4=$LISTENER
start_listener $T_ADDR "$P" "$T_DIR/lown"; LOWN=$LISTENER
start_listener ::1 "$P" "$T_DIR/l6"; L6=$LISTENER
start_listener 127.0.0.1 "$FREE" "$T_DIR/lfree"; LFREE=$LISTENER
start_listener $DEVADDR "$FREE" "$T_DIR/ldev"; LDEV=$LISTENER

log "the servers are back, the breakers open: each unspecified peer is refused as the address it reaches"
# WHAT CONNECT-ARGS...: one connect refused by the hook.
refused() {
	local what=$1
	shift
	expect_field "$what: refused" refused 1 in_test "$KBTOOL" connect "$@"
}
refused "0.0.0.0 -> 127.0.0.1" 0.0.0.0 "$P" 1
refused "bound to $T_ADDR, 0.0.0.0 -> $T_ADDR" 0.0.0.0 "$P" 1 bind=$T_ADDR
# Found by review: bound to a broadcast or multicast address, a socket has
# no source of its own and reaches 127.0.0.1; bound to a device, the
# kernel would pick that device's address: the hook writes its peer in.
refused "bound to 255.255.255.255, 0.0.0.0 -> 127.0.0.1" 0.0.0.0 "$P" 1 bind=255.255.255.255
refused "bound to 224.0.0.1, 0.0.0.0 -> 127.0.0.1" 0.0.0.0 "$P" 1 bind=224.0.0.1
refused "bound to 127.255.255.255 (lo's broadcast), 0.0.0.0 -> 127.0.0.1" 0.0.0.0 "$P" 1 \
	bind=127.255.255.255
refused "bound to device kbdev, 0.0.0.0 -> 127.0.0.1, not $DEVADDR" 0.0.0.0 "$P" 1 dev=kbdev
expect_field "bound to device kbdev, 0.0.0.0 port $FREE (dev open there): not to $DEVADDR" success 0 \
	in_test "$KBTOOL" connect 0.0.0.0 "$FREE" 1 dev=kbdev
refused "::ffff:0.0.0.0 -> 127.0.0.1" ::ffff:0.0.0.0 "$P" 1
refused "bound to ::ffff:$T_ADDR, ::ffff:0.0.0.0 -> $T_ADDR" ::ffff:0.0.0.0 "$P" 1 bind=::ffff:$T_ADDR
refused ":: -> ::1" :: "$P" 1
refused "bound to ::ffff:$T_ADDR, :: -> 127.0.0.1" :: "$P" 1 bind=::ffff:$T_ADDR
expect_field "0.0.0.0 on a port nothing is configured for connects" success 1 \
	in_test "$KBTOOL" connect 0.0.0.0 "$FREE" 1
for l in $L4 $LOWN $L6 $LFREE $LDEV; do kill "$l"; wait "$l" 2>/dev/null; done
expect_eq "accepted by $DEVADDR's server (kbdev)" "$(field accepted "$(cat "$T_DIR/ldev")")" 0
expect_eq "accepted by 127.0.0.1's server" "$(field accepted "$(cat "$T_DIR/l4")")" 0
expect_eq "accepted by $T_ADDR's server" "$(field accepted "$(cat "$T_DIR/lown")")" 0
expect_eq "accepted by ::1's server" "$(field accepted "$(cat "$T_DIR/l6")")" 0
expect_eq "accepted on the free port" "$(field accepted "$(cat "$T_DIR/lfree")")" 1
expect_metric 'kbreaker_connects_blocked_total{circuit_name="lo4"}' 7
expect_metric 'kbreaker_connects_blocked_total{circuit_name="own"}' 2
expect_metric 'kbreaker_connects_blocked_total{circuit_name="lo6"}' 1
for c in lo4 own lo6 dev; do
	expect_metric "kbreaker_tcp_connects_total{circuit_name=\"$c\",result=\"success\"}" 0
done

log "half_open permits: pr trips on a refusal at $NOROUTE, then loses its address and route"
ip -n "$T_NS" addr add $NOROUTE/32 dev lo || need "cannot add $NOROUTE to lo"
expect_field "$NOROUTE refused" refused 1 in_test "$KBTOOL" connect $NOROUTE "$RP" 1
# Open for a second only (open_duration 1s): a slow guest's scrapes may see
# it half_open already, so the trip is read from its transition.
wait_until "$T_WAIT_S" metric_above \
	'circuit_breaker_state_transition_total{circuit_name="pr",old_state="closed",new_state="open"}' 0
t_check $? "pr tripped (closed to open)"
ip -n "$T_NS" addr del $NOROUTE/32 dev lo
wait_state pr half_open
# As nobody: no privilege is needed for either.
as_nobody() { in_test setpriv --reuid=nobody --regid=nogroup --clear-groups "$KBTOOL" "$@"; }
expect_field "a wrong sa_family fails before any SYN" errno EAFNOSUPPORT \
	as_nobody connect $NOROUTE "$RP" 3 family=3
expect_field "no route: fails before any SYN" unreachable 1 as_nobody connect $NOROUTE "$RP" 1
ip -n "$T_NS" addr add $NOROUTE/32 dev lo
start_listener $NOROUTE "$RP" "$T_DIR/lpr"; LPR=$LISTENER
# up_again: a connect gets through (the permit came back) and succeeds.
up_again() { [ "$(field success "$(in_test "$KBTOOL" connect $NOROUTE "$RP" 1)")" = 1 ]; }
wait_until "$T_WAIT_S" up_again
t_check $? "the recovered $NOROUTE is reached again"
wait_state pr closed
expect_metric kbreaker_probe_permits_returned_total 1
expect_metric 'circuit_breaker_state_transition_total{circuit_name="pr",old_state="half_open",new_state="closed"}' 1
check "the agent said why" log_has 'msg="probe permits given back: their connects failed before sending" circuit=pr permits=1'
kill "$LPR"; wait "$LPR" 2>/dev/null
t_done
