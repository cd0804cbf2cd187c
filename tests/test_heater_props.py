"""Properties of the heater state machine over random wants and injected faults (hypothesis).

The machine runs against `FakeMiner`, a double that reacts to commands (scheduled soft on/off on a skewed
clock, boot + calibration, BUSY during calibration, lost softon replies, unreachable windows, reboots,
power loss). Properties are checked on what the *miner* did, not on what the machine believes:

1. wakes per sliding hour never exceed the cap (the machine's wakes and the miner's actual boots);
2. the miner never hashes at an unwanted level for longer than `confirm_timeout_s` once the wear rules
   allow the change — the deferrals are accounted for explicitly: a standby waits for `min_on_s` from the
   boot that started the on-period, a level change waits for `min_level_dwell_s` from the moment the level
   could be confirmed (its start, plus calibration after a wake); intervals near an injected fault are
   excused by a bounded recovery margin (backoff + FAULT poll + confirmation);
3. once inputs stop and enough time passes, the machine ends RUNNING in the wanted level, in STANDBY when
   standby is wanted, or in FAULT — and when not in FAULT the miner really is there.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from heater_fakes import FakeMiner, Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState, OffMethod
from thermostat.domain.actions import OutcomeKind
from thermostat.domain.spec import ModelSpec
from thermostat.miners.models import MINI3, NANO3S, Q

SETTLE_S = 3 * 3600.0
SLACK_S = 20.0  # poll period + readback granularity
FAULT_MARGIN_S = 1500.0  # backoff (≤300) + FAULT poll (300) + FAULT recovery (600) + confirmation


@dataclass(frozen=True)
class Case:
    spec: ModelSpec
    plug: bool
    start_on: bool
    start_level: str
    skew_s: float
    softon_reply: OutcomeKind
    lost_softons: int
    busy_next: int
    wants: list[tuple[float, str | None]]  # (delay since the previous want, level)
    faults: list[tuple[str, float, float]]  # (kind, start, duration)


MODELS = [(MINI3, False), (Q, False), (NANO3S, False), (NANO3S, True)]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    spec, plug = draw(st.sampled_from(MODELS))
    levels: list[str | None] = [None, *spec.level_names]
    # delays just past min on/off make wake-cap pressure likely; any delay otherwise
    delay = st.floats(0, 1500) | st.sampled_from([5.0, 610.0, 620.0, 700.0])
    wants = draw(st.lists(st.tuples(delay, st.sampled_from(levels)), min_size=1, max_size=12))
    faults = draw(st.lists(
        st.tuples(st.sampled_from(["unreachable", "reboot", "power"]), st.floats(0, 6000), st.floats(10, 2400)),
        max_size=2,
    ))
    return Case(
        spec=spec,
        plug=plug,
        start_on=draw(st.booleans()) or (not spec.has_standby and not plug),  # a Nano 3S is never idle
        start_level=draw(st.sampled_from(spec.level_names)),
        skew_s=draw(st.floats(-300, 300)),
        softon_reply=draw(st.sampled_from([OutcomeKind.OK, OutcomeKind.UNCONFIRMED])),
        lost_softons=draw(st.integers(0, 2)),
        busy_next=draw(st.integers(0, 3)),
        wants=wants,
        faults=faults,
    )


def expected(method: OffMethod, spec: ModelSpec, level: str | None) -> str | None:
    if level is None and method == OffMethod.LOWEST:
        return spec.bottom_level.name
    return level


@given(cases(), st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_heater_properties(case: Case, safety_wants: bool) -> None:
    check(case, safety_wants)


def check(case: Case, safety_wants: bool) -> None:
    spec = case.spec
    cfg = HeaterSettings()
    m = HeaterMachine("h", spec, cfg, 0.0, has_plug=case.plug)
    miner = FakeMiner(
        spec, level=case.start_level, on=case.start_on, skew_s=case.skew_s, softon_reply=case.softon_reply,
        lost_softons=case.lost_softons, busy_next=case.busy_next, powered=not (case.plug and not case.start_on),
    )
    windows: list[tuple[float, float]] = []
    for kind, start, dur in case.faults:
        if kind == "unreachable":
            miner.unreachable(start, start + dur)
        elif kind == "reboot":
            miner.reboot_at(start)
            dur = miner.reboot_blackout_s
        elif not case.plug:  # a power cut (the plug double models its own power)
            miner.power_loss(start, start + dur)
        windows.append((start, start + dur))
    h = Harness(m, miner, max_dt=60.0)

    # the wanted timeline
    t = 0.0
    wanted_at: list[tuple[float, str | None]] = [(0.0, None)]
    for delay, level in case.wants:
        t += delay
        h.run_until(t)
        h.want(level, reason="test", safety=safety_wants and level is None)  # safety stops override min on
        wanted_at.append((t, level))
    last_input = t
    end = max(last_input, *(w[1] for w in windows), 0.0) + SETTLE_S
    h.run_until(end)

    # 1. wake cap (machine and miner)
    wakes = [e.time for e in h.events if e.to_state == HeaterState.WAKING and e.from_state == HeaterState.STANDBY]
    for series in (wakes, miner.wakes):
        for w in series:
            assert sum(1 for x in series if w - 3600.0 + 1e-6 < x <= w) <= cfg.max_wakes_per_hour, series

    # 3. convergence
    final = m.wanted_level
    assert m.state in (HeaterState.RUNNING, HeaterState.STANDBY, HeaterState.FAULT), (m.state, h.events[-5:])
    if m.state == HeaterState.RUNNING:
        assert final is not None and m.confirmed_level == final
    if m.state == HeaterState.STANDBY:
        assert final is None
    if m.state != HeaterState.FAULT:
        assert miner.hashing_at(end) == expected(m.off_method, spec, final), (m.state, final)
    else:
        assert windows, "FAULT without any injected fault"

    # 2. no lingering at an unwanted level
    timeline = miner.hashing_timeline(end)

    def wanted(at: float) -> str | None:
        w = None
        for ts, lv in wanted_at:
            if ts <= at:
                w = lv
        return w

    def near_fault(a: float, b: float) -> bool:
        return any(a < f1 + FAULT_MARGIN_S and b > f0 for f0, f1 in windows)

    for i, (a, b, hashed) in enumerate(timeline):
        if hashed is None:
            continue
        on_start = a  # start of the contiguous hashing run
        j = i
        while j > 0 and timeline[j - 1][2] is not None:
            j -= 1
            on_start = timeline[j][0]
        cuts = sorted({a, b, *(ts for ts, _ in wanted_at if a < ts < b)})
        for s, e in itertools.pairwise(cuts):
            d = wanted(s)
            if hashed == expected(m.off_method, spec, d) or near_fault(s, e):
                continue
            if d is None and m.off_method != OffMethod.LOWEST:
                allowed_from = on_start - miner.boot_s + cfg.min_on_s  # min on time from the boot
            else:
                allowed_from = a + miner.calib_s + cfg.min_level_dwell_s  # dwell from the (confirmable) level
            allowed_from = max(s, allowed_from + SLACK_S)
            assert e <= allowed_from + cfg.confirm_timeout_s, (
                f"hashed {hashed} over [{s:.0f}, {e:.0f}) while {d} wanted; allowed from {allowed_from:.0f}",
                [(ev.time, ev.to_state.value, ev.reason) for ev in h.events if s - 400 < ev.time < e + 10],
            )
