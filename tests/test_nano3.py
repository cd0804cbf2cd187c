"""The Avalon Nano 3 (non-S): identified, read and driven from its own facts, checked against the real capture."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState
from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import MinerState
from thermostat.miners import avalon, protocols
from thermostat.miners.models import MODELS, NANO3, NANO3S, model_from_ver_string, model_from_version
from thermostat.sim.miner import SimMiner

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "miner-samples"
if not SAMPLES.exists():
    SAMPLES = Path("/work/shared/reference/miner-samples")


def capture() -> bytes:
    lines = (SAMPLES / "nano3-estats.txt").read_text().splitlines()
    return next(line for line in lines if line.startswith("STATUS=")).encode()


def test_identified_by_version_and_by_ver_string() -> None:
    # the version fields quoted in pyasic#199 and the estats Ver[] of the capture
    assert model_from_version("0o3", "Avalon0o", "PMMv1_X1") is NANO3
    assert model_from_version(None, None, "PMMv1_X1") is NANO3
    assert model_from_ver_string("nano3-24071801_42c628d") is NANO3
    assert model_from_ver_string("Nano3s-25021401_56abae7") is NANO3S  # the S stays the S
    assert MODELS["nano3"] is NANO3


def test_every_figure_of_the_row_names_its_source() -> None:
    assert [lv.name for lv in NANO3.levels] == ["low", "mid", "high"]
    assert [lv.wall_w for lv in NANO3.levels] == [60.0, 90.0, 125.0]  # ATA0/1/2 MPO in the capture
    for lv in NANO3.levels:
        assert re.match(r"(firmware|measured|assumed): ", lv.source), lv
    assert NANO3.wall_power_source == "mpo" and not NANO3.has_standby and not NANO3.inlet_sensor


def test_the_real_capture_reads_mpo_watts_not_ps6() -> None:
    snap = avalon.parse_stats(avalon.decode_reply(capture()))
    assert snap.model == "nano3" and snap.state == MinerState.MINING
    assert snap.power_w == 90.0  # MPO[90]; PS[6] reads 324 on this unit and is no wall power
    assert snap.dc_power_w is None  # PS[1] is 0: PS[4] is no DC watts either
    assert (snap.workmode, snap.worklevel) == (0, 1)  # WORKMODE[] is absent: the one mode
    assert NANO3.level_for(snap.workmode, snap.worklevel) is NANO3.level("mid")
    assert snap.hashrate_ths == pytest.approx(2.63098) and snap.chip_target_c == 85 and snap.calibrated
    assert snap.inlet_temp_c is None  # Temp[38] is case air (OTemp 41, chips 85), not the room


def test_a_level_is_set_by_worklevel_alone() -> None:
    requests = avalon.requests_for(Command("n3", CommandKind.SET_LEVEL, level="high"), NANO3)
    assert [str(r) for r in requests] == ["ascset|0,worklevel,set,2"]
    with pytest.raises(avalon.InvalidValue):
        avalon.requests_for(Command("n3", CommandKind.SET_LEVEL, level="super"), NANO3)
    with pytest.raises(avalon.Unsupported):
        avalon.soft_request(NANO3, True, 1_780_323_030)


def test_the_simulator_answers_like_the_capture() -> None:
    t = [1_780_323_023.0]
    sim = SimMiner(NANO3, time_fn=lambda: t[0], start_state="mining", start_level="mid")
    real = avalon.parse_stats(avalon.decode_reply(capture()))
    mine = avalon.parse_stats(avalon.decode_reply(sim.handle(b"estats") or b""))
    for field in ("model", "state", "workmode", "worklevel", "power_w", "dc_power_w", "chip_target_c", "calibrated"):
        assert getattr(mine, field) == getattr(real, field), field
    assert mine.dna == "0000000000000000" == real.dna  # units are told apart by HDNA only
    assert mine.extra["HDNA"] != "0000000000000000"


def test_the_heater_machine_drives_a_simulated_nano3_up_its_ladder() -> None:
    t = [1_780_323_023.0]
    sim = SimMiner(NANO3, time_fn=lambda: t[0], start_state="mining", start_level="low")
    machine = HeaterMachine("n3", NANO3, HeaterSettings(), now=0.0)
    machine.want("high", 0.0, reason="test")
    seen: list[tuple[str, str]] = []
    now = 0.0
    for _ in range(3000):
        for command in machine.step(now):
            outcome = protocols.execute_sync(lambda r: sim.handle(avalon.encode_json(r)), command, NANO3)
            assert outcome.kind != OutcomeKind.MALFORMED, outcome
            seen.append((command.kind.value, outcome.kind.value))
            machine.on_outcome(command, outcome, now)
        if machine.state == HeaterState.RUNNING and machine.confirmed_level == "high":
            break
        now += 3.0
        t[0] += 3.0
    assert machine.confirmed_level == "high" and sim.level_name == "high"
    assert sim.wall_w == pytest.approx(125.0, rel=0.011)
    assert [text for _t, text in sim.commands_log if "ascset" in text] == [
        '{"command":"ascset","parameter":"0,worklevel,set,2"}']
