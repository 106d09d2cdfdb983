build-asan/tests/test_breaker: tests/unit/test_breaker.c agent/breaker.h \
 include/kb_abi.h agent/config.h
agent/breaker.h:
include/kb_abi.h:
agent/config.h:
