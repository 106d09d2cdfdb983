#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A local flood cannot blind the endpoint (issue 13). While 1,000
# connections from one source (127.0.0.1, like the scraper) and then 1,000
# from 100 sources (127.0.1.1-100) hold half-sent requests or sit idle, and
# the flood reopens at once every connection the agent drops, 10 scrapes of
# /metrics and 10 /healthz checks from 127.0.0.1 each answer 200 within 1 s;
# the agent serves no more than its connection limit, holds no more than
# its pen's and its RSS stays bounded.
# Then slow readers (found by review): 48 connections from user nobody ask
# for a /metrics of 11 MB and take it at 128 KiB/s, never idle but far too
# slow to finish in 30 s. The agent holds at most 4 rendered pages (then
# shares the newest) plus one per other kind, so its RSS grows by a few
# pages, not 48; a scrape meanwhile gets a whole page; the response deadline
# (30 s) cuts the readers and frees their pages; then a scrape is rendered
# fresh again.
. "$(dirname "$0")/lib.sh"
t_setup
HTTPABUSE="$(dirname "$KBREAKERD")/httpabuse"
[ -x "$HTTPABUSE" ] || { fail "missing $HTTPABUSE (make all builds it)"; t_done; }
# The agent and the flood each need more than 1,024 descriptors at worst.
ulimit -n 8192 || need "cannot raise the descriptor limit to 8192"

HPORT=$(free_port)
T_LISTEN="127.0.0.1:$HPORT"
# The requirement itself (issue 13): every answer within 1 s.
ANSWER_MAX_S=1
# A flood ends after this long at the latest; the test stops it (SIGTERM)
# once its checks are done, a few seconds in.
HOLD_S=60
# The agent's limits (agent/http_priv.h): connections served, and how many it
# may still be closing on top of those; incomplete ones held unread.
CONN_MAX=64
CONN_SLACK=64
PARK_MAX=1024
# RSS: measured 8-10 MiB during and after the floods, +0.3-0.8 MiB across
# all four; ASan's shadow memory and quarantine need more, and its
# quarantine grows by design (no growth check there).
RSS_MAX_KB=$((64 * 1024))
RSS_GROWTH_MAX_KB=$((8 * 1024))
ASAN=0
ldd "$KBREAKERD" 2>/dev/null | grep -q libasan && { ASAN=1; RSS_MAX_KB=$((512 * 1024)); }
agent_config poll_interval=100ms dest: name=svc host=127.0.0.1 port=$(test_port 1) \
	> "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$T_AGENT_PID/status"; }
# Connections the agent holds, served or held unread: its sockets beyond
# those it had at the start (ss -p cannot tell under a flood that replaces
# them in milliseconds).
sockets() { find "/proc/$T_AGENT_PID/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
held() { echo $(($(sockets) - SOCKETS0)); }
SOCKETS0=$(sockets)
served() { ss -Htn state established "( sport = :$HPORT )" | awk '$1 == 0' | wc -l; }
# Bytes of answers queued in the agent's sockets, not yet taken by clients.
sendq() { ss -Htn state established "( sport = :$HPORT )" | awk '{ q += $2 } END { print q + 0 }'; }
# timed PATH: one GET from 127.0.0.1, given at most ANSWER_MAX_S; prints
# "CODE SECONDS" (CODE 000 when there was no answer in time).
timed() {
	curl -s -o /dev/null --interface 127.0.0.1 -m "$ANSWER_MAX_S" \
		-w '%{http_code} %{time_total}\n' "http://$T_LISTEN$1"
}
# p50 and max of the seconds in file $1, as "p50 X ms, max Y ms".
latency() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		printf "p50 %.1f ms, max %.1f ms", v[int((NR + 1) / 2)] * 1000, v[NR] * 1000 }'
}

# flood NSRC PAYLOAD: 1,000 connections, reopened as the agent drops them;
# 10 scrapes and 10 health checks during it.
flood() {
	local what="1,000 connections from $1 source(s), $2" fl n i r code s t_end peak=0 served_peak="" rss_peak=0
	"$HTTPABUSE" flood 127.0.0.1 "$HPORT" 1000 "$HOLD_S" "$1" "$2" reopen > "$T_DIR/flood.out" &
	fl=$!
	# The flood is on once the agent holds at least its limit: at once for
	# half-sent requests; idle connections wait in the kernel
	# (TCP_DEFER_ACCEPT, 5 s) and reach the agent after about 7 s.
	t_end=$((SECONDS + 15))
	while n=$(held); [ "$n" -lt "$CONN_MAX" ] && [ "$SECONDS" -lt "$t_end" ]; do
		sleep 0.05
	done
	[ "$n" -ge "$CONN_MAX" ]
	t_check $? "$what: the agent holds $n connections, the flood did not fill $CONN_MAX"
	: > "$T_DIR/lat"
	for i in $(seq 1 10); do
		for p in /metrics /healthz; do
			r=$(timed "$p")
			code=${r% *} s=${r#* }
			echo "$s" >> "$T_DIR/lat"
			[ "$code" = 200 ]
			t_check $? "$what: GET $p #$i: status $code after ${s}s (want 200 within ${ANSWER_MAX_S}s)"
		done
		n=$(held)
		[ "$n" -gt "$peak" ] && peak=$n
		if [ "$2" = half ]; then
			n=$(served)
			[ "$n" -gt "${served_peak:-0}" ] && served_peak=$n
		fi
		r=$(rss_kb)
		[ "$r" -gt "$rss_peak" ] && rss_peak=$r
		kill -0 "$fl" 2>/dev/null || break
	done
	kill -TERM "$fl" 2>/dev/null
	t_check $? "$what: the flood ended before the checks did"
	wait "$fl"
	log "  $what: $(cat "$T_DIR/flood.out")"
	log "    answers: $(latency "$T_DIR/lat") over $(wc -l < "$T_DIR/lat"); agent held up to $peak" \
	    "connections${served_peak:+, served up to $served_peak}; VmRSS up to $rss_peak kB"
	agent_alive "$what"
	[ "$peak" -le $((CONN_MAX + CONN_SLACK + PARK_MAX)) ]
	t_check $? "$what: the agent held $peak connections, limit $((CONN_MAX + CONN_SLACK + PARK_MAX))"
	# Half-sent requests show which connections the agent serves: it has
	# read theirs (Recv-Q 0); the ones it holds still have theirs unread.
	[ "$2" = idle ] || [ "${served_peak:-0}" -le $((CONN_MAX + CONN_SLACK)) ]
	t_check $? "$what: the agent served $served_peak connections, limit $CONN_MAX (+$CONN_SLACK closing)"
	[ "$rss_peak" -lt "$RSS_MAX_KB" ]
	t_check $? "$what: VmRSS $rss_peak kB over $RSS_MAX_KB kB"
	# The flood kept up its pressure: every connection it opened connected.
	[ "$(field connected "$(cat "$T_DIR/flood.out")")" -ge 1000 ]
	t_check $? "$what: fewer than 1,000 connections got through: $(cat "$T_DIR/flood.out")"
}

rss0=$(rss_kb)
log "1,000 connections from 127.0.0.1, the scraper's own address"
flood 1 half
flood 1 idle
log "1,000 connections from 100 addresses"
flood 100 half
flood 100 idle
r=$(timed /healthz)
expect_eq "/healthz after the floods" "${r% *}" 200
rss1=$(rss_kb)
log "VmRSS kB: before $rss0, after the floods $rss1 (bound $RSS_MAX_KB)"
[ "$rss1" -lt "$RSS_MAX_KB" ]
t_check $? "VmRSS $rss1 kB over $RSS_MAX_KB kB after the floods"
[ "$ASAN" = 1 ] || [ $((rss1 - rss0)) -lt "$RSS_GROWTH_MAX_KB" ]
t_check $? "VmRSS grew from $rss0 to $rss1 kB across the floods (bound +$RSS_GROWTH_MAX_KB kB)"
agent_alive "end"
stop_agent; expect_eq "exit status on SIGTERM" "$?" 0

command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 || need "setpriv or user nobody missing"
# 4,000 destinations: a /metrics of about 11 MB. "hot" counts refused connects.
NDST=4000
P=$(test_port 1)
HPORT=$(free_port)
T_LISTEN="127.0.0.1:$HPORT"
{
	echo "listen: $T_LISTEN"
	echo "cgroup: $T_CG"
	echo "max_destinations: 8192"
	echo "defaults: { mode: observe, consecutive_failures: 1000000 }"
	echo "destinations:"
	echo "  - { name: hot, host: $T_ADDR, port: $P }"
	for i in $(seq 1 $((NDST - 1))); do
		echo "  - { name: d-$i, host: 127.1.$((i / 250)).$((1 + i % 250)), port: $P }"
	done
} > "$T_DIR/big.yaml"
start_agent "$T_DIR/big.yaml"
HOT="kbreaker_tcp_connects_total{circuit_name=\"hot\",result=\"refused\"}"
scrape > "$T_DIR/page"
PAGE_KB=$(($(wc -c < "$T_DIR/page") / 1024))
# The last family of a whole page (metrics.c writes it last).
LAST=$(awk '/^# TYPE / { f = $3 } END { print f }' "$T_DIR/page")
# Pages the agent holds: 4 rendered, then shared (page_cache.h; all of one
# kind here, the scrape's too); 10 leaves room for a render's own buffers.
# Without the limit each of the 48 readers holds a page of its own.
READERS=48
RSS_PAGES_MAX=10
# The readers would take 90 s for a page and stay up for 120 s: only the
# response deadline (30 s after its request, checked every 0.5 s) ends
# their answers within CUT_MAX_S of their start.
SLOW_S=120
SLOW_KIB_S=128
CUT_MAX_S=60
SOCKETS0=$(sockets)
agent_let_go() { [ "$(held)" -le 0 ]; }
rss0=$(rss_kb)
log "slow readers: $READERS as nobody on /metrics of $PAGE_KB kB (last family $LAST), VmRSS $rss0 kB"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$HTTPABUSE" slowread 127.0.0.1 "$HPORT" "$READERS" "$SLOW_S" /metrics "$SLOW_KIB_S" > "$T_DIR/slow.out" &
SLOW=$!
t_slow=$SECONDS
# While they read: RSS every 0.2 s, refused connects to "hot", one scrape.
rss_peak=0
sendq_peak=0
t_end=$((SECONDS + 8))
while [ "$SECONDS" -lt "$t_end" ]; do
	r=$(rss_kb); [ "$r" -gt "$rss_peak" ] && rss_peak=$r
	q=$(sendq); [ "$q" -gt "$sendq_peak" ] && sendq_peak=$q
	sleep 0.2
done
out=$(in_test "$KBTOOL" connect "$T_ADDR" "$P" 3)
expect_eq "refused connects to hot during the slow readers" "$(field refused "$out")" 3
t0=$(date +%s%N)
http_get /metrics > "$T_DIR/during"; rc=$?
t1=$(date +%s%N)
expect_eq "scrape during the slow readers" "$rc" 0
log "  scrape during the slow readers: $(wc -c < "$T_DIR/during") bytes in $(( (t1 - t0) / 1000000 )) ms"
grep -q "^# TYPE $LAST " "$T_DIR/during"
t_check $? "scrape during the slow readers: no $LAST family: the page is not whole"
if command -v "$PROMTOOL" >/dev/null; then
	check "promtool check metrics on the scrape during the slow readers" sh -c \
		'"$1" check metrics < "$2" > "$3" 2>&1' sh "$PROMTOOL" "$T_DIR/during" "$T_DIR/promtool.out" ||
		sed 's/^/      /' "$T_DIR/promtool.out" | head -5
fi
t_end=$((SECONDS + 4))
while [ "$SECONDS" -lt "$t_end" ]; do
	r=$(rss_kb); [ "$r" -gt "$rss_peak" ] && rss_peak=$r
	sleep 0.2
done
log "  VmRSS up to $rss_peak kB (+$((rss_peak - rss0)) kB, $(( (rss_peak - rss0) / (PAGE_KB ? PAGE_KB : 1) )) pages)"
# Each reader's socket queues at most twice HTTP_SNDBUF (256 KiB, http_priv.h):
# 24 MiB for 48. Left to autotuning, each one grows to tcp_wmem's maximum.
log "  the kernel held up to $((sendq_peak / 1024)) kB of answers for them (bound $((READERS * 512)) kB)"
[ "$sendq_peak" -le $((READERS * 512 * 1024)) ]
t_check $? "slow readers: $sendq_peak bytes queued in the agent's sockets, over $READERS x 512 KiB"
# ASan's quarantine keeps what renders freed: no bound there.
[ "$ASAN" = 1 ] || [ $((rss_peak - rss0)) -lt $((RSS_PAGES_MAX * PAGE_KB + 16 * 1024)) ]
t_check $? "slow readers: VmRSS grew by $((rss_peak - rss0)) kB, bound $RSS_PAGES_MAX pages of $PAGE_KB kB + 16 MiB"
# The response deadline: 30 s after its request at the latest, the agent
# resets each reader's connection (its answer is cut short anyway) and
# lets go of the pages they held.
wait_until "$((CUT_MAX_S - (SECONDS - t_slow)))" agent_let_go
t_check $? "the agent still holds $(held) connections of the slow readers after $((SECONDS - t_slow)) s"
rss1=$(rss_kb)
log "  the agent let go of them after $((SECONDS - t_slow)) s; VmRSS $rss1 kB"
[ "$ASAN" = 1 ] || [ $((rss1 - rss0)) -lt $((2 * PAGE_KB + 16 * 1024)) ]
t_check $? "slow readers cut: VmRSS still $((rss1 - rss0)) kB above $rss0 kB"
agent_alive "slow readers"
# Below the limit again: a scrape is rendered, with the connects made meanwhile.
wait_metric "$HOT" 3
kill -TERM "$SLOW"; wait "$SLOW"
log "  slow readers: $(cat "$T_DIR/slow.out")"

# Evicted readers (found by review): 200 readers at 32 KiB/s, 64 served at
# a time, so each one beyond takes the place of the oldest. One evicted is
# reset: libmicrohttpd closes it at once (it waited for its idle timeout on
# a shut connection with its send buffer full, every entry taken and whole
# requests closed unanswered), and the rest of its answer is not left to
# an orphan in FIN_WAIT1 (up to 512 KiB each, 68 MB for 136 here before).
# /healthz meanwhile is answered, in its turn behind the readers' requests
# (0.2-0.6 s measured by hand under 900 readers that reconnect; these 200
# do not).
EVICT_READERS=200
EVICT_KIB_S=32
EVICT_WAIT_S=60
HEALTH_MAX_S=20
FINWAIT_Q_MAX=$((64 * 1024))
est_count() { ss -Htn state established "( sport = :$HPORT )" | wc -l; }
finwait_q() { ss -Htn state fin-wait-1 "( sport = :$HPORT )" | awk '{ q += $2 } END { print q + 0 }'; }
settled() { [ "$(est_count)" -le "$CONN_MAX" ]; }
crowded() { [ "$(est_count)" -gt "$CONN_MAX" ]; }
log "evicted readers: $EVICT_READERS as nobody at $EVICT_KIB_S KiB/s, $CONN_MAX served at a time"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$HTTPABUSE" slowread 127.0.0.1 "$HPORT" "$EVICT_READERS" "$SLOW_S" /metrics "$EVICT_KIB_S" \
	> "$T_DIR/evict.out" &
SLOW=$!
# Give the readers a moment to crowd in before /healthz is asked. Not a
# check: on a loaded machine they may arrive one by one, each taking the
# oldest's place, never more than the agent serves at once; the count
# closed by the agent below shows they were there.
wait_until 10 crowded || log "  readers: never more than $CONN_MAX established at once"
: > "$T_DIR/lat"
for i in $(seq 1 5); do
	r=$(curl -s -o /dev/null --interface 127.0.0.1 -m "$HEALTH_MAX_S" \
		-w '%{http_code} %{time_total}\n' "http://$T_LISTEN/healthz")
	echo "${r#* }" >> "$T_DIR/lat"
	expect_eq "GET /healthz #$i during the evicted readers (within ${HEALTH_MAX_S}s)" "${r% *}" 200
done
log "  /healthz during them: $(latency "$T_DIR/lat")"
# All their requests answered or evicted: the agent serves its limit.
wait_until "$EVICT_WAIT_S" settled
t_check $? "evicted readers: $(est_count) connections established after ${EVICT_WAIT_S}s, want at most $CONN_MAX"
q_peak=0
for i in $(seq 1 10); do
	q=$(finwait_q); [ "$q" -gt "$q_peak" ] && q_peak=$q
	sleep 0.2
done
log "  then: $(est_count) served, $(ss -Htn state fin-wait-1 "( sport = :$HPORT )" | wc -l) in FIN_WAIT1 holding up to $q_peak bytes"
[ "$q_peak" -le "$FINWAIT_Q_MAX" ]
t_check $? "evicted readers: $q_peak bytes of answers left in FIN_WAIT1 sockets, over $FINWAIT_Q_MAX"
r=$(timed /healthz)
expect_eq "/healthz after the evictions" "${r% *}" 200
agent_alive "evicted readers"
kill -TERM "$SLOW"; wait "$SLOW"
log "  evicted readers: $(cat "$T_DIR/evict.out")"
# Settled, none waits in the pen: each beyond the limit took a reader's place.
closed=$(sed -n 's/.*closed_by_server=\([0-9]*\).*/\1/p' "$T_DIR/evict.out")
[ "${closed:-0}" -ge $((EVICT_READERS - CONN_MAX)) ]
t_check $? "evicted readers: ${closed:-no} closed by the agent, want at least $((EVICT_READERS - CONN_MAX))"
stop_agent; expect_eq "exit status on SIGTERM (slow readers)" "$?" 0
t_done
