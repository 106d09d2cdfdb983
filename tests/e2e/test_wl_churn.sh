#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A churn of workload cgroups (pods or units made, connecting, removed, by
# the hundred) must not hold the loop: the labels come back at most 64 a
# look, with one walk of kb_wstats a look, so the hooks never fail open
# (failopen_after 3s) while the agent works. Before the fix (7ca67c5),
# workloads_reclaim gave every gone label back at one look, each with a
# walk of kb_wstats of its own and a new breaker at every per_workload
# destination: 900 cgroups gone, each with counters at 8 destinations,
# held the loop about 5 s, and the forced_open destination let the
# prober's connects through. KB_CHURN_N, _ROUNDS and _NDST resize it.
. "$(dirname "$0")/lib.sh"
command -v nsenter >/dev/null || need "nsenter (util-linux) not installed"
t_setup
N=${KB_CHURN_N:-900} ROUNDS=${KB_CHURN_ROUNDS:-1} NDST=${KB_CHURN_NDST:-8}
PB=$(test_port $((NDST + 1)))
T_LISTEN="127.0.0.1:$(free_port)"
args=(failopen_after=3s 'workloads={depth: 1, max: 1000}'
	dest: name=hot host=$T_ADDR port=$PB mode=forced_open)
# Nothing listens on these: each connect is refused, and still counted for
# its workload (a kb_wstats entry per workload and destination).
for i in $(seq 1 $NDST); do
	args+=(dest: name=w$i host=$T_ADDR port=$((PB + i)) mode=enforce breaker=per_workload)
done
agent_config "${args[@]}" > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
start_listener $T_ADDR "$PB" "$T_DIR/listen.out"

# The prober: a connect to hot every 5 ms (bash's /dev/tcp, no process
# per connect), refused by the hook while the loop beats, let through (and
# counted in failopen) when it has not; it also times the longest run of
# connects let through (ms), the hooks' open window. It sleeps between
# connects: the machine's CPUs are the agent's and the churn's.
mkfifo "$T_DIR/never"
bg_test "$T_DIR/probe.out" bash -c 'exec 3<>"$1"; ok=0 no=0 run=0 t0=0 last=0
	trap "echo success=\$ok refused=\$no open_ms=\$run; exit 0" TERM
	while :; do
		if { exec 4<>"/dev/tcp/$2/$3"; } 2>/dev/null; then
			exec 4>&-; ok=$((ok + 1)) t=$((${EPOCHREALTIME/./} / 1000))
			[ $((t - last)) -lt 200 ] || t0=$t
			last=$t; [ $((t - t0)) -le $run ] || run=$((t - t0))
		else
			no=$((no + 1))
		fi
		read -r -t 0.005 -u 3
	done' prober "$T_DIR/never" $T_ADDR "$PB"
PROBE=$BG

# Labels given back so far, from the agent's log: a scrape walks every
# workload's counters (thousands here) on the loop, so none is made until
# the end.
reclaimed() { [ "$(grep -c 'msg="workload gone"' "$T_DIR/agent.log")" -ge "$1" ]; }
gone=0
for r in $(seq 1 $ROUNDS); do
	mapfile -t CGS < <(seq -f "r$r-%04g" 1 $N)
	t0=$SECONDS
	t_subcg "${CGS[@]}"
	# One connect from each cgroup to each destination: a cgconnect per
	# destination (a child per cgroup that joins it, then connects).
	# nsenter, not ip netns exec: the children must see the host's cgroup2
	# mount. Niced: the agent's loop, not the machine's CPUs, is on test.
	for i in $(seq 1 $NDST); do
		printf "$T_CG/%s\n" "${CGS[@]}" | ( echo "$BASHPID" > "$T_CG/cgroup.procs" &&
			exec nice -n 10 nsenter --net="/run/netns/$T_NS" "$KBTOOL" cgconnect $T_ADDR $((PB + i)) 10 ) \
			> "$T_DIR/cg-$r-$i.out"
	done
	expect_eq "round $r: refused connects from $N cgroups to each of $NDST destinations" \
		"$(cat "$T_DIR"/cg-$r-*.out | grep -c "^success=0 refused=$N .* nocg=0$")" $NDST ||
		head -3 "$T_DIR"/cg-$r-*.out
	cg_rmdir_all "${CGS[@]/#/$T_CG/}"
	t_check $? "round $r: $N cgroups removed"
	gone=$((gone + N))
	log "round $r: $N cgroups made, connected to $NDST destinations, removed in $((SECONDS - t0)) s"
done
# At most 64 labels a look, a look every 2 s: $gone take a while.
t0=$SECONDS
wait_until "$T_WAIT_S" reclaimed $gone
log "labels given back: $(grep -c 'msg="workload gone"' "$T_DIR/agent.log") after $((SECONDS - t0)) s more"
kill -TERM "$PROBE"; wait "$PROBE"
log "prober's connects to the forced_open destination: $(cat "$T_DIR/probe.out")"
expect_metric kbreaker_connects_failopen_total 0
expect_ge "kbreaker_workloads_reclaimed_total" "$(metric kbreaker_workloads_reclaimed_total)" $gone
agent_alive "after the churn"
t_done
