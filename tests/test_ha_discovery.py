"""thermostat.adapters.ha discovery payloads, checked against tests/ha_schema.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import ha_schema
import pytest

from thermostat.adapters import ha
from thermostat.miners.models import MINI3, NANO3S, Q

T = ha.Topics("thermostat", "homeassistant")
ROOMS = [
    ha.RoomInfo("living", "Living room", 7.0, 26.0, ("comfort", "eco", "away"), currency="EUR"),
    ha.RoomInfo("bed-room", "Bedroom", 5.0, 24.0, ()),
]
HEATERS = [
    ha.HeaterInfo("mini-1", "Mini 3", "living", "mini3", MINI3.level_names, True, True, "192.168.1.20",
                  area="Living room"),
    ha.HeaterInfo("q1", "Avalon Q", "living", "q", Q.level_names, Q.has_standby, Q.inlet_sensor),
    ha.HeaterInfo("nano", "Nano 3S", "bed-room", "nano3s", NANO3S.level_names, NANO3S.has_standby,
                  NANO3S.inlet_sensor),
]


def published() -> set[str]:
    out = {T.status, T.problem, T.away, T.away_state, T.away_until}
    for r in ROOMS:
        out |= {T.room(r.id, leaf) for leaf in ha.ROOM_STATE_LEAVES}
    for h in HEATERS:
        out |= {T.heater(h.id, leaf) for leaf in ha.HEATER_STATE_LEAVES}
    return out


@pytest.fixture
def house() -> list[ha.Discovery]:
    return ha.discovery_payloads(T, ROOMS, HEATERS, expire_after_s=300)


def by_uid(house: list[ha.Discovery], uid: str) -> dict[str, Any]:
    for _, p in house:
        if p["unique_id"] == uid:
            return p
    raise KeyError(uid)


def test_every_payload_is_valid(house: list[ha.Discovery]) -> None:
    assert house
    for topic, payload in house:
        assert ha_schema.problems(topic, payload) == [], topic
        json.loads(ha.encode(payload))  # JSON-encodable, no NaN


def test_topics_consistent(house: list[ha.Discovery]) -> None:
    assert ha_schema.topic_problems(house, T.command_filters(), published()) == []


def test_entity_inventory(house: list[ha.Discovery]) -> None:
    comps = sorted(topic.split("/")[1] for topic, _ in house)
    # 2 climates, 2 energy + 1 cost; per heater 6 telemetry (nano has no inlet) + state + current level,
    # 1 select, 1 switch, 1 button.
    assert comps.count("climate") == 2
    assert comps.count("binary_sensor") == 1  # the service's problem sensor
    assert comps.count("select") == 3 and comps.count("switch") == 3 + 1 and comps.count("button") == 3
    assert comps.count("text") == 1  # the house-wide away: a switch and its end
    assert comps.count("sensor") == 3 + (8 + 8 + 7)
    for topic, payload in house:
        assert topic == f"homeassistant/{topic.split('/')[1]}/{payload['unique_id']}/config"


def test_climate_details(house: list[ha.Discovery]) -> None:
    c = by_uid(house, "thermostat_living_climate")
    assert c["modes"] == ["off", "heat"]
    assert c["preset_modes"] == ["comfort", "eco", "away"]
    assert c["temperature_unit"] == "C" and c["precision"] == 0.1 and c["temp_step"] == 0.5
    assert (c["min_temp"], c["max_temp"]) == (7.0, 26.0)
    assert c["temperature_command_topic"] == "thermostat/room/living/target/set"
    assert c["current_temperature_topic"] == "thermostat/room/living/current_temp"
    assert c["action_topic"] == "thermostat/room/living/action"
    assert c["default_entity_id"] == "climate.living"
    assert c["device"]["identifiers"] == ["thermostat_room_living"]
    assert "object_id" not in c
    bed = by_uid(house, "thermostat_bed-room_climate".replace("-", "_"))
    assert "preset_modes" not in bed and "preset_mode_command_topic" not in bed  # no presets: no preset UI


def test_service_problem_sensor(house: list[ha.Discovery]) -> None:
    p = by_uid(house, "thermostat_service_problem")
    assert p["device_class"] == "problem"
    assert p["state_topic"] == p["json_attributes_topic"] == "thermostat/problem"
    assert p["default_entity_id"] == "binary_sensor.thermostat_problem"
    assert p["device"]["identifiers"] == ["thermostat_service"]
    assert "via_device" not in p["device"]
    assert house[0][0] == "homeassistant/binary_sensor/thermostat_service_problem/config"


def test_preset_none_never_listed() -> None:
    room = ha.RoomInfo("r", "R", presets=("none", "eco"))
    _, c = ha.climate_config(T, room)
    assert c["preset_modes"] == ["eco"]


def test_energy_and_cost(house: list[ha.Discovery]) -> None:
    e = by_uid(house, "thermostat_living_energy")
    assert (e["device_class"], e["unit_of_measurement"], e["state_class"]) == ("energy", "kWh", "total_increasing")
    cost = by_uid(house, "thermostat_living_cost")
    assert (cost["device_class"], cost["unit_of_measurement"], cost["state_class"]) == ("monetary", "EUR", "total")
    with pytest.raises(KeyError):
        by_uid(house, "thermostat_bed_room_cost")
    with pytest.raises(ValueError):
        ha.room_cost_config(T, ROOMS[1])


def test_heater_entities(house: list[ha.Discovery]) -> None:
    sel = by_uid(house, "thermostat_heater_mini_1_level")
    assert sel["options"] == ["auto", "night", "eco", "super", "mining", "standby"]
    assert sel["command_topic"] == "thermostat/heater/mini-1/level/set"
    assert by_uid(house, "thermostat_heater_nano_level")["options"] == ["auto", "low", "mid", "high"]
    power = by_uid(house, "thermostat_heater_q1_power")
    assert (power["device_class"], power["unit_of_measurement"]) == ("power", "W")
    assert power["expire_after"] == 300
    chip = by_uid(house, "thermostat_heater_q1_chip_temp")
    assert (chip["device_class"], chip["unit_of_measurement"]) == ("temperature", "°C")
    state = by_uid(house, "thermostat_heater_q1_state")
    assert state["device_class"] == "enum" and "running" in state["options"]
    sw = by_uid(house, "thermostat_heater_q1_controlled")
    assert (sw["payload_on"], sw["payload_off"]) == ("ON", "OFF")
    btn = by_uid(house, "thermostat_heater_q1_reboot")
    assert btn["payload_press"] == "PRESS" and btn["device_class"] == "restart"
    # the miner's device names its area itself and never the room's device (see test_room_area_in_any_order)
    assert sel["device"]["suggested_area"] == "Living room" and "via_device" not in sel["device"]
    assert sel["device"]["model"] == "Avalon Mini 3"
    assert sel["device"]["configuration_url"] == "http://192.168.1.20/"
    with pytest.raises(KeyError):
        by_uid(house, "thermostat_heater_nano_inlet_temp")  # Nano 3S has no inlet sensor


def test_unique_ids_stable() -> None:
    a = ha.discovery_payloads(T, ROOMS, HEATERS)
    b = ha.discovery_payloads(T, list(ROOMS), list(HEATERS))
    assert [p["unique_id"] for _, p in a] == [p["unique_id"] for _, p in b]
    other = ha.Topics("house2/heat")
    assert other.room_uid("living", "climate") == "house2_heat_living_climate"


def test_heater_states_match_the_state_machine() -> None:
    from thermostat.core.heater import HeaterState

    assert set(ha.HEATER_STATES) == {s.value for s in HeaterState}


def test_removal_payloads(house: list[ha.Discovery]) -> None:
    removal = ha.removal_payloads(house)
    assert len(removal) == len(house) and all(p == "" for _, p in removal)


# --- the checker must be able to fail ------------------------------------------------------------


def _mutate(
    house: list[ha.Discovery], uid: str, change: dict[str, Any], drop: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any]]:
    for topic, p in house:
        if p["unique_id"] == uid:
            q = copy.deepcopy(p)
            q.update(change)
            for k in drop:
                q.pop(k, None)
            return topic, q
    raise KeyError(uid)


BAD_CASES = [
    ("thermostat_living_climate", {"object_id": "living"}, (), "no longer accepted"),
    ("thermostat_living_climate", {"temperatur_command_topic": "x/y"}, (), "unknown key"),
    ("thermostat_living_climate", {"temperature_unit": "°C"}, (), "temperature_unit"),
    ("thermostat_living_climate", {"precision": 0.01}, (), "precision"),
    ("thermostat_living_climate", {"modes": ["off", "heating"]}, (), "mode 'heating'"),
    ("thermostat_living_climate", {"preset_modes": ["none", "eco"]}, (), "must not include 'none'"),
    ("thermostat_living_climate", {}, ("preset_mode_command_topic",), "used together"),
    ("thermostat_living_climate", {"min_temp": 30.0}, (), "min_temp must be below"),
    ("thermostat_living_climate", {"device": {"name": "x"}}, (), "identifiers or connections"),
    ("thermostat_living_climate", {"device": {"identifiers": ["a"], "area": "x"}}, (), "unknown device key"),
    ("thermostat_living_climate", {}, ("unique_id",), "ignored without unique_id"),
    ("thermostat_living_climate", {"default_entity_id": "sensor.living"}, (), "default_entity_id"),
    ("thermostat_living_climate", {"mode_state_topic": "a/+/b"}, (), "without wildcards"),
    ("thermostat_living_energy", {"state_class": "measurement"}, (), "does not fit"),
    ("thermostat_living_energy", {"unit_of_measurement": "kW"}, (), "does not fit"),
    ("thermostat_living_energy", {}, ("state_topic",), "required key 'state_topic'"),
    ("thermostat_living_cost", {"unit_of_measurement": "€"}, (), "ISO 4217"),
    ("thermostat_heater_q1_power", {"unit_of_measurement": "kWh"}, (), "does not fit"),
    ("thermostat_heater_q1_chip_temp", {"unit_of_measurement": "C"}, (), "does not fit"),
    ("thermostat_heater_q1_state", {"state_class": "measurement"}, (), "does not fit"),
    ("thermostat_heater_q1_state", {}, ("options",), "options"),
    ("thermostat_heater_q1_power", {"entity_category": "primary"}, (), "entity_category"),
    ("thermostat_heater_q1_level", {"options": []}, (), "options"),
    ("thermostat_heater_q1_level", {}, ("command_topic",), "required key 'command_topic'"),
    ("thermostat_heater_q1_controlled", {"payload_off": "ON"}, (), "must differ"),
    ("thermostat_heater_q1_reboot", {"device_class": "reboot"}, (), "device_class"),
    ("thermostat_heater_q1_reboot", {"availability": [{"topic": "t", "payload_online": "1"}]}, (), "availability"),
]


@pytest.mark.parametrize(("uid", "change", "drop", "fragment"), BAD_CASES)
def test_checker_rejects_bad_payloads(
    house: list[ha.Discovery], uid: str, change: dict[str, Any], drop: tuple[str, ...], fragment: str
) -> None:
    topic, bad = _mutate(house, uid, change, drop)
    found = ha_schema.problems(topic, bad)
    assert any(fragment in p for p in found), found


def test_checker_rejects_bad_topics(house: list[ha.Discovery]) -> None:
    assert ha_schema.problems("homeassistant/climate/bad id/config", {"unique_id": "x"})
    assert ha_schema.problems("homeassistant/climate/x", {})
    # A command topic nobody subscribes to, a state topic nobody publishes, a duplicate id, a dangling via_device.
    topic, c = _mutate(house, "thermostat_living_climate", {"mode_command_topic": "thermostat/room/living/mode/cmd"})
    assert any("not subscribed" in p for p in ha_schema.topic_problems([(topic, c)], T.command_filters(), published()))
    topic, c = _mutate(house, "thermostat_living_climate", {"action_topic": "thermostat/room/living/hvac_action"})
    assert any("not published" in p for p in ha_schema.topic_problems([(topic, c)], T.command_filters(), published()))
    assert any("used by" in p for p in ha_schema.topic_problems(house + house[:1], T.command_filters(), published()))
    heater_only = [(t, p) for t, p in house if "heater" in p["unique_id"]]
    dangling = [(t, {**p, "device": {**p["device"], "via_device": "thermostat_room_nowhere"}}) for t, p in heater_only]
    assert any("via_device" in p for p in ha_schema.topic_problems(dangling, T.command_filters(), published()))


def test_topic_matches() -> None:
    assert ha_schema.topic_matches("a/+/c", "a/b/c")
    assert ha_schema.topic_matches("a/#", "a/b/c")
    assert not ha_schema.topic_matches("a/+", "a/b/c")
    assert not ha_schema.topic_matches("a/b/c", "a/b")


def test_split_command() -> None:
    assert T.split_command("thermostat/room/living/target/set") == ("room", "living", "target")
    assert T.split_command("thermostat/heater/q1/level/set") == ("heater", "q1", "level")
    assert T.split_command("thermostat/room/living/target") is None
    assert T.split_command("other/room/living/target/set") is None
    assert T.split_command("thermostat/boiler/x/y/set") is None
    assert T.split_command("thermostat/room//target/set") is None


def test_room_area_in_any_order(house: list[ha.Discovery]) -> None:
    """HA takes `suggested_area` only when it creates a device, and retained configs arrive in topic order
    (a miner's `button`/`select` before the room's `climate`). Whatever the order, the first payload that makes
    HA create a room's device carries the area: every payload naming a room device carries its full block, and
    no miner payload names a room device."""
    room_ids = {T.room_device_id(r.id) for r in ROOMS}
    for order in (sorted(house), sorted(house, reverse=True)):
        created: dict[str, dict[str, object]] = {}
        for _, payload in order:
            dev = payload["device"]
            assert dev.get("via_device") not in room_ids
            for ident in dev["identifiers"]:
                created.setdefault(ident, dev)
        for r in ROOMS:
            assert created[T.room_device_id(r.id)]["suggested_area"] == r.name
