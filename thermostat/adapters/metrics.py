"""An optional Prometheus endpoint: ``GET /metrics`` in text exposition format 0.0.4.

Stdlib only (``asyncio.start_server``): one request per connection, answered and closed. Anything but
``GET /metrics`` (or ``HEAD /metrics``) is a 404/405; a request head larger than `MAX_REQUEST` bytes or
slower than `REQUEST_TIMEOUT_S` is dropped. Values are read from the running `Service` at scrape time,
so there is nothing to keep in sync; the only state kept here is the wake counter derived from the
service's bounded transition log (see `_WakeCounter`).

Off by default; enable with ``metrics: {enabled: true, host: 127.0.0.1, port: 9108}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from thermostat.core.heater import HeaterState

log = logging.getLogger("thermostat.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST = 8192  # bytes of request line + headers
REQUEST_TIMEOUT_S = 5.0

Labels = Sequence[tuple[str, str]]


# --- exposition text --------------------------------------------------------------------------------


def escape_label(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | None) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class Family:
    name: str
    kind: str  # "gauge" | "counter"
    help: str
    samples: list[tuple[Labels, float | int | None]] = field(default_factory=list)

    def add(self, value: float | int | None, **labels: str) -> None:
        self.samples.append((tuple(labels.items()), value))

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
                yield f"{self.name}{{{inner}}} {format_value(value)}"
            else:
                yield f"{self.name} {format_value(value)}"


def render(families: Iterable[Family]) -> str:
    return "".join(line + "\n" for fam in families for line in fam.render())


# --- what is measured -------------------------------------------------------------------------------


class _WakeCounter:
    """Wakes (STANDBY → WAKING) per heater, counted from `service.events` since this server started.

    The service keeps only the last few hundred transitions (`del events[:-500]`), so a position in the
    list is not stable; the last event seen is found again by identity. If it has been dropped in the
    meantime (more than ~500 transitions between two scrapes) every event still listed is new.
    A dedicated counter on `HeaterRuntime` (``wakes``) is preferred when the service has one.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._last: Any = None

    def update(self, events: Sequence[Any]) -> None:
        start = 0
        if self._last is not None:
            for i in range(len(events) - 1, -1, -1):
                if events[i] is self._last:
                    start = i + 1
                    break
        for ev in events[start:]:
            if ev.from_state == HeaterState.STANDBY and ev.to_state == HeaterState.WAKING:
                self.counts[ev.heater] = self.counts.get(ev.heater, 0) + 1
        if events:
            self._last = events[-1]


def collect(service: Any, wakes: _WakeCounter | None = None) -> list[Family]:
    """Every metric family, from the service's state now (duck-typed: rooms, heaters, counters, link)."""
    if wakes is None:
        wakes = _WakeCounter()
    wakes.update(list(getattr(service, "events", ()) or ()))
    rooms = list(service.rooms.values())
    heaters = list(service.heaters.values())

    temp = Family("thermostat_room_temperature_celsius", "gauge", "Last accepted room temperature reading.")
    target = Family("thermostat_room_target_celsius", "gauge", "Effective room target temperature.")
    demand = Family("thermostat_room_demand_watts", "gauge", "Heat demand of the room's controller.")
    heating = Family("thermostat_room_heating", "gauge", "1 while at least one heater is wanted above standby.")
    mode = Family("thermostat_room_mode", "gauge", "Room mode (1 for the current one).")
    energy = Family("thermostat_room_energy_kwh_total", "counter", "Energy used by the room's heaters.")
    readings = Family("thermostat_room_readings_total", "counter", "Accepted sensor readings per room.")
    for room in rooms:
        r = room.id
        temp.add(room.filter.last_value, room=r)
        target.add(room.target.temp if room.target is not None else None, room=r)
        decision = room.decision
        demand.add(decision.demand_w if decision is not None else None, room=r)
        heating.add(1 if decision is not None and decision.heating else 0, room=r)
        for m in ("off", "heat"):
            mode.add(1 if room.state.mode == m else 0, room=r, mode=m)
        energy.add(float(room.energy_kwh), room=r)
        readings.add(int(getattr(room, "readings", 0)), room=r)

    level = Family("thermostat_heater_level", "gauge",
                   "Level the heater was last confirmed running (1 for the current one).")
    level_w = Family("thermostat_heater_level_watts", "gauge", "Nominal wall watts of the confirmed level.")
    power = Family("thermostat_heater_power_watts", "gauge", "Wall power reported by the miner.")
    hashrate = Family("thermostat_heater_hashrate_terahashes", "gauge", "Hashrate reported by the miner, TH/s.")
    chip = Family("thermostat_heater_chip_temperature_celsius", "gauge", "Hottest chip temperature.")
    state = Family("thermostat_heater_state", "gauge", "Heater state machine state (1 for the current one).")
    controlled = Family("thermostat_heater_controlled", "gauge", "1 while the thermostat controls the heater.")
    wake = Family("thermostat_heater_wakes_total", "counter", "Wakes from standby seen since the service started.")
    sent = Family("thermostat_heater_commands_total", "counter", "Commands sent to the miner (polls excluded).")
    errors = Family("thermostat_heater_command_errors_total", "counter", "Commands that failed or were refused.")
    for h in heaters:
        machine = h.machine
        snap = machine.last_snapshot if machine is not None else None
        current = (machine.confirmed_level or "standby") if machine is not None else "unknown"
        options = [*(h.usable_levels_w() if h.spec is not None else {}), "standby", "unknown"]
        if current not in options:
            options.append(current)
        for name in options:
            level.add(1 if name == current else 0, heater=h.id, level=name)
        watts = h.usable_levels_w().get(current, 0.0) if h.spec is not None else None
        level_w.add(watts, heater=h.id)
        power.add(snap.power_w if snap is not None else None, heater=h.id)
        hashrate.add(snap.hashrate_ths if snap is not None else None, heater=h.id)
        chip.add(snap.chip_temp_max_c if snap is not None else None, heater=h.id)
        now_state = machine.state.value if machine is not None else HeaterState.UNKNOWN.value
        for st in HeaterState:
            state.add(1 if st.value == now_state else 0, heater=h.id, state=st.value)
        controlled.add(1 if h.controlled else 0, heater=h.id)
        own = getattr(h, "wakes", None)
        wake.add(own if isinstance(own, int) else wakes.counts.get(h.id, 0), heater=h.id)
        sent.add(int(h.commands_sent), heater=h.id)
        errors.add(int(h.command_errors), heater=h.id)

    counters = getattr(service, "counters", {}) or {}
    svc = [
        Family("thermostat_readings_total", "counter", "Sensor readings accepted."),
        Family("thermostat_readings_rejected_total", "counter", "Sensor readings rejected (malformed or implausible)."),
        Family("thermostat_commands_rejected_total", "counter", "MQTT commands rejected (malformed or out of range)."),
    ]
    for fam, key in zip(svc, ("readings", "readings_rejected", "commands_rejected"), strict=True):
        fam.add(int(counters.get(key, 0)))

    link = service.link
    mqtt_connected = Family("thermostat_mqtt_connected", "gauge", "1 while connected to the MQTT broker.")
    mqtt_connected.add(1 if link.connected else 0)
    mqtt_reconnects = Family("thermostat_mqtt_reconnects_total", "counter", "Successful reconnections to the broker.")
    mqtt_reconnects.add(int(link.reconnects))
    mqtt_failures = Family("thermostat_mqtt_connect_failures_total", "counter", "Failed connection attempts.")
    mqtt_failures.add(int(getattr(link, "connect_failures", 0)))
    mqtt_dropped = Family("thermostat_mqtt_dropped_total", "counter",
                          "Outgoing messages dropped while disconnected (queue full).")
    mqtt_dropped.add(int(getattr(link, "dropped", 0)))
    mqtt_queued = Family("thermostat_mqtt_queued_messages", "gauge", "Outgoing messages waiting for the broker.")
    mqtt_queued.add(int(getattr(link, "queued", 0)))

    return [temp, target, demand, heating, mode, energy, readings,
            level, level_w, power, hashrate, chip, state, controlled, wake, sent, errors,
            *svc, mqtt_connected, mqtt_reconnects, mqtt_failures, mqtt_dropped, mqtt_queued]


# --- HTTP -------------------------------------------------------------------------------------------


class MetricsServer:
    """``MetricsServer(service, host, port)``; `start()` binds (port 0 = any free port, see `port`)."""

    def __init__(self, service: Any, host: str = "127.0.0.1", port: int = 9108) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._wakes = _WakeCounter()
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    def render(self) -> str:
        return render(collect(self.service, self._wakes))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            head = await asyncio.wait_for(self._read_head(reader), REQUEST_TIMEOUT_S)
            if head is None:
                await self._reply(writer, 431, "Request Header Fields Too Large", b"request too large\n")
                return
            method, path = head
            if path.split("?", 1)[0] != "/metrics":
                await self._reply(writer, 404, "Not Found", b"not found; try /metrics\n")
            elif method not in ("GET", "HEAD"):
                await self._reply(writer, 405, "Method Not Allowed", b"GET only\n", extra="Allow: GET, HEAD\r\n")
            else:
                try:
                    body = self.render().encode("utf-8")
                except Exception:  # a rendering bug must not kill the service or hang the scraper
                    log.exception("metrics rendering failed")
                    await self._reply(writer, 500, "Internal Server Error", b"rendering failed\n")
                    return
                self.scrapes += 1
                await self._reply(writer, 200, "OK", body, content_type=CONTENT_TYPE, head_only=method == "HEAD")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._conns.discard(task)

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str] | None:
        """(method, path) of the request, or None when the head is over `MAX_REQUEST` bytes."""
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return None
        except asyncio.IncompleteReadError as exc:  # a bare "GET /metrics\n" style client, or a cut connection
            raw = exc.partial
            if not raw:
                raise
        if len(raw) > MAX_REQUEST:
            return None
        line = raw.split(b"\n", 1)[0].decode("latin-1").strip()
        parts = line.split()
        if len(parts) < 2:
            raise ValueError("bad request line")
        return parts[0].upper(), parts[1]

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, code: int, reason: str, body: bytes, *,
                     content_type: str = "text/plain; charset=utf-8", extra: str = "",
                     head_only: bool = False) -> None:
        header = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")
        writer.write(header.encode("latin-1") + (b"" if head_only else body))
        await writer.drain()
