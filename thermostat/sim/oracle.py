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
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from thermostat.core.kpi import Kpi
from thermostat.sim.bench import BenchResult, Trace, _schedule, _TargetCache
from thermostat.sim.room import Room, RoomParams
from thermostat.sim.scenario import Scenario

ENERGY_WEIGHT_KH_PER_KWH = 0.01  # 1 kWh costs as much as 0.01 K·h of discomfort: energy only breaks ties
BAND_LOW_K = 0.5  # the comfort band of core/kpi.py
BAND_HIGH_K = 1.0
DISCRETE_BLOCK_S = 900.0  # the discrete variant decides one level per heater per quarter hour
WAKE_COST_KH = 0.05  # ... and charges each wake (standby → running) as this much discomfort
MAX_WAKES_PER_HOUR = 2  # the heater machine's wake cap
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


@dataclass
class _Problem:
    """One window's LP: minimise cost @ x subject to a_ub x ≤ b_ub, a_eq x = b_eq, bounds; index arrays name
    the variables (air, mass, power in kW, below-band and above-band slack)."""

    cost: np.ndarray
    a_ub: sparse.csr_array
    b_ub: np.ndarray
    a_eq: sparse.csr_array
    b_eq: np.ndarray
    bounds: np.ndarray  # n × 2
    ta: np.ndarray
    tm: np.ndarray
    p: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    weight: np.ndarray  # K·h per K of slack at each sample


def _coo(rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], shape: tuple[int, int]
         ) -> sparse.csr_array:
    return sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)


def _window_problem(inp: OracleInputs, maps: dict[bool, StepMap], first: int, k: int,
                    x0: tuple[float, float]) -> _Problem:
    """The LP over steps first .. first + k (k steps, k + 1 samples)."""
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

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []

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
    a_eq = _coo(rows, cols, vals, (2 * k, n_var))
    b_eq = np.concatenate([c[:, 0], c[:, 1]])

    rows, cols, vals = [], [], []
    r = np.arange(k + 1)
    put(r, ta, -1.0)  # −Ta − lo ≤ −(target − 0.5)
    put(r, lo, -1.0)
    put(r + k + 1, ta, 1.0)  # Ta − hi ≤ target + 1
    put(r + k + 1, hi, -1.0)
    a_ub = _coo(rows, cols, vals, (2 * (k + 1), n_var))
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
    return _Problem(cost=cost, a_ub=a_ub, b_ub=b_ub, a_eq=a_eq, b_eq=b_eq, bounds=bounds, ta=ta, tm=tm, p=p,
                    lo=lo, hi=hi, weight=weight)


def _solve_window(
    inp: OracleInputs, maps: dict[bool, StepMap], first: int, k: int, x0: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """LP over steps first .. first + k. Returns power (k, W), air, mass (k + 1) and its discomfort (K·h)."""
    pr = _window_problem(inp, maps, first, k, x0)
    res = linprog(pr.cost, A_ub=pr.a_ub, b_ub=pr.b_ub, A_eq=pr.a_eq, b_eq=pr.b_eq, bounds=pr.bounds,
                  method="highs")
    if res.status != 0 or res.x is None:
        raise OracleError(f"HiGHS: status {res.status}: {res.message}")
    x = res.x
    disc = float(pr.weight @ (x[pr.lo] + x[pr.hi]))
    return x[pr.p] * 1000.0, x[pr.ta], x[pr.tm], disc


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


# --------------------------------------------------------------------------------------------------------------
# The discrete variant: real ladders and wake costs (a MILP)


@dataclass(frozen=True)
class DiscretePlan:
    power_w: np.ndarray  # N + 1, like OraclePlan
    air_c: np.ndarray
    objective_kh: float  # the plan's discomfort as the MILP predicts it
    wakes: int
    dual_bound_kh: float  # HiGHS' lower bound on the MILP objective (discomfort + energy + wake costs)
    mip_gap: float
    optimal: bool  # False: stopped at the time limit with this (feasible) plan
    solve_s: float


def _ladders(scenario: Scenario) -> list[tuple[list[float], bool]]:
    """Per heater: its level watts (ascending) and whether it can be switched off."""
    out = []
    for _, h in scenario.heater_list():
        watts = sorted(h.levels_w.values()) if h.levels_w else sorted(lv.wall_w for lv in h.spec.levels)
        out.append((watts, h.spec.has_standby or h.has_plug))
    return out


def solve_discrete_oracle(scenario: Scenario, *, block_s: float = DISCRETE_BLOCK_S,
                          wake_cost_kh: float = WAKE_COST_KH, time_limit_s: float = 300.0,
                          mip_rel_gap: float = 0.01, levels: str = "exact") -> DiscretePlan:
    """The clairvoyant plan with the heaters' real levels: each heater holds one level (or standby, when it has
    one) per `block_s`, each wake costs `wake_cost_kh`, at most two wakes per hour per heater; the heaters start in
    standby (their lowest level without one), as in the bench. Same room model and discomfort as the LP bound,
    solved as one MILP over the whole run with HiGHS (`scipy.optimize.milp`). The quarter-hour blocks make it an
    achievable discrete plan rather than a bound for every discrete controller; its distance from the LP shows what
    discrete levels and wakes cost.

    levels="exact": one rung of the ladder per block. levels="pwm": any power between the lowest and the top level
    per block (what alternating adjacent rungs gives on average), or standby — only the on/off decision and the
    minimum running power are discrete. A much smaller MILP, solvable for a week."""
    if levels not in ("exact", "pwm"):
        raise ValueError(f"levels must be 'exact' or 'pwm', not {levels!r}")
    wall0 = time.perf_counter()
    inp = oracle_inputs(scenario)
    params = scenario.room.params()
    maps = {w: step_map(params, inp.dt, w) for w in (False, True)}
    n = len(inp.t) - 1
    pr = _window_problem(inp, maps, 0, n, (inp.air0_c, inp.mass0_c))
    per_block = max(1, round(block_s / inp.dt))
    n_blocks = math.ceil(n / per_block)
    block_of_step = np.arange(n) // per_block
    ladders = _ladders(scenario)
    n_lp = len(pr.cost)

    # extra variables per heater and block. levels="exact": y[l][j] binary per level (power Σ W_l y_l, on Σ y_l);
    # levels="pwm": q[j] continuous power and o[j] binary on (lowest·o ≤ q ≤ top·o). Then w[j] wakes (switchable).
    col = n_lp
    binaries: list[np.ndarray] = []
    power_terms: list[list[tuple[np.ndarray, float]]] = []  # per heater: (columns by block, kW per unit)
    on_terms: list[list[np.ndarray]] = []  # per heater: columns whose sum is "running" in a block
    continuous_bounds: list[tuple[np.ndarray, float, float]] = []
    pwm_links: list[tuple[np.ndarray, np.ndarray, float, float]] = []  # q, o, lowest kW, top kW
    for watts, switchable in ladders:
        if levels == "exact":
            ys = [col + j * n_blocks + np.arange(n_blocks) for j in range(len(watts))]
            col += len(watts) * n_blocks
            binaries.extend(ys)
            power_terms.append([(y, w / 1000.0) for y, w in zip(ys, watts, strict=True)])
            on_terms.append(ys)
        else:
            q = col + np.arange(n_blocks)
            col += n_blocks
            power_terms.append([(q, 1.0)])
            if switchable:
                o = col + np.arange(n_blocks)
                col += n_blocks
                binaries.append(o)
                on_terms.append([o])
                continuous_bounds.append((q, 0.0, watts[-1] / 1000.0))
                pwm_links.append((q, o, watts[0] / 1000.0, watts[-1] / 1000.0))
            else:
                on_terms.append([])
                continuous_bounds.append((q, watts[0] / 1000.0, watts[-1] / 1000.0))
    w_index: dict[int, np.ndarray] = {}
    for h, (_, switchable) in enumerate(ladders):
        if switchable:
            w_index[h] = col + np.arange(n_blocks)
            col += n_blocks
    n_var = col

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    row = 0

    def put(r: np.ndarray, c: np.ndarray, v: np.ndarray | float) -> None:
        rows.append(r)
        cols.append(c)
        vals.append(np.broadcast_to(v, r.shape).astype(float))

    def bound_rows(count: int, lo_: float, hi_: float) -> None:
        nonlocal row
        lower.append(np.full(count, lo_))
        upper.append(np.full(count, hi_))
        row += count

    # power of each step = the heaters' power in its block (kW)
    r = row + np.arange(n)
    put(r, pr.p, 1.0)
    for terms in power_terms:
        for columns, kw in terms:
            put(r, columns[block_of_step], -kw)
    bound_rows(n, 0.0, 0.0)
    blocks = np.arange(n_blocks)
    for q, o, low_kw, top_kw in pwm_links:  # lowest·o ≤ q ≤ top·o
        put(row + blocks, q, 1.0)
        put(row + blocks, o, -low_kw)
        bound_rows(n_blocks, 0.0, np.inf)
        put(row + blocks, q, 1.0)
        put(row + blocks, o, -top_kw)
        bound_rows(n_blocks, -np.inf, 0.0)
    for h, (_, switchable) in enumerate(ladders):
        if levels == "exact":  # one level per block (exactly one without standby)
            for y in on_terms[h]:
                put(row + blocks, y, 1.0)
            bound_rows(n_blocks, 0.0 if switchable else 1.0, 1.0)
        if not switchable:
            continue
        r = row + blocks  # on_j − on_{j−1} − w_j ≤ 0 (on_{−1} = 0: standby at the start)
        for y in on_terms[h]:
            put(r, y, 1.0)
            put(r[1:], y[:-1], -1.0)
        put(r, w_index[h], -1.0)
        bound_rows(n_blocks, -np.inf, 0.0)
        per_hour = max(1, round(3600.0 / (per_block * inp.dt)))
        if per_hour > MAX_WAKES_PER_HOUR:  # at most two wakes in any hour
            starts = np.arange(max(0, n_blocks - per_hour + 1))
            for offset in range(per_hour):
                put(row + starts, w_index[h][starts + offset], 1.0)
            bound_rows(len(starts), -np.inf, float(MAX_WAKES_PER_HOUR))
    extra = _coo(rows, cols, vals, (row, n_var))

    def widen(a: sparse.csr_array) -> sparse.csr_array:
        return sparse.csr_array(sparse.hstack([a, sparse.csr_array((a.shape[0], n_var - n_lp))]))

    constraints = [
        LinearConstraint(widen(pr.a_eq), pr.b_eq, pr.b_eq),
        LinearConstraint(widen(pr.a_ub), -np.inf, pr.b_ub),
        LinearConstraint(extra, np.concatenate(lower), np.concatenate(upper)),
    ]
    cost = np.concatenate([pr.cost, np.zeros(n_var - n_lp)])
    for wi in w_index.values():
        cost[wi] = wake_cost_kh
    lb = np.concatenate([pr.bounds[:, 0], np.zeros(n_var - n_lp)])
    ub = np.concatenate([pr.bounds[:, 1], np.ones(n_var - n_lp)])
    for q, q_lo, q_hi in continuous_bounds:
        lb[q], ub[q] = q_lo, q_hi
    integrality = np.zeros(n_var)
    for b_cols in binaries:
        integrality[b_cols] = 1
    res = milp(cost, integrality=integrality, bounds=Bounds(lb, ub), constraints=constraints,
               options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False})
    if res.x is None:
        raise OracleError(f"HiGHS MILP: status {res.status}: {res.message}")
    x = res.x
    power = np.zeros(n + 1)
    power[:n] = np.round(x[pr.p] * 1000.0, 6)
    power[n] = power[n - 1] if n > 0 else 0.0
    wakes = round(sum(float(np.sum(x[wi])) for wi in w_index.values()))
    return DiscretePlan(
        power_w=power,
        air_c=x[pr.ta],
        objective_kh=float(pr.weight @ (x[pr.lo] + x[pr.hi])),
        wakes=wakes,
        # without a switchable heater there is no integer variable: HiGHS solves an LP and reports no MIP bound
        dual_bound_kh=float(res.fun if res.mip_dual_bound is None else res.mip_dual_bound),
        mip_gap=float(res.mip_gap or 0.0),
        optimal=res.status == 0,
        solve_s=time.perf_counter() - wall0,
    )
