build-asan/kb_enforce.bpf.o: bpf/kb_enforce.bpf.c build-asan/vmlinux.h \
  bpf/kb_maps.bpf.h include/kb_abi.h

build-asan/vmlinux.h:

bpf/kb_maps.bpf.h:

include/kb_abi.h:
