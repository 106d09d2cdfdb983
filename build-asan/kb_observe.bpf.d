build-asan/kb_observe.bpf.o: bpf/kb_observe.bpf.c build-asan/vmlinux.h \
  bpf/kb_maps.bpf.h include/kb_abi.h

build-asan/vmlinux.h:

bpf/kb_maps.bpf.h:

include/kb_abi.h:
