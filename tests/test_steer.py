"""Steering by the hour (issue 13 item 2): durations, local end times across DST, house-wide away and its return
pre-heat, and the MQTT override payloads that use them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thermostat.adapters import ha
from thermostat.core.schedule import Schedule, effective_target
from thermostat.core.steer import (
    DEFAULT_AWAY_TEMP_C,
    HouseAway,
    ReturnPreheat,
    next_local_time,
    parse_duration_s,
    parse_until,
    room_away,
    until_after,
)

BERLIN = ZoneInfo("Europe/Berlin")


def schedule(presets: dict[str, float] | None = None) -> Schedule:
    return Schedule.from_data({
        "timezone": "Europe/Berlin",
        "presets": presets or {"comfort": 21.0, "eco": 17.0},
        "week": {"daily": [{"at": "06:00", "preset": "comfort"}, {"at": "22:00", "preset": "eco"}]},
    })


@pytest.mark.parametrize(("text", "seconds"), [
    ("2h", 7200.0), ("90m", 5400.0), ("1h30m", 5400.0), ("1h 30m", 5400.0), ("45s", 45.0), ("1d", 86400.0),
    (" 2H ", 7200.0), ("3600", 3600.0), (600, 600.0), (1.5, 1.5),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("bad", ["", "2 fortnights", "h2", "-5m", True, float("nan"), float("inf"), -1, None, [2]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s(bad)


def test_until_local_time_is_the_next_occurrence() -> None:
    now = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    assert parse_until("18:30", now, BERLIN) == datetime(2026, 1, 5, 17, 30, tzinfo=UTC)
    assert parse_until("07:00", now, BERLIN) == datetime(2026, 1, 6, 6, 0, tzinfo=UTC)  # tomorrow
    assert parse_until("16:00", now, BERLIN) == datetime(2026, 1, 6, 15, 0, tzinfo=UTC)  # now is not "next"


def test_until_local_time_across_dst() -> None:
    # 2026-03-29: Berlin springs forward at 02:00 → 03:00. 02:30 does not exist that night: it takes effect
    # when the clock jumps (03:00 CEST = 01:00 UTC), as schedule blocks do.
    now = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET on the 29th
    assert parse_until("02:30", now, BERLIN) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # 18:30 that day is CEST (+02:00).
    assert parse_until("18:30", now, BERLIN) == datetime(2026, 3, 29, 16, 30, tzinfo=UTC)
    # 2026-10-25: back from 03:00 CEST to 02:00 CET; 02:30 happens twice, the first one counts.
    now = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert parse_until("02:30", now, BERLIN) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_until_dates_and_datetimes() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_until("2026-12-27T16:00", now, BERLIN) == datetime(2026, 12, 27, 15, 0, tzinfo=UTC)
    assert parse_until("2026-12-27 16:00", now, BERLIN) == datetime(2026, 12, 27, 15, 0, tzinfo=UTC)
    assert parse_until("2026-12-27", now, BERLIN) == datetime(2026, 12, 26, 23, 0, tzinfo=UTC)
    assert parse_until("2026-12-27T16:00:00+00:00", now, BERLIN) == datetime(2026, 12, 27, 16, 0, tzinfo=UTC)
    for bad, fragment in [("2026-12-01T16:00", "in the past"), ("2028-01-01", "more than a year"),
                          ("soon", "is not a time"), ("24:00", "not a time of day")]:
        with pytest.raises(ValueError, match=fragment):
            parse_until(bad, now, BERLIN)
    with pytest.raises(ValueError, match="aware"):
        parse_until("18:30", datetime(2026, 1, 1), BERLIN)


@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
       st.times())
def test_next_local_time_is_after_now_within_a_day(now: datetime, at: time) -> None:
    when = next_local_time(now, BERLIN, at.replace(second=0, microsecond=0, tzinfo=None))
    assert now < when <= now + timedelta(hours=25)


def test_until_after() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert until_after(now, 7200) == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        until_after(now, 0)
    with pytest.raises(ValueError):
        until_after(now, 400 * 86400)


def test_house_away_uses_the_rooms_away_preset_then_the_default() -> None:
    since = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    house = HouseAway(until=datetime(2026, 12, 27, 15, 0, tzinfo=UTC), since=since)
    with_preset = room_away(house, schedule({"comfort": 21.0, "eco": 17.0, "away": 14.0}))
    assert (with_preset.temp, with_preset.preset) == (14.0, "away")
    plain = room_away(house, schedule())
    assert (plain.temp, plain.preset) == (DEFAULT_AWAY_TEMP_C, None)
    assert room_away(HouseAway(house.until, since, temp=12.0), schedule()).temp == 12.0


def test_return_preheat_ends_the_away_early_so_the_room_is_warm_at_the_return() -> None:
    sched = schedule()
    since = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    end = datetime(2026, 12, 27, 15, 0, tzinfo=UTC)  # 16:00 local, inside the 21 °C comfort block
    away = room_away(HouseAway(until=end, since=since, temp=15.0), sched,
                     ReturnPreheat(rate_k_per_h=2.0, margin_s=1800.0))
    # 6 K to climb at 2 K/h = 3 h, plus 30 min margin.
    assert away.end(sched.tz) == end - timedelta(hours=3, minutes=30)
    before = effective_target(sched, end - timedelta(hours=4), away=away)
    assert (before.temp, before.reason) == (15.0, "away")
    assert before.next_change == end - timedelta(hours=3, minutes=30)
    during_preheat = effective_target(sched, end - timedelta(hours=1), away=away)
    assert during_preheat.temp == 21.0 and during_preheat.reason != "away"
    # Returning into a setback needs no pre-heat: the away holds until the end.
    night_end = datetime(2026, 12, 27, 22, 0, tzinfo=UTC)  # 23:00 local, eco 17 °C
    cool = room_away(HouseAway(until=night_end, since=since, temp=17.0), sched, ReturnPreheat())
    assert cool.end(sched.tz) == night_end
    capped = ReturnPreheat(rate_k_per_h=0.1, max_lead_s=4 * 3600.0).lead_s(10.0, 21.0)
    assert capped == 4 * 3600.0


NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 16:00 in Berlin


def override(payload: bytes) -> object:
    return ha.parse_room_command("override", payload, 7.0, 26.0, now=NOW, tz=BERLIN)


def test_override_for_a_duration_and_until_a_local_time() -> None:
    assert override(b'{"temp": 22, "for": "2h"}') == ha.SetOverride(22.0, datetime(2026, 1, 5, 17, 0, tzinfo=UTC))
    assert override(b'{"temp": 22, "for": 5400}') == ha.SetOverride(22.0, datetime(2026, 1, 5, 16, 30, tzinfo=UTC))
    assert override(b'{"temp": 22, "until": "18:30"}') == ha.SetOverride(22.0,
                                                                         datetime(2026, 1, 5, 17, 30, tzinfo=UTC))
    assert override(b'{"temp": 22, "until": "07:00"}') == ha.SetOverride(22.0, datetime(2026, 1, 6, 6, 0, tzinfo=UTC))
    assert override(b'{"temp": 22, "until": "2026-01-05T22:00"}') == ha.SetOverride(
        22.0, datetime(2026, 1, 5, 21, 0, tzinfo=UTC))
    assert override(b'{"temp": 22}') == ha.SetOverride(22.0, None)  # until the next block
