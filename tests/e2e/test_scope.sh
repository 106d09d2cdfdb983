#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Observe where you enforce: only sockets made inside the enforcement
# cgroup feed its breakers. User nobody, outside the cgroup, fails against
# the protected destination's address and port, from another network
# namespace and from the workload's own: the breakers stay closed, count
# nothing, run no kbreaker program, and the workload keeps connecting. The
# same failures from inside the cgroup still open the breaker. Resets an
# outsider sends, from the destination's own address and port, to a
# workload's listener that connected there before count nothing. A
# destination that names a network namespace counts and blocks only
# connects made in it: another namespace's loopback is another destination.
. "$(dirname "$0")/lib.sh"
t_setup
command -v setpriv >/dev/null || need "setpriv (util-linux) not installed"
id nobody >/dev/null 2>&1 || need "no user nobody"
P=$((20000 + RANDOM % 3000)) Q=$((23000 + RANDOM % 3000)) R=$((26000 + RANDOM % 3000))
S=$((29000 + RANDOM % 3000)) U=$((17000 + RANDOM % 3000))
T_LISTEN="127.0.0.1:$(free_port)"
NS2="kb-scope-out-$$"
ip netns add "$NS2" || need "cannot create a second network namespace"
t_on_exit "ip netns del $NS2"
ip -n "$NS2" link set lo up
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
t_on_exit "sysctl -qw kernel.bpf_stats_enabled=$stats_was"
sysctl -qw kernel.bpf_stats_enabled=1

agent_config defaults: mode=enforce consecutive_failures=3 open_duration=60s \
	dest: name=db host=127.0.0.1 port=$P dest: name=db2 host=127.0.0.1 port=$Q \
	dest: name=db3 host=127.0.0.1 port=$R \
	dest: name=dbns host=127.0.0.1 port=$S netns=/run/netns/$T_NS \
	dest: name=db5 host=127.0.0.1 port=$U 'failures=[refused, timeout, unreachable, error, reset]' \
	> "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"

# outsider NETNS CMD...: run as nobody, outside the test's cgroup, in NETNS.
outsider() {
	local ns=$1; shift
	ip netns exec "$ns" setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}
runs() { metric "kbreaker_bpf_program_runs_total{program=\"$1\"}"; }
# in_cg_ns NETNS CMD...: inside the test's cgroup, in NETNS.
in_cg_ns() {
	local ns=$1; shift
	( echo "$BASHPID" > "$T_CG/cgroup.procs" && exec ip netns exec "$ns" "$@" )
}

start_listener 127.0.0.1 "$P" 60 "$T_DIR/listen.out"
expect_field "workload connects to its healthy db" success 1 in_test "$KBTOOL" connect 127.0.0.1 "$P" 1
wait_metric 'kbreaker_tcp_connects_total{circuit_name="db",result="success"}' 1
sockops_before=$(runs kb_sockops) connect4_before=$(runs kb_connect4)

log "nobody, outside the cgroup, in another namespace: 3 refused connects to its own 127.0.0.1:$P"
expect_field "outsider's connects were refused by its own loopback" refused 3 outsider "$NS2" "$KBTOOL" connect 127.0.0.1 "$P" 3
log "nobody, outside the cgroup, in the workload's namespace: 3 refused connects to 127.0.0.1:$Q"
expect_field "outsider's connects to db2 were refused" refused 3 outsider "$T_NS" "$KBTOOL" connect 127.0.0.1 "$Q" 3

log "the breakers stay closed and count nothing; no kbreaker program ran for the outsider"
expect_metric 'circuit_breaker_state{circuit_name="db",state="closed"}' 1
expect_metric 'circuit_breaker_state{circuit_name="db2",state="closed"}' 1
expect_metric 'kbreaker_tcp_connects_total{circuit_name="db",result="refused"}' 0
expect_metric 'kbreaker_tcp_connects_total{circuit_name="db2",result="refused"}' 0
expect_metric 'kbreaker_connects_blocked_total{circuit_name="db"}' 0
expect_eq "kb_sockops runs for the outsider" "$(runs kb_sockops)" "$sockops_before"
expect_eq "kb_connect4 runs for the outsider" "$(runs kb_connect4)" "$connect4_before"

log "the protected workload still connects, to db and to db2"
expect_field "workload to db after the outsider's failures" success 2 in_test "$KBTOOL" connect 127.0.0.1 "$P" 2
start_listener 127.0.0.1 "$Q" 60 "$T_DIR/listen2.out"
expect_field "workload to db2 after the outsider's failures" success 1 in_test "$KBTOOL" connect 127.0.0.1 "$Q" 1

log "the same failures from inside the cgroup open the breaker"
expect_field "workload's refused connects to db3" refused 3 in_test "$KBTOOL" connect 127.0.0.1 "$R" 3
wait_state db3 open 5
expect_metric 'kbreaker_tcp_connects_total{circuit_name="db3",result="refused"}' 3
start_listener 127.0.0.1 "$R" 60 "$T_DIR/listen3.out"
expect_field "db3 refused by the hook while open" refused 2 in_test "$KBTOOL" connect 127.0.0.1 "$R" 2
expect_metric 'kbreaker_connects_blocked_total{circuit_name="db3"}' 2
log "while an outsider still reaches the same address and port"
expect_field "outsider is never blocked" success 1 outsider "$T_NS" "$KBTOOL" connect 127.0.0.1 "$R" 1

# A socket that connected (callbacks on) and then listens hands its
# callbacks to what it accepts, whose peer, anyone's choice of address and
# port, was looked up as a destination (found by review).
log "a listener that connected to db5 first: what it accepts is not db5, whatever the peer's address"
rm -f "$T_DIR/cl.ready"
bg_test "$T_DIR/cl.out" "$KBTOOL" connlisten 127.0.0.1 "$U" 60 "$T_DIR/cl.ready"
CL=$BG
wait_until "$T_WAIT_S" ready_or_gone "$T_DIR/cl.ready" "$CL"
wait_metric 'kbreaker_tcp_connects_total{circuit_name="db5",result="refused"}' 1
if grep -q '^connect=ECONNREFUSED listen=EINVAL$' "$T_DIR/cl.out"; then
	# A host kernel, 6.18.44-fc-v1045, refuses listen() on any socket that
	# called connect(): no such listener to attack there. Its build v782
	# and the kernel matrix's kernels allow it, and run the rest.
	wait "$CL"
	log "   this kernel refuses listen() after connect() (EINVAL): nothing to accept"
else
	wait_until "$T_WAIT_S" test -s "$T_DIR/cl.ready"
	check "the workload's listener is up ($(cat "$T_DIR/cl.out"))" test -s "$T_DIR/cl.ready" || t_done
	expect_field "nobody resets 3 connections to it, from 127.0.0.1:$U" success 3 \
		outsider "$T_NS" "$KBTOOL" rst 127.0.0.1 "$(cat "$T_DIR/cl.ready")" 3 from=127.0.0.1 "$U"
	kill "$CL"; wait "$CL"
	check "the listener accepted them (connect refused first)" grep -q '^connect=ECONNREFUSED accepted=3$' "$T_DIR/cl.out" ||
		log "listener: $(cat "$T_DIR/cl.out")"
fi
expect_metric 'kbreaker_tcp_resets_total{circuit_name="db5",direction="received"}' 0
expect_metric 'kbreaker_tcp_resets_total{circuit_name="db5",direction="sent"}' 0
expect_metric 'circuit_breaker_state{circuit_name="db5",state="closed"}' 1
# A simultaneous open runs the accepted sockets' callback on our own
# connect: it must not be marked (found by review), its reset counts.
log "a workload's connect to its own port (a simultaneous open) still counts, and its reset"
expect_field "connected to itself, then reset" success 1 \
	in_test "$KBTOOL" rst 127.0.0.1 "$U" 1 from=127.0.0.1 "$U"
expect_metric 'kbreaker_tcp_connects_total{circuit_name="db5",result="success"}' 1
expect_metric 'kbreaker_tcp_resets_total{circuit_name="db5",direction="sent"}' 1
expect_metric 'circuit_breaker_state{circuit_name="db5",state="closed"}' 1
start_listener 127.0.0.1 "$U" 60 "$T_DIR/listen5.out"
expect_field "the workload still connects to db5" success 1 in_test "$KBTOOL" connect 127.0.0.1 "$U" 1

log "netns: dbns is 127.0.0.1:$S in the workload's namespace only"
expect_field "refused by the other namespace's loopback" refused 3 in_cg_ns "$NS2" "$KBTOOL" connect 127.0.0.1 "$S" 3
expect_metric 'kbreaker_tcp_connects_total{circuit_name="dbns",result="refused"}' 0
expect_metric 'circuit_breaker_state{circuit_name="dbns",state="closed"}' 1
expect_field "refused in the workload's namespace" refused 3 in_test "$KBTOOL" connect 127.0.0.1 "$S" 3
wait_state dbns open 5
expect_metric 'kbreaker_tcp_connects_total{circuit_name="dbns",result="refused"}' 3
rm -f "$T_DIR/ready"
( exec ip netns exec "$NS2" "$KBTOOL" listen 127.0.0.1 "$S" 60 "$T_DIR/ready" > "$T_DIR/listen4.out" ) &
wait_until "$T_WAIT_S" test -e "$T_DIR/ready"
check "listener on $NS2's 127.0.0.1:$S is up" test -e "$T_DIR/ready" || t_done
expect_field "the other namespace's 127.0.0.1:$S is not blocked" success 2 in_cg_ns "$NS2" "$KBTOOL" connect 127.0.0.1 "$S" 2
expect_field "the workload's is" refused 1 in_test "$KBTOOL" connect 127.0.0.1 "$S" 1
expect_metric 'kbreaker_connects_blocked_total{circuit_name="dbns"}' 1

log "netns: two paths to one namespace are one destination"
agent_config dest: name=dbns host=127.0.0.1 port=$S netns=/run/netns/$T_NS \
	dest: name=alias host=127.0.0.1 port=$S netns=/run/netns//$T_NS > "$T_DIR/alias.yaml"
out=$("$KBREAKERD" --check-config -c "$T_DIR/alias.yaml" 2>&1); rc=$?
expect_eq "--check-config exit status" "$rc" 1
want="$T_DIR/alias.yaml:11:12: destination \"alias\": netns: /run/netns//$T_NS is the namespace of destination \"dbns\""
check "one error naming file, line, column and both destinations" [ "$out" != "${out#*"$want"}" ] ||
	log "got: $out"

# The agent reloads with no capability: another user's /proc/PID/ns/net is
# out of its reach then (found by review), and the error says what to use.
log "netns: a reload naming another user's /proc/PID/ns/net is rejected with the way out"
( exec ip netns exec "$NS2" setpriv --reuid=nobody --regid=nogroup --clear-groups sleep 60 ) &
SLEEPER=$!
sleeper_is_nobody() { [ "$(stat -c %U "/proc/$SLEEPER" 2>/dev/null)" = nobody ]; }
wait_until "$T_WAIT_S" sleeper_is_nobody
t_check $? "a process of nobody to name" || t_done
sed "s|^destinations:|&\n  - { name: other, host: 127.0.0.1, port: $S, netns: /proc/$SLEEPER/ns/net }|" \
	"$T_DIR/kb.yaml" > "$T_DIR/kb2.yaml"
mv "$T_DIR/kb2.yaml" "$T_DIR/kb.yaml"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reload_success' 0
check "the rejection names the file and says to use /run/netns" grep -q \
	"reload rejected, keeping the running configuration: $T_DIR/kb.yaml:[0-9]*:[0-9]*: destination .other.: netns: /proc/$SLEEPER/ns/net: permission denied (.*ip netns attach NAME PID" \
	"$T_DIR/agent.log"
expect_metric 'kbreaker_destinations' 5
kill "$SLEEPER"; wait "$SLEEPER" 2>/dev/null
t_done
