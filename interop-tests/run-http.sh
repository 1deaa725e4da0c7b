#!/usr/bin/env bash
# Run the HTTP API suite (interop-tests/http: requests and rabbitmqadmin) against the management
# API at $MGMT_URL (default http://127.0.0.1:15672) of the broker at $AMQP_URL.
#
#   interop-tests/run-http.sh [extra pytest args...]
#
# Uses the pika suite's venv ($WARREN_VENV, default /var/tmp/warren-venv), adding
# interop-tests/http/requirements.txt whenever that file changes. The broker must be running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${WARREN_VENV:-/var/tmp/warren-venv}"
req="$here/http/requirements.txt"
stamp="$venv/.warren-http-requirements.txt"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import pika' 2>/dev/null ||
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$here/pika/requirements.txt"
if ! cmp -s "$req" "$stamp"; then
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    cp "$req" "$stamp"
fi

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@localhost:5672/%2F}"
export MGMT_URL="${MGMT_URL:-http://127.0.0.1:15672}"
export PYTHONDONTWRITEBYTECODE=1

cd "$repo"
exec "$venv/bin/python" -m pytest interop-tests/http -q -p no:cacheprovider "$@"
