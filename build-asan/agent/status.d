build-asan/agent/status.o: agent/status.c agent/status.h agent/breaker.h \
 include/kb_abi.h agent/config.h
agent/status.h:
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
