"""The plan in a room's published state (`plan_air_c`, `plan_power_w`: one value per half hour of the horizon),
made from a real mpc plan on the simulated room's true model, and from step grids that do not meet the half
hours."""

from __future__ import annotations

import pytest

from thermostat.core.control import Forecast
from thermostat.core.mpc import MpcController, plan_series
from thermostat.core.thermal_model import ThermalModel
from thermostat.service.ha_bridge import PLAN_STEP_S, plan_lists
from thermostat.sim.room import LARGE_ROOM


def _plan_series(start: float) -> tuple[list[tuple[float, float, float]], float]:
    p = LARGE_ROOM
    model = ThermalModel("2r2c", p.c_air_j_per_k, p.c_mass_j_per_k, p.h_am_w_per_k, p.h_ao_w_per_k, p.h_mo_w_per_k,
                         0.0, 0.02, 0.9, 72.0, 800)
    mpc = MpcController(max_w=2500.0, model=model)
    # a comfort block from 30 minutes on, after an hour at eco
    forecast = Forecast(targets=((start, 18.0), (start + 1800.0, 21.0), (start + 4 * 3600.0, 18.0)))
    mpc.update(start, 18.2, 18.0, 2.0, forecast)
    assert mpc.plan is not None and mpc.note == "mpc"
    return list(plan_series(mpc.plan)), mpc.plan.start


def test_a_real_plan_becomes_half_hourly_lists_over_its_horizon() -> None:
    series, start = _plan_series(1000.0)
    power, air = plan_lists(series, start)
    horizon = series[-1][0] - start
    assert len(power) == len(air) == round(horizon / PLAN_STEP_S)
    ends = {round(t - start): (w, a) for t, w, a in series}
    for k, value in enumerate(air, start=1):  # every half hour is a step end of this grid: the value itself
        assert value == pytest.approx(ends[round(k * PLAN_STEP_S)][1], abs=0.005)
    # the first half hour: the mean of the steps inside it, weighted by their length
    inside = [(t, w) for t, w, _ in series if t - start <= PLAN_STEP_S + 1e-6]
    prev, energy = start, 0.0
    for t, w in inside:
        energy += w * (t - prev)
        prev = t
    assert power[0] == pytest.approx(energy / PLAN_STEP_S, abs=0.5)
    # the plan heats into the comfort block and coasts before the setback
    assert max(power[:3]) > 1000.0 and air[-1] < max(air)


def test_steps_that_straddle_the_half_hours_are_averaged_and_interpolated() -> None:
    start = 0.0
    # 20-minute steps: 1000 W, 0 W, 2000 W ... and the air rising 1 K per step
    series = [(1200.0 * (i + 1), [1000.0, 0.0, 2000.0][i % 3], 18.0 + (i + 1)) for i in range(9)]
    power, air = plan_lists(series, start)
    assert len(power) == 6  # 3 h of steps
    assert power[0] == round((1000 * 1200 + 0 * 600) / 1800)  # 20 min at 1000 W, 10 at 0 W (whole watts)
    assert power[1] == round((0 * 600 + 2000 * 1200) / 1800)
    assert air[0] == pytest.approx(19.5)  # between 19 (20 min) and 20 (40 min)
    assert air[1] == pytest.approx(21.0)  # at 60 min: a step end
    assert plan_lists([], start) == ([], [])
