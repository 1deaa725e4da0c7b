#!/usr/bin/env bash
# Builds (if needed) and runs the broker with the given arguments, e.g. scripts/run.sh --port 5673.
# On a fresh machine it first installs libclang (RocksDB's Rust bindings are generated with it); the
# first build compiles RocksDB's C++ and takes 15 to 25 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/warren-target}"
# (libclang-cpp, which other packages bring, is not it.)
has_libclang() {
  for f in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*; do
    [ -e "$f" ] && return 0
  done
  return 1
}
if ! has_libclang; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev
  else
    echo "libclang is missing: install the Debian package libclang-dev" >&2
    exit 1
  fi
fi
exec cargo run --release -p warren -- "$@"
