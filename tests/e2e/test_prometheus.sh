#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The shipped rules in a real Prometheus: the `prometheus` server scrapes
# kbreakerd (every 5 s) with deploy/prometheus/*.yml loaded as shipped.
# Refused connects trip a breaker; through Prometheus's HTTP API the state
# series turns open and KbreakerBreakerOpen goes pending, stays pending
# (same activeAt) while the breaker cycles open -> half_open -> open on a
# failed probe, then fires after its `for: 1m`. A listener heals the
# destination, the probes succeed, the breaker closes and the alert
# resolves. A scrape target with nothing behind it makes KbreakerAgentDown
# pending. The dashboard's queries all run, and its state timeline follows
# the breaker. Takes about 80 s, most of it the alert's `for`.
. "$(dirname "$0")/lib.sh"
t_setup
command -v prometheus >/dev/null || need "no prometheus binary (Debian package prometheus)"
command -v jq >/dev/null || need "no jq"

RULES_DIR=$(cd "$(dirname "$0")/../../deploy/prometheus" && pwd)
DASHBOARD=$(cd "$(dirname "$0")/../../deploy/grafana" && pwd)/kbreaker-dashboard.json
PROM_PID=""
# Prometheus is a background job of this shell; kill it first on every exit
# path, then the common cleanup (agent, namespace, cgroup, temp dir).
prom_cleanup() {
	[ -n "$PROM_PID" ] && kill -KILL "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
	PROM_PID=""
	t_cleanup
}
trap prom_cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(test_port 2)
QPORT=$((PORT + 1))
AGENT_PORT=$(free_port)
PROM_PORT=$(free_port)
while [ "$PROM_PORT" = "$AGENT_PORT" ]; do PROM_PORT=$(free_port); done
DEAD_PORT=$(free_port)
while [ "$DEAD_PORT" = "$AGENT_PORT" ] || [ "$DEAD_PORT" = "$PROM_PORT" ]; do DEAD_PORT=$(free_port); done
T_LISTEN="127.0.0.1:$AGENT_PORT"
PROM="http://127.0.0.1:$PROM_PORT"

# open_duration (15 s) is shorter than the alert's `for: 1m` on purpose: the
# alert must survive the open -> half_open -> open cycle this test makes.
agent_config poll_interval=100ms \
	defaults: mode=enforce consecutive_failures=2 open_duration=15s half_open_permits=2 \
	dest: name=svc host=$T_ADDR port=$PORT dest: name=quiet host=$T_ADDR port=$QPORT > "$T_DIR/kb.yaml"

cat > "$T_DIR/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES_DIR/kbreaker-recording.yml
  - $RULES_DIR/kbreaker-alerts.yml
scrape_configs:
  - job_name: kbreaker
    # A loaded machine has held a scrape of the agent 2.6 s (both CPUs
    # running emulated guests): a scrape that times out marks the agent's
    # series stale, and KbreakerBreakerOpen's for: 1m starts again.
    scrape_interval: 5s
    scrape_timeout: 5s
    static_configs:
      - targets: ['$T_LISTEN']
  - job_name: kbreaker-gone
    static_configs:
      - targets: ['127.0.0.1:$DEAD_PORT']
EOC

start_agent "$T_DIR/kb.yaml"
prometheus --config.file="$T_DIR/prometheus.yml" --storage.tsdb.path="$T_DIR/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$T_DIR/prometheus.log" 2>&1 &
PROM_PID=$!

# poll SECONDS COMMAND...: run COMMAND every 0.25 s until it succeeds, for at
# most SECONDS of wall time (a loaded machine makes each try slower).
poll() {
	local end=$((SECONDS + $1)); shift
	while :; do
		"$@" && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.25
	done
}

# pq PROMQL: the value of the single sample the instant query returns,
# "none" when it returns nothing, "many" when more than one.
pq() {
	curl -sfG "$PROM/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result | if length == 0 then "none" elif length > 1 then "many" else .[0].value[1] end'
}
pq_is() { [ "$(pq "$1")" = "$2" ]; }

# alerts JQ_FILTER: the active alerts (pending or firing) the filter selects, as a JSON array.
alerts() { curl -sf "$PROM/api/v1/alerts" | jq -c "[.data.alerts[] | select($1)]"; }
OPEN_SVC='.labels.alertname == "KbreakerBreakerOpen" and .labels.circuit_name == "svc"'
open_state() { alerts "$OPEN_SVC" | jq -r 'if length == 0 then "none" elif length > 1 then "many" else .[0].state end'; }
open_state_is() { [ "$(open_state)" = "$1" ]; }

expect_poll() { # WHAT SECONDS COMMAND...
	local what=$1; shift
	poll "$@"
	t_check $? "$what"
}

prom_failed() { log "prometheus log:"; sed 's/^/      /' "$T_DIR/prometheus.log" | tail -20; exit 1; }

log "prometheus on $PROM scrapes kbreakerd on $T_LISTEN with the shipped rules"
expect_poll "prometheus ready" "$T_WAIT_S" curl -sf "$PROM/-/ready" -o /dev/null || prom_failed
expect_poll "kbreakerd target up" "$T_WAIT_S" pq_is "up{job=\"kbreaker\"}" 1 || prom_failed
expect_poll "state series scraped" "$T_WAIT_S" pq_is "circuit_breaker_state{job=\"kbreaker\",circuit_name=\"svc\",state=\"closed\"}" 1
rules_ok() {
	curl -sf "$PROM/api/v1/rules" | jq -e '[.data.groups[].rules[]] | length > 0 and all(.health == "ok")' >/dev/null
}
expect_poll "every shipped rule evaluates" "$T_WAIT_S" rules_ok
expect_eq "KbreakerBreakerOpen loaded" \
	"$(curl -sf "$PROM/api/v1/rules" | jq -r '[.data.groups[].rules[] | select(.type == "alerting") | .name] | index("KbreakerBreakerOpen") != null')" true
expect_eq "no breaker alert while every breaker is closed" "$(alerts '.labels.circuit_name != null')" "[]"

# The kernel trips the breaker on the 2nd refusal, before that connect()
# returns: the 3rd is refused by the hook, whatever the agent's speed.
log "2 refused connects trip svc, the next one is refused by the hook"
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 3)
expect_eq "refused (2 by the closed port, 1 by the hook)" "$(field refused "$out")" 3
wait_state svc open
t_open=$SECONDS

# Prometheus scrapes the agent every 5 s; open lasts open_duration (15 s):
# the one wait here that has to fit a window, three scrapes long.
log "Prometheus sees open and the blocked connect, the alert goes pending"
expect_poll "state open in Prometheus" 15 pq_is "circuit_breaker_state{job=\"kbreaker\",circuit_name=\"svc\",state=\"open\"}" 1
expect_eq "closed series in Prometheus" \
	"$(pq "circuit_breaker_state{job=\"kbreaker\",circuit_name=\"svc\",state=\"closed\"}")" 0
expect_poll "KbreakerBreakerOpen pending" "$T_WAIT_S" open_state_is pending
active_at=$(alerts "$OPEN_SVC" | jq -r '.[0].activeAt')
expect_poll "blocked connect in Prometheus" "$T_WAIT_S" pq_is "kbreaker_connects_blocked_total{job=\"kbreaker\",circuit_name=\"svc\"}" 1

log "half_open, a failed probe, open again: the alert stays pending from the same time"
wait_state svc half_open
expect_poll "state half_open in Prometheus" "$T_WAIT_S" pq_is "circuit_breaker_state{job=\"kbreaker\",circuit_name=\"svc\",state=\"half_open\"}" 1
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 1)
expect_eq "failed probe" "$(field refused "$out")" 1
wait_state svc open
expect_poll "half_open -> open in Prometheus" "$T_WAIT_S" pq_is \
	"circuit_breaker_state_transition_total{job=\"kbreaker\",circuit_name=\"svc\",old_state=\"half_open\",new_state=\"open\"}" 1
expect_eq "alert state after the cycle" "$(open_state)" pending
expect_eq "alert activeAt after the cycle" "$(alerts "$OPEN_SVC" | jq -r '.[0].activeAt')" "$active_at"

log "wait for the alert's for: 1m"
expect_poll "KbreakerBreakerOpen firing" $((60 + T_WAIT_S)) open_state_is firing
log "firing $((SECONDS - t_open)) s after the breaker opened"
a=$(alerts "$OPEN_SVC" | jq -c '.[0]')
expect_eq "alert labels" "$(jq -c '.labels' <<<"$a")" \
	"$(jq -cn --arg i "$T_LISTEN" '{alertname: "KbreakerBreakerOpen", circuit_name: "svc", instance: $i, job: "kbreaker", severity: "warning"}')"
expect_eq "alert summary" "$(jq -r '.annotations.summary' <<<"$a")" "Circuit breaker svc open on $T_LISTEN"
expect_eq "alert activeAt when firing" "$(jq -r '.activeAt' <<<"$a")" "$active_at" ||
	log "  the agent's scrapes meanwhile: up min $(pq "min_over_time(up{job=\"kbreaker\",instance=\"$T_LISTEN\"}[3m])"), slowest $(pq "max_over_time(scrape_duration_seconds{job=\"kbreaker\",instance=\"$T_LISTEN\"}[3m])") s"
expect_eq "ALERTS series" "$(pq 'ALERTS{alertname="KbreakerBreakerOpen",alertstate="firing"}')" 1
expect_eq "no alert for quiet" "$(alerts '.labels.circuit_name == "quiet"')" "[]"
down=$(alerts ".labels.alertname == \"KbreakerAgentDown\"" | jq -c '[.[] | {instance: .labels.instance, job: .labels.job}]')
expect_eq "KbreakerAgentDown for the target with nothing behind it, only" "$down" \
	"$(jq -cn --arg i "127.0.0.1:$DEAD_PORT" '[{instance: $i, job: "kbreaker-gone"}]')"
expect_eq "KbreakerAgentAbsent" "$(alerts '.labels.alertname == "KbreakerAgentAbsent"')" "[]"
expect_eq "every rule still evaluates" "$(rules_ok && echo ok)" ok

log "the shipped dashboard's queries run in Prometheus; its state timeline says half_open"
query_ok() { curl -sfG "$PROM/api/v1/query" --data-urlencode "query=$1" | jq -e '.status == "success"' >/dev/null; }
# dash_expr EXPR: Grafana's variables replaced as it would for circuit svc, all hosts.
dash_expr() { sed -e 's/\$__rate_interval/5s/g; s/\$__interval/5s/g; s/\$circuit_name/svc/g; s/\$instance/.*/g' <<<"$1"; }
while IFS= read -r e; do
	q=$(dash_expr "$(jq -r . <<<"$e")")
	check "dashboard query runs: $q" query_ok "$q"
done < <(jq -c '.panels[].targets[]?.expr' "$DASHBOARD")
timeline=$(dash_expr "$(jq -r '.panels[] | select(.type == "state-timeline") | .targets[0].expr' "$DASHBOARD")")
# The second open period (30 s) ends about when the alert fires.
wait_state svc half_open
expect_poll "state timeline for svc (1: half_open)" "$T_WAIT_S" pq_is "$timeline" 1

log "heal: a listener, 2 probes succeed, the breaker closes, the alert resolves"
start_listener $T_ADDR "$PORT" "$T_DIR/listen.out"
wait_state svc half_open
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 2)
expect_eq "probes" "$(field success "$out")" 2
wait_state svc closed
expect_poll "state closed in Prometheus" "$T_WAIT_S" pq_is "circuit_breaker_state{job=\"kbreaker\",circuit_name=\"svc\",state=\"closed\"}" 1
expect_poll "KbreakerBreakerOpen resolved" "$T_WAIT_S" open_state_is none
expect_eq "state timeline for svc (0: closed)" "$(pq "$timeline")" 0
expect_eq "no firing ALERTS series" "$(pq 'ALERTS{alertname="KbreakerBreakerOpen",alertstate="firing"}')" none
expect_eq "successes in Prometheus" \
	"$(pq "kbreaker_tcp_connects_total{job=\"kbreaker\",circuit_name=\"svc\",result=\"success\"}")" 2
kill "$LISTENER"; wait "$LISTENER"
expect_eq "listener accepted" "$(cat "$T_DIR/listen.out")" "accepted=2"

kill -KILL "$PROM_PID"; wait "$PROM_PID" 2>/dev/null; PROM_PID=""
stop_agent; expect_eq "kbreakerd exit status on SIGTERM" "$?" 0
t_done
