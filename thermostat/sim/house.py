"""A simulated house for the demo and the integration tests: one room, its sensor on MQTT, miners on TCP.

Everything runs on one clock (normally a `ScaledClock`): the miners' `time_fn`, the room's step loop and
(in the caller) the service, so the whole house runs X times faster than real time.

* every `step_s` simulated seconds the room is advanced with the sum of the miners' wall watts as heat
  (zero-order hold: the watts at the start of a step heat the room for the whole step), each miner's inlet
  temperature is set to the new air temperature, and the sensor is sampled;
* every report of the sensor is published (retained, like zigbee2mqtt) to `sensor_topic` as JSON
  ``{"temperature": x}`` (or a plain number with ``payload="number"``) by the house's own MQTT client;
* `history` keeps one `HouseSample` per step for summaries and plots.

Usage::

    house = SimHouse(clock, miners={"mini3-a": "mini3"}, mqtt_host=..., mqtt_port=..., sensor_topic=...)
    ports = await house.start()          # miners listening on 127.0.0.1
    task = asyncio.create_task(house.run(stop))
    ...
    stop.set(); await task; await house.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import aiomqtt

from thermostat.miners.models import MODELS
from thermostat.sim.factory import make_sim_miner
from thermostat.sim.miner import SimMiner
from thermostat.sim.room import GainsProfile, OutdoorProfile, Room, RoomParams, Sensor, SensorParams
from thermostat.sim.server import close_server, serve_miner, server_port

log = logging.getLogger(__name__)


class HouseClock(Protocol):
    """What the house needs from a clock (`ScaledClock` has all of it)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def epoch(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class HouseSample:
    t: float  # simulated seconds since the house started (clock.monotonic() − start)
    when: datetime  # simulated wall time (UTC)
    air_c: float  # true air temperature
    mass_c: float
    outdoor_c: float
    reported_c: float | None  # the sensor's latest published value
    watts: dict[str, float]  # heater id -> wall watts during the next step
    levels: dict[str, str | None]  # heater id -> level name while hashing, None otherwise

    @property
    def total_w(self) -> float:
        return sum(self.watts.values())


@dataclass
class SimHouse:
    clock: HouseClock
    miners: Mapping[str, str]  # heater id -> model key ("mini3", "q", "nano3s")
    mqtt_host: str
    mqtt_port: int
    sensor_topic: str
    room_params: RoomParams = field(default_factory=RoomParams)
    initial_air_c: float = 17.0
    initial_mass_c: float | None = None  # default: a little above the air (the house cooled overnight)
    outdoor: OutdoorProfile = field(default_factory=OutdoorProfile)
    gains: GainsProfile = field(default_factory=GainsProfile)
    sensor_params: SensorParams = field(default_factory=lambda: SensorParams(max_silence_s=600.0))
    payload: Literal["json", "number"] = "json"
    step_s: float = 15.0
    seed: int = 1
    boot_seconds: float = 90.0
    calibration_seconds: float = 60.0
    on_sample: Callable[[HouseSample], None] | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.miners.values() if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
        mass = self.initial_mass_c if self.initial_mass_c is not None else self.initial_air_c + 0.5
        self.room = Room(params=self.room_params, air_c=self.initial_air_c, mass_c=mass)
        self.sensor = Sensor(self.sensor_params, seed=self.seed, initial_c=self.initial_air_c)
        self.sim_miners: dict[str, SimMiner] = {
            hid: make_sim_miner(
                MODELS[model],
                time_fn=self.clock.epoch,
                boot_seconds=self.boot_seconds,
                calibration_seconds=self.calibration_seconds,
                start_state="standby",
                seed=self.seed + i,
                inlet_temp_c=self.initial_air_c,
            )
            for i, (hid, model) in enumerate(self.miners.items())
        }
        self.servers: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        self.history: list[HouseSample] = []
        self.published = 0
        self.publish_errors = 0
        self._t0: float | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> dict[str, int]:
        """Serve every miner on a free 127.0.0.1 port; returns heater id -> port."""
        try:
            for hid, miner in self.sim_miners.items():
                server = await serve_miner(miner, "127.0.0.1", 0)
                self.servers[hid] = server
                self.ports[hid] = server_port(server)
        except BaseException:
            await self.close()
            raise
        return dict(self.ports)

    async def close(self) -> None:
        servers, self.servers = self.servers, {}
        for server in servers.values():
            await close_server(server)

    # ------------------------------------------------------------------ stepping

    def elapsed(self) -> float:
        if self._t0 is None:
            self._t0 = self.clock.monotonic()
        return float(self.clock.monotonic() - self._t0)

    def heater_watts(self) -> dict[str, float]:
        return {hid: m.wall_w for hid, m in self.sim_miners.items()}

    def heater_levels(self) -> dict[str, str | None]:
        return {hid: (m.level_name if m.hashing else None) for hid, m in self.sim_miners.items()}

    def step(self, t: float, dt: float, heat_w: float) -> float | None:
        """Advance the room to `t` (dt seconds with `heat_w`), feed the miners, sample the sensor.
        Returns the sensor report to publish, if any."""
        if dt > 0:
            self.room.step(dt, heat_w, self.outdoor.at(t - dt), self.gains.at(t - dt))
        for miner in self.sim_miners.values():
            miner.set_inlet_temp(self.room.air_c)
        return self.sensor.sample(t, self.room.air_c)

    def _record(self, t: float) -> HouseSample:
        sample = HouseSample(
            t=t,
            when=self.clock.now(),
            air_c=self.room.air_c,
            mass_c=self.room.mass_c,
            outdoor_c=self.outdoor.at(t),
            reported_c=self.sensor.last_report,
            watts=self.heater_watts(),
            levels=self.heater_levels(),
        )
        self.history.append(sample)
        if self.on_sample is not None:
            try:
                self.on_sample(sample)
            except Exception:  # a display callback must not stop the physics
                log.exception("on_sample callback failed")
        return sample

    def _payload(self, value: float) -> str:
        if self.payload == "number":
            return f"{value:.1f}"
        return json.dumps({"temperature": round(value, 2)})

    async def run(self, stop: asyncio.Event) -> None:
        """Step the room every `step_s` simulated seconds until `stop` is set; publish sensor reports."""
        queue: asyncio.Queue[float] = asyncio.Queue(maxsize=100)
        publisher = asyncio.create_task(self._publisher(queue, stop), name="house-sensor")
        try:
            t_prev = self.elapsed()
            report = self.step(t_prev, 0.0, 0.0)
            if report is not None:
                queue.put_nowait(report)
            sample = self._record(t_prev)
            while not stop.is_set():
                await _wait(stop, self.clock.sleep(self.step_s))
                t = self.elapsed()
                report = self.step(t, t - t_prev, sample.total_w)
                t_prev = t
                if report is not None:
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(report)
                sample = self._record(t)
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher

    async def _publisher(self, queue: asyncio.Queue[float], stop: asyncio.Event) -> None:
        """Own MQTT client with a simple reconnect loop; the latest reading is published retained."""
        pending: float | None = None
        while not stop.is_set():
            try:
                async with aiomqtt.Client(self.mqtt_host, self.mqtt_port, identifier="thermostat-demo-sensor",
                                          keepalive=10, timeout=5) as client:
                    while True:
                        if pending is None:
                            pending = await queue.get()
                        await client.publish(self.sensor_topic, self._payload(pending), qos=1, retain=True)
                        self.published += 1
                        pending = None
            except aiomqtt.MqttError as exc:
                self.publish_errors += 1
                log.warning("house sensor: MQTT error (%s); retrying", exc)
                await asyncio.sleep(0.5)


async def _wait(stop: asyncio.Event, sleeper: Any) -> None:
    """Await `sleeper` (a coroutine) unless `stop` is set first."""
    waiter = asyncio.ensure_future(stop.wait())
    sleep = asyncio.ensure_future(sleeper)
    try:
        await asyncio.wait({waiter, sleep}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleep):
            task.cancel()
