"""A simulated room: a two-node (2R2C-style) thermal model, outdoor and gain profiles, and a room sensor.

Everything here is pure: no I/O, no clocks. Time is a float in seconds from the start of a run and is
passed in by the caller's step loop.

Thermal model (landscape doc §4.2, "2R2C"):

    C_air  dT_air/dt  = H_am (T_mass − T_air) + (H_ao + H_win·open) (T_out − T_air) + Q_heat + f_air·Q_gain
    C_mass dT_mass/dt = H_am (T_air − T_mass) + H_mo (T_out − T_mass) + (1 − f_air)·Q_gain

* air node  = room air + furniture + shallow surface layer (fast: C_air / H_am ≈ 25–30 min);
* mass node = walls, floor, ceiling (slow: C_mass / H_mo ≈ tens of hours);
* H_ao = window glazing + ventilation straight from the air to outdoors, H_mo = opaque envelope through the mass;
* every wall watt of the miners is heat into the air node (COP 1);
* an open window adds H_win between air and outdoors.

Steady state: the whole envelope acts as one conductance UA = H_ao + H_am·H_mo / (H_am + H_mo), so
holding T_air needs UA·(T_air − T_out) − gains watts (`steady_power_w`).

The integrator is backward (implicit) Euler with sub-steps of at most `max_substep_s`: unconditionally
stable, exact in steady state, and accurate to a few percent of the fast time constant at 60 s sub-steps.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class RoomParams:
    """Thermal parameters of one room. Defaults: a 20 m² room, 2.5 m high, one exterior wall with a
    window, medium insulation (landscape doc §4.2 table, own estimate).

    Typical values:
    * c_air_j_per_k: air + furniture 0.3–0.6 MJ/K for 20 m² (air alone ≈ 60 kJ/K).
    * c_mass_j_per_k: ISO 13790 class × floor area: 1.6 (very light) … 5.2 (heavy) MJ/K for 20 m².
    * h_am_w_per_k: air ↔ internal surfaces, 3.45 W/m²K × 4.5 × floor area ≈ 310 W/K for 20 m².
    * h_ao_w_per_k: glazing + ventilation (0.5 ACH ≈ 8 W/K) direct to outdoors, 8–25 W/K.
    * h_mo_w_per_k: opaque walls through the mass, 5–40 W/K.
    * ua (derived): 12–20 W/K well insulated, 30–60 W/K poorly insulated.
    * h_window_w_per_k: an open window: tilted ≈ 30–60 W/K, wide open 100–300 W/K.
    * gain_to_air: share of solar/internal gains landing on the air node (rest heats the mass).
    """

    c_air_j_per_k: float = 0.5e6
    c_mass_j_per_k: float = 4.0e6
    h_am_w_per_k: float = 300.0
    h_ao_w_per_k: float = 12.0
    h_mo_w_per_k: float = 13.6
    h_window_w_per_k: float = 120.0
    gain_to_air: float = 0.5
    floor_m2: float = 20.0

    def __post_init__(self) -> None:
        for name in ("c_air_j_per_k", "c_mass_j_per_k", "h_am_w_per_k"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RoomParams.{name} must be > 0")
        for name in ("h_ao_w_per_k", "h_mo_w_per_k", "h_window_w_per_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"RoomParams.{name} must be >= 0")
        if not 0.0 <= self.gain_to_air <= 1.0:
            raise ValueError("RoomParams.gain_to_air must be within 0..1")

    @property
    def ua_w_per_k(self) -> float:
        """Steady-state conductance air → outdoors (window closed), W/K."""
        return self.h_ao_w_per_k + self.h_am_w_per_k * self.h_mo_w_per_k / (self.h_am_w_per_k + self.h_mo_w_per_k)

    @property
    def tau_air_s(self) -> float:
        """Fast time constant (air node against everything it touches), seconds."""
        return self.c_air_j_per_k / (self.h_am_w_per_k + self.h_ao_w_per_k)

    @property
    def tau_mass_s(self) -> float:
        """Slow time constant of the mass node, seconds."""
        return self.c_mass_j_per_k / (self.h_mo_w_per_k + self.h_am_w_per_k * self.h_ao_w_per_k
                                      / (self.h_am_w_per_k + self.h_ao_w_per_k))


# Presets. UA ≈ 25 W/K for the 20 m² room: ≈ 500 W at ΔT 20 K, one Mini 3 (824 W) is enough.
MEDIUM_ROOM = RoomParams()
# 40 m² living room, same insulation: UA ≈ 50 W/K, ≈ 1.25 kW at ΔT 25 K: two Mini 3 (or one Q).
LARGE_ROOM = RoomParams(
    c_air_j_per_k=1.0e6,
    c_mass_j_per_k=8.0e6,
    h_am_w_per_k=600.0,
    h_ao_w_per_k=24.0,
    h_mo_w_per_k=27.2,
    h_window_w_per_k=200.0,
    floor_m2=40.0,
)
# 10 m² well-insulated study/bedroom: UA ≈ 8 W/K, ≈ 130 W at ΔT 16 K: Nano 3S territory.
SMALL_ROOM = RoomParams(
    c_air_j_per_k=0.25e6,
    c_mass_j_per_k=2.0e6,
    h_am_w_per_k=150.0,
    h_ao_w_per_k=4.0,
    h_mo_w_per_k=4.1,
    h_window_w_per_k=80.0,
    floor_m2=10.0,
)
ROOM_PRESETS: dict[str, RoomParams] = {"medium": MEDIUM_ROOM, "large": LARGE_ROOM, "small": SMALL_ROOM}


def _advance(
    p: RoomParams, air: float, mass: float, dt: float, heat_w: float, outdoor_c: float, gains_w: float, window: bool
) -> tuple[float, float]:
    """One backward-Euler step of the two-node model (solves the 2×2 linear system exactly)."""
    h_out = p.h_ao_w_per_k + (p.h_window_w_per_k if window else 0.0)
    q_air = heat_w + p.gain_to_air * gains_w + h_out * outdoor_c
    q_mass = (1.0 - p.gain_to_air) * gains_w + p.h_mo_w_per_k * outdoor_c
    # (C_a/dt + H_am + h_out) Ta' − H_am Tm' = C_a/dt Ta + q_air
    # −H_am Ta' + (C_m/dt + H_am + H_mo) Tm' = C_m/dt Tm + q_mass
    a11 = p.c_air_j_per_k / dt + p.h_am_w_per_k + h_out
    a12 = -p.h_am_w_per_k
    a22 = p.c_mass_j_per_k / dt + p.h_am_w_per_k + p.h_mo_w_per_k
    b1 = p.c_air_j_per_k / dt * air + q_air
    b2 = p.c_mass_j_per_k / dt * mass + q_mass
    det = a11 * a22 - a12 * a12
    return (b1 * a22 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det


@dataclass
class Room:
    """The room's thermal state. `step()` advances it; `air_c` / `mass_c` are the node temperatures (°C)."""

    params: RoomParams = field(default_factory=RoomParams)
    air_c: float = 20.0
    mass_c: float = 20.0
    max_substep_s: float = 60.0

    def _substeps(self, dt: float) -> tuple[int, float]:
        n = max(1, math.ceil(dt / self.max_substep_s - 1e-9))
        return n, dt / n

    def step(
        self, dt: float, heat_w: float, outdoor_c: float, gains_w: float = 0.0, window_open: bool = False
    ) -> float:
        """Advance `dt` seconds with constant inputs; returns the new air temperature.

        heat_w: heater wall watts (all of it becomes heat in the air node); gains_w: solar + internal gains.
        """
        if dt < 0:
            raise ValueError("dt must be >= 0")
        if dt == 0:
            return self.air_c
        n, h = self._substeps(dt)
        air, mass = self.air_c, self.mass_c
        for _ in range(n):
            air, mass = _advance(self.params, air, mass, h, max(0.0, heat_w), outdoor_c, gains_w, window_open)
        self.air_c, self.mass_c = air, mass
        return air

    def predict_air(
        self, dt: float, heat_w: float, outdoor_c: float, gains_w: float = 0.0, window_open: bool = False
    ) -> float:
        """Air temperature after `dt` with these inputs, without changing the state."""
        n, h = self._substeps(dt) if dt > 0 else (0, 0.0)
        air, mass = self.air_c, self.mass_c
        for _ in range(n):
            air, mass = _advance(self.params, air, mass, h, heat_w, outdoor_c, gains_w, window_open)
        return air

    def heat_to_reach(
        self, dt: float, air_target_c: float, outdoor_c: float, gains_w: float = 0.0, window_open: bool = False
    ) -> float:
        """Constant heat (W, may be negative) over `dt` that ends the step with the air exactly at `air_target_c`.

        The model is linear in the heat input, so two predictions give it exactly.
        """
        if dt <= 0:
            return 0.0
        a0 = self.predict_air(dt, 0.0, outdoor_c, gains_w, window_open)
        a1 = self.predict_air(dt, 1000.0, outdoor_c, gains_w, window_open)
        return (air_target_c - a0) * 1000.0 / (a1 - a0)

    def copy(self) -> Room:
        """An independent twin with the same parameters and state (e.g. for the KPI energy floor)."""
        return replace(self)

    @classmethod
    def steady(cls, params: RoomParams, air_c: float, outdoor_c: float, gains_w: float = 0.0) -> Room:
        """A room already in steady state at `air_c` (mass node at its equilibrium for that air temperature)."""
        mass = (params.h_am_w_per_k * air_c + params.h_mo_w_per_k * outdoor_c
                + (1.0 - params.gain_to_air) * gains_w) / (params.h_am_w_per_k + params.h_mo_w_per_k)
        return cls(params=params, air_c=air_c, mass_c=mass)


def steady_power_w(room: Room | RoomParams, air_c: float, outdoor_c: float, gains_w: float = 0.0) -> float:
    """Heater watts that hold the air at `air_c` forever (window closed): max(0, UA·(air − out) − gains)."""
    params = room.params if isinstance(room, Room) else room
    return max(0.0, params.ua_w_per_k * (air_c - outdoor_c) - gains_w)


def steady_air_c(room: Room | RoomParams, heat_w: float, outdoor_c: float, gains_w: float = 0.0) -> float:
    """Air temperature a constant heat input settles at (window closed)."""
    params = room.params if isinstance(room, Room) else room
    return outdoor_c + (heat_w + gains_w) / params.ua_w_per_k


# --------------------------------------------------------------------------------------------------------------
# Outdoor temperature and gains


@dataclass(frozen=True)
class OutdoorProfile:
    """Outdoor temperature over time.

    base(t) = linear interpolation of `series` ((hours, °C) points, held flat outside) when given, else `mean_c`;
    at(t)   = base(t) + amplitude_k · cos(2π (hour_of_day − peak_hour) / 24)
    where hour_of_day = (start_hour + t/3600) mod 24. A pure series: amplitude_k = 0.
    """

    mean_c: float = 5.0
    amplitude_k: float = 0.0
    peak_hour: float = 15.0
    start_hour: float = 0.0  # local hour of day at t = 0
    series: tuple[tuple[float, float], ...] = ()
    _hours: tuple[float, ...] = field(init=False, repr=False, compare=False, default=())  # for bisect

    def __post_init__(self) -> None:
        hours = [h for h, _ in self.series]
        if hours != sorted(hours):
            raise ValueError("OutdoorProfile.series must be sorted by time")
        object.__setattr__(self, "_hours", tuple(hours))  # a season has thousands of points

    def base(self, t: float) -> float:
        if not self.series:
            return self.mean_c
        h = t / 3600.0
        i = bisect.bisect_right(self._hours, h)
        if i == 0:
            return self.series[0][1]
        if i == len(self.series):
            return self.series[-1][1]
        (h0, v0), (h1, v1) = self.series[i - 1], self.series[i]
        return v0 if h1 == h0 else v0 + (v1 - v0) * (h - h0) / (h1 - h0)

    def at(self, t: float) -> float:
        hod = (self.start_hour + t / 3600.0) % 24.0
        return self.base(t) + self.amplitude_k * math.cos(2.0 * math.pi * (hod - self.peak_hour) / 24.0)


@dataclass(frozen=True)
class GainsProfile:
    """Free heat: a constant internal gain (people, appliances) plus solar as a half-sine between sunrise and
    sunset peaking at `solar_peak_w`."""

    internal_w: float = 0.0
    solar_peak_w: float = 0.0
    sunrise_hour: float = 8.0
    sunset_hour: float = 16.0
    start_hour: float = 0.0

    def at(self, t: float) -> float:
        hod = (self.start_hour + t / 3600.0) % 24.0
        solar = 0.0
        if self.solar_peak_w > 0 and self.sunrise_hour < hod < self.sunset_hour:
            solar = self.solar_peak_w * math.sin(math.pi * (hod - self.sunrise_hour)
                                                 / (self.sunset_hour - self.sunrise_hour))
        return self.internal_w + solar


# --------------------------------------------------------------------------------------------------------------
# Sensor


@dataclass(frozen=True)
class SensorParams:
    """A battery Zigbee/BLE room sensor behind MQTT (landscape doc §4.2 "Sensor lag").

    tau_s: first-order lag of the sensing element in its housing (a few minutes for a wall sensor).
    noise_k: Gaussian noise σ added before quantisation.
    resolution_k: reported resolution (0.1 K).
    deadband_k: reports only when the reading moved at least this much since the last report...
    max_silence_s: ...or when this long has passed without a report (Zigbee: up to ~1 h when stable).
    min_interval_s: never reports more often than this.
    dropout_prob: probability that a due report is lost (radio).
    offset_k: calibration offset.
    """

    tau_s: float = 180.0
    noise_k: float = 0.03
    resolution_k: float = 0.1
    deadband_k: float = 0.1
    max_silence_s: float = 3600.0
    min_interval_s: float = 10.0
    dropout_prob: float = 0.0
    offset_k: float = 0.0


class Sensor:
    """Turns the true air temperature into the reports a real sensor would publish.

    `sample(now, true_c)` is called every simulation step; it returns a reported value (°C) when the sensor
    publishes one at this step, else None (no message). During a drop-out window nothing is published.
    `last_report` / `last_report_t` hold the latest published value, as an MQTT consumer would.
    """

    def __init__(self, params: SensorParams | None = None, seed: int = 0, initial_c: float | None = None) -> None:
        self.params = params or SensorParams()
        self._rng = random.Random(seed)
        self._lagged: float | None = initial_c
        self._t: float | None = None
        self._dropouts: list[tuple[float, float]] = []
        self.last_report: float | None = None
        self.last_report_t: float | None = None

    def add_dropout(self, start: float, duration: float) -> None:
        """No reports in [start, start + duration)."""
        self._dropouts.append((start, start + duration))

    def in_dropout(self, now: float) -> bool:
        return any(a <= now < b for a, b in self._dropouts)

    @property
    def lagged_c(self) -> float | None:
        """The sensing element's own (lagged, noise-free) temperature."""
        return self._lagged

    def _quantise(self, value: float) -> float:
        res = self.params.resolution_k
        return round(round(value / res) * res, 6) if res > 0 else value

    def sample(self, now: float, true_c: float) -> float | None:
        p = self.params
        if self._lagged is None or self._t is None:
            self._lagged = true_c if self._lagged is None else self._lagged
        else:
            dt = max(0.0, now - self._t)
            alpha = 1.0 - math.exp(-dt / p.tau_s) if p.tau_s > 0 else 1.0
            self._lagged += alpha * (true_c - self._lagged)
        self._t = now
        noise = self._rng.gauss(0.0, p.noise_k) if p.noise_k > 0 else 0.0
        lost = self._rng.random() < p.dropout_prob if p.dropout_prob > 0 else False
        reading = self._quantise(self._lagged + noise + p.offset_k)
        if self.in_dropout(now):
            return None
        last, last_t = self.last_report, self.last_report_t
        if last is not None and last_t is not None:
            if now - last_t < p.min_interval_s:
                return None
            changed = abs(reading - last) >= p.deadband_k - 1e-9
            if not changed and now - last_t < p.max_silence_s:
                return None
        if lost:
            return None
        self.last_report, self.last_report_t = reading, now
        return reading


def sample_times(duration_s: float, step_s: float) -> Sequence[float]:
    """0, step, 2·step, … up to and including `duration_s` (helper for step loops)."""
    n = math.floor(duration_s / step_s + 1e-9)
    return [i * step_s for i in range(n + 1)]
