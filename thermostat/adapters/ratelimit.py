"""Rate limits for what a hostile or broken peer can make the service write: log lines and error-topic messages.

`RateLimiter` lets through the first `burst` events of each key per `window_s` and counts the rest; the next
event that passes carries the number suppressed since the last one, so nothing is hidden, only summed.
Keys are kept to `max_keys` (an attacker choosing topics or payloads cannot grow the table without bound):
past that, expired keys are dropped and, if none has expired, events share one overflow key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

OVERFLOW_KEY = ("rate limiter", "other keys")


@dataclass
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0  # since the last event that passed


class RateLimiter:
    def __init__(
        self,
        window_s: float = 60.0,
        burst: int = 1,
        *,
        max_keys: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("window_s must be > 0, burst and max_keys >= 1")
        self.window_s = window_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}
        self.passed = 0
        self.suppressed = 0

    def check(self, key: Hashable, now: float | None = None) -> int | None:
        """None: suppress this event. An int: let it pass; the value is how many were suppressed before it."""
        now = self._clock() if now is None else now
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                self._drop_expired(now)
            if len(self._windows) >= self.max_keys:
                key = OVERFLOW_KEY
                window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now)
        if now - window.started >= self.window_s:
            window.started, window.passed = now, 0
        if window.passed >= self.burst:
            window.suppressed += 1
            self.suppressed += 1
            return None
        window.passed += 1
        self.passed += 1
        before, window.suppressed = window.suppressed, 0
        return before

    def _drop_expired(self, now: float) -> None:
        expired = [k for k, w in self._windows.items() if now - w.started >= self.window_s and w.suppressed == 0]
        for k in expired:
            del self._windows[k]

    def __len__(self) -> int:
        return len(self._windows)


class LimitedLog:
    """A logger whose lines are rate-limited per key; a passing line says how many like it were left out."""

    def __init__(self, logger: logging.Logger, limiter: RateLimiter) -> None:
        self.logger = logger
        self.limiter = limiter

    def log(self, level: int, key: Hashable, msg: str, *args: object, now: float | None = None,
            exc_info: bool = False, stacklevel: int = 2) -> bool:
        if not self.logger.isEnabledFor(level):
            # still counted, so that the summary on the next passing line is right once the level is lowered
            self.limiter.check(key, now)
            return False
        suppressed = self.limiter.check(key, now)
        if suppressed is None:
            return False
        if suppressed:
            msg += f" ({suppressed} more like this not logged)"
        self.logger.log(level, msg, *args, exc_info=exc_info, stacklevel=stacklevel)  # the caller's line
        return True

    def warning(self, key: Hashable, msg: str, *args: object, now: float | None = None) -> bool:
        return self.log(logging.WARNING, key, msg, *args, now=now, stacklevel=3)

    def error(self, key: Hashable, msg: str, *args: object, now: float | None = None) -> bool:
        return self.log(logging.ERROR, key, msg, *args, now=now, stacklevel=3)


__all__ = ["OVERFLOW_KEY", "LimitedLog", "RateLimiter"]
