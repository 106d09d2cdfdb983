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

# put_hosts FORMAT ARGS...: rewrite the hosts file in place (the bind mount
# follows the inode) as the resolver thread reads it every second: never
# empty or cut short, as printf > FILE leaves it between its truncation and
# its line-by-line writes: one write over the old text, then the old tail cut.
put_hosts() {
	# shellcheck disable=SC2059
	printf "$@" > "$T_DIR/hosts.new"
	dd if="$T_DIR/hosts.new" of="$T_DIR/hosts" bs=64k conv=notrunc status=none
	truncate -s "$(stat -c %s "$T_DIR/hosts.new")" "$T_DIR/hosts"
}
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
put_hosts '127.0.0.1 localhost\n%s %s\n%s %s\n' "$T_NET.0.6" "$NAME" "$T_ADDR6" "$NAME"
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
put_hosts '127.0.0.1 localhost\n'
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
put_hosts '127.0.0.1 localhost\n%s %s\n' "$A" "$DUP"
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
# A reload's new name is looked up by the resolver thread, after the reload
# is counted, and after the lookup it may be in (DNS may take seconds).
dup_taken() { log_has "msg=\"address taken\" circuit=dup host=$DUP address=${A//./\\.} port=$P by=lit"; }
wait_until "$T_WAIT_S" dup_taken
check "the name's address logged as taken" dup_taken
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
put_hosts '127.0.0.1 localhost\n%s %s\n%s %s\n' "$T_NET.0.8" "$PA" "$T_NET.0.9" "$PA"
MP='kbreaker_tcp_connects_total{circuit_name="pa",result="refused"}'
log "per_address: 4 + 2 refused on two addresses, then the name drops $T_NET.0.8"
reload_to dest: name=pa host=$PA port=$P per_address=true
# pa is new: its addresses come from the resolver thread, later than the
# reload, behind the lookup it may be in (svc's, which goes to DNS now).
pa_addrs() { http_get /status | jq -c '[.destinations[] | select(.name == "pa") | .addresses[].address]'; }
pa_resolved() { [ "$(pa_addrs)" = "[\"$T_NET.0.8\",\"$T_NET.0.9\"]" ]; }
wait_until "$T_WAIT_S" pa_resolved
expect_eq "/status: pa's addresses once resolved" "$(pa_addrs)" "[\"$T_NET.0.8\",\"$T_NET.0.9\"]"
in_test "$KBTOOL" connect "$T_NET.0.8" "$P" 4 >/dev/null
in_test "$KBTOOL" connect "$T_NET.0.9" "$P" 2 >/dev/null
expect_metric "$MP" 6
put_hosts '127.0.0.1 localhost\n%s %s\n' "$T_NET.0.9" "$PA"
pa_dropped() { log_has "msg=\"address removed\" circuit=pa .*address=${T_NET//./\\.}\\.0\\.8\$"; }
wait_until "$T_WAIT_S" pa_dropped
check "$T_NET.0.8 removed" pa_dropped
expect_metric "$MP" 6
expect_eq "/status: pa refused" "$(http_get /status | jq '.destinations[] | select(.name == "pa") | .connects.refused')" 6
in_test "$KBTOOL" connect "$T_NET.0.9" "$P" 1 >/dev/null
expect_metric "$MP" 7

# Found by review: a reload looked its new names up on the event loop, one
# after another. With a name server that never answers (10 s a lookup) and
# three new names the loop stood still for 30 s: no open period ended, and
# SIGTERM waited for every lookup while the hooks went on refusing. The
# resolver thread looks them up now: the reload is over at once, an open
# breaker goes half_open on time, and SIGTERM detaches the hooks at once,
# all while no lookup has answered yet.
log "a reload adding 3 names that a name server never answers: the loop goes on"
stop_agent
Q=$(test_port 5)
start_dns_sink 600
# brief's open period ends during the lookups; hold's does not end at all.
dns_conf=(poll_interval=100ms defaults: mode=enforce consecutive_failures=3 half_open_permits=1
	half_open_successes=1 dest: name=brief host=$T_ADDR port=$Q open_duration=2s
	dest: name=hold host=$T_ADDR port=$((Q + 1)) open_duration=1h)
agent_config "${dns_conf[@]}" > "$T_DIR/kb.yaml"
start_agent_resolv "$T_DIR/resolv.conf" "$T_DIR/kb.yaml"
expect_field "hold: refused (closed port)" refused 3 in_test "$KBTOOL" connect $T_ADDR $((Q + 1)) 3
wait_state hold open || t_done
start_listener $T_ADDR $((Q + 1)) "$T_DIR/listen-hold.out"
HOLD_LISTENER=$LISTENER
expect_field "brief: refused (closed port)" refused 3 in_test "$KBTOOL" connect $T_ADDR "$Q" 3
wait_state brief open || t_done
start_listener $T_ADDR "$Q" "$T_DIR/listen-brief.out"
agent_config "${dns_conf[@]}" dest: name=s1 host=s1.kbreaker-test.invalid port=$((Q + 2)) \
	dest: name=s2 host=s2.kbreaker-test.invalid port=$((Q + 3)) \
	dest: name=s3 host=s3.kbreaker-test.invalid port=$((Q + 4)) > "$T_DIR/kb.yaml"
# The bounds below are the first lookup's end, 30 s after the SIGHUP (each
# lookup takes glibc's longest timeout), not figures: the reload takes
# milliseconds, and SIGTERM one second; a guest of the kernel matrix under
# emulation has taken 1.3 s and 5.9 s.
t_hup=$(date +%s%N)
kill -HUP "$T_AGENT_PID"
wait_until 25 log_has 'msg="configuration reloaded'
t_check $? "reloaded within 25 s of SIGHUP, before any lookup ended" || t_done
log "configuration reloaded $(( ($(date +%s%N) - t_hup) / 1000000 )) ms after SIGHUP (as seen by polling)"
expect_metric 'kbreaker_config_reloads_total{result="success"}' 1
expect_eq "/status: s1's addresses" \
	"$(http_get /status | jq -c '.destinations[] | select(.name == "s1") | .addresses')" "[]"
wait_state brief half_open
expect_metric 'kbreaker_resolve_errors_total' 0
expect_field "brief's probe goes through, half_open" success 1 in_test "$KBTOOL" connect $T_ADDR "$Q" 1
expect_field "hold still refuses" refused 1 in_test "$KBTOOL" connect $T_ADDR $((Q + 1)) 1
# Still nothing answered: the SIGTERM comes during the lookups.
expect_metric 'kbreaker_resolve_errors_total' 0
kill -TERM "$T_AGENT_PID"
t0=$(date +%s%N)
refused=0 passed=0 R=""
while [ "$R" != success ] && [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt "$T_WAIT_S" ]; do
	out=$(in_test "$KBTOOL" connect $T_ADDR $((Q + 1)) 1)
	R=other
	[ "$(field refused "$out")" = 1 ] && { R=refused; refused=$((refused + 1)); }
	[ "$(field success "$out")" = 1 ] && { R=success; passed=1; }
	[ "$R" = success ] || sleep 0.1
done
now=$(date +%s%N)
el=$(( (now - t0) / 1000000 )) el_hup=$(( (now - t_hup) / 1000000 ))
log "first connect through hold $el ms after SIGTERM ($refused refused before it)"
expect_eq "hold: a connect got through after SIGTERM" "$R" success
check "... before the first lookup could end: $el_hup ms after SIGHUP (lookups take 30 000)" \
	test "$el_hup" -lt 30000
out=$(in_test "$KBTOOL" connect $T_ADDR $((Q + 1)) 3)
expect_eq "hold: connects after that, none refused" "$(field success "$out")" 3
passed=$((passed + 3))
wait "$T_AGENT_PID"; rc=$?
T_AGENT_PID=""
now=$(date +%s%N)
el=$(( (now - t0) / 1000000 )) el_hup=$(( (now - t_hup) / 1000000 ))
log "agent exited $el ms after SIGTERM (it waits 1 s for the lookup in flight, then leaves it)"
expect_eq "agent exit status" "$rc" 0
# Exit used to wait for the lookup in flight.
check "exited before the first lookup could end: $el_hup ms after SIGHUP" test "$el_hup" -lt 30000
check "said so" log_has 'msg="resolver: a name lookup is still in flight; not waiting for it"'
check "stopped, hooks detached" log_has 'msg="kbreakerd stopped; all hooks detached"'
kill "$HOLD_LISTENER"; wait "$HOLD_LISTENER"
expect_eq "hold's listener accepted what got through" "$(cat "$T_DIR/listen-hold.out")" "accepted=$passed"
t_done
