"""The house configuration: pydantic models, a YAML loader with `file:line:col` errors, and the reference.

`load_config(path)` reads one YAML file (plus the schedule files it names), validates everything and raises
`ConfigError` listing every problem at once, each as ``file:line:col: field.path: message``. Secrets (the
MQTT password) are never written inline: they come from a file or an environment variable and are read
only when `MqttConfig.read_password()` is called.

``python -m thermostat.config --reference`` prints docs/configuration.md from the models below.

This module does not use ``from __future__ import annotations``: with it, pydantic evaluates every field's
annotation from its string when the classes are created, about a third of their creation time, which every
command that reads a configuration pays at start (a method that names its own class quotes it).
"""

import argparse
import ipaddress
import os
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUndefined

from thermostat.core.schedule import Schedule, load_zone
from thermostat.core.steer import parse_duration_s
from thermostat.core.tariff import Tariff, TariffError, tariff_from_data
from thermostat.miners.models import MODELS
from thermostat.schedule_file import ConfigError as ConfigError
from thermostat.schedule_file import load_mapping, read_schedule, warning_lines
from thermostat.schedule_file import load_schedule as load_schedule
from thermostat.schedule_file import schedule_file_warnings as schedule_file_warnings
from thermostat.yamlio import Problem, did_you_mean, display_path, format_problems, problems_from_validation_error

ID_PATTERN = r"[a-z0-9_-]+"
_ID_RE = re.compile(rf"^{ID_PATTERN}$")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")


# --------------------------------------------------------------------------- value types


def parse_duration(value: object) -> float:
    """``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"``, ``"1d"``, ``"500ms"`` → seconds (float)."""
    return parse_duration_s(value)


def _check_host(value: str) -> str:
    text = value.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if _HOST_RE.match(text) and len(text) <= 253 and not all(label.isdigit() for label in labels):
        return text
    raise ValueError(f"{value!r} is not a hostname or an IP address")


def _check_id(value: str) -> str:
    if not _ID_RE.match(value) or len(value) > 64:
        raise ValueError(
            f"id {value!r} must be 1-64 of a-z, 0-9, '_' or '-' (it becomes an MQTT topic and a Home Assistant id)"
        )
    return value


def _check_topic(value: str) -> str:
    if not value or any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{value!r} is not a valid MQTT topic (no wildcards, no leading or trailing '/')")
    return value


def _check_fan(value: object) -> object:
    if value == "auto":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 15 <= value <= 100:
        return value
    raise ValueError(f'fan must be "auto" or a percentage 15..100, got {value!r}')


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Host = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Topic = Annotated[str, AfterValidator(_check_topic)]
RoomId = Annotated[str, AfterValidator(_check_id)]
HeaterId = Annotated[str, AfterValidator(_check_id)]
Temperature = Annotated[float, Field(ge=0, le=35)]

# defer_build: a model's validator is built when it first validates, not at import, so commands that import
# this module without loading a house configuration (`schedule show`) do not pay for ~20 models.
_STRICT: ConfigDict = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --------------------------------------------------------------------------- models


class MqttConfig(BaseModel):
    """Connection to the MQTT broker (sensors in, state and Home Assistant discovery out)."""

    model_config = _STRICT

    host: Host = Field(default="127.0.0.1", description="Broker hostname or IP address.")
    port: Port = Field(default=1883, description="Broker TCP port.")
    username: str | None = Field(default=None, description="User name, if the broker requires login.")
    password_file: Path | None = Field(
        default=None,
        description="File holding the password (first line; relative to the config file). Keep it mode 0600.",
    )
    password_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of an environment variable holding it."
    )
    password: SecretStr | None = Field(
        default=None,
        description="Refused: passwords are never written in the config; use `password_file` or `password_env`.",
    )
    tls: bool = Field(default=False, description="Connect with TLS (system CA store).")
    base_topic: Topic = Field(default="thermostat", description="Prefix of every topic this service publishes.")
    discovery_prefix: Topic = Field(default="homeassistant", description="Home Assistant MQTT discovery prefix.")
    client_id: str = Field(default="thermostat", min_length=1, max_length=64, description="MQTT client id.")
    keepalive: int = Field(default=15, ge=5, le=3600, description="MQTT keepalive in seconds.")

    @field_validator("password", mode="before")
    @classmethod
    def _no_inline_password(cls, value: object) -> object:
        if value is not None:
            raise ValueError("inline passwords are not allowed; use password_file or password_env")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> "MqttConfig":
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        return self

    def read_password(self) -> SecretStr | None:
        """Read the secret now (from file or environment). Raises ConfigError; never logs the value."""
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError([f"mqtt.password_file: cannot read {self.password_file}: {exc.strerror}"]) from None
            lines = text.splitlines()
            if not lines or not lines[0].strip():
                raise ConfigError([f"mqtt.password_file: {self.password_file} is empty"])
            return SecretStr(lines[0].strip())
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError([f"mqtt.password_env: environment variable {self.password_env} is not set"])
            return SecretStr(value)
        return None


class SensorConfig(BaseModel):
    """Where a room's temperature comes from."""

    model_config = _STRICT

    topic: Topic = Field(description="MQTT topic of the temperature sensor, e.g. `zigbee2mqtt/living`.")
    json_key: str | None = Field(
        default=None,
        description="Key of the temperature in a JSON payload (dots for nesting); none: the payload is a number.",
    )
    stale_after: Duration = Field(
        default=900.0, gt=0, description="A reading older than this is stale (duration; `15m`, `90s` or seconds)."
    )
    offset: float = Field(default=0.0, ge=-10, le=10, description="Calibration added to every reading, in °C.")
    confirm_readings: int = Field(
        default=3, ge=2, le=20,
        description="A reading that jumps faster than a room can is accepted once this many readings agree "
        "with it (within 1 K).",
    )
    confirm_after: Duration = Field(
        default=120.0, gt=0, le=3600,
        description="... or once readings have agreed with it for this long (duration), whichever is first.",
    )
    stuck_after: Duration = Field(
        default=10800.0, gt=0, le=7 * 86400,
        description="Heated at half its capacity or more this long (duration) while the reading never changed "
        "(by 0.05 K or more): the sensor is judged stuck and the room falls back as for a lost sensor.",
    )
    humidity_key: str | None = Field(
        default="humidity",
        description="Key of the relative humidity (%) in the same JSON payload (Zigbee2MQTT: `humidity`); "
        "used when present, ignored when absent; none: no humidity.",
    )


class LimitsConfig(BaseModel):
    """Bounds every target of the room is clamped to, whatever the schedule, override or Home Assistant says."""

    model_config = _STRICT

    min_c: Temperature = Field(default=7.0, description="Lowest target in °C (frost protection).")
    max_c: Temperature = Field(default=26.0, description="Highest target in °C; must be above `min_c`.")

    @field_validator("max_c")
    @classmethod
    def _above_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_c")
        if low is not None and value <= low:
            raise ValueError(f"max_c ({value:g}) must be greater than min_c ({low:g})")
        return value


class PidControl(BaseModel):
    """PID control of the room temperature (the default). Gains left out use the controller's defaults."""

    model_config = _STRICT

    mode: Literal["pid"] = Field(default="pid", description="`pid`.")
    kp: float | None = Field(default=None, ge=0, description="Proportional gain (W per °C).")
    ki: float | None = Field(default=None, ge=0, description="Integral gain (W per °C·s).")
    kd: float | None = Field(default=None, ge=0, description="Derivative gain (W·s per °C).")


class HysteresisControl(BaseModel):
    """On/off control with a dead band around the target."""

    model_config = _STRICT

    mode: Literal["hysteresis"] = Field(description="`hysteresis`.")
    cold_tolerance: float = Field(default=0.3, ge=0, le=5, description="Heat when below target minus this (°C).")
    hot_tolerance: float = Field(default=0.3, ge=0, le=5, description="Stop when above target plus this (°C).")


class MpcControl(BaseModel):
    """Model-predictive control (the default): learns the room from its history and plans the heat ahead
    (docs/control.md). Until the learned model is confident (about two days of ordinary heating) it runs pid and
    the room's reason says so."""

    model_config = _STRICT

    mode: Literal["mpc"] = Field(default="mpc", description="`mpc`.")
    horizon: Duration = Field(default=18 * 3600.0, ge=4 * 3600, le=48 * 3600,
                              description="How far ahead the heat is planned (e.g. `18h`).")
    margin: float = Field(default=0.3, ge=0, le=0.5,
                          description="How far inside the comfort band's lower edge (target − 0.5 °C) the plan "
                                      "holds the room: the edge costs from this far inside it, half as much as "
                                      "below it (docs/control.md).")


Control = Annotated[MpcControl | PidControl | HysteresisControl, Field(discriminator="mode")]


class RoomConfig(BaseModel):
    """One room: a sensor, a target (schedule or fixed), limits, a controller and its heaters."""

    model_config = _STRICT

    name: str | None = Field(default=None, description="Display name (Home Assistant); default: the room id.")
    sensor: SensorConfig | None = Field(
        default=None, description="The room's temperature sensor. Give `sensor` or `sensors`."
    )
    sensors: list[SensorConfig] | None = Field(
        default=None, min_length=1,
        description="Several temperature sensors, each with its own topic, key, offset and staleness; "
        "the room reads their combination (`combine`) and is stale only when every one is.",
    )
    combine: Literal["mean", "min", "max"] = Field(
        default="mean", description="How several sensors' fresh readings make the room's reading."
    )
    schedule: Path | None = Field(
        default=None,
        description="Schedule file (relative to the config file); after loading, an absolute path. "
        "Give `schedule` or `target`.",
    )
    target: Temperature | None = Field(default=None, description="A fixed target in °C instead of a schedule.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Target bounds.")
    control: Control = Field(
        default_factory=MpcControl,
        description="Control algorithm: `{mode: mpc}` (default; falls back to pid until the room is learnt), "
        "`{mode: pid}` or `{mode: hysteresis}`.",
    )
    heaters: list[HeaterId] = Field(min_length=1, description="Ids of the heaters (from `heaters`) in this room.")

    @model_validator(mode="after")
    def _one_target_source(self) -> "RoomConfig":
        problems = []
        if (self.schedule is None) == (self.target is None):
            problems.append("a room needs exactly one of `schedule` (a file) or `target` (°C)")
        if (self.sensor is None) == (self.sensors is None):
            problems.append("a room needs exactly one of `sensor` (one) or `sensors` (a list)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def all_sensors(self) -> list[SensorConfig]:
        """The room's sensors, whether written as `sensor` or `sensors`."""
        if self.sensors is not None:
            return list(self.sensors)
        assert self.sensor is not None  # the validator requires one of them
        return [self.sensor]

    @property
    def stale_after(self) -> float:
        """The room is stale when every sensor is: after the longest `stale_after`."""
        return max(s.stale_after for s in self.all_sensors)

    @property
    def stuck_after(self) -> float:
        """A heated room whose combined reading has not moved for this long has a stuck sensor."""
        return max(s.stuck_after for s in self.all_sensors)


class PlugConfig(BaseModel):
    """A smart plug (MQTT) that can cut a heater's power, e.g. for models without standby."""

    model_config = _STRICT

    command_topic: Topic = Field(description="Topic to publish on/off commands to.")
    state_topic: Topic | None = Field(default=None, description="Topic the plug reports its state on.")
    payload_on: str = Field(default="ON", description="Payload that switches the plug on.")
    payload_off: str = Field(default="OFF", description="Payload that switches the plug off.")


class HeaterMrmConfig(BaseModel):
    """This heater's Mining Rig Monitor API code (one per miner, issued by the dashboard). Never inline."""

    model_config = _STRICT

    api_code_file: Path | None = Field(
        default=None,
        description="File holding the API code (first line; relative to the config file). Keep it mode 0600.",
    )
    api_code_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of an environment variable holding it."
    )
    api_code: SecretStr | None = Field(
        default=None,
        description="Refused: API codes are never written in the config; use `api_code_file` or `api_code_env`.",
    )

    @field_validator("api_code", mode="before")
    @classmethod
    def _no_inline_code(cls, value: object) -> object:
        if value is not None:
            raise ValueError("inline API codes are not allowed; use api_code_file or api_code_env")
        return value

    @model_validator(mode="after")
    def _one_code_source(self) -> "HeaterMrmConfig":
        if (self.api_code_file is None) == (self.api_code_env is None):
            raise ValueError("give exactly one of api_code_file or api_code_env")
        return self

    def read_api_code(self, where: str = "mrm") -> SecretStr:
        """Read the API code now (from file or environment). Raises ConfigError; never logs the value."""
        if self.api_code_file is not None:
            try:
                text = self.api_code_file.read_text(encoding="utf-8")
            except OSError as exc:
                problem = f"{where}.api_code_file: cannot read {self.api_code_file}: {exc.strerror}"
                raise ConfigError([problem]) from None
            lines = text.splitlines()
            if not lines or not lines[0].strip():
                raise ConfigError([f"{where}.api_code_file: {self.api_code_file} is empty"])
            return SecretStr(lines[0].strip())
        assert self.api_code_env is not None
        value = os.environ.get(self.api_code_env, "").strip()
        if not value:
            raise ConfigError([f"{where}.api_code_env: environment variable {self.api_code_env} is not set"])
        return SecretStr(value)


class HeaterConfig(BaseModel):
    """One miner used as a heater."""

    model_config = _STRICT

    name: str | None = Field(default=None, description="Display name; default: the heater id.")
    host: Host = Field(description="Miner hostname or IP address.")
    port: Port = Field(default=4028, description="cgminer API port.")
    model: str = Field(
        default="auto",
        description=f"Model: {', '.join(f'`{k}`' for k in MODELS)}, or `auto` (probe `version` at start).",
    )
    protocol: Literal["auto", "json", "text"] = Field(default="auto", description="cgminer API dialect.")
    fan: Annotated[Literal["auto"] | int, BeforeValidator(_check_fan)] = Field(
        default="auto", description="`auto` (firmware control) or a fixed fan speed 15..100 %."
    )
    levels: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Levels (subset of the model's ladder) the allocator may use; default all.",
    )
    levels_w: dict[str, Annotated[float, Field(gt=0, le=5000)]] = Field(
        default_factory=dict, description="Measured wall watts per level name, overriding the model table."
    )
    min_on: Duration = Field(default=600.0, ge=0, description="Shortest run before standby (duration).")
    min_off: Duration = Field(default=600.0, ge=0, description="Shortest standby before waking again (duration).")
    max_wakes_per_hour: int = Field(default=2, ge=1, le=60, description="Wake-up budget per rolling hour.")
    fault_recover: Duration = Field(
        default=90.0, ge=0, le=3600,
        description="After a fault, this long of good answers (duration) before the heater is used again.",
    )
    plug: PlugConfig | None = Field(default=None, description="Optional smart plug in front of the miner.")
    mrm: HeaterMrmConfig | None = Field(
        default=None, description="Report this heater to Mining Rig Monitor (needs `mining_rig_monitor`)."
    )

    @field_validator("model", mode="before")
    @classmethod
    def _known_model(cls, value: object) -> object:
        if isinstance(value, str) and value != "auto" and value not in MODELS:
            raise ValueError(f"unknown model {value!r}{did_you_mean(value, [*MODELS, 'auto'])}")
        return value


class SafetyConfig(BaseModel):
    """What to do when things go wrong."""

    model_config = _STRICT

    on_sensor_loss: Literal["standby", "lowest"] = Field(
        default="standby",
        description="Sensor stale: `standby` every heater of the room, or run them at their `lowest` level.",
    )
    on_exit: Literal["standby", "leave"] = Field(
        default="standby", description="On service stop: put heaters in `standby`, or `leave` them as they are."
    )


class AwayConfig(BaseModel):
    """House-wide away (`thermostat away`, the HA "Away" switch): what rooms hold, and the return pre-heat."""

    model_config = _STRICT

    temp: Temperature | None = Field(
        default=None, description="°C every room holds while away; default: the room's schedule preset `away`, "
        "else 15 °C. A `--temp` given with the away wins."
    )
    preheat_rate: float = Field(
        default=1.0, gt=0, le=10, description="Warm-up rate in K/h assumed for the return pre-heat: a room leaves "
        "the away (gap to its schedule's target at the return) / rate before the end."
    )
    preheat_margin: Duration = Field(default=1800.0, ge=0, le=6 * 3600, description="Extra lead of the pre-heat.")
    max_preheat: Duration = Field(default=12 * 3600.0, ge=0, le=48 * 3600, description="Longest return pre-heat.")


class BoostConfig(BaseModel):
    """The Home Assistant `boost` preset (and the dashboard's default boost): a warmer target for a while."""

    model_config = _STRICT

    delta: float = Field(default=2.0, gt=0, le=10, description="K above the target in force (held below `max_c`).")
    duration: Duration = Field(default=3600.0, gt=0, le=24 * 3600, description="How long a boost lasts.")


class StateConfig(BaseModel):
    """Persistent state and history."""

    model_config = _STRICT

    path: Path = Field(
        default=Path("/var/lib/thermostat/state.db"), description="SQLite file (relative to the config file)."
    )
    history_days: int = Field(default=30, ge=1, le=3650, description="Days of history to keep.")


class LogConfig(BaseModel):
    """Logging."""

    model_config = _STRICT

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = Field(
        default="info", description="Log level."
    )
    format: Literal["text", "json"] = Field(default="text", description="`text` for people, `json` for collectors.")


class MetricsConfig(BaseModel):
    """Prometheus metrics endpoint."""

    model_config = _STRICT

    enabled: bool = Field(default=False, description="Serve `/metrics`.")
    host: Host = Field(default="127.0.0.1", description="Address to listen on.")
    port: Port = Field(default=9108, description="Port to listen on.")


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardConfig(BaseModel):
    """The built-in dashboard and its local JSON API (what `thermostat status` reads)."""

    model_config = _STRICT

    enabled: bool = Field(default=True, description="Serve the dashboard and the local API.")
    host: Host = Field(
        default="127.0.0.1",
        description="Address to listen on. Anything but a loopback address needs `password_file` or `password_env`.",
    )
    port: Port = Field(default=8480, description="Port to listen on.")
    password_file: Path | None = Field(
        default=None,
        description="File holding the dashboard password (first line; relative to the config file). "
        "Also accepted as a bearer token by the API. Keep it mode 0600.",
    )
    password_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of an environment variable holding it."
    )
    password: SecretStr | None = Field(
        default=None,
        description="Refused: passwords are never written in the config; use `password_file` or `password_env`.",
    )

    @field_validator("password", mode="before")
    @classmethod
    def _no_inline_password(cls, value: object) -> object:
        if value is not None:
            raise ValueError("inline passwords are not allowed; use password_file or password_env")
        return value

    @model_validator(mode="after")
    def _password_off_loopback(self) -> "DashboardConfig":
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if self.enabled and not _is_loopback(self.host) and self.password_file is None and self.password_env is None:
            raise ValueError(
                f"binding the dashboard to {self.host} (not loopback) needs password_file or password_env"
            )
        return self

    @property
    def protected(self) -> bool:
        return self.password_file is not None or self.password_env is not None

    def read_password(self) -> SecretStr | None:
        """Read the secret now (from file or environment). Raises ConfigError; never logs the value."""
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError([f"dashboard.password_file: cannot read {self.password_file}: {exc.strerror}"]
                                  ) from None
            lines = text.splitlines()
            if not lines or not lines[0].strip():
                raise ConfigError([f"dashboard.password_file: {self.password_file} is empty"])
            return SecretStr(lines[0].strip())
        if self.password_env is not None:
            value = os.environ.get(self.password_env, "").strip()
            if not value:
                raise ConfigError([f"dashboard.password_env: environment variable {self.password_env} is not set"])
            return SecretStr(value)
        return None


class TariffConfig(BaseModel):
    """Electricity price, for cost figures and for the mpc planner (which moves heat into cheap hours)."""

    model_config = _STRICT

    price_per_kwh: float | None = Field(default=None, ge=0, le=10,
                                        description="Price of one kWh (a flat tariff; give this or `week`).")
    week: dict[str, list[dict[str, Any]]] | None = Field(
        default=None,
        description="Time-of-use prices like a schedule: `{mon-fri: [{at: \"00:00\", price: 0.22}, ...], ...}`.",
    )
    timezone: str = Field(default="UTC", description="Time zone of the `week` times (IANA name).")
    price_topic: Topic | None = Field(
        default=None, description="MQTT topic with the current price per kWh (a number) for a dynamic tariff.")
    price_max_age: Duration = Field(default=7200.0, ge=60, le=86400,
                                    description="A price from `price_topic` older than this is ignored.")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.")

    @model_validator(mode="after")
    def _one_price(self) -> "TariffConfig":
        if (self.price_per_kwh is None) == (self.week is None):
            raise ValueError("a tariff needs exactly one of `price_per_kwh` (flat) or `week` (time of use)")
        try:
            load_zone(self.timezone)
        except Exception as exc:
            raise ValueError(f"timezone: {exc}") from None
        if self.week is not None:
            try:
                tariff_from_data({"week": self.week})
            except TariffError as exc:
                raise ValueError(str(exc)) from None
        return self

    def build(self) -> Tariff:
        """The `thermostat.core.tariff.Tariff` for this section."""
        data: dict[str, Any] = {"week": self.week} if self.week is not None else {"price_per_kwh": self.price_per_kwh}
        return tariff_from_data(data, load_zone(self.timezone))


class OutdoorConfig(BaseModel):
    """The outdoor temperature: a sensor topic and, optionally, a forecast topic (used by mpc and its room model)."""

    model_config = _STRICT

    topic: Topic | None = Field(default=None, description="MQTT topic of an outdoor temperature sensor.")
    json_key: str | None = Field(default=None, description="Key of the temperature in a JSON payload.")
    forecast_topic: Topic | None = Field(
        default=None,
        description="MQTT topic with a forecast: a JSON list of `{datetime: ISO 8601, temperature: °C}` "
        "(the shape of Home Assistant's weather forecasts). Without one, mpc assumes the last measured value.",
    )
    stale_after: Duration = Field(default=3 * 3600.0, ge=600, le=86400,
                                  description="An outdoor reading older than this is not used.")


def _check_http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip().rstrip("/")


class MrmConfig(BaseModel):
    """Mining Rig Monitor: report heaters to the dashboard and obey its remote on/off and light switches."""

    model_config = _STRICT

    base_url: Annotated[str, AfterValidator(_check_http_url)] = Field(
        default="http://127.0.0.1:4000/api/v1", description="API base URL (ends in `/api/v1`)."
    )
    poll_interval: Duration = Field(
        default=5.0, ge=1, le=3600, description="How often the expected status (remote switch) is polled."
    )
    report_interval: Duration = Field(
        default=60.0, ge=5, le=3600, description="How often monitor data (hashrate, temperatures, power...) is posted."
    )
    timeout: Duration = Field(default=10.0, gt=0, le=120, description="Timeout of one HTTP request (seconds).")
    backoff_max: Duration = Field(
        default=300.0, ge=1, le=86400, description="Longest wait between retries of a failing endpoint."
    )
    bulk: bool = Field(default=True, description="Poll the expected status of several heaters in one bulk request.")


class Config(BaseModel):
    """The whole house (top level of the file)."""

    model_config = _STRICT

    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker.")
    rooms: dict[RoomId, RoomConfig] = Field(min_length=1, description="Rooms by id (`[a-z0-9_-]+`).")
    heaters: dict[HeaterId, HeaterConfig] = Field(min_length=1, description="Heaters (miners) by id (`[a-z0-9_-]+`).")
    safety: SafetyConfig = Field(default_factory=SafetyConfig, description="Failure behaviour.")
    state: StateConfig = Field(default_factory=StateConfig, description="State database.")
    away: AwayConfig = Field(default_factory=AwayConfig, description="House-wide away and its return pre-heat.")
    boost: BoostConfig = Field(default_factory=BoostConfig, description="The boost preset.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Metrics endpoint.")
    dashboard: DashboardConfig = Field(
        default_factory=DashboardConfig, description="Built-in dashboard and local API (`thermostat status`)."
    )
    tariff: TariffConfig | None = Field(default=None, description="Electricity price (optional).")
    outdoor: OutdoorConfig | None = Field(default=None, description="Outdoor temperature and forecast (optional).")
    mining_rig_monitor: MrmConfig | None = Field(
        default=None, description="Mining Rig Monitor reporting and remote switch (optional)."
    )

    _path: Path | None = PrivateAttr(default=None)
    _schedules: dict[str, Schedule] = PrivateAttr(default_factory=dict)
    _warnings: list[str] = PrivateAttr(default_factory=list)  # located warnings found while loading

    @property
    def path(self) -> Path | None:
        """The file this was loaded from (absolute)."""
        return self._path

    @property
    def schedules(self) -> dict[str, Schedule]:
        """Room id → loaded schedule. A room with a fixed `target` gets a constant schedule."""
        return dict(self._schedules)

    def schedule_for(self, room_id: str) -> Schedule:
        return self._schedules[room_id]

    def room_of(self, heater_id: str) -> str | None:
        for rid, room in self.rooms.items():
            if heater_id in room.heaters:
                return rid
        return None


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> "Config":
    """Load, validate and cross-check a house configuration. Raises ConfigError listing every problem."""
    p = Path(path)
    name = display_path(p)
    data = load_mapping(
        p, "file is empty (expected rooms: and heaters:)", "the configuration must be a mapping (mqtt:, rooms:, ...)"
    )
    base = p.resolve().parent

    problems: list[Problem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from_validation_error(exc, Config))

    other_files: list[str] = []
    schedules = _cross_check(data, base, problems, other_files)
    errors = format_problems(name, data, problems) + other_files
    if errors or config is None:
        raise ConfigError(errors or [f"{name}: invalid configuration"])

    rooms = {}
    for rid, room in config.rooms.items():
        update: dict[str, Any] = {}
        if room.schedule is not None:
            update["schedule"] = _resolve(base, room.schedule)
        rooms[rid] = room.model_copy(update=update)
    mqtt = config.mqtt
    if mqtt.password_file is not None:
        mqtt = mqtt.model_copy(update={"password_file": _resolve(base, mqtt.password_file)})
    state = config.state.model_copy(update={"path": _resolve(base, config.state.path)})
    dashboard = config.dashboard
    if dashboard.password_file is not None:
        dashboard = dashboard.model_copy(update={"password_file": _resolve(base, dashboard.password_file)})
    heaters = {}
    for hid, heater in config.heaters.items():
        if heater.mrm is not None and heater.mrm.api_code_file is not None:
            mrm = heater.mrm.model_copy(update={"api_code_file": _resolve(base, heater.mrm.api_code_file)})
            heater = heater.model_copy(update={"mrm": mrm})
        heaters[hid] = heater
    config = config.model_copy(
        update={"rooms": rooms, "mqtt": mqtt, "state": state, "heaters": heaters, "dashboard": dashboard}
    )
    config._path = p.resolve()
    for spath, (_, sdata) in schedules.items():
        limits = {rid: room.limits for rid, room in config.rooms.items() if room.schedule == spath}
        config._warnings.extend(warning_lines(spath, sdata, limits))
    for rid, room in config.rooms.items():
        if room.schedule is not None:
            config._schedules[rid] = schedules[room.schedule][0]
        else:
            assert room.target is not None
            config._schedules[rid] = Schedule.constant(room.target, name=f"{rid} (fixed)")
    return config


def _resolve(base: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _cross_check(
    data: Any, base: Path, problems: list[Problem], other_files: list[str]
) -> dict[Path, tuple[Schedule, dict[str, Any]]]:
    """Checks across sections, on the raw tree so they run even when other parts failed validation."""
    rooms = data.get("rooms") if isinstance(data.get("rooms"), dict) else {}
    heaters = data.get("heaters") if isinstance(data.get("heaters"), dict) else {}
    heater_ids = [str(h) for h in heaters]
    owner: dict[str, str] = {}
    schedules: dict[Path, tuple[Schedule, dict[str, Any]]] = {}
    failed: set[Path] = set()
    for rid, room in rooms.items():
        if not isinstance(room, dict):
            continue
        refs = room.get("heaters")
        if isinstance(refs, list):
            for i, ref in enumerate(refs):
                if not isinstance(ref, str):
                    continue
                if ref not in heaters:
                    problems.append(
                        Problem(("rooms", rid, "heaters", i), f"unknown heater {ref!r}{did_you_mean(ref, heater_ids)}")
                    )
                elif ref in owner and owner[ref] != rid:
                    problems.append(
                        Problem(("rooms", rid, "heaters", i), f"heater {ref!r} already belongs to room {owner[ref]!r}")
                    )
                elif ref in owner:
                    problems.append(Problem(("rooms", rid, "heaters", i), f"heater {ref!r} is listed twice"))
                else:
                    owner[ref] = str(rid)
        sched = room.get("schedule")
        if isinstance(sched, str) and sched.strip():
            spath = _resolve(base, Path(sched))
            if spath in schedules or spath in failed:
                continue
            if not spath.is_file():
                problems.append(Problem(("rooms", rid, "schedule"), f"schedule file not found: {spath}"))
                failed.add(spath)
                continue
            try:
                schedules[spath] = read_schedule(spath)
            except ConfigError as exc:
                failed.add(spath)
                other_files.extend(exc.errors)
    for hid, heater in heaters.items():
        if not isinstance(heater, dict):
            continue
        model = heater.get("model", "auto")
        spec = MODELS.get(model) if isinstance(model, str) else None
        if spec is None:
            continue
        names = list(spec.level_names)
        levels = heater.get("levels")
        if isinstance(levels, list):
            for i, lv in enumerate(levels):
                if isinstance(lv, str) and lv not in names:
                    problems.append(
                        Problem(
                            ("heaters", hid, "levels", i),
                            f"{spec.display} has no level {lv!r}{_ladder_hint(lv, names)}",
                        )
                    )
        levels_w = heater.get("levels_w")
        if isinstance(levels_w, dict):
            for lv in levels_w:
                if str(lv) not in names:
                    problems.append(
                        Problem(
                            ("heaters", hid, "levels_w", lv),
                            f"{spec.display} has no level {lv!r}{_ladder_hint(str(lv), names)}",
                            on_key=True,
                        )
                    )
    return schedules


def _ladder_hint(name: str, names: list[str]) -> str:
    hint = did_you_mean(name, names)
    if hint.startswith("; did you mean"):
        return f" (ladder: {', '.join(names)}){hint}"
    return f"; ladder: {', '.join(names)}"


def state_path_errors(config: Config) -> list[str]:
    """`check-config` only: a `state.path` the service could never write, as ``file:line:col`` lines.

    `run` does not refuse such a path (it runs on state in memory and reports a problem: a service that does not
    start controls no miner), so this check lives here rather than in `load_config`. A folder that does not
    exist yet is fine when it can be created (systemd's StateDirectory= makes /var/lib/thermostat itself)."""
    path = config.state.path
    message: str | None = None
    if path.is_dir():
        message = f"{path} is a directory; give the path of a file in it, for example {path / 'state.db'}"
    elif not path.parent.is_dir():
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            message = f"its folder {path.parent} cannot be created: {ancestor} is not a directory"
    if message is None or config.path is None:
        return []
    data = load_mapping(config.path, "", "")
    return format_problems(display_path(config.path), data, [Problem(("state", "path"), message)])


def config_warnings(config: Config) -> list[str]:
    """Things that are valid but probably not meant (shown by `check-config` and logged by `run`, never fatal)."""
    out: list[str] = list(config._warnings)
    mqtt = config.mqtt
    if mqtt.password_file is not None and not mqtt.password_file.is_file():
        out.append(f"mqtt.password_file: {mqtt.password_file} does not exist (needed at run time)")
    if mqtt.password_env is not None and not os.environ.get(mqtt.password_env):
        out.append(f"mqtt.password_env: {mqtt.password_env} is not set in this environment (needed at run time)")
    if mqtt.username is not None and mqtt.password_file is None and mqtt.password_env is None:
        out.append("mqtt.username is set but no password_file or password_env")
    dash = config.dashboard
    if dash.enabled and dash.password_file is not None and not dash.password_file.is_file():
        out.append(f"dashboard.password_file: {dash.password_file} does not exist (the dashboard will not start)")
    if dash.enabled and dash.password_env is not None and not os.environ.get(dash.password_env):
        out.append(f"dashboard.password_env: {dash.password_env} is not set in this environment "
                   "(the dashboard will not start)")
    for hid in config.heaters:
        if config.room_of(hid) is None:
            out.append(f"heaters.{hid}: not used by any room")
    mrm_heaters = [hid for hid, h in config.heaters.items() if h.mrm is not None]
    for hid in mrm_heaters:
        code = config.heaters[hid].mrm
        assert code is not None
        if code.api_code_file is not None and not code.api_code_file.is_file():
            out.append(f"heaters.{hid}.mrm.api_code_file: {code.api_code_file} does not exist (needed at run time)")
        if code.api_code_env is not None and not os.environ.get(code.api_code_env):
            out.append(f"heaters.{hid}.mrm.api_code_env: {code.api_code_env} is not set in this environment "
                       "(needed at run time)")
    if mrm_heaters and config.mining_rig_monitor is None:
        out.append("heaters with `mrm` but no `mining_rig_monitor` section: nothing is reported")
    if config.mining_rig_monitor is not None and not mrm_heaters:
        out.append("mining_rig_monitor: no heater has `mrm` (an API code); nothing is reported")
    return out


# --------------------------------------------------------------------------- reference


_REFERENCE_SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("(top level)", Config),
    ("mqtt", MqttConfig),
    ("rooms.<id>", RoomConfig),
    ("rooms.<id>.sensor, rooms.<id>.sensors[]", SensorConfig),
    ("rooms.<id>.limits", LimitsConfig),
    ("rooms.<id>.control (mode: mpc)", MpcControl),
    ("rooms.<id>.control (mode: pid)", PidControl),
    ("rooms.<id>.control (mode: hysteresis)", HysteresisControl),
    ("heaters.<id>", HeaterConfig),
    ("heaters.<id>.plug", PlugConfig),
    ("heaters.<id>.mrm", HeaterMrmConfig),
    ("safety", SafetyConfig),
    ("state", StateConfig),
    ("away", AwayConfig),
    ("boost", BoostConfig),
    ("log", LogConfig),
    ("metrics", MetricsConfig),
    ("dashboard", DashboardConfig),
    ("tariff", TariffConfig),
    ("outdoor", OutdoorConfig),
    ("mining_rig_monitor", MrmConfig),
]

_VALIDATOR_NAMES: dict[Callable[..., Any], str] = {
    parse_duration: "duration",
    _check_host: "host",
    _check_topic: "MQTT topic",
    _check_id: "id",
    _check_http_url: "URL",
}


def _type_text(annotation: Any, metadata: list[Any] | None = None) -> str:
    meta = list(metadata or [])
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _type_text(base, meta + list(extra))
    for m in meta:
        func = getattr(m, "func", None)
        if func in _VALIDATOR_NAMES:
            base_txt = _VALIDATOR_NAMES[func]
            break
        if func is _check_fan:
            return '"auto" or 15..100'
    else:
        base_txt = ""
    if not base_txt:
        if origin is Literal:
            base_txt = " or ".join(f'"{a}"' for a in typing.get_args(annotation))
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            txt = " or ".join(dict.fromkeys(_type_text(a) for a in args))
            return txt + (" (optional)" if len(args) < len(typing.get_args(annotation)) else "")
        elif origin is list:
            base_txt = f"list of {_type_text(typing.get_args(annotation)[0])}"
        elif origin is dict:
            k, v = typing.get_args(annotation)
            base_txt = f"map {_type_text(k)} → {_type_text(v)}"
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            base_txt = "mapping"
        else:
            base_txt = {
                str: "string",
                int: "integer",
                float: "number",
                bool: "boolean",
                Path: "path",
                SecretStr: "secret",
            }.get(annotation, getattr(annotation, "__name__", str(annotation)))
    lo = hi = None
    lo_op = hi_op = ""
    for m in meta:
        for attr, op in (("ge", "≥"), ("gt", ">")):
            if getattr(m, attr, None) is not None:
                lo, lo_op = getattr(m, attr), op
        for attr, op in (("le", "≤"), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                hi, hi_op = getattr(m, attr), op
    if lo is not None and hi is not None and lo_op == "≥" and hi_op == "≤":
        base_txt += f" {lo:g}..{hi:g}"
    else:
        if lo is not None:
            base_txt += f" {lo_op} {lo:g}"
        if hi is not None:
            base_txt += f" {hi_op} {hi:g}"
    return base_txt


def _default_text(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict | list) and not value:
        return "empty"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def render_reference() -> str:
    """docs/configuration.md, generated from the models (see tests/test_config.py::test_reference_is_current)."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m thermostat.config --reference > docs/configuration.md`. Do not edit. -->",
        "",
        "One YAML file (YAML 1.2) describes the house; check it with `thermostat check-config FILE`.",
        "Every mapping refuses unknown keys. Errors are reported as `file:line:col: field: message`, all at once.",
        "",
        '* **duration**: a number of seconds, or a string such as `"90s"`, `"15m"`, `"2h"`, `"1h30m"`.',
        "* **id**: room and heater ids match `[a-z0-9_-]+` (they become MQTT topics and Home Assistant ids).",
        "* **host**: a hostname or an IP address. **path**: relative paths are relative to the config file.",
        "* Secrets: the MQTT password comes from `password_file` or `password_env`, never inline; so do the",
        "  Mining Rig Monitor API codes (`api_code_file` / `api_code_env`).",
        "",
        "Cross-checks: every heater a room lists exists and belongs to one room only; schedule files exist and",
        "are valid (their errors are reported with their own file:line:col); `levels` and `levels_w` name levels",
        "of the heater's model ladder (not checked for `model: auto`); `min_c` < `max_c`.",
        "",
        "Level ladders: " + "; ".join(f"`{k}`: {', '.join(spec.level_names)}" for k, spec in MODELS.items()) + ".",
        "",
    ]
    for title, model in _REFERENCE_SECTIONS:
        lines.append(f"## `{title}`")
        lines.append("")
        lines.append((model.__doc__ or "").strip())
        lines.append("")
        lines.append("| Key | Type | Default | Description |")
        lines.append("|---|---|---|---|")
        for fname, field in model.model_fields.items():
            typ = _type_text(field.annotation, list(field.metadata)).replace("|", "\\|")
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{fname}` | {typ} | {_default_text(field)} | {desc} |")
        lines.append("")
    lines.append("## Example")
    lines.append("")
    lines.append("See `deploy/house.example.yaml`.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thermostat.config")
    parser.add_argument("--reference", action="store_true", help="print the Markdown configuration reference")
    parser.add_argument("file", nargs="?", help="configuration file to check")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    if args.file:
        try:
            load_config(args.file)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{args.file}: OK")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
