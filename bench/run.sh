#!/usr/bin/env bash
# make bench: Release build in $1 (default build-release), then bench/mci-bench, which starts its
# own PostgreSQL, NATS, services and echo server on free loopback ports, runs every scenario and
# prints the table (JSON in bench/results/). See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-release}"
jobs="${JOBS:-$(nproc)}"
export CCACHE_BASEDIR="$PWD"

for tool in pgbench nats-server; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run make deps" >&2; exit 1; }
done

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMCI_TESTS=OFF > /dev/null
cmake --build "$build" -j "$jobs" --target catalog-service mci-bench mci-echo-server
# Services other engineers are still finishing may not build at every moment: the bench then
# reports their scenarios as not run rather than measuring a stale binary.
for target in template-reference-service:services/templates marketplace-service:services/marketplace; do
  name="${target%%:*}" dir="${target#*:}"
  if ! cmake --build "$build" -j "$jobs" --target "$name" > "$build/bench-$name.log" 2>&1; then
    echo "bench: $name does not build now (see $build/bench-$name.log); its scenarios will be skipped" >&2
    rm -f "$build/$dir/$name"
  fi
done

# The outside client (grpc-go, from Debian's golang-google-grpc-dev), for the "outside:" rows.
if command -v go >/dev/null && [ -d /usr/share/gocode/src/google.golang.org/grpc ]; then
  if GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/$build/go-cache" \
      go build -o "$build/grpcload" bench/outside/grpcload/main.go; then
    export BENCH_OUTSIDE="$PWD/$build/grpcload"
  fi
fi
[ -n "${BENCH_OUTSIDE:-}" ] || echo "bench: no outside client (make deps installs Go's gRPC); its rows will be skipped" >&2

exec "$build/bench/mci-bench"
