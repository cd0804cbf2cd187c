"""Braiins OS legacy API module: command building, validation, the guard, parsing, the simulator."""

from __future__ import annotations

import json

import pytest

from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState
from thermostat.miners import braiins
from thermostat.miners.avalon import Request, decode_reply, encode_json
from thermostat.miners.errors import ForbiddenCommand, InvalidValue, MalformedReply, Unsupported
from thermostat.miners.models import BRAIINS_S19
from thermostat.miners.protocols import execute_sync, protocol_for
from thermostat.sim.braiins import BraiinsSim

SPEC = BRAIINS_S19


def reply(sections: dict[str, object], status: str = "S", msg: str = "ok") -> bytes:
    body: dict[str, object] = {
        "STATUS": [{"STATUS": status, "When": 1_767_225_600, "Code": 0, "Msg": msg, "Description": "BOSminer"}]
    }
    body.update(sections)
    return json.dumps(body).encode() + b"\x00"


def run(command: Command, answers: dict[str, bytes]) -> tuple[Outcome, list[str]]:
    sent: list[str] = []

    def send(request: Request) -> bytes:
        sent.append(str(request))
        return answers.get(request.command, reply({}, "E", "Invalid command"))

    return execute_sync(send, command, SPEC), sent


def cmd(kind: CommandKind, **kw: object) -> Command:
    return Command("h", kind, **kw)  # type: ignore[arg-type]


def test_requests_and_validation() -> None:
    assert protocol_for(SPEC).name == "braiins" and SPEC.level_names == ("on",)
    assert braiins.requests_for(cmd(CommandKind.SOFT_OFF, at_miner_time=5), SPEC) == [Request("pause")]
    assert braiins.requests_for(cmd(CommandKind.SOFT_ON), SPEC) == [Request("resume")]
    assert braiins.requests_for(cmd(CommandKind.SET_LEVEL, level="on"), SPEC) == []
    assert [r.command for r in braiins.requests_for(cmd(CommandKind.POLL), SPEC)] == [
        "summary", "devs", "temps", "fans", "tunerstatus"]
    with pytest.raises(InvalidValue):
        braiins.requests_for(cmd(CommandKind.SET_LEVEL, level="boost"), SPEC)
    with pytest.raises(InvalidValue):
        braiins.requests_for(cmd(CommandKind.SET_FAN, fan_pct=True), SPEC)
    with pytest.raises(Unsupported):
        braiins.requests_for(cmd(CommandKind.REBOOT), SPEC)
    with pytest.raises(ForbiddenCommand):
        Request("switchpool", "1")


def test_control_outcomes() -> None:
    out, sent = run(cmd(CommandKind.SOFT_OFF), {"pause": reply({"PAUSE": [{}]})})
    assert out.kind == OutcomeKind.OK and sent == ["pause"]
    out, sent = run(cmd(CommandKind.SOFT_ON), {"resume": reply({}, "E", "Access denied")})
    assert out.kind == OutcomeKind.REFUSED and sent == ["resume"]
    out, sent = run(cmd(CommandKind.SET_LEVEL, level="on"), {})
    assert out.kind == OutcomeKind.OK and sent == []
    out, sent = run(cmd(CommandKind.SET_FAN, fan_pct=40), {})
    assert out.kind == OutcomeKind.REFUSED and sent == []


def poll(status: str = "Alive", mhs: float = 95e6, enabled: str = "Y") -> dict[str, bytes]:
    return {
        "summary": reply({"SUMMARY": [{"Elapsed": 900, "MHS 5s": mhs, "MHS av": 94e6}]}),
        "devs": reply({"DEVS": [{"ID": i, "Enabled": enabled, "Status": status} for i in range(3)]}),
        "temps": reply({"TEMPS": [{"ID": 0, "Board": 60, "Chip": 75.5}]}),
        "fans": reply({"FANS": [{"ID": 0, "RPM": 4200, "Speed": 60}]}),
        "tunerstatus": reply({"TUNERSTATUS": [{"PowerLimit": 3250, "ApproximateMinerPowerConsumption": 3190}]}),
    }


@pytest.mark.parametrize(
    ("status", "mhs", "enabled", "state"),
    [
        ("Alive", 95e6, "Y", MinerState.MINING),
        ("Paused", 0.0, "Y", MinerState.STANDBY),
        ("Alive", 0.0, "N", MinerState.STANDBY),
        ("Initialising", 0.0, "Y", MinerState.STARTING),
        ("Dead", 0.0, "Y", MinerState.FAULT),
    ],
)
def test_state_derivation(status: str, mhs: float, enabled: str, state: MinerState) -> None:
    out, _ = run(cmd(CommandKind.POLL), poll(status, mhs, enabled))
    assert out.snapshot is not None and out.snapshot.state == state


def test_poll_fields_and_missing_parts() -> None:
    out, _ = run(cmd(CommandKind.POLL), poll())
    snap = out.snapshot
    assert snap is not None
    assert snap.hashrate_ths == pytest.approx(95.0) and snap.power_w == 3190 and snap.chip_temp_max_c == 75.5
    assert (snap.workmode, snap.worklevel) == (0, 0) and SPEC.level_for(0, 0) is SPEC.levels[0]
    assert snap.uptime_s == 900 and snap.miner_time == 1_767_225_600 and snap.fan_rpm == 4200
    answers = poll()
    del answers["tunerstatus"], answers["temps"]
    out, _ = run(cmd(CommandKind.POLL), answers)
    assert out.snapshot is not None and out.snapshot.power_w is None
    answers = poll()
    del answers["devs"]
    out, sent = run(cmd(CommandKind.POLL), answers)
    assert out.kind == OutcomeKind.REFUSED and sent == ["summary", "devs"]
    with pytest.raises(MalformedReply):
        braiins.parse_poll({}, SPEC)


def test_simulator_pause_resume_text_and_json() -> None:
    t = [1_767_225_600.0]
    sim = BraiinsSim(SPEC, time_fn=lambda: t[0], start_state="mining", boot_seconds=30, calibration_seconds=30)
    assert sim.hashing and sim.wall_w == pytest.approx(3250)
    raw = sim.handle(b"pause")
    assert raw is not None and raw.endswith(b"\x00") and "PAUSE" in decode_reply(raw).sections
    assert not sim.hashing and sim.paused and sim.wall_w == SPEC.standby_wall_w
    raw = sim.handle(encode_json(Request("resume")))
    assert raw is not None and "RESUME" in decode_reply(raw).sections and sim.wakes == 1
    t[0] += 20
    assert not sim.hashing
    t[0] += 45
    assert sim.hashing and sim.calibrated
    raw = sim.handle(b'{"command":"removepool","parameter":"0"}')
    assert raw is not None and decode_reply(raw).code == 45
    raw = sim.handle(b"frobnicate")
    assert raw is not None and decode_reply(raw).code == 14
