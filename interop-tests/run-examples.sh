#!/usr/bin/env bash
# Run the users' reference programs examples/pika/producer.py and
# examples/pika/consumer.py, verbatim, against a broker started by this
# script inside a private network namespace (so the broker can own
# localhost:5672, which the scripts hard-code, whatever runs on the host).
#
#   interop-tests/run-examples.sh BROKER_CMD [ARGS...]
#   e.g. interop-tests/run-examples.sh target/release/warren
#        interop-tests/run-examples.sh "${CARGO_TARGET_DIR:-target}/release/warren"
#
# BROKER_CMD must stay in the foreground and listen on 127.0.0.1:5672 with
# guest/guest and vhost '/'.  Steps: start it, wait (bounded) for the port,
# run producer.py, run consumer.py until it prints
# "Task model_train_001 completed." (bounded), stop it, and check that it
# printed "Processing task: model_train_001".
#
# Environment:
#   WARREN_VENV            python venv with pika (default /var/tmp/warren-venv;
#                          created/updated from interop-tests/pika/requirements.txt)
#   BROKER_START_TIMEOUT   seconds to wait for port 5672 (default 60)
#   EXAMPLE_TIMEOUT        seconds allowed for each example script (default 60)
#   KEEP_LOGS=1            keep the temporary directory with all outputs
#
# Needs unshare(1) and ip(8); as non-root it uses a user namespace (unshare -r).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
self="$here/$(basename "${BASH_SOURCE[0]}")"
venv="${WARREN_VENV:-/var/tmp/warren-venv}"
py="$venv/bin/python"
BROKER_START_TIMEOUT="${BROKER_START_TIMEOUT:-60}"
EXAMPLE_TIMEOUT="${EXAMPLE_TIMEOUT:-60}"
TASK="model_train_001"

log() { printf 'run-examples: %s\n' "$*" >&2; }

if [[ "${1:-}" != "--inside-netns" ]]; then
    if [[ $# -lt 1 ]]; then
        sed -n '2,/^set -euo/p' "$self" | sed '$d' >&2
        exit 2
    fi
    # The venv needs the network, so set it up before entering the namespace.
    req="$here/pika/requirements.txt"
    if [[ ! -x "$py" ]]; then
        python3 -m venv "$venv"
    fi
    if ! cmp -s "$req" "$venv/.warren-requirements.txt"; then
        "$py" -m pip install --disable-pip-version-check -q -r "$req"
        cp "$req" "$venv/.warren-requirements.txt"
    fi
    if [[ "$(id -u)" == 0 ]]; then
        exec unshare --net -- "$self" --inside-netns "$@"
    else
        exec unshare --map-root-user --net -- "$self" --inside-netns "$@"
    fi
fi
shift  # --inside-netns

ip link set lo up

work="$(mktemp -d "${TMPDIR:-/tmp}/warren-examples.XXXXXX")"
broker_pid=""
consumer_pid=""

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$consumer_pid" ]] && kill -0 "$consumer_pid" 2>/dev/null; then
        kill -TERM "$consumer_pid" 2>/dev/null
        wait "$consumer_pid" 2>/dev/null
    fi
    if [[ -n "$broker_pid" ]]; then
        # the broker runs in its own process group (setsid): stop the group
        kill -TERM -- "-$broker_pid" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 -- "-$broker_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$broker_pid" 2>/dev/null
        wait "$broker_pid" 2>/dev/null
    fi
    # Anything still alive in this private namespace was started by this
    # script (e.g. a daemonized epmd): end it by pid.
    local me_ns pid
    me_ns="$(readlink /proc/$$/ns/net)"
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        [[ "$pid" == "$$" ]] && continue
        [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" == "$me_ns" ]] || continue
        kill -KILL "$pid" 2>/dev/null
    done
    if [[ "${KEEP_LOGS:-}" == 1 || $rc -ne 0 ]]; then
        log "logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT

fail() {
    log "FAIL: $*"
    for f in broker.log producer.out consumer.out; do
        if [[ -s "$work/$f" ]]; then
            log "---- $f (last 40 lines) ----"
            tail -n 40 "$work/$f" >&2
        fi
    done
    echo "run-examples: 0 passed, 1 failed"
    exit 1
}

port_open() {
    "$py" - <<'EOF' 2>/dev/null
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

if port_open; then
    fail "something already listens on 127.0.0.1:5672 inside the new namespace"
fi

log "starting broker: $*"
setsid "$@" >"$work/broker.log" 2>&1 </dev/null &
broker_pid=$!

deadline=$((SECONDS + BROKER_START_TIMEOUT))
until port_open; do
    kill -0 "$broker_pid" 2>/dev/null || fail "broker exited before listening on 5672"
    ((SECONDS < deadline)) || fail "broker not listening on 5672 after ${BROKER_START_TIMEOUT}s"
    sleep 0.2  # bounded poll for the port; not used as synchronisation
done
log "broker is listening on 127.0.0.1:5672"

cd "$repo"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

if ! timeout "$EXAMPLE_TIMEOUT" "$py" examples/pika/producer.py >"$work/producer.out" 2>&1; then
    fail "producer.py failed"
fi
grep -qxF "Sent task: $TASK" "$work/producer.out" || fail "producer.py did not print 'Sent task: $TASK'"
log "producer: $(cat "$work/producer.out")"

: >"$work/consumer.out"
timeout "$EXAMPLE_TIMEOUT" "$py" examples/pika/consumer.py >"$work/consumer.out" 2>&1 &
consumer_pid=$!

deadline=$((SECONDS + EXAMPLE_TIMEOUT))
until grep -qxF "Task $TASK completed." "$work/consumer.out"; do
    if ! kill -0 "$consumer_pid" 2>/dev/null; then
        grep -qxF "Task $TASK completed." "$work/consumer.out" && break
        fail "consumer.py exited before completing the task"
    fi
    ((SECONDS < deadline)) || fail "consumer.py did not complete the task within ${EXAMPLE_TIMEOUT}s"
    sleep 0.1  # bounded poll of the consumer's output
done
kill -TERM "$consumer_pid" 2>/dev/null || true
wait "$consumer_pid" 2>/dev/null || true
consumer_pid=""

log "consumer output:"
sed 's/^/    /' "$work/consumer.out" >&2
grep -qxF "Processing task: $TASK" "$work/consumer.out" || fail "consumer.py did not print 'Processing task: $TASK'"
grep -qxF "Waiting for tasks..." "$work/consumer.out" || fail "consumer.py did not print 'Waiting for tasks...'"

echo "run-examples: 1 passed, 0 failed"
