#!/bin/sh
# Fresh machine -> `thermostat demo`: a simulated house heated by the real service.
# Usage: sh scripts/demo.sh [demo options, e.g. --hours 3 --speed 180]
set -eu
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "demo.sh: installing python3-venv with apt"
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv || true
fi
if [ -x .venv/bin/thermostat ]; then
    # installed before: only pick up changed dependencies, quietly
    .venv/bin/python -m pip install -q -e '.[demo]'
else
    echo "demo.sh: first run: creating .venv and installing thermostat with its dependencies"
    echo "demo.sh: (pydantic, matplotlib, numpy, aiomqtt, amqtt, ...: a few minutes on a slow connection)"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --upgrade pip
    # The demo extra brings an embedded MQTT broker, used when mosquitto is not installed.
    .venv/bin/python -m pip install -e '.[demo]'
    echo "demo.sh: installed; starting the demo"
fi
exec .venv/bin/thermostat demo "$@"
