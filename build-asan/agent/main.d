build-asan/agent/main.o: agent/main.c agent/agent.h agent/breaker.h \
 include/kb_abi.h agent/config.h agent/bpf.h agent/http.h agent/log.h
agent/agent.h:
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
agent/bpf.h:
agent/http.h:
agent/log.h:
