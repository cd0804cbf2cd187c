"""The clairvoyant bound: the least discomfort any controller could reach on a scenario's room.

`solve_oracle(scenario)` plans the heater power for the whole run with perfect knowledge of the weather, the
gains, the window openings and the schedule, on the bench's own room model discretised exactly as the bench
steps it, and with the heaters' capacity as continuous power: within [base, max] where max is the sum of the
top levels and base the heat of the heaters that cannot be switched off (a model without standby and without a
smart plug runs at least at its lowest level). It is a linear program solved with HiGHS
(`scipy.optimize.linprog(method="highs")`):

    minimise    Σ_i w_i (lo_i + hi_i)  +  λ Σ_i P_i dt          (K·h of discomfort, then kWh × λ)
    subject to  x_{i+1} = M(window_i) x_i + b(window_i) P_i + c_i,   x = (T_air, T_mass), x_0 = the room's start
                lo_i ≥ (target_i − 0.5) − T_air_i,  hi_i ≥ T_air_i − (target_i + 1.0),  lo, hi ≥ 0
                base ≤ P_i ≤ max

with w_i the trapezoid weights of `core/kpi.py` (dt/2 at the ends) and λ = `ENERGY_WEIGHT_KH_PER_KWH`, small
enough that comfort always wins and large enough that, among the comfort-optimal plans, the cheapest is taken.
The step map M, b, c is read off `Room.step` itself (the model is linear: stepping unit states and unit inputs
gives its matrices), so the LP and the simulator agree to rounding.

The row the bench reports is not the LP objective: `run_oracle` plays the LP's power trajectory through a fresh
`Room` and the same `Kpi` the controllers are scored with, so the numbers are comparable.

Long runs (a heating season) are solved in windows of `WINDOW_STEPS` steps with `LOOKAHEAD_STEPS` more seen
ahead; only the window is kept, its end state starts the next one. With three days of look-ahead against a
building-mass time constant of one to two days the loss against one solve of the whole season is negligible,
and it can only make the bound looser (higher), never better than the true optimum.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from thermostat.core.kpi import Kpi
from thermostat.sim.bench import BenchResult, Trace, _schedule, _TargetCache
from thermostat.sim.room import Room, RoomParams
from thermostat.sim.scenario import Scenario

ENERGY_WEIGHT_KH_PER_KWH = 0.01  # 1 kWh costs as much as 0.01 K·h of discomfort: energy only breaks ties
BAND_LOW_K = 0.5  # the comfort band of core/kpi.py
BAND_HIGH_K = 1.0
WINDOW_STEPS = 7 * 1440  # a week of 60-s steps per LP
LOOKAHEAD_STEPS = 3 * 1440  # plus three days seen ahead


class OracleError(RuntimeError):
    """The LP could not be solved (HiGHS status and message)."""


@dataclass(frozen=True)
class StepMap:
    """x' = m @ x + b · P_kw + g @ (outdoor_c, gains_w) for one bench step, window closed / open."""

    m: np.ndarray  # 2×2
    b: np.ndarray  # 2 (K per kW)
    g: np.ndarray  # 2×2


@dataclass(frozen=True)
class OracleInputs:
    """The run as the bench samples it: step i covers [t_i, t_i + dt) with the inputs taken at t_i."""

    dt: float
    t: np.ndarray  # N + 1 sample times, s
    outdoor_c: np.ndarray
    gains_w: np.ndarray
    window: np.ndarray  # bool
    target_c: np.ndarray
    base_w: float
    max_w: float
    air0_c: float
    mass0_c: float


@dataclass(frozen=True)
class OraclePlan:
    power_w: np.ndarray  # N + 1: power held over step i (the last sample repeats the one before)
    air_c: np.ndarray  # N + 1: the LP's predicted air temperature
    mass_c: np.ndarray
    objective_kh: float  # the LP's own discomfort (K·h), for the consistency check
    solve_s: float


def step_map(params: RoomParams, dt: float, window: bool, max_substep_s: float = 60.0) -> StepMap:
    """The bench step of `Room.step` as an affine map, read off the model by stepping unit states and inputs."""

    def run(air: float, mass: float, heat_w: float, outdoor_c: float, gains_w: float) -> np.ndarray:
        room = Room(params=params, air_c=air, mass_c=mass, max_substep_s=max_substep_s)
        room.step(dt, heat_w, outdoor_c, gains_w, window)
        return np.array([room.air_c, room.mass_c])

    m = np.column_stack([run(1.0, 0.0, 0.0, 0.0, 0.0), run(0.0, 1.0, 0.0, 0.0, 0.0)])
    b = run(0.0, 0.0, 1000.0, 0.0, 0.0)  # per kW
    g = np.column_stack([run(0.0, 0.0, 0.0, 1.0, 0.0), run(0.0, 0.0, 0.0, 0.0, 1.0)])
    return StepMap(m=m, b=b, g=g)


def heater_bounds_w(scenario: Scenario) -> tuple[float, float]:
    """(base, max): the heat of the heaters that cannot be switched off, and the sum of the top levels."""
    base = 0.0
    for _, h in scenario.heater_list():
        if h.spec.has_standby or h.has_plug:
            continue
        rungs = h.levels_w.values() if h.levels_w else [lv.wall_w for lv in h.spec.levels]
        base += min(rungs)
    return base, scenario.max_w


def oracle_inputs(scenario: Scenario) -> OracleInputs:
    """Sample times, weather, gains, windows and the schedule's target exactly as `bench.run_one` does."""
    schedule = _schedule(scenario)
    start = scenario.start if scenario.start.tzinfo else scenario.start.replace(tzinfo=schedule.tz)
    targets = _TargetCache(schedule, start.astimezone(UTC))
    outdoor = scenario.build_outdoor()
    gains = scenario.build_gains()
    dt = scenario.step_s
    n = math.ceil(scenario.duration_s / dt)
    t = np.arange(n + 1) * dt
    room = scenario.build_room()
    base, top = heater_bounds_w(scenario)
    return OracleInputs(
        dt=dt,
        t=t,
        outdoor_c=np.array([outdoor.at(float(x)) for x in t]),
        gains_w=np.array([gains.at(float(x)) for x in t]),
        window=np.array([scenario.window_open(float(x)) for x in t], dtype=bool),
        target_c=np.array([targets.at(float(x))[0].temp for x in t]),
        base_w=base,
        max_w=top,
        air0_c=room.air_c,
        mass0_c=room.mass_c,
    )


def _solve_window(
    inp: OracleInputs, maps: dict[bool, StepMap], first: int, k: int, x0: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """LP over steps first .. first + k (k steps, k + 1 samples). Returns power (k, W), air, mass (k + 1), K·h."""
    n_total = len(inp.t) - 1
    idx = np.arange(first, first + k + 1)
    win = inp.window[idx[:-1]]
    m = np.where(win[:, None, None], maps[True].m, maps[False].m)  # k×2×2
    b = np.where(win[:, None], maps[True].b, maps[False].b)  # k×2
    g = np.where(win[:, None, None], maps[True].g, maps[False].g)
    forcing = np.stack([inp.outdoor_c[idx[:-1]], inp.gains_w[idx[:-1]]], axis=1)  # k×2
    c = np.einsum("kij,kj->ki", g, forcing)  # k×2

    # variable layout: Ta_0..Ta_k | Tm_0..Tm_k | P_0..P_{k-1} (kW) | lo_0..lo_k | hi_0..hi_k
    ta = np.arange(k + 1)
    tm = ta + (k + 1)
    p = np.arange(k) + 2 * (k + 1)
    lo = np.arange(k + 1) + 2 * (k + 1) + k
    hi = lo + (k + 1)
    n_var = int(hi[-1]) + 1
    steps = np.arange(k)

    rows, cols, vals = [], [], []

    def put(r: np.ndarray, col: np.ndarray, v: np.ndarray | float) -> None:
        rows.append(r)
        cols.append(col)
        vals.append(np.broadcast_to(v, r.shape).astype(float))

    # air rows 0..k-1, mass rows k..2k-1: x_{i+1} − M x_i − b P_i = c_i
    for node, (nxt, r0) in enumerate(((ta, 0), (tm, k))):
        r = steps + r0
        put(r, nxt[1:], 1.0)
        put(r, ta[:-1], -m[:, node, 0])
        put(r, tm[:-1], -m[:, node, 1])
        put(r, p, -b[:, node])
    a_eq = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(2 * k, n_var))
    b_eq = np.concatenate([c[:, 0], c[:, 1]])

    rows, cols, vals = [], [], []
    r = np.arange(k + 1)
    put(r, ta, -1.0)  # −Ta − lo ≤ −(target − 0.5)
    put(r, lo, -1.0)
    put(r + k + 1, ta, 1.0)  # Ta − hi ≤ target + 1
    put(r + k + 1, hi, -1.0)
    a_ub = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(2 * (k + 1), n_var))
    tgt = inp.target_c[idx]
    b_ub = np.concatenate([-(tgt - BAND_LOW_K), tgt + BAND_HIGH_K])

    weight = np.full(k + 1, inp.dt / 3600.0)  # K·h per K held over a step (trapezoid: half at the run's ends)
    weight[idx == 0] *= 0.5
    weight[idx == n_total] *= 0.5
    cost = np.zeros(n_var)
    cost[lo] = weight
    cost[hi] = weight
    cost[p] = ENERGY_WEIGHT_KH_PER_KWH * inp.dt / 3600.0

    bounds = np.empty((n_var, 2))
    bounds[:, 0], bounds[:, 1] = -np.inf, np.inf
    bounds[ta[0]] = (x0[0], x0[0])
    bounds[tm[0]] = (x0[1], x0[1])
    bounds[p] = (inp.base_w / 1000.0, inp.max_w / 1000.0)
    bounds[lo] = (0.0, np.inf)
    bounds[hi] = (0.0, np.inf)

    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0 or res.x is None:
        raise OracleError(f"HiGHS: status {res.status}: {res.message}")
    x = res.x
    disc = float(weight @ (x[lo] + x[hi]))
    return x[p] * 1000.0, x[ta], x[tm], disc


def solve_oracle(scenario: Scenario, *, window_steps: int = WINDOW_STEPS,
                 lookahead_steps: int = LOOKAHEAD_STEPS) -> OraclePlan:
    """The clairvoyant plan for the whole scenario (windowed for runs longer than window + look-ahead)."""
    wall0 = time.perf_counter()
    inp = oracle_inputs(scenario)
    params = scenario.room.params()
    maps = {w: step_map(params, inp.dt, w) for w in (False, True)}
    n = len(inp.t) - 1
    power = np.zeros(n + 1)
    air = np.zeros(n + 1)
    mass = np.zeros(n + 1)
    air[0], mass[0] = inp.air0_c, inp.mass0_c
    objective = 0.0
    first = 0
    while first < n:
        k = n - first if n - first <= window_steps + lookahead_steps else window_steps + lookahead_steps
        keep = k if first + k == n else window_steps
        p_w, a, m_, _disc = _solve_window(inp, maps, first, k, (air[first], mass[first]))
        power[first:first + keep] = p_w[:keep]
        air[first:first + keep + 1] = a[:keep + 1]
        mass[first:first + keep + 1] = m_[:keep + 1]
        first += keep
    power[n] = power[n - 1] if n > 0 else 0.0
    # the LP's own discomfort of the kept trajectory (trapezoid over the predicted air)
    rate = np.maximum(0.0, inp.target_c - BAND_LOW_K - air) + np.maximum(0.0, air - inp.target_c - BAND_HIGH_K)
    objective = float(np.sum(0.5 * (rate[1:] + rate[:-1])) * inp.dt / 3600.0)
    return OraclePlan(power_w=power, air_c=air, mass_c=mass, objective_kh=objective,
                      solve_s=time.perf_counter() - wall0)


def simulate_plan(scenario: Scenario, power_w: np.ndarray) -> tuple[Kpi, np.ndarray]:
    """Play a power trajectory through a fresh room and the bench's KPI (as `bench.run_one` scores controllers).

    Returns the KPI accumulator and the simulated air temperature at every sample."""
    inp = oracle_inputs(scenario)
    room = scenario.build_room()
    kpi = Kpi(twin=room.copy())
    n = len(inp.t) - 1
    air = np.zeros(n + 1)
    for i in range(n + 1):
        t = float(inp.t[i])
        heat = float(power_w[i])
        out_c, gain_w, window = float(inp.outdoor_c[i]), float(inp.gains_w[i]), bool(inp.window[i])
        air[i] = room.air_c
        kpi.add(t, room.air_c, float(inp.target_c[i]), heat, out_c, gain_w, window)
        if i < n:
            room.step(inp.dt, heat, out_c, gain_w, window)
    return kpi, air


def run_oracle(scenario: Scenario, *, keep_trace: bool = False) -> BenchResult:
    """The `oracle` bench row: the LP's plan, scored by simulation through the room model and `Kpi`.

    `keep_trace` keeps 5-minute samples for the plot (no heater levels: the plan is continuous power)."""
    wall0 = time.perf_counter()
    plan = solve_oracle(scenario)
    kpi, air = simulate_plan(scenario, plan.power_w)
    result = kpi.result()
    trace = None
    if keep_trace:
        inp = oracle_inputs(scenario)
        every = max(1, int(300 / inp.dt))
        trace = Trace(t_h=[float(x) / 3600.0 for x in inp.t[::every]], air_c=[float(x) for x in air[::every]],
                      target_c=[float(x) for x in inp.target_c[::every]],
                      setpoint_c=[float(x) for x in inp.target_c[::every]],
                      outdoor_c=[float(x) for x in inp.outdoor_c[::every]],
                      power_w=[float(x) for x in plan.power_w[::every]])
    return BenchResult(
        scenario=scenario.name,
        controller="oracle",
        discomfort_kh=round(result.discomfort_kh, 3),
        energy_kwh=round(result.energy_kwh, 3),
        energy_floor_kwh=round(result.energy_floor_kwh or 0.0, 3),
        wakes=0,
        level_changes=0,
        max_overshoot_k=round(result.max_overshoot_k, 3),
        rms_error_k=round(result.rms_error_k, 3),
        sim_hours=round(result.duration_h, 2),
        wall_s=round(time.perf_counter() - wall0, 3),
        trace=trace,
    )
