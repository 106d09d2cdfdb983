# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Shared helpers for kbreaker's end-to-end tests. Each test sources this,
# gets its own network namespace and cgroup, and cleans up on every exit.
# Needs: KBREAKERD, KBTOOL (set by run.sh).

set -u
. "$(dirname "${BASH_SOURCE[0]}")/sandbox.sh"
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "/tmp/kb-$T_NAME.XXXXXX")
T_NS="kb-$T_NAME-$$"
T_CG=""
T_AGENT_PID=""
T_FAILED=0
# Checks made; t_check is the one place that counts them.
T_CHECKS=0
# How long a wait may take before it counts as a failure: far beyond what
# any wait here takes on an idle machine (milliseconds to about a second),
# so a loaded one passes too. Waits end as soon as their condition holds.
T_WAIT_S=${T_WAIT_S:-60}

# The test's own destination addresses, on its namespace's lo: a /16 of
# 127.64.0.0/10 (T_NET; T_ADDR its first host) and an IPv6 ULA address
# (T_ADDR6). kbreakerd observes every socket on the host, whatever its
# namespace, so another test's connects to 127.0.0.1 or ::1 on the same
# port would count here. test_scale keeps to 127.1-15 and 127.128/9.
T_NET=127.$((64 + RANDOM % 64))
T_ADDR=$T_NET.0.1
T_ADDR6=$(printf 'fd6b:%x:%x::1' $((1 + RANDOM)) $((1 + RANDOM)))

# Before Linux 5.18 (no bpf_set_retval) the hooks refuse with EPERM: kbtool
# then counts it as refused (tests/tools/tool.h), and tests/vm/probe.sh checks
# the errno itself. Debian's kernels carry upstream's version numbers.
read -r T_KMAJ T_KMIN _ <<<"$(uname -r | tr '.-' '  ')"
if [ "$T_KMAJ" -lt 5 ] || { [ "$T_KMAJ" = 5 ] && [ "$T_KMIN" -lt 18 ]; }; then
	export KB_EPERM_IS_REFUSED=1
fi

log() { printf '  [%s] %s\n' "$T_NAME" "$*"; }
fail() { printf '  [%s] FAIL: %s\n' "$T_NAME" "$*"; T_FAILED=$((T_FAILED + 1)); }

# attached_progs CGROUP: programs attached to CGROUP at kbreaker's hooks
# (kbtool attached); prints nothing, so no count matches, if it cannot tell.
attached_progs() { "$KBTOOL" attached "$1" | sed -n 's/^attached=//p'; }

# t_check STATUS WHAT: count one check; it failed unless STATUS is 0.
t_check() {
	T_CHECKS=$((T_CHECKS + 1))
	[ "$1" = 0 ] && return 0
	fail "$2"
	return 1
}

# check WHAT CMD...: one check, passed when CMD succeeds.
check() {
	local what=$1
	shift
	"$@"
	t_check $? "$what"
}

# wait_until SECONDS CMD...: run CMD every 50 ms until it succeeds (0) or
# SECONDS of wall time pass (1). Not a check: follow it with one.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -le "$end" ] || return 1
		sleep 0.05
	done
}

# A missing precondition skips locally (77) but fails under CI.
need() {
	if [ "${CI:-}" = true ]; then echo "  [$T_NAME] FAIL: precondition: $*"; exit 1; fi
	echo "  [$T_NAME] SKIP: $*"; exit 77
}

# host_only WHAT: the rest of the test decides nothing in the kernel; in a
# guest of the kernel matrix (tests/vm/run.sh makes /run/kbvm) it ends
# here, passing, and the host's run of the suite covers WHAT.
host_only() {
	[ -d /run/kbvm ] || return 0
	log "the rest runs on the host alone, not under emulation: $*"
	t_done
}

T_ON_EXIT=()
# t_on_exit CMD...: run CMD at cleanup, after the agent is gone.
t_on_exit() { T_ON_EXIT+=("$*"); }

t_cleanup() {
	set +e
	[ -n "$T_AGENT_PID" ] && kill -KILL "$T_AGENT_PID" 2>/dev/null && wait "$T_AGENT_PID" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	for c in "${T_ON_EXIT[@]}"; do eval "$c"; done
	ip netns del "$T_NS" 2>/dev/null
	if [ -n "$T_CG" ] && [ -d "$T_CG" ]; then
		# Whatever the test started and is still inside ends with it.
		t_cg_empty || { echo 1 > "$T_CG/cgroup.kill"; } 2>/dev/null ||
			for p in $(cat "$T_CG/cgroup.procs" 2>/dev/null); do kill -KILL "$p"; done
		wait_until 10 t_cg_empty
		rmdir "$T_CG"
	fi
	[ "${KB_KEEP:-}" = 1 ] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT
# Bash runs the EXIT trap on a signal only when the signal is trapped.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
t_cg_empty() { [ -z "$(cat "$T_CG/cgroup.procs" 2>/dev/null)" ]; }

t_setup() {
	local rc
	[ "$(id -u)" = 0 ] || need "not root"
	sandbox_up "$T_NS"; rc=$?
	T_CG=$SANDBOX_CG
	[ "$rc" = 0 ] || need "$SANDBOX_ERR"
	ip -n "$T_NS" addr add "$T_ADDR6/128" dev lo nodad || need "cannot add $T_ADDR6 to lo"
}

# Run a command inside the test's cgroup and network namespace.
in_test() {
	( echo "$BASHPID" > "$T_CG/cgroup.procs" && exec ip netns exec "$T_NS" "$@" )
}

# bg_test OUTFILE CMD...: CMD in the test's cgroup and namespace, in the
# background, its output in OUTFILE; BG is its pid: the command's own (not a
# subshell's), so a signal sent to it reaches the command.
bg_test() {
	local out=$1
	shift
	( echo "$BASHPID" > "$T_CG/cgroup.procs" && exec ip netns exec "$T_NS" "$@" > "$out" ) &
	BG=$!
}

# start_listener [--host] ADDR PORT OUTFILE [--rst]: kbtool listen in the
# test's namespace and cgroup (--host: the host's), in the background, until
# killed (SIGTERM: it writes accepted=N to OUTFILE) or the test ends; sets
# LISTENER and returns once it listens. No lifetime: a loaded machine
# outlasts any. The old form ADDR PORT SECONDS OUTFILE (test_http.sh) is
# taken with SECONDS ignored.
start_listener() {
	local host="" ready
	[ "$1" = --host ] && { host=1; shift; }
	[ $# -ge 4 ] && [[ $3 =~ ^[0-9]+$ ]] && set -- "$1" "$2" "${@:4}"
	ready="$T_DIR/ready-$2-$RANDOM"
	if [ -n "$host" ]; then
		"$KBTOOL" listen "$1" "$2" 0 "$ready" "${@:4}" > "$3" &
	else
		( echo "$BASHPID" > "$T_CG/cgroup.procs" &&
		  exec ip netns exec "$T_NS" "$KBTOOL" listen "$1" "$2" 0 "$ready" "${@:4}" > "$3" ) &
	fi
	LISTENER=$!
	wait_until "$T_WAIT_S" ready_or_gone "$ready" "$LISTENER"
	check "listener on $1 port $2 is up" test -e "$ready" || t_done
}

# ready_or_gone FILE PID: FILE exists or PID has exited.
ready_or_gone() { [ -e "$1" ] || ! kill -0 "$2" 2>/dev/null; }

# test_port N: the first of N consecutive ports for the test's namespace,
# below its ephemeral range, so a connect never picks its own destination
# port as source and connects to itself.
test_port() { echo $((20000 + RANDOM % (12000 - $1))); }

# agent_config [KEY=VALUE...] [defaults: KEY=VALUE...] [dest: KEY=VALUE...]...
# The agent's config on stdout: listen $T_LISTEN and cgroup $T_CG (a
# listen= or cgroup= word replaces them), the other top-level KEY=VALUEs
# (poll_interval=100ms, user=nobody, state_dir=DIR ...), a defaults section of
# the words after defaults:, and one destination of the words after each dest:
# (no dest: an empty list). Values are written as given, plain YAML scalars.
# A config these words cannot say (a broken one, 10,000 destinations) stays
# written out in its test.
agent_config() {
	local listen=$T_LISTEN cgroup=$T_CG dests=0 item="" w
	local -a top=()
	while [ $# -gt 0 ] && [ "$1" != defaults: ] && [ "$1" != dest: ]; do
		case $1 in
		listen=*) listen=${1#*=} ;;
		cgroup=*) cgroup=${1#*=} ;;
		*) top+=("$1") ;;
		esac
		shift
	done
	echo "listen: $listen"
	echo "cgroup: $cgroup"
	for w in "${top[@]}" "$@"; do
		case $w in
		defaults:) echo "defaults:"; item="  " ;;
		dest:) [ "$dests" -gt 0 ] || echo "destinations:"; dests=$((dests + 1)); item="  - " ;;
		*=*) echo "$item${w%%=*}: ${w#*=}"; [ "$item" = "  - " ] && item="    " ;;
		*) echo "agent_config: '$w' is not KEY=VALUE" >&2; return 1 ;;
		esac
	done
	[ "$dests" -gt 0 ] || echo "destinations: []"
}

# start_agent CONFIG: start kbreakerd and wait for /metrics.
start_agent() {
	start_agent_cmd "$KBREAKERD" -c "$1" --log-level debug
}

# start_agent_cmd CMD...: start CMD (kbreakerd, or a command that execs it:
# its pid is the agent's) with its output in $T_DIR/agent.log, and wait for
# /metrics; the test ends as failed if the agent exits or never answers
# (T_AGENT_START_S seconds, T_WAIT_S by default).
start_agent_cmd() {
	"$@" >"$T_DIR/agent.log" 2>&1 &
	T_AGENT_PID=$!
	wait_until "${T_AGENT_START_S:-$T_WAIT_S}" agent_up_or_gone
	check "agent up (serving /metrics)" scrape_ok || t_done
}

# start_agent_hosts HOSTS CONFIG: start_agent with the file HOSTS bind-mounted
# over /etc/hosts in the agent's own mount namespace (the host's file is
# never touched), for destinations given by name. A name HOSTS lacks goes
# to no real name server, whose answer may take seconds on a CI machine:
# /etc/resolv.conf names a local address where nothing listens, refused at
# once.
start_agent_hosts() {
	[ -e /etc/resolv.conf ] || { start_agent_bound "$2" "$1" /etc/hosts; return; }
	printf 'nameserver %s\noptions timeout:1 attempts:1\n' "$T_NET.0.54" > "$T_DIR/resolv-none.conf"
	start_agent_bound "$2" "$1" /etc/hosts "$T_DIR/resolv-none.conf" /etc/resolv.conf
}

# start_agent_resolv RESOLV CONFIG: the same with RESOLV over /etc/resolv.conf.
start_agent_resolv() { start_agent_bound "$2" "$1" /etc/resolv.conf; }

# start_dns_sink SECONDS: a name server on DNS=$T_NET.0.53 that takes every
# query and answers none, for SECONDS (killed when the test ends), and
# $T_DIR/resolv.conf naming it with glibc's longest timeout (30 s, one
# try), for start_agent_resolv. A check that it listens; the test ends if not.
start_dns_sink() {
	DNS=$T_NET.0.53
	printf 'nameserver %s\noptions timeout:30 attempts:1\n' "$DNS" > "$T_DIR/resolv.conf"
	"$KBTOOL" udpsink "$DNS" 53 "$1" "$T_DIR/dns-ready" > "$T_DIR/dns.out" &
	t_on_exit "kill $! 2>/dev/null"
	wait_until "$T_WAIT_S" test -e "$T_DIR/dns-ready"
	t_check $? "a name server that never answers, on $DNS" || t_done
}

# start_agent_bound CONFIG FILE TARGET [FILE TARGET...]: start_agent with
# each FILE bind-mounted over its TARGET in the agent's own mount namespace.
start_agent_bound() {
	command -v unshare >/dev/null || need "unshare (util-linux) not installed"
	start_agent_cmd unshare -m --propagation private sh -c \
		'kb=$1 cfg=$2; shift 2
		 while [ $# -ge 2 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done
		 exec "$kb" -c "$cfg" --log-level debug' \
		sh "$KBREAKERD" "$@"
}

# agent_alive WHAT: a check that the agent still runs; the test ends if not.
agent_alive() {
	kill -0 "$T_AGENT_PID" 2>/dev/null
	t_check $? "agent died: $1" || t_done
}

scrape_ok() { scrape >/dev/null 2>&1; }
agent_up_or_gone() { scrape_ok || ! kill -0 "$T_AGENT_PID" 2>/dev/null; }

stop_agent() {
	local rc
	kill -TERM "$T_AGENT_PID"
	wait "$T_AGENT_PID"; rc=$?
	T_AGENT_PID=""
	return $rc
}

# http_get PATH: GET the agent's PATH, the body on stdout, the exit status
# curl -sf's. kbtool starts in milliseconds where curl, with its dozens of
# libraries, takes a second in an emulated guest.
http_get() { "$KBTOOL" get "http://$T_LISTEN$1"; }
scrape() { http_get /metrics; }

# metric 'name{labels}': the value, or "absent".
metric() {
	scrape | awk -v k="$1" 'index($0, k " ") == 1 { print $2; found = 1 } END { if (!found) print "absent" }'
}

# expect_metric 'name{labels}' VALUE
expect_metric() {
	local got
	got=$(metric "$1")
	[ "$got" = "$2" ]
	t_check $? "$1 = $got, want $2"
}

# metric_is 'name{labels}' VALUE: whether it is that now (not a check).
metric_is() { [ "$(metric "$1")" = "$2" ]; }

# metric_above 'name{labels}' N: whether it is a number above N now (not a check).
metric_above() {
	local v
	v=$(metric "$1")
	[[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt "$2" ]
}

# wait_metric 'name{labels}' VALUE [TIMEOUT_S]: like expect_metric, for values
# the agent derives from events it may not have drained yet (successes do
# not wake it; it reads them at its next poll).
wait_metric() {
	wait_until "${3:-$T_WAIT_S}" metric_is "$1" "$2"
	expect_metric "$1" "$2"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ]
	t_check $? "$1: got '$2', want '$3'"
}

# expect_ge WHAT GOT MIN: GOT is a number no less than MIN.
expect_ge() {
	[[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ]
	t_check $? "$1: got '$2', want at least $3"
}

# state_is CIRCUIT STATE: whether the state gauge says so now (not a check).
state_is() { metric_is "circuit_breaker_state{circuit_name=\"$1\",state=\"$2\"}" 1; }

# wait_state CIRCUIT STATE [TIMEOUT_S]: poll the state gauge; a check.
wait_state() {
	wait_until "${3:-$T_WAIT_S}" state_is "$1" "$2"
	t_check $? "$1 never reached $2"
}

# probe_pending ADDR PORT: a connect from the test's cgroup and namespace that
# passes the connect hooks (a half_open permit, if any) and then waits, its
# SYNs dropped by nftables in the namespace (until the test ends); PROBE is
# its pid. A check that it got as far as SYN_SENT; the test ends if not.
probe_pending() {
	t_on_exit "ip netns exec $T_NS nft delete table inet kbprobe$2 2>/dev/null"
	ip netns exec "$T_NS" nft -f - <<EON
table inet kbprobe$2 { chain out { type filter hook output priority 0; tcp dport $2 drop; }; }
EON
	t_check $? "nft: drop SYNs to port $2" || t_done
	bg_test "$T_DIR/probe-$2" "$KBTOOL" connect "$1" "$2" 1 60000
	PROBE=$BG
	wait_until "$T_WAIT_S" syn_sent "$2"
	t_check $? "a connect to port $2 pending in SYN_SENT" || t_done
}
syn_sent() { [ -n "$(ip netns exec "$T_NS" ss -Htn state syn-sent "dport = :$1")" ]; }

# log_has ERE: whether the agent's log has a line matching ERE (not a check).
log_has() { grep -Eq -- "$1" "$T_DIR/agent.log"; }

# ns_counter GROUP NAME: a counter of the test namespace's /proc/net/snmp or
# /proc/net/netstat (GROUP Tcp, TcpExt, ...), e.g. ns_counter TcpExt ListenOverflows.
ns_counter() {
	ip netns exec "$T_NS" cat /proc/net/snmp /proc/net/netstat |
		awk -v g="$1:" -v n="$2" '$1 == g { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 }
			else { print (n in c) ? $c[n] : "absent"; exit } }'
}

# expect_field WHAT KEY WANT CMD...: run CMD (a kbtool command, through
# in_test or another runner), its output line in OUT; a check that its
# KEY=... is WANT, logging the whole line when not.
expect_field() {
	local what=$1 key=$2 want=$3
	shift 3
	OUT=$("$@")
	expect_eq "$what" "$(field "$key" "$OUT")" "$want" || log "  $*: $OUT"
}

t_done() {
	[ "$T_CHECKS" -gt 0 ] || fail "no checks ran"
	if [ "$T_FAILED" -gt 0 ]; then
		log "agent log:"; sed 's/^/      /' "$T_DIR/agent.log" 2>/dev/null | tail -40
		# What the namespace's TCP saw: a listener's overflowing backlog
		# or a reset shows here when the failure is the test's own.
		[ -e "/run/netns/$T_NS" ] && log "namespace TCP counters:" \
			"$(for c in Tcp:ActiveOpens Tcp:AttemptFails Tcp:OutRsts TcpExt:ListenOverflows \
				TcpExt:ListenDrops; do printf '%s=%s ' "${c#*:}" "$(ns_counter "${c%%:*}" "${c#*:}")"; done)"
		log "FAILED ($T_FAILED of $T_CHECKS checks)"; exit 1
	fi
	log "ok ($T_CHECKS checks)"; exit 0
}

# Cgroups below the test's own (the enforcement cgroup): workloads.
T_SUBCG_RM=""
# t_subcg NAME...: make the cgroups T_CG/NAME (a NAME may have several
# components; parents are made too). The first call registers
# t_cg_rm_below for cleanup, so they go on every exit, a failed one too.
t_subcg() {
	[ -n "$T_SUBCG_RM" ] || { T_SUBCG_RM=1; t_on_exit t_cg_rm_below; }
	mkdir -p "${@/#/$T_CG/}"
}

# cg_populated DIR: whether a process is still in DIR or below it (not a check).
cg_populated() {
	local k v
	while read -r k v; do
		[ "$k" = populated ] && { [ "$v" = 1 ]; return; }
	done < "$1/cgroup.events"
	return 1
}

# t_cg_rm_below: end every process in the cgroups below the test's and
# remove those cgroups, deepest first (rmdir needs them empty). Bounded:
# 10 s for the processes to go, then 10 s of retries for the directories.
t_cg_rm_below() {
	local d p
	local -a dirs=() busy=()
	[ -n "$T_CG" ] && [ -d "$T_CG" ] || return 0
	mapfile -t dirs < <(find "$T_CG" -mindepth 1 -depth -type d)
	[ ${#dirs[@]} -gt 0 ] || return 0
	mapfile -t busy < <(cg_populated_of "${dirs[@]}")
	for d in "${busy[@]}"; do
		{ echo 1 > "$d/cgroup.kill"; } 2>/dev/null ||
			for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	wait_until 10 cg_none_populated "${dirs[@]}"
	wait_until 10 cg_rmdir_all "${dirs[@]}"
	for d in "${dirs[@]}"; do
		[ -d "$d" ] && echo "  [$T_NAME] cleanup: cannot remove cgroup $d" >&2
	done
	return 0
}
# cg_populated_of DIR...: the DIRs with a process in them or below, one a
# line, in the order given. One grep reads them all: a shell loop over a
# thousand workloads' cgroups takes minutes in an emulated guest.
cg_populated_of() {
	grep -lx 'populated 1' "${@/%//cgroup.events}" 2>/dev/null | sed 's|/cgroup\.events$||'
}
# cg_none_populated DIR...: whether no process is in any DIR (gone ones are empty).
cg_none_populated() { [ -z "$(cg_populated_of "$@")" ]; }
# cg_rmdir_all DIR...: rmdir the DIRs still there (in the order given, one
# rmdir for all); whether all are gone.
cg_rmdir_all() {
	local d
	local -a left=()
	for d in "$@"; do
		[ -d "$d" ] && left+=("$d")
	done
	[ ${#left[@]} = 0 ] || rmdir -- "${left[@]}" 2>/dev/null
}

# in_cg NAME CMD...: run CMD in the cgroup T_CG/NAME and the test's network namespace.
in_cg() {
	local cg=$T_CG/$1
	shift
	( echo "$BASHPID" > "$cg/cgroup.procs" && exec ip netns exec "$T_NS" "$@" )
}

# bg_cg NAME OUTFILE CMD...: in_cg in the background, output in OUTFILE; BG
# is the command's own pid (as bg_test's).
bg_cg() {
	local cg=$T_CG/$1 out=$2
	shift 2
	( echo "$BASHPID" > "$cg/cgroup.procs" && exec ip netns exec "$T_NS" "$@" > "$out" ) &
	BG=$!
}
