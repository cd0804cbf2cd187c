"""thermostat.core.sensor: payload parsing and the plausibility filter."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thermostat.core.sensor import (
    Accepted,
    BadReading,
    Rejected,
    RejectReason,
    SensorFilter,
    parse_payload,
)

# --- parse_payload ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "key", "expected"),
    [
        (b"21.5", None, 21.5),
        (b" 21.5\n", None, 21.5),
        (b"-3", None, -3.0),
        (b"+4.", None, 4.0),
        (b".5", None, 0.5),
        (b"2.15e1", None, 21.5),
        (b'{"temperature": 21.5, "humidity": 40}', "temperature", 21.5),
        (b'{"temperature": 21}', "temperature", 21.0),
        (b'{"temperature": "21.5"}', "temperature", 21.5),
        (b'{"AM2301": {"Temperature": 19.25}}', "AM2301.Temperature", 19.25),
        (b'{"a.b": 1.5, "a": {"b": 2.5}}', "a.b", 1.5),  # a literal dotted key wins
        (b'{"a": {"b": {"c": -7.5}}}', "a.b.c", -7.5),
    ],
)
def test_parse_good(payload: bytes, key: str | None, expected: float) -> None:
    assert parse_payload(payload, key) == expected


@pytest.mark.parametrize(
    ("payload", "key", "fragment"),
    [
        (b"\xff\xfe21", None, "UTF-8"),
        (b"", None, "empty"),
        (b"   ", None, "empty"),
        (b"nan", None, "not a number"),
        (b"NaN", None, "not a number"),
        (b"inf", None, "not a number"),
        (b"-Infinity", None, "not a number"),
        (b"1e999", None, "finite"),
        (b"1_000", None, "not a number"),
        (b"0x10", None, "not a number"),
        (b"21.5 C", None, "not a number"),
        (b"true", None, "not a number"),
        (b'{"temperature": 21}', None, "not a number"),  # JSON where a plain number was configured
        (b"21.5", "temperature", "not a JSON object"),
        (b"[21.5]", "temperature", "not a JSON object"),
        (b"{", "temperature", "not valid JSON"),
        (b'{"temperature": NaN}', "temperature", "constant NaN"),
        (b'{"temperature": Infinity}', "temperature", "constant Infinity"),
        (b'{"temperature": 1e999}', "temperature", "finite"),
        (b'{"temperature": true}', "temperature", "boolean"),
        (b'{"temperature": null}', "temperature", "null"),
        (b'{"temperature": [21]}', "temperature", "array"),
        (b'{"temperature": {"v": 21}}', "temperature", "object"),
        (b'{"temperature": "warm"}', "temperature", "not a number"),
        (b'{"humidity": 40}', "temperature", "missing"),
        (b'{"a": {"x": 1}}', "a.b", "'a.b' missing"),
        (b'{"a": 5}', "a.b", "missing"),
        (b'{"t": ' + b"9" * 400 + b"}", "t", "too large"),
        (b"[" * 5000, "t", "too long"),
        (b"[" * 3000 + b"]" * 1000, "t", "JSON"),
    ],
)
def test_parse_bad(payload: bytes, key: str | None, fragment: str) -> None:
    with pytest.raises(BadReading) as info:
        parse_payload(payload, key)
    assert fragment in info.value.reason


def test_bad_reading_is_a_value_error_with_reason() -> None:
    exc = BadReading("nope")
    assert isinstance(exc, ValueError)
    assert exc.reason == "nope"


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=200), key=st.sampled_from([None, "temperature", "a.b", ""]))
def test_random_bytes_only_raise_bad_reading(payload: bytes, key: str | None) -> None:
    try:
        value = parse_payload(payload, key)
    except BadReading:
        return
    assert math.isfinite(value)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "t"]), children),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(doc=_json_values, key=st.sampled_from(["t", "a.b", "a.t"]))
def test_random_json_only_raises_bad_reading(doc: object, key: str) -> None:
    payload = json.dumps(doc).encode()  # json.dumps writes NaN/Infinity for non-finite floats
    try:
        value = parse_payload(payload, key)
    except BadReading:
        return
    assert math.isfinite(value)


# --- SensorFilter ------------------------------------------------------------------------------


def test_first_reading_accepted_then_state() -> None:
    f = SensorFilter()
    assert f.is_stale(0.0)
    assert f.last_value is None and f.last_time is None
    assert f.offer(10.0, 20.0) == Accepted(20.0, 10.0)
    assert f.last_value == 20.0 and f.last_time == 10.0
    assert not f.is_stale(10.0 + f.stale_after_s)
    assert f.is_stale(10.0 + f.stale_after_s + 0.1)


@pytest.mark.parametrize("value", [-30.1, 60.1, -273.0, 85.0])
def test_out_of_range(value: float) -> None:
    f = SensorFilter()
    r = f.offer(0.0, value)
    assert isinstance(r, Rejected) and r.reason is RejectReason.OUT_OF_RANGE
    assert f.rejected[RejectReason.OUT_OF_RANGE] == 1
    assert f.last_value is None


def test_bounds_are_inclusive() -> None:
    f = SensorFilter(min_c=0, max_c=40, stale_after_s=1)
    assert isinstance(f.offer(0.0, 0.0), Accepted)
    assert isinstance(f.offer(10.0, 40.0), Accepted)  # stale by then: re-seeded without a jump check


def test_jump_rejected_then_allowed_after_longer_gap() -> None:
    f = SensorFilter(max_jump_k_per_min=0.5, jump_floor_k=1.0, stale_after_s=3600)
    f.offer(0.0, 20.0)
    r = f.offer(30.0, 25.0)  # 5 K in 30 s: allowed 1.25 K
    assert isinstance(r, Rejected) and r.reason is RejectReason.JUMP
    assert f.last_value == 20.0 and f.last_time == 0.0  # unchanged by the rejection
    assert isinstance(f.offer(60.0, 21.4), Accepted)  # 1.4 K in 1 min: allowed 1.5 K
    assert isinstance(f.offer(120.0, 25.0), Rejected)  # 3.6 K after 1 min: allowed 1.5 K
    assert isinstance(f.offer(60.0 + 7 * 60, 25.0), Accepted)  # 3.6 K after 7 min: allowed 4.5 K
    assert f.rejected[RejectReason.JUMP] == 2


def test_allowed_jump_grows_with_gap() -> None:
    f = SensorFilter(max_jump_k_per_min=0.5, jump_floor_k=1.0, stale_after_s=3600)
    assert f.allowed_jump(0.0) == math.inf
    f.offer(0.0, 20.0)
    assert f.allowed_jump(0.0) == pytest.approx(1.0)
    assert f.allowed_jump(120.0) == pytest.approx(2.0)
    assert f.allowed_jump(3601.0) == math.inf  # stale: re-seed


def test_genuine_step_is_eventually_accepted() -> None:
    """A sensor moved into a warmer room reports 26 °C steadily: accepted within minutes, not never."""
    f = SensorFilter(max_jump_k_per_min=1.0, jump_floor_k=2.0)
    f.offer(0.0, 18.0)
    t = 0.0
    results = []
    while t < 900:
        t += 30.0
        results.append(f.offer(t, 26.0))
        if isinstance(results[-1], Accepted):
            break
    assert isinstance(results[-1], Accepted)
    assert t <= 6 * 60


def test_stale_reseeds() -> None:
    f = SensorFilter(stale_after_s=600)
    f.offer(0.0, 20.0)
    assert isinstance(f.offer(601.0, 35.0), Accepted)


def test_not_finite_and_out_of_order() -> None:
    f = SensorFilter()
    r0 = f.offer(0.0, math.nan)
    assert isinstance(r0, Rejected) and r0.reason is RejectReason.NOT_FINITE
    assert isinstance(f.offer(math.inf, 20.0), Rejected)
    f.offer(100.0, 20.0)
    r = f.offer(50.0, 20.1)
    assert isinstance(r, Rejected) and r.reason is RejectReason.OUT_OF_ORDER
    assert f.last_time == 100.0


def test_counters() -> None:
    f = SensorFilter()
    f.offer(0.0, 20.0)
    f.offer(1.0, 99.0)
    f.offer(2.0, 30.0)
    f.offer_payload(3.0, b"garbage", None)
    f.offer_payload(4.0, b'{"t": 20.1}', "t")
    c = f.counters()
    assert c == {
        "accepted": 2,
        "bad_payload": 1,
        "not_finite": 0,
        "out_of_range": 1,
        "jump": 1,
        "out_of_order": 0,
    }


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        SensorFilter(min_c=10, max_c=10)
    with pytest.raises(ValueError):
        SensorFilter(max_jump_k_per_min=0)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.floats(min_value=-30, max_value=60),
    offers=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5000),
            st.one_of(st.binary(max_size=40), st.floats().map(lambda v: repr(v).encode())),
        ),
        max_size=30,
    ),
)
def test_rejections_never_change_state(seed: float, offers: list[tuple[float, bytes]]) -> None:
    f = SensorFilter()
    f.offer(0.0, seed)
    for now, payload in offers:
        before = (f.last_value, f.last_time, f.accepted)
        result = f.offer_payload(now, payload, None)
        if isinstance(result, Rejected):
            assert (f.last_value, f.last_time, f.accepted) == before
        else:
            assert (f.last_value, f.last_time) == (result.value, result.time)
            assert f.min_c <= result.value <= f.max_c
    assert f.accepted + sum(f.rejected.values()) == len(offers) + 1
