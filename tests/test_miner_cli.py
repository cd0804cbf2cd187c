"""`thermostat miner ...` end to end against the replay server, in both protocol forms."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import replay_server as rs
from replay_server import CLOSE, ThreadedReplayServer, free_tcp_port

from thermostat.cli import main

FORMS = [[], ["--text"]]
MINI3_LITESTATS = rs.status_reply(
    "S", 70, "CGMiner stats", 1742265634,
    STATS=[{"STATS": 0, "ID": "AVALON0", "Elapsed": 32260,
            "MM ID0": "Ver[Mini3-25011701_3f53b19] DNA[020100008644e532] SYSTEMSTATU[Work: In Work, Hash Board: 1] "
                      "Elapsed[32273] ITemp[39] OTemp[63] HBTemp[75] TMax[86] TarT[75] Fan1[3000] FanR[100%] "
                      "PS[0 1210 2083 37 760 2085 824] GHSspd[37512.50] SoftOFF[0] WORKMODE[0] WORKLEVEL[-1] "
                      "MPO[800] ADJ[1]"}],
)


def mini3_replies() -> dict[str, Any]:
    return {
        "version": rs.MINI3_VERSION_TEXT,  # the real Mini 3 reply is in text form; the client decodes either
        "litestats": MINI3_LITESTATS,
        "pools": rs.sample_reply(rs.Q_POOLS_JSON),
        "ascset": rs.set_ok(),
        "ascset|0,softoff,1:1742265585": rs.status_reply("I", 118, "ASC 0 set info: success softoff:1742265585"),
    }


@pytest.fixture
def mini3() -> Iterator[ThreadedReplayServer]:
    with ThreadedReplayServer(mini3_replies()) as server:
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["miner", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def sent(server: ThreadedReplayServer) -> list[str]:
    return [str(r) for r in server.requests]


@pytest.mark.parametrize("form", FORMS)
def test_status_json(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str], form: list[str]) -> None:
    code, out, err = run(capsys, "status", "127.0.0.1", "--port", str(mini3.port), "--json", *form)
    assert code == 0, err
    obj = json.loads(out)
    for key in ("model", "firmware", "dna", "state", "workmode", "worklevel", "power_w", "hashrate_ths",
                "inlet_temp_c", "outlet_temp_c", "chip_temp_max_c", "fan_rpm", "fan_pct", "uptime_s", "miner_time"):
        assert key in obj
    assert obj["model"] == "mini3" and obj["state"] == "mining" and obj["power_w"] == 824
    assert obj["workmode"] == 0 and obj["worklevel"] == -1 and obj["level"] == "eco"
    assert obj["hashrate_ths"] == pytest.approx(37.5125) and obj["miner_time"] == 1742265634
    assert obj["mac"] == "e0e1a93e2c7d"
    assert {r.form for r in mini3.requests} == {"text" if form else "json"}


def test_status_human(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "127.0.0.1", "--port", str(mini3.port))
    assert code == 0
    assert "Avalon Mini 3" in out and "mining" in out and "824 W wall" in out and "eco (Heater Eco)" in out
    assert "37.51 TH/s" in out and "3000 rpm" in out


def test_status_uses_litestats_model_when_version_refused(capsys: pytest.CaptureFixture[str]) -> None:
    replies = mini3_replies()
    del replies["version"]
    with ThreadedReplayServer(replies) as server:
        code, out, _ = run(capsys, "status", "127.0.0.1", "--port", str(server.port), "--json")
    assert code == 0 and json.loads(out)["model"] == "mini3"


@pytest.mark.parametrize("form", FORMS)
def test_set_mode(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str], form: list[str]) -> None:
    code, out, err = run(capsys, "set", "127.0.0.1", "--port", str(mini3.port), "--mode", "eco", *form)
    assert code == 0, err
    assert sent(mini3) == ["version", "ascset|0,workmode,set,0", "ascset|0,worklevel,set,-1"]
    assert out.startswith("ok")


@pytest.mark.parametrize("form", FORMS)
def test_set_standby_uses_miner_clock(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str],
                                      form: list[str]) -> None:
    code, out, err = run(capsys, "set", "127.0.0.1", "--port", str(mini3.port), "--standby", *form)
    assert code == 0, err
    assert sent(mini3) == ["version", "ascset|0,softoff,1:1742265585"]  # When 1742265580 + 5 s
    assert "success softoff" in out


def test_set_fan_reboot_wake(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    port = str(mini3.port)
    assert run(capsys, "set", "127.0.0.1", "--port", port, "--fan", "auto")[0] == 0
    assert run(capsys, "set", "127.0.0.1", "--port", port, "--fan", "40")[0] == 0
    assert run(capsys, "set", "127.0.0.1", "--port", port, "--reboot")[0] == 0
    assert run(capsys, "set", "127.0.0.1", "--port", port, "--reboot", "30")[0] == 0
    mini3.server.replies["ascset"] = CLOSE
    code, out, _ = run(capsys, "set", "127.0.0.1", "--port", port, "--wake")
    assert code == 0 and "unconfirmed" in out
    assert [s for s in sent(mini3) if s != "version"] == [
        "ascset|0,fan-spd,-1", "ascset|0,fan-spd,40", "ascset|0,reboot,0", "ascset|0,reboot,30",
        "ascset|0,softon,1:1742265585"]


@pytest.mark.parametrize(
    "args",
    [["--fan", "101"], ["--fan", "10"], ["--fan", "50,reboot"], ["--fan", "-1"], ["--mode", "eco|1"],
     ["--mode", "eco,1"], ["--reboot", "301"], ["--reboot", "5|setpool"], ["--reboot", "-1"]],
)
def test_bad_values_send_nothing(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str],
                                 args: list[str]) -> None:
    code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(mini3.port), *args)
    assert code == 2
    assert mini3.requests == [] and mini3.server.connections == 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mode_of_another_model_sends_no_ascset(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(mini3.port), "--mode", "high")  # a Nano 3S level
    assert code == 2 and "night, eco, super, mining" in err
    assert sent(mini3) == ["version"]  # the model must be read to know its ladder; nothing is set


def test_unknown_mode_names_that_miners_levels_only(mini3: ThreadedReplayServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(mini3.port), "--mode", "turbo")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'turbo'" in err and "night, eco, super, mining" in err
    assert "boost" not in err and "standard" not in err  # other models' level names
    assert sent(mini3) == ["version"]


def test_nano3s_standby_unsupported(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedReplayServer({"version": rs.NANO3S_VERSION_JSON}) as server:
        code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(server.port), "--standby")
        assert code == 2 and "no soft off" in err
        assert sent(server) == ["version"]


def test_unknown_model_refuses_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedReplayServer({"version": rs.A1566_VERSION_JSON}) as server:
        code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(server.port), "--fan", "50")
        assert code == 1 and "not a known Avalon home miner" in err
        assert sent(server) == ["version"]


@pytest.mark.parametrize("form", FORMS)
def test_refusal_and_busy(capsys: pytest.CaptureFixture[str], form: list[str]) -> None:
    replies = mini3_replies()
    replies["ascset|0,workmode,set,1"] = rs.set_failed("current mode 0 is caling Don't permit switch mode")
    replies["ascset|0,fan-spd,50"] = rs.invalid_command()
    with ThreadedReplayServer(replies) as server:
        code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(server.port), "--mode", "mining", *form)
        assert code == 1 and "busy" in err and "retry later" in err and len(err.strip().splitlines()) == 1
        code, _, err = run(capsys, "set", "127.0.0.1", "--port", str(server.port), "--fan", "50", *form)
        assert code == 1 and "refused" in err and "Invalid command" in err
        assert "ascset|0,worklevel,set,0" not in sent(server)


def test_unreachable_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "127.0.0.1", "--port", str(free_tcp_port()), "--timeout", "1")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("form", FORMS)
def test_pools(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str], form: list[str]) -> None:
    code, out, _ = run(capsys, "pools", "127.0.0.1", "--port", str(mini3.port), *form)
    assert code == 0 and "stratum+tcp://pool.example.com:4444" in out and "worker1" in out and "Alive" in out
    assert sent(mini3) == ["pools"]


def test_scan(mini3: ThreadedReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "scan", "127.0.0.0/30", "--port", str(mini3.port), "--timeout", "0.5", "--json")
    assert code == 0
    assert [(f["host"], f["model"]) for f in json.loads(out)] == [("127.0.0.1", "mini3")]
    code, _, err = run(capsys, "scan", "10.0.0.0/8")
    assert code == 2 and "/16" in err


def test_real_entry_point(mini3: ThreadedReplayServer) -> None:
    ok = subprocess.run([sys.executable, "-m", "thermostat", "miner", "set", "127.0.0.1", "--port", str(mini3.port),
                         "--text", "--mode", "super"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "thermostat", "miner", "set", "127.0.0.1", "--port", str(mini3.port),
                          "--fan", "1000"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert sent(mini3) == ["version", "ascset|0,workmode,set,0", "ascset|0,worklevel,set,0"]
