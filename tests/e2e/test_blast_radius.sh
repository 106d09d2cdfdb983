#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Blast-radius guard on real sockets: a name with three addresses, one
# breaker per address (per_address), max_open_percent 50. All three fail;
# at most one is ever open (or half_open) and blocked, the others keep
# reaching the peer. The name lives in an /etc/hosts bind-mounted in the
# agent's own mount namespace.
. "$(dirname "$0")/lib.sh"
t_setup
command -v unshare >/dev/null || need "unshare (util-linux) not installed"
P=$((20000 + RANDOM % 12000))
T_LISTEN="127.0.0.1:$(free_port)"
NAME=group.kbreaker-test.invalid
printf '127.0.0.11 %s\n127.0.0.12 %s\n127.0.0.13 %s\n' "$NAME" "$NAME" "$NAME" > "$T_DIR/hosts"
cat > "$T_DIR/kb.yaml" <<EOC
listen: $T_LISTEN
cgroup: $T_CG
defaults: { mode: enforce, consecutive_failures: 2, open_duration: 1s, half_open_permits: 1 }
destinations:
  - { name: grp, host: $NAME, port: $P, per_address: true, max_open_percent: 50 }
EOC
unshare -m --propagation private sh -c \
	'mount --bind "$1" /etc/hosts && exec "$2" -c "$3" --log-level debug' \
	sh "$T_DIR/hosts" "$KBREAKERD" "$T_DIR/kb.yaml" > "$T_DIR/agent.log" 2>&1 &
T_AGENT_PID=$!
for _ in $(seq 1 100); do scrape >/dev/null 2>&1 && break; sleep 0.05; done
expect_metric 'kbreaker_breakers' 3

# open_members: how many of the group's addresses are open or half_open now.
open_members() {
	curl -sf "http://$T_LISTEN/status" | grep -o '"address":"127.0.0.1[123]","state":"[a-z_]*"' |
		grep -c -E '"state":"(open|half_open)"'
}
max_open=0 saw_blocked=0
log "12 rounds of 2 refused connects to each address, 300 ms apart"
for round in $(seq 1 12); do
	for ip in 127.0.0.11 127.0.0.12 127.0.0.13; do
		in_test "$KBTOOL" connect "$ip" "$P" 2 >/dev/null
	done
	n=$(open_members)
	[ "$n" -gt "$max_open" ] && max_open=$n
	sleep 0.3
done
expect_eq "most members open at once" "$max_open" 1
blocked=$(metric 'kbreaker_connects_blocked_total{circuit_name="grp"}')
refused=$(metric 'kbreaker_tcp_connects_total{circuit_name="grp",result="refused"}')
log "blocked=$blocked refused=$refused of 72 connects"
expect_eq "every connect either reached the peer or was blocked" "$((blocked + refused))" 72
T_CHECKS=$((T_CHECKS + 2))
[ "$blocked" -gt 0 ] || fail "the guard let no breaker open"
# Two of three members always reached the peer: at least 2/3 of the connects.
[ "$refused" -ge 48 ] || fail "only $refused connects reached the peer; the guard let more than one block"
T_CHECKS=$((T_CHECKS + 1))
grep -q 'msg="breaker open" circuit=grp address=127.0.0.1[123]' "$T_DIR/agent.log" || fail "no per-address open logged"
t_done
