"""Configuration loading: every error is reported with file:line:col, all at once, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import annotated_types
import pytest

from thermostat.config import (
    Config,
    ConfigError,
    HeaterConfig,
    config_warnings,
    load_config,
    load_schedule,
    parse_duration,
    render_reference,
)
from thermostat.core.schedule import Schedule
from thermostat.service.household import default_heater_settings
from thermostat.yamlio import display_path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "config"

MINIMAL_HEATERS = "heaters:\n  a: {host: 192.168.1.50, model: mini3}\n"


def errors(tmp_path: Path, text: str, name: str = "house.yaml") -> list[str]:
    """Errors for a config text, with the file path replaced by 'F'."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    out = []
    for line in info.value.errors:
        assert line.startswith(str(path)) or "schedule" in line, line
        out.append(line.replace(str(path), "F"))
    assert str(info.value) == "\n".join(info.value.errors)
    return out


def room(extra: str = "", heaters: str = "[a]") -> str:
    return (
        f"rooms:\n  living:\n    sensor: {{topic: zigbee2mqtt/living}}\n    target: 20\n    heaters: {heaters}\n{extra}"
    )


# --------------------------------------------------------------------------- valid files


def test_example_house_config_loads() -> None:
    cfg = load_config(ROOT / "deploy" / "house.example.yaml")
    assert isinstance(cfg, Config)
    assert set(cfg.rooms) == {"living", "office", "workshop"}
    assert cfg.rooms["living"].heaters == ["mini3-a", "q-living"]
    living_sched = cfg.rooms["living"].schedule
    assert living_sched is not None and living_sched.is_absolute()
    assert living_sched == (ROOT / "schedules" / "default.yaml").resolve()
    assert isinstance(cfg.schedules["living"], Schedule)
    assert cfg.schedules["living"].timezone == "Europe/Berlin"
    assert cfg.schedules["workshop"].week[0][0].temp == 12.0  # fixed target → constant schedule
    assert cfg.rooms["living"].sensor.stale_after == 900.0
    assert cfg.heaters["mini3-a"].levels_w == {"eco": 540.0}
    assert cfg.heaters["nano-office"].fan == 40
    assert cfg.heaters["nano-office"].plug is not None
    assert cfg.rooms["office"].control.mode == "hysteresis"
    assert cfg.tariff is not None and cfg.tariff.price_per_kwh == 0.30
    assert cfg.room_of("nano-office") == "office"
    assert cfg.path == (ROOT / "deploy" / "house.example.yaml").resolve()


def test_minimal_config_uses_defaults() -> None:
    cfg = load_config(DATA / "minimal.yaml")
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883
    assert cfg.heaters["a"].port == 4028 and cfg.heaters["a"].model == "auto"
    assert cfg.heaters["a"].min_on == 600.0
    assert cfg.rooms["living"].control.mode == "mpc"  # mpc is the default for new configs (issue 14)
    assert cfg.rooms["living"].limits.min_c == 7 and cfg.rooms["living"].limits.max_c == 26
    assert cfg.safety.on_exit == "standby"
    assert cfg.state.path.is_absolute()
    assert cfg.tariff is None


def test_relative_schedule_path_resolves_against_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a different cwd must not matter
    cfg = load_config(DATA / "house_with_schedule.yaml")
    assert cfg.rooms["living"].schedule == DATA / "schedule_ok.yaml"
    assert cfg.schedule_for("living").presets["comfort"] == 21


def test_example_schedules_load() -> None:
    for name in ("default.yaml", "office.yaml"):
        sched = load_schedule(ROOT / "schedules" / name)
        assert sched.timezone == "Europe/Berlin"
    default = load_schedule(ROOT / "schedules" / "default.yaml")
    assert set(default.presets) >= {"comfort", "eco", "away", "frost"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("30", 30.0),
        (" 10 m ", 600.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["15 minutes", "m", "", "1x", True, -5, "-3s", None, [1]])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# --------------------------------------------------------------------------- single errors, exact positions


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    text = "mqtt:\n  hots: broker\n" + room() + MINIMAL_HEATERS
    assert errors(tmp_path, text) == ["F:2:3: mqtt.hots: unknown key 'hots'; did you mean 'host'?"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = room() + MINIMAL_HEATERS + "safty: {on_exit: leave}\n"
    assert errors(tmp_path, text) == ["F:8:1: safty: unknown key 'safty'; did you mean 'safety'?"]


def test_unknown_key_inside_union_member(tmp_path: Path) -> None:
    text = room("    control: {mode: hysteresis, cold_tolerence: 0.2}\n") + MINIMAL_HEATERS
    assert errors(tmp_path, text) == [
        "F:6:33: rooms.living.control.cold_tolerence: unknown key 'cold_tolerence'; did you mean 'cold_tolerance'?"
    ]


def test_wrong_type(tmp_path: Path) -> None:
    text = "mqtt:\n  port: abc\n" + room() + MINIMAL_HEATERS
    (line,) = errors(tmp_path, text)
    assert line.startswith("F:2:9: mqtt.port: Input should be a valid integer")


def test_out_of_range(tmp_path: Path) -> None:
    text = "mqtt:\n  port: 70000\n" + room() + MINIMAL_HEATERS
    assert errors(tmp_path, text) == ["F:2:9: mqtt.port: Input should be less than or equal to 65535 (got 70000)"]


def test_a_wake_budget_of_zero_is_refused_at_check_time_not_at_start(tmp_path: Path) -> None:
    text = room() + "heaters:\n  a: {host: 10.0.0.5, model: mini3, max_wakes_per_hour: 0}\n"
    (line,) = errors(tmp_path, text)
    assert line.startswith("F:7:")
    assert "heaters.a.max_wakes_per_hour: Input should be greater than or equal to 1" in line


def test_missing_required(tmp_path: Path) -> None:
    text = "rooms:\n  living:\n    target: 20\n    heaters: [a]\n" + MINIMAL_HEATERS
    assert errors(tmp_path, text) == [
        "F:2:3: rooms.living: a room needs exactly one of `sensor` (one) or `sensors` (a list)"]


def test_missing_sections(tmp_path: Path) -> None:
    assert errors(tmp_path, "log: {level: info}\n") == [
        "F:1:1: rooms: required key is missing",
        "F:1:1: heaters: required key is missing",
    ]


def test_unknown_heater_reference(tmp_path: Path) -> None:
    text = room(heaters="[a, mini3-x]") + MINIMAL_HEATERS
    assert errors(tmp_path, text) == ["F:5:18: rooms.living.heaters.1: unknown heater 'mini3-x'; expected one of: a"]


def test_unknown_heater_reference_suggests(tmp_path: Path) -> None:
    text = room(heaters="[mini3-aa]") + "heaters:\n  mini3-a: {host: h1}\n"
    assert errors(tmp_path, text) == [
        "F:5:15: rooms.living.heaters.0: unknown heater 'mini3-aa'; did you mean 'mini3-a'?"
    ]


def test_heater_in_two_rooms(tmp_path: Path) -> None:
    text = room() + "  office:\n    sensor: {topic: a/b}\n    target: 18\n    heaters:\n      - a\n" + MINIMAL_HEATERS
    assert errors(tmp_path, text) == ["F:10:9: rooms.office.heaters.0: heater 'a' already belongs to room 'living'"]


def test_bad_duration(tmp_path: Path) -> None:
    text = (
        "rooms:\n  living:\n    sensor:\n      topic: x/y\n      stale_after: 15 minutes\n    target: 20\n"
        "    heaters: [a]\n" + MINIMAL_HEATERS
    )
    assert errors(tmp_path, text) == [
        "F:5:20: rooms.living.sensor.stale_after: invalid duration '15 minutes'; "
        'use e.g. "90s", "15m", "2h", "1h30m" or a number of seconds'
    ]


def test_inline_password_refused_and_not_echoed(tmp_path: Path) -> None:
    text = "mqtt:\n  username: heat\n  password: hunter2\n" + room() + MINIMAL_HEATERS
    result = errors(tmp_path, text)
    assert result == ["F:3:13: mqtt.password: inline passwords are not allowed; use password_file or password_env"]
    assert "hunter2" not in "\n".join(result)


def test_password_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt.pass").write_text("s3cret\n")
    path = tmp_path / "house.yaml"
    path.write_text("mqtt: {username: heat, password_file: mqtt.pass}\n" + room() + MINIMAL_HEATERS)
    cfg = load_config(path)
    assert cfg.mqtt.password_file == tmp_path / "mqtt.pass"
    secret = cfg.mqtt.read_password()
    assert secret is not None and secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(secret)
    assert config_warnings(cfg) == []

    path.write_text("mqtt: {username: heat, password_env: THERMO_TEST_PW}\n" + room() + MINIMAL_HEATERS)
    cfg = load_config(path)
    monkeypatch.delenv("THERMO_TEST_PW", raising=False)
    assert config_warnings(cfg) == [
        "mqtt.password_env: THERMO_TEST_PW is not set in this environment (needed at run time)"
    ]
    with pytest.raises(ConfigError):
        cfg.mqtt.read_password()
    monkeypatch.setenv("THERMO_TEST_PW", "envpw")
    secret = cfg.mqtt.read_password()
    assert secret is not None and secret.get_secret_value() == "envpw"


def test_password_file_and_env_exclusive(tmp_path: Path) -> None:
    text = "mqtt:\n  password_file: p\n  password_env: PW\n" + room() + MINIMAL_HEATERS
    assert errors(tmp_path, text) == ["F:1:1: mqtt: give password_file or password_env, not both"]


def test_bad_ids_and_hosts(tmp_path: Path) -> None:
    text = (
        "rooms:\n  Living Room:\n    sensor: {topic: a/b}\n    target: 20\n    heaters: [a]\n"
        "heaters:\n  a: {host: '192.168.1.50, 192.168.1.51'}\n  B: {host: 192.168.1.300}\n"
    )
    assert errors(tmp_path, text) == [
        "F:2:3: rooms.Living Room: id 'Living Room' must be 1-64 of a-z, 0-9, '_' or '-' "
        "(it becomes an MQTT topic and a Home Assistant id)",
        "F:7:13: heaters.a.host: '192.168.1.50, 192.168.1.51' is not a hostname or an IP address",
        "F:8:3: heaters.B: id 'B' must be 1-64 of a-z, 0-9, '_' or '-' "
        "(it becomes an MQTT topic and a Home Assistant id)",
        "F:8:13: heaters.B.host: '192.168.1.300' is not a hostname or an IP address",
    ]


def test_hosts_accepted(tmp_path: Path) -> None:
    for host in ("miner.local", "192.168.1.5", "fe80::1", "a-b.example.com", "localhost"):
        path = tmp_path / "house.yaml"
        path.write_text(room() + f"heaters:\n  a: {{host: '{host}'}}\n")
        assert load_config(path).heaters["a"].host == host


def test_min_c_below_max_c(tmp_path: Path) -> None:
    text = room("    limits: {min_c: 22, max_c: 22}\n") + MINIMAL_HEATERS
    assert errors(tmp_path, text) == ["F:6:32: rooms.living.limits.max_c: max_c (22) must be greater than min_c (22)"]


def test_schedule_or_target(tmp_path: Path) -> None:
    text = "rooms:\n  living:\n    sensor: {topic: a/b}\n    heaters: [a]\n" + MINIMAL_HEATERS
    assert errors(tmp_path, text) == [
        "F:2:3: rooms.living: a room needs exactly one of `schedule` (a file) or `target` (°C)"
    ]


def test_levels_checked_against_model_ladder(tmp_path: Path) -> None:
    text = (
        room()
        + "heaters:\n  a:\n    host: h\n    model: nano3s\n    levels: [low, hgh]\n    levels_w:\n      turbo: 3\n"
    )
    assert errors(tmp_path, text) == [
        "F:10:19: heaters.a.levels.1: Avalon Nano 3S has no level 'hgh' (ladder: low, mid, high); did you mean 'high'?",
        "F:12:7: heaters.a.levels_w.turbo: Avalon Nano 3S has no level 'turbo'; ladder: low, mid, high",
    ]


def test_levels_not_checked_for_auto_model(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(room() + "heaters:\n  a: {host: h, model: auto, levels: [whatever]}\n")
    assert load_config(path).heaters["a"].levels == ["whatever"]


def test_unknown_model_suggests(tmp_path: Path) -> None:
    text = room() + "heaters:\n  a: {host: h, model: nano3z}\n"  # (nano3 itself is a model since issue 16)
    assert errors(tmp_path, text) == ["F:7:23: heaters.a.model: unknown model 'nano3z'; did you mean 'nano3'?"]


def test_schedule_file_missing(tmp_path: Path) -> None:
    text = "rooms:\n  living:\n    sensor: {topic: a/b}\n    schedule: nope.yaml\n    heaters: [a]\n" + MINIMAL_HEATERS
    assert errors(tmp_path, text) == [
        f"F:4:15: rooms.living.schedule: schedule file not found: {tmp_path / 'nope.yaml'}"
    ]


def test_schedule_file_errors_use_their_own_positions() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "house_bad_schedule.yaml")
    sched = str(DATA / "schedule_bad.yaml")
    lines = [e.replace(sched, "S").replace(display_path(Path(sched)), "S") for e in info.value.errors]
    assert lines == [
        "S:1:11: timezone: unknown time zone 'Mars/Olympus_Mons' (use an IANA name such as \"Europe/Berlin\")",
        'S:5:12: week.mon-fri.0.at: time must be a quoted "HH:MM" string, got 630 (int)',
        'S:6:12: week.mon-fri.1.at: time must be "HH:MM" between "00:00" and "23:59", got \'25:00\'',
        "S:7:29: week.mon-fri.2.preset: unknown preset 'comfy' (known: comfort, eco); did you mean 'comfort'?",
    ]


def test_duplicate_key(tmp_path: Path) -> None:
    text = room() + "heaters:\n  a: {host: h}\n  a: {host: h2}\n"
    assert errors(tmp_path, text) == ['F:8:3: YAML error: found duplicate key "a" (first defined on line 7)']


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = room() + "heaters:\n  a: {host: h\n"
    (line,) = errors(tmp_path, text)
    assert line.startswith("F:8:1: YAML error: ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("# only a comment\n", "file is empty"),
        ("just a string\n", "1:1: (top level)"),
        ("- a\n- b\n", "1:1: (top level)"),
    ],
)
def test_empty_or_not_a_mapping(tmp_path: Path, content: str, message: str) -> None:
    (line,) = errors(tmp_path, content)
    assert message in line


def test_file_not_found_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00rooms")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


# --------------------------------------------------------------------------- many errors at once


def test_many_errors_at_once_sorted_by_position() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "many_errors.yaml")
    name = DATA / "many_errors.yaml"
    lines = [e.replace(str(name), "F").replace(display_path(name), "F") for e in info.value.errors]
    assert lines == [
        "F:2:9: mqtt.host: 'broker, local' is not a hostname or an IP address",
        "F:3:9: mqtt.port: Input should be less than or equal to 65535 (got 70000)",
        "F:4:13: mqtt.password: inline passwords are not allowed; use password_file or password_env",
        "F:5:3: mqtt.keepalve: unknown key 'keepalve'; did you mean 'keepalive'?",
        "F:8:54: rooms.living.sensor.stale_after: invalid duration '15 minutes'; "
        'use e.g. "90s", "15m", "2h", "1h30m" or a number of seconds',
        "F:10:32: rooms.living.limits.max_c: max_c (18) must be greater than min_c (20)",
        "F:11:18: rooms.living.heaters.1: unknown heater 'ghost'; expected one of: a, b",
        "F:14:13: rooms.office.target: Input should be a valid number, unable to parse string as a number (got 'warm')",
        "F:15:15: rooms.office.heaters.0: heater 'a' already belongs to room 'living'",
        "F:16:3: rooms.kitchen: a room needs exactly one of `sensor` (one) or `sensors` (a list)",
        "F:20:55: heaters.a.levels.1: Avalon Mini 3 has no level 'supr' (ladder: night, eco, super, mining); "
        "did you mean 'super'?",
        "F:20:73: heaters.a.levels_w.turbo: Avalon Mini 3 has no level 'turbo'; ladder: night, eco, super, mining",
        "F:21:34: heaters.b.model: unknown model 'mini4'; did you mean 'mini3'?",
        'F:21:46: heaters.b.fan: fan must be "auto" or a percentage 15..100, got 10',
        "F:22:1: safty: unknown key 'safty'; did you mean 'safety'?",
    ]
    assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------- generated reference


def test_every_field_has_a_description() -> None:
    from thermostat import config as cfgmod

    for _, model in cfgmod._REFERENCE_SECTIONS:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "regenerate: python -m thermostat.config --reference > docs/configuration.md"
    )


def test_reference_command_prints_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "thermostat.config", "--reference"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout == render_reference()


def test_several_sensors_and_combine(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(
        "rooms:\n  living:\n    sensors:\n"
        "      - {topic: z2m/sofa, json_key: temperature, stale_after: 10m}\n"
        "      - {topic: esphome/shelf, offset: -0.5, humidity_key: null}\n"
        "    combine: min\n    target: 20\n    heaters: [a]\n" + MINIMAL_HEATERS
    )
    cfg = load_config(path)
    living = cfg.rooms["living"]
    assert [s.topic for s in living.all_sensors] == ["z2m/sofa", "esphome/shelf"]
    assert living.combine == "min"
    assert living.stale_after == 900.0  # the longest: the second sensor's default 15 min
    assert living.all_sensors[0].humidity_key == "humidity" and living.all_sensors[1].humidity_key is None
    single = tmp_path / "single.yaml"  # the one-sensor form keeps working
    single.write_text(room() + MINIMAL_HEATERS)
    assert [s.topic for s in load_config(single).rooms["living"].all_sensors] == ["zigbee2mqtt/living"]


def test_sensor_or_sensors(tmp_path: Path) -> None:
    both = ("rooms:\n  living:\n    sensor: {topic: a/b}\n    sensors: [{topic: a/c}]\n    target: 20\n"
            "    heaters: [a]\n" + MINIMAL_HEATERS)
    assert errors(tmp_path, both) == [
        "F:2:3: rooms.living: a room needs exactly one of `sensor` (one) or `sensors` (a list)"]
    neither = "rooms:\n  living:\n    heaters: [a]\n" + MINIMAL_HEATERS
    assert errors(tmp_path, neither) == [
        "F:2:3: rooms.living: a room needs exactly one of `schedule` (a file) or `target` (°C); "
        "a room needs exactly one of `sensor` (one) or `sensors` (a list)"]
    bad_combine = ("rooms:\n  living:\n    sensors: [{topic: a/c}]\n    combine: median\n    target: 20\n"
                   "    heaters: [a]\n" + MINIMAL_HEATERS)
    (line,) = errors(tmp_path, bad_combine)
    assert line.startswith("F:4:14: rooms.living.combine:") and "mean" in line


@pytest.mark.parametrize("field", ["min_on", "min_off", "max_wakes_per_hour", "fault_recover", "fan"])
def test_every_heater_value_check_config_accepts_builds_a_heater(field: str) -> None:
    """A value at either end of what the config accepts must not fail later, when the service builds the
    heater's settings (it did for max_wakes_per_hour: 0)."""
    info = HeaterConfig.model_fields[field]
    bounds = [getattr(m, attr) for m in info.metadata for attr in ("ge", "gt", "le", "lt") if hasattr(m, attr)]
    if field == "fan":
        bounds = [15, 100, "auto"]
    assert bounds, f"{field} has no bounds to try"
    for bound in bounds:
        value = bound + 1e-3 if isinstance(bound, float) and any(isinstance(m, annotated_types.Gt)
                                                                 for m in info.metadata) else bound
        cfg = HeaterConfig.model_validate({"host": "10.0.0.5", "model": "mini3", field: value})
        default_heater_settings(cfg)
