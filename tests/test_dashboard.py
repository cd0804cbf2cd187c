"""The built-in dashboard end to end: the real service (real mosquitto, a simulated Mini 3 behind a real TCP socket,
SQLite, a clock 20x faster than real time) serving its page and local API; the page driven in headless Debian
chromium through Selenium and chromedriver; the API checked with an aiohttp client."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from conftest import free_port

from thermostat.clock import ScaledClock
from thermostat.config import ConfigError, config_warnings, load_config
from thermostat.core.heater import HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker

SPEED = 20.0
PASSWORD = "correct horse battery staple"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,1600"]


def write_config(tmp: Path, broker_port: int, miner_port: int, web_port: int, *, password: bool = False) -> Path:
    secret = ""
    if password:
        (tmp / "dashboard.secret").write_text(PASSWORD + "\n")
        secret = ", password_file: dashboard.secret"
    (tmp / "schedule.yaml").write_text(
        """timezone: Europe/Berlin
presets: {comfort: 20, away: 16}
week:
  daily: [{at: "00:00", preset: comfort}]
"""
    )
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: thermo-web, client_id: thermo-web}}
rooms:
  living:
    name: Living room
    sensor: {{topic: sensors/web-living, json_key: temperature, stale_after: 10m}}
    schedule: schedule.yaml
    heaters: [mini3-0]
heaters:
  mini3-0: {{host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 60s, min_off: 10m, max_wakes_per_hour: 6}}
state: {{path: {tmp / 'state.db'}}}
dashboard: {{host: 127.0.0.1, port: {web_port}{secret}}}
outdoor: {{topic: sensors/web-garden}}
"""
    )
    return path


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Rig:
    service: Service
    miner: SimMiner
    url: str
    broker_port: int

    async def reading(self, celsius: float) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker_port) as client:
            await client.publish("sensors/web-living", json.dumps({"temperature": celsius, "humidity": 45.4}), qos=1)

    async def outdoor(self, celsius: float) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker_port) as client:
            await client.publish("sensors/web-garden", f"{celsius}", qos=1)

    def machine(self) -> Any:
        return self.service.heaters["mini3-0"].machine


async def _rig(tmp: Path, broker: Any, *, password: bool) -> AsyncIterator[Rig]:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby", seed=3)
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = free_port()
    service = Service(load_config(write_config(tmp, broker.port, server_port(server), port, password=password)),
                      clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await until(lambda: service.link.connected and service.dashboard is not None, 10, "service and dashboard up")
        rig = Rig(service, miner, f"http://127.0.0.1:{port}", broker.port)
        await until(lambda: rig.machine() is not None and rig.machine().state == HeaterState.STANDBY, 10,
                    "heater found in standby")
        yield rig
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)


@pytest.fixture
async def rig(tmp_path: Path, mqtt_broker: Any) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, mqtt_broker, password=False):
        yield r


@pytest.fixture
async def locked_rig(tmp_path: Path, mqtt_broker: Any) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, mqtt_broker, password=True):
        yield r


# --------------------------------------------------------------------------- the browser


class Browser:
    """Headless chromium through chromedriver; every blocking Selenium call runs in a worker thread."""

    def __init__(self, profile: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service as DriverService

        options = Options()
        options.binary_location = CHROMIUM
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def get(self, url: str) -> None:
        await self.run(self.driver.get, url)

    def _text(self, element_id: str) -> str:
        from selenium.common.exceptions import NoSuchElementException

        try:
            return str(self.driver.find_element("id", element_id).text)
        except NoSuchElementException:
            return ""

    async def text(self, element_id: str) -> str:
        return str(await self.run(self._text, element_id))

    async def wait_text(self, element_id: str, pattern: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = await self.text(element_id)
            if re.search(pattern, last):
                return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"#{element_id}: {last!r} never matched {pattern!r}")

    async def click(self, element_id: str) -> None:
        await self.run(lambda: self.driver.find_element("id", element_id).click())

    async def type(self, element_id: str, text: str, clear: bool = True) -> None:
        def do() -> None:
            element = self.driver.find_element("id", element_id)
            if clear:
                element.clear()
            element.send_keys(text)
        await self.run(do)

    async def select(self, element_id: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        await self.run(lambda: Select(self.driver.find_element("id", element_id)).select_by_value(value))

    async def displayed(self, element_id: str) -> bool:
        return bool(await self.run(lambda: self.driver.find_element("id", element_id).is_displayed()))

    def close(self) -> None:
        self.driver.quit()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    b = await asyncio.to_thread(Browser, tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        await asyncio.to_thread(b.close)


async def test_page_shows_the_house_and_a_boost_click_wakes_the_miner(rig: Rig, browser: Browser) -> None:
    await rig.reading(21.0)  # above the schedule's 20 °C: the heater stays in standby
    await until(lambda: rig.service.rooms["living"].filter.last_value == 21.0, 10, "reading accepted")
    await browser.get(rig.url + "/")
    await browser.wait_text("room-living-name", r"^Living room$")
    await browser.wait_text("room-living-reading", r"^21\.0 °C \(\d+ s ago\)$")
    await browser.wait_text("room-living-humidity", r"^45 %$")
    assert await browser.text("room-living-sensors") == "sensors/web-living: 21.0 °C"
    await rig.outdoor(4.5)
    await browser.wait_text("outdoor", r"^Outdoor 4\.5 °C$")
    assert await browser.text("room-living-target") == "20.0 °C"
    assert await browser.text("room-living-source") == "schedule comfort"
    await browser.wait_text("room-living-action", "^idle$")
    await browser.wait_text("heater-mini3-0-state", "^standby$")
    assert await browser.text("heater-mini3-0-level") == "standby"
    assert rig.miner.wakes == 0 and not rig.miner.hashing

    await browser.type("room-living-boost-temp", "23")
    await browser.click("room-living-boost")
    # the command took the MQTT path: an override until the boost's end, the room wants heat, the miner wakes
    await until(lambda: rig.service.rooms["living"].state.override_temp == 23.0, 10, "override stored")
    until_at = rig.service.rooms["living"].state.override_until
    assert until_at is not None and 3500 < (until_at - rig.service.clock.now()).total_seconds() < 3700
    await until(lambda: rig.miner.wakes == 1, 20, "the simulated miner woken by the boost")
    await browser.wait_text("room-living-target", r"^23\.0 °C$")
    await browser.wait_text("room-living-source", r"^override until \d\d:\d\d$")
    await browser.wait_text("room-living-action", "^heating$")
    await until(lambda: rig.machine().state == HeaterState.RUNNING and rig.miner.hashing, 30, "hashing")
    await browser.wait_text("heater-mini3-0-state", "^running$")
    level = rig.machine().confirmed_level
    await browser.wait_text("heater-mini3-0-level", f"^{level}$")
    assert re.fullmatch(r"\d+ W", await browser.text("heater-mini3-0-watts"))

    # manual level from the heater's row, and back to auto
    await browser.select("heater-mini3-0-select", "standby")
    await browser.click("heater-mini3-0-apply")
    await until(lambda: not rig.service.heaters["mini3-0"].controlled, 10, "manual")
    await browser.wait_text("heater-mini3-0-reason", "^manual: standby$")
    await browser.select("heater-mini3-0-select", "auto")
    await browser.click("heater-mini3-0-apply")
    await until(lambda: rig.service.heaters["mini3-0"].controlled, 10, "auto again")
    # mode off: standby at once; mode heat again: the boost wants heat, the minimum off time holds the heater
    await browser.click("room-living-off")
    await until(lambda: rig.machine().state == HeaterState.STANDBY and not rig.miner.hashing, 30, "standby")
    await browser.wait_text("room-living-action", "^off$")
    await browser.click("room-living-heat")
    await until(lambda: rig.service.rooms["living"].state.mode == "heat", 10, "room heat")
    await browser.wait_text("heater-mini3-0-reason", r"^minimum off until \d\d:\d\d$")
    await browser.wait_text("room-living-reason", r"mini3-0: minimum off until \d\d:\d\d")
    assert rig.miner.wakes == 1
    # cancel the override: back to the schedule's 20 °C
    await browser.click("room-living-cancel")
    await until(lambda: rig.service.rooms["living"].state.override_temp is None, 10, "override cancelled")
    await browser.wait_text("room-living-target", r"^20\.0 °C$")
    await browser.wait_text("room-living-source", r"^schedule comfort$")
    # away: the schedule's away preset until cancelled; back to the schedule
    await browser.click("room-living-away")
    await until(lambda: rig.service.rooms["living"].state.preset == "away", 10, "away")
    await browser.wait_text("room-living-target", r"^16\.0 °C$")
    await browser.wait_text("room-living-source", r"^away until cancelled$")
    await browser.click("room-living-schedule")
    await until(lambda: rig.service.rooms["living"].state.preset is None, 10, "schedule again")
    await browser.wait_text("room-living-source", r"^schedule comfort$")
    # the chart: a fresh page draws the store's history (a row per simulated minute) as SVG paths
    rows = len(rig.service.store.history(room="living"))
    assert rows >= 2
    await browser.get(rig.url + "/")
    note = await browser.wait_text("room-living-chart-note", r"^[1-9]\d* points$")
    assert int(note.split()[0]) >= rows
    paths = await browser.run(lambda: browser.driver.find_elements("css selector", "#room-living-chart path.reading"))
    assert len(paths) == 1


async def test_a_wrong_password_is_refused_and_the_right_one_opens_the_page(locked_rig: Rig, browser: Browser) -> None:
    await browser.get(locked_rig.url + "/")
    await browser.wait_text("status", "^password required$")
    assert await browser.displayed("login") and not await browser.displayed("rooms")
    await browser.type("password", "guess")
    await browser.click("login-button")
    await browser.wait_text("login-error", "^wrong password$")
    assert not await browser.displayed("rooms") and await browser.text("room-living-name") == ""
    assert locked_rig.service.dashboard.counters["logins_failed"] == 1
    await browser.type("password", PASSWORD)
    await browser.click("login-button")
    await browser.wait_text("room-living-name", "^Living room$")
    assert await browser.displayed("rooms") and not await browser.displayed("login")
    # a command from the logged-in page works; logging out closes the page again
    await browser.click("room-living-off")
    await until(lambda: locked_rig.service.rooms["living"].state.mode == "off", 10, "room off")
    await browser.click("logout")
    await browser.wait_text("status", "^password required$")
    await browser.get(locked_rig.url + "/")
    await browser.wait_text("status", "^password required$")


async def _page_session(http: aiohttp.ClientSession, url: str) -> str:
    """GET / like a browser: the session cookie lands in the jar; the CSRF token is in the page."""
    async with http.get(url + "/") as resp:
        assert resp.status == 200
        html = await resp.text()
    match = re.search(r'<meta name="csrf" content="([^"]+)">', html)
    assert match
    return match.group(1)


async def test_api_refuses_cross_site_and_foreign_host_requests(rig: Rig) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # IP-address cookies
        async with http.get(rig.url + "/api/state") as resp:
            doc = await resp.json()
        assert doc["api"] == 1 and [r["id"] for r in doc["rooms"]] == ["living"]
        assert doc["heaters"][0]["state"] == "standby" and doc["heaters"][0]["levels"][0] == "standby"
        csrf = await _page_session(http, rig.url)
        post = rig.url + "/api/room/living/mode"
        # no token, a wrong token, a cross-site Origin: refused, nothing changes
        for headers in ({}, {"X-CSRF-Token": "x" * 43},
                        {"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
                        {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}):
            async with http.post(post, json={"payload": "off"}, headers=headers) as resp:
                assert resp.status == 403, headers
        assert rig.service.rooms["living"].state.mode == "heat"
        # a DNS-rebinding page reaches the loopback port under a foreign host name: refused
        async with http.get(rig.url + "/api/state", headers={"Host": "evil.example"}) as resp:
            assert resp.status == 421
        # same origin with the token: applied through the MQTT command path, and rejected the same way
        good = {"X-CSRF-Token": csrf, "Origin": rig.url}
        async with http.post(post, json={"payload": "off"}, headers=good) as resp:
            assert resp.status == 200
        assert rig.service.rooms["living"].state.mode == "off"
        rejected = rig.service.counters["commands_rejected"]
        async with http.post(rig.url + "/api/room/living/target", json={"payload": "99"}, headers=good) as resp:
            assert resp.status == 400
            assert "outside" in (await resp.json())["error"]
        assert rig.service.counters["commands_rejected"] == rejected + 1
        for path, body in (("/api/room/living/override", {"payload": {"temp": 22, "hours": 2}}),
                           ("/api/room/living/mode", {"nope": 1}), ("/api/room/living/mode", None)):
            async with http.post(rig.url + path, json=body, headers=good) as resp:
                assert resp.status == 400, path
        async with http.post(rig.url + "/api/room/kitchen/mode", json={"payload": "off"}, headers=good) as resp:
            assert resp.status == 404
        async with http.get(rig.url + "/api/history?room=living&hours=1e9") as resp:
            assert resp.status == 400


async def test_password_protects_the_api_and_accepts_a_bearer_token(locked_rig: Rig) -> None:
    url = locked_rig.url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # IP-address cookies
        csrf = await _page_session(http, url)
        async with http.get(url + "/api/state") as resp:
            assert resp.status == 401
        async with http.post(url + "/api/room/living/mode", json={"payload": "off"},
                             headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 401
        async with http.post(url + "/api/login", json={"password": PASSWORD}) as resp:
            assert resp.status == 403  # a login needs the page's CSRF token too
        async with http.get(url + "/api/state", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.get(url + "/api/state", headers={"Authorization": f"Bearer {PASSWORD}"}) as resp:
            assert resp.status == 200
        async with http.post(url + "/api/room/living/mode", json={"payload": "off"},
                             headers={"Authorization": f"Bearer {PASSWORD}"}) as resp:
            assert resp.status == 200
    assert locked_rig.service.rooms["living"].state.mode == "off"


def test_config_refuses_an_open_bind_without_a_password(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(
        """rooms:
  living:
    sensor: {topic: sensors/x}
    target: 21
    heaters: [h]
heaters:
  h: {host: 127.0.0.1, model: mini3}
dashboard:
  host: 0.0.0.0
"""
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    text = str(exc.value)
    assert re.search(r"house\.yaml:\d+:\d+: dashboard: .*0\.0\.0\.0 \(not loopback\) needs password_file or "
                     r"password_env", text), text
    path.write_text(path.read_text() + "  password_file: secret\n")
    assert config_warnings(load_config(path)) == [
        f"dashboard.password_file: {tmp_path / 'secret'} does not exist (the dashboard will not start)"]
    (tmp_path / "secret").write_text("s3cret\n")
    config = load_config(path)
    assert config.dashboard.read_password().get_secret_value() == "s3cret"  # type: ignore[union-attr]
    assert config_warnings(config) == []
