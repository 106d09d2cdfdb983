#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A log reader that stalls (journald busy, a pipe nobody drains) must not
# hold the agent's loop: held past failopen_after, every open breaker lets
# connects through. The agent's stderr here is a FIFO that the test holds
# open and fills, and never reads until the end.
# - a breaker trips while stderr is full (its "breaker open" line cannot be
#   written) and refuses every connect for 6 s, with failopen_after 2s:
#   kbreaker_connects_failopen_total stays 0 (before the fix, the loop
#   hung on that line: 17 of 60 refused, the rest let through, and /metrics
#   never showed the breaker open);
# - the lines that did not fit are counted (kbreaker_log_lines_dropped_total);
# - drained, stderr gets whole lines again, the first one saying how many
#   were dropped.
. "$(dirname "$0")/lib.sh"
t_setup
P=$(test_port 1)
T_LISTEN="127.0.0.1:$(free_port)"
agent_config failopen_after=2s dest: name=st host=$T_ADDR port=$P consecutive_failures=3 \
	open_duration=1h mode=enforce > "$T_DIR/kb.yaml"
mkfifo "$T_DIR/err"
exec 8<>"$T_DIR/err"	# the only reader, and it reads nothing until the end
"$KBREAKERD" -c "$T_DIR/kb.yaml" --log-level debug 2>"$T_DIR/err" >/dev/null &
T_AGENT_PID=$!
wait_until "$T_WAIT_S" agent_up_or_gone
check "agent up (serving /metrics)" scrape_ok || t_done
# Full: cat blocks once the pipe holds all it can, and is stopped there.
timeout 2 cat /dev/zero >&8
log "stderr full; trip the breaker"
expect_field "refused (closed port)" refused 3 in_test "$KBTOOL" connect $T_ADDR "$P" 3
start_listener $T_ADDR "$P" "$T_DIR/listen.out"
# 60 connects, 100 ms apart: 6 s, three times failopen_after.
refused=0 other=0
for _ in $(seq 60); do
	r=$(in_test "$KBTOOL" connect $T_ADDR "$P" 1 1000)
	if [ "$(field refused "$r")" = 1 ]; then refused=$((refused + 1)); else other=$((other + 1)); fi
	sleep 0.1
done
expect_eq "connects refused for 6 s with stderr full (other: $other)" "$refused" 60
wait_state st open
expect_metric kbreaker_connects_failopen_total 0
metric_above kbreaker_log_lines_dropped_total 0
t_check $? "lines dropped counted: $(metric kbreaker_log_lines_dropped_total)"
log "drain stderr; a reload's lines come whole, after the count of those dropped"
# Both reads are kept, the fill's zeros left out: a line logged while
# draining (the HTTP thread's, say) may be the one the count comes before.
timeout 2 cat <&8 | tr -d '\0' > "$T_DIR/after.log"
kill -HUP "$T_AGENT_PID"
wait_metric 'kbreaker_config_reloads_total{result="success"}' 1
timeout 2 cat <&8 >> "$T_DIR/after.log"
check "the dropped lines reported" grep -Eq '^ts=[^ ]+ level=warn msg="log lines dropped: stderr did not take them" dropped=[1-9]' "$T_DIR/after.log"
check "the reload logged whole" grep -q 'level=info msg="configuration reloaded" kept=1 added=0 removed=0$' "$T_DIR/after.log"
check "agent stops cleanly" stop_agent
t_done
