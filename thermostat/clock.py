"""One clock, injected: real in the service, virtual in the simulator and the tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware wall-clock time (UTC)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Virtual time. Synchronous users call `advance()`; async users `await sleep()` and a driver
    coroutine calls `await run_until(t)`, which wakes sleepers in time order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
        if self._start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware start time")
        self._t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._t += seconds

    def set_now(self, when: datetime) -> None:
        self._t = (when - self._start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + max(0.0, seconds), next(self._seq), fut))
        await fut

    async def run_until(self, t: float) -> None:
        """Advance to monotonic time `t`, waking every sleeper due on the way, in order."""
        while self._sleepers and self._sleepers[0][0] <= t:
            due, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, due)
            if not fut.done():
                fut.set_result(None)
            for _ in range(20):  # let woken tasks run until they block again
                await asyncio.sleep(0)
        self._t = max(self._t, t)


class ScaledClock:
    """Real time running `speed` times faster: the demo runs the real service on this clock so an hour of
    heating takes a minute. Sleeps are divided by `speed`; now() and monotonic() are multiplied."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real0 = time.monotonic()
        self._start = start or datetime.now(UTC)

    def elapsed(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed())

    def epoch(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self.elapsed()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class SharedScaledClock:
    """Scaled time that several processes agree on: simulated time is `sim_start` at the real epoch
    `real_origin` and runs `speed` times faster than the wall clock after it. Every process built with the
    same three numbers reads the same simulated time, so a service restarted mid-run (kill -9) continues on
    the same clock as the simulated miners and rooms. For tests and the soak only (`thermostat run
    --test-clock-*`)."""

    def __init__(self, speed: float, real_origin: float, sim_start: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self.real_origin = float(real_origin)
        self.sim_start = float(sim_start)

    def elapsed(self) -> float:
        return (time.time() - self.real_origin) * self.speed

    def epoch(self) -> float:
        return self.sim_start + self.elapsed()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.epoch(), UTC)

    def monotonic(self) -> float:
        return self.elapsed()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
