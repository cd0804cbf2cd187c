"""The one HTTP library (aiohttp): a small wrapper to serve an `aiohttp.web.Application` on one address.

Used by the Prometheus endpoint (`adapters/metrics.py`) and the dashboard with its local JSON API
(`service/dashboard.py`); the Mining Rig Monitor client (`adapters/mrm.py`) uses aiohttp's client.
"""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger("thermostat.http")

MAX_FIELD_SIZE = 8190  # bytes of one request line or header (aiohttp's default, stated here on purpose)


class WebServer:
    """``WebServer(app, host, port)``; `start()` binds (port 0 = any free port, read `port` after)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
            handler_cancellation=True, max_line_size=MAX_FIELD_SIZE, max_field_size=MAX_FIELD_SIZE,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:  # the port picked for port 0
            self.port = int(runner.addresses[0][1])

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
