"""The soak's independent observer: it sees only what a person standing in the house would see.

It is fed the simulated miners' true state (watts, hashing, wakes, every command they received), the
readings the room sensors published and the true room air, and the harness's own record of faults and of
the service process. It never reads the service's state, logs or MQTT topics. Pure: no I/O, time
(simulated epoch seconds) is passed in.

Invariants (each violation is kept with its simulated time and the fault active then):

* ``silent_sensor_heat``: no heat in a room whose sensor has published nothing for longer than
  ``stale_after + 60 s``;
* ``above_max_heat``: no heat in a room more than 60 s after a reading above ``max_c`` was confirmed (3
  consecutive readings above it, or readings above it for 2 minutes, whichever comes first);
* ``stuck_sensor_heat``: while the harness holds a room's sensor at one value, the room is not heated hard
  (at ``STUCK_HARD_FRACTION`` of its capacity or more, by the wall watts) for longer than ``stuck_after +
  STUCK_GRACE_S``;
* ``wake_cap``: no more than ``max_wakes_per_hour`` wakes of one heater in any rolling hour, across
  restarts of the service and of the miner;
* ``min_off``: no wake sooner than ``min_off`` after the heater stopped heating;
* ``pool_command``: no pool-changing command ever reaches a miner;
* ``comfort_recovery``: every room back in its comfort band within ``recovery_bound_s`` after a fault ends;
* ``service_exit``: the service process never exits unless the harness stopped it.

A heater "heats" while its wall power is above its standby power by more than `HEAT_MARGIN_W`. While the
harness holds a miner frozen (SIGSTOP) the service cannot command it, so it is exempt from the two heat
rules until it answers again (plus `UNFROZEN_GRACE_S`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

POOL_COMMANDS = frozenset(
    {"setpool", "addpool", "removepool", "switchpool", "enablepool", "disablepool", "poolpriority", "poolquota"}
)
HEAT_MARGIN_W = 30.0
SAFETY_GRACE_S = 60.0  # the allowance after stale_after / a confirmed reading
WEAR_SLACK_S = 30.0  # soft on/off leads and the observer's sampling period
UNFROZEN_GRACE_S = 120.0
# The service judges a sensor stuck once its heaters were asked for half the room's capacity for stuck_after;
# the observer measures wall watts, which lag the commands (wake ramp), so it counts from a higher share and
# allows the stop and a sampling period on top.
STUCK_HARD_FRACTION = 0.6
STUCK_GRACE_S = 180.0
CONFIRM_READINGS = 3
CONFIRM_S = 120.0
BAND_LOW_K = 0.5  # comfort band [target − 0.5, target + 1.0] (as thermostat.core.kpi and the demo)
BAND_HIGH_K = 1.0


@dataclass(frozen=True)
class RoomRules:
    heaters: tuple[str, ...]
    stale_after_s: float
    max_c: float
    capacity_w: float = 0.0  # the heaters' highest wall watts together (0: no stuck-sensor check)
    stuck_after_s: float = math.inf


@dataclass(frozen=True)
class HeaterRules:
    room: str
    standby_w: float
    min_off_s: float
    max_wakes_per_hour: int


@dataclass
class Violation:
    t: float  # simulated epoch seconds
    invariant: str
    subject: str  # room or heater id ("service" for the process)
    detail: str
    fault: str  # the fault active then ("after <kind>" during its recovery window, "none")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Heater:
    w: float = 0.0
    heating: bool = False
    heat_stopped_at: float | None = None
    wake_counter: dict[int, int] = field(default_factory=dict)  # miner process generation -> last `wakes`
    wakes: deque[float] = field(default_factory=deque)
    frozen: bool = False
    thawed_at: float | None = None


@dataclass
class _Room:
    last_reading_t: float | None = None
    above_since: float | None = None
    above_count: int = 0
    confirmed_at: float | None = None
    silent_flagged: Violation | None = None  # the open episode's violation (its detail grows with it)
    above_flagged: Violation | None = None
    stuck_since: float | None = None  # the harness holds the sensor at one value since then
    hard_since: float | None = None  # heated hard, continuously, since then (while stuck)
    stuck_flagged: Violation | None = None
    recovery_from: float | None = None
    recovery_fault: str = ""
    recovery_flagged: bool = False


@dataclass
class Recovery:
    fault: str
    room: str
    seconds: float | None  # None: not back in band within the bound


class Observer:
    def __init__(self, rooms: dict[str, RoomRules], heaters: dict[str, HeaterRules], *,
                 recovery_bound_s: float = 3600.0, start_t: float = 0.0) -> None:
        self.rooms = rooms
        self.heater_rules = heaters
        self.recovery_bound_s = recovery_bound_s
        self.violations: list[Violation] = []
        self.recoveries: list[Recovery] = []
        self.commands: list[tuple[float, str, str]] = []  # (t, heater, request) — every non-read request
        self.wake_times: dict[str, list[float]] = {h: [] for h in heaters}
        self._h = {h: _Heater() for h in heaters}
        self._r = {r: _Room(last_reading_t=start_t) for r in rooms}
        self.fault = "none"
        self._after = "none"

    # ------------------------------------------------------------------ what the harness reports

    def fault_started(self, label: str, t: float) -> None:
        self.fault = label
        self._after = label

    def fault_ended(self, label: str, t: float) -> None:
        self.fault = "none"
        self._after = f"after {label}"
        for rid, room in self._r.items():
            if room.recovery_from is not None:  # the previous fault's room never recovered
                self._close_recovery(rid, room, None)
            room.recovery_from = t
            room.recovery_fault = label
            room.recovery_flagged = False

    def miner_frozen(self, hid: str, frozen: bool, t: float) -> None:
        h = self._h[hid]
        h.frozen = frozen
        if not frozen:
            h.thawed_at = t

    def miner_state(self, hid: str, t: float, *, wall_w: float, generation: int, wakes: int) -> None:
        """The miner's true state. `wakes` counts soft-on wakes since miner process `generation` started."""
        h = self._h[hid]
        rules = self.heater_rules[hid]
        heating = wall_w > rules.standby_w + HEAT_MARGIN_W
        if h.heating and not heating:
            h.heat_stopped_at = t
        h.heating, h.w = heating, wall_w
        before = h.wake_counter.get(generation, 0)
        for _ in range(max(0, wakes - before)):
            self._on_wake(hid, h, rules, t)
        h.wake_counter[generation] = max(before, wakes)

    def miner_lost_power(self, hid: str, t: float) -> None:
        h = self._h[hid]
        if h.heating:
            h.heat_stopped_at = t
        h.heating, h.w = False, 0.0

    def miner_request(self, hid: str, t: float, text: str, command: str) -> None:
        self.commands.append((t, hid, text))
        if command in POOL_COMMANDS:
            self._violate(t, "pool_command", hid, f"pool-changing command sent: {text[:80]}")

    def sensor_stuck(self, rid: str, stuck: bool, t: float) -> None:
        """The harness starts (or stops) holding the room's sensor at one value."""
        room = self._r[rid]
        room.stuck_since = t if stuck else None
        room.hard_since = None
        room.stuck_flagged = None

    def reading_published(self, rid: str, t: float, value: float) -> None:
        room = self._r[rid]
        rules = self.rooms[rid]
        room.last_reading_t = t
        room.silent_flagged = None
        if value > rules.max_c:
            if room.above_since is None:
                room.above_since, room.above_count = t, 0
            room.above_count += 1
            if room.confirmed_at is None and (room.above_count >= CONFIRM_READINGS
                                              or t - room.above_since >= CONFIRM_S):
                room.confirmed_at = t
        else:
            room.above_since, room.above_count, room.confirmed_at = None, 0, None
            room.above_flagged = None

    def room_air(self, rid: str, t: float, air_c: float, target_c: float) -> None:
        room = self._r[rid]
        if room.recovery_from is None:
            return
        if target_c - BAND_LOW_K <= air_c <= target_c + BAND_HIGH_K:
            self._close_recovery(rid, room, t - room.recovery_from)
        elif t - room.recovery_from > self.recovery_bound_s and not room.recovery_flagged:
            room.recovery_flagged = True
            self._violate(t, "comfort_recovery", rid,
                          f"not back in band {target_c - BAND_LOW_K:.1f}..{target_c + BAND_HIGH_K:.1f} °C "
                          f"{self.recovery_bound_s / 60:.0f} min after {room.recovery_fault} ended "
                          f"(air {air_c:.2f} °C)", fault=f"after {room.recovery_fault}")

    def service_exited(self, t: float, code: int | None, detail: str = "") -> None:
        """The service process ended without the harness stopping it."""
        self._violate(t, "service_exit", "service", f"the service exited by itself (code {code}){detail}")

    def service_not_back(self, t: float, detail: str) -> None:
        self._violate(t, "service_exit", "service", detail)

    def recovering(self) -> list[str]:
        """Rooms whose recovery window (after the last fault) is still open."""
        return [rid for rid, room in self._r.items() if room.recovery_from is not None]

    # ------------------------------------------------------------------ periodic checks

    def check(self, t: float) -> None:
        for rid, rules in self.rooms.items():
            room = self._r[rid]
            heating = [hid for hid in rules.heaters if self._counts_as_heat(hid, t)]
            self._check_stuck(rid, rules, room, heating, t)
            if not heating:
                continue
            silent_for = t - room.last_reading_t if room.last_reading_t is not None else math.inf
            if silent_for > rules.stale_after_s + SAFETY_GRACE_S:
                if room.silent_flagged is None:
                    room.silent_flagged = self._violate(
                        t, "silent_sensor_heat", rid, f"{', '.join(heating)} heating ({self._watts(heating):.0f} W) "
                        f"with the sensor silent for {silent_for:.0f} s (stale_after {rules.stale_after_s:.0f} s)")
                else:
                    self._extend(room.silent_flagged, t)
            if room.confirmed_at is not None and t - room.confirmed_at > SAFETY_GRACE_S:
                if room.above_flagged is None:
                    room.above_flagged = self._violate(
                        t, "above_max_heat", rid, f"{', '.join(heating)} heating ({self._watts(heating):.0f} W) "
                        f"{t - room.confirmed_at:.0f} s after a reading above max {rules.max_c:g} °C was confirmed")
                else:
                    self._extend(room.above_flagged, t)

    def _check_stuck(self, rid: str, rules: RoomRules, room: _Room, heating: list[str], t: float) -> None:
        if room.stuck_since is None or rules.capacity_w <= 0:
            return
        heat_w = sum(self._h[h].w - self.heater_rules[h].standby_w for h in heating)
        if heat_w < STUCK_HARD_FRACTION * rules.capacity_w:
            room.hard_since = None
            room.stuck_flagged = None
            return
        if room.hard_since is None:
            room.hard_since = t
        hard_for = t - room.hard_since
        if hard_for <= rules.stuck_after_s + STUCK_GRACE_S:
            return
        if room.stuck_flagged is None:
            room.stuck_flagged = self._violate(
                t, "stuck_sensor_heat", rid, f"{', '.join(heating)} heating ({heat_w:.0f} W of "
                f"{rules.capacity_w:.0f} W) for {hard_for:.0f} s with the sensor stuck "
                f"(stuck_after {rules.stuck_after_s:.0f} s)")
        else:
            self._extend(room.stuck_flagged, t)

    @staticmethod
    def _extend(v: Violation, t: float) -> None:
        """The violation goes on: note how long (simulated seconds since it was first seen)."""
        v.detail = v.detail.split(" [still heating")[0] + f" [still heating {t - v.t:.0f} s later]"

    def finish(self, t: float) -> None:
        """The run ended: a recovery window still open counts as not recovered only if its bound passed."""
        for rid, room in self._r.items():
            if room.recovery_from is None:
                continue
            if t - room.recovery_from > self.recovery_bound_s:
                self._close_recovery(rid, room, None)
            else:
                room.recovery_from = None

    # ------------------------------------------------------------------ helpers

    def _counts_as_heat(self, hid: str, t: float) -> bool:
        h = self._h[hid]
        if not h.heating or h.frozen:
            return False
        return not (h.thawed_at is not None and t - h.thawed_at < UNFROZEN_GRACE_S)

    def _watts(self, hids: list[str]) -> float:
        return sum(self._h[h].w for h in hids)

    def _on_wake(self, hid: str, h: _Heater, rules: HeaterRules, t: float) -> None:
        self.wake_times[hid].append(t)
        if h.heat_stopped_at is not None and t - h.heat_stopped_at < rules.min_off_s - WEAR_SLACK_S:
            self._violate(t, "min_off", hid, f"woken {t - h.heat_stopped_at:.0f} s after it stopped heating "
                                             f"(min_off {rules.min_off_s:.0f} s)")
        h.wakes.append(t)
        while h.wakes and h.wakes[0] <= t - 3600.0 + WEAR_SLACK_S:
            h.wakes.popleft()
        if len(h.wakes) > rules.max_wakes_per_hour:
            self._violate(t, "wake_cap", hid, f"{len(h.wakes)} wakes within an hour "
                                              f"(max_wakes_per_hour {rules.max_wakes_per_hour})")

    def _close_recovery(self, rid: str, room: _Room, seconds: float | None) -> None:
        self.recoveries.append(Recovery(room.recovery_fault, rid, seconds))
        room.recovery_from = None

    def _violate(self, t: float, invariant: str, subject: str, detail: str, fault: str | None = None) -> Violation:
        active = fault if fault is not None else (self.fault if self.fault != "none" else self._after)
        violation = Violation(t, invariant, subject, detail, active)
        self.violations.append(violation)
        return violation
