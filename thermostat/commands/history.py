"""`thermostat history [ROOM] [--since 24h|7d] [--plot FILE.png] [--csv]` and `thermostat energy [--by day|week|month]`:
review what the heating did, from the service's state file (read-only; safe while the service runs)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from thermostat.adapters.chart import write_room_chart
from thermostat.adapters.report import (
    chart_from_timeline,
    energy_by_period,
    history_csv,
    room_timeline,
    thin,
)
from thermostat.adapters.store import Store, StoreError
from thermostat.commands._shared import add_config_option, load_or_explain
from thermostat.config import Config, TariffConfig
from thermostat.core.steer import parse_duration_s


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hist = subparsers.add_parser(
        "history", help="what each room and heater did: readings, targets, levels, watts (from the state file)",
        description="Show a room's readings, targets, comfort band and heater levels over time, from the "
        "service's state file. Text by default; --csv for every row; --plot for a PNG.")
    hist.add_argument("room", nargs="?", help="room id (default: every room)")
    hist.add_argument("--since", default="24h", help="how far back: 24h, 7d, 90m ... (default 24h)")
    hist.add_argument("--csv", action="store_true", help="print every row as CSV")
    hist.add_argument("--plot", type=Path, metavar="FILE.png",
                      help="write a chart (one file per room: FILE-ROOM.png when several rooms)")
    hist.add_argument("--lines", type=int, default=48, help="at most this many text lines per room (default 48)")
    add_config_option(hist)
    hist.set_defaults(func=run_history)
    energy = subparsers.add_parser(
        "energy", help="kWh, cost, wakes and hours on per room and heater, by day, week or month",
        description="Energy used, its cost (with a tariff configured), wakes and hours hashing, per room and "
        "heater, from the service's state file.")
    energy.add_argument("--by", choices=("day", "week", "month"), default="day", help="period (default day)")
    energy.add_argument("--since", default="30d", help="how far back (default 30d; history keeps state.history_days)")
    add_config_option(energy)
    energy.set_defaults(func=run_energy)


def _since(args: argparse.Namespace, prog: str) -> float | None:
    try:
        seconds = parse_duration_s(args.since)
    except ValueError as exc:
        print(f"thermostat {prog}: --since: {exc}", file=sys.stderr)
        return None
    return time.time() - seconds


def _open(config: Config, prog: str) -> Store | None:
    try:
        return Store.open_read_only(config.state.path)
    except StoreError as exc:
        print(f"thermostat {prog}: {exc}", file=sys.stderr)
        return None


def _tz(config: Config, room: str) -> ZoneInfo:
    return config.schedule_for(room).tz


def run_history(args: argparse.Namespace) -> int:
    config = load_or_explain(args, "history")
    if config is None:
        return 1
    if args.room is not None and args.room not in config.rooms:
        print(f"thermostat history: no room {args.room!r} (rooms: {', '.join(config.rooms)})", file=sys.stderr)
        return 2
    since = _since(args, "history")
    if since is None:
        return 2
    if args.lines < 2:
        print("thermostat history: --lines must be at least 2", file=sys.stderr)
        return 2
    store = _open(config, "history")
    if store is None:
        return 1
    rooms = [args.room] if args.room else list(config.rooms)
    with store:
        rows = store.history(since=since)
        try:
            outdoor = store.outdoor_history(since)
        except sqlite3.Error:  # a state file from before the outdoor table: no outdoor line
            outdoor = []
    out_cfg = config.outdoor
    outdoor_age = out_cfg.stale_after if out_cfg is not None else 3 * 3600.0
    if args.csv:
        wanted = [r for r in rows if r.room in rooms or (r.heater and config.room_of(r.heater) in rooms)]
        sys.stdout.write(history_csv(wanted, _tz(config, rooms[0])))
        return 0
    for rid in rooms:
        heaters = list(config.rooms[rid].heaters)
        tz = _tz(config, rid)
        points = room_timeline(rows, rid, heaters, outdoor=outdoor, outdoor_max_age_s=outdoor_age)
        name = config.rooms[rid].name or rid
        if not points:
            print(f"{name}: no history since {datetime.fromtimestamp(since, UTC).astimezone(tz):%Y-%m-%d %H:%M}")
            continue
        kwh = sum(e.kwh for e in energy_by_period(rows, {h: rid for h in heaters}, tz, "month"))
        in_band = [p.in_band for p in points if p.in_band is not None]
        share = f"{100 * sum(in_band) / len(in_band):.0f} % of readings in band" if in_band else "no readings"
        print(f"{name}: {len(points)} samples, {share}, {kwh:.2f} kWh")
        print(f"  {'time':<16} {'reading':>8} {'target':>7}  band  heaters")
        for p in thin(points, args.lines):
            when = datetime.fromtimestamp(p.ts, UTC).astimezone(tz)
            reading = "—" if p.reading is None else f"{p.reading:.2f}"
            target = "—" if p.target is None else f"{p.target:.1f}"
            band = {True: "ok", False: "out", None: "—"}[p.in_band]
            heat = ", ".join(f"{h} {lv or 'standby'} {w:.0f} W" for h, (lv, w) in p.heaters.items())
            print(f"  {when:%a %d %H:%M}     {reading:>8} {target:>7}  {band:<4}  {heat}")
        if args.plot is not None:
            path = args.plot if len(rooms) == 1 else args.plot.with_name(f"{args.plot.stem}-{rid}{args.plot.suffix}")
            write_room_chart(path, chart_from_timeline(points, heaters, tz, f"{name}: history", kwh,
                                                       config.schedule_for(rid)))
            print(f"  plot: {path}")
    return 0


def run_energy(args: argparse.Namespace) -> int:
    config = load_or_explain(args, "energy")
    if config is None:
        return 1
    since = _since(args, "energy")
    if since is None:
        return 2
    store = _open(config, "energy")
    if store is None:
        return 1
    with store:
        rows = store.history(since=since)
    room_of = {hid: rid for rid, room in config.rooms.items() for hid in room.heaters}
    tariff = config.tariff
    price = _price_at(tariff) if tariff is not None else None
    tz = _tz(config, next(iter(config.rooms)))
    table = energy_by_period(rows, room_of, tz, args.by, price)
    if not table:
        print("no heater history in that time")
        return 0
    cur = tariff.currency if tariff is not None else ""
    print(f"{args.by:<10} {'room':<12} {'heater':<12} {'kWh':>8} {'cost':>9} {'wakes':>5} {'hours on':>8}")
    for e in table:
        cost = f"{e.cost:.2f} {cur}" if e.cost is not None else "—"
        print(f"{e.period:<10} {e.room:<12} {e.heater:<12} {e.kwh:>8.2f} {cost:>9} {e.wakes:>5} {e.hours_on:>8.1f}")
    total = sum(e.kwh for e in table)
    total_cost = sum(e.cost or 0.0 for e in table) if tariff is not None else None
    tail = f", {total_cost:.2f} {cur}" if total_cost is not None else ""
    print(f"total {total:.2f} kWh{tail}, {sum(e.wakes for e in table)} wakes")
    return 0


def _price_at(tariff: TariffConfig) -> Callable[[float], float]:
    """The price of a kWh at an epoch instant: the flat price, or the time-of-use block in force then."""
    flat = tariff.price_per_kwh
    if flat is not None:
        return lambda ts: flat
    blocks = tariff.build()
    return lambda ts: float(blocks.price_at(datetime.fromtimestamp(ts, UTC)))
