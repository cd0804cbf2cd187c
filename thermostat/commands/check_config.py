"""`thermostat check-config FILE`: validate a house configuration (and its schedules) without running it."""

from __future__ import annotations

import argparse
import sys

from thermostat.commands._argtypes import config_argument, config_path
from thermostat.config import ConfigError, config_warnings, load_config, state_path_errors
from thermostat.domain.words import counted


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check-config",
        help="validate a configuration file and the schedules it names",
        description="Validate a configuration file. Prints every problem as file:line:col: field: message.",
    )
    config_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.file = str(config_path(args))
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(f"{args.file}: {counted(len(exc.errors), 'error')}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback for a user's file
        print(f"{args.file}: cannot check: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    errors = state_path_errors(config)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{args.file}: {counted(len(errors), 'error')}", file=sys.stderr)
        return 1
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    rooms = ", ".join(
        f"{rid} ({counted(len(room.heaters), 'heater')}, "
        + (f"schedule {room.schedule.name}" if room.schedule else f"fixed {room.target:g} °C")
        + ")"
        for rid, room in config.rooms.items()
    )
    print(f"{args.file}: OK")
    print(f"{counted(len(config.rooms), 'room')}, {counted(len(config.heaters), 'heater')}: {rooms}")
    mpc_rooms = [rid for rid, room in config.rooms.items() if room.control.mode == "mpc"]
    if mpc_rooms:
        print(f"mpc ({', '.join(mpc_rooms)}): learns each room from its own history in {config.state.path}; "
              "runs pid until the room model is confident (about 2-3 days of heating) and says so in the reason")
        print("  outdoor: " + (f"sensor {config.outdoor.topic or '-'}, forecast {config.outdoor.forecast_topic or '-'}"
                               if config.outdoor is not None else "none (model fits an equivalent outdoor; "
                               "the planner assumes persistence)"))
        tariff = config.tariff
        print("  prices: " + ("none (every hour costs the same)" if tariff is None else
                              f"time of use ({tariff.timezone})" if tariff.week is not None else
                              f"flat {tariff.price_per_kwh:g} {tariff.currency}/kWh")
              + (f", dynamic from {tariff.price_topic}" if tariff is not None and tariff.price_topic else ""))
    return 0
