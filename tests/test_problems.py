"""Problems and the log lines a homeowner reads (issue 12): the registry, its MQTT topic and Home Assistant
sensor, room problems from the control decision, and one plain WARNING line per event that matters."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import aiomqtt
import ha_schema
import pytest

from thermostat.adapters.ratelimit import RateLimiter
from thermostat.clock import ScaledClock
from thermostat.config import HeaterConfig, load_config
from thermostat.core.heater import HeaterSettings, HeaterState
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.service.household import default_heater_settings
from thermostat.service.problems import Problems
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

SPEED = 20.0


def test_raise_change_clear_and_log_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    problems = Problems(RateLimiter(window_s=600.0, burst=2, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="thermostat.problems"):
        for _ in range(50):  # raised every tick: logged once
            problems.set("store", "state file cannot be written", now=1000.0, severity="error")
        problems.set("room:a", "Living: no working heater", now=1001.0, room="a")
        problems.set("room:a", "Living: no working heater", now=1002.0, room="a")
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert records == [("ERROR", "problem: state file cannot be written"),
                       ("WARNING", "problem: Living: no working heater")]
    doc = json.loads(problems.as_json())
    assert doc["problem"] is True and doc["count"] == 2
    assert doc["text"] == "state file cannot be written; Living: no working heater"
    assert doc["problems"][1] == {"key": "room:a", "text": "Living: no working heater", "severity": "warning",
                                  "room": "a", "since": 1001.0}
    assert problems.for_room("a") == ["Living: no working heater"] and problems.for_room("b") == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="thermostat.problems"):
        problems.clear("store", now=1003.0)
        problems.clear("store", now=1004.0)  # already clear: nothing
    assert [r.getMessage() for r in caplog.records] == ["resolved: state file cannot be written"]
    assert json.loads(problems.as_json())["count"] == 1


def test_a_flapping_problem_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    problems = Problems(RateLimiter(window_s=600.0, burst=2, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="thermostat.problems"):
        for i in range(200):
            now[0] = float(i)
            problems.set("store", "cannot be written" if i % 2 == 0 else None, now=float(i))
    assert len(caplog.records) <= 4  # 2 raised + 2 resolved lines in the 10-minute window
    assert problems.get("store") is None


def house(tmp: Path, broker_port: int, miner_port: int) -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: probs, client_id: probs-test}}
rooms:
  living:
    name: Living room
    sensor: {{topic: sensors/probs, stale_after: 60s}}
    target: 21
    limits: {{min_c: 7, max_c: 22}}
    control: {{mode: hysteresis}}
    heaters: [mini]
heaters:
  mini: {{host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 60s, min_off: 60s}}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    return path


async def retained(port: int, topic: str) -> bytes:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic)
        msg = await asyncio.wait_for(anext(aiter(client.messages)), 5)
        return bytes(msg.payload)  # type: ignore[arg-type]


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def publish(port: int, topic: str, payload: str) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1)


def quick_faults(cfg: HeaterConfig) -> HeaterSettings:
    """The configured heater with faults found and retried fast (a few simulated seconds, not minutes)."""
    return replace(default_heater_settings(cfg), backoff_base_s=2.0, backoff_max_s=4.0, max_failures=3,
                   fault_poll_s=5.0, fault_recover_s=20.0)


@pytest.mark.broker
async def test_room_problems_and_the_ha_problem_sensor(tmp_path: Path, mqtt_broker: object) -> None:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby")
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    service = Service(load_config(house(tmp_path, port, server_port(server))), clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: service.link.connected, 10, "connected")
        await asyncio.sleep(0.3)
        # HA: the discovery of the service's problem sensor validates, and its state starts clear
        config = json.loads(await retained(port, "homeassistant/binary_sensor/probs_service_problem/config"))
        assert ha_schema.problems("homeassistant/binary_sensor/probs_service_problem/config", config) == []
        assert config["device_class"] == "problem" and config["state_topic"] == "probs/problem"
        assert json.loads(await retained(port, "probs/problem"))["problem"] is False
        # HA's payload for unknown while the room has no reading (an empty payload would keep the old value)
        assert await retained(port, "probs/room/living/current_temp") == b"None"
        await publish(port, "sensors/probs", "20.5")
        await wait_for(lambda: service.rooms["living"].filter.last_value == 20.5, 10, "reading accepted")
        await asyncio.sleep(0.3)
        assert await retained(port, "probs/room/living/current_temp") == b"20.50"

        # a problem the control decision reports for the room (the core fills RoomDecision.problems) is raised,
        # published on <base>/problem and in the room's state, and cleared when the decision no longer has it
        seen: list[tuple[str, dict[str, object]]] = []

        async def watch(ready: asyncio.Event) -> None:
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe("probs/problem")
                await client.subscribe("probs/room/living/state")
                ready.set()
                async for msg in client.messages:
                    seen.append((str(msg.topic), json.loads(bytes(msg.payload))))  # type: ignore[arg-type]

        ready = asyncio.Event()
        watcher = asyncio.create_task(watch(ready))
        await ready.wait()
        await asyncio.sleep(0.3)
        room = service.rooms["living"]
        assert room.decision is not None
        room.decision = replace(room.decision, problems=("no working heater",))
        service._bookkeep_room(room, clock.monotonic(), clock.now())
        service._bookkeep_service(clock.monotonic(), clock.now())
        assert service.problems.for_room("living") == ["Living room: no working heater"]
        await asyncio.sleep(0.3)  # sent: a retained value not yet sent is replaced by a newer one for its topic
        service.tick()  # the real decision has no problem: cleared
        assert service.problems.get("room:living") is None
        await asyncio.sleep(0.5)
        watcher.cancel()
        problem_docs = [doc for topic, doc in seen if topic == "probs/problem"]
        states = [doc for topic, doc in seen if topic == "probs/room/living/state"]
        raised = [d for d in problem_docs if d["problem"]]
        assert raised and raised[0]["text"] == "Living room: no working heater"
        assert raised[0]["problems"][0]["room"] == "living"  # type: ignore[index]
        assert any(s["problems"] == ["Living room: no working heater"] for s in states)
        assert problem_docs[-1]["problem"] is False and states[-1]["problems"] == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)


@pytest.mark.broker
async def test_events_a_homeowner_needs_are_one_plain_warning_line(
    tmp_path: Path, mqtt_broker: object, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ScaledClock(SPEED)
    miner = SimMiner(MODELS["mini3"], time_fn=clock.epoch, boot_seconds=20, calibration_seconds=20,
                     start_state="standby")
    server = await serve_miner(miner, "127.0.0.1", 0)
    miner_port = server_port(server)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    service = Service(load_config(house(tmp_path, port, miner_port)), clock=clock, heater_settings=quick_faults)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    machine = lambda: service.heaters["mini"].machine  # noqa: E731

    def warned(fragment: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and fragment in r.getMessage()]

    try:
        with caplog.at_level(logging.WARNING, logger="thermostat"):
            await wait_for(lambda: machine() is not None and machine().state == HeaterState.STANDBY, 10, "standby")
            await publish(port, "sensors/probs", "21.0")
            await wait_for(lambda: service.rooms["living"].decision is not None, 5, "decided")

            # miner unreachable, faulty, back, recovered
            await close_server(server)
            await wait_for(lambda: warned("not answering"), 10, "unreachable line")
            await wait_for(lambda: machine().state == HeaterState.FAULT, 20, "fault")
            await wait_for(lambda: warned("marked faulty"), 5, "fault line")
            server = await serve_miner(miner, "127.0.0.1", miner_port)
            await wait_for(lambda: warned("answering again"), 20, "back line")
            await wait_for(lambda: warned("recovered from fault"), 20, "recovered line")

            # sensor lost (silent past stale_after = 60 s, 3 s here) and back
            await wait_for(lambda: warned("no temperature reading"), 10, "sensor lost line")
            await publish(port, "sensors/probs", "21.5")
            await wait_for(lambda: warned("temperature reading back"), 5, "sensor back line")

            # above the maximum: a safety standby
            await publish(port, "sensors/probs", "22.6")
            await wait_for(lambda: warned("safety standby"), 5, "safety line")

        for fragment, want in [
            ("not answering", f"heater mini: miner at 127.0.0.1:{miner_port} not answering properly"),
            ("marked faulty", "heater mini: marked faulty ("),
            ("answering again", f"heater mini: miner at 127.0.0.1:{miner_port} answering again"),
            ("no temperature reading", "room living: no temperature reading for more than 60 s (last reading "
                                       "21.0 °C, topic sensors/probs); heaters to standby"),
            ("temperature reading back", "room living: temperature reading back: 21.5 °C"),
            ("safety standby", "room living: safety standby: room 22.6 °C above its maximum 22.0 °C"),
        ]:
            lines = warned(fragment)
            assert len(lines) == 1, (fragment, lines)
            assert lines[0].startswith(want), (want, lines[0])
        for r in caplog.records:
            text = r.getMessage()
            assert "\n" not in text and " object at 0x" not in text and "Error(" not in text, text
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)
