# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make install [PREFIX=/usr/local] [DESTDIR=]: binaries, man pages, the systemd
# unit and an example config (never overwriting one that exists).
# make uninstall removes what install put, except the config.

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
INSTALL    ?= install

KB_CONF := $(DESTDIR)$(SYSCONFDIR)/kbreaker/kbreaker.yaml
KB_MAN8 := man/kbreakerd.8 man/kbreakerctl.8
KB_MAN5 := man/kbreaker.yaml.5

.PHONY: install uninstall

install: $(BUILD)/kbreakerd $(BUILD)/kbreakerctl
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/kbreaker
	$(Q)$(INSTALL) -m 0755 $(BUILD)/kbreakerd $(DESTDIR)$(SBINDIR)/kbreakerd
	$(Q)$(INSTALL) -m 0755 $(BUILD)/kbreakerctl $(DESTDIR)$(BINDIR)/kbreakerctl
	$(Q)$(INSTALL) -m 0644 $(KB_MAN8) $(DESTDIR)$(MANDIR)/man8/
	$(Q)$(INSTALL) -m 0644 $(KB_MAN5) $(DESTDIR)$(MANDIR)/man5/
	$(Q)sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/etc/kbreaker/|$(SYSCONFDIR)/kbreaker/|g' \
		deploy/systemd/kbreakerd.service > $(DESTDIR)$(UNITDIR)/kbreakerd.service.tmp
	$(Q)chmod 0644 $(DESTDIR)$(UNITDIR)/kbreakerd.service.tmp
	$(Q)mv -f $(DESTDIR)$(UNITDIR)/kbreakerd.service.tmp $(DESTDIR)$(UNITDIR)/kbreakerd.service
	$(Q)if [ -e $(KB_CONF) ]; then \
		echo "  KEEP     $(KB_CONF) (exists; the example is examples/kbreaker.yaml)"; \
	else \
		$(INSTALL) -m 0644 examples/kbreaker.yaml $(KB_CONF); \
	fi

uninstall:
	$(call msg,UNINST,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/kbreakerd $(DESTDIR)$(BINDIR)/kbreakerctl \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(KB_MAN8))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(KB_MAN5))) \
		$(DESTDIR)$(UNITDIR)/kbreakerd.service
