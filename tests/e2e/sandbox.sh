# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# What the end-to-end tests (lib.sh), the benchmarks (bench/run.sh) and the
# demo (demo/demo.sh) share: a cgroup and a network namespace of their own, a
# free port for the agent's metrics, the fields of a key=value line.
# Sourced; defines functions only. Each user removes its sandbox its own way.

# sandbox_up NAME: a cgroup NAME under the cgroup2 mount (CG2_ROOT; the
# cgroup's path in SANDBOX_CG, set before it is made so cleanup can find it)
# and a network namespace NAME with lo up. On the first step that fails,
# returns 1 with the reason in SANDBOX_ERR.
sandbox_up() {
	SANDBOX_CG=""
	CG2_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$CG2_ROOT" ] || { SANDBOX_ERR="no cgroup2 mount in /proc/mounts"; return 1; }
	SANDBOX_CG="$CG2_ROOT/$1"
	mkdir "$SANDBOX_CG" || { SANDBOX_ERR="cannot create cgroup $SANDBOX_CG"; return 1; }
	ip netns add "$1" || { SANDBOX_ERR="cannot create network namespace $1"; return 1; }
	ip -n "$1" link set lo up
}

# A TCP port free on the host's loopback (the agent's metrics), below the
# host's ephemeral range (32768+): there, any client socket of the host (a
# TIME_WAIT left by a scrape) can hold the port and the agent's bind fails.
# Prints 0 and returns 1 when 50 tries found none.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 12000))
		ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	echo 0
	return 1
}

# field KEY LINE: value of KEY=... in a line of key=value words (kbtool's, kbbench's).
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
