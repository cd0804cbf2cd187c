"""Mining Rig Monitor ("Commander") reporting: specs at start-up, monitor data every minute, remote switch.

The API (docs/mining-rig-monitor.md, /api/v1 of github.com/nguyenvinhlinh/Mining-Rig-Monitor)::
    POST /asic_miners/specs                 header API_CODE   {model, model_variant?, firmware_version, software_...}
    POST /asic_miners/logs                  header API_CODE   monitor data (hashrate, uptime, pools, temps, fans, power)
    GET  /asic_miners/expected_status       header API_CODE   -> {asic_expected_status, light_expected_status}
    POST /asic_miners/expected_status_bulk  no auth           {"asic_api_code_list": [...]} -> {code: {...}, ...}

A wrong code answers 401 ``{"message": "Invalid API_CODE"}``.

`MrmClient` is a small JSON client on aiohttp (a timeout around the whole exchange, a size limit on answers,
typed errors). `MrmReporter` runs one small loop per job (specs and logs
per heater, expected status per heater or in bulk), each with its own exponential backoff: a failing endpoint is
logged once when it starts failing and once when it recovers, and every failure is counted. Nothing here ever
raises into the service; heating does not depend on the dashboard.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from thermostat import __version__
from thermostat.clock import Clock, RealClock
from thermostat.config import ConfigError
from thermostat.domain.snapshot import Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import Reply, Request, led_request
from thermostat.miners.errors import MinerError

log = logging.getLogger("thermostat.mrm")

MAX_RESPONSE_BYTES = 1 << 20
COIN = "BTC"
HASHRATE_UOM = "GH/s"
UNKNOWN = "unknown"  # for required string fields nothing is known about yet (Ecto refuses empty strings)


# --------------------------------------------------------------------------- errors


class MrmError(Exception):
    """Any failure talking to Mining Rig Monitor."""

    kind = "error"


class MrmUnauthorized(MrmError):
    """HTTP 401: the API code is not known to the dashboard."""

    kind = "unauthorized"


class MrmTimeout(MrmError):
    kind = "timeout"


class MrmUnavailable(MrmError):
    """Connection refused/reset, DNS failure, or an HTTP 5xx."""

    kind = "unavailable"


class MrmBadResponse(MrmError):
    """Another HTTP error (4xx other than 401, e.g. 422 validation) or an answer that is not the expected JSON."""

    kind = "bad_response"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- HTTP client


@dataclass(frozen=True)
class ExpectedStatus:
    asic_on: bool
    light_on: bool

    @classmethod
    def from_json(cls, data: object) -> ExpectedStatus:
        if not isinstance(data, dict):
            raise MrmBadResponse(f"expected status is not an object: {str(data)[:80]!r}")
        asic = data.get("asic_expected_status")
        light = data.get("light_expected_status", "off")
        if asic not in ("on", "off") or light not in ("on", "off"):
            raise MrmBadResponse(f"expected status has unknown values: asic={asic!r} light={light!r}")
        return cls(asic_on=asic == "on", light_on=light == "on")


class MrmClient:
    """Async JSON client for the Mining Rig Monitor ASIC API (aiohttp: TLS, chunked bodies, timeouts)."""

    def __init__(self, base_url: str = "http://127.0.0.1:4000/api/v1", timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"MrmClient({self.base_url})"

    async def post_specs(self, api_code: str, specs: Mapping[str, Any]) -> Any:
        return await self.request("POST", "/asic_miners/specs", specs, api_code=api_code)

    async def post_logs(self, api_code: str, data: Mapping[str, Any]) -> Any:
        return await self.request("POST", "/asic_miners/logs", data, api_code=api_code)

    async def expected_status(self, api_code: str) -> ExpectedStatus:
        return ExpectedStatus.from_json(await self.request("GET", "/asic_miners/expected_status", api_code=api_code))

    async def expected_status_bulk(self, api_codes: Sequence[str]) -> dict[str, ExpectedStatus]:
        """Codes the dashboard does not know are simply absent from the answer."""
        body = {"asic_api_code_list": list(api_codes)}
        answer = await self.request("POST", "/asic_miners/expected_status_bulk", body)
        if not isinstance(answer, dict):
            raise MrmBadResponse("bulk expected status is not an object")
        return {code: ExpectedStatus.from_json(answer[code]) for code in api_codes if code in answer}

    async def __aenter__(self) -> MrmClient:
        if self._session is None or self._session.closed:
            self._session = self._new_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": f"thermostat/{__version__}", "Accept": "application/json"},
        )

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, api_code: str | None = None
    ) -> Any:
        """One HTTP exchange; the decoded JSON answer (None for an empty body). Raises MrmError subclasses.

        Inside ``async with client:`` one session (connection pool) is shared; outside, each call opens and
        closes its own."""
        if self._session is not None and not self._session.closed:
            return await self._request(self._session, method, path, body, api_code)
        async with self._new_session() as session:
            return await self._request(session, method, path, body, api_code)

    async def _request(self, session: aiohttp.ClientSession, method: str, path: str,
                       body: Mapping[str, Any] | None, api_code: str | None) -> Any:
        headers: dict[str, str] = {}
        if api_code is not None:
            headers["API_CODE"] = api_code
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        try:
            async with session.request(method, self.base_url + path, data=data, headers=headers) as resp:
                status = resp.status
                raw = bytearray()
                async for chunk in resp.content.iter_any():
                    raw += chunk
                    if len(raw) > MAX_RESPONSE_BYTES:
                        raise MrmBadResponse(f"{method} {path}: answer over {MAX_RESPONSE_BYTES} bytes", status)
        except TimeoutError:
            raise MrmTimeout(f"{method} {path}: no answer within {self.timeout:g}s") from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise MrmUnavailable(f"{method} {path}: {getattr(exc, 'strerror', None) or exc}") from None
        except aiohttp.ClientError as exc:  # not HTTP, a broken chunked body, bad headers
            raise MrmBadResponse(f"{method} {path}: not a valid HTTP answer: {exc}") from None
        text = bytes(raw).decode("utf-8", "replace")
        if status == 401:
            raise MrmUnauthorized(f"{method} {path}: 401 {_message(text)}")
        if status >= 500:
            raise MrmUnavailable(f"{method} {path}: HTTP {status} {_message(text)}")
        if not 200 <= status < 300:
            raise MrmBadResponse(f"{method} {path}: HTTP {status} {_message(text)}", status)
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise MrmBadResponse(f"{method} {path}: answer is not JSON: {text[:80]!r}", status) from None


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:120]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return text.strip()[:120]


# --------------------------------------------------------------------------- mapping (pure)


@dataclass(frozen=True)
class MinerInfo:
    """What the specs and the static parts of the monitor data need about one miner."""

    model: str  # e.g. "Avalon Mini 3"
    firmware: str | None
    host: str  # the configured address: lan_ip
    pools: tuple[Mapping[str, Any], ...] = ()  # POOLS entries of the read-only `pools` command
    model_variant: str | None = None  # VERSION.MODEL, e.g. "Mini3"
    software: str | None = None  # e.g. "cgminer 4.11.1"


def miner_info(spec: ModelSpec | None, host: str, version: Reply | None = None,
               pools: Sequence[Mapping[str, Any]] = ()) -> MinerInfo:
    """Build a MinerInfo from the model row and (optionally) a `version` reply."""
    v: Mapping[str, Any] = {}
    if version is not None:
        entries = version.sections.get("VERSION") or []
        v = entries[0] if entries else {}
    firmware = next((str(v[k]) for k in ("LVERSION", "CGVERSION", "VERSION", "BVERSION") if v.get(k)), None)
    cg = v.get("CGMiner")
    return MinerInfo(
        model=spec.display if spec is not None else str(v.get("MODEL") or v.get("PROD") or "Avalon"),
        firmware=firmware,
        host=host,
        pools=tuple(pools),
        model_variant=str(v["MODEL"]) if v.get("MODEL") else None,
        software=f"cgminer {cg}" if cg else None,
    )


def specs_body(info: MinerInfo) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": info.model,
        "firmware_version": info.firmware or UNKNOWN,
        "software_version": info.software or f"thermostat {__version__}",
    }
    if info.model_variant:
        body["model_variant"] = info.model_variant
    return body


def format_uptime(seconds: int | float | None) -> str:
    """Seconds → "DD:HH:MM:SS" (days not capped at 99)."""
    s = max(0, int(seconds or 0))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{s:02d}"


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _pool_state(pool: Mapping[str, Any]) -> str:
    if pool.get("Stratum Active") is True:
        return "Connected"
    status = str(pool.get("Status") or "").strip()
    return status or UNKNOWN


def logs_body(snap: Snapshot, info: MinerInfo) -> dict[str, Any]:
    """Monitor data for POST /asic_miners/logs from the latest snapshot and the miner info."""
    ghs = round((snap.hashrate_ths or 0.0) * 1000.0, 2)  # GHSspd (GH/s), never GHSavg
    body: dict[str, Any] = {
        "hashrate_5_min": ghs,
        "hashrate_uom": HASHRATE_UOM,
        "uptime": format_uptime(snap.uptime_s),
        "hashboard_1_hashrate_5_min": ghs,
    }
    pools = list(info.pools)[:3]
    for n in (1, 2, 3):
        if n > len(pools):
            if n == 1:
                body.update(pool_1_address=UNKNOWN, pool_1_user=UNKNOWN, pool_1_state=UNKNOWN)
            continue
        p = pools[n - 1]
        body[f"pool_{n}_address"] = str(p.get("URL") or p.get("Stratum URL") or UNKNOWN)
        body[f"pool_{n}_user"] = str(p.get("User") or UNKNOWN)
        body[f"pool_{n}_state"] = _pool_state(p)
        for key, name in (("Accepted", "accepted_share"), ("Rejected", "rejected_share")):
            value = _int(p.get(key))
            if value is not None:
                body[f"pool_{n}_{name}"] = value
    if pools and isinstance(pools[0].get("Pool Rejected%"), int | float):
        body["pool_rejection_rate"] = round(float(pools[0]["Pool Rejected%"]) / 100.0, 6)
    if snap.board_temp_c is not None:
        body["hashboard_1_temp_1"] = snap.board_temp_c
    if snap.chip_temp_max_c is not None:
        body["hashboard_1_temp_2"] = snap.chip_temp_max_c
    body["fan_1_speed"] = int(snap.fan_rpm or 0)
    for n in (2, 3, 4):  # Fan2..4 are kept verbatim in `extra` when the firmware reports them
        rpm = _int(snap.extra.get(f"Fan{n}"))
        if rpm:
            body[f"fan_{n}_speed"] = rpm
    body["lan_ip"] = info.host
    body["coin_name"] = COIN
    body["power"] = float(snap.power_w or 0.0)
    return body


# --------------------------------------------------------------------------- reporter


@dataclass
class _Backoff:
    """Exponential backoff of one endpoint; logs once per outage."""

    name: str
    base: float
    maximum: float
    delay: float = 0.0
    failing: bool = False
    failures: int = 0

    def ok(self) -> None:
        if self.failing:
            log.info("Mining Rig Monitor: %s works again (after %d failed tries)", self.name, self.failures)
        self.failing, self.failures, self.delay = False, 0, 0.0

    def failed(self, exc: MrmError) -> float:
        self.failures += 1
        if not self.failing:
            self.failing = True
            log.warning("Mining Rig Monitor: %s failed (%s: %s); retrying with backoff, logged once",
                        self.name, exc.kind, exc)
        self.delay = min(self.maximum, max(self.base, self.delay * 2 if self.delay else self.base))
        return self.delay


@dataclass
class _HeaterReport:
    api_code: str
    specs_done: asyncio.Event = field(default_factory=asyncio.Event)
    info: MinerInfo | None = None
    delivered: ExpectedStatus | None = None
    missing_in_bulk: bool = False


InfoGetter = Callable[[str], Awaitable[MinerInfo]]
SnapshotGetter = Callable[[str], Snapshot | None]
OnExpected = Callable[[str, bool, bool], None]


class MrmReporter:
    """Per-service reporter. `heaters` maps heater id → API code.

    `info_getter(heater_id)` (async) gives model, firmware, host and pools; it is called before the specs and
    before each report (pools refresh); a failure keeps the last known info. `on_expected(heater_id, asic_on,
    light_on)` is called when a heater's expected status is first known and whenever it changes.
    """

    def __init__(
        self,
        client: MrmClient,
        heaters: Mapping[str, str],
        snapshot_getter: SnapshotGetter,
        info_getter: InfoGetter,
        on_expected: OnExpected,
        *,
        poll_interval: float = 5.0,
        report_interval: float = 60.0,
        bulk: bool = True,
        backoff_base: float = 5.0,
        backoff_max: float = 300.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.heaters = {hid: _HeaterReport(code) for hid, code in heaters.items()}
        self.snapshot_getter = snapshot_getter
        self.info_getter = info_getter
        self.on_expected = on_expected
        self.poll_interval = poll_interval
        self.report_interval = report_interval
        self.bulk = bulk and len(self.heaters) > 1
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock: Clock = clock or RealClock()
        self.counters: dict[str, int] = {
            "specs_posted": 0,
            "logs_posted": 0,
            "status_polls": 0,
            "logs_skipped": 0,
            "errors": 0,
            "unauthorized": 0,
            "timeout": 0,
            "unavailable": 0,
            "bad_response": 0,
            "info_errors": 0,
        }
        self.backoffs: dict[str, _Backoff] = {}

    def expected(self, heater_id: str) -> ExpectedStatus | None:
        return self.heaters[heater_id].delivered

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set (or cancelled). Never raises anything but CancelledError."""
        jobs: list[Coroutine[Any, Any, None]] = []
        for hid in self.heaters:
            jobs.append(self._loop(stop, f"specs {hid}", functools.partial(self._specs, hid), None, hid))
            jobs.append(self._loop(stop, f"logs {hid}", functools.partial(self._logs, hid), self.report_interval, hid))
        if self.bulk:
            jobs.append(self._loop(stop, "expected_status_bulk", self._status_bulk, self.poll_interval))
        else:
            for hid in self.heaters:
                jobs.append(self._loop(stop, f"expected_status {hid}", functools.partial(self._status, hid),
                                       self.poll_interval))
        async with self.client:  # one connection pool for every job
            tasks = [asyncio.create_task(job) for job in jobs]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, stop: asyncio.Event, name: str, job: Callable[[], Awaitable[None]], every: float | None,
                    wait_specs_of: str | None = None) -> None:
        backoff = self.backoffs.setdefault(name, _Backoff(name, self.backoff_base, self.backoff_max))
        if every is not None and wait_specs_of is not None:  # logs only after the specs were accepted
            specs = self.heaters[wait_specs_of].specs_done
            if not await self._sleep_until(stop, specs, None):
                return
        while not stop.is_set():
            try:
                await job()
            except MrmError as exc:
                self.counters["errors"] += 1
                self.counters[exc.kind] = self.counters.get(exc.kind, 0) + 1
                delay = backoff.failed(exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must never reach the service
                self.counters["errors"] += 1
                log.exception("Mining Rig Monitor: %s: unexpected error", name)
                delay = backoff.failed(MrmError("internal error"))
            else:
                backoff.ok()
                if every is None:
                    return  # one-shot job (specs) done
                delay = every
            if not await self._sleep_until(stop, None, delay):
                return

    async def _sleep_until(self, stop: asyncio.Event, event: asyncio.Event | None, seconds: float | None) -> bool:
        """Wait for `event` or `seconds` of the clock; False when `stop` came first."""
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
        if event is not None:
            waiters.add(asyncio.ensure_future(event.wait()))
        if seconds is not None:
            waiters.add(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        return not stop.is_set()

    async def _refresh_info(self, hid: str) -> MinerInfo | None:
        rep = self.heaters[hid]
        try:
            info = await self.info_getter(hid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # miner unreachable, bad reply: keep the last known info
            self.counters["info_errors"] += 1
            log.debug("Mining Rig Monitor: heater %s: miner info not refreshed: %s", hid, exc)
            return rep.info
        if rep.info is not None and not info.pools and rep.info.pools:
            info = MinerInfo(info.model, info.firmware or rep.info.firmware, info.host, rep.info.pools,
                             info.model_variant or rep.info.model_variant, info.software or rep.info.software)
        rep.info = info
        return info

    async def _specs(self, hid: str) -> None:
        rep = self.heaters[hid]
        info = await self._refresh_info(hid)
        if info is None:
            raise MrmBadResponse(f"heater {hid}: miner info not available yet")
        await self.client.post_specs(rep.api_code, specs_body(info))
        self.counters["specs_posted"] += 1
        rep.specs_done.set()
        log.info("Mining Rig Monitor: heater %s: specs accepted (%s)", hid, info.model)

    async def _logs(self, hid: str) -> None:
        rep = self.heaters[hid]
        snap = self.snapshot_getter(hid)
        info = await self._refresh_info(hid)
        if snap is None or info is None:
            self.counters["logs_skipped"] += 1
            return
        await self.client.post_logs(rep.api_code, logs_body(snap, info))
        self.counters["logs_posted"] += 1

    async def _status(self, hid: str) -> None:
        status = await self.client.expected_status(self.heaters[hid].api_code)
        self.counters["status_polls"] += 1
        self._deliver(hid, status)

    async def _status_bulk(self) -> None:
        codes = [rep.api_code for rep in self.heaters.values()]
        answer = await self.client.expected_status_bulk(codes)
        self.counters["status_polls"] += 1
        for hid, rep in self.heaters.items():
            if rep.api_code in answer:
                rep.missing_in_bulk = False
                self._deliver(hid, answer[rep.api_code])
                continue
            # An unknown code is left out of the bulk answer: counted, logged once; the others keep polling.
            self.counters["status_missing"] = self.counters.get("status_missing", 0) + 1
            if not rep.missing_in_bulk:
                rep.missing_in_bulk = True
                log.warning("Mining Rig Monitor: no expected status for heater %s in the bulk answer "
                            "(unknown API code?); logged once", hid)

    def _deliver(self, hid: str, status: ExpectedStatus) -> None:
        rep = self.heaters[hid]
        if rep.delivered == status:
            return
        rep.delivered = status
        log.info("Mining Rig Monitor: heater %s expected %s, light %s", hid, "on" if status.asic_on else "off",
                 "on" if status.light_on else "off")
        try:
            self.on_expected(hid, status.asic_on, status.light_on)
        except Exception:
            log.exception("Mining Rig Monitor: heater %s: on_expected failed", hid)


# --------------------------------------------------------------------------- service glue


def reporter_for_service(service: Any, on_expected: OnExpected) -> MrmReporter | None:
    """The reporter for a `thermostat.service.Service` (duck-typed: config, heaters, clock), or None.

    None when `mining_rig_monitor` is not configured or no heater has a readable API code. A code that cannot
    be read (missing file, unset variable) is logged and that heater is left out; heating is not affected.
    """

    cfg = service.config.mining_rig_monitor
    if cfg is None:
        return None
    codes: dict[str, str] = {}
    for hid, h in service.heaters.items():
        if h.cfg.mrm is None:
            continue
        try:
            codes[hid] = h.cfg.mrm.read_api_code(f"heaters.{hid}.mrm").get_secret_value()
        except ConfigError as exc:
            log.error("Mining Rig Monitor: heater %s not reported: %s", hid, exc)
    if not codes:
        return None
    versions: dict[str, Reply] = {}

    async def info(hid: str) -> MinerInfo:
        h = service.heaters[hid]
        if hid not in versions:
            versions[hid] = await h.client.request(Request("version"))
        try:
            pools = await h.client.pools()  # read-only; the last known pools are kept when this fails
        except MinerError:
            pools = []
        return miner_info(h.spec, h.cfg.host, versions[hid], pools)

    def snapshot(hid: str) -> Snapshot | None:
        machine = service.heaters[hid].machine
        return None if machine is None else machine.last_snapshot

    return MrmReporter(
        MrmClient(cfg.base_url, cfg.timeout),
        codes,
        snapshot,
        info,
        on_expected,
        poll_interval=cfg.poll_interval,
        report_interval=cfg.report_interval,
        bulk=cfg.bulk,
        backoff_base=min(5.0, cfg.backoff_max),
        backoff_max=cfg.backoff_max,
        clock=service.clock,
    )


async def set_locate_led(client: Any, spec: ModelSpec, on: bool, heater_id: str = "") -> bool:
    """Locate LED / LED ring on or off through the heater's MinerClient; False (logged) when it did not work."""

    try:
        await client.request(led_request(spec, on))
    except (MinerError, OSError) as exc:
        log.warning("Mining Rig Monitor: heater %s: locate LED %s failed: %s", heater_id, "on" if on else "off", exc)
        return False
    log.info("Mining Rig Monitor: heater %s: locate LED %s", heater_id, "on" if on else "off")
    return True
