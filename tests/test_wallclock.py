"""BlockScheduler: APScheduler fires at the next schedule boundary (short real-time case)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from thermostat.adapters.wallclock import BOUNDARY_JOB, HOUSEKEEPING_JOB, BlockScheduler
from thermostat.core.schedule import Block, Schedule

BERLIN = ZoneInfo("Europe/Berlin")


def schedule_switching_at(moment: datetime) -> Schedule:
    """A daily schedule with a change at `moment` (to the second) and another 12 h away."""
    local = moment.astimezone(BERLIN)
    at = time(local.hour, local.minute, local.second)
    other = (local + timedelta(hours=12)).time().replace(microsecond=0)
    blocks = tuple(sorted((Block(at, 21.0, "comfort"), Block(other, 18.0, "eco")), key=lambda b: b.at))
    return Schedule(tz=BERLIN, week=(blocks,) * 7, presets={"comfort": 21.0, "eco": 18.0})


async def test_boundary_fires_in_real_time() -> None:
    boundary = (datetime.now(UTC) + timedelta(seconds=1.5)).replace(microsecond=0)
    sched = schedule_switching_at(boundary)
    fired: list[datetime] = []
    event = asyncio.Event()

    async def on_boundary() -> None:
        fired.append(datetime.now(UTC))
        event.set()

    async def housekeeping() -> None:
        pass

    bs = BlockScheduler(lambda: sched, on_boundary, housekeeping)
    bs.start()
    try:
        assert bs.next_boundary == boundary
        job = bs.scheduler.get_job(BOUNDARY_JOB)
        assert job is not None and job.misfire_grace_time is None and job.coalesce
        await asyncio.wait_for(event.wait(), timeout=2.5)
        assert fired[0] >= boundary
        assert fired[0] - boundary < timedelta(seconds=0.5)
        await asyncio.sleep(0.05)
        # re-armed for the following change, 12 h later
        assert bs.next_boundary == boundary + timedelta(hours=12)
    finally:
        bs.shutdown()


async def test_housekeeping_is_daily_at_0330_local() -> None:
    sched = Schedule.from_data(
        {"timezone": "Europe/Berlin", "week": {"daily": [{"at": "06:00", "temp": 20}, {"at": "22:00", "temp": 17}]}}
    )

    async def noop() -> None:
        pass

    bs = BlockScheduler(lambda: [sched], noop, noop)
    bs.start()
    try:
        job = bs.scheduler.get_job(HOUSEKEEPING_JOB)
        assert job is not None and isinstance(job.trigger, CronTrigger)
        nxt = job.trigger.get_next_fire_time(None, datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN))
        assert nxt is not None and nxt.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") == "2026-10-25 03:30 CET"
        assert job.misfire_grace_time == 6 * 3600
    finally:
        bs.shutdown()


def test_compute_next_takes_the_earliest_and_extra_deadlines() -> None:
    a = Schedule.from_data(
        {"timezone": "UTC", "week": {"daily": [{"at": "06:00", "temp": 20}, {"at": "22:00", "temp": 17}]}}
    )
    b = Schedule.from_data(
        {"timezone": "UTC", "week": {"daily": [{"at": "07:00", "temp": 20}, {"at": "20:00", "temp": 17}]}}
    )
    now = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
    override_end = datetime(2026, 1, 7, 13, 0, tzinfo=UTC)

    async def noop() -> None:
        pass

    bs = BlockScheduler(lambda: [a, b], noop, noop, now=lambda: now)
    assert bs.compute_next() == datetime(2026, 1, 7, 20, 0, tzinfo=UTC)
    bs2 = BlockScheduler(lambda: [a, b], noop, noop, now=lambda: now, extra_deadlines=lambda: [override_end, None])
    assert bs2.compute_next() == override_end
    assert BlockScheduler(lambda: Schedule.constant(20), noop, noop, now=lambda: now).compute_next() is None
