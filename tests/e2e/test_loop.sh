#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The whole loop on real sockets: refused connects trip the breaker, the
# connect hook refuses at once while open (no SYN leaves: a listener started
# meanwhile accepts nothing), half_open lets exactly the permitted probes
# through, they succeed, the breaker closes and traffic flows. Every count
# in /metrics must equal what this test did. Also: observe mode never
# blocks, UDP is never blocked, IPv4-mapped IPv6 and IPv6 destinations,
# and SIGTERM detaches everything (fail open) and exits 0.
#
# No check has to fit in a timer's window, however slow the machine: svc
# stays open (1h) for the checks made while open, and cycle, whose short
# open period lets it reach half_open, is checked there, where it waits for
# its probes as long as they take.
. "$(dirname "$0")/lib.sh"
t_setup
command -v nft >/dev/null || need "nft (nftables) not installed"

PORT=$(test_port 3)
OPORT=$((PORT + 1))
CPORT=$((PORT + 2))
T_LISTEN="127.0.0.1:$(free_port)"
agent_config poll_interval=1s user=nobody \
	defaults: mode=enforce consecutive_failures=5 open_duration=1h half_open_permits=2 \
	dest: name=svc host=$T_ADDR port=$PORT consecutive_failures=3 \
	dest: name=cycle host=$T_ADDR port=$CPORT consecutive_failures=3 open_duration=1s \
	dest: name=watched host=$T_ADDR6 port=$OPORT mode=observe consecutive_failures=2 > "$T_DIR/kb.yaml"

start_agent "$T_DIR/kb.yaml"
S='circuit_name="svc"'
C='circuit_name="cycle"'
W='circuit_name="watched"'

log "least privilege: runs as nobody, no capability left once attached (CAP_BPF at most)"
expect_eq "agent's uids (real, effective, saved, fs)" \
	"$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$T_AGENT_PID/status")" "65534 65534 65534 65534"
capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$T_AGENT_PID/status")
check "CapEff of the running agent is $capeff, want none or CAP_BPF" \
	grep -qxE '0000000000000000|0000008000000000' <<<"$capeff"

log "closed at start, every series present"
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1
expect_metric "circuit_breaker_state{$S,state=\"open\"}" 0
expect_metric "circuit_breaker_state{$C,state=\"closed\"}" 1
expect_metric "circuit_breaker_state{$W,state=\"metrics_only\"}" 1
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 0
expect_metric "kbreaker_connects_blocked_total{$S}" 0

log "svc: 2 refused connects (closed port): still closed"
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 2)
expect_eq "refused while closed" "$(field refused "$out")" 2
# Once the breaker has counted both, it must still be closed.
wait_metric "circuit_breaker_consecutive_failures{$S}" 2
expect_metric "circuit_breaker_state{$S,state=\"closed\"}" 1

log "svc: 3rd refused connect, from an AF_INET6 socket to ::ffff:$T_ADDR: trips"
out=$(in_test "$KBTOOL" connect ::ffff:$T_ADDR "$PORT" 1)
expect_eq "mapped refused" "$(field refused "$out")" 1
wait_state svc open
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 3
expect_metric "circuit_breaker_state_transition_total{$S,old_state=\"closed\",new_state=\"open\"}" 1

# The hook refuses before the kernel opens anything: not one SYN leaves
# (the namespace's ActiveOpens stays), so the listener accepts nothing.
log "svc open: a listener starts, yet connects are refused by the hook and it accepts nothing"
start_listener $T_ADDR "$PORT" "$T_DIR/listen.out"
LISTENER_SVC=$LISTENER
opens=$(ns_counter Tcp ActiveOpens)
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 4)
expect_eq "refused while open" "$(field refused "$out")" 4
expect_eq "successes while open" "$(field success "$out")" 0
out=$(in_test "$KBTOOL" connect ::ffff:$T_ADDR "$PORT" 1)
expect_eq "mapped refused while open" "$(field refused "$out")" 1
out=$(in_test "$KBTOOL" udp $T_ADDR "$PORT")
expect_eq "UDP connect while open" "$out" "udp=ok"
expect_eq "SYNs sent while open (ActiveOpens)" "$(( $(ns_counter Tcp ActiveOpens) - opens ))" 0
expect_metric "kbreaker_connects_blocked_total{$S}" 5
# The kernel never saw a SYN for them: refused stays at 3.
expect_metric "kbreaker_tcp_connects_total{$S,result=\"refused\"}" 3
expect_metric "kbreaker_tcp_connects_total{$S,result=\"success\"}" 0
expect_metric "circuit_breaker_state{$S,state=\"open\"}" 1

log "cycle: 3 refused connects trip it; after its open_duration (1s): half_open"
out=$(in_test "$KBTOOL" connect $T_ADDR "$CPORT" 3)
expect_eq "cycle refused while closed" "$(field refused "$out")" 3
wait_metric "circuit_breaker_state_transition_total{$C,old_state=\"closed\",new_state=\"open\"}" 1
wait_state cycle half_open
expect_metric "circuit_breaker_state_transition_total{$C,old_state=\"open\",new_state=\"half_open\"}" 1
start_listener $T_ADDR "$CPORT" "$T_DIR/listen-cycle.out"

# The two probes hang on a dropped SYN while the third connect meets the
# kernel's exhausted permit count; then the drop goes, the SYNs are
# retransmitted (1 s), the probes succeed and the breaker closes.
log "cycle half_open: exactly 2 of 3 connects pass, they succeed, the breaker closes"
ip netns exec "$T_NS" nft -f - <<EON
table inet kbloop {
	chain out {
		type filter hook output priority 0;
		tcp dport $CPORT drop
	}
}
EON
in_test "$KBTOOL" fconnect $T_ADDR "$CPORT" 2 > "$T_DIR/probes" &
PROBES=$!
# Both probes are past the hook once their sockets wait in SYN_SENT.
syn_sent() { ip netns exec "$T_NS" ss -Htn state syn-sent "( dport = :$CPORT )" | grep -c .; }
syn_sent_is() { [ "$(syn_sent)" = "$1" ]; }
wait_until "$T_WAIT_S" syn_sent_is 2
expect_eq "probes waiting in SYN_SENT" "$(syn_sent)" 2
out=$(in_test "$KBTOOL" connect $T_ADDR "$CPORT" 1)
expect_eq "the connect beyond the permits" "$(field refused "$out")" 1
ip netns exec "$T_NS" nft delete table inet kbloop
wait "$PROBES"
expect_eq "probes let through, then succeeded" "$(field success "$(cat "$T_DIR/probes")")" 2
wait_state cycle closed
expect_metric "circuit_breaker_state_transition_total{$C,old_state=\"half_open\",new_state=\"closed\"}" 1
expect_metric "circuit_breaker_state_transition_total{$C,old_state=\"half_open\",new_state=\"open\"}" 0

log "cycle closed: traffic flows"
out=$(in_test "$KBTOOL" connect $T_ADDR "$CPORT" 5)
expect_eq "connects after close" "$(field success "$out")" 5
kill "$LISTENER"; wait "$LISTENER"
expect_eq "cycle's listener accepted (2 probes + 5)" "$(cat "$T_DIR/listen-cycle.out")" "accepted=7"
expect_metric "kbreaker_tcp_connects_total{$C,result=\"success\"}" 7
expect_metric "kbreaker_tcp_connects_total{$C,result=\"refused\"}" 3
expect_metric "kbreaker_tcp_connects_total{$C,result=\"timeout\"}" 0
expect_metric "kbreaker_tcp_connects_total{$C,result=\"cancelled\"}" 0
expect_metric "kbreaker_connects_blocked_total{$C}" 1
expect_metric "kbreaker_tcp_connect_duration_seconds_count{$C}" 7
expect_metric "circuit_breaker_state{$C,state=\"closed\"}" 1

log "observe mode (IPv6 $T_ADDR6): trips internally, never blocks, counts would_block"
out=$(in_test "$KBTOOL" connect $T_ADDR6 "$OPORT" 2)
expect_eq "observe refused" "$(field refused "$out")" 2
wait_metric "circuit_breaker_state_transition_total{$W,old_state=\"closed\",new_state=\"open\"}" 1
out=$(in_test "$KBTOOL" connect $T_ADDR6 "$OPORT" 2)
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
	scrape > "$T_DIR/metrics.txt"
	check "promtool check metrics" sh -c '"$1" check metrics < "$2" > "$3" 2>&1' sh \
		"$PROMTOOL" "$T_DIR/metrics.txt" "$T_DIR/promtool.out" || cat "$T_DIR/promtool.out"
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

log "svc still open, then SIGTERM: exit 0, hooks gone, the next connect reaches the server"
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 1)
expect_eq "blocked before SIGTERM" "$(field refused "$out")" 1
expect_metric "kbreaker_connects_blocked_total{$S}" 6
stop_agent; expect_eq "kbreakerd exit status on SIGTERM" "$?" 0
expect_eq "programs attached to the test cgroup" "$(attached_progs "$T_CG")" 0
out=$(in_test "$KBTOOL" connect $T_ADDR "$PORT" 1)
expect_eq "connect after the agent stopped" "$(field success "$out")" 1
kill "$LISTENER_SVC"; wait "$LISTENER_SVC"
expect_eq "svc's listener: nothing while open, 1 after the agent stopped" "$(cat "$T_DIR/listen.out")" "accepted=1"

t_done
