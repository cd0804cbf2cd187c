"""Learn the room: a grey-box thermal model identified from the room's own history (pure; no I/O).

Input: samples `(t, air_c, heat_w, outdoor_c)` as the service stores them (air None when there was no reading,
outdoor None when unknown). Output: a `ThermalModel` with a confidence figure, or None when the data cannot support
any model.

Models (same structure as the simulated room, docs/control.md "Learning the room"):

* 2R2C  C_a dTa/dt = H_am (Tm − Ta) + H_ao (To − Ta) + Q + g_a
        C_m dTm/dt = H_am (Ta − Tm) + H_mo (To − Tm)
* 1R1C  C dT/dt = UA (To − T) + Q + g

Q is the heater wall power, g a free gain (people, appliances, sun): a constant g0 ≥ 0 plus a daily profile of
daytime heat, g(t) = g0 + Σ_i g_i·hat_i(d) with every g_i ≥ 0, d the local time of day (`day_offset_s`) and hat_i a
triangle of half-width `FitSettings.day_width_h` centred on `FitSettings.day_hours[i]` (06:00 … 20:00 every 2 h:
a piecewise-linear profile that is 0 at night). Sun is heat the history does not record; a mean gain alone made a
sunny room's fit trade the sun for a wrong envelope (the loft of docs/control.md: gain −75 %, τ +240 %). The
profile cannot be negative, so it cannot stand in for the outdoor temperature's daily swing (the night cools),
which pins the envelope. The figures a user and the planner care about are the steady-state gain (K per W,
= 1/UA) and the dominant (slow) time constant.

Identification is output error, not equation error: the model is simulated over the data from its own state
(exactly discretised, zero-order hold on 5-minute bins) and the simulated air temperature, passed through a
first-order sensor lag, is compared with the readings. Equation error on a quantised 0.1 K sensor would fit only
the fast air mode and get the gain wrong. Least squares by `scipy.optimize.least_squares` with a soft-L1 (robust)
loss on log-parameters, so a few bad readings do not pull the fit.

Robustness: gaps (no reading for longer than `gap_s`) split the data into segments, each starting from its own
measured state (the mass node starts at the first reading plus a fitted offset); a sudden drop (faster than
`drop_k_per_h`, an open window or a door) cuts the segment and the next `drop_skip_s` are discarded; segments
shorter than `min_segment_s` are dropped. Outdoor unknown: the last known value is held; never known: a
constant "equivalent outdoor" is fitted instead (the gain is then still identified, the outdoor response not).

Confidence (0..1) is the product of: data span (full at `full_span_h`), fit quality (residual RMS against
`good_rmse_k`), and a forecast check on data the fit did not see: the model refitted to the older part of the
history predicts the newest part (`holdout_fraction`, at least `min_holdout_h`) open loop, and its RMS error against
the readings gives 1 / (1 + (error / `good_forecast_k`)²); a newer piece after a gap or a window gets its unknown
mass temperature from its first `holdout_warmup_h` and is scored after them. A wrong gain shows there as kelvins
of error; a poorly excited time constant (a constant target) shows only as much as it matters for predicting the
room. The planner uses a model at or above `MIN_CONFIDENCE` (0.5), or one whose held-out forecast is within
`FORECAST_OK_K` (0.3 K) and at most half the error of persistence over a full span (`ThermalModel.confident`: a
sunny room the model class cannot fit closely but can forecast), else it falls back to pid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

# scipy is imported where it is used: a command that only reads the config (status, check-config) should not pay
# for importing it

MIN_CONFIDENCE = 0.5
FORECAST_OK_K = 0.3  # ... or a held-out forecast this good (RMS, K) ...
FORECAST_SKILL = 0.5  # ... and at most this share of persistence's error ...
FULL_SPAN_H = 48.0  # ... over at least this much history (`FitSettings.full_span_h`)


@dataclass(frozen=True)
class Sample:
    t: float  # seconds (any epoch, increasing)
    air_c: float | None
    heat_w: float
    outdoor_c: float | None


@dataclass(frozen=True)
class ThermalModel:
    """Identified parameters (SI units). For 1R1C, `c_mass_j_per_k` and `h_am_w_per_k` are 0 and `h_mo` is 0."""

    kind: str  # "1r1c" | "2r2c"
    c_air_j_per_k: float
    c_mass_j_per_k: float
    h_am_w_per_k: float
    h_ao_w_per_k: float
    h_mo_w_per_k: float
    gains_w: float
    rmse_k: float
    confidence: float
    span_h: float
    samples: int
    fitted_at: float = 0.0  # the `now` of the fit (seconds, caller's clock)
    outdoor_known: bool = True
    # the daytime free heat (sun): the profile's value (W, ≥ 0) at each of `gains_day_hours` (local time of day),
    # linear in between and 0 beyond `gains_day_width_h` of the nearest; on top of the constant `gains_w`
    gains_day_w: tuple[float, ...] = ()
    gains_day_hours: tuple[float, ...] = ()
    gains_day_width_h: float = 2.0
    # the forecast check (see `fit`): RMS error predicting the newer part of the history from the older part, and
    # that of persistence on the same readings (inf: the history could not be split)
    forecast_rmse_k: float = math.inf
    persistence_rmse_k: float = math.inf
    # when its structure (order, day profile or not) was chosen by comparing the candidates (see `fit`)
    structure_chosen_at: float = -math.inf

    @property
    def ua_w_per_k(self) -> float:
        if self.kind == "1r1c":
            return self.h_ao_w_per_k
        return self.h_ao_w_per_k + self.h_am_w_per_k * self.h_mo_w_per_k / (self.h_am_w_per_k + self.h_mo_w_per_k)

    @property
    def gain_k_per_w(self) -> float:
        """Steady-state temperature rise per watt of heat."""
        return 1.0 / self.ua_w_per_k

    @property
    def tau_s(self) -> float:
        """The dominant (slowest) time constant in seconds."""
        lam = np.linalg.eigvals(self.matrix()[0])
        return float(-1.0 / max(lam.real))

    @property
    def tau_fast_s(self) -> float:
        lam = np.linalg.eigvals(self.matrix()[0])
        return float(-1.0 / min(lam.real))

    @property
    def confident(self) -> bool:
        """Good enough to plan with: confidence at or above `MIN_CONFIDENCE`; or, over a full span of history, a
        held-out forecast within `FORECAST_OK_K` and at most `FORECAST_SKILL` of persistence's error. The second
        is the room with strong sun: heat the model does not know makes it fit its history less well (confidence
        0.33 for `general/light_sunny_loft`), but it still forecasts a day it did not see ten times better than
        "the temperature stays", and the planner's disturbance estimate carries the rest."""
        if self.confidence >= MIN_CONFIDENCE:
            return True
        return (self.span_h >= FULL_SPAN_H and math.isfinite(self.forecast_rmse_k)
                and self.forecast_rmse_k <= FORECAST_OK_K
                and self.forecast_rmse_k <= FORECAST_SKILL * self.persistence_rmse_k)

    @property
    def order(self) -> int:
        return 1 if self.kind == "1r1c" else 2

    def day_gain_w(self, hour: float) -> float:
        """The daytime free heat (W) at this local hour of day (0 without a day profile). One hour at a time
        without numpy (the planner's observer asks at every update); `day_gains_w` is the same for many."""
        total = 0.0
        for centre, gain in zip(self.gains_day_hours, self.gains_day_w, strict=True):
            distance = abs((hour - centre + 12.0) % 24.0 - 12.0)
            total += max(0.0, 1.0 - distance / self.gains_day_width_h) * gain
        return total

    def day_gains_w(self, hours: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """`day_gain_w` at each of these local hours of day."""
        if not self.gains_day_w:
            return np.zeros(len(hours))
        return np.asarray(day_basis(hours, self.gains_day_hours, self.gains_day_width_h) @ np.array(self.gains_day_w))

    def matrix(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Continuous-time (A, B) with state [air, mass] (or [air]) and inputs
        [heat W, outdoor °C, 1, hat_1(day), hat_2(day), ...] (as many as `gains_day_w`; see `day_basis`)."""
        g = np.array([self.gains_w, *self.gains_day_w])
        if self.kind == "1r1c":
            c, ua = self.c_air_j_per_k, self.h_ao_w_per_k
            a = np.array([[-ua / c]])
            b = np.concatenate([[1.0 / c, ua / c], g / c])[None, :]
            return a, b
        ca, cm = self.c_air_j_per_k, self.c_mass_j_per_k
        ham, hao, hmo = self.h_am_w_per_k, self.h_ao_w_per_k, self.h_mo_w_per_k
        a = np.array([[-(ham + hao) / ca, ham / ca], [ham / cm, -(ham + hmo) / cm]])
        b = np.array([np.concatenate([[1.0 / ca, hao / ca], g / ca]),
                      np.concatenate([[0.0, hmo / cm], np.zeros(len(g))])])
        return a, b

    def discrete(self, dt: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Exact zero-order-hold discretisation for a step of `dt` seconds."""
        return _discretise(*self.matrix(), dt)

    def steady_mass_c(self, air_c: float, outdoor_c: float) -> float:
        """The mass temperature in equilibrium with this air temperature (2R2C), or the air itself."""
        if self.kind == "1r1c":
            return air_c
        return (self.h_am_w_per_k * air_c + self.h_mo_w_per_k * outdoor_c) / (self.h_am_w_per_k + self.h_mo_w_per_k)

    def summary(self) -> dict[str, float | str | None]:
        """The figures shown in room state (MQTT/HA attributes, `thermostat status`)."""
        return {
            "model": self.kind,
            "model_confidence": round(self.confidence, 2),
            "model_tau_h": round(self.tau_s / 3600.0, 1),
            "model_ua_w_per_k": round(self.ua_w_per_k, 1),
            "model_rmse_k": round(self.rmse_k, 3),
            "model_span_h": round(self.span_h, 1),
            "model_forecast_rmse_k": round(self.forecast_rmse_k, 3) if math.isfinite(self.forecast_rmse_k) else None,
            # the largest daytime free heat it learnt (sun through the windows, mostly)
            "model_day_gain_peak_w": round(max(self.gains_day_w, default=0.0), 0),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThermalModel:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        # (a model stored by an earlier version may carry `gains_daily_w`, daily harmonics that were never used
        # for planning: not a field any more, so it is left out above)
        for name in ("gains_day_w", "gains_day_hours"):
            if name in fields:
                values = fields[name]
                if not (isinstance(values, list | tuple)
                        and all(isinstance(v, int | float) and math.isfinite(v) for v in values)):
                    raise ValueError(f"stored thermal model: {name} must be a list of numbers, got {values!r}")
                fields[name] = tuple(float(v) for v in values)
        day_w, day_hours = fields.get("gains_day_w", ()), fields.get("gains_day_hours", ())
        if len(day_w) != len(day_hours) or any(v < 0 for v in day_w):
            raise ValueError("stored thermal model: gains_day_w must be one number ≥ 0 per hour of gains_day_hours")
        width = fields.get("gains_day_width_h", 2.0)
        if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
            raise ValueError(f"stored thermal model: gains_day_width_h must be a positive number, got {width!r}")
        chosen = fields.get("structure_chosen_at", -math.inf)
        if not (isinstance(chosen, int | float) and not isinstance(chosen, bool) and not math.isnan(chosen)
                and chosen != math.inf):
            raise ValueError(f"stored thermal model: structure_chosen_at must be a time, got {chosen!r}")
        model = cls(**fields)
        for name in ("c_air_j_per_k", "h_ao_w_per_k"):
            v = getattr(model, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"stored thermal model: {name} must be a positive number, got {v!r}")
        if model.kind not in ("1r1c", "2r2c"):
            raise ValueError(f"stored thermal model: unknown kind {model.kind!r}")
        return model


def day_basis(hours: np.ndarray[Any, Any], centres: Sequence[float], width_h: float) -> np.ndarray[Any, Any]:
    """Triangles of half-width `width_h` centred on `centres` (local hours), at these hours of day (wrapping at
    midnight): one column per centre."""
    if not centres:
        return np.zeros((len(hours), 0))
    distance = np.abs((hours[:, None] - np.asarray(centres)[None, :] + 12.0) % 24.0 - 12.0)
    return np.asarray(np.maximum(0.0, 1.0 - distance / width_h))


def _discretise(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], dt: float
                ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    # the RC networks have real, negative eigenvalues: Ad = V e^{Λ dt} V⁻¹, Bd = A⁻¹ (Ad − I) B (small and exact;
    # scipy's general expm costs a hundred times more and the fit calls this for every residual evaluation)
    lam, v = np.linalg.eig(a)
    if (np.iscomplexobj(lam) and np.abs(lam.imag).max() > 1e-12) or (lam.real >= 0).any():
        from scipy.linalg import expm

        n, m = a.shape[0], b.shape[1]
        big = np.zeros((n + m, n + m))
        big[:n, :n] = a * dt
        big[:n, n:] = b * dt
        e = expm(big)
        return e[:n, :n], e[:n, n:]
    lam, v = lam.real, v.real
    ad = (v * np.exp(lam * dt)) @ np.linalg.inv(v)
    bd = np.linalg.solve(a, (ad - np.eye(a.shape[0])) @ b)
    return ad, bd


@dataclass(frozen=True)
class FitSettings:
    bin_s: float = 300.0
    gap_s: float = 2700.0  # no reading for this long splits the data
    drop_k_per_h: float = 2.0  # a faster fall than this (over one bin) marks a window/door: cut and skip
    drop_skip_s: float = 3600.0
    min_segment_s: float = 4 * 3600.0
    sensor_lag_s: float = 180.0  # the sensor's own first-order lag, modelled in the output
    full_span_h: float = FULL_SPAN_H
    good_rmse_k: float = 0.15
    min_span_h: float = 12.0
    # the daytime free-heat profile (sun) fitted besides the constant gain: its hours (local) and half-width;
    # () fits the constant only
    day_hours: tuple[float, ...] = (6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0)
    day_width_h: float = 2.0
    # the forecast check: the newest third of the history (at least 12 h) is predicted by a model fitted to the rest
    holdout_fraction: float = 1.0 / 3.0
    min_holdout_h: float = 12.0
    holdout_warmup_h: float = 6.0  # a held-out piece after a gap or a window: hours that set its mass state
    good_forecast_k: float = 0.3  # held-out RMS error at which the forecast factor of the confidence is 0.5
    # a refit from the model in use keeps its structure for this long, refitting only its parameters (0: always
    # compare the candidates)
    structure_kept_h: float = 168.0


@dataclass
class _Segment:
    air: np.ndarray[Any, Any]  # bin-end readings (nan where none)
    heat: np.ndarray[Any, Any]  # bin-mean power
    outdoor: np.ndarray[Any, Any]
    day: np.ndarray[Any, Any]  # bins × len(day_hours): the day profile's triangles at the bin's middle


def _bins(samples: Sequence[Sample], s: FitSettings, day_offset_s: float = 0.0) -> list[_Segment]:
    """Resample to regular bins and split at gaps and sudden drops."""
    pts = sorted((x for x in samples if math.isfinite(x.t)), key=lambda x: x.t)
    if len(pts) < 2:
        return []
    t0, t1 = pts[0].t, pts[-1].t
    n = int((t1 - t0) // s.bin_s)
    if n < 2:
        return []
    bin_s = s.bin_s
    times = np.array([x.t for x in pts])
    # heat: each sample's power holds until the next sample; its energy goes to the bins it spans, piece by piece
    power = np.array([x.heat_w if math.isfinite(x.heat_w) and x.heat_w >= 0 else 0.0 for x in pts[:-1]])
    lo, hi = times[:-1], np.minimum(times[1:], t0 + n * bin_s)
    first_bin = ((lo - t0) // bin_s).astype(int)
    last_bin = ((hi - t0) // bin_s).astype(int)
    last_bin = np.minimum(np.where(t0 + last_bin * bin_s >= hi, last_bin - 1, last_bin), n - 1)
    spans = (lo < hi) & (first_bin <= last_bin)
    counts = np.where(spans, last_bin - first_bin + 1, 0)
    piece = np.repeat(np.arange(len(lo)), counts)
    k = first_bin[piece] + np.arange(len(piece)) - np.repeat(np.cumsum(counts) - counts, counts)
    start = np.where(k == first_bin[piece], lo[piece], t0 + k * bin_s)
    end = np.minimum(hi[piece], t0 + (k + 1) * bin_s)
    heat_j = np.zeros(n)
    np.add.at(heat_j, k, power[piece] * (end - start))  # (in sample order, as a running sum would)
    # readings: the last one in each bin; outdoor likewise
    sample_bin = ((times - t0) // bin_s).astype(int)

    def last_in_bin(values: list[float | None], low: float, high: float) -> np.ndarray[Any, Any]:
        v = np.array([x if x is not None and math.isfinite(x) else np.nan for x in values], dtype=float)
        keep = np.isfinite(v) & (low < v) & (v < high) & (sample_bin < n)
        ks, vs = sample_bin[keep], v[keep]
        out = np.full(n, np.nan)
        last = np.append(ks[1:] != ks[:-1], True) if len(ks) else np.zeros(0, dtype=bool)
        out[ks[last]] = vs[last]
        return out

    air = last_in_bin([x.air_c for x in pts], -30.0, 60.0)
    outdoor = last_in_bin([x.outdoor_c for x in pts], -60.0, 60.0)
    seen_bins = np.isfinite(air)
    heat = heat_j / s.bin_s
    hour = ((t0 + day_offset_s + (np.arange(n) + 0.5) * s.bin_s) % 86400.0) / 3600.0
    day = day_basis(hour, s.day_hours, s.day_width_h)
    # forward-fill the readings a sensor did not repeat (a report-on-change sensor is silent when stable),
    # but never across a gap
    gap_bins = max(1, int(s.gap_s // s.bin_s))
    latest = np.maximum.accumulate(np.where(seen_bins, np.arange(n), -1))
    held = (latest >= 0) & (np.arange(n) - latest <= gap_bins)
    filled = np.where(held, air[np.maximum(latest, 0)], np.nan)
    # outdoor: hold the last known value (first known backwards)
    if np.isfinite(outdoor).any():
        idx = np.where(np.isfinite(outdoor), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        outdoor = outdoor[idx]
        first = int(np.argmax(np.isfinite(outdoor)))
        outdoor[:first] = outdoor[first]
    # cuts: gaps and sudden drops
    ok = np.isfinite(filled)
    drop = np.zeros(n, dtype=bool)
    per_bin = s.drop_k_per_h * s.bin_s / 3600.0
    d = np.diff(filled)
    drop[1:] = np.nan_to_num(d, nan=0.0) < -max(per_bin, 0.25)
    # a fall right after the heat went down is the air's own fast response, not a window
    lookback = max(1, int(1800.0 // s.bin_s))
    for k in np.where(drop)[0]:
        if heat[k] < heat[max(0, k - lookback):k + 1].max() - 1.0:
            drop[k] = False
    skip = max(1, int(s.drop_skip_s // s.bin_s))
    for k in np.where(drop)[0]:
        ok[max(0, k - 1):k + skip] = False
    segments: list[_Segment] = []
    min_len = max(3, int(s.min_segment_s // s.bin_s))
    k = 0
    while k < n:
        if not ok[k]:
            k += 1
            continue
        j = k
        while j < n and ok[j]:
            j += 1
        if j - k >= min_len:
            segments.append(_Segment(air=filled[k:j].copy(), heat=heat[k:j].copy(), outdoor=outdoor[k:j].copy(),
                                     day=day[k:j].copy()))
        k = j
    return segments


_Modes = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]
_System = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], _Modes]


def _system(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], dt: float) -> _System:
    """(Ad, Bd, (e^{λ dt}, V, V⁻¹)): the exact discretisation and its modes. The RC networks' eigenvalues are real,
    negative and distinct; for one or two states they are worked out in closed form (the fit needs this for every
    residual evaluation, and numpy's general eigensolver costs more than the rest of it), otherwise (a repeated
    or non-negative eigenvalue: never for valid parameters) by `_discretise` and a general eigensolver."""
    lam: np.ndarray[Any, Any] | None = None
    if a.shape == (1, 1):
        lam, v, vinv = np.array([a[0, 0]]), np.ones((1, 1)), np.ones((1, 1))
    elif a.shape == (2, 2):
        p, q, r, s = float(a[0, 0]), float(a[0, 1]), float(a[1, 0]), float(a[1, 1])
        half, disc = 0.5 * (p + s), 0.25 * (p - s) ** 2 + q * r
        root = math.sqrt(disc) if disc > 0 else 0.0
        if q != 0.0 and root > 1e-9 * abs(half):
            lam = np.array([half + root, half - root])
            v = np.array([[q, q], [lam[0] - p, lam[1] - p]])
            vinv = np.array([[v[1, 1], -q], [-v[1, 0], q]]) / (q * (v[1, 1] - v[1, 0]))
    if lam is None or (lam >= 0).any():
        ad, bd = _discretise(a, b, dt)
        mu, vv = np.linalg.eig(ad)
        mu, vv = mu.real, vv.real
        return ad, bd, (mu, vv, np.linalg.inv(vv))
    mu = np.exp(lam * dt)
    ad = (v * mu) @ vinv
    bd = (v * (np.expm1(lam * dt) / lam)) @ (vinv @ b)
    return ad, bd, (mu, v, vinv)


class _Batch:
    """Segments padded into one array (segment × bin), so that a simulation of all of them is one first-order
    recursion per mode (and one for the sensor's lag) instead of that many per segment."""

    def __init__(self, segments: list[_Segment], outdoor_known: bool, day_profile: bool) -> None:
        lengths = np.array([len(g.air) - 1 for g in segments])
        steps = int(lengths.max())
        n_day = segments[0].day.shape[1] if day_profile else 0
        # inputs: heat W, outdoor °C, 1, the day profile's triangles (ThermalModel.matrix); zero past a segment's end
        u = np.zeros((3 + n_day, len(segments), steps))
        for i, g in enumerate(segments):
            k = len(g.air) - 1
            u[0, i, :k] = g.heat[:-1]
            if outdoor_known:  # (otherwise an equivalent outdoor temperature is fitted: this input is not used)
                u[1, i, :k] = g.outdoor[:-1]
            u[2, i, :k] = 1.0
            u[3:, i, :k] = g.day[:-1, :n_day].T
        self.inputs = u
        self.lengths = lengths
        self.valid = np.arange(steps)[None, :] < lengths[:, None]
        self.first = np.array([float(g.air[0]) for g in segments])  # each segment's first reading
        self.readings = np.concatenate([g.air[1:] for g in segments])

    def predict(self, system: _System, x0: np.ndarray[Any, Any], t_eq: float | None, lag: float
                ) -> np.ndarray[Any, Any]:
        """The sensor's reading predicted for bins 1.. of every segment (segment × bin) from the states `x0`
        (state × segment) at bin 0, open loop; `t_eq`: a constant outdoor temperature instead of the recorded one."""
        from scipy.signal import lfilter

        _, bd, (mu, v, vinv) = system
        coef = vinv @ bd  # mode × input
        if t_eq is not None:
            coef = coef.copy()
            coef[:, 2] += coef[:, 1] * t_eq
            coef[:, 1] = 0.0
        w = np.tensordot(coef, self.inputs, axes=(1, 0))  # mode × segment × bin
        z0 = vinv @ x0
        air = np.zeros(w.shape[1:])
        for m in range(len(mu)):
            z, _ = lfilter([1.0], [1.0, -mu[m]], w[m], axis=-1, zi=(mu[m] * z0[m])[:, None])
            air += v[0, m] * z
        if lag > 0:
            air, _ = lfilter([1.0 - lag], [1.0, -lag], air, axis=-1, zi=(lag * self.first)[:, None])
        return np.asarray(air)

    def response(self, system: _System, column: np.ndarray[Any, Any], signals: np.ndarray[Any, Any]
                 ) -> np.ndarray[Any, Any]:
        """The air temperature's response (before the sensor) from rest to each of `signals` (signal × segment ×
        bin) entering through `column` of Bd: signal × segment × bin."""
        from scipy.signal import lfilter

        _, _, (mu, v, vinv) = system
        w = vinv @ column
        air = np.zeros(signals.shape)
        for m in range(len(mu)):
            air += v[0, m] * lfilter([1.0], [1.0, -mu[m]], w[m] * signals, axis=-1)
        return air


class _Problem:
    def __init__(self, segments: list[_Segment], order: int, settings: FitSettings, outdoor_known: bool) -> None:
        self.order = order
        self.s = settings
        self.outdoor_known = outdoor_known
        self.lag = math.exp(-settings.bin_s / settings.sensor_lag_s) if settings.sensor_lag_s > 0 else 0.0
        self.batch = _Batch(segments, outdoor_known, bool(settings.day_hours))

    # θ: 1R1C [ln C, ln UA, g0/100, day profile/100, (T_eq)];
    #    2R2C [ln Ca, ln Cm, ln Ham, ln Hao, ln Hmo, g0/100, day profile/100, (T_eq), δm per segment]
    def n_gains(self) -> int:
        return 1 + len(self.s.day_hours)

    def n_physical(self) -> int:
        return (2 if self.order == 1 else 5) + self.n_gains() + (0 if self.outdoor_known else 1)

    def model(self, theta: np.ndarray[Any, Any]) -> ThermalModel:
        first = 2 if self.order == 1 else 5
        e = np.exp(theta[:first])
        g = [float(x) for x in 100.0 * theta[first:first + self.n_gains()]]
        if self.order == 1:
            base = ThermalModel("1r1c", float(e[0]), 0.0, 0.0, float(e[1]), 0.0, g[0], 0.0, 0.0, 0.0, 0)
        else:
            base = ThermalModel("2r2c", float(e[0]), float(e[1]), float(e[2]), float(e[3]), float(e[4]),
                                g[0], 0.0, 0.0, 0.0, 0)
        return replace(base, gains_day_w=tuple(g[1:]), gains_day_hours=tuple(self.s.day_hours),
                       gains_day_width_h=self.s.day_width_h)

    def x0(self, theta: np.ndarray[Any, Any], index: int, y0: float) -> np.ndarray[Any, Any]:
        """The initial state of segment `index`: the first reading, the mass offset by that segment's parameter."""
        if self.order == 1:
            return np.array([y0])
        return np.array([y0, y0 + theta[self.n_physical() + index]])

    def simulate(self, model: ThermalModel, seg: _Segment, x0: np.ndarray[Any, Any],
                 t_eq: float | None) -> np.ndarray[Any, Any]:
        """The sensor's reading predicted for bins 1.. of a segment (not necessarily one of the fit's) from state
        x0 at bin 0 (open loop)."""
        batch = _Batch([seg], self.outdoor_known, bool(self.s.day_hours))
        return np.asarray(batch.predict(self.system(model), x0[:, None], t_eq, self.lag)[0])

    def t_eq(self, theta: np.ndarray[Any, Any]) -> float | None:
        return None if self.outdoor_known else float(theta[self.n_physical() - 1])

    def system(self, model: ThermalModel) -> _System:
        """The model on the fit's bins: (Ad, Bd, Ad's modes), the same for every segment."""
        return _system(*model.matrix(), self.s.bin_s)

    def residuals(self, theta: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        b = self.batch
        x0 = b.first[None, :] if self.order == 1 else np.vstack([b.first, b.first + theta[self.n_physical():]])
        pred = b.predict(self.system(self.model(theta)), x0, self.t_eq(theta), self.lag)
        return np.asarray(pred[b.valid] - b.readings)

    def jacobian(self, theta: np.ndarray[Any, Any], lower: np.ndarray[Any, Any], upper: np.ndarray[Any, Any]
                 ) -> np.ndarray[Any, Any]:
        """∂residuals/∂θ. The envelope's log parameters by forward differences (scipy's 2-point rule: a step of
        √eps·max(1, |θ|) in θ's sign, the other way where it would leave the bounds). Every other parameter (free
        gains, the equivalent outdoor temperature, the mass offsets) enters the prediction linearly, so its column
        is the response to its own input, all of them from one pass: a fit with the day profile needs 6
        simulations per Jacobian instead of 17 or more."""
        r0 = self.residuals(theta)
        jac = np.zeros((len(r0), len(theta)))
        first = 2 if self.order == 1 else 5
        for i in range(first):
            x = float(theta[i])
            h = math.sqrt(np.finfo(float).eps) * (1.0 if x >= 0 else -1.0) * max(1.0, abs(x))
            if not lower[i] <= x + h <= upper[i]:
                h = -h
            step = theta.copy()
            step[i] = x + h
            jac[:, i] = (self.residuals(step) - r0) / (step[i] - x)
        system = self.system(self.model(theta))
        _, bd, (mu, v, vinv) = system
        b = self.batch
        n_phys = self.n_physical()
        # inputs whose coefficient is a parameter: each free gain (in 100 W) acts as that much heat, the equivalent
        # outdoor temperature through the outdoor column
        ones = b.inputs[2:3]
        gains = self._lagged(b.response(system, bd[:, 0], 100.0 * np.concatenate([ones, b.inputs[3:]])))
        jac[:, first:first + self.n_gains()] = gains[:, b.valid].T
        if not self.outdoor_known:
            jac[:, n_phys - 1] = self._lagged(b.response(system, bd[:, 1], ones))[0][b.valid]
        if self.order == 2:
            # a segment's mass offset: the free response from x0 = [0, 1], in that segment's rows
            z0 = vinv @ np.array([0.0, 1.0])
            k = np.arange(1, b.valid.shape[1] + 1)[:, None]
            free = self._lagged((v[0] * z0 * mu ** k).sum(axis=1))
            row = 0
            for index, n in enumerate(b.lengths):
                jac[row:row + n, n_phys + index] = free[:n]
                row += n
        return jac

    def _lagged(self, air: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The sensor's lag applied to a response from rest (along its last axis, the bins)."""
        if self.lag <= 0:
            return air
        from scipy.signal import lfilter

        return np.asarray(lfilter([1.0 - self.lag], [1.0, -self.lag], air, axis=-1))


def fit(samples: Sequence[Sample], *, now: float = 0.0, settings: FitSettings | None = None,
        order: int | None = None, day_offset_s: float = 0.0, start: ThermalModel | None = None
        ) -> ThermalModel | None:
    """Identify the room from its history. `order` 1 or 2 forces a model; None tries both and keeps the 2R2C one
    only when it explains the data clearly better (residual RMS at least 15 % lower), then adds the day profile of
    free heat (`FitSettings.day_hours`) under the same rule. None when there is not
    enough usable data (less than `min_span_h` in segments, or no heat ever applied). `day_offset_s` turns the
    samples' `t` into local time of day: (t + day_offset_s) mod 86400 (for the day profile of free heat).

    The confidence comes from a forecast check: the same model structure is fitted again to the older part of the
    history only and, from the state at the split, predicts the newer part (`holdout_fraction`, at least
    `min_holdout_h`) open loop from the recorded heat and outdoor temperature; its RMS error against the readings
    (`forecast_rmse_k`) is what the planner relies on. The error of persistence (the temperature stays at its
    last reading, `persistence_rmse_k`) is kept beside it.

    The comparison of structures (order, day profile) is made afresh when `start` (the model in use) has none
    that was chosen within `structure_kept_h` (a week): a refit in between refits the parameters of the structure
    in use only, a third of the least squares of a full choice (the room does not change its build from day to
    day; the sun's profile fades to zero when the sun does, and the weekly choice drops it).

    `start` (the model in use) is a second starting point for the least squares besides the generic one, and the
    better of the two optima is kept: on data that excite the room little (a controller holding it steady), a fit
    from the generic start alone can end in a poor local optimum (measured: a 270-day time constant). It is tried
    first, and when it leads to a residual within `good_rmse_k` the generic start is not tried (a third less CPU for
    a bench run under mpc, every bench row the same).

    The linear algebra runs on one thread: its matrices are small, and BLAS threads only add synchronisation
    (measured: 17 % more CPU for a bench week under mpc, no faster) and compete with the service's event loop."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(samples, now=now, settings=settings, order=order, day_offset_s=day_offset_s, start=start)


def _fit(samples: Sequence[Sample], *, now: float, settings: FitSettings | None, order: int | None,
         day_offset_s: float, start: ThermalModel | None) -> ThermalModel | None:
    s = settings or FitSettings()
    segments = _bins(samples, s, day_offset_s)
    span_h = sum(len(g.air) for g in segments) * s.bin_s / 3600.0
    if span_h < s.min_span_h or not any(float(g.heat.max()) > 0 for g in segments):
        return None
    outdoor_known = all(np.isfinite(g.outdoor).all() for g in segments)
    constant = replace(s, day_hours=())
    best, chosen_at = None, now
    if order is None and start is not None and 0.0 <= now - start.structure_chosen_at < s.structure_kept_h * 3600.0:
        # the structure the model in use was given when it was chosen: only its parameters are refitted
        profiled = bool(s.day_hours) and start.gains_day_hours == tuple(s.day_hours)
        best, chosen_at = _fit_order(segments, start.order, s if profiled else constant, outdoor_known, start), \
            start.structure_chosen_at
    if best is None:
        best, chosen_at = _choose_structure(segments, order, s, constant, outdoor_known, start), now
    if best is None:
        return None
    base = best[0]
    used = s if base.gains_day_hours else constant
    forecast_k, persistence_k = _forecast_check(segments, base.order, used, outdoor_known, start)
    conf_span = min(1.0, span_h / s.full_span_h)
    conf_fit = 1.0 / (1.0 + (base.rmse_k / s.good_rmse_k) ** 2)
    conf_forecast = 0.0 if not math.isfinite(forecast_k) else 1.0 / (1.0 + (forecast_k / s.good_forecast_k) ** 2)
    confidence = max(0.0, min(1.0, conf_span * (0.5 + 0.5 * conf_fit) * conf_forecast))
    samples_used = sum(len(g.air) for g in segments)
    return replace(base, confidence=confidence, span_h=span_h, samples=samples_used, fitted_at=now,
                   outdoor_known=outdoor_known, forecast_rmse_k=forecast_k, persistence_rmse_k=persistence_k,
                   structure_chosen_at=chosen_at)


def _choose_structure(segments: list[_Segment], order: int | None, s: FitSettings, constant: FitSettings,
                      outdoor_known: bool, start: ThermalModel | None
                      ) -> tuple[ThermalModel, np.ndarray[Any, Any]] | None:
    """The candidates compared: 1R1C and 2R2C with a constant free gain (or the order asked for), 2R2C kept
    when its residual RMS is at least 15 % lower; then the day profile under the same rule."""
    candidates = []
    for k in ([order] if order else [1, 2]):
        res = _fit_order(segments, k, constant, outdoor_known, start)
        if res is not None:
            candidates.append(res)
    if not candidates:
        return None
    best = candidates[0]
    if len(candidates) == 2 and candidates[1][0].rmse_k < 0.85 * candidates[0][0].rmse_k:
        best = candidates[1]
    if s.day_hours:
        # the day profile only where it explains the readings clearly better (residual RMS 15 % lower: sun the
        # history does not record); elsewhere it would only lend the fit freedom the data cannot pin down
        profiled = _fit_order(segments, best[0].order, s, outdoor_known, start)
        if profiled is not None and profiled[0].rmse_k < 0.85 * best[0].rmse_k:
            best = profiled
    return best


def _solve(segments: list[_Segment], order: int, s: FitSettings, outdoor_known: bool,
           start: ThermalModel | None = None) -> tuple[_Problem, np.ndarray[Any, Any], float] | None:
    """Least squares for one model order: (problem, optimal θ, residual RMS), or None when it fails. With a `start`
    model of the same order, also from its parameters; the lower cost wins."""
    from scipy.optimize import least_squares

    prob = _Problem(segments, order, s, outdoor_known)
    mean_air = float(np.nanmean(np.concatenate([g.air for g in segments])))
    mean_heat = float(np.mean(np.concatenate([g.heat for g in segments])))
    mean_out = float(np.mean(np.concatenate([g.outdoor for g in segments]))) if outdoor_known else mean_air - 15.0
    ua0 = max(2.0, mean_heat / max(3.0, mean_air - mean_out))
    profile = len(s.day_hours)
    if order == 1:
        theta0 = [math.log(ua0 * 30 * 3600.0), math.log(ua0)]
        lo = [math.log(1e4), math.log(0.5)]
        hi = [math.log(1e9), math.log(2000.0)]
    else:
        theta0 = [math.log(ua0 * 1800.0 * 12), math.log(ua0 * 40 * 3600.0), math.log(ua0 * 12),
                  math.log(ua0 / 2), math.log(ua0 / 2 * 1.02)]
        lo = [math.log(1e4), math.log(1e5), math.log(1.0), math.log(0.05), math.log(0.05)]
        hi = [math.log(1e8), math.log(1e9), math.log(5000.0), math.log(2000.0), math.log(2000.0)]
    n_env = len(theta0)
    # free gains (in 100 W): the constant and the day profile, each ≥ 0
    theta0 += [0.0] * (1 + profile)
    lo += [0.0] * (1 + profile)
    hi += [20.0] * (1 + profile)
    if not outdoor_known:
        theta0.append(mean_out)
        lo.append(-30.0)
        hi.append(25.0)
    if order == 2:
        theta0 += [0.0] * len(segments)
        lo += [-15.0] * len(segments)
        hi += [15.0] * len(segments)
    lower, upper = np.array(lo, dtype=float), np.array(hi, dtype=float)
    starts = [np.array(theta0, dtype=float)]
    if start is not None and start.order == order:
        guess = np.array(theta0, dtype=float)
        if order == 1:
            guess[:n_env] = [math.log(start.c_air_j_per_k), math.log(start.h_ao_w_per_k)]
        else:
            guess[:n_env] = [math.log(start.c_air_j_per_k), math.log(start.c_mass_j_per_k),
                             math.log(start.h_am_w_per_k), math.log(start.h_ao_w_per_k),
                             math.log(start.h_mo_w_per_k)]
        guess[n_env] = start.gains_w / 100.0
        if start.gains_day_hours == tuple(s.day_hours) and start.gains_day_width_h == s.day_width_h:
            guess[n_env + 1:n_env + 1 + profile] = np.array(start.gains_day_w) / 100.0
        starts.append(guess)
    best: Any = None
    # the model in use first: when it leads to a fit as good as `good_rmse_k`, the generic guess is not tried
    # (a refit of the same room from yesterday's model; the generic guess is for a first fit, or a room that changed)
    for x0 in reversed(starts):
        if best is not None and float(np.sqrt(np.mean(best.fun**2))) <= s.good_rmse_k:
            break
        try:
            sol = least_squares(prob.residuals, np.clip(x0, lower, upper), bounds=(lower, upper),
                                jac=lambda th: prob.jacobian(th, lower, upper),
                                loss="soft_l1", f_scale=0.3, max_nfev=400)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.isfinite(sol.fun).all() and (best is None or sol.cost < best.cost):
            best = sol
    if best is None:
        return None
    r = best.fun
    return prob, np.asarray(best.x, dtype=float), float(np.sqrt(np.mean(r**2)))


def _fit_order(segments: list[_Segment], order: int, s: FitSettings, outdoor_known: bool,
               start: ThermalModel | None = None) -> tuple[ThermalModel, np.ndarray[Any, Any]] | None:
    solved = _solve(segments, order, s, outdoor_known, start)
    if solved is None:
        return None
    prob, theta, rmse = solved
    return replace(prob.model(theta), rmse_k=rmse, outdoor_known=outdoor_known), theta


def _split(segments: list[_Segment], s: FitSettings
           ) -> tuple[list[_Segment], list[tuple[int | None, _Segment, int]]] | None:
    """The older part (training segments) and the newer part as pieces (training index of the segment it
    continues or None, the whole segment, first held-out bin). None when either part would be too short."""
    total = sum(len(g.air) for g in segments)
    held = max(int(total * s.holdout_fraction), int(s.min_holdout_h * 3600.0 // s.bin_s))
    min_len = max(3, int(s.min_segment_s // s.bin_s))
    train: list[_Segment] = []
    pieces: list[tuple[int | None, _Segment, int]] = []
    left = total - held  # bins that stay in the older part
    if left * s.bin_s / 3600.0 < s.min_span_h:
        return None
    for seg in segments:
        n = len(seg.air)
        if left >= n:
            train.append(seg)
            left -= n
        elif left >= min_len:
            part = _Segment(seg.air[:left], seg.heat[:left], seg.outdoor[:left], seg.day[:left])
            train.append(part)
            pieces.append((len(train) - 1, seg, left))
            left = 0
        else:
            pieces.append((None, seg, 1))
            left = 0
    if not train or not pieces or not any(float(g.heat.max()) > 0 for g in train):
        return None
    return train, pieces


def _forecast_check(segments: list[_Segment], order: int, s: FitSettings, outdoor_known: bool,
                    start: ThermalModel | None = None) -> tuple[float, float]:
    """(model, persistence) RMS error on the newer part of the history, the model fitted to the older part only.
    (inf, inf) when the history cannot be split or the older part gives no model."""
    split = _split(segments, s)
    if split is None:
        return math.inf, math.inf
    train, pieces = split
    solved = _solve(train, order, s, outdoor_known, start)
    if solved is None:
        return math.inf, math.inf
    prob, theta, _ = solved
    model, t_eq = prob.model(theta), prob.t_eq(theta)
    err: list[np.ndarray[Any, Any]] = []
    base: list[np.ndarray[Any, Any]] = []
    warmup = int(s.holdout_warmup_h * 3600.0 // s.bin_s)
    for index, seg, k in pieces:
        y0 = float(seg.air[0])
        if index is not None:
            x0 = prob.x0(theta, index, y0)
            pred = prob.simulate(model, seg, x0, t_eq)  # predicts bins 1..
        else:
            # a piece after a gap or a window: its mass temperature is unknown. Start it in equilibrium, then set
            # it from the piece's first `holdout_warmup_h` (the prediction is linear in it) and score the rest:
            # a wrong start would otherwise stay in the forecast for the mass's whole time constant
            out0 = float(seg.outdoor[0]) if t_eq is None else t_eq
            x0 = np.array([y0]) if order == 1 else np.array([y0, model.steady_mass_c(y0, out0)])
            pred = prob.simulate(model, seg, x0, t_eq)
            if order == 2 and len(seg.air) > 2 * warmup > 0:
                unit = prob.simulate(model, seg, x0 + np.array([0.0, 1.0]), t_eq) - pred
                u, r = unit[:warmup], seg.air[1:warmup + 1] - pred[:warmup]
                if float(u @ u) > 1e-12:
                    pred = pred + float(np.clip((u @ r) / (u @ u), -15.0, 15.0)) * unit
                    k = warmup + 1
        err.append(pred[k - 1:] - seg.air[k:])
        base.append(seg.air[k:] - seg.air[k - 1])
    e, b = np.concatenate(err), np.concatenate(base)
    return float(np.sqrt(np.mean(e**2))), float(np.sqrt(np.mean(b**2)))


def true_figures(c_air: float, c_mass: float, h_am: float, h_ao: float, h_mo: float) -> tuple[float, float]:
    """(dominant time constant s, steady-state gain K/W) of a 2R2C room with these parameters (for checks)."""
    m = ThermalModel("2r2c", c_air, c_mass, h_am, h_ao, h_mo, 0.0, 0.0, 1.0, 0.0, 0)
    return m.tau_s, m.gain_k_per_w
