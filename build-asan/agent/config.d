build-asan/agent/config.o: agent/config.c agent/config.h
agent/config.h:
