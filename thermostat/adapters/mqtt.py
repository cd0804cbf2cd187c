"""The MQTT connection manager: one broker connection, kept alive for the life of the service.

`MqttLink.run()` is the documented aiomqtt 2.x reconnect loop (shared/reference/dependencies.md §1):

* connect with a last will ``offline`` (retained) on the availability topic, so a crash or a dead link
  marks the service unavailable; publish ``online`` (retained) on every connect;
* subscribe to every registered filter on every connect (clean session: the broker forgets them);
* re-publish the retained-state cache (`retained`) after every connect, so Home Assistant sees current
  state even after a broker restart without persistence; then call `on_connect` (e.g. discovery);
* hand each incoming message to `on_message`; an exception there is logged, never fatal;
* on any MQTT error: back off 1 s, 2 s, 4 s … up to 30 s (reset after a successful connect), retry.

`publish()` never raises and never blocks on the network: it appends to the outgoing queue that a
sender task drains, in order, while connected. Non-retained messages are bounded by `queue_limit`
(the oldest one is dropped when it is full, counted in `dropped`; they wait in the queue while
disconnected). Retained messages are never dropped: while connected, one not yet sent is replaced in
its place by a newer value for its topic (the broker keeps only the last one), so they are bounded by the
number of topics; while disconnected they only update the cache, which is sent in full on the next
connect.

`close()` stops the loop; when connected it first drains the queue briefly, then publishes ``offline``
(retained) itself, because a clean disconnect does not trigger the will (MQTT spec).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import select
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt

from thermostat.adapters.ratelimit import LimitedLog, RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One received message, decoupled from aiomqtt's types."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0


@dataclass(frozen=True)
class _Out:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    seq: int = 0  # queue order across the two queues (non-retained, retained)


MessageHandler = Callable[[Message], Awaitable[None] | None]
ConnectHandler = Callable[[], Awaitable[None] | None]


class _Stopping(Exception):
    """Raised inside the connection's task group to leave it when `close()` is called."""


READ_BURST = 256  # most packets read in one go when the broker's socket turns readable


class _PahoReader(Protocol):
    def loop_read(self, max_packets: int = 1) -> int: ...

    def socket(self) -> Any: ...  # paho's SocketLike: a socket, an SSL socket or its websocket


def _read_what_arrived(client: _PahoReader) -> None:
    """Read every packet that has arrived when the socket turns readable, not one per pass of the event loop.

    aiomqtt calls paho's `loop_read()` once when the socket is readable, and paho reads one packet (or as many as
    it has messages in flight). Messages that arrive together (a house-wide change: one command per room) then
    trickled in one per pass of the event loop, behind whatever else the loop had to do, and every room's
    change was acted on before the next was even read. Wrapped, `loop_read()` goes on while the socket still
    has bytes waiting (at most `READ_BURST` packets), so they are all handed over together."""
    one = client.loop_read

    def loop_read(max_packets: int = 1) -> int:
        rc = one(max_packets)
        for _ in range(READ_BURST - 1):
            sock = client.socket()
            if rc != 0 or sock is None or not select.select([sock], [], [], 0)[0]:  # 0: MQTT_ERR_SUCCESS
                break
            rc = one(max_packets)
        return rc

    client.loop_read = loop_read  # type: ignore[method-assign]  # the paho client's own, on this instance


def _as_bytes(payload: str | bytes | bytearray | int | float | None) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return str(payload).encode("ascii")


class MqttLink:
    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        client_id: str,
        keepalive: int = 15,
        availability_topic: str,
        queue_limit: int = 1000,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        if queue_limit < 1:
            raise ValueError("queue_limit must be >= 1")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.availability_topic = availability_topic
        self.queue_limit = queue_limit
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._username = username
        self._password = password
        self._tls_context = tls_context if tls_context is not None else (ssl.create_default_context() if tls else None)

        self.retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, qos): state re-sent on connect
        self.unchanged_skipped = 0  # `publish_state` calls that sent nothing: the value had not changed
        self._subs: dict[str, int] = {}  # filter -> qos
        self._pending_subs: list[str] = []
        self._plain: deque[_Out] = deque()  # non-retained, in order; bounded by queue_limit
        self._kept: OrderedDict[str, _Out] = OrderedDict()  # retained, one per topic, in the order first queued
        self._seq = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._inbox: asyncio.Queue[aiomqtt.Message] | None = None  # the current client's incoming queue
        self._run_task: asyncio.Task[None] | None = None
        self._closing = False

        # counters
        self.connects = 0
        self.connect_failures = 0
        self.dropped = 0
        self.published = 0
        self.received = 0
        self.handler_errors = 0
        self.last_error: str | None = None
        # a broker that stays away, or a caller publishing junk, must not fill the journal
        self._limited = LimitedLog(log, RateLimiter(window_s=300.0, burst=2))
        self.connected_since: float | None = None  # time.monotonic() of the current connection

    # --- state ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one."""
        return max(0, self.connects - 1)

    @property
    def queued(self) -> int:
        return len(self._plain) + len(self._kept)

    def queued_items(self) -> list[_Out]:
        """What waits to be sent, in the order it will be sent."""
        return sorted([*self._plain, *self._kept.values()], key=lambda item: item.seq)

    def counters(self) -> dict[str, int]:
        return {
            "connects": self.connects,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "dropped": self.dropped,
            "published": self.published,
            "received": self.received,
            "handler_errors": self.handler_errors,
            "queued": self.queued,
        }

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """True once connected (now or within `timeout` seconds)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- subscriptions and publishing -------------------------------------------------------------

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Register a filter: subscribed now if connected, and again on every (re)connect."""
        known = topic_filter in self._subs
        self._subs[topic_filter] = qos
        if self.connected and not known:
            self._pending_subs.append(topic_filter)
            self._wake.set()

    async def publish(
        self, topic: str, payload: str | bytes | bytearray | int | float | None, retain: bool = False, qos: int = 1
    ) -> None:
        """Queue a message for the broker. Never raises, never waits for the network.

        A retained message also updates the `retained` cache (re-published after each reconnect); an
        empty retained payload clears the topic on the broker, and is kept so a reconnect clears it too.
        """
        self.publish_nowait(topic, payload, retain=retain, qos=qos)

    def publish_nowait(
        self, topic: str, payload: str | bytes | bytearray | int | float | None, retain: bool = False, qos: int = 1
    ) -> None:
        """`publish` for synchronous callers."""
        try:
            data = _as_bytes(payload)
        except Exception as exc:  # e.g. a non-ASCII repr: log, never raise to the caller
            self._limited.warning(("payload", topic), "MQTT publish to %s: unusable payload (%s)", topic, exc)
            self.dropped += 1
            return
        if retain:
            self.retained[topic] = (data, qos)
            if not self.connected:
                return  # the cache is sent in full on the next connect
            queued = self._kept.get(topic)
            seq = queued.seq if queued is not None else self._next_seq()
            self._kept[topic] = _Out(topic, data, qos, True, seq)  # a newer value takes the queued one's place
        else:
            if len(self._plain) >= self.queue_limit:
                self._plain.popleft()  # the oldest non-retained message
                self.dropped += 1
            self._plain.append(_Out(topic, data, qos, False, self._next_seq()))
        self._wake.set()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def publish_state(self, topic: str, payload: str | bytes | bytearray | int | float | None, qos: int = 1) -> bool:
        """A retained state value, sent only when it differs from the value last sent on `topic` (the broker
        keeps the retained value, and the whole cache is re-sent after each reconnect). True when queued."""
        try:
            data = _as_bytes(payload)
        except Exception:  # publish_nowait logs and counts it
            self.publish_nowait(topic, payload, retain=True, qos=qos)
            return False
        if self.retained.get(topic) == (data, qos):
            self.unchanged_skipped += 1
            return False
        self.publish_nowait(topic, data, retain=True, qos=qos)
        return True

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (everything sent and, for qos >= 1, acknowledged)."""
        deadline = time.monotonic() + timeout
        while self.queued or self._pending_subs:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # --- the loop -----------------------------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        link = self

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            """aiomqtt's incoming queue (its `queue_type`), kept at hand to take what has arrived all at once."""

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                link._inbox = self

        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            will=aiomqtt.Will(self.availability_topic, payload="offline", qos=1, retain=True),
            clean_session=True,
            keepalive=self.keepalive,
            timeout=self.timeout,
            tls_context=self._tls_context,
            queue_type=Inbox,
        )
        _read_what_arrived(client._client)  # aiomqtt's paho client (it has no public handle)
        return client

    async def run(self, on_message: MessageHandler, on_connect: ConnectHandler | None = None) -> None:
        """Stay connected until `close()`. Returns after a clean close; cancellation propagates."""
        if self._run_task is not None and not self._run_task.done():
            raise RuntimeError("MqttLink.run() is already running")
        self._run_task = asyncio.current_task()
        self._done.clear()
        backoff = self.backoff_initial
        try:
            while not self._closing:
                connected_before = self.connects
                try:
                    await self._session(on_message, on_connect)
                except* _Stopping:
                    pass
                except* (aiomqtt.MqttError, OSError) as group:
                    self._note_error(group.exceptions)
                except* Exception as group:  # a bug in a handler path must not end the service's MQTT
                    log.exception("MQTT session failed unexpectedly", exc_info=group)
                    self._note_error(group.exceptions)
                finally:
                    self._client = None
                    self._connected.clear()
                    self.connected_since = None
                if self._closing:
                    break
                if self.connects > connected_before:
                    backoff = self.backoff_initial  # the connection worked: start the ladder again
                else:
                    self.connect_failures += 1
                log.info("MQTT reconnecting in %.1f s", backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, self.backoff_max)
        finally:
            self._done.set()

    def _note_error(self, excs: tuple[BaseException, ...]) -> None:
        self.last_error = "; ".join(f"{type(e).__name__}: {e}" for e in excs)
        self._limited.warning(("lost",), "MQTT broker %s:%d lost or unreachable (%s); reconnecting", self.host,
                              self.port, "; ".join(str(e) or type(e).__name__ for e in excs))

    async def _session(self, on_message: MessageHandler, on_connect: ConnectHandler | None) -> None:
        client = self._make_client()
        async with client:
            self._client = client
            await client.publish(self.availability_topic, b"online", qos=1, retain=True)
            self._pending_subs.clear()
            for topic_filter, qos in list(self._subs.items()):
                await client.subscribe(topic_filter, qos=qos)
            # Queued retained messages are superseded by the cache, sent first by the sender.
            self._kept.clear()
            self.connects += 1
            self.connected_since = time.monotonic()
            self._connected.set()
            log.info("MQTT connected to %s:%d as %s", self.host, self.port, self.client_id)
            # `over` ends the sender even if a cancellation gets lost: on Python 3.11, asyncio.wait_for
            # (used inside aiomqtt's publish) can swallow a cancel that races with the PUBACK.
            over = asyncio.Event()
            try:
                async with asyncio.TaskGroup() as tg:
                    try:
                        tg.create_task(self._sender(client, over))
                        tg.create_task(self._stop_watch())
                        if on_connect is not None:
                            await self._call(on_connect)
                        async for first in client.messages:
                            # and every message already waiting behind it, in this same pass of the event loop
                            # (aiomqtt hands them out one per few passes): commands that arrive together are
                            # acted on together
                            for m in self._waiting(first):
                                self.received += 1
                                await self._call(on_message,
                                                 Message(str(m.topic), _as_bytes(m.payload), m.retain, m.qos))
                    finally:
                        over.set()
                        self._wake.set()
            except* _Stopping:
                await self._goodbye(client)
                raise _Stopping() from None

    def _waiting(self, first: aiomqtt.Message) -> Iterator[aiomqtt.Message]:
        yield first
        inbox = self._inbox
        while inbox is not None and not inbox.empty():
            yield inbox.get_nowait()

    async def _call(self, fn: Callable[..., Awaitable[None] | None], *args: object) -> None:
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.handler_errors += 1
            log.exception("MQTT handler %s failed", getattr(fn, "__name__", fn))

    async def _stop_watch(self) -> None:
        await self._stop.wait()
        raise _Stopping()

    async def _sender(self, client: aiomqtt.Client, over: asyncio.Event) -> None:
        for topic, (payload, qos) in list(self.retained.items()):
            await client.publish(topic, payload, qos=qos, retain=True, timeout=self.timeout)
            self.published += 1
        while not over.is_set() and not self._stop.is_set():
            if self._pending_subs:
                topic_filter = self._pending_subs[0]
                await client.subscribe(topic_filter, qos=self._subs.get(topic_filter, 1))
                self._pending_subs.pop(0)
                continue
            if not self.queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._send_head(client)

    def _head(self) -> _Out:
        plain = self._plain[0] if self._plain else None
        kept = next(iter(self._kept.values())) if self._kept else None
        if kept is None or (plain is not None and plain.seq < kept.seq):
            assert plain is not None
            return plain
        return kept

    async def _send_head(self, client: aiomqtt.Client) -> None:
        item = self._head()
        await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain, timeout=self.timeout)
        self.published += 1
        # it may have been dropped or (retained) replaced by a newer value meanwhile: that one is still to send
        if item.retain:
            if self._kept.get(item.topic) is item:
                del self._kept[item.topic]
        elif self._plain and self._plain[0] is item:
            self._plain.popleft()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Clean exit: send what is queued (briefly), then the retained ``offline``."""
        try:
            async with asyncio.timeout(self.timeout):
                while self.queued:
                    await self._send_head(client)
                await client.publish(self.availability_topic, b"offline", qos=1, retain=True, timeout=self.timeout)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("MQTT: could not say goodbye cleanly: %s", exc)

    async def close(self, timeout: float | None = None) -> None:
        """Stop `run()`: publish retained ``offline`` if connected, disconnect, and wait for it."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        task = self._run_task
        if task is None or task.done() or task is asyncio.current_task():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._done.wait()), timeout or self.timeout * 2 + 1)
        except TimeoutError:
            log.warning("MQTT close timed out; cancelling the loop")
            task.cancel()
            await asyncio.wait({task}, timeout=self.timeout)  # never hangs, even if the cancel is lost
