"""The `mpc` controller: plan the room's heat over the next hours on the learned model (pure; no I/O).

Every `replan_s` (10 min), and at once when a reading is `surprise_k` (0.6 K) away from what the plan predicted
for it (a window opened, a heater failed), it solves a linear program over `horizon_h` (18 h) in steps of `step_s`
(15 min) for the first `fine_h` (3 h), twice as long after that, on the
room's identified thermal model (`thermostat.core.thermal_model`), and returns the first step's power as the heat
demand; the allocator turns it into levels on the real ladders, with the heaters' wear rules (min on/off, dwell,
wake cap) enforced by the heater state machines, exactly as for pid.

The program (HiGHS through highspy, built once per model: `_Program`), with u_k the room's power in step k and
T_k the predicted air temperature at its end:

    minimise   Σ w_discomfort·(lo_k + hi_k)·Δh  +  Σ price_k·u_k·Δh/1000  +  w_move·Σ |u_k − u_{k−1}|/max_w
    subject to T = free response + G·u                   (G: the model's step responses, exact discretisation)
               lo_k ≥ (target_k − 0.5) − T_k,            hi_k ≥ T_k − (target_k + 1.0)           (the KPI's band)
               2·lo_k ≥ (target_k − 0.5 + margin_k) − T_k,
               2·hi_k ≥ T_k − (target_k + 1.0 − margin_high_k),             lo, hi ≥ 0
               min_w ≤ u_k ≤ max_w

* targets come from the forecast (the schedule's future blocks), so a comfort block is heated *into* before it
  starts (no fixed lead, no +1 K cap) and the room coasts before a setback because the band then falls;
* the outdoor temperature is the forecast when given, else persistence (the last measured value);
* the price per kWh (a tariff or a dynamic price) weighs the energy, so with building mass as storage heat moves
  into cheap hours whenever the comfort band allows it; without a price every hour costs 1;
* the move term makes the plan prefer steady power: fewer level changes and wakes;
* `min_w` is the power the room cannot go below (heaters that cannot stop: Nano 3S without a plug);
* margins (hedged band edges): the room's real temperature will differ from the plan's (model error, sensor
  noise, the ripple of a heater cycling between standby and its lowest level), so an edge of the band costs
  already within `margin_k` (0.3 K, lower edge) or `margin_high_k` (0.2 K, upper) of it. Within ±margin of an
  edge the cost is the chord of the expected cost under an error of ±margin: half the KPI's slope, from 0 at
  margin inside the band to margin at margin outside it; further out it is the KPI's own. The plan then holds the
  room about a margin inside the band (half a kelvin-hour per kelvin-hour is much more than the energy it takes),
  yet where it means to leave the band (the coast before a setback, the last hour before a comfort block) a
  kelvin-hour outside costs exactly one, as in the KPI: hard margins added on top of the band made it cost two,
  and the plan coasted too late.
* on/off: the heaters' power below their lowest running level exists only as standby or that level, and each wake
  costs; when the plan asks for less than the lowest level, or for heat while the heaters are off, it is planned
  both ways for the next `dwell_s` and the cheaper kept (`_on_or_off`); the choice then holds for the dwell
  (a stop gives way when the plan needs real heat, a start when the room reaches the top of the band), and the
  demand is marked `planned` so the allocator carries a stop out without its own long wait.

State: the air node is the measured temperature; the model's own daytime free heat (the sun its fit learnt,
`ThermalModel.gains_day_w`, read on local time: `Forecast.day_offset_s`) is a known input, ahead and in the
estimate; the mass node and a slow disturbance (watts the model does not know: clouds, people, model error) are
estimated by a small observer that compares each new reading with the model's
prediction since the last one (offset-free MPC): C_air × error / `disturbance_tau_s` (1 h) is added to the
disturbance per reading. Its hourly means are kept by hour of day (each new day blended in with `profile_weight`);
once every hour has been seen the plan takes the disturbance ahead from that daily profile, with the estimate's
deviation from the profile now fading out over `deviation_tau_s` (5 h): the planner cuts the heat as the daily sun
comes instead of after it warmed the room, and a one-off (a routine that did not come today, a passing cloud) does
not colour the whole horizon. Before the profile is known the estimate now is held for the horizon.
Without a model, or one below the confidence threshold, or without a reading, the controller runs its built-in pid
and says so in `note` (the room's reason).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np

# the core class, not highspy.Highs: the wrapper's logging callback prints HiGHS's banner to stdout while it is being
# constructed, before output can be switched off
from highspy._core import _Highs

from thermostat.core.control import Forecast, PidController, _check_power
from thermostat.core.thermal_model import ThermalModel


class _Program:
    """The planner's linear program for one room model, kept in a HiGHS instance between plans.

    Its constraint matrix (the model's step responses on the planning grid) changes only with the model; a plan
    changes costs (prices), column bounds (the on/off blocks) and right-hand sides (the free response, the band),
    and HiGHS's simplex starts from the previous plan's basis: 0.4 ms a program against 2.1 ms through
    `scipy.optimize.linprog`, which builds and solves each one from nothing (the same optima on all 2,156 programs
    of a `mild_week` run). Without presolve: these programs are small and dense (about 170 columns, 250 rows), and
    presolve took 40 % of a solve without shrinking them."""

    def __init__(self, a_ub: np.ndarray[Any, Any]) -> None:
        n_rows, n_cols = a_ub.shape
        self._cols = np.arange(n_cols, dtype=np.int32)
        self._rows = np.arange(n_rows, dtype=np.int32)
        self._row_lower = np.full(n_rows, -highspy.kHighsInf)
        self._highs = _Highs()
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("presolve", "off")
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_cols, n_rows
        lp.col_cost_ = np.zeros(n_cols)
        lp.col_lower_ = np.zeros(n_cols)
        lp.col_upper_ = np.full(n_cols, highspy.kHighsInf)
        lp.row_lower_ = self._row_lower
        lp.row_upper_ = np.zeros(n_rows)
        from scipy.sparse import csc_array  # on the first plan (see tests/test_imports.py)

        matrix = csc_array(a_ub)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        self._highs.passModel(lp)
        self._optimal = highspy.HighsModelStatus.kOptimal

    def solve(self, c: np.ndarray[Any, Any], b_ub: np.ndarray[Any, Any], lower: np.ndarray[Any, Any],
              upper: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], float] | None:
        """min c·x subject to A x ≤ b_ub and lower ≤ x ≤ upper (inf: unbounded): (x, objective), None if HiGHS
        finds no optimum."""
        h = self._highs
        h.changeColsCost(len(self._cols), self._cols, c)
        h.changeColsBounds(len(self._cols), self._cols, lower, upper)
        h.changeRowsBounds(len(self._rows), self._rows, self._row_lower, b_ub)  # type: ignore[attr-defined]  # not in the stubs
        h.run()
        if h.getModelStatus() != self._optimal:
            return None
        return np.asarray(h.getSolution().col_value, dtype=float), float(h.getInfo().objective_function_value)


@dataclass(frozen=True)
class _Responses:
    """A room model's responses on the planning grid (`MpcController._program`)."""

    g: np.ndarray[Any, Any]  # air at the end of step k per watt held during step j
    from_state: np.ndarray[Any, Any]  # ... per kelvin of the state now
    from_outdoor: np.ndarray[Any, Any]  # ... per kelvin outdoors during step j
    from_one: np.ndarray[Any, Any]  # ... from the model's constant free gain
    program: _Program


@dataclass(frozen=True)
class Plan:
    """The latest plan: start time, step, power per step (W) and the predicted air temperature at step ends."""

    start: float
    steps_s: tuple[float, ...]
    power_w: tuple[float, ...]
    air_c: tuple[float, ...]
    cost: float
    discomfort_kh: float
    air_start_c: float = math.nan  # the air temperature the plan started from

    def air_at(self, t: float) -> float:
        """The planned air temperature at time t (linear within a step; the last step's end beyond the plan)."""
        start, before = self.start, self.air_start_c
        for a, d in zip(self.air_c, self.steps_s, strict=True):
            if t < start + d:
                return before + (a - before) * max(0.0, t - start) / d
            start, before = start + d, a
        return before

    def power_at(self, t: float) -> float:
        """The planned power at time t (the last step's beyond the plan)."""
        end = self.start
        for p, d in zip(self.power_w, self.steps_s, strict=True):
            end += d
            if t < end:
                return p
        return self.power_w[-1]

    def summary(self) -> dict[str, float]:
        return {
            "plan_next_w": round(self.power_w[0], 0) if self.power_w else 0.0,
            "plan_energy_kwh": round(sum(p * d for p, d in zip(self.power_w, self.steps_s, strict=True)) / 3.6e6, 2),
            "plan_min_c": round(min(self.air_c), 2) if self.air_c else math.nan,
            "plan_max_c": round(max(self.air_c), 2) if self.air_c else math.nan,
            "plan_discomfort_kh": round(self.discomfort_kh, 2),
        }


class MpcController:
    """See the module docstring. `set_model()` gives (or replaces) the learned room model."""

    name = "mpc"

    def __init__(
        self,
        *,
        max_w: float,
        unit_w: float | None = None,
        min_w: float = 0.0,
        low_w: float | None = None,
        model: ThermalModel | None = None,
        step_s: float = 900.0,
        fine_h: float = 3.0,
        horizon_h: float = 18.0,
        replan_s: float = 600.0,
        margin_k: float = 0.3,
        margin_high_k: float = 0.2,
        w_discomfort: float = 20.0,
        w_move: float = 0.02,
        band_low_k: float = 0.5,
        band_high_k: float = 1.0,
        observer_gain: float = 0.3,
        disturbance_tau_s: float = 3600.0,
        profile_weight: float = 0.5,
        dwell_s: float = 3600.0,
        wake_cost_kh: float = 0.3,
        surprise_k: float = 0.6,
        deviation_tau_s: float = 5 * 3600.0,
    ) -> None:
        _check_power(max_w)
        if not 0.0 <= min_w <= max_w:
            raise ValueError(f"min_w must be within 0..max_w ({max_w}), got {min_w!r}")
        if low_w is not None and not 0.0 < low_w <= max_w:
            raise ValueError(f"low_w must be within 0 < low_w <= max_w ({max_w}), got {low_w!r}")
        if disturbance_tau_s <= 0 or not 0.0 < profile_weight <= 1.0:
            raise ValueError("disturbance_tau_s must be > 0 and profile_weight within (0, 1]")
        if not surprise_k > 0 or not deviation_tau_s > 0:
            raise ValueError("surprise_k and deviation_tau_s must be > 0 (math.inf: never / held)")
        if step_s <= 0 or horizon_h * 3600.0 < 2 * step_s or replan_s <= 0:
            raise ValueError("step_s and replan_s must be > 0 and the horizon at least two steps")
        self.max_w = max_w
        self.min_w = min_w
        self.low_w = low_w if low_w is not None and low_w > min_w + 1.0 else None
        self.dwell_s = dwell_s
        self.wake_cost_kh = wake_cost_kh
        self.step_s = step_s
        self.fine_h = fine_h
        self.n_steps = round(horizon_h * 3600.0 / step_s)
        self.replan_s = replan_s
        self.surprise_k = surprise_k
        self.deviation_tau_s = deviation_tau_s
        self.margin_k = margin_k
        self.margin_high_k = margin_high_k
        self.w_discomfort = w_discomfort
        self.w_move = w_move
        self.band_low_k = band_low_k
        self.band_high_k = band_high_k
        self.observer_gain = observer_gain
        self.disturbance_tau_s = disturbance_tau_s
        self.profile_weight = profile_weight
        self.pid = PidController(max_w=max_w, unit_w=unit_w)
        self.model: ThermalModel | None = None
        self.plan: Plan | None = None
        self.note = "mpc: no room model yet, pid fallback"
        self.solves = 0
        self.planned = False  # the last demand came from the plan (see Controller.planned)
        self._held: float | None = None
        self._x: np.ndarray[Any, Any] | None = None  # [air, mass] estimate
        self._disturbance_w = 0.0
        # the unknown heat by hour of day (sun, routines), learnt from the estimate; used once every hour was seen
        self._profile = np.zeros(24)
        self._profile_seen = np.zeros(24, dtype=bool)
        self._hour_bin: int | None = None
        self._hour_sum = 0.0
        self._hour_n = 0
        self._last_t: float | None = None
        self._last_u = 0.0
        self._last_outdoor: float | None = None
        self._day_offset_s = 0.0  # controller clock + this = local time (the model's day profile), from the forecast
        self._last_plan_t = -math.inf
        self._switched: tuple[bool, float] | None = None  # the last on/off switch (on?) and until when it holds
        self._cache: dict[float, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
        self._lp: _Responses | None = None  # per model: the responses on the grid and the program (_program)
        if model is not None:
            self.set_model(model)

    # -- model ---------------------------------------------------------------------------------------------------

    def set_model(self, model: ThermalModel | None) -> None:
        """Use this model from the next update (None or a model below the confidence threshold: pid)."""
        self.model = model
        self._cache.clear()
        self._lp = None
        self._last_plan_t = -math.inf
        if model is None:
            self.note = "mpc: no room model yet, pid fallback"
        elif not model.confident:
            self.note = f"mpc: room model confidence {model.confidence:.2f} too low, pid fallback"
        if self._x is not None and model is not None and len(self._x) != model.order:
            self._x = None

    @property
    def active(self) -> bool:
        return self.model is not None and self.model.confident

    def _discrete(self, dt: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        key = round(dt, 3)
        hit = self._cache.get(key)
        if hit is None:
            assert self.model is not None
            hit = self.model.discrete(dt)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    # -- controller interface -------------------------------------------------------------------------------------

    @property
    def held(self) -> bool:
        return self._held is not None

    def hold(self, output: float = 0.0) -> None:
        self._held = min(self.max_w, max(0.0, output))
        self.pid.hold(output)

    def resume(self, now: float | None = None) -> None:
        if self._held is None:
            return
        self._last_u = self._held
        self._held = None
        self.pid.resume(now)
        self._last_plan_t = -math.inf  # whatever was held, plan afresh

    def learned_integral_w(self) -> float | None:
        return self.pid.learned_integral_w()  # the pid fallback's integral is what carries over a restart

    def restore_integral(self, value_w: float) -> None:
        self.pid.restore_integral(value_w)

    def update(self, now: float, measured: float | None, target: float, outdoor: float | None,
               forecast: Forecast | None = None) -> float:
        self.planned = False
        if self._held is not None:
            self._observe(now, None, outdoor)
            self._last_u = self._held
            return self._held
        if outdoor is not None and math.isfinite(outdoor):
            self._last_outdoor = outdoor
        if forecast is not None:
            self._day_offset_s = forecast.day_offset_s
        if not self.active or measured is None:
            if self.active:
                self.note = "mpc: no reading, pid fallback"
            out = self.pid.update(now, measured, target, outdoor)
            self._observe(now, measured, outdoor)
            self._last_u = out
            return out
        self._observe(now, measured, outdoor)
        if (self.plan is None or now - self._last_plan_t >= self.replan_s or now < self._last_plan_t
                or abs(measured - self.plan.air_at(now)) > self.surprise_k):
            self._replan(now, target, forecast)
        assert self.plan is not None
        u = self.plan.power_at(now)
        self.note = "mpc"
        self.planned = True
        self._last_u = u
        # keep the fallback bumpless: pid follows with this output as its integral would
        self.pid.hold(u)
        self.pid.resume(now)
        return u

    # -- state estimate ---------------------------------------------------------------------------------------------

    def _observe(self, now: float, measured: float | None, outdoor: float | None) -> None:
        """Propagate the state over the time since the last call with the power then in force, then correct it."""
        model = self.model
        if model is None:
            self._last_t = now
            return
        out = self._last_outdoor if self._last_outdoor is not None else (outdoor if outdoor is not None else 5.0)
        if self._x is None or self._last_t is None or now - self._last_t > 6 * 3600.0:
            if measured is None:
                self._last_t = now
                return
            if model.order == 1:
                self._x = np.array([measured])
            else:
                self._x = np.array([measured, model.steady_mass_c(measured, out)])
            self._disturbance_w = 0.0
            self._last_t = now
            return
        dt = now - self._last_t
        if dt > 0:
            ad, bd = self._discrete(dt)
            # heat (with the unknown heat and the model's daytime free heat at the interval's middle), outdoor,
            # the constant free gain
            u = np.array([self._last_u + self._disturbance_w + self.day_gain_at(now - dt / 2), out, 1.0])
            self._x = ad @ self._x + bd[:, :3] @ u
            self._last_t = now
        if measured is not None:
            err = measured - float(self._x[0])
            if model.order == 2:
                self._x[1] += self.observer_gain * err * min(1.0, dt / 3600.0)
            self._x[0] = measured
            # integrate the error into the unknown-heat estimate: the reading moved by err more than the model said,
            # which over dt is C_air·err/dt watts the model did not know; low-pass that over disturbance_tau_s
            # (bounded to the room's capacity)
            self._disturbance_w += model.c_air_j_per_k * err / self.disturbance_tau_s
            lim = self.max_w
            self._disturbance_w = min(lim, max(-lim, self._disturbance_w))
            self._learn_profile(now)

    def day_gain_at(self, t: float) -> float:
        """The model's daytime free heat (the sun it learnt from the history) at time t of the controller's clock."""
        if self.model is None:
            return 0.0
        return self.model.day_gain_w(((t + self._day_offset_s) % 86400.0) / 3600.0)

    def day_gains_at(self, ts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """`day_gain_at` at each of these times."""
        if self.model is None:
            return np.zeros(len(ts))
        return self.model.day_gains_w(((ts + self._day_offset_s) % 86400.0) / 3600.0)

    def _learn_profile(self, now: float) -> None:
        """Hourly means of the unknown-heat estimate by hour of day (the controller's clock mod 24 h), each
        hour's mean blended into its slot with `profile_weight`. The estimate lags the heat it follows by about
        its own time constant, so it is filed under that much earlier."""
        b = int(((now - self.disturbance_tau_s) % 86400.0) // 3600.0)
        if b != self._hour_bin:
            if self._hour_bin is not None and self._hour_n >= 10:
                mean = self._hour_sum / self._hour_n
                h = self._hour_bin
                if self._profile_seen[h]:
                    self._profile[h] += self.profile_weight * (mean - self._profile[h])
                else:
                    self._profile[h], self._profile_seen[h] = mean, True
            self._hour_bin, self._hour_sum, self._hour_n = b, 0.0, 0
        self._hour_sum += self._disturbance_w
        self._hour_n += 1

    def profile_at(self, t: float) -> float | None:
        """The learnt daily profile of the unknown heat at time t (linear between hour centres), or None until
        every hour of the day has been seen."""
        if not self._profile_seen.all():
            return None
        return float(self._profile_at(np.array([t]))[0])

    def _profile_at(self, ts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        x = ((ts % 86400.0) / 3600.0 - 0.5) % 24.0
        i = np.minimum(x.astype(int), 23)
        f = x - i
        return np.asarray((1.0 - f) * self._profile[i] + f * self._profile[(i + 1) % 24])

    # -- the plan ----------------------------------------------------------------------------------------------------

    def _grid(self) -> np.ndarray[Any, Any]:
        """Step lengths: `step_s` for the first `fine_h` hours, then twice that up to the horizon."""
        fine = min(self.n_steps, round(self.fine_h * 3600.0 / self.step_s))
        coarse = max(0, (self.n_steps - fine) // 2)
        return np.array([self.step_s] * fine + [2 * self.step_s] * coarse)

    def _program(self, steps: np.ndarray[Any, Any]) -> _Responses:
        """The room's responses on the planning grid and the program built on them, made once per model (the grid
        does not change): G, air at the end of step k per watt held during step j (modal form, exact), and the free
        response's parts, so that T = free + G u with free = from_state x + from_outdoor T_out + G d + from_one."""
        if self._lp is None:
            assert self.model is not None
            n = len(steps)
            a, b = self.model.matrix()
            mu, v = np.linalg.eig(a)
            mu, v = mu.real, v.real
            w = np.linalg.solve(v, b[:, 0])
            ends = np.cumsum(steps)
            after = ends[:, None] - ends[None, :]  # t_k − e_j
            gain = v[0] * w * np.expm1(mu[None, :] * steps[:, None]) / mu[None, :]  # (j, mode)
            g = np.einsum("kji,ji->kj", np.exp(mu[None, None, :] * np.clip(after, 0, None)[:, :, None]), gain)
            g = np.where(after >= 0, g, 0.0)
            # the free response, step by step from each unit state, each step's unit outdoor temperature, and the
            # constant input (the model's own free gain), all at once: columns [state..., outdoor_0.., one]
            states = a.shape[0]
            x = np.zeros((states, states + n + 1))
            x[:, :states] = np.eye(states)
            free = np.empty((n, states + n + 1))
            for k in range(n):
                ad, bd = self._discrete(float(steps[k]))
                x = ad @ x
                x[:, states + k] += bd[:, 1]
                x[:, -1] += bd[:, 2]
                free[k] = x[0]
            eye = np.eye(n)
            zero = np.zeros((n, n))
            diff = eye - np.eye(n, k=-1)
            a_ub = np.block([
                [-g, -eye, zero, zero],  # band_low − T ≤ lo
                [g, zero, -eye, zero],  # T − band_high ≤ hi
                [-g, -2 * eye, zero, zero],  # band_low + margin − T ≤ 2·lo
                [g, zero, -2 * eye, zero],  # T − band_high + margin_high ≤ 2·hi
                [diff, zero, zero, -eye],  # u_k − u_{k−1} ≤ s_k
                [-diff, zero, zero, -eye],
            ])
            self._lp = _Responses(g, free[:, :states], free[:, states:states + n], free[:, -1], _Program(a_ub))
        return self._lp

    def _replan(self, now: float, target: float, forecast: Forecast | None) -> None:
        assert self.model is not None and self._x is not None
        steps = self._grid()
        n = len(steps)
        ends = now + np.cumsum(steps)
        starts = ends - steps
        mids = starts + steps / 2
        persist = self._last_outdoor if self._last_outdoor is not None else 5.0
        if forecast is None:
            targets, outdoor, price = np.full(n, target), np.full(n, persist), np.ones(n)
        else:
            targets = forecast.targets_at(ends, target)
            outdoor, price = forecast.outdoors_at(mids, persist), forecast.prices_at(mids, 1.0)
        # the unknown heat ahead: today's estimate, or once the daily profile is known the profile plus the estimate's
        # deviation from it now, fading; on top of it the model's daytime free heat
        disturbance = np.full(n, self._disturbance_w)
        now_profile = self.profile_at(now)
        if now_profile is not None:
            ahead = self._profile_at(mids)
            fade = np.exp(-(mids - now) / self.deviation_tau_s)
            disturbance = np.clip(ahead + (self._disturbance_w - now_profile) * fade, -self.max_w, self.max_w)
        disturbance = disturbance + self.day_gains_at(mids)
        responses = self._program(steps)
        g, program = responses.g, responses.program
        # free response (no heat)
        free = responses.from_state @ self._x + responses.from_outdoor @ outdoor + g @ disturbance + responses.from_one
        hours = steps / 3600.0
        # variables: u, lo, hi (the hedged distance outside the band), s (moves); all constraints A x ≤ b (_program)
        c = np.concatenate([
            price * hours / 1000.0,
            self.w_discomfort * hours,
            self.w_discomfort * hours,
            np.full(n, self.w_move / self.max_w),
        ])
        band_low = targets - self.band_low_k
        band_high = targets + self.band_high_k
        first = np.zeros(n)
        first[0] = self._last_u
        b_ub = np.concatenate([free - band_low, band_high - free, free - band_low - self.margin_k,
                               band_high - self.margin_high_k - free, first, -first])
        lower = np.concatenate([np.full(n, self.min_w), np.zeros(3 * n)])
        upper = np.concatenate([np.full(n, self.max_w), np.full(3 * n, np.inf)])
        self._last_plan_t = now
        held_on = self._switched[0] if self._switched is not None and now < self._switched[1] else None
        too_warm = float(self._x[0]) > band_high[0] - self.margin_high_k
        # the last switch holds for its dwell (a start gives way when the room reaches the top of the band, a stop
        # when the plan needs real heat): a start that holds needs only the plan that runs through it
        keep_running = self.low_w is not None and held_on is True and not too_warm
        held = self._block(program, c, b_ub, lower, upper, on=True) if keep_running else None
        solved = None
        if held is None:
            solved = program.solve(c, b_ub, lower, upper)
            self.solves += 1
        if held is not None:
            u = held[0]
        elif solved is None:
            # cannot happen for this always-feasible program; be safe: hold the last power for this period
            u = np.full(n, min(self.max_w, max(self.min_w, self._last_u)))
        else:
            u = np.clip(solved[0][:n], self.min_w, self.max_w)
            if self.low_w is not None and not keep_running:
                running = self._last_u >= self.low_w - 1e-6
                wants_heat = u[0] >= self.low_w - 1e-6
                if held_on is False and not wants_heat:
                    u = self._on_or_off(u, solved[1], program, c, b_ub, lower, upper, running, held_off=True)
                elif not wants_heat or not running:
                    u = self._on_or_off(u, solved[1], program, c, b_ub, lower, upper, running)
                    on = bool(u[0] >= self.low_w - 1e-6)
                    if on != running:
                        self._switched = (on, now + self.dwell_s)
        air = free + g @ u
        disc = float(np.sum((np.maximum(0.0, targets - self.band_low_k - air)
                             + np.maximum(0.0, air - targets - self.band_high_k)) * hours))
        self.plan = Plan(now, tuple(float(v) for v in steps), tuple(float(v) for v in u),
                         tuple(float(v) for v in air), float(c[:n] @ u), disc, float(self._x[0]))

    def _on_or_off(self, u: np.ndarray[Any, Any], u_j: float, program: _Program, c: np.ndarray[Any, Any],
                   b_ub: np.ndarray[Any, Any], lower: np.ndarray[Any, Any], upper: np.ndarray[Any, Any],
                   running: bool, held_off: bool = False) -> np.ndarray[Any, Any]:
        """Below the lowest running level (low_w) power exists only as on/off, and waking costs: decide it. Called
        when the plan asks for less than low_w, or for heat while the heaters are off. Plan both for the next
        `dwell_s` — the heaters off (min_w) or running (low_w .. max_w) — and keep the cheaper, each wake from off
        costing `wake_cost_kh` of discomfort: the wake now (on, from off) and the one the rest of the plan would
        need later (it heats again after being off). Without the later one, stopping would always look free, and
        a plan that tops the room up every hour would wake the heater every hour.

        `u` and `u_j` are the unconstrained plan and its cost. When it already keeps the heaters off (or running)
        through the block it is that candidate itself; off, with the heaters off, it is the answer: running instead
        could only cost more in the program, and a wake. `held_off`: the last stop holds for its dwell, only the
        plan that keeps the heaters off is a candidate."""
        assert self.low_w is not None
        n = len(u)
        m = self._dwell_steps(n)
        off_already = bool(np.all(u[:m] <= self.min_w + 1e-6))
        on_already = bool(np.all(u[:m] >= self.low_w - 1e-6))
        if off_already and not running:
            return u
        best, best_j = u, math.inf
        for on in (False,) if held_off else (False, True):
            if (not on and off_already) or (on and on_already):
                plan, fun = u, u_j
            else:
                block = self._block(program, c, b_ub, lower, upper, on=on)
                if block is None:
                    continue
                plan, fun = block
            # running or not, step by step: now, the decided block, then the plan's own continuation (a continuous
            # power of at least half the lowest level counts as running: that is how it would be cycled)
            states = [running, on] + [bool(p >= self.min_w + 0.5 * (self.low_w - self.min_w)) for p in plan[m:]]
            wakes = sum(1 for was, now_on in itertools.pairwise(states) if now_on and not was)
            j = fun + self.w_discomfort * self.wake_cost_kh * wakes
            if j < best_j:
                best, best_j = plan, j
        return best

    def _dwell_steps(self, n: int) -> int:
        """The plan steps an on/off block holds for (`dwell_s`, at least one, at most the plan's `n`)."""
        return min(n, max(1, round(self.dwell_s / self.step_s)))

    def _block(self, program: _Program, c: np.ndarray[Any, Any], b_ub: np.ndarray[Any, Any],
               lower: np.ndarray[Any, Any], upper: np.ndarray[Any, Any], *, on: bool
               ) -> tuple[np.ndarray[Any, Any], float] | None:
        """The plan with the heaters running (low_w .. max_w) or off (min_w) for the next `dwell_s`: (power per
        step, its cost), None if the program has no optimum."""
        assert self.low_w is not None
        n = len(lower) // 4
        m = self._dwell_steps(n)
        block_lower, block_upper = lower.copy(), upper.copy()
        block_lower[:m] = self.low_w if on else self.min_w
        block_upper[:m] = self.max_w if on else self.min_w
        solved = program.solve(c, b_ub, block_lower, block_upper)
        self.solves += 1
        if solved is None:
            return None
        return np.clip(solved[0][:n], self.min_w, self.max_w), solved[1]


def plan_series(plan: Plan | None) -> Sequence[tuple[float, float, float]]:
    """(time, power W, predicted air °C) per plan step, for plots and state."""
    if plan is None:
        return ()
    ends = plan.start + np.cumsum(plan.steps_s)
    return tuple((float(t), p, a) for t, p, a in zip(ends, plan.power_w, plan.air_c, strict=True))
