"""Pure protocol tests for thermostat.miners.avalon, asserted against real miner replies."""

from __future__ import annotations

import dataclasses
import json

import pytest
import replay_server as rs

from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import MinerState
from thermostat.miners import avalon
from thermostat.miners.avalon import (
    Request,
    decode_reply,
    derive_state,
    encode_json,
    encode_text,
    interpret,
    parse_mm_string,
    parse_stats,
    parse_version,
    requests_for,
)
from thermostat.miners.errors import (
    Busy,
    ForbiddenCommand,
    InvalidValue,
    MalformedReply,
    MinerTimeout,
    Refused,
    Unreachable,
    Unsupported,
)
from thermostat.miners.models import MINI3, NANO3S, Q
from thermostat.miners.protocols import execute_sync


def b(text: str) -> bytes:
    return text.encode() + b"\x00"


def stats_with(mm: str, when: int = 1765004000) -> bytes:
    return json.dumps(rs.status_reply("S", 70, "CGMiner stats", when, STATS=[{"STATS": 0, "ID": "AVALON0",
                                                                                "MM ID0": mm}])).encode()


# ---------------------------------------------------------------- wire encoding


def test_encode_both_forms() -> None:
    req = Request("ascset", "0,softoff,1:1753434821")
    assert json.loads(encode_json(req)) == {"command": "ascset", "parameter": "0,softoff,1:1753434821"}
    assert encode_text(req) == b"ascset|0,softoff,1:1753434821"
    assert encode_json(Request("version")) == b'{"command":"version"}'
    assert encode_text(Request("version")) == b"version"


@pytest.mark.parametrize("cmd", [*sorted(avalon.FORBIDDEN_COMMANDS), "summary+setpool", "addpool+version"])
def test_pool_commands_are_forbidden(cmd: str) -> None:
    with pytest.raises(ForbiddenCommand):
        Request(cmd, "0")


@pytest.mark.parametrize("cmd", ["SETPOOL", "set pool", "version|x", "", "ascset\n", "../", '{"command":"x"}'])
def test_odd_command_names_are_forbidden(cmd: str) -> None:
    with pytest.raises(ForbiddenCommand):
        Request(cmd)


def test_encoder_guards_even_a_smuggled_request() -> None:
    req = object.__new__(Request)
    object.__setattr__(req, "command", "setpool")
    object.__setattr__(req, "parameter", "admin,pw,0,stratum+tcp://evil:3333,u,p")
    with pytest.raises(ForbiddenCommand):
        encode_json(req)
    with pytest.raises(ForbiddenCommand):
        encode_text(req)


def test_parameter_cannot_carry_a_second_request() -> None:
    with pytest.raises(ForbiddenCommand):
        Request("ascset", "0,fan-spd,50|setpool")
    with pytest.raises(ForbiddenCommand):
        Request("ascset", "0,fan-spd,50\x00")


# ---------------------------------------------------------------- decoding


def test_decode_strips_nul_and_reads_status() -> None:
    reply = decode_reply(rs.Q_ASCSET_SOFTOFF_JSON.encode() + b"\x00")
    assert (reply.status, reply.code, reply.when) == ("I", 118, 1753434816)
    assert reply.msg == "ASC 0 set info: success softoff:1753434821"


def test_decode_text_version() -> None:
    reply = decode_reply(b(rs.MINI3_VERSION_TEXT))
    assert reply.form == "text" and reply.status == "S" and reply.code == 22 and reply.when == 1742265580
    assert reply.sections["VERSION"][0]["MAC"] == "e0e1a93e2c7d"


def test_decode_text_stats_keeps_mm_value_with_commas_and_later_keys() -> None:
    mm = rs.NANO3S_MM_ID0
    text = ("STATUS=S,When=5,Code=70,Msg=CGMiner stats,Description=cgminer 4.11.1|STATS=0,ID=AVALON0,Elapsed=1,"
            f"MM ID0={mm},MM Count=1,Nonce Mask=25|STATS=1,ID=POOL0,Pool Av=0.000000|")
    reply = decode_reply(b(text))
    first, second = reply.sections["STATS"]
    assert first["MM ID0"] == mm
    assert first["MM Count"] == "1" and first["Nonce Mask"] == "25"
    assert second["ID"] == "POOL0"


def test_decode_text_escapes_and_stray_commas() -> None:
    reply = decode_reply(b(r"STATUS=S,When=1,Code=7,Msg=1 Pool(s),Description=x|POOL=0,URL=a\,b\|c,User=u,v|"))
    pool = reply.sections["POOL"][0]
    assert pool["URL"] == "a,b|c"
    assert pool["User"] == "u,v"  # an unescaped comma inside an ordinary value is glued back


def test_decode_json_with_firmware_defects() -> None:
    raw = b'{"STATUS":[{"STATUS":"S","When":1,"Code":11,"Msg":"Summary"}],"SUMMARY":[{"MHS av":inf,"x":nan}]}junk\x00'
    reply = decode_reply(raw)
    assert reply.sections["SUMMARY"][0]["MHS av"] is None


@pytest.mark.parametrize("raw", [b"", b"\x00", b"   ", b"{", b"[]", b'{"id":1}', b"hello", b'{"STATUS":[1]}',
                                 b"Msg=x|", b'{"STATUS":[{"When":1}]}'])
def test_decode_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedReply):
        decode_reply(raw)


# ---------------------------------------------------------------- MM string


def test_mm_string_keys_with_spaces_and_values_with_commas() -> None:
    mm = parse_mm_string("SYSTEMSTATU[Work: In Work, Hash Board: 1] Nonce Mask[25] PS[0 1 2] FACOPTS0[]")
    assert mm == {"SYSTEMSTATU": "Work: In Work, Hash Board: 1", "Nonce Mask": "25", "PS": "0 1 2", "FACOPTS0": ""}


def test_mm_string_unwraps_q_and_drops_truncated_tail() -> None:
    assert parse_mm_string("'STATS':{Ver[Q-1] ADJ[1]}") == {"Ver": "Q-1", "ADJ": "1"}
    assert parse_mm_string("A[1] PS[0 1210 20") == {"A": "1"}
    assert parse_mm_string("A[1] PCOMM...") == {"A": "1"}


# ---------------------------------------------------------------- version


def test_versions_identify_models() -> None:
    mini3 = parse_version(decode_reply(b(rs.MINI3_VERSION_TEXT)))
    assert mini3.spec is MINI3 and mini3.firmware == "25011701_3f53b19" and mini3.mac == "e0e1a93e2c7d"
    assert mini3.dna == "020100008644e532" and mini3.miner_time == 1742265580
    assert parse_version(decode_reply(b(rs.NANO3S_VERSION_JSON))).spec is NANO3S
    q = parse_version(decode_reply(b(rs.Q_VERSION_JSON)))
    assert q.spec is Q and q.firmware == "25052801_14a19a2"
    a1566 = parse_version(decode_reply(b(rs.A1566_VERSION_JSON)))
    assert a1566.spec is None and a1566.prod == "AvalonMiner 15-194" and a1566.is_avalon


def test_version_text_form_round_trip() -> None:
    text = rs.render_text(rs.sample_reply(rs.Q_VERSION_JSON))
    assert parse_version(decode_reply(b(text))).spec is Q


def test_version_without_section_is_malformed() -> None:
    with pytest.raises(MalformedReply):
        parse_version(decode_reply(b(rs.Q_ASCSET_WORKMODE_SET_JSON)))


# ---------------------------------------------------------------- stats → Snapshot


def test_mini3_text_stats_partial() -> None:
    snap = parse_stats(decode_reply(b(rs.MINI3_STATS_PARTIAL_TEXT)))
    assert snap.state == MinerState.MINING
    assert snap.power_w == 824 and snap.dc_power_w == 760  # PS[6] wall, PS[4] DC; never PS[1]=1210
    assert snap.model == "mini3" and snap.firmware == "25011701_3f53b19" and snap.dna == "020100008644e532"
    assert (snap.inlet_temp_c, snap.outlet_temp_c, snap.board_temp_c, snap.chip_temp_max_c) == (39, 63, 75, 86)
    assert (snap.fan_rpm, snap.fan_pct, snap.chip_target_c) == (3000, 100, 75)
    assert snap.uptime_s == 32273 and snap.miner_time == 1742265634
    assert snap.hashrate_ths is None and snap.workmode is None  # truncated before GHSspd/WORKMODE
    assert snap.extra["HashStatus"] == "0" and "PCOMM" not in "".join(snap.extra)


@pytest.mark.parametrize("sample", [rs.Q_LITESTATS_STANDBY_JSON, rs.Q_STATS_STANDBY_JSON])
@pytest.mark.parametrize("form", ["json", "text"])
def test_q_standby(sample: str, form: str) -> None:
    obj = rs.sample_reply(sample)
    raw = json.dumps(obj) if form == "json" else rs.render_text(obj)
    snap = parse_stats(decode_reply(b(raw)))
    assert snap.state == MinerState.STANDBY
    assert snap.model == "q" and snap.workmode == 0 and snap.worklevel == 0
    assert snap.power_w == 146  # PS[6], reported as-is even though idle watts are unreliable
    assert snap.dc_power_w == 0 and snap.hashrate_ths == 0
    assert snap.soft_off_reason == 4 and snap.calibrated is True and snap.mpo_w == 800
    assert (snap.inlet_temp_c, snap.outlet_temp_c, snap.board_temp_c) == (26, 27, 27)  # ITemp, HBOTemp, HBITemp
    assert snap.fan_rpm == 0 and snap.fan_pct == 0 and snap.chip_target_c == 65
    assert snap.extra["Nonce Mask"] == "25" and "GHSavg" in snap.extra and "PS" not in snap.extra


def test_nano3s_estats() -> None:
    snap = parse_stats(decode_reply(stats_with(rs.NANO3S_MM_ID0)))
    assert snap.state == MinerState.MINING and snap.model == "nano3s"
    assert snap.power_w == 133 and snap.dc_power_w is None  # Nano 3S PS layout: PS[1]=PS[4]=0
    assert snap.inlet_temp_c is None  # ITemp[-273]: no sensor
    assert snap.outlet_temp_c == 65 and snap.fan_pct == 33 and snap.fan_rpm == 1520
    assert snap.calibrated is True and snap.workmode == 2 and snap.worklevel == 0
    assert snap.hashrate_ths == pytest.approx(6.59884)
    assert snap.as_json()["inlet_temp_c"] is None


def test_stats_refused_and_missing() -> None:
    with pytest.raises(Refused):
        parse_stats(decode_reply(json.dumps(rs.invalid_command()).encode()))
    with pytest.raises(MalformedReply):
        parse_stats(decode_reply(b(rs.Q_POOLS_JSON)))
    with pytest.raises(MalformedReply):  # no state at all
        parse_stats(decode_reply(stats_with("Ver[Mini3-1] PS[0 1 2 3 4 5 6]")))


@pytest.mark.parametrize(
    ("mm", "state"),
    [
        ({"SYSTEMSTATU": "Work: In Work, Hash Board: 1", "GHSspd": "37000.1"}, MinerState.MINING),
        ({"SYSTEMSTATU": "Work: In Work, Hash Board: 1", "GHSspd": "0.00"}, MinerState.STARTING),
        ({"SYSTEMSTATU": "Work: In Init, Hash Board: 1", "GHSspd": "0.00"}, MinerState.STARTING),
        ({"SYSTEMSTATU": "Work: In Idle, Hash Board: 1", "GHSavg": "44000", "GHSmm": "55000"}, MinerState.STANDBY),
        ({"SYSTEMSTATU": "Work: In Fault, Hash Board: 1", "GHSspd": "100"}, MinerState.FAULT),
        ({"STATE": "3"}, MinerState.FAULT),
        ({"STATE": "2", "GHSspd": "10"}, MinerState.STANDBY),
        ({"STATE": "0"}, MinerState.STARTING),
        ({"STATE": "1", "GHSspd": "5"}, MinerState.MINING),
        ({"SoftOFF": "4", "GHSspd": "0"}, MinerState.STANDBY),
        ({"SoftOFF": "4", "SYSTEMSTATU": "Work: In Work", "GHSspd": "5"}, MinerState.MINING),
        ({"SoftOFF": "0", "GHSspd": "0.00"}, MinerState.STARTING),
        ({"GHSspd": "12.5"}, MinerState.MINING),
    ],
)
def test_state_rule(mm: dict[str, str], state: MinerState) -> None:
    assert derive_state(mm) == state


@pytest.mark.parametrize("mm", [{}, {"GHSavg": "44000"}, {"GHSspd": "0"}, {"SYSTEMSTATU": "whatever"}])
def test_state_rule_unknown(mm: dict[str, str]) -> None:
    with pytest.raises(MalformedReply):
        derive_state(mm)


# ---------------------------------------------------------------- commands → requests


def cmd(kind: CommandKind, **kw: object) -> Command:
    return Command("h", kind, **kw)  # tests pass hostile values on purpose


def params(reqs: list[Request]) -> list[str]:
    return [str(r) for r in reqs]


def test_requests_for_each_kind() -> None:
    assert params(requests_for(cmd(CommandKind.POLL), MINI3)) == ["litestats"]
    assert params(requests_for(cmd(CommandKind.SET_LEVEL, level="eco"), MINI3)) == [
        "ascset|0,workmode,set,0", "ascset|0,worklevel,set,-1"]
    assert params(requests_for(cmd(CommandKind.SET_LEVEL, level="high"), NANO3S)) == [
        "ascset|0,workmode,set,2", "ascset|0,worklevel,set,0"]
    assert params(requests_for(cmd(CommandKind.SET_FAN, fan_pct=80), Q)) == ["ascset|0,fan-spd,80"]
    assert params(requests_for(cmd(CommandKind.SET_FAN, fan_pct=-1), Q)) == ["ascset|0,fan-spd,-1"]
    assert params(requests_for(cmd(CommandKind.SOFT_OFF, at_miner_time=1753434821), Q)) == [
        "ascset|0,softoff,1:1753434821"]
    assert params(requests_for(cmd(CommandKind.SOFT_ON, at_miner_time=1753434757), MINI3)) == [
        "ascset|0,softon,1:1753434757"]
    assert params(requests_for(cmd(CommandKind.REBOOT), MINI3)) == ["ascset|0,reboot,0"]
    assert str(avalon.reboot_request(300)) == "ascset|0,reboot,300"
    with_led = dataclasses.replace(Q, has_locate_led=True)  # an A-series style locate LED (no home model has one)
    assert str(avalon.led_request(with_led, True)) == "ascset|0,led,1-1"
    assert str(avalon.led_request(with_led, False)) == "ascset|0,led,1-0"
    with pytest.raises(Unsupported):
        avalon.led_request(Q, True)  # the Q's own help list has no `led` (issue 16)
    assert str(avalon.lcd_request(MINI3, True)) == "ascset|0,lcd,0:1"
    assert str(avalon.lcd_request(MINI3, False)) == "ascset|0,lcd,0:0"


@pytest.mark.parametrize(
    "command",
    [
        cmd(CommandKind.SET_LEVEL, level="high"),  # a Nano 3S level, not a Mini 3 one
        cmd(CommandKind.SET_LEVEL, level="eco,1"),
        cmd(CommandKind.SET_LEVEL, level=None),
        cmd(CommandKind.SET_FAN, fan_pct=14),
        cmd(CommandKind.SET_FAN, fan_pct=101),
        cmd(CommandKind.SET_FAN, fan_pct=0),
        cmd(CommandKind.SET_FAN, fan_pct=True),
        cmd(CommandKind.SET_FAN, fan_pct=50.0),
        cmd(CommandKind.SET_FAN, fan_pct="50"),
        cmd(CommandKind.SET_FAN, fan_pct="50,reboot,0"),
        cmd(CommandKind.SET_FAN, fan_pct=None),
        cmd(CommandKind.SOFT_OFF, at_miner_time=0),
        cmd(CommandKind.SOFT_OFF, at_miner_time=-5),
        cmd(CommandKind.SOFT_OFF, at_miner_time="1753434821|setpool"),
        cmd(CommandKind.SOFT_OFF, at_miner_time=1753434821.5),
        cmd(CommandKind.SOFT_ON, at_miner_time=None),
        cmd(CommandKind.SOFT_ON, at_miner_time=10**12),
    ],
)
def test_invalid_values_raise_before_sending(command: Command) -> None:
    sent: list[Request] = []

    def send(req: Request) -> bytes:
        sent.append(req)
        return b(rs.Q_ASCSET_WORKMODE_SET_JSON)

    with pytest.raises(InvalidValue):
        requests_for(command, MINI3)
    with pytest.raises(InvalidValue):
        execute_sync(send, command, MINI3)
    assert sent == []


def test_other_bad_values() -> None:
    for bad in (-1, 301, "5", True, 1.0):
        with pytest.raises(InvalidValue):
            avalon.reboot_request(bad)
    with pytest.raises(InvalidValue):
        avalon.led_request(dataclasses.replace(Q, has_locate_led=True), 1)
    with pytest.raises(InvalidValue):
        avalon.ascset("fan-spd", "50,reboot")


def test_unsupported() -> None:
    with pytest.raises(Unsupported):
        requests_for(cmd(CommandKind.SOFT_OFF, at_miner_time=1753434821), NANO3S)
    with pytest.raises(Unsupported):
        requests_for(cmd(CommandKind.SOFT_ON, at_miner_time=1753434821), NANO3S)
    with pytest.raises(Unsupported):
        avalon.led_request(MINI3, True)
    with pytest.raises(Unsupported):
        requests_for(cmd(CommandKind.PLUG_ON), MINI3)


# ---------------------------------------------------------------- replies → Outcome


BUSY_MSG = "ASC 0 set failed: current mode 0 is caling Don't permit switch mode"


def test_interpret_outcomes() -> None:
    off = cmd(CommandKind.SOFT_OFF, at_miner_time=1753434821)
    on = cmd(CommandKind.SOFT_ON, at_miner_time=1753434757)
    level = cmd(CommandKind.SET_LEVEL, level="eco")
    assert interpret(off, [b(rs.Q_ASCSET_SOFTOFF_JSON)]).kind == OutcomeKind.OK
    assert interpret(on, [b(rs.Q_ASCSET_SOFTON_JSON)]).kind == OutcomeKind.OK
    assert interpret(level, [b(rs.Q_ASCSET_WORKMODE_SET_JSON)] * 2).kind == OutcomeKind.OK
    busy = interpret(level, [json.dumps(rs.status_reply("E", 120, BUSY_MSG)).encode()])
    assert busy.kind == OutcomeKind.BUSY and "caling" in busy.message
    refused = interpret(level, [json.dumps(rs.invalid_command()).encode()])
    assert refused.kind == OutcomeKind.REFUSED and refused.message == "Invalid command"
    # I/118 carrying failure text is not a success
    assert interpret(level, [json.dumps(rs.status_reply("I", 118, "ASC 0 set info: invalid value")).encode()]).kind \
        == OutcomeKind.REFUSED
    assert interpret(on, [b""]).kind == OutcomeKind.UNCONFIRMED
    assert interpret(off, [b""]).kind == OutcomeKind.MALFORMED
    assert interpret(level, [b"garbage"]).kind == OutcomeKind.MALFORMED


def test_busy_is_a_refusal_with_text() -> None:
    with pytest.raises(Busy) as info:
        avalon.check_status(decode_reply(json.dumps(rs.status_reply("E", 120, BUSY_MSG)).encode()))
    assert isinstance(info.value, Refused) and info.value.code == 120 and "retry later" in str(info.value)


class FakeMiner:
    """A synchronous `send` for execute_sync: canned replies by request string, or exceptions."""

    def __init__(self, replies: dict[str, object]) -> None:
        self.replies = replies
        self.sent: list[str] = []

    def __call__(self, req: Request) -> bytes:
        self.sent.append(str(req))
        answer = self.replies.get(str(req), self.replies.get(req.command, rs.invalid_command()))
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, dict):
            return json.dumps(answer).encode() + b"\x00"
        assert isinstance(answer, str | bytes)
        return answer if isinstance(answer, bytes) else answer.encode() + b"\x00"


def test_execute_sync_set_level_sequential_and_first_refusal_stops() -> None:
    miner = FakeMiner({"ascset|0,workmode,set,0": rs.set_ok(), "ascset|0,worklevel,set,-1": rs.set_ok()})
    assert execute_sync(miner, cmd(CommandKind.SET_LEVEL, level="eco"), MINI3).kind == OutcomeKind.OK
    assert miner.sent == ["ascset|0,workmode,set,0", "ascset|0,worklevel,set,-1"]
    busy = FakeMiner({"ascset|0,workmode,set,0": rs.status_reply("E", 120, BUSY_MSG)})
    assert execute_sync(busy, cmd(CommandKind.SET_LEVEL, level="eco"), MINI3).kind == OutcomeKind.BUSY
    assert busy.sent == ["ascset|0,workmode,set,0"]


def test_execute_sync_poll_falls_back_to_estats() -> None:
    miner = FakeMiner({"estats": rs.Q_STATS_STANDBY_JSON})
    outcome = execute_sync(miner, cmd(CommandKind.POLL), Q)
    assert outcome.kind == OutcomeKind.OK and outcome.snapshot is not None
    assert outcome.snapshot.state == MinerState.STANDBY
    assert miner.sent == ["litestats", "estats"]
    direct = FakeMiner({"litestats": rs.Q_LITESTATS_STANDBY_JSON})
    assert execute_sync(direct, cmd(CommandKind.POLL), Q).snapshot is not None
    assert direct.sent == ["litestats"]


@pytest.mark.parametrize(
    ("exc", "kind", "expected"),
    [
        (MinerTimeout("t", phase="read"), CommandKind.SOFT_OFF, OutcomeKind.TIMEOUT),
        (MinerTimeout("t", phase="read"), CommandKind.SOFT_ON, OutcomeKind.UNCONFIRMED),
        (MinerTimeout("t", phase="connect"), CommandKind.SOFT_ON, OutcomeKind.TIMEOUT),
        (TimeoutError(), CommandKind.POLL, OutcomeKind.TIMEOUT),
        (Unreachable("x"), CommandKind.POLL, OutcomeKind.UNREACHABLE),
        (ConnectionRefusedError(), CommandKind.SET_FAN, OutcomeKind.UNREACHABLE),
        (MalformedReply("x"), CommandKind.POLL, OutcomeKind.MALFORMED),
    ],
)
def test_execute_sync_maps_transport_errors(exc: BaseException, kind: CommandKind, expected: OutcomeKind) -> None:
    command = Command("h", kind, fan_pct=50, at_miner_time=1753434821)
    miner = FakeMiner({"litestats": exc, "ascset": exc})
    assert execute_sync(miner, command, Q).kind == expected


def test_text_status_message_with_commas() -> None:
    text = ("STATUS=E,When=9,Code=120,Msg=ASC 0 set failed: invalid fan value, valid range 15-100 for stable pwm,"
            "-1 for auto adjust,Description=cgminer 4.11.1|")
    reply = decode_reply(b(text))
    assert reply.msg == "ASC 0 set failed: invalid fan value, valid range 15-100 for stable pwm,-1 for auto adjust"
    assert reply.description == "cgminer 4.11.1" and reply.code == 120
    with pytest.raises(Refused):
        avalon.check_status(reply)
