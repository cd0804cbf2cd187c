"""Several sensors per room (pure core): each with its own filter and staleness, combined as mean, min or max
of the fresh ones; the room is stale only when every sensor is. Humidity read from the same JSON."""

from __future__ import annotations

import pytest

from thermostat.core.sensor import Combine, RoomSensors, SensorFilter, combine, parse_optional


def two(how: Combine = Combine.MEAN, stale_a: float = 300.0, stale_b: float = 600.0) -> RoomSensors:
    return RoomSensors([SensorFilter(stale_after_s=stale_a), SensorFilter(stale_after_s=stale_b)], how)


@pytest.mark.parametrize(("how", "expected"), [(Combine.MEAN, 20.0), (Combine.MIN, 19.0), (Combine.MAX, 21.0)])
def test_fresh_readings_are_combined(how: Combine, expected: float) -> None:
    room = two(how)
    room.filters[0].offer(0.0, 19.0)
    room.filters[1].offer(10.0, 21.0)
    assert room.value(20.0) == pytest.approx(expected)
    assert room.last_value == pytest.approx(expected)
    assert not room.is_stale(20.0)


def test_a_silent_sensor_drops_out_and_the_room_reads_the_other() -> None:
    room = two()
    room.filters[0].offer(0.0, 19.0)
    room.filters[1].offer(0.0, 21.0)
    # sensor 0 (stale after 300 s) falls silent; sensor 1 keeps reporting
    room.filters[1].offer(200.0, 21.2)
    room.filters[1].offer(400.0, 21.4)
    assert room.value(400.0) == pytest.approx(21.4)  # sensor 0 is stale at 400 s: not averaged in
    assert room.fresh_values(400.0) == [21.4]
    assert not room.is_stale(400.0)


def test_the_room_is_stale_only_when_every_sensor_is() -> None:
    room = two(stale_a=300.0, stale_b=600.0)
    room.filters[0].offer(0.0, 19.0)
    room.filters[1].offer(0.0, 21.0)
    assert not room.is_stale(500.0)  # sensor 1 still fresh
    assert room.value(500.0) == pytest.approx(21.0)
    assert room.is_stale(601.0)
    # all stale: the newest reading stays visible, and the room says stale
    assert room.value(601.0) is not None
    assert room.stale_after_s == 600.0


def test_no_reading_yet() -> None:
    room = two()
    assert room.value(0.0) is None and room.last_value is None and room.last_time is None
    assert room.is_stale(0.0)


def test_each_sensor_has_its_own_filter_and_counters_add_up() -> None:
    room = two()
    room.filters[0].offer(0.0, 20.0)
    room.filters[1].offer(0.0, 20.0)
    assert room.filters[0].offer_payload(10.0, b"garbage", None).__class__.__name__ == "Rejected"
    assert room.filters[1].offer(20.0, 35.0).__class__.__name__ == "Rejected"  # jump on sensor 1 only
    counters = room.counters()
    assert counters["accepted"] == 2 and counters["bad_payload"] == 1 and counters["jump"] == 1
    assert room.value(30.0) == pytest.approx(20.0)


def test_combine_and_empty() -> None:
    assert combine([], Combine.MEAN) is None
    assert combine([1.0, 2.0, 6.0], Combine.MEAN) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        RoomSensors([])


def test_humidity_from_the_same_json_or_none() -> None:
    assert parse_optional(b'{"temperature": 21.5, "humidity": 48.2}', "humidity") == pytest.approx(48.2)
    assert parse_optional(b'{"temperature": 21.5}', "humidity") is None
    assert parse_optional(b'{"temperature": 21.5, "humidity": "wet"}', "humidity") is None
    assert parse_optional(b"21.5", "humidity") is None
    assert parse_optional(b"\xff\xfe", "humidity") is None
