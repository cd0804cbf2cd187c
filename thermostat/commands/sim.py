"""`thermostat sim ...`: run simulated Avalon miners on TCP, for trying the engine without hardware.

``thermostat sim miner --model mini3 [--port 4028]`` runs one in the foreground until Ctrl-C and prints
a line per command received; ``thermostat sim fleet --models mini3,mini3,q`` runs several on
consecutive ports. They listen on 127.0.0.1 unless --host says otherwise: the cgminer API has no
authentication, so a non-loopback address is served only with a warning.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from thermostat.commands._argtypes import finite, non_negative, positive, tcp_port
from thermostat.miners.models import MODELS
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import SimFleet, is_loopback, scaled_time

DEFAULT_PORT = 4028


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="run simulated Avalon miners (cgminer API on TCP)")
    actions = parser.add_subparsers(dest="sim_action", metavar="ACTION", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    common.add_argument("--port", type=tcp_port, default=DEFAULT_PORT, help="port (fleet: the first one; default 4028)")
    common.add_argument("--speed", type=positive, default=1.0, help="the miners' clock runs X times faster")
    common.add_argument("--boot-seconds", type=non_negative, default=90.0,
                        help="time In Init after a wake (default 90)")
    common.add_argument(
        "--calibration-seconds",
        type=non_negative,
        default=60.0,
        help="time with ADJ[0] after Init, mode changes refused (default 60)",
    )
    common.add_argument("--start", choices=("standby", "mining"), default="standby", help="initial state")
    common.add_argument("--skew", type=finite, default=0.0, help="miner clock skew in seconds (When = now + skew)")
    common.add_argument("--quiet", action="store_true", help="do not print a line per command")

    one = actions.add_parser("miner", parents=[common], help="one simulated miner in the foreground")
    one.add_argument("--model", choices=sorted(MODELS), required=True)
    one.set_defaults(func=_cmd_miner)

    fleet = actions.add_parser("fleet", parents=[common], help="several simulated miners on consecutive ports")
    fleet.add_argument("--models", required=True, help="comma-separated model keys, e.g. mini3,mini3,q")
    fleet.set_defaults(func=_cmd_fleet)


def _cmd_miner(args: argparse.Namespace) -> int:
    return _serve(args, [args.model])


def _cmd_fleet(args: argparse.Namespace) -> int:
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if not keys or unknown:
        print(
            f"thermostat sim: unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(sorted(MODELS))}",
            file=sys.stderr,
        )
        return 2
    return _serve(args, keys)


def _serve(args: argparse.Namespace, keys: Sequence[str]) -> int:
    if args.speed <= 0:
        print("thermostat sim: --speed must be positive", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            f"WARNING: serving on {args.host}: the cgminer API is unauthenticated; anyone who can reach "
            "this address can control these simulated miners",
            file=sys.stderr,
        )
    time_fn = scaled_time(args.speed)

    def on_request(miner: SimMiner, request: str, reply: bytes | None) -> None:
        if args.quiet:
            return
        status = "(no reply)" if reply is None else reply[:60].split(b",")[0].decode("ascii", "replace")
        stamp = time.strftime("%H:%M:%S")
        print(
            f"{stamp} {miner.spec.key}:{ports.get(id(miner), '?')} {request.strip()!r} -> {status} "
            f"[{miner.state}, {miner.level_name}, {miner.wall_w:.0f} W]",
            flush=True,
        )

    ports: dict[int, int] = {}
    fleet = SimFleet.from_models(
        keys,
        time_fn=time_fn,
        host=args.host,
        base_port=args.port,
        on_request=on_request,
        boot_seconds=args.boot_seconds,
        calibration_seconds=args.calibration_seconds,
        start_state=args.start,
        clock_skew_s=args.skew,
    )

    async def main() -> None:
        await fleet.start()
        for miner, port in zip(fleet.miners, fleet.ports, strict=True):
            ports[id(miner)] = port
            print(
                f"{miner.spec.display} ({miner.spec.key}) on {args.host}:{port}, {miner.state}, DNA {miner.dna}",
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # explicit handlers: a shell starts background jobs with SIGINT ignored
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await fleet.stop()
        print("stopped", flush=True)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except OSError as exc:
        print(f"thermostat sim: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
