"""Home Assistant: the MQTT topic layout, discovery payloads and the command parser. All pure.

Topic layout (``<base>`` is ``mqtt.base_topic``, default ``thermostat``; docs/mqtt.md has the full table)::

    <base>/status                                   online | offline (retained, last will)
    <base>/problem                                  JSON: {"problem": bool, "count", "text", "problems": [...]}
    <base>/room/<room>/{current_temp,target,mode,action,preset,energy,cost,state}   published
    <base>/room/<room>/{target,mode,preset,override}/set                           commands
    <base>/room/<room>/error                        why the last command was rejected
    <base>/heater/<id>/{power,hashrate,chip_temp,inlet_temp,outlet_temp,fan,state,current_level,level,controlled}
    <base>/heater/<id>/remote                       on | off (Mining Rig Monitor remote switch, if reported)
    <base>/heater/<id>/{level,controlled,reboot}/set
    <base>/heater/<id>/error
    <base>/away, <base>/away/state, <base>/away/until   house-wide away: ON/OFF, JSON, end (local)
    <base>/away/set, <base>/away/until/set, <base>/away/error

Discovery: one retained config per entity at ``<prefix>/<component>/<unique_id>/config`` (object id =
unique id, no node id). One HA device per room (the climate entity, energy and cost sensors) and one
per miner (sensors, level select, "controlled" switch, reboot button) with the room's name as its own
``suggested_area``, and one for the service itself with a ``problem`` binary sensor (the problem text is an
attribute). A miner's device does not point at its room's device (no ``via_device``): HA takes
``suggested_area`` only when it creates a device, and retained configs reach it in topic order (``button`` and
``select`` before ``climate``), so a miner payload naming the room device could make HA register that device
first without its area. Every payload that does name the room device (climate, energy, cost) carries its full
device block with ``suggested_area``.

Rules of current Home Assistant honoured here (they fail silently otherwise): no ``object_id``
(``default_entity_id`` instead), ``temperature_unit`` ``C``, ``precision`` 0.1, ``preset_modes``
never lists ``none`` (HA adds it), energy sensors ``total_increasing`` in kWh, every entity with a
``unique_id`` and a device block with ``identifiers``. tests/ha_schema.py checks every payload.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from thermostat import __version__
from thermostat.core.sensor import BadReading, parse_payload
from thermostat.core.steer import parse_duration_s, parse_until, until_after
from thermostat.miners.models import MODELS

TEMP_STEP = 0.5
STEP_TOLERANCE = 0.01  # K: a target within this of a 0.5 step is snapped onto it
AUTO = "auto"
STANDBY = "standby"
NEXT_BLOCK = "next_block"

# The heater state machine's states (thermostat.core.heater.HeaterState), published on <id>/state.
HEATER_STATES: tuple[str, ...] = (
    "unknown",
    "standby",
    "waking",
    "verifying",
    "setting_mode",
    "setting_fan",
    "running",
    "stopping",
    "backoff",
    "fault",
)

ROOM_STATE_LEAVES = (
    "current_temp", "humidity", "target", "mode", "action", "preset", "energy", "cost", "state", "error",
)
ROOM_COMMANDS = ("target", "mode", "preset", "override")
HEATER_STATE_LEAVES = (
    "power",
    "hashrate",
    "chip_temp",
    "inlet_temp",
    "outlet_temp",
    "fan",
    "state",
    "level",
    "controlled",
    "current_level",
    "error",
    "remote",  # Mining Rig Monitor remote switch: on | off (only for heaters reported to it)
    "reason",  # why it is not doing what its room wants (core/explain.py), in words
    "attributes",  # JSON: reason, hold, wanted, control: the Current level entity's attributes
)
HEATER_COMMANDS = ("level", "controlled", "reboot")

# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomInfo:
    """What discovery needs to know about a room (built from the configuration)."""

    id: str
    name: str
    min_temp: float = 7.0
    max_temp: float = 26.0
    presets: tuple[str, ...] = ()  # the schedule's preset names; "none" is implicit in HA
    currency: str | None = None  # set → a cost sensor
    humidity: bool = False  # a sensor may send humidity → the climate shows `current_humidity`


@dataclass(frozen=True)
class HeaterInfo:
    id: str
    name: str
    room: str
    model: str  # ModelSpec key, or "auto" while unknown
    levels: tuple[str, ...] = ()  # usable ladder level names, ascending
    has_standby: bool = True  # soft off, or a smart plug in front of it
    inlet_sensor: bool = True
    host: str | None = None
    remote: bool = False  # reported to Mining Rig Monitor: a "Remote switch" sensor (on | off)
    area: str | None = None  # the room's display name: HA's suggested area for the miner's device


BOOST = "boost"


def room_presets(schedule_presets: Iterable[str]) -> tuple[str, ...]:
    """The presets a room offers: its schedule's, plus the timed `boost` (its temperature is the schedule's
    `boost` preset when it has one, else the target in force + `boost.delta`)."""
    names = tuple(schedule_presets)
    return names if BOOST in names else (*names, BOOST)


def level_options(levels: Sequence[str], has_standby: bool = True) -> list[str]:
    """Options of the per-miner level select: ``auto``, the ladder, then ``standby``."""
    return [AUTO, *levels, *([STANDBY] if has_standby else [])]


# --- topics ---------------------------------------------------------------------------------------


class Topics:
    """The topic layout under one base topic."""

    def __init__(self, base: str = "thermostat", discovery_prefix: str = "homeassistant") -> None:
        self.base = base.rstrip("/")
        self.discovery_prefix = discovery_prefix.rstrip("/")
        self.node = re.sub(r"[^a-zA-Z0-9_]", "_", self.base).strip("_") or "thermostat"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def outdoor(self) -> str:
        return f"{self.base}/outdoor"

    @property
    def problem(self) -> str:
        return f"{self.base}/problem"

    @property
    def away(self) -> str:
        """ON/OFF: the house-wide away (switch state)."""
        return f"{self.base}/away"

    @property
    def away_state(self) -> str:
        """JSON: {"active", "until", "temp", "since", "heating_back_from"}."""
        return f"{self.base}/away/state"

    @property
    def away_until(self) -> str:
        """The away's end (or the planned end), local "YYYY-MM-DDTHH:MM"; empty when none."""
        return f"{self.base}/away/until"

    @property
    def away_set(self) -> str:
        return f"{self.base}/away/set"

    @property
    def away_until_set(self) -> str:
        return f"{self.base}/away/until/set"

    @property
    def away_error(self) -> str:
        return f"{self.base}/away/error"

    def room(self, room: str, leaf: str) -> str:
        return f"{self.base}/room/{room}/{leaf}"

    def room_set(self, room: str, what: str) -> str:
        return f"{self.base}/room/{room}/{what}/set"

    def heater(self, heater: str, leaf: str) -> str:
        return f"{self.base}/heater/{heater}/{leaf}"

    def heater_set(self, heater: str, what: str) -> str:
        return f"{self.base}/heater/{heater}/{what}/set"

    def command_filters(self) -> list[str]:
        """What the service subscribes to for commands."""
        return [f"{self.base}/room/+/+/set", f"{self.base}/heater/+/+/set", self.away_set, self.away_until_set]

    def split_command(self, topic: str) -> tuple[Literal["room", "heater"], str, str] | None:
        """``<base>/room/<id>/<what>/set`` → ``("room", id, what)``; None for anything else."""
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 4 or parts[3] != "set" or not parts[1] or not parts[2]:
            return None
        if parts[0] == "room":
            return "room", parts[1], parts[2]
        if parts[0] == "heater":
            return "heater", parts[1], parts[2]
        return None

    def discovery(self, component: str, unique_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{unique_id}/config"

    # ids
    def room_uid(self, room: str, what: str) -> str:
        return f"{self.node}_{_slug(room)}_{what}"

    def heater_uid(self, heater: str, what: str) -> str:
        return f"{self.node}_heater_{_slug(heater)}_{what}"

    def room_device_id(self, room: str) -> str:
        return f"{self.node}_room_{_slug(room)}"

    def heater_device_id(self, heater: str) -> str:
        return f"{self.node}_heater_{_slug(heater)}"

    @property
    def service_device_id(self) -> str:
        return f"{self.node}_service"


def _slug(ident: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", ident.lower())


# --- discovery payloads ---------------------------------------------------------------------------

Discovery = tuple[str, dict[str, Any]]


def _origin() -> dict[str, Any]:
    return {"name": "thermostat", "sw_version": __version__}


def _availability(t: Topics) -> list[dict[str, str]]:
    return [{"topic": t.status, "payload_available": "online", "payload_not_available": "offline"}]


def room_device(t: Topics, room: RoomInfo) -> dict[str, Any]:
    return {
        "identifiers": [t.room_device_id(room.id)],
        "name": room.name,
        "manufacturer": "thermostat",
        "model": "Miner heating zone",
        "sw_version": __version__,
        "suggested_area": room.name,
    }


def heater_device(t: Topics, heater: HeaterInfo) -> dict[str, Any]:
    spec = MODELS.get(heater.model)
    dev: dict[str, Any] = {
        "identifiers": [t.heater_device_id(heater.id)],
        "name": heater.name,
        "manufacturer": "Canaan",
        "model": spec.display if spec is not None else "Avalon (model not yet identified)",
    }
    if heater.area:
        dev["suggested_area"] = heater.area
    if heater.host:
        dev["configuration_url"] = f"http://{heater.host}/"
    return dev


def service_device(t: Topics) -> dict[str, Any]:
    return {
        "identifiers": [t.service_device_id],
        "name": "Thermostat service",
        "manufacturer": "thermostat",
        "model": "Miner heating service",
        "sw_version": __version__,
    }


def service_problem_config(t: Topics) -> Discovery:
    """ON while the service has a problem (state file, a room without a working heater, ...); the plain-words
    text and the list of problems are attributes."""
    uid = f"{t.service_device_id}_problem"
    payload = _common(t, uid, service_device(t), f"binary_sensor.{t.node}_problem")
    payload.update(
        {
            "name": "Problem",
            "device_class": "problem",
            "state_topic": t.problem,
            "value_template": "{{ 'ON' if value_json.problem else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": t.problem,
            "entity_category": "diagnostic",
        }
    )
    return t.discovery("binary_sensor", uid), payload


AWAY_NO_END = "none"  # the "Away until" text when no end is set (an empty retained payload would delete it)
AWAY_UNTIL_PATTERN = r"^(\d{4}-\d{2}-\d{2}([T ]\d{1,2}:\d{2})?|\d{1,2}:\d{2}|none)?$"


def service_away_configs(t: Topics) -> list[Discovery]:
    """The house-wide away: a switch (ON starts it with the planned end, OFF ends it) and a text holding the end
    ("2026-12-27T16:00", "2026-12-27" or "18:30", local time; setting it while away moves the end)."""
    device = service_device(t)
    uid = f"{t.service_device_id}_away"
    switch = _common(t, uid, device, f"switch.{t.node}_away")
    switch.update({
        "name": "Away",
        "icon": "mdi:airplane",
        "state_topic": t.away,
        "command_topic": t.away_set,
        "payload_on": "ON",
        "payload_off": "OFF",
        "state_on": "ON",
        "state_off": "OFF",
        "json_attributes_topic": t.away_state,
    })
    uid_until = f"{t.service_device_id}_away_until"
    text = _common(t, uid_until, device, f"text.{t.node}_away_until")
    text.update({
        "name": "Away until",
        "icon": "mdi:calendar-end",
        "state_topic": t.away_until,
        "command_topic": t.away_until_set,
        "min": 0,
        "max": 16,
        "mode": "text",
        "pattern": AWAY_UNTIL_PATTERN,
    })
    return [(t.discovery("switch", uid), switch), (t.discovery("text", uid_until), text)]


def outdoor_sensor_config(t: Topics) -> Discovery:
    """The house's outdoor temperature (config `outdoor:`), on the service's device."""
    uid = f"{t.service_device_id}_outdoor"
    payload = _common(t, uid, service_device(t), f"sensor.{t.node}_outdoor_temperature")
    payload.update(
        {
            "name": "Outdoor temperature",
            "device_class": "temperature",
            "state_class": "measurement",
            "unit_of_measurement": "°C",
            "suggested_display_precision": 1,
            "state_topic": t.outdoor,
        }
    )
    return t.discovery("sensor", uid), payload


def _common(t: Topics, unique_id: str, device: dict[str, Any], default_entity_id: str) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "default_entity_id": default_entity_id,
        "device": device,
        "origin": _origin(),
        "availability": _availability(t),
        "qos": 1,
    }


def climate_config(t: Topics, room: RoomInfo) -> Discovery:
    uid = t.room_uid(room.id, "climate")
    payload = _common(t, uid, room_device(t, room), f"climate.{_slug(room.id)}")
    payload.update(
        {
            "name": None,  # the entity takes the device's (room's) name
            "modes": ["off", "heat"],
            "mode_command_topic": t.room_set(room.id, "mode"),
            "mode_state_topic": t.room(room.id, "mode"),
            "temperature_command_topic": t.room_set(room.id, "target"),
            "temperature_state_topic": t.room(room.id, "target"),
            "current_temperature_topic": t.room(room.id, "current_temp"),
            "action_topic": t.room(room.id, "action"),
            "min_temp": room.min_temp,
            "max_temp": room.max_temp,
            "temp_step": TEMP_STEP,
            "precision": 0.1,
            "temperature_unit": "C",
            "optimistic": False,
            "retain": False,
            "json_attributes_topic": t.room(room.id, "state"),
        }
    )
    if room.humidity:
        payload["current_humidity_topic"] = t.room(room.id, "humidity")
    presets = [p for p in room.presets if p != "none"]
    if presets:  # HA requires the preset list and command topic together, and adds "none" itself
        payload["preset_modes"] = presets
        payload["preset_mode_command_topic"] = t.room_set(room.id, "preset")
        payload["preset_mode_state_topic"] = t.room(room.id, "preset")
    return t.discovery("climate", uid), payload


def room_energy_config(t: Topics, room: RoomInfo) -> Discovery:
    uid = t.room_uid(room.id, "energy")
    payload = _common(t, uid, room_device(t, room), f"sensor.{_slug(room.id)}_heating_energy")
    payload.update(
        {
            "name": "Heating energy",
            "state_topic": t.room(room.id, "energy"),
            "device_class": "energy",
            "unit_of_measurement": "kWh",
            "state_class": "total_increasing",
            "suggested_display_precision": 2,
        }
    )
    return t.discovery("sensor", uid), payload


def room_cost_config(t: Topics, room: RoomInfo) -> Discovery:
    if room.currency is None:
        raise ValueError(f"room {room.id} has no currency: no cost sensor")
    uid = t.room_uid(room.id, "cost")
    payload = _common(t, uid, room_device(t, room), f"sensor.{_slug(room.id)}_heating_cost")
    payload.update(
        {
            "name": "Heating cost",
            "state_topic": t.room(room.id, "cost"),
            "device_class": "monetary",
            "unit_of_measurement": room.currency,
            "state_class": "total",
            "suggested_display_precision": 2,
        }
    )
    return t.discovery("sensor", uid), payload


# (leaf, name, device_class, unit, state_class, icon, diagnostic)
_HEATER_SENSORS: tuple[tuple[str, str, str | None, str, str, str | None, bool], ...] = (
    ("power", "Power", "power", "W", "measurement", None, False),
    ("hashrate", "Hashrate", None, "TH/s", "measurement", "mdi:pickaxe", True),
    ("chip_temp", "Chip temperature", "temperature", "°C", "measurement", None, True),
    ("inlet_temp", "Inlet temperature", "temperature", "°C", "measurement", None, True),
    ("outlet_temp", "Outlet temperature", "temperature", "°C", "measurement", None, True),
    ("fan", "Fan", None, "%", "measurement", "mdi:fan", True),
)


def heater_sensor_configs(t: Topics, heater: HeaterInfo, expire_after_s: int | None = None) -> list[Discovery]:
    """Telemetry sensors and the state enum sensor. `expire_after_s` marks values stale in HA."""
    out: list[Discovery] = []
    dev = heater_device(t, heater)
    slug = _slug(heater.id)
    for leaf, name, device_class, unit, state_class, icon, diagnostic in _HEATER_SENSORS:
        if leaf == "inlet_temp" and not heater.inlet_sensor:
            continue
        uid = t.heater_uid(heater.id, leaf)
        payload = _common(t, uid, dev, f"sensor.{slug}_{leaf}")
        payload.update({"name": name, "state_topic": t.heater(heater.id, leaf), "unit_of_measurement": unit,
                        "state_class": state_class})
        if device_class is not None:
            payload["device_class"] = device_class
        if icon is not None:
            payload["icon"] = icon
        if diagnostic:
            payload["entity_category"] = "diagnostic"
        if expire_after_s is not None:
            payload["expire_after"] = expire_after_s
        out.append((t.discovery("sensor", uid), payload))
    uid = t.heater_uid(heater.id, "state")
    payload = _common(t, uid, dev, f"sensor.{slug}_state")
    payload.update(
        {
            "name": "State",
            "state_topic": t.heater(heater.id, "state"),
            "device_class": "enum",
            "options": list(HEATER_STATES),
            "entity_category": "diagnostic",
        }
    )
    out.append((t.discovery("sensor", uid), payload))
    uid = t.heater_uid(heater.id, "current_level")
    payload = _common(t, uid, dev, f"sensor.{slug}_current_level")
    payload.update(
        {
            "name": "Current level",
            "state_topic": t.heater(heater.id, "current_level"),
            "device_class": "enum",
            "options": _current_level_options(heater),
            "icon": "mdi:radiator",
            "json_attributes_topic": t.heater(heater.id, "attributes"),  # reason, hold, wanted level
        }
    )
    out.append((t.discovery("sensor", uid), payload))
    if heater.remote:
        out.append(heater_remote_sensor_config(t, heater))
    return out


def heater_remote_sensor_config(t: Topics, heater: HeaterInfo) -> Discovery:
    """Mining Rig Monitor's remote switch: `off` holds the heater in standby whatever the room wants."""
    uid = t.heater_uid(heater.id, "remote")
    payload = _common(t, uid, heater_device(t, heater), f"sensor.{_slug(heater.id)}_remote")
    payload.update(
        {
            "name": "Remote switch",
            "state_topic": t.heater(heater.id, "remote"),
            "device_class": "enum",
            "options": ["on", "off"],
            "icon": "mdi:remote",
            "entity_category": "diagnostic",
        }
    )
    return t.discovery("sensor", uid), payload


def _current_level_options(heater: HeaterInfo) -> list[str]:
    """Every level the miner can be seen running: the model's whole ladder, not only the usable subset
    (`levels` in the config) — a miner found running a level outside it must not break the enum sensor."""
    spec = MODELS.get(heater.model)
    ladder = [*heater.levels, *(n for n in (spec.level_names if spec is not None else ()) if n not in heater.levels)]
    return [*ladder, STANDBY, "unknown"]


def heater_level_select_config(t: Topics, heater: HeaterInfo) -> Discovery:
    uid = t.heater_uid(heater.id, "level")
    payload = _common(t, uid, heater_device(t, heater), f"select.{_slug(heater.id)}_level")
    payload.update(
        {
            "name": "Level",
            "command_topic": t.heater_set(heater.id, "level"),
            "state_topic": t.heater(heater.id, "level"),
            "options": level_options(heater.levels, heater.has_standby),
            "icon": "mdi:radiator",
            "optimistic": False,
            "retain": False,
        }
    )
    return t.discovery("select", uid), payload


def heater_controlled_switch_config(t: Topics, heater: HeaterInfo) -> Discovery:
    uid = t.heater_uid(heater.id, "controlled")
    payload = _common(t, uid, heater_device(t, heater), f"switch.{_slug(heater.id)}_controlled")
    payload.update(
        {
            "name": "Controlled by thermostat",
            "command_topic": t.heater_set(heater.id, "controlled"),
            "state_topic": t.heater(heater.id, "controlled"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "optimistic": False,
            "retain": False,
            "icon": "mdi:thermostat-auto",
            "entity_category": "config",
        }
    )
    return t.discovery("switch", uid), payload


def heater_reboot_button_config(t: Topics, heater: HeaterInfo) -> Discovery:
    uid = t.heater_uid(heater.id, "reboot")
    payload = _common(t, uid, heater_device(t, heater), f"button.{_slug(heater.id)}_reboot")
    payload.update(
        {
            "name": "Reboot",
            "command_topic": t.heater_set(heater.id, "reboot"),
            "payload_press": "PRESS",
            "device_class": "restart",
            "entity_category": "config",
            "retain": False,
        }
    )
    return t.discovery("button", uid), payload


def discovery_payloads(
    t: Topics, rooms: Iterable[RoomInfo], heaters: Iterable[HeaterInfo], expire_after_s: int | None = None,
    *, outdoor: bool = False,
) -> list[Discovery]:
    """Every discovery config for a house: the service's problem sensor, away entities (and outdoor temperature),
    then rooms, then heaters."""
    out: list[Discovery] = [service_problem_config(t), *service_away_configs(t)]
    if outdoor:
        out.append(outdoor_sensor_config(t))
    for room in rooms:
        out.append(climate_config(t, room))
        out.append(room_energy_config(t, room))
        if room.currency is not None:
            out.append(room_cost_config(t, room))
    for heater in heaters:
        out.extend(heater_sensor_configs(t, heater, expire_after_s))
        out.append(heater_level_select_config(t, heater))
        out.append(heater_controlled_switch_config(t, heater))
        out.append(heater_reboot_button_config(t, heater))
    return out


ROOM_RETAINED_LEAVES = (*ROOM_STATE_LEAVES, "demand", "reason")  # every retained leaf a room publishes


def published_record(t: Topics, discovery: Iterable[Discovery], rooms: Iterable[str],
                     heaters: Iterable[str]) -> dict[str, list[str]]:
    """What a run announces and leaves retained on the broker, remembered (in the state file) so that the next
    start or reload can delete what is gone: discovery config topics, and the rooms' and heaters' state topics."""
    state = [t.room(r, leaf) for r in rooms for leaf in ROOM_RETAINED_LEAVES]
    state += [t.heater(h, leaf) for h in heaters for leaf in HEATER_STATE_LEAVES]
    return {"configs": sorted(topic for topic, _ in discovery), "state": sorted(state)}


def _clean_topics(value: Any, prefix: str) -> set[str]:
    """The topics of a stored record that are safe to clear: strings under `prefix`, no wildcards."""
    if not isinstance(value, list):
        return set()
    return {v for v in value if isinstance(v, str) and v.startswith(prefix) and len(v) < 1000
            and "+" not in v and "#" not in v and "\x00" not in v}


def gone_messages(t: Topics, previous: Any, current: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Empty retained payloads for what the previous run announced and this one does not: HA deletes an entity
    (and a device left without entities) on an empty config, and the broker forgets an empty retained state.
    `previous` comes from the state file: anything malformed is ignored, never published."""
    if not isinstance(previous, dict):
        return []
    configs = _clean_topics(previous.get("configs"), t.discovery_prefix + "/") - set(current["configs"])
    state = _clean_topics(previous.get("state"), t.base + "/") - set(current["state"])
    return [(topic, "") for topic in sorted(configs) if topic.endswith("/config")] + [
        (topic, "") for topic in sorted(state)]


def removal_payloads(discovery: Iterable[Discovery]) -> list[tuple[str, str]]:
    """Empty retained payloads that delete these entities from HA (publish with retain=True)."""
    return [(topic, "") for topic, _ in discovery]


def encode(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def discovery_for_service(service: Any) -> Iterator[Discovery]:
    """Discovery for a running `thermostat.service.Service` (duck-typed: config, rooms, heaters)."""
    cfg = service.config
    t = Topics(cfg.mqtt.base_topic, cfg.mqtt.discovery_prefix)
    currency = cfg.tariff.currency if cfg.tariff is not None else None
    rooms: list[RoomInfo] = []
    heaters: list[HeaterInfo] = []
    for room_id, runtime in service.rooms.items():
        rcfg = runtime.cfg
        presets = room_presets(runtime.schedule.presets)
        humidity = any(sc.json_key is not None and sc.humidity_key is not None for sc in rcfg.all_sensors)
        rooms.append(RoomInfo(room_id, rcfg.name or room_id, float(rcfg.limits.min_c), float(rcfg.limits.max_c),
                              presets, currency, humidity))
    for hid, h in service.heaters.items():
        spec = h.spec if h.spec is not None else MODELS.get(h.cfg.model)
        levels = tuple(h.cfg.levels) if h.cfg.levels else (spec.level_names if spec is not None else ())
        has_plug = h.cfg.plug is not None
        heaters.append(
            HeaterInfo(
                id=hid,
                name=h.cfg.name or hid,
                room=h.room_id,
                model=spec.key if spec is not None else "auto",
                levels=tuple(levels),
                has_standby=(spec.has_standby if spec is not None else True) or has_plug,
                inlet_sensor=spec.inlet_sensor if spec is not None else True,
                host=h.cfg.host,
                remote=service.mrm is not None and hid in service.mrm.heaters,
                area=service.config.rooms[h.room_id].name or h.room_id,
            )
        )
    yield from discovery_payloads(t, rooms, heaters, outdoor=cfg.outdoor is not None and cfg.outdoor.topic is not None)


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetTarget:
    temp: float


@dataclass(frozen=True)
class SetMode:
    mode: Literal["off", "heat"]


@dataclass(frozen=True)
class SetPreset:
    preset: str | None  # None: back to the schedule ("none")


@dataclass(frozen=True)
class SetOverride:
    """``temp`` None cancels the override. ``until`` None with a temp means until the next schedule block."""

    temp: float | None
    until: datetime | None = None


@dataclass(frozen=True)
class SetLevel:
    level: str  # "auto", "standby" or a ladder level name


@dataclass(frozen=True)
class SetControlled:
    controlled: bool


@dataclass(frozen=True)
class Reboot:
    pass


@dataclass(frozen=True)
class Rejected:
    reason: str


@dataclass(frozen=True)
class SetAway:
    """Start (or change) the house-wide away. `until` None: use the planned end (HA's switch ON)."""

    until: datetime | None
    temp: float | None = None


@dataclass(frozen=True)
class CancelAway:
    pass


@dataclass(frozen=True)
class PlanAwayEnd:
    """HA's "Away until" text: the end of the current away, or of the next one when none is running."""

    until: datetime | None  # None: cleared


RoomCommand = SetTarget | SetMode | SetPreset | SetOverride
HeaterCommand = SetLevel | SetControlled | Reboot
Command = RoomCommand | HeaterCommand


def _text(payload: bytes, limit: int = 512) -> str:
    if len(payload) > limit:
        raise BadReading(f"payload too long ({len(payload)} bytes)")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise BadReading("payload is not UTF-8") from exc


def _temperature(value: float, min_temp: float, max_temp: float) -> float | Rejected:
    if not math.isfinite(value):
        return Rejected("temperature must be a finite number")
    if not min_temp - STEP_TOLERANCE <= value <= max_temp + STEP_TOLERANCE:
        return Rejected(f"{value:g} °C is outside {min_temp:g}..{max_temp:g} °C")
    steps = value / TEMP_STEP
    if abs(steps - round(steps)) * TEMP_STEP > STEP_TOLERANCE:
        return Rejected(f"{value:g} °C is not a multiple of {TEMP_STEP:g} °C")
    snapped = round(steps) * TEMP_STEP
    return min(max(snapped, min_temp), max_temp)


_OVERRIDE_FORMS = ('override must be "cancel" or JSON {"temp": 21} with "for": "2h", or "until": "18:30" (local, '
                   'next occurrence), "2026-12-27T16:00" (local), an ISO time with offset, or "next_block"')


def _parse_override(
    payload: bytes, min_temp: float, max_temp: float, now: datetime | None, tz: ZoneInfo | None = None
) -> SetOverride | Rejected:
    text = _text(payload)
    if text.lower() in ("cancel", '"cancel"'):
        return SetOverride(None)
    try:
        doc = json.loads(text, parse_constant=lambda name: math.nan)
    except (ValueError, RecursionError):
        return Rejected(_OVERRIDE_FORMS)
    if not isinstance(doc, dict):
        return Rejected("override must be a JSON object or \"cancel\"")
    unknown = set(doc) - {"temp", "until", "for"}
    if unknown:
        return Rejected(f"unknown override key(s): {', '.join(sorted(map(str, unknown)))} (known: temp, for, until)")
    raw = doc.get("temp")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return Rejected("override needs a numeric temp")
    try:
        value = float(raw)
    except OverflowError:
        return Rejected("override temp is too large")
    temp = _temperature(value, min_temp, max_temp)
    if isinstance(temp, Rejected):
        return temp
    if "for" in doc and "until" in doc:
        return Rejected('give "for" or "until", not both')
    wall = now if now is not None else datetime.now(UTC)
    if "for" in doc:
        try:
            return SetOverride(temp, until_after(wall, parse_duration_s(doc["for"])))
        except ValueError as exc:
            return Rejected(f"for: {exc}")
    until_raw = doc.get("until", NEXT_BLOCK)
    if until_raw == NEXT_BLOCK:
        return SetOverride(temp, None)
    if not isinstance(until_raw, str):
        return Rejected('until must be a time ("18:30", "2026-12-27T16:00", ISO with offset) or "next_block"')
    try:
        return SetOverride(temp, parse_until(until_raw, wall, tz or ZoneInfo("UTC")))
    except ValueError as exc:
        return Rejected(f"until: {exc}")


_AWAY_FORMS = ('away must be "ON", "OFF", "cancel" or JSON {"until": "2026-12-27T16:00"} or {"for": "3d"}, with '
               'an optional "temp"')


def parse_away_command(payload: bytes, min_temp: float, max_temp: float, now: datetime,
                       tz: ZoneInfo) -> SetAway | CancelAway | Rejected:
    """A command on ``<base>/away/set``. Never raises."""
    try:
        text = _text(payload)
    except BadReading as exc:
        return Rejected(exc.reason)
    if text.lower() in ("off", "cancel", '"cancel"'):
        return CancelAway()
    if text.lower() == "on":
        return SetAway(None)
    try:
        doc = json.loads(text, parse_constant=lambda name: math.nan)
    except (ValueError, RecursionError):
        return Rejected(_AWAY_FORMS)
    if not isinstance(doc, dict):
        return Rejected(_AWAY_FORMS)
    unknown = set(doc) - {"until", "for", "temp"}
    if unknown:
        return Rejected(f"unknown away key(s): {', '.join(sorted(map(str, unknown)))} (known: until, for, temp)")
    if ("until" in doc) == ("for" in doc):
        return Rejected('away needs "until" or "for" (one of them)')
    temp: float | None = None
    if doc.get("temp") is not None:
        raw = doc["temp"]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return Rejected("away temp must be a number")
        checked = _temperature(float(raw), min_temp, max_temp)
        if isinstance(checked, Rejected):
            return checked
        temp = checked
    try:
        if "for" in doc:
            until = until_after(now, parse_duration_s(doc["for"]))
        elif isinstance(doc["until"], str):
            until = parse_until(doc["until"], now, tz)
        else:
            return Rejected('until must be a time ("2026-12-27T16:00", "2026-12-27", "18:30")')
    except ValueError as exc:
        return Rejected(str(exc))
    return SetAway(until, temp)


def parse_away_end(payload: bytes, now: datetime, tz: ZoneInfo) -> PlanAwayEnd | Rejected:
    """A command on ``<base>/away/until/set`` (HA's text entity). Empty clears the planned end."""
    try:
        text = _text(payload, limit=64)
    except BadReading as exc:
        return Rejected(exc.reason)
    if not text or text.lower() == AWAY_NO_END:
        return PlanAwayEnd(None)
    try:
        return PlanAwayEnd(parse_until(text, now, tz))
    except ValueError as exc:
        return Rejected(str(exc))


def parse_room_command(
    what: str,
    payload: bytes,
    min_temp: float,
    max_temp: float,
    presets: Sequence[str] = (),
    now: datetime | None = None,
    tz: ZoneInfo | None = None,
) -> RoomCommand | Rejected:
    """A command on ``<base>/room/<room>/<what>/set``. Never raises."""
    try:
        if what == "target":
            try:
                value = parse_payload(payload, None)
            except BadReading as exc:
                return Rejected(f"target must be a number: {exc.reason}")
            temp = _temperature(value, min_temp, max_temp)
            return temp if isinstance(temp, Rejected) else SetTarget(temp)
        if what == "mode":
            text = _text(payload).lower()
            if text == "off":
                return SetMode("off")
            if text == "heat":
                return SetMode("heat")
            return Rejected(f"mode must be off or heat, got {text[:40]!r}")
        if what == "preset":
            text = _text(payload)
            if text.lower() == "none":
                return SetPreset(None)
            if text in presets and text != "none":
                return SetPreset(text)
            known = ", ".join(["none", *presets])
            return Rejected(f"unknown preset {text[:40]!r} (known: {known})")
        if what == "override":
            return _parse_override(payload, min_temp, max_temp, now, tz)
        return Rejected(f"unknown room command {what[:40]!r}")
    except BadReading as exc:
        return Rejected(exc.reason)


def parse_heater_command(
    what: str, payload: bytes, ladder: Sequence[str], has_standby: bool = True
) -> HeaterCommand | Rejected:
    """A command on ``<base>/heater/<id>/<what>/set``. Never raises."""
    try:
        text = _text(payload)
        if what == "level":
            options = level_options(ladder, has_standby)
            if text in options:
                return SetLevel(text)
            if text.lower() in options:
                return SetLevel(text.lower())
            return Rejected(f"unknown level {text[:40]!r} (options: {', '.join(options)})")
        if what == "controlled":
            if text.upper() == "ON":
                return SetControlled(True)
            if text.upper() == "OFF":
                return SetControlled(False)
            return Rejected(f"controlled must be ON or OFF, got {text[:40]!r}")
        if what == "reboot":
            if text.upper() == "PRESS":
                return Reboot()
            return Rejected(f"reboot needs payload PRESS, got {text[:40]!r}")
        return Rejected(f"unknown heater command {what[:40]!r}")
    except BadReading as exc:
        return Rejected(exc.reason)


def parse_command(
    topic: str,
    payload: bytes,
    topics: Topics,
    rooms: Mapping[str, RoomInfo],
    heaters: Mapping[str, HeaterInfo],
    now: datetime | None = None,
) -> tuple[str | None, Command | Rejected]:
    """A full command topic → ``(room the reply/error belongs to, command or Rejected)``. Never raises."""
    split = topics.split_command(topic)
    if split is None:
        return None, Rejected(f"not a command topic: {topic[:80]!r}")
    kind, ident, what = split
    if kind == "room":
        room = rooms.get(ident)
        if room is None:
            return None, Rejected(f"unknown room {ident!r}")
        return room.id, parse_room_command(what, payload, room.min_temp, room.max_temp, room.presets, now)
    heater = heaters.get(ident)
    if heater is None:
        return None, Rejected(f"unknown heater {ident!r}")
    return heater.room, parse_heater_command(what, payload, heater.levels, heater.has_standby)
