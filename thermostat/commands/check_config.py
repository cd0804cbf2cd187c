"""`thermostat check-config FILE`: validate a house configuration (and its schedules) without running it."""

from __future__ import annotations

import argparse
import sys

from thermostat.config import ConfigError, config_warnings, load_config, state_path_errors


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check-config",
        help="validate a configuration file and the schedules it names",
        description="Validate a configuration file. Prints every problem as file:line:col: field: message.",
    )
    p.add_argument("file", help="configuration file (YAML)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        n = len(exc.errors)
        print(f"{args.file}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback for a user's file
        print(f"{args.file}: cannot check: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    errors = state_path_errors(config)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{args.file}: {len(errors)} error{'s' if len(errors) != 1 else ''}", file=sys.stderr)
        return 1
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    rooms = ", ".join(
        f"{rid} ({len(room.heaters)} heater{'s' if len(room.heaters) != 1 else ''}, "
        + (f"schedule {room.schedule.name}" if room.schedule else f"fixed {room.target:g} °C")
        + ")"
        for rid, room in config.rooms.items()
    )
    print(f"{args.file}: OK")
    print(
        f"{len(config.rooms)} room{'s' if len(config.rooms) != 1 else ''}, "
        f"{len(config.heaters)} heater{'s' if len(config.heaters) != 1 else ''}: {rooms}"
    )
    return 0
