"""Schedules across daylight-saving transitions (Europe/Berlin 2026-03-29 / 2026-10-25, America/New_York)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from thermostat.core.schedule import Schedule, day_timeline, dst_transitions, target_at, wall_to_instant

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")


def daily(tz: str, *blocks: tuple[str, float]) -> Schedule:
    return Schedule.from_data({"timezone": tz, "week": {"daily": [{"at": at, "temp": temp} for at, temp in blocks]}})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --------------------------------------------------------------------------- spring forward (02:00 CET → 03:00 CEST)


def test_wall_time_in_gap_maps_to_end_of_gap() -> None:
    got = wall_to_instant(BERLIN, date(2026, 3, 29), time(2, 30))
    assert got == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert got.astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    # edges: 02:00 does not exist either; 03:00 exists and is the same instant; 01:59 is normal
    assert wall_to_instant(BERLIN, date(2026, 3, 29), time(2, 0)) == utc(2026, 3, 29, 1, 0)
    assert wall_to_instant(BERLIN, date(2026, 3, 29), time(3, 0)) == utc(2026, 3, 29, 1, 0)
    assert wall_to_instant(BERLIN, date(2026, 3, 29), time(1, 59)) == utc(2026, 3, 29, 0, 59)


def test_block_at_0230_on_spring_forward_day() -> None:
    s = daily("Europe/Berlin", ("02:30", 21.0), ("18:00", 18.0))
    before = target_at(s, utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
    assert before.temp == 18.0
    assert before.next_change == utc(2026, 3, 29, 1, 0)
    at_jump = target_at(s, utc(2026, 3, 29, 1, 0))  # 03:00 CEST
    assert at_jump.temp == 21.0
    assert at_jump.block_start == utc(2026, 3, 29, 1, 0)
    assert at_jump.next_change == utc(2026, 3, 29, 16, 0)  # 18:00 CEST
    # the next day, 02:30 exists again
    assert target_at(s, utc(2026, 3, 30, 0, 29)).temp == 18.0
    assert target_at(s, utc(2026, 3, 30, 0, 30)).temp == 21.0


def test_blocks_at_0200_and_0300_collapse_last_wins() -> None:
    s = daily("Europe/Berlin", ("02:00", 19.0), ("03:00", 22.0), ("12:00", 17.0))
    t = target_at(s, utc(2026, 3, 29, 1, 0))
    assert t.temp == 22.0  # 02:00 and 03:00 are the same instant today; the later block is in force
    assert target_at(s, utc(2026, 3, 29, 0, 59)).temp == 17.0
    assert target_at(s, utc(2026, 3, 29, 0, 59)).next_change == utc(2026, 3, 29, 1, 0)
    assert [(e.start.strftime("%H:%M"), e.temp) for e in day_timeline(s, date(2026, 3, 29))] == [
        ("00:00", 17.0),
        ("03:00", 22.0),
        ("12:00", 17.0),
    ]


def test_next_change_across_the_gap() -> None:
    s = daily("Europe/Berlin", ("22:00", 17.0), ("06:00", 21.0))
    t = target_at(s, utc(2026, 3, 28, 22, 0))  # 23:00 CET on Saturday
    assert t.temp == 17.0
    assert t.block_start == utc(2026, 3, 28, 21, 0)  # 22:00 CET
    assert t.next_change == utc(2026, 3, 29, 4, 0)  # 06:00 CEST: 7 h later, not 8
    assert t.next_change - t.block_start == timedelta(hours=7)


# --------------------------------------------------------------------------- fall back (03:00 CEST → 02:00 CET)


def test_repeated_wall_time_maps_to_first_occurrence() -> None:
    got = wall_to_instant(BERLIN, date(2026, 10, 25), time(2, 30))
    assert got == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first one
    assert wall_to_instant(BERLIN, date(2026, 10, 25), time(2, 0)) == utc(2026, 10, 25, 0, 0)
    assert wall_to_instant(BERLIN, date(2026, 10, 25), time(3, 0)) == utc(2026, 10, 25, 2, 0)  # 03:00 CET


def test_block_at_0230_on_fall_back_day_switches_once() -> None:
    s = daily("Europe/Berlin", ("02:30", 21.0), ("05:00", 18.0))
    assert target_at(s, utc(2026, 10, 25, 0, 29)).temp == 18.0
    first = target_at(s, utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert first.temp == 21.0
    second = target_at(s, utc(2026, 10, 25, 1, 30))  # 02:30 CET, the repeat
    assert second.temp == 21.0
    assert second.block_start == utc(2026, 10, 25, 0, 30)  # no second switch
    assert first.next_change == utc(2026, 10, 25, 4, 0)  # 05:00 CET
    assert len(day_timeline(s, date(2026, 10, 25))) == 3  # carried, 02:30, 05:00


def test_block_between_at_0200_and_0300_during_repeat() -> None:
    s = daily("Europe/Berlin", ("02:00", 20.0), ("03:00", 16.0), ("12:00", 19.0))
    # 02:00 CEST → 20; 03:00 CEST does not happen (clock goes back to 02:00 CET); 03:00 CET → 16
    assert target_at(s, utc(2026, 10, 25, 0, 0)).temp == 20.0
    assert target_at(s, utc(2026, 10, 25, 0, 59)).temp == 20.0
    mid = target_at(s, utc(2026, 10, 25, 1, 15))  # 02:15 CET (second pass)
    assert mid.temp == 20.0
    assert mid.next_change == utc(2026, 10, 25, 2, 0)  # 03:00 CET, two hours after 02:00 CEST
    assert target_at(s, utc(2026, 10, 25, 2, 0)).temp == 16.0


def test_next_change_across_fall_back() -> None:
    s = daily("Europe/Berlin", ("22:00", 17.0), ("06:00", 21.0))
    t = target_at(s, utc(2026, 10, 24, 20, 0))  # 22:00 CEST on Saturday
    assert t.next_change == utc(2026, 10, 25, 5, 0)  # 06:00 CET: 9 h later
    assert t.next_change - t.block_start == timedelta(hours=9)


def test_dst_transitions_found() -> None:
    (spring,) = dst_transitions(BERLIN, date(2026, 3, 29))
    assert spring.instant == utc(2026, 3, 29, 1, 0) and spring.shift == timedelta(hours=1)
    (autumn,) = dst_transitions(BERLIN, date(2026, 10, 25))
    assert autumn.instant == utc(2026, 10, 25, 1, 0) and autumn.shift == timedelta(hours=-1)
    assert dst_transitions(BERLIN, date(2026, 7, 1)) == []


# --------------------------------------------------------------------------- America/New_York (02:00 local)


def test_new_york_spring_and_fall() -> None:
    s = daily("America/New_York", ("02:30", 21.0), ("07:00", 18.0))
    # 2026-03-08: 02:00 EST → 03:00 EDT
    t = target_at(s, utc(2026, 3, 8, 7, 0))  # 03:00 EDT
    assert t.temp == 21.0 and t.block_start == utc(2026, 3, 8, 7, 0)
    assert target_at(s, utc(2026, 3, 8, 6, 59)).next_change == utc(2026, 3, 8, 7, 0)
    # 2026-11-01: 02:00 EDT → 01:00 EST; 02:30 happens once (EST), a 01:30 block would be first-only
    t = target_at(s, utc(2026, 11, 1, 7, 30))  # 02:30 EST
    assert t.temp == 21.0 and t.block_start == utc(2026, 11, 1, 7, 30)
    s2 = daily("America/New_York", ("01:30", 20.0), ("07:00", 18.0))
    assert wall_to_instant(NY, date(2026, 11, 1), time(1, 30)) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    repeat = target_at(s2, utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert repeat.temp == 20.0 and repeat.block_start == utc(2026, 11, 1, 5, 30)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_every_minute_over_dst_days_is_consistent(zone: str) -> None:
    """Brute force: target_at agrees with a naive scan of the day's switch instants, minute by minute."""
    s = daily(zone, ("00:00", 16.0), ("01:30", 17.0), ("02:00", 18.0), ("02:30", 19.0), ("03:00", 20.0))
    tz = ZoneInfo(zone)
    for day in (
        date(2026, 3, 8),
        date(2026, 3, 29),
        date(2026, 4, 5),
        date(2026, 10, 4),
        date(2026, 10, 25),
        date(2026, 11, 1),
    ):
        start = wall_to_instant(tz, day, time(0))
        switches = [(wall_to_instant(tz, day, b.at), b.temp) for b in s.week[0]]
        for minute in range(0, 6 * 60):
            when = start + timedelta(minutes=minute)
            expected = [temp for inst, temp in switches if inst <= when][-1]
            t = target_at(s, when)
            assert t.temp == expected, (zone, day, when)
            assert t.block_start <= when
            assert t.next_change is not None and t.next_change > when


def test_cli_default_date_uses_frozen_now(capsys: pytest.CaptureFixture[str]) -> None:
    """`schedule show` without --date takes today in the schedule's zone from the real clock."""
    from pathlib import Path

    from thermostat.cli import main

    path = Path(__file__).parent / "data" / "config" / "schedule_ok.yaml"
    with freeze_time("2026-03-28T23:30:00Z"):  # already Sunday 29 March in Berlin (00:30 CET)
        assert main(["schedule", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sun 2026-03-29" in out
    assert "DST: at 02:00 CET clocks go forward to 03:00 CEST (+1 h)" in out
