#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make demo: the breaker's story, told as it happens. In a network namespace
# and a cgroup of its own: a server on 127.0.0.1 that goes down and comes
# back, and a client connecting twice a second; on the host's loopback (the
# agent needs the host's /sys, which `ip netns exec` remounts): kbreakerd
# enforcing on that cgroup, and a real Prometheus scraping it with the
# shipped alert rules (their `for:` shortened so they fire within the demo).
# Prints each breaker transition, each alert state change and what the
# client saw; removes everything on exit.
# Unattended, about a minute. Usage: demo/demo.sh [BUILD_DIR] (root).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd) || exit 1
. "$ROOT/tests/e2e/sandbox.sh"
KBREAKERD=$BUILD/kbreakerd KBTOOL=$BUILD/kbtool KBREAKERCTL=$BUILD/kbreakerctl
PROMETHEUS=${PROMETHEUS:-prometheus} PROMTOOL=${PROMTOOL:-promtool}
NS="kb-demo-$$"
PORT=$((30000 + RANDOM % 10000))
OPEN_DURATION=5
MAX_SECONDS=100		# the whole story, with margin; the demo stops here whatever happens
DIR=$(mktemp -d /tmp/kb-demo.XXXXXX)
CG=""
PIDS=()

die() { echo "demo: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it loads BPF programs and creates a namespace)"
for b in "$KBREAKERD" "$KBTOOL" "$KBREAKERCTL"; do [ -x "$b" ] || die "no $b (make all $BUILD/kbtool)"; done
command -v "$PROMETHEUS" >/dev/null || die "no prometheus (apt-get install prometheus, or make deps)"
command -v jq >/dev/null || die "no jq (make deps)"

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do echo "$p" > "$CG2_ROOT/cgroup.procs"; done
		rmdir "$CG"
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$(date +%s%N)
say() { printf '[%5.1fs] %s\n' "$(( ($(date +%s%N) - T0) / 1000000 ))e-3" "$*"; }
in_ns() { ip netns exec "$NS" "$@"; }

sandbox_up "$NS"; rc=$?
CG=$SANDBOX_CG
[ "$rc" = 0 ] || die "$SANDBOX_ERR"
AGENT_PORT=$(free_port) || die "no free port"
PROM_PORT=$(free_port) || die "no free port"
[ "$AGENT_PORT" != "$PROM_PORT" ] || PROM_PORT=$(free_port) || die "no free port"

cat > "$DIR/kbreaker.yaml" <<EOC
listen: 127.0.0.1:$AGENT_PORT
cgroup: $CG
poll_interval: 100ms
defaults:
  mode: enforce
  consecutive_failures: 3
  open_duration: ${OPEN_DURATION}s
  half_open_permits: 2
destinations:
  - name: backend
    host: 127.0.0.1
    port: $PORT
EOC

# The shipped rules, with every `for:` cut to 5s so alerts fire within the demo.
RULES=()
for f in "$ROOT"/deploy/prometheus/kbreaker-*.yml; do
	[ -e "$f" ] || continue
	case $f in *.test.yml) continue ;; esac
	sed -E 's/^([[:space:]]+for:[[:space:]]*).*/\15s/' "$f" > "$DIR/$(basename "$f")"
	RULES+=("$(basename "$f")")
done
if [ ${#RULES[@]} -gt 0 ] && command -v "$PROMTOOL" >/dev/null &&
   ! (cd "$DIR" && "$PROMTOOL" check rules "${RULES[@]}" >"$DIR/promtool.out" 2>&1); then
	echo "demo: the shipped rules do not load; running Prometheus without them:"; sed 's/^/  /' "$DIR/promtool.out"
	RULES=()
fi
{
	printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n'
	if [ ${#RULES[@]} -gt 0 ]; then
		printf 'rule_files:\n'; printf '  - %s\n' "${RULES[@]}"
	fi
	printf 'scrape_configs:\n  - job_name: kbreaker\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' "$AGENT_PORT"
} > "$DIR/prometheus.yml"

echo "kbreaker demo: a server that fails and recovers, a client, kbreakerd, Prometheus."
echo "  namespace $NS, cgroup $CG"
echo "  breaker: 3 refused connects in a row trip it; open ${OPEN_DURATION}s; 2 probes close it"
if [ ${#RULES[@]} -gt 0 ]; then
	echo "  alerts: ${RULES[*]} from deploy/prometheus/ (for: shortened to 5s)"
else
	echo "  alerts: none (deploy/prometheus/kbreaker-alerts.yml not found)"
fi
echo

"$KBREAKERD" -c "$DIR/kbreaker.yaml" > "$DIR/agent.log" 2>&1 &
PIDS+=($!)
(cd "$DIR" && exec "$PROMETHEUS" --config.file=prometheus.yml \
	--storage.tsdb.path="$DIR/tsdb" --web.listen-address=127.0.0.1:$PROM_PORT --log.level=warn) \
	> "$DIR/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 150); do
	curl -sf http://127.0.0.1:$AGENT_PORT/healthz >/dev/null 2>&1 &&
		curl -sf http://127.0.0.1:$PROM_PORT/-/ready >/dev/null 2>&1 && break
	sleep 0.1
done
curl -sf http://127.0.0.1:$AGENT_PORT/healthz >/dev/null || { cat "$DIR/agent.log"; die "kbreakerd did not start"; }
curl -sf http://127.0.0.1:$PROM_PORT/-/ready >/dev/null || { cat "$DIR/prometheus.log"; die "prometheus did not start"; }
# Start the story once Prometheus has scraped the agent and evaluated the rules on it.
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up" | grep -q '"value":\[[0-9.]*,"1"\]' && break
	sleep 0.1
done
sleep 2
T0=$(date +%s%N)
say "kbreakerd and Prometheus up (scrape and rule evaluation every 1s)"

# server_up: kbtool listen in the namespace; SERVER is its pid.
server_up() {
	rm -f "$DIR/ready"
	ip netns exec "$NS" "$KBTOOL" listen 127.0.0.1 "$PORT" 300 "$DIR/ready" >/dev/null &
	SERVER=$!
	PIDS+=("$SERVER")
	for _ in $(seq 1 100); do [ -e "$DIR/ready" ] && break; sleep 0.02; done
}
server_up
say "server up on 127.0.0.1:$PORT"

# The client: one connect every 500ms from inside the cgroup, one line each.
(
	echo "$BASHPID" > "$CG/cgroup.procs"
	for _ in $(seq 1 $((MAX_SECONDS * 2))); do
		ip netns exec "$NS" "$KBTOOL" connect 127.0.0.1 "$PORT" 1 1000
		sleep 0.5
	done
) > "$DIR/client.log" 2>&1 &
PIDS+=($!)
say "client connecting to 127.0.0.1:$PORT every 500ms"

status_field() { curl -sf http://127.0.0.1:$AGENT_PORT/status | jq -r ".destinations[0].$1 // 0"; }

# One tick of narration: new breaker transitions from the agent's log, the
# client's outcome when it changes, alert state changes from Prometheus.
BLOCKED_LAST=0 LOG_SEEN=0 CLIENT_SEEN=0 CLIENT_LAST="" ALERTS_LAST="" STATE=closed OPENED=0 FIRED=0
narrate() {
	local lines line old new cause outcome alerts a blocked
	lines=$(wc -l < "$DIR/agent.log")
	if [ "$lines" -gt "$LOG_SEEN" ]; then
		while IFS= read -r line; do
			old=$(grep -o 'old_state=[a-z_]*' <<<"$line" | cut -d= -f2)
			new=$(grep -o 'new_state=[a-z_]*' <<<"$line" | cut -d= -f2)
			[ -n "$old" ] && [ -n "$new" ] || continue
			cause=$(grep -o 'cause=[a-z_]*' <<<"$line" | cut -d= -f2)
			say "BREAKER $old -> $new${cause:+ (cause: $cause)}"
			STATE=$new
			[ "$new" = open ] && OPENED=1
		done < <(sed -n "$((LOG_SEEN + 1)),${lines}p" "$DIR/agent.log")
		LOG_SEEN=$lines
	fi
	lines=$(wc -l < "$DIR/client.log")
	if [ "$lines" -gt "$CLIENT_SEEN" ]; then
		line=$(sed -n "${lines}p" "$DIR/client.log")
		CLIENT_SEEN=$lines
		case $line in
		*success=1*) outcome="connects succeed" ;;
		*refused=1*)
			# Refused by the hook or by the peer: the blocked counter tells.
			blocked=$(status_field blocked)
			if [ "${blocked:-0}" -gt "$BLOCKED_LAST" ]; then
				outcome="connects refused at once by kbreaker, no packet sent (blocked so far: $blocked)"
			else
				outcome="connects refused by the peer"
			fi
			BLOCKED_LAST=${blocked:-0} ;;
		*) outcome="connects fail: $line" ;;
		esac
		[ "$outcome" = "$CLIENT_LAST" ] || [ "${outcome%% (*}" = "${CLIENT_LAST%% (*}" ] || say "client: $outcome"
		CLIENT_LAST=$outcome
	fi
	alerts=$(curl -sf http://127.0.0.1:$PROM_PORT/api/v1/alerts |
		jq -r '.data.alerts[] | "\(.labels.alertname)=\(.state)"' 2>/dev/null | sort | tr '\n' ' ')
	for a in $alerts; do
		case " $ALERTS_LAST " in *" $a "*) continue ;; esac
		say "ALERT ${a%%=*}: ${a#*=}"
		[ "${a#*=}" = firing ] && FIRED=1
	done
	for a in $ALERTS_LAST; do
		case " $alerts " in *" ${a%%=*}="*) continue ;; esac
		say "ALERT ${a%%=*}: resolved"
	done
	ALERTS_LAST=$alerts
}

# tick_until SECONDS CONDITION: narrate every 200ms until CONDITION holds or
# SECONDS pass.
tick_until() {
	local i
	for ((i = 0; i < $1 * 5; i++)); do
		narrate
		eval "$2" && return 0
		sleep 0.2
	done
	return 1
}

tick_until 4 false
say "server DOWN (killed)"
kill "$SERVER"; wait "$SERVER" 2>/dev/null
# Down long enough to trip, cycle through half_open and fire the open alert.
tick_until 40 '[ "$OPENED" = 1 ] && [ "$FIRED" = 1 ]' ||
	{ [ ${#RULES[@]} -eq 0 ] || say "(no alert fired while the server was down)"; }
tick_until 2 false
server_up
say "server back UP"
tick_until 30 '[ "$STATE" = closed ] && ! grep -q KbreakerBreakerOpen <<<"$ALERTS_LAST"' ||
	say "(the story did not end within 30s of the recovery)"
tick_until 2 false

echo
say "the end. kbreakerctl status:"
"$KBREAKERCTL" --url "http://127.0.0.1:$AGENT_PORT" status | sed 's/^/    /'
ok=$(grep -c 'success=1' "$DIR/client.log") refused=$(grep -c 'refused=1' "$DIR/client.log")
echo "    client: $ok connects succeeded, $refused refused; $(status_field blocked) of them by kbreaker"
echo "    without a packet leaving (kbreaker_connects_blocked_total)."
