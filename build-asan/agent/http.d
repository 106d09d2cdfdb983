build-asan/agent/http.o: agent/http.c agent/http.h agent/log.h
agent/http.h:
agent/log.h:
