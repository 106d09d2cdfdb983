#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A destination given by name follows its addresses: the agent resolves it at
# start and every resolve_interval; an address that appears is counted for
# the breaker, one that disappears is removed from the maps. The name lives
# in an /etc/hosts bind-mounted over the real one in the agent's own mount
# namespace, so the host's file is never touched.
. "$(dirname "$0")/lib.sh"
t_setup
command -v unshare >/dev/null || need "unshare (util-linux) not installed"
P=$((20000 + RANDOM % 12000))
T_LISTEN="127.0.0.1:$(free_port)"
NAME=svc.kbreaker-test.invalid

printf '127.0.0.1 localhost\n127.0.0.5 %s\n' "$NAME" > "$T_DIR/hosts"
cat > "$T_DIR/kb.yaml" <<EOC
listen: $T_LISTEN
cgroup: $T_CG
resolve_interval: 1s
defaults: { mode: observe, consecutive_failures: 1000000 }
destinations:
  - { name: svc, host: $NAME, port: $P }
EOC
unshare -m --propagation private sh -c \
	'mount --bind "$1" /etc/hosts && exec "$2" -c "$3" --log-level debug' \
	sh "$T_DIR/hosts" "$KBREAKERD" "$T_DIR/kb.yaml" > "$T_DIR/agent.log" 2>&1 &
T_AGENT_PID=$!
for _ in $(seq 1 100); do scrape >/dev/null 2>&1 && break; sleep 0.05; done

M='kbreaker_tcp_connects_total{circuit_name="svc",result="refused"}'
log "resolved at start: 127.0.0.5"
in_test "$KBTOOL" connect 127.0.0.5 "$P" 4 >/dev/null
expect_metric "$M" 4
in_test "$KBTOOL" connect 127.0.0.6 "$P" 2 >/dev/null
expect_metric "$M" 4

log "the name moves to 127.0.0.6 and gains ::1"
# Rewrite in place: the bind mount follows the inode.
printf '127.0.0.1 localhost\n127.0.0.6 %s\n::1 %s\n' "$NAME" "$NAME" > "$T_DIR/hosts"
moved=no
for _ in $(seq 1 60); do
	grep -q 'msg="address removed" circuit=svc .*address=127.0.0.5' "$T_DIR/agent.log" &&
	grep -q 'msg="address added" circuit=svc .*address=127.0.0.6' "$T_DIR/agent.log" &&
	grep -q 'msg="address added" circuit=svc .*address=::1' "$T_DIR/agent.log" && { moved=yes; break; }
	sleep 0.1
done
expect_eq "re-resolution logged" "$moved" yes
in_test "$KBTOOL" connect 127.0.0.6 "$P" 3 >/dev/null
in_test "$KBTOOL" connect ::1 "$P" 2 >/dev/null
in_test "$KBTOOL" connect 127.0.0.5 "$P" 5 >/dev/null
expect_metric "$M" 9

log "the name stops resolving: the agent keeps the last good addresses"
printf '127.0.0.1 localhost\n' > "$T_DIR/hosts"
for _ in $(seq 1 40); do grep -q 'msg="resolve svc.kbreaker-test.invalid' "$T_DIR/agent.log" && break; sleep 0.1; done
in_test "$KBTOOL" connect 127.0.0.6 "$P" 1 >/dev/null
expect_metric "$M" 10
t_done
