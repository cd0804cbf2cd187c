"""Bench scenarios: YAML files validated by pydantic (format and the shipped set: docs/scenarios.md).

`load_scenario(path_or_name)` returns a `Scenario`; its `build_*` methods give the pure simulation pieces
(`Room`, `Sensor`, `OutdoorProfile`, `GainsProfile`) and the event queries a step loop needs. The schedule is
kept as the raw mapping (compiled by `thermostat.core.schedule`); `target` is the fallback setpoint.
"""

from __future__ import annotations

import math
import random
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thermostat.core.schedule import DAY_NAMES, load_zone, parse_day_group
from thermostat.domain.spec import ModelSpec
from thermostat.miners.models import MODELS
from thermostat.sim.room import (
    ROOM_PRESETS,
    GainsProfile,
    OutdoorProfile,
    Room,
    RoomParams,
    Sensor,
    SensorParams,
)
from thermostat.yamlio import YamlFileError, format_problems, load_yaml_file, problems_from_validation_error

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message has one `file:line:col: field: problem` line per error."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeasonSpec(_Strict):
    """A deterministic outdoor series for long runs: seasonal cosine + AR(1) weather noise, one point per hour.

    base(day) = annual_mean_c − annual_amplitude_k · cos(2π (day_of_year − coldest_day) / 365) + noise, where the
    noise is AR(1) with correlation time `noise_tau_h` and stationary σ `noise_sigma_k`, seeded by `seed`. The daily
    swing is the outdoor `amplitude_k` / `peak_hour` on top. Defaults: central Europe (German station means
    1991–2020, rounded): annual mean 9.6 °C, ±8.8 K, coldest around 17 January (January ≈ 0.8 °C, October ≈ 10,
    April ≈ 9), day-to-day anomalies σ 3.5 K lasting about three days (synoptic weather)."""

    seed: int = 0
    annual_mean_c: float = 9.6
    annual_amplitude_k: float = Field(default=8.8, ge=0)
    coldest_day: float = Field(default=17.0, ge=0, lt=366, description="day of the year (1 = 1 January)")
    noise_sigma_k: float = Field(default=3.5, ge=0)
    noise_tau_h: float = Field(default=72.0, gt=0)

    def series(self, start: datetime, hours: float) -> list[tuple[float, float]]:
        """(hour, °C) points from 0 to `hours` (inclusive, hourly) for a run starting at `start` (local)."""
        rng = random.Random(self.seed)
        phi = math.exp(-1.0 / self.noise_tau_h)
        innovation = self.noise_sigma_k * math.sqrt(1.0 - phi * phi)
        noise = rng.gauss(0.0, self.noise_sigma_k)
        points: list[tuple[float, float]] = []
        for h in range(math.ceil(hours) + 1):
            when = start + timedelta(hours=h)
            doy = when.timetuple().tm_yday + when.hour / 24.0
            season = self.annual_mean_c - self.annual_amplitude_k * math.cos(2 * math.pi * (doy - self.coldest_day)
                                                                              / 365.0)
            points.append((float(h), round(season + noise, 3)))
            noise = phi * noise + rng.gauss(0.0, innovation)
        return points


class OutdoorSpec(_Strict):
    mean_c: float = 5.0
    amplitude_k: float = Field(default=0.0, ge=0)
    peak_hour: float = Field(default=15.0, ge=0, lt=24)
    series: list[tuple[float, float]] = Field(default_factory=list, description="[hours, °C] points")
    season: SeasonSpec | None = Field(default=None, description="generated hourly base series (instead of series)")

    @model_validator(mode="after")
    def _sorted(self) -> OutdoorSpec:
        hours = [h for h, _ in self.series]
        if hours != sorted(hours):
            raise ValueError("series points must be in increasing time order")
        if self.series and self.season is not None:
            raise ValueError("give either series or season, not both")
        return self


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class TariffBlock(_Strict):
    at: str = Field(description='local wall time "HH:MM" from which this price holds')
    price: float = Field(ge=0, le=10, description="price per kWh")

    @field_validator("at")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value.strip()):
            raise ValueError(f'time must be "HH:MM" between "00:00" and "23:59", got {value!r}')
        return value.strip()

    @property
    def minute(self) -> int:
        h, m = self.at.split(":")
        return int(h) * 60 + int(m)


class TariffSpec(_Strict):
    """A time-of-use tariff: price per kWh per block of the week, written like a schedule's week (day groups →
    blocks `{at: "HH:MM", price: 0.30}`); a day's first block before its time continues the previous day's last.
    Controllers do not read it yet; it is the input for cost KPIs and price-aware planning."""

    timezone: str = "Europe/Berlin"
    currency: str = "EUR"
    week: dict[str, list[TariffBlock]] = Field(description="day group (mon-fri, sat-sun, daily, ...) → blocks")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @model_validator(mode="after")
    def _every_day_once(self) -> TariffSpec:
        seen: dict[int, str] = {}
        for group, blocks in self.week.items():
            if not blocks:
                raise ValueError(f"week.{group}: needs at least one block")
            minutes = [b.minute for b in blocks]
            if minutes != sorted(set(minutes)):
                raise ValueError(f"week.{group}: blocks must be in increasing time order")
            for day in parse_day_group(group):
                if day in seen:
                    raise ValueError(f"week.{group}: {DAY_NAMES[day]} is already priced by {seen[day]!r}")
                seen[day] = group
        if len(seen) != 7:
            missing = ", ".join(DAY_NAMES[d] for d in sorted(set(range(7)) - set(seen)))
            raise ValueError(f"week: every weekday needs a price; missing: {missing}")
        return self

    def _day_blocks(self, weekday: int) -> list[TariffBlock]:
        for group, blocks in self.week.items():
            if weekday in parse_day_group(group):
                return blocks
        raise AssertionError("validated: every weekday is priced")

    def price_at(self, when: datetime) -> float:
        """The price in force at `when` (aware, or naive = the tariff's local time)."""
        local = when.astimezone(load_zone(self.timezone)) if when.tzinfo else when
        minute = local.hour * 60 + local.minute
        blocks = [b for b in self._day_blocks(local.weekday()) if b.minute <= minute]
        if blocks:
            return blocks[-1].price
        return self._day_blocks((local.weekday() - 1) % 7)[-1].price


class RoomSpec(_Strict):
    preset: Literal["small", "medium", "large"] = "medium"
    c_air_j_per_k: float | None = Field(default=None, gt=0)
    c_mass_j_per_k: float | None = Field(default=None, gt=0)
    h_am_w_per_k: float | None = Field(default=None, gt=0)
    h_ao_w_per_k: float | None = Field(default=None, ge=0)
    h_mo_w_per_k: float | None = Field(default=None, ge=0)
    h_window_w_per_k: float | None = Field(default=None, ge=0)
    gain_to_air: float | None = Field(default=None, ge=0, le=1)
    initial_air_c: float = 20.0
    initial_mass_c: float | None = None  # default: steady state for initial_air_c at the start's outdoor temp

    def params(self) -> RoomParams:
        base = ROOM_PRESETS[self.preset]
        overrides = {k: v for k, v in self.model_dump().items()
                     if v is not None and k not in ("preset", "initial_air_c", "initial_mass_c")}
        return RoomParams(**{**base.__dict__, **overrides})


class GainsSpec(_Strict):
    internal_w: float = Field(default=0.0, ge=0)
    solar_peak_w: float = Field(default=0.0, ge=0)
    sunrise_hour: float = Field(default=8.0, ge=0, le=24)
    sunset_hour: float = Field(default=16.0, ge=0, le=24)


class SensorSpec(_Strict):
    tau_s: float = Field(default=180.0, ge=0)
    noise_k: float = Field(default=0.03, ge=0)
    resolution_k: float = Field(default=0.1, ge=0)
    deadband_k: float = Field(default=0.1, ge=0)
    max_silence_s: float = Field(default=3600.0, gt=0)
    min_interval_s: float = Field(default=10.0, ge=0)
    dropout_prob: float = Field(default=0.0, ge=0, le=1)
    offset_k: float = 0.0


class HeaterSpec(_Strict):
    model: str
    count: int = Field(default=1, ge=1, le=16)
    levels_w: dict[str, float] = Field(default_factory=dict)
    has_plug: bool = False

    @model_validator(mode="after")
    def _known(self) -> HeaterSpec:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        spec = MODELS[self.model]
        for name in self.levels_w:
            if name not in spec.level_names:
                raise ValueError(f"{spec.display} has no level {name!r}; known: {', '.join(spec.level_names)}")
        return self

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.model]


class WindowOpen(_Strict):
    kind: Literal["window_open"]
    start_h: float = Field(ge=0)
    duration_min: float = Field(gt=0)


class MinerUnreachable(_Strict):
    kind: Literal["miner_unreachable"]
    heater: int = Field(default=0, ge=0, description="index into the expanded heater list")
    start_h: float = Field(ge=0)
    duration_min: float = Field(gt=0)


class SensorDropout(_Strict):
    kind: Literal["sensor_dropout"]
    start_h: float = Field(ge=0)
    duration_min: float = Field(gt=0)


Event = Annotated[WindowOpen | MinerUnreachable | SensorDropout, Field(discriminator="kind")]


class Scenario(_Strict):
    name: str
    description: str = ""
    duration_h: float = Field(gt=0, le=24 * 366)
    step_s: float = Field(default=60.0, gt=0, le=3600)
    seed: int = 0
    start: datetime = datetime(2026, 1, 5, 0, 0)  # local time (schedule timezone) at t = 0; a Monday
    outdoor: OutdoorSpec = Field(default_factory=OutdoorSpec)
    room: RoomSpec = Field(default_factory=RoomSpec)
    gains: GainsSpec = Field(default_factory=GainsSpec)
    sensor: SensorSpec = Field(default_factory=SensorSpec)
    heaters: list[HeaterSpec] = Field(min_length=1)
    schedule: dict[str, Any] | None = None
    target: float = Field(default=21.0, ge=5, le=30)
    events: list[Event] = Field(default_factory=list)
    tariff: TariffSpec | None = None

    @model_validator(mode="after")
    def _events_fit(self) -> Scenario:
        n = sum(h.count for h in self.heaters)
        for ev in self.events:
            if isinstance(ev, MinerUnreachable) and ev.heater >= n:
                raise ValueError(f"miner_unreachable names heater {ev.heater} but there are only {n} (0..{n - 1})")
            if ev.start_h > self.duration_h:
                raise ValueError(f"{ev.kind} starts at {ev.start_h} h, after the end ({self.duration_h} h)")
        return self

    # -- builders -------------------------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        return self.duration_h * 3600.0

    @property
    def start_hour(self) -> float:
        return self.start.hour + self.start.minute / 60.0 + self.start.second / 3600.0

    def build_outdoor(self) -> OutdoorProfile:
        o = self.outdoor
        points = o.season.series(self.start, self.duration_h) if o.season is not None else o.series
        return OutdoorProfile(mean_c=o.mean_c, amplitude_k=o.amplitude_k, peak_hour=o.peak_hour,
                              start_hour=self.start_hour, series=tuple(tuple(p) for p in points))  # type: ignore[misc]

    def build_gains(self) -> GainsProfile:
        g = self.gains
        return GainsProfile(internal_w=g.internal_w, solar_peak_w=g.solar_peak_w, sunrise_hour=g.sunrise_hour,
                            sunset_hour=g.sunset_hour, start_hour=self.start_hour)

    def build_room(self) -> Room:
        params = self.room.params()
        outdoor0 = self.build_outdoor().at(0.0)
        room = Room.steady(params, self.room.initial_air_c, outdoor0, self.build_gains().at(0.0))
        if self.room.initial_mass_c is not None:
            room.mass_c = self.room.initial_mass_c
        return room

    def build_sensor(self) -> Sensor:
        s = self.sensor
        sensor = Sensor(SensorParams(**s.model_dump()), seed=self.seed, initial_c=self.room.initial_air_c)
        for ev in self.events:
            if isinstance(ev, SensorDropout):
                sensor.add_dropout(ev.start_h * 3600.0, ev.duration_min * 60.0)
        return sensor

    def heater_list(self) -> list[tuple[str, HeaterSpec]]:
        """Expanded heaters: (id, spec) with ids "<model>-<n>" numbered from 1 in file order."""
        out: list[tuple[str, HeaterSpec]] = []
        for h in self.heaters:
            for _ in range(h.count):
                out.append((f"{h.model}-{len(out) + 1}", h))
        return out

    def window_open(self, t: float) -> bool:
        return any(isinstance(e, WindowOpen) and e.start_h * 3600 <= t < e.start_h * 3600 + e.duration_min * 60
                   for e in self.events)

    def unreachable(self, heater_index: int, t: float) -> bool:
        return any(isinstance(e, MinerUnreachable) and e.heater == heater_index
                   and e.start_h * 3600 <= t < e.start_h * 3600 + e.duration_min * 60 for e in self.events)

    def sensor_dropout(self, t: float) -> bool:
        return any(isinstance(e, SensorDropout) and e.start_h * 3600 <= t < e.start_h * 3600 + e.duration_min * 60
                   for e in self.events)

    @property
    def max_w(self) -> float:
        """Total heater capacity (sum of top levels, with per-heater overrides)."""
        total = 0.0
        for _, h in self.heater_list():
            total += max(h.levels_w.values()) if h.levels_w else h.spec.top_level.wall_w
        return total


def scenario_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return SCENARIO_DIR / f"{name_or_path}.yaml"


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a scenario by shipped name ("mild_week") or path. Raises ScenarioError with located messages."""
    path = scenario_path(name_or_path)
    if not path.exists() and not Path(name_or_path).suffix:
        raise ScenarioError([f"{name_or_path}: no such scenario; shipped: {', '.join(shipped_scenarios())}"])
    try:
        data = load_yaml_file(path)
    except YamlFileError as exc:
        raise ScenarioError(exc.errors) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{path}: a scenario must be a mapping of keys (name, duration_h, heaters, ...)"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_problems(str(path), data, problems_from_validation_error(exc, Scenario))) from None
