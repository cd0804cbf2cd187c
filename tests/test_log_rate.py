"""Noise amplification (issue 12, bug 7): repeated rejections and error-topic messages are rate-limited per topic
and reason, with a count of what was left out, while the counters still count every message."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

import aiomqtt
import pytest

from thermostat.adapters.ratelimit import OVERFLOW_KEY, LimitedLog, RateLimiter
from thermostat.config import load_config
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port


def test_burst_per_window_then_a_count_of_what_was_left_out() -> None:
    now = [0.0]
    limiter = RateLimiter(window_s=60.0, burst=2, clock=lambda: now[0])
    results = []
    for i in range(100):
        now[0] = i * 0.5  # 100 events in 50 s: one window
        results.append(limiter.check("k"))
    assert results[:2] == [0, 0] and all(r is None for r in results[2:])
    assert limiter.suppressed == 98 and limiter.passed == 2
    now[0] = 61.0
    assert limiter.check("k") == 98  # the next that passes says how many were left out
    assert limiter.check("k") == 0
    assert limiter.check("other") == 0  # keys are independent


def test_keys_are_bounded_whatever_the_input() -> None:
    now = [0.0]
    limiter = RateLimiter(window_s=60.0, burst=1, max_keys=50, clock=lambda: now[0])
    passed = sum(limiter.check(("topic", i)) is not None for i in range(10_000))
    assert len(limiter) <= 51  # 50 keys and the shared overflow key
    assert passed == 51
    now[0] = 120.0  # expired keys make room again
    assert limiter.check(("topic", "new")) == 0
    assert OVERFLOW_KEY in limiter._windows


def test_limited_log_adds_the_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("thermostat.test-limited")
    out = LimitedLog(logger, RateLimiter(window_s=10.0, burst=1, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="thermostat.test-limited"):
        for _ in range(5):
            out.warning("k", "reading rejected: %s", "range")
        now[0] = 11.0
        out.warning("k", "reading rejected: %s", "range")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["reading rejected: range", "reading rejected: range (4 more like this not logged)"]
    assert caplog.records[0].filename == "test_log_rate.py"  # the caller's line, not the helper's


def hostile_house(tmp: Path, broker_port: int, miner_port: int) -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: hostile, client_id: hostile-test}}
rooms:
  living:
    sensor: {{topic: sensors/hostile, stale_after: 10m}}
    target: 21
    heaters: [mini]
heaters:
  mini: {{host: 127.0.0.1, port: {miner_port}, model: mini3}}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    return path


def hostile_messages(n: int, seed: int = 12) -> list[tuple[str, bytes]]:
    rnd = random.Random(seed)
    makers = [
        lambda: ("sensors/hostile", rnd.choice([b"hot", b"nan", b"", b"\xff\xfe", b"{", b"1e999"])),
        lambda: ("sensors/hostile", str(rnd.choice([-300, 500, 1000]) + rnd.random()).encode()),  # out of range
        lambda: ("hostile/room/living/target/set",
                 f"{rnd.choice([99, -50, 'x'])}{chr(65 + rnd.randrange(26))}".encode()),
        lambda: ("hostile/room/living/mode/set", rnd.choice([b"cool", b"auto", b"\x00", b"HEAT!"])),
        lambda: ("hostile/room/living/preset/set", f"preset-{rnd.randrange(10**6)}".encode()),
        lambda: ("hostile/heater/mini/level/set", f"turbo{rnd.randrange(10**6)}".encode()),
        lambda: (f"hostile/room/ghost{rnd.randrange(10**6)}/mode/set", b"heat"),  # unknown room
        lambda: (f"hostile/heater/ghost{rnd.randrange(10**6)}/level/set", b"eco"),  # unknown heater
    ]
    return [rnd.choice(makers)() for _ in range(n)]


@pytest.mark.broker
async def test_ten_thousand_hostile_messages_give_bounded_output(tmp_path: Path, mqtt_broker: object,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2,
                     start_state="standby")
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    service = Service(load_config(hostile_house(tmp_path, port, server_port(server))))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    errors_seen: list[str] = []

    async def watch(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("hostile/room/+/error")
            await client.subscribe("hostile/heater/+/error")
            ready.set()
            async for msg in client.messages:
                errors_seen.append(str(msg.topic))

    ready = asyncio.Event()
    watcher = asyncio.create_task(watch(ready))
    messages = hostile_messages(10_000)
    try:
        deadline = time.monotonic() + 10
        while not service.link.connected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.3)
        counted = lambda: service.counters["readings_rejected"] + service.counters["commands_rejected"]  # noqa: E731
        with caplog.at_level(logging.WARNING, logger="thermostat"):
            async with aiomqtt.Client("127.0.0.1", port) as client:
                for start in range(0, len(messages), 500):
                    for topic, payload in messages[start : start + 500]:
                        await client.publish(topic, payload, qos=1)
                    target = start + min(500, len(messages) - start)
                    deadline = time.monotonic() + 20
                    while counted() < target:  # let the service keep up (the broker would drop a flood)
                        assert time.monotonic() < deadline, f"only {counted()} of {target} handled"
                        await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)
        lines = [r for r in caplog.records if r.name.startswith("thermostat") and r.levelno >= logging.WARNING]
        print(f"10,000 hostile messages: {len(lines)} log lines, {len(errors_seen)} error-topic messages")
        # every message counted ...
        assert counted() == 10_000
        assert service.counters["readings"] == 0
        # ... but a bounded number of log lines and error-topic messages (main: 7,751 and 4,130)
        assert len(lines) <= 60, f"{len(lines)} log lines"
        assert len(errors_seen) <= 40, f"{len(errors_seen)} error-topic messages"
        assert {r.getMessage().split(":")[0] for r in lines} >= {"room living", "command rejected"}
        assert not any("Traceback" in r.getMessage() for r in lines)
        assert service.heaters["mini"].commands_sent == 0  # nothing hostile reached the miner
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)
