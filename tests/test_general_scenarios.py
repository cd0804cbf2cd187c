"""Scenarios outside the standard set (thermostat/sim/scenarios/general/) and the defects they exposed."""

from __future__ import annotations

from thermostat.sim.bench import run_one
from thermostat.sim.oracle import run_oracle
from thermostat.sim.scenario import SCENARIO_DIR, load_scenario

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
