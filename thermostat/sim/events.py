"""What every simulated miner shares: virtual time advanced event by event.

A subclass keeps its own `_t` (the time its physics has reached), `_inlet` (room air in °C), `time_fn` and
`clock_skew_s`, and
implements `_next_event()` (the earliest pending scheduled action: soft on/off taking effect, boot finished,
calibration finished, ...) and `_advance(t)` (continuous physics up to `t`).
"""

from __future__ import annotations

import json
from collections.abc import Callable


class EventDrivenSim:
    time_fn: Callable[[], float]
    clock_skew_s: float
    _t: float
    _inlet: float

    @property
    def now(self) -> float:
        """The miner's clock: true time plus its skew (what `When` reports)."""
        self.update()
        return self._t + self.clock_skew_s

    def _next_event(self) -> tuple[float, Callable[[], None]] | None:
        raise NotImplementedError

    def _advance(self, t_end: float) -> None:
        raise NotImplementedError

    def update(self) -> None:
        """Advance events and physics to `time_fn()`: each due event runs at its own time, in order."""
        now = float(self.time_fn())
        while True:
            due = self._next_event()
            if due is None or due[0] > now:
                break
            t_ev, action = due
            self._advance(max(t_ev, self._t))
            action()
        self._advance(max(now, self._t))

    def set_inlet_temp(self, c: float) -> None:
        """The room air the miner breathes in (from the room model)."""
        self.update()
        self._inlet = float(c)


class BadRequest(ValueError):
    """A JSON request that is not a JSON object (the firmware answers E/23 "Invalid JSON")."""


def parse_request(text: str) -> tuple[bool, str, str | None]:
    """One cgminer request as the firmware reads it: (as_json, command, parameter).

    JSON when it starts with `{` (`{"command": .., "parameter": ..}`; any parameter is taken as a string),
    else the plain-text `command|parameter` form split at the first `|`. Raises `BadRequest` for broken JSON."""
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not isinstance(obj, dict):
            raise BadRequest("not an object")
        raw = obj.get("parameter")
        return True, str(obj.get("command", "")).strip(), None if raw is None else str(raw)
    command, sep, rest = text.partition("|")
    return False, command.strip(), rest if sep else None
