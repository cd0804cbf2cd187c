"""The heater state machine over real TCP (issue 4 "done when"): the pure machine, the asyncio MinerClient and a
simulated miner with its quirks on a loopback socket, on a clock running 30x faster (shortened timings)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from thermostat.clock import ScaledClock
from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState
from thermostat.domain.actions import OutcomeKind
from thermostat.miners.client import MinerClient
from thermostat.miners.models import MODELS
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

SPEED = 30.0


async def drive(machine: HeaterMachine, client: MinerClient, clock: ScaledClock, done: Callable[[], bool],
                timeout: float, outcomes: list[OutcomeKind]) -> None:
    """The service's heater loop in miniature: step, carry out over TCP, feed back, sleep until due."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = clock.monotonic()
        for command in machine.step(now):
            outcome = await client.execute(command, machine.spec)
            if command.kind.value != "poll":
                outcomes.append(outcome.kind)
            machine.on_outcome(command, outcome, clock.monotonic())
        if done():
            return
        await clock.sleep(max(0.05, min(1.0, machine.next_due(clock.monotonic()) - clock.monotonic())))
    raise AssertionError(f"timed out in {machine.state} ({machine.last_failure})")


async def test_wake_through_quirks_over_tcp_then_reboot_then_standby() -> None:
    clock = ScaledClock(SPEED)
    spec = MODELS["mini3"]
    miner = SimMiner(spec, time_fn=clock.epoch, boot_seconds=60, calibration_seconds=45, clock_skew_s=300)
    miner.faults.softon_no_reply = True  # soft on answered by a closed connection
    server = await serve_miner(miner, "127.0.0.1", 0)
    client = MinerClient("127.0.0.1", server_port(server), connect_timeout=1, read_timeout=2)
    machine = HeaterMachine("m", spec, HeaterSettings(min_on_s=60, min_off_s=60), now=clock.monotonic())
    outcomes: list[OutcomeKind] = []
    try:
        await drive(machine, client, clock, lambda: machine.state == HeaterState.STANDBY, 10, outcomes)
        # the first mode change after the wake is refused while "calibrating", as users saw
        miner.refuse_next_mode_changes(1)
        machine.want("super", clock.monotonic(), reason="cold")
        await drive(machine, client, clock,
                    lambda: machine.state == HeaterState.RUNNING and machine.confirmed_level == "super", 30, outcomes)
        assert miner.level_name == "super" and miner.hashing and miner.wakes == 1
        assert OutcomeKind.UNCONFIRMED in outcomes, "soft on without a reply must count as unconfirmed"
        assert OutcomeKind.BUSY in outcomes, "the refused first mode change must have been retried"
        # the soft on was scheduled on the miner's (skewed) clock, a few seconds ahead
        softons = [(t, req) for t, req in miner.commands_log if "softon" in req]
        received_at, request = softons[0]
        ts = int(request.split("softon,1:")[1].split('"')[0])
        assert 0 < ts - (received_at + miner.clock_skew_s) <= 30, "soft on not scheduled just ahead of the miner clock"

        # a reboot in the middle of running: the machine notices and converges on the wanted level again
        miner.reboot()
        await asyncio.sleep(0.5)
        await drive(machine, client, clock,
                    lambda: machine.state == HeaterState.RUNNING and miner.calibrated and miner.level_name == "super",
                    30, outcomes)
        assert miner.reboots == 1

        # standby: soft off, verified In Idle (safety, so the minimum on time does not hold it)
        machine.want(None, clock.monotonic(), reason="warm", safety=True)
        await drive(machine, client, clock, lambda: machine.state == HeaterState.STANDBY, 20, outcomes)
        miner.update()
        assert not miner.hashing and miner.state == "In Idle"
        assert not any("pool" in req for _, req in miner.commands_log)
    finally:
        await close_server(server)


async def test_unreachable_miner_goes_to_fault_then_recovers_over_tcp() -> None:
    clock = ScaledClock(SPEED * 4)
    spec = MODELS["q"]
    miner = SimMiner(spec, time_fn=clock.epoch, boot_seconds=30, calibration_seconds=30)
    server = await serve_miner(miner, "127.0.0.1", 0)
    client = MinerClient("127.0.0.1", server_port(server), connect_timeout=0.5, read_timeout=0.5)
    machine = HeaterMachine("q", spec, HeaterSettings(min_on_s=60, min_off_s=60), now=clock.monotonic())
    outcomes: list[OutcomeKind] = []
    try:
        await drive(machine, client, clock, lambda: machine.state == HeaterState.STANDBY, 10, outcomes)
        miner.faults.refuse_connections = True
        machine.want("eco", clock.monotonic(), reason="cold")
        await drive(machine, client, clock, lambda: machine.state == HeaterState.FAULT, 40, outcomes)
        assert not machine.available
        miner.faults.refuse_connections = False
        await drive(machine, client, clock,
                    lambda: machine.state == HeaterState.RUNNING and machine.confirmed_level == "eco", 60, outcomes)
        assert miner.level_name == "eco"
    finally:
        await close_server(server)
