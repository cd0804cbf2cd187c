"""`thermostat status` end to end: a real `thermostat` process reads the running service (real mosquitto, a
simulated Mini 3 over TCP) through the dashboard's local API, and says clearly when no service is running."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from conftest import free_port
from test_dashboard import PASSWORD, Rig, _rig, until, write_config

from thermostat.commands.status import render
from thermostat.core.heater import HeaterState

pytestmark = pytest.mark.broker


async def status(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "thermostat", "status", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def locked_rig(tmp_path: Path, mqtt_broker: Any) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, mqtt_broker, password=True):
        yield r


@pytest.fixture
async def rig(tmp_path: Path, mqtt_broker: Any) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, mqtt_broker, password=False):
        yield r


async def test_status_says_since_when_a_heater_is_in_fault_and_when_it_tries_again(rig: Rig, tmp_path: Path) -> None:
    rig.miner.faults.refuse_connections = True  # the miner stops answering
    await until(lambda: rig.machine().state == HeaterState.FAULT, 40, "heater in fault")
    code, out, err = await status(tmp_path / "house.yaml", "--json")
    assert code == 0, err
    heater = json.loads(out)["heaters"][0]
    assert heater["state"] == "fault" and heater["hold"]["code"] == "fault"
    since, next_try = (datetime.fromisoformat(heater["hold"][k]) for k in ("since", "until"))
    assert since < next_try
    assert heater["reason"].startswith(f"fault since {since:%H:%M}, next try {next_try:%H:%M} (")
    code, out, err = await status(tmp_path / "house.yaml")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("  heater mini3-0: "))
    assert re.fullmatch(r"  heater mini3-0: fault, level standby, \d+ W — fault since \d\d:\d\d, next try \d\d:\d\d "
                        r"\(.+\)", line), line


async def test_no_service_running_is_said_clearly(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), free_port(), free_port())
    code, out, err = await status(config)
    assert code == 3 and out == ""
    assert re.fullmatch(r"no thermostat service is running: nothing answers at http://127\.0\.0\.1:\d+/api/state "
                        r"\(start it with `thermostat run --config FILE`\)\n", err), err


async def test_status_shows_rooms_heaters_and_reasons(locked_rig: Rig, tmp_path: Path) -> None:
    rig = locked_rig
    config = tmp_path / "house.yaml"
    await rig.reading(21.0)
    await until(lambda: rig.service.rooms["living"].filter.last_value == 21.0, 10, "reading")
    async with aiomqtt.Client("127.0.0.1", rig.broker_port) as client:  # manual standby, like HA's select
        await client.publish("thermo-web/heater/mini3-0/level/set", b"standby", qos=1)
    await until(lambda: not rig.service.heaters["mini3-0"].controlled, 10, "manual")
    rig.service.tick()

    code, out, err = await status(config)
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"thermostat \S+ at \S+", lines[0])
    assert re.fullmatch(r"Living room \(living\): 21\.0 °C \(\d+ s ago\)", lines[2]), out
    assert lines[3] == "  humidity 45 %"  # from the same Zigbee2MQTT-style JSON as the temperature
    assert lines[4] == "  target   20.0 °C  from schedule comfort"
    assert re.fullmatch(r"  mode     heat, idle, demand \d+ W", lines[5]), out
    assert lines[6].startswith("  why      ") and "mini3-0: manual: standby" in lines[6]
    assert lines[7] == "  planner  mpc: no room model yet, pid fallback"  # the default controller, no history
    assert re.fullmatch(r"  heater mini3-0: standby, level standby \(manual standby\), \d+ W — manual: standby",
                        lines[8]), out
    assert lines[-1] == "outdoor – (no reading yet)", out  # configured, nothing published on its topic yet

    code, out, err = await status(config, "--json")
    assert code == 0, err
    doc = json.loads(out)
    room, heater = doc["rooms"][0], doc["heaters"][0]
    assert room["reading"] == 21.0 and room["target"] == 20.0 and room["target_kind"] == "schedule"
    assert heater["hold"]["code"] == "manual" and heater["reason"] == "manual: standby"
    assert heater["model"] == "Avalon Mini 3" and heater["control"] == "manual"
    assert room["planner"] == {"controller": "mpc", "planner": "mpc: no room model yet, pid fallback"}

    # the same reasons on the MQTT state topics (retained) and in the Home Assistant attributes
    rig.service._publish_heater(rig.service.heaters["mini3-0"])
    rig.service._publish_room(rig.service.rooms["living"])
    wanted = {"thermo-web/heater/mini3-0/reason", "thermo-web/heater/mini3-0/attributes",
              "thermo-web/room/living/state"}
    got: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", rig.broker_port) as client:
        for topic in wanted:
            await client.subscribe(topic)
        async with asyncio.timeout(10):
            async for msg in client.messages:
                got[str(msg.topic)] = bytes(msg.payload)  # type: ignore[arg-type]
                if set(got) == wanted:
                    break
    assert got["thermo-web/heater/mini3-0/reason"] == b"manual: standby"
    attrs = json.loads(got["thermo-web/heater/mini3-0/attributes"])
    assert attrs["reason"] == "manual: standby" and attrs["hold"]["code"] == "manual"
    room_state = json.loads(got["thermo-web/room/living/state"])
    assert room_state["target_source"] == "schedule comfort"
    assert room_state["heater_reasons"] == {"mini3-0": "manual: standby"}
    assert "mini3-0: manual: standby" in room_state["why"]

    # a wrong password in the config is refused, and said so
    (tmp_path / "dashboard.secret").write_text("not the password\n")
    code, out, err = await status(config)
    assert code == 4 and "refused the dashboard password" in err
    (tmp_path / "dashboard.secret").write_text(PASSWORD + "\n")


def test_status_shows_the_room_model_and_the_plan() -> None:
    """An mpc room that plans: the planner line carries the learned room model's figures (the sun it learnt, where
    the fit kept a day profile) and the plan's next step; a room with another controller has no planner line."""
    room = {"id": "loft", "name": "Loft", "reading": 20.8, "reading_age_s": 12.0, "target": 21.0,
            "target_source": "schedule comfort", "mode": "heat", "action": "heating", "demand_w": 470.0,
            "reason": "demand 470 W (mpc)", "heaters": [],
            "planner": {"controller": "mpc", "planner": "mpc", "model": "2r2c", "model_confidence": 0.9,
                        "model_tau_h": 14.2, "model_ua_w_per_k": 37.4, "model_day_gain_peak_w": 592.0,
                        "plan_next_w": 470.0, "plan_min_c": 20.6, "plan_max_c": 22.3}}
    out = render({"version": "x", "time": "now", "mqtt_connected": True, "rooms": [room], "heaters": []})
    assert ("  planner  mpc; room model 2r2c, confidence 0.90, τ 14.2 h, UA 37.4 W/K, sun up to 592 W; "
            "plan 470 W now, 20.6–22.3 °C ahead") in out.splitlines()
    no_sun = dict(room, planner={**room["planner"], "model_day_gain_peak_w": 0.0})
    assert "sun up to" not in render({"rooms": [no_sun], "heaters": []})
    pid_room = dict(room, planner=None)
    assert "planner" not in render({"rooms": [pid_room], "heaters": []})
