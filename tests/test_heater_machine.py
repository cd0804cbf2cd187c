"""Heater state machine: one table-driven test per transition, then scenarios against a fake miner."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from heater_fakes import EPOCH, FakeMiner, Harness

from thermostat.core.heater import (
    TRANSITIONS,
    HeaterMachine,
    HeaterSettings,
    HeaterState,
    InvalidTransition,
    OffMethod,
)
from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState, Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.models import MINI3, NANO3S, Q

S = HeaterState
K = CommandKind
O = OutcomeKind  # noqa: E741
MT = 1_767_225_600  # a miner epoch time


def snap(
    spec: ModelSpec = MINI3,
    state: MinerState = MinerState.MINING,
    level: str = "super",
    *,
    calibrated: bool = True,
    uptime: int = 5000,
    miner_time: int = MT,
    temp: float = 70.0,
    fan: int = 3000,
    power: float | None = None,
) -> Snapshot:
    lv = spec.level(level)
    return Snapshot(
        state=state, workmode=lv.workmode, worklevel=lv.worklevel, calibrated=calibrated, uptime_s=uptime,
        miner_time=miner_time, chip_temp_max_c=temp, fan_rpm=fan, power_w=lv.wall_w if power is None else power,
    )


def idle(spec: ModelSpec = MINI3, **kw: object) -> Snapshot:
    bottom = spec.bottom_level.name
    return snap(spec, MinerState.STANDBY, bottom, calibrated=False, fan=0, power=spec.standby_wall_w, **kw)  # type: ignore[arg-type]


def answer(m: HeaterMachine, t: float, outcome: Outcome, kind: CommandKind | None = None) -> list[Command]:
    """step(t), check the one command (of `kind`), report `outcome`; returns the next step's commands."""
    cmds = m.step(t)
    assert len(cmds) == 1, (m.state, cmds)
    if kind is not None:
        assert cmds[0].kind == kind, (m.state, cmds)
    m.on_outcome(cmds[0], outcome, t)
    return m.step(t)


def poll(m: HeaterMachine, t: float, s: Snapshot) -> list[Command]:
    return answer(m, t, Outcome(O.OK, snapshot=s), K.POLL)


def fail(m: HeaterMachine, t: float, kind: OutcomeKind = O.UNREACHABLE, cmd: CommandKind | None = None
         ) -> list[Command]:
    return answer(m, t, Outcome(kind), cmd)


# ---------------------------------------------------------------- builders: a machine in a given state


@dataclass
class Built:
    m: HeaterMachine
    t: float
    pending: list[Command]  # what step() returned last (not yet answered)


def new(spec: ModelSpec = MINI3, *, plug: bool = False, **settings: object) -> HeaterMachine:
    return HeaterMachine("h", spec, HeaterSettings(**settings), 0.0, has_plug=plug)  # type: ignore[arg-type]


def in_standby(spec: ModelSpec = MINI3, **kw: object) -> Built:
    m = new(spec, **kw)
    first = idle(spec) if spec.has_standby else snap(spec, level=spec.bottom_level.name)
    cmds = poll(m, 0.0, first)
    assert m.state == S.STANDBY
    m.drain_events()
    return Built(m, 0.0, cmds)


def in_running(spec: ModelSpec = MINI3, level: str = "super", **kw: object) -> Built:
    m = new(spec, **kw)
    m.want(level, 0.0)
    cmds = poll(m, 0.0, snap(spec, level=level))
    assert m.state == S.RUNNING and cmds == []
    m.drain_events()
    return Built(m, 0.0, cmds)


def in_waking(level: str = "super") -> Built:
    b = in_standby()
    b.m.want(level, 0.0)
    cmds = answer(b.m, 0.0, Outcome(O.UNCONFIRMED), K.SOFT_ON)
    assert b.m.state == S.WAKING
    b.m.drain_events()
    return Built(b.m, 0.0, cmds)


def in_verifying(level: str = "super") -> Built:
    b = in_waking(level)
    cmds = poll(b.m, 10.0, snap(state=MinerState.STARTING, level="night", calibrated=False, uptime=5010))
    assert b.m.state == S.VERIFYING
    b.m.drain_events()
    return Built(b.m, 10.0, cmds)


def in_setting_mode() -> Built:
    b = in_verifying("super")
    cmds = poll(b.m, 160.0, snap(level="night", uptime=160))
    assert b.m.state == S.SETTING_MODE and cmds[0].kind == K.SET_LEVEL
    b.m.drain_events()
    return Built(b.m, 160.0, cmds)


def in_setting_fan() -> Built:
    b = in_setting_mode()
    b.m.on_outcome(b.pending[0], Outcome(O.OK), 160.0)
    cmds = poll(b.m, 163.0, snap(level="super", uptime=163))
    assert b.m.state == S.SETTING_FAN and cmds[0].kind == K.SET_FAN
    b.m.drain_events()
    return Built(b.m, 163.0, cmds)


def in_stopping() -> Built:
    b = in_running()
    b.m.want(None, 1.0)
    cmds = b.m.step(1.0)
    assert b.m.state == S.STOPPING and cmds[0].kind == K.SOFT_OFF
    b.m.on_outcome(cmds[0], Outcome(O.OK), 1.0)
    b.m.drain_events()
    return Built(b.m, 1.0, b.m.step(1.0))


def in_backoff(failures: int = 1, **kw: object) -> Built:
    b = in_running(**kw)
    t = 15.0
    cmds = fail(b.m, t)
    for _ in range(failures - 1):
        t += 400.0
        cmds = fail(b.m, t)
    assert b.m.state == S.BACKOFF and b.m.failures == failures
    b.m.drain_events()
    return Built(b.m, t, cmds)


def in_fault() -> Built:
    b = in_running(max_failures=1)
    fail(b.m, 15.0)
    assert b.m.state == S.FAULT and not b.m.available
    b.m.drain_events()
    return Built(b.m, 15.0, [])


# ---------------------------------------------------------------- the transition table


Action = Callable[[Built], list[Command]]


def _step_at(t: float) -> Action:
    return lambda b: b.m.step(t)


def _want(level: str | None, t: float = 1.0, **kw: object) -> Action:
    def act(b: Built) -> list[Command]:
        b.m.want(level, t, **kw)  # type: ignore[arg-type]
        return b.m.step(t)

    return act


def _set(level: str | None, t: float = 0.0) -> Action:
    def act(b: Built) -> list[Command]:
        b.m.want(level, t)
        return []

    return act


def _poll(s: Snapshot, t: float) -> Action:
    return lambda b: poll(b.m, t, s)


def _fail(t: float, kind: OutcomeKind = O.UNREACHABLE) -> Action:
    return lambda b: fail(b.m, t, kind)


def _reply(kind: OutcomeKind, t: float | None = None) -> Action:
    def act(b: Built) -> list[Command]:
        at = b.t if t is None else t
        b.m.on_outcome(b.pending[0], Outcome(kind, "x"), at)
        return b.m.step(at)

    return act


def _then(*acts: Action) -> Action:
    def act(b: Built) -> list[Command]:
        out: list[Command] = []
        for a in acts:
            out = a(b)
        return out

    return act


def _nano_running_mid() -> Built:
    return in_running(NANO3S, "mid")


def _plug_running() -> Built:
    return in_running(NANO3S, "mid", plug=True)


def _plug_standby() -> Built:
    m = new(NANO3S, plug=True)
    fail(m, 0.0)
    fail(m, 3.0)
    assert m.state == S.STANDBY
    m.drain_events()
    return Built(m, 3.0, [])


def _plug_stopping() -> Built:
    b = _plug_running()
    cmds = _want(None)(b)
    b.m.on_outcome(cmds[0], Outcome(O.OK), 1.0)
    b.m.drain_events()
    return Built(b.m, 1.0, [])


def _nano_stopping() -> Built:
    b = _nano_running_mid()
    cmds = _want(None, 200.0)(b)
    assert cmds[0] == Command("h", K.SET_LEVEL, level="low")
    b.m.on_outcome(cmds[0], Outcome(O.OK), 200.0)
    b.m.drain_events()
    return Built(b.m, 200.0, [])


def _fault_parked_for(seconds: float) -> Action:
    def act(b: Built) -> list[Command]:
        t = 400.0
        poll(b.m, t, idle())
        while t < 400.0 + seconds:
            t += 15.0
            poll(b.m, t, idle(uptime=6000 + int(t)))
        return b.m.step(t)

    return act


# (id, start, action, expected state, expected command kinds next, expected (from, to) of the last event)
ROWS: list[tuple[str, Callable[[], Built], Action, S, list[CommandKind], tuple[S, S] | None]] = [
    ("unknown-poll", lambda: Built(new(), 0.0, []), _step_at(0.0), S.UNKNOWN, [K.POLL], None),
    ("unknown→standby", lambda: Built(new(), 0, []), _poll(idle(), 0.0), S.STANDBY, [], (S.UNKNOWN, S.STANDBY)),
    ("unknown→running (no command)", lambda: Built(new(), 0, []), _then(_set("super"), _poll(snap(), 0.0)),
     S.RUNNING, [], (S.UNKNOWN, S.RUNNING)),
    ("unknown→setting_mode", lambda: Built(new(), 0, []), _then(_set("super"), _poll(snap(level="eco"), 0.0)),
     S.SETTING_MODE, [K.SET_LEVEL], (S.UNKNOWN, S.SETTING_MODE)),
    ("unknown→verifying", lambda: Built(new(), 0, []),
     _then(_set("super"), _poll(snap(calibrated=False), 0.0)), S.VERIFYING, [], (S.UNKNOWN, S.VERIFYING)),
    ("unknown→stopping (hashing, standby wanted)", lambda: Built(new(), 0, []), _poll(snap(), 0.0),
     S.STOPPING, [K.SOFT_OFF], (S.UNKNOWN, S.STOPPING)),
    ("unknown→backoff", lambda: Built(new(), 0, []), _fail(0.0), S.BACKOFF, [], (S.UNKNOWN, S.BACKOFF)),
    ("unknown→backoff (In Fault)", lambda: Built(new(), 0, []), _poll(snap(state=MinerState.FAULT), 0.0),
     S.BACKOFF, [], (S.UNKNOWN, S.BACKOFF)),
    ("standby→waking", in_standby, _want("super"), S.WAKING, [K.SOFT_ON], (S.STANDBY, S.WAKING)),
    ("standby→stopping (power loss)", in_standby, _poll(snap(uptime=20), 15.0), S.STOPPING, [K.SOFT_OFF],
     (S.STANDBY, S.STOPPING)),
    ("standby→backoff", in_standby, _fail(15.0), S.BACKOFF, [], (S.STANDBY, S.BACKOFF)),
    ("standby→setting_mode (no standby)", lambda: in_standby(NANO3S), _want("high", 200.0), S.SETTING_MODE,
     [K.SET_LEVEL], (S.STANDBY, S.SETTING_MODE)),
    ("standby→waking (plug)", _plug_standby, _want("mid", 5.0), S.WAKING, [K.PLUG_ON], (S.STANDBY, S.WAKING)),
    ("waking→verifying", in_waking, _poll(snap(state=MinerState.STARTING, calibrated=False, uptime=5), 9.0),
     S.VERIFYING, [], (S.WAKING, S.VERIFYING)),
    ("waking→verifying→setting_fan", in_waking, _poll(snap(uptime=5), 9.0), S.SETTING_FAN, [K.SET_FAN],
     (S.VERIFYING, S.SETTING_FAN)),
    ("waking→backoff (softon refused)", lambda: _want_and_keep(in_standby()), _reply(O.REFUSED), S.BACKOFF, [],
     (S.WAKING, S.BACKOFF)),
    ("waking→backoff (timeout)", in_waking, _step_at(301.0), S.BACKOFF, [], (S.WAKING, S.BACKOFF)),
    ("waking→stopping (safety)", in_waking, _want(None, 5.0, safety=True), S.STOPPING, [K.SOFT_OFF],
     (S.WAKING, S.STOPPING)),
    ("verifying→setting_mode", in_verifying, _poll(snap(level="night", uptime=160), 160.0), S.SETTING_MODE,
     [K.SET_LEVEL], (S.VERIFYING, S.SETTING_MODE)),
    ("verifying→waking (back in standby)", in_verifying, _poll(idle(uptime=50), 50.0), S.WAKING, [K.SOFT_ON],
     (S.VERIFYING, S.WAKING)),
    ("verifying→backoff (timeout)", in_verifying, _step_at(301.0), S.BACKOFF, [], (S.VERIFYING, S.BACKOFF)),
    ("setting_mode→setting_fan", in_setting_mode, _then(_reply(O.OK), _poll(snap(uptime=163), 163.0)),
     S.SETTING_FAN, [K.SET_FAN], (S.SETTING_MODE, S.SETTING_FAN)),
    ("setting_mode busy: retry later", in_setting_mode, _then(_reply(O.BUSY), _step_at(169.0)), S.SETTING_MODE, [],
     None),
    ("setting_mode busy: retried", in_setting_mode, _then(_reply(O.BUSY), _step_at(170.0)), S.SETTING_MODE,
     [K.SET_LEVEL], None),
    ("setting_mode→backoff (refused)", in_setting_mode, _reply(O.REFUSED), S.BACKOFF, [],
     (S.SETTING_MODE, S.BACKOFF)),
    ("setting_mode→backoff (timeout)", in_setting_mode, _then(_reply(O.BUSY), _step_at(401.0)), S.BACKOFF, [],
     (S.SETTING_MODE, S.BACKOFF)),
    ("setting_mode→verifying (reboot)", in_setting_mode,
     _then(_reply(O.OK), _poll(snap(state=MinerState.STARTING, calibrated=False, uptime=3), 163.0)),
     S.VERIFYING, [], (S.SETTING_MODE, S.VERIFYING)),
    ("setting_fan→running", in_setting_fan, _reply(O.OK), S.RUNNING, [], (S.SETTING_FAN, S.RUNNING)),
    ("setting_fan→running (fan refused)", in_setting_fan, _reply(O.REFUSED), S.RUNNING, [],
     (S.SETTING_FAN, S.RUNNING)),
    ("setting_fan→backoff", in_setting_fan, _reply(O.UNREACHABLE), S.BACKOFF, [], (S.SETTING_FAN, S.BACKOFF)),
    ("running poll", in_running, _step_at(15.0), S.RUNNING, [K.POLL], None),
    ("running→setting_mode", in_running, _want("eco"), S.SETTING_MODE, [K.SET_LEVEL],
     (S.RUNNING, S.SETTING_MODE)),
    ("running→stopping", in_running, _want(None), S.STOPPING, [K.SOFT_OFF], (S.RUNNING, S.STOPPING)),
    ("running→standby (found idle)", in_running, _poll(idle(uptime=5015), 15.0), S.STANDBY, [],
     (S.RUNNING, S.STANDBY)),
    ("running→verifying (reboot)", in_running,
     _poll(snap(state=MinerState.STARTING, calibrated=False, uptime=10), 15.0), S.VERIFYING, [],
     (S.RUNNING, S.VERIFYING)),
    ("running→setting_mode (changed by hand)", in_running, _poll(snap(level="night", uptime=5015), 15.0),
     S.SETTING_MODE, [K.SET_LEVEL], (S.RUNNING, S.SETTING_MODE)),
    ("running→setting_mode (chip hot)", in_running, _poll(snap(temp=97.0, uptime=5015), 15.0), S.SETTING_MODE,
     [K.SET_LEVEL], (S.RUNNING, S.SETTING_MODE)),
    ("running→stopping (fan 0)", in_running, _poll(snap(fan=0, uptime=5015), 15.0), S.STOPPING, [K.SOFT_OFF],
     (S.RUNNING, S.STOPPING)),
    ("running→backoff", in_running, _fail(15.0), S.BACKOFF, [], (S.RUNNING, S.BACKOFF)),
    ("running→stopping (no standby: lowest)", _nano_running_mid, _want(None, 200.0), S.STOPPING, [K.SET_LEVEL],
     (S.RUNNING, S.STOPPING)),
    ("running→stopping (plug)", _plug_running, _want(None), S.STOPPING, [K.PLUG_OFF], (S.RUNNING, S.STOPPING)),
    ("stopping→standby", in_stopping, _poll(idle(uptime=5010), 7.0), S.STANDBY, [], (S.STOPPING, S.STANDBY)),
    ("stopping→standby (lowest)", _nano_stopping, _poll(snap(NANO3S, level="low", uptime=5200), 203.0),
     S.STANDBY, [], (S.STOPPING, S.STANDBY)),
    ("stopping→standby (plug off)", _plug_stopping, _then(_fail(4.0), _fail(7.0)), S.STANDBY, [],
     (S.STOPPING, S.STANDBY)),
    ("stopping→backoff (refused)", lambda: _stop_and_keep(in_running()), _reply(O.REFUSED), S.BACKOFF, [],
     (S.STOPPING, S.BACKOFF)),
    ("stopping→backoff (timeout)", in_stopping, _step_at(122.0), S.BACKOFF, [], (S.STOPPING, S.BACKOFF)),
    ("backoff waits", in_backoff, _step_at(24.0), S.BACKOFF, [], None),
    ("backoff→running", in_backoff, _poll(snap(uptime=5025), 25.0), S.RUNNING, [], (S.BACKOFF, S.RUNNING)),
    ("backoff→backoff", in_backoff, _fail(25.0), S.BACKOFF, [], (S.BACKOFF, S.BACKOFF)),
    ("backoff→fault", lambda: in_backoff(4), _fail(2000.0), S.FAULT, [], (S.BACKOFF, S.FAULT)),
    ("fault holds a hashing miner while heat is wanted", in_fault, _poll(snap(uptime=5400), 30.0), S.FAULT, [],
     None),
    ("fault parks a hashing miner when a safety standby is wanted", in_fault,
     _then(_want(None, 20.0, safety=True), _poll(snap(uptime=5400), 30.0)), S.FAULT, [K.SOFT_OFF], None),
    ("fault parks a hashing miner its room no longer wants", in_fault,
     _then(_poll(snap(uptime=5400), 30.0), _want(None, 31.0)), S.FAULT, [K.SOFT_OFF], None),
    ("fault→standby (recovered)", in_fault, _fault_parked_for(600.0), S.STANDBY, [], (S.FAULT, S.STANDBY)),
]


def _want_and_keep(b: Built) -> Built:
    b.m.want("super", 0.0)
    cmds = b.m.step(0.0)
    assert cmds[0].kind == K.SOFT_ON
    b.m.drain_events()
    return Built(b.m, 0.0, cmds)


def _stop_and_keep(b: Built) -> Built:
    b.m.want(None, 1.0)
    cmds = b.m.step(1.0)
    assert cmds[0].kind == K.SOFT_OFF
    b.m.drain_events()
    return Built(b.m, 1.0, cmds)


@pytest.mark.parametrize(("start", "action", "state", "kinds", "event"), [r[1:] for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_transition(
    start: Callable[[], Built], action: Action, state: S, kinds: list[CommandKind], event: tuple[S, S] | None
) -> None:
    b = start()
    cmds = action(b)
    assert b.m.state == state
    assert [c.kind for c in cmds] == kinds
    events = b.m.drain_events()
    if event is None:
        assert [(e.from_state, e.to_state) for e in events] == []
    else:
        assert events, "a transition must emit an event"
        assert (events[-1].from_state, events[-1].to_state) == event
        assert all(e.heater == "h" and e.reason for e in events)
    for e in events:
        assert e.to_state in TRANSITIONS[e.from_state]


def test_every_state_has_a_row() -> None:
    covered = {r[3] for r in ROWS}
    starts = {e[0] for e in (r[5] for r in ROWS) if e is not None}
    assert starts | {S.UNKNOWN} == set(S)
    assert covered >= set(S)


def test_invalid_transition_raises() -> None:
    b = in_waking()
    with pytest.raises(InvalidTransition):
        b.m._go(S.RUNNING, 1.0, "skipping verification")
    f = in_fault()
    with pytest.raises(InvalidTransition):
        f.m._go(S.BACKOFF, 1.0, "no")
    assert set(TRANSITIONS) == set(S)


def test_one_command_in_flight() -> None:
    m = new()
    first = m.step(0.0)
    assert [c.kind for c in first] == [K.POLL]
    assert m.step(0.0) == [] and m.step(100.0) == []
    assert m.in_flight == first[0]
    m.on_outcome(Command("h", K.POLL, level="x"), Outcome(O.OK, snapshot=idle()), 1.0)  # not ours: ignored
    assert m.in_flight == first[0] and m.state == S.UNKNOWN


def test_want_is_idempotent_and_validated() -> None:
    b = in_running()
    b.m.want("super", 5.0)
    b.m.want("super", 6.0)
    assert b.m.step(6.0) == [] and b.m.drain_events() == []
    with pytest.raises(ValueError, match="no level"):
        b.m.want("turbo", 7.0)


def test_settings_validation_and_off_method() -> None:
    with pytest.raises(ValueError):
        HeaterSettings(poll_interval_s=0)
    with pytest.raises(ValueError):
        HeaterSettings(fan_pct=150)
    assert HeaterMachine("a", MINI3).off_method == OffMethod.SOFT
    assert HeaterMachine("a", Q, has_plug=True).off_method == OffMethod.SOFT
    assert HeaterMachine("a", NANO3S).off_method == OffMethod.LOWEST
    assert HeaterMachine("a", NANO3S, has_plug=True).off_method == OffMethod.PLUG


def test_poll_cadence_settled_and_fast() -> None:
    b = in_running()
    assert b.m.step(14.9) == [] and [c.kind for c in b.m.step(15.0)] == [K.POLL]
    w = in_verifying()
    assert w.m.step(12.9) == [] and [c.kind for c in w.m.step(13.0)] == [K.POLL]


def test_estimated_wall_w() -> None:
    b = in_running()
    assert b.m.estimated_wall_w == MINI3.level("super").wall_w
    s = in_standby()
    assert s.m.estimated_wall_w == MINI3.standby_wall_w
    p = _plug_standby()
    assert p.m.estimated_wall_w == 0.0


# ---------------------------------------------------------------- scenarios against the fake miner


def harness(spec: ModelSpec = MINI3, *, plug: bool = False, settings: HeaterSettings | None = None,
            **miner: object) -> Harness:
    m = HeaterMachine("h", spec, settings or HeaterSettings(), 0.0, has_plug=plug)
    return Harness(m, FakeMiner(spec, **miner))  # type: ignore[arg-type]


def test_wake_sequence_is_exact() -> None:
    h = harness(level="night")
    h.run_for(20)
    h.want("super", reason="room cold")
    h.run_for(400)
    assert h.m.state == S.RUNNING and h.m.confirmed_level == "super"
    non_poll = [(c.kind, c.level) for _, c, _ in h.commands if c.kind != K.POLL]
    assert non_poll == [(K.SOFT_ON, None), (K.SET_LEVEL, "super"), (K.SET_FAN, None)]
    assert h.states() == ["standby", "waking", "verifying", "setting_mode", "setting_fan", "running"]
    set_at = h.sent(K.SET_LEVEL)[0][0]
    assert set_at >= 20 + 5 + 90 + 60  # only once calibrated
    assert h.events[1].reason == "room cold"
    assert h.miner.hashing_at(h.t) == "super"


def test_first_mode_change_after_wake_refused_busy() -> None:
    h = harness(level="night", busy_next=2)
    h.run_for(10)
    h.want("super")
    h.run_for(600)
    assert h.m.state == S.RUNNING and h.m.confirmed_level == "super" and h.miner.level == "super"
    outcomes = [o.kind for _, _, o in h.sent(K.SET_LEVEL)]
    assert outcomes == [O.BUSY, O.BUSY, O.OK]
    times = [t for t, _, _ in h.sent(K.SET_LEVEL)]
    assert times[1] - times[0] == pytest.approx(10.0, abs=0.6)
    assert times[2] - times[1] == pytest.approx(20.0, abs=0.6)
    assert h.m.failures == 0


def test_adj_never_clears_busy_until_timeout_then_backoff() -> None:
    h = harness(level="night", busy_next=10_000)
    h.run_for(10)
    h.want("super")
    h.run_for(160 + 240 + 5)
    assert h.m.state == S.BACKOFF and "not confirmed within 240 s" in h.m.last_failure


def test_soft_on_without_reply_verified_by_polling() -> None:
    h = harness(softon_reply=O.UNCONFIRMED)
    h.run_for(5)
    h.want("eco")
    h.run_for(400)
    assert h.m.state == S.RUNNING and h.m.confirmed_level == "eco"
    assert [o.kind for _, _, o in h.sent(K.SOFT_ON)] == [O.UNCONFIRMED]


def test_lost_softon_is_sent_again_within_one_wake() -> None:
    h = harness(lost_softons=1)
    h.run_for(5)
    h.want("eco")
    h.run_for(500)
    assert h.m.state == S.RUNNING
    sends = h.sent(K.SOFT_ON)
    assert [o.kind for _, _, o in sends] == [O.TIMEOUT, O.UNCONFIRMED]
    assert sends[1][0] - sends[0][0] >= 5 + 30
    assert h.m.wakes_last_hour(h.t) == 1 and len(h.miner.wakes) == 1


@pytest.mark.parametrize("skew", [-300.0, 300.0, 0.0])
def test_miner_clock_skew(skew: float) -> None:
    h = harness(skew_s=skew)
    h.run_for(40)
    h.want("super")
    h.run_for(400)
    t, cmd, _ = h.sent(K.SOFT_ON)[0]
    assert cmd.at_miner_time is not None
    assert cmd.at_miner_time - h.miner.miner_clock(t) == pytest.approx(5.0, abs=1.01)
    assert h.miner.wakes[0] == pytest.approx(t + 5.0, abs=1.01)
    assert h.m.state == S.RUNNING
    h.want(None)
    h.run_for(700)
    t, cmd, _ = h.sent(K.SOFT_OFF)[0]
    assert cmd.at_miner_time is not None
    assert cmd.at_miner_time - h.miner.miner_clock(t) == pytest.approx(5.0, abs=1.01)
    assert h.m.state == S.STANDBY


def test_stale_clock_is_polled_before_scheduling() -> None:
    b = in_standby()
    b.m.want("super", 100.0)  # last snapshot 100 s old
    cmds = b.m.step(100.0)
    assert b.m.state == S.WAKING and [c.kind for c in cmds] == [K.POLL]
    b.m.on_outcome(cmds[0], Outcome(O.OK, snapshot=idle(miner_time=MT + 400)), 100.0)
    (soft_on,) = b.m.step(100.5)
    assert soft_on.kind == K.SOFT_ON and soft_on.at_miner_time == MT + 400 + 6  # 0.5 s elapsed + 5 s lead, ceil


def test_reboot_in_the_middle_of_a_wake() -> None:
    h = harness(level="super")
    h.run_for(5)
    h.want("super")
    h.miner.reboot_at(120.0)  # during In Init / calibration
    h.run_for(600)
    assert h.m.state == S.RUNNING and h.m.confirmed_level == "super"
    assert h.m.failures == 0 and h.m.wakes_last_hour(h.t) == 1


def test_reboot_while_running_reasserts_level() -> None:
    h = harness(level="super", on=True)
    h.want("super")
    h.run_for(30)
    assert h.m.state == S.RUNNING and h.sent(K.SET_LEVEL) == []
    h.miner.reboot_at(100.0)
    h.run_for(400)
    assert any("reboot" in e.reason for e in h.events)
    assert h.m.state == S.RUNNING and h.m.confirmed_level == "super"
    assert [c.kind for _, c, _ in h.commands if c.kind != K.POLL] == [K.SET_FAN]  # fan re-applied after boot


def test_power_loss_q_comes_back_hashing_in_standby_wanted() -> None:
    h = harness(Q, level="super")
    h.run_for(60)
    assert h.m.state == S.STANDBY
    h.miner.power_loss(100.0, 160.0)
    h.run_for(600)
    assert h.m.state == S.STANDBY and h.miner.hashing_at(h.t) is None
    assert len(h.sent(K.SOFT_OFF)) == 1
    stop_at = h.sent(K.SOFT_OFF)[0][0]
    assert stop_at < 160 + 30 + 15 + 90  # re-asserted as soon as it answers, not after min_on_s


def test_mode_changed_by_hand_is_reasserted() -> None:
    h = harness(level="super", on=True)
    h.want("super")
    h.run_for(30)
    h.miner.level = "night"  # someone used the app
    h.miner._calib_end = h.t + 20
    h.run_for(200)
    assert h.m.confirmed_level == "super" and h.miner.level == "super"
    assert any("changed outside" in e.reason for e in h.events)


def test_start_up_reconciliation_sends_nothing_blind() -> None:
    for miner, wanted in ((dict(on=True, level="eco"), "eco"), (dict(on=False), None)):
        h = harness(**miner)  # type: ignore[arg-type]
        h.want(wanted)
        h.run_for(120)
        assert [c.kind for _, c, _ in h.commands] == [K.POLL] * len(h.commands)
        assert h.m.state == (S.RUNNING if wanted else S.STANDBY)


def test_unreachable_for_30_minutes_backoff_fault_recovery() -> None:
    h = harness(level="super", on=True)
    h.want("super")
    h.run_for(60)
    h.miner.unreachable(60.0, 60.0 + 1800.0)
    h.run_for(400)
    backoffs = [e for e in h.events if e.to_state == S.BACKOFF]
    assert len(backoffs) == 4
    gaps = [b.time - a.time for a, b in itertools.pairwise(backoffs)]
    assert gaps == pytest.approx([10, 20, 40], abs=0.6)
    assert h.m.state == S.FAULT and not h.m.available
    fault_at = h.events[-1].time
    h.run_for(1800)
    polls = [t for t, c, _ in h.commands if c.kind == K.POLL and fault_at < t < 1860]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) <= 60.5 and gaps[-1] >= 59  # FAULT keeps looking: backoff capped at fault_poll_s (60 s)
    # it answers again still hashing while heat is wanted: held (no command), back to RUNNING after 90 s
    h.run_for(3600)
    assert not h.sent(K.SOFT_OFF) and not h.sent(K.SOFT_ON)
    recovered = [e for e in h.events if e.from_state == S.FAULT]
    assert recovered and recovered[0].to_state == S.RUNNING and "recovered" in recovered[0].reason
    assert 1860 + 90 <= recovered[0].time <= 1860 + 60 + 90 + 16
    assert h.m.state == S.RUNNING and h.m.available and h.m.confirmed_level == "super"


def test_chip_over_temperature_steps_down_a_level() -> None:
    h = harness(level="super", on=True, hot_levels=frozenset({"super"}))
    h.want("super")
    h.run_for(60)
    assert h.m.confirmed_level == "eco" and h.miner.level == "eco"
    ev = [e for e in h.events if "chip" in e.reason]
    assert ev and ev[0].to_state == S.SETTING_MODE and "safety" in ev[0].reason
    assert h.m.safety_cap == "eco" and h.m.wanted_level == "eco" and h.m.requested_level == "super"
    h.want("mining")  # the allocator asks for more: clamped while the hold lasts
    h.run_for(300)
    assert h.miner.level == "eco"
    h.run_for(400)  # hold over: back up (it is hot again in super... no: it asks mining now)
    assert h.m.safety_cap is None and h.miner.level == "mining"


def test_chip_hot_in_lowest_level_goes_to_standby() -> None:
    h = harness(level="night", on=True, hot_levels=frozenset({"night"}))
    h.want("night")
    h.run_for(60)
    assert h.m.state == S.STANDBY and h.m.safety_cap == "standby"


def test_fan_zero_while_hashing_goes_to_standby_overriding_min_on() -> None:
    h = harness(level="eco")
    h.run_for(5)
    h.want("eco")
    h.run_for(300)
    assert h.m.state == S.RUNNING
    h.miner.fan_dead = True
    h.run_for(60)
    assert h.m.state == S.STANDBY and h.t < 600  # before min_on_s
    ev = [e for e in h.events if "fan" in e.reason and e.to_state == S.STOPPING]
    assert ev and "safety" in ev[0].reason


def test_min_on_defers_standby_and_min_off_defers_wake() -> None:
    h = harness()
    h.run_for(5)
    h.want("eco")
    h.run_for(200)
    h.want(None)  # too early: min_on_s counts from the wake at t=5
    assert h.m.can_stop(h.t) is False and h.m.earliest_stop(h.t) == pytest.approx(605.0)
    h.run_for(300)
    assert h.m.state == S.RUNNING and h.sent(K.SOFT_OFF) == []
    h.run_for(200)
    assert h.m.state == S.STANDBY and h.sent(K.SOFT_OFF)[0][0] == pytest.approx(605.0, abs=0.6)
    off_at = h.events[-1].time
    h.want("super")
    h.run_for(300)
    assert h.m.state == S.STANDBY and len(h.sent(K.SOFT_ON)) == 1
    assert h.m.earliest_change(h.t) == pytest.approx(off_at + 600.0)
    h.run_for(600)
    assert len(h.sent(K.SOFT_ON)) == 2 and h.sent(K.SOFT_ON)[1][0] == pytest.approx(off_at + 600, abs=0.6)


def test_safety_overrides_min_on_but_not_min_off() -> None:
    h = harness()
    h.run_for(5)
    h.want("eco")
    h.run_for(200)
    h.want(None, reason="room over maximum", safety=True)
    h.run_for(30)
    assert h.m.state == S.STANDBY
    assert any(e.reason == "room over maximum" for e in h.events)
    h.want("eco", safety=True)
    h.run_for(100)
    assert h.m.state == S.STANDBY  # safety never wakes early


def test_wake_cap_per_hour() -> None:
    st = HeaterSettings(min_on_s=0, min_off_s=0)
    h = harness(settings=st, boot_s=10, calib_s=10)
    h.run_for(5)
    for _ in range(4):
        h.want("eco")
        h.run_for(120)
        h.want(None)
        h.run_for(60)
    assert len(h.sent(K.SOFT_ON)) == 2 and h.m.wakes_last_hour(h.t) == 2 and not h.m.can_wake(h.t)
    h.want("eco")
    first = h.sent(K.SOFT_ON)[0][0]
    assert h.m.earliest_wake(h.t) == pytest.approx(first + 5 + 1 + 3600)  # counted when the softon takes effect
    h.run_until(first + 3600 + 60)
    assert len(h.sent(K.SOFT_ON)) == 3


def test_wake_cap_holds_over_many_hours_and_old_wakes_are_forgotten() -> None:
    """A long run (a heating season wakes a heater over a thousand times): the cap still holds in every rolling
    hour, and the machine keeps only the wakes that can still count (not the whole history)."""
    st = HeaterSettings(min_on_s=0, min_off_s=0)
    h = harness(settings=st, boot_s=10, calib_s=10)
    h.run_for(5)
    while h.t < 12 * 3600.0:
        h.want("eco")
        h.run_for(300)
        h.want(None)
        h.run_for(300)
    ons = [t for t, _c, o in h.sent(K.SOFT_ON) if o.ok]
    assert len(ons) >= 2 * 11  # the cap was the limit, hour after hour
    assert all(b - a >= 3600.0 - 1.0 for a, b in zip(ons, ons[2:], strict=False))  # never 3 in a rolling hour
    assert len(h.m._wakes) <= 6  # two hours of history at most (2 per hour + the one in progress)
    assert h.m.wakes_last_hour(h.t) == sum(1 for t in ons if t > h.t - 3600.0 - 10.0)
    wear = h.m.export_wear(h.t)
    assert 1 <= len(wear.wakes) <= 2 and all(t > h.t - 3600.0 for t in wear.wakes)


def test_level_dwell_defers_level_changes_but_safety_does_not_wait() -> None:
    h = harness(level="eco", on=True)
    h.want("eco")
    h.run_for(20)
    h.want("super")
    h.run_for(20)
    assert h.miner.level == "super"
    h.want("mining")
    h.run_for(60)
    assert h.miner.level == "super"  # dwell 120 s
    h.run_for(100)
    assert h.miner.level == "mining"
    h.want("night", safety=True)
    h.run_for(30)
    assert h.miner.level == "night"


def test_nano3s_without_plug_uses_lowest_level_as_standby() -> None:
    h = harness(NANO3S, level="high", on=True)
    h.run_for(60)
    assert h.m.state == S.STANDBY and h.miner.level == "low" and h.m.confirmed_level is None
    assert not any(c.kind in (K.SOFT_OFF, K.SOFT_ON, K.PLUG_OFF) for _, c, _ in h.commands)
    h.want("high")
    h.run_for(200)
    assert h.m.state == S.RUNNING and h.miner.level == "high"
    h.want(None)
    h.run_for(200)
    assert h.m.state == S.STANDBY and h.miner.level == "low"
    assert h.m.estimated_wall_w == NANO3S.level("low").wall_w


def test_nano3s_with_plug_uses_plug_commands() -> None:
    h = harness(NANO3S, plug=True, level="mid", on=True)
    h.want("mid")
    h.run_for(30)
    assert h.m.state == S.RUNNING
    h.want(None, safety=True)
    h.run_for(60)
    assert h.m.state == S.STANDBY and not h.miner.powered and h.m.failures == 0
    assert [c.kind for _, c, _ in h.commands if c.kind != K.POLL] == [K.PLUG_OFF]
    h.run_for(1200)  # unanswered polls while the plug is off are expected, not failures
    assert h.m.state == S.STANDBY and h.m.estimated_wall_w == 0.0
    h.want("high")
    h.run_for(400)
    assert h.m.state == S.RUNNING and h.miner.level == "high" and h.miner.powered
    kinds = [c.kind for _, c, _ in h.commands if c.kind != K.POLL]
    assert kinds == [K.PLUG_OFF, K.PLUG_ON, K.SET_LEVEL, K.SET_FAN]


def test_plug_unknown_start_assumes_off() -> None:
    h = harness(NANO3S, plug=True, powered=False)
    h.run_for(30)
    assert h.m.state == S.STANDBY


def test_fault_parks_nano_in_lowest_level() -> None:
    h = harness(NANO3S, level="high", on=True, settings=HeaterSettings(max_failures=2))
    h.want("high")
    h.run_for(30)
    h.miner.unreachable(30, 100)
    h.run_for(60)
    assert h.m.state == S.FAULT
    h.want(None, reason="room off", safety=True)
    h.run_for(100)
    assert h.miner.level == "low" and h.m.state == S.FAULT


def test_events_carry_time_heater_and_reason() -> None:
    h = harness()
    h.want("eco", reason="demand 550 W")
    h.run_for(400)
    assert all(e.heater == "h" and e.reason for e in h.events)
    assert [e.time for e in h.events] == sorted(e.time for e in h.events)
    assert h.events[1].reason == "demand 550 W"


def test_epoch_constant_consistent() -> None:
    assert replace(HeaterSettings(), fan_pct=None).fan_pct is None
    assert EPOCH > 1.7e9
