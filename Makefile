# modelcat — `make` builds build/modelcat; `make run` and `make test` first
# install what is missing (Debian 12 packages, scripts/install-deps.sh).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
LISTEN     ?= 127.0.0.1:8000
DB         ?= sqlite:./var/modelcat.db

.PHONY: all build deps run test test-fast test-asan fuzz bench clean

all: build

deps:
	@./scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Embedded defaults: an SQLite file under ./var/ with the demo catalog, and
# real benchmark runs of modelcat bench against modelcat sim (first run only).
run: deps build
	@mkdir -p var
	@$(BUILD)/modelcat seed --demo --db $(DB)
	@./scripts/demo-runs.sh $(BUILD)/modelcat $(DB)
	exec $(BUILD)/modelcat serve --listen $(LISTEN) --db $(DB)

test: deps build test-fast test-asan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMC_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2

# libFuzzer builds of the fuzz targets (clang), each then run for
# FUZZ_SECONDS (default 60) by scripts/fuzz.sh, which prints executions.
fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMC_SANITIZE=ON -DMC_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@./scripts/fuzz.sh

bench: deps build
	@./scripts/install-deps.sh bench
	bench/api.sh
	bench/cache.sh
	bench/client.sh
	bench/ingest.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
