# The two commands of the README, the benchmark and the fuzzer. Everything else is CMake.
BUILD   ?= build
RELEASE := $(BUILD)/release
TESTING := $(BUILD)/test
FUZZING := $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
JOBS    ?= $(shell nproc)

.PHONY: all deps build run test bench fuzz clean

all: build

deps:
	@deploy/install-deps.sh build

build: deps
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

# Serves the demo app on 127.0.0.1:8000 with the default configuration.
run: build
	$(RELEASE)/cmd/qilin -c config/qilin.yaml

# Every test, built with AddressSanitizer and UndefinedBehaviorSanitizer.
test:
	@deploy/install-deps.sh test
	@cmake -S . -B $(TESTING) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQILIN_SANITIZE=ON >/dev/null
	@cmake --build $(TESTING) -j $(JOBS)
	cd $(TESTING) && ctest --output-on-failure --timeout 600 -j 2

bench: build
	@deploy/install-deps.sh bench
	bench/run.sh $(RELEASE)/cmd/qilin

# libFuzzer on http::Session, then on the config file, FUZZ_SECONDS each,
# from tests/fuzz/seeds/NAME; what it learns stays in $(FUZZING)/corpus/NAME
# for the next run, a finding in $(FUZZING).
FUZZ_TARGETS := session config
fuzz:
	@deploy/install-deps.sh fuzz
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZING) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DQILIN_SANITIZE=ON -DQILIN_FUZZ=ON >/dev/null
	@cmake --build $(FUZZING) -j $(JOBS) --target $(FUZZ_TARGETS:%=%_fuzz)
	@set -e; cd $(FUZZING); for target in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$target; \
	  tests/fuzz/$${target}_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
	    corpus/$$target $(CURDIR)/tests/fuzz/seeds/$$target; \
	done

clean:
	rm -rf $(BUILD)
