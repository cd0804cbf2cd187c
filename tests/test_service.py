"""The household service end to end: real mosquitto, simulated miners behind real TCP sockets speaking the
cgminer protocol, state in SQLite, the real `Service` on a clock running 20× faster than real time."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from thermostat.adapters.store import Store
from thermostat.clock import ScaledClock
from thermostat.config import load_config
from thermostat.core.heater import HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

SPEED = 20.0


def write_config(tmp: Path, broker_port: int, miner_ports: list[int], *, max_c: float = 26.0,
                 stale_after: str = "10m", min_on: str = "60s") -> Path:
    heaters = "\n".join(
        f"  mini3-{i}: {{host: 127.0.0.1, port: {port}, model: mini3, min_on: {min_on}, min_off: 60s, "
        f"max_wakes_per_hour: 6}}"
        for i, port in enumerate(miner_ports)
    )
    names = ", ".join(f"mini3-{i}" for i in range(len(miner_ports)))
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: thermo, client_id: thermo-test}}
rooms:
  living:
    name: Living room
    sensor: {{topic: sensors/living, json_key: temperature, stale_after: {stale_after}}}
    target: 21
    limits: {{min_c: 7, max_c: {max_c}}}
    control: {{mode: pid}}
    heaters: [{names}]
heaters:
{heaters}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    return path


@dataclass
class House:
    tmp: Path
    broker: object
    clock: ScaledClock
    miners: list[SimMiner]
    servers: list[asyncio.base_events.Server]
    config_path: Path
    service: Service | None = None
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None

    async def start_service(self) -> Service:
        self.stop = asyncio.Event()
        self.service = Service(load_config(self.config_path), clock=self.clock)
        self.task = asyncio.create_task(self.service.run(self.stop))
        service = self.service
        await until(lambda: service.link.connected, 10, "service connected to the broker")
        await asyncio.sleep(0.2)  # subscriptions are sent right after the connection
        return service

    async def stop_service(self) -> None:
        assert self.stop is not None and self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 30)

    async def publish(self, topic: str, payload: str | bytes) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port) as client:  # type: ignore[attr-defined]
            await client.publish(topic, payload, qos=1)

    async def reading(self, celsius: float) -> None:
        await self.publish("sensors/living", json.dumps({"temperature": celsius}))


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def house(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[House]:
    clock = ScaledClock(SPEED)
    miners = [SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                       start_state="standby", seed=i) for i in range(1)]
    servers = [await serve_miner(m, "127.0.0.1", 0) for m in miners]
    path = write_config(tmp_path, mqtt_broker.port, [server_port(s) for s in servers])  # type: ignore[attr-defined]
    h = House(tmp_path, mqtt_broker, clock, miners, servers, path)
    yield h
    if h.task is not None and not h.task.done():
        await h.stop_service()
    for s in servers:
        await close_server(s)


async def test_cold_readings_wake_the_miner_and_set_a_level(house: House) -> None:
    service = await house.start_service()
    machine = lambda: service.heaters["mini3-0"].machine  # noqa: E731
    await until(lambda: machine() is not None and machine().state == HeaterState.STANDBY, 10, "standby found")
    await house.reading(17.0)
    await until(lambda: machine().state == HeaterState.RUNNING, 30, "heater running")
    miner = house.miners[0]
    assert miner.hashing and miner.wakes == 1
    assert machine().confirmed_level == miner.level_name
    assert miner.level_name in MODELS["mini3"].level_names
    # the service never sends a pool command
    assert not any("pool" in req for _, req in miner.commands_log)
    # SIGTERM/SIGINT path: stopping the service puts the heater in standby (safety.on_exit default), bounded
    started = time.monotonic()
    await house.stop_service()
    assert time.monotonic() - started < 25
    miner.update()
    assert not miner.hashing and miner.state == "In Idle"
    assert any("softoff" in req for _, req in miner.commands_log)


async def test_stale_sensor_leads_to_standby(tmp_path: Path, mqtt_broker: object, house: House) -> None:
    house.config_path = write_config(house.tmp, mqtt_broker.port, [server_port(s) for s in house.servers],  # type: ignore[attr-defined]
                                     stale_after="3m")
    service = await house.start_service()
    machine = lambda: service.heaters["mini3-0"].machine  # noqa: E731
    await until(lambda: machine() is not None and machine().state == HeaterState.STANDBY, 10, "standby found")
    await house.reading(17.0)
    await until(lambda: machine().state == HeaterState.RUNNING, 30, "heater running")
    # no more readings: after 3 simulated minutes the sensor is stale -> standby (safety beats min on time)
    await until(lambda: machine().state == HeaterState.STANDBY and not house.miners[0].hashing, 30,
                "standby after the sensor went stale")
    assert service.rooms["living"].decision is not None
    assert "sensor" in service.rooms["living"].decision.reason


async def test_reading_above_max_leads_to_standby_at_once(house: House) -> None:
    service = await house.start_service()
    machine = lambda: service.heaters["mini3-0"].machine  # noqa: E731
    await until(lambda: machine() is not None and machine().state == HeaterState.STANDBY, 10, "standby found")
    await house.reading(17.0)
    await until(lambda: machine().state == HeaterState.RUNNING, 30, "heater running")
    await house.reading(17.5)
    await asyncio.sleep(0.3)
    # 30 °C is above max_c 26 and also an impossible jump for the filter: feed a plausible climb instead
    for c in (19.0, 21.0, 23.0, 25.0, 26.5):
        await asyncio.sleep(3.5)  # 70 simulated seconds between readings
        await house.reading(c)
    await until(lambda: machine().state == HeaterState.STANDBY and not house.miners[0].hashing, 20,
                "standby above max_c")
    assert "maximum" in service.rooms["living"].decision.reason  # type: ignore[union-attr]


async def test_garbage_payloads_change_nothing(house: House) -> None:
    service = await house.start_service()
    await house.reading(20.5)
    await until(lambda: service.rooms["living"].filter.last_value == 20.5, 10, "first reading")
    rng = random.Random(7)
    junk: list[bytes] = [b"", b"nan", b"inf", b"-inf", b"NaN", b"1e400", b"true", b"null", b"[]", b"{}",
                         b'{"temperature": "warm"}', b'{"temperature": null}', b'{"temperature": 1e999}',
                         b"\xff\xfe", b"21,5", b"999", b"-500", b'{"temperature": 85}']
    while len(junk) < 1000:
        junk.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
    async with aiomqtt.Client("127.0.0.1", house.broker.port) as client:  # type: ignore[attr-defined]
        for payload in junk:
            await client.publish("sensors/living", payload, qos=0)
        # commands with garbage too
        for payload in junk[:200]:
            await client.publish("thermo/room/living/target/set", payload, qos=0)
            await client.publish("thermo/heater/mini3-0/level/set", payload, qos=0)
    await until(lambda: service.counters["readings_rejected"] >= 990, 20, "garbage counted")
    await asyncio.sleep(0.5)
    assert service.rooms["living"].filter.last_value == 20.5
    assert service.rooms["living"].state.override_temp is None
    assert service.heaters["mini3-0"].controlled
    assert house.task is not None and not house.task.done()
    # and it still works
    await house.reading(20.6)
    await until(lambda: service.rooms["living"].filter.last_value == 20.6, 10, "reading after garbage")


async def test_broker_restart_mid_run(tmp_path: Path, own_broker: object) -> None:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20)
    server = await serve_miner(miner, "127.0.0.1", 0)
    path = write_config(tmp_path, own_broker.port, [server_port(server)])  # type: ignore[attr-defined]
    house = House(tmp_path, own_broker, clock, [miner], [server], path)
    try:
        service = await house.start_service()
        await house.reading(20.0)
        await until(lambda: service.rooms["living"].filter.last_value == 20.0, 10, "reading")
        own_broker.stop()  # type: ignore[attr-defined]
        await asyncio.sleep(1.0)
        own_broker.start()  # type: ignore[attr-defined]
        await until(lambda: service.link.connected, 20, "reconnected")
        await house.reading(20.2)
        await until(lambda: service.rooms["living"].filter.last_value == 20.2, 10, "reading after restart")
        assert service.link.reconnects >= 1
        # the retained room state is back on the new broker
        async with aiomqtt.Client("127.0.0.1", own_broker.port) as client:  # type: ignore[attr-defined]
            await client.subscribe("thermo/status")
            msg = await asyncio.wait_for(anext(aiter(client.messages)), 5)
            assert msg.payload == b"online"
    finally:
        await house.stop_service()
        await close_server(server)


def test_kill_9_and_restart_resumes_without_extra_wake(tmp_path: Path, mqtt_broker: object) -> None:
    """A real `thermostat run` process, SIGKILLed while heating, restarted on the same state file."""

    async def scenario() -> None:
        miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2)
        server = await serve_miner(miner, "127.0.0.1", 0)
        path = write_config(tmp_path, mqtt_broker.port, [server_port(server)])  # type: ignore[attr-defined]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "thermostat", "run", "--config", str(path)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.5)
            for _ in range(40):  # keep the room cold until the miner runs
                async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:  # type: ignore[attr-defined]
                    await client.publish("sensors/living", json.dumps({"temperature": 17.0}), qos=1)
                if miner.hashing and miner.calibrated:
                    break
                await asyncio.sleep(1.0)
            assert miner.hashing, "the miner never started"
            await asyncio.sleep(4.0)  # let the service confirm and persist
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            commands_before = len(miner.commands_log)
            set_commands_before = sum(1 for _, r in miner.commands_log if "ascset" in r)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(10):
                async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:  # type: ignore[attr-defined]
                    await client.publish("sensors/living", json.dumps({"temperature": 17.0}), qos=1)
                await asyncio.sleep(1.0)
            assert len(miner.commands_log) > commands_before, "the restarted service never polled"
            assert miner.wakes == 1, "restart woke the miner again"
            assert miner.hashing and miner.level_name in MODELS["mini3"].level_names
            new_sets = [r for _, r in miner.commands_log[commands_before:] if "ascset" in r]
            assert sum(1 for _, r in miner.commands_log if "ascset" in r) == set_commands_before + len(new_sets)
            assert not any("softon" in r or "softoff" in r for r in new_sets), new_sets
            store = Store(tmp_path / "state.db")
            assert store.get_heater_state("mini3-0").wanted_level == miner.level_name
            assert store.get_learned("pid_integral:living") is not None
            store.close()
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            await close_server(server)

    asyncio.run(scenario())
