"""Bench scenarios: YAML files validated by pydantic (format and the shipped set: docs/scenarios.md).

`load_scenario(path_or_name)` returns a `Scenario`; its `build_*` methods give the pure simulation pieces
(`Room`, `Sensor`, `OutdoorProfile`, `GainsProfile`) and the event queries a step loop needs. The schedule is
kept as the raw mapping (compiled by `thermostat.core.schedule`); `target` is the fallback setpoint.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class OutdoorSpec(_Strict):
    mean_c: float = 5.0
    amplitude_k: float = Field(default=0.0, ge=0)
    peak_hour: float = Field(default=15.0, ge=0, lt=24)
    series: list[tuple[float, float]] = Field(default_factory=list, description="[hours, °C] points")

    @model_validator(mode="after")
    def _sorted(self) -> OutdoorSpec:
        hours = [h for h, _ in self.series]
        if hours != sorted(hours):
            raise ValueError("series points must be in increasing time order")
        return self


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
        return OutdoorProfile(mean_c=o.mean_c, amplitude_k=o.amplitude_k, peak_hour=o.peak_hour,
                              start_hour=self.start_hour, series=tuple(tuple(p) for p in o.series))  # type: ignore[misc]

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
