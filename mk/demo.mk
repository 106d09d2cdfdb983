# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make demo: a server fails and recovers, a client, kbreakerd and a real
# Prometheus with the shipped alerts, in a namespace and cgroup of its own
# (root, about a minute, not part of `make test`).

.PHONY: demo

demo: deps
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/kbtool
	$(Q)demo/demo.sh $(BUILD)
