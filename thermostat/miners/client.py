"""Async TCP client for the cgminer API on port 4028.

One request per TCP connection: connect, send the whole request in one write, read to EOF (or the
trailing NUL), close. Canaan firmware is single-threaded, so one client instance never has two
requests in flight (an asyncio.Lock per instance: use one MinerClient per miner). Every request is
encoded through `avalon.encode`, the single choke point that refuses pool-changing commands.
"""

from __future__ import annotations

import asyncio
from typing import Any

from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import (
    POLL_FALLBACK,
    POLL_REQUEST,
    Reply,
    Request,
    VersionInfo,
    check_status,
    decode_reply,
    encode,
    outcome_for_error,
    parse_pools,
    parse_stats,
    parse_version,
)
from thermostat.miners.errors import (
    ForbiddenCommand,
    MalformedReply,
    MinerError,
    MinerTimeout,
    Refused,
    Unreachable,
)
from thermostat.miners.protocols import SessionCache, protocol_for

DEFAULT_PORT = 4028
MAX_REPLY_BYTES = 1 << 20  # a full estats of a Q is ~10 KiB; anything near 1 MiB is not a miner


class MinerClient:
    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        form: str = "json",
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        if form not in ("json", "text"):
            raise ValueError(f"protocol form must be 'json' or 'text', not {form!r}")
        self.host = host
        self.port = port
        self.form = form
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_reply_bytes = max_reply_bytes
        self._lock = asyncio.Lock()
        self.session = SessionCache()  # per-miner protocol state (LuxOS session id); see protocols.py

    def __repr__(self) -> str:
        return f"MinerClient({self.host}:{self.port}, {self.form})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def raw(self, request: Request) -> bytes:
        """Send one request and return the raw reply bytes (possibly empty when the miner just closes).

        Raises ForbiddenCommand (nothing sent), Unreachable, MinerTimeout (phase connect/read) or
        MalformedReply (reply larger than `max_reply_bytes`).
        """
        payload = encode(request, self.form)  # the guard: raises ForbiddenCommand before any I/O
        async with self._lock:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except TimeoutError:
                raise MinerTimeout(f"{self.address}: connect timed out after {self.connect_timeout:g}s",
                                   phase="connect") from None
            except OSError as exc:
                raise Unreachable(f"{self.address}: {exc.strerror or exc}") from None
            try:
                return await self._exchange(reader, writer, payload)
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass
                except asyncio.CancelledError:
                    # A close that reports itself cancelled without anyone cancelling us is ignored; a real
                    # cancel (the service stopping) must go on up, or the caller's task never ends.
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> bytes:
        buf = bytearray()
        try:
            async with asyncio.timeout(self.read_timeout):
                try:
                    writer.write(payload)
                    await writer.drain()
                except OSError as exc:
                    raise Unreachable(f"{self.address}: send failed: {exc.strerror or exc}") from None
                while True:
                    try:
                        chunk = await reader.read(65536)
                    except (ConnectionResetError, BrokenPipeError):
                        break  # the miner dropped the connection: same as EOF (softon does this)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > self.max_reply_bytes:
                        raise MalformedReply(f"{self.address}: reply larger than {self.max_reply_bytes} bytes")
                    if b"\x00" in chunk:
                        break  # cgminer ends every reply with a NUL, then closes
        except TimeoutError:
            raise MinerTimeout(f"{self.address}: no complete reply within {self.read_timeout:g}s",
                               phase="read") from None
        return bytes(buf)

    async def request(self, request: Request) -> Reply:
        """Send and decode; raise Refused/Busy unless STATUS is S/I without failure text."""
        reply = decode_reply(await self.raw(request))
        try:
            return check_status(reply)
        except Refused as exc:
            raise type(exc)(exc.status, exc.code, f"{exc.msg} ({self.address}, {request.command})") from None

    async def version(self) -> VersionInfo:
        return parse_version(decode_reply(await self.raw(Request("version"))))

    async def snapshot(self, spec: ModelSpec | None = None) -> Snapshot:
        """POLL: `litestats`, falling back to `estats` when litestats is refused as an invalid command.

        With the `spec` of another firmware family (LuxOS, Braiins OS), that family's poll plan is run
        instead; its failures raise as here (MinerError subclasses).
        """
        if spec is not None and spec.family != "avalon":
            return await self._family_snapshot(spec)
        reply = decode_reply(await self.raw(POLL_REQUEST))
        try:
            return parse_stats(reply)
        except Refused as exc:
            if not (exc.code == 14 or "invalid command" in exc.msg.lower()):
                raise
        return parse_stats(decode_reply(await self.raw(POLL_FALLBACK)))

    async def pools(self) -> list[dict[str, Any]]:
        return parse_pools(decode_reply(await self.raw(Request("pools"))))

    async def execute(self, command: Command, spec: ModelSpec) -> Outcome:
        """Async twin of `protocols.execute_sync`: same plan, same outcomes.

        InvalidValue/Unsupported are raised before anything is sent; transport errors become Outcomes.
        """
        steps = protocol_for(spec).plan(command, spec, self.session)  # dispatch on spec.family
        try:
            request = next(steps)
            while True:
                try:
                    raw = await self.raw(request)
                except ForbiddenCommand:
                    raise
                except (MinerError, OSError) as exc:
                    return outcome_for_error(command, exc)
                request = steps.send(raw)
        except StopIteration as stop:
            result: Outcome = stop.value
            return result

    async def _family_snapshot(self, spec: ModelSpec) -> Snapshot:
        steps = protocol_for(spec).plan(Command("snapshot", CommandKind.POLL), spec, self.session)
        try:
            request = next(steps)
            while True:
                request = steps.send(await self.raw(request))
        except StopIteration as stop:
            outcome: Outcome = stop.value
        if outcome.snapshot is not None:
            return outcome.snapshot
        if outcome.kind == OutcomeKind.MALFORMED:
            raise MalformedReply(f"{self.address}: {outcome.message}")
        raise Refused("E", None, f"{outcome.message} ({self.address})")
