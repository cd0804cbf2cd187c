"""The heater state machine against the full simulated miner (SimMiner) over the real wire protocol
(`execute_sync`), in process and in virtual time."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from thermostat.core.heater import HeaterMachine, HeaterState, TransitionEvent
from thermostat.domain.actions import Command, CommandKind, Outcome
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import Request, encode_json
from thermostat.miners.models import MINI3, Q
from thermostat.miners.protocols import execute_sync
from thermostat.sim.miner import SimMiner

T0 = 1_767_225_600.0


class Rig:
    def __init__(self, spec: ModelSpec = MINI3, **sim: object) -> None:
        self.t = T0  # the sim's clock is its epoch clock: start in 2026 (the machine only sees differences)
        self.blocked: tuple[float, float] | None = None
        self.sim = SimMiner(spec, time_fn=lambda: self.t, **sim)  # type: ignore[arg-type]
        self.m = HeaterMachine("sim", spec, now=self.t)
        self.events: list[TransitionEvent] = []
        self.log: list[tuple[float, Command, Outcome]] = []

    def send(self, request: Request) -> bytes | None:
        if self.blocked and self.blocked[0] <= self.t < self.blocked[1]:
            raise ConnectionRefusedError("unreachable (test)")
        return self.sim.handle(encode_json(request))

    def run(self, seconds: float, at: Callable[[float], None] | None = None) -> None:
        end = self.t + seconds
        while self.t < end:
            for _ in range(10):
                cmds = self.m.step(self.t)
                if not cmds:
                    break
                for c in cmds:
                    out = execute_sync(self.send, c, self.sim.spec)  # type: ignore[arg-type]
                    self.log.append((self.t, c, out))
                    self.m.on_outcome(c, out, self.t)
            self.events.extend(self.m.drain_events())
            self.t = max(self.t + 0.5, min(self.m.next_due(self.t), end, self.t + 30.0))

    def sent(self, kind: CommandKind) -> list[tuple[float, Command, Outcome]]:
        return [x for x in self.log if x[1].kind == kind]


def test_wake_with_first_mode_change_refused() -> None:
    r = Rig(start_state="standby", start_level="night")
    r.run(20)
    assert r.m.state == HeaterState.STANDBY
    r.sim.refuse_next_mode_changes(1)
    r.m.want("super", r.t)
    r.run(600)
    assert r.m.state == HeaterState.RUNNING and r.m.confirmed_level == "super"
    assert next(o.kind.value for _, _, o in r.sent(CommandKind.SET_LEVEL)) == "busy"


def test_softon_without_reply_verified_by_polling() -> None:
    r = Rig(start_state="standby")
    r.sim.faults.softon_no_reply = True
    r.run(20)
    r.m.want("eco", r.t)
    r.run(600)
    assert r.m.state == HeaterState.RUNNING and r.m.confirmed_level == "eco"
    assert r.sent(CommandKind.SOFT_ON)[0][2].kind.value in ("unconfirmed", "ok")


def test_reboot_in_the_middle_of_a_wake() -> None:
    r = Rig(start_state="standby")
    r.run(20)
    r.m.want("super", r.t)
    r.run(100)
    r.sim.reboot()
    r.run(900)
    assert r.m.state == HeaterState.RUNNING and r.m.confirmed_level == "super"


@pytest.mark.parametrize("skew", [-300.0, 300.0])
def test_clock_skew(skew: float) -> None:
    r = Rig(start_state="standby", clock_skew_s=skew)
    r.run(20)
    r.m.want("super", r.t)
    r.run(600)
    assert r.m.state == HeaterState.RUNNING
    t, cmd, _ = r.sent(CommandKind.SOFT_ON)[0]
    assert cmd.at_miner_time is not None
    assert abs(cmd.at_miner_time - (t + skew + 5.0)) <= 1.0  # from the miner's clock, not ours


def test_unreachable_30_minutes_then_recovers() -> None:
    r = Rig(Q, start_state="mining", start_level="standard")
    r.m.want("standard", r.t)
    r.run(60)
    assert r.m.state == HeaterState.RUNNING
    r.blocked = (r.t, r.t + 1800)
    r.run(1800)
    assert any(e.to_state == HeaterState.FAULT for e in r.events)
    r.run(3600)
    assert r.m.state == HeaterState.RUNNING and r.m.available and r.m.confirmed_level == "standard"


def test_stopping_an_unreachable_miner_with_a_stale_clock_polls_at_the_poll_pace() -> None:
    """Regression: STOPPING (and WAKING) needing a fresh miner clock re-polled at once after every failed poll,
    a hot loop against an unreachable miner. Polls must keep the `fast_poll_s` pace."""
    from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState
    from thermostat.domain.actions import CommandKind
    from thermostat.miners.avalon import encode_json
    from thermostat.miners.errors import Unreachable
    from thermostat.miners.models import MODELS
    from thermostat.sim.miner import SimMiner

    t = [1_800_000_000.0]
    spec = MODELS["mini3"]
    miner = SimMiner(spec, time_fn=lambda: t[0], boot_seconds=30, calibration_seconds=30)
    reachable = [True]

    def send(req):  # type: ignore[no-untyped-def]
        if not reachable[0]:
            raise Unreachable("unplugged")
        return miner.handle(encode_json(req))

    settings = HeaterSettings(min_on_s=0, min_off_s=0, poll_interval_s=120.0)
    m = HeaterMachine("m", spec, settings, now=0.0)
    now = 0.0
    polls_at: list[float] = []

    def run(until: float) -> None:
        nonlocal now
        while now < until:
            for cmd in m.step(now):
                if cmd.kind == CommandKind.POLL and not reachable[0]:
                    polls_at.append(now)
                    assert len(polls_at) < 500, "hot poll loop"
                m.on_outcome(cmd, execute_sync(send, cmd, spec), now)
            now += 0.5
            t[0] += 0.5

    m.want("super", now)
    run(400)
    assert m.state == HeaterState.RUNNING
    last_poll = max(t for t, req in miner.commands_log if "stats" in req) - (t[0] - now)
    run(last_poll + 5)
    reachable[0] = False  # the miner drops off the network between two settled polls ...
    run(last_poll + settings.clock_fresh_s + 10)  # ... and the last snapshot's clock goes stale
    m.want(None, now, safety=True)  # standby wanted: soft off needs a fresh miner clock
    run(now + 60)
    assert m.state in (HeaterState.STOPPING, HeaterState.BACKOFF, HeaterState.FAULT)
    gaps = [b - a for a, b in itertools.pairwise(polls_at)]
    assert gaps and min(gaps) >= settings.fast_poll_s - 0.5, gaps[:10]
