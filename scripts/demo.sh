#!/bin/sh
# Fresh machine -> `thermostat demo`: a simulated house heated by the real service.
# Usage: sh scripts/demo.sh [demo options, e.g. --hours 3 --speed 180]
set -eu
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv || true
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# The demo extra brings an embedded MQTT broker, used when mosquitto is not installed.
.venv/bin/python -m pip install -q -e '.[demo]'
exec .venv/bin/thermostat demo "$@"
