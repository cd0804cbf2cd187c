"""LuxOS and Braiins OS drivers against their simulators over real TCP (`serve_miner` + `MinerClient`)."""

from __future__ import annotations

import pytest

from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import MinerState
from thermostat.domain.spec import ModelSpec
from thermostat.miners.client import MinerClient
from thermostat.miners.models import BRAIINS_S19, LUXOS_S21
from thermostat.sim.factory import make_sim_miner
from thermostat.sim.server import close_server, serve_miner, server_port

T0 = 1_767_225_600.0


class VTime:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def cmd(kind: CommandKind, **kw: object) -> Command:
    return Command("h", kind, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["json", "text"])
@pytest.mark.parametrize("spec", [LUXOS_S21, BRAIINS_S19], ids=lambda s: s.key)
async def test_poll_standby_wake_level(spec: ModelSpec, form: str) -> None:
    vt = VTime()
    sim = make_sim_miner(spec, time_fn=vt, start_state="standby", boot_seconds=30, calibration_seconds=30)
    server = await serve_miner(sim, "127.0.0.1", 0)
    try:
        client = MinerClient("127.0.0.1", server_port(server), form=form, read_timeout=2.0)
        snap = await client.snapshot(spec)
        assert snap.state == MinerState.STANDBY and snap.miner_time == int(T0)

        out = await client.execute(cmd(CommandKind.SOFT_ON, at_miner_time=int(T0) + 5), spec)
        assert out.kind == OutcomeKind.OK and sim.wakes == 1
        vt.t += 10
        poll = await client.execute(cmd(CommandKind.POLL), spec)
        assert poll.snapshot is not None and poll.snapshot.state == MinerState.STARTING
        vt.t += 60
        poll = await client.execute(cmd(CommandKind.POLL), spec)
        assert poll.snapshot is not None and poll.snapshot.state == MinerState.MINING
        assert poll.snapshot.power_w == pytest.approx(spec.top_level.wall_w, rel=0.01)

        target = spec.bottom_level
        out = await client.execute(cmd(CommandKind.SET_LEVEL, level=target.name), spec)
        assert out.kind == OutcomeKind.OK
        vt.t += 120
        snap = await client.snapshot(spec)
        assert spec.level_for(snap.workmode, snap.worklevel) == target and snap.state == MinerState.MINING
        assert sim.level_name == target.name

        out = await client.execute(cmd(CommandKind.SET_FAN, fan_pct=-1), spec)
        assert out.kind == OutcomeKind.OK
        out = await client.execute(cmd(CommandKind.SOFT_OFF, at_miner_time=int(vt.t)), spec)
        assert out.kind == OutcomeKind.OK and not sim.hashing
        assert (await client.snapshot(spec)).state == MinerState.STANDBY
    finally:
        await close_server(server)


async def test_luxos_client_caches_its_session_and_recovers_from_expiry() -> None:
    vt = VTime()
    sim = make_sim_miner(LUXOS_S21, time_fn=vt, start_state="mining", boot_seconds=10, calibration_seconds=10)
    server = await serve_miner(sim, "127.0.0.1", 0)
    try:
        client = MinerClient("127.0.0.1", server_port(server))
        assert (await client.execute(cmd(CommandKind.SET_LEVEL, level="eco"), LUXOS_S21)).ok
        assert client.session.session_id is not None
        first = client.session.session_id
        n = len(sim.commands_log)
        assert (await client.execute(cmd(CommandKind.SET_LEVEL, level="low"), LUXOS_S21)).ok
        assert [c for _, c in sim.commands_log[n:]] == [f'{{"command":"profileset","parameter":"{first},435MHz"}}']
        vt.t += 3600  # the session expires on the miner
        assert (await client.execute(cmd(CommandKind.SOFT_OFF), LUXOS_S21)).ok
        assert client.session.session_id not in (None, first) and sim.logons == 2
        assert not sim.hashing
    finally:
        await close_server(server)


async def test_unreachable_family_miner_gives_outcomes() -> None:
    vt = VTime()
    sim = make_sim_miner(BRAIINS_S19, time_fn=vt, start_state="mining")
    server = await serve_miner(sim, "127.0.0.1", 0)
    port = server_port(server)
    sim.faults.refuse_connections = True
    try:
        client = MinerClient("127.0.0.1", port, connect_timeout=1.0, read_timeout=1.0)
        out = await client.execute(cmd(CommandKind.POLL), BRAIINS_S19)
        assert out.kind in (OutcomeKind.UNREACHABLE, OutcomeKind.MALFORMED)
    finally:
        await close_server(server)
