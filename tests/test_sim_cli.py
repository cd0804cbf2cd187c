"""`thermostat sim miner|fleet`: parser, a real foreground run stopped with Ctrl-C, and the loopback warning."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from thermostat.cli import build_parser, main
from thermostat.sim import server as sim_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(port: int, payload: bytes, deadline_s: float = 10.0) -> bytes:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(payload)
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
                return out
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_parser_has_sim_miner_and_fleet() -> None:
    args = build_parser().parse_args(
        ["sim", "miner", "--model", "q", "--port", "5000", "--speed", "10", "--boot-seconds", "5",
         "--calibration-seconds", "3", "--start", "mining"]
    )  # fmt: skip
    assert args.model == "q" and args.port == 5000 and args.speed == 10 and args.start == "mining"
    assert args.host == "127.0.0.1" and callable(args.func)
    args = build_parser().parse_args(["sim", "fleet", "--models", "mini3,mini3,q"])
    assert args.models == "mini3,mini3,q" and args.port == 4028 and callable(args.func)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "miner", "--model", "s19"])


def _run(argv: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "thermostat", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def test_sim_miner_runs_in_the_foreground_and_prints_each_command() -> None:
    port = free_port()
    proc = _run(["sim", "miner", "--model", "mini3", "--port", str(port), "--speed", "100",
                 "--start", "mining"])  # fmt: skip
    try:
        reply = ask(port, b"version")
        assert reply.endswith(b"\x00") and b"MODEL=Mini3" in reply
        assert b"In Work" in ask(port, b'{"command":"litestats"}')
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert f"Avalon Mini 3 (mini3) on 127.0.0.1:{port}" in out
    assert "'version'" in out and "litestats" in out and "WARNING" not in err


def test_sim_fleet_on_consecutive_ports() -> None:
    for _ in range(10):
        base = free_port()
        if base < 65000:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
            break
    proc = _run(["sim", "fleet", "--models", "nano3s,q", "--port", str(base), "--quiet"])
    try:
        assert b"MODEL=Nano3s" in ask(base, b"version")
        assert b"MODEL=Q," in ask(base + 1, b"version")
    finally:
        out, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert f"127.0.0.1:{base + 1}" in out and "'version'" not in out


def test_fleet_rejects_unknown_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "fleet", "--models", "mini3,s19"]) == 2
    assert "s19" in capsys.readouterr().err


def test_non_loopback_host_warns(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def no_listen(self: sim_server.SimFleet) -> list[int]:
        raise OSError("not listening in this test")

    monkeypatch.setattr(sim_server.SimFleet, "start", no_listen)
    assert main(["sim", "miner", "--model", "q", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert "WARNING" in err and "unauthenticated" in err
