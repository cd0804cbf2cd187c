"""Per-room control ticks (issue 16, scale): a reading ticks its own room, not the others; a stale sensor acts at
once for its room; the periodic tick still runs every room. Real mosquitto, simulated miners on real TCP sockets.

Also: one control tick writes SQLite in one transaction, and unchanged retained state is not published again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from test_service import until

from thermostat.adapters.mqtt import MqttLink
from thermostat.adapters.store import RoomState, SafeStore
from thermostat.config import load_config
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.service.household import ServiceTimings
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

ROOMS = ("a", "b", "c")


def _config(tmp: Path, broker_port: int, ports: list[int], *, stale_after: str) -> Path:
    rooms = "".join(
        f"""  {r}:
    sensor: {{topic: sensors/{r}, stale_after: {stale_after}}}
    target: 21
    limits: {{min_c: 5, max_c: 26}}
    control: {{mode: hysteresis}}
    heaters: [h-{r}]
""" for r in ROOMS)
    heaters = "".join(f"  h-{r}: {{host: 127.0.0.1, port: {p}, model: mini3}}\n"
                      for r, p in zip(ROOMS, ports, strict=True))
    path = tmp / "house.yaml"
    path.write_text(f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: ticks, client_id: ticks-test}}
dashboard: {{enabled: false}}
rooms:
{rooms}heaters:
{heaters}state: {{path: {tmp / 'state.db'}}}
""")
    return path


class House:
    def __init__(self, service: Service, broker_port: int) -> None:
        self.service = service
        self.broker_port = broker_port

    async def reading(self, room: str, celsius: float) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker_port) as client:
            await client.publish(f"sensors/{room}", f"{celsius}", qos=1)


async def _house(tmp: Path, broker: object, *, stale_after: str, control_interval_s: float) -> AsyncIterator[House]:
    miners = [SimMiner(MODELS["mini3"], time_fn=time.time, start_state="standby", seed=i) for i in range(len(ROOMS))]
    servers = [await serve_miner(m, "127.0.0.1", 0) for m in miners]
    port = broker.port  # type: ignore[attr-defined]
    config = load_config(_config(tmp, port, [server_port(s) for s in servers], stale_after=stale_after))
    service = Service(config, timings=ServiceTimings(control_interval_s=control_interval_s))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await until(lambda: service.link.connected, 10, "service connected")
        await asyncio.sleep(0.3)  # subscriptions
        yield House(service, port)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        for s in servers:
            await close_server(s)


@pytest.fixture
async def house(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[House]:
    async for h in _house(tmp_path, mqtt_broker, stale_after="1h", control_interval_s=3600.0):
        yield h


async def test_a_reading_ticks_its_own_room_only(house: House) -> None:
    service = house.service
    for r in ROOMS:  # every room has a reading and a decision
        await house.reading(r, 20.0)
    await until(lambda: all(service.rooms[r].decision is not None for r in ROOMS), 10, "every room decided")
    await asyncio.sleep(0.3)
    before = {r: service.rooms[r].decision for r in ROOMS}
    for value in (20.1, 20.2, 20.3):
        readings = service.rooms["a"].readings
        await house.reading("a", value)
        await until(lambda n=readings: service.rooms["a"].readings > n, 10, "room a's reading accepted")
        await until(lambda: service.rooms["a"].decision is not before["a"], 10, "room a ticked")
        before["a"] = service.rooms["a"].decision
    await asyncio.sleep(0.3)
    # rooms b and c were not ticked by room a's readings: their last decision is the very same object
    assert service.rooms["b"].decision is before["b"]
    assert service.rooms["c"].decision is before["c"]


async def test_a_room_command_ticks_that_room(house: House) -> None:
    service = house.service
    for r in ROOMS:
        await house.reading(r, 20.0)
    await until(lambda: all(service.rooms[r].decision is not None for r in ROOMS), 10, "every room decided")
    await asyncio.sleep(0.3)
    b_before, a_before = service.rooms["b"].decision, service.rooms["a"].decision
    assert service.command("room", "a", "mode", b"off") is None
    await until(lambda: service.rooms["a"].decision is not a_before, 10, "room a ticked by its command")
    decision = service.rooms["a"].decision
    assert decision is not None and not decision.heating
    assert service.rooms["b"].decision is b_before


async def test_a_stale_sensor_acts_at_once_for_its_room(tmp_path: Path, mqtt_broker: object) -> None:
    """No periodic tick for an hour and no other reading: the room's own stale deadline ticks it."""
    async for house in _house(tmp_path, mqtt_broker, stale_after="2s", control_interval_s=3600.0):
        room = house.service.rooms["a"]
        await house.reading("a", 18.0)  # cold: room a wants heat
        await until(lambda r=room: r.decision is not None and r.decision.heating, 10, "room a heating")
        sent = time.monotonic()
        await until(lambda r=room: r.decision is not None and r.decision.reason.startswith("sensor lost"), 6,
                    "room a's sensor lost")
        assert time.monotonic() - sent < 4.0  # 2 s stale_after, acted on at its deadline
        machine = house.service.heaters["h-a"].machine
        assert machine is not None and machine.wanted_level is None  # standby wanted


async def test_the_periodic_tick_runs_every_room(tmp_path: Path, mqtt_broker: object) -> None:
    async for house in _house(tmp_path, mqtt_broker, stale_after="1h", control_interval_s=0.5):
        service = house.service
        start = {r: service.rooms[r].ticks for r in ROOMS}
        await asyncio.sleep(2.0)
        assert all(service.rooms[r].ticks >= start[r] + 2 for r in ROOMS), {r: service.rooms[r].ticks for r in ROOMS}


def test_a_tick_writes_sqlite_in_one_transaction(tmp_path: Path) -> None:
    store = SafeStore(tmp_path / "state.db")
    before = store.transactions
    with store.batch():
        for i in range(20):
            store.put_room_state(f"room-{i}", RoomState(mode="heat"), 1.0)
            store.add_energy(f"room-{i}", 0.001, 1.0)
            store.record_history(1.0, room=f"room-{i}", reading=20.0)
    assert store.transactions == before + 1
    assert store.persistent
    store.close()
    reopened = SafeStore(tmp_path / "state.db")
    assert reopened.get_room_state("room-19").mode == "heat"
    assert abs(reopened.energy("room-7") - 0.001) < 1e-12
    reopened.close()


def test_a_failing_batched_write_stays_pending_and_never_raises(tmp_path: Path) -> None:
    store = SafeStore(tmp_path / "state.db", retry_min_s=0.0)
    assert store._db is not None
    store._db._db.execute("DROP TABLE history")  # every history write fails from now on
    with store.batch():
        store.put_room_state("a", RoomState(mode="off"), 1.0)
        store.record_history(1.0, room="a", reading=20.0)
    assert store.problem is not None and not store.persistent
    # all or nothing: the room state of that transaction was rolled back with it and is still pending
    assert store.get_room_state("a").mode == "off"
    assert "a" in store._dirty_rooms
    store.close()


def test_unchanged_retained_state_is_not_published_again() -> None:
    # never connected: retained values go to the cache that is re-sent on connect
    link = MqttLink("127.0.0.1", 1, client_id="t", availability_topic="t/status")
    assert link.publish_state("t/room/a/target", "21.0") is True
    assert link.publish_state("t/room/a/target", "21.0") is False
    assert link.publish_state("t/room/a/target", "21.5") is True
    assert link.unchanged_skipped == 1
    assert link.retained["t/room/a/target"] == (b"21.5", 1)  # what a reconnect re-sends


async def test_a_tick_publishes_only_changed_room_state(house: House) -> None:
    service = house.service
    await house.reading("a", 20.0)
    await until(lambda: service.rooms["a"].decision is not None, 10, "room a decided")
    await asyncio.sleep(0.3)
    skipped = service.link.unchanged_skipped
    service.tick([service.rooms["b"]])  # nothing changed in room b
    assert service.link.unchanged_skipped > skipped
    assert json.loads(service.link.retained["ticks/room/a/state"][0])["mode"] == "heat"
