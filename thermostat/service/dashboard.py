"""The built-in dashboard and the local JSON API (aiohttp), served by the running service.

Routes (API version 1, see docs/day-to-day.md)::

    GET  /                               the page (HTML + /static/app.js + /static/app.css, all from the package)
    GET  /api/state                      rooms and heaters with their reasons (`service/view.py`)
    GET  /api/history?room=ID&hours=24   reading, target and watts of one room from the store
    POST /api/login   {"password": ..}   a session for the browser (only when a password is configured)
    POST /api/logout
    POST /api/room/ID/WHAT    {"payload": ..}   WHAT: target, mode, preset, override — the MQTT command payloads
                                                 (a boost is an override {"temp": 23, "for": "2h"})
    POST /api/heater/ID/WHAT  {"payload": ..}   WHAT: level, controlled, reboot

Security:
- bound to 127.0.0.1 by default; another address needs a password (config validation refuses otherwise);
- with a password, every API call needs the session cookie of a login or ``Authorization: Bearer <password>``;
- state-changing requests from a browser need the session's CSRF token in ``X-CSRF-Token`` (the page gets it in
  a meta tag) and, when the browser sends them, a same-origin ``Origin`` / ``Sec-Fetch-Site``;
- on a loopback bind, the ``Host`` header must name a loopback host (a DNS-rebinding page cannot use it);
- commands go through `Service.command`, the same parse-validate-apply path as MQTT commands.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from thermostat.adapters.http import WebServer
from thermostat.config import DashboardConfig
from thermostat.service import view

if TYPE_CHECKING:
    from thermostat.service.household import Service

log = logging.getLogger("thermostat.dashboard")

SESSION_COOKIE = "thermostat_session"
MAX_SESSIONS = 256
MAX_BODY = 4096  # bytes of a command or login body
LOGIN_FAIL_DELAY_S = 1.0  # a wrong password answers after this long; checks are serialised: ~1 guess/s at most
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
STATIC = {"app.js": "application/javascript", "app.css": "text/css"}
HISTORY_MAX_HOURS = 24 * 7


@dataclass
class Session:
    csrf: str
    authenticated: bool
    created: float = field(default_factory=time.monotonic)


def _web_file(name: str) -> str:
    return resources.files("thermostat").joinpath("data", "web", name).read_text(encoding="utf-8")


class Dashboard:
    def __init__(self, service: Service, cfg: DashboardConfig) -> None:
        self.service = service
        self.cfg = cfg
        secret = cfg.read_password()  # raises ConfigError (logged by the service) when unreadable
        self._password = secret.get_secret_value() if secret is not None else None
        self.sessions: dict[str, Session] = {}
        self.counters = {"requests": 0, "commands": 0, "commands_rejected": 0, "logins_failed": 0, "refused": 0}
        self._last_warning = -1e9
        self._login_lock = asyncio.Lock()
        self._index = _web_file("index.html")
        self._static = {name: _web_file(name) for name in STATIC}
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/history", self._history)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_post("/api/{kind:room|heater}/{ident}/{what}", self._command)
        app.router.add_post("/api/house/{what:away|away_until}", self._house_command)
        self._server = WebServer(app, cfg.host, cfg.port)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        await self._server.start()
        log.info("dashboard on %s%s", self.url, " (password required)" if self._password else "")

    async def close(self) -> None:
        await self._server.close()

    # ------------------------------------------------------------------ security

    def _warn(self, text: str, *args: Any) -> None:
        """Refusals are counted always and logged at most once a minute (a scanner must not flood the log)."""
        now = time.monotonic()
        if now - self._last_warning >= 60.0:
            self._last_warning = now
            log.warning("dashboard: " + text, *args)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.counters["requests"] += 1
        if not self._host_ok(request):
            self.counters["refused"] += 1
            self._warn("request with Host %r refused (loopback bind)", request.host)
            return _error(421, "this dashboard answers only to its loopback address")
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _host_ok(self, request: web.Request) -> bool:
        if self.cfg.host not in LOOPBACK_NAMES and not self.cfg.host.startswith("127."):
            return True  # bound elsewhere: a password protects it
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        return host in LOOPBACK_NAMES or host.startswith("127.")

    def _session(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(SESSION_COOKIE)
        return self.sessions.get(sid) if sid else None

    def _bearer_ok(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if self._password is None or not auth.startswith("Bearer "):
            return False
        return hmac.compare_digest(auth[7:].strip().encode(), self._password.encode())

    def _authorized(self, request: web.Request) -> bool:
        if self._password is None:
            return True
        if self._bearer_ok(request):
            return True
        session = self._session(request)
        return session is not None and session.authenticated

    def _same_origin(self, request: web.Request) -> bool:
        """A state change from a browser: CSRF token of the session, and no cross-site origin."""
        if self._bearer_ok(request):
            return True  # not a cookie: a cross-site page cannot send it
        session = self._session(request)
        token = request.headers.get("X-CSRF-Token", "")
        if session is None or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return False
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return False
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")

    def _new_session(self, authenticated: bool) -> tuple[str, Session]:
        if len(self.sessions) >= MAX_SESSIONS:  # drop the oldest
            oldest = min(self.sessions, key=lambda k: self.sessions[k].created)
            del self.sessions[oldest]
        sid = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), authenticated=authenticated)
        self.sessions[sid] = session
        return sid, session

    @staticmethod
    def _set_cookie(response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Strict", path="/")

    # ------------------------------------------------------------------ pages

    async def _page(self, request: web.Request) -> web.Response:
        session = self._session(request)
        sid = request.cookies.get(SESSION_COOKIE, "")
        if session is None:
            sid, session = self._new_session(authenticated=self._password is None)
        html = self._index.replace("{{csrf}}", session.csrf).replace(
            "{{protected}}", "true" if self._password is not None else "false")
        response = web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})
        self._set_cookie(response, sid)
        return response

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(text=self._static[name], content_type=STATIC[name])

    # ------------------------------------------------------------------ API

    async def _state(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "password required")
        return web.json_response(view.state_document(self.service), dumps=_dumps)

    async def _history(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "password required")
        room = request.query.get("room", "")
        if room not in self.service.rooms:
            return _error(404, f"unknown room {room[:40]!r}")
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            return _error(400, "hours must be a number")
        if not 0 < hours <= HISTORY_MAX_HOURS:
            return _error(400, f"hours must be in (0, {HISTORY_MAX_HOURS}]")
        now = self.service.clock.now().timestamp()
        rows = self.service.store.history(room=room, since=now - hours * 3600)
        points = [[round(r.ts, 1), r.reading, r.target, r.watts] for r in rows if r.heater is None]
        return web.json_response({"room": room, "from": now - hours * 3600, "to": now,
                                  "columns": ["ts", "reading", "target", "watts"], "points": points}, dumps=_dumps)

    async def _body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    async def _login(self, request: web.Request) -> web.Response:
        if not self._same_origin(request):
            self.counters["refused"] += 1
            return _error(403, "missing or wrong CSRF token, or a cross-site request")
        if self._password is None:
            return web.json_response({"ok": True})
        body = await self._body(request)
        given = body.get("password") if body is not None else None
        async with self._login_lock:  # one check at a time: parallel guesses wait for each other's delay
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._password.encode()):
                self.counters["logins_failed"] += 1
                self._warn("wrong password from %s (%d so far)", request.remote, self.counters["logins_failed"])
                await asyncio.sleep(LOGIN_FAIL_DELAY_S)
                return _error(401, "wrong password")
        old = request.cookies.get(SESSION_COOKIE)
        if old in self.sessions:
            del self.sessions[old]  # a fresh session id after login (no fixation)
        sid, session = self._new_session(authenticated=True)
        response = web.json_response({"ok": True, "csrf": session.csrf})
        self._set_cookie(response, sid)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        if not self._same_origin(request):
            return _error(403, "missing or wrong CSRF token, or a cross-site request")
        sid = request.cookies.get(SESSION_COOKIE)
        if sid in self.sessions:
            self.sessions[sid].authenticated = self._password is None
        return web.json_response({"ok": True})

    async def _house_command(self, request: web.Request) -> web.Response:
        """House-wide commands (the away): the same path as `<base>/away/set` and `<base>/away/until/set`."""
        return await self._command(request, house=True)

    async def _command(self, request: web.Request, *, house: bool = False) -> web.Response:
        if not self._authorized(request):
            return _error(401, "password required")
        if not self._same_origin(request):
            self.counters["refused"] += 1
            self._warn("command without a valid CSRF token refused (%s)", request.path)
            return _error(403, "missing or wrong CSRF token, or a cross-site request")
        if house:
            kind, ident, what = "house", "", request.match_info["what"]
        else:
            kind, ident, what = (request.match_info[k] for k in ("kind", "ident", "what"))
        body = await self._body(request)
        payload = body.get("payload") if body is not None else None
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        if not isinstance(payload, str):
            return _error(400, 'body must be JSON {"payload": "<the MQTT command payload>"}')
        known = self.service.rooms if kind == "room" else self.service.heaters
        if not house and ident not in known:
            return _error(404, f"unknown {kind} {ident[:40]!r}")
        self.counters["commands"] += 1
        reason = self.service.command(kind, ident, what, payload.encode("utf-8"))
        if reason is not None:
            self.counters["commands_rejected"] += 1
            return _error(400, reason)
        log.info("dashboard: %s %s %s %s", kind, ident, what, payload[:80])
        return web.json_response({"ok": True})


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, allow_nan=False)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
