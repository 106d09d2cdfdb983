# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make test-stress: the end-to-end suite with a CPU hog on every core
# (stress-ng, or plain busy loops without it) for as long as it runs; the
# hogs stop on every exit path (tests/e2e/stress.sh). A loaded CI machine
# must not fail a test that an idle one passes. Root, about as long as
# test-e2e on a machine with one core free. STRESS_CPUS sets the number of hogs.

DEB_PKGS += stress-ng
# `make help` prints HELP_LINES after its own.
HELP_LINES += '  test-stress    the end-to-end suite with a CPU hog on every core (root)'

.PHONY: test-stress

test-stress: deps
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/kbtool
	$(Q)tests/e2e/stress.sh $(BUILD)
