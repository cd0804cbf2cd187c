"""`thermostat bench`: scenarios × controllers in virtual time, through the same core as the service.

    thermostat bench [--scenario NAME|FILE ...] [--controller pid|hysteresis|bang-bang|tpi ...]
                     [--oracle] [--json FILE] [--plot FILE.png] [--workers N]

Defaults: the standard set of shipped scenarios and all four controllers. Runs go to `--workers` processes
(default 2) when there is more than one; a progress line is printed to stderr as each finishes. Then a table
(one row per run, a TOTAL row per controller) and the goals section (pid vs bang-bang, energy floor, wall time
per simulated week: measured value, met / missed by how much), then the goals of issue 14 for the default
controller of a new config (against the oracle, bang-bang and the floor; per scenario outside the standard set).

--oracle adds an `oracle` row per scenario: the clairvoyant optimum of a linear program on the scenario's room
model with the heaters' capacity as continuous power (thermostat.sim.oracle, scipy HiGHS), scored by simulating
its power through the same room and KPI code. The table's `×bb` and `×orc` columns give each row's discomfort
as a multiple of bang-bang's and of the oracle's on the same scenario(s).

--json FILE writes a list of objects with the keys scenario, controller, discomfort_kh, energy_kwh,
energy_floor_kwh, wakes, level_changes, max_overshoot_k, rms_error_k, sim_hours, wall_s.
--plot FILE.png: one PNG per scenario, one panel per controller (air, comfort band, setpoint, outdoor, heater
levels). With one scenario the file is FILE.png itself; with several, FILE_<scenario>.png next to it.
Exit status 0 when every run completed (goals are reported, not enforced), 2 for a bad argument or scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from thermostat.sim.bench import (
    CONTROLLERS,
    ORACLE,
    STANDARD_SET,
    BenchResult,
    format_goals,
    format_table,
    run_many,
)
from thermostat.sim.scenario import ScenarioError, load_scenario, shipped_scenarios


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run scenarios × controllers in virtual time and compare KPIs",
        description="Run every scenario × controller in virtual time through the same core as the service, "
        "print a KPI table and the goals. Plot: one PNG per scenario (FILE_<scenario>.png when several).",
    )
    parser.add_argument("--scenario", action="append", metavar="NAME|FILE",
                        help=f"shipped name or YAML path (repeatable; default the standard set: "
                             f"{', '.join(STANDARD_SET)})")
    parser.add_argument("--controller", action="append", choices=CONTROLLERS,
                        help="controller (repeatable; default all)")
    parser.add_argument("--oracle", action="store_true",
                        help="add the clairvoyant LP bound as an 'oracle' row per scenario")
    parser.add_argument("--json", metavar="FILE", help="write the results as a JSON list")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write plots: FILE.png for one scenario, FILE_<scenario>.png for several")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    sources: list[str] = args.scenario or list(STANDARD_SET)
    controllers: list[str] = list(dict.fromkeys(args.controller or CONTROLLERS))
    if args.oracle:
        controllers.append(ORACLE)
    if args.workers < 1:
        print("thermostat bench: --workers must be >= 1", file=sys.stderr)
        return 2
    names: dict[str, str] = {}
    for source in sources:
        try:
            names[source] = load_scenario(source).name
        except ScenarioError as exc:
            print(f"thermostat bench: {exc}", file=sys.stderr)
            if not Path(source).suffix:
                print(f"shipped scenarios: {', '.join(shipped_scenarios())}", file=sys.stderr)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("thermostat bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2

    total = len(sources) * len(controllers)
    print(f"bench: {len(sources)} scenario(s) × {len(controllers)} controller(s) = {total} run(s), "
          f"{min(args.workers, total)} worker(s)", file=sys.stderr, flush=True)
    wall0 = time.perf_counter()

    def progress(done: int, n: int, r: BenchResult) -> None:
        if not args.quiet:
            print(f"[{done:>{len(str(n))}}/{n}] {r.scenario} × {r.controller}: {r.sim_hours:.0f} h simulated "
                  f"in {r.wall_s:.1f} s", file=sys.stderr, flush=True)

    results = run_many(sources, controllers, keep_trace=bool(args.plot), workers=args.workers, progress=progress)
    print(f"bench: done in {time.perf_counter() - wall0:.1f} s", file=sys.stderr, flush=True)

    print(format_table(results))
    print()
    print(format_goals(results))

    if args.json:
        Path(args.json).write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON: {args.json}")
    if args.plot:
        from thermostat.sim.plot import plot_results

        for path in plot_results(results, args.plot):
            print(f"plot: {path}")
    return 0
