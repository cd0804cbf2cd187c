"""One simulated miner in its own process, for the soak (`python -m thermostat.sim.soak_miner ...`).

Its own process so that the soak can freeze it (SIGSTOP: the API hangs, the hash board keeps drawing what
it drew) or kill it (SIGKILL: the miner loses power) like a real unit. It serves the cgminer API on
127.0.0.1:PORT on the shared scaled clock (`SharedScaledClock`), and talks to the soak over pipes:

* stdin, one line per update: ``inlet <°C>`` — the room air the miner breathes in;
* stdout, JSON lines: ``{"k": "ready"}`` once listening; ``{"k": "s", ...}`` its true state every
  `--report-every` real seconds (t: simulated epoch, w: wall watts, h: hashing, st: state text, lv: level,
  wk: wakes by soft on since this process started); ``{"k": "r", "t": .., "q": ..}`` every request that is
  not a plain read (ascset, pool commands, anything unknown), so an observer sees every command sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from thermostat.clock import SharedScaledClock
from thermostat.miners.models import MODELS
from thermostat.sim.factory import make_sim_miner
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import serve_miner

READ_ONLY = frozenset({"version", "summary", "stats", "estats", "litestats", "pools", "devs", "edevs", "config",
                       "devdetails", "lcd"})


def request_command(text: str) -> str:
    """The command word of a cgminer request (JSON or text form), lower-case; '' when unreadable."""
    text = text.strip().strip("\x00").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return ""
        return str(obj.get("command", "")).strip().lower() if isinstance(obj, dict) else ""
    return text.partition("|")[0].strip().lower()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _state(miner: SimMiner, clock: SharedScaledClock) -> dict[str, Any]:
    miner.update()
    return {"k": "s", "t": round(clock.epoch(), 2), "w": round(miner.wall_w, 1), "h": miner.hashing,
            "st": miner.state, "lv": miner.level_name, "wk": miner.wakes}


async def _read_inlet(miner: SimMiner) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        parts = line.decode("ascii", errors="replace").split()
        if len(parts) == 2 and parts[0] == "inlet":
            with contextlib.suppress(ValueError):
                miner.set_inlet_temp(float(parts[1]))


async def _main(args: argparse.Namespace) -> None:
    clock = SharedScaledClock(args.clock_speed, args.clock_origin, args.clock_start)
    miner = make_sim_miner(MODELS[args.model], time_fn=clock.epoch, start_state=args.start_state,
                           start_level=args.start_level, seed=args.seed, initial_uptime_s=args.initial_uptime,
                           boot_seconds=args.boot_seconds, calibration_seconds=60.0, inlet_temp_c=args.inlet)

    def on_request(_miner: Any, text: str, _reply: bytes | None) -> None:
        if request_command(text) not in READ_ONLY:
            _emit({"k": "r", "t": round(clock.epoch(), 2), "q": text.strip().strip("\x00")[:200]})

    await serve_miner(miner, "127.0.0.1", args.port, on_request=on_request)
    _emit({"k": "ready"})
    inlet = asyncio.create_task(_read_inlet(miner))
    while not inlet.done():
        _emit(_state(miner, clock))
        await asyncio.sleep(args.report_every)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thermostat.sim.soak_miner")
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-state", choices=("standby", "mining"), default="standby")
    parser.add_argument("--start-level", default=None)
    parser.add_argument("--initial-uptime", type=float, default=3600.0)
    parser.add_argument("--boot-seconds", type=float, default=90.0)
    parser.add_argument("--inlet", type=float, default=20.0)
    parser.add_argument("--clock-speed", type=float, required=True)
    parser.add_argument("--clock-origin", type=float, required=True)
    parser.add_argument("--clock-start", type=float, required=True)
    parser.add_argument("--report-every", type=float, default=0.05, help="real seconds between state lines")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(_main(args))  # ends when stdin closes (the soak went away)
    return 0


if __name__ == "__main__":
    sys.exit(main())
