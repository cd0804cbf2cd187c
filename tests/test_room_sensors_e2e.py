"""Two sensors in one room, end to end: real mosquitto, a simulated Mini 3 behind a real TCP socket, the real
`Service` on a fast clock. One sensor falls silent: the room is still controlled on the other. Both silent: stale
→ standby. Humidity from the Zigbee2MQTT JSON reaches the room's MQTT state and the climate discovery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from test_service import House, until

from thermostat.clock import ScaledClock
from thermostat.core.heater import HeaterState
from thermostat.miners.models import MODELS
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

SPEED = 20.0


def write_config(tmp: Path, broker_port: int, miner_port: int) -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: thermo, client_id: thermo-two-sensors}}
rooms:
  living:
    name: Living room
    sensors:
      - {{topic: sensors/sofa, json_key: temperature, stale_after: 3m}}
      - {{topic: sensors/shelf, json_key: temperature, stale_after: 6m}}
    combine: mean
    target: 21
    heaters: [mini3-0]
heaters:
  mini3-0: {{host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 60s, min_off: 60s, max_wakes_per_hour: 6}}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    return path


@pytest.fixture
async def house(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[House]:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby", seed=1)
    server = await serve_miner(miner, "127.0.0.1", 0)
    path = write_config(tmp_path, mqtt_broker.port, server_port(server))  # type: ignore[attr-defined]
    h = House(tmp_path, mqtt_broker, clock, [miner], [server], path)
    yield h
    if h.task is not None and not h.task.done():
        await h.stop_service()
    await close_server(server)


async def test_one_sensor_silent_room_still_controlled_both_silent_standby(house: House) -> None:
    service = await house.start_service()
    room = service.rooms["living"]
    machine = lambda: service.heaters["mini3-0"].machine  # noqa: E731
    await until(lambda: machine() is not None and machine().state == HeaterState.STANDBY, 10, "standby found")
    await house.publish("sensors/sofa", json.dumps({"temperature": 17.0, "humidity": 55}))
    await house.publish("sensors/shelf", json.dumps({"temperature": 18.0}))
    await until(lambda: room.filter.value(service.clock.monotonic()) == pytest.approx(17.5), 10, "mean of both")
    await until(lambda: machine().state == HeaterState.RUNNING, 30, "heater running")
    # the sofa sensor falls silent; the shelf keeps reporting every simulated minute past the sofa's 3 min
    for c in (18.0, 18.1, 18.1, 18.2, 18.2):
        await asyncio.sleep(60.0 / SPEED)  # one simulated minute
        await house.publish("sensors/shelf", json.dumps({"temperature": c}))
    now = service.clock.monotonic()
    assert room.filter.filters[0].is_stale(now)
    assert not room.filter.is_stale(now)
    assert room.filter.value(now) == pytest.approx(18.2)  # the silent sensor no longer counts
    assert room.decision is not None and "sensor" not in room.decision.reason
    assert machine().state == HeaterState.RUNNING and house.miners[0].hashing
    # then the shelf falls silent too: after its 6 min the room is stale → standby
    await until(lambda: machine().state == HeaterState.STANDBY and not house.miners[0].hashing, 40,
                "standby once both sensors are stale")
    assert room.filter.is_stale(service.clock.monotonic())
    assert "sensor" in room.decision.reason


async def test_humidity_reaches_the_mqtt_state_and_the_climate(house: House) -> None:
    service = await house.start_service()
    seen: dict[str, str] = {}
    async with aiomqtt.Client("127.0.0.1", house.broker.port) as client:  # type: ignore[attr-defined]
        await client.subscribe("thermo/room/living/#")
        await client.subscribe("homeassistant/climate/#")
        await house.publish("sensors/sofa", json.dumps({"temperature": 20.0, "humidity": 47.6, "battery": 90}))

        async def collect() -> None:
            async for msg in client.messages:
                seen[str(msg.topic)] = bytes(msg.payload).decode()  # type: ignore[arg-type]
                state = seen.get("thermo/room/living/state")
                if (seen.get("thermo/room/living/humidity") == "48" and state is not None
                        and json.loads(state)["humidity"] is not None):
                    return

        await asyncio.wait_for(collect(), 15)
    # this service's own climate (other tests leave theirs retained on the shared broker, under other ids)
    climate = next(c for k, v in seen.items() if k.startswith("homeassistant/climate/") and v
                   and (c := json.loads(v)).get("current_temperature_topic", "").startswith("thermo/room/living/"))
    assert climate["current_humidity_topic"] == "thermo/room/living/humidity"
    assert service.rooms["living"].humidity == pytest.approx(47.6)
    state = json.loads(seen["thermo/room/living/state"])
    assert [s["topic"] for s in state["sensors"]] == ["sensors/sofa", "sensors/shelf"]
