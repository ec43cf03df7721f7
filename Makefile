# Thin wrapper over CMake. Out-of-tree builds in build/<preset>[-uring]/; nothing here is committed.
#   make [release]   optimised binary: build/release/edgeproxy (-O3, LTO, -march=native)
#   make debug       -O0 -g3                  make asan    ASan+UBSan
#   make test        both backends (epoll, uring), each release + asan, every test on all four:
#                    one tree per mode, build/release and build/asan, each with both backends'
#                    binaries (edgeproxy, uring/edgeproxy)
#   make bench       Google Benchmark micro benchmarks     make run   run the release binary
#   make format      clang-format in place    make install PREFIX=/usr/local
# Options: BACKEND=epoll|uring  NATIVE=0 (portable, no -march=native)  ARGS="..." for make run
BACKEND ?= epoll
NATIVE ?= 1
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)
ARGS ?=

SUFFIX := $(if $(filter uring,$(BACKEND)),-uring,)
CMAKE_COMMON := -DEDGEPROXY_NATIVE=$(if $(filter 0,$(NATIVE)),OFF,ON)
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all release release-for-test debug asan test test-backend test-release test-asan bench run format install help clean

all: release

# $(call configure,DIR,BUILD_TYPE,CMAKE_ARGS,BACKENDS): configure build/DIR and build it.
define configure
	@cmake -S . -B build/$(1) -DCMAKE_BUILD_TYPE=$(2) $(CMAKE_COMMON) "-DEDGEPROXY_BACKEND=$(4)" \
	  $(3) >/dev/null
	@cmake --build build/$(1) -j $(JOBS)
endef

release:
	$(call configure,release$(SUFFIX),Release,-DEDGEPROXY_BENCH=ON,$(BACKEND))
# The test runs skip the micro benchmarks: building them (with LTO) is minutes of CI for nothing.
release-for-test:
	$(call configure,release$(SUFFIX),Release,-DEDGEPROXY_BENCH=OFF,$(BACKEND))
debug:
	$(call configure,debug$(SUFFIX),Debug,,$(BACKEND))
asan:
	$(call configure,asan$(SUFFIX),Debug,-DEDGEPROXY_SANITIZE=ON,$(BACKEND))

# One backend, one mode: make test-release BACKEND=uring.
test-release: release-for-test
	cd build/release$(SUFFIX) && ctest --output-on-failure -j 2
test-asan: asan
	cd build/asan$(SUFFIX) && $(SANITIZER_ENV) ctest --output-on-failure -j 2
test-backend: test-release test-asan
# Both backends, both modes, in two trees that compile what does not depend on the backend once.
test:
	$(call configure,release,Release,-DEDGEPROXY_BENCH=OFF,epoll;uring)
	cd build/release && ctest --output-on-failure -j 2
	$(call configure,asan,Debug,-DEDGEPROXY_SANITIZE=ON,epoll;uring)
	cd build/asan && $(SANITIZER_ENV) ctest --output-on-failure -j 2

bench: release
	build/release$(SUFFIX)/bench/micro_bench

run: release
	build/release$(SUFFIX)/edgeproxy $(ARGS)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

install: release
	install -D -m 0755 build/release$(SUFFIX)/edgeproxy $(DESTDIR)$(PREFIX)/bin/edgeproxy

clean:
	rm -rf build

help:
	@sed -n '2,10p' Makefile | sed 's/^# \{0,1\}//'
