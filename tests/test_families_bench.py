"""LuxOS and Braiins OS heaters through the same heater state machine: in the bench (extra scenarios) and
driven event by event in virtual time against each simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermostat.core.heater import HeaterMachine, HeaterState
from thermostat.domain.actions import Command, Outcome
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import Request, encode_json
from thermostat.miners.models import BRAIINS_S19, LUXOS_S21
from thermostat.miners.protocols import SessionCache, execute_sync
from thermostat.sim.bench import run_one
from thermostat.sim.factory import make_sim_miner
from thermostat.sim.scenario import SCENARIO_DIR, load_scenario, shipped_scenarios

EXTRA = SCENARIO_DIR / "extra"
T0 = 1_767_225_600.0


def test_extra_scenarios_are_not_in_the_shipped_set() -> None:
    names = shipped_scenarios()
    assert "luxos_garage" not in names and "braiins_workshop" not in names
    assert sorted(p.stem for p in EXTRA.glob("*.yaml")) == ["braiins_workshop", "luxos_garage"]


@pytest.mark.parametrize(
    ("name", "model", "max_discomfort_kh"),
    # 48 h each. The S19 is one 3.25 kW rung switched by pause/resume under the wake cap: coarse by nature.
    [("luxos_garage", "luxos-s21", 3.0), ("braiins_workshop", "braiins-s19", 30.0)],
)
def test_bench_heats_the_room(name: str, model: str, max_discomfort_kh: float) -> None:
    scenario = load_scenario(Path(EXTRA / f"{name}.yaml"))
    assert [h.model for h in scenario.heaters] == [model]
    result = run_one(scenario, "pid", keep_trace=True)
    assert result.trace is not None
    assert result.wakes >= 2  # woken from standby by the state machine, and again after a standby
    levels = next(iter(result.trace.levels.values()))
    assert max(levels) >= 1  # reached (and verified) a level of the ladder
    assert result.energy_kwh > 0.9 * result.energy_floor_kwh
    assert result.discomfort_kh < max_discomfort_kh
    assert result.wall_s < 15.0


class Rig:
    def __init__(self, spec: ModelSpec) -> None:
        self.t = T0
        self.spec = spec
        self.sim = make_sim_miner(spec, time_fn=lambda: self.t, start_state="standby", boot_seconds=60,
                                  calibration_seconds=30)
        self.m = HeaterMachine("h", spec, now=self.t)
        self.session = SessionCache()
        self.log: list[tuple[float, Command, Outcome]] = []

    def send(self, request: Request) -> bytes | None:
        return self.sim.handle(encode_json(request))

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end:
            for _ in range(10):
                cmds = self.m.step(self.t)
                if not cmds:
                    break
                for c in cmds:
                    out = execute_sync(self.send, c, self.spec, session=self.session)  # type: ignore[arg-type]
                    self.log.append((self.t, c, out))
                    self.m.on_outcome(c, out, self.t)
            self.m.drain_events()
            self.t = max(self.t + 0.5, min(self.m.next_due(self.t), end, self.t + 30.0))


@pytest.mark.parametrize("spec", [LUXOS_S21, BRAIINS_S19], ids=lambda s: s.key)
def test_heater_machine_wakes_sets_level_and_stops(spec: ModelSpec) -> None:
    r = Rig(spec)
    r.run(30)
    assert r.m.state == HeaterState.STANDBY
    want = spec.levels[1].name if len(spec.levels) > 1 else spec.levels[0].name
    r.m.want(want, r.t)
    r.run(600)
    assert r.m.state == HeaterState.RUNNING and r.m.confirmed_level == want
    assert r.sim.hashing and r.sim.level_name == want and r.sim.wakes == 1
    assert all(o.ok for _, _, o in r.log), [(c.kind, o) for _, c, o in r.log if not o.ok]
    if len(spec.levels) > 2:
        r.run(200)  # level dwell
        r.m.want(spec.top_level.name, r.t)
        r.run(300)
        assert r.m.confirmed_level == spec.top_level.name and r.sim.level_name == spec.top_level.name
    r.run(700)  # min on time
    r.m.want(None, r.t)
    r.run(300)
    assert r.m.state == HeaterState.STANDBY and not r.sim.hashing
    assert r.sim.wall_w == spec.standby_wall_w
