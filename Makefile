# Thin wrapper over CMake (Ninja when installed). Out-of-tree builds in build/<preset>[-uring]/; nothing here is committed.
#   make [release]   optimised binary: build/release/edgeproxy (-O3, LTO, -march=native)
#   make debug       -O0 -g3                  make asan    ASan+UBSan
#   make test        both backends (epoll, uring), each release + asan, every test on all four:
#                    one tree per mode, build/asan and build/release, each with both backends'
#                    binaries (edgeproxy, uring/edgeproxy); the asan tests run while release builds
#   make bench       Google Benchmark micro benchmarks     make run   run the release binary
#   make soak        scripts/soak.sh on the release binary (SOAK_SECONDS, default 1800; BACKEND)
#   make format      clang-format in place    make install PREFIX=/usr/local
#   make fuzz-build  the libFuzzer targets (clang++, ASan+UBSan) in build/fuzz
#   make fuzz        every fuzz target FUZZ_SECONDS (60) in turn; new inputs in build/fuzz/corpus
#   make tsan        ThreadSanitizer tree build/tsan (both backends)
#   make test-tsan   the multi-worker, reload and admin tests under it (docs/reliability.md)
# Options: BACKEND=epoll|uring  NATIVE=0 (portable, no -march=native)  ARGS="..." for make run
BACKEND ?= epoll
NATIVE ?= 1
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)
ARGS ?=
# Tests run at once by ctest (make test, test-release, test-asan): most of them wait on sockets.
TEST_JOBS ?= 4

SUFFIX := $(if $(filter uring,$(BACKEND)),-uring,)
CMAKE_COMMON := -DEDGEPROXY_NATIVE=$(if $(filter 0,$(NATIVE)),OFF,ON)
# Ninja when installed; a tree already configured keeps the generator it was made with.
GENERATOR := $(if $(shell command -v ninja 2>/dev/null),Ninja,Unix Makefiles)
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
CTEST := ctest --output-on-failure -j $(TEST_JOBS)

FUZZ_SECONDS ?= 60
# What make test-tsan runs (ctest -R): the two-worker suites, test_workers, reloads, the admin socket.
TSAN_TESTS ?= workers2|test_workers|test_reload|test_admin
# halt_on_error: a report ends the proxy (exit 66), which fails its test; log_path keeps every
# report, and test-tsan fails when any was written even if a test did not notice the exit.
TSAN_REPORTS := $(CURDIR)/build/tsan/reports
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$(TSAN_REPORTS)/tsan \
  EDGEPROXY_READY_TIMEOUT=30

.PHONY: all release release-for-test debug asan test test-backend test-release test-asan bench run format install help clean \
	fuzz fuzz-build tsan test-tsan soak

all: release

# $(call generator,DIR): -G for a tree not configured yet.
generator = $(if $(wildcard build/$(1)/CMakeCache.txt),,-G "$(GENERATOR)")
# $(call configure,DIR,BUILD_TYPE,CMAKE_ARGS,BACKENDS): configure build/DIR and build it.
define configure
	@cmake -S . -B build/$(1) $(call generator,$(1)) \
	  -DCMAKE_BUILD_TYPE=$(2) $(CMAKE_COMMON) "-DEDGEPROXY_BACKEND=$(4)" $(3) >/dev/null
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
	cd build/release$(SUFFIX) && $(CTEST)
test-asan: asan
	cd build/asan$(SUFFIX) && $(SANITIZER_ENV) $(CTEST)
test-backend: test-release test-asan

# Both backends, both modes, in two trees (build/asan, build/release), each compiling what does not
# depend on the backend once. build/release builds at the lowest priority from the start, on the
# CPU time build/asan and then its tests (mostly waiting on sockets) leave; its own tests run last.
# Its output goes to build/release-build.log, printed once the ASan tests are done. (set -m: a
# process group of its own, to stop it all on failure; in the same session, where nice counts.)
test: SHELL := /bin/bash
test:
	@mkdir -p build
	@cmake -S . -B build/asan $(call generator,asan) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_COMMON) \
	  "-DEDGEPROXY_BACKEND=epoll;uring" -DEDGEPROXY_SANITIZE=ON >/dev/null
	@cmake -S . -B build/release $(call generator,release) -DCMAKE_BUILD_TYPE=Release $(CMAKE_COMMON) \
	  "-DEDGEPROXY_BACKEND=epoll;uring" -DEDGEPROXY_BENCH=OFF >/dev/null
	@set -m; nice -n 19 cmake --build build/release -j $(JOBS) >build/release-build.log 2>&1 & \
	  release_build=$$!; set +m; \
	  trap 'kill -- -$$release_build 2>/dev/null' INT TERM EXIT; \
	  cmake --build build/asan -j $(JOBS) || exit; \
	  (cd build/asan && $(SANITIZER_ENV) $(CTEST)); asan=$$?; \
	  echo "make test: waiting for build/release (build/release-build.log)"; \
	  wait $$release_build; built=$$?; trap - INT TERM EXIT; cat build/release-build.log; \
	  if [ $$built -ne 0 ]; then echo "make test: building build/release failed" >&2; exit $$built; fi; \
	  (cd build/release && $(CTEST)); release=$$?; \
	  $(call soak_step,epoll,build/release/edgeproxy); soak=$$?; \
	  $(call soak_step,uring,build/release/uring/edgeproxy) || soak=1; \
	  if [ $$asan -ne 0 ]; then echo "make test: tests failed in build/asan:" >&2; \
	    cat build/asan/Testing/Temporary/LastTestsFailed.log >&2 2>/dev/null; fi; \
	  if [ $$release -ne 0 ]; then echo "make test: tests failed in build/release:" >&2; \
	    cat build/release/Testing/Temporary/LastTestsFailed.log >&2 2>/dev/null; fi; \
	  if [ $$soak -ne 0 ]; then echo "make test: the soak failed:" >&2; \
	    grep -hE '^soak: [0-9]|\| FAIL \||^UNEXPLAINED' build/soak-*.log >&2; fi; \
	  [ $$asan -eq 0 ] && [ $$release -eq 0 ] && [ $$soak -eq 0 ]

# The soak (docs/reliability.md): make test runs TEST_SOAK_SECONDS on each backend's release
# binary after the other tests; make soak runs SOAK_SECONDS (default 30 minutes) on one.
TEST_SOAK_SECONDS ?= 60
# Each soak's report is also kept in build/soak-BACKEND.log: make test repeats its failed rows last.
soak_step = SOAK_SECONDS=$(TEST_SOAK_SECONDS) SOAK_BACKEND=$(1) EDGEPROXY_BIN=$(2) scripts/soak.sh \
  2>&1 | tee build/soak-$(1).log; test $${PIPESTATUS[0]} -eq 0
soak: release-for-test
	SOAK_BACKEND=$(BACKEND) EDGEPROXY_BIN=build/release$(SUFFIX)/edgeproxy scripts/soak.sh

# The fuzz tree: clang++ with libFuzzer, ASan and UBSan; only the fuzz targets and the core they
# link are built (nothing of the product). Built at low priority: the cores are shared.
fuzz-build:
	@cmake -S . -B build/fuzz $(call generator,fuzz) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
	  -DEDGEPROXY_FUZZ=ON -DEDGEPROXY_NATIVE=OFF -DEDGEPROXY_BACKEND=epoll >/dev/null
	@nice -n 10 cmake --build build/fuzz -j $(JOBS) --target fuzz_targets
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# ThreadSanitizer: both backends' binaries (the tests it runs are integration suites).
tsan:
	@cmake -S . -B build/tsan $(call generator,tsan) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_COMMON) \
	  "-DEDGEPROXY_BACKEND=epoll;uring" -DEDGEPROXY_TSAN=ON -DEDGEPROXY_BENCH=OFF >/dev/null
	@nice -n 10 cmake --build build/tsan -j $(JOBS) --target edgeproxy edgeproxy_uring
test-tsan: SHELL := /bin/bash
test-tsan: tsan
	@rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	@start=$$(date +%s); (cd build/tsan && $(TSAN_ENV) $(CTEST) -R '$(TSAN_TESTS)'); rc=$$?; \
	  echo "make test-tsan: $$(( $$(date +%s) - start )) s"; \
	  if compgen -G '$(TSAN_REPORTS)/tsan.*' >/dev/null; then \
	    echo "make test-tsan: ThreadSanitizer reports in $(TSAN_REPORTS):" >&2; \
	    head -n 40 $(TSAN_REPORTS)/tsan.* >&2; exit 1; fi; \
	  exit $$rc

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
	@sed -n '2,13p' Makefile | sed 's/^# \{0,1\}//'
