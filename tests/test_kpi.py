"""KPIs on hand-computed trajectories."""

from __future__ import annotations

import pytest

from thermostat.core.kpi import Kpi
from thermostat.sim.room import MEDIUM_ROOM, Room, steady_power_w


def test_discomfort_trapezoid_hand_computed():
    k = Kpi()
    # target 21: lower bound 20.5, upper 22.0
    k.add(0.0, 20.5, 21.0, 0.0, 0.0)  # rate 0
    k.add(3600.0, 19.5, 21.0, 0.0, 0.0)  # rate 1.0  -> trapezoid 0.5 K·h
    k.add(7200.0, 19.5, 21.0, 0.0, 0.0)  # rate 1.0  -> 1.0 K·h
    k.add(10800.0, 23.0, 21.0, 0.0, 0.0)  # rate 1.0 (above 22) -> 1.0 K·h
    r = k.result()
    assert r.discomfort_kh == pytest.approx(2.5)
    assert r.duration_h == pytest.approx(3.0)


def test_energy_rms_counts():
    k = Kpi()
    k.add(0.0, 21.0, 21.0, 1000.0, 0.0)
    k.add(1800.0, 22.0, 21.0, 1000.0, 0.0)
    k.add(3600.0, 21.0, 21.0, 0.0, 0.0)
    r = k.result()
    assert r.energy_kwh == pytest.approx(0.75)
    # (T - target)^2: 0, 1, 0 -> trapezoid 0.25 + 0.25 = 0.5 K²·h over 1 h
    assert r.rms_error_k == pytest.approx(0.5**0.5)
    k.note_levels({"a": None, "b": "eco"})
    k.note_levels({"a": "eco", "b": "super"})
    k.note_levels({"a": "eco", "b": None})
    r = k.result()
    assert (r.wakes, r.level_changes, r.stops) == (1, 1, 1)


def test_overshoot_ignores_coasting_after_setback():
    k = Kpi()
    k.add(0.0, 21.0, 21.0, 0.0, 0.0)
    k.add(60.0, 21.4, 21.0, 0.0, 0.0)  # 0.4 over a steady target
    k.add(120.0, 21.0, 18.0, 0.0, 0.0)  # setback: 3 K above, not overshoot
    k.add(180.0, 19.0, 18.0, 0.0, 0.0)
    assert k.result().max_overshoot_k == pytest.approx(0.4)
    k.add(240.0, 17.9, 18.0, 0.0, 0.0)  # reached
    k.add(300.0, 18.6, 18.0, 0.0, 0.0)  # now it counts
    assert k.result().max_overshoot_k == pytest.approx(0.6)


def test_energy_floor_is_steady_loss_at_lower_bound():
    room = Room.steady(MEDIUM_ROOM, 20.5, 0.0)
    k = Kpi(twin=room.copy())
    for i in range(24 * 60 + 1):
        k.add(i * 60.0, 21.0, 21.0, 0.0, 0.0)
    r = k.result()
    expected = steady_power_w(room, 20.5, 0.0) * 24 / 1000
    assert r.energy_floor_kwh == pytest.approx(expected, rel=0.01)


def test_energy_floor_below_a_real_controller():
    from thermostat.core.control import PidController

    room = Room.steady(MEDIUM_ROOM, 21.0, 0.0)
    # a twin already settled on the lower bound, so stored heat does not enter the comparison
    k = Kpi(twin=Room.steady(MEDIUM_ROOM, 20.5, 0.0))
    pid = PidController(max_w=824.0)
    t = 0.0
    while t <= 24 * 3600:
        u = pid.update(t, room.air_c, 21.0, 0.0)
        k.add(t, room.air_c, 21.0, u, 0.0)
        room.step(60.0, u, 0.0)
        t += 60.0
    r = k.result()
    assert r.energy_floor_kwh is not None and r.excess_energy_kwh is not None
    assert 0 < r.energy_floor_kwh < r.energy_kwh
    # holding 21 instead of 20.5 costs about UA * 0.5 K * 24 h
    assert r.excess_energy_kwh == pytest.approx(MEDIUM_ROOM.ua_w_per_k * 0.5 * 24 / 1000, rel=0.3)
