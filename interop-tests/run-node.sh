#!/usr/bin/env bash
# Run the amqplib (Node) interop tests (interop-tests/node) against the broker at
# $AMQP_URL (default amqp://guest:guest@localhost:5672/%2F).
#
#   interop-tests/run-node.sh [extra node --test args...]
#   e.g. interop-tests/run-node.sh --test-name-pattern 'promise API'
#
# Needs node (>= 18) and npm on PATH. Dependencies are installed with `npm ci` into
# interop-tests/node/node_modules (ignored by git) when missing or when package-lock.json changed.
# The broker must already be running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/node"
stamp="$dir/node_modules/.warren-package-lock.json"

for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "$tool not found: the Node interop tests need node >= 18 and npm" >&2; exit 1; }
done
if ! cmp -s "$dir/package-lock.json" "$stamp"; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
fi

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@localhost:5672/%2F}"
cd "$dir"
exec node --test "$@"
