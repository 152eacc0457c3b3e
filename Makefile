# Thin wrapper over CMake. `make test` builds and runs every test;
# `make bench` builds and runs the evaluation (docs/evaluation.md).
BUILD   ?= build
PREFIX  ?= /usr/local
CMAKE   ?= cmake
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build test bench install clean fuzz deb

all: build

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/bench/pcpu-bench $(BENCH_ARGS)

# libFuzzer targets (fuzz/run.sh; needs clang and libclang-rt-dev), each for
# FUZZ_SECONDS; extra libFuzzer options in FUZZ_ARGS (e.g. -max_len=2048).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_alloc fuzz_chunk
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		sh fuzz/run.sh $(CURDIR) $(abspath $(BUILD))/fuzz $$t -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) || exit 1; \
	done

# Debian packages libpercpu0 and libpercpu-dev (needs debhelper), built from
# a copy of the tree; the .deb files land in $(BUILD)/deb.
deb:
	sh tools/build-deb.sh $(CURDIR) $(abspath $(BUILD))/deb $(DEB_ARGS)

install: build
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
