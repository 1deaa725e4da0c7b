#!/usr/bin/env bash
# S1 (16-byte messages, one producer, one consumer, auto-ack) through lapin over plain TCP and over
# TLS (amqps, TLS 1.3, a server certificate of a test CA), on Warren and on Debian's RabbitMQ
# (same rabbitmq.conf), alternately, ROUNDS times. Prints one warren-perf JSON line per run.
# Needs: a release build (warren, warren-perf), openssl, rabbitmq-server. Not a test.
set -euo pipefail
target="${BIN_DIR:-${CARGO_TARGET_DIR:-/var/tmp/warren-target}/release}"
rounds="${ROUNDS:-2}"
count="${COUNT:-500000}"
node=""
warren_pid=""
work=$(mktemp -d /var/tmp/bench-tls.XXXXXX)
chmod 755 "$work"
trap 'rabbitmqctl -n "$node" stop >/dev/null 2>&1 || true; kill "$warren_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.pem 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > server.ext
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out server.pem \
  -extfile server.ext 2>/dev/null
chmod 644 ./*

conf() { # plain port, tls port
  printf 'listeners.tcp.default = 127.0.0.1:%s\nlisteners.ssl.default = 127.0.0.1:%s\n' "$1" "$2"
  printf 'ssl_options.certfile = %s/server.pem\nssl_options.keyfile = %s/server.key\n' "$work" "$work"
  printf 'ssl_options.versions.1 = tlsv1.3\n'
}

conf 5790 5791 > warren.conf
"$target/warren" --data-dir "$work/warren-data" --config warren.conf > warren.log 2>&1 &
warren_pid=$!

mkdir -p rabbit/mnesia rabbit/log && chmod -R 777 rabbit
conf 5792 5793 > rabbit/rabbitmq.conf && chmod 644 rabbit/rabbitmq.conf
node="bench-tls-$$@localhost"
RABBITMQ_NODENAME="$node" RABBITMQ_NODE_PORT=5792 RABBITMQ_DIST_PORT=25792 \
  RABBITMQ_CONFIG_FILE="$work/rabbit/rabbitmq.conf" RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" \
  RABBITMQ_LOG_BASE="$work/rabbit/log" rabbitmq-server -detached
# -detached returns before the node registers: retry, bounded.
for _ in $(seq 1 60); do
  rabbitmqctl -n "$node" await_startup --timeout 10 >/dev/null 2>&1 && break
  sleep 1
done
rabbitmqctl -n "$node" await_startup --timeout 10 >/dev/null
rabbit_pid=$(rabbitmqctl -n "$node" eval 'list_to_integer(os:getpid()).')

run() { # label port scheme pid
  "$target/warren-perf" --client lapin --count "$count" --size 16 --label "$1" \
    --uri "$3://guest:guest@localhost:$2/%2F" --tls-ca "$work/ca.pem" --broker-pid "$4"
}

for round in $(seq 1 "$rounds"); do
  run "warren-plain-$round" 5790 amqp "$warren_pid"
  run "warren-tls-$round" 5791 amqps "$warren_pid"
  run "rabbitmq-plain-$round" 5792 amqp "$rabbit_pid"
  run "rabbitmq-tls-$round" 5793 amqps "$rabbit_pid"
done
