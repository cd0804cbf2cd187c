"""`thermostat schedule show FILE [--date D] [--week]` and `thermostat schedule check FILE`.

Both print the file's warnings (blocks written out of time order) before their output. They read the file
with thermostat.schedule_file, which needs the schedule's models only, not the house configuration's."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta

from thermostat.core.schedule import (
    DAY_NAMES,
    Schedule,
    day_switches,
    day_timeline,
    dst_transitions,
)
from thermostat.schedule_file import ConfigError, load_schedule_and_warnings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("schedule", help="show a day or a week of a schedule, or check a schedule file")
    sub = p.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print one day's timeline (or a week's with --week) in the schedule's "
                          "time zone, DST changes marked")
    show.add_argument("file", help="schedule file (YAML)")
    show.add_argument("--date", help="local date YYYY-MM-DD (default: today in the schedule's zone)")
    show.add_argument("--week", action="store_true",
                      help="show the seven days Monday to Sunday of the week that holds the date")
    show.set_defaults(func=run_show)
    check = sub.add_parser("check", help="validate a schedule file")
    check.add_argument("file", help="schedule file (YAML)")
    check.set_defaults(func=run_check)


def _load(path: str) -> Schedule | None:
    try:
        schedule, warnings = load_schedule_and_warnings(path)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        return schedule
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
    except Exception as exc:  # never a traceback for a user's file
        print(f"{path}: cannot read schedule: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def run_check(args: argparse.Namespace) -> int:
    schedule = _load(args.file)
    if schedule is None:
        return 1
    blocks = sum(len(day) for day in schedule.week)
    print(
        f"{args.file}: OK ({schedule.timezone}, {len(schedule.presets)} presets, {blocks} blocks a week, "
        f"{len(schedule.exceptions)} exception dates/ranges)"
    )
    return 0


def _fmt_offset(dt: datetime) -> str:
    return dt.tzname() or dt.strftime("%z")


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h} h" + (f" {m} min" if m else "")


def render_day(schedule: Schedule, day: date, name: str) -> str:
    tz = schedule.tz
    exc = schedule.exception_for(day)
    head = f"{name}: {DAY_NAMES[day.weekday()]} {day.isoformat()} ({schedule.timezone})"
    if exc is not None:
        label = exc.name or "exception"
        how = f"{exc.use} program" if exc.use else "own blocks"
        head += f", exception {label!r}: {how}"
    lines = [head]
    timeline = day_timeline(schedule, day)
    switches = {sw.start: sw for sw in day_switches(schedule, day)}  # keyed by UTC instant
    rows: list[tuple[datetime, int, str]] = []
    for i, entry in enumerate(timeline):
        label = entry.preset or ""
        note = ""
        sw = switches.get(entry.start.astimezone(UTC))
        if sw is None and i == 0:
            note = "continues the previous day"
        elif sw is not None:
            written = sw.at.strftime("%H:%M")
            first = datetime.combine(day, sw.at).replace(tzinfo=tz, fold=0)
            second = datetime.combine(day, sw.at).replace(tzinfo=tz, fold=1)
            if entry.start.strftime("%H:%M") != written:
                note = f"written {written}: not on the clock today, starts when the clock jumps"
            elif second.utcoffset() != first.utcoffset():
                note = f"{written} happens twice today: switches at the first one only"
        temp = f"{entry.temp:5.1f} °C"
        text = f"  {entry.start.strftime('%H:%M')} {_fmt_offset(entry.start):<5} {temp}  {label:<10}"
        if note:
            text += f" ({note})"
        rows.append((entry.start, 1, text.rstrip()))
    for tr in dst_transitions(tz, day):
        instant = tr.instant.astimezone(tz)
        before = (tr.instant - timedelta(seconds=1)).astimezone(tz)
        what = "forward" if tr.shift > timedelta(0) else "back"
        wall_before = (instant.replace(tzinfo=None) - tr.shift).strftime("%H:%M")
        rows.append(
            (
                tr.instant,
                0,
                f"  -- DST: at {wall_before} {_fmt_offset(before)} clocks go {what} to "
                f"{instant.strftime('%H:%M')} {_fmt_offset(instant)} ({_hours(tr.shift)})",
            )
        )
    rows.sort(key=lambda r: (r[0].astimezone(UTC), r[1]))
    lines.extend(r[2] for r in rows)
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    schedule = _load(args.file)
    if schedule is None:
        return 1
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            print(f"--date: expected YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
            return 2
    else:
        day = datetime.now(UTC).astimezone(schedule.tz).date()
    if args.week:
        monday = day - timedelta(days=day.weekday())
        print("\n\n".join(render_day(schedule, monday + timedelta(days=i), args.file) for i in range(7)))
    else:
        print(render_day(schedule, day, args.file))
    return 0
