# yank: make run (the main job) and make test (the test suite) both install
# what they need first (make deps, idempotent; needs root or sudo for apt).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
BIN := bin/yank
GINKGO_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
# Debian packages yank needs on the host: QEMU, the real guest agent and
# busybox for the guest image, Debian's kernel (the "debian" variant and the
# first guest before any build), kernel source and its build dependencies,
# libvirt (the libvirt backend's tests start their own libvirtd) and
# python3-jsonschema (kcidb-io's validator, third_party/kcidb-io) and
# openssh-server (the qemu+ssh test runs its own sshd).
APT_PACKAGES := qemu-system-x86 qemu-utils qemu-guest-agent busybox-static \
	linux-source-6.1 linux-source-6.12 linux-image-amd64 build-essential bc bison flex \
	libelf-dev libssl-dev dwarves cpio xz-utils kmod ccache pciutils git \
	libvirt-daemon-system libvirt-clients python3-jsonschema openssh-server
TEST_TIMEOUT ?= 80m
FUZZTIME ?= 10s

.PHONY: all deps build test unit fuzz lint bench run clean-cache suite-user-series docs

# The docs' generated output blocks (README's make run table...) rewritten
# from the recorded trials under docs/examples; TestDocsGenerated fails
# when they drift.
docs:
	$(GO) test -count=1 -run '^TestDocsGenerated$$' ./cmd/yank -args -update-docs

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: Debian packages present"; fi
	$(GO) mod download
	@if ! ginkgo version 2>/dev/null | grep -q "$(GINKGO_VERSION:v%=%)"; then \
		echo "deps: installing ginkgo $(GINKGO_VERSION)"; $(GO) install github.com/onsi/ginkgo/v2/ginkgo@$(GINKGO_VERSION); fi

build:
	$(GO) build -o $(BIN) ./cmd/yank
	$(GO) build -o bin/testsummary ./internal/testsummary

run: deps build
	./$(BIN) run

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The fast lane: every test that needs nothing but Go (fakes, recorded
# trials, the decision rules); e2e tests skip themselves under -short
# (internal/e2e). No QEMU, qemu-ga or libvirtd is started and nothing is
# built or installed: under a minute here.
unit:
	$(GO) test -short -count=1 ./...

# Unit tests, e2e tests against real QEMU, qemu-ga and kernels, and a short
# run of every fuzz target. Two packages at a time (TEST_PROCS): two guests
# are what 2 cores carry, and the e2e tests cut at anchors, so a loaded
# core moves when a trial ends, not what it tests. The summary after the
# ok/FAIL lines gives every package's time and the 10 slowest tests; the
# raw go test -json stream is kept in $(TEST_JSON). go test starts
# packages in the order given: the two longest (TEST_FIRST, ~9 and ~7 min
# on a fresh clone) go first, one per slot, and the rest fill in behind
# them (in ./... order trial came last and ran 7 min alone).
TEST_PROCS ?= 2
TEST_JSON ?= bin/test.json
TEST_FIRST ?= ./cmd/yank ./trial
test: deps lint build
	@set -o pipefail; $(GO) test -race -p $(TEST_PROCS) -count=1 -timeout $(TEST_TIMEOUT) -json $(TEST_FIRST) ./... | bin/testsummary -o $(TEST_JSON)
	$(MAKE) --no-print-directory suite-user-series
	$(MAKE) --no-print-directory fuzz

# The suites with a user's kernel spec (BASE+SERIES): stock plus the RFC
# given back as a patch directory must HANG in unbind-race (-yank.expect=bad).
suite-user-series:
	$(GO) test -count=1 ./suites/hotunplug -args -yank.kernels=mine=stock+$(CURDIR)/kernels/patches/rfc-v3 -yank.expect=bad

# Go's fuzz engine sometimes ends a clean run with "context deadline
# exceeded" when -fuzztime runs out mid-minimization (no crasher is
# written): such a run is tried once more; a real crasher fails at once.
FUZZ1 = fuzz1() { out=$$($(GO) test -run '^$$' -fuzz "^$$1\$$" -fuzztime $(FUZZTIME) $$2 2>&1); rc=$$?; echo "$$out"; \
	if [ $$rc != 0 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
	echo "fuzz: $$1: deadline hit without a crasher, once more"; $(GO) test -run '^$$' -fuzz "^$$1\$$" -fuzztime $(FUZZTIME) $$2; else exit $$rc; fi; }; fuzz1

fuzz:
	@$(FUZZ1) FuzzDecodeMessage ./qmp
	@$(FUZZ1) FuzzDecode ./guestagent
	@$(FUZZ1) FuzzApplySeries ./kernels

# Timings as benchmarks (never as test assertions): boot to agent-ready,
# surprise removal to DEVICE_DELETED, hang detection latency, the kernel
# build times (cold, incremental, cached), and the snapshot matrix (cold
# vs restored trials side by side, throughput at PROCS=1 and 2; its
# "bench:" table and report paths).
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 90m ./machine/... ./trial/ ./engine/ ./kernels/ 2>&1 | tee bench.out | grep -E '^(Benchmark|ok|FAIL|---|bench:)'

clean-cache:
	rm -rf "$${YANK_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/yank}"

# --- Suites (suites/, issue 6) ----------------------------------------------
# `go test ./suites/...` (part of `make test`) runs the smoke subset; `make
# matrix` runs every kernel x scenario x offset x repeat with guests in
# parallel and writes JUnit, Ginkgo JSON and an HTML heatmap report to
# $(MATRIX_OUT). Knobs: KERNELS=stock,rfc-v3,/path/bzImage (default: the
# kernels in suites/expect/expectations.json), SCENARIOS=, OFFSETS=1s,2s
# (default: each scenario's own; delays after the anchor for anchored
# cuts), CUT_AT=del_gendisk|offset (default: each scenario's cut_at),
# REPEATS, PROCS (guests at once), SEED,
# JITTER=100ms, LABELS (a Ginkgo label filter, e.g. 'scenario:unbind-race').
PROCS ?= 2
REPEATS ?= 3
SEED ?=
MATRIX_STAMP := $(shell date -u +%Y%m%dT%H%M%SZ)
MATRIX_OUT ?= artifacts/matrix-$(MATRIX_STAMP)
MATRIX_ARGS = -yank.matrix -yank.repeats=$(REPEATS) -yank.artifacts=$(abspath $(MATRIX_OUT))/artifacts \
	$(if $(KERNELS),-yank.kernels=$(KERNELS)) $(if $(SCENARIOS),-yank.scenarios=$(SCENARIOS)) \
	$(if $(OFFSETS),-yank.offsets=$(OFFSETS)) $(if $(CUT_AT),-yank.cut-at=$(CUT_AT)) $(if $(JITTER),-yank.jitter=$(JITTER))

.PHONY: matrix smoke report-deps

# Debian's chromium, for the report's screenshot test (suites/report).
report-deps:
	@if ! command -v chromium >/dev/null; then \
		echo "report-deps: installing chromium"; SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

# make test needs chromium too (the screenshot test fails in CI without it).
test: report-deps

smoke: deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./suites/... -args -ginkgo.v

matrix: deps report-deps build
	@mkdir -p $(MATRIX_OUT)
	@echo "matrix: output in $(MATRIX_OUT)"
	ginkgo -p --procs=$(PROCS) --timeout=6h --poll-progress-after=90s $(if $(SEED),--seed=$(SEED)) \
		$(if $(LABELS),--label-filter='$(LABELS)') \
		--output-dir=$(MATRIX_OUT) --junit-report=junit.xml --json-report=report.json \
		./suites/hotunplug -- $(MATRIX_ARGS); rc=$$?; \
	$(GO) run ./suites/cmd/report -title "yank matrix $(MATRIX_STAMP)" -o $(MATRIX_OUT)/report.html \
		-junit $(MATRIX_OUT)/junit.xml -kcidb $(MATRIX_OUT)/kcidb.json -kcidb-origin $(KCIDB_ORIGIN) $(MATRIX_OUT)/report.json || rc=1; \
	echo "matrix: $(abspath $(MATRIX_OUT))/report.html"; exit $$rc

# --- Nightly in shards (issue 23) -------------------------------------------
# What ci/examples/ run, on one machine: SHARDS shard jobs of one plan (each
# `make nightly-shard SHARD=K/N`, artifacts in $(NIGHTLY_OUT)/shard-K), then
# `make nightly-merge` (one matrix.json, tables, report.html, junit.xml and
# KCIDB file in $(NIGHTLY_OUT)/merged). Knobs: NIGHTLY_KERNELS,
# NIGHTLY_SCENARIOS, NIGHTLY_REPEAT (default: the virtio-blk scenarios on
# stock and rfc-v3-virtio, 3 times: 24 trials), KCIDB_ORIGIN.
SHARDS ?= 2
NIGHTLY_OUT ?= artifacts/nightly
NIGHTLY_KERNELS ?= stock,rfc-v3-virtio
NIGHTLY_SCENARIOS ?= unbind-race,surprise-io,surprise-idle,graceful-io
NIGHTLY_REPEAT ?= 3
KCIDB_ORIGIN ?= yank
.PHONY: nightly-local nightly-shard nightly-merge

nightly-shard: build
	@test -n "$(SHARD)" || { echo "nightly-shard: give SHARD=K/N"; exit 2; }
	./$(BIN) run -kernels $(NIGHTLY_KERNELS) -scenarios $(NIGHTLY_SCENARIOS) -repeat $(NIGHTLY_REPEAT) \
		-shard $(SHARD) -artifacts $(NIGHTLY_OUT)/shard-$(firstword $(subst /, ,$(SHARD))) \
		-kcidb $(NIGHTLY_OUT)/shard-$(firstword $(subst /, ,$(SHARD))).kcidb.json -kcidb-origin $(KCIDB_ORIGIN)

nightly-merge: build
	./$(BIN) report merge -o $(NIGHTLY_OUT)/merged -kcidb $(NIGHTLY_OUT)/merged/kcidb.json -kcidb-origin $(KCIDB_ORIGIN) \
		$(sort $(wildcard $(NIGHTLY_OUT)/shard-*/))

nightly-local: deps
	rm -rf $(NIGHTLY_OUT)
	@for k in $$(seq 1 $(SHARDS)); do $(MAKE) --no-print-directory nightly-shard SHARD=$$k/$(SHARDS) || exit 1; done
	$(MAKE) --no-print-directory nightly-merge
