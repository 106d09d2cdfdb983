build-asan/agent/metrics.o: agent/metrics.c agent/metrics.h \
 agent/breaker.h include/kb_abi.h agent/config.h
agent/metrics.h:
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
