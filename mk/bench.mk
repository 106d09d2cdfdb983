# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make bench: every figure of BENCHMARKS.md, measured in one run (root, real kernel).
# bench/run.sh prints one table and writes $(BUILD)/bench/results.md; bench/fill.sh
# puts that table into BENCHMARKS.md.

.PHONY: bench bench-deps

# What only the benchmarks need, as command:package pairs (not added to DEB_PKGS:
# `make test` does not need them). Checked by command, not by package: Node and
# npm often come from elsewhere (NodeSource's nodejs bundles npm).
BENCH_DEPS := jq:jq node:nodejs npm:npm bpftrace:bpftrace unshare:util-linux

$(BUILD)/kbbench: bench/kbbench.c tests/tools/tool.h | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE $< -o $@

$(BUILD)/kbfloor: bench/kbfloor.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE $< -o $@

$(BUILD)/nowake.so: bench/nowake.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Wall -Wextra -Werror -shared -fPIC $< -o $@ -ldl

# Debian packages (make deps + the above), then opossum for the Node comparison (npm ci).
bench-deps: deps
	@missing=$$(for d in $(BENCH_DEPS); do \
		command -v $${d%%:*} >/dev/null || echo $${d#*:}; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(Q)if command -v npm >/dev/null && [ ! -d bench/node/node_modules/opossum ]; then \
		echo "  NPM      bench/node (npm ci)"; \
		cd bench/node && npm ci --no-audit --no-fund --silent; \
	fi

bench: bench-deps
	$(Q)$(MAKE) --no-print-directory $(BUILD)/kbreakerd $(BUILD)/kbbench $(BUILD)/kbfloor $(BUILD)/nowake.so
	$(Q)bench/run.sh $(BUILD)
	$(Q)bench/fill.sh $(BUILD)/bench/results.md BENCHMARKS.md
