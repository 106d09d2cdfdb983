# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Trust suite (issue 7): the C helpers the fail-open, HTTP, load and start-up
# tests use, the config fuzzer, and the long runs behind `make fuzz` / `make soak`.

TRUST_TOOLS := $(BUILD)/httpabuse $(BUILD)/loadgen $(BUILD)/killconnect
ALL_EXTRA += $(TRUST_TOOLS)
DEB_PKGS += valgrind libclang-rt-14-dev
TEST_HOOKS += fuzz-short test-unit-valgrind
HELP_LINES += '  test-unit-valgrind  the unit suite under valgrind memcheck (uninitialised reads, leaks)'

FUZZ_SECONDS ?= 600
FUZZ_SHORT_SECONDS ?= 30
SOAK_SECONDS ?= 60
FUZZ_CC ?= $(CLANG)
FUZZ_BIN := $(BUILD)/fuzz/fuzz_config
FUZZ_SRCS := agent/config.c agent/config_value.c agent/config_check.c agent/yamlwalk.c agent/addr.c agent/duration.c

.PHONY: fuzz fuzz-short fuzz-build soak test-unit-valgrind

$(BUILD)/httpabuse $(BUILD)/loadgen $(BUILD)/killconnect: $(BUILD)/%: tests/tools/%.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $< -o $@ -lpthread

# libFuzzer + ASan + UBSan; links the config parser alone (pure: no log, no BPF).
$(FUZZ_BIN): tests/fuzz/fuzz_config.c $(FUZZ_SRCS) agent/config.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -g -O1 $(WARN) -std=gnu11 -D_GNU_SOURCE -Iagent -Iinclude \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		tests/fuzz/fuzz_config.c $(FUZZ_SRCS) -o $@ -lyaml

fuzz-build: $(FUZZ_BIN)

# The corpus in git stays read-only: new inputs go to $(BUILD)/fuzz/corpus.
# Crashes land in $(BUILD)/fuzz/ as crash-*, with the input that caused them.
define run_fuzz
	$(Q)mkdir -p $(BUILD)/fuzz/corpus
	@echo "  FUZZ     config_parse for $(1) s"
	$(Q)$(FUZZ_BIN) -max_total_time=$(1) -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
		-artifact_prefix=$(BUILD)/fuzz/ -print_final_stats=1 \
		-dict=tests/fuzz/config.dict $(BUILD)/fuzz/corpus tests/fuzz/corpus \
		2>$(BUILD)/fuzz/fuzz.log || { tail -60 $(BUILD)/fuzz/fuzz.log; exit 1; }
	$(Q)grep -E '^stat::number_of_executed_units|^Done' $(BUILD)/fuzz/fuzz.log | sed 's/^/  FUZZ     /'
endef

fuzz: $(FUZZ_BIN)
	$(call run_fuzz,$(FUZZ_SECONDS))

fuzz-short: $(FUZZ_BIN)
	$(call run_fuzz,$(FUZZ_SHORT_SECONDS))

# 60 s at ~20,000 failing connects/s plus successes; exact counts and flat RSS.
soak: $(BUILD)/kbreakerd $(BUILD)/kbtool $(TRUST_TOOLS)
	$(Q)LOAD_SECONDS=$(SOAK_SECONDS) tests/e2e/run.sh $(BUILD) tests/e2e/test_load.sh

# ASan sees neither reads of uninitialised memory nor, in the fault-injected
# paths the unit suite walks, what only they reach: memcheck does.
test-unit-valgrind: $(UNIT_BINS)
	$(Q)rc=0; for t in $(UNIT_BINS); do echo "  VALGRIND $$t"; \
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--track-origins=yes --suppressions=tests/tools/valgrind.supp $$t >$$t.valgrind 2>&1 || \
			{ grep -v '^\[' $$t.valgrind | head -40; rc=1; }; done; exit $$rc
