#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A deferred Fast Open connect (TCP_FASTOPEN_CONNECT, a cookie cached) is
# judged at connect() but sends its SYN at its first write, with no hook on
# the way. Staged while the breaker is closed, it reaches the destination
# once the breaker is open. fastopen_connect: ignore makes the option do
# nothing in the enforcement cgroup, so the SYN leaves at connect().
# - allow (the default): the gap, shown on real sockets, so this test can
#   tell the two apart: the staged socket's SYN, data in it, reaches the
#   forced_open destination;
# - ignore: in scope the option reads back 0 and connect() completes the
#   handshake while the breaker is closed; outside the cgroup Fast Open is
#   untouched; sendto(MSG_FASTOPEN) and new connects are refused while open;
#   an 8 KiB setsockopt (past a page) still works, a bad value still fails
#   as the kernel fails it; a reload does not change the setting (start
#   only); the agent gone, the option works again.
# - where the setsockopt program does not run (a 32-bit syscall; the option
#   set before the agent started), the connect hook refuses such a socket's
#   connect to an enforced destination, whatever the breaker's state, and
#   lets it through to a disabled one.
. "$(dirname "$0")/lib.sh"
t_setup
P=$(test_port 2)
P2=$((P + 1))
T_LISTEN="127.0.0.1:$(free_port)"
ip netns exec "$T_NS" sysctl -qw net.ipv4.tcp_fastopen=3 || need "cannot turn on TCP Fast Open"
REFUSED=ECONNREFUSED
[ -n "${KB_EPERM_IS_REFUSED:-}" ] && REFUSED=EPERM
dest=(dest: name=fo host=$T_ADDR port=$P)

for port in "$P" "$P2"; do
	ready="$T_DIR/tfo-ready-$port"
	ip netns exec "$T_NS" "$KBTOOL" tfolisten $T_ADDR "$port" 0 "$ready" > "$T_DIR/tfolisten-$port.out" &
	LISTENER=$!
	t_on_exit "kill $LISTENER 2>/dev/null"
	wait_until "$T_WAIT_S" ready_or_gone "$ready" "$LISTENER"
	check "Fast Open listener up on port $port" test -e "$ready" || t_done
done
# The cookie, cached in the namespace: later TCP_FASTOPEN_CONNECT sockets defer.
expect_field "sendto(MSG_FASTOPEN) from outside the cgroup, the cookie taken" echo 1 \
	ip netns exec "$T_NS" "$KBTOOL" tfosend $T_ADDR "$P"

mkfifo "$T_DIR/go"
exec 7<>"$T_DIR/go"
# stage NAME: a tfoconnect in the cgroup that has connected and waits for a
# line on fd 7 to write; its output in $T_DIR/NAME.out.
stage() {
	# Not bg_test: an asynchronous command's stdin is /dev/null unless redirected in it.
	( echo "$BASHPID" > "$T_CG/cgroup.procs" &&
	  exec ip netns exec "$T_NS" "$KBTOOL" tfoconnect $T_ADDR "$P" <"$T_DIR/go" >"$T_DIR/$1.out" ) &
	STAGED=$!
	wait_until "$T_WAIT_S" grep -qs "^setopt=" "$T_DIR/$1.out"
	STAGE_OUT=$(head -n1 "$T_DIR/$1.out")
}
# write_staged NAME: let it write; its second line in STAGE_OUT.
write_staged() {
	echo go >&7
	wait "$STAGED"
	STAGE_OUT=$(sed -n 2p "$T_DIR/$1.out")
}
# reload_forced_open N EXTRA...: fo forced_open by the Nth reload.
reload_forced_open() {
	local n=$1
	shift
	agent_config "$@" "${dest[@]}" mode=forced_open > "$T_DIR/kb.yaml"
	kill -HUP "$T_AGENT_PID"
	wait_metric 'kbreaker_config_reloads_total{result="success"}' "$n"
	wait_state fo forced_open
}

log "fastopen_connect: allow (the default): a socket staged while closed writes once open"
agent_config "${dest[@]}" > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
expect_eq "programs attached (connect4, connect6, sock_ops)" "$(attached_progs "$T_CG")" 3
stage allow
expect_eq "deferred: connect() returned, no SYN yet" "$STAGE_OUT" \
	"setopt=none opt=1 connect=none state=syn_sent"
reload_forced_open 1
expect_field "a new connect is refused" refused 1 in_test "$KBTOOL" connect $T_ADDR "$P" 1
write_staged allow
expect_eq "the staged SYN, data in it, reached the forced_open destination" "$STAGE_OUT" \
	"write=none echo=1 syn_data=1"
check "agent stops cleanly" stop_agent

log "fastopen_connect: ignore; a socket given the option before the start"
mkfifo "$T_DIR/go-pre"
exec 9<>"$T_DIR/go-pre"
( echo "$BASHPID" > "$T_CG/cgroup.procs" &&
  exec ip netns exec "$T_NS" "$KBTOOL" tfoconnect $T_ADDR "$P" wait <"$T_DIR/go-pre" >"$T_DIR/pre.out" ) &
PRE=$!
wait_until "$T_WAIT_S" grep -qs '^ready' "$T_DIR/pre.out"
check "the socket given the option before the start is ready" grep -q '^ready' "$T_DIR/pre.out" || t_done
agent_config fastopen_connect=ignore "${dest[@]}" dest: name=off host=$T_ADDR port=$P2 mode=disabled \
	> "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
expect_eq "programs attached (and setsockopt)" "$(attached_progs "$T_CG")" 4
printf 'go\ngo\n' >&9	# the second line would let a connect that got through end
wait "$PRE"
expect_eq "the option set before the start: connect() refused while closed" \
	"$(sed -n 2p "$T_DIR/pre.out")" "setopt=none opt=1 connect=$REFUSED state=none"
# Where the kernel serves no 32-bit calls (no IA-32 emulation), there is no such path.
REFUSED_N=1
if [ "$("$KBTOOL" compat)" = compat=yes ]; then
	REFUSED_N=2
	expect_eq "set by a 32-bit syscall, past the setsockopt program: connect() refused" \
		"$(in_test "$KBTOOL" tfoconnect $T_ADDR "$P" compat </dev/null)" \
		"setopt=none opt=1 connect=$REFUSED state=none"
	expect_eq "the same to a disabled destination: let through, deferred" \
		"$(in_test "$KBTOOL" tfoconnect $T_ADDR "$P2" compat </dev/null)" \
		"setopt=none opt=1 connect=none state=syn_sent"
	expect_eq "the same outside the cgroup: untouched" \
		"$(ip netns exec "$T_NS" "$KBTOOL" tfoconnect $T_ADDR "$P" compat </dev/null)" \
		"setopt=none opt=1 connect=none state=syn_sent"
else
	log "no 32-bit syscalls on this kernel: their three checks do not apply"
fi
expect_metric kbreaker_fastopen_connects_refused_total "$REFUSED_N"
expect_field "a bad value fails as the kernel fails it" setopt EINVAL \
	in_test "$KBTOOL" tfoconnect $T_ADDR "$P" val=2 </dev/null
out=$(echo go | ip netns exec "$T_NS" "$KBTOOL" tfoconnect $T_ADDR "$P")
expect_eq "outside the cgroup Fast Open is untouched" "$(tr '\n' ' ' <<<"$out")" \
	"setopt=none opt=1 connect=none state=syn_sent write=none echo=1 syn_data=1 "
stage ignore
expect_eq "in scope: the option does nothing, connect() made the handshake" "$STAGE_OUT" \
	"setopt=none opt=0 connect=none state=established"
expect_field "an 8 KiB setsockopt in scope" bigopt none in_test "$KBTOOL" bigopt
expect_field "sendto(MSG_FASTOPEN) while closed carries its data in the SYN" syn_data 1 \
	in_test "$KBTOOL" tfosend $T_ADDR "$P"
reload_forced_open 1 fastopen_connect=ignore
write_staged ignore
expect_eq "the staged socket was connected while closed: no SYN now" "$STAGE_OUT" \
	"write=none echo=1 syn_data=0"
expect_field "a TCP_FASTOPEN_CONNECT socket's connect() is refused" connect "$REFUSED" \
	in_test "$KBTOOL" tfoconnect $T_ADDR "$P" </dev/null
expect_field "sendto(MSG_FASTOPEN) is refused" send "$REFUSED" in_test "$KBTOOL" tfosend $T_ADDR "$P"
expect_metric kbreaker_fastopen_connect_ignored_total 2
# The staged socket, sendto(MSG_FASTOPEN) and the bad value's plain connect.
expect_metric 'kbreaker_tcp_connects_total{circuit_name="fo",result="success"}' 3
log "a reload to allow keeps ignore until a restart"
agent_config fastopen_connect=allow "${dest[@]}" > "$T_DIR/kb.yaml"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reloads_total{result="success"}' 2
check "the reload names fastopen_connect" log_has 'fastopen_connect changed; not applied until the next restart'
expect_field "still ignored" opt 0 in_test "$KBTOOL" tfoconnect $T_ADDR "$P" </dev/null
expect_metric kbreaker_fastopen_connect_ignored_total 3
expect_metric kbreaker_fastopen_connects_refused_total "$REFUSED_N"
check "agent stops cleanly" stop_agent
expect_eq "programs left on the cgroup" "$(attached_progs "$T_CG")" 0
expect_field "the agent gone, the option works again" opt 1 \
	in_test "$KBTOOL" tfoconnect $T_ADDR "$P" </dev/null
t_done
