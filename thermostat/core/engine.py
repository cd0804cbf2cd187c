"""The per-room control tick shared by the household service, the bench and the demo.

One `RoomControl` per room. Each tick it takes plain values (time, the filtered reading, whether the
sensor is alive, the schedule's target, the room mode) and the room's heater state machines, applies
the safety rules, asks the controller for heat demand and the allocator for a level per heater, and
tells each machine what is wanted. It sends nothing itself: the machines return the commands.

Safety rules, in order (docs/safety.md):
1. no usable reading (never seen, stale, dropped out, or stuck: see `StuckSensor`) -> `on_sensor_loss`
   (default standby), as a safety action that overrides minimum on time;
2. air above `max_c` -> standby at once (safety);
3. air below `min_c` -> full heat whatever the schedule or mode says (frost protection);
4. room mode "off" -> standby (the household asked for it: honoured at once);
5. otherwise controller demand -> allocator levels.

A room that wants heat (demand or frost) while none of its heaters is usable (all in FAULT and not answering
healthy) says so: reason and problem `no working heater`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from thermostat.core.allocate import Allocator, HeaterView
from thermostat.core.control import Controller, Forecast
from thermostat.core.heater import HeaterMachine
from thermostat.domain.spec import ModelSpec
from thermostat.domain.words import span


@dataclass(frozen=True)
class RoomDecision:
    demand_w: float
    levels: dict[str, str | None]  # heater id -> wanted level (None = standby)
    safety: bool
    reason: str
    heating: bool  # at least one heater is wanted above standby
    problems: tuple[str, ...] = ()  # what the owner should know about (e.g. "no working heater")


NO_WORKING_HEATER = "no working heater"


@dataclass
class StuckSensor:
    """A sensor stuck at one value: the room was heated at >= `min_fraction` of its capacity for `window_s`
    and the reading never changed by `still_k` or more. A live sensor in a room that is regulated, or that
    warms slowly at full heat, changes by its resolution (0.1 K) now and then; a stuck one repeats itself.
    (Judging "stuck" on a wider band, 0.2 K, tripped in a steadily regulated room: in the bench's cold
    scenarios 5 times in 13 days with a 3 h window, none with this rule.) Latched until the reading moves by
    `band_k` from the value it was stuck at (the room, in standby meanwhile, cools and a live sensor shows
    it)."""

    window_s: float = 3 * 3600.0
    band_k: float = 0.2
    min_fraction: float = 0.5
    still_k: float = 0.05  # half the usual 0.1 K resolution: any reported change counts
    _ref: float | None = None  # the reading the current window started with
    _since: float | None = None  # start of the current window (heated enough, reading unchanged)
    stuck_at: float | None = None  # the value it is stuck at, while latched

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.band_k <= 0 or self.still_k <= 0 or not 0 < self.min_fraction <= 1:
            raise ValueError("window_s, band_k and still_k must be > 0, min_fraction in (0, 1]")

    @property
    def stuck(self) -> bool:
        return self.stuck_at is not None

    def update(self, now: float, reading: float | None, heat_fraction: float) -> bool:
        """Feed one tick: the usable reading (None when there is none) and the share of the room's capacity
        its heaters give now. True while the sensor is judged stuck."""
        if reading is None or not math.isfinite(reading):
            self._ref = self._since = None
            return self.stuck
        if self.stuck_at is not None:
            if abs(reading - self.stuck_at) >= self.band_k:
                self.stuck_at = None
                self._ref, self._since = reading, None
            return self.stuck
        if self._ref is None or abs(reading - self._ref) >= self.still_k:
            self._ref, self._since = reading, None  # it changed: alive
        if heat_fraction < self.min_fraction:
            self._since = None
        elif self._since is None:
            self._since = now
        if self._since is not None and now - self._since >= self.window_s:
            self.stuck_at = self._ref
            self._since = None
        return self.stuck


@dataclass
class RoomControl:
    room_id: str
    controller: Controller
    allocator: Allocator
    min_c: float = 7.0
    max_c: float = 26.0
    on_sensor_loss: str = "standby"  # "standby" | "lowest" (every heater at its lowest level)
    # heater -> {level name: wall W}: the usable ladder of that heater (a subset, with household watts);
    # heaters not listed use their model's whole ladder with its nominal watts
    levels_w: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    plugs: frozenset[str] = frozenset()  # heaters switched by a smart plug
    stuck: StuckSensor = field(default_factory=StuckSensor)
    last: RoomDecision | None = None
    _watts_memo: dict[str, tuple[Mapping[str, float] | None, ModelSpec, dict[str, float]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _views: dict[str, HeaterView] = field(default_factory=dict, init=False, repr=False, compare=False)

    def max_w(self, machines: Sequence[HeaterMachine]) -> float:
        return sum(max(self._watts(m).values()) for m in machines)

    def _watts(self, machine: HeaterMachine) -> dict[str, float]:
        """The heater's usable ladder, level → wall W (read-only: the same dict is handed out every step)."""
        usable = self.levels_w.get(machine.heater_id)
        hit = self._watts_memo.get(machine.heater_id)
        # `levels_w` is replaced (never edited in place) when the household's ladders change
        if hit is not None and hit[0] is usable and hit[1] is machine.spec:
            return hit[2]
        if usable:
            watts = {name: float(w) for name, w in usable.items()}
        else:
            watts = {lv.name: float(lv.wall_w) for lv in machine.spec.levels}
        self._watts_memo[machine.heater_id] = (usable, machine.spec, watts)
        return watts

    def _top(self, machine: HeaterMachine) -> str:
        watts = self._watts(machine)
        return max(watts, key=lambda name: watts[name])

    def _bottom(self, machine: HeaterMachine) -> str:
        watts = self._watts(machine)
        return min(watts, key=lambda name: watts[name])

    def _view(self, machine: HeaterMachine, now: float) -> HeaterView:
        current = machine.wanted_level if machine.wanted_level is not None else machine.confirmed_level
        levels_w = self._watts(machine)
        available = machine.usable
        can_wake = machine.can_wake(now)
        can_stop = machine.can_stop(now)
        has_plug = machine.heater_id in self.plugs
        last = self._views.get(machine.heater_id)
        # the same view while nothing in it changed: what the allocator works out from a view is kept with it
        if (last is not None and last.spec is machine.spec and last.levels_w is levels_w and last.current == current
                and last.available == available and last.can_wake == can_wake and last.can_stop == can_stop
                and last.has_plug == has_plug):
            return last
        view = HeaterView(id=machine.heater_id, spec=machine.spec, levels_w=levels_w, current=current,
                          available=available, can_wake=can_wake, can_stop=can_stop, has_plug=has_plug)
        self._views[machine.heater_id] = view
        return view

    def tick(
        self,
        now: float,
        *,
        measured: float | None,
        sensor_ok: bool,
        target: float,
        mode: str,
        machines: Sequence[HeaterMachine],
        outdoor: float | None = None,
        forecast: Forecast | None = None,
    ) -> RoomDecision:
        decision = self.decide(
            now, measured=measured, sensor_ok=sensor_ok, target=target, mode=mode, machines=machines, outdoor=outdoor,
            forecast=forecast,
        )
        for machine in machines:
            machine.want(decision.levels.get(machine.heater_id), now, reason=decision.reason, safety=decision.safety)
        self.last = decision
        return decision

    def decide(
        self,
        now: float,
        *,
        measured: float | None,
        sensor_ok: bool,
        target: float,
        mode: str,
        machines: Sequence[HeaterMachine],
        outdoor: float | None = None,
        forecast: Forecast | None = None,
    ) -> RoomDecision:
        def standby(reason: str, safety: bool = True, problems: tuple[str, ...] = ()) -> RoomDecision:
            self.controller.hold(0.0)
            return RoomDecision(0.0, {m.heater_id: None for m in machines}, safety, reason, False, problems)

        def no_heater(problems: tuple[str, ...]) -> tuple[str, ...]:
            if machines and not any(m.usable for m in machines):
                return (*problems, NO_WORKING_HEATER)
            return problems

        usable_reading = measured if measured is not None and sensor_ok else None
        max_w = self.max_w(machines)
        given_w = sum(m.estimated_wall_w for m in machines if m.usable)
        self.stuck.update(now, usable_reading, given_w / max_w if max_w > 0 else 0.0)
        sensor_problems: tuple[str, ...] = ()
        lost = "sensor lost"
        if self.stuck.stuck_at is not None:
            lost = f"sensor stuck at {self.stuck.stuck_at:.1f} °C for {span(self.stuck.window_s)} while heating"
            sensor_problems = (lost,)
        if measured is None or not sensor_ok or self.stuck.stuck:
            if self.on_sensor_loss == "lowest":
                self.controller.hold(0.0)
                levels = {m.heater_id: (self._bottom(m) if m.usable else None) for m in machines}
                return RoomDecision(0.0, levels, True, f"{lost}: lowest level", any(levels.values()), sensor_problems)
            return standby(lost, problems=sensor_problems)
        if measured > self.max_c:
            return standby(f"room {measured:.1f} °C above its maximum {self.max_c:.1f} °C")
        if measured < self.min_c:
            self.controller.hold(max_w)
            levels = {m.heater_id: (self._top(m) if m.usable else None) for m in machines}
            problems = no_heater(())
            reason = NO_WORKING_HEATER if problems else f"below minimum {self.min_c:.1f} °C"
            return RoomDecision(max_w, levels, True, reason, any(levels.values()), problems)
        if mode == "off":
            return standby("room off")

        self.controller.resume()
        demand = self.controller.update(now, measured, target, outdoor, forecast)
        views = [self._view(m, now) for m in machines]
        levels = self.allocator.allocate(now, demand, views, planned=self.controller.planned)
        heating = any(level is not None for level in levels.values())
        problems = no_heater(()) if demand > 0 else ()
        note = self.controller.note
        reason = NO_WORKING_HEATER if problems else f"demand {demand:.0f} W" + (f" ({note})" if note else "")
        return RoomDecision(demand, dict(levels), False, reason, heating, problems)
