"""Why a heater is not doing what its room wants, and where a room's target comes from (pure).

Computed once here and shown everywhere: `thermostat status`, the dashboard, the MQTT state topics and the
Home Assistant attributes. A `HeaterHold` is structured (a code, monotonic times); `describe_hold` turns it
into the words a person reads ("minimum off until 23:26"), converting monotonic times to local wall-clock
times with the `now`/`wall_now` pair the caller passes in (no clock is read here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Literal

from thermostat.core.engine import RoomDecision
from thermostat.core.heater import HeaterMachine, HeaterState, OffMethod
from thermostat.core.schedule import Target

HoldCode = Literal[
    "unidentified",  # model not probed yet (model: auto)
    "remote_off",  # Mining Rig Monitor's remote switch holds it in standby
    "manual",  # taken out of the thermostat's control: a manual level
    "fault",  # too many consecutive failures: polled at least every minute, parked or held until it recovers
    "backoff",  # a step failed, retrying
    "safety_cap",  # over-temperature or dead fan: capped for a while
    "min_off",  # minimum off time before the next wake
    "wake_cap",  # wakes per hour used up
    "min_on",  # minimum on time before a standby
    "level_dwell",  # minimum time between level changes
    "in_progress",  # a transition is under way (waking, calibrating, setting the level, stopping)
]


@dataclass(frozen=True)
class HeaterHold:
    """Why a heater is not (yet) where its room wants it. Times are monotonic seconds (the core's `now`)."""

    code: HoldCode
    until: float | None = None  # when the hold ends, if known
    since: float | None = None  # when it began, if known
    detail: str = ""  # e.g. the manual level, the last failure, the state in progress


def explain_heater(
    machine: HeaterMachine | None,
    now: float,
    *,
    controlled: bool = True,
    manual_level: str | None = None,
    remote_off: bool = False,
    room_wants_heat: bool = False,
) -> HeaterHold | None:
    """The reason this heater differs from (or will not follow) what it is asked for; None when it follows.

    `room_wants_heat`: the room's controller asks for heat. The allocator does not ask a heater that may not wake
    yet to wake, so for a heater in standby the wear rules are the reason even when nothing is wanted of it."""
    if machine is None:
        return HeaterHold("unidentified", detail="model not identified yet")
    if remote_off:
        return HeaterHold("remote_off")
    if not controlled:
        return HeaterHold("manual", detail=manual_level or "standby")
    state = machine.state
    if state == HeaterState.FAULT:
        return HeaterHold("fault", until=_finite(machine.next_due(now)), since=machine.state_since,
                          detail=machine.last_failure)
    if state == HeaterState.BACKOFF:
        return HeaterHold("backoff", until=_finite(machine.next_due(now)), since=machine.state_since,
                          detail=f"{machine.failures}/{machine.settings.max_failures}: {machine.last_failure}")
    requested, wanted = machine.requested_level, machine.wanted_level
    if machine.safety_cap is not None and requested != wanted:
        return HeaterHold("safety_cap", until=machine.safety_cap_until, detail=machine.safety_cap_reason)
    confirmed = machine.confirmed_level
    if state == HeaterState.STANDBY and (wanted is not None or room_wants_heat):
        start = machine.earliest_wake(now)
        if start > now:
            if machine.off_method == OffMethod.LOWEST:
                return HeaterHold("level_dwell", until=start)
            if machine.wakes_last_hour(now) >= machine.settings.max_wakes_per_hour:
                return HeaterHold("wake_cap", until=start)
            return HeaterHold("min_off", until=start)
        return None
    if state == HeaterState.RUNNING and wanted != confirmed:
        if wanted is None and machine.off_method != OffMethod.LOWEST:
            stop = machine.earliest_stop(now)
            return HeaterHold("min_on", until=stop) if stop > now else None
        change = machine.earliest_level_change(now)
        return HeaterHold("level_dwell", until=change) if change > now else None
    if state in (HeaterState.WAKING, HeaterState.VERIFYING, HeaterState.SETTING_MODE, HeaterState.SETTING_FAN,
                 HeaterState.STOPPING, HeaterState.UNKNOWN):
        return HeaterHold("in_progress", since=machine.state_since, detail=_progress(state, wanted))
    return None


def explain_follow(machine: HeaterMachine | None, now: float, level: str | None) -> HeaterHold | None:
    """When the miner will reach `level` (None: standby), the level just commanded by hand or wanted by its
    room, which the machine may not have been handed yet. None: it is there, or goes there on its next step;
    otherwise the wear rule, fault or transition it waits for (min_off, wake_cap, min_on, level_dwell, ...)."""
    if machine is None:
        return HeaterHold("unidentified", detail="model not identified yet")
    state = machine.state
    if state == HeaterState.FAULT:
        return HeaterHold("fault", until=_finite(machine.next_due(now)), since=machine.state_since,
                          detail=machine.last_failure)
    if state == HeaterState.BACKOFF:
        return HeaterHold("backoff", until=_finite(machine.next_due(now)), since=machine.state_since,
                          detail=f"{machine.failures}/{machine.settings.max_failures}: {machine.last_failure}")
    if state == HeaterState.STANDBY:
        if level is None:
            return None
        start = machine.earliest_wake(now)
        if start <= now:
            return None
        if machine.off_method == OffMethod.LOWEST:
            return HeaterHold("level_dwell", until=start)
        if machine.wakes_last_hour(now) >= machine.settings.max_wakes_per_hour:
            return HeaterHold("wake_cap", until=start)
        return HeaterHold("min_off", until=start)
    if state == HeaterState.RUNNING:
        if level == machine.confirmed_level:
            return None
        if level is None and machine.off_method != OffMethod.LOWEST:
            stop = machine.earliest_stop(now)
            return HeaterHold("min_on", until=stop) if stop > now else None
        change = machine.earliest_level_change(now)
        return HeaterHold("level_dwell", until=change) if change > now else None
    return HeaterHold("in_progress", since=machine.state_since, detail=_progress(state, machine.wanted_level))


def _finite(t: float) -> float | None:
    return t if math.isfinite(t) else None


def _progress(state: HeaterState, wanted: str | None) -> str:
    return {
        HeaterState.WAKING: "waking",
        HeaterState.VERIFYING: "booting and calibrating",
        HeaterState.SETTING_MODE: f"setting level {wanted}" if wanted else "setting level",
        HeaterState.SETTING_FAN: "setting the fan",
        HeaterState.STOPPING: "going to standby",
        HeaterState.UNKNOWN: "first poll",
    }.get(state, state.value)


def wall_time(t: float, now: float, wall_now: datetime, tz: tzinfo | None = None) -> datetime:
    """The wall-clock instant of monotonic time `t`, given that `now` (monotonic) is `wall_now`, in `tz`
    (None: the host's local zone)."""
    return (wall_now + timedelta(seconds=t - now)).astimezone(tz)


def describe_hold(hold: HeaterHold | None, now: float, wall_now: datetime, tz: tzinfo | None = None) -> str:
    """The hold in words, local times as HH:MM ("" when the heater follows its room)."""
    if hold is None:
        return ""

    def hhmm(t: float | None) -> str:
        return "?" if t is None else wall_time(t, now, wall_now, tz).strftime("%H:%M")

    code = hold.code
    if code == "unidentified":
        return "model not identified yet"
    if code == "remote_off":
        return "remote off (Mining Rig Monitor)"
    if code == "manual":
        return f"manual level {hold.detail}" if hold.detail != "standby" else "manual: standby"
    if code == "fault":
        text = f"fault since {hhmm(hold.since)}, next try {hhmm(hold.until)}"
        return f"{text} ({hold.detail})" if hold.detail else text
    if code == "backoff":
        return f"retry {hold.detail.split(':', 1)[0]} at {hhmm(hold.until)} after: {hold.detail.split(': ', 1)[-1]}"
    if code == "safety_cap":
        return f"{hold.detail or 'safety cap'} until {hhmm(hold.until)}"
    if code == "min_off":
        return f"minimum off until {hhmm(hold.until)}"
    if code == "wake_cap":
        return f"wake cap: next wake allowed {hhmm(hold.until)}"
    if code == "min_on":
        return f"minimum on until {hhmm(hold.until)}"
    if code == "level_dwell":
        left = 0.0 if hold.until is None else max(0.0, hold.until - now)
        return f"level dwell {math.ceil(left):.0f} s"
    return hold.detail


def describe_target(
    target: Target | None, decision: RoomDecision | None, min_c: float, wall_now: datetime, tz: tzinfo | None = None
) -> str:
    """Where the room's target comes from: schedule block, override until, away until, or frost protection."""
    if decision is not None and decision.safety and decision.reason.startswith("below minimum"):
        return f"frost protection (below minimum {min_c:.1f} °C)"
    if target is None:
        return ""

    def until() -> str:
        if target.next_change is None:
            return ""
        local = target.next_change.astimezone(tz)
        soon = target.next_change - wall_now < timedelta(hours=20)
        return f" until {local:%H:%M}" if soon else f" until {local:%a %d %b %H:%M}"

    if target.reason == "override":
        return f"override{until()}" if target.next_change is not None else "override until cancelled"
    if target.reason == "away":
        name = target.preset or "away"
        return f"{name}{until()}" if target.next_change is not None else f"{name} until cancelled"
    block = f"schedule {target.preset}" if target.preset else "schedule"
    return f"{block}{until()}"
