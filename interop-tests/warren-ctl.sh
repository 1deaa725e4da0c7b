#!/usr/bin/env bash
# Starts, stops and restarts a warren for the restart tests.
#   warren-ctl.sh start|restart|kill-restart|stop
# Settings come from the environment: WARREN_BIN, WARREN_PORT, WARREN_DATA (data directory),
# WARREN_LOG (log file). The pid is kept in $WARREN_DATA.pid. Each command returns once the broker
# accepts TCP connections (or has exited, for stop); waits are bounded.
set -euo pipefail
: "${WARREN_BIN:?}" "${WARREN_PORT:?}" "${WARREN_DATA:?}"
log="${WARREN_LOG:-$WARREN_DATA.log}"
pidfile="$WARREN_DATA.pid"

port_open() {
  python3 - "$WARREN_PORT" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
except OSError:
    sys.exit(1)
PY
}

start() {
  "$WARREN_BIN" --bind 127.0.0.1 --port "$WARREN_PORT" --data-dir "$WARREN_DATA" --log-level info >>"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    if port_open; then return 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "warren exited during start-up; log:" >&2; tail -20 "$log" >&2; return 1
    fi
    python3 -c 'import time; time.sleep(0.1)'
  done
  echo "warren did not start listening within 30 s" >&2
  return 1
}

stop() {
  local signal="$1"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    python3 -c 'import time; time.sleep(0.1)'
  done
  echo "warren (pid $pid) did not exit within 30 s of SIG$signal" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop TERM ;;
  restart) stop TERM && start ;;
  kill-restart) stop KILL && start ;;
  *) echo "usage: $0 start|stop|restart|kill-restart" >&2; exit 2 ;;
esac
