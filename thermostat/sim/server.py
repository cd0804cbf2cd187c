"""Serve simulated miners over TCP the way cgminer does: one request per connection.

For each connection: a single read of the request, one reply (ending in NUL), then close
(avalon-api.md §1). The socket-level faults of `SimMiner.faults` are honoured here:

* ``refuse_connections`` (and a miner that is restarting or has no power): the connection is reset at
  once (RST). An asyncio server cannot refuse a single connection while it keeps listening, so the
  client sees ECONNRESET or an empty read rather than ECONNREFUSED.
* ``hang``: the request is read and nothing is ever sent; the connection stays open until the client
  gives up or the server is closed.
* ``reply_delay_s``: wait this many real seconds before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from thermostat.miners.models import MODELS
from thermostat.sim.miner import SimMiner

log = logging.getLogger(__name__)

MAX_REQUEST = 8192  # cgminer reads at most about half of its 16 KiB buffer in one recv()
OnRequest = Callable[[SimMiner, str, bytes | None], None]

_handlers: weakref.WeakKeyDictionary[asyncio.Server, set[asyncio.Task[Any]]] = weakref.WeakKeyDictionary()


def scaled_time(speed: float = 1.0, start: float | None = None) -> Callable[[], float]:
    """A time function (epoch seconds) that runs `speed` times faster than wall time from `start`."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    origin = time.time() if start is None else start
    wall0 = time.time()

    def now() -> float:
        return origin + (time.time() - wall0) * speed

    return now


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve_miner(
    miner: SimMiner, host: str = "127.0.0.1", port: int = 4028, *, on_request: OnRequest | None = None
) -> asyncio.Server:
    """Start serving `miner` on host:port (port 0: any free port). Close with `close_server`."""
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            miner.update()
            if miner.faults.refuse_connections or not miner.reachable:
                _reset(writer)
                return
            try:
                request = await reader.read(MAX_REQUEST)
            except (ConnectionError, OSError):
                writer.close()
                return
            if miner.faults.hang:
                with contextlib.suppress(ConnectionError, OSError):
                    while await reader.read(MAX_REQUEST):
                        pass
                writer.close()
                return
            if miner.faults.reply_delay_s > 0:
                await asyncio.sleep(miner.faults.reply_delay_s)
            reply = miner.handle(request)
            if on_request is not None:
                try:
                    on_request(miner, request.decode("utf-8", errors="replace"), reply)
                except Exception:  # a printing callback must never kill the server
                    log.exception("on_request callback failed")
            if reply is not None:
                writer.write(reply)
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        finally:
            if task is not None:
                tasks.discard(task)

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    _handlers[server] = tasks
    return server


def server_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def close_server(server: asyncio.Server) -> None:
    """Stop listening and end open connections (hanging ones included)."""
    server.close()
    tasks = list(_handlers.get(server, ()))
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await server.wait_closed()


class SimFleet:
    """Several simulated miners on consecutive ports (``base_port`` 0: each on a free port)."""

    def __init__(
        self,
        miners: Sequence[SimMiner],
        *,
        host: str = "127.0.0.1",
        base_port: int = 4028,
        on_request: OnRequest | None = None,
    ) -> None:
        self.miners = list(miners)
        self.host = host
        self.base_port = base_port
        self.on_request = on_request
        self.servers: list[asyncio.Server] = []

    @classmethod
    def from_models(
        cls,
        keys: Sequence[str],
        *,
        time_fn: Callable[[], float],
        host: str = "127.0.0.1",
        base_port: int = 4028,
        on_request: OnRequest | None = None,
        **miner_kwargs: Any,
    ) -> SimFleet:
        """One miner per model key (``["mini3", "mini3", "q"]``); each gets its own seed."""
        miners = []
        for i, key in enumerate(keys):
            if key not in MODELS:
                raise ValueError(f"unknown model {key!r}; known: {', '.join(MODELS)}")
            kwargs = dict(miner_kwargs)
            kwargs.setdefault("seed", i)
            miners.append(SimMiner(MODELS[key], time_fn=time_fn, **kwargs))
        return cls(miners, host=host, base_port=base_port, on_request=on_request)

    @property
    def ports(self) -> list[int]:
        return [server_port(s) for s in self.servers]

    async def start(self) -> list[int]:
        try:
            for i, miner in enumerate(self.miners):
                port = self.base_port + i if self.base_port else 0
                self.servers.append(await serve_miner(miner, self.host, port, on_request=self.on_request))
        except BaseException:
            await self.stop()
            raise
        return self.ports

    async def stop(self) -> None:
        servers, self.servers = self.servers, []
        for server in servers:
            await close_server(server)

    async def __aenter__(self) -> SimFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
