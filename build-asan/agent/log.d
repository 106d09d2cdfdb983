build-asan/agent/log.o: agent/log.c agent/log.h
agent/log.h:
