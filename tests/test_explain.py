"""Why a heater is not doing what its room wants (core/explain.py), on a real HeaterMachine driven against the
FakeMiner in virtual time, and the words people read (times shown in the schedule's zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from heater_fakes import FakeMiner, Harness

from thermostat.core.explain import describe_hold, explain_follow, explain_heater
from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState
from thermostat.miners.models import MODELS

MINI3 = MODELS["mini3"]
BERLIN = ZoneInfo("Europe/Berlin")
WALL = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 23:00 in Berlin


def words(h: Harness, **kw: object) -> str:
    return describe_hold(explain_heater(h.m, h.t, **kw), h.t, WALL, BERLIN)  # type: ignore[arg-type]


def harness(**settings: object) -> Harness:
    s = HeaterSettings(min_on_s=600, min_off_s=1500, max_wakes_per_hour=2, min_level_dwell_s=120,
                       **settings)  # type: ignore[arg-type]
    return Harness(HeaterMachine("h", MINI3, s), FakeMiner(MINI3, boot_s=30, calib_s=30))


def test_following_the_room_has_no_reason() -> None:
    h = harness()
    h.run_for(20)
    assert h.m.state == HeaterState.STANDBY
    assert explain_heater(h.m, h.t) is None and words(h) == ""


def test_minimum_on_then_minimum_off_then_wake_cap() -> None:
    h = harness()
    top = MINI3.level_names[-1]
    h.want(top)
    h.run_for(400)
    assert h.m.state == HeaterState.RUNNING
    h.want(None)  # the room is warm, but the heater has not run min_on yet
    hold = explain_heater(h.m, h.t)
    assert hold is not None and hold.code == "min_on" and hold.until is not None and hold.until > h.t
    assert words(h) == f"minimum on until {describe_time(hold.until, h.t)}"
    h.run_for(700)
    assert h.m.state == HeaterState.STANDBY
    # the room wants heat again: the allocator asks nothing of a heater that may not wake, the reason is still said
    assert explain_heater(h.m, h.t) is None
    hold = explain_heater(h.m, h.t, room_wants_heat=True)
    assert hold is not None and hold.code == "min_off"
    assert words(h, room_wants_heat=True) == f"minimum off until {describe_time(hold.until, h.t)}"
    h.want(top)
    assert explain_heater(h.m, h.t).code == "min_off"  # type: ignore[union-attr]
    h.run_for(1600)  # second wake of the hour
    assert h.m.state == HeaterState.RUNNING
    h.want(None)
    h.run_for(700)
    h.want(top)
    hold = explain_heater(h.m, h.t)
    assert hold is not None and hold.code == "wake_cap"  # two wakes within the hour: the cap, not min_off
    assert words(h).startswith("wake cap: next wake allowed ")


def test_level_dwell_in_seconds() -> None:
    h = harness()
    h.want(MINI3.level_names[-1])
    while h.m.state != HeaterState.RUNNING:
        h.run_for(1)
    h.want(MINI3.level_names[0])  # right after the level was confirmed: the dwell holds the change
    hold = explain_heater(h.m, h.t)
    assert hold is not None and hold.code == "level_dwell" and hold.until is not None
    left = hold.until - h.t
    assert 0 < left <= 120
    assert words(h) == f"level dwell {int(-(-left // 1))} s"
    h.run_for(130)
    assert explain_heater(h.m, h.t) is None and h.m.confirmed_level == MINI3.level_names[0]


def test_fault_since_and_next_try() -> None:
    h = harness(max_failures=2, backoff_base_s=10)
    h.run_for(10)
    h.miner.unreachable(h.t, h.t + 10_000)
    h.run_for(60)
    assert h.m.state == HeaterState.FAULT
    hold = explain_heater(h.m, h.t)
    assert hold is not None and hold.code == "fault" and hold.since is not None and hold.until is not None
    text = words(h)
    assert text.startswith(f"fault since {describe_time(hold.since, h.t)}, next try {describe_time(hold.until, h.t)}")


def test_manual_remote_and_unidentified_come_first() -> None:
    h = harness()
    assert words(h, controlled=False, manual_level="Heater 1") == "manual level Heater 1"
    assert words(h, controlled=False) == "manual: standby"
    assert words(h, remote_off=True) == "remote off (Mining Rig Monitor)"
    assert describe_hold(explain_heater(None, 0.0), 0.0, WALL, BERLIN) == "model not identified yet"


def describe_time(t: float | None, now: float) -> str:
    assert t is not None
    from datetime import timedelta

    return (WALL + timedelta(seconds=t - now)).astimezone(BERLIN).strftime("%H:%M")


def test_where_the_target_comes_from() -> None:
    from datetime import timedelta

    from thermostat.core.engine import RoomDecision
    from thermostat.core.schedule import Target

    start = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # 06:00 in Berlin
    now = start + timedelta(hours=1)

    def target(reason: str, until: datetime | None, preset: str | None = "comfort") -> Target:
        return Target(temp=21.0, preset=preset, block_start=start, next_change=until, reason=reason)  # type: ignore[arg-type]

    from thermostat.core.explain import describe_target

    assert describe_target(target("schedule", start + timedelta(hours=16)), None, 7.0, now, BERLIN) == \
        "schedule comfort until 22:00"
    assert describe_target(target("override", now + timedelta(hours=2), None), None, 7.0, now, BERLIN) == \
        "override until 09:00"
    assert describe_target(target("override", None, None), None, 7.0, now, BERLIN) == "override until cancelled"
    assert describe_target(target("away", None, "away"), None, 7.0, now, BERLIN) == "away until cancelled"
    assert describe_target(target("away", datetime(2026, 12, 27, 15, 0, tzinfo=UTC), "away"), None, 7.0, now,
                           BERLIN) == "away until Sun 27 Dec 16:00"
    frost = RoomDecision(1600.0, {"h": "Heater 3"}, True, "below minimum 7.0 °C", True)
    assert describe_target(target("schedule", None), frost, 7.0, now, BERLIN) == \
        "frost protection (below minimum 7.0 °C)"


def test_when_a_manual_level_will_be_followed() -> None:
    """A level commanded by hand, before the machine is handed it: when the miner will follow."""
    h = harness()
    h.run_for(20)
    levels = MINI3.level_names
    assert explain_follow(h.m, h.t, None) is None  # standby asked of a heater in standby: there already
    assert explain_follow(h.m, h.t, levels[0]) is None  # may wake at once
    h.want(levels[-1])
    h.run_for(400)
    assert h.m.state == HeaterState.RUNNING and h.m.confirmed_level == levels[-1]
    assert explain_follow(h.m, h.t, levels[-1]) is None
    stop = explain_follow(h.m, h.t, None)  # a manual standby within min_on
    assert stop is not None and stop.code == "min_on" and stop.until is not None and stop.until > h.t
    assert describe_hold(stop, h.t, WALL, BERLIN).startswith("minimum on until ")
    h.want(levels[0])
    h.run_for(5)
    dwell = explain_follow(h.m, h.t, levels[1])  # another level right after a change: the level dwell
    assert dwell is not None and dwell.code == "level_dwell"
    h.want(None)
    h.run_for(700)
    assert h.m.state == HeaterState.STANDBY
    wake = explain_follow(h.m, h.t, levels[0])  # a manual level right after a standby: minimum off
    assert wake is not None and wake.code == "min_off" and wake.until is not None
    assert explain_follow(None, 0.0, levels[0]) is not None  # model not identified
