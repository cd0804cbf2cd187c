"""`thermostat miner raw HOST COMMAND [PARAM]`: read-only commands to a simulated miner over TCP, as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sim_thread import ThreadedSimMiner

from thermostat.cli import main
from thermostat.commands.miner import RAW_READ_COMMANDS, raw_request
from thermostat.miners.errors import ForbiddenCommand, InvalidValue
from thermostat.miners.models import Q
from thermostat.sim.miner import SimMiner

T0 = 1_753_431_000.0


@pytest.fixture
def q() -> Iterator[ThreadedSimMiner]:
    with ThreadedSimMiner(SimMiner(Q, time_fn=lambda: T0, start_state="mining")) as served:
        yield served


def raw(capsys: pytest.CaptureFixture[str], port: int, *argv: str) -> tuple[int, str, str]:
    code = main(["miner", "raw", "127.0.0.1", *argv, "--port", str(port)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", RAW_READ_COMMANDS)
def test_every_read_command_prints_the_reply_as_json(q: ThreadedSimMiner, capsys: pytest.CaptureFixture[str],
                                                     command: str) -> None:
    code, out, err = raw(capsys, q.port, command)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["STATUS"][0]["STATUS"] == "S" and obj["id"] == 1
    assert [text for _t, text in q.miner.commands_log] == [json.dumps({"command": command}, separators=(",", ":"))]


def test_check_help_joined_and_text_form(q: ThreadedSimMiner, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = raw(capsys, q.port, "check", "summary")
    assert code == 0 and json.loads(out)["CHECK"] == [{"Exists": "Y", "Access": "Y"}]
    code, out, _ = raw(capsys, q.port, "ascset", "0,help")
    assert code == 0 and "softoff|" in json.loads(out)["STATUS"][0]["Msg"]
    code, out, _ = raw(capsys, q.port, "summary+devs")
    joined = json.loads(out)
    assert code == 0 and joined["summary"][0]["SUMMARY"][0]["Elapsed"] > 0 and "DEVS" in joined["devs"][0]
    code, out, _ = raw(capsys, q.port, "version", "--text")
    assert code == 0 and json.loads(out)["VERSION"][0]["MODEL"] == "Q"


def test_a_refusal_by_the_miner_is_printed_and_exits_1(q: ThreadedSimMiner, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = raw(capsys, q.port, "check")
    assert code == 2  # refused here: check needs a parameter
    code, out, _ = raw(capsys, q.port, "check", "frobnicate")
    assert code == 0 and json.loads(out)["CHECK"] == [{"Exists": "N", "Access": "N"}]


@pytest.mark.parametrize(("argv", "needle"), [
    (["ascset", "0,softoff,1:1753434821"], "ascset changes the miner"),
    (["ascset", "0,workmode,set,2"], "ascset changes the miner"),
    (["ascset"], "ascset changes the miner"),
    (["switchpool", "1"], "not a read-only command"),
    (["setpool", "admin,pw,0,stratum+tcp://x:1,u,p"], "not a read-only command"),
    (["restart"], "not a read-only command"),
    (["summary+addpool"], "not a read-only command"),
    (["summary", "extra"], "takes no parameter"),
])
def test_commands_that_change_the_miner_are_refused_before_connecting(
        q: ThreadedSimMiner, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = raw(capsys, q.port, *argv)
    assert code == 2 and out == "" and needle in err and "Traceback" not in err
    assert q.miner.commands_log == []  # nothing reached the miner
    assert q.miner.spec.has_standby and q.miner.hashing  # and it still mines


def test_raw_requests_pass_the_pool_command_guard() -> None:
    assert str(raw_request("ascset", "0, help")) == "ascset|0,help"
    assert str(raw_request("Pools+Summary", None)) == "pools+summary"
    with pytest.raises(InvalidValue):
        raw_request("check", "   ")
    with pytest.raises(ForbiddenCommand):  # `check` takes any parameter, but the guard still refuses smuggling
        raw_request("check", "summary|x")


def test_unreachable_miner_is_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    from replay_server import free_tcp_port

    code, out, err = raw(capsys, free_tcp_port(), "version", "--timeout", "1")
    assert code == 1 and out == "" and err.startswith("thermostat miner: ") and err.count("\n") == 1
