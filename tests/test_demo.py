"""`thermostat demo`: the real service against the simulated house, on a scaled clock.

The end-to-end test runs the demo as a subprocess (2 simulated hours at ×400, about 20 s) with the
installed mosquitto and checks what the summary says: the room reached the comfort band, every heater
ended in standby, the plot is a PNG.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from thermostat import cli
from thermostat.adapters import embedded_broker
from thermostat.config import load_config
from thermostat.sim import demo
from thermostat.sim.house import SimHouse
from thermostat.sim.room import ROOM_PRESETS

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_packaged_schedule_is_the_repo_schedule() -> None:
    packaged = (REPO / "thermostat" / "data" / "schedules" / "default.yaml").read_bytes()
    assert packaged == (REPO / "schedules" / "default.yaml").read_bytes()
    assert demo.packaged_schedule_text("default") == packaged.decode("utf-8")


def test_heater_ids_are_stable_and_unique() -> None:
    assert demo.heater_ids(["mini3", "q", "mini3"]) == {"mini3-a": "mini3", "q-a": "q", "mini3-b": "mini3"}


def test_demo_config_loads(tmp_path: Path) -> None:
    (tmp_path / "schedule.yaml").write_text(demo.packaged_schedule_text(), encoding="utf-8")
    models = {"mini3-a": "mini3", "q-a": "q"}
    path = tmp_path / "demo.yaml"
    path.write_text(demo.demo_config_yaml(mqtt_port=18830, heaters={"mini3-a": 4101, "q-a": 4102}, models=models))
    config = load_config(path)
    room = config.rooms[demo.ROOM_ID]
    assert room.heaters == ["mini3-a", "q-a"]
    assert room.sensor.topic == demo.SENSOR_TOPIC
    assert config.heaters["q-a"].port == 4102
    assert config.state.path == tmp_path / "state.db"
    assert config.schedule_for(demo.ROOM_ID).tz.key == "Europe/Berlin"


class _FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.start = datetime(2026, 1, 12, 4, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def epoch(self) -> float:
        return self.now().timestamp()

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - not used here
        self.t += seconds


def test_house_step_heats_the_room_and_feeds_the_miners() -> None:
    clock = _FakeClock()
    house = SimHouse(clock, {"m": "mini3"}, mqtt_host="127.0.0.1", mqtt_port=1, sensor_topic="x",
                     room_params=ROOM_PRESETS["medium"], initial_air_c=17.0)
    first = house.step(0.0, 0.0, 0.0)
    assert first == pytest.approx(17.0, abs=0.2)  # the first sample is always reported
    for i in range(1, 41):
        clock.t = i * 30.0
        house.step(clock.t, 30.0, 1500.0)
    assert house.room.air_c > 18.0
    assert house.sim_miners["m"].inlet_temp_c == pytest.approx(house.room.air_c)
    assert house.heater_levels() == {"m": None}  # starts in standby
    assert house.heater_watts()["m"] == pytest.approx(12.0, abs=5.0)


def test_no_broker_available_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # amqtt is installed for the tests: make it look missing, as on a machine without the demo extra
    monkeypatch.setattr(embedded_broker, "available", lambda: False)
    assert cli.main(["demo", "--broker", "embedded", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [demo.INSTALL_HINT]


def test_embedded_broker_serves_mqtt() -> None:
    import asyncio

    import aiomqtt

    async def roundtrip(port: int) -> bytes:
        async with aiomqtt.Client("127.0.0.1", port, identifier="t") as client:
            await client.subscribe("t/x", qos=1)
            await client.publish("t/x", b"42", qos=1)
            async for msg in client.messages:
                return bytes(msg.payload)  # type: ignore[arg-type]
        return b""

    with embedded_broker.EmbeddedBroker() as broker:
        assert asyncio.run(asyncio.wait_for(roundtrip(broker.port), 10)) == b"42"


def test_demo_reaches_the_band_and_parks_every_heater(tmp_path: Path) -> None:
    demo.find_mosquitto() or pytest.fail("mosquitto is not installed (scripts/test.sh installs it)")
    plot = tmp_path / "run.png"
    summary_path = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "thermostat", "demo", "--hours", "2", "--speed", "400", "--broker", "mosquitto",
         "--plot", str(plot), "--json", str(summary_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["reached_band"], proc.stdout
    assert summary["comfort_start"] == "06:00"
    assert summary["minutes_in_band"] > 0
    assert summary["all_heaters_standby"], summary["heaters_at_exit"]
    assert set(summary["heaters_at_exit"]) == {"mini3-a", "q-a"}
    assert summary["commands_sent"] > 0 and summary["wakes"] >= 1
    assert summary["readings"] > 10 and summary["readings_rejected"] == 0
    assert summary["simulated_hours"] == pytest.approx(2.0, abs=0.05)
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    out = proc.stdout
    assert "every heater ended in standby" in out
    assert "room" in out and "target" in out and "total" in out  # progress lines
