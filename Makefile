# MCI services: developer entry points. See README.md.
SHELL := /bin/bash
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

# Every Debian package the build, the local stack and the tests need (the golang-* ones are what
# ../shared/tools/chart-check builds itself from, for the chart test, and gRPC for Go the bench's
# outside client, bench/outside/grpcload).
DEB_PACKAGES := build-essential cmake pkg-config ccache git ca-certificates \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libpqxx-dev libnats-dev nats-server libabsl-dev libgtest-dev libgmock-dev \
  libssl-dev libcpp-httplib-dev libgoogle-perftools-dev postgresql postgresql-contrib curl \
  python3 python3-yaml clang-format clang-tidy linux-perf \
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev \
  golang-github-xeipuuv-gojsonschema-dev golang-github-burntsushi-toml-dev \
  golang-github-gobwas-glob-dev golang-google-grpc-dev

.PHONY: deps build test test-unit test-integration run stop format lint clean bench

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "All Debian packages are installed."; fi

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: $(BUILD_DIR)/CMakeCache.txt
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) > /dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Unit tests, integration tests (real PostgreSQL + NATS + service processes on free loopback
# ports, started and stopped by the tests themselves) and the chart checks.
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -LE integration

test-integration: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L integration

# The whole stack on this machine: PostgreSQL + NATS under .local/, the three services on
# 127.0.0.1:50051-50053 (HTTP 9091-9093). Ctrl-C stops it; data stays for the next run.
run: build
	MCI_BUILD_DIR=$(BUILD_DIR) deploy/local/run.sh

stop:
	deploy/local/stop.sh

SOURCES = $(shell git ls-files '*.cc' '*.h')

format:
	clang-format -i $(SOURCES)

lint:
	clang-format --dry-run --Werror $(SOURCES)
	@if command -v npx >/dev/null; then npx --yes @bufbuild/buf lint; \
	else echo "npx not found: skipping buf lint (npm install @bufbuild/buf)"; fi
	clang-tidy -p $(BUILD_DIR) --quiet $(shell git ls-files 'services/*.cc' 'libs/*.cc')

clean:
	rm -rf $(BUILD_DIR)

# Benchmark of every path against baselines measured in the same run (echo gRPC server, pgbench):
# a Release build in build-release, its own PostgreSQL + NATS + services on free loopback ports,
# a seeded catalog (BENCH_SCALE MCIs, default 10000), a table on stdout and JSON in bench/results/.
# See docs/performance.md.
bench:
	bench/run.sh build-release
