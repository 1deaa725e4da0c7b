#!/usr/bin/env bash
# The persistent path (issue 14): Warren (fsync on, as shipped), LavinMQ v1.0.1 and RabbitMQ 3.10.8,
# in alternating rounds, with both warren-perf clients (raw and lapin). Each broker is optional:
# one whose binary is missing is left out. Scenarios (all: 1 KiB persistent messages to durable
# queues, 100 confirms outstanding per producer, manual acks, prefetch 100):
#   S3        one producer, one consumer, COUNT messages
#   S3x4      4 producers, 4 consumers, 4 queues, COUNT messages in all
#   S3big     16 KiB bodies, COUNT_BIG messages
#   backlog   BACKLOG messages published with no consumer (label backlog-pub), then drained by one
#             consumer with no producer (backlog-drain); RSS after publishing is in the JSON line
# Writes one warren-perf JSON line per run to RESULTS (the label is scenario/broker/client/round,
# e.g. "S3/warren/raw/2"), and prints the summary (medians per scenario, broker and client; the
# ratios against LavinMQ taken run by run, then their median) at the end.
#
#   ROUNDS=3 COUNT=200000 scripts/bench-persistent.sh
#   scripts/bench-persistent.sh --summary RESULTS      # only the summary of a results file
#
# Env (defaults in brackets):
#   BIN_DIR      where warren and warren-perf are [$CARGO_TARGET_DIR/release, or /var/tmp/warren-target/release]
#   WARREN, PERF the two binaries [$BIN_DIR/warren, $BIN_DIR/warren-perf]
#   LAVINMQ      LavinMQ binary [/var/tmp/lavinmq/bin/lavinmq] (build it with ../shared/tools/build-lavinmq.sh)
#   RABBITMQ     rabbitmq-server [the one on PATH]; RABBITMQ=none leaves it out
#   BROKERS      which, in round order ["warren lavinmq rabbitmq"]; also "warren-nofsync" (Warren with
#                fsync = false in its config)
#   CLIENTS      ["raw lapin"]
#   SCENARIOS    ["S3 S3x4 S3big backlog"]
#   BODY         message bodies, warren-perf's --body: random (incompressible, different per message)
#                or zeros [random]; Warren compresses stored bodies, so zeros flatter it
#   ROUNDS [3], COUNT [200000], COUNT_BIG [COUNT/4], BACKLOG [1000000]
#   RESULTS      results file [./bench-persistent-<date>.jsonl]; lines are appended
#   PORT         first of the ports used [5745]: PORT Warren, +1 LavinMQ, +2 RabbitMQ, +3 Warren without
#                fsync; 10000 + a broker's port its HTTP side (Warren: 10010 + its port Prometheus),
#                20000 + RabbitMQ's port its distribution port
#   FRESH        1: a fresh Warren and LavinMQ (new data directory) for every run, stopped after it,
#                so no idle broker runs beside the measured one [1]; RabbitMQ (slow to start) runs
#                once for the session
#   TIME_LIMIT   warren-perf's --time-limit per run [600]
# Needs: python3. Not a test: nothing is asserted.
set -euo pipefail

summary() { # results file
  python3 - "$1" <<'PY'
import json, statistics as st, sys, collections
runs = collections.defaultdict(list)       # (scenario, broker, client) -> [line]
by_round = collections.defaultdict(dict)   # (scenario, client, round) -> broker -> line
for raw in open(sys.argv[1]):
    raw = raw.strip()
    if not raw.startswith('{'):
        continue
    d = json.loads(raw)
    parts = d['label'].split('/')
    if len(parts) != 4:
        continue
    scen, broker, client, rnd = parts
    runs[(scen, broker, client)].append(d)
    by_round[(scen, client, rnd)][broker] = d
def med(xs):
    return st.median(xs) if xs else float('nan')
# The rate a scenario is judged by: what was delivered (consume), or published for a backlog's
# first half. Both are shown: a broker may accept publishes faster than it delivers them.
def rate(scen, d):
    return d['publish_rate'] if scen == 'backlog-pub' else d['consume_rate']
print(f"{'scenario':14} {'broker':15} {'client':6} {'runs':>4} {'publish/s':>10} {'consume/s':>10} {'CPU us/msg':>10} "
      f"{'p99 ms':>8} {'RSS MiB':>8} {'lost':>5} {'dup':>4}   (medians; RSS the largest)")
for (scen, broker, client), ds in sorted(runs.items()):
    rss = max(max(d['broker_rss_kib_after_publish'], d['broker_rss_kib_end']) for d in ds) / 1024
    print(f"{scen:14} {broker:15} {client:6} {len(ds):4d} {med([d['publish_rate'] for d in ds]):10,.0f} "
          f"{med([d['consume_rate'] for d in ds]):10,.0f} {med([d['broker_cpu_us_per_msg'] for d in ds]):10.2f} "
          f"{med([d['latency_ms_p99'] for d in ds]):8.1f} {rss:8.1f} "
          f"{sum(d['lost'] for d in ds):5d} {sum(d['duplicates'] for d in ds):4d}")
print()
print('against LavinMQ, run by run (same scenario, client and round), then the median; the rate is the consume')
print('rate (publish rate for backlog-pub):')
ratios = collections.defaultdict(lambda: ([], [], []))
for (scen, client, rnd), bs in by_round.items():
    base = bs.get('lavinmq')
    if not base or rate(scen, base) == 0:
        continue
    for broker, d in bs.items():
        if broker == 'lavinmq':
            continue
        r, p, c = ratios[(scen, broker, client)]
        r.append(rate(scen, d) / rate(scen, base))
        if base['publish_rate'] > 0:
            p.append(d['publish_rate'] / base['publish_rate'])
        if base['broker_cpu_us_per_msg'] > 0:
            c.append(d['broker_cpu_us_per_msg'] / base['broker_cpu_us_per_msg'])
print(f"{'scenario':14} {'broker':15} {'client':6} {'rate/LavinMQ':>12} {'publish/LavinMQ':>15} {'CPU/LavinMQ':>11}  rate ratio of each round")
for (scen, broker, client), (r, p, c) in sorted(ratios.items()):
    each = ', '.join(f'{x:.2f}' for x in r)
    print(f"{scen:14} {broker:15} {client:6} {med(r):12.2f} {med(p):15.2f} {med(c):11.2f}  [{each}]")
PY
}

if [[ "${1:-}" == "--summary" ]]; then
  summary "${2:?results file}"
  exit 0
fi

bin_dir="${BIN_DIR:-${CARGO_TARGET_DIR:-/var/tmp/warren-target}/release}"
warren="${WARREN:-$bin_dir/warren}"
perf="${PERF:-$bin_dir/warren-perf}"
lavinmq="${LAVINMQ:-/var/tmp/lavinmq/bin/lavinmq}"
rabbitmq="${RABBITMQ:-$(command -v rabbitmq-server || true)}"
[[ "$rabbitmq" == none ]] && rabbitmq=""
brokers="${BROKERS:-warren lavinmq rabbitmq}"
clients="${CLIENTS:-raw lapin}"
scenarios="${SCENARIOS:-S3 S3x4 S3big backlog}"
rounds="${ROUNDS:-3}"
count="${COUNT:-200000}"
count_big="${COUNT_BIG:-$((count / 4))}"
backlog="${BACKLOG:-1000000}"
results="${RESULTS:-$PWD/bench-persistent-$(date +%Y%m%d-%H%M%S).jsonl}"
port="${PORT:-5745}"
fresh="${FRESH:-1}"
time_limit="${TIME_LIMIT:-600}"
body="${BODY:-random}"
[[ -x "$perf" ]] || { echo "bench-persistent: no warren-perf at $perf" >&2; exit 1; }

# Which brokers can run.
have=()
for b in $brokers; do
  case "$b" in
    warren|warren-nofsync) [[ -x "$warren" ]] && have+=("$b") || echo "bench-persistent: no Warren at $warren: left out" >&2 ;;
    lavinmq) [[ -x "$lavinmq" ]] && have+=("$b") || echo "bench-persistent: no LavinMQ at $lavinmq: left out" >&2 ;;
    rabbitmq) [[ -n "$rabbitmq" && -x "$rabbitmq" ]] && have+=("$b") || echo "bench-persistent: no rabbitmq-server: left out" >&2 ;;
    *) echo "bench-persistent: unknown broker $b" >&2; exit 1 ;;
  esac
done
(( ${#have[@]} )) || { echo "bench-persistent: no broker to run" >&2; exit 1; }

work=$(mktemp -d /var/tmp/bench-persistent.XXXXXX)
chmod 755 "$work"
declare -A pid=()   # broker -> OS pid of the running broker
node="bench-persistent-$$@localhost"
rabbit_started=""

port_of() { case "$1" in warren) echo "$port" ;; lavinmq) echo $((port + 1)) ;; rabbitmq) echo $((port + 2)) ;; warren-nofsync) echo $((port + 3)) ;; esac; }

port_open() { python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null; }

wait_port() { # port what
  for _ in $(seq 1 200); do port_open "$1" && return 0; sleep 0.1; done
  echo "bench-persistent: $2 did not open port $1" >&2; return 1
}

stop() { # broker
  local b=$1 p=${pid[$1]:-}
  [[ -z "$p" ]] && return 0
  if [[ "$b" == rabbitmq ]]; then
    rabbitmqctl -n "$node" stop >/dev/null 2>&1 || kill "$p" 2>/dev/null || true
  else
    kill -TERM "$p" 2>/dev/null || true
    # A broker that does not stop within 15 s (a hung shutdown) is killed.
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      echo "bench-persistent: $b (pid $p) did not stop after SIGTERM: SIGKILL" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  fi
  unset "pid[$b]"
}

cleanup() {
  for b in "${!pid[@]}"; do stop "$b"; done
  rm -rf "$work"
}
trap cleanup EXIT

start() { # broker
  local b=$1 p
  p=$(port_of "$b")
  case "$b" in
    warren|warren-nofsync)
      rm -rf "$work/$b" && mkdir -p "$work/$b"
      printf 'management_port = %s\nmanagement_ip = "127.0.0.1"\nprometheus_port = %s\nprometheus_ip = "127.0.0.1"\n' \
        $((10000 + p)) $((10010 + p)) > "$work/$b/w.toml"
      [[ "$b" == warren-nofsync ]] && echo 'fsync = false' >> "$work/$b/w.toml"
      "$warren" --bind 127.0.0.1 --port "$p" --data-dir "$work/$b/data" --config "$work/$b/w.toml" \
        > "$work/$b/log" 2>&1 &
      pid[$b]=$!
      wait_port "$p" "$b"
      # Someone else's listener on the port would pass wait_port: the broker must still be there.
      kill -0 "${pid[$b]}" 2>/dev/null || { echo "bench-persistent: $b exited: $(tail -2 "$work/$b/log")" >&2; exit 1; }
      ;;
    lavinmq)
      rm -rf "$work/lavinmq" && mkdir -p "$work/lavinmq"
      "$lavinmq" --bind 127.0.0.1 --amqp-port "$p" --http-port $((10000 + p)) \
        --http-unix-path "$work/lavinmq.sock" --data-dir "$work/lavinmq/data" > "$work/lavinmq.log" 2>&1 &
      pid[$b]=$!
      wait_port "$p" lavinmq
      kill -0 "${pid[$b]}" 2>/dev/null || { echo "bench-persistent: lavinmq exited: $(tail -2 "$work/lavinmq.log")" >&2; exit 1; }
      ;;
    rabbitmq)
      mkdir -p "$work/rabbit/mnesia" "$work/rabbit/log" && chmod -R 777 "$work/rabbit"
      RABBITMQ_NODENAME="$node" RABBITMQ_NODE_PORT="$p" RABBITMQ_DIST_PORT=$((20000 + p)) \
        RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" RABBITMQ_LOG_BASE="$work/rabbit/log" \
        "$rabbitmq" -detached
      # -detached returns before the node registers: retry, bounded.
      for _ in $(seq 1 60); do
        rabbitmqctl -n "$node" await_startup --timeout 10 >/dev/null 2>&1 && break
        sleep 1
      done
      rabbitmqctl -n "$node" await_startup --timeout 10 >/dev/null
      pid[$b]=$(rabbitmqctl -n "$node" eval 'list_to_integer(os:getpid()).')
      rabbit_started=1
      ;;
  esac
}

# A broker ready for the next run: a fresh one (FRESH=1; RabbitMQ only once), or the running one.
ready() { # broker
  local b=$1
  if [[ "$b" == rabbitmq ]]; then
    [[ -z "$rabbit_started" ]] && start rabbitmq
    return 0
  fi
  if [[ "$fresh" == 1 || -z "${pid[$b]:-}" ]]; then
    stop "$b"
    start "$b"
  fi
}

S3="--body $body --size 1024 --durable --persistent --confirm 100 --ack --prefetch 100"

run() { # label broker client args...
  local label=$1 b=$2 client=$3; shift 3
  local line
  line=$("$perf" --client "$client" --label "$label" --time-limit "$time_limit" \
    --uri "amqp://guest:guest@127.0.0.1:$(port_of "$b")/%2F" --broker-pid "${pid[$b]}" "$@") || {
    echo "bench-persistent: $label failed" >&2; return 0; }
  echo "$line" | tee -a "$results"
}

echo "bench-persistent: brokers ${have[*]}; clients $clients; scenarios $scenarios; $rounds rounds; results in $results" >&2
for round in $(seq 1 "$rounds"); do
  for s in $scenarios; do
    for client in $clients; do
      for b in "${have[@]}"; do
        ready "$b"
        case "$s" in
          S3) run "S3/$b/$client/$round" "$b" "$client" --count "$count" $S3 ;;
          S3x4) run "S3x4/$b/$client/$round" "$b" "$client" --count "$count" $S3 \
                  --producers 4 --consumers 4 --queues 4 ;;
          S3big) run "S3big/$b/$client/$round" "$b" "$client" --count "$count_big" \
                   --body "$body" --size 16384 --durable --persistent --confirm 100 --ack --prefetch 100 ;;
          backlog)
            run "backlog-pub/$b/$client/$round" "$b" "$client" --count "$backlog" $S3 \
              --consumers 0 --keep
            run "backlog-drain/$b/$client/$round" "$b" "$client" --count "$backlog" $S3 \
              --producers 0 ;;
          *) echo "bench-persistent: unknown scenario $s" >&2; exit 1 ;;
        esac
        if [[ "$fresh" == 1 && "$b" != rabbitmq ]]; then stop "$b"; fi
      done
    done
  done
done
echo >&2
summary "$results"
