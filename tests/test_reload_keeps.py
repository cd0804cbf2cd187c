"""Reload keeps what is alive (issue 12, bug 4): SIGHUP with an unchanged room or heater keeps its sensor reading,
controller, heater machine and wear; a changed one is rebuilt and reconciled by polling, without a blind command;
a reload never wakes or stops anything by itself and never breaks `min_off`. Through `commands.run.serve` with a
real mosquitto and a simulated miner over TCP, on a clock 20x real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from thermostat.clock import ScaledClock
from thermostat.commands.run import serve
from thermostat.config import load_config
from thermostat.miners.models import MODELS
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

SPEED = 20.0


def house_yaml(tmp: Path, broker_port: int, miner_port: int, *, target: float = 21.0, name: str = "Mini",
               min_off: str = "10m") -> str:
    return f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: keeps, client_id: keeps-test}}
rooms:
  living:
    sensor: {{topic: sensors/keeps, stale_after: 10m}}
    target: {target}
    limits: {{min_c: 7, max_c: 26}}
    control: {{mode: hysteresis}}
    heaters: [mini]
heaters:
  mini: {{name: {name}, host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 60s, min_off: {min_off}}}
state: {{path: {tmp / 'state.db'}}}
"""


@dataclass
class Running:
    tmp: Path
    port: int
    miner: SimMiner
    miner_port: int
    path: Path
    stop: asyncio.Event
    reload: asyncio.Event
    task: asyncio.Task[int]

    async def publish(self, topic: str, payload: str) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.publish(topic, payload, qos=1)

    async def retained(self, topic: str) -> bytes:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe(topic)
            msg = await asyncio.wait_for(anext(aiter(client.messages)), 5)
            return bytes(msg.payload)  # type: ignore[arg-type]

    async def wait_retained(self, topic: str, want: bytes, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        last = b""
        while time.monotonic() < deadline:
            last = await self.retained(topic)
            if last == want:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{topic}: wanted {want!r}, last {last!r}")

    async def reload_with(self, **changes: object) -> None:
        self.path.write_text(house_yaml(self.tmp, self.port, self.miner_port, **changes))  # type: ignore[arg-type]
        self.reload.set()

    def commands(self) -> list[str]:
        return [r for _, r in self.miner.commands_log if "ascset" in r]


async def until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def running(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[Running]:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby")
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    path = tmp_path / "house.yaml"
    path.write_text(house_yaml(tmp_path, port, server_port(server)))
    stop, reload = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(path, load_config(path), clock=clock, stop=stop, reload=reload))
    r = Running(tmp_path, port, miner, server_port(server), path, stop, reload, task)
    try:
        await r.wait_retained("keeps/room/living/target", b"21.0")
        yield r
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)


async def test_a_reload_keeps_the_reading_and_sends_nothing(running: Running) -> None:
    await running.publish("sensors/keeps", "19.25")
    await running.wait_retained("keeps/room/living/current_temp", b"19.25")
    await until(lambda: running.miner.hashing, 20, "heating (19.25 < 21)")
    await running.wait_retained("keeps/heater/mini/state", b"running", timeout=20)
    await asyncio.sleep(1.0)  # settled at its level
    before = running.commands()

    await running.reload_with(target=21.5)  # the room changes (target), its sensor does not
    await running.wait_retained("keeps/room/living/target", b"21.5")
    # on main the reading was forgotten: current_temp went empty and the room waited for a new reading
    assert await running.retained("keeps/room/living/current_temp") == b"19.25"
    await asyncio.sleep(1.0)
    assert running.commands() == before, "the reload itself commanded the miner"
    assert running.miner.hashing

    await running.reload_with(target=21.5, name="Renamed")  # the heater changes: rebuilt, reconciled by polling
    await asyncio.sleep(2.0)
    assert running.commands() == before, "a rebuilt heater must be reconciled without a blind command"
    assert running.miner.hashing
    assert await running.retained("keeps/room/living/current_temp") == b"19.25"


async def test_a_reload_never_breaks_min_off(running: Running) -> None:
    """Bug 4b: a reload woke a heater 79 s after it had gone to standby although min_off was 10 min."""
    await running.publish("sensors/keeps", "17.0")
    await until(lambda: running.miner.hashing, 20, "heating")
    await asyncio.sleep(60 / SPEED + 0.5)  # past min_on
    await running.publish("keeps/room/living/mode/set", "off")  # the household turns the room off: standby
    await until(lambda: (running.miner.update(), not running.miner.hashing)[1], 20, "standby")
    stopped = time.monotonic()
    wakes = running.miner.wakes

    await running.reload_with(target=22.0)
    await running.wait_retained("keeps/room/living/target", b"22.0")
    await running.publish("keeps/room/living/mode/set", "heat")  # and on again, still cold: 10 min of min_off
    await running.wait_retained("keeps/room/living/mode", b"heat")
    await running.publish("sensors/keeps", "16.5")
    while time.monotonic() - stopped < 200 / SPEED:  # 200 s of simulated time after the standby
        running.miner.update()
        assert running.miner.wakes == wakes and not running.miner.hashing, \
            f"woken {(time.monotonic() - stopped) * SPEED:.0f} s after standby, min_off is 600 s"
        await asyncio.sleep(0.1)
