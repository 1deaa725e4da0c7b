#!/usr/bin/env bash
# Run the pika interop suite (interop-tests/pika) against the broker at
# $AMQP_URL (default amqp://guest:guest@localhost:5672/%2F).
#
#   interop-tests/run-pika.sh [extra pytest args...]
#   e.g. interop-tests/run-pika.sh -k topic -x
#
# The Python venv lives at $WARREN_VENV (default /var/tmp/warren-venv); it is
# created if missing and (re)installed from interop-tests/pika/requirements.txt
# whenever that file changes.  The broker must already be running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${WARREN_VENV:-/var/tmp/warren-venv}"
req="$here/pika/requirements.txt"
stamp="$venv/.warren-requirements.txt"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$stamp"; then
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    cp "$req" "$stamp"
fi

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@localhost:5672/%2F}"
# keep the work tree clean: no __pycache__ or .pytest_cache
export PYTHONDONTWRITEBYTECODE=1

cd "$repo"
exec "$venv/bin/python" -m pytest interop-tests/pika -q -p no:cacheprovider "$@"
