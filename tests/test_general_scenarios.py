"""Scenarios outside the standard set (thermostat/sim/scenarios/general/) and the defects they exposed."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from thermostat.core.schedule import Schedule
from thermostat.sim.bench import run_one
from thermostat.sim.oracle import heater_bounds_w, run_oracle
from thermostat.sim.room import steady_power_w
from thermostat.sim.scenario import SCENARIO_DIR, ScenarioError, SeasonSpec, load_scenario, shipped_scenarios

GENERAL_DIR = SCENARIO_DIR / "general"


def test_single_nano_small_room_under_pid_climbs_to_the_target():
    """The reported defect: one Nano 3S (no standby, no plug) under pid stayed on Low (0 level changes) while the
    room sat ≈ 3 K below the target. 14 h of the scenario: the warm-up from 20 °C is capacity-limited (133 W), so
    the room reaches the band after ≈ 8 h; it must get there and stay, close to what the clairvoyant bound does."""
    sc = load_scenario(GENERAL_DIR / "single_nano_small_room.yaml").model_copy(update={"duration_h": 14.0})
    result = run_one(sc, "pid", keep_trace=True)
    assert result.level_changes > 0
    tr = result.trace
    assert tr is not None
    late = [a for t, a in zip(tr.t_h, tr.air_c, strict=True) if t >= 10.0]
    assert min(late) >= 21.0 - 0.5
    bound = run_oracle(sc)
    assert bound.discomfort_kh <= result.discomfort_kh <= 1.5 * bound.discomfort_kh
    # the energy is what reaching the band needs, not the Low-only two thirds of it
    assert result.energy_kwh >= 0.95 * result.energy_floor_kwh


GENERAL = sorted(p.stem for p in GENERAL_DIR.glob("*.yaml"))


def test_the_general_set_differs_from_the_standard_set_in_each_dimension():
    assert set(GENERAL) >= {"heavy_mass_home", "light_sunny_loft", "open_plan_mixed_heaters", "cold_front_bedroom",
                            "single_nano_small_room", "tariff_week", "heating_season"}
    masses = {load_scenario(GENERAL_DIR / f"{n}.yaml").room.params().c_mass_j_per_k for n in GENERAL}
    assert min(masses) <= 1.6e6 and max(masses) >= 7.0e6  # standard set: 2–8 MJ/K scaled with floor area
    mixed = load_scenario(GENERAL_DIR / "open_plan_mixed_heaters.yaml")
    assert {h.model for h in mixed.heaters} == {"mini3", "nano3s"}


@pytest.mark.parametrize("name", GENERAL)
def test_general_scenario_loads_and_builds(name):
    sc = load_scenario(GENERAL_DIR / f"{name}.yaml")
    assert sc.name == name  # the file name is the scenario's name (the bench's goals look some up by name)
    assert "general" not in shipped_scenarios() and name not in shipped_scenarios()
    room = sc.build_room()
    assert room.air_c == sc.room.initial_air_c
    assert sc.max_w > 0 and sc.heater_list()
    out = sc.build_outdoor()
    assert all(-30 < out.at(h * 3600.0) < 30 for h in range(0, int(sc.duration_h), 6))
    assert sc.build_sensor().sample(0.0, room.air_c) is not None
    if sc.schedule is not None:
        Schedule.from_data(sc.schedule, name=name)
    # the demand to hold the comfort target at the mean outdoor temperature fits the heaters
    mean_out = sum(out.at(h * 3600.0) for h in range(int(sc.duration_h))) / int(sc.duration_h)
    assert steady_power_w(room, sc.target, mean_out, sc.gains.internal_w) < sc.max_w


def test_heating_season_outdoor_is_seeded_and_central_european():
    sc = load_scenario(GENERAL_DIR / "heating_season.yaml")
    assert sc.duration_h == 212 * 24
    out = sc.build_outdoor()
    assert out.series == load_scenario(GENERAL_DIR / "heating_season.yaml").build_outdoor().series  # deterministic
    by_month: dict[int, list[float]] = {}
    for h in range(int(sc.duration_h)):
        by_month.setdefault((sc.start + timedelta(hours=h)).month, []).append(out.at(h * 3600.0))
    means = {m: sum(v) / len(v) for m, v in by_month.items()}
    # German station means 1991–2020 (rounded), within this seed's weather
    for month, ref in {10: 9.5, 11: 5.0, 12: 1.8, 1: 0.9, 2: 1.5, 3: 4.6, 4: 8.9}.items():
        assert means[month] == pytest.approx(ref, abs=2.0), month
    assert means[1] < means[3] < means[4] and means[12] < means[11] < means[10]
    coldest = min(min(v) for v in by_month.values())
    assert -16.0 < coldest < -6.0  # a real cold spell, within one Mini 3's reach most of the time
    other = SeasonSpec(seed=1).series(sc.start, 48)
    assert other != SeasonSpec(seed=2).series(sc.start, 48)


def test_tariff_week_prices_by_block():
    sc = load_scenario(GENERAL_DIR / "tariff_week.yaml")
    tariff = sc.tariff
    assert tariff is not None
    assert tariff.price_at(datetime(2026, 1, 19, 3, 0)) == 0.22  # Monday night
    assert tariff.price_at(datetime(2026, 1, 19, 18, 30)) == 0.42  # weekday evening peak
    assert tariff.price_at(datetime(2026, 1, 24, 18, 30)) == 0.36  # Saturday evening
    assert tariff.price_at(datetime(2026, 1, 19, 17, 0, tzinfo=ZoneInfo("UTC"))) == 0.42  # 18:00 in Berlin


@pytest.mark.parametrize(("tariff", "message"), [
    ('{week: {mon-fri: [{at: "00:00", price: 0.3}]}}', "missing: sat, sun"),
    ('{week: {daily: [{at: "00:00", price: 0.3}], sat: [{at: "00:00", price: 0.2}]}}', "already priced"),
    ('{week: {daily: [{at: "07:00", price: 0.3}, {at: "06:00", price: 0.2}]}}', "increasing time order"),
    ('{week: {daily: [{at: "25:00", price: 0.3}]}}', "HH:MM"),
    ('{week: {daily: [{at: "01:00", price: -1}]}}', "price"),
    ('{timezone: Mars/Olympus, week: {daily: [{at: "01:00", price: 0.1}]}}', "time zone"),
])
def test_bad_tariff_is_rejected_with_a_located_message(tmp_path, tariff, message):
    path = tmp_path / "bad_tariff.yaml"
    path.write_text(f"name: bad_tariff\nduration_h: 2\nheaters: [{{model: mini3}}]\ntariff: {tariff}\n",
                    encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "bad_tariff.yaml:4" in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("name", GENERAL)
def test_general_scenario_runs_through_the_bench(name):
    """One hour of each through the real heater machines and wire protocol (a heater kind the bench cannot drive
    fails here, not in the middle of a long run)."""
    sc = load_scenario(GENERAL_DIR / f"{name}.yaml").model_copy(update={"duration_h": 1.0})
    result = run_one(sc, "pid")
    assert result.sim_hours == pytest.approx(1.0)
    base_w, max_w = heater_bounds_w(sc)
    # heaters without standby or plug run at least on Low from the first minutes
    assert 0.8 * base_w / 1000.0 <= result.energy_kwh <= max_w / 1000.0 + 0.05
