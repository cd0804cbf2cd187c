"""One command to the running service over MQTT, and its answer: what `thermostat override` and `thermostat away`
use. The service takes the same command topics Home Assistant uses, so the CLI and HA change the same state.

`request()` connects, reads the service's retained availability, subscribes to the topics that will answer,
publishes the command (none: only read the retained state) and waits until `answered(topic, payload)` says the
service's state shows the change, or an error message arrives, or `timeout_s` passes. It never raises for a broker
that is down: it returns a `Reply`.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomqtt

from thermostat.config import MqttConfig


@dataclass(frozen=True)
class Reply:
    ok: bool
    text: str  # for the person: the confirmed state, the service's error, or why nothing was confirmed
    payload: bytes = b""


Answered = Callable[[str, bytes], str | None]  # a confirmation text when this message shows the change, else None


async def request(
    mqtt: MqttConfig,
    topic: str | None,
    payload: str,
    *,
    watch: Sequence[str],
    error_topics: Sequence[str],
    answered: Answered,
    timeout_s: float = 10.0,
    password: str | None = None,
) -> Reply:
    availability = f"{mqtt.base_topic}/status"
    tls = ssl.create_default_context() if mqtt.tls else None
    try:
        async with aiomqtt.Client(
            mqtt.host, mqtt.port, username=mqtt.username, password=password, tls_context=tls,
            identifier=f"{mqtt.client_id}-cli-{uuid.uuid4().hex[:8]}", timeout=timeout_s,
        ) as client:
            await client.subscribe(availability)
            for t in (*watch, *error_topics):
                await client.subscribe(t)
            status = await _first(client, availability, min(2.0, timeout_s))
            if status is None or status.strip().lower() != b"online":
                state = "offline" if status is not None else "never seen"
                return Reply(False, f"no thermostat service is running for this broker ({availability} is {state})")
            if topic is None:  # only read the retained state
                return await _answer(client, set(watch), set(), answered, timeout_s, retained=True)
            await client.publish(topic, payload.encode("utf-8"), qos=1)
            return await _answer(client, set(watch), set(error_topics), answered, timeout_s)
    except aiomqtt.MqttError as exc:
        return Reply(False, f"cannot reach the MQTT broker at {mqtt.host}:{mqtt.port}: {exc}")


async def _first(client: aiomqtt.Client, topic: str, timeout_s: float) -> bytes | None:
    try:
        async with asyncio.timeout(timeout_s):
            async for msg in client.messages:
                if str(msg.topic) == topic:
                    return _bytes(msg.payload)
    except TimeoutError:
        return None
    return None


async def _answer(client: aiomqtt.Client, watch: set[str], errors: set[str], answered: Answered,
                  timeout_s: float, *, retained: bool = False) -> Reply:
    try:
        async with asyncio.timeout(timeout_s):
            async for msg in client.messages:
                topic, data = str(msg.topic), _bytes(msg.payload)
                if topic in errors and not msg.retain:
                    return Reply(False, f"refused: {data.decode('utf-8', 'replace')}", data)
                if topic in watch and (retained or not msg.retain):  # retained = the state before the command
                    confirmed = answered(topic, data)
                    if confirmed is not None:
                        return Reply(True, confirmed, data)
    except TimeoutError:
        pass
    return Reply(False, f"sent, but the service did not confirm it within {timeout_s:g} s")


def _bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode("utf-8") if payload is not None else b""
