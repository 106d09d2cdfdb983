#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# kbreaker benchmarks: one run, one table. Usage: bench/run.sh BUILD_DIR
# Needs root, cgroup v2, kbreakerd, kbbench, kbfloor and nowake.so in BUILD_DIR.
# Writes BUILD_DIR/bench/results.md (the table, machine, raw figures) and
# prints the table. Knobs (environment): KB_BENCH_ROUNDS (A/B rounds, 25),
# KB_BENCH_N (connects per case per round, 4000), KB_BENCH_TRIPS (200),
# KB_BENCH_IDLE_S (20), KB_BENCH_LOAD_RATE (20000), KB_BENCH_LOAD_S (10).
# Traffic stays in a network namespace of its own; the agent's hooks attach
# to a cgroup of its own; everything is removed on every exit.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../tests/e2e/sandbox.sh"
BUILD=$(cd "${1:-build}" && pwd)
KBREAKERD=$BUILD/kbreakerd
KBBENCH=$BUILD/kbbench
KBFLOOR=$BUILD/kbfloor
NOWAKE=$BUILD/nowake.so
OUT=$BUILD/bench
ROUNDS=${KB_BENCH_ROUNDS:-25}
N=${KB_BENCH_N:-4000}
TRIPS=${KB_BENCH_TRIPS:-200}
IDLE_S=${KB_BENCH_IDLE_S:-20}
LOAD_RATE=${KB_BENCH_LOAD_RATE:-20000}
LOAD_S=${KB_BENCH_LOAD_S:-10}
NDST=10000

# Ports above the default ephemeral range (32768-60999) so no other test's
# traffic lands on a configured destination.
P_OPEN_MISS=61001	# listener, not configured
P_CLOSED_MISS=61002	# no listener, not configured: the dead peer
P_OPEN_HIT=61003	# listener, configured (never trips)
P_CLOSED_HIT=61004	# no listener, configured (consecutive_failures 1000000: never trips)
P_FASTFAIL=61005	# configured, trips on the first refusal, stays open 1h
P_TRIP=61006		# configured, trips after 3 refusals, open 20ms, 1 probe
P_LOAD=61007		# configured, observe mode: every connect reaches the kernel
P_BLACKHOLE=61008	# not configured, SYNs dropped by nftables in the namespace
P_NODE=61009		# Node comparison: the dying server

mkdir -p "$OUT"
rm -f "$OUT"/*.tmp
B_NS="kb-bench-$$"
B_CG=""
B_AGENT_PID=""
B_WL_PID=""
B_CG_WL=""
B_STATS_PID=""
B_FLOOR_PID=""
RESULTS=$OUT/results.md
RAW=$OUT/raw.txt
: > "$RAW"
: > "$OUT/agent.log"

log() { printf '  [bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

cleanup() {
	set +e
	[ -n "$B_STATS_PID" ] && kill "$B_STATS_PID" 2>/dev/null && wait "$B_STATS_PID" 2>/dev/null
	[ -n "$B_AGENT_PID" ] && kill -KILL "$B_AGENT_PID" 2>/dev/null && wait "$B_AGENT_PID" 2>/dev/null
	[ -n "$B_WL_PID" ] && kill -KILL "$B_WL_PID" 2>/dev/null && wait "$B_WL_PID" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	ip netns del "$B_NS" 2>/dev/null
	for cg in "$B_CG" "$B_CG_WL"; do
		[ -n "$cg" ] && [ -d "$cg" ] || continue
		for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do echo "$p" > "$CG2_ROOT/cgroup.procs"; done
		rmdir "$cg"
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root"
for f in "$KBREAKERD" "$KBBENCH" "$KBFLOOR" "$NOWAKE"; do [ -x "$f" ] || [ -f "$f" ] || die "missing $f"; done
sandbox_up "$B_NS"; rc=$?
B_CG=$SANDBOX_CG
[ "$rc" = 0 ] || die "$SANDBOX_ERR"
# Black hole: SYNs to P_BLACKHOLE vanish; one SYN retry bounds the wait (~3 s).
ip netns exec "$B_NS" sysctl -qw net.ipv4.tcp_syn_retries=1
ip netns exec "$B_NS" sysctl -qw net.ipv4.ip_local_port_range="10000 60999"
ip netns exec "$B_NS" nft -f - <<EOF || die "nft"
table inet kbbench {
	chain out { type filter hook output priority 0; tcp dport $P_BLACKHOLE tcp flags syn drop; }
}
EOF

# Run a command in the benchmark's cgroup (the hooks' scope) and namespace.
in_ns() { ( echo "$BASHPID" > "$B_CG/cgroup.procs" && exec ip netns exec "$B_NS" "$@" ); }
# loop_in WHERE KIND PORT N: kbbench loop from the cgroup. WHERE "out": its
# listener is made outside the cgroup first, so only the client's sockets
# are in scope, as with a server on another host (`ip netns exec` remounts
# /sys: kbbench joins through a file opened before).
loop_in() {
	if [ "$1" = out ]; then
		( exec 9>"$B_CG/cgroup.procs" && exec ip netns exec "$B_NS" "$KBBENCH" loop "$2" 127.0.0.1 "$3" "$4" /dev/fd/9 )
	else
		in_ns "$KBBENCH" loop "$2" 127.0.0.1 "$3" "$4"
	fi
}

LISTEN="127.0.0.1:$(free_port)" || die "no free port"

# The config: 10,000 destinations, the measured ones first, fillers after
# (127.10.x.y:61000, nothing listens there; all closed breakers).
gen_config() {
	local f=$1 i
	{
		cat <<EOF
listen: $LISTEN
cgroup: $B_CG
poll_interval: 100ms
metrics_compact: ${COMPACT:-false}
${WORKLOADS:+workloads: { depth: 1, max: 50 \}}
defaults:
  mode: enforce
  consecutive_failures: 5
  open_duration: 10s
  half_open_permits: 1
destinations:
  - { name: open-hit, host: 127.0.0.1, port: $P_OPEN_HIT, consecutive_failures: 1000000 }
  - { name: closed-hit, host: 127.0.0.1, port: $P_CLOSED_HIT, consecutive_failures: 1000000 }
  - { name: fastfail, host: 127.0.0.1, port: $P_FASTFAIL, consecutive_failures: 1, open_duration: 1h }
  - { name: trip, host: 127.0.0.1, port: $P_TRIP, consecutive_failures: 3, open_duration: 20ms }
  - { name: load, host: 127.0.0.1, port: $P_LOAD, mode: observe }
  - { name: node, host: 127.0.0.1, port: $P_NODE, consecutive_failures: 5, open_duration: 1h }
EOF
		for ((i = 6; i < NDST; i++)); do
			printf '  - { name: f%d, host: 127.10.%d.%d, port: 61000 }\n' $i $((i / 250)) $((i % 250 + 1))
		done
	} > "$f"
}
CONFIG=$OUT/kb-10k.yaml
gen_config "$CONFIG"
# Flow-style mappings are YAML too, but fall back to block style if the parser refuses them.
if ! "$KBREAKERD" --check-config -c "$CONFIG" >/dev/null 2>&1; then
	die "config rejected: $("$KBREAKERD" --check-config -c "$CONFIG" 2>&1 | head -3)"
fi

scrape() { curl -sf "http://$LISTEN/metrics"; }
metric() {
	scrape | awk -v k="$1" 'index($0, k " ") == 1 { print $2; found = 1 } END { if (!found) print "absent" }'
}

# start_agent [PRELOAD]: sets B_AGENT_PID and AGENT_START_MS.
start_agent() {
	local t0
	t0=$(date +%s%N)
	if [ -n "${1:-}" ]; then
		LD_PRELOAD=$1 "$KBREAKERD" -c "$CONFIG" --log-level info >>"$OUT/agent.log" 2>&1 &
	else
		"$KBREAKERD" -c "$CONFIG" --log-level info >>"$OUT/agent.log" 2>&1 &
	fi
	B_AGENT_PID=$!
	for _ in $(seq 1 400); do
		curl -sf -o /dev/null "http://$LISTEN/healthz" 2>/dev/null && {
			AGENT_START_MS=$(( ($(date +%s%N) - t0) / 1000000 )); return 0; }
		kill -0 "$B_AGENT_PID" 2>/dev/null || break
		sleep 0.025
	done
	tail -20 "$OUT/agent.log" >&2
	die "agent did not come up"
}
AGENT_DEATHS=""
stop_agent() {
	local rc
	if ! kill -0 "$B_AGENT_PID" 2>/dev/null; then
		# Someone else's cleanup, or a crash: the phase's figures are suspect; say so.
		wait "$B_AGENT_PID" 2>/dev/null; rc=$?
		log "warning: kbreakerd (pid $B_AGENT_PID) had exited before the end of the phase (status $rc)"
		AGENT_DEATHS="$AGENT_DEATHS pid $B_AGENT_PID status $rc before '${1:-?}';"
	else
		kill -TERM "$B_AGENT_PID"; wait "$B_AGENT_PID" 2>/dev/null
	fi
	B_AGENT_PID=""
	# Detached: the hooks live as long as the process (links are not pinned).
	[ "$(bpftool cgroup show "$B_CG" 2>/dev/null | grep -c connect)" = 0 ] || die "hooks still attached"
}

# The floor: programs that do nothing at the agent's hooks on the same
# cgroup (bench/kbfloor.c), with callbacks on for connects to the hit ports
# as kb_observe turns them on for a configured destination. Sets B_FLOOR_PID.
start_floor() {
	"$KBFLOOR" "$B_CG" 600 "$P_OPEN_HIT" "$P_CLOSED_HIT" > "$OUT/floor.out" 2>&1 &
	B_FLOOR_PID=$!
	for _ in $(seq 1 100); do
		grep -q attached "$OUT/floor.out" && return 0
		kill -0 "$B_FLOOR_PID" 2>/dev/null || break
		sleep 0.02
	done
	die "kbfloor did not attach: $(cat "$OUT/floor.out")"
}
stop_floor() {
	kill -TERM "$B_FLOOR_PID"; wait "$B_FLOOR_PID" 2>/dev/null
	B_FLOOR_PID=""
	[ "$(bpftool cgroup show "$B_CG" 2>/dev/null | grep -c connect)" = 0 ] || die "floor hooks still attached"
}

# Table rows: measurement | result | target | verdict
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RAW"; }
raw() { printf '%s\n' "$*" >> "$RAW"; }
# verdict VALUE OP LIMIT: "met" / "not met" (awk compares floats).
verdict() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = op == "<=" ? v <= l : v >= l; print ok ? "met" : "**not met**" }'; }
signed() { awk -v v="$1" 'BEGIN { printf "%+.0f", v }'; }
ns_to_us() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1000 }'; }
# ab_stats LABEL FILE_A FILE_B NAME_A NAME_B: kbbench stats of two sides'
# "ROUND FIGURE" lines (A, B) and of their paired differences (D), each also
# in the raw figures as "LABEL NAME_A:", "LABEL NAME_B:", "LABEL paired diff:".
ab_stats() {
	A=$(awk '{ print $2 }' "$2" | "$KBBENCH" stats)
	B=$(awk '{ print $2 }' "$3" | "$KBBENCH" stats)
	D=$(join "$2" "$3" | awk '{ print $2 - $3 }' | "$KBBENCH" stats)
	raw "$1 $4: $A"; raw "$1 $5: $B"; raw "$1 paired diff: $D"
}
# scrape_stats: 20 scrapes of /metrics; SC the kbbench stats of their times
# (ms), SIZE the last one's size (MiB), RSS the agent's VmRSS after them (MiB).
scrape_stats() {
	: > "$OUT/scrape.tmp"
	for _ in $(seq 1 20); do
		curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "http://$LISTEN/metrics" >> "$OUT/scrape.tmp"
	done
	SC=$(awk '{ print $1 * 1000 }' "$OUT/scrape.tmp" | "$KBBENCH" stats)
	SIZE=$(tail -1 "$OUT/scrape.tmp" | awk '{ printf "%.2f", $2 / 1048576 }')
	RSS=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$B_AGENT_PID/status")
}

# prog_snapshot PID: "id name run_time_ns run_cnt" for one agent's programs
# only (ids from its fds).
prog_snapshot() {
	local id
	for id in $(grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -un); do
		bpftool prog show id "$id" -j | jq -r '"\(.id) \(.name) \(.run_time_ns // 0) \(.run_cnt // 0)"'
	done
}
# prog_delta PID CMD...: run CMD (its output dropped) and print, per program
# of agent PID, "name run_time_ns run_cnt" counted meanwhile (bpf_stats on).
prog_delta() {
	local pid=$1
	shift
	prog_snapshot "$pid" > "$OUT/progs-before.tmp"
	"$@" > "$OUT/progs-cmd.tmp"
	prog_snapshot "$pid" > "$OUT/progs-after.tmp"
	join <(sort "$OUT/progs-before.tmp") <(sort "$OUT/progs-after.tmp") |
		awk '{ print $2, $6 - $3, $7 - $4 }'
}
# case_progs PID LABEL FILE WHERE KIND PORT: prog_delta over one hot-path
# case (loop_in), into FILE and the raw figures; prints "name ns x runs; "
# (per run, per connect) for each program that ran.
case_progs() {
	prog_delta "$1" loop_in "$4" "$5" "$6" "$N" > "$3"
	# Per connect is per N: a connect that failed (fin's TIME_WAITs past the port range) skews it.
	[ "$(field bad "$(cat "$OUT/progs-cmd.tmp")")" = 0 ] || log "warning: $2: $(cat "$OUT/progs-cmd.tmp")"
	raw "bpf_stats $2, $N connects (name run_time_ns run_cnt):"; cat "$3" >> "$RAW"
	awk -v n="$N" '$3 > 0 { printf "%s %.0f ns x %.2f; ", $1, $2 / $3, $3 / n }' "$3"
}
# stats_on / stats_off: bpf_stats counted only in between (B_STATS_PID).
stats_on() {
	local out
	out=$(mktemp "$OUT/stats.XXXXXX.tmp")
	"$KBBENCH" enable-stats 600 > "$out" &
	B_STATS_PID=$!
	for _ in $(seq 1 100); do grep -q enabled "$out" && return 0; sleep 0.02; done
	die "bpf_stats could not be enabled: $(cat "$out")"
}
stats_off() { kill "$B_STATS_PID"; wait "$B_STATS_PID" 2>/dev/null; B_STATS_PID=""; }

START_S=$(date +%s)

# ---------------------------------------------------------------------------
# 1. Hot path: interleaved rounds, kbreakerd attached vs the floor (empty
# programs at the same hooks) vs nothing. The *_out cases make their
# listener outside the cgroup: a client's cost alone (see loop_in).
CASES="open_miss:open:$P_OPEN_MISS closed_miss:closed:$P_CLOSED_MISS open_hit:open:$P_OPEN_HIT closed_hit:closed:$P_CLOSED_HIT"
CASES_OUT="open_miss_out:open:$P_OPEN_MISS:out open_hit_out:open:$P_OPEN_HIT:out"
# Item 2 only: open_hit with the client closing gracefully (FIN, as most
# clients do), where the close has nothing to count; the RST close of
# open_hit and open_hit_out counts a reset sent.
CASES_FIN="open_hit_fin:fin:$P_OPEN_HIT"
run_cases() {	# run_cases SIDE ROUND
	local c name kind port where out
	for c in $CASES $CASES_OUT; do
		IFS=: read -r name kind port where <<<"$c"
		out=$(loop_in "$where" "$kind" "$port" "$N")
		[ "$(field bad "$out")" = 0 ] || log "warning: $name/$1: $out"
		echo "$2 $(field ns_per_op "$out")" >> "$OUT/ab-$name-$1.tmp"
	done
}
log "1. hot path: $ROUNDS interleaved rounds x 6 cases x $N connects x 3 sides (10,000 destinations)"
run_cases warmup 0
starts=()
for ((r = 1; r <= ROUNDS; r++)); do
	start_agent; starts+=("$AGENT_START_MS")
	run_cases kb "$r"
	stop_agent "item 1 round $r"
	start_floor
	run_cases floor "$r"
	stop_floor
	run_cases none "$r"
done
for c in $CASES $CASES_OUT; do
	IFS=: read -r name kind port where <<<"$c"
	ab_stats "hotpath $name" "$OUT/ab-$name-kb.tmp" "$OUT/ab-$name-none.tmp" kb none
	ma=$(field median "$A"); mb=$(field median "$B"); md=$(field median "$D")
	ratio=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", a / b }')
	added=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.0f", a - b }')
	# A configured destination may cost 300 ns; one the config does not name, 150.
	case $name in *_miss*) limit=150 ;; *) limit=300 ;; esac
	what="kbreaker vs none"
	[ -n "$where" ] && what="server outside the cgroup, $what"
	row "1. connect+close, $name: $what (median ns, IQR)" \
		"$ma (IQR $(field iqr "$A")) vs $mb (IQR $(field iqr "$B")); added ${added} ns (paired median $md, IQR $(field iqr "$D")); ratio $ratio" \
		"<= $limit ns, ratio <= 1.02" "$(verdict "$added" '<=' "$limit"); $(verdict "$ratio" '<=' 1.02)"
	# The same rounds split at the floor: what the kernel charges for
	# running any program at these hooks, and what kbreaker's work adds.
	ab_stats "hotpath floor $name" "$OUT/ab-$name-floor.tmp" "$OUT/ab-$name-none.tmp" floor none
	fd=$(field median "$D"); fq=$(field iqr "$D")
	ab_stats "hotpath above floor $name" "$OUT/ab-$name-kb.tmp" "$OUT/ab-$name-floor.tmp" kb floor
	row "1. floor, $name: empty programs at the same hooks vs none; kbreaker vs them (paired medians, ns)" \
		"floor $(signed "$fd") (IQR $fq); kbreaker above it $(signed "$(field median "$D")") (IQR $(field iqr "$D"))" \
		"floor <= $limit ns (else the target is below the hooks' own cost)" "$(verdict "$fd" '<=' "$limit")"
done
st=$(printf '%s\n' "${starts[@]}" | "$KBBENCH" stats)
row "kbreakerd start to /healthz at 10,000 destinations (ms)" "median $(field median "$st"), max $(field max "$st")" "-" "-"

# 1b. Workload attribution on vs off, same destinations: what naming the
# connecting cgroup and counting per workload add to a configured
# destination (one the config does not name never gets that far). Two
# agents run at once, each on its own sibling cgroup, one with workloads:,
# and the client alternates between the cgroups connect loop by connect
# loop: the host drifts by microseconds per connect within minutes here,
# and only pairs taken a few milliseconds apart see the same host.
CONFIG_PLAIN=$CONFIG
CONFIG_WL=$OUT/kb-10k-workloads.yaml
B_CG_WL="${B_CG}-wl"
mkdir "$B_CG_WL" || die "mkdir $B_CG_WL"
LISTEN_WL="127.0.0.1:$(free_port)" || die "no free port"
LISTEN=$LISTEN_WL B_CG=$B_CG_WL WORKLOADS=1 gen_config "$CONFIG_WL"
in_wl() { ( echo "$BASHPID" > "$B_CG_WL/cgroup.procs" && exec ip netns exec "$B_NS" "$@" ); }
"$KBREAKERD" -c "$CONFIG_WL" --log-level info >>"$OUT/agent-wl.log" 2>&1 &
B_WL_PID=$!
start_agent
for _ in $(seq 1 400); do curl -sf -o /dev/null "http://$LISTEN_WL/healthz" && break; sleep 0.025; done
curl -sf -o /dev/null "http://$LISTEN_WL/healthz" || die "the workloads agent did not come up"
CASES_WL="open_hit:open:$P_OPEN_HIT closed_hit:closed:$P_CLOSED_HIT"
WL_ROUNDS=$((ROUNDS * 4)) WL_N=$((N / 2))
log "1b. workload attribution: $WL_ROUNDS alternated pairs x 2 cases x $WL_N connects"
for ((r = 1; r <= WL_ROUNDS; r++)); do
	for c in $CASES_WL; do
		IFS=: read -r name kind port <<<"$c"
		# Which side goes first alternates too: a drift within a pair cancels over the rounds.
		for side in $( ((r % 2)) && echo "wl plain" || echo "plain wl"); do
			if [ "$side" = wl ]; then
				out=$(in_wl "$KBBENCH" loop "$kind" 127.0.0.1 "$port" "$WL_N")
			else
				out=$(in_ns "$KBBENCH" loop "$kind" 127.0.0.1 "$port" "$WL_N")
			fi
			echo "$r $(field ns_per_op "$out")" >> "$OUT/wl-$name-$side.tmp"
		done
	done
done
# The same pairs, timed by the kernel: each agent's own programs' run time
# (bpf_stats) per connect. Attribution adds work only inside those programs,
# and their run time does not carry the microseconds the rest of a loopback
# connect drifts by, so this is the figure the target is judged on.
WL_SROUNDS=$((ROUNDS * 2))
log "1b. the same in bpf_stats: $WL_SROUNDS alternated pairs"
stats_on
for ((r = 1; r <= WL_SROUNDS; r++)); do
	for c in $CASES_WL; do
		IFS=: read -r name kind port <<<"$c"
		for side in $( ((r % 2)) && echo "wl plain" || echo "plain wl"); do
			if [ "$side" = wl ]; then pid=$B_WL_PID run=in_wl; else pid=$B_AGENT_PID run=in_ns; fi
			prog_delta "$pid" $run "$KBBENCH" loop "$kind" 127.0.0.1 "$port" "$WL_N" |
				awk -v r="$r" -v n="$WL_N" '{ t += $2 } END { printf "%d %.1f\n", r, t / n }' \
				>> "$OUT/wlk-$name-$side.tmp"
		done
	done
done
stats_off
wl_seen=$(curl -sf "http://$LISTEN_WL/metrics" | awk '$1 == "kbreaker_workloads" { print $2 }')
stop_agent "item 1b"
kill -TERM "$B_WL_PID"; wait "$B_WL_PID" 2>/dev/null; B_WL_PID=""
[ "$wl_seen" = 1 ] || log "warning: the workloads agent saw ${wl_seen:-no} workloads, not 1"
for c in $CASES_WL; do
	IFS=: read -r name kind port <<<"$c"
	ab_stats "workloads in bpf_stats $name" "$OUT/wlk-$name-wl.tmp" "$OUT/wlk-$name-plain.tmp" on off
	ma=$(field median "$A"); mb=$(field median "$B"); md=$(field median "$D")
	row "1b. $name: kbreaker programs' run time per connect, attribution on vs off, $WL_SROUNDS alternated pairs (bpf_stats, median ns)" \
		"$ma vs $mb; added, paired median ${md} ns (IQR $(field iqr "$D"))" \
		"<= 100 ns" "$(verdict "$md" '<=' 100)"
	ab_stats "workloads $name" "$OUT/wl-$name-wl.tmp" "$OUT/wl-$name-plain.tmp" on off
	ma=$(field median "$A"); mb=$(field median "$B"); md=$(field median "$D")
	# 95% interval of a median: +-1.57 IQR / sqrt(n) (McGill et al.'s notch).
	ci=$(awk -v m="$md" -v q="$(field iqr "$D")" -v n="$(field n "$D")" \
		'BEGIN { h = 1.57 * q / sqrt(n); printf "%.0f %.0f", m - h, m + h }')
	# The wall clock only checks the kernel's figure: it fails the target
	# only when its whole interval lies above it.
	row "1b. connect+close, $name: wall clock, attribution on vs off, $WL_ROUNDS alternated pairs (median ns)" \
		"$ma vs $mb; added, paired median ${md} ns (IQR $(field iqr "$D"), 95% interval ${ci% *} .. ${ci#* })" \
		"interval reaches <= 100 ns" "$(verdict "${ci% *}" '<=' 100)"
done

# ---------------------------------------------------------------------------
# The floor's programs under the same clock: what bpf_stats charges a
# program that does nothing, at each hook (kbfloor holds their fds).
log "2. bpf_stats of the floor over the 6 hot-path cases and open_hit_fin"
start_floor
stats_on
for c in $CASES $CASES_OUT $CASES_FIN; do
	IFS=: read -r name kind port where <<<"$c"
	per=$(case_progs "$B_FLOOR_PID" "floor $name" "$OUT/progs-floor-$name.tmp" "$where" "$kind" "$port")
	row "2. bpf_stats, $name: empty programs (the floor), ns per run x runs per connect" "${per%; }" "-" "-"
done
stats_off
stop_floor

# One agent for the rest.
start_agent
log "agent up in ${AGENT_START_MS} ms (pid $B_AGENT_PID)"

# 2. Per-program cost from bpf_stats, enabled only while the workload runs.
log "2. bpf_stats over the 6 hot-path cases and open_hit_fin"
stats_on
# One snapshot pair per case: a miss and a hit cost differently.
for c in $CASES $CASES_OUT $CASES_FIN; do
	IFS=: read -r name kind port where <<<"$c"
	per=$(case_progs "$B_AGENT_PID" "$name" "$OUT/progs-delta-$name.tmp" "$where" "$kind" "$port")
	hook=$(awk '$1 == "kb_connect4" && $3 > 0 { printf "%.0f", $2 / $3 }' "$OUT/progs-delta-$name.tmp")
	tpmax=$(awk '$1 !~ /^kb_connect/ && $3 > 0 { v = $2 / $3; if (v > m) m = v } END { printf "%.0f", m }' "$OUT/progs-delta-$name.tmp")
	trace=$(awk -v n="$N" '$1 !~ /^kb_connect/ { t += $2 } END { printf "%.0f", t / n }' "$OUT/progs-delta-$name.tmp")
	row "2. bpf_stats, $name: ns per run x runs per connect" "${per%; }" "hook <= 150 ns/run" "$(verdict "${hook:-0}" '<=' 150)"
	row "2. bpf_stats, $name: slowest observing program (ns/run); observing per connect (ns)" "$tpmax; $trace" \
		"<= 100 ns/event; <= 1000 ns/connect" "$(verdict "$tpmax" '<=' 100); $(verdict "$trace" '<=' 1000)"
done
# The same configured destinations from a process outside the cgroup, in
# the same namespace: no sock_ops or connect hook may run for it.
for c in open_hit:open:$P_OPEN_HIT closed_hit:closed:$P_CLOSED_HIT; do
	IFS=: read -r name kind port <<<"$c"
	prog_delta "$B_AGENT_PID" ip netns exec "$B_NS" "$KBBENCH" loop "$kind" 127.0.0.1 "$port" "$N" \
		> "$OUT/progs-delta-out-$name.tmp"
	per=$(awk '{ printf "%s %d; ", $1, $3 }' "$OUT/progs-delta-out-$name.tmp")
	hooks=$(awk '{ s += $3 } END { print s + 0 }' "$OUT/progs-delta-out-$name.tmp")
	row "2. bpf_stats, $name from outside the cgroup, $N connects: runs per program" "${per%; }" \
		"0 (every kbreaker program)" "$(verdict "$hooks" '<=' 0)"
done
stats_off

# ---------------------------------------------------------------------------
# 4. Fast fail: refused by the open breaker vs dead peer vs black hole.
log "4. fast fail"
in_ns "$KBBENCH" lat 127.0.0.1 "$P_FASTFAIL" 1 >/dev/null	# the first refusal trips it
sleep 0.3
blocked0=$(metric "kbreaker_connects_blocked_total{circuit_name=\"fastfail\"}")
ff=$(in_ns "$KBBENCH" lat 127.0.0.1 "$P_FASTFAIL" 5000)
blocked1=$(metric "kbreaker_connects_blocked_total{circuit_name=\"fastfail\"}")
dead=$(in_ns "$KBBENCH" lat 127.0.0.1 "$P_CLOSED_MISS" 5000)
bh=$(in_ns "$KBBENCH" lat 127.0.0.1 "$P_BLACKHOLE" 2 20000)
raw "fastfail open breaker: $ff (blocked by hook: $((blocked1 - blocked0)))"
raw "fastfail dead peer: $dead"; raw "fastfail black hole (tcp_syn_retries=1): $bh"
[ "$((blocked1 - blocked0))" = 5000 ] || log "warning: hook blocked $((blocked1 - blocked0)) of 5000"
ffp50=$(field p50_ns "$ff"); deadp50=$(field p50_ns "$dead"); bhp50=$(field p50_ns "$bh")
# Default tcp_syn_retries=6 with tcp_syn_linear_timeouts (kernel >= 6.5, default 4):
# RTOs 1,1,1,1,1,2,4 s and the final wait: see BENCHMARKS.md for the computation.
row "4. connect() refused by the open breaker (p50 / p99 us)" "$(ns_to_us "$ffp50") / $(ns_to_us "$(field p99_ns "$ff")")" "<= 5 us" "$(verdict "$ffp50" '<=' 5000)"
row "4. same client, dead peer: RST (p50 / p99 us); ratio to breaker" "$(ns_to_us "$deadp50") / $(ns_to_us "$(field p99_ns "$dead")"); $(awk -v a="$deadp50" -v b="$ffp50" 'BEGIN { printf "%.1fx", a / b }')" "-" "-"
row "4. same client, black hole, tcp_syn_retries=1 (s); ratio to breaker" "$(awk -v n="$bhp50" 'BEGIN { printf "%.2f", n / 1e9 }') ($(field timeout "$bh") timeouts); $(awk -v a="$bhp50" -v b="$ffp50" 'BEGIN { printf "%.0fx", a / b }')" "-" "-"
syn_default=$(sysctl -n net.ipv4.tcp_syn_retries); lin=$(sysctl -n net.ipv4.tcp_syn_linear_timeouts 2>/dev/null || echo 0)
bh_default_s=$("$HERE/syn_timeout.sh" "$syn_default" "$lin")
row "4. black hole, default tcp_syn_retries=$syn_default, linear_timeouts=$lin (computed, s); ratio" "$bh_default_s; $(awk -v a="$bh_default_s" -v b="$ffp50" 'BEGIN { printf "%.1e x", a * 1e9 / b }')" "-" "computed"

# ---------------------------------------------------------------------------
# 3. Trip latency: ring-buffer wake-up, then poll-only (nowake.so) for comparison.
log "3. trip latency: $TRIPS trips"
b0=$(metric "kbreaker_connects_blocked_total{circuit_name=\"trip\"}")
tr=$(in_ns "$KBBENCH" trip 127.0.0.1 "$P_TRIP" 3 "$TRIPS" 20 150)
b1=$(metric "kbreaker_connects_blocked_total{circuit_name=\"trip\"}")
opened=$(metric "circuit_breaker_state_transition_total{circuit_name=\"trip\",old_state=\"closed\",new_state=\"open\"}")
raw "trip (wake-up): $tr; metrics: blocked delta $((b1 - b0)), closed->open $opened"
[ "$((b1 - b0))" = "$(field blocked "$tr")" ] || log "warning: blocked: hook $((b1 - b0)), client $(field blocked "$tr")"
[ "$opened" = "$(field trips "$tr")" ] || log "warning: closed->open $opened, trips $(field trips "$tr")"
row "3. trip latency, ring-buffer wake-up (p50 / p99 us, $(field trips "$tr") trips)" \
	"$(ns_to_us "$(field p50_ns "$tr")") / $(ns_to_us "$(field p99_ns "$tr")") (max $(ns_to_us "$(field max_ns "$tr")"))" \
	"p99 <= 1000 us" "$(verdict "$(field p99_ns "$tr")" '<=' 1000000)"

# ---------------------------------------------------------------------------
# 5. Agent cost at 10,000 destinations.
log "5. agent cost: scrapes, RSS, idle CPU ${IDLE_S}s, CPU under $LOAD_RATE failing connects/s"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$B_AGENT_PID/stat"; }
HZ=$(getconf CLK_TCK)
scrape_stats
raw "scrape ms: $SC; size MB: $SIZE"
row "5. /metrics scrape time (ms, median of 20; p99)" "$(field median "$SC") ($(field p99 "$SC"))" "<= 50 ms" "$(verdict "$(field median "$SC")" '<=' 50)"
row "5. /metrics size (MiB)" "$SIZE" "<= 5 MB" "$(verdict "$SIZE" '<=' 5)"
row "5. kbreakerd RSS after scrapes (MiB)" "$RSS" "<= 32 MiB" "$(verdict "$RSS" '<=' 32)"
c0=$(cpu_ticks); sleep "$IDLE_S"; c1=$(cpu_ticks)
idle=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v s="$IDLE_S" 'BEGIN { printf "%.2f", d / hz / s * 100 }')
row "5. kbreakerd CPU idle (% of a core, ${IDLE_S}s)" "$idle" "<= 1%" "$(verdict "$idle" '<=' 1)"
c0=$(cpu_ticks)
ld=$(in_ns "$KBBENCH" load 127.0.0.1 "$P_LOAD" "$LOAD_RATE" "$LOAD_S")
c1=$(cpu_ticks)
busy=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v s="$(field seconds "$ld")" 'BEGIN { printf "%.1f", d / hz / s * 100 }')
lost=$(metric kbreaker_events_lost_total)
raw "load: $ld; agent CPU $busy%; events lost $lost"
row "5. kbreakerd CPU at $(field rate "$ld") failing connects/s (% of a core)" "$busy (events lost: $lost)" "-" "-"
rss2=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$B_AGENT_PID/status")
row "5. kbreakerd RSS after the load (MiB)" "$rss2" "<= 32 MiB" "$(verdict "$rss2" '<=' 32)"
stop_agent "item 5"

# 5b. The same 10,000 destinations with metrics_compact: what a config this large should use.
log "5b. /metrics with metrics_compact: true"
COMPACT=true gen_config "$CONFIG"
start_agent
scrape_stats
raw "compact scrape ms: $SC; size MB: $SIZE; RSS $RSS"
row "5. /metrics scrape time, metrics_compact (ms, median of 20; p99)" "$(field median "$SC") ($(field p99 "$SC"))" "<= 50 ms" "$(verdict "$(field median "$SC")" '<=' 50)"
row "5. /metrics size, metrics_compact (MiB)" "$SIZE" "<= 5 MB" "$(verdict "$SIZE" '<=' 5)"
row "5. kbreakerd RSS after scrapes, metrics_compact (MiB)" "$RSS" "<= 32 MiB" "$(verdict "$RSS" '<=' 32)"
stop_agent "item 5b"
gen_config "$CONFIG"

# 3b. Poll-only: the same trips with the ring buffer's wake-up dropped (nowake.so).
PTRIPS=$((TRIPS / 2))
log "3b. poll-only trip latency: $PTRIPS trips (poll_interval 100ms)"
start_agent "$NOWAKE"
tp=$(in_ns "$KBBENCH" trip 127.0.0.1 "$P_TRIP" 3 "$PTRIPS" 20 150)
raw "trip (poll-only): $tp"
stop_agent "3b poll-only"
row "3. trip latency, poll-only at poll_interval 100ms (p50 / p99 us, $(field trips "$tp") trips)" \
	"$(ns_to_us "$(field p50_ns "$tp")") / $(ns_to_us "$(field p99_ns "$tp")") (missed $(field missed "$tp"))" "(comparison)" "-"

# 3c. The same trips and load with only the 6 measured destinations: what grows
# with the number of destinations (per-wake-up work in the agent).
log "3c. trip latency and CPU under load at 6 destinations"
CONFIG_10K=$CONFIG
CONFIG=$OUT/kb-6.yaml
NDST=6 gen_config "$CONFIG"
start_agent
ts=$(in_ns "$KBBENCH" trip 127.0.0.1 "$P_TRIP" 3 "$PTRIPS" 20 150)
raw "trip (wake-up, 6 destinations): $ts"
row "3. trip latency, ring-buffer wake-up, 6 destinations (p50 / p99 us, $(field trips "$ts") trips)" \
	"$(ns_to_us "$(field p50_ns "$ts")") / $(ns_to_us "$(field p99_ns "$ts")")" "(comparison)" "-"
c0=$(cpu_ticks)
ld=$(in_ns "$KBBENCH" load 127.0.0.1 "$P_LOAD" "$LOAD_RATE" "$LOAD_S")
c1=$(cpu_ticks)
busy=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v s="$(field seconds "$ld")" 'BEGIN { printf "%.1f", d / hz / s * 100 }')
raw "load (6 destinations): $ld; agent CPU $busy%"
row "5. kbreakerd CPU at $(field rate "$ld") failing connects/s, 6 destinations (% of a core)" "$busy" "(comparison)" "-"
stop_agent "3c"
CONFIG=$CONFIG_10K

# 3d. Wake-up latency is scheduling latency on a busy machine: the same trips
# (10,000 destinations) with the agent under SCHED_FIFO.
log "3d. trip latency with the agent under SCHED_FIFO (chrt -f 10)"
start_agent
chrt -f -p 10 "$B_AGENT_PID" >/dev/null
tf=$(in_ns "$KBBENCH" trip 127.0.0.1 "$P_TRIP" 3 "$PTRIPS" 20 150)
raw "trip (wake-up, 10,000 destinations, SCHED_FIFO agent): $tf"
row "3. trip latency, wake-up, agent SCHED_FIFO (chrt -f 10) (p50 / p99 us, $(field trips "$tf") trips)" \
	"$(ns_to_us "$(field p50_ns "$tf")") / $(ns_to_us "$(field p99_ns "$tf")")" "p99 <= 1000 us" "$(verdict "$(field p99_ns "$tf")" '<=' 1000000)"
stop_agent "3d"

# ---------------------------------------------------------------------------
# 6. Side by side (optional parts skip when their tools are missing).
if [ -f "$HERE/side.sh" ]; then
	. "$HERE/side.sh"
fi

TOTAL_S=$(( $(date +%s) - START_S ))
{
	rev=$(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
	git -C "$HERE/.." diff --quiet HEAD -- agent bpf include 2>/dev/null || rev="$rev + uncommitted agent/bpf changes"
	echo "Run of $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $rev on $(nproc) CPUs, kernel $(uname -r)," \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
		"$ROUNDS A/B rounds x $N connects per case, $TRIPS trips, total ${TOTAL_S}s."
	[ -z "$AGENT_DEATHS" ] || echo "**Warning: kbreakerd exited early:$AGENT_DEATHS rows of that phase are suspect.**"
	echo
	echo "| measurement | result | target | verdict |"
	echo "| --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
} > "$RESULTS"
cat "$RESULTS"
echo
echo "raw figures: $RAW"
