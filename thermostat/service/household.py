"""The household service: configuration → MQTT, miners and SQLite around the pure core.

Tasks (asyncio):
- the MQTT link (reconnects by itself; sensor readings and commands come in through `_on_message`);
- one task per heater: step its `HeaterMachine`, carry out the commands over TCP, feed back outcomes; it sleeps
  until the machine is next due (`next_due`) or it is woken (its room's tick, a command, the exit), and its
  settled polls fall on its own slot of the poll period (the heaters in configuration order, evenly apart);
- the control loop: `RoomControl.tick` for every room every `control_interval_s` and at schedule boundaries;
  for one room alone on its own accepted reading, its own commands and the moment its sensor goes stale
  (so the cost of readings grows with readings, not with rooms × readings);
- a wall-clock scheduler (APScheduler) that wakes the control loop at schedule boundaries and prunes history.

Per tick, the SQLite writes of every room ticked go in one transaction (`SafeStore.batch`), and the retained
MQTT state is published only where a value changed (`MqttLink.publish_state`).

A burst (a house-wide change, several rooms' commands arriving together) sends its heater commands first: the
writes a soft on/off needs before it is sent go in one transaction per pass of the event loop
(`_hold_writes`), the heaters' MQTT state and events wait until no heater command has been under way for 0.1 s
(at most 1 s), and a tick's bookkeeping (SQLite, MQTT, energy, problems) runs after the commands it caused, in a
task of its own, while the control loop goes on deciding.

Shutdown (SIGTERM/SIGINT): the configured exit action (default: every heater to standby, as a safety
action) within `exit_timeout_s`, then `offline` is published and the broker connection closed.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from thermostat.adapters import ha
from thermostat.adapters.mqtt import Message, MqttLink
from thermostat.adapters.ratelimit import LimitedLog, RateLimiter
from thermostat.adapters.store import HeaterState as StoredHeater
from thermostat.adapters.store import RoomState, SafeStore
from thermostat.adapters.wallclock import BlockScheduler
from thermostat.clock import Clock, RealClock
from thermostat.config import Config, ConfigError, HeaterConfig, RoomConfig
from thermostat.core.allocate import Allocator
from thermostat.core.control import Controller, Forecast
from thermostat.core.controllers import make_controller
from thermostat.core.engine import RoomControl, RoomDecision, StuckSensor
from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState, HeaterWear, PendingSoft, TransitionEvent
from thermostat.core.mpc import MpcController
from thermostat.core.schedule import Away, Override, Schedule, Target, effective_target, target_at
from thermostat.core.sensor import (
    Accepted,
    BadReading,
    Combine,
    RoomSensors,
    SensorFilter,
    parse_optional,
    parse_payload,
)
from thermostat.core.tariff import DynamicPrice
from thermostat.core.thermal_model import Sample, ThermalModel, fit
from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.spec import ModelSpec
from thermostat.domain.words import counted
from thermostat.miners.avalon import Request, parse_version
from thermostat.miners.client import MinerClient
from thermostat.miners.errors import MinerError
from thermostat.miners.models import MODELS
from thermostat.service import ha_bridge
from thermostat.service.away import HouseAwayState
from thermostat.service.problems import Problems

if TYPE_CHECKING:
    from thermostat.adapters.metrics import MetricsServer

log = logging.getLogger("thermostat.service")


@dataclass
class ServiceTimings:
    control_interval_s: float = 30.0  # control tick when no reading arrives
    heater_idle_s: float = 300.0  # longest a heater task sleeps between looks at its machine (it wakes when its
    #   machine is next due or something asks: its room's tick, a command, the exit)
    spread_polls: bool = True  # settled polls of the heaters spread evenly over the poll period
    exit_timeout_s: float = 20.0  # real seconds allowed for the exit action at shutdown
    probe_backoff_max_s: float = 300.0  # model: auto — retry `version` up to this interval
    history_every_s: float = 60.0  # history row per room/heater at most this often
    publish_every_s: float = 10.0  # heater telemetry: published on a look this long after the last (or on a change)


BURST_QUIET_S = 0.1  # a burst is over when no heater command has been under way for this long (real time)
BOOKKEEPING_WAIT_S = 1.0  # a tick's bookkeeping waits at most this long for the heater commands it caused
DISCOVERY_RECORD = "ha_published"  # the store's record of what was announced to Home Assistant (ha.published_record)


@dataclass
class HeaterRuntime:
    id: str
    cfg: HeaterConfig
    room_id: str
    client: MinerClient
    spec: ModelSpec | None = None
    machine: HeaterMachine | None = None
    controlled: bool = True
    manual_level: str | None = None  # used when not controlled: None = standby
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    commands_sent: int = 0
    command_errors: int = 0
    wakes: int = 0  # wakes started by this process (for metrics)
    looks: int = 0  # times its task went to sleep after finding nothing to send (for the scale tests)
    last_publish: float = -1e9
    last_history: float = -1e9
    persisted_wanted: str | None = None  # the wanted level last handed to the store ("standby" or a level)
    failing: bool = False  # the miner stopped answering (logged once, until it answers again)
    failures_seen: int = 0  # the machine's failure count at the last look
    snapshot_when_failing: object = None  # the last answer before it stopped answering
    remote_off: bool = False  # Mining Rig Monitor (issue 9): asic_expected_status "off" holds it in standby
    remote_light: bool | None = None  # Mining Rig Monitor (issue 9): last locate LED state sent

    def usable_levels_w(self) -> dict[str, float]:
        assert self.spec is not None
        names = list(self.cfg.levels) if self.cfg.levels else list(self.spec.level_names)
        return {n: float(self.cfg.levels_w.get(n, self.spec.level(n).wall_w)) for n in names}


@dataclass
class RoomRuntime:
    id: str
    cfg: RoomConfig
    schedule: Schedule
    filter: RoomSensors  # one filter per configured sensor, read as their combination
    control: RoomControl
    heaters: list[HeaterRuntime]
    state: RoomState
    target: Target | None = None
    decision: RoomDecision | None = None
    energy_kwh: float = 0.0
    last_energy_t: float | None = None
    last_history: float = -1e9
    readings: int = 0
    sensor_lost: bool = False  # logged once when the reading goes missing, once when it is back
    started_at: float = 0.0  # monotonic time this room's sensor filter was made (start, or a reload changing it)
    safety_reason: str | None = None  # the safety standby last logged
    humidity: float | None = None  # % from the newest sensor message that carried one
    humidity_at: float | None = None  # monotonic time of that message
    control_failed: bool = False  # the last control step of this room raised (its heaters were sent to standby)
    cost: float = 0.0  # since start, at the price in force (tariff or price topic)
    forecast: Forecast | None = None  # what mpc was last given (coming targets, outdoor, prices)
    forecast_at: float = -1e18
    stale_ticked: float | None = None  # the sensor-stale deadline this room was last ticked for
    ticks: int = 0  # control steps of this room (for the scale benchmark and its tests)

    def stale_deadline(self) -> float:
        """When this room's reading goes missing: `stale_after` after its last reading (or after the start)."""
        # The room is stale once every sensor is: the latest of the sensors' own deadlines.
        return max((self.started_at if f.last_time is None else f.last_time) + f.stale_after_s
                   for f in self.filter.filters)


class Service:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        timings: ServiceTimings | None = None,
        heater_settings: Callable[[HeaterConfig], HeaterSettings] | None = None,
        previous: Service | None = None,
    ) -> None:
        """`previous`: the service this one replaces on a reload (already stopped with `handover()`): its
        unchanged rooms and heaters, its store and its problems carry over."""
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.timings = timings or ServiceTimings()
        self._heater_settings = heater_settings or default_heater_settings
        # Log lines and error-topic messages that outside input can trigger are rate-limited per key.
        self.limiter = RateLimiter(window_s=60.0, burst=3, clock=self.clock.monotonic)
        self.limited = LimitedLog(log, self.limiter)
        self.error_topic_limiter = RateLimiter(window_s=60.0, burst=3, clock=self.clock.monotonic)
        self.store: SafeStore
        if previous is not None and previous.config.state == config.state:
            self.store = previous.store
        else:
            if previous is not None:
                previous.store.close()
            self.store = SafeStore(config.state.path, clock=self.clock.monotonic,
                                   wall=lambda: self.clock.now().timestamp())
        self.problems: Problems = previous.problems if previous is not None else Problems(
            RateLimiter(window_s=600.0, burst=2, clock=self.clock.monotonic))
        self.problems.changed = True
        self.away = HouseAwayState(config.away, self.store, config.schedule_for(next(iter(config.rooms))).tz)
        base = config.mqtt.base_topic
        self.base = base
        self.topics = ha.Topics(base, config.mqtt.discovery_prefix)
        password = config.mqtt.read_password()
        self.link = MqttLink(
            config.mqtt.host,
            config.mqtt.port,
            username=config.mqtt.username,
            password=password.get_secret_value() if password is not None else None,
            tls=config.mqtt.tls,
            client_id=config.mqtt.client_id,
            keepalive=config.mqtt.keepalive,
            availability_topic=f"{base}/status",
        )
        self.heaters: dict[str, HeaterRuntime] = {}
        self.rooms: dict[str, RoomRuntime] = {}
        self._tick = asyncio.Event()
        self._due_rooms: set[str] = set()  # rooms to tick at once (their reading, their command)
        self._due_all = False  # every room at once (a schedule boundary, a house-wide change)
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._heater_tasks: dict[str, asyncio.Task[Any]] = {}
        self._phases: dict[str, float] = {}  # each heater's slot of the poll period (`_poll_phase`)
        # A burst (a room command, a house-wide change): the heaters' commands go out first, in one SQLite
        # transaction per pass of the event loop (`_hold_writes`); their MQTT state after the burst.
        self._writes_held: asyncio.Future[None] | None = None
        self._changes_in_flight = 0  # heater commands other than polls being carried out now
        self._burst_over = asyncio.Event()  # set when the last of them is done
        self._bookkeeping: asyncio.Task[None] | None = None  # the latest tick's bookkeeping (`_bookkeep_after_burst`)
        self._unpublished: dict[str, list[str]] = {}  # heater id -> its event payloads, until the burst is over
        self._publish_timer: asyncio.TimerHandle | None = None  # the latest the held state may wait (1 s)
        self._quiet_timer: asyncio.TimerHandle | None = None  # a short quiet spell after the last command
        self.events: list[TransitionEvent] = []  # recent transitions (bounded), for tests and status
        self.counters: dict[str, int] = {"readings": 0, "readings_rejected": 0, "commands_rejected": 0,
                                         "bookkeeping_errors": 0}
        if previous is not None:
            self.counters.update(previous.counters)
            self.events = previous.events
        self._scheduler: BlockScheduler | None = None
        self._started_at = self.clock.monotonic()
        self.exit_action = config.safety.on_exit  # "standby" | "leave"; a reload sets "leave"
        self.metrics: MetricsServer | None = None  # the /metrics endpoint (issue 7), started by `run`
        # outdoor temperature, forecast and price (mpc; docs/control.md)
        self.tariff = config.tariff.build() if config.tariff is not None and config.tariff.week is not None else None
        self.dynamic_price = DynamicPrice(config.tariff.price_max_age if config.tariff is not None else 7200.0)
        self.outdoor_c: float | None = None
        self.outdoor_at: float | None = None  # monotonic
        self.outdoor_forecast: tuple[tuple[float, float], ...] = ()  # (epoch, °C)
        self._handing_over = False  # stopping for a reload: heater loops finish their command and return
        self._build(previous)
        self.away.schedules = {room.id: room.schedule for room in self.rooms.values()}
        for problem in self.problems.active():  # a room removed by a reload takes its problems with it
            if problem.room is not None and problem.room not in self.rooms:
                self.problems.clear(problem.key, now=self.clock.now().timestamp(), mono=self.clock.monotonic())
        # --- Mining Rig Monitor (issue 9): optional reporter + remote switch
        from thermostat.adapters.mrm import reporter_for_service

        self.mrm = reporter_for_service(self, self._on_mrm_expected)
        self._mrm_stop = asyncio.Event()
        self._mrm_task: asyncio.Task[None] | None = None
        # --- end Mining Rig Monitor
        self.dashboard: Any = None  # service/dashboard.py, started by run()

    # ------------------------------------------------------------------ construction

    def _build(self, previous: Service | None = None) -> None:
        """Rooms and heaters from the configuration. On a reload (`previous`), a heater whose configuration is
        unchanged keeps its runtime (its machine, so its state, wear and in-progress wake); a room keeps its
        sensor filter (last reading) while its sensor settings are unchanged, and its controller, allocator and
        last decision while its control, limits and heaters are unchanged. Anything changed is built anew and
        reconciled by polling first, as after a restart."""
        cfg = self.config
        now = self.clock.monotonic()
        kept: set[str] = set()
        for room_id, rcfg in cfg.rooms.items():
            for hid in rcfg.heaters:
                hcfg = cfg.heaters[hid]
                old_h = previous.heaters.get(hid) if previous is not None else None
                if (old_h is not None and old_h.cfg == hcfg and old_h.room_id == room_id
                        and old_h.machine is not None and old_h.machine.in_flight is None):
                    self.heaters[hid] = replace(old_h, wake=asyncio.Event())
                    kept.add(hid)
                    continue
                form = "text" if hcfg.protocol == "text" else "json"
                self.heaters[hid] = HeaterRuntime(hid, hcfg, room_id, MinerClient(hcfg.host, hcfg.port, form=form))
                stored = self.store.get_heater_state(hid)
                self.heaters[hid].controlled = stored.controlled
                self.heaters[hid].manual_level = stored.manual_level
                self.heaters[hid].persisted_wanted = stored.wanted_level
                if hcfg.model != "auto":
                    self._make_machine(self.heaters[hid], MODELS[hcfg.model])
            old_room = previous.rooms.get(room_id) if previous is not None else None
            max_w = 0.0
            min_w = 0.0  # heaters that cannot stop (no standby, no plug) give at least their lowest level
            lowest_switchable: list[float] = []
            for hid in rcfg.heaters:
                h = self.heaters[hid]
                spec = h.spec or MODELS["mini3"]  # placeholder capacity until `auto` is probed
                h_spec = h.spec or spec
                names = list(h.cfg.levels) if h.cfg.levels else list(h_spec.level_names)
                watts = [float(h.cfg.levels_w.get(n, h_spec.level(n).wall_w)) for n in names]
                max_w += max(watts)
                if h_spec.has_standby or h.cfg.plug is not None:
                    lowest_switchable.append(min(watts))
                else:
                    min_w += min(watts)
            low_w = min_w + min(lowest_switchable) if lowest_switchable else None
            keep_control = (
                old_room is not None and previous is not None
                and old_room.cfg.control == rcfg.control and old_room.cfg.limits == rcfg.limits
                and old_room.cfg.heaters == rcfg.heaters
                and old_room.cfg.stuck_after == rcfg.stuck_after
                and all(hid in kept for hid in rcfg.heaters)
                and previous.config.safety.on_sensor_loss == cfg.safety.on_sensor_loss
            )
            keep_filter = (old_room is not None and old_room.cfg.all_sensors == rcfg.all_sensors
                           and old_room.cfg.combine == rcfg.combine)
            if keep_control:
                assert old_room is not None
                control = old_room.control
            else:
                controller = _controller_for(rcfg, max_w, min_w, low_w)
                if isinstance(controller, MpcController):
                    self._restore_model(room_id, controller)
                control = RoomControl(
                    room_id=room_id,
                    controller=controller,
                    allocator=Allocator(),
                    min_c=rcfg.limits.min_c,
                    max_c=rcfg.limits.max_c,
                    on_sensor_loss=cfg.safety.on_sensor_loss,
                    plugs=frozenset(hid for hid in rcfg.heaters if cfg.heaters[hid].plug is not None),
                    stuck=StuckSensor(window_s=rcfg.stuck_after),
                )
            room = RoomRuntime(
                id=room_id,
                cfg=rcfg,
                schedule=cfg.schedule_for(room_id),
                filter=old_room.filter if keep_filter and old_room is not None else RoomSensors(
                    [SensorFilter(stale_after_s=sc.stale_after, confirm_readings=sc.confirm_readings,
                                  confirm_after_s=sc.confirm_after) for sc in rcfg.all_sensors],
                    Combine(rcfg.combine)),
                control=control,
                heaters=[self.heaters[hid] for hid in rcfg.heaters],
                state=self.store.get_room_state(room_id),
                energy_kwh=self.store.energy(room_id),
                started_at=old_room.started_at if keep_filter and old_room is not None else now,
            )
            if old_room is not None:
                room.last_energy_t, room.last_history = old_room.last_energy_t, old_room.last_history
                room.readings, room.sensor_lost = old_room.readings, old_room.sensor_lost
                room.safety_reason = old_room.safety_reason
                if keep_filter:
                    room.humidity, room.humidity_at = old_room.humidity, old_room.humidity_at
                if keep_control:
                    room.decision, room.target = old_room.decision, old_room.target
            self.rooms[room_id] = room
            if not keep_control:
                self._restore_learned(room)
        self._refresh_levels_w()

    def _restore_learned(self, room: RoomRuntime) -> None:
        """A PID integral saved within the last hour is the best start after a restart (no re-learning)."""
        saved = self.store.get_learned(f"pid_integral:{room.id}")
        if saved is None:
            return
        value, ts = saved
        if self.clock.now().timestamp() - ts < 3600 and isinstance(value, int | float) and not isinstance(value, bool):
            room.control.controller.restore_integral(float(value))
            log.info("room %s: PID integral %.0f W restored", room.id, value)

    def _restore_model(self, room_id: str, controller: MpcController) -> None:
        saved = self.store.get_thermal_model(room_id)
        if saved is None:
            return
        try:
            controller.set_model(ThermalModel.from_dict(saved[0]))
        except (TypeError, ValueError) as exc:
            log.warning("room %s: stored thermal model not used: %s", room_id, exc)

    def fit_samples(self, room_id: str, since: float) -> list[Sample]:
        """The room's history as model-fit samples (readings, wall watts, outdoor when known)."""
        outdoor = self.store.outdoor_history(since)
        out_t = [t for t, _ in outdoor]
        samples = []
        for row in self.store.history(room=room_id, since=since):
            if row.heater is not None:
                continue
            i = bisect.bisect_right(out_t, row.ts) - 1
            temp = outdoor[i][1] if i >= 0 and row.ts - outdoor[i][0] < 3 * 3600 else None
            samples.append(Sample(row.ts, row.reading, row.watts or 0.0, temp))
        return samples

    async def refit_models(self) -> None:
        """Fit each mpc room's thermal model to its last 14 days of history (daily and at start; in a thread, the
        fit takes a second or two). A fit that fails or finds too little data keeps the previous model."""
        wall = self.clock.now()
        since = wall.timestamp() - 14 * 86400.0
        day_offset = _local_offset_s(wall)
        for room in self.rooms.values():
            controller = room.control.controller
            if not isinstance(controller, MpcController):
                continue
            samples = self.fit_samples(room.id, since)
            try:
                model = await asyncio.to_thread(fit, samples, now=wall.timestamp(), day_offset_s=day_offset,
                                                start=controller.model)
            except Exception:  # a numerical failure must never stop the service; pid stays in charge
                log.exception("room %s: thermal model fit failed", room.id)
                continue
            if model is None:
                log.info("room %s: not enough history for a thermal model yet (%d samples)", room.id, len(samples))
                continue
            controller.set_model(model)
            self.store.put_thermal_model(room.id, model.to_dict(), wall.timestamp())
            log.info("room %s: thermal model %s, tau %.1f h, UA %.1f W/K, confidence %.2f", room.id, model.kind,
                     model.tau_s / 3600, model.ua_w_per_k, model.confidence)

    def _refresh_levels_w(self) -> None:
        for room in self.rooms.values():
            room.control.levels_w = {h.id: h.usable_levels_w() for h in room.heaters if h.spec is not None}

    def _poll_phase(self, heater_id: str) -> float | None:
        """This heater's slot of the poll period: the heaters in configuration order, evenly apart."""
        if not self.timings.spread_polls or heater_id not in self.config.heaters:
            return None
        if len(self._phases) != len(self.config.heaters):
            self._phases = {hid: i / len(self.config.heaters) for i, hid in enumerate(self.config.heaters)}
        return self._phases[heater_id]

    def _make_machine(self, h: HeaterRuntime, spec: ModelSpec) -> None:
        h.spec = spec
        now = self.clock.monotonic()
        h.machine = HeaterMachine(h.id, spec, self._heater_settings(h.cfg), now=now, has_plug=h.cfg.plug is not None,
                                  poll_phase=self._poll_phase(h.id))
        stored = self.store.get_heater_state(h.id)
        # Resume what was wanted before a restart, so reconciliation converges on it without extra commands.
        if stored.wanted_level is not None:
            level = None if stored.wanted_level == "standby" else stored.wanted_level
            if level is None or level in spec.level_names:
                h.machine.want(level, now, reason="resumed after restart")
        if stored.updated > 0:  # wake history, on/off/level since and a pending soft on/off survive a restart
            epoch_to_mono = now - self.clock.now().timestamp()
            h.machine.restore_wear(_stored_wear(stored).shifted(epoch_to_mono), now)

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then carry out the exit action and close."""
        for sensor_topic in sorted({sc.topic for room in self.rooms.values() for sc in room.cfg.all_sensors}):
            self.link.subscribe(sensor_topic)
        for command_filter in self.topics.command_filters():
            self.link.subscribe(command_filter)
        self.link.subscribe(f"{self.config.mqtt.discovery_prefix}/status")
        self._tasks = [
            asyncio.create_task(self.link.run(self._on_message, self._on_connect), name="mqtt"),
            asyncio.create_task(self._control_loop(), name="control"),
        ]
        outdoor = self.config.outdoor
        if outdoor is not None:
            for topic in (outdoor.topic, outdoor.forecast_topic):
                if topic is not None:
                    self.link.subscribe(topic)
        if self.config.tariff is not None and self.config.tariff.price_topic is not None:
            self.link.subscribe(self.config.tariff.price_topic)
        for hid in self.heaters:
            self._heater_tasks[hid] = asyncio.create_task(self._heater_loop(self.heaters[hid]), name=f"heater-{hid}")
        refit = asyncio.create_task(self.refit_models(), name="fit-models")
        self._background.add(refit)
        refit.add_done_callback(self._background.discard)
        self._start_scheduler()
        if self.mrm is not None:  # Mining Rig Monitor (issue 9)
            self._mrm_task = asyncio.create_task(self.mrm.run(self._mrm_stop), name="mrm")
        # --- metrics endpoint (issue 7): optional, off by default; a bind failure is logged, not fatal
        if self.config.metrics.enabled:
            from thermostat.adapters.metrics import MetricsServer

            self.metrics = MetricsServer(self, self.config.metrics.host, self.config.metrics.port)
            try:
                await self.metrics.start()
            except OSError:
                log.exception("metrics endpoint not started")
                self.metrics = None
        # --- end metrics
        await self._start_dashboard()
        log.info("thermostat running: %s, %s", counted(len(self.rooms), "room"), counted(len(self.heaters), "heater"))
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def _start_dashboard(self) -> None:
        """The dashboard and local API (issue 13); a bind failure or unreadable password is logged, not fatal."""
        from thermostat.service.dashboard import Dashboard

        if not self.config.dashboard.enabled:
            return
        try:
            self.dashboard = Dashboard(self, self.config.dashboard)
            await self.dashboard.start()
        except (OSError, ConfigError) as exc:
            log.error("dashboard not started: %s", exc)
            self.dashboard = None

    def _start_scheduler(self) -> None:
        try:
            self._scheduler = BlockScheduler(
                lambda: [r.schedule for r in self.rooms.values()],
                self._on_boundary,
                self._housekeeping,
            )
            self._scheduler.start()
        except Exception:  # the control loop re-evaluates every tick anyway; a scheduler problem is not fatal
            log.exception("wall-clock scheduler not started")
            self._scheduler = None

    async def _on_boundary(self) -> None:
        self._wake_all()

    def _wake_room(self, room_id: str) -> None:
        """Tick this room now (its reading or its command), not the others."""
        self._due_rooms.add(room_id)
        self._tick.set()

    def _wake_all(self) -> None:
        self._due_all = True
        self._tick.set()

    async def _housekeeping(self) -> None:
        days = self.config.state.history_days
        removed = self.store.prune(self.clock.now().timestamp() - days * 86400)
        log.info("housekeeping: pruned %d history rows older than %d days", removed, days)
        await self.refit_models()

    def handover(self) -> None:
        """Stop for a reload: leave the heaters as they are, let each heater loop finish its command, and keep the
        store open for the service built from the new configuration (`Service(..., previous=self)`)."""
        self.exit_action = "leave"
        self._handing_over = True

    async def shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.shutdown()
        if self._mrm_task is not None:  # Mining Rig Monitor (issue 9): stop reporting first
            self._mrm_stop.set()
            self._mrm_task.cancel()
            await asyncio.gather(self._mrm_task, return_exceptions=True)
        # Fix by the demo engineer (issue 8): stop the control loop BEFORE the exit action. Otherwise its next
        # tick (every control interval, and on a reading of its room) re-wants heat and overrides the safety
        # standby; `thermostat demo` caught heaters waking again during shutdown and ending in RUNNING.
        for task in self._tasks[1:]:
            task.cancel()
        if self.exit_action == "standby":
            await self._exit_to_standby()
        if self._handing_over:  # each heater loop returns after its current command (bounded by its timeout)
            for h in self.heaters.values():
                h.wake.set()
            if self._heater_tasks:
                await asyncio.wait(list(self._heater_tasks.values()), timeout=self.timings.exit_timeout_s)
        last = [self._bookkeeping] if self._bookkeeping is not None else []
        for task in [*self._heater_tasks.values(), *self._tasks[1:]]:
            task.cancel()
        await asyncio.gather(*self._heater_tasks.values(), *self._tasks[1:], *last, return_exceptions=True)
        self._publish_unpublished()
        self._publish_all_rooms()
        if self.metrics is not None:  # metrics endpoint (issue 7)
            await self.metrics.close()
        if self.dashboard is not None:  # dashboard and local API (issue 13)
            await self.dashboard.close()
        await self.link.close(timeout=5.0)
        await asyncio.gather(self._tasks[0], return_exceptions=True)
        if self._handing_over:
            self.store.flush(force=True)
        else:
            self.store.close()
        log.info("thermostat stopped")

    async def _exit_to_standby(self) -> None:
        now = self.clock.monotonic()
        for h in self.heaters.values():
            if h.machine is not None:
                h.machine.want(None, now, reason="service stopping", safety=True)
                h.wake.set()
        deadline = time.monotonic() + self.timings.exit_timeout_s
        while time.monotonic() < deadline:
            if all(_settled_off(h.machine) for h in self.heaters.values()):
                log.info("exit: every heater is in standby")
                return
            await asyncio.sleep(0.05)
        log.warning("exit: not every heater confirmed standby within %.0f s", self.timings.exit_timeout_s)

    # ------------------------------------------------------------------ heaters

    async def _heater_loop(self, h: HeaterRuntime) -> None:
        backoff = 5.0
        while h.machine is None and not self._handing_over:
            try:
                info = parse_version(await h.client.request(Request("version")))
            except MinerError as exc:
                log.warning("heater %s: model probe failed (%s); retrying in %.0f s", h.id, exc, backoff)
            else:
                if info.spec is not None:
                    log.info("heater %s: detected %s (firmware %s)", h.id, info.spec.display, info.firmware)
                    self._make_machine(h, info.spec)
                    self._refresh_levels_w()
                    break
                log.error("heater %s: unknown model %r at %s; not used", h.id, info.model, h.cfg.host)
            await self._wait(h.wake, backoff)
            backoff = min(backoff * 2, self.timings.probe_backoff_max_s)
        machine = h.machine
        if machine is None:
            return
        assert h.spec is not None
        while not self._handing_over:
            now = self.clock.monotonic()
            commands = machine.step(now)
            changes = sum(1 for command in commands if command.kind != CommandKind.POLL)
            self._changes_in_flight += changes
            try:
                await self._carry_out(h, machine, commands)
            finally:
                if changes:
                    self._changes_in_flight -= changes
                    if not self._changes_in_flight:  # the burst is over: its state to MQTT
                        self._burst_over.set()
                        self._publish_when_quiet()
            if not commands:
                h.wake.clear()
                # Asleep until the machine is next due or someone wakes it (its room's tick, a command, the
                # exit): a heater with nothing to do costs nothing between polls. Its telemetry goes out with
                # the looks (every poll, and every room tick wakes the room's heaters).
                now = self.clock.monotonic()
                delay = min(self.timings.heater_idle_s, max(0.0, machine.next_due(now) - now))
                h.looks += 1
                await self._wait(h.wake, max(delay, 0.02))

    async def _carry_out(self, h: HeaterRuntime, machine: HeaterMachine, commands: list[Command]) -> None:
        """Send the machine's commands, feed back the outcomes, then the bookkeeping (store, logs, MQTT)."""
        for command in commands:
            try:
                if command.kind in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF):
                    # Written before it is sent (a kill -9 now must not send it twice): in one transaction with the
                    # other heaters of this pass of the event loop, and sent once that is committed.
                    self._hold_writes()
                    self._persist_heater(h, [])
                    await self._writes_done()
                outcome = await self._execute(h, command)
            except asyncio.CancelledError:  # stopping: whether it arrived is unknown, as after a timeout
                machine.on_outcome(command, Outcome(OutcomeKind.TIMEOUT, "not answered: service stopping"),
                                   self.clock.monotonic())
                raise
            machine.on_outcome(command, outcome, self.clock.monotonic())
        try:
            self._after_heater_step(h)
        except Exception:  # bookkeeping (store, MQTT, logs) never stops the heater's machine
            self.counters["bookkeeping_errors"] += 1
            self.limited.log(logging.ERROR, ("bookkeeping", h.id), "heater %s: bookkeeping failed", h.id,
                             exc_info=True)

    def _hold_writes(self) -> None:
        """SQLite writes from here to the end of this pass of the event loop go in one transaction: the heaters of a
        burst commit once, not once each. Outside an event loop (a synchronous caller) writes go at once."""
        if self._writes_held is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.store.hold()
        self._writes_held = loop.create_future()
        loop.call_soon(self._release_writes)

    def _release_writes(self) -> None:
        held, self._writes_held = self._writes_held, None
        try:
            self.store.release()  # never raises
        finally:
            if held is not None and not held.done():
                held.set_result(None)

    async def _writes_done(self) -> None:
        """Until the writes held for this pass of the event loop are committed (at once when none are held)."""
        if self._writes_held is not None:
            await asyncio.shield(self._writes_held)  # shared: one heater's cancellation must not cancel it

    def _publish_heater_soon(self, h: HeaterRuntime, events: list[str]) -> None:
        """A heater's events and state to MQTT: at once, or after the burst of heater commands under way (so
        that every command of a burst goes out before the burst's publishing), at most 1 s later."""
        self._unpublished.setdefault(h.id, []).extend(events)
        if not self._changes_in_flight and self._quiet_timer is None:
            self._publish_unpublished()
        elif self._publish_timer is None:
            self._publish_timer = asyncio.get_running_loop().call_later(1.0, self._publish_unpublished)

    def _publish_when_quiet(self) -> None:
        """The last heater command under way is done: publish once no new one has started for `BURST_QUIET_S`.
        A burst's room commands can reach the service in more than one read from the broker, milliseconds apart;
        publishing at the first lull would put the first rooms' state before the later rooms' commands."""
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
        self._quiet_timer = asyncio.get_running_loop().call_later(BURST_QUIET_S, self._publish_if_quiet)

    def _publish_if_quiet(self) -> None:
        self._quiet_timer = None
        if not self._changes_in_flight:
            self._publish_unpublished()

    def _publish_unpublished(self) -> None:
        for timer in (self._publish_timer, self._quiet_timer):
            if timer is not None:
                timer.cancel()
        self._publish_timer = self._quiet_timer = None
        pending, self._unpublished = self._unpublished, {}
        for hid, events in pending.items():
            h = self.heaters.get(hid)
            if h is None:
                continue
            try:
                for payload in events:
                    self.link.publish_nowait(f"{self.base}/heater/{hid}/event", payload)
                self._publish_heater(h)
            except Exception:  # never into the heater loop
                self.counters["bookkeeping_errors"] += 1
                self.limited.log(logging.ERROR, ("publish", hid), "heater %s: state not published", hid,
                                 exc_info=True)

    async def _execute(self, h: HeaterRuntime, command: Command) -> Outcome:
        assert h.spec is not None
        if command.kind in (CommandKind.PLUG_ON, CommandKind.PLUG_OFF):
            plug = h.cfg.plug
            if plug is None:
                return Outcome(OutcomeKind.REFUSED, "no smart plug configured")
            payload = plug.payload_on if command.kind == CommandKind.PLUG_ON else plug.payload_off
            self.link.publish_nowait(plug.command_topic, payload, qos=1)
            return Outcome(OutcomeKind.OK, f"plug {payload}")
        if command.kind != CommandKind.POLL:
            h.commands_sent += 1
            log.info("heater %s: %s%s", h.id, command.kind.value, f" {command.level}" if command.level else "")
        try:
            outcome = await h.client.execute(command, h.spec)
        except MinerError as exc:  # invalid value / unsupported: never sent
            log.error("heater %s: %s not sent: %s", h.id, command.kind.value, exc)
            outcome = Outcome(OutcomeKind.REFUSED, str(exc))
        if not outcome.ok and command.kind != CommandKind.POLL:
            h.command_errors += 1
        return outcome

    def _after_heater_step(self, h: HeaterRuntime) -> None:
        machine = h.machine
        assert machine is not None
        events = machine.drain_events()
        payloads = []
        for ev in events:
            log.info("heater %s: %s -> %s (%s)", ev.heater, ev.from_state.value, ev.to_state.value, ev.reason)
            if ev.to_state == HeaterState.FAULT:
                self.limited.warning(("fault", h.id), "heater %s: marked faulty (%s); it does not heat until it "
                                     "answers sanely again", h.id, ev.reason)
            elif ev.from_state == HeaterState.FAULT:
                self.limited.warning(("recovered", h.id), "heater %s: recovered from fault (%s)", h.id, ev.reason)
            self.events.append(ev)
            payloads.append(json.dumps({"time": self.clock.now().isoformat(), "from": ev.from_state.value,
                                        "to": ev.to_state.value, "reason": ev.reason}))
        if len(self.events) > 1000:
            del self.events[:-500]
        failures, snap = machine.failures, machine.last_snapshot
        if not h.failing and failures > h.failures_seen:
            h.failing, h.snapshot_when_failing = True, snap
            self.limited.warning(("unreachable", h.id), "heater %s: miner at %s:%d not answering properly (%s); "
                                 "retrying", h.id, h.cfg.host, h.cfg.port, machine.last_failure or "no answer")
        elif h.failing and snap is not None and snap is not h.snapshot_when_failing:
            h.failing = False  # a fresh answer
            self.limited.warning(("answering", h.id), "heater %s: miner at %s:%d answering again", h.id,
                                 h.cfg.host, h.cfg.port)
        h.failures_seen = failures
        if events:
            self._hold_writes()  # committed at the end of this pass of the event loop, with the burst's others
            self._persist_heater(h, events)
        now = self.clock.monotonic()
        if events or now - h.last_publish >= self.timings.publish_every_s:
            h.last_publish = now
            self._publish_heater_soon(h, payloads)

    @staticmethod
    def _can_stop(h: HeaterRuntime) -> bool:
        return h.spec is not None and (h.spec.has_standby or h.cfg.plug is not None)

    def _persist_heater(self, h: HeaterRuntime, events: list[TransitionEvent]) -> None:
        machine = h.machine
        old = self.store.get_heater_state(h.id)
        if machine is None:  # model not identified yet: keep the household's choices, nothing else is known
            self.store.put_heater_state(
                h.id, replace(old, controlled=h.controlled, manual_level=h.manual_level), self.clock.now().timestamp()
            )
            return
        wall = self.clock.now().timestamp()
        mono = self.clock.monotonic()
        last_change = old.last_onoff_change
        for ev in events:
            if ev.from_state == HeaterState.STANDBY and ev.to_state == HeaterState.WAKING:
                h.wakes += 1
            if ev.to_state in (HeaterState.RUNNING, HeaterState.STANDBY) and ev.from_state != ev.to_state:
                last_change = wall - (mono - ev.time)
        wear = machine.export_wear(mono).shifted(wall - mono)
        wanted = machine.wanted_level
        h.persisted_wanted = wanted if wanted is not None else "standby"
        self.store.put_heater_state(
            h.id,
            StoredHeater(
                wanted_level=wanted if wanted is not None else "standby",
                confirmed_level=machine.confirmed_level,
                controlled=h.controlled,
                manual_level=h.manual_level,
                wakes=wear.wakes,
                last_onoff_change=last_change,
                on_since=wear.on_since,
                off_since=wear.off_since,
                level_since=wear.level_since,
                wear_level=wear.level,
                pending_soft=None if wear.pending is None else _PENDING_NAMES[wear.pending.kind],
                pending_at_miner=None if wear.pending is None else wear.pending.at_miner_time,
            ),
            wall,
        )

    # ------------------------------------------------------------------ control

    async def _control_loop(self) -> None:
        """Every room every `control_interval_s` (safety for silent sensors) and when `_wake_all` asks; one
        room alone when `_wake_room` asks or when its sensor goes stale (the stale rule acts at once)."""
        next_full = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            self._tick.clear()
            rooms: list[RoomRuntime] | None
            if self._due_all or now >= next_full:
                rooms = None
                self._due_all = False
                self._due_rooms.clear()
                next_full = now + self.timings.control_interval_s
            else:
                due, self._due_rooms = self._due_rooms, set()
                rooms = [r for r in self.rooms.values() if r.id in due or self._stale_now(r, now)]
            try:
                ticked, t_now, t_wall = self._decide(rooms)
            except Exception:  # _decide() guards each room itself; this is the last line of defence
                self.limited.log(logging.ERROR, ("tick",), "control tick failed", exc_info=True)
            else:  # the commands first: the heaters this tick woke send them before its bookkeeping
                previous = self._bookkeeping
                self._bookkeeping = asyncio.create_task(
                    self._bookkeep_after_burst(previous, ticked, t_now, t_wall, t_now + BOOKKEEPING_WAIT_S),
                    name="bookkeeping")
            wake_at = next_full
            for room in self.rooms.values():
                deadline = room.stale_deadline()
                if room.stale_ticked != deadline and deadline < wake_at:
                    wake_at = deadline
            # a little past the deadline: the filter calls a reading stale once it is strictly older
            await self._wait(self._tick, max(0.0, wake_at - self.clock.monotonic()) + 0.01)

    async def _bookkeep_after_burst(self, previous: asyncio.Task[None] | None, ticked: list[RoomRuntime],
                                    now: float, wall: datetime, until: float) -> None:
        """A tick's bookkeeping once the commands it caused are out, at the latest at `until` (the service's
        clock), in tick order (after the previous tick's), while the control loop goes on deciding. Also when
        cancelled (stopping): the wants are saved, the state published."""
        try:
            if previous is not None:
                await asyncio.wait({previous})
            await self._after_burst(until)
        finally:
            try:
                self._bookkeep(ticked, now, wall)
            except Exception:
                self.limited.log(logging.ERROR, ("tick",), "control tick failed", exc_info=True)

    async def _after_burst(self, until: float) -> None:
        """Until the heater commands a tick caused have gone out and been answered, or `until` (the service's
        clock): the heaters it woke step within a few passes of the event loop, then their commands are under way.
        The deadline is the tick's own, so that ticks in a row (a miner whose command times out) never queue up."""
        for _ in range(4):
            await asyncio.sleep(0)
        left = until - self.clock.monotonic()
        if self._changes_in_flight and left > 0:
            self._burst_over.clear()
            await self._wait(self._burst_over, left)

    @staticmethod
    def _stale_now(room: RoomRuntime, now: float) -> bool:
        """True once per stale deadline, when it has passed: the room is ticked at once for it."""
        deadline = room.stale_deadline()
        return room.stale_ticked != deadline and now > deadline

    def tick(self, rooms: list[RoomRuntime] | None = None) -> None:
        """One control step for `rooms` (default: every room): first each room's safety rules and heater wants
        (pure, no I/O), each room on its own; then the bookkeeping (SQLite in one transaction, MQTT, energy,
        problems), each part on its own. Nothing that fails in the second half, or in another room, can keep a
        room's rules from applying."""
        ticked, now, wall = self._decide(rooms)
        self._bookkeep(ticked, now, wall)

    def _decide(self, rooms: list[RoomRuntime] | None) -> tuple[list[RoomRuntime], float, datetime]:
        """The first half of `tick`: each room's safety rules and heater wants (its heaters woken)."""
        now = self.clock.monotonic()
        wall = self.clock.now()
        ticked = list(self.rooms.values()) if rooms is None else rooms
        for room in ticked:
            try:
                room.ticks += 1
                if now > room.stale_deadline():
                    room.stale_ticked = room.stale_deadline()
                self._decide_room(room, now, wall)
                room.control_failed = False
            except Exception:  # a bug in this room's control: on doubt, standby
                room.control_failed = True
                self._room_failed(room, now)
        return ticked, now, wall

    def _bookkeep(self, ticked: list[RoomRuntime], now: float, wall: datetime) -> None:
        """The second half of `tick`: SQLite in one transaction, MQTT, energy, problems; each part on its own."""
        with self.store.batch():  # the store never raises; one transaction for the rooms ticked
            for room in ticked:
                try:
                    self._bookkeep_room(room, now, wall)
                except Exception:
                    self.counters["bookkeeping_errors"] += 1
                    self.limited.log(logging.ERROR, ("bookkeeping", room.id), "room %s: bookkeeping failed",
                                     room.id, exc_info=True)
        try:
            self._bookkeep_service(now, wall)
        except Exception:
            self.counters["bookkeeping_errors"] += 1
            self.limited.log(logging.ERROR, ("bookkeeping",), "service bookkeeping failed", exc_info=True)

    def _decide_room(self, room: RoomRuntime, now: float, wall: datetime) -> None:
        """The room's safety rules and heater wants, handed to its heater machines. No I/O here."""
        for h in room.heaters:  # Mining Rig Monitor (issue 9): remote off = standby whatever the room wants
            if h.remote_off and h.machine is not None:
                h.machine.want(None, now, reason=ha_bridge.REMOTE_OFF, safety=True)
                h.wake.set()
        target = self._target(room, wall)
        room.target = target
        temp = min(max(target.temp, room.cfg.limits.min_c), room.cfg.limits.max_c)
        measured = room.filter.value(now)  # the fresh sensors' combination (the newest reading when all are stale)
        sensor_ok = measured is not None and not room.filter.is_stale(now)
        if measured is None and now - room.started_at < room.cfg.stale_after:
            # Just started and no reading yet: hold what was resumed from the store rather than call the
            # sensor lost (a restart must not switch heaters off). After `stale_after` the safety rule applies.
            return
        controlled = [h.machine for h in room.heaters if h.machine is not None and h.controlled and not h.remote_off]
        outdoor = self._outdoor(now)
        forecast = None
        controller = room.control.controller
        if isinstance(controller, MpcController) and controller.active:
            # rebuilt when the planner may replan, or when the target in force changed (a block, an override)
            fresh = room.forecast is not None and now - room.forecast_at < controller.replan_s and (
                room.forecast.target_at(now, temp) == temp)
            if not fresh:
                room.forecast, room.forecast_at = self._forecast(room, now, wall), now
            forecast = room.forecast
        room.decision = room.control.tick(
            now, measured=measured, sensor_ok=sensor_ok, target=temp, mode=room.state.mode, machines=controlled,
            outdoor=outdoor, forecast=forecast,
        )
        for h in room.heaters:
            if h.machine is None:
                continue
            if not h.controlled and not h.remote_off:  # remote_off: Mining Rig Monitor (issue 9), wanted above
                over = measured is not None and measured > room.cfg.limits.max_c
                level = None if over else h.manual_level
                h.machine.want(level, now, reason="manual" if not over else "room above maximum", safety=over)
            h.wake.set()

    def _room_failed(self, room: RoomRuntime, now: float) -> None:
        self.limited.log(logging.ERROR, ("control", room.id), "room %s: control step failed; heaters to standby",
                         room.id, exc_info=True)
        for h in room.heaters:
            try:
                if h.machine is not None:
                    h.machine.want(None, now, reason="control step failed", safety=True)
                h.wake.set()
            except Exception:
                self.limited.log(logging.ERROR, ("standby", h.id), "heater %s: standby could not be wanted",
                                 h.id, exc_info=True)

    def _bookkeep_room(self, room: RoomRuntime, now: float, wall: datetime) -> None:
        """Everything after the decision: each part guarded, so that one failing does not skip the others."""
        parts: tuple[tuple[str, Callable[[], None]], ...] = (
            ("saving heater wants", lambda: self._persist_wants(room)),
            ("logging", lambda: self._note_room_events(room)),
            ("energy and history", lambda: self._account_energy(room, now, wall)),
            ("problems", lambda: self._room_problems(room)),
            ("publishing", lambda: self._publish_room(room)),
        )
        for what, part in parts:
            try:
                part()
            except Exception:
                self.counters["bookkeeping_errors"] += 1
                self.limited.log(logging.ERROR, ("bookkeeping", room.id, what), "room %s: %s failed",
                                 room.id, what, exc_info=True)

    def _persist_wants(self, room: RoomRuntime) -> None:
        for h in room.heaters:
            if h.machine is None:
                continue
            wanted = h.machine.wanted_level if h.machine.wanted_level is not None else "standby"
            if wanted != h.persisted_wanted:
                self._persist_heater(h, [])

    def _note_room_events(self, room: RoomRuntime) -> None:
        """One WARNING line when a room's sensor goes missing or comes back, and when a safety standby starts."""
        decision = room.decision
        lost = decision is not None and decision.reason.startswith("sensor lost")
        if lost and not room.sensor_lost:
            seen = room.filter.last_value
            last = f"last reading {seen:.1f} °C" if seen is not None else "no reading since the start"
            self.limited.warning(("sensor", room.id, "lost"),
                                 "room %s: no temperature reading for more than %.0f s (%s, %s %s); %s",
                                 room.id, room.cfg.stale_after, last,
                                 "topic" if len(room.cfg.all_sensors) == 1 else "topics",
                                 ", ".join(sc.topic for sc in room.cfg.all_sensors),
                                 "heaters at their lowest level" if decision is not None and "lowest" in decision.reason
                                 else "heaters to standby")
        elif room.sensor_lost and not lost and room.filter.last_value is not None and decision is not None:
            self.limited.warning(("sensor", room.id, "back"), "room %s: temperature reading back: %.1f °C",
                                 room.id, room.filter.last_value)
        room.sensor_lost = lost
        safety = decision.reason if decision is not None and decision.safety and not decision.heating else None
        if safety is not None and safety != room.safety_reason and not lost:
            self.limited.warning(("safety", room.id, safety), "room %s: safety standby: %s", room.id, safety)
        room.safety_reason = safety

    def _room_problems(self, room: RoomRuntime) -> None:
        problems = tuple(room.decision.problems) if room.decision is not None else ()
        text = "; ".join(f"{room.cfg.name or room.id}: {p}" for p in problems) if problems else None
        wall, mono = self.clock.now().timestamp(), self.clock.monotonic()
        self.problems.set(f"room:{room.id}", text, now=wall, room=room.id, mono=mono)
        failed = f"{room.cfg.name or room.id}: control step failed, heaters in standby" if room.control_failed else None
        self.problems.set(f"control:{room.id}", failed, now=wall, room=room.id, mono=mono, severity="error")

    def _bookkeep_service(self, now: float, wall: datetime) -> None:
        if self.away.expire(wall):
            log.info("away ended: every room follows its schedule")
        if self.away.changed:
            self._publish_away()
        self.store.flush()
        # two problems, so that writes working again is logged as resolved while a damaged start stays reported
        self.problems.set("store-start", self.store.start_problem, now=wall.timestamp(), severity="error", mono=now)
        self.problems.set("store", self.store.write_problem, now=wall.timestamp(), severity="error", mono=now)
        if self.problems.changed:
            self.problems.changed = False
            self._publish_problems()

    def _publish_outdoor(self) -> None:
        """`<base>/outdoor` (retained) for Home Assistant's sensor on the service device."""
        if self.config.outdoor is not None and self.config.outdoor.topic is not None:
            value = self._outdoor(self.clock.monotonic())
            self.link.publish_nowait(f"{self.base}/outdoor", ha_bridge.UNKNOWN if value is None else f"{value:.1f}",
                                     retain=True)

    def _outdoor(self, now: float) -> float | None:
        cfg = self.config.outdoor
        if cfg is None or self.outdoor_c is None or self.outdoor_at is None or now - self.outdoor_at > cfg.stale_after:
            return None
        return self.outdoor_c

    def price_now(self, now: float, wall: datetime) -> float | None:
        dynamic = self.dynamic_price.current(now)
        if dynamic is not None:
            return dynamic
        if self.tariff is not None:
            return float(self.tariff.price_at(wall))
        tariff = self.config.tariff
        return tariff.price_per_kwh if tariff is not None else None

    def _forecast(self, room: RoomRuntime, now: float, wall: datetime) -> Forecast:
        """The coming targets (schedule, with overrides as the target in force), outdoor and prices, on the
        monotonic clock the controller uses."""
        horizon = 48 * 3600.0
        to_mono = now - wall.timestamp()
        lo, hi = room.cfg.limits.min_c, room.cfg.limits.max_c
        current = room.target
        targets: list[tuple[float, float]] = []
        if current is not None:
            targets.append((now, min(max(current.temp, lo), hi)))
            at = current.next_change
            while at is not None and at.timestamp() - wall.timestamp() < horizon and len(targets) < 48:
                nxt = self._target(room, at)
                targets.append((at.timestamp() + to_mono, min(max(nxt.temp, lo), hi)))
                if nxt.next_change is None or nxt.next_change <= at:
                    break
                at = nxt.next_change
        outdoor = tuple((t + to_mono, c) for t, c in self.outdoor_forecast
                        if wall.timestamp() - 3600 <= t <= wall.timestamp() + horizon)
        prices: tuple[tuple[float, float], ...] = ()
        dynamic = self.dynamic_price.current(now)
        if dynamic is not None:
            prices = ((now, dynamic),)
        elif self.tariff is not None:
            prices = tuple((w.timestamp() + to_mono, p) for w, p in self.tariff.changes(wall, wall + timedelta(
                seconds=horizon)))
        # the fit reads its history on the same local clock (`refit_models`): the model's day profile lines up
        return Forecast(targets=tuple(targets), outdoor=outdoor, price=prices,
                        day_offset_s=_local_offset_s(wall) - to_mono)

    def _target(self, room: RoomRuntime, wall: datetime, *, with_override: bool = True) -> Target:
        st = room.state
        override = None
        if st.override_temp is not None and with_override:
            since = st.override_set_at or wall
            until = st.override_until if st.override_until is not None else target_at(room.schedule, since).next_change
            override = Override(temp=st.override_temp, since=since, until=until)
        away = self.away.for_room(room.schedule, wall)  # the house is away: beats a room's held preset
        if away is None and st.preset is not None and st.preset in room.schedule.presets:
            away = Away(temp=room.schedule.presets[st.preset], until=None, preset=st.preset,
                        reason="away" if st.preset == "away" else "preset")
        return effective_target(room.schedule, wall, override, away)

    def _account_energy(self, room: RoomRuntime, now: float, wall: datetime) -> None:
        watts = 0.0
        for h in room.heaters:
            snap = h.machine.last_snapshot if h.machine is not None else None
            if snap is not None and snap.power_w is not None:
                watts += snap.power_w
        if room.last_energy_t is not None and now > room.last_energy_t:
            kwh = watts * (now - room.last_energy_t) / 3.6e6
            if kwh > 0:
                room.energy_kwh = self.store.add_energy(room.id, kwh, wall.timestamp())
                price = self.price_now(now, wall)
                if price is not None:
                    room.cost += kwh * price
        room.last_energy_t = now
        if now - room.last_history >= self.timings.history_every_s:
            room.last_history = now
            integral = room.control.controller.learned_integral_w()
            if integral is not None:
                self.store.put_learned(f"pid_integral:{room.id}", integral, wall.timestamp())
            self.store.record_history(
                wall.timestamp(), room=room.id, reading=room.filter.last_value,
                target=room.target.temp if room.target else None, watts=watts,
            )

    # ------------------------------------------------------------------ MQTT in

    async def _on_connect(self) -> None:
        self._publish_discovery()
        self._publish_all_rooms()

    async def _on_message(self, msg: Message) -> None:
        try:
            self._dispatch(msg)
        except Exception:  # garbage must never take the service down
            self.counters["commands_rejected"] += 1
            self.limited.log(logging.ERROR, ("message", msg.topic[:200]), "message on %s could not be handled",
                             msg.topic[:200], exc_info=True)

    def _dispatch(self, msg: Message) -> None:
        if self._on_weather_or_price(msg):
            return
        matched = False
        for room in self.rooms.values():  # a topic may feed several rooms, or several sensors of one room
            for index, sc in enumerate(room.cfg.all_sensors):
                if msg.topic == sc.topic:
                    self._on_reading(room, index, msg.payload)
                    matched = True
        if matched:
            return
        if msg.topic == f"{self.config.mqtt.discovery_prefix}/status":
            if msg.payload.strip().lower() == b"online":  # Home Assistant restarted: everything again
                self._publish_discovery()
                self._publish_all_rooms(force=True)
            return
        if msg.topic in (self.topics.away_set, self.topics.away_until_set):
            self._on_away("away" if msg.topic == self.topics.away_set else "away_until", msg.payload)
            return
        parts = msg.topic.split("/")
        base_parts = self.base.split("/")
        if parts[: len(base_parts)] != base_parts or len(parts) != len(base_parts) + 4 or parts[-1] != "set":
            return
        kind, ident, what = parts[len(base_parts)], parts[len(base_parts) + 1], parts[len(base_parts) + 2]
        self._on_command(kind, ident, what, msg.payload)

    def _on_weather_or_price(self, msg: Message) -> bool:
        """Outdoor temperature, outdoor forecast and dynamic price topics; True when the message was one of them.
        Garbage is rejected, counted and logged; nothing else changes."""
        outdoor = self.config.outdoor
        tariff = self.config.tariff
        now = self.clock.monotonic()
        try:
            if outdoor is not None and msg.topic == outdoor.topic:
                value = parse_payload(msg.payload, outdoor.json_key)
                if not -60.0 <= value <= 60.0:
                    raise BadReading(f"outdoor {value} °C is implausible")
                self.outdoor_c, self.outdoor_at = value, now
                self.store.record_outdoor(self.clock.now().timestamp(), value)
                self._publish_outdoor()
                return True
            if outdoor is not None and msg.topic == outdoor.forecast_topic:
                self.outdoor_forecast = parse_forecast(msg.payload)
                return True
            if tariff is not None and msg.topic == tariff.price_topic:
                self.dynamic_price.offer(now, float(msg.payload.decode("utf-8", "replace").strip()))
                return True
        except (BadReading, ValueError) as exc:
            self.counters["readings_rejected"] += 1
            log.warning("message on %s rejected: %s", msg.topic, exc)
            return True
        return False

    def _on_reading(self, room: RoomRuntime, index: int, payload: bytes) -> None:
        now = self.clock.monotonic()
        sc = room.cfg.all_sensors[index]
        result = room.filter.filters[index].offer_payload(now, payload, sc.json_key, offset=sc.offset)
        if isinstance(result, Accepted):
            if result.confirmed:
                log.warning("room %s: reading jumped to %.1f °C and was confirmed by the readings since", room.id,
                            result.value)
            self.counters["readings"] += 1
            room.readings += 1
            if sc.json_key is not None and sc.humidity_key is not None:
                humidity = parse_optional(payload, sc.humidity_key)
                if humidity is not None and 0.0 <= humidity <= 100.0:
                    room.humidity, room.humidity_at = humidity, now
            self._wake_room(room.id)
        else:
            self.counters["readings_rejected"] += 1
            self.limited.warning(("reading", room.id, result.reason), "room %s: reading rejected: %s %s",
                                 room.id, result.reason, str(result.detail)[:200])

    def command(self, kind: str, ident: str, what: str, payload: bytes) -> str | None:
        """A room/heater command from the dashboard: the MQTT command path. The rejection reason, or None."""
        return self._on_command(kind, ident, what, payload)

    def _on_away(self, what: str, payload: bytes) -> str | None:
        """The house-wide away (`what` "away": start/change/cancel; "away_until": its end). The rejection or None."""
        wall = self.clock.now()
        if what == "away":
            lowest = min(r.cfg.limits.min_c for r in self.rooms.values())  # each room clamps to its own limits
            highest = max(r.cfg.limits.max_c for r in self.rooms.values())
            outcome = self.away.command(payload, wall, lowest, highest)
        else:
            outcome = self.away.plan_end(payload, wall)
        if outcome.error is not None:
            return self._reject(self.topics.away_error, outcome.error)
        log.info("%s", outcome.text)
        self._publish_away()
        self._wake_all()  # house-wide: every room
        return None

    def _on_command(self, kind: str, ident: str, what: str, payload: bytes) -> str | None:
        if kind == "house" and what in ("away", "away_until"):
            return self._on_away(what, payload)
        if kind == "room" and ident in self.rooms:
            room = self.rooms[ident]
            cmd = ha.parse_room_command(what, payload, room.cfg.limits.min_c, room.cfg.limits.max_c,
                                        ha.room_presets(room.schedule.presets), now=self.clock.now(),
                                        tz=room.schedule.tz)
            if isinstance(cmd, ha.Rejected):
                return self._reject(f"{self.base}/room/{ident}/error", f"{what}: {cmd.reason}")
            self._apply_room_command(room, cmd)
        elif kind == "heater" and ident in self.heaters:
            h = self.heaters[ident]
            ladder = h.spec.level_names if h.spec is not None else ()
            has_standby = h.spec.has_standby if h.spec is not None else True
            hcmd = ha.parse_heater_command(what, payload, ladder, has_standby or h.cfg.plug is not None)
            if isinstance(hcmd, ha.Rejected):
                return self._reject(f"{self.base}/heater/{ident}/error", f"{what}: {hcmd.reason}")
            return self._apply_heater_command(h, hcmd)
        else:
            self.counters["commands_rejected"] += 1
            self.limited.warning(("unknown", kind), "command for unknown %s %s ignored", kind, ident[:100])
            return f"unknown {kind} {ident!r}"
        return None

    def _reject(self, topic: str, reason: str) -> str:
        """A rejected command: counted always; logged and answered on the error topic, rate-limited per topic
        and reason (the reason's first words: the value itself is not part of the key)."""
        self.counters["commands_rejected"] += 1
        key = (topic, reason.split(":", 1)[0], _reason_kind(reason))
        self.limited.warning(("rejected", *key), "command rejected: %s", reason[:300])
        suppressed = self.error_topic_limiter.check(key)
        if suppressed is not None:
            text = reason if not suppressed else f"{reason} ({suppressed} more like this not answered)"
            self.link.publish_nowait(topic, text)
        return reason

    def _apply_room_command(self, room: RoomRuntime, cmd: Any) -> None:
        wall = self.clock.now()
        st = room.state
        if isinstance(cmd, ha.SetMode):
            st = replace(st, mode=cmd.mode)
        elif isinstance(cmd, ha.SetTarget):
            st = replace(st, override_temp=cmd.temp, override_until=None, override_set_at=wall, preset=None,
                         override_label=None)
        elif isinstance(cmd, ha.SetPreset) and cmd.preset == ha.BOOST:
            st = replace(st, preset=None, override_temp=self._boost_temp(room, wall), override_set_at=wall,
                         override_until=wall + timedelta(seconds=self.config.boost.duration), override_label=ha.BOOST)
        elif isinstance(cmd, ha.SetPreset):
            st = replace(st, preset=cmd.preset, override_temp=None, override_until=None, override_set_at=None,
                         override_label=None)
        elif isinstance(cmd, ha.SetOverride):
            if cmd.temp is None:
                st = replace(st, override_temp=None, override_until=None, override_set_at=None, override_label=None)
            else:
                st = replace(st, override_temp=cmd.temp, override_until=cmd.until, override_set_at=wall,
                             override_label=None)
        room.state = st
        self._hold_writes()  # several rooms' commands arriving together: one transaction
        self.store.put_room_state(room.id, st, wall.timestamp())
        log.info("room %s: %s", room.id, cmd)
        self._wake_room(room.id)

    def _boost_temp(self, room: RoomRuntime, wall: datetime) -> float:
        """The schedule's `boost` preset, else what the room would otherwise hold + `boost.delta`, below max_c."""
        if ha.BOOST in room.schedule.presets:
            temp = room.schedule.presets[ha.BOOST]
        else:
            temp = self._target(room, wall, with_override=False).temp + self.config.boost.delta
        return round(min(temp, room.cfg.limits.max_c) * 2) / 2  # on the 0.5 K grid HA and the CLI use

    def _apply_heater_command(self, h: HeaterRuntime, cmd: Any) -> str | None:
        if isinstance(cmd, ha.Reboot) and h.spec is None:
            return self._reject(f"{self.base}/heater/{h.id}/error", "reboot: model not identified yet")
        if isinstance(cmd, ha.SetControlled):
            h.controlled = cmd.controlled
            if not h.controlled and h.manual_level is None and h.spec is not None and not self._can_stop(h):
                # a heater without standby (Nano 3S, no plug) handed to manual rests at its lowest level
                h.manual_level = h.spec.bottom_level.name
        elif isinstance(cmd, ha.SetLevel):
            if cmd.level == "auto":
                h.controlled, h.manual_level = True, None
            else:
                h.controlled = False
                h.manual_level = None if cmd.level == "standby" else cmd.level
        elif isinstance(cmd, ha.Reboot):
            # Carried out beside the machine; it notices the restart (uptime resets) and reconciles.
            task = asyncio.create_task(self._reboot(h))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._persist_heater(h, [])
        log.info("heater %s: %s", h.id, cmd)
        try:  # show the change at once (HA's select and switch), with when the miner will follow
            self._publish_heater(h)
        except Exception:
            self.limited.log(logging.ERROR, ("publish", h.id), "heater %s: state not published", h.id, exc_info=True)
        self._wake_room(h.room_id)
        return None

    # --- Mining Rig Monitor (issue 9)
    def _on_mrm_expected(self, heater_id: str, asic_on: bool, light_on: bool) -> None:
        """The dashboard's remote switch: `off` holds the heater in standby; the light drives the locate LED."""
        from thermostat.adapters.mrm import set_locate_led

        h = self.heaters.get(heater_id)
        if h is None:
            return
        if h.remote_off != (not asic_on):
            h.remote_off = not asic_on
            log.info("heater %s: %s", h.id, ha_bridge.REMOTE_OFF if h.remote_off else "remote on (Mining Rig Monitor)")
            h.last_publish = -1e9  # publish the remote state with the next heater step
            h.wake.set()
            self._wake_room(h.room_id)
        if h.spec is not None and h.spec.has_locate_led and light_on != bool(h.remote_light):
            h.remote_light = light_on
            task = asyncio.create_task(set_locate_led(h.client, h.spec, light_on, h.id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # --- end Mining Rig Monitor

    async def _reboot(self, h: HeaterRuntime) -> None:
        assert h.spec is not None
        outcome = await self._execute(h, Command(h.id, CommandKind.REBOOT))
        log.info("heater %s: reboot %s %s", h.id, outcome.kind.value, outcome.message)

    # ------------------------------------------------------------------ MQTT out

    def _publish_discovery(self) -> None:
        discovery = list(ha_bridge.discovery_messages(self))
        t = ha.Topics(self.base, self.config.mqtt.discovery_prefix)
        current = ha.published_record(t, discovery, self.rooms, self.heaters)
        saved = self.store.get_learned(DISCOVERY_RECORD)
        # a room or heater deleted from the configuration: its entities leave HA, its retained state the broker
        for topic, empty in ha.gone_messages(t, saved[0] if saved is not None else None, current):
            self.link.publish_nowait(topic, empty, retain=True)
        for topic, payload in discovery:
            self.link.publish_nowait(topic, json.dumps(payload), retain=True)
        if saved is None or saved[0] != current:
            self.store.put_learned(DISCOVERY_RECORD, current, self.clock.now().timestamp())

    def _publish_all_rooms(self, *, force: bool = False) -> None:
        for room in self.rooms.values():
            self._publish_room(room, force=force)
        self._publish_outdoor()
        self._publish_problems()
        self._publish_away()

    def _publish_away(self) -> None:
        self.away.changed = False
        for topic, value in self.away.messages(self.topics):
            self.link.publish_nowait(topic, value, retain=True)

    def _publish_problems(self) -> None:
        self.link.publish_nowait(f"{self.base}/problem", self.problems.as_json(), retain=True)

    def _publish_room(self, room: RoomRuntime, *, force: bool = False) -> None:
        for topic, value in ha_bridge.room_state_messages(self, room):
            if force:
                self.link.publish_nowait(topic, value, retain=True)
            else:
                self.link.publish_state(topic, value)

    def _publish_heater(self, h: HeaterRuntime) -> None:
        for topic, value in ha_bridge.heater_state_messages(self, h):
            self.link.publish_state(topic, value)

    # ------------------------------------------------------------------ helpers

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        """Wait for `event` or `seconds` of this service's clock, whichever comes first."""
        if event.is_set():
            return
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()


def default_heater_settings(cfg: HeaterConfig) -> HeaterSettings:
    fan = -1 if cfg.fan == "auto" else int(cfg.fan)
    return HeaterSettings(
        min_on_s=cfg.min_on, min_off_s=cfg.min_off, max_wakes_per_hour=cfg.max_wakes_per_hour, fan_pct=fan,
        fault_recover_s=cfg.fault_recover,
    )


def parse_forecast(payload: bytes) -> tuple[tuple[float, float], ...]:
    """A forecast message: a JSON list of {datetime: ISO 8601 with offset, temperature: °C} (Home Assistant's
    weather forecast shape), or {"forecast": [...]}. Returns (epoch, °C) in time order; ValueError on garbage."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"forecast is not JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("forecast")
    if not isinstance(data, list) or not data or len(data) > 500:
        raise ValueError("forecast must be a non-empty JSON list of {datetime, temperature}")
    out = []
    for item in data:
        if not isinstance(item, dict):
            raise ValueError("forecast entries must be objects {datetime, temperature}")
        when = datetime.fromisoformat(str(item.get("datetime")))
        if when.tzinfo is None:
            raise ValueError("forecast datetime needs a UTC offset")
        temp = item.get("temperature")
        if isinstance(temp, bool) or not isinstance(temp, int | float) or not -60 <= temp <= 60:
            raise ValueError(f"forecast temperature {temp!r} is not a plausible °C value")
        out.append((when.timestamp(), float(temp)))
    return tuple(sorted(out))


_PENDING_NAMES: dict[CommandKind, Literal["soft_on", "soft_off"]] = {
    CommandKind.SOFT_ON: "soft_on", CommandKind.SOFT_OFF: "soft_off",
}
_PENDING_KINDS = {name: kind for kind, name in _PENDING_NAMES.items()}


def _stored_wear(stored: StoredHeater) -> HeaterWear:
    """The wear in a stored heater row (epoch seconds), each value checked: the file may be old or edited by
    hand, and a value that is not a finite number is dropped rather than trusted."""

    def epoch(value: object) -> float | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None

    pending = None
    kind = _PENDING_KINDS.get(stored.pending_soft) if isinstance(stored.pending_soft, str) else None
    at = stored.pending_at_miner
    if kind is not None and isinstance(at, int) and not isinstance(at, bool):
        pending = PendingSoft(kind, at)
    wakes = tuple(w for w in (epoch(v) for v in stored.wakes) if w is not None)
    return HeaterWear(
        wakes=wakes,
        on_since=epoch(stored.on_since),
        off_since=epoch(stored.off_since),
        level_since=epoch(stored.level_since),
        level=stored.wear_level if isinstance(stored.wear_level, str) else None,
        pending=pending,
    )


def _local_offset_s(wall: datetime) -> float:
    """Seconds to add to a Unix time for local time (the machine's zone), at `wall`: the clock of a room model's
    day profile, for its fit and for the planner alike."""
    offset = wall.astimezone().utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _controller_for(rcfg: RoomConfig, max_w: float, min_w: float = 0.0, low_w: float | None = None) -> Controller:
    """The room's controller. mpc also gets the power it cannot go below (heaters that cannot stop) and the lowest
    running power of a heater that can (below it, heat exists only as on/off)."""
    ctl = rcfg.control
    if ctl.mode == "mpc":
        return make_controller("mpc", max_w=max_w, min_w=min_w, low_w=low_w, horizon_h=ctl.horizon / 3600.0,
                               margin_k=ctl.margin)
    if ctl.mode == "hysteresis":
        return make_controller("hysteresis", max_w=max_w, cold_tol=ctl.cold_tolerance, hot_tol=ctl.hot_tolerance)
    gains = {k: v for k, v in (("kp", ctl.kp), ("ki", ctl.ki), ("kd", ctl.kd)) if v is not None}
    return make_controller("pid", max_w=max_w, **gains)


def _reason_kind(reason: str) -> str:
    """A rejection reason without the values in it (digits and quoted text), to group like reasons together."""
    text = reason.split(":", 1)[1] if ":" in reason else reason
    words = [w for w in text.split()[:6] if not any(c.isdigit() for c in w) and "'" not in w and '"' not in w]
    return " ".join(words)


def _settled_off(machine: HeaterMachine | None) -> bool:
    if machine is None:
        return True
    return machine.state in (HeaterState.STANDBY, HeaterState.FAULT) and machine.in_flight is None
