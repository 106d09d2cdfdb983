#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Kernel truth: a known mix of real TCP outcomes against many destinations at
# once, from AF_INET, IPv4-mapped AF_INET6 and IPv6 sockets, and every counter
# in /metrics must equal the ground truth exactly:
#   success, refused (closed port), timeout (nftables drop, tcp_syn_retries=1),
#   unreachable (nftables reject with ICMP), cancelled (non-blocking connect
#   closed before it completes), resets received (peer closes with
#   SO_LINGER 0) and sent (we close with SO_LINGER 0), retransmits (the
#   timed-out SYNs, and a SYN resent before a success), CIDR destinations
#   with longest-prefix overlap and an any-port destination. Traffic to
#   unconfigured destinations and accepted connections (whose peer matches
#   a destination) count nowhere.
. "$(dirname "$0")/lib.sh"
t_setup
command -v nft >/dev/null || need "nft (nftables) not installed"

B=$(test_port 11)
P_OK=$B P_REF=$((B+1)) P_DROP=$((B+2)) P_UNR=$((B+3)) P_RSTL=$((B+4)) P_RSTS=$((B+5))
P_CANCEL=$((B+6)) P_OTHER=$((B+7)) P_ANYL=$((B+8)) P_ANYREF=$((B+9)) P_RESYN=$((B+10))
T_LISTEN="127.0.0.1:$(free_port)"

ip netns exec "$T_NS" sysctl -qw net.ipv4.tcp_syn_retries=1
# RetransSegs, the ground truth below, counts every socket of the namespace.
# On a starved machine (a guest under emulation) sockets kbreaker does not
# watch (the listeners' accepted sockets, the unconfigured destinations'
# clients) may retransmit a FIN: by a tail loss probe (off here) or an RTO
# (held off by a 10 s minimum on the IPv4 local routes; IPv6's cannot be
# changed, and only 30 of its connections are not watched). SYNs keep
# their 1 s initial timeout, so timeouts and their retransmits are unchanged.
ip netns exec "$T_NS" sysctl -qw net.ipv4.tcp_early_retrans=0
for r in "127.0.0.0/8 src 127.0.0.1" "127.0.0.1 src 127.0.0.1"; do
	ip -n "$T_NS" route change local $r dev lo table local proto kernel scope host rto_min 10s ||
		need "cannot set rto_min on the namespace's local routes"
done
ip netns exec "$T_NS" nft -f - <<EON || need "nftables rules cannot be loaded"
table inet kbtest {
	chain out {
		type filter hook output priority 0;
		tcp dport { $P_DROP, $P_CANCEL } drop
		tcp dport $P_RESYN tcp flags == syn numgen inc mod 2 == 0 drop
		ip daddr $T_ADDR tcp dport $P_UNR reject with icmp type host-unreachable
		ip6 daddr $T_ADDR6 tcp dport $P_UNR reject with icmpv6 type addr-unreachable
	}
}
EON

agent_config poll_interval=50ms defaults: mode=observe consecutive_failures=1000000 \
	dest: name=ok4 host=$T_ADDR port=$P_OK dest: name=ok6 host=$T_ADDR6 port=$P_OK \
	dest: name=ref4 host=$T_ADDR port=$P_REF dest: name=ref6 host=$T_ADDR6 port=$P_REF \
	dest: name=to4 host=$T_ADDR port=$P_DROP dest: name=to6 host=$T_ADDR6 port=$P_DROP \
	dest: name=unr4 host=$T_ADDR port=$P_UNR dest: name=unr6 host=$T_ADDR6 port=$P_UNR \
	dest: name=rstrx host=$T_ADDR port=$P_RSTL dest: name=rsttx host=$T_ADDR port=$P_RSTS \
	dest: name=cancel host=$T_ADDR port=$P_CANCEL dest: name=any3 host=$T_NET.0.3 port=any \
	dest: name=net24 host=$T_NET.1.0/24 port=$P_OK dest: name=net25 host=$T_NET.1.128/25 port=$P_OK \
	dest: name=resyn host=$T_ADDR port=$P_RESYN > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"

# The namespace's own TCP MIB is the ground truth for retransmits: the
# kernel's retransmission schedule (how many SYN retries fit in the
# timeout, a retry after an ICMP soft error) is its business, not ours.
RETRANS0=$(ns_counter Tcp RetransSegs)
SYNRETRANS0=$(ns_counter TcpExt TCPSynRetrans)

# Servers: one dual-stack listener for the successes, two that reset.
start_listener :: "$P_OK" "$T_DIR/l_ok"; L_OK=$LISTENER
start_listener $T_ADDR "$P_RSTS" "$T_DIR/l_rsts"; L_RSTS=$LISTENER
start_listener $T_ADDR "$P_RSTL" "$T_DIR/l_rstl" --rst; L_RSTL=$LISTENER
start_listener $T_NET.0.3 "$P_ANYL" "$T_DIR/l_any" --rst; L_ANY=$LISTENER
start_listener $T_ADDR "$P_RESYN" "$T_DIR/l_resyn"; L_RESYN=$LISTENER

# run WHAT FIELD WANT kbtool-args...: run one batch, check kbtool's own
# count; OK_ACCEPTS sums the successes the dual-stack listener must accept.
OK_ACCEPTS=0
run() {
	local what=$1 fld=$2 want=$3
	shift 3
	expect_field "$what: $fld" "$fld" "$want" in_test "$KBTOOL" "$@"
	[ "$1" = connect ] && [ "$3" = "$P_OK" ] && OK_ACCEPTS=$((OK_ACCEPTS + $(field success "$OUT")))
}

# The kernel gives up on a dropped SYN after ~3 s (tcp_syn_retries=1);
# spconnect's own limit only has to be longer. It takes each error with
# SO_ERROR the moment the kernel stores it, as a busy event loop would:
# before the socket is closed, which kbreaker must not depend on.
log "timeouts and cancels run in the background (3 s each)"
in_test "$KBTOOL" spconnect $T_ADDR "$P_DROP" 20 $((T_WAIT_S * 1000)) > "$T_DIR/to4a" &
in_test "$KBTOOL" spconnect ::ffff:$T_ADDR "$P_DROP" 5 $((T_WAIT_S * 1000)) > "$T_DIR/to4b" &
in_test "$KBTOOL" spconnect $T_ADDR6 "$P_DROP" 5 $((T_WAIT_S * 1000)) > "$T_DIR/to6" &
# Every other SYN to P_RESYN is dropped: each of these sequential connects
# succeeds with its second SYN, one retransmit that the connect's record
# carries past the success to the socket's close.
in_test "$KBTOOL" connect $T_ADDR "$P_RESYN" 3 $((T_WAIT_S * 1000)) > "$T_DIR/resyn" &
TO_JOBS=$(jobs -p | tail -4)

log "successes: 300 IPv4, 30 IPv4-mapped, 30 IPv6; CIDR 15 + 12 (longest prefix)"
run ok4 success 300 connect $T_ADDR "$P_OK" 300
run ok4-mapped success 30 connect ::ffff:$T_ADDR "$P_OK" 30
run ok6 success 30 connect $T_ADDR6 "$P_OK" 30
run net24 success 15 connect $T_NET.1.5 "$P_OK" 15
run net25 success 12 connect $T_NET.1.200 "$P_OK" 12
log "refused: 200 IPv4, 20 mapped, 20 IPv6"
run ref4 refused 200 connect $T_ADDR "$P_REF" 200
run ref4-mapped refused 20 connect ::ffff:$T_ADDR "$P_REF" 20
run ref6 refused 20 connect $T_ADDR6 "$P_REF" 20
# Blocking connects, in parallel: the first ICMP error arrives while connect()
# holds the socket (loopback answers at once) and stays a soft error; the
# retried SYN's error (1 s later) ends the connect in the kernel.
log "unreachable: 10 IPv4, 5 mapped, 5 IPv6 (ICMP reject)"
run unr4 unreachable 10 fconnect $T_ADDR "$P_UNR" 10
run unr4-mapped unreachable 5 fconnect ::ffff:$T_ADDR "$P_UNR" 5
run unr6 unreachable 5 fconnect $T_ADDR6 "$P_UNR" 5
log "resets: 50 received (peer SO_LINGER 0), 50 sent (ours)"
run rstrx reset 50 hold $T_ADDR "$P_RSTL" 50
run rsttx success 50 rst $T_ADDR "$P_RSTS" 50
log "cancelled: 30 non-blocking connects closed unfinished"
run cancel pending 30 cancel $T_ADDR "$P_CANCEL" 30
log "any port on $T_NET.0.3: 20 reset by the peer, 10 refused"
run any3 reset 20 hold $T_NET.0.3 "$P_ANYL" 20
run any3 refused 10 connect $T_NET.0.3 "$P_ANYREF" 10
log "unconfigured destinations: 50 refused IPv4, 10 IPv6, 20 successes on $T_NET.0.2"
run other refused 50 connect $T_ADDR "$P_OTHER" 50
run other6 refused 10 connect $T_ADDR6 "$P_OTHER" 10
run other-ok success 20 connect $T_NET.0.2 "$P_OK" 20
for j in $TO_JOBS; do wait "$j"; done
expect_eq "to4 timeouts" "$(field timeout "$(cat "$T_DIR/to4a")")" 20
expect_eq "to4 mapped timeouts" "$(field timeout "$(cat "$T_DIR/to4b")")" 5
expect_eq "to6 timeouts" "$(field timeout "$(cat "$T_DIR/to6")")" 5
expect_eq "resyn successes" "$(field success "$(cat "$T_DIR/resyn")")" 3
# The cancelled connects' sockets are gone; their SYNs are dropped, so no
# late outcome can arrive. Everything has happened: compare.
scrape > "$T_DIR/m"
val() { awk -v k="$1" 'index($0, k " ") == 1 { print $2; f = 1 } END { if (!f) print "absent" }' "$T_DIR/m"; }
# total PREFIX [LABEL]: the sum of the series starting with PREFIX (and having LABEL).
total() { awk -v p="$1" -v l="${2:-}" 'index($0, p) == 1 && index($0, l) { s += $2 } END { print s + 0 }' "$T_DIR/m"; }
# want CIRCUIT success refused timeout unreachable error cancelled resets_rx resets_tx retrans
# (retrans: "-" when only the kernel's schedule decides it; checked in total below).
# ALL_CONNECTS, ALL_RX and ALL_TX sum the rows for the totals below.
ALL_CONNECTS=0 ALL_RX=0 ALL_TX=0
want() {
	local c=$1 i=2 r
	for r in success refused timeout unreachable error cancelled; do
		expect_eq "$c $r" "$(val "kbreaker_tcp_connects_total{circuit_name=\"$c\",result=\"$r\"}")" "${!i}"
		ALL_CONNECTS=$((ALL_CONNECTS + ${!i}))
		i=$((i + 1))
	done
	expect_eq "$c resets received" "$(val "kbreaker_tcp_resets_total{circuit_name=\"$c\",direction=\"received\"}")" "${!i}"
	ALL_RX=$((ALL_RX + ${!i})); i=$((i + 1))
	expect_eq "$c resets sent" "$(val "kbreaker_tcp_resets_total{circuit_name=\"$c\",direction=\"sent\"}")" "${!i}"
	ALL_TX=$((ALL_TX + ${!i})); i=$((i + 1))
	expect_eq "$c blocked" "$(val "kbreaker_connects_blocked_total{circuit_name=\"$c\"}")" 0
	expect_eq "$c would_block" "$(val "kbreaker_connects_would_block_total{circuit_name=\"$c\"}")" 0
}
log "every counter equals the ground truth"
#          name   succ ref  to unr err can rx  tx  retr
want       ok4    330  0    0  0   0   0   0   0   0
want       ok6    30   0    0  0   0   0   0   0   0
want       ref4   0    220  0  0   0   0   0   0   0
want       ref6   0    20   0  0   0   0   0   0   0
want       to4    0    0    25 0   0   0   0   0   -
want       to6    0    0    5  0   0   0   0   0   -
want       unr4   0    0    0  15  0   0   0   0   -
want       unr6   0    0    0  5   0   0   0   0   -
want       rstrx  50   0    0  0   0   0   50  0   0
want       rsttx  50   0    0  0   0   0   0   50  0
want       cancel 0    0    0  0   0   30  0   0   0
want       any3   20   10   0  0   0   0   20  0   0
want       net24  15   0    0  0   0   0   0   0   0
want       net25  12   0    0  0   0   0   0   0   0
want       resyn  3    0    0  0   0   0   0   0   3
expect_eq "histogram count = successes (ok4)" \
	"$(val 'kbreaker_tcp_connect_duration_seconds_count{circuit_name="ok4"}')" 330
# Nothing else anywhere: totals over all circuits equal the sums above.
expect_eq "all connect outcomes" "$(total 'kbreaker_tcp_connects_total{')" "$ALL_CONNECTS"
expect_eq "all resets received" "$(total 'kbreaker_tcp_resets_total{' 'direction="received"')" "$ALL_RX"
expect_eq "all resets sent" "$(total 'kbreaker_tcp_resets_total{' 'direction="sent"')" "$ALL_TX"
RETRANS=$(( $(ns_counter Tcp RetransSegs) - RETRANS0 ))
SYNRETRANS=$(( $(ns_counter TcpExt TCPSynRetrans) - SYNRETRANS0 ))
KB_RETRANS=$(total 'kbreaker_tcp_retransmits_total{')
# Every SYN this test retransmits is a watched socket's (timeouts,
# unreachables); RetransSegs adds what unwatched sockets resend (a server's
# FIN on a starved guest). kbreaker counts all of the first, none of the rest.
expect_ge "retransmits >= the namespace's SYN retransmits ($SYNRETRANS)" "$KB_RETRANS" "$SYNRETRANS"
expect_ge "the namespace's RetransSegs >= retransmits counted ($KB_RETRANS)" "$RETRANS" "$KB_RETRANS" ||
	ip netns exec "$T_NS" nstat -az 2>/dev/null |
		grep -E 'RetransSegs|SynRetrans|Listen(Overflows|Drops)|TCPTimeouts|TCPLossProbes|TCPSpuriousRTOs' |
		sed 's/^/      /'
expect_ge "to4 retransmits (at least one per timed-out SYN)" \
	"$(val 'kbreaker_tcp_retransmits_total{circuit_name="to4"}')" 25
# One resent SYN a connect, each counted once: 3. A guest of the kernel
# matrix under load may also resend a FIN its stalled peer acknowledged
# late (seen once on 5.10 under TCG: 4); counting each twice would be 6.
rx=$(val 'kbreaker_tcp_retransmits_total{circuit_name="resyn"}')
[[ $rx =~ ^[0-9]+$ ]] && [ "$rx" -ge 3 ] && [ "$rx" -le 5 ]
t_check $? "resyn retransmits (one resent SYN a connect, counted once): got '$rx', want 3 (up to 5)"

kill "$L_OK" "$L_RSTS" "$L_RSTL" "$L_ANY" "$L_RESYN"
wait "$L_OK" "$L_RSTS" "$L_RSTL" "$L_ANY" "$L_RESYN" 2>/dev/null
# Every success to $P_OK, the unconfigured $T_NET.0.2 too: the listener's backlog holds them all.
expect_eq "dual-stack listener accepted" "$(cat "$T_DIR/l_ok")" "accepted=$OK_ACCEPTS"
t_done
