"""Room controllers: measured temperature + target → heat demand in watts.

Klipper-style (`klippy/extras/heaters.py`): every algorithm is a small class with ONE method,

    update(now, measured, target, outdoor, forecast=None) -> demand_w      (0 ≤ demand_w ≤ max_w)

`now` is float seconds on the injected monotonic clock, `measured` the room temperature (None when there is
no usable reading), `target` the setpoint in force, `outdoor` the outdoor temperature when known, `forecast` an
optional `Forecast` (the schedule's future targets, an outdoor forecast, prices) that every controller accepts and
only the planning one (`mpc`) uses. `note` is a short text the room's reason shows (e.g. a fallback). The demand
is then turned into levels per heater by the allocator (`thermostat.core.allocate`). Safety (stale sensor,
over-temperature, window) lives outside the controllers; a controller only has to stay sane around it.

* `max_w`  = the room's total heater capacity (sum of the top levels of its heaters);
* `unit_w` = one heater's top level (the bang-bang baseline switches exactly one heater).

Controllers:

* `PidController` ("pid"): our regulator. simple-pid with the injected clock, conditional integration,
  optional outdoor feed-forward, hold/resume for bumpless hand-back.
* `HysteresisController` ("hysteresis"): a plain band, full power below it, nothing above.
* `BangBangController` ("bang-bang"): a faithful Home Assistant `generic_thermostat` baseline.
* `TpiController` ("tpi"): a faithful Versatile Thermostat TPI baseline.
* `MpcController` ("mpc", `thermostat.core.mpc`): plans the heat over the next hours on the learned room model.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from simple_pid import PID


def _step_value(series: Sequence[tuple[float, float]], times: list[float], t: float, default: float) -> float:
    i = bisect.bisect_right(times, t)
    return default if i == 0 else series[i - 1][1]


def _step_values(series: Sequence[tuple[float, float]], times: list[float], ts: np.ndarray[Any, Any],
                 default: float) -> np.ndarray[Any, Any]:
    """`_step_value` at each of `ts`."""
    values = np.array([default] + [v for _, v in series], dtype=float)
    return values[np.searchsorted(np.asarray(times, dtype=float), ts, side="right")]


@dataclass(frozen=True)
class Forecast:
    """What is known about the coming hours, on the controller's clock (the same `now` as `update`).

    targets: (time, target °C from then on) in time order — the schedule's coming blocks (the first one at or
    before now); outdoor: (time, °C) points, linearly interpolated and held flat outside (empty: unknown, the
    controller uses persistence); price: (time, price per kWh from then on) (empty: every hour costs the same);
    day_offset_s: added to the controller's clock gives local time in seconds, modulo a day (the hour of day of
    the room model's daytime free heat, the sun).
    """

    targets: tuple[tuple[float, float], ...] = ()
    outdoor: tuple[tuple[float, float], ...] = ()
    price: tuple[tuple[float, float], ...] = ()
    day_offset_s: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.day_offset_s):
            raise ValueError("Forecast.day_offset_s must be a finite number")
        for name in ("targets", "outdoor", "price"):
            series = getattr(self, name)
            times = [p[0] for p in series]
            if times != sorted(times):
                raise ValueError(f"Forecast.{name} must be in time order")
            if any(not (math.isfinite(a) and math.isfinite(b)) for a, b in series):
                raise ValueError(f"Forecast.{name} must hold finite numbers")
        object.__setattr__(self, "_t_times", [p[0] for p in self.targets])
        object.__setattr__(self, "_p_times", [p[0] for p in self.price])
        object.__setattr__(self, "_o_times", [p[0] for p in self.outdoor])

    def target_at(self, t: float, default: float) -> float:
        return _step_value(self.targets, self._t_times, t, default)  # type: ignore[attr-defined]

    def price_at(self, t: float, default: float) -> float:
        return _step_value(self.price, self._p_times, t, default)  # type: ignore[attr-defined]

    def outdoor_at(self, t: float, default: float) -> float:
        pts = self.outdoor
        if not pts:
            return default
        times: list[float] = self._o_times  # type: ignore[attr-defined]
        i = bisect.bisect_right(times, t)
        if i == 0:
            return pts[0][1]
        if i == len(pts):
            return pts[-1][1]
        (t0, v0), (t1, v1) = pts[i - 1], pts[i]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    # the same at many times at once (the planner's grid)
    def targets_at(self, ts: np.ndarray[Any, Any], default: float) -> np.ndarray[Any, Any]:
        return _step_values(self.targets, self._t_times, ts, default)  # type: ignore[attr-defined]

    def prices_at(self, ts: np.ndarray[Any, Any], default: float) -> np.ndarray[Any, Any]:
        return _step_values(self.price, self._p_times, ts, default)  # type: ignore[attr-defined]

    def outdoors_at(self, ts: np.ndarray[Any, Any], default: float) -> np.ndarray[Any, Any]:
        if not self.outdoor:
            return np.full(len(ts), default, dtype=float)
        times: np.ndarray[Any, Any] = np.array(self._o_times, dtype=np.float64)  # type: ignore[attr-defined]
        values = np.array([v for _, v in self.outdoor], dtype=np.float64)
        i = np.searchsorted(times, ts, side="right")
        out = np.where(i == 0, values[0], values[-1])
        inside = (i > 0) & (i < len(times))  # times[i-1] <= t < times[i]: linear between them
        j = i[inside]
        t0, t1, v0, v1 = times[j - 1], times[j], values[j - 1], values[j]
        out[inside] = v0 + (v1 - v0) * (ts[inside] - t0) / (t1 - t0)
        return np.asarray(out)


class Controller(Protocol):
    """`update` is the control method. `hold`/`resume` let the safety layer freeze a controller while it overrides
    the heaters (standby, frost heat, window) and hand control back without a bump."""

    name: str
    note: str
    # True when the last demand came from a plan that already decided when the heaters stop and wake, pricing each
    # wake (mpc with its model); the allocator then stops them without its own long wait
    planned: bool

    def update(self, now: float, measured: float | None, target: float, outdoor: float | None,
               forecast: Forecast | None = None) -> float:
        """Heat demand in watts, 0..max_w."""
        ...

    def hold(self, output: float = 0.0) -> None:
        """Freeze: until `resume()`, `update()` returns `output` and learns nothing."""
        ...

    def resume(self, now: float | None = None) -> None:
        """End a hold (no-op when not held)."""
        ...

    def learned_integral_w(self) -> float | None:
        """What the controller has learned, in watts, to persist across a restart; None if it learns nothing."""
        ...

    def restore_integral(self, value_w: float) -> None:
        """Resume with a value `learned_integral_w()` returned before a restart (ignored if it learns nothing)."""
        ...


class _Holdable:
    """hold/resume for the stateless-ish controllers: while held, `update()` returns the held output."""

    _held: float | None = None
    note = ""
    planned = False

    @property
    def held(self) -> bool:
        return self._held is not None

    def hold(self, output: float = 0.0) -> None:
        self._held = max(0.0, output)

    def resume(self, now: float | None = None) -> None:
        self._held = None

    def learned_integral_w(self) -> float | None:
        return None  # these controllers keep nothing worth carrying over a restart

    def restore_integral(self, value_w: float) -> None:
        return None


def _check_power(max_w: float, unit_w: float | None = None) -> None:
    if not (max_w > 0 and math.isfinite(max_w)):
        raise ValueError(f"max_w must be a positive number of watts, got {max_w!r}")
    if unit_w is not None and not (0 < unit_w <= max_w):
        raise ValueError(f"unit_w must be within 0 < unit_w <= max_w ({max_w}), got {unit_w!r}")


# --------------------------------------------------------------------------------------------------------------


class HysteresisController(_Holdable):
    """Band controller: turns on (max_w) at T ≤ target − cold_tol, off at T ≥ target + hot_tol, else keeps state.

    No minimum cycle time here: the heaters' own dwell rules (state machine) and the allocator do that.
    measured None → 0 W and the state is reset to off (safety decides any fallback heat).
    """

    name = "hysteresis"

    def __init__(self, *, max_w: float, unit_w: float | None = None, cold_tol: float = 0.3,
                 hot_tol: float = 0.3) -> None:
        _check_power(max_w)
        if cold_tol < 0 or hot_tol < 0:
            raise ValueError("tolerances must be >= 0")
        self.max_w = max_w
        self.cold_tol = cold_tol
        self.hot_tol = hot_tol
        self.on = False

    def update(self, now: float, measured: float | None, target: float, outdoor: float | None,
               forecast: Forecast | None = None) -> float:
        if self._held is not None:
            self.on = self._held > 0
            return self._held
        if measured is None:
            self.on = False
            return 0.0
        if measured <= target - self.cold_tol:
            self.on = True
        elif measured >= target + self.hot_tol:
            self.on = False
        return self.max_w if self.on else 0.0


# --------------------------------------------------------------------------------------------------------------
# simple-pid 2.0.1 (pinned in pyproject) has no public setter for the integral or the derivative memory; these two
# helpers are the only places that touch its internals.


def _set_integral(pid: PID, value: float) -> None:
    setattr(pid, "_integral", value)  # noqa: B010


def _forget_input(pid: PID) -> None:
    setattr(pid, "_last_input", None)  # noqa: B010


class PidController:
    """PI(D) on the room temperature; output 0..max_w watts.

    Built on simple-pid 2.0.1 (dependencies.md §4):
    * the clock is injected: `time_fn` returns the `now` of the current `update()`, and `dt` is passed explicitly;
    * `output_limits` are always set ((0, max_w), shifted by the feed-forward when it is used);
    * derivative on measurement (no kick on setpoint changes), `sample_time=None` (our loop sets the period);
    * dt is capped at `max_dt_s`: after a gap (no readings, process paused) the integral never jumps;
    * conditional integration (Klipper): an update whose unclamped output is saturated keeps the integral where
      it was if the error pushes further into saturation; simple-pid additionally clamps the integral to the
      limits. So after hours against an unreachable setpoint the integral is not wound up, and a setpoint drop
      takes the output to 0 at once through the proportional term.
    * `hold(output)` freezes the controller (safety, override, window): `update()` then returns `output` and
      nothing integrates. `resume()` hands back bumplessly: simple-pid's `set_auto_mode(True, last_output)` seeds
      the integral with the held output.
    * measured None → returns 0 W and freezes the integral (nothing is learnt from a missing reading); the
      derivative memory is dropped so the next reading does not produce a kick. The safety layer decides whether
      a fallback duty is applied instead.

    Default gains, scaled by max_w (tuned against `thermostat.sim.room` presets with one to two heaters):
        Kp = kp_per_k × max_w per K (default 0.6: full power at a 1.7 K error),
        Ki = Kp / ti_s (ti_s = 2400 s), Kd = Kp × td_s (td_s = 0: the sensor is quantised to 0.1 K and D only
        amplifies it; the lagged, slow room does not need it).
    Absolute `kp`, `ki`, `kd` (W/K, W/(K·s), W·s/K) override the scaled ones.

    Feed-forward (optional, off by default): with `ua_est_w_per_k` > 0 the demand gets
    + ua_est × (target − outdoor) when the outdoor temperature is known — the steady loss of the room, so the
    integral only has to learn the remainder (SmartThermostat's `ke` term, TPI's coef_ext in watts).
    """

    name = "pid"
    note = ""
    planned = False

    def __init__(
        self,
        *,
        max_w: float,
        unit_w: float | None = None,
        kp_per_k: float = 0.6,
        ti_s: float = 2400.0,
        td_s: float = 0.0,
        kp: float | None = None,
        ki: float | None = None,
        kd: float | None = None,
        max_dt_s: float = 300.0,
        ua_est_w_per_k: float = 0.0,
    ) -> None:
        _check_power(max_w)
        if ti_s <= 0 or td_s < 0 or max_dt_s <= 0 or ua_est_w_per_k < 0:
            raise ValueError("ti_s and max_dt_s must be > 0; td_s and ua_est_w_per_k >= 0")
        self.max_w = max_w
        self.kp = kp if kp is not None else kp_per_k * max_w
        self.ki = ki if ki is not None else self.kp / ti_s
        self.kd = kd if kd is not None else self.kp * td_s
        self.max_dt_s = max_dt_s
        self.ua_est_w_per_k = ua_est_w_per_k
        self._now = 0.0
        self._last_t: float | None = None
        self._held: float | None = None
        self._last_output = 0.0
        self._pid = PID(
            Kp=self.kp, Ki=self.ki, Kd=self.kd, setpoint=0.0, sample_time=None, output_limits=(0.0, max_w),
            differential_on_measurement=True, time_fn=self._clock,
        )

    def _clock(self) -> float:
        return self._now

    @property
    def held(self) -> bool:
        return self._held is not None

    @property
    def integral_w(self) -> float:
        """The integral term in watts (for state/diagnostics and restart persistence)."""
        return float(self._pid.components[1])

    @property
    def last_output(self) -> float:
        return self._last_output

    def learned_integral_w(self) -> float | None:
        return self.integral_w

    def restore_integral(self, value_w: float) -> None:
        """Resume after a restart with a saved integral term (clamped to the output limits)."""
        _set_integral(self._pid, min(self.max_w, max(0.0, float(value_w))))

    def _feed_forward(self, target: float, outdoor: float | None) -> float:
        if self.ua_est_w_per_k <= 0 or outdoor is None:
            return 0.0
        return min(self.max_w, max(0.0, self.ua_est_w_per_k * (target - outdoor)))

    def hold(self, output: float = 0.0) -> None:
        """Freeze: `update()` returns `output` (what the heaters are actually held at) and does not integrate."""
        self._held = min(self.max_w, max(0.0, output))
        self._pid.set_auto_mode(False)

    def resume(self, now: float | None = None) -> None:
        """Hand back bumplessly: the integral restarts from the held output (minus the feed-forward part)."""
        if self._held is None:
            return
        if now is not None:
            self._now = now
        held, self._held = self._held, None
        lo, _hi = self._pid.output_limits
        self._pid.set_auto_mode(True, last_output=held + (lo or 0.0))
        self._last_t = self._now
        self._last_output = held

    def update(self, now: float, measured: float | None, target: float, outdoor: float | None,
               forecast: Forecast | None = None) -> float:
        if self._held is not None:
            self._now = now
            self._last_t = now
            return self._held
        if measured is None:
            # Freeze: no integration; forget the derivative memory; do not advance _last_t so the next reading's
            # dt is capped by max_dt_s rather than spanning the gap.
            _forget_input(self._pid)
            self._last_output = 0.0
            return 0.0
        if self._last_t is None:
            dt = 1e-6
        else:
            dt = now - self._last_t
            if dt <= 0:
                return self._last_output
            if dt > self.max_dt_s:
                _forget_input(self._pid)  # long gap: no derivative across it
                dt = self.max_dt_s
        self._now = now
        self._last_t = now
        ff = self._feed_forward(target, outdoor)
        pid = self._pid
        pid.setpoint = target
        pid.output_limits = (-ff, self.max_w - ff)
        i_before = float(pid.components[1])
        out = pid(measured, dt=dt)
        p, i, d = pid.components
        raw = p + i + d
        if (raw > self.max_w - ff and i > i_before) or (raw < -ff and i < i_before):
            _set_integral(pid, i_before)
            out = min(self.max_w - ff, max(-ff, p + i_before + d))
        result = min(self.max_w, max(0.0, (out if out is not None else 0.0) + ff))
        self._last_output = result
        return result


# --------------------------------------------------------------------------------------------------------------


class BangBangController(_Holdable):
    """Baseline: Home Assistant core `generic_thermostat` driving ONE heater like a switch.

    As in `homeassistant/components/generic_thermostat/climate.py`:
    * too_cold: target ≥ T + cold_tolerance → switch on; too_hot: T ≥ target + hot_tolerance → switch off
      (defaults 0.3 / 0.3);
    * `min_cycle_duration` (default 5 min): the switch is not turned off before it has been on that long, nor on
      before it has been off that long;
    * sensor unavailable (measured None): the switch keeps its state (the known GT hazard; documented, kept).
    Demand when on is one heater at its top level: `unit_w`.
    """

    name = "bang-bang"

    def __init__(self, *, max_w: float, unit_w: float | None = None, cold_tolerance: float = 0.3,
                 hot_tolerance: float = 0.3, min_cycle_duration_s: float = 300.0) -> None:
        _check_power(max_w, unit_w)
        self.max_w = max_w
        self.unit_w = unit_w if unit_w is not None else max_w
        self.cold_tolerance = cold_tolerance
        self.hot_tolerance = hot_tolerance
        self.min_cycle_duration_s = min_cycle_duration_s
        self.on = False
        self._changed_at: float | None = None  # never switched: long enough

    def _long_enough(self, now: float) -> bool:
        return self._changed_at is None or now - self._changed_at >= self.min_cycle_duration_s

    def update(self, now: float, measured: float | None, target: float, outdoor: float | None,
               forecast: Forecast | None = None) -> float:
        if self._held is not None:
            # the switch is forced by the override; GT would see the switch state change
            forced_on = self._held > 0
            if forced_on != self.on:
                self.on, self._changed_at = forced_on, now
            return self._held
        if measured is not None:
            too_cold = target >= measured + self.cold_tolerance
            too_hot = measured >= target + self.hot_tolerance
            if self.on and too_hot and self._long_enough(now):
                self.on, self._changed_at = False, now
            elif not self.on and too_cold and self._long_enough(now):
                self.on, self._changed_at = True, now
        return self.unit_w if self.on else 0.0


# --------------------------------------------------------------------------------------------------------------


class TpiController(_Holdable):
    """Baseline: Versatile Thermostat TPI (`documentation/en/algorithms.md`).

    At each cycle start (every `cycle_s`, default 5 min):
        on_percent = coef_int·(target − T) + coef_ext·(target − T_out), clamped to 0..1
    (coef_int 0.6, coef_ext 0.01; the outdoor term is dropped when the outdoor temperature is unknown).
    Within the cycle the demand is max_w for the first on_percent·cycle_s seconds, then 0.
    Cycles are anchored at the first update. measured None at a cycle start: the last known temperature is used
    (VT keeps regulating on its last value until its own safety mode); with no temperature ever, 0.
    """

    name = "tpi"

    def __init__(self, *, max_w: float, unit_w: float | None = None, coef_int: float = 0.6, coef_ext: float = 0.01,
                 cycle_s: float = 300.0) -> None:
        _check_power(max_w)
        if cycle_s <= 0:
            raise ValueError("cycle_s must be > 0")
        self.max_w = max_w
        self.coef_int = coef_int
        self.coef_ext = coef_ext
        self.cycle_s = cycle_s
        self.on_percent = 0.0
        self._cycle_start: float | None = None
        self._last_measured: float | None = None

    def compute_on_percent(self, measured: float, target: float, outdoor: float | None) -> float:
        value = self.coef_int * (target - measured)
        if outdoor is not None:
            value += self.coef_ext * (target - outdoor)
        return min(1.0, max(0.0, value))

    def update(self, now: float, measured: float | None, target: float, outdoor: float | None,
               forecast: Forecast | None = None) -> float:
        if measured is not None:
            self._last_measured = measured
        if self._held is not None:
            self._cycle_start = None  # a new cycle starts at the hand-back
            return self._held
        if self._cycle_start is None or now - self._cycle_start >= self.cycle_s:
            if self._cycle_start is None:
                self._cycle_start = now
            else:
                self._cycle_start += math.floor((now - self._cycle_start) / self.cycle_s) * self.cycle_s
            temp = self._last_measured
            self.on_percent = 0.0 if temp is None else self.compute_on_percent(temp, target, outdoor)
        elapsed = now - self._cycle_start
        return self.max_w if elapsed < self.on_percent * self.cycle_s else 0.0
