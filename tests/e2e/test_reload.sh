#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# SIGHUP reload on real sockets: a destination kept unchanged keeps its open
# breaker and counts, a removed one is unblocked at once, a changed policy
# applies to the kept state, an added one starts closed; a broken file is
# rejected with file:line:col, the running config stays, and the failure
# shows in kbreaker_config_reload_success. Failures counted before a reload
# that rewrites a closed breaker's verdict end with the next success, in the
# kernel as in the agent. A reload in half_open that rewrites the verdict
# gives no permit a pending probe took. Resets a reload makes failures count
# from the reload on. A reload applies log_level (unless
# --log-level was given) and names the start-only keys it changed but left.
. "$(dirname "$0")/lib.sh"
t_setup
B=$(test_port 6)
P_KEEP=$B P_GONE=$((B+1)) P_CHG=$((B+2)) P_NEW=$((B+3)) P_RUN=$((B+4)) P_HO=$((B+5))
T_LISTEN="127.0.0.1:$(free_port)"

conf() {	# conf CHANGE_THRESHOLD WITH_GONE WITH_NEW
	local gone=() new=()
	[ "$2" = yes ] && gone=(dest: name=gone host=$T_ADDR port=$P_GONE)
	[ "$3" = yes ] && new=(dest: name=new host=$T_ADDR port=$P_NEW)
	agent_config defaults: mode=enforce consecutive_failures=2 open_duration=1h half_open_permits=1 \
		dest: name=keep host=$T_ADDR port=$P_KEEP "${gone[@]}" \
		dest: name=chg host=$T_ADDR port=$P_CHG consecutive_failures="$1" "${new[@]}"
}
conf 5 yes no > "$T_DIR/kb.yaml"
# systemd's Type=notify protocol: READY=1 once serving, RELOADING=1 around
# each reload, STOPPING=1 on the way out.
"$KBTOOL" notify-recv "$T_DIR/notify" 0 > "$T_DIR/notify.out" &
NOTIFY_PID=$!
wait_until "$T_WAIT_S" test -S "$T_DIR/notify"
check "notify socket bound" test -S "$T_DIR/notify" || t_done
export NOTIFY_SOCKET="$T_DIR/notify"
start_agent "$T_DIR/kb.yaml"
unset NOTIFY_SOCKET
c() { field "$2" "$(in_test "$KBTOOL" connect $T_ADDR "$1" "$3")"; }
st() { expect_metric "circuit_breaker_state{circuit_name=\"$1\",state=\"$2\"}" 1; }

log "v1: trip keep and gone; one failure on chg (threshold 5)"
c "$P_KEEP" refused 2 >/dev/null; c "$P_GONE" refused 2 >/dev/null; c "$P_CHG" refused 1 >/dev/null
wait_state keep open; wait_state gone open
expect_eq "gone blocked" "$(c "$P_GONE" refused 3)" 3
expect_metric 'kbreaker_connects_blocked_total{circuit_name="gone"}' 3
wait_metric 'circuit_breaker_consecutive_failures{circuit_name="chg"}' 1

log "v2: gone removed, chg threshold 5 -> 2, new added; SIGHUP"
conf 2 no yes > "$T_DIR/kb.yaml"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reloads_total{result="success"}' 1
expect_metric 'kbreaker_config_reload_success' 1
expect_metric 'kbreaker_destinations' 3
st keep open
expect_metric 'kbreaker_tcp_connects_total{circuit_name="keep",result="refused"}' 2
expect_eq "keep still blocked" "$(c "$P_KEEP" refused 2)" 2
expect_metric 'kbreaker_connects_blocked_total{circuit_name="keep"}' 2
expect_metric 'circuit_breaker_state{circuit_name="gone",state="open"}' absent
# Unblocked: the SYN reaches the closed port and the RST refuses it (no hook).
start_listener $T_ADDR "$P_GONE" "$T_DIR/l_gone"
expect_eq "gone reachable after removal" "$(c "$P_GONE" success 2)" 2
kill "$LISTENER"; wait "$LISTENER"
st new closed
expect_metric 'kbreaker_tcp_connects_total{circuit_name="new",result="refused"}' 0
wait_metric 'circuit_breaker_consecutive_failures{circuit_name="chg"}' 1
# The kept count (1) plus one more reaches the new threshold (2).
c "$P_CHG" refused 1 >/dev/null
wait_state chg open
expect_metric 'kbreaker_tcp_connects_total{circuit_name="chg",result="refused"}' 2

log "v3: a broken file is rejected; the running config stays"
conf 2 no yes | sed "s/port: $P_NEW/port: 70000/" > "$T_DIR/kb.yaml"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reload_success' 0
expect_metric 'kbreaker_config_reloads_total{result="failure"}' 1
# Where the bad value sits in the file: the error must point there.
bad_line=$(grep -n 'port: 70000' "$T_DIR/kb.yaml" | cut -d: -f1)
bad_col=$(awk -v l="$bad_line" 'NR == l { print index($0, "70000") }' "$T_DIR/kb.yaml")
check "rejection logged with file:line:col ($bad_line:$bad_col)" grep -q \
	"reload rejected, keeping the running configuration: $T_DIR/kb.yaml:$bad_line:$bad_col: destination .new.: port: " \
	"$T_DIR/agent.log"
st keep open; st chg open; st new closed
expect_eq "keep still blocked after a bad reload" "$(c "$P_KEEP" refused 1)" 1
expect_metric 'kbreaker_connects_blocked_total{circuit_name="keep"}' 3

log "v2 again: accepted, nothing lost"
conf 2 no yes > "$T_DIR/kb.yaml"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reload_success' 1
expect_metric 'kbreaker_config_reloads_total{result="success"}' 2
st keep open; st chg open
expect_metric 'kbreaker_connects_blocked_total{circuit_name="keep"}' 3
stop_agent; expect_eq "exit status" "$?" 0
# Each message was queued on the socket when sent; the receiver prints what
# is queued before it exits.
kill "$NOTIFY_PID"; wait "$NOTIFY_PID" 2>/dev/null
# Three reloads, one of them rejected: each still ends with READY=1.
expect_eq "sd_notify messages" "$(tr '\n' ' ' < "$T_DIR/notify.out")" \
	"READY=1 RELOADING=1 READY=1 RELOADING=1 READY=1 RELOADING=1 READY=1 STOPPING=1 "
unset NOTIFY_SOCKET

log "4 failures in a row (of 5), a reload to 6, a success: 5 more stay closed, the 6th opens"
R='circuit_name="run"'
run_conf() {
	agent_config defaults: mode=enforce open_duration=1h \
		dest: name=run host=$T_ADDR port=$P_RUN consecutive_failures=$1 > "$T_DIR/kb.yaml"
}
run_conf 5
start_agent "$T_DIR/kb.yaml"
expect_field "4 refused" refused 4 in_test "$KBTOOL" connect $T_ADDR "$P_RUN" 4
wait_metric "circuit_breaker_consecutive_failures{$R}" 4
run_conf 6
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reloads_total{result="success"}' 1
start_listener $T_ADDR "$P_RUN" "$T_DIR/l_run"
expect_field "a success" success 1 in_test "$KBTOOL" connect $T_ADDR "$P_RUN" 1
kill "$LISTENER"; wait "$LISTENER" 2>/dev/null
wait_metric "circuit_breaker_consecutive_failures{$R}" 0
expect_field "5 refused" refused 5 in_test "$KBTOOL" connect $T_ADDR "$P_RUN" 5
wait_metric "circuit_breaker_consecutive_failures{$R}" 5
expect_metric "circuit_breaker_state{$R,state=\"closed\"}" 1
expect_field "the 6th, refused by the peer" refused 1 in_test "$KBTOOL" connect $T_ADDR "$P_RUN" 1
wait_state run open
expect_metric "kbreaker_tcp_connects_total{$R,result=\"refused\"}" 10
stop_agent; expect_eq "exit status" "$?" 0

log "half_open, one permit, its probe pending; a reload changes the verdict (failures)"
H='circuit_name="ho"'
ho_conf() {
	agent_config defaults: mode=enforce dest: name=ho host=$T_ADDR port=$P_HO \
		consecutive_failures=1 open_duration=1s half_open_permits=1 "failures=$1" > "$T_DIR/kb.yaml"
}
ho_conf "[refused, timeout, unreachable, error]"
start_agent "$T_DIR/kb.yaml"
expect_field "trips ho" refused 1 in_test "$KBTOOL" connect $T_ADDR "$P_HO" 1
wait_state ho half_open
probe_pending $T_ADDR "$P_HO"
ho_conf "[refused, timeout, unreachable]"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reloads_total{result="success"}' 1
expect_metric "circuit_breaker_state{$H,state=\"half_open\"}" 1
expect_field "a second connect: blocked, the permit is still taken" refused 1 \
	in_test "$KBTOOL" connect $T_ADDR "$P_HO" 1 300
expect_metric "kbreaker_connects_blocked_total{$H}" 1
kill "$PROBE"; wait "$PROBE" 2>/dev/null
stop_agent; expect_eq "exit status" "$?" 0

# Resets made failures by a reload count from then on: the ones before it
# were not failures when they came (all of them used to reach the breaker
# at the next poll, and open it).
log "a reload that makes resets failures: the resets before it do not open the breaker"
P_RST=$P_GONE
rst_conf() {
	agent_config defaults: mode=enforce consecutive_failures=2 open_duration=1h \
		dest: name=rst host=$T_ADDR port=$P_RST "$@"
}
rst_conf > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
start_listener $T_ADDR "$P_RST" "$T_DIR/l_rst"
expect_field "3 connections reset by the client" success 3 in_test "$KBTOOL" rst $T_ADDR "$P_RST" 3
wait_metric 'kbreaker_tcp_resets_total{circuit_name="rst",direction="sent"}' 3
rst_conf 'failures=[refused, timeout, unreachable, error, reset]' > "$T_DIR/kb.yaml"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reloads_total{result="success"}' 1
# Each connect's success reaches the agent before its reset: one reset
# since the reload is one failure in a row, and no more.
expect_field "one more reset, after the reload" success 1 in_test "$KBTOOL" rst $T_ADDR "$P_RST" 1
wait_metric 'kbreaker_tcp_resets_total{circuit_name="rst",direction="sent"}' 4
wait_metric 'circuit_breaker_consecutive_failures{circuit_name="rst"}' 1
st rst closed
expect_eq "two connects, then their two resets" \
	"$(echo go | in_test "$KBTOOL" rstlater $T_ADDR "$P_RST" 2 | tr '\n' ' ')" "connected=2 aborted=2 "
wait_state rst open
kill "$LISTENER"; wait "$LISTENER"
stop_agent; expect_eq "exit status" "$?" 0

# Each SIGHUP logs "SIGHUP: reloading" at info, before the file is read:
# whether the next one shows is what the running level lets through.
hup() {	# hup N: SIGHUP, wait for the N-th accepted reload
	kill -HUP "$T_AGENT_PID"
	wait_metric 'kbreaker_config_reloads_total{result="success"}' "$1"
}
reloading() { grep -c 'msg="SIGHUP: reloading' "$T_DIR/agent.log"; }
log "start-only keys a reload changes are named; log_level applies (no --log-level)"
NOSTATE=/sys/fs/bpf/kb-reload-never-$$
agent_config log_level=info > "$T_DIR/kb.yaml"
start_agent_cmd "$KBREAKERD" -c "$T_DIR/kb.yaml"
agent_config log_level=info user=nobody "state_dir=$NOSTATE" > "$T_DIR/kb.yaml"
hup 1
check "reload names state_dir and user as not applied" \
	log_has 'level=warn msg="reload: state_dir, user changed; not applied until the next restart"'
check "the new state_dir not made" test ! -e "$NOSTATE"
expect_eq "still root (user: needs a restart)" "$(awk '/^Uid:/ { print $2 }' "/proc/$T_AGENT_PID/status")" 0
agent_config log_level=error user=nobody "state_dir=$NOSTATE" > "$T_DIR/kb.yaml"
hup 2
hup 3
expect_eq "info lines once log_level: error applies (the 3rd SIGHUP's is not)" "$(reloading)" 2
agent_config log_level=info user=nobody "state_dir=$NOSTATE" > "$T_DIR/kb.yaml"
hup 4
hup 5
expect_eq "info lines once log_level: info is back (the 5th SIGHUP's)" "$(reloading)" 3
# Compared with what runs, not with the last file (found by review): each
# of the 5 reloads named them again, and the levels let 1, 2 and 5 through.
named() { grep -c 'not applied until the next restart' "$T_DIR/agent.log"; }
expect_eq "the same file again: named again" "$(named)" 3
agent_config log_level=info > "$T_DIR/kb.yaml"
hup 6
expect_eq "back to what runs: nothing named" "$(named)" 3
stop_agent; expect_eq "exit status" "$?" 0

log "--log-level wins over a reloaded log_level"
agent_config log_level=error > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
hup 1
hup 2
expect_eq "info lines under --log-level debug" "$(reloading)" 2
expect_eq "nothing named when no start-only key changed" \
	"$(grep -c 'not applied until the next restart' "$T_DIR/agent.log")" 0
stop_agent; expect_eq "exit status" "$?" 0
t_done
