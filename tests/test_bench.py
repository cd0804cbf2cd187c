"""The bench: a short scenario through all four controllers, JSON keys, the CLI, the plot, pre-heat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermostat.cli import main
from thermostat.core.preheat import Preheat, PreheatSettings
from thermostat.miners.models import NANO3S
from thermostat.sim.bench import (
    CONTROLLERS,
    BenchResult,
    Goal,
    format_goals,
    format_table,
    goals,
    predictive_goals,
    run_many,
    run_one,
)
from thermostat.sim.scenario import load_scenario

SHORT = """\
name: short_test
duration_h: {hours}
seed: 1
start: 2026-01-05T05:00:00
outdoor: {{mean_c: 3, amplitude_k: 2}}
room: {{preset: medium, initial_air_c: 19}}
heaters:
  - {{model: mini3, count: 1}}
schedule:
  timezone: Europe/Berlin
  presets: {{comfort: 21, eco: 18}}
  week:
    mon-sun: [{{at: "06:30", preset: comfort}}, {{at: "22:00", preset: eco}}]
target: 21
"""

JSON_KEYS = {"scenario", "controller", "discomfort_kh", "energy_kwh", "energy_floor_kwh", "wakes", "level_changes",
             "max_overshoot_k", "rms_error_k", "sim_hours", "wall_s", "cost"}


@pytest.fixture(scope="module")
def short_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "short_test.yaml"
    path.write_text(SHORT.format(hours=4), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def short_results(short_yaml: Path) -> list[BenchResult]:
    return run_many([str(short_yaml)], list(CONTROLLERS), keep_trace=True, workers=2)


def test_short_scenario_runs_through_every_controller_with_sane_kpis(short_results: list[BenchResult]) -> None:
    assert [r.controller for r in short_results] == list(CONTROLLERS)
    for r in short_results:
        assert r.scenario == "short_test"
        assert r.sim_hours == pytest.approx(4.0)
        assert r.discomfort_kh >= 0 and r.rms_error_k >= 0 and r.max_overshoot_k >= 0
        # one Mini 3 for 4 h: some heat, never more than its top level all the time
        assert 0.3 < r.energy_kwh <= 0.824 * 4 + 0.1
        assert 0 < r.energy_floor_kwh < 0.824 * 4
        assert 0 <= r.wakes <= 2 * 4  # the heater machine caps wakes at 2 per hour
        assert r.level_changes >= 0 and r.wall_s > 0
        assert r.trace is not None and len(r.trace.t_h) == len(r.trace.air_c) > 40
        assert all(15.0 < a < 24.0 for a in r.trace.air_c)
    baselines = [r for r in short_results if r.controller in ("bang-bang", "tpi")]
    assert all(r.level_changes == 0 for r in baselines)  # switch behaviour: standby ↔ the top level only


def test_pid_recovers_to_comfort(short_results: list[BenchResult]) -> None:
    pid = next(r for r in short_results if r.controller == "pid")
    tr = pid.trace
    assert tr is not None
    late = [a for t, a in zip(tr.t_h, tr.air_c, strict=True) if t >= 3.0]
    assert min(late) >= 21.0 - 0.5 - 0.2  # comfort reached within 1.5 h of the 06:30 rise


def test_json_dict_has_the_documented_keys(short_results: list[BenchResult]) -> None:
    for r in short_results:
        data = r.as_json()
        assert set(data) == JSON_KEYS
        json.dumps(data)


def test_table_and_goals_text(short_results: list[BenchResult]) -> None:
    table = format_table(short_results)
    assert all(c in table for c in CONTROLLERS)
    found = goals(short_results)
    assert {g.name.split()[1] for g in found} >= {"discomfort", "wakes", "energy"}
    text = format_goals(short_results)
    assert "not the standard set" in text
    goal_lines = [line for line in text.splitlines() if line.startswith("  ")]
    assert goal_lines and all(("met" in line or "MISSED" in line or "NOT EVALUATED" in line) for line in goal_lines)
    assert "goals of issue 14" in text


def test_cli_exit_code_json_and_plot(short_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "out.json"
    out_png = tmp_path / "out.png"
    code = main(["bench", "--scenario", str(short_yaml), "--controller", "pid", "--controller", "bang-bang",
                 "--json", str(out_json), "--plot", str(out_png), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "goals" in printed and "pid" in printed and "bang-bang" in printed
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert isinstance(data, list) and len(data) == 2
    assert all(set(row) == JSON_KEYS for row in data)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_names_one_file_per_scenario(tmp_path: Path, short_yaml: Path) -> None:
    from thermostat.sim.plot import output_paths, plot_results

    assert output_paths(tmp_path / "b.png", ["a"]) == {"a": tmp_path / "b.png"}
    assert output_paths(tmp_path / "b.png", ["a", "c"]) == {"a": tmp_path / "b_a.png", "c": tmp_path / "b_c.png"}
    other = tmp_path / "other.yaml"
    other.write_text(SHORT.format(hours=1).replace("short_test", "other_test"), encoding="utf-8")
    results = [run_one(load_scenario(p), "pid", keep_trace=True) for p in (short_yaml, other)]
    written = plot_results(results, tmp_path / "grid.png")
    assert written == [tmp_path / "grid_short_test.png", tmp_path / "grid_other_test.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_cli_unknown_scenario_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--scenario", "no_such_scenario"]) == 2
    assert "no such scenario" in capsys.readouterr().err


# -- pre-heat / optimal stop (pure) --------------------------------------------------------------------------------


def test_preheat_starts_early_enough_and_caps_the_raise() -> None:
    p = Preheat(PreheatSettings(initial_rate_k_per_h=1.0, margin_s=900.0, max_above_target_k=1.0))
    # 3 K to go at 1 K/h + 15 min margin: not yet 4 h ahead, yes 3 h ahead
    assert p.setpoint(0.0, 18.0, 18.0, 4 * 3600.0, 21.0) == 18.0
    assert p.setpoint(3600.0, 18.0, 18.0, 3 * 3600.0, 21.0) == 19.0  # raised, at most 1 K above the setback
    assert p.state == "preheat"
    # latched until the block starts, even if the room warms
    assert p.setpoint(7200.0, 18.9, 18.0, 2 * 3600.0, 21.0) == 19.0


def test_preheat_learns_the_warm_up_rate() -> None:
    p = Preheat(PreheatSettings(initial_rate_k_per_h=1.0))
    p.setpoint(0.0, 17.0, 16.0, 3600.0 * 4, 21.0)  # starts (4 K at 1 K/h + margin > 4 h? lead 4.25 h)
    assert p.state == "preheat"
    p.setpoint(4 * 3600.0, 19.0, 21.0, 15 * 3600.0, 16.0)
    p.setpoint(8 * 3600.0, 21.0, 21.0, 11 * 3600.0, 16.0)  # reached 4 K in 8 h: 0.5 K/h observed
    assert p.recoveries == 1
    assert p.rate_k_per_h == pytest.approx(0.75)  # halfway between 1.0 and 0.5


def test_optimal_stop_lowers_inside_the_band_before_a_drop() -> None:
    p = Preheat(PreheatSettings(stop_lead_s=7200.0, stop_offset_k=0.4))
    assert p.setpoint(0.0, 21.0, 21.0, 3 * 3600.0, 18.0) == 21.0
    assert p.setpoint(0.0, 21.0, 21.0, 3600.0, 18.0) == pytest.approx(20.6)
    assert p.state == "stop"
    assert Preheat(PreheatSettings(enabled=False)).setpoint(0.0, 21.0, 21.0, 60.0, 18.0) == 21.0
    assert p.setpoint(0.0, None, 21.0, 60.0, 18.0) == 21.0  # no reading: the target
    assert p.setpoint(0.0, 20.0, 21.0, None, None) == 21.0  # no next change known


PLUGGED = """\
name: plugged_nano
duration_h: 8
seed: 3
start: 2026-01-05T00:00:00
outdoor: {{mean_c: 8}}
room: {{preset: small, initial_air_c: 21}}
heaters:
  - {{model: nano3s, count: 1, has_plug: {plug}}}
schedule:
  timezone: Europe/Berlin
  presets: {{comfort: 22, eco: 16}}
  week:
    mon-sun: [{{at: "04:00", preset: comfort}}, {{at: "23:00", preset: eco}}]
target: 21
"""


def test_a_heater_on_a_smart_plug_is_switched_off_at_the_plug_and_back_on(tmp_path: Path) -> None:
    """A Nano 3S (no standby) with `has_plug`: warm at eco it is cut at the plug (0 W, not its Low), and the
    04:00 comfort start switches the plug on again (one wake), as the service does with a configured plug."""
    runs = {}
    for plug in (True, False):
        path = tmp_path / f"plugged_{plug}.yaml"
        path.write_text(PLUGGED.format(plug=str(plug).lower()), encoding="utf-8")
        runs[plug] = run_one(load_scenario(path), "pid", keep_trace=True)
    plugged, bare = runs[True], runs[False]
    tr = plugged.trace
    assert tr is not None
    eco = [p for t, p in zip(tr.t_h, tr.power_w, strict=True) if 0.5 <= t < 4.0]
    comfort = [p for t, p in zip(tr.t_h, tr.power_w, strict=True) if t >= 4.5]
    assert eco and all(p == 0.0 for p in eco)  # no mains: no standby draw, no Low
    assert comfort and min(comfort) >= NANO3S.level("low").wall_w * 0.9  # booted and heating again
    assert plugged.wakes == 1  # the plug on is the one wake
    assert max(tr.air_c[-12:]) > min(tr.air_c) + 0.3  # the room warms once the heater is back
    # without the plug the same heater can only rest on its Low
    assert bare.trace is not None
    bare_eco = [p for t, p in zip(bare.trace.t_h, bare.trace.power_w, strict=True) if 0.5 <= t < 4.0]
    assert min(bare_eco) >= NANO3S.level("low").wall_w * 0.9
    assert bare.wakes == 0 and plugged.energy_kwh < bare.energy_kwh


def test_tariff_week_cost_goal_is_evaluated_against_pid() -> None:
    """The issue-14 tariff goal: cost ≤ 0.85 × pid's, and no more discomfort than pid's."""

    def row(controller: str, disc: float, cost: float) -> BenchResult:
        return BenchResult("tariff_week", controller, disc, 50.0, 48.0, 10, 10, 0.5, 0.5, 168.0, 1.0, cost=cost)

    def verdict(mine: BenchResult) -> Goal:
        found, _ = predictive_goals([mine, row("pid", 26.0, 16.0)], ours="mpc")
        return next(g for g in found if "cost" in g.name)

    assert verdict(row("mpc", 20.0, 13.0)).met
    assert not verdict(row("mpc", 20.0, 14.0)).met  # 0.875 × pid's
    assert not verdict(row("mpc", 27.0, 13.0)).met  # cheaper but less comfortable
    _, missing = predictive_goals([row("mpc", 20.0, 13.0)], ours="mpc")
    assert any("tariff_week" in m for m in missing)
