#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The whole loop on real sockets: refused connects trip the breaker, the
# connect hook refuses at once while open (no SYN leaves: a listener started
# meanwhile accepts nothing), half_open lets exactly the permitted probes
# through, they succeed, the breaker closes and traffic flows. Every count
# in /metrics must equal what this test did. Also: observe mode never
# blocks, UDP is never blocked, IPv4-mapped IPv6 and IPv6 destinations,
# and SIGTERM detaches everything (fail open) and exits 0.
. "$(dirname "$0")/lib.sh"
t_setup
command -v nft >/dev/null || need "nft (nftables) not installed"

PORT=$((20000 + RANDOM % 12000))
OPORT=$((PORT + 1))
T_LISTEN="127.0.0.1:$(free_port)"
cat > "$T_DIR/kb.yaml" <<EOC
listen: $T_LISTEN
cgroup: $T_CG
poll_interval: 1s
user: nobody
defaults:
  mode: enforce
  consecutive_failures: 5
  open_duration: 2s
  half_open_permits: 2
destinations:
  - name: svc
    host: 127.0.0.1
    port: $PORT
    consecutive_failures: 3
  - name: watched
    host: ::1
    port: $OPORT
    mode: observe
    consecutive_failures: 2
EOC

start_agent "$T_DIR/kb.yaml"
S='circuit_name="svc"'
W='circuit_name="watched"'

log "least privilege: runs as nobody, no capability left once attached (CAP_BPF at most)"
expect_eq "agent's uids (real, effective, saved, fs)" \
	"$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$T_AGENT_PID/status")" "65534 65534 65534 65534"
capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$T_AGENT_PID/status")
T_CHECKS=$((T_CHECKS + 1))
case $capeff in
0000000000000000 | 0000008000000000) ;;
*) fail "CapEff of the running agent is $capeff" ;;
esac

log "closed at start, every series present"
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1
expect_metric "circuit_breaker_state{$S,state=\"open\"}" 0
expect_metric "circuit_breaker_state{$W,state=\"metrics_only\"}" 1
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 0
expect_metric "kbreaker_connects_blocked_total{$S}" 0

log "2 refused connects (closed port): still closed"
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 2)
expect_eq "refused while closed" "$(field refused "$out")" 2
sleep 0.2
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1

log "3rd refused connect, from an AF_INET6 socket to ::ffff:127.0.0.1: trips"
out=$(in_test "$KBTOOL" connect ::ffff:127.0.0.1 "$PORT" 1)
expect_eq "mapped refused" "$(field refused "$out")" 1
wait_state svc open 2
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 3
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"closed\",new_state=\"open\"}" 1

log "open: a listener starts, yet connects are refused at once and it accepts nothing"
start_listener 127.0.0.1 "$PORT" 30 "$T_DIR/listen.out"
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 4)
expect_eq "refused while open" "$(field refused "$out")" 4
expect_eq "successes while open" "$(field success "$out")" 0
# Generous: a refusal by the hook takes microseconds; a bound of 100 ms
# only rules out a packet round trip or a retry.
[ "$(field max_us "$out")" -lt 100000 ] || fail "blocked connect took $(field max_us "$out") us"
T_CHECKS=$((T_CHECKS + 1))
out=$(in_test "$KBTOOL" connect ::ffff:127.0.0.1 "$PORT" 1)
expect_eq "mapped refused while open" "$(field refused "$out")" 1
out=$(in_test "$KBTOOL" udp 127.0.0.1 "$PORT")
expect_eq "UDP connect while open" "$out" "udp=ok"
expect_metric "kbreaker_connects_blocked_total{$S}" 5
# The kernel never saw a SYN for them: refused stays at 3.
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 3
expect_metric "kbreaker_tcp_connects_total{$S,result=\"success\"}" 0

log "after open_duration: half_open"
wait_state svc half_open 4
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"open\",new_state=\"half_open\"}" 1

# The two probes hang on a dropped SYN while the third connect meets the
# kernel's exhausted permit count; then the drop goes, the SYNs are
# retransmitted (1 s), the probes succeed and the breaker closes.
log "half_open: exactly 2 of 3 connects pass, they succeed, the breaker closes"
ip netns exec "$T_NS" nft -f - <<EON
table inet kbloop {
	chain out {
		type filter hook output priority 0;
		tcp dport $PORT drop
	}
}
EON
in_test "$KBTOOL" fconnect 127.0.0.1 "$PORT" 2 > "$T_DIR/probes" &
PROBES=$!
sleep 0.3
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
expect_eq "the connect beyond the permits" "$(field refused "$out")" 1
ip netns exec "$T_NS" nft delete table inet kbloop
wait "$PROBES"
expect_eq "probes let through, then succeeded" "$(field success "$(cat "$T_DIR/probes")")" 2
wait_state svc closed 3
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"half_open\",new_state=\"closed\"}" 1
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"half_open\",new_state=\"open\"}" 0

log "closed: traffic flows"
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 5)
expect_eq "connects after close" "$(field success "$out")" 5
kill "$LISTENER"; wait "$LISTENER"
expect_eq "listener accepted (2 probes + 5)" "$(cat "$T_DIR/listen.out")" "accepted=7"
expect_metric "kbreaker_tcp_connects_total{$S,result=\"success\"}" 7
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 3
expect_metric "kbreaker_tcp_connects_total{$S,result=\"timeout\"}" 0
expect_metric "kbreaker_tcp_connects_total{$S,result=\"cancelled\"}" 0
expect_metric "kbreaker_connects_blocked_total{$S}" 6
expect_metric "kbreaker_tcp_connect_duration_seconds_count{$S}" 7
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1

log "observe mode (IPv6 ::1): trips internally, never blocks, counts would_block"
out=$(in_test "$KBTOOL" connect ::1 "$OPORT" 2)
expect_eq "observe refused" "$(field refused "$out")" 2
for _ in $(seq 1 40); do
	[ "$(metric "circuit_breaker_state_transition_total{$W,old_state=\"closed\",new_state=\"open\"}")" = 1 ] && break
	sleep 0.05
done
out=$(in_test "$KBTOOL" connect ::1 "$OPORT" 2)
expect_eq "observe: still reaching the peer" "$(field refused "$out")" 2
expect_metric "kbreaker_tcp_connects_total{$W,result=\"refused\"}" 4
expect_metric "kbreaker_connects_blocked_total{$W}" 0
expect_metric "kbreaker_connects_would_block_total{$W}" 2
expect_metric "kbreaker_connects_would_block_total{$S}" 0
expect_metric "circuit_breaker_state{$W,state=\"metrics_only\"}" 1
expect_metric "circuit_breaker_state{$W,state=\"open\"}" 0
expect_metric "circuit_breaker_state_transition_total{$W,old_state=\"closed\",new_state=\"open\"}" 1

if command -v "$PROMTOOL" >/dev/null; then
	log "promtool check metrics"
	T_CHECKS=$((T_CHECKS + 1))
	scrape > "$T_DIR/metrics.txt"
	"$PROMTOOL" check metrics < "$T_DIR/metrics.txt" > "$T_DIR/promtool.out" 2>&1 ||
		{ fail "promtool check metrics"; cat "$T_DIR/promtool.out"; }
fi

log "OpenMetrics when the scraper asks for it"
ctype=$(curl -sf -o "$T_DIR/om.txt" -w '%{content_type}' \
	-H 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' \
	"http://$T_LISTEN/metrics")
expect_eq "OpenMetrics content type" "$ctype" "application/openmetrics-text; version=1.0.0; charset=utf-8"
expect_eq "OpenMetrics ends with # EOF" "$(tail -n 1 "$T_DIR/om.txt")" "# EOF"
expect_eq "OpenMetrics counter family" "$(grep -c '^# TYPE kbreaker_tcp_connects counter$' "$T_DIR/om.txt")" 1
expect_eq "plain text without Accept" "$(curl -sf -o /dev/null -w '%{content_type}' "http://$T_LISTEN/metrics")" \
	"text/plain; version=0.0.4; charset=utf-8"

log "trip again, then SIGTERM: exit 0, hooks gone, the next connect reaches the server"
in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 3 >/dev/null
wait_state svc open 2
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
expect_eq "blocked before SIGTERM" "$(field refused "$out")" 1
stop_agent; expect_eq "kbreakerd exit status on SIGTERM" "$?" 0
expect_eq "programs attached to the test cgroup" "$(bpftool cgroup show "$T_CG" 2>/dev/null | grep -c connect)" 0
start_listener 127.0.0.1 "$PORT" 10 "$T_DIR/listen2.out"
out=$(in_test "$KBTOOL" connect 127.0.0.1 "$PORT" 1)
expect_eq "connect after the agent stopped" "$(field success "$out")" 1
kill "$LISTENER"; wait "$LISTENER"
expect_eq "listener after the agent stopped" "$(cat "$T_DIR/listen2.out")" "accepted=1"

t_done
