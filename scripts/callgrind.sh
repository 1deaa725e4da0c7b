#!/usr/bin/env bash
# The broker's instructions for fixed runs of S1, S2 and S5 (and optionally S3), counted by
# valgrind's callgrind: repeatable on this noisy machine, unlike rates. Each run starts a fresh
# Warren under callgrind, drives it with warren-perf's raw client, stops it and prints the total.
# Not a test: nothing is asserted. Compare two builds by giving both:
#
#   scripts/callgrind.sh BIN_DIR [BIN_DIR...]
#   e.g. scripts/callgrind.sh /var/tmp/base /var/tmp/warren-target/release
#
# Scenarios (raw client):
#   S1  200,000 x 16 B transient, 1 producer, 1 consumer, auto-ack
#   S2  50,000 x 1 KiB transient, manual acks, prefetch 100
#   S5  20,000 x 256 B to a fanout of 10 queues, 10 consumers
#   S3  40,000 x 1 KiB persistent to a durable queue, confirms 100, acks, prefetch 100
# Env: SCENARIOS ["S1 S2 S5"], PORT [5795], WORK [/var/tmp/callgrind], PERF (warren-perf binary
#      [the last BIN_DIR's]), ROUNDS [1].
set -euo pipefail
(($# >= 1)) || { sed -n 2,16p "$0"; exit 2; }
port=${PORT:-5795}; work=${WORK:-/var/tmp/callgrind}
perf=${PERF:-${!#}/warren-perf}
declare -A args=(
  [S1]="--count 200000 --size 16"
  [S2]="--count 50000 --size 1024 --ack --prefetch 100"
  [S5]="--count 20000 --size 256 --exchange-type fanout --queues 10 --consumers 10"
  [S3]="--count 40000 --size 1024 --durable --persistent --confirm 100 --ack --prefetch 100"
)
mkdir -p "$work"
for round in $(seq "${ROUNDS:-1}"); do
  for s in ${SCENARIOS:-S1 S2 S5}; do
    for bin in "$@"; do
      rm -rf "$work/data" "$work/cg.out"; : > "$work/w.toml"
      valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$bin/warren" --bind 127.0.0.1 --port "$port" --data-dir "$work/data" \
        --config "$work/w.toml" > "$work/w.log" 2>&1 &
      pid=$!
      up=0
      for _ in $(seq 600); do
        (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }
        sleep 0.1
      done
      ((up)) || { echo "$bin: broker did not start (see $work/w.log)" >&2; kill "$pid"; exit 1; }
      # shellcheck disable=SC2086
      "$perf" --uri "amqp://guest:guest@127.0.0.1:$port/%2F" ${args[$s]} > "$work/perf.out"
      kill -TERM "$pid"; wait "$pid" || true
      total=$(awk '/^summary:/ {print $2}' "$work/cg.out")
      printf '%s round %s %-40s %s instructions\n' "$s" "$round" "$bin" "$total"
    done
  done
done
