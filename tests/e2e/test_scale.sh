#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# 10,000 destinations, single hosts and CIDRs mixed with overlapping
# prefixes: connects are attributed to the right destination (exact host
# beats any prefix, the longest prefix wins, an exact port beats "any"), and
# an address outside all of them counts nowhere.
. "$(dirname "$0")/lib.sh"
t_setup
P=$(test_port 2)
T_LISTEN="127.0.0.1:$(free_port)"

{
	echo "listen: $T_LISTEN"
	echo "cgroup: $T_CG"
	echo "max_destinations: 16384"
	echo "metrics_compact: true"
	echo "defaults: { mode: observe, consecutive_failures: 1000000 }"
	echo "destinations:"
	# 6,000 single hosts 127.1.x.y
	for x in $(seq 0 23); do for y in $(seq 1 250); do
		echo "  - { name: h-$x-$y, host: 127.1.$x.$y, port: $P }"
	done; done
	# 3,500 /24s from 127.2.0.0/24 up and, inside the first 250, a /25 and a /30
	for x in $(seq 0 3499); do
		echo "  - { name: n24-$x, host: 127.$((2 + x / 256)).$((x % 256)).0/24, port: $P }"
	done
	for x in $(seq 0 249); do
		echo "  - { name: n25-$x, host: 127.2.$x.128/25, port: $P }"
		echo "  - { name: n30-$x, host: 127.2.$x.200/30, port: $P }"
	done
	# a wide any-port prefix (sparing 127.0.0.1, where the metrics are
	# scraped), and an exact host inside a /24
	echo "  - { name: wide, host: 127.128.0.0/9, port: any }"
	echo "  - { name: exact-in-net, host: 127.2.7.9, port: $P }"
} > "$T_DIR/kb.yaml"
start_agent "$T_DIR/kb.yaml"
expect_metric "kbreaker_destinations" 10002
expect_metric "kbreaker_breakers" 10002

# c ADDR COUNT [PORT]: refused connects (nothing listens); ALL sums them.
ALL=0
c() {
	local out
	out=$(in_test "$KBTOOL" connect "$1" "${3:-$P}" "$2")
	expect_eq "refused connects to $1 port ${3:-$P}" "$(field refused "$out")" "$2"
	ALL=$((ALL + $2))
}
c 127.1.0.1 3         # h-0-1
c 127.1.23.250 4      # h-23-250
c 127.2.3.9 5         # n24-3
c 127.2.3.130 6       # n25-3 (longest prefix)
c 127.2.3.201 7       # n30-3 (longer still)
c 127.2.7.9 8         # exact-in-net beats n24-7
c 127.2.7.10 9        # n24-7
c 127.13.183.1 2      # n24-2999 (x=2999 -> 127.13.183.0/24)
c 127.200.0.1 11      # wide (any port) only
c 127.200.0.1 1 $((P + 1))  # wide, other port
# nowhere: not a host entry, outside every prefix (not in ALL)
out=$(in_test "$KBTOOL" connect 127.1.24.1 "$P" 3)
expect_eq "refused connects to 127.1.24.1 (no destination)" "$(field refused "$out")" 3
t0=$(date +%s%N)
scrape > "$T_DIR/m"
t1=$(date +%s%N)
val() { awk -v k="kbreaker_tcp_connects_total{circuit_name=\"$1\",result=\"refused\"}" \
	'index($0, k " ") == 1 { print $2; f = 1 } END { if (!f) print "absent" }' "$T_DIR/m"; }
# Compact: a counter that never moved is absent.
for pair in h-0-1:3 h-23-250:4 n24-3:5 n25-3:6 n30-3:7 exact-in-net:8 n24-7:9 n24-2999:2 wide:12 n24-0:absent h-5-5:absent; do
	expect_eq "refused on ${pair%%:*}" "$(val "${pair%%:*}")" "${pair##*:}"
done
expect_eq "all refused (every connect to a destination)" \
	"$(grep 'result="refused"' "$T_DIR/m" | awk '{ s += $2 } END { print s }')" "$ALL"
log "compact scrape of 10,002 destinations: $(wc -c < "$T_DIR/m") bytes in $(( (t1 - t0) / 1000000 )) ms"
# Every destination still shows its state; the idle ones nothing else.
expect_eq "state series" "$(grep -c '^circuit_breaker_state{' "$T_DIR/m")" 10002
# The breakers' windows learn these outcomes from the kernel's counters, read
# in chunks once a second: each destination's, wherever it sits among the
# 10,002, and no other's (compact: a zero failure rate is left out).
rated() { scrape | awk -F'"' '/^circuit_breaker_failure_rate[{]/ { print $2 }' | LC_ALL=C sort | tr '\n' ' '; }
rated_is() { [ "$(rated)" = "$1" ]; }
WANT_RATED="exact-in-net h-0-1 h-23-250 n24-2999 n24-3 n24-7 n25-3 n30-3 wide "
wait_until "$T_WAIT_S" rated_is "$WANT_RATED"
expect_eq "destinations with a failure rate" "$(rated)" "$WANT_RATED"
t_done
