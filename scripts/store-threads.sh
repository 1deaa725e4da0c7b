#!/usr/bin/env bash
# Where a persistent backlog's broker CPU goes, per thread: starts a fresh Warren, publishes N
# persistent 1 KiB messages (random bodies, 100 confirms outstanding, no consumer) with the raw
# warren-perf client, optionally drains them, and prints each thread group's CPU time (ms) for the
# publish and the drain (store writer, tokio workers and blocking reads, RocksDB flush
# `rocksdb:high` and compaction `rocksdb:low`). With WARGS="--log-level info,storage::writer=debug"
# the writer logs every batch (ops, micros) to $WORK/w.log. Not a test: nothing is asserted.
#
#   scripts/store-threads.sh BIN_DIR N [drain]
#   e.g. scripts/store-threads.sh /var/tmp/warren-target/release 300000 drain
#
# Env: WORK [/var/tmp/store-threads] (data directory, log), PORT [5790], CONF (warren.toml lines),
#      WARGS (extra warren arguments), EXTRA (extra warren-perf arguments).
set -euo pipefail
bin=$1; n=$2; mode=${3:-}
work=${WORK:-/var/tmp/store-threads}; port=${PORT:-5790}
rm -rf "$work"; mkdir -p "$work/data"
printf '%b' "${CONF:-}" > "$work/w.toml"
# shellcheck disable=SC2086
"$bin/warren" --bind 127.0.0.1 --port "$port" --data-dir "$work/data" --config "$work/w.toml" ${WARGS:-} > "$work/w.log" 2>&1 &
pid=$!
# Waits for the broker to stop: one still shutting down (flushing, deleting obsolete files) works
# under the same path as the next run's fresh broker (seen: that broker's store files vanished).
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
# utime + stime per thread name (ms; clock ticks of 10 ms).
snap() {
  for t in /proc/$pid/task/*; do
    local s; s=$(cat "$t/stat"); s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo "$(tr ' ' '_' < "$t/comm") $(( ${12} + ${13} ))"
  done | awk '{a[$1]+=$2} END {for (k in a) print k, a[k]*10}' | sort
}
uri="amqp://guest:guest@127.0.0.1:$port/%2F"
s3="--body random --size 1024 --durable --persistent --confirm 100 --ack --prefetch 100"
snap > "$work/s0"
# shellcheck disable=SC2086
"$bin/warren-perf" --uri "$uri" --broker-pid "$pid" --label publish --count "$n" $s3 --consumers 0 --keep ${EXTRA:-}
snap > "$work/s1"
cp "$work/s1" "$work/s2"
if [[ "$mode" == drain ]]; then
  # shellcheck disable=SC2086
  "$bin/warren-perf" --uri "$uri" --broker-pid "$pid" --label drain --count "$n" $s3 --producers 0 ${EXTRA:-}
  snap > "$work/s2"
fi
echo "thread publish-ms drain-ms"
join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/s0" "$work/s1" | awk '{print $1, $3-$2}' > "$work/d1"
join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/s1" "$work/s2" | awk '{print $1, $3-$2}' > "$work/d2"
join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/d1" "$work/d2"
