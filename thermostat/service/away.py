"""The house-wide away of a running service: its state in the store (so it survives restarts), the commands that
set and end it (MQTT `<base>/away/set` and `<base>/away/until/set`, the same from the dashboard and the CLI), what
each room holds meanwhile (with its return pre-heat, `core/steer.py`) and what is published about it.

The away ends by itself at its end time: the service clears it on the first tick after, and every room is back on
its schedule (it has been heating back since `end - pre-heat lead`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from thermostat.adapters import ha
from thermostat.config import AwayConfig
from thermostat.core.schedule import Away, Schedule
from thermostat.core.steer import HouseAway, ReturnPreheat, room_away

STORE_KEY = "house.away"
PLANNED_KEY = "house.away_planned_end"


class KeyValueStore(Protocol):
    def get_learned(self, key: str) -> tuple[Any, float] | None: ...
    def put_learned(self, key: str, value: Any, ts: float) -> None: ...


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when is not None else None


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


@dataclass
class AwayOutcome:
    """What a command did: `error` for the error topic, else `text` for the log."""

    text: str | None = None
    error: str | None = None


class HouseAwayState:
    def __init__(self, cfg: AwayConfig, store: KeyValueStore, tz: ZoneInfo) -> None:
        self.cfg = cfg
        self.store = store
        self.tz = tz  # the house's local time for "18:30" and for what is published (the first room's zone)
        self.current: HouseAway | None = None
        self.planned_end: datetime | None = None
        self.changed = True  # publish on the first tick
        self.schedules: dict[str, Schedule] = {}  # room → schedule (set by the service), for the return pre-heat
        self._load()

    # --- persistence ---------------------------------------------------------------------------------------

    def _load(self) -> None:
        saved = self.store.get_learned(STORE_KEY)
        if saved is not None and isinstance(saved[0], dict):
            doc = saved[0]
            until, since = _parse(doc.get("until")), _parse(doc.get("since"))
            temp = doc.get("temp")
            if until is not None and since is not None and (temp is None or isinstance(temp, int | float)):
                self.current = HouseAway(until=until, since=since, temp=None if temp is None else float(temp))
        planned = self.store.get_learned(PLANNED_KEY)
        self.planned_end = _parse(planned[0]) if planned is not None else None

    def _save(self, now: datetime) -> None:
        doc = None
        if self.current is not None:
            doc = {"until": _iso(self.current.until), "since": _iso(self.current.since), "temp": self.current.temp}
        self.store.put_learned(STORE_KEY, doc, now.timestamp())
        self.store.put_learned(PLANNED_KEY, _iso(self.planned_end), now.timestamp())
        self.changed = True

    # --- commands ------------------------------------------------------------------------------------------

    def command(self, payload: bytes, now: datetime, min_c: float, max_c: float) -> AwayOutcome:
        cmd = ha.parse_away_command(payload, min_c, max_c, now, self.tz)
        if isinstance(cmd, ha.Rejected):
            return AwayOutcome(error=cmd.reason)
        if isinstance(cmd, ha.CancelAway):
            if self.current is None:
                self.changed = True  # answer with the state anyway
                return AwayOutcome(text="away: not away")
            self.current = None
            self._save(now)
            return AwayOutcome(text="away cancelled: every room follows its schedule")
        until = cmd.until if cmd.until is not None else self.planned_end
        if until is None:
            return AwayOutcome(error='away: no end given: set "Away until" first, or send {"until": ...}')
        if until <= now:
            return AwayOutcome(error="away: the end is in the past")
        since = self.current.since if self.current is not None and self.current.active(now) else now
        self.current = HouseAway(until=until, since=since, temp=cmd.temp)
        self.planned_end = until
        self._save(now)
        return AwayOutcome(text=f"away until {until.astimezone(self.tz):%Y-%m-%d %H:%M}")

    def plan_end(self, payload: bytes, now: datetime) -> AwayOutcome:
        cmd = ha.parse_away_end(payload, now, self.tz)
        if isinstance(cmd, ha.Rejected):
            return AwayOutcome(error=cmd.reason)
        self.planned_end = cmd.until
        if self.current is not None and cmd.until is not None:
            self.current = HouseAway(until=cmd.until, since=self.current.since, temp=self.current.temp)
        self._save(now)
        end = "cleared" if cmd.until is None else f"{cmd.until.astimezone(self.tz):%Y-%m-%d %H:%M}"
        return AwayOutcome(text=f"away end {end}")

    # --- ticks ---------------------------------------------------------------------------------------------

    def expire(self, now: datetime) -> bool:
        """Clear an away whose end has passed (True when it just ended)."""
        if self.current is not None and now >= self.current.until:
            self.current = None
            self.planned_end = None
            self._save(now)
            return True
        return False

    def for_room(self, schedule: Schedule, now: datetime) -> Away | None:
        """What a room holds while the house is away (None when it is not, or once its pre-heat has begun)."""
        house = self.current
        if house is None or not house.active(now):
            return None
        if house.temp is None and self.cfg.temp is not None:
            house = HouseAway(until=house.until, since=house.since, temp=self.cfg.temp)
        preheat = ReturnPreheat(self.cfg.preheat_rate, self.cfg.preheat_margin, self.cfg.max_preheat)
        away = room_away(house, schedule, preheat)
        return away if away.active(now, schedule.tz) else None

    # --- publishing ----------------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The away as JSON (MQTT `<base>/away/state`, the dashboard, `thermostat status`)."""
        house = self.current
        back_from: datetime | None = None
        if house is not None:
            preheat = ReturnPreheat(self.cfg.preheat_rate, self.cfg.preheat_margin, self.cfg.max_preheat)
            ends = [room_away(house, s, preheat).end(s.tz) for s in self.schedules.values()]
            known = [e for e in ends if e is not None]
            back_from = min(known) if known else house.until
        temp = house.temp if house is not None and house.temp is not None else self.cfg.temp

        def local(when: datetime | None) -> str | None:
            return when.astimezone(self.tz).isoformat() if when is not None else None

        return {
            "active": house is not None,
            "until": local(house.until if house is not None else None),
            "since": local(house.since if house is not None else None),
            "temp": temp if house is not None else None,
            "heating_back_from": local(back_from),
            "planned_end": local(self.planned_end),
        }

    def messages(self, t: ha.Topics) -> Iterator[tuple[str, str]]:
        house = self.current
        local_end = self.planned_end if house is None else house.until
        until_text = local_end.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M") if local_end is not None \
            else ha.AWAY_NO_END
        yield t.away, "ON" if house is not None else "OFF"
        yield t.away_until, until_text
        yield t.away_state, json.dumps(self.document())
