"""Home Assistant over MQTT, end to end: the real `Service`, simulated Mini 3 miners behind real TCP
sockets, a private mosquitto, and a test client standing in for Home Assistant.

What HA would see is collected from the broker (retained discovery configs and state), validated with
tests/ha_schema.py, and every command topic the discovery advertises is exercised through the broker.
The service runs on a ScaledClock (20× real time) so wakes, calibration and minimum on times take
seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import ha_schema
import pytest

from thermostat.adapters import ha
from thermostat.clock import ScaledClock
from thermostat.config import load_config
from thermostat.core.heater import HeaterMachine, HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import HeaterRuntime, Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

SPEED = 20.0
BASE = "thermo7"
PREFIX = "homeassistant"
ROOM = "living"
HEATER = "mini3-0"
START = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)  # a Wednesday morning; the schedule is `comfort` all day


def write_config(tmp: Path, broker_port: int, miner_port: int, *, metrics_port: int | None = None) -> Path:
    (tmp / "schedule.yaml").write_text(
        """timezone: Europe/Berlin
presets: {comfort: 21, eco: 18, away: 15}
week:
  daily:
    - {at: "00:00", preset: comfort}
"""
    )
    metrics = f"metrics: {{enabled: true, port: {metrics_port}}}\n" if metrics_port else ""
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: {BASE}, client_id: thermo-ha-test}}
rooms:
  {ROOM}:
    name: Living room
    sensor: {{topic: sensors/{ROOM}, json_key: temperature, stale_after: 10m}}
    schedule: schedule.yaml
    limits: {{min_c: 7, max_c: 26}}
    control: {{mode: pid}}
    heaters: [{HEATER}]
heaters:
  {HEATER}: {{host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 60s, min_off: 60s, max_wakes_per_hour: 6}}
state: {{path: {tmp / 'state.db'}}}
tariff: {{price_per_kwh: 0.30, currency: EUR}}
{metrics}"""
    )
    return path


def machine(h: HeaterRuntime) -> HeaterMachine:
    assert h.machine is not None
    return h.machine


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool
    at: float


@dataclass
class Watcher:
    """A subscriber that records every message (the stand-in for Home Assistant)."""

    port: int
    filters: tuple[str, ...]
    messages: list[Seen] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 5)

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            self.client = client
            for f in self.filters:
                await client.subscribe(f, qos=1)
            self.ready.set()
            async for msg in client.messages:
                self.messages.append(Seen(msg.topic.value, bytes(msg.payload), bool(msg.retain), time.monotonic()))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self.task

    async def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)

    def on(self, topic: str, since: int = 0) -> list[bytes]:
        return [m.payload for m in self.messages[since:] if m.topic == topic]

    def last(self, topic: str) -> bytes | None:
        values = self.on(topic)
        return values[-1] if values else None

    def text(self, topic: str) -> str:
        """The last payload on `topic` as text (fails when nothing was seen)."""
        value = self.last(topic)
        assert value is not None, f"nothing on {topic}"
        return value.decode()

    def mark(self) -> int:
        return len(self.messages)

    async def wait_for(self, topic: str, pred: Callable[[bytes], bool], timeout: float, what: str,
                       since: int = 0) -> bytes:
        found: list[bytes] = []

        def check() -> bool:
            found[:] = [p for p in self.on(topic, since) if pred(p)]
            return bool(found)

        await until(check, timeout, what)
        return found[-1]


@dataclass
class House:
    tmp: Path
    broker: Any
    clock: ScaledClock
    miner: SimMiner
    server: asyncio.base_events.Server
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
        await until(lambda: service.heaters[HEATER].machine is not None
                    and machine(service.heaters[HEATER]).state != HeaterState.UNKNOWN, 10, "heater found")
        return service

    async def stop_service(self) -> None:
        assert self.stop is not None and self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 30)

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def watch(self, *filters: str) -> Watcher:
        w = Watcher(self.broker.port, filters)
        await w.start()
        return w


@pytest.fixture
async def house(tmp_path: Path, own_broker: Any) -> AsyncIterator[House]:
    clock = ScaledClock(SPEED, start=START)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     offline_seconds=20, start_state="standby", seed=3)
    server = await serve_miner(miner, "127.0.0.1", 0)
    path = write_config(tmp_path, own_broker.port, server_port(server))
    h = House(tmp_path, own_broker, clock, miner, server, path)
    yield h
    if h.task is not None and not h.task.done():
        await h.stop_service()
    await close_server(server)


def t_room(leaf: str) -> str:
    return f"{BASE}/room/{ROOM}/{leaf}"


def t_heater(leaf: str) -> str:
    return f"{BASE}/heater/{HEATER}/{leaf}"


def configs(w: Watcher, since: int = 0, retained: bool | None = None) -> dict[str, dict[str, Any]]:
    """Discovery config topic → payload (non-empty ones; later messages win)."""
    out: dict[str, dict[str, Any]] = {}
    for m in w.messages[since:]:
        is_config = m.topic.startswith(PREFIX + "/") and m.topic.endswith("/config") and m.payload
        if is_config and (retained is None or m.retain == retained):
            out[m.topic] = json.loads(m.payload)
    return out


async def house_reading(house: House, celsius: float) -> None:
    async with aiomqtt.Client("127.0.0.1", house.broker.port) as client:
        await client.publish(f"sensors/{ROOM}", json.dumps({"temperature": celsius}), qos=1)


async def reading(w: Watcher, celsius: float) -> None:
    await w.publish(f"sensors/{ROOM}", json.dumps({"temperature": celsius}))


# ------------------------------------------------------------------------------------------ discovery


async def test_discovery_validates_and_every_topic_is_live(house: House) -> None:
    service = await house.start_service()
    # a reading, so that the current temperature has a value (an empty retained payload clears the topic)
    await house_reading(house, 20.5)
    await until(lambda: service.rooms[ROOM].filter.last_value == 20.5, 5, "reading")
    await asyncio.sleep(0.5)  # discovery and the first state go out right after the connection
    w = await house.watch(f"{PREFIX}/#", f"{BASE}/#")
    try:
        await until(lambda: len(configs(w)) >= 14, 5, "retained discovery configs")
        await asyncio.sleep(0.3)
        found = configs(w)
        assert all(m.retain for m in w.messages if m.topic.endswith("/config")), "discovery must be retained"

        # (a) every payload validates against the documented schemas
        for topic, payload in found.items():
            assert ha_schema.problems(topic, payload, PREFIX) == [], (topic, ha_schema.problems(topic, payload))
        by_component: dict[str, list[dict[str, Any]]] = {}
        for topic, payload in found.items():
            by_component.setdefault(topic.split("/")[1], []).append(payload)
        assert {c: len(v) for c, v in by_component.items()} == {
            "climate": 1, "sensor": 2 + 8, "select": 1, "switch": 1 + 1, "button": 1, "binary_sensor": 1, "text": 1,
        }, sorted(found)

        climate = by_component["climate"][0]
        assert climate["modes"] == ["off", "heat"]
        assert climate["preset_modes"] == ["comfort", "eco", "away", "boost"]
        assert (climate["min_temp"], climate["max_temp"], climate["temp_step"]) == (7.0, 26.0, 0.5)
        assert climate["availability"][0]["topic"] == f"{BASE}/status"
        uids = {p["unique_id"] for p in found.values()}
        assert {f"{BASE}_{ROOM}_climate", f"{BASE}_{ROOM}_energy", f"{BASE}_{ROOM}_cost",
                f"{BASE}_heater_mini3_0_level", f"{BASE}_heater_mini3_0_controlled",
                f"{BASE}_heater_mini3_0_reboot", f"{BASE}_heater_mini3_0_power"} <= uids
        energy = next(p for p in by_component["sensor"] if p["unique_id"].endswith("_energy"))
        assert (energy["device_class"], energy["unit_of_measurement"], energy["state_class"]) == \
            ("energy", "kWh", "total_increasing")
        devices = {json.dumps(p["device"]["identifiers"]) for p in found.values()}
        assert len(devices) == 3, "one device per room, one per miner and one for the service"
        select = by_component["select"][0]
        assert select["options"] == ["auto", "night", "eco", "super", "mining", "standby"]
        # the enum sensor's options are exactly the states the service can publish
        state_sensor = next(p for p in by_component["sensor"] if p["unique_id"].endswith("_state"))
        assert set(state_sensor["options"]) == {s.value for s in HeaterState}

        # every state and availability topic has been published by the service (and retained)
        await until(lambda: all(w.last(p["state_topic"]) is not None for p in by_component["sensor"]), 5,
                    "heater telemetry")
        published = {m.topic for m in w.messages if not m.topic.startswith(PREFIX + "/")}
        subscribed = list(service.link._subs)  # what the service subscribes to (re-sent on reconnect)
        assert ha_schema.topic_problems(found.items(), subscribed, published) == []

        # every state value published fits what HA was told to expect
        assert w.last(climate["mode_state_topic"]) in (b"off", b"heat")
        assert w.last(climate["action_topic"]) in (b"off", b"idle", b"heating")
        assert w.text(climate["preset_mode_state_topic"]) in [*climate["preset_modes"], "none"]
        assert float(w.text(climate["temperature_state_topic"])) == 21.0
        assert w.text(select["state_topic"]) in select["options"]
        assert w.text(state_sensor["state_topic"]) in state_sensor["options"]
        json.loads(w.text(climate["json_attributes_topic"]))

        # every command topic is really handled: a wrong payload on it is answered on the error topic
        commands = [(key, p[key]) for p in found.values() for key in p if key.endswith("command_topic")]
        # climate: mode, temperature, preset; select, switch, button; the house-wide away: switch, end
        assert len(commands) == 3 + 3 + 2
        for key, topic in commands:
            away = topic.startswith(f"{BASE}/away/")
            error_topic = f"{BASE}/away/error" if away else topic.rsplit("/", 2)[0] + "/error"
            mark = w.mark()
            await w.publish(topic, "definitely-not-valid")
            reply = await w.wait_for(error_topic, lambda p: True, 5, f"error reply for {key} {topic}", since=mark)
            assert reply, topic
        assert service.counters["commands_rejected"] == len(commands)
        assert all(not m.retain for m in w.messages if m.topic.endswith("/error"))

        # (b) Home Assistant comes (back) online → every config is published again
        mark = w.mark()
        await w.publish(f"{PREFIX}/status", "online")
        await until(lambda: len(configs(w, mark)) == len(found), 5, "discovery re-published")
        assert configs(w, mark) == found
        assert all(not m.retain for m in w.messages[mark:] if m.topic.endswith("/config")), \
            "live re-publication (the broker delivers them to subscribers without the retain flag)"
        # ... and other payloads on that topic change nothing
        mark = w.mark()
        await w.publish(f"{PREFIX}/status", "offline")
        await asyncio.sleep(0.5)
        assert configs(w, mark) == {}
    finally:
        await w.stop()

    # unique ids are stable across restarts: clear the retained configs, restart, compare
    await house.stop_service()
    cleaner = await house.watch(f"{BASE}/status")
    for topic in found:
        await cleaner.publish(topic, b"", retain=True)
    await cleaner.stop()
    await house.start_service()
    await asyncio.sleep(0.5)
    w2 = await house.watch(f"{PREFIX}/#")
    try:
        await until(lambda: len(configs(w2)) >= len(found), 5, "discovery after restart")
        await asyncio.sleep(0.2)
        assert configs(w2) == found
    finally:
        await w2.stop()


# ------------------------------------------------------------------------------------------ heater commands


async def test_level_select_and_controlled_switch(house: House) -> None:
    service = await house.start_service()
    h = service.heaters[HEATER]
    w = await house.watch(f"{BASE}/#")
    try:
        # warm room: the thermostat keeps the miner in standby
        await reading(w, 22.0)
        await until(lambda: service.rooms[ROOM].decision is not None, 10, "first decision")
        assert not house.miner.hashing

        # select `eco` by hand → the Mini 3 ends up in Heater Eco (workmode 0, worklevel -1)
        mark = w.mark()
        await w.publish(t_heater("level/set"), "eco")
        await w.wait_for(t_heater("level"), lambda p: p == b"eco", 5, "level state eco", since=mark)
        await w.wait_for(t_heater("controlled"), lambda p: p == b"OFF", 5, "controlled OFF", since=mark)
        await until(lambda: house.miner.hashing and house.miner.calibrated and h.machine is not None
                    and h.machine.state == HeaterState.RUNNING, 20, "miner running in eco")
        assert (house.miner.workmode, house.miner.worklevel) == (0, -1)
        assert house.miner.level_name == "eco"
        await w.wait_for(t_heater("current_level"), lambda p: p == b"eco", 5, "current level eco", since=mark)
        assert service.rooms[ROOM].state.mode == "heat"
        assert w.last(t_room("mode")) == b"heat"
        assert w.on(t_room("error"), mark) == [] and w.on(t_heater("error"), mark) == []

        # the switch hands it back to the thermostat: the room's controller decides its level again (the
        # allocator keeps a running heater at a low rung rather than stopping it at once: no short cycles)
        mark = w.mark()
        await w.publish(t_heater("controlled/set"), "ON")
        await w.wait_for(t_heater("controlled"), lambda p: p == b"ON", 5, "controlled ON", since=mark)
        await w.wait_for(t_heater("level"), lambda p: p == b"auto", 5, "level auto", since=mark)
        assert h.controlled and h.manual_level == "eco"  # remembered for the next hand-over
        decision = service.rooms[ROOM].decision
        await until(lambda: (d := service.rooms[ROOM].decision) is not None and d is not decision
                    and HEATER in d.levels and machine(h).wanted_level == d.levels[HEATER], 5,
                    "the controller's level is wanted")

        # OFF hands it over again: back to the last manual level
        mark = w.mark()
        await w.publish(t_heater("controlled/set"), "OFF")
        await w.wait_for(t_heater("controlled"), lambda p: p == b"OFF", 5, "controlled OFF", since=mark)
        await w.wait_for(t_heater("level"), lambda p: p == b"eco", 5, "manual level eco", since=mark)
        await until(lambda: machine(h).wanted_level == "eco", 5, "eco wanted again")

        # a manual standby from the select
        mark = w.mark()
        await w.publish(t_heater("level/set"), "standby")
        await w.wait_for(t_heater("level"), lambda p: p == b"standby", 5, "level standby", since=mark)
        await until(lambda: not house.miner.hashing and house.miner.soft_off
                    and machine(h).state == HeaterState.STANDBY, 20, "manual standby")
        # a cold room does not wake a heater the thermostat does not control
        await reading(w, 19.0)
        await until(lambda: service.rooms[ROOM].filter.last_value == 19.0, 5, "cold reading accepted")
        await asyncio.sleep(1.0)
        assert not house.miner.hashing
        # `auto` on the select gives it back
        await w.publish(t_heater("level/set"), "auto")
        await until(lambda: h.controlled and house.miner.hashing, 20, "cold room wakes the controlled heater")
        assert w.on(t_heater("error")) == []
        assert house.alive()
    finally:
        await w.stop()


async def test_reboot_button(house: House) -> None:
    service = await house.start_service()
    w = await house.watch(f"{BASE}/#")
    try:
        await reading(w, 20.5)
        await asyncio.sleep(0.3)
        before = house.miner.uptime_s
        assert before > 600 and house.miner.reboots == 0
        await w.publish(t_heater("reboot/set"), "PRESS")
        await until(lambda: house.miner.reboots == 1, 10, "miner rebooted")
        assert house.miner.uptime_s < before
        assert service.heaters[HEATER].commands_sent >= 1
        # the service survives the controller restart and sees the miner again
        await until(lambda: house.miner.reachable and service.heaters[HEATER].machine is not None
                    and machine(service.heaters[HEATER]).state in (HeaterState.STANDBY, HeaterState.RUNNING),
                    20, "miner back after reboot")
        assert house.alive()
    finally:
        await w.stop()


# ------------------------------------------------------------------------------------------ room commands


async def test_room_commands_and_energy(house: House) -> None:
    service = await house.start_service()
    room = service.rooms[ROOM]
    w = await house.watch(f"{BASE}/#")
    try:
        # target → held as an override, published on the target state topic
        mark = w.mark()
        await w.publish(t_room("target/set"), "22.5")
        await w.wait_for(t_room("target"), lambda p: p == b"22.5", 5, "target 22.5", since=mark)
        assert room.state.override_temp == 22.5

        # a preset replaces it
        mark = w.mark()
        await w.publish(t_room("preset/set"), "eco")
        await w.wait_for(t_room("preset"), lambda p: p == b"eco", 5, "preset eco", since=mark)
        await w.wait_for(t_room("target"), lambda p: p == b"18.0", 5, "target 18 from the preset", since=mark)
        assert room.state.override_temp is None
        mark = w.mark()
        await w.publish(t_room("preset/set"), "none")
        await w.wait_for(t_room("preset"), lambda p: p == b"none", 5, "back to the schedule", since=mark)
        await w.wait_for(t_room("target"), lambda p: p == b"21.0", 5, "schedule target", since=mark)

        # a timed override (JSON), then cancelled
        mark = w.mark()
        until_iso = datetime(2026, 1, 14, 22, 0, tzinfo=UTC).isoformat()
        await w.publish(t_room("override/set"), json.dumps({"temp": 23, "until": until_iso}))
        await w.wait_for(t_room("target"), lambda p: p == b"23.0", 5, "override target", since=mark)
        assert room.state.override_until == datetime.fromisoformat(until_iso)
        attrs = json.loads(await w.wait_for(t_room("state"), lambda p: b'"target": 23.0' in p, 5, "attributes",
                                            since=mark))
        assert attrs["target"] == 23.0

        # cold room → the miner heats; energy grows and never decreases
        mark = w.mark()
        await reading(w, 17.0)
        await until(lambda: house.miner.hashing and house.miner.calibrated, 20, "miner heating")
        await w.wait_for(t_room("action"), lambda p: p == b"heating", 5, "action heating", since=mark)
        e0 = room.energy_kwh
        for c in (17.1, 17.2, 17.3, 17.4):  # readings keep the control loop (and the accounting) ticking
            await asyncio.sleep(0.6)
            await reading(w, c)
        await asyncio.sleep(0.3)
        values = [float(p) for p in w.on(t_room("energy"), mark)]
        assert len(values) >= 4
        assert all(b >= a for a, b in itertools.pairwise(values)), values
        assert values[-1] > values[0] and room.energy_kwh > e0
        cost = float(w.last(t_room("cost")) or b"nan")
        assert cost == pytest.approx(round(room.energy_kwh * 0.30, 2), abs=0.011)

        # mode off → the miner goes to standby; the climate shows off
        mark = w.mark()
        await w.publish(t_room("mode/set"), "off")
        await w.wait_for(t_room("mode"), lambda p: p == b"off", 5, "mode off", since=mark)
        await w.wait_for(t_room("action"), lambda p: p == b"off", 5, "action off", since=mark)
        await until(lambda: not house.miner.hashing and house.miner.soft_off, 20, "miner in standby")
        mark = w.mark()
        await w.publish(t_room("override/set"), "cancel")
        await w.publish(t_room("mode/set"), "heat")
        await w.wait_for(t_room("mode"), lambda p: p == b"heat", 5, "mode heat", since=mark)
        await w.wait_for(t_room("target"), lambda p: p == b"21.0", 5, "override cancelled", since=mark)
        assert room.state.override_temp is None
        assert w.on(t_room("error")) == []
        assert house.alive()
    finally:
        await w.stop()


BAD_ROOM = [
    ("target", b"99"),
    ("target", b"3"),
    ("target", b"21.3"),
    ("target", b"nan"),
    ("target", b"warm"),
    ("mode", b"cool"),
    ("mode", b"auto"),
    ("preset", b"party"),
    ("override", b'{"temp": 40}'),
    ("override", b'{"temp": 21, "until": "tomorrow"}'),
    ("override", b'{"temp": 21, "until": "2020-01-01T00:00:00+00:00"}'),  # the past
    ("override", b"{not json"),
    ("target", b"\xff\xfe\x00garbage"),
    ("mode", b"\x80\x81"),
    ("bogus", b"1"),
]
BAD_HEATER = [
    ("level", b"turbo"),
    ("level", b"\xff"),
    ("level", b""),
    ("controlled", b"maybe"),
    ("reboot", b"now"),
    ("bogus", b"1"),
]


async def test_malformed_and_out_of_range_commands_are_rejected(house: House) -> None:
    service = await house.start_service()
    room = service.rooms[ROOM]
    h = service.heaters[HEATER]
    w = await house.watch(f"{BASE}/#")
    try:
        await reading(w, 20.5)
        await until(lambda: room.filter.last_value == 20.5, 5, "reading")
        state_before = room.state
        commands_before = h.commands_sent
        level_before = house.miner.level_name
        for what, payload in BAD_ROOM:
            mark = w.mark()
            await w.publish(t_room(f"{what}/set"), payload)
            reply = await w.wait_for(t_room("error"), lambda p: True, 5, f"error for room {what} {payload!r}",
                                     since=mark)
            assert reply.decode().startswith(f"{what}:"), reply
        for what, payload in BAD_HEATER:
            mark = w.mark()
            await w.publish(t_heater(f"{what}/set"), payload)
            reply = await w.wait_for(t_heater("error"), lambda p: True, 5, f"error for heater {what} {payload!r}",
                                     since=mark)
            assert reply.decode().startswith(f"{what}:"), reply
        assert service.counters["commands_rejected"] == len(BAD_ROOM) + len(BAD_HEATER)
        # nothing applied
        await asyncio.sleep(0.3)
        assert room.state == state_before
        assert h.controlled and h.manual_level is None
        assert h.commands_sent == commands_before and house.miner.reboots == 0
        assert house.miner.level_name == level_before
        assert w.last(t_room("mode")) == b"heat" and w.last(t_room("target")) == b"21.0"
        assert w.last(t_heater("level")) == b"auto"
        # nothing crashed, and good commands still work
        assert house.alive()
        mark = w.mark()
        await w.publish(t_room("target/set"), "21.5")
        await w.wait_for(t_room("target"), lambda p: p == b"21.5", 5, "a good command after the bad ones",
                         since=mark)
        assert w.on(t_room("error"), mark) == []
    finally:
        await w.stop()


def test_ha_vocabulary_matches_the_service() -> None:
    """The enum sensors' options and the command topics agree with the service's own vocabulary."""
    assert set(ha.HEATER_STATES) == {s.value for s in HeaterState}
    t = ha.Topics(BASE, PREFIX)
    assert ha_schema.topic_matches(t.command_filters()[0], t.room_set(ROOM, "target"))
    assert ha_schema.topic_matches(t.command_filters()[1], t.heater_set(HEATER, "reboot"))


def test_current_level_options_cover_the_whole_ladder() -> None:
    """A usable subset in the config (`levels: [eco, super]`) must not hide a level the miner may be found in."""
    heater = ha.HeaterInfo(HEATER, "Mini", ROOM, "mini3", ("eco", "super"))
    sensors = {p["unique_id"]: p for _, p in ha.heater_sensor_configs(ha.Topics(BASE, PREFIX), heater)}
    options = sensors[f"{BASE}_heater_mini3_0_current_level"]["options"]
    assert set(options) == {*MODELS["mini3"].level_names, "standby", "unknown"}
    assert options[:2] == ["eco", "super"]
    select = ha.heater_level_select_config(ha.Topics(BASE, PREFIX), heater)[1]
    assert select["options"] == ["auto", "eco", "super", "standby"]  # only usable levels can be chosen


async def test_room_state_says_what_sets_the_target_and_counts_bad_payloads(house: House) -> None:
    """The room's JSON attributes: `target_reason` names the source (a chosen preset is not "away"),
    `next_change` is local time with its offset for the schedule and an override alike, and a payload that
    is not a reading is counted under rejected_readings.bad_payload."""
    (house.tmp / "schedule.yaml").write_text(
        """timezone: Europe/Berlin
presets: {comfort: 21, eco: 18, away: 15}
week:
  daily:
    - {at: "00:00", preset: eco}
    - {at: "17:00", preset: comfort}
"""
    )
    await house.start_service()  # 11:00 in Berlin: eco until 17:00 CET
    w = await house.watch(f"{BASE}/#")

    async def state(pred: Callable[[dict[str, Any]], bool], what: str, since: int) -> dict[str, Any]:
        raw = await w.wait_for(t_room("state"), lambda p: pred(json.loads(p)), 10, what, since=since)
        result: dict[str, Any] = json.loads(raw)
        return result

    try:
        mark = w.mark()
        await reading(w, 20.0)
        attrs = await state(lambda a: a["current_temp"] == 20.0, "state after a reading", mark)
        assert (attrs["target_reason"], attrs["next_change"]) == ("schedule", "2026-01-14T17:00:00+01:00")

        mark = w.mark()
        until_utc = datetime(2026, 1, 14, 22, 0, tzinfo=UTC).isoformat()
        await w.publish(t_room("override/set"), json.dumps({"temp": 23, "until": until_utc}))
        attrs = await state(lambda a: a["target_reason"] == "override", "override state", mark)
        assert attrs["next_change"] == "2026-01-14T23:00:00+01:00"

        for preset, reason in (("comfort", "preset"), ("away", "away")):
            mark = w.mark()
            await w.publish(t_room("preset/set"), preset)
            attrs = await state(lambda a, p=preset: a["preset"] == p, f"preset {preset}", mark)  # type: ignore[misc]
            assert attrs["target_reason"] == reason, preset

        mark = w.mark()
        await w.publish(f"sensors/{ROOM}", b"not a reading")
        await w.publish(f"sensors/{ROOM}", json.dumps({"humidity": 40}))
        await reading(w, 20.2)  # a good one after them, so that the state is published again
        attrs = await state(lambda a: a["current_temp"] == 20.2, "state after the bad payloads", mark)
        assert attrs["rejected_readings"]["bad_payload"] == 2
        assert set(attrs["rejected_readings"]) >= {"bad_payload", "out_of_range", "jump"}
        assert "accepted" not in attrs["rejected_readings"]
    finally:
        await w.stop()
