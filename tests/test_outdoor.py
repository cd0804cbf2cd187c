"""The house's outdoor temperature (config `outdoor:`), end to end on a real mosquitto with a simulated Mini 3:
fed to the room's controller (a PID with outdoor feed-forward asks for the room's steady loss), recorded in
the state file's outdoor history and drawn by `history --plot`, announced to Home Assistant as a sensor on the
service device, and in the status document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import ha_schema
import pytest
from test_service import House, until

from thermostat.adapters.store import HistoryRow
from thermostat.clock import ScaledClock
from thermostat.core.controllers import make_controller
from thermostat.miners.models import MODELS
from thermostat.service import view
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

SPEED = 20.0


def write_config(tmp: Path, broker_port: int, miner_port: int) -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: thermo, client_id: thermo-outdoor}}
outdoor: {{topic: weather/garden, json_key: temperature, stale_after: 30m}}
rooms:
  living:
    sensor: {{topic: sensors/living, json_key: temperature}}
    target: 21
    heaters: [mini3-0]
heaters:
  mini3-0: {{host: 127.0.0.1, port: {miner_port}, model: mini3}}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    return path


@pytest.fixture
async def house(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[House]:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby", seed=2)
    server = await serve_miner(miner, "127.0.0.1", 0)
    path = write_config(tmp_path, mqtt_broker.port, server_port(server))  # type: ignore[attr-defined]
    h = House(tmp_path, mqtt_broker, clock, [miner], [server], path)
    yield h
    if h.task is not None and not h.task.done():
        await h.stop_service()
    await close_server(server)


@pytest.mark.broker
async def test_outdoor_feeds_the_controller_history_ha_and_status(house: House) -> None:
    service = await house.start_service()
    room = service.rooms["living"]
    # a PID with outdoor feed-forward: at the target (no error, no integral yet) it asks for ua × (target − outdoor)
    room.control.controller = make_controller("pid", max_w=3000.0, ua_est_w_per_k=50.0)
    seen: dict[str, str] = {}
    async with aiomqtt.Client("127.0.0.1", house.broker.port) as client:  # type: ignore[attr-defined]
        await client.subscribe("homeassistant/sensor/#")
        await client.subscribe("thermo/outdoor")
        await house.publish("weather/garden", json.dumps({"temperature": 1.0, "humidity": 90}))
        await house.publish("sensors/living", json.dumps({"temperature": 21.0}))

        async def collect() -> None:
            async for msg in client.messages:
                seen[str(msg.topic)] = bytes(msg.payload).decode()  # type: ignore[arg-type]
                if seen.get("thermo/outdoor") == "1.0" and "homeassistant/sensor/thermo_service_outdoor/config" in seen:
                    return

        await asyncio.wait_for(collect(), 30)
    assert service._outdoor(service.clock.monotonic()) == 1.0
    await until(lambda: room.decision is not None and room.decision.demand_w > 900.0, 30, "feed-forward demand")
    assert room.decision is not None and room.decision.demand_w == pytest.approx(1000.0, abs=60.0)
    config_topic = "homeassistant/sensor/thermo_service_outdoor/config"
    payload = json.loads(seen[config_topic])
    assert payload["state_topic"] == "thermo/outdoor" and payload["device"]["identifiers"] == ["thermo_service"]
    assert ha_schema.problems(config_topic, payload) == []
    doc = view.state_document(service)
    assert doc["outdoor"]["reading"] == 1.0 and doc["outdoor"]["stale"] is False
    # recorded in the state file's outdoor history
    await until(lambda: any(temp == 1.0 for _, temp in service.store.outdoor_history()), 30, "outdoor history")
    # garbage on the outdoor topic is rejected and changes nothing
    await house.publish("weather/garden", b"{not json")
    await asyncio.sleep(0.3)
    assert service._outdoor(service.clock.monotonic()) == 1.0


def test_history_plot_carries_the_outdoor_temperature(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from thermostat.adapters.chart import write_room_chart
    from thermostat.adapters.report import chart_from_timeline, room_timeline

    tz = ZoneInfo("Europe/Berlin")
    rows = [HistoryRow(1_800_000_000.0 + 60 * i, room="r", reading=20.0, target=21.0) for i in range(30)]
    outdoor = [(1_800_000_000.0 + 60 * i, -1.0 + i / 10) for i in range(0, 30, 10)]  # every 10 min
    rows += [HistoryRow(1_800_000_000.0 + 60 * i, heater="h", level="eco", watts=600.0) for i in range(30)]
    points = room_timeline(rows, "r", ["h"], outdoor=outdoor)
    chart = chart_from_timeline(points, ["h"], tz, "r")
    # each point carries the last outdoor sample at or before it
    assert chart.outdoor[0] == pytest.approx(-1.0) and chart.outdoor[9] == pytest.approx(-1.0)
    assert chart.outdoor[10] == pytest.approx(0.0) and chart.outdoor[-1] == pytest.approx(1.0)
    # a sample older than outdoor_max_age_s is not drawn
    late = room_timeline(rows, "r", ["h"], outdoor=outdoor[:1], outdoor_max_age_s=300.0)
    assert [p.outdoor for p in late[:7]] == [-1.0] * 6 + [None]
    write_room_chart(tmp_path / "r.png", chart)
    assert (tmp_path / "r.png").stat().st_size > 1000
    # a house without outdoor: no outdoor line on the plot
    plain = [HistoryRow(r.ts, room="r", reading=20.0, target=21.0) for r in rows[:30]]
    assert chart_from_timeline(room_timeline(plain, "r", []), [], tz, "r").outdoor == []
