"""`thermostat soak [--days D] [--faults N] [--seed S] [--speed X] [--json F]`: days of accelerated heating
with operational faults injected at random, checked by an independent observer (thermostat/sim/soak.py).

Runs the real `thermostat run` process, a private mosquitto, one process per simulated miner and the
simulated rooms, all on 127.0.0.1 on one scaled clock. Prints a table (faults by kind, violations, recovery
percentiles, miner commands per fault) and exits 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from thermostat.sim.soak import FAULT_KINDS, SoakOptions, format_table, run_soak, summarize
from thermostat.sim.soak_timings import format_response_table, response_times


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "soak",
        help="soak test: the real service for days of accelerated time under injected faults",
        description="Run the real service (its own process) against a private mosquitto, simulated miners "
        "(one process each) and simulated rooms, on a clock X times faster than real time, while "
        f"injecting faults at random ({', '.join(FAULT_KINDS)}). An independent observer checks the "
        "safety invariants; exit status 1 when any was violated.",
    )
    parser.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    parser.add_argument("--faults", type=int, default=30, help="faults to inject (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--speed", type=float, default=360.0, help="simulated seconds per real second (default 360)")
    parser.add_argument("--recovery-bound", type=float, default=60.0, metavar="MIN",
                        help="simulated minutes a room may take to get back in band after a fault (default 60)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the run's files (config, state, service log) here (default: a temporary folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only the table")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.days <= 0 or args.speed <= 0 or args.faults < 0 or args.recovery_bound <= 0:
        print("thermostat soak: --days, --speed and --recovery-bound must be positive, --faults ≥ 0", file=sys.stderr)
        return 2

    def terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # the soak stops its service, miners and broker on the way out

    signal.signal(signal.SIGTERM, terminate)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    def run(workdir: Path) -> dict[str, Any]:
        options = SoakOptions(days=args.days, faults=args.faults, seed=args.seed, speed=args.speed,
                              recovery_bound_s=args.recovery_bound * 60.0, workdir=workdir, progress=progress)
        progress(f"thermostat soak: {args.days:g} simulated days, {args.faults} faults, seed {args.seed}, "
                 f"×{args.speed:g} (about {args.days * 86400 / args.speed / 60:.0f} min), files in {workdir}")
        summary = summarize(asyncio.run(run_soak(options)))
        log = workdir / "service.log"
        log_text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        summary["responses_s"] = response_times(summary["fault_list"], log_text)
        return summary

    try:
        if args.workdir is not None:
            summary = run(args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="thermostat-soak-") as tmp:
                summary = run(Path(tmp))
    except RuntimeError as exc:
        print(f"thermostat soak: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    for line in format_table(summary):
        print(line)
    print("how fast the service answered (its own log, stamped with simulated time by the harness):")
    for line in format_response_table(summary["responses_s"], args.speed):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return 1 if summary["violations"] else 0
