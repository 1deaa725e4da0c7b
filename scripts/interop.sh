#!/usr/bin/env bash
# Runs the lapin, pika and amqplib (Node) interop suites against the broker at the given URL (or $AMQP_URL).
# Usage: scripts/interop.sh [amqp://user:pass@host:port/vhost]
set -euo pipefail
cd "$(dirname "$0")/.."
export AMQP_URL="${1:-${AMQP_URL:?give a URL or set AMQP_URL}}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/warren-target}"
echo "=== lapin suite against $AMQP_URL"
# The restart test restarts the broker under every other test running in parallel: run it alone.
env -u BROKER_RESTART cargo test --release -p interop-tests --test lapin
if [ -n "${BROKER_RESTART:-}" ]; then
  echo "=== lapin restart test against $AMQP_URL"
  cargo test --release -p interop-tests --test lapin restart::
fi
echo "=== pika suite against $AMQP_URL"
interop-tests/run-pika.sh
echo "=== amqplib (Node) tests against $AMQP_URL"
interop-tests/run-node.sh
