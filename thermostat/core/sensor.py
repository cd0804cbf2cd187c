"""The room-temperature input filter: pure, no I/O, no clock.

Two steps, both pure:

1. `parse_payload(payload, json_key)` turns the raw bytes of an MQTT message into a float or raises
   `BadReading`. A plain number (ESPHome, Home Assistant statestream: ``b"21.5"``) when `json_key` is
   None; otherwise a JSON object and a key, or a dotted path into nested objects (Zigbee2MQTT:
   ``{"temperature": 21.5}`` with key ``temperature``; ``{"AM2301": {"Temperature": 21}}`` with
   ``AM2301.Temperature``). Nothing else is ever raised, whatever the bytes.
2. `SensorFilter.offer(now, value)` accepts or rejects a parsed value: outside the plausible range, or
   moving faster than a room can (relative to the last *accepted* reading, with a larger allowance
   after a longer gap) → rejected. A jump is not refused for ever: readings that agree with each other
   (within `confirm_band_k`) confirm it, and it is accepted on the `confirm_readings`-th such reading or
   on one arriving `confirm_after_s` after the first, whichever comes first (`Accepted.confirmed`).
   `is_stale(now)` says when no reading has been accepted for `stale_after_s`.

`now` is any monotonic seconds value the caller owns (the injected clock's `monotonic()`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_PAYLOAD_BYTES = 4096

# A decimal number and nothing else: no "nan", "inf", "1_000", hex, or other things float() accepts.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


class BadReading(ValueError):
    """A payload that is not a usable temperature. `reason` is a short human text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise BadReading(f"not a finite number: {value!r}")
    return value


def _number_from_text(text: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise BadReading(f"not a number: {shown!r}")
    try:
        value = float(text)
    except (ValueError, OverflowError) as exc:  # pragma: no cover - the regex admits only floats
        raise BadReading(f"not a number: {text!r}") from exc
    return _finite(value)


def _number_from_json(value: Any, where: str) -> float:
    if isinstance(value, bool):  # bool is an int in Python: refuse it explicitly
        raise BadReading(f"{where} is a boolean, not a number")
    if isinstance(value, int):
        try:
            return _finite(float(value))
        except OverflowError as exc:
            raise BadReading(f"{where} is too large") from exc
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, str):  # some devices send "21.5" as a JSON string
        return _number_from_text(value)
    if value is None:
        raise BadReading(f"{where} is null")
    kind = "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__
    raise BadReading(f"{where} is {kind}, not a number")


def _reject_constant(name: str) -> Any:
    raise BadReading(f"JSON constant {name} is not a number")


def parse_payload(payload: bytes, json_key: str | None) -> float:
    """The temperature in a sensor message. Raises `BadReading` (and nothing else) for anything unusable."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadReading(f"payload too long ({len(payload)} bytes)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadReading("payload is not UTF-8") from exc
    if not text.strip():
        raise BadReading("empty payload")
    if json_key is None:
        return _number_from_text(text)
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except BadReading:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadReading("payload is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise BadReading(f"payload is not a JSON object (key {json_key!r} wanted)")
    if json_key in doc:  # a key that itself contains dots wins over the path reading
        return _number_from_json(doc[json_key], f"key {json_key!r}")
    node: Any = doc
    walked: list[str] = []
    for part in json_key.split("."):
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise BadReading(f"key {'.'.join(walked)!r} missing")
        node = node[part]
    return _number_from_json(node, f"key {json_key!r}")


class RejectReason(StrEnum):
    BAD_PAYLOAD = "bad_payload"  # parse_payload refused it (only via `offer_payload`)
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    JUMP = "jump"  # moved faster than a room can
    OUT_OF_ORDER = "out_of_order"  # `now` earlier than the last accepted reading


@dataclass(frozen=True)
class Accepted:
    value: float
    time: float
    confirmed: bool = False  # a jump accepted because the readings since confirmed it


@dataclass(frozen=True)
class Rejected:
    reason: RejectReason
    detail: str = ""


class SensorFilter:
    """Plausibility filter for one room sensor.

    A reading is rejected when it is outside ``[min_c, max_c]``, or when it differs from the last
    accepted reading by more than ``jump_floor_k + max_jump_k_per_min * minutes_since_last_accepted``.
    The floor lets sensor quantisation and two sensors' worth of noise through; the rate grows the
    allowance with the gap. A genuine step (sensor moved, a door opened, a heat wave) is accepted once
    confirmed: `confirm_readings` consecutive jump-rejected readings within `confirm_band_k` of the first,
    or one such reading `confirm_after_s` after the first, whichever is first; an accepted reading in
    between drops the candidate (a sensor flickering between two values confirms nothing). Once stale,
    any in-range reading re-seeds the filter.
    """

    def __init__(
        self,
        min_c: float = -30.0,
        max_c: float = 60.0,
        max_jump_k_per_min: float = 1.0,
        stale_after_s: float = 900.0,
        jump_floor_k: float = 2.0,
        *,
        confirm_readings: int = 3,
        confirm_after_s: float = 120.0,
        confirm_band_k: float = 1.0,
    ) -> None:
        if not min_c < max_c:
            raise ValueError("min_c must be below max_c")
        if max_jump_k_per_min <= 0 or jump_floor_k < 0 or stale_after_s <= 0:
            raise ValueError("max_jump_k_per_min and stale_after_s must be > 0, jump_floor_k >= 0")
        if confirm_readings < 2 or confirm_after_s <= 0 or confirm_band_k <= 0:
            raise ValueError("confirm_readings must be >= 2, confirm_after_s and confirm_band_k > 0")
        self.confirm_readings = confirm_readings
        self.confirm_after_s = confirm_after_s
        self.confirm_band_k = confirm_band_k
        self._candidate: tuple[float, float, int] | None = None  # (first value, first time, readings)
        self.min_c = min_c
        self.max_c = max_c
        self.max_jump_k_per_min = max_jump_k_per_min
        self.stale_after_s = stale_after_s
        self.jump_floor_k = jump_floor_k
        self._last_value: float | None = None
        self._last_time: float | None = None
        self.accepted = 0
        self.rejected: dict[RejectReason, int] = {r: 0 for r in RejectReason}

    @property
    def last_value(self) -> float | None:
        return self._last_value

    @property
    def last_time(self) -> float | None:
        return self._last_time

    def is_stale(self, now: float) -> bool:
        """True before the first accepted reading and when the last one is older than `stale_after_s`."""
        return self._last_time is None or now - self._last_time > self.stale_after_s

    def allowed_jump(self, now: float) -> float:
        """The largest change from the last accepted reading that `offer(now, ...)` would accept."""
        if self._last_time is None or self.is_stale(now):
            return math.inf
        minutes = max(0.0, now - self._last_time) / 60.0
        return self.jump_floor_k + self.max_jump_k_per_min * minutes

    def _reject(self, reason: RejectReason, detail: str) -> Rejected:
        self.rejected[reason] += 1
        return Rejected(reason, detail)

    def offer(self, now: float, value: float) -> Accepted | Rejected:
        if not math.isfinite(value) or not math.isfinite(now):
            return self._reject(RejectReason.NOT_FINITE, f"value {value!r} at {now!r}")
        if not self.min_c <= value <= self.max_c:
            return self._reject(RejectReason.OUT_OF_RANGE, f"{value:g} °C outside [{self.min_c:g}, {self.max_c:g}]")
        if self._last_time is not None and now < self._last_time:
            return self._reject(RejectReason.OUT_OF_ORDER, f"t={now:g} before last accepted t={self._last_time:g}")
        confirmed = False
        if self._last_value is not None:
            allowed = self.allowed_jump(now)
            delta = abs(value - self._last_value)
            if delta > allowed:
                if not self._confirms(now, value):
                    return self._reject(
                        RejectReason.JUMP,
                        f"{self._last_value:g} → {value:g} °C is {delta:.2f} K, allowed {allowed:.2f} K",
                    )
                confirmed = True
        self._candidate = None
        self._last_value = value
        self._last_time = now
        self.accepted += 1
        return Accepted(value, now, confirmed)

    def _confirms(self, now: float, value: float) -> bool:
        """Count a jump-rejected reading towards confirming the jump; True when it is now confirmed."""
        cand = self._candidate
        if cand is None or abs(value - cand[0]) > self.confirm_band_k or now < cand[1]:
            self._candidate = (value, now, 1)
            return False
        first, since, count = cand[0], cand[1], cand[2] + 1
        self._candidate = (first, since, count)
        return count >= self.confirm_readings or now - since >= self.confirm_after_s

    def offer_payload(
        self, now: float, payload: bytes, json_key: str | None, offset: float = 0.0
    ) -> Accepted | Rejected:
        """`parse_payload`, add the sensor's calibration `offset`, then `offer`; a bad payload is counted as
        `BAD_PAYLOAD`. Never raises."""
        try:
            value = parse_payload(payload, json_key)
        except BadReading as exc:
            return self._reject(RejectReason.BAD_PAYLOAD, exc.reason)
        return self.offer(now, value + offset)

    def counters(self) -> dict[str, int]:
        """``{"accepted": n, "<reason>": n, ...}`` for metrics and diagnostics."""
        out = {"accepted": self.accepted}
        out.update({r.value: n for r, n in self.rejected.items()})
        return out


def parse_optional(payload: bytes, json_key: str) -> float | None:
    """A second value from the same JSON message (humidity next to the temperature): the number, or None
    when the payload is not a JSON object, the key is absent, or its value is not a finite number. Never raises."""
    try:
        return parse_payload(payload, json_key)
    except BadReading:
        return None


class Combine(StrEnum):
    MEAN = "mean"
    MIN = "min"
    MAX = "max"


def combine(values: list[float], how: Combine) -> float | None:
    """The room's reading from its fresh sensors' readings; None when there are none."""
    if not values:
        return None
    if how is Combine.MIN:
        return min(values)
    if how is Combine.MAX:
        return max(values)
    return sum(values) / len(values)


class RoomSensors:
    """The sensors of one room, each with its own `SensorFilter` (so its own plausibility and staleness),
    read as one: the combination (`mean`, `min` or `max`) of the readings that are fresh at `now`.

    The room is stale only when every sensor is. `last_value` is the combination as of the newest accepted
    reading (the sensors that were fresh then), for displays that hold no clock; control uses `value(now)`.
    """

    def __init__(self, filters: list[SensorFilter], how: Combine = Combine.MEAN) -> None:
        if not filters:
            raise ValueError("a room needs at least one sensor")
        self.filters = filters
        self.how = how

    def fresh_values(self, now: float) -> list[float]:
        return [f.last_value for f in self.filters if f.last_value is not None and not f.is_stale(now)]

    def value(self, now: float) -> float | None:
        """The combination of the fresh readings at `now`; when none is fresh, the newest reading (or None)."""
        fresh = combine(self.fresh_values(now), self.how)
        if fresh is not None:
            return fresh
        newest = max((f for f in self.filters if f.last_time is not None), key=lambda f: f.last_time or 0.0,
                     default=None)
        return None if newest is None else newest.last_value

    @property
    def last_time(self) -> float | None:
        times = [f.last_time for f in self.filters if f.last_time is not None]
        return max(times) if times else None

    @property
    def last_value(self) -> float | None:
        t = self.last_time
        return None if t is None else self.value(t)

    def is_stale(self, now: float) -> bool:
        return all(f.is_stale(now) for f in self.filters)

    @property
    def stale_after_s(self) -> float:
        return max(f.stale_after_s for f in self.filters)

    def counters(self) -> dict[str, int]:
        """The filters' counters summed (same keys as `SensorFilter.counters`)."""
        out: dict[str, int] = {}
        for f in self.filters:
            for k, n in f.counters().items():
                out[k] = out.get(k, 0) + n
        return out
