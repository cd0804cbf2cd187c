"""mpc in the household service: the room model is fitted from the store's history at start, stored in SQLite,
used by the controller, and shown in the room state; outdoor, forecast and price topics are read and garbage on
them is rejected. Real mosquitto, a simulated miner behind a real TCP socket, SQLite."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import aiomqtt
import pytest

from thermostat.adapters.store import HistoryRow, Store
from thermostat.clock import ScaledClock
from thermostat.config import load_config
from thermostat.core.mpc import MpcController
from thermostat.core.thermal_model import true_figures
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.room import MEDIUM_ROOM, Room, Sensor
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _fill_history(store: Store, end: float, hours: float) -> None:
    """Three days of a medium room heated on/off with a night setback, as the service would have recorded it."""
    room = Room.steady(MEDIUM_ROOM, 19.0, 3.0)
    sensor = Sensor(seed=2, initial_c=19.0)
    start = end - hours * 3600
    rows, last, on = [], None, False
    for i in range(int(hours * 60)):
        t = i * 60.0
        hod = (t / 3600.0) % 24
        outdoor = 3.0 + 4.0 * math.cos(2 * math.pi * (hod - 15) / 24)
        target = 21.0 if 6.5 <= hod < 22 else 17.0
        reading = sensor.sample(t, room.air_c)
        last = reading if reading is not None else last
        if last is not None:
            on = last < target - 0.2 or (on and last < target + 0.2)
        watts = 824.0 if on else 0.0
        rows.append(HistoryRow(start + t, room="living", reading=last, target=target, watts=watts))
        if i % 10 == 0:
            store.record_outdoor(start + t, outdoor)
        room.step(60.0, watts, outdoor)
    store.record_history_rows(rows)


async def test_service_fits_stores_and_shows_the_room_model(tmp_path: Path, mqtt_broker: object) -> None:
    clock = ScaledClock(20.0)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby")
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    path = tmp_path / "house.yaml"
    path.write_text(f"""mqtt: {{host: 127.0.0.1, port: {port}, base_topic: thermo, client_id: thermo-mpc}}
rooms:
  living:
    sensor: {{topic: sensors/living, json_key: temperature, stale_after: 10m}}
    target: 21
    heaters: [mini]
heaters:
  mini: {{host: 127.0.0.1, port: {server_port(server)}, model: mini3, min_on: 60s, min_off: 60s}}
tariff:
  price_topic: energy/price
  week: {{daily: [{{at: "00:00", price: 0.2}}, {{at: "17:00", price: 0.5}}]}}
outdoor: {{topic: weather/outdoor, forecast_topic: weather/forecast}}
state: {{path: {tmp_path / 'state.db'}}}
""")
    config = load_config(path)
    assert config.rooms["living"].control.mode == "mpc"  # nothing said: the default
    with Store(config.state.path) as store:
        _fill_history(store, clock.now().timestamp(), 72.0)
    service = Service(config, clock=clock)
    controller = service.rooms["living"].control.controller
    assert isinstance(controller, MpcController) and controller.model is None
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await until(lambda: service.link.connected, 10, "service connected")
        await until(lambda: controller.model is not None, 60, "the room model fitted from the history")
        assert controller.model is not None and controller.model.confident
        p = MEDIUM_ROOM
        tau, gain = true_figures(p.c_air_j_per_k, p.c_mass_j_per_k, p.h_am_w_per_k, p.h_ao_w_per_k, p.h_mo_w_per_k)
        # the wiring is what this test checks (accuracy: tests/test_thermal_model.py); this seed's history gives
        # a gain 17 % low
        assert controller.model.tau_s == pytest.approx(tau, rel=0.25)
        assert controller.model.gain_k_per_w == pytest.approx(gain, rel=0.25)
        assert service.store.get_thermal_model("living") is not None
        states: list[dict[str, object]] = []
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("thermo/room/living/state")
            await client.publish("weather/outdoor", "3.5", qos=1)
            await client.publish("energy/price", "not a price", qos=1)
            await client.publish("energy/price", "0.11", qos=1)
            now = clock.now()
            forecast = [{"datetime": now.replace(microsecond=0).isoformat(), "temperature": 3.0}]
            await client.publish("weather/forecast", json.dumps(forecast), qos=1)
            await client.publish("weather/forecast", b"{broken", qos=1)
            await client.publish("sensors/living", json.dumps({"temperature": 19.5}), qos=1)

            async def collect() -> None:
                async for msg in client.messages:
                    data = json.loads(msg.payload)
                    states.append(data)
                    if data.get("controller") == "mpc" and "plan_next_w" in data:
                        return

            await asyncio.wait_for(collect(), 30)
        state = states[-1]
        assert state["model"] == "2r2c" and float(state["model_confidence"]) >= 0.5  # type: ignore[arg-type]
        assert state["planner"] == "mpc" and float(state["plan_next_w"]) >= 0  # type: ignore[arg-type]
        # the plan itself, short: predicted air and mean power per half hour over the 18 h horizon
        assert state["plan_step_min"] == 30
        assert len(state["plan_air_c"]) == len(state["plan_power_w"]) == 36  # type: ignore[arg-type]
        assert all(10.0 < v < 30.0 for v in state["plan_air_c"])  # type: ignore[attr-defined]
        made = datetime.fromisoformat(str(state["plan_at"]))
        assert made.tzinfo is not None and abs((made - clock.now()).total_seconds()) < 3600
        assert service.outdoor_c == 3.5
        assert service.dynamic_price.price == 0.11
        assert len(service.outdoor_forecast) == 1
        assert service.counters["readings_rejected"] >= 2  # the bad price and the broken forecast
        assert "mpc" in (service.rooms["living"].decision.reason if service.rooms["living"].decision else "")
        # the model's daytime free heat is read on local time: the controller's (monotonic) clock plus the offset
        # the service's forecast gives it is the local time of day
        hours = tuple(float(h) for h in range(0, 24, 2))
        profile = replace(controller.model, gains_day_hours=hours, gains_day_w=tuple(100.0 + 10.0 * h for h in hours))
        controller.set_model(profile)
        local = clock.now().astimezone()
        local_hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        assert controller.day_gain_at(clock.monotonic()) == pytest.approx(profile.day_gain_w(local_hour), abs=2.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)
    # a restart uses the stored model at once
    again = Service(load_config(path), clock=clock)
    restored = again.rooms["living"].control.controller
    assert isinstance(restored, MpcController) and restored.model is not None and restored.active
    again.store.close()
