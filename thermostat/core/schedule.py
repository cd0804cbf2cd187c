"""Weekly heating schedules: a pure engine.

A schedule maps every instant to a target temperature. It is written in local wall-clock time (one IANA
time zone per schedule) as blocks ``{at: "HH:MM", preset|temp}`` per day group, plus date exceptions
(holidays) and, at run time, overrides and an away mode. Nothing here reads files or clocks: callers pass
parsed YAML data and aware datetimes.

Daylight-saving rules (see docs/schedules.md):

* a block takes effect at the first instant whose local wall time is at or after the block's time on that
  date. A wall time inside the spring-forward gap (02:30 in Berlin on the last Sunday of March) therefore
  takes effect at the end of the gap (03:00 CEST), and a wall time that occurs twice on the fall-back night
  takes effect at its first occurrence only; the repeated hour does not switch again.
* a day's first block before its time continues the previous day's last block.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_ALIASES: dict[str, tuple[int, ...]] = {
    "daily": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekend": (5, 6),
}
MIN_TEMP_C = 0.0
MAX_TEMP_C = 35.0
MAX_EXCEPTION_DAYS = 366
_LOOKBACK_DAYS = 14  # how far back `block_start` merges equal targets
_LOOKAHEAD_DAYS = 400  # how far ahead `next_change` is searched
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- file format (pydantic)


def _fahrenheit_hint(value: float) -> str:
    """A hint for a temperature that is plausible in °F but not in °C (60–85 °F is 15.6–29.4 °C)."""
    if 41.0 <= value <= 95.0:
        return f"; if that is °F, write {(value - 32.0) * 5.0 / 9.0:.1f} (°C)"
    return ""


def check_temp_c(value: float) -> float:
    """A schedule temperature in °C, with a °F hint when it looks like one."""
    if not MIN_TEMP_C <= value <= MAX_TEMP_C:
        raise ValueError(f"{value:g} °C is outside {MIN_TEMP_C:g}..{MAX_TEMP_C:g} °C{_fahrenheit_hint(value)}")
    return value


def _check_preset_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ValueError(f"preset name {name!r} must match [a-z0-9_-]+ (lower case, digits, _ and -)")
    return name


TempC = Annotated[float, AfterValidator(check_temp_c)]


def _parse_hhmm(value: object) -> time:
    if not isinstance(value, str):
        raise ValueError(f'time must be a quoted "HH:MM" string, got {value!r} ({type(value).__name__})')
    m = _TIME_RE.match(value.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f'time must be "HH:MM" between "00:00" and "23:59", got {value!r}')
    return time(int(m.group(1)), int(m.group(2)))


class BlockSpec(BaseModel):
    """One switch point: from `at` (local wall time) on, hold a preset or a temperature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str = Field(description='Local wall time "HH:MM" (quoted) at which this block starts.')
    preset: str | None = Field(default=None, description="Name of a preset from `presets`.")
    temp: TempC | None = Field(default=None, description="Target temperature in °C (instead of a preset).")

    @field_validator("at", mode="before")
    @classmethod
    def _check_at(cls, value: object) -> str:
        _parse_hhmm(value)
        assert isinstance(value, str)
        return value.strip()

    @model_validator(mode="after")
    def _one_target(self) -> BlockSpec:
        if (self.preset is None) == (self.temp is None):
            raise ValueError("a block needs exactly one of `preset` or `temp`")
        return self


def _check_date_item(value: str | date) -> str | date:
    _parse_date_item(value)
    return value


class ExceptionSpec(BaseModel):
    """Dates that do not follow the weekly program (public holidays, a day off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Label shown by `thermostat schedule show`.")
    dates: list[Annotated[str | date, AfterValidator(_check_date_item)]] = Field(
        min_length=1, description='Dates "YYYY-MM-DD" or inclusive ranges "YYYY-MM-DD..YYYY-MM-DD".'
    )
    use: str | None = Field(default=None, description="Use the blocks of this weekday (mon..sun) on these dates.")
    blocks: list[BlockSpec] | None = Field(
        default=None, min_length=1, description="Or: this day's own blocks (same form as in `week`)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ExceptionSpec:
        if (self.use is None) == (self.blocks is None):
            raise ValueError("an exception needs exactly one of `use` (a weekday) or `blocks`")
        return self


class ScheduleSpec(BaseModel):
    """A schedule file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(description='IANA time zone of the wall times, e.g. "Europe/Berlin".')
    presets: dict[Annotated[str, AfterValidator(_check_preset_name)], TempC] = Field(
        default_factory=dict, description="Named temperatures in °C (comfort, eco, away, frost, ...)."
    )
    week: dict[str, list[BlockSpec]] = Field(
        description='Day group ("mon-fri", "sat-sun", "mon,wed", "daily", "weekdays", "weekend") → blocks.'
    )
    exceptions: list[ExceptionSpec] = Field(default_factory=list, description="Date exceptions (holidays).")

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        load_zone(value)
        return value


# --------------------------------------------------------------------------- compiled schedule


@dataclass(frozen=True)
class Block:
    at: time  # local wall time
    temp: float
    preset: str | None = None


@dataclass(frozen=True)
class DateException:
    start: date
    end: date  # inclusive
    blocks: tuple[Block, ...]
    name: str | None = None
    use: str | None = None  # the weekday whose blocks these are, when given as `use:`

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, eq=False)
class Schedule:
    tz: ZoneInfo
    week: tuple[tuple[Block, ...], ...]  # 7 entries, Monday first; blocks sorted by `at`
    presets: Mapping[str, float] = field(default_factory=dict)
    exceptions: tuple[DateException, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError("a schedule needs 7 days of blocks")
        if not any(self.week):
            raise ValueError("a schedule needs at least one block")

    @property
    def timezone(self) -> str:
        return self.tz.key

    def exception_for(self, day: date) -> DateException | None:
        for exc in self.exceptions:
            if exc.covers(day):
                return exc
        return None

    def blocks_for(self, day: date) -> tuple[Block, ...]:
        exc = self.exception_for(day)
        if exc is not None:
            return exc.blocks
        return self.week[day.weekday()]

    def distinct_targets(self) -> set[tuple[float, str | None]]:
        out = {(b.temp, b.preset) for day in self.week for b in day}
        out.update((b.temp, b.preset) for exc in self.exceptions for b in exc.blocks)
        return out

    @classmethod
    def constant(cls, temp: float, tz: ZoneInfo | None = None, name: str | None = None) -> Schedule:
        """A schedule holding one temperature all the time (a room with a fixed `target:`)."""
        block = (Block(time(0, 0), float(temp), None),)
        return cls(tz=tz or ZoneInfo("UTC"), week=(block,) * 7, name=name)

    @classmethod
    def from_spec(cls, spec: ScheduleSpec, name: str | None = None) -> Schedule:
        """Cross-check and compile a validated spec. Raises `ScheduleError` with every problem found."""
        return _compile(spec, name)

    @classmethod
    def from_data(cls, data: Any, name: str | None = None) -> Schedule:
        """Validate plain (YAML-loaded) data. Raises pydantic `ValidationError` or `ScheduleError`."""
        return _compile(ScheduleSpec.model_validate(data), name)


@dataclass(frozen=True)
class ScheduleProblem:
    loc: Loc
    message: str
    on_key: bool = False


class ScheduleError(ValueError):
    def __init__(self, problems: list[ScheduleProblem]) -> None:
        super().__init__("\n".join(f"{'.'.join(map(str, p.loc))}: {p.message}" for p in problems))
        self.problems = problems


def parse_day_group(text: str) -> tuple[int, ...]:
    """``"mon-fri"`` → (0..4); ``"mon,wed"``; ``"fri-mon"`` wraps; ``"daily"``. Raises ValueError."""
    days: list[int] = []
    for raw in text.lower().split(","):
        part = raw.strip()
        if part in DAY_ALIASES:
            days.extend(DAY_ALIASES[part])
            continue
        if "-" in part:
            a, _, b = part.partition("-")
            i, j = _day_index(a.strip()), _day_index(b.strip())
            days.extend((i + k) % 7 for k in range((j - i) % 7 + 1))
        else:
            days.append(_day_index(part))
    if len(set(days)) != len(days):
        raise ValueError(f"day group {text!r} names a day twice")
    return tuple(days)


def _day_index(name: str) -> int:
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    close = difflib.get_close_matches(name, [*DAY_NAMES, *DAY_ALIASES], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown day {name!r} (use mon, tue, wed, thu, fri, sat, sun, daily){hint}")


def _parse_date_item(item: str | date) -> tuple[date, date]:
    if isinstance(item, datetime):
        raise ValueError(f"expected a date, got a date and time {item!s}")
    if isinstance(item, date):
        return item, item
    text = item.strip()
    a, sep, b = text.partition("..")
    try:
        start = date.fromisoformat(a.strip())
        end = date.fromisoformat(b.strip()) if sep else start
    except ValueError:
        raise ValueError(f'expected "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD", got {item!r}') from None
    if end < start:
        raise ValueError(f"range {text!r} ends before it starts")
    if (end - start).days + 1 > MAX_EXCEPTION_DAYS:
        raise ValueError(f"range {text!r} is longer than {MAX_EXCEPTION_DAYS} days")
    return start, end


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone; ValueError with a readable message if unknown."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f'unknown time zone {name!r} (use an IANA name such as "Europe/Berlin")') from None


def _compile(spec: ScheduleSpec, name: str | None) -> Schedule:
    problems: list[ScheduleProblem] = []
    try:
        tz = load_zone(spec.timezone)
    except ValueError as exc:
        problems.append(ScheduleProblem(("timezone",), str(exc)))
        tz = ZoneInfo("UTC")

    def blocks(items: list[BlockSpec], loc: Loc) -> tuple[Block, ...]:
        out: list[Block] = []
        for i, b in enumerate(items):
            at = _parse_hhmm(b.at)
            if b.preset is not None:
                if b.preset not in spec.presets:
                    close = difflib.get_close_matches(b.preset, list(spec.presets), n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    known = ", ".join(spec.presets) or "none defined"
                    problems.append(
                        ScheduleProblem((*loc, i, "preset"), f"unknown preset {b.preset!r} (known: {known}){hint}")
                    )
                    continue
                out.append(Block(at, spec.presets[b.preset], b.preset))
            else:
                assert b.temp is not None
                out.append(Block(at, float(b.temp), None))
        return tuple(sorted(out, key=lambda blk: blk.at))

    week: list[tuple[Block, ...] | None] = [None] * 7
    first_group: dict[int, str] = {}
    for group, items in spec.week.items():
        try:
            days = parse_day_group(group)
        except ValueError as exc:
            problems.append(ScheduleProblem(("week", group), str(exc), on_key=True))
            continue
        compiled = blocks(items, ("week", group))
        for d in days:
            if d in first_group:
                problems.append(
                    ScheduleProblem(
                        ("week", group), f"{DAY_NAMES[d]} is already given by {first_group[d]!r}", on_key=True
                    )
                )
                continue
            first_group[d] = group
            week[d] = compiled
    missing = [DAY_NAMES[d] for d in range(7) if d not in first_group]
    if missing and not any(p.loc[:1] == ("week",) and p.on_key for p in problems):
        problems.append(
            ScheduleProblem(("week",), f"no blocks for {', '.join(missing)} (give `{missing[0]}: []` to continue)")
        )
    full_week = tuple(w or () for w in week)
    if not problems and not any(full_week):
        problems.append(ScheduleProblem(("week",), "the week has no blocks at all"))

    exceptions: list[DateException] = []
    for i, exc_spec in enumerate(spec.exceptions):
        ranges: list[tuple[date, date]] = []
        for j, item in enumerate(exc_spec.dates):
            try:
                ranges.append(_parse_date_item(item))
            except ValueError as err:
                problems.append(ScheduleProblem(("exceptions", i, "dates", j), str(err)))
        if exc_spec.use is not None:
            use = exc_spec.use.strip().lower()
            try:
                exc_blocks = full_week[_day_index(use)]
            except ValueError as err:
                problems.append(ScheduleProblem(("exceptions", i, "use"), str(err)))
                continue
        else:
            assert exc_spec.blocks is not None
            use = None
            exc_blocks = blocks(exc_spec.blocks, ("exceptions", i, "blocks"))
        for start, end in ranges:
            for other in exceptions:
                if start <= other.end and other.start <= end:
                    problems.append(
                        ScheduleProblem(
                            ("exceptions", i, "dates"),
                            f"{start}..{end} overlaps {other.start}..{other.end} of another exception",
                        )
                    )
            exceptions.append(DateException(start, end, exc_blocks, exc_spec.name, use))
    problems += raw_duplicate_times(spec.model_dump())
    if problems:
        raise ScheduleError(problems)
    return Schedule(tz=tz, week=full_week, presets=dict(spec.presets), exceptions=tuple(exceptions), name=name)


# --------------------------------------------------------------------------- wall time → instant


def wall_to_instant(tz: ZoneInfo, day: date, at: time) -> datetime:
    """The first instant whose local wall time on `day` is at or after `at`, as an aware UTC datetime.

    Normal times map to themselves; a time in a spring-forward gap maps to the end of the gap; a time that
    occurs twice (fall back) maps to its first occurrence.
    """
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)
    # In a gap: fold=0 applies the offset before the transition (too late), fold=1 the one after (too early).
    a = int(first.astimezone(UTC).timestamp())
    b = int(naive.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    lo, hi = min(a, b), max(a, b)  # wall(lo) < naive <= wall(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


@dataclass(frozen=True)
class Switch:
    """A block as it happens on one date: written wall time `at`, effective instant `start` (UTC)."""

    start: datetime
    at: time
    block: Block
    day: date


def day_switches(schedule: Schedule, day: date) -> list[Switch]:
    """The blocks of `day` with their effective instants. Blocks that land on the same instant (several
    times inside one DST gap) are reduced to the last one, which is the one in force."""
    out: list[Switch] = []
    for b in schedule.blocks_for(day):
        sw = Switch(wall_to_instant(schedule.tz, day, b.at), b.at, b, day)
        if out and out[-1].start == sw.start:
            out[-1] = sw
        else:
            out.append(sw)
    return out


def _backward(schedule: Schedule, day: date, days: int) -> Iterator[Switch]:
    for k in range(days):
        yield from reversed(day_switches(schedule, day - timedelta(days=k)))


def _forward(schedule: Schedule, day: date, days: int) -> Iterator[Switch]:
    for k in range(days):
        yield from day_switches(schedule, day + timedelta(days=k))


# --------------------------------------------------------------------------- targets


Reason = Literal["schedule", "override", "away", "preset"]


@dataclass(frozen=True)
class Target:
    """The target in force. Datetimes are aware UTC instants (safe to compare: aware datetimes sharing a
    ZoneInfo compare by wall time and ignore `fold`); use ``.astimezone(schedule.tz)`` to display them."""

    temp: float
    preset: str | None
    block_start: datetime  # since when this target holds (equal consecutive blocks are merged)
    next_change: datetime | None  # when the target changes next (None: not within a year / indefinitely)
    reason: Reason = "schedule"
    next_temp: float | None = None
    next_preset: str | None = None


def _require_aware(when: datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("an aware datetime is required (naive local times are ambiguous around DST)")


def target_at(schedule: Schedule, when: datetime) -> Target:
    """The scheduled target at instant `when` (an aware datetime, any zone)."""
    _require_aware(when)
    when = when.astimezone(UTC)
    local = when.astimezone(schedule.tz)
    day = local.date()
    back = _backward(schedule, day + timedelta(days=1), _LOOKAHEAD_DAYS + 8)
    current: Switch | None = None
    for sw in back:
        if sw.start <= when:
            current = sw
            break
    if current is None:  # pragma: no cover - compile guarantees blocks at least every MAX_EXCEPTION_DAYS
        raise ValueError("schedule has no block before this time")
    key = (current.block.temp, current.block.preset)
    start = current.start
    limit = current.day - timedelta(days=_LOOKBACK_DAYS)
    for sw in back:
        if sw.day < limit or (sw.block.temp, sw.block.preset) != key:
            break
        start = sw.start
    next_sw: Switch | None = None
    if len(schedule.distinct_targets()) > 1:
        for sw in _forward(schedule, day, _LOOKAHEAD_DAYS):
            if sw.start > when and (sw.block.temp, sw.block.preset) != key:
                next_sw = sw
                break
    return Target(
        temp=current.block.temp,
        preset=current.block.preset,
        block_start=start,
        next_change=next_sw.start if next_sw else None,
        next_temp=next_sw.block.temp if next_sw else None,
        next_preset=next_sw.block.preset if next_sw else None,
    )


class TimelineEntry(NamedTuple):
    start: datetime  # aware, in the schedule's zone (for display; compare via .astimezone(UTC))
    temp: float
    preset: str | None


def day_timeline(schedule: Schedule, day: date) -> list[TimelineEntry]:
    """What the schedule does on local date `day`: (start, temp, preset) from the day's first instant on.

    The first entry starts at local midnight (or the first instant of the day) and carries the previous
    day's last block when the day's first block starts later.
    """
    tz = schedule.tz
    day_start = wall_to_instant(tz, day, time(0, 0))
    switches = day_switches(schedule, day)
    out: list[TimelineEntry] = []
    if not switches or switches[0].start > day_start:
        t = target_at(schedule, day_start)
        out.append(TimelineEntry(day_start.astimezone(tz), t.temp, t.preset))
    out.extend(TimelineEntry(sw.start.astimezone(tz), sw.block.temp, sw.block.preset) for sw in switches)
    return out


@dataclass(frozen=True)
class Transition:
    instant: datetime  # first instant with the new offset (aware UTC)
    offset_before: timedelta
    offset_after: timedelta

    @property
    def shift(self) -> timedelta:
        return self.offset_after - self.offset_before


def dst_transitions(tz: ZoneInfo, day: date) -> list[Transition]:
    """UTC-offset changes during local date `day` (usually none; one on DST days)."""
    start = int(wall_to_instant(tz, day, time(0)).timestamp())
    end = int(wall_to_instant(tz, day + timedelta(days=1), time(0)).timestamp())
    out: list[Transition] = []
    step = 900
    t = start
    while t < end:
        u = min(t + step, end)
        off_a = datetime.fromtimestamp(t, tz).utcoffset()
        off_b = datetime.fromtimestamp(u, tz).utcoffset()
        if off_a != off_b:
            lo, hi = t, u
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, tz).utcoffset() == off_a:
                    lo = mid
                else:
                    hi = mid
            assert off_a is not None and off_b is not None
            out.append(Transition(datetime.fromtimestamp(hi, UTC), off_a, off_b))
        t = u
    return out


# --------------------------------------------------------------------------- overrides and away mode


def resolve_temp(schedule: Schedule, temp: float | None = None, preset: str | None = None) -> tuple[float, str | None]:
    """(temp, preset) from exactly one of a temperature or a preset name of `schedule`."""
    if (temp is None) == (preset is None):
        raise ValueError("give exactly one of temp or preset")
    if preset is not None:
        if preset not in schedule.presets:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(schedule.presets) or 'none'}")
        return schedule.presets[preset], preset
    assert temp is not None
    if not MIN_TEMP_C <= temp <= MAX_TEMP_C:
        raise ValueError(f"{temp} °C is outside {MIN_TEMP_C:g}..{MAX_TEMP_C:g} °C")
    return float(temp), None


@dataclass(frozen=True)
class Override:
    """A temporary manual target. `until` None means until cancelled."""

    temp: float
    since: datetime
    until: datetime | None = None
    preset: str | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def override_until_next_change(
    schedule: Schedule, now: datetime, temp: float | None = None, preset: str | None = None
) -> Override:
    """Hold `temp` (or `preset`) until the schedule's next change (indefinitely if it never changes)."""
    _require_aware(now)
    t, p = resolve_temp(schedule, temp, preset)
    return Override(temp=t, since=now.astimezone(UTC), until=target_at(schedule, now).next_change, preset=p)


def override_until(
    schedule: Schedule, now: datetime, until: datetime, temp: float | None = None, preset: str | None = None
) -> Override:
    """Hold `temp` (or `preset`) until the instant `until`."""
    _require_aware(now)
    _require_aware(until)
    if until <= now:
        raise ValueError("an override must end in the future")
    t, p = resolve_temp(schedule, temp, preset)
    return Override(temp=t, since=now.astimezone(UTC), until=until.astimezone(UTC), preset=p)


@dataclass(frozen=True)
class Away:
    """Away/holiday mode: hold `temp` until `until` (a date: the schedule resumes at 00:00 local that day;
    or an aware datetime; None: until cancelled)."""

    temp: float
    until: date | datetime | None
    preset: str | None = None
    since: datetime | None = None
    # "preset": a preset chosen by hand (Home Assistant's preset menu), held like away mode until another
    # choice; the target then says `reason="preset"`, not "away".
    reason: Literal["away", "preset"] = "away"

    def end(self, tz: ZoneInfo) -> datetime | None:
        if self.until is None:
            return None
        if isinstance(self.until, datetime):
            _require_aware(self.until)
            return self.until.astimezone(UTC)
        return wall_to_instant(tz, self.until, time(0, 0))

    def active(self, now: datetime, tz: ZoneInfo) -> bool:
        if self.since is not None and now < self.since:
            return False
        end = self.end(tz)
        return end is None or now < end


def away_mode(
    schedule: Schedule,
    until: date | datetime | None,
    temp: float | None = None,
    preset: str | None = None,
    since: datetime | None = None,
) -> Away:
    t, p = resolve_temp(schedule, temp, preset)
    return Away(temp=t, until=until, preset=p, since=since)


def effective_target(
    schedule: Schedule, now: datetime, override: Override | None = None, away: Away | None = None
) -> Target:
    """The target in force: an active override beats away mode, which beats the schedule.

    `reason` says which one; `next_change` is when that source ends or changes.
    """
    _require_aware(now)
    now = now.astimezone(UTC)
    sched = target_at(schedule, now)
    if override is not None and override.active(now):
        after = target_at(schedule, override.until) if override.until is not None else None
        return Target(
            temp=override.temp,
            preset=override.preset,
            block_start=override.since.astimezone(UTC),
            next_change=override.until,
            reason="override",
            next_temp=after.temp if after else None,
            next_preset=after.preset if after else None,
        )
    if away is not None and away.active(now, schedule.tz):
        end = away.end(schedule.tz)
        after = target_at(schedule, end) if end is not None else None
        return Target(
            temp=away.temp,
            preset=away.preset,
            block_start=away.since.astimezone(UTC) if away.since else sched.block_start,
            next_change=end,
            reason=away.reason,
            next_temp=after.temp if after else None,
            next_preset=after.preset if after else None,
        )
    return sched


def raw_problems(data: Any) -> list[ScheduleProblem]:
    """Bad day groups and unknown preset references, checked on raw (unvalidated) data so that they are
    reported together with schema errors elsewhere in the file."""
    if not isinstance(data, Mapping):
        return []
    out: list[ScheduleProblem] = []
    week = data.get("week")
    if isinstance(week, Mapping):
        for group in week:
            try:
                parse_day_group(str(group))
            except ValueError as exc:
                out.append(ScheduleProblem(("week", str(group)), str(exc), on_key=True))
    presets = data.get("presets")
    if not isinstance(presets, Mapping):
        return out
    known = [str(k) for k in presets]

    def check(items: object, loc: Loc) -> None:
        if not isinstance(items, list):
            return
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                name = item.get("preset")
                if isinstance(name, str) and name not in known:
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    msg = f"unknown preset {name!r} (known: {', '.join(known) or 'none defined'}){hint}"
                    out.append(ScheduleProblem((*loc, i, "preset"), msg))

    for items, loc in _raw_block_lists(data):
        check(items, loc)
    return out + raw_duplicate_times(data)


def _raw_block_lists(data: Mapping[str, Any]) -> Iterator[tuple[list[Any], Loc]]:
    """Every list of blocks in raw schedule data (week groups, exceptions' own blocks) with its location."""
    week = data.get("week")
    if isinstance(week, Mapping):
        for group, items in week.items():
            if isinstance(items, list):
                yield items, ("week", str(group))
    exceptions = data.get("exceptions")
    if isinstance(exceptions, list):
        for i, item in enumerate(exceptions):
            if isinstance(item, Mapping) and isinstance(item.get("blocks"), list):
                yield item["blocks"], ("exceptions", i, "blocks")


def _raw_times(items: list[Any]) -> Iterator[tuple[int, time]]:
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            try:
                yield i, _parse_hhmm(item.get("at"))
            except ValueError:
                continue


def raw_duplicate_times(data: Any) -> list[ScheduleProblem]:
    """Two blocks of one day at the same time, found on raw data (so they are reported beside schema errors)."""
    if not isinstance(data, Mapping):
        return []
    out: list[ScheduleProblem] = []
    for items, loc in _raw_block_lists(data):
        seen: dict[time, int] = {}
        for i, at in _raw_times(items):
            if at in seen:
                out.append(ScheduleProblem((*loc, i, "at"), f"{at:%H:%M} already used by block {seen[at]}"))
            else:
                seen[at] = i
    return out


def schedule_warnings(data: Any, *, min_c: float | None = None, max_c: float | None = None,
                      room: str | None = None) -> list[ScheduleProblem]:
    """Things a valid schedule file probably does not mean: blocks written out of time order (they are applied
    in time order), and, for a room's limits, temperatures that the room will clamp."""
    if not isinstance(data, Mapping):
        return []
    out: list[ScheduleProblem] = []
    if min_c is None and max_c is None:
        for items, loc in _raw_block_lists(data):
            latest: tuple[int, time] | None = None
            for i, at in _raw_times(items):
                if latest is not None and at < latest[1]:
                    out.append(ScheduleProblem(
                        (*loc, i, "at"),
                        f"written after {latest[1]:%H:%M} (block {latest[0]}) but starts earlier: blocks are applied "
                        "in time order, not in the order written",
                    ))
                if latest is None or at > latest[1]:
                    latest = (i, at)
        return out
    whose = f" of room {room!r}" if room else ""

    def limit(value: object, loc: Loc, what: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        if max_c is not None and value > max_c:
            out.append(ScheduleProblem(loc, f"{what} {value:g} °C is above max_c {max_c:g} °C{whose}: "
                                            f"it will be held at {max_c:g} °C"))
        elif min_c is not None and value < min_c:
            out.append(ScheduleProblem(loc, f"{what} {value:g} °C is below min_c {min_c:g} °C{whose}: "
                                            f"it will be raised to {min_c:g} °C"))

    presets = data.get("presets")
    if isinstance(presets, Mapping):
        for name, value in presets.items():
            limit(value, ("presets", str(name)), f"preset {name!r}")
    for items, loc in _raw_block_lists(data):
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                limit(item.get("temp"), (*loc, i, "temp"), "temperature")
    return out
