#!/bin/sh
# Install everything the tests need on a fresh Debian/Ubuntu machine, then lint, type-check and test.
# Usage: sh scripts/test.sh [extra pytest args]
set -eu
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# mosquitto: the integration tests run a real broker. systemd: provides systemd-analyze for the unit check.
need=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
command -v mosquitto_passwd >/dev/null 2>&1 || [ -x /usr/bin/mosquitto_passwd ] || need="$need mosquitto"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
# chromium + chromedriver: the dashboard tests drive the page in headless chromium through Selenium.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need="$need chromium"
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || need="$need chromium-driver"
if [ -n "$need" ]; then
    echo "== installing:$need"
    as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends $need \
        || echo "could not install$need: the tests that need them will fail" >&2
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    as_root apt-get install -y -qq python3-venv || true
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff";   .venv/bin/ruff check .
echo "== mypy";   .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider "$@"
