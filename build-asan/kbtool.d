build-asan/kbtool: tests/e2e/kbtool.c
