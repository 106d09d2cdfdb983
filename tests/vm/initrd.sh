#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build the initramfs of one fetched kernel (tests/vm/fetch.sh NAME first):
# busybox-static, tests/vm/init as /init, and the modules that mounting the
# host root over virtio-9p under an overlay needs, with their dependencies
# from the kernel's modules.dep, listed in load order in /modules.
# Rebuilt when tests/vm/init, this script or busybox is newer.
# Usage: tests/vm/initrd.sh NAME
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# = 1 ] || vm_die "usage: tests/vm/initrd.sh NAME"
vm_kernel "$1"
[ -s "$K_DIR/release" ] || vm_die "$K_NAME: not fetched (tests/vm/fetch.sh $K_NAME)"
release=$(cat "$K_DIR/release")
moddir=$K_DIR/lib/modules/$release
out=$K_DIR/initrd.img

BUSYBOX=$(dpkg-query -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
[ -n "$BUSYBOX" ] || vm_die "busybox-static is not installed (make deps)"

if [ -s "$out" ] && [ "$out" -nt "$VM_SRC/init" ] && [ "$out" -nt "$VM_SRC/initrd.sh" ] && [ "$out" -nt "$BUSYBOX" ]; then
	exit 0
fi

# What the guest loads before it can mount anything: the virtio PCI
# transport, its entropy source, 9p over virtio and overlayfs. A module the
# kernel has built in needs nothing.
ROOTS=(virtio_pci virtio_rng 9pnet_virtio 9p overlay)

# dep_path NAME: the module's path in modules.dep ('-' and '_' are one).
dep_path() {
	awk -F: -v n="${1//-/_}" '{ m = $1; sub(/.*\//, "", m); sub(/\.ko(\.[a-z]+)?$/, "", m); gsub(/-/, "_", m) }
		m == n { print $1; exit }' "$moddir/modules.dep"
}
builtin() { grep -q "/${1//_/[-_]}\.ko\$" "$moddir/modules.builtin"; }

# load PATH: append PATH to the load order after its dependencies.
order=()
declare -A seen=()
load() {
	local dep
	[ -z "${seen[$1]:-}" ] || return 0
	seen[$1]=1
	for dep in $(awk -F: -v p="$1" '$1 == p { print $2; exit }' "$moddir/modules.dep"); do
		load "$dep"
	done
	order+=("$1")
}
for m in "${ROOTS[@]}"; do
	p=$(dep_path "$m")
	if [ -n "$p" ]; then load "$p"
	elif ! builtin "$m"; then vm_die "$K_NAME: module $m is neither in modules.dep nor built in"
	fi
done

tmp=$(mktemp -d "$VM_DIR/kernels/.initrd-$K_NAME.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$VM_SRC/init" "$root/init"
chmod 755 "$root/init"
: > "$root/modules"
# Modules go in uncompressed: busybox insmod reads them as they are.
for p in "${order[@]}"; do
	dst=$root/lib/modules/${p%.xz}
	mkdir -p "$(dirname "$dst")"
	case $p in
	*.xz) xz -dc "$moddir/$p" > "$dst" ;;
	*) cp "$moddir/$p" "$dst" ;;
	esac
	echo "/lib/modules/${p%.xz}" >> "$root/modules"
done
(cd "$root" && find . -mindepth 1 | "$BUSYBOX" cpio -o -H newc 2>/dev/null) | gzip -1 > "$tmp/initrd.img"
mv "$tmp/initrd.img" "$out"
vm_say "$K_NAME: initramfs, modules: $(sed 's#.*/##' "$root/modules" | tr '\n' ' ')"
