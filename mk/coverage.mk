# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make coverage`: branch coverage of the breaker engine (breaker.c, window.c)
# under the engine's unit tests (test_breaker, test_window), built with --coverage in $(BUILD)-cov and read with
# `gcov -b`. Fails when any engine file has fewer than COV_MIN percent of its
# branches taken at least once. Part of `make test` through TEST_HOOKS.

COV_BUILD  := $(BUILD)-cov
COV_ENGINE := agent/breaker.c agent/window.c
COV_MIN    ?= 95
COV_CFLAGS := -O0 -g --coverage $(WARN) -std=gnu11 -D_GNU_SOURCE -DKB_VERSION='"$(VERSION)"' \
	      -Iinclude -Iagent -MMD -MP
# The unit tests link every pure module, as in the main build, plus the engine.
COV_SRCS    = $(sort $(PURE_SRCS) $(COV_ENGINE) agent/config_load.c agent/log.c)
COV_OBJS    = $(patsubst agent/%.c,$(COV_BUILD)/agent/%.o,$(COV_SRCS))
COV_TESTS   = $(COV_BUILD)/tests/test_breaker $(COV_BUILD)/tests/test_window

TEST_HOOKS += coverage
.PHONY: coverage

.SECONDARY: $(COV_OBJS)

# Rules here must not become the default goal: keep whatever was (not) chosen.
cov_saved_goal := $(.DEFAULT_GOAL)

$(COV_BUILD)/agent/%.o: agent/%.c
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(COV_CFLAGS) -c $< -o $@

$(COV_BUILD)/tests/%: tests/unit/%.c $(COV_OBJS)
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(COV_CFLAGS) $< $(COV_OBJS) -o $@ $(LDLIBS) -lcmocka

# Counters start from zero on each run; gcov's summary lands in $(COV_BUILD)/gcov.txt,
# the annotated sources (look for "taken 0%") in $(COV_BUILD)/*.c.gcov.
coverage: $(COV_TESTS)
	$(Q)find $(COV_BUILD) -name '*.gcda' -delete
	$(Q)for t in $(COV_TESTS); do $$t >/dev/null 2>&1 || { echo "  COV      $$t failed, run it to see why"; exit 1; }; done
	$(Q)gcov -b -o $(COV_BUILD)/agent $(COV_ENGINE) > $(COV_BUILD)/gcov.txt
	$(Q)mv -f $(addsuffix .gcov,$(notdir $(COV_ENGINE))) $(COV_BUILD)/
	$(Q)awk -v min=$(COV_MIN) ' \
		/^File / { f = $$2; gsub(/\047/, "", f); sub(/.*\//, "", f) } \
		/^Taken at least once:/ && f ~ /\.c$$/ { \
			split($$0, a, /[:% ]+/); pct = a[5]; n = a[7]; \
			taken += pct * n / 100; total += n; \
			printf "  COV      %-12s %6.2f%% of %d branches\n", f, pct, n; \
			if (pct + 0 < min) bad = 1; f = "" } \
		END { if (!total) { print "  COV      no branch data"; exit 1 } \
		      printf "  COV      engine       %6.2f%% of %d branches (minimum %d%%)\n", \
			     100 * taken / total, total, min; exit bad }' $(COV_BUILD)/gcov.txt

.DEFAULT_GOAL := $(cov_saved_goal)

-include $(wildcard $(COV_BUILD)/agent/*.d $(COV_BUILD)/tests/*.d)
