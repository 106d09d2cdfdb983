build-asan/agent/breaker.o: agent/breaker.c agent/breaker.h \
 include/kb_abi.h agent/config.h
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
