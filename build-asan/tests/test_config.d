build-asan/tests/test_config: tests/unit/test_config.c agent/config.h
agent/config.h:
