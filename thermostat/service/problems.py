"""Problems the household should know about, in plain words: the state file cannot be written, a room has no
working heater, a sensor seems stuck, ...

Each problem has a key (one per cause: ``store``, ``room:<id>``); `set` raises it, replaces its text or (with
None) clears it. Raising or changing a problem logs one line (ERROR or WARNING), clearing logs that it is
resolved; both are rate-limited per key, so a problem that flaps cannot flood the journal. The service
publishes `as_json()` retained on ``<base>/problem`` (the Home Assistant problem sensor) whenever `changed`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

from thermostat.adapters.ratelimit import LimitedLog, RateLimiter

Severity = Literal["error", "warning"]

log = logging.getLogger("thermostat.problems")


@dataclass(frozen=True)
class Problem:
    key: str
    text: str
    severity: Severity
    room: str | None
    since: float  # epoch seconds when it was raised


class Problems:
    def __init__(self, limiter: RateLimiter | None = None, logger: logging.Logger = log) -> None:
        self._log = LimitedLog(logger, limiter or RateLimiter(window_s=600.0, burst=2))
        self._active: dict[str, Problem] = {}
        self.changed = True  # publish once at start (an empty list clears a problem retained by a previous run)

    def set(self, key: str, text: str | None, *, now: float, room: str | None = None,
            severity: Severity = "warning", mono: float | None = None) -> None:
        """Raise (text) or clear (None) the problem `key`. `now` is epoch seconds, `mono` the limiter's clock."""
        old = self._active.get(key)
        if text is None:
            if old is not None:
                del self._active[key]
                self.changed = True
                self._log.warning(("resolved", key), "resolved: %s", old.text, now=mono)
            return
        if old is not None and old.text == text and old.severity == severity:
            return
        since = old.since if old is not None else now
        self._active[key] = Problem(key, text, severity, room, since)
        self.changed = True
        level = logging.ERROR if severity == "error" else logging.WARNING
        self._log.log(level, ("raised", key), "problem: %s", text, now=mono)

    def clear(self, key: str, *, now: float, mono: float | None = None) -> None:
        self.set(key, None, now=now, mono=mono)

    def get(self, key: str) -> Problem | None:
        return self._active.get(key)

    def active(self) -> list[Problem]:
        return sorted(self._active.values(), key=lambda p: (p.since, p.key))

    def for_room(self, room: str) -> list[str]:
        return [p.text for p in self.active() if p.room == room]

    def as_json(self) -> str:
        items = self.active()
        return json.dumps({
            "problem": bool(items),
            "count": len(items),
            "text": "; ".join(p.text for p in items) if items else "no problem",
            "problems": [{"key": p.key, "text": p.text, "severity": p.severity, "room": p.room, "since": p.since}
                         for p in items],
        })

    def __len__(self) -> int:
        return len(self._active)


__all__ = ["Problem", "Problems", "Severity"]
