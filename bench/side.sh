# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Item 6, sourced by bench/run.sh with the agent stopped: side by side with what
# users would pick instead. Parts whose tools are missing are skipped, and say so.

# 6a. An nftables reject set with the same 10,000 destinations, in the benchmark's
# namespace, vs nothing: interleaved A/B like item 1, then its fast-fail latency.
log "6a. nftables reject set: $ROUNDS interleaved rounds"
NFT_FILE=$OUT/kb-10k.nft
{
	echo "table inet kbnft {"
	echo "  set dsts { type ipv4_addr . inet_service; elements = {"
	echo "    127.0.0.1 . $P_OPEN_HIT, 127.0.0.1 . $P_CLOSED_HIT, 127.0.0.1 . $P_FASTFAIL,"
	echo "    127.0.0.1 . $P_TRIP, 127.0.0.1 . $P_LOAD, 127.0.0.1 . $P_NODE,"
	for ((i = 6; i < NDST; i++)); do
		printf '    127.10.%d.%d . 61000%s\n' $((i / 250)) $((i % 250 + 1)) "$([ $i -lt $((NDST - 1)) ] && echo ,)"
	done
	echo "  } }"
	echo "  chain out { type filter hook output priority 0; ip daddr . tcp dport @dsts reject with tcp reset; }"
	echo "}"
} > "$NFT_FILE"
NFT_CASES="open_miss:open:$P_OPEN_MISS closed_miss:closed:$P_CLOSED_MISS"
run_nft_cases() {	# SIDE ROUND
	local c name kind port out
	for c in $NFT_CASES; do
		IFS=: read -r name kind port <<<"$c"
		out=$(in_ns "$KBBENCH" loop "$kind" 127.0.0.1 "$port" "$N")
		echo "$2 $(field ns_per_op "$out")" >> "$OUT/nft-$name-$1.tmp"
	done
}
nft_ok=1
for ((r = 1; r <= ROUNDS; r++)); do
	ip netns exec "$B_NS" nft -f "$NFT_FILE" || { nft_ok=0; log "nft: cannot load the set; skipped"; break; }
	run_nft_cases nft "$r"
	ip netns exec "$B_NS" nft delete table inet kbnft
	run_nft_cases none "$r"
done
if [ "$nft_ok" = 1 ]; then
	for c in $NFT_CASES; do
		IFS=: read -r name kind port <<<"$c"
		ab_stats "nft $name" "$OUT/nft-$name-nft.tmp" "$OUT/nft-$name-none.tmp" set none
		ma=$(field median "$A"); mb=$(field median "$B")
		kb=$(grep "^hotpath $name paired diff:" "$RAW" | sed 's/.*median=\([^ ]*\).*/\1/')
		row "6. nft reject set (10,000) vs none, $name (median ns)" \
			"$ma vs $mb: added $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.0f", a - b }') ns, ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", a / b }') (kbreaker, item 1: added $kb ns)" "-" "-"
	done
	ip netns exec "$B_NS" nft -f "$NFT_FILE"
	nf=$(in_ns "$KBBENCH" lat 127.0.0.1 "$P_FASTFAIL" 5000)
	ip netns exec "$B_NS" nft delete table inet kbnft
	raw "nft fast fail: $nf"
	row "6. connect() refused by the nft reject set (p50 / p99 us); kbreaker's hook: item 4" \
		"$(ns_to_us "$(field p50_ns "$nf")") / $(ns_to_us "$(field p99_ns "$nf")") (refused $(field refused "$nf") of 5000)" "-" "-"
fi

# 6b. opossum (in-process, Node) vs kbreaker with a plain Node client, against a dying server.
NODE_DIR=$HERE/node
if command -v node >/dev/null && [ -d "$NODE_DIR/node_modules/opossum" ]; then
	log "6b. opossum vs kbreaker + plain Node client"
	ov=$(node "$NODE_DIR/dying.js" overhead)
	raw "opossum overhead: $ov"
	row "6. opossum fire() per-call overhead, no I/O (ns); kbreaker closed: item 1 open_hit" \
		"$(field added_ns "$ov") (direct $(field direct_ns "$ov"), wrapped $(field opossum_ns "$ov"))" "-" "-"
	# opossum alone: nothing attached.
	op=$(in_ns node "$NODE_DIR/dying.js" opossum "$P_NODE" "$OUT/node-opossum-times.tmp")
	raw "opossum dying server: $op"
	start_agent
	r0=$(metric "kbreaker_tcp_connects_total{circuit_name=\"node\",result=\"refused\"}")
	pl=$(in_ns node "$NODE_DIR/dying.js" plain "$P_NODE" "$OUT/node-plain-times.tmp")
	sleep 0.3
	r1=$(metric "kbreaker_tcp_connects_total{circuit_name=\"node\",result=\"refused\"}")
	bl=$(metric "kbreaker_connects_blocked_total{circuit_name=\"node\"}")
	stop_agent "6b"
	reached=$((r1 - r0))
	# The first call the breaker refused is the one after the last that reached the peer.
	first_fast=$(sed -n "$((reached + 1))p" "$OUT/node-plain-times.tmp")
	raw "kbreaker dying server: $pl; metrics: refused $reached, blocked $bl"
	row "6. dying server (200 good calls, then dead): calls that reached the dead peer, opossum vs kbreaker" \
		"$(field reached_dead_peer "$op") vs $reached" "-" "-"
	row "6. dying server: time from death to the first fast fail (ms), opossum vs kbreaker" \
		"$(field first_fast_ms "$op") vs ${first_fast:-n/a}" "-" "-"
	row "6. dying server: per-call latency, live / failing fast (p50 us), opossum vs kbreaker" \
		"$(field live_p50_us "$op") / $(field fail_p50_us "$op") vs $(field live_p50_us "$pl") / $(field fail_p50_us "$pl")" "-" "-"
else
	log "6b. skipped: node or bench/node/node_modules/opossum missing (make bench-deps)"
	row "6. opossum comparison" "skipped: node or opossum missing" "-" "-"
fi

# 6c. bpftrace counting on the same tracepoint (sock:inet_sock_set_state). Its
# tracepoint probes need tracefs: mounted in a private mount namespace, so the
# host's mounts stay as they are.
if command -v bpftrace >/dev/null && command -v unshare >/dev/null; then
	log "6c. bpftrace on sock:inet_sock_set_state"
	BT_PROG='tracepoint:sock:inet_sock_set_state /args->protocol == 6 && args->oldstate == 2/ { @[ntop(args->daddr), args->dport, args->newstate] = count(); }'
	unshare -m sh -c 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; exec bpftrace -e "$0"' "$BT_PROG" \
		> "$OUT/bpftrace.out" 2>&1 &
	BT_PID=$!
	for _ in $(seq 1 100); do grep -q Attaching "$OUT/bpftrace.out" 2>/dev/null && break; sleep 0.1; done
	sleep 0.5
	"$KBBENCH" enable-stats 600 > "$OUT/bt-stats.tmp" &
	B_STATS_PID=$!
	sleep 0.2
	bt_snap() {
		local id
		for id in $(grep -h '^prog_id:' /proc/"$BT_PID"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -un); do
			bpftool prog show id "$id" -j | jq -r '"\(.id) \(.name) \(.run_time_ns // 0) \(.run_cnt // 0)"'
		done
	}
	bt_snap > "$OUT/bt-before.tmp"
	for c in $CASES; do
		IFS=: read -r name kind port <<<"$c"
		in_ns "$KBBENCH" loop "$kind" 127.0.0.1 "$port" "$N" >/dev/null
	done
	bt_snap > "$OUT/bt-after.tmp"
	kill "$B_STATS_PID"; wait "$B_STATS_PID" 2>/dev/null; B_STATS_PID=""
	kill -INT "$BT_PID"; wait "$BT_PID" 2>/dev/null
	join <(sort "$OUT/bt-before.tmp") <(sort "$OUT/bt-after.tmp") | awk '{ print $2, $6 - $3, $7 - $4 }' > "$OUT/bt-delta.tmp"
	raw "bpftrace deltas:"; cat "$OUT/bt-delta.tmp" >> "$RAW"
	while read -r name ns cnt; do
		row "6. bpftrace $name, same 4 cases: ns per run x runs per connect (kb_sockops: item 2)" \
			"$(awk -v n="$ns" -v c="$cnt" -v k=$((4 * N)) 'BEGIN { printf "%.0f x %.2f", c ? n / c : 0, c / k }')" "-" "-"
	done < "$OUT/bt-delta.tmp"
else
	log "6c. skipped: bpftrace or unshare missing"
	row "6. bpftrace comparison" "skipped: bpftrace or unshare missing" "-" "-"
fi
