build-asan/tests/test_metrics: tests/unit/test_metrics.c agent/metrics.h \
 agent/breaker.h include/kb_abi.h agent/config.h
agent/metrics.h:
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
