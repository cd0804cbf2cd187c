"""Time-of-use electricity prices: a price per block of the week, like a schedule (pure; no I/O).

    week:
      mon-fri: [{at: "00:00", price: 0.22}, {at: "06:00", price: 0.38}, {at: "22:00", price: 0.22}]
      sat-sun: [{at: "00:00", price: 0.22}]

Day groups are the schedule's (`mon-fri`, `sat,sun`, `weekend`, `daily`, ...); every day of the week must be
given exactly once; a block's price holds until the day's next block, and a day that does not start at 00:00
carries the previous day's last price over midnight. Times are wall-clock times in the tariff's time zone.

`Tariff.flat(price)` is one price for every hour. `price_at(when)` answers for an aware datetime;
`changes(start, end)` lists (instant, price) from `start` (included) to `end` for planners and cost integrals.
A dynamic price (an MQTT price topic) overrides the tariff while it is fresh: `DynamicPrice` holds the latest one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from thermostat.core.schedule import DAY_NAMES, parse_day_group

MAX_PRICE = 100.0  # per kWh; anything above is a unit mistake


class TariffError(ValueError):
    """Problems in a tariff mapping: a list of (path, message)."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(str(p) for p in path)}: {msg}" for path, msg in problems))


def _parse_at(value: object) -> time:
    if not isinstance(value, str):
        raise ValueError(f"`at` must be a time like \"06:30\", got {value!r}")
    hh, sep, mm = value.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"`at` must be a time like \"06:30\", got {value!r}")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"`at` {value!r} is not a time of day")
    return time(h, m)


def _parse_price(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"`price` must be a number (per kWh), got {value!r}")
    if not 0 <= value <= MAX_PRICE:
        raise ValueError(f"`price` {value!r} is outside 0..{MAX_PRICE:g} per kWh")
    return float(value)


@dataclass(frozen=True)
class Tariff:
    """Per weekday (0 = Monday) the ascending (minutes after midnight, price) blocks."""

    days: tuple[tuple[tuple[int, float], ...], ...]
    tz: ZoneInfo

    @classmethod
    def flat(cls, price: float, tz: ZoneInfo | None = None) -> Tariff:
        p = _parse_price(price)
        return cls(days=tuple(((0, p),) for _ in range(7)), tz=tz or ZoneInfo("UTC"))

    @classmethod
    def from_week(cls, week: Mapping[str, Any], tz: ZoneInfo | None = None) -> Tariff:
        """Parse a `{day group: [{at, price}, ...]}` mapping. Raises TariffError listing every problem."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        per_day: dict[int, tuple[tuple[int, float], ...]] = {}
        if not isinstance(week, Mapping) or not week:
            raise TariffError([(("week",), "must be a mapping of day groups (e.g. mon-fri) to price blocks")])
        for group, items in week.items():
            try:
                days = parse_day_group(str(group))
            except ValueError as exc:
                problems.append((("week", str(group)), str(exc)))
                continue
            if not isinstance(items, list) or not items:
                problems.append((("week", str(group)), "must be a list of {at, price} blocks"))
                continue
            blocks: list[tuple[int, float]] = []
            for i, item in enumerate(items):
                if not isinstance(item, Mapping) or set(item) - {"at", "price"} or not {"at", "price"} <= set(item):
                    problems.append((("week", str(group), i), "a block is {at: \"HH:MM\", price: number}"))
                    continue
                try:
                    at = _parse_at(item["at"])
                    price = _parse_price(item["price"])
                except ValueError as exc:
                    problems.append((("week", str(group), i), str(exc)))
                    continue
                minute = at.hour * 60 + at.minute
                if blocks and minute <= blocks[-1][0]:
                    problems.append((("week", str(group), i), "blocks must be in increasing time order"))
                    continue
                blocks.append((minute, price))
            for d in days:
                if d in per_day:
                    problems.append((("week", str(group)), f"{DAY_NAMES[d]} is given twice"))
                per_day[d] = tuple(blocks)
        missing = [DAY_NAMES[d] for d in range(7) if d not in per_day]
        if missing:
            problems.append((("week",), f"no prices for {', '.join(missing)}"))
        if problems:
            raise TariffError(problems)
        return cls(days=tuple(per_day[d] for d in range(7)), tz=tz or ZoneInfo("UTC"))

    def _carry(self, weekday: int) -> float:
        """The price in force at 00:00 of this weekday when its first block starts later."""
        for back in range(1, 8):
            blocks = self.days[(weekday - back) % 7]
            if blocks:
                return blocks[-1][1]
        return 0.0  # pragma: no cover - every day has at least one block

    def price_at(self, when: datetime) -> float:
        if when.tzinfo is None:
            raise ValueError("price_at needs an aware datetime")
        local = when.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        price = self._carry(local.weekday())
        for start, p in self.days[local.weekday()]:
            if start <= minute:
                price = p
            else:
                break
        return price

    def changes(self, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """(instant, price from then on) at `start` and at every change before `end` (aware datetimes)."""
        out = [(start, self.price_at(start))]
        local = start.astimezone(self.tz)
        day = local.date()
        while True:
            for minute, price in self.days[day.weekday()]:
                wall = datetime.combine(day, time(minute // 60, minute % 60), self.tz)
                instant = wall.astimezone(start.tzinfo)
                if instant <= start:
                    continue
                if instant >= end:
                    return out
                if price != out[-1][1]:
                    out.append((instant, price))
            day += timedelta(days=1)
            if datetime.combine(day, time(0), self.tz) >= end:
                return out


@dataclass
class DynamicPrice:
    """The latest price from a dynamic-tariff topic; used while younger than `max_age_s`, else the tariff's."""

    max_age_s: float = 7200.0
    price: float | None = None
    at: float | None = None  # the caller's clock

    def offer(self, now: float, value: float) -> None:
        """A new price (validated: a finite number in 0..MAX_PRICE, else ValueError)."""
        self.price = _parse_price(value)
        self.at = now

    def current(self, now: float) -> float | None:
        if self.price is None or self.at is None or now - self.at > self.max_age_s:
            return None
        return self.price


def tariff_from_data(data: Mapping[str, Any], tz: ZoneInfo | None = None) -> Tariff:
    """A tariff from a config/scenario mapping: `{week: {day group: blocks}}`, `{price_per_kwh: x}` (flat), or the
    week mapping itself (`{mon-fri: [...], sat-sun: [...]}`)."""
    if not isinstance(data, Mapping):
        raise TariffError([((), "a tariff is a mapping (week: ... or price_per_kwh: ...)")])
    if "week" in data and data["week"] is not None:
        return Tariff.from_week(data["week"], tz)
    if "price_per_kwh" in data:
        try:
            return Tariff.flat(data["price_per_kwh"], tz)
        except ValueError as exc:
            raise TariffError([(("price_per_kwh",), str(exc))]) from None
    return Tariff.from_week(data, tz)
