#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and property tests, the lapin interop suite against an
# in-process Warren, the pika suite against a freshly started `warren` binary, and the two reference
# pika scripts run verbatim inside a private network namespace.
# Installs what it needs (Debian packages, a Python venv with pika) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/warren-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n=== %s\n' "$*"; }

step "system packages"
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings

step "cargo test (unit, property, and lapin interop against in-process Warren)"
cargo test --release --workspace

step "pika interop suite against a fresh warren"
cargo build --release -p warren
bin="$CARGO_TARGET_DIR/release/warren"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --bind 127.0.0.1 --port "$port" --data-dir "$data" --log-level warn >"$data/warren.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then break; fi
  kill -0 $pid 2>/dev/null || { cat "$data/warren.log"; echo "warren exited" >&2; exit 1; }
  python3 -c 'import time; time.sleep(0.1)'
done
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F" "$root/interop-tests/run-pika.sh"
kill -TERM $pid
wait $pid || { echo "warren did not shut down cleanly" >&2; cat "$data/warren.log"; exit 1; }
trap 'rm -rf "$data"' EXIT

step "reference pika scripts, verbatim, in a private network namespace"
"$root/interop-tests/run-examples.sh" "$bin" --data-dir "$data/examples"

step "all test steps passed"
