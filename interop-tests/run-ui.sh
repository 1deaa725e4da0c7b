#!/usr/bin/env bash
# Run the web UI test (interop-tests/ui: Selenium driving Debian's headless Chromium) against the
# management listener at $MGMT_URL (default http://127.0.0.1:15672), logging in with $AMQP_URL's
# user. Uses the pika suite's venv ($WARREN_VENV, default /var/tmp/warren-venv), adding
# interop-tests/ui/requirements.txt whenever that file changes. Chromium and ChromeDriver come from
# Debian's packages (scripts/test.sh installs them). Screenshots go to $UI_SCREENSHOTS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${WARREN_VENV:-/var/tmp/warren-venv}"
req="$here/ui/requirements.txt"
stamp="$venv/.warren-ui-requirements.txt"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$stamp"; then
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    cp "$req" "$stamp"
fi

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@localhost:5672/%2F}"
export MGMT_URL="${MGMT_URL:-http://127.0.0.1:15672}"
export PYTHONDONTWRITEBYTECODE=1
cd "$here/ui"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider test_ui.py "$@"
