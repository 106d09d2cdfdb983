#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Fetch one kernel of tests/vm/kernels: the suite's linux-image-amd64 names
# the current generic image (not -cloud: that one builds 9p and overlay in
# no form we can use); apt-get download it through a private apt setup in
# $KB_BUILD/vm/apt/SUITE, unpack it into $KB_BUILD/vm/kernels/NAME, depmod.
# The host's apt sources, lists and cache stay untouched; the archive is the
# one the host's own sources name. A kernel already unpacked is not fetched
# again: remove its directory to refresh it.
# Usage: tests/vm/fetch.sh NAME
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# = 1 ] || vm_die "usage: tests/vm/fetch.sh NAME"
vm_kernel "$1"
[ -s "$K_DIR/release" ] && exit 0

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$KEYRING" ] || vm_die "$KEYRING missing (package debian-archive-keyring)"

# archive_uri: the first URI of the host's apt sources that serves `main` of
# the host's own Debian release (its codename as the suite, which leaves out
# -security, -updates and third-party archives), in apt's reading order.
archive_uri() {
	local codename SL SP
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || vm_die "/etc/os-release has no VERSION_CODENAME"
	eval "$(apt-config shell SL Dir::Etc::sourcelist/f SP Dir::Etc::sourceparts/d)"
	local files=() f
	[ -f "$SL" ] && files+=("$SL")
	for f in "$SP"/*; do case $f in *.list|*.sources) files+=("$f") ;; esac; done
	for f in "${files[@]}"; do
		case $f in
		*.sources) awk -v want="$codename" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && comps ~ /(^| )main( |$)/ &&
				    (" " suites " ") ~ (" " want " ") && enabled != "no" && uris != "") {
					split(uris, u, " "); print u[1]; exit
				}
				types = uris = suites = comps = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{ k = tolower($1); sub(/:$/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
			  if (k == "types") types = v; else if (k == "uris") uris = v
			  else if (k == "suites") suites = v; else if (k == "components") comps = v
			  else if (k == "enabled") enabled = tolower(v) }
			END { flush() }' "$f" ;;
		*) sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
			awk -v want="$codename" '$1 == "deb" && $3 == want {
				for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit } }' ;;
		esac
	done | awk 'NR == 1'
}

apt_root=$VM_DIR/apt/$K_SUITE
mkdir -p "$apt_root"/{lists/partial,cache/archives/partial,parts,prefs,debs}
: > "$apt_root/status"
uri=$(archive_uri)
[ -n "$uri" ] || vm_die "no URI serving main of the Debian archive in the host's apt sources"
echo "deb [signed-by=$KEYRING] $uri $K_SUITE main" > "$apt_root/sources.list"

# Everything apt keeps goes under $apt_root; the host's apt.conf.d (proxies,
# retries) still applies.
apt_opts=(-o Dir::Etc::sourcelist="$apt_root/sources.list" -o Dir::Etc::sourceparts="$apt_root/parts"
	  -o Dir::Etc::preferences="$apt_root/prefs/none" -o Dir::Etc::preferencesparts="$apt_root/prefs"
	  -o Dir::State::Lists="$apt_root/lists" -o Dir::Cache="$apt_root/cache"
	  -o Dir::State::status="$apt_root/status" -o Dir::State::extended_states="$apt_root/extended_states"
	  -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Acquire::Languages=none)

out=$apt_root/apt.log
vm_say "$K_NAME: apt-get update ($K_SUITE)"
apt-get "${apt_opts[@]}" update >"$out" 2>&1 && ! grep -q '^[WE]:' "$out" ||
	{ cat "$out" >&2; vm_die "$K_NAME: apt-get update for $K_SUITE failed"; }

# linux-image-amd64 depends on exactly one versioned linux-image-*-amd64.
pkg=$(apt-cache "${apt_opts[@]}" show --no-all-versions linux-image-amd64 |
	sed -n 's/^Depends: //p' | tr ',' '\n' | awk '$1 ~ /^linux-image-.*-amd64$/ { print $1; exit }')
[ -n "$pkg" ] || vm_die "$K_NAME: linux-image-amd64 in $K_SUITE depends on no linux-image-*-amd64"
release=${pkg#linux-image-}

# apt downloads as _apt where it can write.
chown _apt "$apt_root/debs" 2>/dev/null || true
deb=$(ls "$apt_root/debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	vm_say "$K_NAME: apt-get download $pkg"
	(cd "$apt_root/debs" && apt-get "${apt_opts[@]}" -q download "$pkg") >"$out" 2>&1 ||
		{ cat "$out" >&2; vm_die "$K_NAME: apt-get download $pkg failed"; }
	deb=$(ls "$apt_root/debs/${pkg}"_*.deb)
fi

tmp=$(mktemp -d "$VM_DIR/kernels/.$K_NAME.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
vm_say "$K_NAME: unpack $(basename "$deb")"
dpkg-deb -x "$deb" "$tmp"
[ -f "$tmp/boot/vmlinuz-$release" ] && [ -d "$tmp/lib/modules/$release" ] ||
	vm_die "$K_NAME: $(basename "$deb") has no boot/vmlinuz-$release or lib/modules/$release"
# The package leaves modules.dep to its postinst.
depmod -b "$tmp" "$release"
dpkg-deb -f "$deb" Package Version > "$tmp/package"
echo "$release" > "$tmp/release"
rm -rf "$K_DIR"
mv "$tmp" "$K_DIR"
trap - EXIT
