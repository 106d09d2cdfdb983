# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Shared helpers for kbreaker's end-to-end tests. Each test sources this,
# gets its own network namespace and cgroup, and cleans up on every exit.
# Needs: KBREAKERD, KBTOOL (set by run.sh).

set -u
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "/tmp/kb-$T_NAME.XXXXXX")
T_NS="kb-$T_NAME-$$"
T_CG=""
T_AGENT_PID=""
T_FAILED=0
T_CHECKS=0

log() { printf '  [%s] %s\n' "$T_NAME" "$*"; }
fail() { printf '  [%s] FAIL: %s\n' "$T_NAME" "$*"; T_FAILED=$((T_FAILED + 1)); }

# A missing precondition skips locally (77) but fails under CI.
need() {
	if [ "${CI:-}" = true ]; then echo "  [$T_NAME] FAIL: precondition: $*"; exit 1; fi
	echo "  [$T_NAME] SKIP: $*"; exit 77
}

T_ON_EXIT=()
# t_on_exit CMD...: run CMD at cleanup, after the agent is gone.
t_on_exit() { T_ON_EXIT+=("$*"); }

t_cleanup() {
	set +e
	[ -n "$T_AGENT_PID" ] && kill -KILL "$T_AGENT_PID" 2>/dev/null && wait "$T_AGENT_PID" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	for c in "${T_ON_EXIT[@]}"; do eval "$c"; done
	ip netns del "$T_NS" 2>/dev/null
	if [ -n "$T_CG" ] && [ -d "$T_CG" ]; then
		# Anything left inside goes back to the root before the cgroup goes.
		for p in $(cat "$T_CG/cgroup.procs" 2>/dev/null); do echo "$p" > "$CG2_ROOT/cgroup.procs"; done
		rmdir "$T_CG"
	fi
	[ "${KB_KEEP:-}" = 1 ] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT

t_setup() {
	[ "$(id -u)" = 0 ] || need "not root"
	CG2_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$CG2_ROOT" ] || need "no cgroup2 mount in /proc/mounts"
	T_CG="$CG2_ROOT/kb-$T_NAME-$$"
	mkdir "$T_CG" || need "cannot create cgroup $T_CG"
	ip netns add "$T_NS" || need "cannot create network namespace"
	ip -n "$T_NS" link set lo up
}

# Run a command inside the test's cgroup and network namespace.
in_test() {
	( echo "$BASHPID" > "$T_CG/cgroup.procs" && exec ip netns exec "$T_NS" "$@" )
}

# start_listener ADDR PORT SECONDS OUTFILE: kbtool listen in the test's
# namespace, in the background; sets LISTENER and returns once it listens.
start_listener() {
	rm -f "$T_DIR/ready"
	( echo "$BASHPID" > "$T_CG/cgroup.procs" &&
	  exec ip netns exec "$T_NS" "$KBTOOL" listen "$1" "$2" "$3" "$T_DIR/ready" > "$4" ) &
	LISTENER=$!
	for _ in $(seq 1 100); do [ -e "$T_DIR/ready" ] && return 0; sleep 0.02; done
	fail "listener on $1 port $2 did not start"
}

# Test ports: below the ephemeral range (32768+), so a connect never picks
# its own destination port as source and connects to itself.
#
# A TCP port free on the host's loopback (the agent's metrics).
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
	echo 0
}

# start_agent CONFIG: start kbreakerd and wait for /metrics.
start_agent() {
	"$KBREAKERD" -c "$1" --log-level debug >"$T_DIR/agent.log" 2>&1 &
	T_AGENT_PID=$!
	for _ in $(seq 1 100); do
		curl -sf "http://$T_LISTEN/metrics" >/dev/null 2>&1 && return 0
		kill -0 "$T_AGENT_PID" 2>/dev/null || break
		sleep 0.05
	done
	fail "agent did not come up"; cat "$T_DIR/agent.log"; exit 1
}

stop_agent() {
	local rc
	kill -TERM "$T_AGENT_PID"
	wait "$T_AGENT_PID"; rc=$?
	T_AGENT_PID=""
	return $rc
}

scrape() { curl -sf "http://$T_LISTEN/metrics"; }

# metric 'name{labels}': the value, or "absent".
metric() {
	scrape | awk -v k="$1" 'index($0, k " ") == 1 { print $2; found = 1 } END { if (!found) print "absent" }'
}

# expect_metric 'name{labels}' VALUE
expect_metric() {
	local got
	T_CHECKS=$((T_CHECKS + 1))
	got=$(metric "$1")
	[ "$got" = "$2" ] || fail "$1 = $got, want $2"
}

# wait_metric 'name{labels}' VALUE [TIMEOUT_S]: like expect_metric, for values
# the agent derives from events it may not have drained yet (successes do
# not wake it; it reads them at its next poll).
wait_metric() {
	local tries=$(( ${3:-2} * 20 ))
	for _ in $(seq 1 "$tries"); do
		[ "$(metric "$1")" = "$2" ] && break
		sleep 0.05
	done
	expect_metric "$1" "$2"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	T_CHECKS=$((T_CHECKS + 1))
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# wait_state CIRCUIT STATE [TIMEOUT_S]: poll the state gauge.
wait_state() {
	local tries=$(( ${3:-5} * 20 ))
	for _ in $(seq 1 "$tries"); do
		[ "$(metric "circuit_breaker_state{circuit_name=\"$1\",state=\"$2\"}")" = 1 ] && return 0
		sleep 0.05
	done
	fail "$1 never reached $2"
	return 1
}

# field KEY LINE: value of KEY=... in kbtool's output line.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

t_done() {
	if [ "$T_FAILED" -gt 0 ]; then
		log "agent log:"; sed 's/^/      /' "$T_DIR/agent.log" 2>/dev/null | tail -40
		log "FAILED ($T_FAILED of $T_CHECKS checks)"; exit 1
	fi
	log "ok ($T_CHECKS checks)"; exit 0
}
