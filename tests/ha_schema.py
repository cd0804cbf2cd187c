"""A checker for Home Assistant MQTT discovery payloads, from HA's documented schemas.

Home Assistant drops unknown keys silently (a typo'd key just does nothing), so this checker is strict
where HA is lax: every key must be one HA knows for that component. Sources: the HA MQTT integration
pages (climate.mqtt, sensor.mqtt, select.mqtt, switch.mqtt, button.mqtt, the discovery section) and
the component schemas of homeassistant/components/mqtt/*.py; current-release specifics as summarised in
shared/reference/thermostat-landscape.md §3.4 (no object_id → default_entity_id, temperature_unit C/F,
precision 0.1/0.5/1.0, device block needs identifiers/connections, energy needs total/total_increasing).

`problems(topic, payload)` returns a list of human-readable problems (empty = valid).
`topic_problems(payloads, subscribed, published)` checks the topics against what the service does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

COMPONENTS = ("climate", "sensor", "binary_sensor", "select", "switch", "button", "text")

_AVAILABILITY = {"availability", "availability_mode", "availability_template", "availability_topic",
                 "payload_available", "payload_not_available"}
_COMMON = _AVAILABILITY | {
    "device", "default_entity_id", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "unique_id", "qos", "origin", "platform",
}

ALLOWED: dict[str, set[str]] = {
    "climate": _COMMON | {
        "action_template", "action_topic",
        "current_humidity_template", "current_humidity_topic",
        "current_temperature_template", "current_temperature_topic",
        "fan_mode_command_template", "fan_mode_command_topic", "fan_mode_state_template", "fan_mode_state_topic",
        "fan_modes",
        "initial", "max_humidity", "max_temp", "min_humidity", "min_temp",
        "mode_command_template", "mode_command_topic", "mode_state_template", "mode_state_topic", "modes",
        "optimistic", "payload_off", "payload_on", "power_command_template", "power_command_topic", "precision",
        "preset_mode_command_template", "preset_mode_command_topic", "preset_mode_state_topic",
        "preset_mode_value_template", "preset_modes", "retain",
        "swing_horizontal_mode_command_template", "swing_horizontal_mode_command_topic",
        "swing_horizontal_mode_state_template", "swing_horizontal_mode_state_topic", "swing_horizontal_modes",
        "swing_mode_command_template", "swing_mode_command_topic", "swing_mode_state_template",
        "swing_mode_state_topic", "swing_modes",
        "target_humidity_command_template", "target_humidity_command_topic", "target_humidity_state_template",
        "target_humidity_state_topic",
        "temperature_command_template", "temperature_command_topic",
        "temperature_high_command_template", "temperature_high_command_topic",
        "temperature_high_state_template", "temperature_high_state_topic",
        "temperature_low_command_template", "temperature_low_command_topic",
        "temperature_low_state_template", "temperature_low_state_topic",
        "temperature_state_template", "temperature_state_topic", "temperature_unit", "temp_step",
        "value_template",
    },
    "sensor": _COMMON | {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "suggested_display_precision", "state_class", "state_topic", "unit_of_measurement", "value_template",
    },
    "binary_sensor": _COMMON | {
        "device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on", "state_topic",
        "value_template",
    },
    "select": _COMMON | {
        "command_template", "command_topic", "optimistic", "options", "retain", "state_topic", "value_template",
    },
    "switch": _COMMON | {
        "command_template", "command_topic", "device_class", "optimistic", "payload_off", "payload_on", "retain",
        "state_off", "state_on", "state_topic", "value_template",
    },
    "button": _COMMON | {"command_template", "command_topic", "device_class", "payload_press", "retain"},
    "text": _COMMON | {"command_template", "command_topic", "max", "min", "mode", "pattern", "retain", "state_topic",
                       "value_template"},
}

REQUIRED: dict[str, set[str]] = {
    "climate": set(),
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "select": {"command_topic", "options"},
    "switch": {"command_topic"},
    "button": {"command_topic"},
    "text": {"command_topic"},
}

REMOVED = {"object_id": "replaced by default_entity_id", "obj_id": "replaced by default_entity_id",
           "aux_command_topic": "aux heat was removed", "aux_state_topic": "aux heat was removed",
           "aux_state_template": "aux heat was removed", "hold_command_topic": "removed in 2022.9",
           "away_mode_command_topic": "removed in 2022.9", "send_if_off": "removed in 2022.9"}

DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name", "sw_version",
               "hw_version", "serial_number", "suggested_area", "via_device", "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_ITEM_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}

CLIMATE_MODES = {"auto", "off", "cool", "heat", "dry", "fan_only", "heat_cool"}
PRECISIONS = {0.1, 0.5, 1.0}
ENTITY_CATEGORIES = {"config", "diagnostic"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}

# device_class -> (allowed units, allowed state classes); None = anything
SENSOR_CLASSES: dict[str, tuple[set[str] | None, set[str] | None]] = {
    "temperature": ({"°C", "°F", "K"}, {"measurement"}),
    "power": ({"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"}, {"measurement"}),
    "energy": ({"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
               {"total", "total_increasing"}),
    "monetary": (None, {"total"}),
    "enum": (set(), set()),  # no unit, no state class
    "humidity": ({"%"}, {"measurement"}),
    "power_factor": ({"%", None}, {"measurement"}),  # type: ignore[arg-type]
    "voltage": ({"V", "mV", "µV", "kV", "MV"}, {"measurement"}),
    "current": ({"A", "mA"}, {"measurement"}),
    "duration": ({"d", "h", "min", "s", "ms", "µs"}, None),
    "frequency": ({"Hz", "kHz", "MHz", "GHz"}, {"measurement"}),
    "timestamp": (set(), set()),
}
BUTTON_CLASSES = {"identify", "restart", "update"}
BINARY_SENSOR_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
}
SWITCH_CLASSES = {"outlet", "switch"}

_OBJECT_ID = re.compile(r"[a-zA-Z0-9_-]+")
_ENTITY_ID = re.compile(r"[a-z_]+\.[a-z0-9_]+")


def _is_topic(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "#" not in value and "+" not in value and "\0" not in value


def problems(topic: str, payload: Mapping[str, Any], discovery_prefix: str = "homeassistant") -> list[str]:
    out: list[str] = []
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != discovery_prefix or parts[-1] != "config":
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    component = parts[1]
    if component not in ALLOWED:
        return [f"{topic}: component {component!r} not checked here"]
    if not all(_OBJECT_ID.fullmatch(p) for p in parts[2:-1]):
        out.append(f"{topic}: node_id/object_id must be [a-zA-Z0-9_-]")
    where = f"{component} {payload.get('unique_id', topic)}"

    for key in payload:
        if key in REMOVED:
            out.append(f"{where}: {key!r} is no longer accepted ({REMOVED[key]})")
        elif key not in ALLOWED[component]:
            out.append(f"{where}: unknown key {key!r} (HA would drop it silently)")
    for key in sorted(REQUIRED[component] - payload.keys()):
        out.append(f"{where}: required key {key!r} missing")
    for key, value in payload.items():
        if key.endswith("_topic") and not _is_topic(value):
            out.append(f"{where}: {key} must be a topic without wildcards, got {value!r}")
    if "qos" in payload and payload["qos"] not in (0, 1, 2):
        out.append(f"{where}: qos must be 0, 1 or 2")
    for key in ("retain", "optimistic", "enabled_by_default", "force_update"):
        if key in payload and not isinstance(payload[key], bool):
            out.append(f"{where}: {key} must be a boolean")
    if "name" in payload and payload["name"] is not None and not isinstance(payload["name"], str):
        out.append(f"{where}: name must be a string or null")
    if "entity_category" in payload and payload["entity_category"] not in ENTITY_CATEGORIES:
        out.append(f"{where}: entity_category must be one of {sorted(ENTITY_CATEGORIES)}")
    if "default_entity_id" in payload:
        eid = payload["default_entity_id"]
        if not isinstance(eid, str) or not _ENTITY_ID.fullmatch(eid) or eid.split(".")[0] != component:
            out.append(f"{where}: default_entity_id must be '{component}.<object_id>', got {eid!r}")

    # unique_id and device
    if "device" in payload:
        if "unique_id" not in payload:
            out.append(f"{where}: a device block is ignored without unique_id")
        out.extend(_device_problems(where, payload["device"]))
    if "unique_id" in payload and (not isinstance(payload["unique_id"], str) or not payload["unique_id"]):
        out.append(f"{where}: unique_id must be a non-empty string")
    if "origin" in payload:
        origin = payload["origin"]
        if not isinstance(origin, dict) or "name" not in origin:
            out.append(f"{where}: origin needs a name")
        else:
            out.extend(f"{where}: unknown origin key {k!r}" for k in origin if k not in ORIGIN_KEYS)
    out.extend(_availability_problems(where, payload))

    check = {"climate": _climate, "sensor": _sensor, "binary_sensor": _binary_sensor, "select": _select,
             "switch": _switch, "button": _button, "text": _text}
    out.extend(check[component](where, payload))
    return out


def _device_problems(where: str, dev: Any) -> list[str]:
    if not isinstance(dev, dict):
        return [f"{where}: device must be an object"]
    out = [f"{where}: unknown device key {k!r}" for k in dev if k not in DEVICE_KEYS]
    ids = dev.get("identifiers")
    conns = dev.get("connections")
    if not ids and not conns:
        out.append(f"{where}: device needs identifiers or connections")
    if ids is not None and not (
        isinstance(ids, str) or (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids))
    ):
        out.append(f"{where}: device identifiers must be a string or a list of strings")
    if "via_device" in dev and not isinstance(dev["via_device"], str):
        out.append(f"{where}: via_device must be a device identifier string")
    return out


def _availability_problems(where: str, payload: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if "availability" in payload and "availability_topic" in payload:
        out.append(f"{where}: availability and availability_topic are mutually exclusive")
    items = payload.get("availability", [])
    if not isinstance(items, list):
        return [*out, f"{where}: availability must be a list"]
    for item in items:
        if not isinstance(item, dict) or "topic" not in item:
            out.append(f"{where}: every availability item needs a topic")
            continue
        out.extend(f"{where}: unknown availability key {k!r}" for k in item if k not in AVAILABILITY_ITEM_KEYS)
        if not _is_topic(item["topic"]):
            out.append(f"{where}: availability topic {item['topic']!r} is not a topic")
    if payload.get("availability_mode", "latest") not in ("all", "any", "latest"):
        out.append(f"{where}: availability_mode must be all, any or latest")
    return out


def _climate(where: str, p: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    modes = p.get("modes")
    if modes is not None:
        if not isinstance(modes, list) or not modes:
            out.append(f"{where}: modes must be a non-empty list")
        else:
            out.extend(f"{where}: mode {m!r} not one of {sorted(CLIMATE_MODES)}" for m in modes
                       if m not in CLIMATE_MODES)
    if "temperature_unit" in p and p["temperature_unit"] not in ("C", "F"):
        out.append(f"{where}: temperature_unit must be 'C' or 'F', got {p['temperature_unit']!r}")
    if "precision" in p and p["precision"] not in PRECISIONS:
        out.append(f"{where}: precision must be 0.1, 0.5 or 1.0, got {p['precision']!r}")
    for key in ("min_temp", "max_temp", "temp_step"):
        if key in p and (isinstance(p[key], bool) or not isinstance(p[key], int | float)):
            out.append(f"{where}: {key} must be a number")
    if isinstance(p.get("min_temp"), int | float) and isinstance(p.get("max_temp"), int | float) \
            and p["min_temp"] >= p["max_temp"]:
        out.append(f"{where}: min_temp must be below max_temp")
    if isinstance(p.get("temp_step"), int | float) and p["temp_step"] <= 0:
        out.append(f"{where}: temp_step must be > 0")
    presets = p.get("preset_modes")
    if ("preset_modes" in p) != ("preset_mode_command_topic" in p):
        out.append(f"{where}: preset_modes and preset_mode_command_topic must be used together")
    if presets is not None:
        if not isinstance(presets, list) or not all(isinstance(x, str) and x for x in presets):
            out.append(f"{where}: preset_modes must be a list of strings")
        elif "none" in presets:
            out.append(f"{where}: preset_modes must not include 'none' (HA adds it)")
        elif len(set(presets)) != len(presets):
            out.append(f"{where}: duplicate preset_modes")
    return out


def _sensor(where: str, p: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    dc = p.get("device_class")
    unit = p.get("unit_of_measurement")
    sc = p.get("state_class")
    if sc is not None and sc not in STATE_CLASSES:
        out.append(f"{where}: state_class {sc!r} not one of {sorted(STATE_CLASSES)}")
    if dc is not None:
        if dc not in SENSOR_CLASSES:
            out.append(f"{where}: device_class {dc!r} unknown to this checker")
        else:
            units, classes = SENSOR_CLASSES[dc]
            if units is not None and (unit not in units if units else unit is not None):
                out.append(f"{where}: unit {unit!r} does not fit device_class {dc!r}")
            if dc == "monetary" and not (isinstance(unit, str) and re.fullmatch(r"[A-Z]{3}", unit)):
                out.append(f"{where}: monetary needs an ISO 4217 currency unit, got {unit!r}")
            if classes is not None and sc is not None and sc not in classes:
                out.append(f"{where}: state_class {sc!r} does not fit device_class {dc!r}")
    if dc == "enum":
        opts = p.get("options")
        if not isinstance(opts, list) or not opts or not all(isinstance(o, str) for o in opts):
            out.append(f"{where}: an enum sensor needs a non-empty options list of strings")
        elif len(set(opts)) != len(opts):
            out.append(f"{where}: duplicate enum options")
    elif "options" in p:
        out.append(f"{where}: options are only for device_class enum")
    if "expire_after" in p and (not isinstance(p["expire_after"], int) or p["expire_after"] <= 0):
        out.append(f"{where}: expire_after must be a positive integer (seconds)")
    if "suggested_display_precision" in p and (
        not isinstance(p["suggested_display_precision"], int) or p["suggested_display_precision"] < 0
    ):
        out.append(f"{where}: suggested_display_precision must be an integer >= 0")
    return out


def _binary_sensor(where: str, p: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if "device_class" in p and p["device_class"] not in BINARY_SENSOR_CLASSES:
        out.append(f"{where}: binary_sensor device_class {p['device_class']!r} unknown")
    if p.get("payload_on", "ON") == p.get("payload_off", "OFF"):
        out.append(f"{where}: payload_on and payload_off must differ")
    for key in ("unit_of_measurement", "state_class", "options"):
        if key in p:
            out.append(f"{where}: a binary_sensor has no {key}")
    return out


def _select(where: str, p: Mapping[str, Any]) -> list[str]:
    opts = p.get("options")
    if not isinstance(opts, list) or not opts or not all(isinstance(o, str) and o for o in opts):
        return [f"{where}: options must be a non-empty list of strings"]
    if len(set(opts)) != len(opts):
        return [f"{where}: duplicate options"]
    return []


def _switch(where: str, p: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if p.get("payload_on", "ON") == p.get("payload_off", "OFF"):
        out.append(f"{where}: payload_on and payload_off must differ")
    if "device_class" in p and p["device_class"] not in SWITCH_CLASSES:
        out.append(f"{where}: switch device_class must be one of {sorted(SWITCH_CLASSES)}")
    return out


def _text(where: str, p: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    low, high = p.get("min", 0), p.get("max", 255)
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= 255):
        out.append(f"{where}: text needs integers 0 <= min <= max <= 255, got {low!r}, {high!r}")
    if p.get("mode", "text") not in ("text", "password"):
        out.append(f"{where}: text mode must be text or password")
    if "pattern" in p:
        try:
            re.compile(p["pattern"])
        except (re.error, TypeError):
            out.append(f"{where}: pattern is not a valid regular expression")
    return out


def _button(where: str, p: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if "device_class" in p and p["device_class"] not in BUTTON_CLASSES:
        out.append(f"{where}: button device_class must be one of {sorted(BUTTON_CLASSES)}")
    if "payload_press" in p and not isinstance(p["payload_press"], str):
        out.append(f"{where}: payload_press must be a string")
    return out


# --- across payloads --------------------------------------------------------------------------------


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with + and #."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, fp in enumerate(f_parts):
        if fp == "#":
            return True
        if i >= len(t_parts) or (fp != "+" and fp != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


def _command_keys(payload: Mapping[str, Any]) -> list[str]:
    return [k for k in payload if k.endswith("command_topic")]


def _state_keys(payload: Mapping[str, Any]) -> list[str]:
    return [k for k in payload if k.endswith("_topic") and not k.endswith("command_topic")]


def topic_problems(
    payloads: Iterable[tuple[str, Mapping[str, Any]]], subscribed: Iterable[str], published: Iterable[str]
) -> list[str]:
    """Every command topic is one the service subscribes to; every state/availability topic one it
    publishes; unique ids unique; one device description per identifier; via_device points at a device."""
    subs = list(subscribed)
    pubs = set(published)
    out: list[str] = []
    seen_uid: dict[str, str] = {}
    devices: dict[str, Mapping[str, Any]] = {}
    via: list[tuple[str, str]] = []
    for topic, p in payloads:
        uid = str(p.get("unique_id"))
        if uid in seen_uid:
            out.append(f"unique_id {uid!r} used by {seen_uid[uid]} and {topic}")
        seen_uid[uid] = topic
        for key in _command_keys(p):
            if not any(topic_matches(f, p[key]) for f in subs):
                out.append(f"{uid}: {key} {p[key]!r} is not subscribed by the service")
        for key in _state_keys(p):
            if p[key] not in pubs:
                out.append(f"{uid}: {key} {p[key]!r} is not published by the service")
        for item in p.get("availability", []):
            if isinstance(item, dict) and item.get("topic") not in pubs:
                out.append(f"{uid}: availability topic {item.get('topic')!r} is not published by the service")
        dev = p.get("device")
        if isinstance(dev, dict):
            for ident in dev.get("identifiers", []) or []:
                if ident in devices and devices[ident] != dev:
                    out.append(f"{uid}: device {ident!r} described differently by two entities")
                devices[ident] = dev
            if "via_device" in dev:
                via.append((uid, dev["via_device"]))
    for uid, target in via:
        if target not in devices:
            out.append(f"{uid}: via_device {target!r} is not a discovered device")
    return out
