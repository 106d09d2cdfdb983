#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make install into a DESTDIR: every file where it belongs with its mode, the
# unit pointing at the installed binary (and accepted by systemd-analyze
# verify when that is available), man pages that render without warnings,
# an existing config left alone, PREFIX honoured, uninstall. Needs no root.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=$(dirname "$KBREAKERD")
[ -x "$BUILD_DIR/kbreakerctl" ] || need "no $BUILD_DIR/kbreakerctl (make all builds it)"
D="$T_DIR/root"

# -o: install the binaries this suite tested, never rebuild them here.
kb_make() {
	make -C "$ROOT" --no-print-directory BUILD="$BUILD_DIR" \
		-o "$BUILD_DIR/kbreakerd" -o "$BUILD_DIR/kbreakerctl" "$@"
}

# expect_file PATH MODE
expect_file() {
	expect_eq "$1: mode" "$(stat -c %a "$1" 2>&1)" "$2"
}

log "make install DESTDIR=... (PREFIX=/usr/local)"
kb_make install DESTDIR="$D" > "$T_DIR/install.out" 2>&1
expect_eq "make install exit" "$?" 0
expect_file "$D/usr/local/sbin/kbreakerd" 755
expect_file "$D/usr/local/bin/kbreakerctl" 755
expect_file "$D/usr/local/share/man/man8/kbreakerd.8" 644
expect_file "$D/usr/local/share/man/man8/kbreakerctl.8" 644
expect_file "$D/usr/local/share/man/man5/kbreaker.yaml.5" 644
expect_file "$D/usr/local/lib/systemd/system/kbreakerd.service" 644
expect_file "$D/etc/kbreaker/kbreaker.yaml" 644
expect_eq "no stray files" "$(find "$D" -type f | wc -l)" 7
check "installed kbreakerd is the build's" cmp -s "$BUILD_DIR/kbreakerd" "$D/usr/local/sbin/kbreakerd"

log "installed binaries run; the installed config is valid"
expect_eq "kbreakerd --version" "$("$D/usr/local/sbin/kbreakerd" --version | awk '{ print $1 }')" kbreakerd
expect_eq "kbreakerctl --version" "$("$D/usr/local/bin/kbreakerctl" --version)" "$("$KBREAKERD" --version | sed 's/^kbreakerd/kbreakerctl/')"
"$D/usr/local/sbin/kbreakerd" --check-config -c "$D/etc/kbreaker/kbreaker.yaml" >/dev/null
expect_eq "installed config check" "$?" 0
UNIT="$D/usr/local/lib/systemd/system/kbreakerd.service"
expect_eq "ExecStart" "$(grep '^ExecStart=' "$UNIT")" "ExecStart=/usr/local/sbin/kbreakerd -c /etc/kbreaker/kbreaker.yaml"
expect_eq "Restart" "$(grep '^Restart=' "$UNIT")" "Restart=on-failure"

if command -v systemd-analyze >/dev/null; then
	log "systemd-analyze verify (the unit, its binary and man pages inside DESTDIR)"
	sed "s|/usr/local/sbin/|$D/usr/local/sbin/|g; s|/etc/kbreaker/|$D/etc/kbreaker/|g" "$UNIT" \
		> "$T_DIR/kbreakerd.service"
	man_check=--man=no
	command -v man >/dev/null && man_check=--man=yes
	MANPATH="$D/usr/local/share/man" systemd-analyze verify "$man_check" "$T_DIR/kbreakerd.service" \
		> "$T_DIR/verify.out" 2>&1
	expect_eq "systemd-analyze verify exit" "$?" 0
	expect_eq "systemd-analyze verify output" "$(cat "$T_DIR/verify.out")" ""
else
	log "no systemd-analyze: unit not verified"
fi

if command -v man >/dev/null; then
	log "man -l renders each page without warnings"
	for page in "$D"/usr/local/share/man/man8/kbreakerd.8 "$D"/usr/local/share/man/man8/kbreakerctl.8 \
		    "$D"/usr/local/share/man/man5/kbreaker.yaml.5; do
		LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" > "$T_DIR/page.txt" 2> "$T_DIR/page.err"
		expect_eq "man -l $(basename "$page") exit" "$?" 0
		expect_eq "man -l $(basename "$page") warnings" "$(cat "$T_DIR/page.err")" ""
		expect_eq "$(basename "$page") has NAME" "$(grep -c '^NAME' "$T_DIR/page.txt")" 1
	done
else
	log "no man: pages not rendered"
fi

log "an existing config is kept"
echo "# the operator's own" > "$D/etc/kbreaker/kbreaker.yaml"
kb_make install DESTDIR="$D" > "$T_DIR/install2.out" 2>&1
expect_eq "second make install exit" "$?" 0
expect_eq "config kept" "$(cat "$D/etc/kbreaker/kbreaker.yaml")" "# the operator's own"
expect_eq "install says so" "$(grep -c 'KEEP' "$T_DIR/install2.out")" 1

log "PREFIX=/usr"
kb_make install DESTDIR="$T_DIR/usr-root" PREFIX=/usr > "$T_DIR/install3.out" 2>&1
expect_eq "make install PREFIX=/usr exit" "$?" 0
expect_file "$T_DIR/usr-root/usr/sbin/kbreakerd" 755
expect_file "$T_DIR/usr-root/usr/bin/kbreakerctl" 755
expect_file "$T_DIR/usr-root/usr/share/man/man8/kbreakerd.8" 644
expect_file "$T_DIR/usr-root/usr/lib/systemd/system/kbreakerd.service" 644
expect_file "$T_DIR/usr-root/etc/kbreaker/kbreaker.yaml" 644
expect_eq "ExecStart under /usr" "$(grep '^ExecStart=' "$T_DIR/usr-root/usr/lib/systemd/system/kbreakerd.service")" \
	"ExecStart=/usr/sbin/kbreakerd -c /etc/kbreaker/kbreaker.yaml"

log "make uninstall removes all but the config"
kb_make uninstall DESTDIR="$D" > "$T_DIR/uninstall.out" 2>&1
expect_eq "make uninstall exit" "$?" 0
expect_eq "left after uninstall" "$(cd "$D" && find . -type f)" "./etc/kbreaker/kbreaker.yaml"

t_done
