"""The real captures and the simulator's replies go through the same shape checks (issue 16).

For each real reply in ../shared/reference/miner-samples the simulator, put in the same state, answers the same
request; both are reduced to a *shape* (sections, keys in order, the kind of each value: integer, decimal with
its places, percent, list of n numbers, text) and the shapes must agree. Then the quantities the issue names
(MPO and PS on the Q, board temperatures, MHS windows, share counters) are checked against the captures' figures.
A third-party-style reader (joined commands, `check`, a pyasic-like MM regex) runs against the simulator over TCP.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from thermostat.miners.avalon import parse_mm_string
from thermostat.miners.models import MINI3, NANO3, NANO3S, Q
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

SAMPLES = Path("/work/shared/reference/miner-samples")
pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="reference captures are not on this machine")


def sample(name: str) -> str:
    return "\n".join(ln for ln in (SAMPLES / name).read_text().splitlines() if not ln.startswith("#")).strip()


def value_shape(value: Any) -> str:
    """The kind of one value, the same for a JSON value and for a `Key[value]` body."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return "int"
    if m := re.fullmatch(r"-?\d+\.(\d+)", text):
        return f"dec{len(m.group(1))}"
    if re.fullmatch(r"-?\d+(\.\d+)?%", text):
        return "pct"
    if re.fullmatch(r"-?\d+( +-?\d+)+", text):
        return f"ints×{len(text.split())}"
    return "text"


ID_KEYS = frozenset({"DNA", "HDNA", "MAC"})  # unit ids (redacted to digits or text in some captures)


def key_shape(key: str, value: Any) -> str:
    return "id" if key in ID_KEYS else value_shape(value)


def mm_shape(text: str) -> list[tuple[str, str]]:
    return [(k, key_shape(k, v)) for k, v in parse_mm_string(text).items()]


def reply_shape(obj: dict[str, Any]) -> dict[str, Any]:
    """JSON reply → {section: [[(key, kind)...] per item]}, MM strings expanded to their tokens (in order)."""
    out: dict[str, Any] = {}
    for section, items in obj.items():
        if section == "id":
            out[section] = items
            continue
        rows = []
        for item in items:
            row = []
            for key, value in item.items():
                if key.startswith("MM ID") or key == "HBinfo":
                    row.append((key, mm_shape(value)))
                elif section == "STATUS" and key in ("When",):
                    row.append((key, "int"))
                else:
                    row.append((key, key_shape(key, value)))
            rows.append(sorted(row, key=lambda kv: kv[0]))  # the stored JSON captures have sorted keys
        out[section] = rows
    return out


def text_reply_shape(text: str) -> list[list[tuple[str, Any]]]:
    """cgminer text reply → per section [(key, kind)], an MM string value expanded (it may hold commas)."""
    sections = []
    for sec in text.strip().strip("\x00").strip("|").split("|"):
        row: list[tuple[str, Any]] = []
        mm_at = sec.find(",MM ID0=")
        tail = ""
        if mm_at >= 0:
            sec, tail = sec[:mm_at], sec[mm_at + 1 :]
        for part in sec.split(","):
            key, _, value = part.partition("=")
            row.append((key, value_shape(value)))
        if tail:
            close = tail.rfind("]")
            key, _, mm = tail[: close + 1].partition("=")
            row.append((key, mm_shape(mm)))
            for part in tail[close + 2 :].split(",") if close + 1 < len(tail) else []:
                k, _, v = part.partition("=")
                row.append((k, value_shape(v)))
        sections.append(row)
    return sections


def jreply(m: SimMiner, command: str, parameter: str | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"command": command}
    if parameter is not None:
        req["parameter"] = parameter
    raw = m.handle(json.dumps(req).encode())
    assert raw is not None and raw.endswith(b"\x00")
    value: dict[str, Any] = json.loads(raw[:-1])
    return value


def clock(t0: float) -> tuple[list[float], Any]:
    box = [t0]
    return box, lambda: box[0]


# ----------------------------------------------------------------------------------------------- shapes


def test_nano3_estats_has_the_shape_of_the_capture() -> None:
    _box, now = clock(1_780_323_023.0)
    sim = SimMiner(NANO3, time_fn=now, start_state="mining", start_level="mid")
    real = text_reply_shape(sample("nano3-estats.txt"))
    mine = text_reply_shape((sim.handle(b"estats") or b"").decode())
    assert mine == real


def test_nano3s_mm_string_has_the_shape_of_the_capture() -> None:
    _box, now = clock(1_765_004_019.0)
    sim = SimMiner(NANO3S, time_fn=now, start_state="mining", start_level="high")
    mine = jreply(sim, "estats")["STATS"][0]["MM ID0"]
    assert mm_shape(mine) == mm_shape(sample("nano3s-estats-mm-id0.txt"))


@pytest.mark.parametrize(("name", "command", "parameter", "state", "level"), [
    ("q-litestats-standby.json", "litestats", None, "standby", "eco"),
    ("q-stats-standby.json", "stats", None, "standby", "eco"),
    ("q-version.json", "version", None, "standby", "eco"),
    ("q-summary-standby.json", "summary", None, "standby", "eco"),
    ("q-devs-standby.json", "devs", None, "standby", "eco"),
    ("q-pools.json", "pools", None, "standby", "eco"),
    ("q-check.json", "check", "frobnicate", "standby", "eco"),
    ("q-coin.json", "coin", None, "standby", "eco"),
    ("q-ascset-help.json", "ascset", "0,help", "standby", "eco"),
    ("q-ascset-workmode-set.json", "ascset", "0,workmode,set,0", "standby", "eco"),
])
def test_q_replies_have_the_shape_of_the_captures(name: str, command: str, parameter: str | None, state: str,
                                                   level: str) -> None:
    _box, now = clock(1_753_431_500.0)
    sim = SimMiner(Q, time_fn=now, start_state=state, start_level=level, initial_uptime_s=37_800)
    real, mine = json.loads(sample(name)), jreply(sim, command, parameter)
    assert reply_shape(mine) == reply_shape(real)
    assert mine["STATUS"][0]["Code"] == real["STATUS"][0]["Code"]
    if command in ("ascset", "check"):
        assert mine["STATUS"][0]["Msg"] == real["STATUS"][0]["Msg"] and mine.get("CHECK") == real.get("CHECK")


def test_invalid_command_has_no_description_and_joined_commands_nest() -> None:
    _box, now = clock(1_753_431_500.0)
    sim = SimMiner(Q, time_fn=now)
    assert list(jreply(sim, "frobnicate")["STATUS"][0]) == ["STATUS", "When", "Code", "Msg"]
    joined = jreply(sim, "pools+estats+devs+version+stats")
    assert list(joined) == ["pools", "estats", "devs", "version", "stats", "id"]
    for name in ("pools", "estats", "devs", "version", "stats"):
        alone = jreply(sim, name)
        assert reply_shape(joined[name][0]) == reply_shape(alone)  # each slot holds that command's whole reply
    both = jreply(sim, "summary+summary+ascset+")
    assert list(both) == ["summary", "ascset", "id"]  # duplicates once, blanks ignored
    assert both["ascset"][0]["STATUS"][0]["Code"] == 45  # a command with parameters cannot be joined
    assert (sim.handle(b"summary+devs") or b"").startswith(b"STATUS=E,")  # joins are a JSON-form feature


# ----------------------------------------------------------------------------------------------- figures


def q_super() -> tuple[SimMiner, list[float]]:
    box, now = clock(1_753_431_500.0)
    return SimMiner(Q, time_fn=now, start_state="mining", start_level="super", inlet_temp_c=37.0), box


def test_q_super_power_figures_match_the_capture() -> None:
    real = json.loads(sample("q-litestats-running-parsed-by-asic-rs.json"))["STATS"][0]["MM ID0:Summary"]["STATS"]
    sim, _ = q_super()
    mm = parse_mm_string(jreply(sim, "litestats")["STATS"][0]["MM ID0:Summary"])
    ps_real, ps_sim = real["PS"], [int(p) for p in mm["PS"].split()]
    assert int(mm["MPO"]) == real["MPO"] == 1600
    assert ps_sim[6] == pytest.approx(ps_real[6], rel=0.011)  # 1670 W at the wall
    assert ps_sim[4] / ps_sim[6] == pytest.approx(ps_real[4] / ps_real[6], abs=0.01)  # DC/wall 0.957
    # board inlet/outlet sit near the chips (real 75/77 with 37 °C air at TarT 85), not near the room
    assert abs(int(mm["HBITemp"]) - real["HBITemp"]) <= 4 and abs(int(mm["HBOTemp"]) - real["HBOTemp"]) <= 4
    assert int(mm["HBITemp"]) < int(mm["HBOTemp"]) < int(mm["TAvg"])


def test_mhs_windows_lag_like_the_real_standby_summary() -> None:
    real = json.loads(sample("q-summary-standby.json"))["SUMMARY"][0]
    sim, box = q_super()
    box[0] += 3600.0
    sim.update()
    running = jreply(sim, "summary")["SUMMARY"][0]
    assert running["MHS 5s"] > 0 and running["MHS 1m"] == pytest.approx(running["MHS 5s"], rel=0.03)
    sim.handle(f"ascset|0,softoff,1:{int(box[0])}".encode())
    box[0] += 60.0
    one_minute = jreply(sim, "summary")["SUMMARY"][0]
    assert one_minute["MHS 5s"] == 0.0 and 0 < one_minute["MHS 1m"] < one_minute["MHS 5m"] < one_minute["MHS 15m"]
    # the real unit, 6,000 s after its soft off: 1m 0.0, 5m 0.06, 15m 52,686 of an average of 44.5 million
    box[0] += 6000.0 - 60.0
    later = jreply(sim, "summary")["SUMMARY"][0]
    assert later["MHS 1m"] == real["MHS 1m"] == 0.0 and later["MHS 5m"] < 1.0
    ratio_real = real["MHS 15m"] / real["MHS av"]
    ratio_sim = later["MHS 15m"] / later["MHS av"]
    assert ratio_sim == pytest.approx(ratio_real, rel=1.0)  # same order: exponential 15-minute decay


def test_share_counters_follow_the_work_done_like_the_capture() -> None:
    real = json.loads(sample("q-devs-standby.json"))["DEVS"][0]
    sim, box = q_super()
    box[0] += 7200.0
    sim.handle(f"ascset|0,softoff,1:{int(box[0])}".encode())
    box[0] += 600.0
    mine = jreply(sim, "devs")["DEVS"][0]
    for devs in (real, mine):
        assert devs["Diff1 Work"] == pytest.approx(devs["Total MH"] * 1e6 / 2**32, rel=0.01)
        assert devs["Difficulty Accepted"] / devs["Accepted"] == pytest.approx(414_101, rel=0.05)
        # Last Share Time is an uptime counter on the Q, frozen since the soft off; Last Valid Work an epoch
        assert 0 < devs["Last Share Time"] < devs["Device Elapsed"]
        assert devs["Last Valid Work"] > 1_700_000_000
    assert mine["Device Elapsed"] - mine["Last Share Time"] >= 600 - 20


def test_help_listed_options_answer_and_others_are_unknown() -> None:
    _box, now = clock(1_765_004_019.0)
    nano = SimMiner(NANO3S, time_fn=now, start_state="mining")
    assert jreply(nano, "ascset", "0,ledset,1-80-50-255-0-0")["STATUS"][0]["Msg"] == "ASC 0 set info: led set ok"
    assert parse_mm_string(jreply(nano, "estats")["STATS"][0]["MM ID0"])["LEDUser"] == "1-80-50-255-0-0"
    assert jreply(nano, "ascset", "0,ledset,9-80-50-255-0-0")["STATUS"][0]["STATUS"] == "E"
    assert jreply(nano, "ascset", "0,ledmode,1")["STATUS"][0]["Code"] == 119
    assert "not in day mode" in jreply(nano, "ascset", "0,ledset,1-80-50-255-0-0")["STATUS"][0]["Msg"]
    assert jreply(nano, "ascset", "0,softoff,1:1765004030")["STATUS"][0]["Msg"] == (
        "ASC 0 set failed: Unknown option: softoff")
    for model in (MINI3, NANO3S, NANO3, Q):
        sim = SimMiner(model, time_fn=now, start_state="mining")
        listed = jreply(sim, "ascset", "0,help")["STATUS"][0]["Msg"].removeprefix("ASC 0 set info: ").split("|")
        for opt in [o for o in listed if o]:
            st = jreply(sim, "ascset", f"0,{opt}")["STATUS"][0]
            assert "Unknown option" not in st["Msg"], (model.key, opt)  # listed: it exists
        for opt in ("led", "frobnicate", "smart-speed" if model is not MINI3 else "ledset"):
            if opt not in listed:
                st = jreply(sim, "ascset", f"0,{opt},1")["STATUS"][0]
                assert st["Msg"] == f"ASC 0 set failed: Unknown option: {opt}", (model.key, opt)
    mini = SimMiner(MINI3, time_fn=now, start_state="mining")
    assert jreply(mini, "ascset", "0,target-temp,70")["STATUS"][0]["Code"] == 119
    assert parse_mm_string(jreply(mini, "litestats")["STATS"][0]["MM ID0"])["TarT"] == "70"
    assert jreply(mini, "ascset", "0,limittemp,45")["STATUS"][0]["Code"] == 119
    assert parse_mm_string(jreply(mini, "litestats")["STATS"][0]["MM ID0"])["Limitemp"] == "45"


# ----------------------------------------------------------------------------------------------- a third party


async def third_party_call(port: int, payload: dict[str, Any]) -> dict[str, Any]:
    """How an outside client reads a cgminer API: one connection, read to EOF, strip the NUL, json.loads."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(json.dumps(payload).encode())
    await writer.drain()
    data = b""
    while chunk := await reader.read(65536):
        data += chunk
    writer.close()
    value: dict[str, Any] = json.loads(data.rstrip(b"\x00").decode())
    return value


def pyasic_style_mm(stats: dict[str, Any]) -> dict[str, str]:
    """The MM string as pyasic reads it: `MM ID0:Summary` taken as `MM ID0`, `'STATS':` stripped, `(\\w+)\\[...\\]`."""
    entry = stats["STATS"][0]
    text = entry.get("MM ID0") or entry.get("MM ID0:Summary") or ""
    text = text.replace("'STATS':{", "").rstrip("}")
    return dict(re.findall(r"(\w+)\[([^\]]*)\]", text))


@pytest.mark.parametrize("spec", [MINI3, NANO3S, NANO3, Q], ids=lambda s: s.key)
def test_a_third_party_reader_gets_every_value_it_asks_for(spec: Any) -> None:
    async def scenario() -> None:
        _box, now = clock(1_753_431_500.0)
        sim = SimMiner(spec, time_fn=now, start_state="mining")
        server = await serve_miner(sim, "127.0.0.1", 0)
        try:
            port = server_port(server)
            version = await third_party_call(port, {"command": "version"})
            assert version["VERSION"][0]["MODEL"] == spec.version_model
            check = await third_party_call(port, {"command": "check", "parameter": "estats"})
            assert check["CHECK"][0] == {"Exists": "Y", "Access": "Y"}
            data = await third_party_call(port, {"command": "pools+estats+devs+version+stats"})
            for name in ("pools", "estats", "devs", "version", "stats"):
                assert data[name][0]["STATUS"][0]["STATUS"] == "S", name
            mm = pyasic_style_mm(data["estats"][0])
            assert float(mm["GHSspd"]) > 0 and int(mm["MPO"]) > 0
            assert mm["Ver"].lower().startswith(spec.ver_prefix.lower())
            assert data["devs"][0]["DEVS"][0]["MHS 1m"] > 0  # pyasic's hashrate
            assert data["pools"][0]["POOLS"][0]["URL"].startswith("stratum+tcp://")
            coin = await third_party_call(port, {"command": "coin"})
            assert coin["COIN"][0]["Hash Method"] == "sha256"
        finally:
            await close_server(server)

    asyncio.run(scenario())
