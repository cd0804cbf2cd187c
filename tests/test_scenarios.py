"""Every shipped scenario loads and builds; bad files give located errors."""

from __future__ import annotations

import pytest

from thermostat.sim.scenario import ScenarioError, load_scenario, shipped_scenarios

EXPECTED = {"mild_week", "cold_snap", "morning_setback", "window_opening", "sensor_dropout",
            "two_heaters_large_room", "nano3s_small_room"}


def test_standard_set_ships():
    assert set(shipped_scenarios()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_scenario_loads_and_builds(name):
    sc = load_scenario(name)
    assert sc.name == name
    room = sc.build_room()
    assert room.air_c == sc.room.initial_air_c
    sensor = sc.build_sensor()
    assert sensor.sample(0.0, room.air_c) is not None
    assert sc.max_w > 0 and sc.heater_list()
    out = sc.build_outdoor()
    assert -30 < out.at(sc.duration_s / 2) < 30
    assert sc.gains.internal_w >= 0 and sc.build_gains().at(0.0) >= 0
    if sc.schedule is not None:
        assert {"timezone", "presets", "week"} <= set(sc.schedule)


def test_events_are_queried():
    sc = load_scenario("window_opening")
    assert sc.window_open(7.5 * 3600 + 60)
    assert not sc.window_open(7.5 * 3600 + 16 * 60)
    sd = load_scenario("sensor_dropout")
    assert sd.sensor_dropout(2.5 * 3600) and sd.build_sensor().in_dropout(2.5 * 3600)
    two = load_scenario("two_heaters_large_room")
    assert two.unreachable(1, 50.5 * 3600) and not two.unreachable(0, 50.5 * 3600)
    assert [hid for hid, _ in two.heater_list()] == ["mini3-1", "mini3-2"]


def test_bad_scenario_errors_are_located(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nduration_h: 10\nheaters:\n  - {model: s19, count: 1}\nevents:\n"
                 "  - {kind: window_open, start_h: 1}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    text = str(info.value)
    assert "bad.yaml:4" in text and "s19" in text
    assert "duration_min" in text
    with pytest.raises(ScenarioError, match="no such scenario"):
        load_scenario("no_such_thing")


def test_unknown_key_rejected(tmp_path):
    p = tmp_path / "typo.yaml"
    p.write_text("name: typo\nduration_h: 1\nheaters: [{model: mini3}]\nroom: {presett: large}\n")
    with pytest.raises(ScenarioError, match="presett"):
        load_scenario(p)
