"""The async TCP client and scanner against the replay server on 127.0.0.1 (both protocol forms)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import replay_server as rs
from replay_server import CLOSE, HANG, ReplayServer, free_tcp_port

from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import MinerState
from thermostat.miners.avalon import Request
from thermostat.miners.client import MinerClient
from thermostat.miners.errors import Busy, ForbiddenCommand, MalformedReply, MinerTimeout, Refused, Unreachable
from thermostat.miners.models import MINI3, NANO3S, Q
from thermostat.miners.scan import ScanTooLarge, scan, scan_hosts

FORMS = ["json", "text"]
BUSY_MSG = "ASC 0 set failed: current mode 0 is caling Don't permit switch mode"


def q_replies(**extra: Any) -> dict[str, Any]:
    replies: dict[str, Any] = {
        "version": rs.sample_reply(rs.Q_VERSION_JSON),
        "litestats": rs.sample_reply(rs.Q_LITESTATS_STANDBY_JSON),
        "estats": rs.sample_reply(rs.Q_STATS_STANDBY_JSON),
        "pools": rs.sample_reply(rs.Q_POOLS_JSON),
        "ascset": rs.set_ok(),
    }
    replies.update(extra)
    return replies


def client_for(server: ReplayServer, form: str = "json", **kw: Any) -> MinerClient:
    kw.setdefault("read_timeout", 2.0)
    return MinerClient("127.0.0.1", server.port, form=form, **kw)


@pytest.mark.parametrize("form", FORMS)
async def test_snapshot_version_pools(form: str) -> None:
    async with ReplayServer(q_replies()) as server:
        client = client_for(server, form)
        snap = await client.snapshot()
        assert snap.state == MinerState.STANDBY and snap.power_w == 146 and snap.model == "q"
        assert snap.miner_time == 1753431749
        info = await client.version()
        assert info.spec is Q and info.mac == "AA:BB:CC:DD:EE:FF"
        pools = await client.pools()
        assert pools[0]["URL"] == "stratum+tcp://pool.example.com:4444"
    assert [r.form for r in server.requests] == [form] * 3
    assert [str(r) for r in server.requests] == ["litestats", "version", "pools"]


async def test_mini3_real_text_reply() -> None:
    async with ReplayServer({"litestats": rs.MINI3_STATS_PARTIAL_TEXT}) as server:
        snap = await client_for(server, "text").snapshot()
    assert (snap.state, snap.power_w, snap.dc_power_w) == (MinerState.MINING, 824, 760)
    assert server.requests[0].raw == b"litestats"


@pytest.mark.parametrize("form", FORMS)
async def test_poll_falls_back_to_estats(form: str) -> None:
    replies = q_replies()
    del replies["litestats"]  # → E/14 Invalid command
    async with ReplayServer(replies) as server:
        outcome = await client_for(server, form).execute(Command("h", CommandKind.POLL), Q)
    assert outcome.kind == OutcomeKind.OK and outcome.snapshot is not None
    assert outcome.snapshot.state == MinerState.STANDBY
    assert [str(r) for r in server.requests] == ["litestats", "estats"]


@pytest.mark.parametrize("form", FORMS)
async def test_set_level_two_sequential_requests(form: str) -> None:
    async with ReplayServer(q_replies()) as server:
        outcome = await client_for(server, form).execute(Command("h", CommandKind.SET_LEVEL, level="eco"), MINI3)
    assert outcome.kind == OutcomeKind.OK
    assert [str(r) for r in server.requests] == ["ascset|0,workmode,set,0", "ascset|0,worklevel,set,-1"]
    if form == "json":
        assert json.loads(server.requests[0].raw) == {"command": "ascset", "parameter": "0,workmode,set,0"}
    else:
        assert server.requests[0].raw == b"ascset|0,workmode,set,0"


@pytest.mark.parametrize("form", FORMS)
async def test_first_refusal_stops(form: str) -> None:
    replies = q_replies(**{"ascset|0,workmode,set,0": rs.set_failed(BUSY_MSG.removeprefix("ASC 0 set failed: "))})
    async with ReplayServer(replies) as server:
        client = client_for(server, form)
        outcome = await client.execute(Command("h", CommandKind.SET_LEVEL, level="eco"), MINI3)
        assert outcome.kind == OutcomeKind.BUSY
        assert len(server.requests) == 1
        with pytest.raises(Busy):
            await client.request(Request("ascset", "0,workmode,set,0"))
        with pytest.raises(Refused) as info:
            await client.request(Request("nosuchcommand"))
        assert info.value.code == 14 and info.value.status == "E"


@pytest.mark.parametrize("form", FORMS)
async def test_soft_off_on_real_replies(form: str) -> None:
    replies = q_replies(**{
        "ascset|0,softoff,1:1753434821": rs.sample_reply(rs.Q_ASCSET_SOFTOFF_JSON),
        "ascset|0,softon,1:1753434757": rs.sample_reply(rs.Q_ASCSET_SOFTON_JSON),
    })
    async with ReplayServer(replies) as server:
        client = client_for(server, form)
        off = await client.execute(Command("h", CommandKind.SOFT_OFF, at_miner_time=1753434821), Q)
        on = await client.execute(Command("h", CommandKind.SOFT_ON, at_miner_time=1753434757), Q)
    assert off.kind == OutcomeKind.OK and "success softoff" in off.message
    assert on.kind == OutcomeKind.OK


async def test_soft_on_closed_connection_is_unconfirmed() -> None:
    async with ReplayServer(q_replies(ascset=CLOSE)) as server:
        client = client_for(server)
        assert await client.raw(Request("ascset", "0,softon,1:5")) == b""
        on = await client.execute(Command("h", CommandKind.SOFT_ON, at_miner_time=5), Q)
        off = await client.execute(Command("h", CommandKind.SOFT_OFF, at_miner_time=5), Q)
    assert on.kind == OutcomeKind.UNCONFIRMED and on.ok
    assert off.kind == OutcomeKind.MALFORMED


async def test_hang_times_out() -> None:
    async with ReplayServer(q_replies(litestats=HANG, ascset=HANG)) as server:
        client = client_for(server, read_timeout=0.2)
        with pytest.raises(MinerTimeout) as info:
            await client.snapshot()
        assert info.value.phase == "read"
        assert (await client.execute(Command("h", CommandKind.POLL), Q)).kind == OutcomeKind.TIMEOUT
        soft_on = await client.execute(Command("h", CommandKind.SOFT_ON, at_miner_time=5), Q)
        assert soft_on.kind == OutcomeKind.UNCONFIRMED


async def test_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*args: Any, **kw: Any) -> Any:
        await asyncio.sleep(10)

    monkeypatch.setattr(asyncio, "open_connection", never)
    client = MinerClient("127.0.0.1", 1, connect_timeout=0.05)
    with pytest.raises(MinerTimeout) as info:
        await client.version()
    assert info.value.phase == "connect" and not info.value.sent
    outcome = await client.execute(Command("h", CommandKind.SOFT_ON, at_miner_time=5), Q)
    assert outcome.kind == OutcomeKind.TIMEOUT  # nothing was sent, so not "unconfirmed"


async def test_a_cancel_during_the_close_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping cancels a heater's request; if the cancel lands while the connection closes, the request must
    still end cancelled. A swallowed cancel let the heater loop run on, and the shutdown waited for it forever."""
    closing = asyncio.Event()

    async def slow_close(self: asyncio.StreamWriter) -> None:  # a peer that takes its time to close
        closing.set()
        await asyncio.sleep(10)

    monkeypatch.setattr(asyncio.StreamWriter, "wait_closed", slow_close)
    async with ReplayServer(q_replies()) as server:
        request = asyncio.create_task(client_for(server).raw(Request("version")))
        await asyncio.wait_for(closing.wait(), 5)  # the reply is in, the close under way
        request.cancel()
        done, _ = await asyncio.wait({request}, timeout=2)
        assert request in done and request.cancelled()


async def test_unreachable() -> None:
    client = MinerClient("127.0.0.1", free_tcp_port(), connect_timeout=1)
    with pytest.raises(Unreachable):
        await client.version()
    assert (await client.execute(Command("h", CommandKind.POLL), Q)).kind == OutcomeKind.UNREACHABLE


async def test_reply_size_guard_and_garbage() -> None:
    async with ReplayServer({"version": b"x" * 5000, "litestats": b"\xff\xfe not a reply\x00"}) as server:
        client = client_for(server, max_reply_bytes=1000)
        with pytest.raises(MalformedReply):
            await client.version()
        with pytest.raises(MalformedReply):
            await client.snapshot()
        assert (await client.execute(Command("h", CommandKind.POLL), Q)).kind == OutcomeKind.MALFORMED


async def test_never_two_requests_in_flight() -> None:
    async with ReplayServer(q_replies(), delay_s=0.03) as server:
        client = client_for(server)
        await asyncio.gather(*(client.version() for _ in range(5)))
        assert server.max_concurrent == 1 and len(server.requests) == 5
        other = client_for(server)
        await asyncio.gather(client.version(), other.version())
        assert server.max_concurrent == 2  # the server would allow it: the lock is what prevents it


async def test_pool_changes_never_reach_the_wire() -> None:
    async with ReplayServer(q_replies()) as server:
        client = client_for(server)
        smuggled = object.__new__(Request)
        object.__setattr__(smuggled, "command", "setpool")
        object.__setattr__(smuggled, "parameter", "admin,admin,0,stratum+tcp://x:1,u,p")
        for form in FORMS:
            client.form = form
            with pytest.raises(ForbiddenCommand):
                await client.raw(smuggled)
        with pytest.raises(ForbiddenCommand):
            await client.raw(Request("switchpool", "1"))
    assert server.connections == 0 and server.requests == []


async def test_unsupported_and_invalid_send_nothing() -> None:
    from thermostat.miners.errors import InvalidValue, Unsupported

    async with ReplayServer(q_replies()) as server:
        client = client_for(server)
        with pytest.raises(Unsupported):
            await client.execute(Command("h", CommandKind.SOFT_OFF, at_miner_time=5), NANO3S)
        with pytest.raises(InvalidValue):
            await client.execute(Command("h", CommandKind.SET_FAN, fan_pct=7), Q)
    assert server.connections == 0


async def test_scan_finds_the_replay_miner() -> None:
    async with ReplayServer(q_replies()) as server:
        found = await scan("127.0.0.0/29", port=server.port, concurrency=3, timeout=0.5)
    assert [(f.host, f.info.spec) for f in found] == [("127.0.0.1", Q)]
    assert len([r for r in server.requests if r.command == "version"]) == 1


async def test_scan_skips_non_avalon() -> None:
    not_avalon = rs.status_reply("S", 22, "CGMiner versions", VERSION=[{"PROD": "Antminer S9", "MODEL": "S9"}])
    async with ReplayServer({"version": not_avalon}) as server:
        assert await scan("127.0.0.1/32", port=server.port, timeout=0.5) == []


def test_scan_refuses_large_networks() -> None:
    assert len(scan_hosts("10.0.0.0/16")) == 65534
    assert scan_hosts("10.0.0.7/32") == ["10.0.0.7"]
    with pytest.raises(ScanTooLarge):
        scan_hosts("10.0.0.0/15")
    with pytest.raises(ValueError):
        scan_hosts("not-a-network")


async def test_scan_concurrency_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import thermostat.miners.scan as scan_module

    active = peak = 0
    seen: list[str] = []

    async def fake_probe(host: str, port: int, timeout: float, form: str) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        seen.append(host)
        await asyncio.sleep(0.001)
        active -= 1

    monkeypatch.setattr(scan_module, "probe", fake_probe)
    assert await scan("10.1.0.0/22", concurrency=7) == []
    assert peak == 7 and len(seen) == 1022 and len(set(seen)) == 1022
