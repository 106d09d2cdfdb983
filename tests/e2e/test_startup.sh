#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Start-up failures (beyond test_cli.sh's cases): each must end with exactly
# one error line that says what is wrong, exit 1, and leave nothing behind:
# no program on the test cgroup, no socket on the metrics port.
# Covered: not root (uid 65534), cgroup path missing inside the cgroup2
# mount, a regular file, a directory outside cgroup2; listen address taken
# on IPv6, not local to this host, invalid (config errors); config errors
# met on a real start (aliases, unknown key, NUL, over 1 MiB, a directory);
# a user that does not exist.
. "$(dirname "$0")/lib.sh"
check "$KBREAKERD built" test -x "$KBREAKERD" || t_done
t_setup
command -v setpriv >/dev/null || need "setpriv (util-linux) missing"
HPORT=$(free_port)
chmod 755 "$T_DIR"	# uid 65534 must read the config

# fails_with NAME WANT_SUBSTRING CONFIG [PREFIX...]: start kbreakerd (at
# default log level) and check exit 1, one error line containing WANT, and
# nothing left attached or listening.
fails_with() {
	local name=$1 want=$2 cfg=$3 rc errs
	shift 3
	chmod 644 "$cfg" 2>/dev/null
	timeout "$T_WAIT_S" "$@" "$KBREAKERD" -c "$cfg" > "$T_DIR/out" 2> "$T_DIR/err"; rc=$?
	expect_eq "$name: exit status" "$rc" 1
	# An error line: logfmt at level=error, or a bare config error message.
	errs=$(grep -v '^ts=' "$T_DIR/err"; grep '^ts=.* level=error ' "$T_DIR/err")
	expect_eq "$name: error lines" "$(grep -c . <<<"$errs")" 1
	check "$name: error has '$want' (it is: $errs)" grep -qF -- "$want" <<<"$errs"
	log "  $name: $(head -n1 <<<"$errs" | sed 's/^ts=[^ ]* //')"
	[ "$(grep -c . <<<"$errs")" = 1 ] || sed 's/^/      /' "$T_DIR/err"
	expect_eq "$name: programs on the test cgroup" \
		"$(attached_progs "$T_CG")" 0
	expect_eq "$name: sockets on the metrics port" "$(ss -Htln "sport = :$HPORT" | grep -c .)" 0
}

# cfg CGROUP LISTEN: a config with one destination.
cfg() {
	printf 'listen: %s\ncgroup: %s\ndestinations:\n  - name: a\n    host: 127.0.0.1\n    port: 9\n' \
		"$2" "$1" > "$T_DIR/c.yaml"
	echo "$T_DIR/c.yaml"
}

log "privileges"
fails_with "not root" "loading BPF needs root" "$(cfg "$T_CG" "127.0.0.1:$HPORT")" \
	setpriv --reuid=65534 --regid=65534 --clear-groups

log "cgroup path"
fails_with "missing inside the cgroup2 mount" \
	"open cgroup $CG2_ROOT/kb-missing-$$: No such file or directory" \
	"$(cfg "$CG2_ROOT/kb-missing-$$" "127.0.0.1:$HPORT")"
: > "$T_DIR/regular"
fails_with "a regular file" "open cgroup $T_DIR/regular: Not a directory" \
	"$(cfg "$T_DIR/regular" "127.0.0.1:$HPORT")"
mkdir "$T_DIR/notcg"
fails_with "a directory outside cgroup2" "$T_DIR/notcg: not a cgroup v2 directory" \
	"$(cfg "$T_DIR/notcg" "127.0.0.1:$HPORT")"

log "listen address"
BUSY=$(free_port)
start_listener --host ::1 "$BUSY" /dev/null
fails_with "IPv6 address in use" "http: listen on ::1 port $BUSY: Address already in use" \
	"$(cfg "$T_CG" "\"[::1]:$BUSY\"")"
kill "$LISTENER"; wait "$LISTENER" 2>/dev/null
fails_with "address not on this host" "http: listen on 192.0.2.1 port $HPORT: Cannot assign requested address" \
	"$(cfg "$T_CG" "192.0.2.1:$HPORT")"
fails_with "listen: bad IPv4" "c.yaml:1:9: listen: host must be an IP address" "$(cfg "$T_CG" 999.1.1.1:80)"
fails_with "listen: port 0" "c.yaml:1:9: listen: port must be an integer between 1 and 65535" \
	"$(cfg "$T_CG" 127.0.0.1:0)"
fails_with "listen: a name" "c.yaml:1:9: listen: host must be an IP address" "$(cfg "$T_CG" localhost:80)"
fails_with "listen: IPv6 without brackets" "c.yaml:1:9: listen: IPv6 addresses need brackets" \
	"$(cfg "$T_CG" '"::1:80"')"

log "user"
printf 'user: kb-no-such-user\n' >> "$(cfg "$T_CG" "127.0.0.1:$HPORT")"
fails_with "user that does not exist" "user kb-no-such-user: no such user" "$T_DIR/c.yaml"

log "config errors on a real start"
fails_with "aliases" "alias.yaml:1:11: anchors and aliases are not allowed" \
	"$(dirname "$0")/../data/alias.yaml"
printf 'listen: 127.0.0.1:%s\ncgroup: %s\ndestinations: []\nbogus: 1\n' "$HPORT" "$T_CG" > "$T_DIR/u.yaml"
fails_with "unknown key" "u.yaml:4:1: unknown key \"bogus\"" "$T_DIR/u.yaml"
printf 'listen: 127.0.0.1:%s\n# a\0b\n' "$HPORT" > "$T_DIR/n.yaml"
fails_with "NUL byte" "n.yaml:2:4: NUL bytes are not allowed" "$T_DIR/n.yaml"
{ echo "cgroup: $T_CG"; head -c 1100000 /dev/zero | tr '\0' '#'; echo; } > "$T_DIR/big.yaml"
fails_with "over 1 MiB" "big.yaml: file is larger than 1 MiB" "$T_DIR/big.yaml"
fails_with "config is a directory" "$T_DIR/notcg: Is a directory" "$T_DIR/notcg"

t_done
