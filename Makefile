# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# kbreaker build: bpf/%.bpf.c -> build/%.bpf.o -> build/%.skel.h -> build/kbreakerd
# `make help` lists the targets. V=1 shows full commands.

VERSION   ?= 0.1.0
BUILD     ?= build
CC        ?= cc
CLANG     ?= clang
BPFTOOL   ?= bpftool
PKG_CONFIG ?= pkg-config
ARCH      ?= $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/s390x/s390/' -e 's/riscv64/riscv/' -e 's/loongarch64/loongarch/')
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

LIBS_PC   := libbpf libmicrohttpd yaml-0.1 json-c
WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wmissing-prototypes
CFLAGS    ?= -O2 -g
SAN_FLAGS :=
ALL_CFLAGS = $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -DKB_VERSION='"$(VERSION)"' \
	     -Iinclude -Iagent -I$(BUILD) $(SAN_FLAGS) -MMD -MP
LDLIBS    = $(shell $(PKG_CONFIG) --libs $(LIBS_PC) 2>/dev/null || echo -lbpf -lelf -lz -lmicrohttpd -lyaml -ljson-c) -lpthread
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Iinclude -I$(BUILD)

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))

# Pure modules: no BPF, no clock, no I/O; linked into unit tests, with config_load.c (it
# reads the config file and namespace files) and log.c.
PURE_SRCS := agent/addr.c agent/yamlwalk.c agent/config.c agent/config_value.c agent/config_check.c \
             agent/duration.c agent/breaker.c agent/window.c agent/metrics.c agent/status.c \
             agent/persist.c agent/workloads.c agent/page_cache.c
# The running agent: breakers in slots, restarts, names, reloads, what HTTP shows.
AGENT_CORE_SRCS := agent/agent.c agent/slots.c agent/workload_names.c agent/cgroup.c agent/saved.c agent/resolver.c agent/reload.c \
                   agent/reload_write.c agent/snapshot.c agent/pages.c agent/pagebuf.c
AGENT_SRCS := $(PURE_SRCS) agent/config_load.c agent/main.c agent/bpf.c agent/bpf_pin.c agent/bpf_maps.c agent/bpf_workloads.c agent/http.c agent/http_admit.c \
              agent/log.c agent/resolve.c agent/privs.c agent/beat.c $(AGENT_CORE_SRCS)
AGENT_OBJS := $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(AGENT_SRCS))
PURE_OBJS  := $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(PURE_SRCS) agent/config_load.c agent/log.c)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

DEB_PKGS := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libmicrohttpd-dev libyaml-dev \
	    libcmocka-dev libjson-c-dev pkg-config prometheus nftables iproute2 curl procps

# Fragments in mk/ add their own targets. Each may append to DEB_PKGS,
# ALL_EXTRA (built by `make all`) and TEST_HOOKS (targets `make test` runs
# after the unit and end-to-end suites).
ALL_EXTRA :=
TEST_HOOKS :=
.DEFAULT_GOAL := all
include $(sort $(wildcard mk/*.mk))

.DELETE_ON_ERROR:
.PHONY: all help deps run test test-unit test-e2e test-asan clean

all: $(BUILD)/kbreakerd $(ALL_EXTRA)

help:
	@echo 'Targets:'
	@echo '  all (default)  build $(BUILD)/kbreakerd and the BPF skeletons'
	@echo '  deps           install the Debian packages kbreaker needs (skipped when present)'
	@echo '  run            deps + build, then run kbreakerd on examples/kbreaker.yaml (root)'
	@echo '  test           deps + build, then unit and end-to-end tests (root)'
	@echo '  test-unit      cmocka unit tests only (no root)'
	@echo '  test-e2e       end-to-end tests only (root, real kernel)'
	@echo '  test-asan      unit + end-to-end tests on an ASan+UBSan build (part of test)'
	@echo '  coverage       branch coverage of the breaker engine, >= 95% (part of test)'
	@echo '  check-rules    promtool check/test of the shipped rules, dashboard check (part of test)'
	@echo '  check-dashboard  the Grafana dashboard: schema and every query through promtool'
	@echo '  test-kernels   e2e suite on Debian kernels 5.10, 6.1, 6.12 in qemu and on this one (root, part of test)'
	@echo '  kernels-table  the README'"'"'s "Tested kernels" table from the last test-kernels run'
	@echo '  install        install binaries, man pages, unit and config (PREFIX, DESTDIR)'
	@echo '  uninstall      remove what install put there (PREFIX, DESTDIR)'
	@echo '  demo           the breaker story with a real Prometheus (root, ~30 s)'
	@echo '  bench          benchmarks, written to BENCHMARKS.md (root, < 15 min)'
	@echo '  bench-deps     deps + what bench needs beyond them (opossum, through npm ci)'
	@echo '  fuzz / soak    long fuzzing of the config parser / long load test'
	@echo '  fuzz-short     a short fuzzing run (part of test); fuzz-build only builds the fuzzer'
	@for l in $(HELP_LINES); do echo "$$l"; done
	@echo '  clean          remove $(BUILD)/'
	@echo 'Variables: V=1 CC CLANG BPFTOOL ARCH VMLINUX_BTF BUILD'

# dpkg-query answers "install ok installed" for each package that is present.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD) $(BUILD)/agent $(BUILD)/tests:
	$(Q)mkdir -p $@

$(BUILD)/vmlinux.h: | $(BUILD)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h | $(BUILD)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst .bpf,,$(basename $(notdir $<))) > $@

$(BUILD)/agent/%.o: agent/%.c | $(BUILD)/agent
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# The loader and the map code include the skeletons.
$(BUILD)/agent/bpf.o $(BUILD)/agent/bpf_pin.o $(BUILD)/agent/bpf_maps.o $(BUILD)/agent/bpf_workloads.o: $(SKELS)

$(BUILD)/kbreakerd: $(AGENT_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(PURE_OBJS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $< $(PURE_OBJS) -o $@ $(LDLIBS) -lcmocka

# Unit tests of the running agent link it against seams (tests/unit/fakes.c):
# kernel maps in memory, a table of names, a recording log_msg, and an
# allocator that fails on demand like the fake map calls.
AGENT_TEST_OBJS = $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(AGENT_CORE_SRCS)) \
		  $(BUILD)/tests/fakes.o $(BUILD)/tests/agent_test.o $(PURE_OBJS)
AGENT_TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=log_msg
AGENT_UNIT_BINS := $(addprefix $(BUILD)/tests/,test_reload test_restore test_resolver test_pages test_workloads \
		   test_permits test_resets)

$(BUILD)/tests/fakes.o $(BUILD)/tests/agent_test.o: $(BUILD)/tests/%.o: tests/unit/%.c | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(AGENT_UNIT_BINS): $(BUILD)/tests/%: tests/unit/%.c $(AGENT_TEST_OBJS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $< $(AGENT_TEST_OBJS) -o $@ $(LDLIBS) -lcmocka $(AGENT_TEST_WRAP)

KBTOOL_SRCS = tests/tools/kbtool.c tests/tools/kbtool_tfo.c

$(BUILD)/kbtool: $(KBTOOL_SRCS) | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(KBTOOL_SRCS) -o $@

test-unit: $(UNIT_BINS)
	$(Q)rc=0; for t in $(UNIT_BINS); do echo "  UNIT     $$t"; $$t || rc=1; done; exit $$rc

test-e2e: $(BUILD)/kbreakerd $(BUILD)/kbtool
	$(Q)tests/e2e/run.sh $(BUILD)

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS)
	$(Q)$(MAKE) --no-print-directory test-unit
	$(Q)$(MAKE) --no-print-directory test-e2e
	$(Q)$(MAKE) --no-print-directory test-asan
	$(Q)for h in $(TEST_HOOKS); do $(MAKE) --no-print-directory $$h || exit 1; done

# The unit suite and the end-to-end tests that exercise the agent's code
# paths (the slow load, Prometheus and valgrind ones stay out) against an
# ASan+UBSan build, in its own build dir.
ASAN_E2E := test_loop test_cli test_accuracy test_reload test_restart test_policy \
	    test_blast_radius test_resolve test_scale test_ctl test_scope test_http test_http_flood \
	    test_workloads test_preconnect test_fastopen test_log_stall
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
test-asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)-asan SAN_FLAGS="$(ASAN_FLAGS)" CFLAGS="-O1 -g" \
		all $(BUILD)-asan/kbtool $(patsubst $(BUILD)/%,$(BUILD)-asan/%,$(UNIT_BINS))
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)-asan SAN_FLAGS="$(ASAN_FLAGS)" CFLAGS="-O1 -g" test-unit
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/e2e/run.sh $(BUILD)-asan $(addprefix tests/e2e/,$(addsuffix .sh,$(ASAN_E2E)))

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(BUILD)/kbreakerd -c examples/kbreaker.yaml

clean:
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-cov

-include $(wildcard $(BUILD)/*.d $(BUILD)/agent/*.d $(BUILD)/tests/*.d)

# A dependency file names a tool's source where it was when last built (-MP
# covers headers, not the source itself): one since moved must not stop an
# incremental build. The tool's own rule names where it is now.
tests/e2e/kbtool.c: ;
