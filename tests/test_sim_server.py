"""The TCP server of simulated miners, exercised with a plain `socket` client (not our driver)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from thermostat.miners.models import MINI3, NANO3S, Q
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import SimFleet, close_server, is_loopback, scaled_time, serve_miner, server_port

T0 = 1_753_000_000.0


def raw_request(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    """Connect, send the request in one write, read until EOF. Independent of thermostat.miners."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


async def ask(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    return await asyncio.to_thread(raw_request, port, payload, timeout)


class VTime:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


async def test_both_forms_are_nul_terminated_and_one_per_connection() -> None:
    vt = VTime()
    miner = SimMiner(MINI3, time_fn=vt, start_state="mining")
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = server_port(server)
    try:
        txt = await ask(port, b"version")
        assert txt.endswith(b"|\x00") and txt.count(b"\x00") == 1
        assert txt.startswith(b"STATUS=S,When=1753000000,Code=22,") and b"MODEL=Mini3" in txt

        js = await ask(port, b'{"command":"litestats"}')
        assert js.endswith(b"\x00") and js.count(b"\x00") == 1
        obj = json.loads(js[:-1])
        assert obj["STATUS"][0]["Code"] == 70 and "MM ID0" in obj["STATS"][0]

        js = await ask(port, b'{"command":"ascset","parameter":"0,workmode,get"}')
        assert json.loads(js[:-1])["STATUS"][0]["Msg"] == "ASC 0 set info: workmode 1"

        def two_on_one_connection() -> tuple[bytes, bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"summary")
                first = b""
                while not first.endswith(b"\x00"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    first += chunk
                after = s.recv(65536)  # the server closed after one reply: EOF
                try:
                    s.sendall(b"version")
                    second = s.recv(65536)
                except OSError:
                    second = b""
                return first + after, second

        first, second = await asyncio.to_thread(two_on_one_connection)
        assert first.startswith(b"STATUS=S") and first.endswith(b"\x00")
        assert second == b""
        assert [r for _, r in miner.commands_log] == [
            "version", '{"command":"litestats"}', '{"command":"ascset","parameter":"0,workmode,get"}', "summary",
        ]  # fmt: skip
    finally:
        await close_server(server)


async def test_refused_and_restarting_miner_resets_connections() -> None:
    vt = VTime()
    miner = SimMiner(MINI3, time_fn=vt, start_state="mining")
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = server_port(server)
    try:
        miner.faults.refuse_connections = True
        with pytest.raises(OSError):
            if not await ask(port, b"version"):
                raise ConnectionResetError("closed without a reply")
        miner.faults.refuse_connections = False
        assert (await ask(port, b"version")).endswith(b"\x00")
        miner.reboot()
        with pytest.raises(OSError):
            if not await ask(port, b"version"):
                raise ConnectionResetError("closed without a reply")
        vt.t += miner.offline_seconds + 1
        assert b"In Init" in await ask(port, b"litestats")
    finally:
        await close_server(server)


async def test_hang_never_answers_and_the_server_still_closes() -> None:
    miner = SimMiner(Q, time_fn=VTime())
    miner.faults.hang = True
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = server_port(server)
    with pytest.raises(TimeoutError):
        await ask(port, b"version", timeout=0.3)
    t = time.monotonic()
    await close_server(server)
    assert time.monotonic() - t < 1.0


async def test_reply_delay_and_softon_without_reply() -> None:
    vt = VTime()
    miner = SimMiner(Q, time_fn=vt)
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = server_port(server)
    try:
        miner.faults.reply_delay_s = 0.3
        t = time.monotonic()
        assert (await ask(port, b"summary")).endswith(b"\x00")
        assert time.monotonic() - t >= 0.3
        miner.faults.reply_delay_s = 0.0
        miner.faults.softon_no_reply = True
        assert await ask(port, f"ascset|0,softon,1:{int(vt.t)}".encode()) == b""
        assert miner.state == "In Init"
    finally:
        await close_server(server)


async def test_garbage_and_truncated_over_the_socket() -> None:
    miner = SimMiner(NANO3S, time_fn=VTime())
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = server_port(server)
    try:
        miner.faults.truncate = True
        cut = await ask(port, b'{"command":"estats"}')
        assert cut and not cut.endswith(b"\x00")
        miner.faults.truncate = False
        miner.faults.garbage = True
        junk = await ask(port, b'{"command":"estats"}')
        with pytest.raises(ValueError):
            json.loads(junk.rstrip(b"\x00"))
    finally:
        await close_server(server)


async def test_fleet_on_consecutive_ports_and_ephemeral() -> None:
    vt = VTime()
    fleet = SimFleet.from_models(["mini3", "mini3", "q"], time_fn=vt, base_port=0)
    async with fleet:
        ports = fleet.ports
        replies = [await ask(p, b"version") for p in ports]
        assert [b"MODEL=Mini3" in r for r in replies] == [True, True, False] and b"MODEL=Q," in replies[2]
        assert fleet.miners[0].dna != fleet.miners[1].dna

    for _ in range(20):  # find three free consecutive ports
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65000:
            continue
        fleet = SimFleet.from_models(["nano3s", "q"], time_fn=vt, base_port=base)
        try:
            await fleet.start()
        except OSError:
            continue
        try:
            assert fleet.ports == [base, base + 1]
            assert b"MODEL=Nano3s" in await ask(base, b"version")
        finally:
            await fleet.stop()
        break
    else:
        pytest.fail("no free consecutive ports")


def test_scaled_time_and_loopback_helper() -> None:
    fast = scaled_time(100.0, start=T0)
    a = fast()
    time.sleep(0.05)
    assert 3.0 < fast() - a < 30.0
    assert abs(scaled_time(1.0)() - time.time()) < 1.0
    with pytest.raises(ValueError):
        scaled_time(0)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("miner.lan")
