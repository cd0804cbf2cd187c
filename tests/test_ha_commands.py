"""thermostat.adapters.ha command parsing: pure, never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thermostat.adapters import ha
from thermostat.miners.models import MINI3, NANO3S

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PRESETS = ("comfort", "eco", "away")


def room(what: str, payload: bytes, now: datetime | None = NOW) -> object:
    return ha.parse_room_command(what, payload, 7.0, 26.0, PRESETS, now)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"21", 21.0),
        (b"21.5", 21.5),
        (b" 21.0\n", 21.0),
        (b"21.499", 21.5),  # within the step tolerance: snapped
        (b"7", 7.0),
        (b"26", 26.0),
        (b"6.995", 7.0),
    ],
)
def test_target_ok(payload: bytes, expected: float) -> None:
    assert room("target", payload) == ha.SetTarget(expected)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"21.3", "multiple of 0.5"),
        (b"30", "outside"),
        (b"6.5", "outside"),
        (b"nan", "number"),
        (b"warm", "number"),
        (b"", "number"),
        (b"\xff", "number"),
        (b"1e999", "number"),
    ],
)
def test_target_rejected(payload: bytes, fragment: str) -> None:
    r = room("target", payload)
    assert isinstance(r, ha.Rejected) and fragment in r.reason


def test_mode() -> None:
    assert room("mode", b"heat") == ha.SetMode("heat")
    assert room("mode", b"off") == ha.SetMode("off")
    assert room("mode", b"OFF\n") == ha.SetMode("off")
    for bad in (b"cool", b"auto", b"", b"\xfe"):
        assert isinstance(room("mode", bad), ha.Rejected)


def test_preset() -> None:
    assert room("preset", b"eco") == ha.SetPreset("eco")
    assert room("preset", b"none") == ha.SetPreset(None)
    r = room("preset", b"party")
    assert isinstance(r, ha.Rejected) and "comfort" in r.reason
    assert isinstance(room("preset", b"Eco"), ha.Rejected)  # preset names are exact


def test_override() -> None:
    until = NOW + timedelta(hours=2)
    assert room("override", b'{"temp": 22, "until": "next_block"}') == ha.SetOverride(22.0, None)
    assert room("override", b'{"temp": 22.5}') == ha.SetOverride(22.5, None)
    got = room("override", f'{{"temp": 19, "until": "{until.isoformat()}"}}'.encode())
    assert got == ha.SetOverride(19.0, until)
    assert room("override", b"cancel") == ha.SetOverride(None)
    assert room("override", b'"cancel"') == ha.SetOverride(None)
    assert room("override", b"CANCEL") == ha.SetOverride(None)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'{"temp": 40}', "outside"),
        (b'{"temp": 21.2}', "multiple"),
        (b'{"temp": true}', "numeric temp"),
        (b'{"temp": "21"}', "numeric temp"),
        (b'{"temp": NaN}', "finite"),
        (b'{"temp": 1e999}', "finite"),
        (b'{"temp": ' + b"9" * 400 + b"}", "too large"),
        (b'{"until": "next_block"}', "numeric temp"),
        (b'{"temp": 21, "untill": "next_block"}', "unknown override key"),
        (b'{"temp": 21, "until": "tomorrow"}', "is not a time"),
        (b'{"temp": 21, "until": "25:00"}', "not a time of day"),
        (b'{"temp": 21, "until": "2026-01-05T10:00:00+00:00"}', "in the past"),
        (b'{"temp": 21, "until": "2026-01-05T10:00:00"}', "in the past"),
        (b'{"temp": 21, "until": "2028-01-05T10:00:00"}', "more than a year"),
        (b'{"temp": 21, "until": 5}', "until must be a time"),
        (b'{"temp": 21, "for": "2 fortnights"}', "invalid duration"),
        (b'{"temp": 21, "for": -5}', "not negative"),
        (b'{"temp": 21, "for": 0}', "longer than 0"),
        (b'{"temp": 21, "for": "2h", "until": "18:30"}', "not both"),
        (b"[21]", "JSON object"),
        (b"21", "JSON object"),
        (b"{", "cancel"),
        (b"", "cancel"),
        (b"[" * 3000, "too long"),
        (b"[" * 400, "cancel"),
    ],
)
def test_override_rejected(payload: bytes, fragment: str) -> None:
    r = room("override", payload)
    assert isinstance(r, ha.Rejected), r
    assert fragment in r.reason


def test_unknown_room_command() -> None:
    assert isinstance(room("boost", b"1"), ha.Rejected)


def test_heater_commands() -> None:
    ladder = MINI3.level_names
    assert ha.parse_heater_command("level", b"auto", ladder) == ha.SetLevel("auto")
    assert ha.parse_heater_command("level", b"super", ladder) == ha.SetLevel("super")
    assert ha.parse_heater_command("level", b"standby", ladder) == ha.SetLevel("standby")
    assert ha.parse_heater_command("level", b"SUPER", ladder) == ha.SetLevel("super")
    assert isinstance(ha.parse_heater_command("level", b"high", ladder), ha.Rejected)
    nano = NANO3S.level_names
    assert isinstance(ha.parse_heater_command("level", b"standby", nano, has_standby=False), ha.Rejected)
    assert ha.parse_heater_command("controlled", b"ON", ladder) == ha.SetControlled(True)
    assert ha.parse_heater_command("controlled", b"off", ladder) == ha.SetControlled(False)
    assert isinstance(ha.parse_heater_command("controlled", b"maybe", ladder), ha.Rejected)
    assert ha.parse_heater_command("reboot", b"PRESS", ladder) == ha.Reboot()
    assert isinstance(ha.parse_heater_command("reboot", b"", ladder), ha.Rejected)
    assert isinstance(ha.parse_heater_command("explode", b"PRESS", ladder), ha.Rejected)
    assert isinstance(ha.parse_heater_command("level", b"x" * 10_000, ladder), ha.Rejected)


def test_parse_command_routes_by_topic() -> None:
    t = ha.Topics("thermostat")
    rooms = {"living": ha.RoomInfo("living", "Living", 7, 26, PRESETS)}
    heaters = {"m": ha.HeaterInfo("m", "M", "living", "mini3", MINI3.level_names)}
    assert ha.parse_command("thermostat/room/living/target/set", b"21", t, rooms, heaters) == (
        "living",
        ha.SetTarget(21.0),
    )
    got = ha.parse_command("thermostat/heater/m/level/set", b"eco", t, rooms, heaters)
    assert got == ("living", ha.SetLevel("eco"))
    owner, r = ha.parse_command("thermostat/heater/m/level/set", b"turbo", t, rooms, heaters)
    assert owner == "living" and isinstance(r, ha.Rejected)  # the error goes to the heater's room
    assert ha.parse_command("thermostat/room/attic/target/set", b"21", t, rooms, heaters)[0] is None
    assert isinstance(ha.parse_command("thermostat/room/living/target", b"21", t, rooms, heaters)[1], ha.Rejected)
    assert isinstance(ha.parse_command("thermostat/heater/x/level/set", b"eco", t, rooms, heaters)[1], ha.Rejected)


@settings(max_examples=300, deadline=None)
@given(
    what=st.sampled_from(["target", "mode", "preset", "override", "level", "controlled", "reboot", "x"]),
    payload=st.one_of(
        st.binary(max_size=100),
        st.builds(
            lambda t, u: f'{{"temp": {t}, "until": {u}}}'.encode(),
            st.one_of(st.floats(), st.integers(), st.text(max_size=5).map(repr)),
            st.one_of(
                st.just('"next_block"'), st.text(max_size=30).map(lambda s: '"' + s + '"'), st.integers().map(str)
            ),
        ),
    ),
)
def test_never_raises(what: str, payload: bytes) -> None:
    r1 = ha.parse_room_command(what, payload, 7.0, 26.0, PRESETS, NOW)
    r2 = ha.parse_heater_command(what, payload, MINI3.level_names)
    for r in (r1, r2):
        assert isinstance(
            r,
            ha.Rejected | ha.SetTarget | ha.SetMode | ha.SetPreset | ha.SetOverride | ha.SetLevel | ha.SetControlled
            | ha.Reboot,
        )
        if isinstance(r, ha.SetTarget):
            assert 7.0 <= r.temp <= 26.0 and (r.temp * 2).is_integer()
        if isinstance(r, ha.SetOverride) and r.temp is not None:
            assert 7.0 <= r.temp <= 26.0
            assert r.until is None or r.until > NOW
