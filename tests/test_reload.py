"""SIGHUP reload through `thermostat.commands.run.serve`: a valid new config replaces the running one without
touching the heaters; an invalid one is logged and the old one keeps running. Also a real SIGHUP to a real
`thermostat run` process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from thermostat.clock import ScaledClock
from thermostat.commands.run import serve
from thermostat.config import load_config
from thermostat.miners.models import MODELS
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

pytestmark = pytest.mark.broker


def house_yaml(tmp: Path, broker_port: int, miner_port: int, target: float) -> str:
    return f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: reload, client_id: reload-test}}
rooms:
  living:
    sensor: {{topic: sensors/reload, stale_after: 10m}}
    target: {target}
    limits: {{min_c: 7, max_c: 26}}
    heaters: [mini3-a]
heaters:
  mini3-a: {{host: 127.0.0.1, port: {miner_port}, model: mini3}}
state: {{path: {tmp / 'state.db'}}}
"""


async def retained(port: int, topic: str) -> bytes:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic)
        msg = await asyncio.wait_for(anext(aiter(client.messages)), 5)
        return bytes(msg.payload)  # type: ignore[arg-type]


async def wait_retained(port: int, topic: str, want: bytes, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        last = await retained(port, topic)
        if last == want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{topic}: wanted {want!r}, last {last!r}")


async def test_reload_applies_a_valid_config_and_keeps_the_old_on_errors(
    tmp_path: Path, mqtt_broker: object, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ScaledClock(20.0)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20)
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    path = tmp_path / "house.yaml"
    path.write_text(house_yaml(tmp_path, port, server_port(server), 20.0))
    stop, reload = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(path, load_config(path), clock=clock, stop=stop, reload=reload))
    try:
        await wait_retained(port, "reload/room/living/target", b"20.0")
        commands_before = len([r for _, r in miner.commands_log if "ascset" in r])

        # a broken config: the old one keeps running, the errors are logged with their line
        path.write_text(house_yaml(tmp_path, port, server_port(server), 20.0).replace("target: 20.0", "targte: 22"))
        with caplog.at_level(logging.ERROR, logger="thermostat"):
            reload.set()
            await asyncio.sleep(1.0)
        assert "reload refused" in caplog.text and "targte" in caplog.text and "house.yaml:" in caplog.text
        assert not task.done()
        assert await retained(port, "reload/room/living/target") == b"20.0"

        # a valid new config replaces it
        path.write_text(house_yaml(tmp_path, port, server_port(server), 22.5))
        reload.set()
        await wait_retained(port, "reload/room/living/target", b"22.5")
        assert not task.done()
        # the reload itself sent the miner nothing (no exit action, no blind re-commanding)
        assert len([r for _, r in miner.commands_log if "ascset" in r]) == commands_before
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
        await close_server(server)


def test_sighup_to_a_running_process(tmp_path: Path, mqtt_broker: object) -> None:
    async def scenario() -> None:
        miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2)
        server = await serve_miner(miner, "127.0.0.1", 0)
        port = mqtt_broker.port  # type: ignore[attr-defined]
        path = tmp_path / "house.yaml"
        path.write_text(house_yaml(tmp_path, port, server_port(server), 19.0))
        proc = subprocess.Popen([sys.executable, "-m", "thermostat", "run", "--config", str(path)],
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await wait_retained(port, "reload/room/living/target", b"19.0", 15)
            path.write_text(house_yaml(tmp_path, port, server_port(server), 21.5))
            proc.send_signal(signal.SIGHUP)
            await wait_retained(port, "reload/room/living/target", b"21.5", 15)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
            assert await retained(port, "reload/status") == b"offline"
            # a clean exit: nothing was hashing, and the room state was published as it stopped
            state = json.loads(await retained(port, "reload/room/living/state"))
            assert state["target"] == 21.5
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await close_server(server)

    asyncio.run(scenario())


def test_ctrl_c_says_at_once_what_stopping_waits_for(tmp_path: Path, mqtt_broker: object) -> None:
    """SIGINT (Ctrl-C) on `thermostat run FILE`: the first line logged says which heaters go to standby and
    how long it may wait for them, before the miners are waited for; then a clean exit."""

    async def scenario() -> None:
        miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2)
        server = await serve_miner(miner, "127.0.0.1", 0)
        port = mqtt_broker.port  # type: ignore[attr-defined]
        path = tmp_path / "house.yaml"
        path.write_text(house_yaml(tmp_path, port, server_port(server), 19.0))
        proc = subprocess.Popen([sys.executable, "-m", "thermostat", "run", str(path)],
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            await wait_retained(port, "reload/room/living/target", b"19.0", 15)
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.to_thread(proc.communicate, timeout=30)
            assert proc.returncode == 0, err
            lines = err.splitlines()
            said = [i for i, line in enumerate(lines) if "stopping: sending" in line]
            assert said, err
            assert "mini3" in lines[said[0]] and "to standby" in lines[said[0]] and "up to 20 s" in lines[said[0]]
            stopped = [i for i, line in enumerate(lines) if "thermostat stopped" in line]
            assert stopped and said[0] < stopped[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await close_server(server)

    asyncio.run(scenario())
