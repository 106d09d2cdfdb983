# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# kbreakerctl: the operator's CLI, a client of kbreakerd's /status endpoint.
# libcurl for HTTP, json-c for JSON; jq for the end-to-end test's checks.

DEB_PKGS  += libcurl4-openssl-dev libjson-c-dev jq
ALL_EXTRA += $(BUILD)/kbreakerctl

CTL_SRCS := ctl/kbreakerctl.c ctl/fetch.c ctl/table.c
CTL_OBJS := $(patsubst ctl/%.c,$(BUILD)/ctl/%.o,$(CTL_SRCS))
CTL_LIBS_PC := libcurl json-c
CTL_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(CTL_LIBS_PC) 2>/dev/null)
CTL_LDLIBS = $(shell $(PKG_CONFIG) --libs $(CTL_LIBS_PC) 2>/dev/null || echo -lcurl -ljson-c)

$(BUILD)/ctl:
	$(Q)mkdir -p $@

$(BUILD)/ctl/%.o: ctl/%.c | $(BUILD)/ctl
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(CTL_CFLAGS) -Ictl -c $< -o $@

# One duration parser for the agent's config and the CLI's flags.
$(BUILD)/kbreakerctl: $(CTL_OBJS) $(BUILD)/agent/duration.o
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $^ -o $@ $(CTL_LDLIBS)

# The tables from canned /status documents (tests/data/ctl-*): part of
# test-unit, no agent and no network. tests/ctl/ is not tests/unit/, so the
# test is named here and added to the suite.
CTL_UNIT_BINS := $(BUILD)/tests/test_ctl_table
UNIT_BINS += $(CTL_UNIT_BINS)

$(BUILD)/tests/test_ctl_table: tests/ctl/test_table.c $(BUILD)/ctl/table.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(CTL_CFLAGS) -Ictl -Itests/unit $< $(BUILD)/ctl/table.o -o $@ \
		$(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c) -lcmocka

-include $(wildcard $(BUILD)/ctl/*.d)
