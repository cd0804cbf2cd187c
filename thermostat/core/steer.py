"""Steering by the hour, as people say it: durations ("2h", "1h30m"), local times ("18:30", next occurrence),
local dates and times ("2026-12-27T16:00") and a house-wide away with a return pre-heat. Pure: `now` and the time
zone are passed in; every parser raises ValueError with a message meant for a person.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from thermostat.core.schedule import Away, Schedule, target_at, wall_to_instant

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")

DEFAULT_AWAY_TEMP_C = 15.0  # a room whose schedule has no `away` preset holds this while the house is away
MAX_STEER_S = 366 * 86400.0  # no override or away may be set further ahead than this


def parse_duration_s(value: object) -> float:
    """``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"``, ``"1d"``, ``"500ms"`` → seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a duration must be a finite number of seconds, not negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError("a duration must be a finite number of seconds, not negative")
            return seconds
        compact = text.replace(" ", "")
        pos, total = 0, 0.0
        for m in _DURATION_RE.finditer(compact):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if compact and pos == len(compact):
            return total
    shown = repr(value)[:40]
    raise ValueError(f'invalid duration {shown}; use e.g. "90s", "15m", "2h", "1h30m" or a number of seconds')


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now


def next_local_time(now: datetime, tz: ZoneInfo, at: time) -> datetime:
    """The next instant (strictly after `now`) whose local wall time in `tz` is `at`; a wall time that a DST
    change skips takes effect when the clock jumps, as schedule blocks do."""
    local_day = _aware(now).astimezone(tz).date()
    for offset in range(3):
        candidate = wall_to_instant(tz, local_day + timedelta(days=offset), at)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a wall time recurs within two days")


def parse_until(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """An end time as a person writes it, as an aware UTC datetime strictly after `now`:
    ``"18:30"`` (local, next occurrence), ``"2026-12-27"`` (00:00 local that day), ``"2026-12-27T16:00"`` or
    ``"2026-12-27 16:00"`` (local), or an ISO time with a UTC offset."""
    _aware(now)
    raw = text.strip()
    m = _HHMM_RE.match(raw)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f"{raw!r} is not a time of day (HH:MM, 00:00..23:59)")
        return next_local_time(now, tz, time(hour, minute)).astimezone(UTC)
    try:
        if len(raw) == 10:
            when = wall_to_instant(tz, date.fromisoformat(raw), time(0, 0))
        else:
            parsed = datetime.fromisoformat(raw)
            when = parsed if parsed.tzinfo is not None else wall_to_instant(tz, parsed.date(), parsed.time())
    except ValueError:
        raise ValueError(f'{raw[:40]!r} is not a time: use "18:30", "2026-12-27", "2026-12-27T16:00" or an ISO '
                         "time with a UTC offset") from None
    if when <= now:
        raise ValueError(f"{raw[:40]!r} is in the past")
    if (when - now).total_seconds() > MAX_STEER_S:
        raise ValueError(f"{raw[:40]!r} is more than a year ahead")
    return when.astimezone(UTC)


def until_after(now: datetime, duration_s: float) -> datetime:
    """`now` + a duration, refusing zero and more than a year."""
    _aware(now)
    if duration_s <= 0:
        raise ValueError("the duration must be longer than 0")
    if duration_s > MAX_STEER_S:
        raise ValueError("the duration is more than a year")
    return (now + timedelta(seconds=duration_s)).astimezone(UTC)


@dataclass(frozen=True)
class HouseAway:
    """The whole house is away until `until` (aware), holding `temp` in every room (None: each room's `away`
    preset, else DEFAULT_AWAY_TEMP_C). Rooms start heating back `preheat` before the end."""

    until: datetime
    since: datetime
    temp: float | None = None

    def active(self, now: datetime) -> bool:
        return self.since <= now < self.until


@dataclass(frozen=True)
class ReturnPreheat:
    """How early a room leaves a house-wide away so that it is warm at the return: the gap to the schedule's
    target at the end divided by a warm-up rate, plus a margin, within [0, max_lead_s]."""

    rate_k_per_h: float = 1.0
    margin_s: float = 1800.0
    max_lead_s: float = 12 * 3600.0

    def lead_s(self, away_temp: float, resume_temp: float) -> float:
        rise = resume_temp - away_temp
        if rise <= 0 or self.rate_k_per_h <= 0:
            return 0.0
        return min(self.max_lead_s, rise / self.rate_k_per_h * 3600.0 + self.margin_s)


def room_away(house: HouseAway, schedule: Schedule, preheat: ReturnPreheat | None = None) -> Away:
    """The room-level `Away` for a house-wide away: the room's temperature and an end moved earlier by the
    return pre-heat (so the schedule's target is back in force, and the room warming, before people return)."""
    if house.temp is not None:
        temp, preset = house.temp, None
    elif "away" in schedule.presets:
        temp, preset = schedule.presets["away"], "away"
    else:
        temp, preset = DEFAULT_AWAY_TEMP_C, None
    end = house.until
    if preheat is not None:
        resume = target_at(schedule, house.until).temp
        end = max(house.since, house.until - timedelta(seconds=preheat.lead_s(temp, resume)))
    return Away(temp=temp, until=end.astimezone(UTC), preset=preset, since=house.since.astimezone(UTC))
