"""The per-room control tick shared by the household service, the bench and the demo.

One `RoomControl` per room. Each tick it takes plain values (time, the filtered reading, whether the
sensor is alive, the schedule's target, the room mode) and the room's heater state machines, applies
the safety rules, asks the controller for heat demand and the allocator for a level per heater, and
tells each machine what is wanted. It sends nothing itself: the machines return the commands.

Safety rules, in order (docs/safety.md):
1. no usable reading (never seen, stale, dropped out) -> `on_sensor_loss` (default standby), as a safety
   action that overrides minimum on time;
2. air above `max_c` -> standby at once (safety);
3. air below `min_c` -> full heat whatever the schedule or mode says (frost protection);
4. room mode "off" -> standby (the household asked for it: honoured at once);
5. otherwise controller demand -> allocator levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from thermostat.core.allocate import Allocator, HeaterView
from thermostat.core.control import Controller, Forecast
from thermostat.core.heater import HeaterMachine


@dataclass(frozen=True)
class RoomDecision:
    demand_w: float
    levels: dict[str, str | None]  # heater id -> wanted level (None = standby)
    safety: bool
    reason: str
    heating: bool  # at least one heater is wanted above standby
    problems: tuple[str, ...] = ()  # plain-words problems the household should see (e.g. "no working heater")


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
    last: RoomDecision | None = None

    def max_w(self, machines: Sequence[HeaterMachine]) -> float:
        return sum(max(self._watts(m).values()) for m in machines)

    def _watts(self, machine: HeaterMachine) -> dict[str, float]:
        usable = self.levels_w.get(machine.heater_id)
        if usable:
            return {name: float(w) for name, w in usable.items()}
        return {lv.name: float(lv.wall_w) for lv in machine.spec.levels}

    def _top(self, machine: HeaterMachine) -> str:
        watts = self._watts(machine)
        return max(watts, key=lambda name: watts[name])

    def _bottom(self, machine: HeaterMachine) -> str:
        watts = self._watts(machine)
        return min(watts, key=lambda name: watts[name])

    def _view(self, machine: HeaterMachine, now: float) -> HeaterView:
        current = machine.wanted_level if machine.wanted_level is not None else machine.confirmed_level
        return HeaterView(
            id=machine.heater_id,
            spec=machine.spec,
            levels_w=self._watts(machine),
            current=current,
            available=machine.available,
            can_wake=machine.can_wake(now),
            can_stop=machine.can_stop(now),
            has_plug=machine.heater_id in self.plugs,
        )

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
        def standby(reason: str, safety: bool = True) -> RoomDecision:
            self.controller.hold(0.0)
            return RoomDecision(0.0, {m.heater_id: None for m in machines}, safety, reason, False)

        if measured is None or not sensor_ok:
            if self.on_sensor_loss == "lowest":
                self.controller.hold(0.0)
                levels = {m.heater_id: (self._bottom(m) if m.available else None) for m in machines}
                return RoomDecision(0.0, levels, True, "sensor lost: lowest level", any(levels.values()))
            return standby("sensor lost")
        if measured > self.max_c:
            return standby(f"room {measured:.1f} °C above its maximum {self.max_c:.1f} °C")
        if measured < self.min_c:
            self.controller.hold(self.max_w(machines))
            levels = {m.heater_id: (self._top(m) if m.available else None) for m in machines}
            return RoomDecision(self.max_w(machines), levels, True, f"below minimum {self.min_c:.1f} °C", True)
        if mode == "off":
            return standby("room off")

        self.controller.resume()
        demand = self.controller.update(now, measured, target, outdoor, forecast)
        views = [self._view(m, now) for m in machines]
        levels = self.allocator.allocate(now, demand, views)
        heating = any(level is not None for level in levels.values())
        note = self.controller.note
        reason = f"demand {demand:.0f} W" + (f" ({note})" if note else "")
        return RoomDecision(demand, dict(levels), False, reason, heating)
