"""`thermostat bench-scale`: one real service driving a simulated fleet; its CPU, memory, poll gaps and fan-out.

See thermostat/sim/scale.py for the parts and what each figure measures. Several sizes can be run in one call
(``--heaters 10,50,200,1000 --rooms 2,10,40,200``); the figures are printed as a table and optionally written
as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from thermostat.commands._argtypes import positive
from thermostat.sim.scale import format_table, run_bench


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected whole numbers of at least 1, got {text!r}")
    return values


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench-scale", help="one real service driving N simulated heaters: CPU, RSS, poll gaps, fan-out")
    parser.add_argument("--heaters", type=_counts, default=[200], help="heaters (comma-separated for several runs)")
    parser.add_argument("--rooms", type=_counts, default=None,
                        help="rooms, one per --heaters value (default: one room per 5 heaters)")
    parser.add_argument("--seconds", type=positive, default=60.0, help="measured window per run (default 60)")
    parser.add_argument("--fanout", type=int, default=120, help="heaters the fan-out change reaches (default 120)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    rooms = args.rooms or [max(1, n // 5) for n in args.heaters]
    if len(rooms) != len(args.heaters):
        print("bench-scale: give one --rooms value per --heaters value", file=sys.stderr)
        return 2
    if any(r > n for n, r in zip(args.heaters, rooms, strict=True)):
        print("bench-scale: every room needs at least one heater (--rooms <= --heaters)", file=sys.stderr)
        return 2
    if args.fanout < 1:
        print("bench-scale: --fanout must be at least 1", file=sys.stderr)
        return 2
    results = []
    for n, m in zip(args.heaters, rooms, strict=True):
        print(f"bench-scale: {n} heaters in {m} rooms, {args.seconds:.0f} s ...", file=sys.stderr, flush=True)
        try:
            results.append(run_bench(n, m, args.seconds, fanout_heaters=args.fanout))
        except RuntimeError as exc:
            print(f"bench-scale: {exc}", file=sys.stderr)
            return 1
    print(format_table(results))
    for r in results:
        for note in r.notes:
            print(f"note ({r.heaters} heaters): {note}")
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    return 0
