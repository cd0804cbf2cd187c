"""Property tests: random, truncated and hostile replies raise nothing but the typed errors.

Decoding raises only MalformedReply; parsing a decoded reply raises only MalformedReply, or Refused when the
(garbage) reply happens to carry a non-success STATUS. Values that reach the wire are always plain tokens.
"""

from __future__ import annotations

import json
import math
import re

import replay_server as rs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import (
    Request,
    decode_reply,
    interpret,
    parse_mm_string,
    parse_stats,
    parse_version,
    requests_for,
)
from thermostat.miners.errors import InvalidValue, MalformedReply, Refused, Unsupported
from thermostat.miners.models import MODELS

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SAMPLES = [
    rs.MINI3_STATS_PARTIAL_TEXT.encode(),
    rs.Q_LITESTATS_STANDBY_JSON.encode(),
    rs.Q_STATS_STANDBY_JSON.encode(),
    rs.render_text(rs.sample_reply(rs.Q_LITESTATS_STANDBY_JSON)).encode(),
    json.dumps(rs.status_reply("S", 70, "CGMiner stats", STATS=[{"MM ID0": rs.NANO3S_MM_ID0}])).encode(),
    rs.MINI3_VERSION_TEXT.encode(),
    rs.Q_VERSION_JSON.encode(),
]

MM_ALPHABET = "[]{}' ,:|=-.%0123456789abcXYZ_\\\x00\n" + "SYSTEMSTATU Work In Idle Fault Init PS GHSspd SoftOFF STATE"


def check_snapshot(snap: Snapshot) -> None:
    for name in ("power_w", "dc_power_w", "hashrate_ths", "inlet_temp_c", "outlet_temp_c", "board_temp_c",
                 "chip_temp_max_c", "chip_target_c", "mpo_w"):
        value = getattr(snap, name)
        assert value is None or (isinstance(value, float) and math.isfinite(value)), (name, value)
    for name in ("workmode", "worklevel", "fan_rpm", "fan_pct", "uptime_s", "miner_time", "soft_off_reason"):
        value = getattr(snap, name)
        assert value is None or type(value) is int, (name, value)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in snap.extra.items())
    json.dumps(snap.as_json())


def parse_everything(raw: bytes) -> None:
    """Decode and parse as stats and as version; only the typed errors may come out."""
    try:
        reply = decode_reply(raw)
    except MalformedReply:
        return
    try:
        check_snapshot(parse_stats(reply))
    except (MalformedReply, Refused):
        pass
    try:
        parse_version(reply)
    except (MalformedReply, Refused):
        pass


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(raw: bytes) -> None:
    parse_everything(raw)


@SETTINGS
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_samples(sample: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(sample)))
    parse_everything(sample[:cut])
    parse_everything(sample[:cut] + b"\x00")


@SETTINGS
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_samples(sample: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(sample)))
    junk = data.draw(st.binary(max_size=20) | st.sampled_from([b"]", b"[", b",", b"|", b"=", b"{", b"}", b"\\", b'"']))
    drop = data.draw(st.integers(0, 30))
    parse_everything(sample[:pos] + junk + sample[pos + drop :])


@SETTINGS
@given(st.text(alphabet=MM_ALPHABET, max_size=300))
def test_hostile_mm_strings(mm: str) -> None:
    parsed = parse_mm_string(mm)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
    for form in ("json", "text"):
        obj = rs.status_reply("S", 70, "CGMiner stats", STATS=[{"STATS": 0, "MM ID0": mm}])
        raw = json.dumps(obj) if form == "json" else rs.render_text(obj)
        parse_everything(raw.encode())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(["STATUS", "STATS", "VERSION", "id", "x"]), JSON_VALUES, max_size=4),
    st.dictionaries(st.sampled_from(["STATUS", "When", "Code", "Msg", "Description"]), JSON_VALUES),
    st.dictionaries(st.sampled_from(["MM ID0", "MM ID0:Summary", "Elapsed", "MODEL", "PROD"]), JSON_VALUES),
)
def test_hostile_json_structures(top: dict[str, object], head: dict[str, object], entry: dict[str, object]) -> None:
    parse_everything(json.dumps(top).encode())
    parse_everything(json.dumps({"STATUS": [head], "STATS": [entry], "VERSION": [entry]}).encode())


@SETTINGS
@given(st.lists(st.text(alphabet="ab=,|\\[] SMID0STATUS", max_size=30), max_size=6))
def test_hostile_text_form(parts: list[str]) -> None:
    parse_everything(("STATUS=S,When=1,Code=70,Msg=x|" + "|".join(parts)).encode())
    parse_everything("|".join(parts).encode())


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(list(CommandKind)))
def test_interpret_never_raises(raw: bytes, kind: CommandKind) -> None:
    outcome = interpret(Command("h", kind, level="eco", fan_pct=50, at_miner_time=1), [raw])
    assert isinstance(outcome.kind, OutcomeKind)


ANY_VALUE = (
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True)
    | st.text(max_size=20) | st.sampled_from(["eco", "super", "high", "50,reboot,0", "1|setpool", "-1", "auto"])
)
SAFE_PARAM = re.compile(
    r"0,(workmode,set,\d|worklevel,set,-?\d|fan-spd,-?\d{1,3}|softo(n|ff),1:\d{1,10}|reboot,\d{1,3})"
)


@SETTINGS
@given(st.sampled_from(list(CommandKind)), st.sampled_from(list(MODELS.values())), ANY_VALUE, ANY_VALUE, ANY_VALUE)
def test_nothing_can_be_injected(kind: CommandKind, spec: ModelSpec, level: object, fan: object, ts: object) -> None:
    command = Command("h", kind, level=level, fan_pct=fan, at_miner_time=ts)
    try:
        requests = requests_for(command, spec)
    except (InvalidValue, Unsupported):
        return
    for req in requests:
        assert isinstance(req, Request)
        assert req.command in ("litestats", "ascset")
        assert req.parameter is None or SAFE_PARAM.fullmatch(req.parameter), req.parameter
