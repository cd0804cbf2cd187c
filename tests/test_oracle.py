"""The clairvoyant LP bound (`thermostat.sim.oracle`, `thermostat bench --oracle`).

It must be a true lower bound for the controllers on the same room, agree with the simulator it was built from,
respect the heaters' capacity, and show up in the bench's table, JSON and goals."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from thermostat.cli import main
from thermostat.sim.bench import CONTROLLERS, ORACLE, BenchResult, format_goals, format_table, run_many
from thermostat.sim.oracle import (
    heater_bounds_w,
    run_oracle,
    simulate_plan,
    solve_discrete_oracle,
    solve_oracle,
    step_map,
)
from thermostat.sim.room import SMALL_ROOM, Room
from thermostat.sim.scenario import load_scenario

TINY = """\
name: tiny_oracle
duration_h: 5
seed: 3
start: 2026-01-05T04:00:00
outdoor: {mean_c: 1, amplitude_k: 2}
room: {preset: medium, initial_air_c: 18}
heaters:
  - {model: mini3, count: 1}
schedule:
  timezone: Europe/Berlin
  presets: {comfort: 21, eco: 18}
  week:
    mon-sun: [{at: "06:00", preset: comfort}, {at: "08:00", preset: eco}]
target: 21
events:
  - {kind: window_open, start_h: 2.5, duration_min: 20}
"""

JSON_KEYS = {"scenario", "controller", "discomfort_kh", "energy_kwh", "energy_floor_kwh", "wakes", "level_changes",
             "max_overshoot_k", "rms_error_k", "sim_hours", "wall_s", "cost"}


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oracle") / "tiny_oracle.yaml"
    path.write_text(TINY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_results(tiny_yaml: Path) -> list[BenchResult]:
    return run_many([str(tiny_yaml)], [*CONTROLLERS, ORACLE], workers=2)


def test_oracle_discomfort_is_a_lower_bound_for_every_controller(tiny_results: list[BenchResult]) -> None:
    by = {r.controller: r for r in tiny_results}
    oracle = by[ORACLE]
    assert oracle.discomfort_kh >= 0.0
    # the recovery 18 → 21 °C with one Mini 3 cannot be instant: even the bound has some discomfort here
    assert oracle.discomfort_kh > 0.05
    for name in CONTROLLERS:
        assert oracle.discomfort_kh <= by[name].discomfort_kh + 1e-6, name
    assert oracle.sim_hours == pytest.approx(5.0)
    assert oracle.wakes == 0 and oracle.level_changes == 0


def test_lp_prediction_matches_the_room_model_simulation_of_its_plan(tiny_yaml: Path) -> None:
    sc = load_scenario(tiny_yaml)
    plan = solve_oracle(sc)
    kpi, air = simulate_plan(sc, plan.power_w)
    assert np.max(np.abs(air - plan.air_c)) < 1e-6
    assert kpi.result().discomfort_kh == pytest.approx(plan.objective_kh, abs=1e-6)
    # the plan pre-heats: it is already heating before the 06:00 rise (2 h into the run)
    before_rise = plan.power_w[(np.arange(len(plan.power_w)) * sc.step_s) < 2 * 3600]
    assert before_rise.max() > 0.5 * sc.max_w


def test_step_map_is_the_room_step(tiny_yaml: Path) -> None:
    sc = load_scenario(tiny_yaml)
    params = sc.room.params()
    rng = random.Random(5)
    for window in (False, True):
        sm = step_map(params, sc.step_s, window)
        for _ in range(20):
            air, mass = rng.uniform(5, 25), rng.uniform(5, 25)
            heat, out_c, gains = rng.uniform(0, 900), rng.uniform(-15, 15), rng.uniform(0, 400)
            room = Room(params=params, air_c=air, mass_c=mass)
            room.step(sc.step_s, heat, out_c, gains, window)
            x = sm.m @ np.array([air, mass]) + sm.b * heat / 1000.0 + sm.g @ np.array([out_c, gains])
            assert x == pytest.approx([room.air_c, room.mass_c], abs=1e-9)


def test_capacity_limited_room_gives_the_analytic_optimum(tmp_path: Path) -> None:
    """Too small a heater in steady state at full power: the best plan is full power throughout, and its
    discomfort is the constant shortfall below the band times the duration."""
    out_c, gains = -10.0, 0.0
    steady = out_c + (133.0 + gains) / SMALL_ROOM.ua_w_per_k
    path = tmp_path / "short_of_heat.yaml"
    path.write_text(f"""\
name: short_of_heat
duration_h: 3
outdoor: {{mean_c: {out_c}}}
room: {{preset: small, initial_air_c: {steady!r}}}
heaters:
  - {{model: nano3s, count: 1}}
target: 21
""", encoding="utf-8")
    sc = load_scenario(path)
    plan = solve_oracle(sc)
    assert plan.power_w == pytest.approx(np.full(len(plan.power_w), 133.0), abs=1e-3)
    row = run_oracle(sc)
    assert row.discomfort_kh == pytest.approx((21.0 - 0.5 - steady) * 3.0, rel=1e-4)


def test_power_stays_within_the_heaters_capacity() -> None:
    """Two Nano 3S without standby or plug cannot go below their two Low levels (2 × 70 W)."""
    sc = load_scenario("nano3s_small_room")
    base, top = heater_bounds_w(sc)
    assert (base, top) == (140.0, 266.0)
    short = sc.model_copy(update={"duration_h": 6.0})
    plan = solve_oracle(short)
    assert plan.power_w.min() >= base - 1e-6 and plan.power_w.max() <= top + 1e-6
    mini = load_scenario("mild_week")
    assert heater_bounds_w(mini) == (0.0, mini.max_w)


def test_windowed_solve_is_close_to_one_solve_and_never_better(tiny_yaml: Path) -> None:
    sc = load_scenario(tiny_yaml)
    whole = solve_oracle(sc)
    windowed = solve_oracle(sc, window_steps=60, lookahead_steps=90)
    assert windowed.objective_kh >= whole.objective_kh - 1e-6
    assert windowed.objective_kh <= whole.objective_kh * 1.02 + 1e-3
    _kpi, air = simulate_plan(sc, windowed.power_w)
    assert np.max(np.abs(air - windowed.air_c)) < 1e-6


def test_table_ratios_and_issue14_goals(tiny_results: list[BenchResult]) -> None:
    table = format_table(tiny_results)
    header = table.splitlines()[0]
    assert "×bb" in header and "×orc" in header
    oracle_line = next(line for line in table.splitlines() if " oracle " in line)
    by = {r.controller: r for r in tiny_results}
    cells = oracle_line.split()
    assert cells[3] == f"{by[ORACLE].discomfort_kh / by['bang-bang'].discomfort_kh:.2f}"
    assert cells[4] == "1.00"
    pid_cells = next(line for line in table.splitlines() if " pid " in line).split()
    assert pid_cells[4] == f"{by['pid'].discomfort_kh / by[ORACLE].discomfort_kh:.2f}"
    text = format_goals(tiny_results)
    assert "goals of issue 14" in text
    # the issue-14 goals are about the default controller of a new config: mpc
    assert "tiny_oracle: mpc discomfort ≤ 1.5 × the oracle's" in text
    assert "tiny_oracle: mpc discomfort below bang-bang's" in text


def test_cli_oracle_row_in_json_and_plot(tiny_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "out.json"
    out_png = tmp_path / "out.png"
    code = main(["bench", "--scenario", str(tiny_yaml), "--controller", "mpc", "--oracle", "--json", str(out_json),
                 "--plot", str(out_png), "--quiet", "--workers", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "oracle" in printed and "goals of issue 14" in printed
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert [row["controller"] for row in data] == ["mpc", "oracle"]
    assert all(set(row) == JSON_KEYS for row in data)
    assert out_png.exists() and out_png.stat().st_size > 10_000


def test_discrete_variant_uses_real_levels_and_is_never_better_than_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "tiny_discrete.yaml"
    path.write_text(TINY.replace("duration_h: 5", "duration_h: 3").replace("name: tiny_oracle", "name: tiny_discrete"),
                    encoding="utf-8")
    sc = load_scenario(path)
    lp = solve_oracle(sc)
    plan = solve_discrete_oracle(sc, time_limit_s=60.0)
    kpi, air = simulate_plan(sc, plan.power_w)
    assert np.max(np.abs(air - plan.air_c)) < 1e-6
    assert kpi.result().discomfort_kh == pytest.approx(plan.objective_kh, abs=1e-6)
    assert plan.objective_kh >= lp.objective_kh - 1e-6
    levels = {0.0} | {lv.wall_w for lv in load_scenario(path).heater_list()[0][1].spec.levels}
    assert set(np.round(plan.power_w, 3).tolist()) <= levels
    # one level per quarter hour: the power only changes on block boundaries
    steps_per_block = round(900 / sc.step_s)
    changes = np.nonzero(np.diff(plan.power_w[:-1]))[0] + 1
    assert all(c % steps_per_block == 0 for c in changes)
    assert 1 <= plan.wakes <= 2 * 3


def test_pwm_variant_is_between_the_bound_and_the_exact_levels(tmp_path: Path) -> None:
    path = tmp_path / "tiny_pwm.yaml"
    path.write_text(TINY.replace("duration_h: 5", "duration_h: 3").replace("name: tiny_oracle", "name: tiny_pwm"),
                    encoding="utf-8")
    sc = load_scenario(path)
    lp = solve_oracle(sc)
    pwm = solve_discrete_oracle(sc, levels="pwm", time_limit_s=60.0)
    exact = solve_discrete_oracle(sc, levels="exact", time_limit_s=60.0)
    assert lp.objective_kh - 1e-6 <= pwm.objective_kh <= exact.objective_kh + 0.02
    running = pwm.power_w[pwm.power_w > 1.0]
    assert running.min() >= 400.0 - 1e-3 and running.max() <= 824.0 + 1e-3  # Mini 3: Night .. Mining, or standby
    _kpi, air = simulate_plan(sc, pwm.power_w)
    assert np.max(np.abs(air - pwm.air_c)) < 1e-6
    with pytest.raises(ValueError, match="levels"):
        solve_discrete_oracle(sc, levels="fuzzy")
