build-asan/agent/bpf.o: agent/bpf.c agent/bpf.h include/kb_abi.h \
 agent/log.h build-asan/kb_observe.skel.h build-asan/kb_enforce.skel.h
agent/bpf.h:
include/kb_abi.h:
agent/log.h:
build-asan/kb_observe.skel.h:
build-asan/kb_enforce.skel.h:
