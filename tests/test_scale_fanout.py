"""Issue 16 (scale), the service's side: a heater task with nothing due sleeps until its machine is next due (it
does not look every second); the heaters' settled polls are spread over the poll period; and a burst of room
commands sends every heater's command before the burst's MQTT state and events. Real mosquitto, simulated miners
on real TCP sockets, the real service on a clock running 20 times faster."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from test_service import until

from thermostat.adapters.store import HeaterState as StoredHeater
from thermostat.adapters.store import Store
from thermostat.clock import ScaledClock
from thermostat.config import load_config
from thermostat.core.heater import HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.service.household import ServiceTimings
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

SPEED = 20.0
PERIOD = 15.0  # HeaterSettings.poll_interval_s
HEATING = (40, 20)  # heaters, rooms of the burst test


def _config(tmp: Path, broker_port: int, ports: list[int], rooms: int) -> Path:
    members: list[list[int]] = [[] for _ in range(rooms)]
    for i in range(len(ports)):
        members[i % rooms].append(i)
    text = [f"mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: fan, client_id: fan-test}}",
            "dashboard: {enabled: false}", "safety: {on_exit: leave}", f"state: {{path: {tmp / 'state.db'}}}",
            "rooms:"]
    for r in range(rooms):
        text += [f"  r{r}:", f"    sensor: {{topic: fan/sensor/r{r}, stale_after: 1h}}", "    target: 25",
                 "    limits: {min_c: 5, max_c: 30}", "    control: {mode: hysteresis}",
                 f"    heaters: [{', '.join(f'h{i}' for i in members[r])}]"]
    text.append("heaters:")
    text += [f"  h{i}: {{host: 127.0.0.1, port: {p}, model: mini3, min_on: 0s, min_off: 0s, max_wakes_per_hour: 60}}"
             for i, p in enumerate(ports)]
    path = tmp / "house.yaml"
    path.write_text("\n".join(text) + "\n")
    return path


@dataclass
class Fleet:
    service: Service
    clock: ScaledClock
    miners: list[SimMiner]
    broker_port: int
    polls: dict[int, list[float]] = field(default_factory=dict)  # heater index -> the service clock at each poll
    softoffs: dict[int, float] = field(default_factory=dict)  # heater index -> real monotonic time of its softoff

    async def publish(self, *messages: tuple[str, str], parts: int = 1, gap_s: float = 0.0) -> None:
        """The messages at once, or in `parts` groups `gap_s` apart (a burst the service reads in pieces)."""
        async with aiomqtt.Client("127.0.0.1", self.broker_port) as client:
            size = -(-len(messages) // parts)
            for k in range(0, len(messages), size):
                if k:
                    await asyncio.sleep(gap_s)
                await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in messages[k:k + size]))


async def _fleet(tmp: Path, broker: object, *, heaters: int, rooms: int, mining: bool) -> AsyncIterator[Fleet]:
    clock = ScaledClock(SPEED)
    miners = [SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                       start_state="mining" if mining else "standby", seed=i) for i in range(heaters)]
    polls: dict[int, list[float]] = {i: [] for i in range(heaters)}
    softoffs: dict[int, float] = {}

    def recorder(i: int):  # type: ignore[no-untyped-def]
        def on_request(_miner: SimMiner, text: str, _reply: bytes | None) -> None:
            if "litestats" in text or "estats" in text:
                polls[i].append(clock.monotonic())
            elif "softoff" in text and i not in softoffs:
                softoffs[i] = time.monotonic()
        return on_request

    servers = [await serve_miner(m, "127.0.0.1", 0, on_request=recorder(i)) for i, m in enumerate(miners)]
    port = broker.port  # type: ignore[attr-defined]
    config = load_config(_config(tmp, port, [server_port(s) for s in servers], rooms))
    if mining:  # a house that was heating when the service last stopped: it resumes every heater at its top level
        top = MODELS["mini3"].top_level.name
        with Store(config.state.path) as store:
            for i in range(heaters):
                store.put_heater_state(f"h{i}", StoredHeater(wanted_level=top, confirmed_level=top), time.time())
    service = Service(config, clock=clock, timings=ServiceTimings(control_interval_s=3600.0))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await until(lambda: service.link.connected, 10, "service connected")
        yield Fleet(service, clock, miners, port, polls, softoffs)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        for s in servers:
            await close_server(s)


@pytest.fixture
async def standby_fleet(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[Fleet]:
    async for f in _fleet(tmp_path, mqtt_broker, heaters=6, rooms=2, mining=False):
        yield f


@pytest.fixture
async def heating_fleet(tmp_path: Path, mqtt_broker: object) -> AsyncIterator[Fleet]:
    async for f in _fleet(tmp_path, mqtt_broker, heaters=HEATING[0], rooms=HEATING[1], mining=True):
        yield f


async def test_a_heater_with_nothing_due_sleeps_until_its_next_poll(standby_fleet: Fleet) -> None:
    service, clock = standby_fleet.service, standby_fleet.clock
    await until(lambda: all(h.machine is not None and h.machine.state == HeaterState.STANDBY
                            for h in service.heaters.values()), 10, "every heater found in standby")
    looks = {hid: h.looks for hid, h in service.heaters.items()}
    polls = {i: len(p) for i, p in standby_fleet.polls.items()}
    start = clock.monotonic()
    await asyncio.sleep(6 * PERIOD / SPEED)  # six poll periods of the service's clock; no reading, no tick
    span = clock.monotonic() - start
    for i, hid in enumerate(service.heaters):
        polled = len(standby_fleet.polls[i]) - polls[i]
        looked = service.heaters[hid].looks - looks[hid]
        assert span / PERIOD - 1 <= polled <= span / PERIOD + 1, (hid, polled, span)
        # one look per poll (and a spare): not one a second, which would be about 90 over this span
        assert looked <= polled + 2, (hid, looked, polled)


async def test_settled_polls_of_the_heaters_are_spread_over_the_period(standby_fleet: Fleet) -> None:
    service, clock = standby_fleet.service, standby_fleet.clock
    await until(lambda: all(h.machine is not None and h.machine.state == HeaterState.STANDBY
                            for h in service.heaters.values()), 10, "every heater found in standby")
    await asyncio.sleep(2.5 * PERIOD / SPEED)
    n = len(service.heaters)
    since = clock.monotonic() - PERIOD
    last = [max(t for t in standby_fleet.polls[i] if t >= since) for i in range(n)]  # each heater's latest poll
    offsets = sorted((t - since) % PERIOD for t in last)
    spacing = [b - a for a, b in itertools.pairwise([*offsets, offsets[0] + PERIOD])]
    # six heaters: a poll every 2.5 s of the period, not six at once (allow for the event loop and the clock)
    assert min(spacing) >= PERIOD / n - 1.0, offsets
    for i in range(n):
        gaps = [b - a for a, b in itertools.pairwise(standby_fleet.polls[i])]
        assert max(gaps) <= PERIOD + 1.0, (i, gaps)


@pytest.mark.parametrize("parts", [1, 2], ids=["together", "in two reads 20 ms apart"])
async def test_a_burst_sends_every_command_before_its_state_is_published(heating_fleet: Fleet, parts: int) -> None:
    """Every room's `mode off` published together: every heater's soft off reaches its miner before the service
    hands the first of the burst's heater events or `stopping` states to its MQTT link (before, each heater's
    event and state followed its own command, while the next rooms' commands were still to be read). Also when
    the burst reaches the service in two pieces: the state waits for a short quiet spell after the last command."""
    service = heating_fleet.service
    heaters, rooms = HEATING
    await heating_fleet.publish(*((f"fan/sensor/r{r}", "20.0") for r in range(rooms)))
    await until(lambda: all(h.machine is not None and h.machine.state == HeaterState.RUNNING
                            for h in service.heaters.values()), 20, "every heater running")
    await until(lambda: all(r.decision is not None and r.decision.heating for r in service.rooms.values()), 10,
                "every room heating")
    await asyncio.sleep(0.3)
    handed: list[float] = []  # when the service handed a heater event or a `stopping` state to the link
    publish = service.link.publish_nowait

    def recording(topic: str, payload: object, retain: bool = False, qos: int = 1) -> None:
        if "/heater/" in topic and (topic.endswith("/event") or (topic.endswith("/state") and payload in (
                "stopping", b"stopping"))):
            handed.append(time.monotonic())
        publish(topic, payload, retain=retain, qos=qos)  # type: ignore[arg-type]

    service.link.publish_nowait = recording  # type: ignore[method-assign]  # the real method, its calls noted
    await heating_fleet.publish(*((f"fan/room/r{r}/mode/set", "off") for r in range(rooms)), parts=parts,
                                gap_s=0.02)
    await until(lambda: len(heating_fleet.softoffs) == heaters, 10, "every heater sent its soft off")
    await until(lambda: len(handed) >= heaters, 10, "the burst's events and states handed to MQTT")
    last_command = max(heating_fleet.softoffs.values())
    assert last_command < min(handed), (
        f"a heater's event or state was published {1000 * (last_command - min(handed)):.1f} ms before the last "
        "soft off reached its miner")
