"""BOPTEST-style KPIs for one room run (pure; fed by the step loop).

Feed `Kpi.add(t, air_c, target, power_w, outdoor_c, ...)` at every step (t in seconds, increasing) and
`Kpi.note_levels(levels)` with the heaters' levels after each allocation; read `Kpi.result()`.

Definitions (all integrals are trapezoids over the sampled trajectory, as BOPTEST `kpi_calculator.py`):

* comfort band: [target − band_low_k, target + band_high_k] with band_low_k 0.5 K, band_high_k 1.0 K, using the
  target in force at each sample;
* discomfort_kh = ∫ max(0, (target − 0.5) − T) + max(0, T − (target + 1.0)) dt, in K·h (BOPTEST `tdis`);
* energy_kwh = ∫ power_w dt / 3.6e6 (wall watts = heat for a miner);
* rms_error_k = sqrt(∫ (T − target)² dt / duration);
* max_overshoot_k = max(0, max of T − target over the samples taken after T has first reached the target since
  the last target change). Coasting down after a setback (T above a lowered target) is therefore not
  overshoot; rising past the target after a recovery or on a steady target is;
* wakes / stops / level_changes: counted from `note_levels` (None → level is a wake, level → None a stop,
  level → other level a level change);
* energy_floor_kwh: the physical minimum energy for zero discomfort. A twin of the room (anything with the
  `ThermalTwin` interface, e.g. `thermostat.sim.room.Room.copy()`) receives the same outdoor temperature, gains
  and window openings, and at every step exactly the heat that puts its air on the lower comfort bound at the
  end of the step when it would otherwise fall below it (max(0, heat_to_reach(bound))), else none. With
  resistive heat, linear losses and only positive heat, staying on the lower bound and heating at the last
  moment is the minimum-energy trajectory, so no controller can have zero discomfort with less energy. The twin
  has unlimited power unless `floor_max_w` is given (then it is a floor for that heater capacity, slightly
  optimistic after setbacks because it does not pre-heat);
* excess_energy_kwh = energy_kwh − energy_floor_kwh;
* cost = ∫ price · power_w dt / 3.6e6 when `add` is given the price per kWh in force (a tariff), else None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class ThermalTwin(Protocol):
    air_c: float

    def step(self, dt: float, heat_w: float, outdoor_c: float, gains_w: float = 0.0,
             window_open: bool = False) -> float: ...

    def heat_to_reach(self, dt: float, air_target_c: float, outdoor_c: float, gains_w: float = 0.0,
                      window_open: bool = False) -> float: ...


@dataclass(frozen=True)
class KpiResult:
    duration_h: float
    discomfort_kh: float
    energy_kwh: float
    energy_floor_kwh: float | None
    excess_energy_kwh: float | None
    rms_error_k: float
    max_overshoot_k: float
    mean_air_c: float
    wakes: int
    stops: int
    level_changes: int
    cost: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


class Kpi:
    def __init__(self, *, band_low_k: float = 0.5, band_high_k: float = 1.0, twin: ThermalTwin | None = None,
                 floor_max_w: float | None = None) -> None:
        self.band_low_k = band_low_k
        self.band_high_k = band_high_k
        self.twin = twin
        self.floor_max_w = floor_max_w
        self._prev: tuple[float, float, float, float] | None = None  # t, discomfort rate, power, err²
        self._t0: float | None = None
        self.discomfort_ks = 0.0
        self.energy_j = 0.0
        self.floor_j = 0.0
        self.sq_err_ks = 0.0
        self.air_ks = 0.0
        self._prev_air: float | None = None
        self.max_overshoot_k = 0.0
        self._target: float | None = None
        self._reached = False
        self.wakes = 0
        self.stops = 0
        self.level_changes = 0
        self._levels: dict[str, str | None] | None = None
        self.cost = 0.0
        self._priced = False

    def discomfort_rate(self, air_c: float, target: float) -> float:
        """K of discomfort at one instant."""
        return max(0.0, target - self.band_low_k - air_c) + max(0.0, air_c - (target + self.band_high_k))

    def add(self, t: float, air_c: float, target: float, power_w: float, outdoor_c: float, gains_w: float = 0.0,
            window_open: bool = False, price_per_kwh: float | None = None) -> None:
        """One sample. `power_w` is the heater wall power at t (trapezoid between samples); `price_per_kwh` the
        price in force from the previous sample to this one (None: no cost figure)."""
        rate = self.discomfort_rate(air_c, target)
        err2 = (air_c - target) ** 2
        if self._prev is not None:
            t_prev, rate_prev, p_prev, err2_prev = self._prev
            dt = t - t_prev
            if dt < 0:
                raise ValueError("KPI samples must be in time order")
            self.discomfort_ks += 0.5 * (rate + rate_prev) * dt
            self.energy_j += 0.5 * (power_w + p_prev) * dt
            if price_per_kwh is not None:
                self._priced = True
                self.cost += price_per_kwh * 0.5 * (power_w + p_prev) * dt / 3.6e6
            self.sq_err_ks += 0.5 * (err2 + err2_prev) * dt
            if self._prev_air is not None:
                self.air_ks += 0.5 * (air_c + self._prev_air) * dt
            if self.twin is not None and dt > 0:
                bound = target - self.band_low_k
                heat = max(0.0, self.twin.heat_to_reach(dt, bound, outdoor_c, gains_w, window_open))
                if self.floor_max_w is not None:
                    heat = min(heat, self.floor_max_w)
                self.twin.step(dt, heat, outdoor_c, gains_w, window_open)
                self.floor_j += heat * dt
        else:
            self._t0 = t
        self._prev = (t, rate, power_w, err2)
        self._prev_air = air_c
        # overshoot after the target has been reached since the last target change
        if self._target is None or target != self._target:
            self._target = target
            self._reached = air_c <= target
        elif not self._reached and air_c <= target:
            self._reached = True
        if self._reached:
            self.max_overshoot_k = max(self.max_overshoot_k, air_c - target)

    def note_levels(self, levels: Mapping[str, str | None]) -> None:
        """The heaters' levels after this step's allocation (or as confirmed); counts wakes/stops/changes."""
        if self._levels is not None:
            for hid, new in levels.items():
                old = self._levels.get(hid)
                if old == new:
                    continue
                if old is None:
                    self.wakes += 1
                elif new is None:
                    self.stops += 1
                else:
                    self.level_changes += 1
        self._levels = dict(levels)

    def result(self) -> KpiResult:
        duration = 0.0 if self._prev is None or self._t0 is None else self._prev[0] - self._t0
        floor = self.floor_j / 3.6e6 if self.twin is not None else None
        energy = self.energy_j / 3.6e6
        mean_air = self.air_ks / duration if duration > 0 else (self._prev_air or math.nan)
        return KpiResult(
            duration_h=duration / 3600.0,
            discomfort_kh=self.discomfort_ks / 3600.0,
            energy_kwh=energy,
            energy_floor_kwh=floor,
            excess_energy_kwh=None if floor is None else energy - floor,
            rms_error_k=math.sqrt(self.sq_err_ks / duration) if duration > 0 else 0.0,
            max_overshoot_k=self.max_overshoot_k,
            mean_air_c=mean_air,
            wakes=self.wakes,
            stops=self.stops,
            level_changes=self.level_changes,
            cost=self.cost if self._priced else None,
        )
