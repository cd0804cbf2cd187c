"""How long `thermostat` takes to start and finish short commands (the CLI start goal: 0.3 s).

    python scripts/cli_start_time.py [--runs N] [--python PATH]

Runs each command N times (default 15) in a fresh process with the given interpreter (default: this one),
after two warm-up runs that leave the bytecode cache warm, and prints the median and the spread (minimum and
maximum) of the wall time and of the CPU time (user + system, which a busy machine inflates less than the wall
time). A bare `python -c pass` is the floor. `miner status` is pointed at a closed local port, so its time is
the start plus one refused connection. Run it from a clone; the configuration and schedule are the shipped
examples.

The commands run without PYTHONDONTWRITEBYTECODE, so that the warm-up runs can write the bytecode cache of an
editable install, as an installed wheel has it from the start (with the variable set and no cache, every start
also compiles thermostat's own modules from source: about 40 ms more CPU for `check-config`).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands(python: str) -> list[tuple[str, list[str]]]:
    cli = [python, "-m", "thermostat"]
    return [
        ("python -c pass", [python, "-c", "pass"]),
        ("--help", [*cli, "--help"]),
        ("check-config", [*cli, "check-config", str(ROOT / "deploy" / "house.example.yaml")]),
        ("miner status", [*cli, "miner", "status", "127.0.0.1", "--port", "1", "--timeout", "1"]),
        ("schedule show", [*cli, "schedule", "show", str(ROOT / "schedules" / "default.yaml")]),
    ]


def measure(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(runs + 2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd="/", env=env)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i >= 2:  # the first two runs warm the bytecode and file caches
            wall.append(elapsed)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--python", default=sys.executable, help="interpreter with thermostat installed")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    print(f"{'command':<16} {'wall median [min-max]':>24} {'cpu median [min-max]':>24}   ({args.runs} runs)")
    for name, argv in commands(args.python):
        wall, cpu = measure(argv, args.runs, env)
        print(f"{name:<16} {_spread(wall):>24} {_spread(cpu):>24}")
    return 0


def _spread(seconds: list[float]) -> str:
    return (f"{statistics.median(seconds) * 1000:.0f} ms [{min(seconds) * 1000:.0f}-{max(seconds) * 1000:.0f}]")


if __name__ == "__main__":
    sys.exit(main())
