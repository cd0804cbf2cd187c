"""Mining Rig Monitor reporting (thermostat.adapters.mrm) against a test double of its /api/v1 ASIC endpoints.

The double follows docs/mining-rig-monitor.md: per-code state, `API_CODE` header auth, 401
``{"message": "Invalid API_CODE"}`` for an unknown code, required-field checks (422), the bulk endpoint
without auth. It records every request. The last test runs the real service (mosquitto, SimMiner over TCP,
ScaledClock) and flips the dashboard's remote switch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import free_port

from thermostat.adapters import ha
from thermostat.adapters.http import WebServer
from thermostat.adapters.mrm import (
    ExpectedStatus,
    MinerInfo,
    MrmClient,
    MrmReporter,
    MrmUnauthorized,
    format_uptime,
    logs_body,
    miner_info,
)
from thermostat.domain.snapshot import Snapshot
from thermostat.miners.avalon import Request, decode_reply, encode, parse_pools, parse_stats
from thermostat.miners.models import MODELS
from thermostat.service import ha_bridge
from thermostat.sim.miner import SimMiner

SPECS_REQUIRED = ("model", "firmware_version", "software_version")
LOGS_REQUIRED = ("hashrate_5_min", "hashrate_uom", "uptime", "pool_1_address", "pool_1_user", "pool_1_state",
                 "fan_1_speed", "lan_ip", "coin_name", "power")
CODE_A = "873337a5b4a56821a342c744f32acf1e"
CODE_B = "9d42acfdaa46208839effa7ba032bdc3"


# --------------------------------------------------------------------------- the test double


@dataclass
class Recorded:
    method: str
    path: str
    api_code: str | None
    body: Any


@dataclass
class Miner:
    name: str
    asic: str = "on"
    light: str = "off"
    specs: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


class FakeMrm:
    """Mining Rig Monitor's ASIC API on a loopback port (an aiohttp server in the test's loop), per-code state."""

    PREFIX = "/api/v1"

    def __init__(self) -> None:
        self.miners: dict[str, Miner] = {}
        self.requests: list[Recorded] = []
        self.delay_s = 0.0  # > client timeout: simulate a server that hangs
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self.server = WebServer(app, "127.0.0.1", 0)

    async def start(self, port: int = 0) -> FakeMrm:
        self.server.port = port
        await self.server.start()
        return self

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PREFIX}"

    async def close(self) -> None:
        await self.server.close()

    def calls(self, method: str, endpoint: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == self.PREFIX + endpoint]

    async def _handle(self, req: web.Request) -> web.Response:
        raw = await req.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        code = req.headers.get("API_CODE")
        self.requests.append(Recorded(req.method, req.path, code, body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, answer = self._route(req.method, req.path, code, body)
        return web.json_response(answer, status=status)

    def _route(self, method: str, path: str, code: str | None, body: Any) -> tuple[int, Any]:
        endpoint = path.removeprefix(self.PREFIX)
        if (method, endpoint) == ("GET", "/ping"):
            return 200, {"message": "pong"}
        if (method, endpoint) == ("POST", "/asic_miners/expected_status_bulk"):
            codes = body.get("asic_api_code_list") if isinstance(body, dict) else None
            if not isinstance(codes, list):
                return 422, {"message": "asic_api_code_list is required"}
            return 200, {c: {"asic_expected_status": self.miners[c].asic,
                             "light_expected_status": self.miners[c].light} for c in codes if c in self.miners}
        auth_required = {("POST", "/asic_miners/specs"), ("POST", "/asic_miners/logs"),
                         ("GET", "/asic_miners/expected_status")}
        if (method, endpoint) not in auth_required:
            return 404, {"message": "Not Found"}
        miner = self.miners.get(code or "")
        if miner is None:
            return 401, {"message": "Invalid API_CODE"}
        if endpoint == "/asic_miners/expected_status":
            return 200, {"name": miner.name, "asic_expected_status": miner.asic,
                         "light_expected_status": miner.light}
        required = SPECS_REQUIRED if endpoint.endswith("specs") else LOGS_REQUIRED
        missing = [k for k in required if not isinstance(body, dict) or body.get(k) in (None, "")]
        if missing:
            return 422, {"errors": {k: ["can't be blank"] for k in missing}}
        (miner.specs if endpoint.endswith("specs") else miner.logs).append(body)
        return 200, {"message": "ok"}


@pytest.fixture
async def mrm() -> AsyncIterator[FakeMrm]:
    fake = await FakeMrm().start()
    fake.miners[CODE_A] = Miner("heater-a")
    fake.miners[CODE_B] = Miner("heater-b")
    yield fake
    await fake.close()


# --------------------------------------------------------------------------- helpers


class SimSource:
    """A SimMiner answered in-process: real snapshots, `version` and `pools` replies."""

    def __init__(self, model: str = "q", host: str = "192.168.1.30") -> None:
        self.t = 1_700_000_000.0
        self.spec = MODELS[model]
        self.host = host
        self.miner = SimMiner(self.spec, time_fn=lambda: self.t, start_state="mining")
        self.t += 5
        self.info_calls = 0

    def ask(self, command: str) -> Any:
        raw = self.miner.handle(encode(Request(command), "json"))
        assert raw is not None
        return decode_reply(raw)

    def snapshot(self, _hid: str) -> Snapshot:
        return parse_stats(self.ask("estats"))

    async def info(self, _hid: str) -> MinerInfo:
        self.info_calls += 1
        return miner_info(self.spec, self.host, self.ask("version"), parse_pools(self.ask("pools")))


@dataclass
class Run:
    reporter: MrmReporter
    stop: asyncio.Event
    task: asyncio.Task[None]
    expected: list[tuple[str, bool, bool]]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


def start(base_url: str, codes: dict[str, str], source: SimSource, *, bulk: bool = False, timeout: float = 2.0,
          poll: float = 0.05, report: float = 0.1) -> Run:
    expected: list[tuple[str, bool, bool]] = []
    reporter = MrmReporter(
        MrmClient(base_url, timeout=timeout), codes, source.snapshot, source.info,
        lambda hid, asic, light: expected.append((hid, asic, light)),
        poll_interval=poll, report_interval=report, bulk=bulk, backoff_base=0.05, backoff_max=0.2,
    )
    stop = asyncio.Event()
    return Run(reporter, stop, asyncio.create_task(reporter.run(stop)), expected)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "thermostat.mrm" and r.levelno >= logging.WARNING and text in r.getMessage()]


# --------------------------------------------------------------------------- pure mapping


def test_uptime_format() -> None:
    assert format_uptime(0) == "00:00:00:00"
    assert format_uptime(7 * 86400 + 23 * 3600 + 50 * 60 + 20) == "07:23:50:20"
    assert format_uptime(None) == "00:00:00:00"


def test_logs_mapping_from_a_real_sim_snapshot() -> None:
    src = SimSource("q")
    snap = src.snapshot("x")
    body = logs_body(snap, miner_info(src.spec, src.host, src.ask("version"), parse_pools(src.ask("pools"))))
    assert all(body.get(k) not in (None, "") for k in LOGS_REQUIRED)
    assert body["hashrate_uom"] == "GH/s"
    assert body["hashrate_5_min"] == pytest.approx(snap.hashrate_ths * 1000, rel=1e-6)  # type: ignore[operator]
    assert body["uptime"] == format_uptime(snap.uptime_s)
    assert body["pool_1_address"].startswith("stratum+tcp://") and body["pool_1_user"] == "sim.q"
    assert body["pool_1_state"] == "Connected"
    assert body["fan_1_speed"] == snap.fan_rpm and isinstance(body["fan_1_speed"], int)
    assert body["hashboard_1_temp_1"] == snap.board_temp_c and body["hashboard_1_temp_2"] == snap.chip_temp_max_c
    assert body["power"] == snap.power_w and body["lan_ip"] == "192.168.1.30" and body["coin_name"] == "BTC"
    # nothing known about pools yet: required strings are still present (the server refuses blanks)
    bare = logs_body(snap, MinerInfo("Avalon Q", None, "10.0.0.5"))
    assert all(bare.get(k) not in (None, "") for k in LOGS_REQUIRED)


# --------------------------------------------------------------------------- against the double


async def test_specs_once_then_logs_every_interval(mrm: FakeMrm) -> None:
    src = SimSource("q")
    run = start(mrm.base_url, {"q1": CODE_A}, src)
    await until(lambda: len(mrm.miners[CODE_A].logs) >= 3, 5, "three reports")
    await run.finish()
    specs = mrm.calls("POST", "/asic_miners/specs")
    assert len(specs) == 1 and specs[0].api_code == CODE_A
    firmware = src.ask("version").sections["VERSION"][0]["LVERSION"]
    assert specs[0].body == {"model": "Avalon Q", "model_variant": "Q", "firmware_version": firmware,
                             "software_version": "cgminer 4.11.1"}
    logs = mrm.miners[CODE_A].logs
    assert all(all(entry.get(k) not in (None, "") for k in LOGS_REQUIRED) for entry in logs)
    assert logs[-1]["lan_ip"] == "192.168.1.30" and logs[-1]["hashrate_uom"] == "GH/s"
    assert all(r.api_code == CODE_A for r in mrm.calls("POST", "/asic_miners/logs"))
    assert run.expected == [("q1", True, False)]  # delivered once, not on every poll
    assert len(mrm.calls("GET", "/asic_miners/expected_status")) >= 3
    assert run.reporter.counters["errors"] == 0 and run.reporter.counters["specs_posted"] == 1


async def test_expected_status_changes_are_delivered(mrm: FakeMrm) -> None:
    run = start(mrm.base_url, {"q1": CODE_A}, SimSource("q"))
    await until(lambda: run.expected == [("q1", True, False)], 5, "first status")
    mrm.miners[CODE_A].asic, mrm.miners[CODE_A].light = "off", "on"
    await until(lambda: run.expected[-1] == ("q1", False, True), 5, "remote off + light")
    mrm.miners[CODE_A].asic = "on"
    await until(lambda: run.expected[-1] == ("q1", True, True), 5, "remote on")
    await run.finish()
    assert len(run.expected) == 3


async def test_401_backs_off_logs_once_counts_and_never_raises(mrm: FakeMrm,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "thermostat.mrm")
    run = start(mrm.base_url, {"q1": "not-a-known-code"}, SimSource("q"))
    await until(lambda: len(mrm.calls("POST", "/asic_miners/specs")) >= 4, 5, "specs retried")
    await asyncio.sleep(0.3)
    assert not run.task.done()  # still running: the error stayed inside
    await run.finish()
    assert run.reporter.counters["unauthorized"] >= 4
    assert len(warnings_about(caplog, "specs q1")) == 1  # once per outage, not per try
    assert len(warnings_about(caplog, "expected_status q1")) == 1
    assert not mrm.calls("POST", "/asic_miners/logs")  # no monitor data before the specs were accepted
    assert run.expected == []  # nothing known: the heater is left to the thermostat
    assert len(mrm.calls("POST", "/asic_miners/specs")) < 40  # backed off (0.05 → 0.2 s), not hammered
    with pytest.raises(MrmUnauthorized, match="Invalid API_CODE"):
        await MrmClient(mrm.base_url).expected_status("nope")


async def test_server_down_backs_off_logs_once_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "thermostat.mrm")
    port = free_port()
    run = start(f"http://127.0.0.1:{port}/api/v1", {"q1": CODE_A}, SimSource("q"))
    await until(lambda: run.reporter.counters["unavailable"] >= 6, 5, "failures counted")
    assert not run.task.done()
    assert len(warnings_about(caplog, "specs q1")) == 1
    assert len(warnings_about(caplog, "expected_status q1")) == 1
    # the dashboard comes up on that port: everything recovers by itself
    fake = await FakeMrm().start(port)
    try:
        fake.miners[CODE_A] = Miner("heater-a", asic="off")
        await until(lambda: len(fake.miners[CODE_A].logs) >= 1 and run.expected == [("q1", False, False)], 5,
                    "recovery")
        await run.finish()
    finally:
        await fake.close()
    assert len(warnings_about(caplog, "specs q1")) == 1
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_chunked_garbage_and_oversized_answers() -> None:
    """The client (aiohttp) decodes a chunked answer; a non-HTTP, non-JSON or oversized one is a typed error."""
    from thermostat.adapters.mrm import MAX_RESPONSE_BYTES, MrmBadResponse, MrmTimeout

    async def chunked(request: web.Request) -> web.StreamResponse:
        assert request.headers["API_CODE"] == CODE_A
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"asic_expected_status": ')
        await resp.write(b'"off", "light_expected_status": "on"}')
        await resp.write_eof()
        return resp

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b" " * (MAX_RESPONSE_BYTES + 10), content_type="application/json")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_get("/a/api/v1/asic_miners/expected_status", chunked)
    app.router.add_get("/b/api/v1/asic_miners/expected_status", html)
    app.router.add_get("/c/api/v1/asic_miners/expected_status", huge)
    app.router.add_get("/d/api/v1/asic_miners/expected_status", slow)
    server = WebServer(app, "127.0.0.1", 0)
    await server.start()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x00\x01 this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(garbage, "127.0.0.1", 0)
    raw_port = raw.sockets[0].getsockname()[1]
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with MrmClient(f"{base}/a/api/v1") as client:
            assert await client.expected_status(CODE_A) == ExpectedStatus(asic_on=False, light_on=True)
        with pytest.raises(MrmBadResponse, match="not JSON"):
            await MrmClient(f"{base}/b/api/v1").expected_status(CODE_A)
        with pytest.raises(MrmBadResponse, match="answer over"):
            await MrmClient(f"{base}/c/api/v1").expected_status(CODE_A)
        with pytest.raises(MrmTimeout):
            await MrmClient(f"{base}/d/api/v1", timeout=0.2).expected_status(CODE_A)
        with pytest.raises(MrmBadResponse, match="not a valid HTTP answer"):
            await MrmClient(f"http://127.0.0.1:{raw_port}/api/v1").expected_status(CODE_A)
    finally:
        raw.close()
        await server.close()


async def test_timeout_is_counted(mrm: FakeMrm) -> None:
    mrm.delay_s = 0.5
    run = start(mrm.base_url, {"q1": CODE_A}, SimSource("q"), timeout=0.1)
    await until(lambda: run.reporter.counters["timeout"] >= 2, 5, "timeouts counted")
    assert not run.task.done()
    mrm.delay_s = 0.0
    await run.finish()


async def test_bulk_polling(mrm: FakeMrm, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "thermostat.mrm")
    mrm.miners[CODE_B].asic = "off"
    codes = {"a": CODE_A, "b": CODE_B, "c": "unknown-code"}
    run = start(mrm.base_url, codes, SimSource("q"), bulk=True)
    await until(lambda: len(mrm.calls("POST", "/asic_miners/expected_status_bulk")) >= 3, 5, "bulk polls")
    await until(lambda: {e[0] for e in run.expected} == {"a", "b"}, 5, "statuses delivered")
    await run.finish()
    assert not mrm.calls("GET", "/asic_miners/expected_status")  # bulk only
    bulk = mrm.calls("POST", "/asic_miners/expected_status_bulk")
    assert bulk[0].api_code is None and bulk[0].body == {"asic_api_code_list": [CODE_A, CODE_B, "unknown-code"]}
    assert ("a", True, False) in run.expected and ("b", False, False) in run.expected
    assert run.reporter.counters["status_missing"] >= 3
    assert len(warnings_about(caplog, "heater c in the bulk answer")) == 1


# --------------------------------------------------------------------------- Home Assistant


def test_remote_switch_sensor_validates() -> None:
    import ha_schema

    t = ha.Topics("thermostat", "homeassistant")
    heater = ha.HeaterInfo("q1", "Avalon Q", "living", "q", MODELS["q"].level_names, remote=True)
    configs = ha.heater_sensor_configs(t, heater)
    remote = [p for _, p in configs if p["unique_id"].endswith("_remote")]
    assert len(remote) == 1 and remote[0]["options"] == ["on", "off"]
    assert remote[0]["state_topic"] == "thermostat/heater/q1/remote"
    for topic, payload in configs:
        assert ha_schema.problems(topic, payload) == [], topic
    plain = ha.heater_sensor_configs(t, ha.HeaterInfo("q1", "Avalon Q", "living", "q", MODELS["q"].level_names))
    assert not [p for _, p in plain if p["unique_id"].endswith("_remote")]


# --------------------------------------------------------------------------- the real service


@pytest.fixture
async def mrm_house(tmp_path: Path, mqtt_broker: Any, mrm: FakeMrm,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, Any, FakeMrm]]:
    from test_service import SPEED, House

    from thermostat.clock import ScaledClock
    from thermostat.sim.server import close_server, serve_miner, server_port

    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["q"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby", seed=3)
    server = await serve_miner(miner, "127.0.0.1", 0)
    monkeypatch.setenv("THERMO_TEST_MRM_CODE", CODE_A)
    path = tmp_path / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {mqtt_broker.port}, base_topic: thermo, client_id: thermo-mrm}}
rooms:
  living:
    sensor: {{topic: sensors/living, json_key: temperature, stale_after: 10m}}
    target: 21
    heaters: [q1]
heaters:
  q1: {{host: 127.0.0.1, port: {server_port(server)}, model: q, min_on: 60s, min_off: 60s, max_wakes_per_hour: 6,
        mrm: {{api_code_env: THERMO_TEST_MRM_CODE}}}}
state: {{path: {tmp_path / 'state.db'}}}
mining_rig_monitor: {{base_url: "{mrm.base_url}", poll_interval: 5s, report_interval: 60s, timeout: 2s}}
"""
    )
    house = House(tmp_path, mqtt_broker, clock, [miner], [server], path)
    yield house, miner, mrm
    if house.task is not None and not house.task.done():
        await house.stop_service()
    await close_server(server)


@pytest.mark.broker
async def test_remote_off_holds_the_heater_in_standby_and_on_releases_it(
    mrm_house: tuple[Any, SimMiner, FakeMrm],
) -> None:
    from thermostat.core.heater import HeaterState

    house, miner, fake = mrm_house
    fake.miners[CODE_A].asic = "off"  # the operator switched it off before we started
    service = await house.start_service()
    assert service.mrm is not None and list(service.mrm.heaters) == ["q1"]
    h = service.heaters["q1"]
    await until(lambda: h.remote_off, 10, "remote off polled")
    await until(lambda: h.machine is not None and h.machine.state == HeaterState.STANDBY, 10, "standby found")
    for _ in range(3):  # the room is cold, and stays cold
        await house.reading(16.0)
        await asyncio.sleep(1.0)  # 20 simulated seconds each
    assert h.machine.state == HeaterState.STANDBY and not miner.hashing
    room = service.rooms["living"]
    reason = dict(ha_bridge.room_state_messages(service, room))["thermo/room/living/reason"]
    assert "remote off (Mining Rig Monitor)" in reason
    assert dict(ha_bridge.heater_state_messages(service, h))["thermo/heater/q1/remote"] == "off"
    # specs and monitor data went out with this heater's code
    await until(lambda: len(fake.miners[CODE_A].logs) >= 1, 10, "monitor data posted")
    assert len(fake.miners[CODE_A].specs) == 1 and fake.miners[CODE_A].specs[0]["model"] == "Avalon Q"
    assert fake.miners[CODE_A].logs[0]["lan_ip"] == "127.0.0.1"
    # light on: the Q lists no `led` in its `ascset|0,help` (issue 16), so nothing is sent to it
    fake.miners[CODE_A].light = "on"
    polled = len(fake.miners[CODE_A].logs)
    await until(lambda: len(fake.miners[CODE_A].logs) > polled, 10, "monitor polled again")
    assert not miner._led_on and not any(",led," in text for _t, text in miner.commands_log)
    # the operator hands it back: the thermostat heats the cold room again
    fake.miners[CODE_A].asic = "on"
    await until(lambda: not h.remote_off, 10, "remote on polled")
    for _ in range(20):
        await house.reading(16.0)
        if h.machine.state == HeaterState.RUNNING:
            break
        await asyncio.sleep(1.0)
    await until(lambda: h.machine.state == HeaterState.RUNNING and miner.hashing, 30,
                "heating again")
    assert dict(ha_bridge.heater_state_messages(service, h))["thermo/heater/q1/remote"] == "on"
    # off again while running: standby at once (a safety want: no minimum on time), and the event says why
    fake.miners[CODE_A].asic = "off"
    await until(lambda: h.machine.state == HeaterState.STANDBY and not miner.hashing, 30,
                "standby after remote off while running")
    assert any(ev.reason == "remote off (Mining Rig Monitor)" for ev in service.events if ev.heater == "q1")
    await house.stop_service()


# --------------------------------------------------------------------------- configuration


def _house_yaml(tmp_path: Path, mrm_line: str, section: str = "mining_rig_monitor: {bulk: false}\n") -> Path:
    path = tmp_path / "house.yaml"
    path.write_text(
        "rooms:\n  living: {sensor: {topic: s/living}, target: 20, heaters: [q1]}\n"
        f"heaters:\n  q1: {{host: 192.168.1.30, model: q, mrm: {mrm_line}}}\n" + section
    )
    return path


def test_config_api_code_never_inline(tmp_path: Path) -> None:
    from thermostat.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="inline API codes are not allowed"):
        load_config(_house_yaml(tmp_path, "{api_code: abc}"))
    with pytest.raises(ConfigError, match="exactly one of api_code_file or api_code_env"):
        load_config(_house_yaml(tmp_path, "{api_code_file: a, api_code_env: B}"))
    with pytest.raises(ConfigError, match="exactly one of api_code_file or api_code_env"):
        load_config(_house_yaml(tmp_path, "{}"))


def test_config_code_file_resolved_read_lazily_and_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thermostat.config import ConfigError, config_warnings, load_config

    cfg = load_config(_house_yaml(tmp_path, "{api_code_file: q1.code}"))
    mrm_cfg, code = cfg.mining_rig_monitor, cfg.heaters["q1"].mrm
    assert mrm_cfg is not None and code is not None
    assert mrm_cfg.base_url == "http://127.0.0.1:4000/api/v1" and mrm_cfg.poll_interval == 5.0
    assert mrm_cfg.report_interval == 60.0 and mrm_cfg.bulk is False
    assert code.api_code_file == tmp_path / "q1.code"
    assert any("q1.mrm.api_code_file" in w and "does not exist" in w for w in config_warnings(cfg))
    with pytest.raises(ConfigError, match="cannot read"):
        code.read_api_code()
    (tmp_path / "q1.code").write_text(CODE_A + "\n")
    assert code.read_api_code().get_secret_value() == CODE_A
    assert CODE_A not in repr(code.read_api_code())
    env = load_config(_house_yaml(tmp_path, "{api_code_env: MRM_TEST_CODE_Q1}", section=""))
    monkeypatch.delenv("MRM_TEST_CODE_Q1", raising=False)
    warnings = config_warnings(env)
    assert any("MRM_TEST_CODE_Q1 is not set" in w for w in warnings)
    assert any("no `mining_rig_monitor` section" in w for w in warnings)
