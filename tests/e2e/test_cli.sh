#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The command line: --help, --version, --check-config on good and broken
# files (file:line:col, non-zero exit), bad flags, and start-up failures
# that must end with one clear line, a non-zero exit and nothing attached.
. "$(dirname "$0")/lib.sh"
t_setup
T_LISTEN="127.0.0.1:$(free_port)"

# run_cli WANT_RC WANT_STDERR_SUBSTRING ARGS...
run_cli() {
	local want_rc=$1 want_err=$2 rc
	shift 2
	"$KBREAKERD" "$@" >"$T_DIR/out" 2>"$T_DIR/err"; rc=$?
	expect_eq "kbreakerd $* exit" "$rc" "$want_rc"
	check "kbreakerd $*: output has '$want_err' (it is: $(cat "$T_DIR/err" "$T_DIR/out"))" \
		grep -qF -- "$want_err" "$T_DIR/err" "$T_DIR/out"
}

log "--help, --version, bad flags"
run_cli 0 "Usage: kbreakerd" --help
run_cli 0 "kbreakerd 0." --version
run_cli 2 "Usage: kbreakerd" --no-such-flag
run_cli 2 '--log-level: unknown level "loud"' --log-level loud --version

log "--check-config: valid and broken files"
cat > "$T_DIR/good.yaml" <<EOC
listen: $T_LISTEN
destinations:
  - name: a
    host: 127.0.0.1
    port: 80
EOC
run_cli 0 "ok, 1 destinations" --check-config -c "$T_DIR/good.yaml"
# Two one-shots: neither may silently win.
run_cli 2 "--check-config and --clear-state cannot be used together" \
	--check-config --clear-state -c "$T_DIR/good.yaml"
printf 'listen: %s\ndestinations:\n  - name: a\n    host: 127.0.0.1\n    port: 99999\n' "$T_LISTEN" > "$T_DIR/bad.yaml"
run_cli 1 "$T_DIR/bad.yaml:5:11: " --check-config -c "$T_DIR/bad.yaml"
run_cli 1 "$T_DIR/missing.yaml: " --check-config -c "$T_DIR/missing.yaml"
run_cli 0 "ok, 3 destinations" --check-config -c "$(dirname "$0")/../../examples/kbreaker.yaml"

log "start-up failures: one clear line, non-zero, nothing attached"
agent_config cgroup=/nonexistent/kb-cgroup > "$T_DIR/nocg.yaml"
run_cli 1 "open cgroup /nonexistent/kb-cgroup: No such file or directory" -c "$T_DIR/nocg.yaml"
# The metrics port taken: the agent must not leave its hooks on the cgroup.
busy=$(free_port)
# The agent listens in the host's namespace, so the port is taken there.
start_listener --host 127.0.0.1 "$busy" /dev/null
agent_config listen=127.0.0.1:$busy > "$T_DIR/busy.yaml"
run_cli 1 "http: listen on 127.0.0.1 port $busy: Address already in use" -c "$T_DIR/busy.yaml"
kill "$LISTENER"; wait "$LISTENER" 2>/dev/null
expect_eq "programs left on the cgroup" "$(attached_progs "$T_CG")" 0

t_done
