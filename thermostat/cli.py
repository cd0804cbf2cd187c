"""The `thermostat` command. Each sub-command lives in its own module under thermostat/commands/ and exposes
`register(subparsers)`, which adds its parser.

Only the module of the sub-command that runs is imported: `COMMANDS` below names every sub-command with the
one-line help shown by `thermostat --help`, so listing them costs nothing, while a module's own imports (the
service, pydantic models, the bench simulator, matplotlib) are paid only when that command runs. Adding a
command is its module plus one row here; tests/test_cli.py checks that the rows and the modules agree.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from thermostat import __version__

# name -> (module under thermostat/commands/, help line); in the order `--help` lists them. A module may
# register more than one sub-command (steer: override and away).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the heating service (SIGHUP reloads the config)"),
    "status": ("status", "what the running service is doing, and why (rooms and heaters)"),
    "check-config": ("check_config", "validate a configuration file and the schedules it names"),
    "schedule": ("schedule", "show a day or a week of a schedule, or check a schedule file"),
    "override": ("steer", "hold a room at a temperature for a while (or cancel that)"),
    "away": ("steer", "the whole house away (holiday) until a date, with a return pre-heat; or cancel"),
    "history": ("history", "what each room and heater did: readings, targets, levels, watts (from the state file)"),
    "energy": ("history", "kWh, cost, wakes and hours on per room and heater, by day, week or month"),
    "miner": ("miner", "talk to an Avalon miner over its cgminer API (port 4028)"),
    "demo": ("demo", "run the real service against simulated miners and a simulated room, faster than real time"),
    "sim": ("sim", "run simulated Avalon miners (cgminer API on TCP)"),
    "bench": ("bench", "run scenarios × controllers in virtual time and compare KPIs"),
    "bench-latency": ("bench_latency",
                      "measure sensor message in -> miner command out (p50/p99) through a real broker"),
    "bench-scale": ("bench_scale", "one real service driving N simulated heaters: CPU, RSS, poll gaps, fan-out"),
    "soak": ("soak", "soak test: the real service for days of accelerated time under injected faults"),
}


def _invoked(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line: the first word that is not an option (the top-level
    options, -v and --version, take no value)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser for the sub-command `argv` names; every other sub-command is a bare entry that only
    carries its help line. With `argv=None` every sub-command's module is loaded (for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="thermostat",
        description="Heat rooms with Canaan Avalon home miners, held to a weekly schedule.",
    )
    parser.add_argument("--version", action="version", version=f"thermostat {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None:
        wanted = {module for module, _ in COMMANDS.values()}
    else:
        invoked = _invoked(argv)
        wanted = {COMMANDS[invoked][0]} if invoked is not None else set()
    registered: set[str] = set()
    for name, (module_name, help_line) in COMMANDS.items():
        if module_name not in wanted:
            sub.add_parser(name, help=help_line, add_help=False)
        elif module_name not in registered:  # adds every sub-command of that module
            importlib.import_module(f"thermostat.commands.{module_name}").register(sub)
            registered.add(module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    return code


def _reader_went_away() -> int:
    """`thermostat ... | head`: the reader closed the pipe. Not an error worth a traceback; point stdout at
    /dev/null so that the interpreter's final flush does not fail again, and exit as a SIGPIPE death would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


if __name__ == "__main__":
    sys.exit(main())
