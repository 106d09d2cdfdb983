#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Restart keeps state (state_dir): across a SIGTERM restart and a SIGKILL
# restart, the open breaker is still open and blocking afterwards, the
# counts carry on, and a healthy destination under steady traffic sees zero
# failed connects and loses no count, while nothing is blocked in between.
# A destination given as a prefix (net) counts exactly across the restarts
# too: the new programs look prefixes up from the moment they take over.
# Resets counted as failures in a row carry on across a restart as well.
# A second agent on the same state_dir, and --clear-state, are refused while
# one runs. The kernel's count of failures in a row, and the half-open
# permits taken, carry on across a restart. Each address of a per_address
# name comes back with its own breaker; one the name no longer gives is
# retired at the first resolution, its counts kept with the destination.
. "$(dirname "$0")/lib.sh"
t_setup
B=$(test_port 8)
P_OK=$B P_DEAD=$((B+1)) P_NET=$((B+2)) P_RUN=$((B+3)) P_HO=$((B+4)) P_PA=$((B+5)) P_KEEP=$((B+6))
P_RS=$((B+7))
T_LISTEN="127.0.0.1:$(free_port)"
STATE=/sys/fs/bpf/kb-test-restart-$$
# conf [dest: WORDS]...: the config, with the destinations ok and net and those given.
conf() {
	agent_config state_dir=$STATE defaults: mode=enforce consecutive_failures=2 open_duration=1h \
		dest: name=ok host=$T_ADDR port=$P_OK dest: name=net host=$T_NET.0.0/16 port=$P_NET \
		"$@" > "$T_DIR/kb.yaml"
}
conf dest: name=dead host=$T_ADDR port=$P_DEAD
t_on_exit '"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null'
start_agent "$T_DIR/kb.yaml"
start_listener $T_ADDR "$P_NET" "$T_DIR/l_net"
NET_LISTENER=$LISTENER
start_listener $T_ADDR "$P_OK" "$T_DIR/l_ok"
D='circuit_name="dead"'
OK='circuit_name="ok"'
OK_SUCCESS="kbreaker_tcp_connects_total{$OK,result=\"success\"}"
NET_SUCCESS='kbreaker_tcp_connects_total{circuit_name="net",result="success"}'


log "trip dead; it blocks"
in_test "$KBTOOL" connect $T_ADDR "$P_DEAD" 2 >/dev/null
wait_state dead open
expect_eq "blocked before restart" "$(field refused "$(in_test "$KBTOOL" connect $T_ADDR "$P_DEAD" 1)")" 1
expect_metric "kbreaker_connects_blocked_total{$D}" 1

# restart HOW: stop the agent (SIGTERM or SIGKILL) while a client hammers
# the healthy destination, check the gap fails open, start it again. The
# client runs until stopped, so its traffic spans the restart however slow
# the machine: it is stopped only once successes are seen counted under the
# new agent. Its own tally is the truth the counters must equal.
OK_TOTAL=0 NET_TOTAL=0
restart() {
	local client netclient n m out
	# A 60 s connect timeout: a SYN the starved listener's full queue
	# dropped is retried (1, 3, 7... s) rather than counted as a failure.
	bg_test "$T_DIR/client-$1" "$KBTOOL" connect $T_ADDR "$P_OK" 0 60000
	client=$BG
	bg_test "$T_DIR/netclient-$1" "$KBTOOL" connect $T_ADDR "$P_NET" 0 60000
	netclient=$BG
	n=$(metric "$OK_SUCCESS") m=$(metric "$NET_SUCCESS")
	wait_until "$T_WAIT_S" metric_above "$OK_SUCCESS" "$n" &&
		wait_until "$T_WAIT_S" metric_above "$NET_SUCCESS" "$m"
	t_check $? "$1: healthy traffic before the stop" || return
	kill -"$1" "$T_AGENT_PID"; wait "$T_AGENT_PID" 2>/dev/null; T_AGENT_PID=""
	# Nothing blocks while no agent runs: the SYN reaches the closed port.
	out=$(in_test "$KBTOOL" connect $T_ADDR "$P_DEAD" 1)
	expect_eq "$1: dead reachable (refused by the peer) while the agent is down" "$(field refused "$out")" 1
	start_agent "$T_DIR/kb.yaml"
	n=$(metric "$OK_SUCCESS") m=$(metric "$NET_SUCCESS")
	wait_until "$T_WAIT_S" metric_above "$OK_SUCCESS" "$n" &&
		wait_until "$T_WAIT_S" metric_above "$NET_SUCCESS" "$m"
	t_check $? "$1: healthy traffic after the restart"
	kill -TERM "$client" "$netclient"; wait "$client" "$netclient"
	out=$(cat "$T_DIR/client-$1")
	log "$1: client: $out"
	expect_eq "$1: healthy connects that failed across the restart" \
		"$(( $(field refused "$out") + $(field timeout "$out") + $(field unreachable "$out") +
		     $(field eperm "$out") + $(field other "$out") ))" 0
	OK_TOTAL=$((OK_TOTAL + $(field success "$out")))
	# Outcomes are counted in the kernel before connect() returns, and
	# /metrics reads those counters: no wait.
	expect_metric "$OK_SUCCESS" "$OK_TOTAL" ||
		log "$1: BPF runs the kernel skipped (recursion_misses):" \
		    "$(scrape | awk '/^kbreaker_bpf_program_recursion_misses_total\{/ { printf "%s ", $0 }')"
	out=$(cat "$T_DIR/netclient-$1")
	log "$1: client of net (a prefix): $out"
	NET_TOTAL=$((NET_TOTAL + $(field success "$out")))
	expect_metric "$NET_SUCCESS" "$NET_TOTAL"
}

log "SIGTERM restart under traffic"
restart TERM
expect_metric "circuit_breaker_state{$D,state=\"open\"}" 1
expect_eq "blocked after SIGTERM restart" "$(field refused "$(in_test "$KBTOOL" connect $T_ADDR "$P_DEAD" 1)")" 1
expect_metric "kbreaker_connects_blocked_total{$D}" 2
# 2 that tripped it + 1 while the agent was down: the kernel kept counting.
expect_metric "kbreaker_tcp_connects_total{$D,result=\"refused\"}" 3
expect_metric "circuit_breaker_state_transition_total{$D,old_state=\"closed\",new_state=\"open\"}" 1

log "SIGKILL restart under traffic"
restart KILL
expect_metric "circuit_breaker_state{$D,state=\"open\"}" 1
expect_eq "blocked after SIGKILL restart" "$(field refused "$(in_test "$KBTOOL" connect $T_ADDR "$P_DEAD" 1)")" 1
expect_metric "kbreaker_connects_blocked_total{$D}" 3
expect_metric "kbreaker_tcp_connects_total{$D,result=\"refused\"}" 4
expect_metric "circuit_breaker_state{$OK,state=\"closed\"}" 1
expect_metric "kbreaker_tcp_connects_total{$OK,result=\"refused\"}" 0
kill "$LISTENER" "$NET_LISTENER"; wait "$LISTENER" "$NET_LISTENER"
expect_eq "listener accepted every healthy connect" "$(cat "$T_DIR/l_ok")" "accepted=$OK_TOTAL"
expect_eq "net's listener too" "$(cat "$T_DIR/l_net")" "accepted=$NET_TOTAL"

log "restart without dead: its adopted key is pruned, nothing blocks or counts it"
stop_agent
conf
start_agent "$T_DIR/kb.yaml"
out=$(in_test "$KBTOOL" connect $T_ADDR "$P_DEAD" 2)
expect_eq "dead refused by the peer, not the hook" "$(field refused "$out")" 2
expect_metric "kbreaker_destinations" 2
expect_eq "keys in the pinned kb_dst (ok only; net's is a prefix)" "$(bpftool -j map dump pinned "$STATE/kb_dst" | jq length)" 1
expect_metric "circuit_breaker_state{$D,state=\"open\"}" absent
expect_metric "$OK_SUCCESS" "$OK_TOTAL"
expect_metric "kbreaker_tcp_connects_total{$OK,result=\"refused\"}" 0

log "a second agent on the same state_dir: refused, nothing attached, the pins kept"
n0=$(attached_progs "$T_CG")
sed "s/$T_LISTEN/127.0.0.1:$(free_port)/" "$T_DIR/kb.yaml" > "$T_DIR/kb2.yaml"
out=$(timeout 60 "$KBREAKERD" -c "$T_DIR/kb2.yaml" 2>&1)
expect_eq "second agent's exit status" "$?" 1
check "second agent says why" grep -q "state_dir $STATE: in use by another kbreakerd" <<<"$out"
expect_eq "programs attached: the running agent's alone" "$(attached_progs "$T_CG")" "$n0"
out=$("$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" 2>&1)
check "--clear-state refused while the agent runs" test $? -ne 0
check "the pins kept" test -e "$STATE/kb_dst"
expect_metric "$OK_SUCCESS" "$OK_TOTAL"
agent_alive "after a second agent was refused"

log "--clear-state removes the pins"
stop_agent
"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null
check "state_dir gone after --clear-state" test ! -e "$STATE"

# run: a closed port, 3 failures in a row open it; the agent is stopped
# at once after the first (before any poll of its counts).
R='circuit_name="run"'
run_conf() {
	agent_config state_dir=$STATE defaults: mode=enforce consecutive_failures=$1 open_duration=1h \
		dest: name=run host=$T_ADDR port=$P_RUN > "$T_DIR/kb.yaml"
}
fail_run() { expect_field "$1" refused "$2" in_test "$KBTOOL" connect $T_ADDR "$P_RUN" "$2"; }
log "failures in a row across a restart: 1, the stop, 1 while down, the start, 1 opens it"
run_conf 3
start_agent "$T_DIR/kb.yaml"
fail_run "before the stop" 1
stop_agent
fail_run "while down" 1
start_agent "$T_DIR/kb.yaml"
expect_metric "circuit_breaker_state{$R,state=\"closed\"}" 1
fail_run "after the start" 1
wait_state run open
expect_metric "kbreaker_tcp_connects_total{$R,result=\"refused\"}" 3

log "the same with consecutive_failures 3 -> 4 across the restart: 2 + 2"
stop_agent
"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null
start_agent "$T_DIR/kb.yaml"
fail_run "before the stop" 2
stop_agent
run_conf 4
start_agent "$T_DIR/kb.yaml"
fail_run "after the start" 1
expect_metric "circuit_breaker_state{$R,state=\"closed\"}" 1
fail_run "after the start" 1
wait_state run open
expect_metric "kbreaker_tcp_connects_total{$R,result=\"refused\"}" 4

# rs: resets are failures. The kernel counts them among the failures in a
# row and trips on them itself: the count outlives the agent, and the
# connect right after the reset that trips is refused at once, not at the
# agent's next poll (an hour here; it used to apply resets only then, and
# a restart lost the resets in the count).
log "resets in a row across a restart: 1, the stop, 1 while down, the start, 1 trips it in the kernel"
stop_agent
"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null
agent_config state_dir=$STATE poll_interval=1h \
	defaults: mode=enforce consecutive_failures=3 open_duration=1h \
	'failures=[refused, timeout, unreachable, error, reset]' \
	dest: name=rs host=$T_ADDR port=$P_RS > "$T_DIR/kb.yaml"
RS='circuit_name="rs"'
start_agent "$T_DIR/kb.yaml"
start_listener $T_ADDR "$P_RS" "$T_DIR/l_rs"
mkfifo "$T_DIR/rs.fifo"
exec {RSW}<>"$T_DIR/rs.fifo"
# Not bg_test: a command in the background reads /dev/null unless its own redirection says otherwise.
( exec {RSW}>&- && echo "$BASHPID" > "$T_CG/cgroup.procs" &&
  exec ip netns exec "$T_NS" "$KBTOOL" rstlater $T_ADDR "$P_RS" 3 < "$T_DIR/rs.fifo" > "$T_DIR/rs.out" ) &
RST_PID=$!
rs_line() { grep -qx "$1" "$T_DIR/rs.out" 2>/dev/null; }
check "rs: 3 connections open" wait_until "$T_WAIT_S" rs_line connected=3
rs_abort() {	# rs_abort N: one more connection reset, N in all
	echo 1 >&"$RSW"
	check "rs: reset $1" wait_until "$T_WAIT_S" rs_line "aborted=$1"
}
rs_abort 1
wait_metric "kbreaker_tcp_resets_total{$RS,direction=\"sent\"}" 1
stop_agent
rs_abort 2
start_agent "$T_DIR/kb.yaml"
expect_metric "kbreaker_tcp_resets_total{$RS,direction=\"sent\"}" 2
expect_metric "circuit_breaker_state{$RS,state=\"closed\"}" 1
expect_metric "circuit_breaker_consecutive_failures{$RS}" 2
rs_abort 3
expect_field "the connect right after the third reset: refused" refused 1 \
	in_test "$KBTOOL" connect $T_ADDR "$P_RS" 1
wait_state rs open
check "rs opened by a reset" log_has 'msg="breaker open" circuit=rs old_state=closed new_state=open .*cause=reset'
exec {RSW}>&-
check "rstlater ended" wait "$RST_PID"
kill "$LISTENER"; wait "$LISTENER"

# ho: one permit in half_open; a probe whose SYN is dropped holds it.
log "half_open across a restart: the permit a pending probe took stays taken"
stop_agent
"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null
agent_config state_dir=$STATE defaults: mode=enforce consecutive_failures=1 open_duration=1s \
	half_open_permits=1 half_open_successes=1 max_half_open_duration=10m \
	dest: name=ho host=$T_ADDR port=$P_HO > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
fail_run() { expect_field "$1" refused 1 in_test "$KBTOOL" connect $T_ADDR "$P_HO" 1 300; }
fail_run "trips ho"
wait_state ho half_open
probe_pending $T_ADDR "$P_HO"
fail_run "a second connect, blocked while the probe is pending"
stop_agent
start_agent "$T_DIR/kb.yaml"
expect_metric 'circuit_breaker_state{circuit_name="ho",state="half_open"}' 1
fail_run "a third, after the restart: blocked, the permit is still taken"
expect_metric 'kbreaker_connects_blocked_total{circuit_name="ho"}' 2
kill "$PROBE"; wait "$PROBE" 2>/dev/null

# pa: a per_address name for .8 and .9, a closed port on both.
PA=pa.kbreaker-test.invalid
A8=$T_NET.0.8 A9=$T_NET.0.9
MP='kbreaker_tcp_connects_total{circuit_name="pa",result="refused"}'
MB='kbreaker_connects_blocked_total{circuit_name="pa"}'
member_state() {
	http_get /status | jq -r --arg a "$1" \
		'.destinations[] | select(.name == "pa") | .addresses[] | select(.address == $a) | .state'
}
log "per_address across a SIGKILL restart: $A8's open breaker blocks again, counts carry on"
stop_agent
"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null
printf '127.0.0.1 localhost\n%s %s\n%s %s\n' "$A8" "$PA" "$A9" "$PA" > "$T_DIR/hosts"
agent_config state_dir=$STATE resolve_interval=1s defaults: mode=enforce consecutive_failures=2 \
	open_duration=1h dest: name=pa host=$PA port=$P_PA per_address=true > "$T_DIR/kb.yaml"
start_agent_hosts "$T_DIR/hosts" "$T_DIR/kb.yaml"
expect_field "$A8 trips" refused 2 in_test "$KBTOOL" connect "$A8" "$P_PA" 2
expect_field "$A9 one failure" refused 1 in_test "$KBTOOL" connect "$A9" "$P_PA" 1
pa_open() { [ "$(member_state "$A8")" = open ]; }
wait_until "$T_WAIT_S" pa_open
t_check $? "$A8's breaker: $(member_state "$A8"), want open"
kill -KILL "$T_AGENT_PID"; wait "$T_AGENT_PID" 2>/dev/null; T_AGENT_PID=""
start_agent_hosts "$T_DIR/hosts" "$T_DIR/kb.yaml"
expect_eq "$A8 after the restart" "$(member_state "$A8")" open
expect_eq "$A9 after the restart" "$(member_state "$A9")" closed
expect_metric "$MP" 3
expect_field "$A8 blocked after the restart" refused 1 in_test "$KBTOOL" connect "$A8" "$P_PA" 1
expect_metric "$MB" 1
# A failure before the restart and one after: 2 in a row open .9.
expect_field "$A9 its second failure" refused 1 in_test "$KBTOOL" connect "$A9" "$P_PA" 1
pa9_open() { [ "$(member_state "$A9")" = open ]; }
wait_until "$T_WAIT_S" pa9_open
t_check $? "$A9's breaker: $(member_state "$A9"), want open (one failure before the restart, one after)"

log "per_address: the name drops $A8 while the agent is down; it is retired, its counts kept"
stop_agent
printf '127.0.0.1 localhost\n%s %s\n' "$A9" "$PA" > "$T_DIR/hosts"
start_agent_hosts "$T_DIR/hosts" "$T_DIR/kb.yaml"
expect_eq "/status: pa's addresses" \
	"$(http_get /status | jq -c '[.destinations[] | select(.name == "pa") | .addresses[].address]')" "[\"$A9\"]"
expect_eq "$A9 after the restart" "$(member_state "$A9")" open
expect_metric "$MP" 4
expect_metric "$MB" 1
expect_field "$A8 refused by the peer, not the hook" refused 1 in_test "$KBTOOL" connect "$A8" "$P_PA" 1
expect_metric "$MB" 1
expect_metric "$MP" 4
log "per_address: one restart more; $A8's counts, retired in the last run, are still pa's"
stop_agent
start_agent_hosts "$T_DIR/hosts" "$T_DIR/kb.yaml"
expect_metric "$MP" 4
expect_metric "$MB" 1
expect_eq "$A9 after the restart" "$(member_state "$A9")" open

# Found by review: records the restore forgot while it walked the saved
# breakers made the walk start again, and a breaker already taken back was
# then forgotten too: still shown open, no longer blocking.
log "a restart that drops 10 destinations: the open one kept blocks, its record kept"
stop_agent
"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null
keep_conf() {
	local d=(dest: name=keep host=$T_ADDR port=$P_KEEP)
	for i in $(seq 1 "$1"); do d+=(dest: name=d$i host=$T_NET.0.$((20 + i)) port=$P_KEEP); done
	agent_config state_dir=$STATE defaults: mode=enforce consecutive_failures=2 open_duration=1h \
		"${d[@]}" > "$T_DIR/kb.yaml"
}
saved_records() { bpftool -j map dump pinned "$STATE/kb_saved" | jq length; }
keep_conf 10
start_agent "$T_DIR/kb.yaml"
expect_field "keep trips" refused 2 in_test "$KBTOOL" connect $T_ADDR "$P_KEEP" 2
wait_state keep open
stop_agent
expect_eq "saved breakers" "$(saved_records)" 11
keep_conf 0
start_agent "$T_DIR/kb.yaml"
expect_metric 'circuit_breaker_state{circuit_name="keep",state="open"}' 1
expect_field "keep blocked after the restart" refused 3 in_test "$KBTOOL" connect $T_ADDR "$P_KEEP" 3
expect_metric 'kbreaker_connects_blocked_total{circuit_name="keep"}' 3
saved_records_are() { [ "$(saved_records)" = "$1" ]; }
wait_until "$T_WAIT_S" saved_records_are 1
expect_eq "saved breakers: keep's alone" "$(saved_records)" 1
stop_agent
start_agent "$T_DIR/kb.yaml"
expect_metric 'circuit_breaker_state{circuit_name="keep",state="open"}' 1
expect_field "keep still blocked after one more restart" refused 1 in_test "$KBTOOL" connect $T_ADDR "$P_KEEP" 1
expect_metric 'kbreaker_connects_blocked_total{circuit_name="keep"}' 4
t_done
