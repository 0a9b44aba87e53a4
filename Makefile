#  Thin wrapper: everything real is in CMakeLists.txt.
#    make run    bootstrap, build ternd and ternctl quietly, start a broker on
#                the embedded default (ARGS="--listen ..." passes flags to ternd)
#    make test   bootstrap, build (normal + ASan/UBSan), run every test
#    make cluster  the same, then etcd and three ternd nodes on loopback
#                (scripts/cluster; data under ./tern-cluster; Ctrl-C stops all)
#    make bench  micro-benchmarks (codec, storage)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

BUILD  ?= build
ASAN   ?= build-asan
PREFIX ?= /usr/local
JOBS   ?= $(shell nproc)
ARGS   ?=

.PHONY: all bootstrap build asan run cluster test unit integration format format-check bench install clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/Makefile:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: bootstrap $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN)/Makefile:
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null

asan: bootstrap $(ASAN)/Makefile
	cmake --build $(ASAN) -j $(JOBS)

#  Builds the targets $(1) in $(BUILD) with the compiler's progress lines in
#  $(BUILD)/build.log: only warnings and errors (with a little context) reach
#  the terminal, and the end of the log when a failure has neither.
define quiet_build
	@echo "make: building $(1) in $(BUILD) (log: $(BUILD)/build.log)"
	@cmake --build $(BUILD) -j $(JOBS) --target $(1) >$(BUILD)/build.log 2>&1 || { \
	    grep -E -A3 '(warning|error):' $(BUILD)/build.log || tail -n 30 $(BUILD)/build.log; \
	    echo "make: the build failed; the whole output is in $(BUILD)/build.log"; exit 1; }
	@grep -E -A3 'warning:' $(BUILD)/build.log || true
endef

#  Only what a broker needs, so it starts without waiting for the tests
#  (`make build` or `make test` builds those).
run: bootstrap $(BUILD)/Makefile
	$(call quiet_build,ternd ternctl)
	@echo "make: starting $(strip $(BUILD)/bin/ternd $(ARGS)) (Ctrl-C stops it)"
	@exec $(BUILD)/bin/ternd $(ARGS)

#  etcd and three nodes on loopback (docs/cluster.md); ports and data dir
#  from the environment (scripts/cluster says which).
cluster: bootstrap $(BUILD)/Makefile
	$(call quiet_build,ternd ternctl)
	@echo "make: starting etcd and three ternd nodes (scripts/cluster; Ctrl-C stops them)"
	@TERN_CLUSTER_BIN=$(BUILD)/bin exec scripts/cluster

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
