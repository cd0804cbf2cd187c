"""An embedded MQTT broker (amqtt) for `thermostat demo` on machines without mosquitto.

Opt-in only (``pip install 'thermostat[demo]'``); never used by the household service or the tests'
broker fixture (shared/reference/dependencies.md §2b: amqtt speaks MQTT 3.1.1 only and deviates from the
spec in places). Rules followed here:

* it runs in its **own thread with its own event loop**, so nothing the service does on its loop can
  freeze the broker (and the broker cannot freeze the service);
* an explicit configuration: one TCP listener bound to **127.0.0.1**, anonymous access, no `$SYS` or
  logging plugins;
* `amqtt` is imported lazily, inside `start()`: `available()` says whether it is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)


def available() -> bool:
    """True when amqtt is installed."""
    return importlib.util.find_spec("amqtt") is not None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one loopback TCP listener, anonymous clients, nothing else."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 50}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """amqtt in a daemon thread. `start()` blocks until it listens (or raises); `stop()` shuts it down."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._done: asyncio.Event | None = None

    def start(self, timeout: float = 10.0) -> None:
        if not available():
            raise RuntimeError("amqtt is not installed (pip install 'thermostat[demo]')")
        last: BaseException | None = None
        for _ in range(3):  # a free port can be taken between choosing it and binding it: try again
            port = self.port or _free_port(self.host)
            self._ready.clear()
            self._error = None
            self._thread = threading.Thread(target=self._thread_main, args=(port,), name="embedded-mqtt",
                                            daemon=True)
            self._thread.start()
            if not self._ready.wait(timeout):
                raise RuntimeError(f"embedded MQTT broker did not start within {timeout:.0f} s")
            if self._error is None:
                self.port = port
                log.info("embedded MQTT broker (amqtt) on %s:%d", self.host, port)
                return
            last = self._error
            self._thread.join(timeout)
            if self.port:
                break
        raise RuntimeError(f"embedded MQTT broker could not start: {last}")

    def _thread_main(self, port: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(port))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, port: int) -> None:
        try:
            from amqtt.broker import Broker

            broker = Broker(broker_config(self.host, port))
            await broker.start()
        except BaseException as exc:  # reported to start(); the thread ends
            self._error = exc
            self._ready.set()
            return
        self._broker = broker
        self._done = asyncio.Event()
        self._ready.set()
        try:
            await self._done.wait()
        finally:
            try:
                await asyncio.wait_for(broker.shutdown(), 5.0)
            except Exception as exc:
                log.warning("embedded MQTT broker shutdown: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        loop, done, thread = self._loop, self._done, self._thread
        if loop is None or thread is None:
            return
        if done is not None and not loop.is_closed():
            loop.call_soon_threadsafe(done.set)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("embedded MQTT broker thread did not end within %.0f s", timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
