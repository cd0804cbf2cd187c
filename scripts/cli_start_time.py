"""How long `thermostat` takes to start and finish short commands (the CLI start goal: 0.3 s).

    python scripts/cli_start_time.py [--runs N] [--python PATH]

Runs each command N times (default 15) in a fresh process with the given interpreter (default: this one),
after two warm-up runs that leave the bytecode cache warm, and prints the median and the minimum of the wall
time and of the CPU time (user + system, which a busy machine inflates less than the wall time). A bare
`python -c pass` is the floor. `miner status` is pointed at a closed local port, so its time is the start
plus one refused connection. Run it from a clone; the configuration and schedule are the shipped examples.
"""

from __future__ import annotations

import argparse
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


def measure(argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(runs + 2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd="/")
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
    print(f"{'command':<16} {'wall median':>12} {'wall min':>9} {'cpu median':>11} {'cpu min':>8}   ({args.runs} runs)")
    for name, argv in commands(args.python):
        wall, cpu = measure(argv, args.runs)
        print(f"{name:<16} {statistics.median(wall) * 1000:>9.0f} ms {min(wall) * 1000:>6.0f} ms "
              f"{statistics.median(cpu) * 1000:>8.0f} ms {min(cpu) * 1000:>5.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
