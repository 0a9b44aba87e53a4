#  Thin wrapper: everything real is in CMakeLists.txt.
#    make run    bootstrap, build, start a broker on the embedded default
#    make test   bootstrap, build (normal + ASan/UBSan), run every test
#    make bench  micro-benchmarks (codec, storage)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

BUILD  ?= build
ASAN   ?= build-asan
PREFIX ?= /usr/local
JOBS   ?= $(shell nproc)

.PHONY: all bootstrap build asan run test unit integration format format-check bench install clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: bootstrap $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN)/Makefile:
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null

asan: bootstrap $(ASAN)/Makefile
	cmake --build $(ASAN) -j $(JOBS)

run: build
	$(BUILD)/bin/ternd

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h') && echo "format: ok"

unit: asan
	cd $(ASAN) && ctest -L unit --output-on-failure

integration: build
	cd $(BUILD) && ctest -L integration --output-on-failure

test: build asan
	@$(MAKE) --no-print-directory format-check
	cd $(ASAN) && ctest -L unit --output-on-failure -j 2 | tee ctest-unit.log
	cd $(BUILD) && ctest -L integration --output-on-failure | tee ctest-integration.log
	@scripts/test-summary $(ASAN)/ctest-unit.log $(BUILD)/ctest-integration.log

bench: build
	$(BUILD)/bin/bench_codec
	$(BUILD)/bin/bench_storage
	tools/bench/vs-nats.sh    # tern vs NATS JetStream + ceilings (REPS=3; QUICK=1 for a smoke run)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN)
