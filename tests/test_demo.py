"""`thermostat demo`: the real service against the simulated house, on a scaled clock.

The end-to-end test runs the demo as a subprocess (a learning run of 72 h of pid written into the state database,
then 2 simulated hours at ×400: about 30 s) with the installed mosquitto and checks what the summary says: the
service fitted its room model from that history and mpc planned (the room state the service published says so,
with the plan), the room reached the comfort band, every heater ended in standby, the plot is a PNG with the plans
drawn. Without a learning run the same room runs mpc's pid fallback, and the plot has no plan.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from thermostat import cli
from thermostat.adapters import embedded_broker
from thermostat.adapters.store import Store
from thermostat.config import load_config, load_schedule
from thermostat.core.schedule import target_at
from thermostat.core.thermal_model import true_figures
from thermostat.sim import demo
from thermostat.sim.house import SimHouse
from thermostat.sim.room import ROOM_PRESETS
from thermostat.yamlio import load_yaml_file

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
    assert room.control.mode == "mpc"
    assert config.outdoor is not None
    assert (config.outdoor.topic, config.outdoor.forecast_topic) == (demo.OUTDOOR_TOPIC, demo.FORECAST_TOPIC)


def test_learning_run_writes_the_service_history_and_the_house_continues_from_it(tmp_path: Path) -> None:
    (tmp_path / "schedule.yaml").write_text(demo.packaged_schedule_text(), encoding="utf-8")
    schedule = load_schedule(tmp_path / "schedule.yaml")
    end = datetime(2026, 1, 12, 4, 30, tzinfo=UTC)  # the demo's start: Monday 05:30 in Berlin
    hours = 24.0
    scenario = demo.learning_scenario(models=["mini3", "q"], room="large", outdoor_mean_c=2.0,
                                      schedule_data=dict(load_yaml_file(tmp_path / "schedule.yaml")), end=end,
                                      hours=hours, tz=schedule.tz)
    history, room, bench = demo.run_learning(scenario)
    # the replayed physics ends where the bench's own room ended (the house starts from it)
    assert bench.trace is not None
    assert room.air_c == pytest.approx(bench.trace.air_c[-1], abs=1e-9)
    assert room.mass_c < room.air_c  # a heated room's mass lags its air
    rows, outdoor_rows = demo.write_learning(tmp_path / "state.db", history, start=end - timedelta(hours=hours),
                                             schedule=schedule)
    assert rows == len(history) == int(hours * 60) + 1
    assert outdoor_rows == int(hours * 3600 / demo.OUTDOOR_EVERY_S) + 1
    with Store(tmp_path / "state.db") as store:
        written = store.history(room=demo.ROOM_ID)
        outdoor = store.outdoor_history()
        assert store.get_thermal_model(demo.ROOM_ID) is None  # the service fits its own
    assert written[0].ts == pytest.approx((end - timedelta(hours=hours)).timestamp())
    assert written[-1].ts == pytest.approx(end.timestamp())
    assert [r.ts for r in written] == sorted(r.ts for r in written)
    assert all(r.heater is None and r.watts is not None for r in written)
    assert sum(r.reading is not None for r in written) > 0.95 * rows
    # what the schedule said at each row, as the service records it
    sunday_noon = next(r for r in written if r.ts == pytest.approx(end.timestamp() - 16.5 * 3600, abs=30))
    assert sunday_noon.target == target_at(schedule, datetime.fromtimestamp(sunday_noon.ts, UTC)).temp == 21.0
    assert written[-1].target == 18.0  # 05:30 on a Monday: eco
    # the heat went where the room needed it: more while comfort than at night
    assert max(r.watts or 0.0 for r in written) > 1000.0
    assert outdoor[0][1] == pytest.approx(scenario.build_outdoor().at(0.0))


def test_demo_rejects_a_start_temperature_after_a_learning_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--start-temp", "16", "--quiet"]) == 2
    assert "--start-temp needs --learn-hours 0" in capsys.readouterr().err
    assert cli.main(["demo", "--learn-hours", "400", "--quiet"]) == 2


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


def _run_demo(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    demo.find_mosquitto() or pytest.fail("mosquitto is not installed (scripts/test.sh installs it)")
    plot = tmp_path / "run.png"
    summary_path = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "thermostat", "demo", "--speed", "400", "--broker", "mosquitto",
         "--plot", str(plot), "--json", str(summary_path), *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(summary_path.read_text()), plot


def test_demo_plans_with_mpc_reaches_the_band_and_parks_every_heater(tmp_path: Path) -> None:
    proc, summary, plot = _run_demo(tmp_path, "--hours", "2")
    # the learning run and the service's own fit of it
    assert summary["learning"]["hours"] == 72.0 and summary["learning"]["rows"] == 72 * 60 + 1
    p = ROOM_PRESETS["large"]
    tau_s, gain = true_figures(p.c_air_j_per_k, p.c_mass_j_per_k, p.h_am_w_per_k, p.h_ao_w_per_k, p.h_mo_w_per_k)
    model = summary["model"]
    assert model["model_tau_h"] == pytest.approx(tau_s / 3600, rel=0.25)
    assert model["model_ua_w_per_k"] == pytest.approx(1 / gain, rel=0.25)
    # mpc planned: the room state the service published at the end says so and carries the plan
    state = summary["final_room_state"]
    assert state["controller"] == "mpc" and state["planner"] == "mpc"
    assert state["reason"].startswith("demand") and "(mpc)" in state["reason"] and "fallback" not in state["reason"]
    assert len(state["plan_air_c"]) == len(state["plan_power_w"]) == 18 * 60 // state["plan_step_min"]
    assert all(15.0 < v < 25.0 for v in state["plan_air_c"])
    assert summary["mpc_from"] is not None and summary["plans_published"] >= 6  # a plan every 10 minutes
    assert summary["mpc_minutes"] > 0.8 * summary["state_minutes"] > 0
    # the plot has the plans: the plan times drawn are written into the PNG
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(plot) as image:
        text = dict(image.text)  # type: ignore[attr-defined]
    assert text["thermostat:plans"].split(",") == summary["plot_plans"] and len(summary["plot_plans"]) == 4
    assert int(text["thermostat:planned_points"]) > 10
    assert "mpc planned from" in proc.stdout and "mpc plans drawn" in proc.stdout
    assert summary["reached_band"], proc.stdout
    assert summary["comfort_start"] == "06:00"
    assert summary["minutes_in_band"] > 0
    assert summary["all_heaters_standby"], summary["heaters_at_exit"]
    assert set(summary["heaters_at_exit"]) == {"mini3-a", "q-a"}
    assert summary["commands_sent"] > 0 and summary["wakes"] >= 1
    assert summary["readings"] > 10 and summary["readings_rejected"] == 0
    assert summary["simulated_hours"] == pytest.approx(2.0, abs=0.05)
    out = proc.stdout
    assert "every heater ended in standby" in out
    assert "room" in out and "target" in out and "total" in out  # progress lines


def test_demo_without_history_runs_the_pid_fallback_and_draws_no_plan(tmp_path: Path) -> None:
    # a thermostat of the household's own may hold the default dashboard port: the demo takes another
    holder = socket.socket()
    with contextlib.suppress(OSError):
        holder.bind(("127.0.0.1", 8480))
        holder.listen()
    try:
        proc, summary, plot = _run_demo(tmp_path, "--hours", "0.5", "--learn-hours", "0")
    finally:
        holder.close()
    assert "dashboard: http://127.0.0.1:" in proc.stdout and "dashboard not started" not in proc.stdout + proc.stderr
    assert summary["learning"] is None and summary["model"] is None
    state = summary["final_room_state"]
    assert state["controller"] == "mpc" and "pid fallback" in state["planner"] and "plan_air_c" not in state
    assert summary["mpc_from"] is None and summary["plans_published"] == 0
    assert summary["plot_plans"] == []
    with Image.open(plot) as image:
        assert dict(image.text)["thermostat:plans"] == ""  # type: ignore[attr-defined]
    assert "mpc did NOT plan" in proc.stdout and "no mpc plan to draw" in proc.stdout
    assert summary["all_heaters_standby"]
