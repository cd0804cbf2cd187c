"""Home Assistant polish, end to end on a private mosquitto with a simulated Mini 3 behind a real TCP socket:
a manual level shows at once (published on the command, with when the miner will follow), and the entities and
retained state of a room and heater deleted from the configuration are removed by the service at its next start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ha_schema
import pytest
from test_ha_integration import (
    BASE,
    HEATER,
    PREFIX,
    ROOM,
    SPEED,
    START,
    House,
    configs,
    machine,
    reading,
    t_heater,
    until,
    write_config,
)

from thermostat.adapters import ha
from thermostat.clock import ScaledClock
from thermostat.config import load_config
from thermostat.core.heater import HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.service.household import ServiceTimings
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker


@pytest.fixture
async def house(tmp_path: Path, own_broker: Any) -> AsyncIterator[House]:
    clock = ScaledClock(SPEED, start=START)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     offline_seconds=20, start_state="standby", seed=3)
    server = await serve_miner(miner, "127.0.0.1", 0)
    h = House(tmp_path, own_broker, clock, miner, server, write_config(tmp_path, own_broker.port, server_port(server)))
    yield h
    if h.task is not None and not h.task.done():
        await h.stop_service()
    await close_server(server)


async def start(house: House, timings: ServiceTimings | None = None) -> Service:
    house.stop = asyncio.Event()
    house.service = Service(load_config(house.config_path), clock=house.clock, timings=timings)
    house.task = asyncio.create_task(house.service.run(house.stop))
    service = house.service
    await until(lambda: service.link.connected, 10, "service connected to the broker")
    await until(lambda: service.heaters[HEATER].machine is not None
                and machine(service.heaters[HEATER]).state != HeaterState.UNKNOWN, 10, "heater found")
    return service


async def test_manual_level_shows_at_once_with_when_the_miner_follows(house: House) -> None:
    text = house.config_path.read_text().replace("min_on: 60s", "min_on: 10m")
    house.config_path.write_text(text)
    # telemetry published once an hour: only the command itself can show the change within the test
    service = await start(house, ServiceTimings(publish_every_s=3600.0))
    h = service.heaters[HEATER]
    w = await house.watch(f"{BASE}/#")
    try:
        await reading(w, 18.0)  # cold: the room wakes the miner
        await until(lambda: machine(h).state == HeaterState.RUNNING and house.miner.hashing, 30, "running")
        # a manual standby inside the 10 min minimum on time: shown at once, and when the miner will follow
        mark = w.mark()
        await w.publish(t_heater("level/set"), "standby")
        await w.wait_for(t_heater("level"), lambda p: p == b"standby", 1.5, "level shown at once", since=mark)
        raw = await w.wait_for(t_heater("attributes"), lambda p: b'"control": "manual"' in p, 1.5,
                               "attributes at once", since=mark)
        attrs = json.loads(raw)
        assert attrs["follows"].startswith("minimum on until "), attrs
        assert attrs["follows_at"] is not None and attrs["manual_level"] is None
        assert house.miner.hashing  # the miner keeps running until its minimum on time is over
        # and `auto` is shown at once too
        mark = w.mark()
        await w.publish(t_heater("level/set"), "auto")
        await w.wait_for(t_heater("level"), lambda p: p == b"auto", 1.5, "auto shown at once", since=mark)
        await w.wait_for(t_heater("controlled"), lambda p: p == b"ON", 1.5, "switch shown at once", since=mark)
    finally:
        await w.stop()


async def test_deleted_room_and_heater_are_removed_from_ha_at_the_next_start(house: House) -> None:
    # first run: two rooms, the second with its own (unreachable) heater
    original = house.config_path.read_text()
    extra_room = ("  spare:\n    name: Spare room\n    sensor: {topic: sensors/spare, json_key: temperature}\n"
                  "    target: 18\n    heaters: [spare-heater]\n")
    two_rooms = original.replace("rooms:\n", "rooms:\n" + extra_room, 1).replace(
        "heaters:\n  " + HEATER, "heaters:\n  spare-heater: {host: 127.0.0.1, port: 9, model: mini3}\n  " + HEATER, 1)
    house.config_path.write_text(two_rooms)
    await start(house)
    w = await house.watch(f"{PREFIX}/#", f"{BASE}/#")
    try:
        await until(lambda: any("spare" in topic for topic in configs(w)), 10, "spare room discovered")
        spare_configs = {topic for topic in configs(w) if "spare" in topic}
        assert any("/climate/" in topic for topic in spare_configs)
        assert any("heater_spare_heater" in topic for topic in spare_configs)
        await until(lambda: w.last(f"{BASE}/room/spare/mode") is not None, 10, "spare room state")
    finally:
        await w.stop()
    await house.stop_service()

    # second run: the spare room and its heater are deleted from the file
    house.config_path.write_text(original)
    await start(house)
    await asyncio.sleep(0.5)
    w = await house.watch(f"{PREFIX}/#", f"{BASE}/#")  # what HA would find retained after the restart
    try:
        await until(lambda: any(ROOM in topic for topic in configs(w, retained=True)), 10, "living discovered")
        await asyncio.sleep(0.5)
        retained = configs(w, retained=True)
        assert not [topic for topic in retained if "spare" in topic], "deleted entities still announced"
        left = [m.topic for m in w.messages if m.retain and m.payload and "/spare" in m.topic]
        assert left == [], f"retained state of the deleted room/heater left: {left}"
        # what is left is a valid, self-consistent house for HA
        problems: list[str] = []
        for topic, payload in retained.items():
            problems += ha_schema.problems(topic, payload)
        assert problems == []
        assert any(topic.endswith(f"{ha.Topics(BASE, PREFIX).room_uid(ROOM, 'climate')}/config") for topic in retained)
    finally:
        await w.stop()


def test_gone_messages_ignore_a_malformed_record() -> None:
    t = ha.Topics(BASE, PREFIX)
    current: dict[str, list[str]] = {"configs": [f"{PREFIX}/climate/a/config"], "state": [f"{BASE}/room/a/mode"]}
    bad: list[Any] = [None, [], "x", {"configs": "nope"}, {"configs": [1, None, "#", f"{PREFIX}/+/x/config",
                                                                      "elsewhere/climate/b/config"]}]
    for record in bad:
        assert ha.gone_messages(t, record, current) == []
    old = {"configs": [f"{PREFIX}/climate/a/config", f"{PREFIX}/climate/b/config"],
           "state": [f"{BASE}/room/a/mode", f"{BASE}/room/b/mode"]}
    assert ha.gone_messages(t, old, current) == [(f"{PREFIX}/climate/b/config", ""), (f"{BASE}/room/b/mode", "")]
