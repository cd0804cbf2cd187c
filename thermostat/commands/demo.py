"""`thermostat demo [--hours H] [--speed X]`: the real service heating a simulated house, X times faster.

What runs, all on 127.0.0.1 and on one `ScaledClock` (so the whole house runs X times faster):

* an MQTT broker: mosquitto when installed (a private instance on a free port), otherwise amqtt embedded
  in its own thread (`pip install 'thermostat[demo]'`); neither: one line saying how to get one, exit 2;
* simulated miners (a Mini 3 and an Avalon Q by default) answering the cgminer API on loopback TCP;
* a simulated 40 m² living room (`thermostat.sim.house`) heated by the miners' wall watts, whose sensor
  publishes over MQTT, with an outdoor sensor and a weather forecast (the house's own outdoor profile);
* the real `Service` with a demo configuration written to a temporary directory and the packaged default
  schedule (`thermostat/data/schedules/default.yaml`).

The room is mpc's (the default controller). Before the service starts, a learning run gives the room a history to
learn from: `--learn-hours` (72) of pid on the same room, heaters, weather and schedule, run through the bench in
virtual time (a few seconds) and written into the demo's state database as the service records it (a reading and
the heaters' watts a minute, the outdoor temperature every 10 minutes). The service's own fit at start finds the
room model there, and mpc plans from then on. The room continues where the learning run left it; the miners start
in standby.

The run starts on a Monday at 05:30 local time (schedule time zone), so it shows the morning warm-up into the
06:00 comfort block. It prints a progress line every few real seconds, then a summary (with the learning run,
the fitted model beside the simulated room's true figures, and from when mpc planned), and writes a PNG plot with
the plans as the room state published them. Stopping (end of the run or Ctrl-C) stops the service, whose exit
action sends every miner to standby; the summary shows where every heater ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from thermostat.commands._argtypes import finite, positive
from thermostat.miners.models import MODELS
from thermostat.sim.demo import (
    INSTALL_HINT,
    LEARN_HOURS,
    MAX_LEARN_HOURS,
    format_summary,
    pick_broker,
    run_demo,
    summarize,
    write_plot,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the real service against simulated miners and a simulated room, faster than real time",
        description="Run the real service against simulated miners and a simulated room (all on 127.0.0.1), "
        "with a clock running X times faster than real time; print progress and a summary, write a plot.",
    )
    parser.add_argument("--hours", type=positive, default=3.0, help="simulated hours to run (default 3)")
    parser.add_argument("--speed", type=positive, default=180.0, help="simulated seconds per real second (default 180)")
    parser.add_argument("--plot", type=Path, default=Path("thermostat-demo.png"),
                        help="PNG plot of the run (default thermostat-demo.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write a plot")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto",
                        help="MQTT broker: mosquitto if installed, else the embedded amqtt (default auto)")
    parser.add_argument("--heaters", default="mini3,q",
                        help="comma-separated models of the simulated miners (default mini3,q)")
    parser.add_argument("--room", choices=("small", "medium", "large"), default="large",
                        help="simulated room size (default large: 40 m²)")
    parser.add_argument("--learn-hours", type=finite, default=LEARN_HOURS, metavar="H",
                        help=f"hours of pid on the room written as history before the start, for mpc to learn the "
                        f"room from (default {LEARN_HOURS:g}; 0: none, mpc then runs its pid fallback)")
    parser.add_argument("--start-temp", type=finite, default=None,
                        help="room temperature at the start (°C; only with --learn-hours 0, default 17: after a "
                        "learning run the room starts where it left off)")
    parser.add_argument("--outdoor", type=finite, default=2.0, help="mean outdoor temperature (°C)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.speed <= 0 or args.hours <= 0:
        print("thermostat demo: --hours and --speed must be positive", file=sys.stderr)
        return 2
    if not 0 <= args.learn_hours <= MAX_LEARN_HOURS:
        print(f"thermostat demo: --learn-hours must be within 0..{MAX_LEARN_HOURS:g}", file=sys.stderr)
        return 2
    if args.start_temp is not None and args.learn_hours > 0:
        print("thermostat demo: --start-temp needs --learn-hours 0 (after a learning run the room starts where "
              "that run left it)", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.heaters.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        print(f"thermostat demo: --heaters takes models from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="thermostat-demo-") as tmp:
        workdir = Path(tmp)
        broker = pick_broker(args.broker, workdir)
        if broker is None:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
        try:
            broker.start()
        except RuntimeError as exc:
            print(f"thermostat demo: {exc}", file=sys.stderr)
            return 1
        try:
            if not args.quiet:
                print(f"thermostat demo: {args.hours:g} simulated h at ×{args.speed:g} "
                      f"(about {args.hours * 3600 / args.speed:.0f} s), broker {broker.name} on "
                      f"127.0.0.1:{broker.port}, heaters {args.heaters}, {args.room} room", flush=True)
            result, schedule = asyncio.run(run_demo(args, broker.host, broker.port, workdir))
        finally:
            broker.stop()
    summary = summarize(result, schedule, speed=args.speed)
    if not args.no_plot and result.samples:
        drawn = write_plot(args.plot, result, schedule)
        summary["plot"] = str(args.plot)
        summary["plot_plans"] = list(drawn.plans)
    for line in format_summary(summary):
        print(line)
    if "plot" in summary:
        shown = f" (mpc plans drawn: made at {', '.join(summary['plot_plans'])})" if summary["plot_plans"] else \
            " (no mpc plan to draw)"
        print(f"  plot: {args.plot}{shown}")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    if result.service_crashed or not summary["all_heaters_standby"]:
        return 1
    return 130 if result.interrupted else 0
