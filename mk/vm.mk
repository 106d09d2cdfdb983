# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The kernel matrix (issue 11), named to sort last so `make test` runs it after
# every other hook: tests/vm/ boots Debian's own kernels (5.10,
# 6.1, 6.12: tests/vm/kernels) in qemu on this machine's root file system
# and runs the kernel-facing end-to-end tests in each (KB_VM_E2E=all: every
# one), plus the refusal errno check, then the same on the running kernel.
# `make test-kernels` runs it (root, TCG: tens of minutes); part of `make test`. Kernels are fetched once through a
# private apt setup into $(BUILD)/vm; results in $(BUILD)/vm/results.tsv,
# `make kernels-table` turns them into the README's Markdown table.

DEB_PKGS += qemu-system-x86 busybox-static debian-archive-keyring kmod xz-utils
TEST_HOOKS += test-kernels-after-e2e

.PHONY: test-kernels test-kernels-after-e2e kernels-table

test-kernels: $(BUILD)/kbreakerd $(BUILD)/kbtool $(BUILD)/kbfloor
	$(Q)KB_BUILD=$(BUILD) tests/vm/matrix.sh

# In `make test` the suite has just run on the host: there only the refusal
# probe; two guests at a time, so the whole run stays well under 45 minutes.
test-kernels-after-e2e: $(BUILD)/kbreakerd $(BUILD)/kbtool $(BUILD)/kbfloor
	$(Q)KB_BUILD=$(BUILD) KB_HOST_MODE=probe KB_VM_JOBS=$${KB_VM_JOBS:-2} tests/vm/matrix.sh

kernels-table:
	$(Q)KB_BUILD=$(BUILD) tests/vm/table.sh
