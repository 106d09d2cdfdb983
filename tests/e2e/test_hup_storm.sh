#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A storm of SIGHUPs (a reload loop gone wrong, a config manager retrying)
# must not hold the loop: it beats between reloads, so the hooks never fail
# open (failopen_after 2s) while the agent is working. Before the fix,
# read_signals() reloaded for as long as a new SIGHUP came in during the
# previous reload, and the open breaker let every connect through.
. "$(dirname "$0")/lib.sh"
t_setup
PORT=$(test_port 1)
T_LISTEN="127.0.0.1:$(free_port)"
agent_config failopen_after=2s dest: name=hot host=$T_ADDR port=$PORT mode=forced_open \
	> "$T_DIR/kb.yaml"
# Many destinations: each reload takes long enough for the next SIGHUP to come in.
for i in $(seq 1 3000); do
	echo "  - { name: d$i, host: 127.3.$((i / 250)).$((i % 250 + 1)), port: $PORT }"
done >> "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
start_listener $T_ADDR "$PORT" "$T_DIR/listen.out"
( end=$((SECONDS + 6)); while [ $SECONDS -lt $end ]; do kill -HUP "$T_AGENT_PID" 2>/dev/null; sleep 0.005; done ) &
HUPS=$!
out=$(in_test timeout 7 "$KBTOOL" connect $T_ADDR "$PORT" 1000000000 2>/dev/null)
wait "$HUPS"
log "connects to the forced_open destination during the SIGHUP storm: $out"
expect_metric 'kbreaker_connects_failopen_total' 0
check "the agent is alive after the storm" kill -0 "$T_AGENT_PID"
t_done
