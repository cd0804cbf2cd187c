"""Room model, profiles and sensor: behaviour checks."""

from __future__ import annotations

import math

import pytest

from thermostat.sim.room import (
    LARGE_ROOM,
    MEDIUM_ROOM,
    SMALL_ROOM,
    GainsProfile,
    OutdoorProfile,
    Room,
    Sensor,
    SensorParams,
    steady_air_c,
    steady_power_w,
)


@pytest.mark.parametrize("params", [MEDIUM_ROOM, LARGE_ROOM, SMALL_ROOM])
def test_steady_state_is_ua_balance(params):
    room = Room(params, air_c=10.0, mass_c=10.0, max_substep_s=600.0)
    for _ in range(24 * 40):  # 40 days at 1 h steps
        room.step(3600.0, 500.0, 0.0)
    assert room.air_c == pytest.approx(500.0 / params.ua_w_per_k, abs=0.05)
    assert steady_power_w(room, room.air_c, 0.0) == pytest.approx(500.0, rel=0.01)
    assert steady_air_c(params, 500.0, 0.0) == pytest.approx(room.air_c, abs=0.05)


def test_presets_have_documented_magnitudes():
    assert 20 <= MEDIUM_ROOM.ua_w_per_k <= 30
    assert LARGE_ROOM.ua_w_per_k == pytest.approx(2 * MEDIUM_ROOM.ua_w_per_k, rel=0.05)
    assert SMALL_ROOM.ua_w_per_k < 10
    assert 20 * 60 < MEDIUM_ROOM.tau_air_s < 40 * 60
    assert MEDIUM_ROOM.tau_mass_s > 20 * 3600


def test_steady_room_stays_put_and_gains_reduce_power():
    room = Room.steady(MEDIUM_ROOM, 21.0, 0.0)
    p = steady_power_w(room, 21.0, 0.0)
    for _ in range(600):
        room.step(60.0, p, 0.0)
    assert room.air_c == pytest.approx(21.0, abs=1e-6)
    assert steady_power_w(room, 21.0, 0.0, gains_w=200.0) == pytest.approx(p - 200.0)
    assert steady_power_w(room, 21.0, 30.0) == 0.0


def test_window_open_cools_faster():
    closed = Room.steady(MEDIUM_ROOM, 21.0, 0.0)
    opened = closed.copy()
    for _ in range(15):
        closed.step(60.0, 0.0, 0.0)
        opened.step(60.0, 0.0, 0.0, window_open=True)
    assert opened.air_c < closed.air_c - 1.0
    assert closed.air_c > 20.0  # the mass holds the air up for 15 min when closed


def test_heater_warms_air_faster_than_mass():
    room = Room.steady(MEDIUM_ROOM, 18.0, 5.0)
    for _ in range(60):
        room.step(60.0, 800.0, 5.0)
    assert room.air_c - 18.0 > 3 * (room.mass_c - 17.5)


def test_heat_to_reach_hits_the_target():
    room = Room.steady(MEDIUM_ROOM, 20.0, 0.0)
    q = room.heat_to_reach(300.0, 20.5, 0.0)
    room.step(300.0, q, 0.0)
    assert room.air_c == pytest.approx(20.5, abs=1e-9)


def test_outdoor_sinusoid_and_series():
    o = OutdoorProfile(mean_c=5.0, amplitude_k=4.0, peak_hour=15.0)
    assert o.at(15 * 3600) == pytest.approx(9.0)
    assert o.at(3 * 3600) == pytest.approx(1.0)
    s = OutdoorProfile(series=((0.0, 0.0), (10.0, -10.0)))
    assert s.at(5 * 3600) == pytest.approx(-5.0)
    assert s.at(20 * 3600) == -10.0
    with pytest.raises(ValueError):
        OutdoorProfile(series=((2.0, 0.0), (1.0, 0.0)))


def test_gains_profile():
    g = GainsProfile(internal_w=100.0, solar_peak_w=300.0, sunrise_hour=8, sunset_hour=16)
    assert g.at(2 * 3600) == 100.0
    assert g.at(12 * 3600) == pytest.approx(400.0)


def test_sensor_lag_quantisation_and_deadband():
    s = Sensor(SensorParams(tau_s=300.0, noise_k=0.0, resolution_k=0.1, deadband_k=0.1, max_silence_s=3600.0,
                            min_interval_s=0.0), seed=1, initial_c=20.0)
    assert s.sample(0.0, 20.0) == 20.0
    # a 2 K step: after one tau the sensor shows ~63 %
    reports = {}
    for t in range(10, 301, 10):
        r = s.sample(float(t), 22.0)
        if r is not None:
            reports[t] = r
    assert s.last_report == pytest.approx(20.0 + 2.0 * (1 - math.exp(-1)), abs=0.1)
    for v in reports.values():
        assert abs(v * 10 - round(v * 10)) < 1e-6  # 0.1 K resolution
    # stable temperature: silence until max_silence, then a report
    quiet = Sensor(SensorParams(noise_k=0.0, min_interval_s=0.0, max_silence_s=3600.0), seed=2, initial_c=21.0)
    assert quiet.sample(0.0, 21.0) == 21.0
    assert all(quiet.sample(float(t), 21.0) is None for t in range(60, 3600, 60))
    assert quiet.sample(3600.0, 21.0) == 21.0


def test_sensor_noise_is_seeded():
    a = Sensor(SensorParams(noise_k=0.2, min_interval_s=0.0), seed=7, initial_c=21.0)
    b = Sensor(SensorParams(noise_k=0.2, min_interval_s=0.0), seed=7, initial_c=21.0)
    ra = [a.sample(float(t), 21.0) for t in range(0, 3000, 60)]
    rb = [b.sample(float(t), 21.0) for t in range(0, 3000, 60)]
    assert ra == rb
    assert len({r for r in ra if r is not None}) > 1


def test_sensor_dropout_window():
    s = Sensor(SensorParams(noise_k=0.0, min_interval_s=0.0, max_silence_s=60.0), seed=0, initial_c=21.0)
    s.add_dropout(600.0, 1200.0)
    out = {t: s.sample(float(t), 21.0 + t / 3600) for t in range(0, 3600, 60)}
    assert all(out[t] is None for t in range(600, 1800, 60))
    assert out[1800] is not None
    assert s.in_dropout(700.0) and not s.in_dropout(1800.0)
