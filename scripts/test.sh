#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and property tests, the lapin interop suite against an
# in-process Warren, the pika suite and the amqplib (Node) tests against a freshly started `warren`
# binary, the web UI in headless Chromium, and the two reference pika scripts run verbatim inside
# a private network namespace.
# Installs what it needs (Debian packages, a Python venv with pika, amqplib with npm) on a fresh
# machine.
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
# The amqplib interop tests (interop-tests/node) need node >= 18 and npm.
{ command -v node >/dev/null && command -v npm >/dev/null; } || need+=(nodejs npm)
# RocksDB's bindings are generated with libclang.
# (libclang-cpp, which other packages bring, is not it.)
has_libclang() {
  for f in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*; do
    [ -e "$f" ] && return 0
  done
  return 1
}
has_libclang || need+=(libclang-dev)
# rabbitmqadmin (RabbitMQ's HTTP API CLI, which the HTTP suite runs against Warren) ships inside
# Debian's rabbitmq-server package; only that script is used.
compgen -G '/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-*/priv/www/cli/rabbitmqadmin' >/dev/null ||
  need+=(rabbitmq-server)
# The web UI test drives Debian's headless Chromium through ChromeDriver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
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

step "cargo deny (licenses, bans, sources; advisories need a database these machines cannot fetch)"
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny check licenses bans sources

step "cargo test (unit, property, and lapin interop against in-process Warren)"
cargo test --release --workspace

step "pika and amqplib interop suites and the lapin restart test against a fresh warren"
cargo build --release -p warren
data=$(mktemp -d)
export WARREN_BIN="$CARGO_TARGET_DIR/release/warren" WARREN_DATA="$data/broker" WARREN_LOG="$data/warren.log"
WARREN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export WARREN_PORT
# Small queue memory budgets, so that the suites' backlogs are mostly paged to the store.
MGMT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PROM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'queue_memory_messages = 64\nqueue_memory_bytes = 65536\nmanagement_port = %s\nmanagement_ip = "127.0.0.1"\nprometheus_port = %s\nprometheus_ip = "127.0.0.1"\n' \
  "$MGMT_PORT" "$PROM_PORT" >"$data/warren.toml"
export WARREN_CONFIG="$data/warren.toml"
ctl="$root/interop-tests/warren-ctl.sh"
trap '"$ctl" stop || true; rm -rf "$data"' EXIT
"$ctl" start
# CTL: the rabbitmqctl-compatible admin command the access-control tests set users up with.
AMQP_URL="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2F" \
  BROKER_RESTART="$ctl restart" BROKER_KILL_RESTART="$ctl kill-restart" \
  CTL="$WARREN_BIN ctl --data-dir $WARREN_DATA" \
  "$root/interop-tests/run-pika.sh" || { tail -50 "$WARREN_LOG"; exit 1; }
# The management HTTP API through requests and rabbitmqadmin, and the Prometheus endpoint.
AMQP_URL="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2F" MGMT_URL="http://127.0.0.1:$MGMT_PORT" \
  PROM_URL="http://127.0.0.1:$PROM_PORT" \
  "$root/interop-tests/run-http.sh" || { tail -50 "$WARREN_LOG"; exit 1; }
# The web UI in headless Chromium: log in, declare a queue through the page, see it listed.
AMQP_URL="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2F" MGMT_URL="http://127.0.0.1:$MGMT_PORT" \
  UI_SCREENSHOTS="$data/ui-shots" "$root/interop-tests/run-ui.sh" || { tail -50 "$WARREN_LOG"; exit 1; }
# The amqplib (Node) tests: closing with frames in flight (npm ci on first use).
AMQP_URL="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2F" \
  "$root/interop-tests/run-node.sh" || { tail -50 "$WARREN_LOG"; exit 1; }
# The lapin restart test needs a broker it can restart: this one.
AMQP_URL="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2F" BROKER_RESTART="$ctl restart" \
  cargo test --release -p interop-tests --test lapin restart:: || { tail -50 "$WARREN_LOG"; exit 1; }
"$ctl" stop
bin="$WARREN_BIN"

step "reference pika scripts, verbatim, in a private network namespace"
# The scripts hard-code localhost:5672: the broker gets its defaults, not the suite's settings.
env -u WARREN_PORT -u WARREN_CONFIG "$root/interop-tests/run-examples.sh" "$bin" --data-dir "$data/examples"

step "all test steps passed"
