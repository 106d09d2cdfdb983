#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Load: loadgen drives ~20,000 refused connects/s (a closed port) and
# ~2,000 successful ones/s (a listener) through the hooks for LOAD_SECONDS
# (10 here, 60 under `make soak`). Both destinations are in observe mode,
# so nothing is blocked and every connect reaches the kernel. Afterwards
# every count in /metrics equals the generator's own ground truth exactly
# (a shortfall the kernel's recursion_misses explain is logged as KNOWN;
# LOAD_STRICT=1 makes it a failure),
# the breaker decisions are the expected ones (the failing destination
# opened exactly once, the healthy one never), no ring-buffer event was
# lost unaccounted, and the agent's anonymous memory, sampled every second,
# stayed flat.
. "$(dirname "$0")/lib.sh"
t_setup
LOADGEN="$(dirname "$KBREAKERD")/loadgen"
check "$LOADGEN built (make all)" test -x "$LOADGEN" || t_done
SECONDS_RUN=${LOAD_SECONDS:-10}
FAIL_RATE=${LOAD_FAIL_RATE:-20000}
OK_RATE=${LOAD_OK_RATE:-2000}
THREADS=${LOAD_THREADS:-4}
RSS_GROWTH_MAX_KB=2048
# Under ASan freed memory sits in quarantine, so it grows by design.
ldd "$KBREAKERD" 2>/dev/null | grep -q libasan && RSS_GROWTH_MAX_KB=$((256 * 1024))

# Ports below the namespace's ephemeral range: with 200,000 connects to a
# closed port, the kernel would otherwise now and then pick that very port
# as the source, and a TCP self-connect succeeds.
ip netns exec "$T_NS" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
PORT=$(test_port 2)
OPORT=$((PORT + 1))
T_LISTEN="127.0.0.1:$(free_port)"
agent_config poll_interval=100ms defaults: mode=observe consecutive_failures=5 open_duration=1h \
	dest: name=dead host=$T_ADDR port=$PORT dest: name=alive host=$T_ADDR port=$OPORT > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
D='circuit_name="dead"'
A='circuit_name="alive"'
# RssAnon: the heap, where a leak shows. Not VmRSS: that also counts the
# ring buffer's pages as the agent first reads each of them, and a starved
# agent (a TCG guest) reaches new ones only after the load.
rss_kb() { awk '/^RssAnon:/ { print $2 }' "/proc/$T_AGENT_PID/status"; }

start_listener $T_ADDR "$OPORT" "$T_DIR/listen.out"
log "load: $FAIL_RATE refused/s + $OK_RATE successful/s for $SECONDS_RUN s, $THREADS threads"
in_test "$LOADGEN" "$SECONDS_RUN" "$THREADS" $T_ADDR "$PORT" "$FAIL_RATE" \
	$T_ADDR "$OPORT" "$OK_RATE" > "$T_DIR/load.out" &
LOAD=$!
: > "$T_DIR/rss"
# One sample a second while the load runs; the first after 2 s of warm-up.
while kill -0 "$LOAD" 2>/dev/null; do
	sleep 1
	rss_kb >> "$T_DIR/rss"
done
wait "$LOAD"
out=$(cat "$T_DIR/load.out")
log "loadgen: $out"
refused=$(field fail_refused "$out")
success=$(field ok_success "$out")
# A connect abandoned at loadgen's 5 s SO_SNDTIMEO (a SYN dropped twice
# by a full queue) is a cancel in the kernel's eyes: the truth for that too.
fail_timeout=$(field fail_timeout "$out")
ok_timeout=$(field ok_timeout "$out")
expect_eq "loadgen: connects to the closed port that succeeded" "$(field fail_success "$out")" 0
expect_eq "loadgen: connects to the listener that were refused" "$(field ok_refused "$out")" 0
expect_eq "loadgen: connects that failed locally (last errno $(field fail_errno "$out") $(field ok_errno "$out"))" \
	"$(($(field fail_other "$out") + $(field ok_other "$out")))" 0

# The kernel skips a tracing program when it would nest on a CPU where it
# is already running, and counts the skip in its recursion_misses. Outcomes
# come from kb_sockops (sock_ops programs are never skipped that way) and
# kbreaker has no tracing program, so the misses should be 0. A shortfall they would explain is still logged as
# KNOWN rather than failed; LOAD_STRICT=1 turns it into a failure.
MISSES=0
misses=""
for id in $(awk '$1 == "prog_id:" { print $2 }' /proc/"$T_AGENT_PID"/fdinfo/* 2>/dev/null | sort -u); do
	line=$(bpftool prog show id "$id" 2>/dev/null | head -n1)
	n=$(sed -n 's/.*recursion_misses \([0-9]*\).*/\1/p' <<<"$line")
	[ -n "$n" ] || continue
	misses="$misses $(sed -n 's/.* name \([^ ]*\) .*/\1/p' <<<"$line")=$n"
	MISSES=$((MISSES + n))
done
log "BPF program runs skipped by the kernel (recursion_misses):${misses:- none}"

# expect_count 'name{labels}' WANT: exact, but a shortfall the misses above
# can explain is reported as KNOWN unless LOAD_STRICT=1.
expect_count() {
	local got
	got=$(metric "$1")
	if [ "$got" != "$2" ] && [ "${LOAD_STRICT:-0}" != 1 ] && [[ $got =~ ^[0-9]+$ ]] &&
	   [ "$got" -lt "$2" ] && [ $(($2 - got)) -le "$MISSES" ]; then
		log "KNOWN: $1 = $got, want $2: $(($2 - got)) outcome(s) lost to $MISSES recursion misses"
		got=$2
	fi
	[ "$got" = "$2" ]
	t_check $? "$1 = $got, want $2"
}

# The counters are the kernel's, counted before each connect() returned,
# and /metrics reads them: compare exactly, at once.
scrape > "$T_DIR/metrics.txt"
expect_count "kbreaker_tcp_connects_total{$D,result=\"refused\"}" "$refused"
expect_count "kbreaker_tcp_connects_total{$A,result=\"success\"}" "$success"
expect_count "kbreaker_tcp_connect_duration_seconds_count{$A}" "$success"
expect_count "kbreaker_tcp_connects_total{$D,result=\"cancelled\"}" "$fail_timeout"
expect_count "kbreaker_tcp_connects_total{$A,result=\"cancelled\"}" "$ok_timeout"
for r in success timeout unreachable error; do
	expect_metric "kbreaker_tcp_connects_total{$D,result=\"$r\"}" 0
done
for r in refused timeout unreachable error; do
	expect_metric "kbreaker_tcp_connects_total{$A,result=\"$r\"}" 0
done
expect_metric "kbreaker_connects_blocked_total{$D}" 0
expect_metric "kbreaker_connects_blocked_total{$A}" 0
log "breaker decisions: dead opened exactly once (open_duration 1h), alive never"
expect_metric "circuit_breaker_state_transition_total{$D,old_state=\"closed\",new_state=\"open\"}" 1
expect_metric "circuit_breaker_state_transition_total{$A,old_state=\"closed\",new_state=\"open\"}" 0
expect_metric "circuit_breaker_state{$D,state=\"metrics_only\"}" 1
expect_metric "circuit_breaker_state{$A,state=\"metrics_only\"}" 1
log "events lost by the ring buffer (counted, still applied): $(metric kbreaker_events_lost_total)"

kill "$LISTENER"; wait "$LISTENER"
# Not exact: when the accept queue overflows, the client still sees its
# connect succeed (and the kernel counts it), but the server drops the ACK
# and the client's reset removes the connection before accept().
accepted=$(cut -d= -f2 "$T_DIR/listen.out")
log "listener accepted $accepted of $success successful connects"
check "listener accepted $accepted, no more than the $success connects made" test "$accepted" -le "$success"

n=$(wc -l < "$T_DIR/rss")
early=$(sed -n 2p "$T_DIR/rss")
final=$(rss_kb)
log "RssAnon kB each second: $(tr '\n' ' ' < "$T_DIR/rss")final $final;" \
	"$(grep -E '^(VmRSS|RssFile|RssShmem):' "/proc/$T_AGENT_PID/status" | tr -s ' \t\n' ' ')"
expect_ge "RSS samples" "$n" 3
check "RssAnon grew from $early kB (2 s in) to $final kB under load (limit $RSS_GROWTH_MAX_KB kB)" \
	test $((final - early)) -lt "$RSS_GROWTH_MAX_KB"
log "achieved: $(field fail_rate "$out") refused/s, $(field ok_rate "$out") successful/s"
check "agent alive after the load" kill -0 "$T_AGENT_PID"
stop_agent; expect_eq "exit status on SIGTERM" "$?" 0
t_done
