"""What every simulated miner shares: virtual time advanced event by event.

A subclass keeps its own `_t` (the time its physics has reached), `_inlet` (room air in °C) and `time_fn`, and
implements `_next_event()` (the earliest pending scheduled action: soft on/off taking effect, boot finished,
calibration finished, ...) and `_advance(t)` (continuous physics up to `t`).
"""

from __future__ import annotations

from collections.abc import Callable


class EventDrivenSim:
    time_fn: Callable[[], float]
    _t: float
    _inlet: float

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
