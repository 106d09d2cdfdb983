#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Per-workload attribution and per-workload breakers (issue 15). Workloads
# are cgroups below the test's own (the enforcement cgroup), cut at depth 1.
#  a) breaker: per_workload: workload A's 3 refused connects open A's breaker
#     only; with the listener up, B gets through and A is refused by the hook.
#  b) breaker: shared: A's 3 refused connects open the one breaker; B is
#     refused by the hook too; blocked counted per workload.
#  c) a process moved from A to B between its connects: its connects count
#     for the cgroup it was in at each connect.
#  e) kbreakerctl status --by-workload and /status show each workload's row.
#  f) a restart (state_dir): A's per_workload breaker comes back open, every
#     count as it was; the hook still refuses A, B still connects.
#  g) A's cgroup removed: its label comes back within seconds; a new cgroup C
#     takes it under its own name, with a breaker of its own (closed) and
#     counts of its own, while the destination's counts keep A's.
#  h) a connect that fails before its SYN (no route) leaves only the record
#     the hook filed, and counts nowhere, even when the same socket then
#     connects elsewhere; the agent deletes such records once stale, and no
#     other (records planted in the pinned kb_conn, with bpftool).
#  i) a socket that connected to pw (its per-workload breaker keeps it in
#     the socket's storage), disconnected with AF_UNSPEC, then connected to
#     a listener kbreaker does not watch, which resets it: that reset is
#     not pw's.
#  d) 1,000 cgroups, workloads max 50: 50 labelled, 950 folded into "other",
#     nothing lost (a fresh agent, so the first 50 seen are the labelled ones).
#  k) sockets made in a workload, each connected from its own cgroup outside
#     the enforcement cgroup (found by review): "other", no label taken, so
#     outsiders cannot crowd workloads out of theirs.
#  l) workloads that connect and go with no scrape or /status in between
#     (found by review: such labels waited for the once-a-minute walk):
#     their labels come back within seconds, named by the agent's own
#     looks, and a new cgroup takes one under its own name.
#  m) a workload's process moved to another cgroup with 5 connections open,
#     its cgroup removed, its label taken by a new cgroup V (found by
#     review: a delegated sub-cgroup's owner opened another workload's
#     breaker so): the aborts of those connections afterwards count as
#     other's, open other's breaker (resets are failures here), and V's
#     stays closed.
# Every count is exact; the independent truths are kbtool's own tallies, the
# listeners' accept counts and /proc/PID/cgroup.
. "$(dirname "$0")/lib.sh"
KBREAKERCTL=${KBREAKERCTL:-$(dirname "$KBREAKERD")/kbreakerctl}
[ -x "$KBREAKERCTL" ] || need "no $KBREAKERCTL (make all builds it)"
command -v jq >/dev/null || need "jq not installed (make deps)"
command -v nsenter >/dev/null || need "nsenter (util-linux) not installed"
t_setup

PB=$(test_port 10)
P_PW=$PB P_SH=$((PB + 1)) P_MV=$((PB + 2)) P_WIDE=$((PB + 3)) P_RE=$((PB + 4)) P_Y=$((PB + 5))
P_Z=$((PB + 6)) P_OUT=$((PB + 7)) P_LAB=$((PB + 8)) P_ST=$((PB + 9))
T_LISTEN="127.0.0.1:$(free_port)"
ctl() { "$KBREAKERCTL" --url "http://$T_LISTEN" "$@"; }
RESULTS="success refused timeout unreachable error cancelled"

# msum FILE FAMILY [LABEL=VALUE...]: the sum of FAMILY's samples in the
# scrape FILE whose labels include every LABEL="VALUE" given (in any order);
# "absent" when none does.
msum() {
	local f=$1 n=$2
	shift 2
	awk -v n="$n" -v want="$*" '
	function parse(s,   m, e) {
		split("", L)
		while (match(s, /[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"/)) {
			m = substr(s, RSTART, RLENGTH); e = index(m, "=")
			L[substr(m, 1, e - 1)] = substr(m, e + 2, length(m) - e - 2)
			s = substr(s, RSTART + RLENGTH)
		}
	}
	BEGIN { nw = split(want, W, " ") }
	/^#/ { next }
	{
		name = $1; sub(/\{.*/, "", name)
		if (name != n) next
		lab = ""
		if (index($1, "{")) { lab = $1; sub(/^[^{]*\{/, "", lab); sub(/\}$/, "", lab) }
		parse(lab)
		for (i = 1; i <= nw; i++) {
			k = W[i]; v = k; sub(/=.*/, "", k); sub(/^[^=]*=/, "", v)
			if (!(k in L) || L[k] != v) next
		}
		s += $2; f = 1
	}
	END { if (f) printf "%.0f\n", s; else print "absent" }' "$f"
}
# m0 FILE FAMILY [LABEL=VALUE...]: msum with "absent" as 0 (a zero counter
# may or may not be exported); for values that must be 0 or are sums.
m0() {
	local v
	v=$(msum "$@")
	[ "$v" = absent ] && v=0
	echo "$v"
}
# mlabels FILE FAMILY LABEL: the distinct values of LABEL in FAMILY, sorted, one a line.
mlabels() {
	awk -v n="$2" -v l="$3" '/^#/ { next }
	{ name = $1; sub(/\{.*/, "", name); if (name != n) next
	  if (match($1, "[{,]" l "=\"[^\"]*\"")) { v = substr($1, RSTART + length(l) + 3, RLENGTH - length(l) - 4); print v } }' \
		"$1" | sort -u
}
snap() { scrape > "$T_DIR/m"; }
# wl_state CIRCUIT WORKLOAD STATE: whether that workload's breaker is in STATE now (not a check).
wl_state() {
	snap && [ "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name="$1" workload="$2" state="$3")" = 1 ]
}
# sums_match CIRCUIT: for every result, the destination's kbreaker_tcp_connects_total
# equals the sum over workloads; blocked too. Checks on the last snapshot.
sums_match() {
	local r
	for r in $RESULTS; do
		expect_eq "$1 $r: destination = sum over workloads" \
			"$(m0 "$T_DIR/m" kbreaker_tcp_connects_total circuit_name="$1" result="$r")" \
			"$(m0 "$T_DIR/m" kbreaker_workload_tcp_connects_total circuit_name="$1" result="$r")"
	done
	expect_eq "$1 blocked: destination = sum over workloads" \
		"$(m0 "$T_DIR/m" kbreaker_connects_blocked_total circuit_name="$1")" \
		"$(m0 "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name="$1")"
}
promtool_check() {
	command -v "$PROMTOOL" >/dev/null || return 0
	check "promtool check metrics ($1)" sh -c '"$1" check metrics < "$2" > "$3" 2>&1' sh \
		"$PROMTOOL" "$T_DIR/m" "$T_DIR/promtool.out" || sed 's/^/      /' "$T_DIR/promtool.out"
}
# cg_of PID: the process's cgroup, relative to the test's ("-" when gone).
cg_of() {
	local c
	c=$(sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null) || { echo -; return; }
	c=${c#"${T_CG#"$CG2_ROOT"}"}
	echo "${c#/}"
}

t_subcg A B
STATE=/sys/fs/bpf/kb-test-workloads-$$
agent_config poll_interval=100ms state_dir=$STATE 'workloads={depth: 1, max: 50}' \
	defaults: mode=enforce consecutive_failures=3 open_duration=1h \
	dest: name=pw host=$T_ADDR port=$P_PW breaker=per_workload \
	dest: name=sh host=$T_ADDR port=$P_SH breaker=shared \
	dest: name=move host=$T_ADDR port=$P_MV \
	dest: name=far host=192.0.2.1 port=80 \
	dest: name=reuse host=$T_ADDR port=$P_RE > "$T_DIR/kb.yaml"
t_on_exit '"$KBREAKERD" --clear-state -c "$T_DIR/kb.yaml" >/dev/null'
start_agent "$T_DIR/kb.yaml"

log "a, b) A: 3 refused connects to pw (per_workload) and to sh (shared); nothing listens"
expect_field "A -> pw: refused by the kernel" refused 3 in_cg A "$KBTOOL" connect $T_ADDR "$P_PW" 3
expect_field "A -> sh: refused by the kernel" refused 3 in_cg A "$KBTOOL" connect $T_ADDR "$P_SH" 3
wait_until "$T_WAIT_S" wl_state pw A open
check "pw: A's breaker open" wl_state pw A open
wait_state sh open
start_listener $T_ADDR "$P_PW" "$T_DIR/l_pw"; L_PW=$LISTENER
start_listener $T_ADDR "$P_SH" "$T_DIR/l_sh"; L_SH=$LISTENER
log "a) listeners up: B reaches pw, A is refused by the hook"
expect_field "B -> pw: connects" success 1 in_cg B "$KBTOOL" connect $T_ADDR "$P_PW" 1
expect_field "A -> pw: refused by the hook" refused 1 in_cg A "$KBTOOL" connect $T_ADDR "$P_PW" 1
log "   A's refusal took $(field max_us "$OUT") us"
log "b) sh is shared: B and A are both refused by the hook"
expect_field "B -> sh: refused by the hook" refused 1 in_cg B "$KBTOOL" connect $T_ADDR "$P_SH" 1
expect_field "A -> sh: refused by the hook" refused 1 in_cg A "$KBTOOL" connect $T_ADDR "$P_SH" 1

log "c) one process: 2 connects from A, moved to B, 3 more"
start_listener $T_ADDR "$P_MV" "$T_DIR/l_mv"; L_MV=$LISTENER
mkfifo "$T_DIR/mv.fifo"
# Read-write: opening it blocks neither side, and a writer with a reader
# of its own never gets SIGPIPE if kbtool is gone.
exec {MVW}<>"$T_DIR/mv.fifo"
# kbtool must not hold a writer itself, or it never sees EOF.
( exec {MVW}>&- && echo "$BASHPID" > "$T_CG/A/cgroup.procs" &&
  exec ip netns exec "$T_NS" "$KBTOOL" lconnect $T_ADDR "$P_MV" < "$T_DIR/mv.fifo" > "$T_DIR/mv.out" ) &
MV=$!
# The subshell makes mv.out: until it has, the count is no line at all.
mv_lines() { [ -e "$T_DIR/mv.out" ] && [ "$(wc -l < "$T_DIR/mv.out")" = "$1" ]; }
# mv_connect N: one more connect (the Nth); a check that it succeeded.
mv_connect() {
	echo go >&"$MVW"
	wait_until "$T_WAIT_S" mv_lines "$1"
	expect_eq "moved process: connect $1 succeeded" \
		"$(sed -n "${1}p" "$T_DIR/mv.out" | grep -o 'success=[0-9]*')" success=1
}
mv_connect 1
mv_connect 2
expect_eq "moved process ($MV) in A" "$(cg_of "$MV")" A
echo "$MV" > "$T_CG/B/cgroup.procs"
expect_eq "moved process ($MV) in B" "$(cg_of "$MV")" B
mv_connect 3
mv_connect 4
mv_connect 5
exec {MVW}>&-
mv_gone() { ! kill -0 "$MV" 2>/dev/null; }
if wait_until "$T_WAIT_S" mv_gone; then
	check "moved process ended at EOF" wait "$MV"
else
	t_check 1 "moved process still runs after EOF"
	kill "$MV"
fi

kill "$L_PW" "$L_SH" "$L_MV"; wait "$L_PW" "$L_SH" "$L_MV" 2>/dev/null
expect_eq "pw listener accepted (B's only)" "$(cat "$T_DIR/l_pw")" accepted=1
expect_eq "sh listener accepted (none)" "$(cat "$T_DIR/l_sh")" accepted=0
expect_eq "move listener accepted" "$(cat "$T_DIR/l_mv")" accepted=5

# Successes do not wake the agent: wait until every outcome is in, then
# compare one snapshot.
W=kbreaker_workload_tcp_connects_total
all_in() {
	snap && [ "$(msum "$T_DIR/m" $W circuit_name=move workload=B result=success)" = 3 ] &&
		[ "$(msum "$T_DIR/m" $W circuit_name=pw workload=B result=success)" = 1 ] &&
		[ "$(msum "$T_DIR/m" kbreaker_connects_blocked_total circuit_name=sh)" = 2 ]
}
wait_until "$T_WAIT_S" all_in
log "a) per_workload: counts and states"
expect_eq "pw A refused" "$(msum "$T_DIR/m" $W circuit_name=pw workload=A result=refused)" 3
expect_eq "pw A success" "$(m0 "$T_DIR/m" $W circuit_name=pw workload=A result=success)" 0
expect_eq "pw B success" "$(msum "$T_DIR/m" $W circuit_name=pw workload=B result=success)" 1
expect_eq "pw B refused" "$(m0 "$T_DIR/m" $W circuit_name=pw workload=B result=refused)" 0
expect_eq "pw A blocked" \
	"$(msum "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=pw workload=A)" 1
expect_eq "pw B blocked" \
	"$(m0 "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=pw workload=B)" 0
for s in open closed; do
	expect_eq "pw A state $s" "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=pw workload=A state=$s)" \
		"$([ $s = open ] && echo 1 || echo 0)"
	expect_eq "pw B state $s" "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=pw workload=B state=$s)" \
		"$([ $s = closed ] && echo 1 || echo 0)"
done
expect_eq "pw A: one state at a time" \
	"$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=pw workload=A)" 1
expect_eq "pw destination refused" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=pw result=refused)" 3
expect_eq "pw destination success" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=pw result=success)" 1
expect_eq "pw destination blocked" "$(msum "$T_DIR/m" kbreaker_connects_blocked_total circuit_name=pw)" 1
sums_match pw
log "b) shared: counts"
expect_eq "sh A refused" "$(msum "$T_DIR/m" $W circuit_name=sh workload=A result=refused)" 3
expect_eq "sh B connects (all results)" "$(m0 "$T_DIR/m" $W circuit_name=sh workload=B)" 0
expect_eq "sh A blocked" \
	"$(msum "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=sh workload=A)" 1
expect_eq "sh B blocked" \
	"$(msum "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=sh workload=B)" 1
expect_eq "sh destination blocked" "$(msum "$T_DIR/m" kbreaker_connects_blocked_total circuit_name=sh)" 2
expect_eq "sh has no workload breakers" "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=sh)" absent
sums_match sh
log "c) moved process: 2 connects counted for A, 3 for B"
expect_eq "move A success" "$(msum "$T_DIR/m" $W circuit_name=move workload=A result=success)" 2
expect_eq "move B success" "$(msum "$T_DIR/m" $W circuit_name=move workload=B result=success)" 3
expect_eq "move destination success" \
	"$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=move result=success)" 5
sums_match move
expect_eq "workload labels" "$(mlabels "$T_DIR/m" $W workload | tr '\n' ' ')" "A B "
expect_eq "kbreaker_workloads" "$(msum "$T_DIR/m" kbreaker_workloads)" 2
expect_eq "kbreaker_workloads_folded" "$(msum "$T_DIR/m" kbreaker_workloads_folded)" 0
promtool_check "two workloads"

log "e) /status and kbreakerctl status --by-workload"
# name, breaker, then per workload: workload, state, failures, blocked, connects.
STATUS_WANT='[["pw","per_workload",[["A","open",3,1,3],["B","closed",0,0,1]]],'
STATUS_WANT+='["sh","shared",[["A",null,3,1,3],["B",null,0,1,0]]],'
STATUS_WANT+='["move","shared",[["A",null,0,0,2],["B",null,0,0,3]]],["far","shared",[]],["reuse","shared",[]]]'
http_get /status > "$T_DIR/status.json"
expect_eq "/status workloads" "$(jq -c .workloads "$T_DIR/status.json")" \
	'{"depth":1,"max":50,"labelled":2,"folded":0}'
expect_eq "/status destinations' workloads" "$(jq -c '[.destinations[] | [.name, .breaker,
	[.workloads[]? | [.workload, .state, .failures, .blocked, (.connects | add)]]]]' "$T_DIR/status.json")" \
	"$STATUS_WANT"
ctl status --by-workload > "$T_DIR/byw.txt" 2> "$T_DIR/byw.err"
expect_eq "status --by-workload exit status" "$?" 0 || sed 's/^/      /' "$T_DIR/byw.err"
expect_eq "status --by-workload header" "$(head -n 1 "$T_DIR/byw.txt" | tr -s ' ')" \
	"DESTINATION WORKLOAD BREAKER STATE CONNECTS FAILURES BLOCKED"
ROWS="pw A per_workload open 3 3 1;pw B per_workload closed 1 0 0;"
ROWS+="sh A shared - 3 3 1;sh B shared - 0 0 1;move A shared - 2 0 0;move B shared - 3 0 0;"
expect_eq "status --by-workload rows" "$(awk 'NR > 1 { $1 = $1; print }' "$T_DIR/byw.txt" | tr '\n' ';')" \
	"$ROWS" || sed 's/^/      /' "$T_DIR/byw.txt"

log "h) a connect that never sends its SYN; stale records swept"
# 192.0.2.1 (TEST-NET-1) has no route in the namespace: connect() fails
# with ENETUNREACH after the hook filed the connect and before TCP_CONNECT_CB.
expect_field "A -> far: no route" unreachable 1 in_cg A "$KBTOOL" connect 192.0.2.1 80 1
# One socket whose first connect asked for its callbacks: refused by reuse,
# then no route to far (the hook files it), then connected to a listener
# kbreaker does not watch. That success is not far's.
start_listener $T_ADDR "$P_Y" "$T_DIR/l_y"; L_Y=$LISTENER
expect_eq "one socket: reuse, far, then an unwatched listener" \
	"$(in_cg A "$KBTOOL" sconnect $T_ADDR "$P_RE" 192.0.2.1 80 $T_ADDR "$P_Y")" \
	"ECONNREFUSED ENETUNREACH none"
reuse_in() { snap; [ "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=reuse result=refused)" = 1 ]; }
check "reuse: its refused connect counted" wait_until "$T_WAIT_S" reuse_in
expect_eq "reuse: every connect" "$(m0 "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=reuse)" 1
expect_eq "far: no connect counted" "$(m0 "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=far)" 0
kill "$L_Y"; wait "$L_Y" 2>/dev/null
expect_eq "unwatched listener accepted" "$(cat "$T_DIR/l_y")" accepted=1
NAMED=4294967295
# conn_dump: kb_conn's records as "key syn_ns retrans" lines, sorted.
conn_dump() {
	bpftool -j map dump pinned "$STATE/kb_conn" |
		jq -r '.[] | (.formatted // .) | "\(.key) \(.value.syn_ns) \(.value.retrans)"' | sort
}
conn_dump > "$T_DIR/conn"
expect_eq "kb_conn: every connect with an outcome gone, the fresh socket's unrouted one kept, named" \
	"$(awk '{ print $3 }' "$T_DIR/conn" | tr '\n' ' ')" "$NAMED " || sed 's/^/      /' "$T_DIR/conn"
# le BYTES N: N as BYTES little-endian hex bytes, for bpftool.
le() { local i; for ((i = 0; i < $1; i++)); do printf '%02x ' $(($2 >> (8 * i) & 255)); done; }
# plant KEY SYN_NS RETRANS: a record for a socket cookie no socket has (2^52 and up).
plant() {
	bpftool map update pinned "$STATE/kb_conn" key hex $(le 8 "$1") \
		value hex $(le 8 "$2") $(le 4 0) $(le 4 "$3") $(le 8 0)
}
K=$((1 << 52))
read -r UP _ < /proc/uptime	# boot time, in 1/100 s: never behind bpf_ktime_get_ns
HOUR_NS=$((10#${UP%.*} * 1000000000 + 10#${UP#*.} * 10000000 + 3600000000000))
plant $((K + 1)) 1 $NAMED	# named, filed at boot: stale
plant $((K + 2)) 1 0		# a connect under way since boot: not the sweep's
plant $((K + 3)) "$HOUR_NS" $NAMED	# named, its time an hour ahead: young for an hour
gone_k1() { ! conn_dump | grep -q "^$((K + 1)) "; }
# The agent looks every 10 s.
check "the stale named record swept" wait_until $((2 * T_WAIT_S)) gone_k1
conn_dump > "$T_DIR/conn"
expect_eq "kb_conn after the sweep" "$(awk '$1 >= '$K' { print $1 - '$K', $3 }' "$T_DIR/conn" | tr '\n' ' ')" \
	"2 0 3 $NAMED " || sed 's/^/      /' "$T_DIR/conn"
for k in $((K + 2)) $((K + 3)); do
	bpftool map delete pinned "$STATE/kb_conn" key hex $(le 8 $k)
done

agent_alive "after the two-workload scenarios"
stop_agent; expect_eq "agent exit status" "$?" 0

log "f) restart with state_dir: A's breaker open again, every count as it was"
# The counters and breakers of every circuit, workload and destination alike.
kept() {
	grep -E '^(kbreaker_workload_tcp_connects_total|kbreaker_workload_connects_blocked_total|circuit_breaker_workload_state|kbreaker_tcp_connects_total|kbreaker_connects_blocked_total)\{' "$1" |
		grep -v ' 0$' | sort
}
kept "$T_DIR/m" > "$T_DIR/kept.before"
start_agent "$T_DIR/kb.yaml"
snap; kept "$T_DIR/m" > "$T_DIR/kept.after"
expect_eq "counts and states after the restart" "$(diff "$T_DIR/kept.before" "$T_DIR/kept.after" | wc -l)" 0 ||
	diff "$T_DIR/kept.before" "$T_DIR/kept.after" | sed 's/^/      /'
check "pw: A's breaker open after the restart" wl_state pw A open
check "pw: B's breaker closed after the restart" wl_state pw B closed
start_listener $T_ADDR "$P_PW" "$T_DIR/l_pw2"; L_PW=$LISTENER
expect_field "A -> pw after the restart: refused by the hook" refused 1 in_cg A "$KBTOOL" connect $T_ADDR "$P_PW" 1
expect_field "B -> pw after the restart: connects" success 1 in_cg B "$KBTOOL" connect $T_ADDR "$P_PW" 1
kill "$L_PW"; wait "$L_PW" 2>/dev/null
expect_eq "pw listener accepted after the restart (B's only)" "$(cat "$T_DIR/l_pw2")" accepted=1
restart_in() {
	snap && [ "$(msum "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=pw workload=A)" = 2 ] &&
		[ "$(msum "$T_DIR/m" $W circuit_name=pw workload=B result=success)" = 2 ]
}
wait_until "$T_WAIT_S" restart_in
expect_eq "pw A blocked, both runs" \
	"$(msum "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=pw workload=A)" 2
expect_eq "pw B success, both runs" "$(msum "$T_DIR/m" $W circuit_name=pw workload=B result=success)" 2
expect_eq "pw destination blocked, both runs" "$(msum "$T_DIR/m" kbreaker_connects_blocked_total circuit_name=pw)" 2
sums_match pw
agent_alive "after the restart"

log "g) A's cgroup removed: its label comes back, and C takes it"
check "A's cgroup is empty" eval '! cg_populated "$T_CG/A"'
rmdir "$T_CG/A"; expect_eq "rmdir A" "$?" 0
a_gone() {
	snap && [ "$(msum "$T_DIR/m" kbreaker_workloads_reclaimed_total)" = 1 ] &&
		[ "$(msum "$T_DIR/m" kbreaker_workloads)" = 1 ]
}
wait_until "$T_WAIT_S" a_gone
expect_eq "labels once A is gone" "$(mlabels "$T_DIR/m" $W workload | tr '\n' ' ')" "B "
expect_eq "A's breaker gone" "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=pw workload=A)" absent
t_subcg C
start_listener $T_ADDR "$P_PW" "$T_DIR/l_pw3"; L_PW=$LISTENER
expect_field "C -> pw: connects (A's label, not A's breaker)" success 1 in_cg C "$KBTOOL" connect $T_ADDR "$P_PW" 1
kill "$L_PW"; wait "$L_PW" 2>/dev/null
expect_eq "pw listener accepted C's" "$(cat "$T_DIR/l_pw3")" accepted=1
c_in() { snap && [ "$(msum "$T_DIR/m" $W circuit_name=pw workload=C result=success)" = 1 ]; }
wait_until "$T_WAIT_S" c_in
expect_eq "labels with C" "$(mlabels "$T_DIR/m" $W workload | tr '\n' ' ')" "B C "
expect_eq "kbreaker_workloads with C" "$(msum "$T_DIR/m" kbreaker_workloads)" 2
expect_eq "pw C success" "$(msum "$T_DIR/m" $W circuit_name=pw workload=C result=success)" 1
expect_eq "pw C refused" "$(m0 "$T_DIR/m" $W circuit_name=pw workload=C result=refused)" 0
expect_eq "pw C blocked" "$(m0 "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=pw workload=C)" 0
expect_eq "pw C state closed" "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=pw workload=C state=closed)" 1
expect_eq "pw B success, untouched" "$(msum "$T_DIR/m" $W circuit_name=pw workload=B result=success)" 2
# The destination's own families count every workload that ever was.
expect_eq "pw destination refused (A's)" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=pw result=refused)" 3
expect_eq "pw destination success" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=pw result=success)" 3
expect_eq "pw destination blocked (A's)" "$(msum "$T_DIR/m" kbreaker_connects_blocked_total circuit_name=pw)" 2
expect_eq "kbreaker_workloads_folded" "$(msum "$T_DIR/m" kbreaker_workloads_folded)" 0
promtool_check "a label given back"
agent_alive "after a label came back"

log "i) one socket: pw, then a listener kbreaker does not watch, which resets it"
start_listener $T_ADDR "$P_PW" "$T_DIR/l_pw4"; L_PW=$LISTENER
start_listener $T_ADDR "$P_Z" "$T_DIR/l_z" --rst; L_Z=$LISTENER
RX0=$(m0 "$T_DIR/m" kbreaker_tcp_resets_total circuit_name=pw direction=received)
out=$(in_cg C "$KBTOOL" reuse $T_ADDR "$P_PW" $T_ADDR "$P_Z")
# The listener resets the connection once it has accepted it, after the
# handshake: a client slower than the listener sees that reset from
# connect() itself rather than from its read (seen in a guest under TCG).
[ "$out" = "none eof none ECONNRESET" ] && out="none eof none none ECONNRESET"
expect_eq "one socket: pw, its end, AF_UNSPEC, the resetting listener" "$out" "none eof none none ECONNRESET"
kill "$L_PW" "$L_Z"; wait "$L_PW" "$L_Z" 2>/dev/null
expect_eq "both listeners accepted it" "$(cat "$T_DIR/l_pw4") $(cat "$T_DIR/l_z")" "accepted=1 accepted=1"
c_twice() { snap && [ "$(msum "$T_DIR/m" $W circuit_name=pw workload=C result=success)" = 2 ]; }
check "pw: C's second connect counted" wait_until "$T_WAIT_S" c_twice
expect_eq "pw: no reset received (the one received was the unwatched listener's)" \
	"$(m0 "$T_DIR/m" kbreaker_tcp_resets_total circuit_name=pw direction=received)" "$RX0"
expect_eq "pw destination success" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=pw result=success)" 4
agent_alive "after the reused socket"

log "j) a cgroup whose name is not UTF-8: its label is, in /metrics and /status"
BAD=$'bad\xff\xfename'
t_subcg "$BAD"
expect_field "sh (open) refuses it" refused 1 in_cg "$BAD" "$KBTOOL" connect $T_ADDR "$P_SH" 1
bad_seen() { snap && grep -q 'workload="bad??name"' "$T_DIR/m"; }
check "its label: bad??name" wait_until "$T_WAIT_S" bad_seen
expect_eq "sh: blocked for bad??name" \
	"$(msum "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=sh workload='bad??name')" 1
promtool_check "a cgroup name not UTF-8"
http_get /status > "$T_DIR/status.json"
check "/status is UTF-8" iconv -f UTF-8 -t UTF-8 -o /dev/null "$T_DIR/status.json"
check "/status is JSON, with the label" \
	sh -c 'jq -e "[.destinations[].workloads[]?.workload] | index(\"bad??name\")" "$1" >/dev/null' sh "$T_DIR/status.json"
stop_agent; expect_eq "agent exit status after the restart" "$?" 0

log "d) 1,000 workloads, max 50: a fresh agent"
N=1000 MAX=50
mapfile -t CGS < <(seq -f 'w%04g' 1 $N)
t0=$SECONDS
t_subcg "${CGS[@]}"
log "   $N cgroups made in $((SECONDS - t0)) s"
agent_config poll_interval=100ms "workloads={depth: 1, max: $MAX}" \
	defaults: mode=enforce consecutive_failures=1000000 open_duration=1h \
	dest: name=wide host=$T_ADDR port=$P_WIDE breaker=per_workload > "$T_DIR/kb-wide.yaml"
start_agent "$T_DIR/kb-wide.yaml"
start_listener $T_ADDR "$P_WIDE" "$T_DIR/l_wide"; L_WIDE=$LISTENER
t0=$SECONDS
# One connect from a process in each cgroup (a child of kbtool that joins
# it first), 50 at a time. nsenter, not ip netns exec: the children must see
# the host's cgroup2 mount, which ip netns exec's fresh /sys hides.
OUT=$(printf "$T_CG/%s\n" "${CGS[@]}" | ( echo "$BASHPID" > "$T_CG/cgroup.procs" &&
	exec nsenter --net="/run/netns/$T_NS" "$KBTOOL" cgconnect $T_ADDR "$P_WIDE" 50 ))
log "   $N connects from $N cgroups in $((SECONDS - t0)) s"
expect_eq "kbtool: connects from the $N cgroups" "$OUT" \
	"success=$N refused=0 timeout=0 unreachable=0 eperm=0 other=0 nocg=0"
kill "$L_WIDE"; wait "$L_WIDE" 2>/dev/null
expect_eq "wide listener accepted" "$(cat "$T_DIR/l_wide")" accepted=$N
wide_in() { snap && [ "$(msum "$T_DIR/m" $W circuit_name=wide)" = $N ]; }
wait_until "$T_WAIT_S" wide_in
expect_eq "sum over workloads" "$(msum "$T_DIR/m" $W circuit_name=wide)" $N
expect_eq "sum over workloads of successes" "$(msum "$T_DIR/m" $W circuit_name=wide result=success)" $N
expect_eq "destination connects" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=wide)" $N
expect_eq "destination successes" \
	"$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=wide result=success)" $N
sums_match wide
expect_eq "kbreaker_workloads" "$(msum "$T_DIR/m" kbreaker_workloads)" $MAX
expect_eq "kbreaker_workloads_folded" "$(msum "$T_DIR/m" kbreaker_workloads_folded)" $((N - MAX))
mlabels "$T_DIR/m" $W workload > "$T_DIR/wide.labels"
expect_eq "distinct workload labels: $MAX and other" "$(wc -l < "$T_DIR/wide.labels")" $((MAX + 1))
expect_eq "other among them" "$(grep -cx other "$T_DIR/wide.labels")" 1
expect_eq "the others are the cgroups' names" "$(grep -vx other "$T_DIR/wide.labels" | grep -cE '^w[0-9]{4}$')" $MAX
expect_eq "labels of every workload family" \
	"$(cat <(mlabels "$T_DIR/m" kbreaker_workload_connects_blocked_total workload) \
		<(mlabels "$T_DIR/m" circuit_breaker_workload_state workload) "$T_DIR/wide.labels" | sort -u | wc -l)" $((MAX + 1))
expect_eq "other: successes" "$(msum "$T_DIR/m" $W circuit_name=wide workload=other result=success)" $((N - MAX))
expect_eq "labelled workloads with exactly 1 success" "$(grep -vx other "$T_DIR/wide.labels" | while read -r w; do
	msum "$T_DIR/m" $W circuit_name=wide workload="$w" result=success; done | grep -cx 1)" $MAX
expect_eq "workload breakers closed (labelled and other)" \
	"$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=wide state=closed)" $((MAX + 1))
expect_eq "workload breakers in any state" \
	"$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=wide)" $((MAX + 1))
promtool_check "$N workloads"
expect_eq "/status workloads" "$(http_get /status | jq -c .workloads)" \
	"{\"depth\":1,\"max\":$MAX,\"labelled\":$MAX,\"folded\":$((N - MAX))}"
agent_alive "after $N workloads"

log "k) sockets of workload svc connected from 3 cgroups outside the enforcement cgroup"
stop_agent
OUTCG="$T_CG-out"
mkdir -p "$OUTCG/o1" "$OUTCG/o2" "$OUTCG/o3"
t_on_exit 'rmdir "$OUTCG/o1" "$OUTCG/o2" "$OUTCG/o3" "$OUTCG"'
t_subcg svc
agent_config poll_interval=100ms "workloads={depth: 1, max: 2}" \
	defaults: mode=enforce consecutive_failures=3 open_duration=1h \
	dest: name=out host=$T_ADDR port=$P_OUT breaker=per_workload > "$T_DIR/kb-out.yaml"
start_agent "$T_DIR/kb-out.yaml"
start_listener $T_ADDR "$P_OUT" "$T_DIR/l_out"; L_OUT=$LISTENER
# svc first: the hook has found the workload level by then (found by review:
# the level found for svc was taken for the outsiders too).
expect_field "svc's own connect" success 1 in_cg svc "$KBTOOL" connect $T_ADDR "$P_OUT" 1
OUT=$(printf '%s\n' "$OUTCG/o1" "$OUTCG/o2" "$OUTCG/o3" | ( echo "$BASHPID" > "$T_CG/svc/cgroup.procs" &&
	exec nsenter --net="/run/netns/$T_NS" "$KBTOOL" mvconnect $T_ADDR "$P_OUT" 1 ))
expect_eq "kbtool: connects from outside" "$OUT" \
	"success=3 refused=0 timeout=0 unreachable=0 eperm=0 other=0 nocg=0"
out_in() { snap && [ "$(msum "$T_DIR/m" $W circuit_name=out result=success)" = 4 ]; }
wait_until "$T_WAIT_S" out_in
expect_eq "destination successes" \
	"$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=out result=success)" 4
expect_eq "the outsiders' under other" "$(msum "$T_DIR/m" $W circuit_name=out workload=other result=success)" 3
expect_eq "svc's under its name" "$(msum "$T_DIR/m" $W circuit_name=out workload=svc result=success)" 1
expect_eq "labels: svc alone" "$(mlabels "$T_DIR/m" $W workload | tr '\n' ' ')" "other svc "
expect_eq "kbreaker_workloads" "$(msum "$T_DIR/m" kbreaker_workloads)" 1
expect_eq "kbreaker_workloads_folded" "$(msum "$T_DIR/m" kbreaker_workloads_folded)" 0
kill "$L_OUT"; wait "$L_OUT" 2>/dev/null
expect_eq "out listener accepted" "$(cat "$T_DIR/l_out")" accepted=4

log "l) workloads that connect and go, no scrape in between: their labels come back"
stop_agent
t_subcg U1 U2
agent_config poll_interval=100ms "workloads={depth: 1, max: 4}" \
	defaults: mode=enforce consecutive_failures=3 open_duration=1h \
	dest: name=lab host=$T_ADDR port=$P_LAB breaker=per_workload > "$T_DIR/kb-lab.yaml"
start_agent "$T_DIR/kb-lab.yaml"
start_listener $T_ADDR "$P_LAB" "$T_DIR/l_lab"; L_LAB=$LISTENER
ID_U1=$(stat -c %i "$T_CG/U1")
expect_field "U1's connect" success 1 in_cg U1 "$KBTOOL" connect $T_ADDR "$P_LAB" 1
expect_field "U2's connect" success 1 in_cg U2 "$KBTOOL" connect $T_ADDR "$P_LAB" 1
rmdir "$T_CG/U1"; expect_eq "rmdir U1" "$?" 0
# No scrape, no /status: only the agent's own looks name the labels. U1
# went at once: named U1, or cgroup-ID when it was gone at the first look.
u1_gone() { log_has "msg=\"workload gone\" workload=(U1|cgroup-$ID_U1) index=[0-9]"; }
check "U1's label given back, without a scrape" wait_until "$T_WAIT_S" u1_gone
# U2 was there at each look that gave U1's label back: named from its path.
rmdir "$T_CG/U2"; expect_eq "rmdir U2" "$?" 0
u2_gone() { log_has 'msg="workload gone" workload=U2 index=[0-9]'; }
check "U2's label given back, under its name" wait_until "$T_WAIT_S" u2_gone
t_subcg U3
expect_field "U3's connect" success 1 in_cg U3 "$KBTOOL" connect $T_ADDR "$P_LAB" 1
kill "$L_LAB"; wait "$L_LAB" 2>/dev/null
expect_eq "lab listener accepted" "$(cat "$T_DIR/l_lab")" accepted=3
u3_in() { snap && [ "$(msum "$T_DIR/m" $W circuit_name=lab workload=U3 result=success)" = 1 ]; }
wait_until "$T_WAIT_S" u3_in
expect_eq "labels: U3 alone" "$(mlabels "$T_DIR/m" $W workload | tr '\n' ' ')" "U3 "
expect_eq "U3: every count" "$(msum "$T_DIR/m" $W circuit_name=lab workload=U3)" 1
expect_eq "U3's breaker closed" \
	"$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=lab workload=U3 state=closed)" 1
expect_eq "kbreaker_workloads_reclaimed_total" "$(msum "$T_DIR/m" kbreaker_workloads_reclaimed_total)" 2
expect_eq "kbreaker_workloads" "$(msum "$T_DIR/m" kbreaker_workloads)" 1
expect_eq "kbreaker_workloads_folded" "$(msum "$T_DIR/m" kbreaker_workloads_folded)" 0
expect_eq "lab destination success (every workload's)" \
	"$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=lab result=success)" 3

log "m) connections of a gone workload, its label now V's: their resets are other's"
stop_agent
t_subcg X1 X2
agent_config poll_interval=100ms "workloads={depth: 1, max: 4}" \
	defaults: mode=enforce consecutive_failures=3 open_duration=1h \
	'failures=[refused, timeout, unreachable, error, reset]' \
	dest: name=st host=$T_ADDR port=$P_ST breaker=per_workload > "$T_DIR/kb-st.yaml"
start_agent "$T_DIR/kb-st.yaml"
start_listener $T_ADDR "$P_ST" "$T_DIR/l_st"; L_ST=$LISTENER
mkfifo "$T_DIR/st.fifo"
exec {STW}<>"$T_DIR/st.fifo"
( exec {STW}>&- && echo "$BASHPID" > "$T_CG/X1/cgroup.procs" &&
  exec ip netns exec "$T_NS" "$KBTOOL" rstlater $T_ADDR "$P_ST" 5 < "$T_DIR/st.fifo" > "$T_DIR/st.out" ) &
ST=$!
st_line() { grep -qx "$1" "$T_DIR/st.out" 2>/dev/null; }
check "X1: 5 connections open" wait_until "$T_WAIT_S" st_line connected=5
echo "$ST" > "$T_CG/X2/cgroup.procs"
expect_eq "their process ($ST) in X2" "$(cg_of "$ST")" X2
ID_X1=$(stat -c %i "$T_CG/X1")
rmdir "$T_CG/X1"; expect_eq "rmdir X1" "$?" 0
# X1 connected first: index 0, the only one handed out, so the next new cgroup takes it.
x1_gone() { log_has "msg=\"workload gone\" workload=(X1|cgroup-$ID_X1) index=0"; }
check "X1's label (index 0) given back" wait_until "$T_WAIT_S" x1_gone
t_subcg V
expect_field "V -> st: connects (X1's label)" success 1 in_cg V "$KBTOOL" connect $T_ADDR "$P_ST" 1
echo go >&"$STW"
check "X1's connections aborted from X2" wait_until "$T_WAIT_S" st_line aborted=5
exec {STW}>&-
check "rstlater ended" wait "$ST"
rst_in() { snap && [ "$(m0 "$T_DIR/m" kbreaker_tcp_resets_total circuit_name=st direction=sent)" = 5 ]; }
check "st: the 5 resets sent counted" wait_until "$T_WAIT_S" rst_in
# other's breaker has no series while other has no connects of its own: the log says it.
other_open() { log_has 'msg="breaker open" circuit=st workload=other old_state=closed new_state=open .*cause=reset'; }
check "st: other's breaker opened by them" wait_until "$T_WAIT_S" other_open
check "st: V's breaker closed" wl_state st V closed
check "st: V's breaker never opened" eval '! log_has "msg=\"breaker open\" circuit=st workload=V "'
expect_field "V -> st afterwards: connects" success 3 in_cg V "$KBTOOL" connect $T_ADDR "$P_ST" 3
kill "$L_ST"; wait "$L_ST" 2>/dev/null
expect_eq "st listener accepted (X1's 5, V's 4)" "$(cat "$T_DIR/l_st")" accepted=9
v_in() { snap && [ "$(msum "$T_DIR/m" $W circuit_name=st workload=V result=success)" = 4 ]; }
wait_until "$T_WAIT_S" v_in
expect_eq "V success" "$(msum "$T_DIR/m" $W circuit_name=st workload=V result=success)" 4
expect_eq "V: every count" "$(msum "$T_DIR/m" $W circuit_name=st workload=V)" 4
expect_eq "V blocked" "$(m0 "$T_DIR/m" kbreaker_workload_connects_blocked_total circuit_name=st workload=V)" 0
for s in open closed; do
	expect_eq "V state $s" "$(msum "$T_DIR/m" circuit_breaker_workload_state circuit_name=st workload=V state=$s)" \
		"$([ $s = closed ] && echo 1 || echo 0)"
done
expect_eq "labels (X1's counts went with its label)" "$(mlabels "$T_DIR/m" $W workload | tr '\n' ' ')" "V "
expect_eq "st destination success" "$(msum "$T_DIR/m" kbreaker_tcp_connects_total circuit_name=st result=success)" 9
expect_eq "st resets sent" "$(msum "$T_DIR/m" kbreaker_tcp_resets_total circuit_name=st direction=sent)" 5
expect_eq "st resets received" "$(m0 "$T_DIR/m" kbreaker_tcp_resets_total circuit_name=st direction=received)" 0
expect_eq "kbreaker_workloads_reclaimed_total" "$(msum "$T_DIR/m" kbreaker_workloads_reclaimed_total)" 1
expect_eq "kbreaker_workloads" "$(msum "$T_DIR/m" kbreaker_workloads)" 1
t_done
