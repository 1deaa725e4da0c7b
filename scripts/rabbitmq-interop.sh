#!/usr/bin/env bash
# Differential testing: installs Debian's rabbitmq-server if needed, starts it, and runs both interop
# suites against it. Tests must pass against RabbitMQ as well as Warren.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rabbitmq-server >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
fi
if ! rabbitmqctl status >/dev/null 2>&1; then
  ulimit -n 65536 || true
  rabbitmq-server -detached
fi
rabbitmqctl await_startup --timeout 120 >/dev/null
# The consistent-hash exchange tests need RabbitMQ's plugin (shipped with the server).
rabbitmq-plugins -q enable rabbitmq_consistent_hash_exchange >/dev/null
# The restart tests restart RabbitMQ's application the way scripts/test.sh restarts Warren.
export BROKER_RESTART="rabbitmqctl -q stop_app && rabbitmqctl -q start_app && rabbitmqctl -q await_startup"
exec scripts/interop.sh "amqp://guest:guest@localhost:5672/%2F"
