"""`thermostat override` against the real service (real mosquitto, a simulated Mini 3 over TCP): the CLI sends
the same MQTT command as Home Assistant and prints what the service's state then says (issue 13 item 2)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import test_service
from test_service import House, until

pytestmark = pytest.mark.broker
house = test_service.house  # the simulated house fixture: one Mini 3 over TCP, a real broker


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "thermostat", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_override_for_a_duration_then_cancel(house: House) -> None:
    service = await house.start_service()
    await house.reading(20.0)
    room = service.rooms["living"]
    await until(lambda: room.target is not None, 10, "a first tick")
    config = str(house.config_path)

    code, out, err = await cli("override", "living", "22", "--for", "2h", "--config", config)
    assert code == 0, out + err
    assert out.startswith("living: 22 °C until") and "(override)" in out
    assert room.target is not None and room.target.reason == "override" and room.target.temp == 22.0
    assert room.target.next_change is not None
    left = room.target.next_change - house.clock.now()
    assert timedelta(hours=1, minutes=50) < left <= timedelta(hours=2)

    code, out, err = await cli("override", "living", "22.3", "--config", config)
    assert code == 1 and "refused" in err and "multiple" in err
    assert room.target.temp == 22.0  # unchanged

    code, out, err = await cli("override", "living", "--cancel", "--config", config)
    assert code == 0, out + err
    assert "override cancelled" in out and room.target.reason != "override"

    code, _, err = await cli("override", "attic", "22", "--config", config)
    assert code == 2 and "no room 'attic'" in err

    await house.stop_service()
    code, _, err = await cli("override", "living", "22", "--for", "1h", "--config", config, "--timeout", "3")
    assert code == 1 and "no thermostat service is running" in err
