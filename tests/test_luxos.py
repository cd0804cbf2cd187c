"""LuxOS protocol module: command building, validation, the guard, parsing, the session dance."""

from __future__ import annotations

import json

import pytest

from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import MinerState
from thermostat.miners import luxos
from thermostat.miners.avalon import Request, decode_reply, encode_json
from thermostat.miners.errors import ForbiddenCommand, InvalidValue, MalformedReply, Unsupported
from thermostat.miners.models import LUXOS_S21
from thermostat.miners.protocols import SessionCache, execute_sync, protocol_for
from thermostat.sim.luxos import LuxOSSim

SPEC = LUXOS_S21


def reply(sections: dict[str, object], status: str = "S", msg: str = "ok", when: int = 1_767_225_600) -> bytes:
    body = {"STATUS": [{"STATUS": status, "When": when, "Code": 0, "Msg": msg, "Description": "LUXminer"}]}
    body.update(sections)  # type: ignore[arg-type]
    return json.dumps(body).encode() + b"\x00"


def cmd(kind: CommandKind, **kw: object) -> Command:
    return Command("h", kind, **kw)  # type: ignore[arg-type]


def test_family_registry() -> None:
    assert protocol_for(SPEC).name == "luxos"
    assert SPEC.family == "luxos" and len(SPEC.fw_profiles) == len(SPEC.levels)


def test_control_requests_carry_the_session_first() -> None:
    off = luxos.requests_for(cmd(CommandKind.SOFT_OFF, at_miner_time=123), SPEC, "ABC123")
    on = luxos.requests_for(cmd(CommandKind.SOFT_ON, at_miner_time=None), SPEC, "ABC123")
    assert [str(r) for r in off + on] == ["curtail|ABC123,sleep", "curtail|ABC123,wakeup"]
    lv = luxos.requests_for(cmd(CommandKind.SET_LEVEL, level="stock"), SPEC, "ABC123")
    assert str(lv[0]) == "profileset|ABC123,default"
    assert json.loads(encode_json(lv[0])) == {"command": "profileset", "parameter": "ABC123,default"}


def test_validation() -> None:
    with pytest.raises(InvalidValue):
        luxos.requests_for(cmd(CommandKind.SET_LEVEL, level="turbo"), SPEC)
    with pytest.raises(InvalidValue):
        luxos.requests_for(cmd(CommandKind.SET_LEVEL, level="stock"), SPEC, "bad,id")
    with pytest.raises(InvalidValue):
        luxos.profileset_request("ABC", "x,reboot")
    with pytest.raises(InvalidValue):
        luxos.requests_for(cmd(CommandKind.SET_FAN, fan_pct=500), SPEC)
    with pytest.raises(Unsupported):
        luxos.requests_for(cmd(CommandKind.REBOOT), SPEC)
    with pytest.raises(Unsupported):
        luxos.requests_for(cmd(CommandKind.PLUG_ON), SPEC)


def test_guard_still_refuses_pool_commands() -> None:
    with pytest.raises(ForbiddenCommand):
        Request("addpool", "SID,stratum+tcp://evil,me,x")
    with pytest.raises(ForbiddenCommand):
        Request("summary+switchpool")
    for kind in CommandKind:
        try:
            requests = luxos.requests_for(cmd(kind, level="eco", fan_pct=-1, at_miner_time=1), SPEC)
        except (InvalidValue, Unsupported):
            continue
        assert all(r.command in ("summary", "config", "devdetails", "power", "temps", "fans", "curtail",
                                 "profileset") for r in requests)


def poll_replies(curtail: str = "None", ghs: float = 200_000.0, profile: str = "default") -> dict[str, bytes]:
    return {
        "summary": reply({"SUMMARY": [{"Elapsed": 500, "GHS 5s": ghs, "GHS av": 199_000.0}]}),
        "config": reply({"CONFIG": [{"CurtailMode": curtail, "Profile": profile}]}),
        "devdetails": reply({"DEVDETAILS": [{"Model": "Antminer S21", "Profile": profile} for _ in range(3)]}),
        "power": reply({"POWER": [{"Watts": 3480}]}),
        "temps": reply({"TEMPS": [{"ID": 0, "Board": 55.0, "Chip": 71.5}, {"ID": 1, "Board": 57, "Chip": 73}]}),
        "fans": reply({"FANS": [{"ID": i, "RPM": 5000 + i, "Speed": 70} for i in range(4)]}),
    }


def run(command: Command, answers: dict[str, bytes], session: SessionCache | None = None) -> tuple[object, list[str]]:
    sent: list[str] = []

    def send(request: Request) -> bytes:
        sent.append(str(request))
        return answers.get(request.command, reply({}, "E", "Invalid command"))

    return execute_sync(send, command, SPEC, session=session), sent


def test_poll_parses_mining_profile_and_sensors() -> None:
    out, sent = run(cmd(CommandKind.POLL), poll_replies())
    snap = out.snapshot  # type: ignore[attr-defined]
    assert sent == ["summary", "config", "devdetails", "power", "temps", "fans"]
    assert snap.state == MinerState.MINING and snap.model == "luxos-s21"
    assert (snap.workmode, snap.worklevel) == (2, 0) and SPEC.level_for(2, 0).name == "stock"
    assert snap.power_w == 3480 and snap.hashrate_ths == 200.0
    assert snap.chip_temp_max_c == 73 and snap.board_temp_c == 57 and snap.fan_rpm == 5003 and snap.fan_pct == 70
    assert snap.uptime_s == 500 and snap.miner_time == 1_767_225_600 and snap.calibrated is None


def test_poll_state_derivation_and_unknown_profile() -> None:
    snap = run(cmd(CommandKind.POLL), poll_replies(curtail="Sleep", ghs=0))[0].snapshot  # type: ignore[attr-defined]
    assert snap.state == MinerState.STANDBY
    snap = run(cmd(CommandKind.POLL), poll_replies(ghs=0, profile="999MHz"))[0].snapshot  # type: ignore[attr-defined]
    assert snap.state == MinerState.STARTING and snap.workmode is None


def test_poll_optional_parts_may_fail_required_may_not() -> None:
    answers = poll_replies()
    for name in ("power", "temps", "fans"):
        del answers[name]
    out, _ = run(cmd(CommandKind.POLL), answers)
    assert out.kind == OutcomeKind.OK and out.snapshot.power_w is None  # type: ignore[attr-defined]
    answers = poll_replies()
    answers["config"] = b"\x8b garbage"
    out, sent = run(cmd(CommandKind.POLL), answers)
    assert out.kind == OutcomeKind.MALFORMED and sent == ["summary", "config"]  # type: ignore[attr-defined]
    with pytest.raises(MalformedReply):
        luxos.parse_poll({"summary": decode_reply(reply({"SUMMARY": []}))}, SPEC)


def test_session_dance_reuses_logs_on_and_retries() -> None:
    base = {"curtail": reply({"CURTAIL": [{"Action": "sleep"}]})}
    # an existing session is reused, no logon
    out, sent = run(cmd(CommandKind.SOFT_OFF), {**base, "session": reply({"SESSION": [{"SessionID": "S1"}]})})
    assert out.kind == OutcomeKind.OK and sent == ["session", "curtail|S1,sleep"]  # type: ignore[attr-defined]
    # none: logon
    out, sent = run(cmd(CommandKind.SOFT_OFF), {**base, "session": reply({"SESSION": [{"SessionID": ""}]}),
                                                "logon": reply({"SESSION": [{"SessionID": "S2"}]})})
    assert sent == ["session", "logon", "curtail|S2,sleep"]
    # a cached id skips the reads; an expired one is refused once, then the dance runs again
    cache = SessionCache("OLD")
    calls = iter([reply({}, "E", "Invalid session id"), reply({"CURTAIL": [{}]})])
    answers = {"session": reply({"SESSION": [{"SessionID": "NEW"}]})}
    sent = []

    def send(request: Request) -> bytes:
        sent.append(str(request))
        return answers[request.command] if request.command == "session" else next(calls)

    out = execute_sync(send, cmd(CommandKind.SOFT_ON), SPEC, session=cache)
    assert out.kind == OutcomeKind.OK and cache.session_id == "NEW"
    assert sent == ["curtail|OLD,wakeup", "session", "curtail|NEW,wakeup"]


def test_logon_refused_or_hostile_session_id() -> None:
    out, _ = run(cmd(CommandKind.SOFT_OFF), {"session": reply({"SESSION": [{"SessionID": ""}]}),
                                             "logon": reply({}, "E", "Another session is already active")})
    assert out.kind == OutcomeKind.REFUSED  # type: ignore[attr-defined]
    out, sent = run(cmd(CommandKind.SOFT_OFF), {"session": reply({"SESSION": [{"SessionID": "x,reboot"}]}),
                                                "logon": reply({"SESSION": [{"SessionID": "a|setpool"}]})})
    assert out.kind == OutcomeKind.MALFORMED and sent == ["session", "logon"]  # type: ignore[attr-defined]


def test_fan_commands_send_nothing() -> None:
    out, sent = run(cmd(CommandKind.SET_FAN, fan_pct=-1), {})
    assert out.kind == OutcomeKind.OK and sent == []  # type: ignore[attr-defined]
    out, sent = run(cmd(CommandKind.SET_FAN, fan_pct=60), {})
    assert out.kind == OutcomeKind.REFUSED and sent == []  # type: ignore[attr-defined]


def test_simulator_requires_a_session_and_sleeps_wakes() -> None:
    t = [1_767_225_600.0]
    sim = LuxOSSim(SPEC, time_fn=lambda: t[0], start_state="mining", boot_seconds=40, calibration_seconds=20)

    def ask(command: str, param: str | None = None) -> dict[str, object]:
        raw = sim.handle(encode_json(Request(command, param)))
        assert raw is not None and raw.endswith(b"\x00")
        return json.loads(raw[:-1])  # type: ignore[no-any-return]

    assert ask("curtail", "nope,sleep")["STATUS"][0]["STATUS"] == "E"  # type: ignore[index]
    sid = ask("logon")["SESSION"][0]["SessionID"]  # type: ignore[index]
    assert ask("logon")["STATUS"][0]["STATUS"] == "E"  # type: ignore[index]  # single session
    assert ask("session")["SESSION"][0]["SessionID"] == sid  # type: ignore[index]
    ask("curtail", f"{sid},sleep")
    assert not sim.hashing and sim.wall_w == SPEC.standby_wall_w
    ask("profileset", f"{sid},385MHz")
    assert sim.level_name == "eco" and sim.mode_changes == 1
    ask("curtail", f"{sid},wakeup")
    t[0] += 30
    assert not sim.hashing and sim.wakes == 1
    t[0] += 40
    assert sim.hashing and sim.calibrated and sim.wall_w == pytest.approx(2200)
    assert ask("profileset", f"{sid},bogus")["STATUS"][0]["STATUS"] == "E"  # type: ignore[index]
    raw = sim.handle(json.dumps({"command": "addpool", "parameter": f"{sid},x,y,z"}).encode())
    assert raw is not None and decode_reply(raw).code == 45  # the sim refuses what the guard never sends
    t[0] += 601  # idle session expires
    assert ask("session")["SESSION"][0]["SessionID"] == ""  # type: ignore[index]
    text = sim.handle(b"summary")
    assert text is not None and text.startswith(b"STATUS=S") and decode_reply(text).sections["SUMMARY"]
