"""`thermostat bench-latency`: sensor message in → miner command out, end to end.

A private mosquitto (or the embedded broker), one simulated Mini 3 behind a loopback TCP socket, and the real
service. Readings alternate between clearly cold and clearly warm, so each one changes the level the room
wants; the time from publishing a reading to the simulated miner receiving the resulting `ascset` is one
sample. The service and the miner run on a clock 1000× faster than real time so that the miner's dwell
between level changes passes between readings; the measured path itself (MQTT delivery, filter, control
tick, allocator, heater task, TCP) is event-driven and never sleeps, so what is measured is real latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from thermostat.clock import ScaledClock
from thermostat.commands._argtypes import positive
from thermostat.config import load_config
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.demo import INSTALL_HINT, pick_broker
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

COLD_C, WARM_C, TARGET_C = 19.5, 22.5, 21.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench-latency", help="measure sensor message in -> miner command out (p50/p99) through a real broker"
    )
    parser.add_argument("--readings", type=int, default=1000, help="readings to publish (default 1000)")
    parser.add_argument("--interval", type=positive, default=0.15, help="real seconds between readings (default 0.15)")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto")
    parser.add_argument("--json", type=Path, help="write the result as JSON")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.readings < 10 or args.interval <= 0:
        print("bench-latency: --readings must be at least 10 and --interval positive", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="thermostat-latency-") as tmp:
        broker = pick_broker(args.broker, Path(tmp))
        if broker is None:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
        broker.start()
        try:
            result = asyncio.run(measure(broker.port, Path(tmp), args.readings, args.interval))
        finally:
            broker.stop()
    result["broker"] = broker.name
    print(format_result(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["samples"] else 1


def format_result(r: dict[str, Any]) -> str:
    if not r["samples"]:
        return f"no reading produced a miner command ({r['readings']} readings)"
    return (
        f"sensor message in -> miner command out, {r['samples']} samples of {r['readings']} readings "
        f"({r['broker']}, loopback):\n"
        f"  p50 {r['p50_ms']:.2f} ms   p90 {r['p90_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms   max {r['max_ms']:.2f} ms"
    )


async def measure(broker_port: int, tmp: Path, readings: int, interval: float) -> dict[str, Any]:


    clock = ScaledClock(1000.0)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=30, calibration_seconds=30,
                     start_state="mining", start_level="mining")
    arrivals: list[float] = []

    def on_request(_miner: SimMiner, text: str, _reply: bytes | None) -> None:
        if "ascset" in text and ("workmode" in text or "softo" in text):
            arrivals.append(time.perf_counter())

    server = await serve_miner(miner, "127.0.0.1", 0, on_request=on_request)
    config_path = tmp / "house.yaml"
    config_path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: latency, client_id: latency-bench}}
rooms:
  bench:
    sensor: {{topic: latency/sensor, stale_after: 1h}}
    target: {TARGET_C}
    limits: {{min_c: 5, max_c: 30}}
    control: {{mode: hysteresis, cold_tolerance: 0.3, hot_tolerance: 0.3}}
    heaters: [mini3]
heaters:
  mini3: {{host: 127.0.0.1, port: {server_port(server)}, model: mini3, min_on: 0s, min_off: 0s}}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    service = Service(load_config(config_path), clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    samples: list[float] = []
    try:
        deadline = time.monotonic() + 20
        while not service.link.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        async with aiomqtt.Client("127.0.0.1", broker_port, identifier="latency-sensor") as client:
            # settle: running, confirmed, before the clock starts
            await client.publish("latency/sensor", str(COLD_C), qos=1)
            await asyncio.sleep(3.0)
            for i in range(readings):
                value = WARM_C if i % 2 == 0 else COLD_C
                before = len(arrivals)
                sent = time.perf_counter()
                await client.publish("latency/sensor", f"{value}", qos=0)
                await asyncio.sleep(interval)
                if len(arrivals) > before:
                    samples.append((arrivals[before] - sent) * 1000.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await close_server(server)
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, round(p / 100 * (len(samples) - 1)))]

    return {
        "readings": readings,
        "samples": len(samples),
        "p50_ms": round(pct(50), 3) if samples else None,
        "p90_ms": round(pct(90), 3) if samples else None,
        "p99_ms": round(pct(99), 3) if samples else None,
        "max_ms": round(samples[-1], 3) if samples else None,
        "mean_ms": round(statistics.fmean(samples), 3) if samples else None,
    }
