"""Controllers: closed loop on the room model, anti-windup, hand-back, baselines as documented."""

from __future__ import annotations

import itertools

import pytest

from thermostat.core.control import (
    BangBangController,
    HysteresisController,
    PidController,
    TpiController,
)
from thermostat.core.controllers import make_controller
from thermostat.sim.room import MEDIUM_ROOM, Room, Sensor, SensorParams, steady_power_w


def closed_loop(ctrl, room, hours, target, outdoor=0.0, dt=60.0, t0=0.0, sensor=None):
    sensor = sensor or Sensor(SensorParams(), seed=3, initial_c=room.air_c)
    last = None
    trace = []
    t = t0
    while t < t0 + hours * 3600:
        r = sensor.sample(t, room.air_c)
        if r is not None:
            last = r
        u = ctrl.update(t, last, target(t) if callable(target) else target, outdoor)
        assert 0.0 <= u <= ctrl.max_w
        room.step(dt, u, outdoor)
        trace.append((t, room.air_c, u))
        t += dt
    return trace


def test_pid_settles_within_0_3_k():
    room = Room.steady(MEDIUM_ROOM, 19.0, 5.0)
    pid = PidController(max_w=824.0)
    trace = closed_loop(pid, room, 24, 21.0, outdoor=5.0)
    late = [air for t, air, _ in trace if t >= 8 * 3600]
    assert max(abs(a - 21.0) for a in late) <= 0.3
    mean_u = sum(u for t, _, u in trace if t >= 12 * 3600) / len([1 for t, *_ in trace if t >= 12 * 3600])
    assert mean_u == pytest.approx(steady_power_w(room, 21.0, 5.0), rel=0.15)


def test_pid_no_windup_after_unreachable_setpoint():
    room = Room.steady(MEDIUM_ROOM, 20.0, 0.0)
    pid = PidController(max_w=824.0)

    def target(t):
        return 40.0 if t < 6 * 3600 else 18.0  # unreachable for 6 h, then a drop

    trace = closed_loop(pid, room, 7, target)
    assert all(u == 824.0 for t, _, u in trace if 600 < t < 6 * 3600)
    assert pid.integral_w <= 824.0
    after = [(t, u) for t, _, u in trace if t >= 6 * 3600]
    zero_at = next(t for t, u in after if u == 0.0)
    assert zero_at - 6 * 3600 <= 300  # within minutes


def test_pid_missing_reading_returns_zero_and_freezes_integral():
    pid = PidController(max_w=800.0)
    for t in range(0, 3600, 60):
        pid.update(float(t), 20.5, 21.0, None)
    i = pid.integral_w
    assert pid.update(3600.0, None, 21.0, None) == 0.0
    assert pid.update(7200.0, None, 21.0, None) == 0.0
    assert pid.integral_w == i
    # back after a 1 h gap: dt is capped, so the integral moves by at most Ki * err * max_dt
    pid.update(7260.0, 20.5, 21.0, None)
    assert abs(pid.integral_w - i) <= pid.ki * 0.5 * pid.max_dt_s + 1e-6


def test_pid_bumpless_hand_back():
    pid = PidController(max_w=800.0)
    for t in range(0, 1800, 60):
        pid.update(float(t), 20.0, 21.0, None)
    pid.hold(300.0)
    assert pid.held
    assert pid.update(1800.0, 15.0, 21.0, None) == 300.0  # held: nothing learnt
    assert pid.update(3600.0, 15.0, 21.0, None) == 300.0
    pid.resume()
    out = pid.update(3660.0, 21.0, 21.0, None)  # at target: P = 0, so the output continues from the held value
    assert out == pytest.approx(300.0, abs=5.0)


def test_pid_feed_forward_adds_ua_term():
    plain = PidController(max_w=1000.0)
    ff = PidController(max_w=1000.0, ua_est_w_per_k=25.0)
    assert ff.update(0.0, 21.0, 21.0, 1.0) - plain.update(0.0, 21.0, 21.0, 1.0) == pytest.approx(500.0, abs=1)
    assert ff.update(60.0, 21.0, 21.0, None) == pytest.approx(plain.update(60.0, 21.0, 21.0, None), abs=1)


def test_hysteresis_band():
    h = HysteresisController(max_w=900.0, cold_tol=0.3, hot_tol=0.3)
    assert h.update(0, 20.8, 21.0, None) == 0.0
    assert h.update(1, 20.7, 21.0, None) == 900.0
    assert h.update(2, 21.2, 21.0, None) == 900.0
    assert h.update(3, 21.3, 21.0, None) == 0.0
    assert h.update(4, 20.9, 21.0, None) == 0.0
    assert h.update(5, None, 21.0, None) == 0.0


def test_bang_bang_tolerances_and_min_cycle():
    bb = BangBangController(max_w=1648.0, unit_w=824.0)
    assert bb.update(0.0, 20.8, 21.0, None) == 0.0  # inside the band
    assert bb.update(60.0, 20.7, 21.0, None) == 824.0  # target >= T + 0.3: on, one heater
    assert bb.update(120.0, 25.0, 21.0, None) == 824.0  # too hot but on for < 5 min
    assert bb.update(359.0, 25.0, 21.0, None) == 824.0
    assert bb.update(360.0, 25.0, 21.0, None) == 0.0  # 5 min on: off
    assert bb.update(420.0, 15.0, 21.0, None) == 0.0  # too cold but off for < 5 min
    assert bb.update(660.0, 15.0, 21.0, None) == 824.0
    assert bb.update(1000.0, None, 21.0, None) == 824.0  # GT keeps the switch on an unavailable sensor


def test_bang_bang_closed_loop_never_short_cycles():
    room = Room.steady(MEDIUM_ROOM, 20.0, 0.0)
    bb = BangBangController(max_w=824.0, unit_w=824.0)
    trace = closed_loop(bb, room, 12, 21.0, dt=30.0)
    changes = [t for (t, _, u), (_, _, u0) in zip(trace[1:], trace, strict=False) if u != u0]
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert changes and min(gaps) >= 300.0


def test_tpi_duty_equals_formula():
    tpi = TpiController(max_w=1000.0)
    expected = 0.6 * (21.0 - 20.5) + 0.01 * (21.0 - 1.0)  # 0.5
    outs = [tpi.update(float(t), 20.5, 21.0, 1.0) for t in range(0, 300, 1)]
    assert tpi.on_percent == pytest.approx(expected)
    assert sum(1 for o in outs if o == 1000.0) == pytest.approx(expected * 300, abs=1)
    assert outs[0] == 1000.0 and outs[-1] == 0.0  # on first, then off
    # recomputed only at the next cycle start
    assert tpi.update(301.0, 19.0, 21.0, 1.0) == 1000.0
    assert tpi.on_percent == 1.0
    assert tpi.compute_on_percent(22.0, 21.0, 1.0) == 0.0
    assert tpi.compute_on_percent(20.0, 21.0, None) == pytest.approx(0.6)


def test_factory_and_errors():
    assert make_controller("pid", max_w=800.0).name == "pid"
    assert make_controller("bang_bang", max_w=800.0, unit_w=400.0).name == "bang-bang"
    assert make_controller("tpi", max_w=800.0, coef_int=0.5).name == "tpi"
    assert make_controller("hysteresis", max_w=800.0).name == "hysteresis"
    assert make_controller("mpc", max_w=800.0).name == "mpc"
    with pytest.raises(ValueError, match="unknown controller"):
        make_controller("lqr", max_w=800.0)
    with pytest.raises(ValueError, match="accepted settings"):
        make_controller("pid", max_w=800.0, kq=1.0)
    with pytest.raises(ValueError):
        make_controller("pid", max_w=0.0)


@pytest.mark.parametrize("name", ["hysteresis", "bang-bang", "tpi"])
def test_baselines_hold_and_resume(name):
    c = make_controller(name, max_w=800.0, unit_w=800.0)
    c.hold(0.0)
    assert c.update(0.0, 10.0, 21.0, 0.0) == 0.0
    c.resume()
    assert c.update(600.0, 10.0, 21.0, 0.0) == 800.0
