"""House-wide away and boost against the real service (real mosquitto, a simulated Mini 3 over TCP): set from the
CLI, from Home Assistant's switch + text, kept across a restart, ended early by the return pre-heat, and the boost
preset (issue 13 item 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import test_service
from test_service import House, until
from test_steer_cli import cli

from thermostat.config import AwayConfig
from thermostat.core.schedule import Schedule
from thermostat.service.away import HouseAwayState
from thermostat.service.ha_bridge import shown_preset

pytestmark = pytest.mark.broker
house = test_service.house  # the simulated house fixture: one Mini 3 over TCP, a real broker


class MemoryStore:
    def __init__(self) -> None:
        self.values: dict[str, tuple[Any, float]] = {}

    def get_learned(self, key: str) -> tuple[Any, float] | None:
        return self.values.get(key)

    def put_learned(self, key: str, value: Any, ts: float) -> None:
        self.values[key] = (json.loads(json.dumps(value)), ts)


def test_away_state_survives_a_reload_of_its_store_and_ends_by_itself() -> None:
    tz = ZoneInfo("Europe/Berlin")
    store = MemoryStore()
    state = HouseAwayState(AwayConfig(), store, tz)
    schedule = Schedule.constant(21.0, tz)
    state.schedules = {"living": schedule}
    now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    outcome = state.command(b'{"until": "2026-12-27T16:00", "temp": 15}', now, 7.0, 26.0)
    assert outcome.error is None
    again = HouseAwayState(AwayConfig(), store, tz)  # a restart reads it back
    assert again.current == state.current and again.current is not None
    assert again.current.until == datetime(2026, 12, 27, 15, 0, tzinfo=UTC)
    again.schedules = state.schedules
    assert again.for_room(schedule, now) is not None
    # 21 − 15 = 6 K at the default 1 K/h + 30 min margin: the room leaves the away 6.5 h before the end
    lead_start = again.current.until - timedelta(hours=6, minutes=30)
    assert again.for_room(schedule, lead_start - timedelta(minutes=1)) is not None
    assert again.for_room(schedule, lead_start + timedelta(minutes=1)) is None
    assert again.document()["heating_back_from"] == lead_start.astimezone(tz).isoformat()
    assert not again.expire(again.current.until - timedelta(seconds=1))
    assert again.expire(again.current.until) and again.current is None
    assert HouseAwayState(AwayConfig(), store, tz).current is None
    for bad, fragment in [(b'{"temp": 15}', "needs"), (b'{"until": "2020-01-01"}', "past"),
                          (b'{"for": "2h", "temp": 60}', "outside"), (b"maybe", "away must be")]:
        result = again.command(bad, now, 7.0, 26.0)
        assert result.error is not None and fragment in result.error, (bad, result.error)
    assert again.command(b"ON", now, 7.0, 26.0).error is not None  # no planned end yet


async def test_away_from_the_cli_and_home_assistant_across_a_restart(house: House) -> None:
    service = await house.start_service()
    await house.reading(20.0)
    room = service.rooms["living"]
    await until(lambda: room.target is not None, 10, "a first tick")
    config = str(house.config_path)

    code, out, err = await cli("away", "--for", "2d", "--temp", "15", "--config", config)
    assert code == 0, out + err
    assert out.startswith("away until") and "15" in out
    await until(lambda: room.target is not None and room.target.reason == "away", 10, "the room away")
    assert room.target is not None and room.target.temp == 15.0

    code, out, err = await cli("away", "--config", config)  # show
    assert code == 0 and out.startswith("away until"), out + err

    await house.stop_service()
    service = await house.start_service()  # the away is kept across a restart
    room = service.rooms["living"]
    await house.reading(20.0)
    await until(lambda: room.target is not None and room.target.reason == "away", 10, "still away after restart")

    code, out, err = await cli("away", "--cancel", "--config", config)
    assert code == 0 and "cancelled" in out, out + err
    await until(lambda: room.target is not None and room.target.reason != "away", 10, "back on the schedule")

    # Home Assistant: the text sets the end, the switch starts it, OFF ends it.
    tz = service.away.tz
    end = (house.clock.now() + timedelta(days=3)).astimezone(tz).strftime("%Y-%m-%dT%H:%M")
    await house.publish("thermo/away/until/set", end)
    await until(lambda: service.away.planned_end is not None, 10, "the planned end")
    await house.publish("thermo/away/set", "ON")
    await until(lambda: service.away.current is not None, 10, "away from the HA switch")
    assert service.away.current is not None
    assert service.away.current.until.astimezone(tz).strftime("%Y-%m-%dT%H:%M") == end
    await until(lambda: room.target is not None and room.target.reason == "away", 10, "the room away again")
    assert room.target is not None and room.target.temp == 15.0  # no --temp: the default (no `away` preset)
    await house.publish("thermo/away/set", "OFF")
    await until(lambda: service.away.current is None, 10, "away ended by the HA switch")

    code, _, err = await cli("away", "--until", "1999-01-01", "--config", config)
    assert code == 1 and "refused" in err and "past" in err


async def test_boost_preset_warms_for_the_configured_time(house: House) -> None:
    service = await house.start_service()
    await house.reading(20.0)
    room = service.rooms["living"]
    await until(lambda: room.target is not None, 10, "a first tick")
    await house.publish("thermo/room/living/preset/set", "boost")
    await until(lambda: room.target is not None and room.target.reason == "override", 10, "the boost")
    assert room.target is not None and room.target.temp == 21.0 + 2.0  # fixed target 21 + boost.delta
    assert room.target.next_change is not None
    left = room.target.next_change - house.clock.now()
    assert timedelta(minutes=50) < left <= timedelta(hours=1)
    assert room.state.override_label == "boost"
    assert shown_preset(room) == "boost"
