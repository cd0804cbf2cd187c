"""Review the week: history rows from the state file turned into energy per period, a text timeline, CSV and a
room chart (`thermostat history`, `thermostat energy`).

Energy is integrated from the heaters' history rows (wall watts sampled every `history_every_s`): each sample holds
until the next one of the same heater, but never longer than `max_gap_s`, so a stretch when the service was not
running adds nothing. A wake is a heater going from standby (or no level) to a level between two of its rows.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from thermostat.adapters.chart import BAND_HIGH_K, BAND_LOW_K, HeaterTrace, RoomChart
from thermostat.adapters.store import HistoryRow
from thermostat.core.schedule import Schedule, target_at

Period = Literal["day", "week", "month"]
DEFAULT_MAX_GAP_S = 180.0  # three history intervals: longer gaps are an outage, not a heater at that power


def period_key(ts: float, tz: ZoneInfo, by: Period) -> str:
    local = datetime.fromtimestamp(ts, UTC).astimezone(tz)
    if by == "day":
        return local.date().isoformat()
    if by == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


def _is_on(level: str | None) -> bool:
    return level is not None and level != "standby"


@dataclass(frozen=True)
class Interval:
    heater: str
    start: float
    end: float
    watts: float
    level: str | None


def heater_intervals(rows: Iterable[HistoryRow], max_gap_s: float = DEFAULT_MAX_GAP_S) -> Iterator[Interval]:
    """Each heater row as the interval until that heater's next row (at most `max_gap_s`)."""
    last: dict[str, HistoryRow] = {}
    for row in sorted((r for r in rows if r.heater is not None), key=lambda r: r.ts):
        assert row.heater is not None
        prev = last.get(row.heater)
        if prev is not None:
            yield Interval(row.heater, prev.ts, min(row.ts, prev.ts + max_gap_s), prev.watts or 0.0, prev.level)
        last[row.heater] = row


@dataclass(frozen=True)
class EnergyRow:
    period: str
    room: str
    heater: str
    kwh: float
    cost: float | None
    wakes: int
    hours_on: float


def energy_by_period(
    rows: Sequence[HistoryRow],
    room_of: dict[str, str],
    tz: ZoneInfo,
    by: Period = "day",
    price_at: Callable[[float], float] | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> list[EnergyRow]:
    """kWh, cost, wakes and hours hashing per period, room and heater, in period order. `price_at(ts)` gives
    the price of a kWh at an instant (None: no cost)."""
    kwh: dict[tuple[str, str], float] = defaultdict(float)
    cost: dict[tuple[str, str], float] = defaultdict(float)
    hours: dict[tuple[str, str], float] = defaultdict(float)
    wakes: dict[tuple[str, str], int] = defaultdict(int)
    for iv in heater_intervals(rows, max_gap_s):
        key = (period_key(iv.start, tz, by), iv.heater)
        energy = iv.watts * (iv.end - iv.start) / 3.6e6
        kwh[key] += energy
        if price_at is not None:
            cost[key] += energy * price_at(iv.start)
        if _is_on(iv.level):
            hours[key] += (iv.end - iv.start) / 3600.0
    previous: dict[str, str | None] = {}
    for row in sorted((r for r in rows if r.heater is not None), key=lambda r: r.ts):
        assert row.heater is not None
        if row.heater in previous and not _is_on(previous[row.heater]) and _is_on(row.level):
            wakes[(period_key(row.ts, tz, by), row.heater)] += 1
        previous[row.heater] = row.level
    keys = sorted(set(kwh) | set(wakes))
    return [
        EnergyRow(period, room_of.get(heater, "?"), heater, kwh.get((period, heater), 0.0),
                  cost.get((period, heater)) if price_at is not None else None, wakes.get((period, heater), 0),
                  hours.get((period, heater), 0.0))
        for period, heater in keys
    ]


def history_csv(rows: Iterable[HistoryRow], tz: ZoneInfo) -> str:
    """Every row, local time with offset first, empty cells for what a row does not have."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "room", "heater", "reading_c", "target_c", "level", "watts"])
    for r in rows:
        writer.writerow([
            datetime.fromtimestamp(r.ts, UTC).astimezone(tz).isoformat(timespec="seconds"),
            r.room or "", r.heater or "",
            "" if r.reading is None else f"{r.reading:.2f}",
            "" if r.target is None else f"{r.target:.1f}",
            r.level or "", "" if r.watts is None else f"{r.watts:.0f}",
        ])
    return out.getvalue()


@dataclass(frozen=True)
class TimelinePoint:
    ts: float
    reading: float | None
    target: float | None
    heaters: dict[str, tuple[str | None, float]]  # heater → (level, watts) in force then
    outdoor: float | None = None  # the outdoor temperature then (None: none recorded within the gap)

    @property
    def in_band(self) -> bool | None:
        if self.reading is None or self.target is None:
            return None
        return self.target - BAND_LOW_K <= self.reading <= self.target + BAND_HIGH_K


def room_timeline(rows: Sequence[HistoryRow], room: str, heaters: Sequence[str],
                  max_gap_s: float = DEFAULT_MAX_GAP_S,
                  outdoor: Sequence[tuple[float, float]] = (),
                  outdoor_max_age_s: float = 3 * 3600.0) -> list[TimelinePoint]:
    """The room's rows, each with every heater's level and watts in force at that time (standby/0 W after a gap
    or before the heater's first row) and the outdoor temperature last recorded (`outdoor`: (ts, °C) samples),
    if not older than `outdoor_max_age_s`."""
    heater_rows = sorted((r for r in rows if r.heater in heaters), key=lambda r: r.ts)
    latest: dict[str, HistoryRow] = {}
    out: list[TimelinePoint] = []
    i = 0
    outdoor_sorted = sorted(outdoor)
    j, last_outdoor = 0, None
    for r in sorted((r for r in rows if r.room == room and r.heater is None), key=lambda r: r.ts):
        while i < len(heater_rows) and heater_rows[i].ts <= r.ts:
            row = heater_rows[i]
            assert row.heater is not None
            latest[row.heater] = row
            i += 1
        state: dict[str, tuple[str | None, float]] = {}
        for h in heaters:
            hr = latest.get(h)
            if hr is None or r.ts - hr.ts > max_gap_s:
                state[h] = (None, 0.0)
            else:
                state[h] = (hr.level if _is_on(hr.level) else None, hr.watts or 0.0)
        while j < len(outdoor_sorted) and outdoor_sorted[j][0] <= r.ts:
            last_outdoor = outdoor_sorted[j]
            j += 1
        out_c = last_outdoor[1] if last_outdoor is not None and r.ts - last_outdoor[0] <= outdoor_max_age_s else None
        out.append(TimelinePoint(r.ts, r.reading, r.target, state, out_c))
    return out


def chart_from_timeline(points: Sequence[TimelinePoint], heaters: Sequence[str], tz: ZoneInfo, title: str,
                        kwh: float | None = None, schedule: Schedule | None = None) -> RoomChart:
    """The chart of a room's timeline; with its `schedule`, each stretch is named by the schedule's preset then
    (history rows keep the target, not where it came from)."""
    presets: list[str | None] = []
    if schedule is not None:
        presets = [target_at(schedule, datetime.fromtimestamp(p.ts, UTC)).preset for p in points]
    return RoomChart(
        presets=presets,
        title=title,
        tz=tz,
        times=[datetime.fromtimestamp(p.ts, UTC).astimezone(tz) for p in points],
        target=[p.target for p in points],
        reading=[p.reading for p in points],
        outdoor=[p.outdoor for p in points] if any(p.outdoor is not None for p in points) else [],
        heaters={h: HeaterTrace([p.heaters[h][1] for p in points], [p.heaters[h][0] for p in points])
                 for h in heaters},
        kwh=kwh,
    )


def thin(points: Sequence[TimelinePoint], max_lines: int) -> list[TimelinePoint]:
    """At most `max_lines` points, evenly spaced, always keeping the last."""
    if len(points) <= max_lines:
        return list(points)
    step = len(points) / max_lines
    picked = [points[int(k * step)] for k in range(max_lines - 1)]
    return [*picked, points[-1]]
