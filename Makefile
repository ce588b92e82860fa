# The two commands of the README, and the benchmark. Everything else is CMake.
BUILD   ?= build
RELEASE := $(BUILD)/release
TESTING := $(BUILD)/test
JOBS    ?= $(shell nproc)

.PHONY: all deps build run test bench clean

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

clean:
	rm -rf $(BUILD)
