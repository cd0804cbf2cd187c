"""The soak (issue 12): the observer catches each violation planted in it, and a CI-sized soak of the real
service process (one simulated day, ≥ 30 faults of every kind) ends with 0 violations."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thermostat.sim.soak import FAULT_KINDS, SoakOptions, format_table, plan_kinds, run_soak, summarize
from thermostat.sim.soak_miner import request_command
from thermostat.sim.soak_observer import HeaterRules, Observer, RoomRules

ROOMS = {"living": RoomRules(("a", "b"), stale_after_s=300.0, max_c=26.0)}
HEATERS = {"a": HeaterRules("living", standby_w=17.0, min_off_s=600.0, max_wakes_per_hour=2),
           "b": HeaterRules("living", standby_w=17.0, min_off_s=600.0, max_wakes_per_hour=2)}


def _observer() -> Observer:
    return Observer(ROOMS, HEATERS, recovery_bound_s=1800.0, start_t=0.0)


def _kinds(obs: Observer) -> list[str]:
    return [v.invariant for v in obs.violations]


def test_heat_while_the_sensor_is_silent_is_a_violation_with_its_time_and_fault() -> None:
    obs = _observer()
    obs.reading_published("living", 0.0, 21.0)
    obs.fault_started("sensor_silent(living)", 10.0)
    obs.miner_state("a", 10.0, wall_w=830.0, generation=1, wakes=0)
    obs.check(300.0 + 60.0)  # exactly stale_after + 60 s: still allowed
    assert obs.violations == []
    obs.check(361.0)
    assert _kinds(obs) == ["silent_sensor_heat"]
    v = obs.violations[0]
    assert (v.t, v.subject, v.fault) == (361.0, "living", "sensor_silent(living)")
    obs.check(400.0)  # one violation per episode, not one per check
    assert len(obs.violations) == 1


def test_a_silent_sensor_without_heat_is_fine_and_a_frozen_miner_is_exempt() -> None:
    obs = _observer()
    obs.miner_state("a", 0.0, wall_w=17.0, generation=1, wakes=0)  # standby watts: no heat
    obs.check(1000.0)
    obs.miner_frozen("b", True, 1000.0)
    obs.miner_state("b", 1000.0, wall_w=1600.0, generation=1, wakes=0)
    obs.check(1100.0)
    assert obs.violations == []
    obs.miner_frozen("b", False, 1200.0)
    obs.check(1200.0 + 121.0)  # the service has had its grace to reach the thawed miner
    assert _kinds(obs) == ["silent_sensor_heat"]


def test_heat_after_a_confirmed_reading_above_max() -> None:
    obs = _observer()
    obs.miner_state("a", 0.0, wall_w=830.0, generation=1, wakes=0)
    for t in (100.0, 160.0):
        obs.reading_published("living", t, 27.5)
        obs.check(t)
    obs.check(220.0 + 60.0)  # two readings: not confirmed yet (neither 3 readings nor 2 minutes)
    assert obs.violations == []
    obs.reading_published("living", 220.0, 27.5)  # third: confirmed at 220
    obs.check(280.0)
    assert obs.violations == []
    obs.check(281.0)
    assert _kinds(obs) == ["above_max_heat"]


def test_hard_heat_with_a_stuck_sensor_beyond_stuck_after_is_a_violation() -> None:
    rooms = {"living": RoomRules(("a", "b"), stale_after_s=300.0, max_c=26.0, capacity_w=1700.0,
                                 stuck_after_s=600.0)}
    obs = Observer(rooms, HEATERS, recovery_bound_s=1800.0, start_t=0.0)
    obs.sensor_stuck("living", True, 0.0)
    obs.miner_state("a", 0.0, wall_w=600.0, generation=1, wakes=0)  # 583 W of 1700: not hard heat
    obs.reading_published("living", 2000.0, 18.0)
    obs.check(2000.0)
    assert obs.violations == []
    obs.miner_state("b", 2000.0, wall_w=600.0, generation=1, wakes=0)  # 1166 W: hard from 2000 on
    for t in (2000.0, 2400.0, 2780.0):  # 600 s + 180 s grace: still allowed
        obs.reading_published("living", t, 18.0)
        obs.check(t)
    assert obs.violations == []
    for t in (2790.0, 2900.0):
        obs.reading_published("living", t, 18.0)
        obs.check(t)
    assert _kinds(obs) == ["stuck_sensor_heat"]  # one per episode
    obs.sensor_stuck("living", False, 3000.0)  # the fault ends: heat is fine again
    obs.reading_published("living", 4000.0, 21.0)
    obs.check(4000.0)
    assert len(obs.violations) == 1


def test_two_readings_two_minutes_apart_also_confirm() -> None:
    obs = _observer()
    obs.miner_state("a", 0.0, wall_w=830.0, generation=1, wakes=0)
    obs.reading_published("living", 0.0, 27.0)
    obs.reading_published("living", 120.0, 27.0)
    obs.check(181.0)
    assert _kinds(obs) == ["above_max_heat"]


def test_a_reading_back_below_max_ends_the_episode() -> None:
    obs = _observer()
    obs.miner_state("a", 0.0, wall_w=830.0, generation=1, wakes=0)
    for t in (0.0, 20.0, 40.0):
        obs.reading_published("living", t, 27.0)
    obs.reading_published("living", 50.0, 25.0)
    obs.check(300.0)  # well past confirmation + 60 s, sensor not silent
    assert obs.violations == []


def test_wake_cap_counts_across_miner_restarts() -> None:
    obs = _observer()
    obs.miner_state("a", 0.0, wall_w=17.0, generation=1, wakes=0)
    obs.miner_state("a", 100.0, wall_w=400.0, generation=1, wakes=1)
    obs.miner_state("a", 900.0, wall_w=17.0, generation=1, wakes=1)
    obs.miner_state("a", 1600.0, wall_w=400.0, generation=1, wakes=2)
    obs.miner_lost_power("a", 2000.0)  # killed; the new process counts from 0
    obs.miner_state("a", 2100.0, wall_w=17.0, generation=2, wakes=0)
    assert obs.violations == []
    obs.miner_state("a", 2900.0, wall_w=400.0, generation=2, wakes=1)  # third wake within the hour
    assert _kinds(obs) == ["wake_cap"]
    assert obs.wake_times["a"] == [100.0, 1600.0, 2900.0]


def test_wakes_an_hour_apart_are_within_the_cap() -> None:
    obs = _observer()
    for i in range(6):
        obs.miner_state("a", i * 1800.0, wall_w=17.0, generation=1, wakes=i)
        obs.miner_state("a", i * 1800.0 + 1.0, wall_w=500.0, generation=1, wakes=i + 1)
        obs.miner_state("a", i * 1800.0 + 900.0, wall_w=17.0, generation=1, wakes=i + 1)
    assert obs.violations == []


def test_min_off_is_measured_from_when_heat_stopped() -> None:
    obs = _observer()
    obs.miner_state("a", 0.0, wall_w=830.0, generation=1, wakes=0)
    obs.miner_state("a", 100.0, wall_w=17.0, generation=1, wakes=0)  # stopped at 100
    obs.miner_state("a", 100.0 + 500.0, wall_w=17.0, generation=1, wakes=1)  # woken 500 s later
    assert _kinds(obs) == ["min_off"]


def test_pool_commands_are_violations_and_reads_are_not() -> None:
    obs = _observer()
    for text in ("summary", "ascset|0,softon,1:1768201000", '{"command": "estats"}'):
        obs.miner_request("a", 1.0, text, request_command(text))
    assert obs.violations == []
    for text in ("switchpool|1", '{"command": "addpool", "parameter": "stratum+tcp://x,u,p"}'):
        obs.miner_request("b", 2.0, text, request_command(text))
    assert _kinds(obs) == ["pool_command", "pool_command"]
    assert len(obs.commands) == 5


def test_comfort_recovery_is_timed_and_bounded() -> None:
    obs = _observer()
    obs.fault_started("miner_hang(a)", 0.0)
    obs.fault_ended("miner_hang(a)", 100.0)
    obs.room_air("living", 200.0, 19.0, 21.0)  # below band
    assert obs.recovering() == ["living"]
    obs.room_air("living", 700.0, 20.6, 21.0)  # in band 600 s after the end
    assert obs.recovering() == []
    assert [(r.fault, r.seconds) for r in obs.recoveries] == [("miner_hang(a)", 600.0)]
    obs.fault_ended("sensor_jump(living)", 1000.0)
    obs.room_air("living", 1000.0 + 1801.0, 19.0, 21.0)
    assert _kinds(obs) == ["comfort_recovery"]
    assert obs.violations[0].fault == "after sensor_jump(living)"


def test_a_service_that_exits_by_itself_is_a_violation() -> None:
    obs = _observer()
    obs.fault_started("state_damaged", 5.0)
    obs.service_exited(6.0, 1)
    assert _kinds(obs) == ["service_exit"]
    assert obs.violations[0].fault == "state_damaged"


def test_every_kind_is_planned_when_there_are_enough_faults() -> None:
    import random

    kinds = plan_kinds(30, random.Random(3))
    assert len(kinds) == 30 and set(kinds) == set(FAULT_KINDS)


def test_the_table_attributes_violations_and_recoveries_to_fault_kinds() -> None:
    from thermostat.sim.soak import SIM_START, Fault, SoakResult

    t0 = SIM_START.timestamp()
    result = SoakResult(
        options={"days": 1.0, "faults": 3, "seed": 1, "speed": 360.0}, real_seconds=240.0, simulated_s=86400.0,
        faults=[Fault("miner_hang", t0 + 3600, 200.0, "q-a", commands=4),
                Fault("sensor_jump", t0 + 7200, 600.0, "living", commands=2),
                Fault("miner_hang", t0 + 9000, 100.0, "mini3-a", commands=6)],
        violations=[{"t": t0 + 7300, "invariant": "above_max_heat", "subject": "living", "detail": "x",
                     "fault": "sensor_jump(living)"},
                    {"t": t0 + 8000, "invariant": "comfort_recovery", "subject": "living", "detail": "y",
                     "fault": "after sensor_jump(living)"}],
        recoveries=[{"fault": "miner_hang(q-a)", "room": "living", "seconds": 60.0},
                    {"fault": "miner_hang(mini3-a)", "room": "living", "seconds": 180.0},
                    {"fault": "sensor_jump(living)", "room": "living", "seconds": None}],
        wakes={"q-a": 2}, commands_total=12, service_starts=1)
    s = summarize(result)
    hang, jump = s["by_kind"]["miner_hang"], s["by_kind"]["sensor_jump"]
    assert (hang["injected"], hang["violations"], hang["commands_per_fault"]) == (2, 0, 5.0)
    assert (hang["recovery_p50_s"], hang["recovery_max_s"]) == (120.0, 180.0)
    assert (jump["injected"], jump["violations"], jump["not_recovered"]) == (1, 2, 1)
    assert s["violations"] == 2 and s["violations_by_invariant"] == {"above_max_heat": 1, "comfort_recovery": 1}
    table = "\n".join(format_table(s))
    assert "sensor_jump" in table and "above_max_heat living" in table and "violations: 2" in table


def test_the_soak_house_config_is_valid_and_its_broken_configs_are_not(tmp_path: Path) -> None:
    from thermostat.config import ConfigError, load_config
    from thermostat.sim.soak import BROKEN_CONFIGS, HOUSE, soak_config_yaml, soak_schedule_yaml

    (tmp_path / "schedule.yaml").write_text(soak_schedule_yaml(), encoding="utf-8")
    ports = {hid: 4000 + i for i, hid in enumerate(h for room in HOUSE for h in room.heaters)}
    for variant in (0, 1):
        path = tmp_path / f"house{variant}.yaml"
        path.write_text(soak_config_yaml(1883, ports, variant=variant), encoding="utf-8")
        config = load_config(path)
        assert set(config.rooms) == {room.id for room in HOUSE}
        assert config.rooms["living"].sensor.stale_after == 300.0
    for i, text in enumerate(BROKEN_CONFIGS):
        path = tmp_path / f"broken{i}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError):
            load_config(path)


def test_processes_on_the_shared_scaled_clock_agree() -> None:
    import time

    from thermostat.clock import SharedScaledClock

    origin = time.time() - 10.0
    a = SharedScaledClock(100.0, origin, 1_000_000.0)
    b = SharedScaledClock(100.0, origin, 1_000_000.0)  # another process, built from the same numbers
    ta, tb = a.epoch(), b.epoch()
    assert abs(ta - tb) < 5.0  # a few simulated seconds: the two calls are microseconds apart
    assert 1_000_000.0 + 990.0 < ta < 1_000_000.0 + 1100.0
    assert a.now().timestamp() == pytest.approx(a.epoch(), abs=5.0)
    asyncio.run(a.sleep(50.0))  # half a real second
    assert a.monotonic() - (ta - 1_000_000.0) >= 49.0


def test_the_test_clock_is_refused_unless_asked_for(tmp_path: Path) -> None:
    config = tmp_path / "house.yaml"
    config.write_text("rooms: {}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "THERMOSTAT_TEST_CLOCK"}
    proc = subprocess.run([sys.executable, "-m", "thermostat", "run", "--config", str(config),
                           "--test-clock-speed", "100", "--test-clock-origin", "0", "--test-clock-start", "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "for tests only" in proc.stderr and "THERMOSTAT_TEST_CLOCK=1" in proc.stderr


def test_ci_soak_one_simulated_day_every_fault_kind_zero_violations(tmp_path: Path) -> None:
    """The real service process, mosquitto, miner processes and rooms: 1 simulated day, 30 faults."""
    result = asyncio.run(run_soak(SoakOptions(days=1.0, faults=30, seed=1, speed=360.0, workdir=tmp_path)))
    summary = summarize(result)
    table = "\n".join(format_table(summary))
    assert summary["simulated_days"] >= 1.0, table
    assert summary["faults_injected"] >= 30, table
    assert set(summary["fault_kinds_covered"]) == set(FAULT_KINDS), table
    assert summary["violations"] == 0, table
    # the observer really saw the house working: heaters woke and commands reached the miners
    assert sum(summary["wakes"].values()) > 0 and summary["miner_commands"] > 0, table


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
