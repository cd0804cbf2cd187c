"""The pure schedule engine: format, day groups, exceptions, targets, overrides, away mode."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from thermostat.config import ConfigError, load_schedule
from thermostat.core.schedule import (
    Schedule,
    ScheduleError,
    away_mode,
    day_timeline,
    effective_target,
    override_until,
    override_until_next_change,
    parse_day_group,
    target_at,
)

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN)  # not in a DST fold: safe


def base(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "presets": {"comfort": 21, "eco": 18, "away": 15, "frost": 7},
        "week": {
            "mon-fri": [
                {"at": "06:00", "preset": "comfort"},
                {"at": "08:30", "preset": "eco"},
                {"at": "17:00", "preset": "comfort"},
                {"at": "22:30", "preset": "eco"},
            ],
            "sat-sun": [{"at": "08:00", "preset": "comfort"}, {"at": "23:00", "preset": "eco"}],
        },
    }
    data.update(over)
    return data


@pytest.fixture
def sched() -> Schedule:
    return Schedule.from_data(base())


def test_day_groups() -> None:
    assert parse_day_group("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_day_group("sat-sun") == (5, 6)
    assert parse_day_group("mon,wed") == (0, 2)
    assert parse_day_group("Mon, Wed") == (0, 2)
    assert parse_day_group("daily") == tuple(range(7))
    assert parse_day_group("fri-mon") == (4, 5, 6, 0)
    with pytest.raises(ValueError, match="did you mean 'mon'"):
        parse_day_group("mo-fri")
    with pytest.raises(ValueError, match="twice"):
        parse_day_group("mon,mon-tue")


def test_target_at_weekday(sched: Schedule) -> None:
    t = target_at(sched, berlin(2026, 1, 7, 7, 0))  # Wednesday
    assert (t.temp, t.preset, t.reason) == (21.0, "comfort", "schedule")
    assert t.block_start == berlin(2026, 1, 7, 6, 0)
    assert t.next_change == berlin(2026, 1, 7, 8, 30)
    assert (t.next_temp, t.next_preset) == (18.0, "eco")


def test_first_block_continues_previous_day(sched: Schedule) -> None:
    t = target_at(sched, berlin(2026, 1, 5, 3, 0))  # Monday 03:00: Sunday's 23:00 eco continues
    assert t.preset == "eco"
    assert t.block_start == berlin(2026, 1, 4, 23, 0)
    assert t.next_change == berlin(2026, 1, 5, 6, 0)


def test_equal_consecutive_blocks_merge() -> None:
    data = base(
        week={
            "daily": [
                {"at": "00:00", "preset": "eco"},
                {"at": "07:00", "preset": "comfort"},
                {"at": "21:00", "preset": "eco"},
            ]
        }
    )
    s = Schedule.from_data(data)
    t = target_at(s, berlin(2026, 1, 7, 3, 0))
    assert t.block_start == berlin(2026, 1, 6, 21, 0)  # the 00:00 eco block continues 21:00 eco
    t = target_at(s, berlin(2026, 1, 6, 22, 0))
    assert t.next_change == berlin(2026, 1, 7, 7, 0)  # not 00:00: nothing changes then


def test_weekend(sched: Schedule) -> None:
    t = target_at(sched, berlin(2026, 1, 10, 12, 0))  # Saturday
    assert t.preset == "comfort" and t.next_change == berlin(2026, 1, 10, 23, 0)


def test_exception_uses_other_day() -> None:
    data = base(exceptions=[{"name": "Xmas", "dates": ["2026-12-24", "2026-12-25..2026-12-26"], "use": "sun"}])
    s = Schedule.from_data(data)
    thursday = target_at(s, berlin(2026, 12, 24, 7, 0))  # Thursday, but Sunday blocks: eco until 08:00
    assert thursday.preset == "eco" and thursday.next_change == berlin(2026, 12, 24, 8, 0)
    assert target_at(s, berlin(2026, 12, 23, 7, 0)).preset == "comfort"
    assert [e.start.hour for e in day_timeline(s, date(2026, 12, 26))] == [0, 8, 23]


def test_exception_own_blocks_and_dates_as_yaml_dates() -> None:
    data = base(exceptions=[{"dates": [date(2026, 5, 1)], "blocks": [{"at": "10:00", "temp": 19.5}]}])
    s = Schedule.from_data(data)
    t = target_at(s, berlin(2026, 5, 1, 12, 0))
    assert (t.temp, t.preset) == (19.5, None)


def test_validation_errors() -> None:
    with pytest.raises(ValidationError) as info:
        Schedule.from_data(
            base(
                week={
                    "daily": [
                        {"at": 1320, "preset": "eco"},
                        {"at": "7:5", "temp": 20},
                        {"at": "08:00", "preset": "eco", "temp": 3},
                    ]
                }
            )
        )
    text = str(info.value)
    assert 'time must be a quoted "HH:MM" string, got 1320 (int)' in text
    assert "got '7:5'" in text
    assert "exactly one of `preset` or `temp`" in text
    with pytest.raises(ValidationError, match="unknown time zone"):
        Schedule.from_data(base(timezone="Europe/Nowhere"))
    with pytest.raises(ValidationError, match="ends before it starts"):
        Schedule.from_data(base(exceptions=[{"dates": ["2026-01-05..2026-01-01"], "use": "sun"}]))


def test_compile_errors() -> None:
    with pytest.raises(ScheduleError) as info:
        Schedule.from_data(base(week={"mon-fri": [{"at": "06:00", "preset": "comfy"}], "fri-sat": []}))
    msgs = [f"{'.'.join(map(str, p.loc))}: {p.message}" for p in info.value.problems]
    assert (
        "week.mon-fri.0.preset: unknown preset 'comfy' (known: comfort, eco, away, frost); did you mean "
        "'comfort'?" in msgs
    )
    assert "week.fri-sat: fri is already given by 'mon-fri'" in msgs
    with pytest.raises(ScheduleError, match="no blocks for sat, sun"):
        Schedule.from_data(base(week={"mon-fri": [{"at": "06:00", "temp": 20}]}))
    with pytest.raises(ScheduleError, match="already used by block 0"):
        Schedule.from_data(base(week={"daily": [{"at": "06:00", "temp": 20}, {"at": "06:00", "temp": 21}]}))
    with pytest.raises(ScheduleError, match="overlaps"):
        Schedule.from_data(
            base(
                exceptions=[
                    {"dates": ["2026-01-01..2026-01-03"], "use": "sun"},
                    {"dates": ["2026-01-03"], "use": "sat"},
                ]
            )
        )


def test_schedule_file_errors_with_positions(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "timezone: Europe/Berlin\n"
        "presets: {eco: 18}\n"
        "week:\n"
        "  mon-fry:\n"
        "    - {at: '06:00', preset: eco}\n"
        "  daily:\n"
        "    - {at: 06:00, presett: eco}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_schedule(path)
    assert [e.replace(str(path), "S") for e in info.value.errors] == [
        "S:4:3: week.mon-fry: unknown day 'fry' (use mon, tue, wed, thu, fri, sat, sun, daily); did you mean 'fri'?",
        "S:7:19: week.daily.0.presett: unknown key 'presett'; did you mean 'preset'?",
    ]


def test_unquoted_time_is_a_string_in_yaml_12(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("timezone: UTC\nweek:\n  daily:\n    - {at: 22:00, temp: 18}\n    - {at: 06:30, temp: 21}\n")
    s = load_schedule(path)
    assert [b.at for b in s.week[0]] == [time(6, 30), time(22, 0)]


def test_shipped_default_schedule() -> None:
    s = load_schedule(ROOT / "schedules" / "default.yaml")
    assert target_at(s, berlin(2026, 1, 7, 7, 0)).preset == "comfort"
    assert target_at(s, berlin(2026, 1, 7, 12, 0)).preset == "eco"
    assert target_at(s, berlin(2026, 1, 7, 3, 0)).preset == "eco"
    assert target_at(s, berlin(2026, 1, 10, 15, 0)).preset == "comfort"
    assert target_at(s, berlin(2026, 12, 24, 12, 0)).preset == "comfort"  # holiday: Sunday program
    office = load_schedule(ROOT / "schedules" / "office.yaml")
    assert target_at(office, berlin(2026, 1, 7, 12, 30)).temp == 19.5


def test_naive_datetime_rejected(sched: Schedule) -> None:
    with pytest.raises(ValueError, match="aware"):
        target_at(sched, datetime(2026, 1, 7, 7, 0))


def test_constant_schedule() -> None:
    s = Schedule.constant(19.0)
    t = target_at(s, datetime(2026, 1, 1, tzinfo=UTC))
    assert t.temp == 19.0 and t.next_change is None


# --------------------------------------------------------------------------- overrides and away


def test_override_until_next_change(sched: Schedule) -> None:
    now = berlin(2026, 1, 7, 9, 0)  # eco until 17:00
    ov = override_until_next_change(sched, now, temp=22.5)
    assert ov.until == berlin(2026, 1, 7, 17, 0)
    t = effective_target(sched, now, override=ov)
    assert (t.temp, t.reason, t.next_change) == (22.5, "override", berlin(2026, 1, 7, 17, 0))
    assert t.next_temp == 21.0
    after = effective_target(sched, berlin(2026, 1, 7, 17, 0), override=ov)
    assert (after.temp, after.reason) == (21.0, "schedule")


def test_override_until_time_with_preset(sched: Schedule) -> None:
    now = berlin(2026, 1, 7, 9, 0)
    ov = override_until(sched, now, berlin(2026, 1, 7, 11, 0), preset="comfort")
    assert effective_target(sched, berlin(2026, 1, 7, 10, 59), override=ov).preset == "comfort"
    assert effective_target(sched, berlin(2026, 1, 7, 11, 0), override=ov).preset == "eco"
    with pytest.raises(ValueError, match="future"):
        override_until(sched, now, now, temp=20)
    with pytest.raises(ValueError, match="unknown preset"):
        override_until(sched, now, berlin(2026, 1, 7, 11, 0), preset="sauna")
    with pytest.raises(ValueError, match="exactly one"):
        override_until(sched, now, berlin(2026, 1, 7, 11, 0))


def test_away_until_date(sched: Schedule) -> None:
    away = away_mode(sched, until=date(2026, 1, 10), preset="away", since=berlin(2026, 1, 7, 8, 0))
    t = effective_target(sched, berlin(2026, 1, 8, 12, 0), away=away)
    assert (t.temp, t.preset, t.reason) == (15.0, "away", "away")
    assert t.next_change == berlin(2026, 1, 10, 0, 0)
    assert t.next_preset == "eco"  # Saturday 00:00 continues Friday's 22:30 eco
    back = effective_target(sched, berlin(2026, 1, 10, 0, 0), away=away)
    assert back.reason == "schedule"
    # an override beats away mode
    ov = override_until_next_change(sched, berlin(2026, 1, 8, 12, 0), temp=20)
    assert effective_target(sched, berlin(2026, 1, 8, 12, 0), override=ov, away=away).reason == "override"
    # before `since` away is not active
    assert effective_target(sched, berlin(2026, 1, 7, 7, 0), away=away).reason == "schedule"


def test_away_indefinite(sched: Schedule) -> None:
    away = away_mode(sched, until=None, temp=12)
    t = effective_target(sched, berlin(2026, 6, 1, 12, 0), away=away)
    assert (t.temp, t.next_change) == (12.0, None)
