"""The `thermostat` command itself: sub-commands load lazily, the table in cli.py agrees with the modules, and
a reader that goes away (`| head`) or a bad number ends in one line, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from replay_server import ThreadedReplayServer
from test_miner_cli import mini3_replies

from thermostat.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = ROOT / "schedules" / "default.yaml"
EXAMPLE = ROOT / "deploy" / "house.example.yaml"

# Modules a short command must not pay for: the validation library, the event loop, plotting, numerics, the
# HTTP and MQTT clients, the scheduler, the simulators, the service. (`thermostat --help` needs none of them.)
HEAVY = ("pydantic", "asyncio", "matplotlib", "numpy", "scipy", "ruamel", "aiomqtt", "aiohttp", "apscheduler",
         "thermostat.config", "thermostat.service", "thermostat.sim", "thermostat.core", "thermostat.miners",
         "thermostat.adapters")


def loaded_modules(*argv: str) -> set[str]:
    """The modules `thermostat ARGV` has imported when it exits (real process, real entry point)."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: sys.__stderr__.write('MODULES' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
        "from thermostat.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES"))
    return set(json.loads(line.removeprefix("MODULES")))


def heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    def top(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    return sorted(m for m in modules if any(top(m, h) for h in HEAVY) and not any(top(m, a) for a in allowed))


def test_help_imports_no_command_module_and_nothing_heavy() -> None:
    modules = loaded_modules("--help")
    assert "thermostat.cli" in modules
    assert not [m for m in modules if m.startswith("thermostat.commands.") and m != "thermostat.commands._argtypes"]
    assert heavy(modules) == []


def test_a_command_loads_only_its_own_module() -> None:
    modules = loaded_modules("miner", "status", "127.0.0.1", "--port", "1", "--timeout", "0.5")
    commands = {m for m in modules if m.startswith("thermostat.commands.")}
    assert commands == {"thermostat.commands.miner", "thermostat.commands._argtypes"}
    assert heavy(modules, allowed=("asyncio", "thermostat.miners", "thermostat.core")) == [], "miner status"
    assert not any(m.startswith(("thermostat.core", "thermostat.sim", "thermostat.service")) for m in modules)


@pytest.mark.parametrize("action", ["show", "check"])
def test_schedule_reads_the_file_without_the_house_configuration(action: str) -> None:
    """`schedule show` and `schedule check` validate with the schedule's models only: the house configuration's
    models (thermostat.config) and the miner tables are never built, nor anything heavier."""
    modules = loaded_modules("schedule", action, str(SCHEDULE), *(["--date", "2026-03-29"] if action == "show" else []))
    assert heavy(modules, allowed=("pydantic", "ruamel", "thermostat.core")) == []
    assert "thermostat.schedule_file" in modules


def test_check_config_does_not_load_the_simulators_plotting_or_the_service() -> None:
    modules = loaded_modules("check-config", str(EXAMPLE))
    assert heavy(modules, allowed=("pydantic", "ruamel", "thermostat.config", "thermostat.core", "thermostat.miners"))\
        == []


@pytest.mark.parametrize("module", sorted({module for module, _ in COMMANDS.values()}))
def test_the_table_in_cli_matches_each_command_module(module: str) -> None:
    """A module registers exactly the sub-commands the table gives it, with the table's help lines."""
    parser = argparse.ArgumentParser(prog="thermostat")
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"thermostat.commands.{module}").register(sub)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(action.choices) == sorted(name for name, (m, _) in COMMANDS.items() if m == module)
    helps = {a.dest: a.help for a in action._choices_actions}
    for name in action.choices:
        assert helps[name] == COMMANDS[name][1], f"help of {name!r} differs between cli.COMMANDS and {module}.py"


def test_every_command_module_is_in_the_table() -> None:
    modules = {p.stem for p in (ROOT / "thermostat" / "commands").glob("*.py") if not p.stem.startswith("_")}
    assert modules == {module for module, _ in COMMANDS.values()}


def test_the_full_parser_has_every_command() -> None:
    parser = build_parser()  # argv=None: every module loaded
    args = parser.parse_args(["schedule", "show", "x.yaml"])
    assert args.command == "schedule" and callable(args.func)


# --------------------------------------------------------------------------- a reader that goes away


def run_into_closed_pipe(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run `thermostat ARGV` with stdout a pipe whose reading end is already closed, as after `| head` exits."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "thermostat", *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60, cwd=ROOT)
    finally:
        os.close(write_end)


@pytest.fixture
def mini3() -> Iterator[ThreadedReplayServer]:
    with ThreadedReplayServer(mini3_replies()) as server:
        yield server


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["schedule", "show", str(SCHEDULE), "--date", "2026-10-25"], 141),
        (["check-config", str(EXAMPLE)], 141),
        # argparse itself ignores a failed write of help and version text and exits 0
        (["--help"], 0),
        (["bench", "--help"], 0),
        (["--version"], 0),
    ],
    ids=["schedule-show", "check-config", "help", "bench-help", "version"],
)
def test_closed_pipe_is_not_a_traceback(argv: list[str], code: int) -> None:
    result = run_into_closed_pipe(*argv)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("warning:")] == []
    assert result.returncode == code


def test_closed_pipe_on_miner_status(mini3: ThreadedReplayServer) -> None:
    result = run_into_closed_pipe("miner", "status", "127.0.0.1", "--port", str(mini3.port))
    assert (result.returncode, result.stderr) == (141, "")


# --------------------------------------------------------------------------- numbers on the command line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["miner", "status", "127.0.0.1", "--port", "99999"], "port must be 1-65535, got '99999'"),
        (["miner", "status", "127.0.0.1", "--port", "-1"], "port must be 1-65535, got '-1'"),
        (["miner", "status", "127.0.0.1", "--port", "x"], "expected a port number"),
        (["miner", "status", "127.0.0.1", "--timeout", "nan"], "expected a finite number, got 'nan'"),
        (["miner", "status", "127.0.0.1", "--timeout", "inf"], "expected a finite number, got 'inf'"),
        (["miner", "status", "127.0.0.1", "--timeout", "0"], "must be above 0"),
        (["miner", "scan", "127.0.0.0/30", "--timeout", "-1"], "must be above 0"),
        (["sim", "miner", "--model", "mini3", "--port", "70000"], "port must be 1-65535"),
        (["sim", "miner", "--model", "mini3", "--speed", "nan"], "expected a finite number"),
        (["demo", "--hours", "nan"], "expected a finite number"),
        (["demo", "--speed", "0"], "must be above 0"),
        (["bench-latency", "--interval", "nan"], "expected a finite number"),
    ],
)
def test_bad_numbers_are_a_usage_error(argv: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "thermostat", *argv], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr.splitlines()[-1], result.stderr
