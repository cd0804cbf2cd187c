"""Fire wall-clock moments (schedule block boundaries, daily housekeeping) with APScheduler 3.x.

The control loop already re-evaluates `effective_target()` on every tick, so this only makes the service
react *at* a boundary instead of up to one tick later, and runs housekeeping once a day. Both callbacks
must be idempotent ("re-evaluate the target now", never "toggle"): APScheduler can fire a job late, and
a cron job at a wall time that occurs twice fires twice (shared/reference/dependencies.md §3).

Choices:

* boundaries are computed by the pure `target_at(...).next_change` (DST handled there) and registered
  as one-shot DateTrigger jobs; after each firing the next one is computed again. Nothing relies on
  APScheduler's own DST arithmetic.
* boundary jobs use ``misfire_grace_time=None``: a late run (event loop stalled, host suspended, clock
  stepped by NTP) still re-evaluates, which is always right, instead of being dropped as a misfire.
  ``coalesce=True`` folds a backlog into one run.
* housekeeping is a CronTrigger at 03:30 local: it exists and is unique on both DST nights in Europe and
  North America (transitions are at 01:00 UTC / 02:00 local). A run missed by more than 6 h is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from thermostat.core.schedule import Schedule, target_at

log = logging.getLogger(__name__)

BOUNDARY_JOB = "thermostat-block-boundary"
HOUSEKEEPING_JOB = "thermostat-housekeeping"
HOUSEKEEPING_MISFIRE_S = 6 * 3600

AsyncCallback = Callable[[], Awaitable[None]]


class BlockScheduler:
    """Calls `on_boundary()` at every schedule change of any of the schedules `schedule_getter()` returns,
    and `housekeeping()` daily at 03:30 local (zone `housekeeping_tz`, default: the first schedule's)."""

    def __init__(
        self,
        schedule_getter: Callable[[], Schedule | Iterable[Schedule]],
        on_boundary: AsyncCallback,
        housekeeping: AsyncCallback,
        *,
        housekeeping_tz: tzinfo | None = None,
        extra_deadlines: Callable[[], Iterable[datetime | None]] | None = None,
        now: Callable[[], datetime] | None = None,
        scheduler: AsyncIOScheduler | None = None,
    ) -> None:
        self._get = schedule_getter
        self._on_boundary = on_boundary
        self._housekeeping = housekeeping
        self._hk_tz = housekeeping_tz
        self._extra = extra_deadlines
        self._now = now or (lambda: datetime.now(UTC))
        self._scheduler = scheduler or AsyncIOScheduler(timezone=UTC)
        self._next: datetime | None = None

    def _schedules(self) -> list[Schedule]:
        got = self._get()
        return [got] if isinstance(got, Schedule) else list(got)

    @property
    def next_boundary(self) -> datetime | None:
        return self._next

    @property
    def scheduler(self) -> AsyncIOScheduler:
        return self._scheduler

    def compute_next(self, now: datetime | None = None) -> datetime | None:
        """The earliest upcoming change of any schedule (or extra deadline, e.g. an override's end)."""
        now = now or self._now()
        candidates: list[datetime] = []
        for sched in self._schedules():
            nxt = target_at(sched, now).next_change
            if nxt is not None:
                candidates.append(nxt)
        if self._extra is not None:
            candidates.extend(d for d in self._extra() if d is not None and d > now)
        return min(candidates, default=None)

    def start(self) -> None:
        """Register the jobs and start the scheduler (call inside the running event loop)."""
        tz = self._hk_tz
        if tz is None:
            scheds = self._schedules()
            tz = scheds[0].tz if scheds else UTC
        self._scheduler.add_job(
            self._run_housekeeping,
            CronTrigger(hour=3, minute=30, timezone=tz),
            id=HOUSEKEEPING_JOB,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=HOUSEKEEPING_MISFIRE_S,
        )
        self.reschedule()
        if not self._scheduler.running:
            self._scheduler.start()

    def reschedule(self) -> None:
        """(Re)compute the next boundary; call after a schedule, override or away change."""
        nxt = self.compute_next()
        self._next = nxt
        if nxt is None:
            if self._scheduler.get_job(BOUNDARY_JOB) is not None:
                self._scheduler.remove_job(BOUNDARY_JOB)
            return
        # Never earlier than "now": a boundary computed just before it passes still fires at once.
        run_at = max(nxt, datetime.now(UTC) + timedelta(milliseconds=1))
        self._scheduler.add_job(
            self._fire,
            DateTrigger(run_date=run_at, timezone=UTC),
            id=BOUNDARY_JOB,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        log.debug("next schedule boundary at %s", nxt.isoformat())

    async def _fire(self) -> None:
        try:
            await self._on_boundary()
        except Exception:
            log.exception("schedule boundary callback failed")
        finally:
            self.reschedule()

    async def _run_housekeeping(self) -> None:
        try:
            await self._housekeeping()
        except Exception:
            log.exception("housekeeping failed")

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
