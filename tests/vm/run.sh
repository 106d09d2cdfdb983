#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Boot one kernel of tests/vm/kernels in qemu and run CMD in this checkout
# inside it, as root with CI=true, on the host's root file system (read-only
# over virtio-9p, a tmpfs overlay on top). CMD's output is printed as it
# comes; the exit status is CMD's, 124 when the guest ran out of time, 125
# when it reported none (the console's last lines say why).
# Usage: tests/vm/run.sh KERNEL -- CMD...
# Environment:
#   KB_VM_TIMEOUT  seconds before qemu is killed (default 1800)
#   KB_VM_SMP, KB_VM_MEM  guest CPUs (2) and MiB (2048)
#   KB_VM_KVM=1    use KVM instead of TCG (KVM guests hang on some hosts)
#   KB_VM_CONSOLE  a file to keep the guest's serial console in
#   KB_VM_VERBOSE=1  the console on stderr as it comes, and progress
#   KB_BUILD       the build directory (default build)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] && [ "$2" = -- ] || vm_die "usage: tests/vm/run.sh KERNEL -- CMD..."
vm_kernel "$1"
shift 2
timeout_s=${KB_VM_TIMEOUT:-1800}

# Fetch and build the initramfs once, even with several runs at a time.
mkdir -p "$VM_DIR/kernels"
(
	flock 9
	"$VM_SRC/fetch.sh" "$K_NAME"
	"$VM_SRC/initrd.sh" "$K_NAME"
) 9>"$VM_DIR/kernels/.$K_NAME.lock"
release=$(cat "$K_DIR/release")

tmp=$(mktemp -d "$VM_DIR/run-$K_NAME.XXXXXX")
qemu_pid= tail_pids=()
cleanup() {
	set +e
	[ -n "$qemu_pid" ] && kill -TERM "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
	for p in "${tail_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$tmp/io"
printf 'KB_DIR=%q\nKB_MODULES=%q\n' "$VM_TOP" "$K_DIR/lib/modules/$release" > "$tmp/io/job"
{ echo '#!/bin/bash'; printf 'exec'; printf ' %q' "$@"; echo; } > "$tmp/io/cmd"

if [ "${KB_VM_KVM:-0}" = 1 ]; then accel=kvm cpu=host; else accel=tcg cpu=max; fi
qemu=(qemu-system-x86_64 -machine "q35,accel=$accel" -cpu "$cpu"
      -smp "${KB_VM_SMP:-2}" -m "${KB_VM_MEM:-2048}" -nographic -nic none -no-reboot
      -kernel "$K_DIR/boot/vmlinuz-$release" -initrd "$K_DIR/initrd.img"
      -append 'console=ttyS0 panic=-1 loglevel=5 softlockup_panic=1'
      -device virtio-rng-pci
      -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
      -virtfs "local,path=$tmp/io,mount_tag=kbio,security_model=none,multidevs=remap")

vm_say "$K_NAME: booting $release ($accel), ${timeout_s} s at most"
start=$SECONDS
timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null >"$tmp/console.log" 2>&1 &
qemu_pid=$!
tail -n +1 -F --pid="$qemu_pid" "$tmp/io/output" 2>/dev/null &
tail_pids+=($!)
if [ "${KB_VM_VERBOSE:-0}" = 1 ]; then
	tail -n +1 -F --pid="$qemu_pid" "$tmp/console.log" >&2 2>/dev/null &
	tail_pids+=($!)
fi
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=
for p in "${tail_pids[@]}"; do wait "$p" || true; done
tail_pids=()
[ -z "${KB_VM_CONSOLE:-}" ] || cp "$tmp/console.log" "$KB_VM_CONSOLE"
vm_say "$K_NAME: guest done in $((SECONDS - start)) s"

console_tail() { echo "vm: $K_NAME: last lines of the console:" >&2; tail -n 30 "$tmp/console.log" | sed 's/^/    /' >&2; }
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
	echo "vm: $K_NAME: no result within $timeout_s s, qemu killed" >&2
	console_tail; exit 124
fi
if [ ! -s "$tmp/io/rc" ]; then
	echo "vm: $K_NAME: the guest reported no exit status (qemu exit $qemu_rc)" >&2
	console_tail; exit 125
fi
exit "$(cat "$tmp/io/rc")"
