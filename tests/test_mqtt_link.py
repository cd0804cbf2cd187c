"""thermostat.adapters.mqtt.MqttLink against a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from thermostat.adapters.mqtt import Message, MqttLink

pytestmark = pytest.mark.broker


def _prefix() -> str:
    return f"test/{uuid.uuid4().hex[:10]}"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def __call__(self, m: Message) -> None:
        self.messages.append(m)
        self._changed.set()

    async def wait_for(self, pred: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def running(link: MqttLink, inbox: Inbox, on_connect: Callable[[], None] | None = None) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run(inbox, on_connect))
    try:
        yield
    finally:
        await link.close()
        await asyncio.wait_for(task, 5)


async def read_retained(host: str, port: int, topic: str, timeout: float = 2.0) -> bytes | None:
    """What a fresh subscriber sees on `topic` (None: nothing retained)."""
    async with aiomqtt.Client(host, port, identifier=f"peek-{uuid.uuid4().hex[:6]}") as c:
        await c.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(timeout):
                async for m in c.messages:
                    assert isinstance(m.payload, bytes)
                    return m.payload
        except TimeoutError:
            return None
    return None  # pragma: no cover


def make_link(host: str, port: int, prefix: str, **kw: object) -> MqttLink:
    return MqttLink(
        host,
        port,
        client_id=f"link-{uuid.uuid4().hex[:8]}",
        availability_topic=f"{prefix}/status",
        backoff_initial=0.05,
        backoff_max=0.2,
        timeout=2.0,
        **kw,  # type: ignore[arg-type]
    )


async def test_subscribe_receive_and_online(mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    p = _prefix()
    link = make_link(mqtt_broker.host, mqtt_broker.port, p)
    link.subscribe(f"{p}/in/#")
    inbox = Inbox()
    connected = asyncio.Event()
    async with running(link, inbox, connected.set):
        await asyncio.wait_for(connected.wait(), 5)
        assert link.connected
        assert await read_retained(mqtt_broker.host, mqtt_broker.port, f"{p}/status") == b"online"
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as c:
            await c.publish(f"{p}/in/a", b"21.5", qos=1)
            await c.publish(f"{p}/other", b"ignored", qos=1)
        m = await inbox.wait_for(lambda m: m.topic == f"{p}/in/a")
        assert m.payload == b"21.5"
        # Subscribing while running takes effect at once.
        link.subscribe(f"{p}/late")
        assert await link.flush(2)
        await link.publish(f"{p}/late", "hi")
        await inbox.wait_for(lambda m: m.topic == f"{p}/late" and m.payload == b"hi")
        assert all(m.topic != f"{p}/other" for m in inbox.messages)
    assert link.counters()["connects"] == 1 and link.reconnects == 0


async def test_clean_close_publishes_offline(mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    p = _prefix()
    link = make_link(mqtt_broker.host, mqtt_broker.port, p)
    task = asyncio.create_task(link.run(Inbox()))
    assert await link.wait_connected(5)
    await link.publish(f"{p}/state", "last words", retain=True)
    await link.close()
    await asyncio.wait_for(task, 5)
    assert not link.connected
    assert await read_retained(mqtt_broker.host, mqtt_broker.port, f"{p}/status") == b"offline"
    assert await read_retained(mqtt_broker.host, mqtt_broker.port, f"{p}/state") == b"last words"


async def test_close_before_run_and_twice(mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    link = make_link(mqtt_broker.host, mqtt_broker.port, _prefix())
    await link.close()
    await asyncio.wait_for(link.run(Inbox()), 2)  # returns at once: already closed
    await link.close()


CHILD = """
import asyncio, sys
from thermostat.adapters.mqtt import MqttLink

async def main():
    link = MqttLink(sys.argv[1], int(sys.argv[2]), client_id=sys.argv[3], availability_topic=sys.argv[4])
    def ready():
        print("connected", flush=True)
    await link.run(lambda m: None, ready)

asyncio.run(main())
"""


async def test_last_will_on_crash(mqtt_broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = _prefix()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    avail = f"{p}/status"
    proc = subprocess.Popen(
        [sys.executable, str(script), mqtt_broker.host, str(mqtt_broker.port), f"child-{p[-6:]}", avail],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        assert line.strip() == b"connected"
        assert await read_retained(mqtt_broker.host, mqtt_broker.port, avail) == b"online"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        async with asyncio.timeout(5):
            while await read_retained(mqtt_broker.host, mqtt_broker.port, avail, 0.5) != b"offline":
                await asyncio.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_broker_restart_reconnects_resubscribes_and_delivers(own_broker) -> None:  # type: ignore[no-untyped-def]
    p = _prefix()
    link = make_link(own_broker.host, own_broker.port, p)
    link.subscribe(f"{p}/cmd/#")
    inbox = Inbox()
    connects = 0

    def on_connect() -> None:
        nonlocal connects
        connects += 1

    async with running(link, inbox, on_connect):
        assert await link.wait_connected(5)
        await link.publish(f"{p}/state", "before", retain=True)
        assert await link.flush(2)

        own_broker.stop()  # persistence is off: the broker forgets retained messages
        async with asyncio.timeout(5):
            while link.connected:
                await asyncio.sleep(0.01)
        # Published while the broker is down: never raises, delivered after the reconnect.
        await link.publish(f"{p}/cmd/while-down", "queued")
        await link.publish(f"{p}/state", "during", retain=True)
        assert link.queued == 1  # retained state lives in the cache, not the queue
        await asyncio.sleep(0.3)  # a few failed attempts with the short test backoff
        own_broker.start()

        assert await link.wait_connected(5)
        m = await inbox.wait_for(lambda m: m.topic == f"{p}/cmd/while-down")  # resubscribed + queued delivery
        assert m.payload == b"queued"
        async with aiomqtt.Client(own_broker.host, own_broker.port) as c:
            await c.publish(f"{p}/cmd/after", b"new", qos=1)
        await inbox.wait_for(lambda m: m.topic == f"{p}/cmd/after" and m.payload == b"new")
        # Retained state and availability were re-published from the cache after the restart.
        assert await read_retained(own_broker.host, own_broker.port, f"{p}/state") == b"during"
        assert await read_retained(own_broker.host, own_broker.port, f"{p}/status") == b"online"
        assert link.reconnects >= 1
        assert link.connect_failures >= 1
        assert connects == link.connects
        assert link.dropped == 0
        assert link.last_error


async def test_connects_when_broker_comes_up_late(own_broker) -> None:  # type: ignore[no-untyped-def]
    own_broker.stop()
    p = _prefix()
    link = make_link(own_broker.host, own_broker.port, p)
    async with running(link, Inbox()):
        await asyncio.sleep(0.2)
        assert not link.connected and link.connect_failures >= 1
        own_broker.start()
        assert await link.wait_connected(5)
        assert link.reconnects == 0


async def test_queue_bound_drops_oldest_non_retained() -> None:
    link = MqttLink("127.0.0.1", 1, client_id="x", availability_topic="x/status", queue_limit=3)
    for i in range(10):
        await link.publish("t/n", str(i))  # never connected: queued
        await link.publish(f"t/r{i}", str(i), retain=True)  # cache only
    assert link.queued == 3
    assert link.dropped == 7
    assert [item.payload for item in link.queued_items()] == [b"7", b"8", b"9"]
    assert set(link.retained) == {f"t/r{i}" for i in range(10)}
    await link.publish("t/bad", object())  # type: ignore[arg-type]  # unusable: logged, counted, no raise
    assert link.dropped == 8


async def test_handler_errors_do_not_kill_the_link(mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    p = _prefix()
    link = make_link(mqtt_broker.host, mqtt_broker.port, p)
    link.subscribe(f"{p}/x")
    seen: list[bytes] = []

    async def handler(m: Message) -> None:
        seen.append(m.payload)
        if m.payload == b"boom":
            raise RuntimeError("handler bug")

    def bad_connect() -> None:
        raise RuntimeError("on_connect bug")

    task = asyncio.create_task(link.run(handler, bad_connect))
    try:
        assert await link.wait_connected(5)
        await link.publish(f"{p}/x", "boom")
        await link.publish(f"{p}/x", "fine")
        async with asyncio.timeout(5):
            while b"fine" not in seen:
                await asyncio.sleep(0.01)
        assert link.handler_errors == 2
        assert link.connects == 1
    finally:
        await link.close()
        await asyncio.wait_for(task, 5)


async def test_connected_over_the_bound_retained_state_is_never_dropped(mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    """While connected, a burst larger than `queue_limit` drops only the oldest non-retained messages; every
    retained topic's latest value reaches the broker (a queued value is replaced in its place by a newer one)."""
    p = _prefix()
    link = make_link(mqtt_broker.host, mqtt_broker.port, p, queue_limit=5)
    async with running(link, Inbox()):
        assert await link.wait_connected(5)
        for i in range(40):  # in one go: the sender cannot run in between
            link.publish_nowait(f"{p}/state/{i}", "first", retain=True)
            link.publish_nowait(f"{p}/event", str(i))
        for i in range(40):
            link.publish_nowait(f"{p}/state/{i}", "latest", retain=True)
        assert link.dropped == 35  # non-retained: 40 queued, the newest 5 kept
        assert link.queued == 40 + 5  # one per retained topic, plus the 5 events
        assert [m.payload for m in link.queued_items() if not m.retain] == [b"35", b"36", b"37", b"38", b"39"]
        assert await link.flush(10)
    for i in (0, 17, 39):
        assert await read_retained(mqtt_broker.host, mqtt_broker.port, f"{p}/state/{i}") == b"latest"


async def test_messages_that_arrive_together_are_handed_over_together(mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    """Messages already waiting when the link reads are handed to the handler in one pass of the event loop, not one
    per few passes (a house-wide change acts on every room's command together)."""
    p = _prefix()
    link = make_link(mqtt_broker.host, mqtt_broker.port, p)
    link.subscribe(f"{p}/cmd/#")
    passes: list[int] = []
    counter = {"pass": 0}

    async def ticker() -> None:
        while True:
            counter["pass"] += 1
            await asyncio.sleep(0)

    def handler(m: Message) -> None:
        passes.append(counter["pass"])

    tick = asyncio.create_task(ticker())
    task = asyncio.create_task(link.run(handler))
    try:
        assert await link.wait_connected(5)
        await asyncio.sleep(0.3)  # subscribed
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
            await asyncio.gather(*(client.publish(f"{p}/cmd/{i}", str(i), qos=1) for i in range(30)))
        async with asyncio.timeout(5):
            while len(passes) < 30:
                await asyncio.sleep(0.01)
    finally:
        tick.cancel()
        await link.close()
        await asyncio.wait_for(task, 5)
    assert len(set(passes)) <= 5, f"30 messages handed over in {len(set(passes))} passes of the event loop"
