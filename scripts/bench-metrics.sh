#!/usr/bin/env bash
# What the management plane costs (issue 13):
#  1. the node-wide counters on the hot path: S1, S3, S5 (raw client) on a base binary and on the
#     new one, alternately, a fresh broker per run;
#  2. scraping: S1 and S5 (raw client and lapin) on the new binary and on RabbitMQ 3.10.8 (with
#     its management and prometheus plugins), each with and without a scraper that fetches
#     /api/overview, /api/queues and /metrics every second.
# Prints one warren-perf JSON line per run. Not a test.
#   BASE_BIN=... NEW_BIN=... PERF=... ROUNDS=2 scripts/bench-metrics.sh
# Needs: rabbitmq-server, curl.
set -euo pipefail
base="${BASE_BIN:?the warren binary before the change}"
new="${NEW_BIN:?the warren binary after the change}"
perf="${PERF:?warren-perf}"
rounds="${ROUNDS:-2}"
work=$(mktemp -d /var/tmp/bench-metrics.XXXXXX)
chmod 755 "$work"
pid=""
scraper=""
node=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$node" ] && rabbitmqctl -n "$node" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

S1="--count 2000000 --size 16"
S3="--count 200000 --size 1024 --durable --persistent --confirm 100 --ack --prefetch 100"
S5="--count 100000 --size 256 --exchange-type fanout --queues 10 --consumers 10"

port_open() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null; }

fresh() { # binary
  [ -n "$pid" ] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work/data"
  printf 'management_port = 15791\nmanagement_ip = "127.0.0.1"\n' > "$work/w.toml"
  # The base binary may predate the Prometheus settings.
  if [ "$1" = "$new" ]; then
    printf 'prometheus_port = 15792\nprometheus_ip = "127.0.0.1"\n' >> "$work/w.toml"
  fi
  "$1" --bind 127.0.0.1 --port 5790 --data-dir "$work/data" --config "$work/w.toml" > "$work/warren.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do port_open 5790 && return 0; sleep 0.1; done
  echo "warren did not start" >&2; exit 1
}

scrape() { # management port, prometheus port
  ( while sleep 1; do
      curl -s -o /dev/null -u guest:guest "http://127.0.0.1:$1/api/overview"
      curl -s -o /dev/null -u guest:guest "http://127.0.0.1:$1/api/queues"
      curl -s -o /dev/null "http://127.0.0.1:$2/metrics"
    done ) &
  scraper=$!
}

unscrape() { [ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }; scraper=""; }

run() { # label port pid client args...
  local label=$1 port=$2 bpid=$3 client=$4; shift 4
  "$perf" --client "$client" --label "$label" --uri "amqp://guest:guest@127.0.0.1:$port/%2F" \
    --broker-pid "$bpid" "$@"
}

# 1. counters: base against new
for round in $(seq 1 "$rounds"); do
  for s in S1 S3 S5; do
    for which in base new; do
      fresh "${!which}"
      # shellcheck disable=SC2086
      run "$s-$which-$round" 5790 "$pid" raw ${!s}
    done
  done
done

# 2. scraping: Warren (new) and RabbitMQ, each without and with the scraper
for round in $(seq 1 "$rounds"); do
  for s in S1 S5; do
    for client in raw lapin; do
      fresh "$new"
      # shellcheck disable=SC2086
      run "$s-$client-warren-idle-$round" 5790 "$pid" "$client" ${!s}
      fresh "$new"
      scrape 15791 15792
      # shellcheck disable=SC2086
      run "$s-$client-warren-scraped-$round" 5790 "$pid" "$client" ${!s}
      unscrape
    done
  done
done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

mkdir -p "$work/rabbit/mnesia" "$work/rabbit/log" && chmod -R 777 "$work/rabbit"
printf 'listeners.tcp.default = 127.0.0.1:5793\nmanagement.tcp.port = 15793\nprometheus.tcp.port = 15794\n' \
  > "$work/rabbit/rabbitmq.conf"
echo '[rabbitmq_management,rabbitmq_prometheus].' > "$work/rabbit/plugins"
chmod 644 "$work/rabbit/rabbitmq.conf" "$work/rabbit/plugins"
node="bench-metrics-$$@localhost"
RABBITMQ_NODENAME="$node" RABBITMQ_NODE_PORT=5793 RABBITMQ_DIST_PORT=25793 \
  RABBITMQ_CONFIG_FILE="$work/rabbit/rabbitmq.conf" RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbit/plugins" \
  RABBITMQ_LOG_BASE="$work/rabbit/log" rabbitmq-server -detached
for _ in $(seq 1 60); do
  rabbitmqctl -n "$node" await_startup --timeout 10 >/dev/null 2>&1 && break
  sleep 1
done
rabbitmqctl -n "$node" await_startup --timeout 10 >/dev/null
rabbit_pid=$(rabbitmqctl -n "$node" eval 'list_to_integer(os:getpid()).')
for round in $(seq 1 "$rounds"); do
  for s in S1 S5; do
    for client in raw lapin; do
      # shellcheck disable=SC2086
      run "$s-$client-rabbitmq-idle-$round" 5793 "$rabbit_pid" "$client" ${!s}
      scrape 15793 15794
      # shellcheck disable=SC2086
      run "$s-$client-rabbitmq-scraped-$round" 5793 "$rabbit_pid" "$client" ${!s}
      unscrape
    done
  done
done
