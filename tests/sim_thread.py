"""A simulated miner served over real TCP on its own event loop in a thread (for code that runs asyncio itself)."""

from __future__ import annotations

import asyncio
import threading

from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port


class ThreadedSimMiner:
    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> ThreadedSimMiner:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(serve_miner(self.miner, "127.0.0.1", 0), self._loop).result(5)
        self.port = server_port(self._server)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close_server(self._server), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
