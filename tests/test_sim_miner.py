"""The simulated miner (thermostat/sim/miner.py): firmware quirks, physics, and conformance with real replies.

Virtual time throughout: a mutable float is the miner's time function, so no test sleeps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from thermostat.domain.spec import ModelSpec
from thermostat.miners.models import MINI3, MODELS, NANO3S, Q
from thermostat.sim.miner import SimMiner

T0 = 1_753_000_000.0
SAMPLES = Path("/work/shared/reference/miner-samples")
TOKEN_RE = re.compile(r"([A-Za-z_][\w ]*?)\[([^\]]*)\]")
CALING = "ASC 0 set failed: current mode {} is caling Don't permit switch mode"


class VTime:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def make(spec: ModelSpec, **kw: Any) -> tuple[SimMiner, VTime]:
    vt = VTime()
    kw.setdefault("boot_seconds", 90)
    kw.setdefault("calibration_seconds", 60)
    return SimMiner(spec, time_fn=vt, **kw), vt


def text(m: SimMiner, request: str) -> str:
    raw = m.handle(request.encode())
    assert raw is not None and raw.endswith(b"\x00") and raw.count(b"\x00") == 1
    return raw[:-1].decode()


def js(m: SimMiner, command: str, parameter: str | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"command": command}
    if parameter is not None:
        req["parameter"] = parameter
    raw = m.handle(json.dumps(req).encode())
    assert raw is not None and raw.endswith(b"\x00")
    obj: dict[str, Any] = json.loads(raw[:-1])
    return obj


def status(m: SimMiner, request: str) -> dict[str, Any]:
    cmd, _, param = request.partition("|")
    st: dict[str, Any] = js(m, cmd, param or None)["STATUS"][0]
    return st


def mm_of(m: SimMiner, command: str = "litestats") -> dict[str, str]:
    stats = js(m, command)["STATS"][0]
    return dict(TOKEN_RE.findall(stats[m.spec.stats_key]))


def mm_keys(value: str) -> list[str]:
    return [k for k, _ in TOKEN_RE.findall(value)]


def ps(m: SimMiner) -> list[int]:
    return [int(x) for x in mm_of(m)["PS"].split()]


def when(m: SimMiner) -> int:
    return int(js(m, "summary")["STATUS"][0]["When"])


def wake_to_calibrating(m: SimMiner, vt: VTime) -> None:
    assert status(m, f"ascset|0,softon,1:{when(m)}")["Code"] == 118
    vt.advance(m.boot_seconds + 1)
    m.update()
    assert m.state == "In Work" and not m.calibrated


# ------------------------------------------------------------------------- soft off / on


def test_softoff_is_honoured_at_the_scheduled_miner_time_not_before() -> None:
    m, vt = make(MINI3, start_state="mining")
    at = when(m) + 30
    st = status(m, f"ascset|0,softoff,1:{at}")
    assert (st["STATUS"], st["Code"], st["Msg"]) == ("I", 118, f"ASC 0 set info: success softoff:{at}")
    vt.advance(29)
    assert mm_of(m)["SYSTEMSTATU"] == "Work: In Work, Hash Board: 1"
    vt.advance(2)
    mm = mm_of(m)
    assert mm["SYSTEMSTATU"] == "Work: In Idle, Hash Board: 1"
    assert mm["GHSspd"] == "0.00" and mm["FanR"] == "0%" and mm["SoftOFF"] != "0"
    assert m.wall_w == MINI3.standby_wall_w


def test_softoff_with_a_past_time_acts_at_once_and_text_form_reply() -> None:
    m, _ = make(MINI3, start_state="mining")
    at = when(m) - 100
    reply = text(m, f"ascset|0,softoff,1:{at}")
    assert reply.startswith("STATUS=I,When=") and f"Code=118,Msg=ASC 0 set info: success softoff:{at}," in reply
    assert m.state == "In Idle"


def test_softon_tolerates_the_space_of_canaans_doc_example() -> None:
    m, _vt = make(MINI3)
    assert status(m, f"ascset|0,softon,1: {when(m)}")["Code"] == 118
    assert m.state == "In Init"


def test_wake_goes_idle_init_work_calibrating_then_calibrated() -> None:
    m, vt = make(MINI3, start_state="standby")
    assert m.state == "In Idle" and m.wall_w == MINI3.standby_wall_w
    at = when(m) + 5
    status(m, f"ascset|0,softon,1:{at}")
    vt.advance(4)
    assert mm_of(m)["SYSTEMSTATU"].startswith("Work: In Idle")
    vt.advance(2)
    mm = mm_of(m)
    assert mm["SYSTEMSTATU"].startswith("Work: In Init") and mm["ADJ"] == "0" and mm["GHSspd"] == "0.00"
    init_w = m.wall_w
    assert MINI3.standby_wall_w < init_w < MINI3.top_level.wall_w
    vt.advance(m.boot_seconds)
    mm = mm_of(m)
    assert mm["SYSTEMSTATU"].startswith("Work: In Work") and mm["ADJ"] == "0" and "BAR" in mm
    nominal = MINI3.nominal_ths["mining"] * 1000
    assert 0 < float(mm["GHSspd"]) < 0.9 * nominal
    vt.advance(m.calibration_seconds)
    mm = mm_of(m)
    assert mm["ADJ"] == "1" and "BAR" not in mm
    assert float(mm["GHSspd"]) == pytest.approx(nominal, rel=0.03)
    assert m.wall_w == pytest.approx(MINI3.top_level.wall_w, rel=0.02)
    assert m.wakes == 1


def test_softon_closes_without_reply_when_switched_on_and_still_acts() -> None:
    m, _ = make(Q)
    assert m.faults.softon_no_reply is False
    assert status(m, f"ascset|0,softon,1:{when(m) + 600}")["Msg"].startswith("ASC 0 set info: success softon:")
    m.faults.softon_no_reply = True
    assert m.handle(f"ascset|0,softon,1:{when(m)}".encode()) is None
    assert m.state == "In Init" and m.wakes == 1


def test_nano3s_refuses_softoff_and_softon_like_its_firmware() -> None:
    m, _ = make(NANO3S)  # no standby: "standby" start means it is simply running
    assert m.state == "In Work"
    for opt in ("softoff", "softon"):
        st = status(m, f"ascset|0,{opt},1:{when(m)}")
        assert (st["STATUS"], st["Code"], st["Msg"]) == ("E", 120, f"ASC 0 set failed: Unknown option: {opt}")
    assert m.state == "In Work"
    assert mm_of(m)["ITemp"] == "-273"


# ------------------------------------------------------------------------- mode changes


def test_first_mode_change_while_calibrating_is_refused_with_the_exact_text_then_accepted() -> None:
    m, vt = make(MINI3)
    wake_to_calibrating(m, vt)
    st = status(m, "ascset|0,workmode,set,0")
    assert (st["STATUS"], st["Code"], st["Msg"]) == ("E", 120, CALING.format(1))
    assert m.workmode == 1
    assert status(m, "ascset|0,workmode,set,1")["Code"] == 119  # the current value is accepted
    vt.advance(m.calibration_seconds)
    st = status(m, "ascset|0,workmode,set,0")
    assert (st["STATUS"], st["Code"], st["Msg"]) == ("S", 119, "ASC 0 set OK")
    assert m.workmode == 0 and m.mode_changes == 1


def test_mode_change_is_refused_during_init_too() -> None:
    m, _vt = make(Q)
    status(m, f"ascset|0,softon,1:{when(m)}")
    assert m.state == "In Init"
    assert status(m, "ascset|0,work_mode_lvl,set,0,0")["Msg"] == CALING.format(2)


def test_refuse_next_n_mode_changes() -> None:
    m, _ = make(Q, start_state="mining")
    m.refuse_next_mode_changes(2)
    assert status(m, "ascset|0,workmode,set,0")["Msg"] == CALING.format(2)
    assert status(m, "ascset|0,workmode,set,1")["Msg"] == CALING.format(2)
    assert status(m, "ascset|0,workmode,set,0")["Code"] == 119
    assert m.workmode == 0 and m.level_name == "eco"


def test_out_of_range_workmode_and_worklevel_texts() -> None:
    m, _ = make(MINI3, start_state="mining", start_level="super")
    st = status(m, "ascset|0,workmode,set,3")
    assert (st["STATUS"], st["Code"], st["Msg"]) == (
        "E", 120, "ASC 0 set failed: error:1 not support set workmode max_mode[2]",
    )  # fmt: skip
    st = status(m, "ascset|0,worklevel,set,5")
    assert st["Msg"] == "ASC 0 set failed: worklevel unknown argument level range:-1 ~ 0"
    assert m.level_name == "super"


def test_get_variants_and_mini3_heater_levels() -> None:
    m, _ = make(MINI3, start_state="mining")
    assert status(m, "ascset|0,workmode,get")["Msg"] == "ASC 0 set info: workmode 1"
    assert status(m, "ascset|0,work_mode_lvl,set,0,-1")["Code"] == 119
    assert m.level_name == "eco"
    assert status(m, "ascset|0,worklevel,get")["Msg"] == "ASC 0 set info: worklevel -1"
    assert status(m, "ascset|0,work_mode_lvl,get")["Msg"] == "ASC 0 set info: workmode 0 worklevel -1"
    assert status(m, "ascset|0,workmode,set,2")["Code"] == 119  # level clamped into Night's range
    assert (m.workmode, m.worklevel, m.level_name) == (2, 0, "night")


def test_mode_set_in_standby_is_kept_for_the_next_wake() -> None:
    m, vt = make(Q)
    assert status(m, "ascset|0,workmode,set,0")["Code"] == 119
    assert m.wall_w == Q.standby_wall_w
    wake_to_calibrating(m, vt)
    vt.advance(m.calibration_seconds)
    m.update()
    assert m.level_name == "eco" and m.wall_w == pytest.approx(800, rel=0.02)


# ------------------------------------------------------------------------- restarts


def test_reboot_resets_uptime_and_passes_through_init() -> None:
    m, vt = make(MINI3, start_state="mining")
    before = int(mm_of(m)["Elapsed"])
    assert before >= 3600
    assert status(m, "ascset|0,reboot,0")["Code"] == 119
    assert m.handle(b"litestats") is None  # the controller restarts: no answer
    vt.advance(m.offline_seconds + 1)
    mm = mm_of(m)
    assert mm["SYSTEMSTATU"].startswith("Work: In Init") and int(mm["Elapsed"]) < 60
    assert m.uptime_s < 60


def test_reboot_with_delay_waits() -> None:
    m, vt = make(MINI3, start_state="mining")
    status(m, "ascset|0,reboot,30")
    vt.advance(29)
    assert m.handle(b"summary") is not None and m.state == "In Work"
    vt.advance(2)
    assert m.handle(b"summary") is None


def test_q_power_loss_resumes_the_last_mode_even_from_standby() -> None:
    m, vt = make(Q, start_state="standby", start_level="eco")
    m.power_loss(outage_s=60)
    assert m.wall_w == 0 and not m.reachable
    vt.advance(60 + m.offline_seconds + m.boot_seconds + m.calibration_seconds + 5)
    mm = mm_of(m)
    assert mm["SYSTEMSTATU"].startswith("Work: In Work") and mm["WORKMODE"] == "0" and mm["STATE"] == "1"
    assert mm["BOOTBY"] == "0x01.00000000"
    assert m.wall_w == pytest.approx(800, rel=0.02)


def test_mini3_power_loss_keeps_standby() -> None:
    m, vt = make(MINI3, start_state="standby")
    m.power_loss(outage_s=10)
    vt.advance(10 + m.offline_seconds + m.boot_seconds + 5)
    assert m.state == "In Idle" and m.uptime_s < 200


def test_power_off_holds_until_power_on_then_the_nano3s_boots_into_its_mode() -> None:
    """A smart plug: off cuts the mains until it is switched on (no return by itself), on boots the controller."""
    m, vt = make(NANO3S, start_state="mining", start_level="mid")
    m.power_off()
    vt.advance(6 * 3600)
    assert not m.reachable and m.wall_w == 0 and m.handle(b"summary") is None
    m.power_on()
    assert not m.reachable  # the controller restarts first
    vt.advance(m.offline_seconds + 1)
    assert m.reachable and m.uptime_s < m.offline_seconds + 2
    vt.advance(m.boot_seconds + m.calibration_seconds + 5)
    mm = mm_of(m)
    assert mm["BOOTBY"] == "0x01.00000000" and m.level_name == "mid" and m.hashing
    assert m.wall_w == pytest.approx(NANO3S.level("mid").wall_w, rel=0.02)
    reboots = m.reboots
    m.power_on()  # already powered: nothing happens
    assert m.reboots == reboots and m.hashing


# ------------------------------------------------------------------------- clock skew


def test_clock_skew_is_visible_in_when_and_drives_the_schedule() -> None:
    m, vt = make(MINI3, start_state="mining", clock_skew_s=-300)
    assert when(m) == int(vt.t) - 300
    # a client that schedules on ITS clock (+5 s) waits 305 s on a miner that runs 5 min behind
    status(m, f"ascset|0,softoff,1:{int(vt.t) + 5}")
    vt.advance(300)
    assert m.handle(b"summary") and m.state == "In Work"
    vt.advance(6)
    m.update()
    assert m.state == "In Idle"
    m.set_clock_skew(600)
    assert text(m, "summary").startswith(f"STATUS=S,When={int(vt.t) + 600},")


# ------------------------------------------------------------------------- watts, hashrate, physics


def test_ps_layouts_wall_in_ps6_and_constant_control_rail() -> None:
    m, _ = make(MINI3, start_state="mining")
    p = ps(m)
    assert len(p) == 7 and p[0] == 0 and p[1] == 1210
    assert p[6] == pytest.approx(824, rel=0.02) and p[4] == pytest.approx(824 * MINI3.psu_efficiency, rel=0.03)
    assert p[4] == pytest.approx(p[2] / 100 * p[3], rel=0.05)
    status(m, f"ascset|0,softoff,1:{when(m)}")
    p = ps(m)
    assert p[1] == 1210 and p[4] == 0 and p[3] == 0 and p[6] == MINI3.standby_wall_w

    q, _ = make(Q)
    assert ps(q)[1] == 1221 and ps(q)[6] == 17 and ps(q)[4] == 0

    n, _ = make(NANO3S, start_state="mining")
    p = ps(n)
    assert p[1] == 0 and p[4] == 0 and p[5] == 3756 and 27000 < p[2] < 28000
    assert p[6] == pytest.approx(133, rel=0.02)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_every_level_draws_its_ladder_watts(key: str) -> None:
    spec = MODELS[key]
    for level in spec.levels:
        m, _ = make(spec, start_state="mining", start_level=level.name)
        assert m.level_name == level.name
        assert m.wall_w == pytest.approx(level.wall_w, rel=0.011)
        assert m.dc_w == pytest.approx(m.wall_w * spec.psu_efficiency)
        assert mm_of(m)["MPO"] == str(m.profile.mpo_w.get(level.name, round(level.wall_w)))


def test_ghsavg_and_ghsmm_stay_high_in_standby() -> None:
    m, vt = make(Q, start_state="mining")
    vt.advance(3600)
    status(m, f"ascset|0,softoff,1:{when(m)}")
    vt.advance(3600)
    mm = mm_of(m)
    nominal = Q.nominal_ths["super"] * 1000
    assert mm["GHSspd"] == "0.00"
    assert float(mm["GHSavg"]) > 0.8 * nominal and float(mm["GHSmm"]) > 0.8 * nominal
    devs = js(m, "devs")["DEVS"][0]
    assert devs["MHS 5s"] == 0 and devs["MHS av"] > 0.8 * nominal * 1000


def test_temperatures_follow_power_and_inlet_with_lags() -> None:
    m, vt = make(MINI3, start_state="standby", inlet_temp_c=20)
    assert m.chip_temp_c == pytest.approx(20, abs=1) and 20 <= m.outlet_temp_c < 23
    wake_to_calibrating(m, vt)
    vt.advance(m.calibration_seconds + 10)
    m.update()
    chip_soon = m.chip_temp_c
    vt.advance(1200)
    m.update()
    assert m.chip_temp_c > chip_soon or m.chip_temp_c == pytest.approx(75, abs=1)
    assert m.chip_temp_c == pytest.approx(75, abs=1.5)  # the automatic fan holds TarT
    assert 15 <= m.fan_pct < 100
    out_20 = m.outlet_temp_c
    assert out_20 > 35
    m.set_inlet_temp(30)
    vt.advance(1200)
    m.update()
    assert m.outlet_temp_c > out_20 and m.fan_pct > 15
    # a fixed slower fan lets the chips run hotter than TarT, up to the over-temperature guard
    m.set_inlet_temp(20)
    assert status(m, "ascset|0,fan-spd,50")["Code"] == 119
    vt.advance(1200)
    assert m.fan_pct == 50 and 80 < m.chip_temp_c < MINI3.chip_temp_limit_c
    assert status(m, "ascset|0,fan-spd,15")["Code"] == 119
    vt.advance(1200)
    assert m.fan_pct > 15 and m.chip_temp_c == pytest.approx(MINI3.chip_temp_limit_c, abs=1.5)
    status(m, f"ascset|0,softoff,1:{when(m)}")
    vt.advance(30)
    assert 30 < m.chip_temp_c < 90  # lagging, not instant
    vt.advance(3600)
    assert m.chip_temp_c == pytest.approx(20, abs=1.5)


def test_fan_spd_range_and_auto() -> None:
    m, _ = make(MINI3, start_state="mining")
    assert status(m, "ascset|0,fan-spd,50")["Code"] == 119 and mm_of(m)["FanR"] == "50%"
    st = status(m, "ascset|0,fan-spd,10")
    assert (st["STATUS"], st["Code"], st["Msg"]) == (
        "E", 120, "ASC 0 set failed: invalid fan value, valid range 15-100 for stable pwm,-1 for auto adjust",
    )  # fmt: skip
    assert status(m, "ascset|0,fan-spd,-1")["Code"] == 119 and m.fan_pct != 50


# ------------------------------------------------------------------------- other commands and faults


def test_pool_commands_are_refused_and_change_nothing() -> None:
    m, _ = make(MINI3)
    before = js(m, "pools")["POOLS"]
    for req in (
        "setpool|admin,admin,0,stratum+tcp://evil.example:3333,w,p",
        "addpool|stratum+tcp://e:1,u,p",
        "switchpool|1",
        "removepool|0",
        "enablepool|0",
        "disablepool|0",
        "poolpriority|1,0",
    ):
        st = status(m, req)
        assert st["STATUS"] == "E"
    after = js(m, "pools")["POOLS"]
    assert [p["URL"] for p in after] == [p["URL"] for p in before]
    assert after[0]["User"] == before[0]["User"]


def test_invalid_command_and_invalid_json() -> None:
    m, _ = make(MINI3)
    assert text(m, "frobnicate").startswith("STATUS=E,When=")
    assert text(m, "frobnicate").endswith(",Code=14,Msg=Invalid command|")  # no Description, as the real E/14
    assert status(m, "restart")["Code"] == 14  # not in Canaan's command table
    raw = m.handle(b"{not json")
    assert raw is not None and json.loads(raw[:-1])["STATUS"][0]["STATUS"] == "E"


def test_help_led_lcd() -> None:
    q, _ = make(Q)
    assert "softoff" in status(q, "ascset|0,help")["Msg"]
    assert status(q, "ascset|0,led,1-1")["Msg"] == "ASC 0 set failed: Unknown option: led"  # not in its help
    assert status(q, "ascset|0,lcd,0:0")["Code"] == 119 and mm_of(q)["LcdOnoff"] == "0"
    mini, _ = make(MINI3)
    assert status(mini, "ascset|0,led,1-1")["Msg"] == "ASC 0 set failed: Unknown option: led"
    nano, _ = make(NANO3S)
    assert "softoff" not in status(nano, "ascset|0,help")["Msg"]


def test_garbage_and_truncated_replies() -> None:
    m, _ = make(MINI3)
    m.faults.garbage = True
    raw = m.handle(b'{"command":"summary"}')
    assert raw is not None
    with pytest.raises(ValueError):
        json.loads(raw.rstrip(b"\x00"))
    m.faults.garbage = False
    m.faults.truncate = True
    raw = m.handle(b'{"command":"litestats"}')
    assert raw is not None and not raw.endswith(b"\x00")
    with pytest.raises(ValueError):
        json.loads(raw)


def test_commands_log_records_time_and_request() -> None:
    m, vt = make(MINI3)
    m.handle(b"version")
    vt.advance(5)
    m.handle(b'{"command":"summary"}')
    assert m.commands_log == [(T0, "version"), (T0 + 5, '{"command":"summary"}')]


def test_q_stats_wrapping_and_hbinfo() -> None:
    m, _ = make(Q)
    first = js(m, "estats")["STATS"][0]
    value = first["MM ID0:Summary"]
    assert value.startswith("'STATS':{Ver[Q-") and value.endswith("}")
    assert "PVT_T0" not in value and "PVT_T0[" in first["HBinfo"]
    lite = js(m, "litestats")["STATS"]
    assert list(lite[0]) == ["MM ID0:Summary"]


def test_a_simulated_week_is_cheap() -> None:
    m, vt = make(MINI3, start_state="mining")
    for i in range(7 * 24 * 60):  # one update a minute for a week
        vt.advance(60)
        if i % 720 == 0:
            status(m, f"ascset|0,{'softoff' if m.state == 'In Work' else 'softon'},1:{when(m)}")
        m.update()
    assert m.uptime_s > 7 * 86400


# ------------------------------------------------------------------------- conformance with real replies


def load_sample(name: str) -> str:
    lines = (SAMPLES / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")).strip()


def text_sections(reply: str) -> list[tuple[str, list[str], str | None]]:
    """cgminer text reply → [(section head, keys, MM value or None)]; the MM value may hold commas."""
    out = []
    for sec in reply.strip("|").split("|"):
        mm = None
        idx = sec.find(",MM ID0")
        if idx >= 0:
            mm_part = sec[idx + 1 :]
            key, _, mm = mm_part.partition("=")
            sec = sec[:idx]
            keys = [p.split("=", 1)[0] for p in sec.split(",")] + [key]
        else:
            keys = [p.split("=", 1)[0] for p in sec.split(",")]
        out.append((keys[0], keys, mm))
    return out


def test_conformance_mini3_version_devdetails_and_truncated_stats() -> None:
    m, _ = make(MINI3, start_state="mining")
    for sample, cmd in (("mini3-version.txt", "version"), ("mini3-devdetails.txt", "devdetails")):
        real = text_sections(load_sample(sample))
        sim = text_sections(text(m, cmd))
        assert [k for _, k, _ in sim] == [k for _, k, _ in real], sample

    real = text_sections(load_sample("mini3-stats-partial.txt"))
    sim = text_sections(text(m, "stats"))
    assert real[0][1] == sim[0][1]  # STATUS keys
    assert real[1][1] == sim[1][1]  # STATS=0 keys up to MM ID0, in order
    real_mm, sim_mm = real[1][2], sim[1][2]
    assert real_mm is not None and sim_mm is not None
    # documented difference: the stored sample is truncated after PS[...] ("PCOMM..."), so the real key
    # order must be a prefix of ours
    real_keys = mm_keys(real_mm)
    assert real_keys[-1] == "PS" and sim_mm.startswith("HashStatus[")
    assert mm_keys(sim_mm)[: len(real_keys)] == real_keys
    assert {"PCOMM_E", "GHSspd", "WORKMODE", "WORKLEVEL", "MPO", "ADJ"} <= set(mm_keys(sim_mm))


def test_conformance_nano3s_mm_string_and_version() -> None:
    m, _ = make(NANO3S, start_state="mining", start_level="high")
    real = load_sample("nano3s-estats-mm-id0.txt")
    sim = js(m, "estats")["STATS"][0]["MM ID0"]
    assert mm_keys(sim) == mm_keys(real)
    blocks = load_sample("nano3s-version-summary-lcd.txt").splitlines()
    payloads = [json.loads(b) for b in blocks if b.startswith("{")]
    for real_obj, cmd, partial in zip(payloads, ("version", "summary", "lcd"), (False, True, False), strict=True):
        sim_obj = js(m, cmd)
        assert list(sim_obj) == list(real_obj)
        section = next(k for k in real_obj if k not in ("STATUS", "id"))
        real_keys, sim_keys = set(real_obj[section][0]), set(sim_obj[section][0])
        if partial:  # upstream marks its summary "partial"
            assert real_keys <= sim_keys
        else:
            assert real_keys == sim_keys, cmd


Q_SAMPLES = [
    ("q-version.json", "version", None),
    ("q-summary-standby.json", "summary", None),
    ("q-devs-standby.json", "devs", None),
    ("q-pools.json", "pools", None),
    ("q-config.json", "config", None),
    ("q-devdetails.json", "devdetails", None),
    ("q-stats-standby.json", "stats", None),
    ("q-litestats-standby.json", "litestats", None),
    ("q-ascset-help.json", "ascset", "0,help"),
    ("q-ascset-workmode-set.json", "ascset", "0,workmode,set,0"),
]


@pytest.mark.parametrize(("sample", "command", "parameter"), Q_SAMPLES)
def test_conformance_q_json_replies(sample: str, command: str, parameter: str | None) -> None:
    m, _ = make(Q, start_state="standby", start_level="eco")
    real = json.loads(load_sample(sample))
    sim = js(m, command, parameter)
    assert set(sim) == set(real)
    assert set(sim["STATUS"][0]) == set(real["STATUS"][0])
    for k in ("STATUS", "Code"):
        assert sim["STATUS"][0][k] == real["STATUS"][0][k]
    if command == "ascset":
        assert sim["STATUS"][0]["Msg"] == real["STATUS"][0]["Msg"]
    for section in set(real) - {"STATUS", "id"}:
        assert len(sim[section]) == len(real[section])
        for r_item, s_item in zip(real[section], sim[section], strict=True):
            assert set(s_item) == set(r_item), (sample, section)
            for key in ("MM ID0:Summary", "HBinfo"):
                if key in r_item:
                    assert mm_keys(s_item[key]) == mm_keys(r_item[key]), key
    if command == "stats":
        hb_real = dict(TOKEN_RE.findall(real["STATS"][0]["HBinfo"]))
        hb_sim = dict(TOKEN_RE.findall(sim["STATS"][0]["HBinfo"]))
        assert all(len(hb_sim[k].split()) == len(hb_real[k].split()) == 160 for k in hb_real)


@pytest.mark.parametrize("sample", ["q-ascset-softoff.json", "q-ascset-softon.json"])
def test_conformance_q_soft_replies(sample: str) -> None:
    m, _ = make(Q, start_state="mining")
    real = json.loads(load_sample(sample))["STATUS"][0]
    opt = "softoff" if "softoff" in sample else "softon"
    ts = when(m) + 5
    sim = js(m, "ascset", f"0,{opt},1:{ts}")["STATUS"][0]
    assert (sim["STATUS"], sim["Code"]) == (real["STATUS"], real["Code"])
    assert re.sub(r"\d+$", "", sim["Msg"]) == re.sub(r"\d+$", "", real["Msg"])
    assert sim["When"] == ts - 5  # like the real ones, answered 5 s before the scheduled time


# ------------------------------------------------------------------------- round trip through our parser


def test_round_trip_through_the_avalon_parser() -> None:
    from thermostat.domain.snapshot import MinerState
    from thermostat.miners import avalon

    for spec in (MINI3, NANO3S, Q):
        m, vt = make(spec, start_state="mining")
        for form in (b'{"command":"litestats"}', b"litestats", b"estats", b"stats"):
            raw = m.handle(form)
            assert raw is not None
            snap = avalon.parse_stats(avalon.decode_reply(raw))
            assert snap.state == MinerState.MINING, (spec.key, form)
            assert snap.model == spec.key and snap.workmode == spec.top_level.workmode
            assert snap.power_w == pytest.approx(spec.top_level.wall_w, rel=0.02)
            assert snap.miner_time == int(vt.t) and snap.calibrated is True
            assert snap.inlet_temp_c == (None if not spec.inlet_sensor else 20)
        if spec.has_standby:
            m.handle(f"ascset|0,softoff,1:{int(vt.t)}".encode())
            raw = m.handle(b"litestats")
            assert raw is not None
            snap = avalon.parse_stats(avalon.decode_reply(raw))
            assert snap.state == MinerState.STANDBY and snap.power_w == spec.standby_wall_w
            m.handle(f"ascset|0,softon,1:{int(vt.t)}".encode())
            raw = m.handle(b"litestats")
            assert raw is not None
            assert avalon.parse_stats(avalon.decode_reply(raw)).state == MinerState.STARTING
        ver = avalon.parse_version(avalon.decode_reply(m.handle(b"version") or b""))
        assert ver.is_avalon


def test_injected_fault_state_until_restart() -> None:
    m, vt = make(Q, start_state="mining")
    m.enter_fault()
    mm = mm_of(m)
    assert mm["SYSTEMSTATU"] == "Work: In Fault, Hash Board: 1" and mm["STATE"] == "3" and mm["GHSspd"] == "0.00"
    assert m.wall_w == Q.standby_wall_w
    status(m, "ascset|0,reboot,0")
    vt.advance(m.offline_seconds + m.boot_seconds + 1)
    assert m.state == "In Work"
