"""Issue 16 (scale), the heater machine's side: settled polls on each heater's own slot of the poll period, never
more than one period apart, and `next_due` telling every moment a step is needed (the service's heater task now
sleeps until then instead of looking every second). Virtual time against the scripted miner (tests/heater_fakes)."""

from __future__ import annotations

import itertools

import pytest
from heater_fakes import FakeMiner, Harness

from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState
from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.miners.models import MINI3

PERIOD = HeaterSettings().poll_interval_s
NEXT_DUE_ONLY = 1e9  # the harness steps the machine only when `next_due` says so


def poll_times(h: Harness, after: float = 0.0) -> list[float]:
    return [t for t, c, _ in h.sent(CommandKind.POLL) if t >= after]


def running(phase: float | None, *, start: float = 0.0) -> Harness:
    miner = FakeMiner(MINI3, level=MINI3.top_level.name, on=True)
    machine = HeaterMachine("h", MINI3, HeaterSettings(), now=start, poll_phase=phase)
    h = Harness(machine, miner, t=start, max_dt=NEXT_DUE_ONLY)
    h.want(MINI3.top_level.name)
    return h


@pytest.mark.parametrize("phase", [0.0, 0.2, 0.5, 0.9])
def test_settled_polls_fall_on_the_heaters_slot_and_never_further_apart_than_the_period(phase: float) -> None:
    h = running(phase, start=1000.3)
    h.run_for(10 * PERIOD)
    assert h.m.state == HeaterState.RUNNING
    polls = poll_times(h)
    assert polls[0] == pytest.approx(1000.3), "the first poll (reconciliation) is not delayed"
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) <= PERIOD + 1e-9
    slot = phase * PERIOD
    settled = polls[2:]
    assert len(settled) >= 7
    for t in settled:  # on the heater's slot of the period (monotonic clock)
        offset = (t - slot) % PERIOD
        assert min(offset, PERIOD - offset) < 1e-6, (t, slot)


def test_without_a_phase_a_settled_heater_is_polled_one_period_after_the_last() -> None:
    h = running(None, start=1000.3)
    h.run_for(6 * PERIOD)
    gaps = [b - a for a, b in itertools.pairwise(poll_times(h))]
    assert gaps and all(g == pytest.approx(PERIOD) for g in gaps)


def test_phases_spread_a_fleet_started_together_over_the_period() -> None:
    n = 10
    fleet = [running(i / n, start=500.0) for i in range(n)]
    for h in fleet:
        h.run_for(5 * PERIOD)
    window = (500.0 + 2 * PERIOD, 500.0 + 3 * PERIOD)
    offsets = sorted((t - window[0]) for h in fleet for t in poll_times(h, window[0]) if t < window[1])
    assert len(offsets) == n, "each heater polled once per period"
    spacing = [b - a for a, b in itertools.pairwise(offsets)]
    assert min(spacing) == pytest.approx(PERIOD / n), offsets  # evenly apart, not in one burst


def test_a_phase_outside_the_period_is_refused() -> None:
    with pytest.raises(ValueError):
        HeaterMachine("h", MINI3, HeaterSettings(), poll_phase=1.0)


class _KeepsHashing(FakeMiner):
    """A miner that accepts soft off but keeps hashing: the park must be sent again after `soft_retry_s`."""

    def execute(self, cmd: Command, now: float) -> Outcome:
        if cmd.kind == CommandKind.SOFT_OFF:
            self.advance(now)
            self.calls.append((now, cmd))
            return Outcome(OutcomeKind.OK)
        return super().execute(cmd, now)


def test_next_due_includes_the_fault_park_retry() -> None:
    """In FAULT, answering and hashing while its room wants standby: the park is resent `soft_retry_s` after the
    last, even when the next poll comes later. A driver stepping only at `next_due` (the service's heater task)
    must not wait for that poll."""
    settings = HeaterSettings(soft_retry_s=20.0, poll_interval_s=15.0, max_failures=2, backoff_base_s=5.0)
    miner = _KeepsHashing(MINI3, level=MINI3.top_level.name, on=True)
    h = Harness(HeaterMachine("h", MINI3, settings, now=0.0), miner, max_dt=NEXT_DUE_ONLY)
    h.want(MINI3.top_level.name)
    h.run_for(40)
    assert h.m.state == HeaterState.RUNNING
    miner.unreachable(h.t, h.t + 60)
    h.run_for(60)
    assert h.m.state == HeaterState.FAULT
    h.want(None, reason="room above its maximum", safety=True)
    h.run_for(120)
    parks = [t for t, c, _ in h.sent(CommandKind.SOFT_OFF)]
    assert len(parks) >= 3, parks
    gaps = [b - a for a, b in itertools.pairwise(parks)]
    assert all(g <= settings.soft_retry_s + 0.5 for g in gaps), gaps


def test_a_stopping_heater_is_not_due_again_until_its_verification_poll() -> None:
    """After the soft off, STOPPING waits for the miner's clock to reach it and polls to verify: `next_due` is that
    poll, not `now` (the service's heater task used to look every 20 ms for the whole stop)."""
    h = running(None)
    h.run_for(30)
    assert h.m.state == HeaterState.RUNNING
    h.want(None, reason="room off")
    t = h.t
    sent = h.m.step(t)
    assert [c.kind for c in sent] == [CommandKind.SOFT_OFF]
    h.m.on_outcome(sent[0], h.miner.execute(sent[0], t), t)
    assert h.m.state == HeaterState.STOPPING
    due = h.m.next_due(t)
    assert due >= t + HeaterSettings().fast_poll_s - 1e-9, (t, due)
    assert h.m.step(t) == []
    h.run_for(60)
    assert h.m.state == HeaterState.STANDBY
