# The two commands: `make run` and `make test`. Everything else is a thin wrapper over scripts/.
.PHONY: all setup build run test bench fuzz format format-check clean

BUILD      ?= build/release
ASAN_BUILD ?= build/asan
FUZZ_BUILD ?= build/fuzz
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -G Ninja
# ccache hashes paths relative to the checkout, and not the build directory (-g records it), so
# another clone of the tree (CI's) hits the same cache entries. (Debug info from a hit names the
# directory of the build that filled the cache.)
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

all: build

setup:
	@scripts/setup

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DRR_SANITIZE=ON -DRR_BUILD_BENCH=OFF

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The server on the embedded local store, 127.0.0.1:8000, data in ./replayrail-data.
run: build
	$(BUILD)/src/replayrail/replayrail serve --store local --data-dir replayrail-data --listen 127.0.0.1:8000

test: setup format-check $(ASAN_BUILD)/build.ninja $(BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cmake --build $(BUILD) -j $(JOBS)
	scripts/test

bench: build
	scripts/bench

# libFuzzer on the parsers of untrusted input (tests/fuzz), FUZZ_SECONDS (60) each; needs clang,
# which `scripts/setup --fuzz` installs.
$(FUZZ_BUILD)/build.ninja:
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRR_FUZZ=ON -DRR_BUILD_TESTS=OFF -DRR_BUILD_BENCH=OFF -DRR_BUILD_UI=OFF

fuzz:
	@scripts/setup --fuzz
	$(MAKE) $(FUZZ_BUILD)/build.ninja
	FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz

format:
	@scripts/format

format-check:
	@scripts/format --check

clean:
	rm -rf build
