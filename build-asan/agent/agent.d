build-asan/agent/agent.o: agent/agent.c agent/agent.h agent/breaker.h \
 include/kb_abi.h agent/config.h agent/bpf.h agent/log.h agent/metrics.h \
 agent/status.h
agent/agent.h:
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
agent/bpf.h:
agent/log.h:
agent/metrics.h:
agent/status.h:
