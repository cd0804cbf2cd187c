"""An optional Prometheus endpoint: ``GET /metrics``, rendered by `prometheus_client`, served by aiohttp.

Anything but ``GET /metrics`` (or ``HEAD /metrics``) is a 404/405; a request line or header longer than
8190 bytes is a 400 (aiohttp's parser). Values are read from the running `Service` at scrape time by a
custom collector, so there is nothing to keep in sync and no state is kept here (a heater's wakes are its
runtime's own counter).

Off by default; enable with ``metrics: {enabled: true, host: 127.0.0.1, port: 9108}``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from thermostat.adapters.http import WebServer
from thermostat.core.heater import HeaterState

log = logging.getLogger("thermostat.metrics")

# The classic text format 0.0.4 is what `generate_latest` writes (prometheus_client's default content type now
# announces 1.0.0, the same format with UTF-8 name escaping, which our ASCII names never need).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# --- what is measured -------------------------------------------------------------------------------


def _family(name: str, kind: str, help: str) -> Metric:
    """A metric family for `prometheus_client`; a counter is named without its ``_total`` (the library adds it)."""
    base = name.removesuffix("_total") if kind == "counter" else name
    return Metric(base, help, kind)


def _add(family: Metric, value: float | int | None, **labels: str) -> None:
    sample = f"{family.name}_total" if family.type == "counter" else family.name
    family.add_sample(sample, labels, math.nan if value is None else float(value))


def collect(service: Any) -> list[Metric]:
    """Every metric family, from the service's state now (duck-typed: rooms, heaters, counters, link)."""
    rooms = list(service.rooms.values())
    heaters = list(service.heaters.values())

    temp = _family("thermostat_room_temperature_celsius", "gauge", "Last accepted room temperature reading.")
    target = _family("thermostat_room_target_celsius", "gauge", "Effective room target temperature.")
    demand = _family("thermostat_room_demand_watts", "gauge", "Heat demand of the room's controller.")
    heating = _family("thermostat_room_heating", "gauge", "1 while at least one heater is wanted above standby.")
    mode = _family("thermostat_room_mode", "gauge", "Room mode (1 for the current one).")
    energy = _family("thermostat_room_energy_kwh_total", "counter", "Energy used by the room's heaters.")
    readings = _family("thermostat_room_readings_total", "counter", "Accepted sensor readings per room.")
    for room in rooms:
        r = room.id
        _add(temp, room.filter.last_value, room=r)
        _add(target, room.target.temp if room.target is not None else None, room=r)
        decision = room.decision
        _add(demand, decision.demand_w if decision is not None else None, room=r)
        _add(heating, 1 if decision is not None and decision.heating else 0, room=r)
        for m in ("off", "heat"):
            _add(mode, 1 if room.state.mode == m else 0, room=r, mode=m)
        _add(energy, float(room.energy_kwh), room=r)
        _add(readings, int(room.readings), room=r)

    level = _family("thermostat_heater_level", "gauge",
                   "Level the heater was last confirmed running (1 for the current one).")
    level_w = _family("thermostat_heater_level_watts", "gauge", "Nominal wall watts of the confirmed level.")
    power = _family("thermostat_heater_power_watts", "gauge", "Wall power reported by the miner.")
    hashrate = _family("thermostat_heater_hashrate_terahashes", "gauge", "Hashrate reported by the miner, TH/s.")
    chip = _family("thermostat_heater_chip_temperature_celsius", "gauge", "Hottest chip temperature.")
    state = _family("thermostat_heater_state", "gauge", "Heater state machine state (1 for the current one).")
    controlled = _family("thermostat_heater_controlled", "gauge", "1 while the thermostat controls the heater.")
    wake = _family("thermostat_heater_wakes_total", "counter", "Wakes from standby seen since the service started.")
    sent = _family("thermostat_heater_commands_total", "counter", "Commands sent to the miner (polls excluded).")
    errors = _family("thermostat_heater_command_errors_total", "counter", "Commands that failed or were refused.")
    for h in heaters:
        machine = h.machine
        snap = machine.last_snapshot if machine is not None else None
        current = (machine.confirmed_level or "standby") if machine is not None else "unknown"
        options = [*(h.usable_levels_w() if h.spec is not None else {}), "standby", "unknown"]
        if current not in options:
            options.append(current)
        for name in options:
            _add(level, 1 if name == current else 0, heater=h.id, level=name)
        watts = h.usable_levels_w().get(current, 0.0) if h.spec is not None else None
        _add(level_w, watts, heater=h.id)
        _add(power, snap.power_w if snap is not None else None, heater=h.id)
        _add(hashrate, snap.hashrate_ths if snap is not None else None, heater=h.id)
        _add(chip, snap.chip_temp_max_c if snap is not None else None, heater=h.id)
        now_state = machine.state.value if machine is not None else HeaterState.UNKNOWN.value
        for st in HeaterState:
            _add(state, 1 if st.value == now_state else 0, heater=h.id, state=st.value)
        _add(controlled, 1 if h.controlled else 0, heater=h.id)
        _add(wake, h.wakes, heater=h.id)
        _add(sent, int(h.commands_sent), heater=h.id)
        _add(errors, int(h.command_errors), heater=h.id)

    counters = service.counters
    svc = [
        _family("thermostat_readings_total", "counter", "Sensor readings accepted."),
        _family("thermostat_readings_rejected_total", "counter",
                "Sensor readings rejected (malformed or implausible)."),
        _family("thermostat_commands_rejected_total", "counter", "MQTT commands rejected (malformed or out of range)."),
    ]
    for fam, key in zip(svc, ("readings", "readings_rejected", "commands_rejected"), strict=True):
        _add(fam, int(counters.get(key, 0)))
    bookkeeping = _family("thermostat_bookkeeping_errors_total", "counter",
                          "Bookkeeping steps (state file, MQTT, energy) that failed; control went on.")
    _add(bookkeeping, int(counters.get("bookkeeping_errors", 0)))
    svc.append(bookkeeping)
    active = _family("thermostat_problems", "gauge", "Problems the household should know about, now.")
    _add(active, len(service.problems))
    suppressed = _family("thermostat_log_lines_suppressed_total", "counter",
                         "Log lines left out by the rate limit (each later line says how many).")
    _add(suppressed, int(service.limiter.suppressed))
    failures = _family("thermostat_state_write_failures_total", "counter", "Failed writes to the state file.")
    _add(failures, int(service.store.write_failures))
    svc.extend([active, suppressed, failures])

    link = service.link
    mqtt_connected = _family("thermostat_mqtt_connected", "gauge", "1 while connected to the MQTT broker.")
    _add(mqtt_connected, 1 if link.connected else 0)
    mqtt_reconnects = _family("thermostat_mqtt_reconnects_total", "counter", "Successful reconnections to the broker.")
    _add(mqtt_reconnects, int(link.reconnects))
    mqtt_failures = _family("thermostat_mqtt_connect_failures_total", "counter", "Failed connection attempts.")
    _add(mqtt_failures, int(link.connect_failures))
    mqtt_dropped = _family("thermostat_mqtt_dropped_total", "counter",
                          "Outgoing messages dropped while disconnected (queue full).")
    _add(mqtt_dropped, int(link.dropped))
    mqtt_queued = _family("thermostat_mqtt_queued_messages", "gauge", "Outgoing messages waiting for the broker.")
    _add(mqtt_queued, int(link.queued))

    return [temp, target, demand, heating, mode, energy, readings,
            level, level_w, power, hashrate, chip, state, controlled, wake, sent, errors,
            *svc, mqtt_connected, mqtt_reconnects, mqtt_failures, mqtt_dropped, mqtt_queued]


# --- HTTP -------------------------------------------------------------------------------------------


class _ServiceCollector(Collector):
    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        yield from collect(self.service)


class MetricsServer:
    """``MetricsServer(service, host, port)``; `start()` binds (port 0 = any free port, see `port`)."""

    def __init__(self, service: Any, host: str = "127.0.0.1", port: int = 9108) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.scrapes = 0
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_ServiceCollector(service))
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)  # adds HEAD too (aiohttp drops the body)
        app.router.add_route("*", "/metrics", self._not_allowed)
        app.router.add_route("*", "/{anything:.*}", self._not_found)
        self._server = WebServer(app, host, port)

    async def start(self) -> None:
        await self._server.start()
        self.port = self._server.port
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        await self._server.close()

    def render(self) -> str:
        return generate_latest(self._registry).decode("utf-8")

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            body = self.render()
        except Exception:  # a rendering bug must not kill the service or hang the scraper
            log.exception("metrics rendering failed")
            return web.Response(status=500, text="rendering failed\n")
        self.scrapes += 1
        return web.Response(body=body.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="not found; try /metrics\n")

    async def _not_allowed(self, request: web.Request) -> web.Response:
        return web.Response(status=405, text="GET only\n", headers={"Allow": "GET, HEAD"})
