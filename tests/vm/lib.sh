# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Shared by the kernel-matrix scripts in tests/vm/: paths, the kernel table
# (tests/vm/kernels), messages. Sourced; the caller sets -euo pipefail.

VM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_TOP=$(cd "$VM_SRC/../.." && pwd)
# KB_BUILD: the build directory whose binaries the guests run (make's BUILD).
KB_BUILD=$(cd "$VM_TOP" && realpath -m "${KB_BUILD:-build}")
VM_DIR=$KB_BUILD/vm

vm_die() { echo "vm: $*" >&2; exit 1; }
# vm_say MSG: progress, shown only with KB_VM_VERBOSE=1.
vm_say() { if [ "${KB_VM_VERBOSE:-0}" = 1 ]; then echo "vm: $*" >&2; fi; }

# vm_kernel NAME: set K_NAME, K_SUITE, K_SUPPORT, K_DIST from the table,
# K_DIR (where the kernel is unpacked); die on an unknown name.
vm_kernel() {
	local row
	row=$(awk -v n="$1" '!/^[ \t]*(#|$)/ && $1 == n' "$VM_SRC/kernels")
	[ -n "$row" ] || vm_die "kernel '$1' is not in tests/vm/kernels (known: $(vm_kernel_names | tr '\n' ' '))"
	read -r K_NAME K_SUITE K_SUPPORT K_DIST <<<"$row"
	case $K_SUPPORT in supported|unsupported) ;; *) vm_die "tests/vm/kernels: $1: support '$K_SUPPORT' is neither supported nor unsupported" ;; esac
	K_DIR=$VM_DIR/kernels/$K_NAME
}

# vm_kernel_names: every kernel in the table, in its order.
vm_kernel_names() { awk '!/^[ \t]*(#|$)/ { print $1 }' "$VM_SRC/kernels"; }
