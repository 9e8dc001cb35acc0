# The two commands: `make run` and `make test`. Everything else is a thin wrapper over scripts/.
.PHONY: all setup build run test bench format format-check clean

BUILD      ?= build/release
ASAN_BUILD ?= build/asan
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -G Ninja

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

format:
	@scripts/format

format-check:
	@scripts/format --check

clean:
	rm -rf build
