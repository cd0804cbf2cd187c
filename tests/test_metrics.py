"""The Prometheus endpoint: the real service with `metrics.enabled`, scraped over HTTP, the exposition
text checked by a strict parser written here (not by the code under test), values against the service."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiomqtt
import pytest
from conftest import free_port

from thermostat.adapters import metrics
from thermostat.clock import ScaledClock
from thermostat.config import load_config
from thermostat.core.heater import HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

SPEED = 20.0

# --- a strict parser for the text exposition format 0.0.4 ------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_VALUE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$|^NaN$|^[+-]Inf$")
_HELP = re.compile(rf"^# HELP ({_NAME}) (.*)$")
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)(?: (-?\d+))?$")
_LABEL_PAIR = re.compile(rf'({_LABEL})="((?:[^"\\\n]|\\[\\"n])*)"')


@dataclass
class Fam:
    name: str
    kind: str | None = None
    help: str | None = None
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def _labels(text: str, where: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _LABEL_PAIR.match(text, pos)
        assert m, f"{where}: bad label syntax at {text[pos:]!r}"
        out.append((m.group(1), _unescape(m.group(2))))
        pos = m.end()
        if pos < len(text):
            assert text[pos] == ",", f"{where}: expected ',' at {text[pos:]!r}"
            pos += 1
            assert pos < len(text), f"{where}: trailing comma"
    names = [k for k, _ in out]
    assert len(set(names)) == len(names), f"{where}: duplicate label name"
    assert not any(k.startswith("__") for k in names), f"{where}: reserved label name"
    return tuple(sorted(out))


def parse_exposition(text: str) -> dict[str, Fam]:
    """Families by name. Raises AssertionError on anything the format (or our conventions) forbids."""
    assert text.endswith("\n"), "exposition must end with a newline"
    fams: dict[str, Fam] = {}
    closed: set[str] = set()  # families whose samples are finished (samples of a family are contiguous)
    current: str | None = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        assert line.strip() == line and line, f"{where}: empty line or stray whitespace"
        if line.startswith("#"):
            if m := _HELP.match(line):
                fam = fams.setdefault(m.group(1), Fam(m.group(1)))
                assert fam.help is None and not fam.samples, f"{where}: HELP twice or after samples"
                assert re.fullmatch(r"(?:[^\\\n]|\\[\\n])*", m.group(2)), f"{where}: bad escape in HELP"
                fam.help = m.group(2)
            elif m := _TYPE.match(line):
                fam = fams.setdefault(m.group(1), Fam(m.group(1)))
                assert fam.kind is None and not fam.samples, f"{where}: TYPE twice or after samples"
                fam.kind = m.group(2)
            else:
                assert not line.startswith(("# HELP", "# TYPE")), f"{where}: malformed HELP/TYPE"
            continue
        m = _SAMPLE.match(line)
        assert m, f"{where}: not a sample"
        name, raw_labels, raw_value = m.group(1), m.group(2) or "", m.group(3)
        assert name in fams and fams[name].kind and fams[name].help is not None, f"{where}: HELP/TYPE missing"
        assert name not in closed, f"{where}: samples of {name} not contiguous"
        if current is not None and current != name:
            closed.add(current)
        current = name
        assert _VALUE.match(raw_value), f"{where}: value {raw_value!r} is not a number"
        value = float(raw_value.replace("Inf", "inf"))
        labels = _labels(raw_labels, where)
        fam = fams[name]
        assert labels not in fam.samples, f"{where}: duplicate series"
        fam.samples[labels] = value
    for fam in fams.values():
        assert fam.kind is not None and fam.help is not None, f"{fam.name}: HELP and TYPE both needed"
        if fam.kind == "counter":
            assert fam.name.endswith("_total"), f"{fam.name}: a counter's name ends with _total"
            assert all(v >= 0 or math.isnan(v) for v in fam.samples.values()), f"{fam.name}: negative counter"
        else:
            assert not fam.name.endswith("_total"), f"{fam.name}: only counters end with _total"
    return fams


def value(fams: dict[str, Fam], name: str, **labels: str) -> float:
    return fams[name].samples[tuple(sorted(labels.items()))]


def one_hot(fams: dict[str, Fam], name: str, key: str, **labels: str) -> str:
    """The label value `key` of the one series at 1 among those matching `labels`."""
    hot = [dict(ls)[key] for ls, v in fams[name].samples.items()
           if all(dict(ls).get(k) == v2 for k, v2 in labels.items()) and v == 1]
    rest = [v for ls, v in fams[name].samples.items() if all(dict(ls).get(k) == v2 for k, v2 in labels.items())]
    assert len(hot) == 1 and sum(rest) == 1, (name, labels, hot, rest)
    return hot[0]


# --- unit tests of the renderer -------------------------------------------------------------------


def test_parser_rejects_what_it_should() -> None:
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
    parse_exposition(good)
    bad = [
        "a_total 1\n",  # no HELP/TYPE
        "# HELP a A.\n# TYPE a gauge\na one\n",  # value
        "# HELP a A.\n# TYPE a counter\na 1\n",  # counter without _total
        '# HELP a A.\n# TYPE a gauge\na{x="1",x="2"} 1\n',  # duplicate label
        '# HELP a A.\n# TYPE a gauge\na{x="a"b"} 1\n',  # unescaped quote
        '# HELP a A.\n# TYPE a gauge\na{1x="a"} 1\n',  # label name
        "# HELP a A.\n# TYPE a gauge\na 1",  # no final newline
        "# HELP a A \\x.\n# TYPE a gauge\na 1\n",  # bad escape in HELP
        "# TYPE a gauge\na 1\n",  # no HELP
        "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na 2\n",  # not contiguous
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_exposition(text)


def test_exposition_of_tricky_values_parses() -> None:
    """prometheus_client renders; our parser checks what comes out: escaped labels, NaN for unknown, +Inf."""
    tricky = 'a "quoted" \\ back\nslash'
    rooms = {
        tricky: SimpleNamespace(id=tricky, filter=SimpleNamespace(last_value=1.5), target=None, decision=None,
                                state=SimpleNamespace(mode="heat"), energy_kwh=float("inf"), readings=3),
    }
    link = SimpleNamespace(connected=False, reconnects=0, connect_failures=0, dropped=0, queued=0)
    service = SimpleNamespace(rooms=rooms, heaters={}, counters={}, link=link, events=[], problems=[],
                              limiter=SimpleNamespace(suppressed=0), store=SimpleNamespace(write_failures=0))
    server = metrics.MetricsServer(service, "127.0.0.1", 0)
    fams = parse_exposition(server.render())
    assert value(fams, "thermostat_room_temperature_celsius", room=tricky) == 1.5
    assert math.isnan(value(fams, "thermostat_room_target_celsius", room=tricky))
    assert value(fams, "thermostat_room_energy_kwh_total", room=tricky) == math.inf
    assert value(fams, "thermostat_room_readings_total", room=tricky) == 3
    assert fams["thermostat_room_readings_total"].kind == "counter"
    assert value(fams, "thermostat_mqtt_connected") == 0


# --- end to end -----------------------------------------------------------------------------------


@dataclass
class Rig:
    service: Service
    miner: SimMiner
    port: int
    broker_port: int


def write_config(tmp: Path, broker_port: int, miner_port: int, metrics_port: int) -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: thermo-metrics, client_id: thermo-metrics}}
rooms:
  living:
    name: Living room
    sensor: {{topic: sensors/metrics-living, json_key: temperature, stale_after: 10m}}
    target: 21
    heaters: [mini3-0]
heaters:
  mini3-0: {{host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 60s, min_off: 60s, max_wakes_per_hour: 6}}
state: {{path: {tmp / 'state.db'}}}
metrics: {{enabled: true, host: 127.0.0.1, port: {metrics_port}}}
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


@pytest.fixture
async def rig(tmp_path: Path, mqtt_broker: Any) -> AsyncIterator[Rig]:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20, seed=5)
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = free_port()
    service = Service(load_config(write_config(tmp_path, mqtt_broker.port, server_port(server), port)), clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await until(lambda: service.link.connected and getattr(service, "metrics", None) is not None, 10,
                    "service and metrics up")
        yield Rig(service, miner, port, mqtt_broker.port)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8")


async def scrape(port: int, path: str = "/metrics") -> tuple[int, dict[str, str], str]:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{port}{path}")


async def raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)  # the server closes after its answer
    finally:
        writer.close()



@pytest.mark.broker
async def test_scrape_matches_the_service(rig: Rig) -> None:
    service = rig.service
    status, headers, text = await scrape(rig.port)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = parse_exposition(text)
    expected = {
        "thermostat_room_temperature_celsius": "gauge", "thermostat_room_target_celsius": "gauge",
        "thermostat_room_demand_watts": "gauge", "thermostat_room_energy_kwh_total": "counter",
        "thermostat_heater_level": "gauge", "thermostat_heater_power_watts": "gauge",
        "thermostat_heater_state": "gauge", "thermostat_heater_wakes_total": "counter",
        "thermostat_heater_commands_total": "counter", "thermostat_heater_command_errors_total": "counter",
        "thermostat_readings_total": "counter", "thermostat_readings_rejected_total": "counter",
        "thermostat_commands_rejected_total": "counter", "thermostat_mqtt_reconnects_total": "counter",
        "thermostat_mqtt_connected": "gauge",
        "thermostat_bookkeeping_errors_total": "counter", "thermostat_problems": "gauge",
        "thermostat_log_lines_suppressed_total": "counter", "thermostat_state_write_failures_total": "counter",
    }
    assert {k: fams[k].kind for k in expected} == expected
    assert value(fams, "thermostat_problems") == len(service.problems) == 0
    assert value(fams, "thermostat_bookkeeping_errors_total") == 0
    assert value(fams, "thermostat_state_write_failures_total") == service.store.write_failures == 0
    assert value(fams, "thermostat_mqtt_connected") == 1
    assert value(fams, "thermostat_mqtt_reconnects_total") == 0
    assert math.isnan(value(fams, "thermostat_room_temperature_celsius", room="living"))  # no reading yet

    # a cold reading, a rejected reading, a rejected command; the miner wakes
    async with aiomqtt.Client("127.0.0.1", rig.broker_port) as client:
        await client.publish("sensors/metrics-living", json.dumps({"temperature": 17.0}), qos=1)
        await client.publish("sensors/metrics-living", b"garbage", qos=1)
        await client.publish("thermo-metrics/room/living/target/set", b"99", qos=1)
    h = service.heaters["mini3-0"]
    await until(lambda: h.machine is not None and h.machine.state == HeaterState.RUNNING and rig.miner.calibrated,
                30, "heater running")
    await asyncio.sleep(0.6)  # a telemetry poll after the level was set
    fams = parse_exposition((await scrape(rig.port))[2])
    room = service.rooms["living"]
    assert value(fams, "thermostat_room_temperature_celsius", room="living") == 17.0
    assert value(fams, "thermostat_room_target_celsius", room="living") == room.target.temp == 21.0  # type: ignore[union-attr]
    assert value(fams, "thermostat_room_demand_watts", room="living") > 0
    assert value(fams, "thermostat_readings_total") == service.counters["readings"] == 1
    assert value(fams, "thermostat_readings_rejected_total") == service.counters["readings_rejected"] == 1
    assert value(fams, "thermostat_commands_rejected_total") == service.counters["commands_rejected"] == 1
    assert one_hot(fams, "thermostat_heater_state", "state", heater="mini3-0") == "running"
    assert one_hot(fams, "thermostat_heater_level", "level", heater="mini3-0") == h.machine.confirmed_level  # type: ignore[union-attr]
    assert value(fams, "thermostat_heater_wakes_total", heater="mini3-0") == 1 == rig.miner.wakes
    assert value(fams, "thermostat_heater_commands_total", heater="mini3-0") == h.commands_sent >= 2
    assert value(fams, "thermostat_heater_command_errors_total", heater="mini3-0") == h.command_errors
    assert value(fams, "thermostat_heater_power_watts", heater="mini3-0") > 300
    energy1 = value(fams, "thermostat_room_energy_kwh_total", room="living")
    await asyncio.sleep(1.0)
    async with aiomqtt.Client("127.0.0.1", rig.broker_port) as client:  # a reading ticks the energy account
        await client.publish("sensors/metrics-living", json.dumps({"temperature": 17.2}), qos=1)
    await until(lambda: room.filter.last_value == 17.2, 5, "second reading")
    await asyncio.sleep(0.2)
    fams = parse_exposition((await scrape(rig.port))[2])
    assert value(fams, "thermostat_room_energy_kwh_total", room="living") > energy1
    assert value(fams, "thermostat_room_energy_kwh_total", room="living") == pytest.approx(room.energy_kwh)


@pytest.mark.broker
async def test_only_get_metrics_is_served(rig: Rig) -> None:
    status, _, body = await scrape(rig.port, "/")
    assert status == 404 and "metrics" in body
    assert (await scrape(rig.port, "/metrics/extra"))[0] == 404
    assert (await scrape(rig.port, "/metrics?name=x"))[0] == 200
    reply = await raw(rig.port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in reply
    reply = await raw(rig.port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\n")
    # an oversized request head and a garbage request line are refused
    reply = await raw(rig.port, b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
    assert reply.split(b" ", 2)[1] == b"400"
    reply = await raw(rig.port, b"\x16\x03\x01 garbage\r\n\r\n")
    assert reply.split(b" ", 2)[1] == b"400"
    # a client that sends nothing does not block others
    _idle, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    try:
        assert (await scrape(rig.port))[0] == 200
    finally:
        writer.close()
    # the service never noticed
    assert rig.service.link.connected
    assert rig.service.metrics.scrapes >= 2


async def test_metrics_server_standalone_close_is_clean() -> None:
    """start/close without a service loop; rendering failures answer 500 instead of hanging."""
    broken = SimpleNamespace(rooms=None, heaters={}, counters={}, link=None, events=[])
    server = metrics.MetricsServer(broken, "127.0.0.1", 0)
    await server.start()
    assert server.port > 0
    reply = await raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 500 ")
    await server.close()
    await server.close()  # idempotent
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)
