"""Optimal start and optimal stop: the setpoint to regulate to, given the schedule's next change.

Pure and stateful (no I/O; `now` is float seconds on the injected monotonic clock). One `Preheat` per room.
The caller passes what the schedule says — the target in force, and when (seconds from now) and to what the
target changes next (`thermostat.core.schedule.target_at(...)` / `effective_target(...)`: `next_change`,
`next_temp`) — and regulates to the returned setpoint instead of the target:

    setpoint = preheat.setpoint(now, measured, target, next_change_in_s, next_temp)

* **Optimal start.** Before a target *rise* (end of a night setback) the setpoint is raised to the coming target
  early enough for the room to be warm when the block starts. The lead time is
  `(next_temp − measured) / rate + margin_s` (capped at `max_lead_s`), where `rate` (K/h) is the room's
  observed warm-up rate at full heat: it starts at `initial_rate_k_per_h` and is learnt from every recovery
  (rise / time from the start of the pre-heat until the room reached the coming target, or until the block
  started), with an exponential average. Once started, a pre-heat is kept until the block begins (no flapping).
  The raised setpoint is capped at `max_above_target_k` (default 1.0 K) above the target in force: the comfort
  band is target − 0.5 … target + 1.0, so by default a pre-heat never makes the room "too hot" for the setback
  block it happens in. Measured on the bench (issue 5): an uncapped pre-heat to the full coming target *worsens*
  discomfort (mild_week 45 → 53 K·h, morning_setback 56 → 60 K·h), because hours above the setback's band count
  as much as hours below the comfort band after it, and a room with heavy mass warms only ≈ 0.3 K/h at full
  heat. The capped pre-heat starts the recovery from the top of the setback band and helps
  (morning_setback 56 → 45 K·h, two_heaters_large_room 28 → 17 K·h, with the optimal stop).
* **Optimal stop.** In the last `stop_lead_s` (3 h) before a target *drop* (the start of a setback), the setpoint is
  lowered by `stop_offset_k` (default 0.3 K: inside the comfort band, whose lower edge is target − 0.5 K). The
  heat that would only keep the room at the full target for the last hour before everybody leaves or goes to
  bed is not spent, and the room coasts down into the setback from a lower start.

Both are off for a target with no known next change, and `enabled=False` returns the target unchanged.
A missing reading returns the target (the safety layer decides what happens without a sensor).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreheatSettings:
    enabled: bool = True
    initial_rate_k_per_h: float = 1.0  # warm-up rate assumed before any recovery has been observed
    min_rate_k_per_h: float = 0.2  # learnt rates are clamped to this range
    max_rate_k_per_h: float = 6.0
    learn_weight: float = 0.5  # weight of the newest observation in the learnt rate
    margin_s: float = 900.0  # start this much earlier than the estimate says
    max_lead_s: float = 8 * 3600.0  # never pre-heat longer than this ahead
    min_rise_k: float = 0.3  # a rise smaller than this (or a room already that warm) needs no pre-heat
    max_above_target_k: float = 1.0  # a pre-heat never regulates more than this above the target in force
    stop_lead_s: float = 10800.0  # optimal stop: lower the setpoint this long before a target drop ...
    stop_offset_k: float = 0.4  # ... by this much (keep it inside the comfort band's lower margin, 0.5 K)

    def __post_init__(self) -> None:
        if not 0 < self.min_rate_k_per_h <= self.initial_rate_k_per_h <= self.max_rate_k_per_h:
            raise ValueError("need 0 < min_rate_k_per_h <= initial_rate_k_per_h <= max_rate_k_per_h")
        if not 0 < self.learn_weight <= 1:
            raise ValueError("learn_weight must be within (0, 1]")
        for name in ("margin_s", "max_lead_s", "min_rise_k", "max_above_target_k", "stop_lead_s", "stop_offset_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass
class _Recovery:
    goal: float  # the coming target
    start_t: float
    start_c: float
    change_at: float  # monotonic time the block starts


class Preheat:
    """Optimal start / optimal stop for one room (see the module docstring)."""

    def __init__(self, settings: PreheatSettings | None = None) -> None:
        self.settings = settings or PreheatSettings()
        self.rate_k_per_h = self.settings.initial_rate_k_per_h
        self.recoveries = 0  # rates learnt so far
        self._active: _Recovery | None = None  # a pre-heat or a recovery being timed
        self.state = "idle"  # "idle" | "preheat" | "stop" (for state reporting)

    def lead_s(self, measured: float, next_temp: float) -> float:
        """How long before a rise to `next_temp` the pre-heat starts, for a room at `measured` now."""
        s = self.settings
        rise = next_temp - measured
        if rise < s.min_rise_k:
            return 0.0
        return min(s.max_lead_s, rise / self.rate_k_per_h * 3600.0 + s.margin_s)

    def _learn(self, now: float, measured: float) -> None:
        rec = self._active
        if rec is None:
            return
        s = self.settings
        elapsed = now - rec.start_t
        reached = measured >= rec.goal - 0.05
        # timed until the room reaches the goal; a recovery still short of it an hour after the block started
        # (or after twice the maximum lead) is learnt from its progress so far
        if reached or now >= rec.change_at + 3600.0 or elapsed >= 2 * s.max_lead_s:
            rise = measured - rec.start_c
            if elapsed >= 600.0 and rise >= s.min_rise_k:
                observed = rise / (elapsed / 3600.0)
                observed = min(s.max_rate_k_per_h, max(s.min_rate_k_per_h, observed))
                w = s.learn_weight
                self.rate_k_per_h = (1 - w) * self.rate_k_per_h + w * observed
                self.recoveries += 1
            self._active = None

    def setpoint(
        self,
        now: float,
        measured: float | None,
        target: float,
        next_change_in_s: float | None,
        next_temp: float | None,
    ) -> float:
        """The setpoint to regulate to now (the target, raised for a pre-heat or lowered for an optimal stop)."""
        s = self.settings
        self.state = "idle"
        if not s.enabled or measured is None:
            return target
        if self._active is not None:
            self._learn(now, measured)
        if next_change_in_s is None or next_temp is None or next_change_in_s < 0:
            return target
        if next_temp > target:
            rec = self._active
            raised = min(next_temp, target + s.max_above_target_k)
            if rec is not None and rec.goal == next_temp and now < rec.change_at:
                self.state = "preheat"
                return raised
            if next_change_in_s <= self.lead_s(measured, next_temp):
                self._active = _Recovery(goal=next_temp, start_t=now, start_c=measured,
                                         change_at=now + next_change_in_s)
                self.state = "preheat"
                return raised
            return target
        if next_temp < target and next_change_in_s <= s.stop_lead_s:
            self.state = "stop"
            return max(next_temp, target - s.stop_offset_k)
        return target

    def note_target_rise(self, now: float, measured: float | None, goal: float) -> None:
        """A rise the pre-heat did not see coming (an override, no schedule lookahead): time the recovery."""
        if measured is not None and self._active is None and goal - measured >= self.settings.min_rise_k:
            self._active = _Recovery(goal=goal, start_t=now, start_c=measured, change_at=now)
