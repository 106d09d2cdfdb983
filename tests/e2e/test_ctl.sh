#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# kbreakerctl against a running agent with breakers in three states: one
# open (refused connects tripped it, then it blocked two more), one closed
# (successful connects), one in observe mode (metrics_only). Checks every
# table cell but the time, the --json document, watch --count, and the
# errors: a dead URL, an endpoint that is not /status, usage mistakes.
. "$(dirname "$0")/lib.sh"
KBREAKERCTL=${KBREAKERCTL:-$(dirname "$KBREAKERD")/kbreakerctl}
[ -x "$KBREAKERCTL" ] || need "no $KBREAKERCTL (make all builds it)"
command -v jq >/dev/null || need "jq not installed (make deps)"
t_setup

PDOWN=$(test_port 3)
PUP=$((PDOWN + 1))
PWATCH=$((PDOWN + 2))
T_LISTEN="127.0.0.1:$(free_port)"
URL="http://$T_LISTEN"
agent_config poll_interval=100ms \
	defaults: mode=enforce consecutive_failures=3 open_duration=1h half_open_permits=1 \
	dest: name=down host=$T_ADDR port=$PDOWN \
	dest: name=up host=$T_ADDR port=$PUP \
	dest: name=watched host=$T_ADDR6 port=$PWATCH mode=observe > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
ctl() { "$KBREAKERCTL" --url "$URL" "$@"; }

log "drive three breakers: down (open), up (closed), watched (observe)"
out=$(in_test "$KBTOOL" connect $T_ADDR "$PDOWN" 3)
expect_eq "refused to down" "$(field refused "$out")" 3
wait_state down open
out=$(in_test "$KBTOOL" connect $T_ADDR "$PDOWN" 2)
expect_eq "blocked to down" "$(field refused "$out")" 2
start_listener $T_ADDR "$PUP" "$T_DIR/listen.out"
out=$(in_test "$KBTOOL" connect $T_ADDR "$PUP" 4)
expect_eq "successes to up" "$(field success "$out")" 4
out=$(in_test "$KBTOOL" connect $T_ADDR6 "$PWATCH" 2)
expect_eq "refused to watched" "$(field refused "$out")" 2

# The counters are cumulative in the kernel; wait until /status shows them
# all, and until the agent has drained the outcomes that did not wake it
# (it reads those at its next poll): watched's breaker has seen its two.
counts() { jq -c '[.destinations[] | .blocked, .failures, .consecutive_failures]' "$T_DIR/status.json" 2>/dev/null; }
all_counted() { ctl status --json > "$T_DIR/status.json" 2>/dev/null && [ "$(counts)" = "[2,3,0,0,0,0,0,2,2]" ]; }
wait_until "$T_WAIT_S" all_counted
expect_eq "blocked, failures, consecutive failures of each" "$(counts)" "[2,3,0,0,0,0,0,2,2]"

log "status --json: valid JSON, the agent's document"
check "status --json is valid JSON: $(cat "$T_DIR/status.json")" jq -e . "$T_DIR/status.json" >/dev/null
expect_eq "destinations" "$(jq '.destinations | length' "$T_DIR/status.json")" 3
expect_eq "names, states" "$(jq -c '[.destinations[] | .name, .state]' "$T_DIR/status.json")" \
	'["down","open","up","closed","watched","metrics_only"]'
expect_eq "down connects" "$(jq -c '.destinations[0].connects | {success, refused}' "$T_DIR/status.json")" \
	'{"success":0,"refused":3}'
expect_eq "up connects" "$(jq -c '.destinations[1].connects | {success, refused}' "$T_DIR/status.json")" \
	'{"success":4,"refused":0}'
expect_eq "version" "$(jq -r .version "$T_DIR/status.json")" "$("$KBREAKERD" --version | awk '{ print $2 }')"
expect_eq "open has a next_half_open_seconds" \
	"$(jq '.destinations[0].next_half_open_seconds > 3000' "$T_DIR/status.json")" true
expect_eq "--json is /status as served" "$(jq -c '.destinations | map(del(.time_in_state_seconds, .next_half_open_seconds))' "$T_DIR/status.json")" \
	"$(curl -sf "$URL/status" | jq -c '.destinations | map(del(.time_in_state_seconds, .next_half_open_seconds))')"

log "status: the table"
ctl status > "$T_DIR/table.txt" 2> "$T_DIR/table.err"
expect_eq "status exit" "$?" 0
expect_eq "status stderr" "$(cat "$T_DIR/table.err")" ""
expect_eq "table lines" "$(wc -l < "$T_DIR/table.txt")" 4
expect_eq "header" "$(head -1 "$T_DIR/table.txt" | tr -s ' ')" \
	"NAME ADDRESS STATE FAILURE RATE CONNECTS FAILURES BLOCKED TIME IN STATE"
# The rate column is the agent's failure_rate as a percentage, one decimal.
rate() { jq -r ".destinations[] | select(.name == \"$1\") | .failure_rate" "$T_DIR/status.json" |
	awk '{ printf "%.1f%%", $1 * 100 }'; }
row() { awk -v n="$1" '$1 == n { print $1, $2, $3, $4, $5, $6, $7 }' "$T_DIR/table.txt"; }
expect_eq "down row" "$(row down)" "down $T_ADDR:$PDOWN open $(rate down) 3 3 2"
expect_eq "up row" "$(row up)" "up $T_ADDR:$PUP closed $(rate up) 4 0 0"
expect_eq "watched row" "$(row watched)" "watched [$T_ADDR6]:$PWATCH metrics_only $(rate watched) 2 2 0"
check "time in state column: $(awk 'NR > 1 { print $8 }' "$T_DIR/table.txt" | tr '\n' ' ')" \
	awk 'NR > 1 && $8 !~ /^([0-9]+ms|[0-9]+\.[0-9]s|[0-9]+m[0-9][0-9]s)$/ { exit 1 }' "$T_DIR/table.txt"
# Columns line up: each cell starts where its header does.
hdr=$(head -1 "$T_DIR/table.txt")
for col in ADDRESS STATE CONNECTS BLOCKED; do
	pos=${hdr%%"$col"*}
	check "column $col aligned" awk -v p=${#pos} \
		'NR > 1 && (substr($0, p, 1) != " " || substr($0, p + 1, 1) == " ") { exit 1 }' "$T_DIR/table.txt"
done

log "KBREAKER_URL and a trailing slash"
expect_eq "KBREAKER_URL" "$(KBREAKER_URL="$URL/" "$KBREAKERCTL" status | awk '$1 == "down" { print $3 }')" open

log "watch --count 2: two frames, no terminal escapes when not a terminal"
ctl watch --interval 200ms --count 2 > "$T_DIR/watch.txt" 2>&1
expect_eq "watch exit" "$?" 0
expect_eq "watch frames" "$(grep -c '^Every 200ms: ' "$T_DIR/watch.txt")" 2
expect_eq "watch headers" "$(grep -c '^NAME ' "$T_DIR/watch.txt")" 2
expect_eq "watch rows of down" "$(awk '$1 == "down" { print $3 }' "$T_DIR/watch.txt" | tr '\n' ' ')" "open open "
expect_eq "watch escapes" "$(grep -c $'\033' "$T_DIR/watch.txt")" 0

log "errors: dead URL, not a /status endpoint, usage"
dead="http://127.0.0.1:$(free_port)"
out=$("$KBREAKERCTL" --url "$dead" status 2>&1); rc=$?
expect_eq "dead URL message" "$out" "kbreakerctl: cannot reach $dead: Connection refused"
expect_eq "dead URL exit" "$rc" 1
out=$("$KBREAKERCTL" --url "$dead" status --json 2>/dev/null); rc=$?
expect_eq "dead URL --json exit, stdout" "$rc:$out" "1:"
out=$("$KBREAKERCTL" --url "$dead" watch --interval 10ms --count 2 2>&1); rc=$?
expect_eq "dead URL watch exit" "$rc" 1
expect_eq "dead URL watch frames" "$(grep -c "^kbreakerctl: cannot reach $dead: Connection refused$" <<<"$out")" 2
out=$(ctl --url "$URL/metrics" status 2>&1); rc=$?
expect_eq "wrong endpoint" "$rc:$out" "1:kbreakerctl: $URL/metrics/status: HTTP 404"
ctl frobnicate >/dev/null 2>&1; expect_eq "unknown command exit" "$?" 2
ctl status --count 2 >/dev/null 2>&1; expect_eq "status --count exit" "$?" 2
ctl watch --interval 5 >/dev/null 2>&1; expect_eq "interval without unit exit" "$?" 2
"$KBREAKERCTL" >/dev/null 2>&1; expect_eq "no command exit" "$?" 2
expect_eq "--help" "$("$KBREAKERCTL" --help | head -1)" "Usage: kbreakerctl [--url URL] [--timeout DURATION] COMMAND [OPTIONS]"
expect_eq "--version" "$("$KBREAKERCTL" --version)" "kbreakerctl $("$KBREAKERD" --version | awk '{ print $2 }')"

log "status --by-workload: this agent runs without workloads: (attribution off)"
out=$(ctl status --by-workload 2> "$T_DIR/by-workload.err"); rc=$?
expect_eq "--by-workload, attribution off: exit, stdout" "$rc:$out" "1:"
expect_eq "--by-workload, attribution off: message" "$(cat "$T_DIR/by-workload.err")" \
	"kbreakerctl: workload attribution is off (workloads: in the agent's config)"
expect_eq "status --json --by-workload: the document" \
	"$(ctl status --json --by-workload | jq -c '[.destinations[].name]')" '["down","up","watched"]'
ctl watch --by-workload >/dev/null 2>&1; expect_eq "watch --by-workload exit" "$?" 2

kill "$LISTENER"; wait "$LISTENER"
stop_agent; expect_eq "kbreakerd exit status on SIGTERM" "$?" 0
t_done
