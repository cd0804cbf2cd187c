"""What the service is doing and why, as one JSON-able document (API version 1).

The same document feeds the dashboard page, `thermostat status` (through the local API, `GET /api/state`)
and the reasons on the MQTT state topics. The reasons themselves are computed in the core
(`thermostat.core.explain`); this module only gathers them with the readings and targets.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from thermostat import __version__
from thermostat.core.explain import (
    HeaterHold,
    describe_hold,
    describe_target,
    explain_follow,
    explain_heater,
    wall_time,
)
from thermostat.core.mpc import MpcController

__all__ = ["describe_target", "heater_reason", "planner_view", "room_reason", "room_tz", "state_document"]

if TYPE_CHECKING:
    from thermostat.service.household import HeaterRuntime, RoomRuntime, Service

API_VERSION = 1


def room_tz(room: RoomRuntime) -> tzinfo | None:
    """The zone a room's times are shown in: its schedule's, or the host's for a fixed target."""
    return room.schedule.tz if room.cfg.schedule is not None else None


def room_action(room: RoomRuntime) -> str:
    if room.state.mode == "off":
        return "off"
    return "heating" if room.decision is not None and room.decision.heating else "idle"


def wants_heat(room: RoomRuntime) -> bool:
    """The controller asks for heat (not a safety standby, not mode off)."""
    d = room.decision
    return room.state.mode == "heat" and d is not None and not d.safety and d.demand_w > 0


def heater_hold(service: Service, h: HeaterRuntime) -> HeaterHold | None:
    return explain_heater(h.machine, service.clock.monotonic(), controlled=h.controlled,
                          manual_level=h.manual_level, remote_off=h.remote_off,
                          room_wants_heat=wants_heat(service.rooms[h.room_id]))


def heater_reason(service: Service, h: HeaterRuntime) -> str:
    room = service.rooms[h.room_id]
    return describe_hold(heater_hold(service, h), service.clock.monotonic(), service.clock.now(), room_tz(room))


def room_reason(service: Service, room: RoomRuntime) -> str:
    """The room's decision, and for a room that wants heat, why a heater that should heat does not (yet)."""
    decision = room.decision
    parts = [decision.reason] if decision is not None and decision.reason else []
    for h in room.heaters:
        if h.remote_off or not h.controlled or wants_heat(room):
            text = heater_reason(service, h)
            if text:
                parts.append(f"{h.id}: {text}")
    return "; ".join(parts)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


def room_humidity(service: Service, room: RoomRuntime) -> float | None:
    """The room's relative humidity (%), if a sensor message carried one within the room's `stale_after`."""
    if room.humidity is None or room.humidity_at is None:
        return None
    if service.clock.monotonic() - room.humidity_at > room.cfg.stale_after:
        return None
    return room.humidity


def sensor_views(service: Service, room: RoomRuntime) -> list[dict[str, Any]]:
    """Each configured sensor of the room: topic, its own last reading, age and staleness."""
    now = service.clock.monotonic()
    out = []
    for sc, f in zip(room.cfg.all_sensors, room.filter.filters, strict=True):
        out.append({
            "topic": sc.topic,
            "reading": f.last_value,
            "age_s": None if f.last_time is None else round(now - f.last_time, 1),
            "stale": f.is_stale(now),
        })
    return out


def room_view(service: Service, room: RoomRuntime) -> dict[str, Any]:
    now, wall = service.clock.monotonic(), service.clock.now()
    tz = room_tz(room)
    last_time = room.filter.last_time
    target, decision, st = room.target, room.decision, room.state
    temp = None
    if target is not None:
        temp = min(max(target.temp, room.cfg.limits.min_c), room.cfg.limits.max_c)
    return {
        "id": room.id,
        "name": room.cfg.name or room.id,
        "reading": room.filter.value(now),
        "humidity": room_humidity(service, room),
        "combine": room.cfg.combine,
        "sensors": sensor_views(service, room),
        "reading_age_s": None if last_time is None else round(now - last_time, 1),
        "stale": room.filter.is_stale(now),
        "target": temp,
        "target_source": describe_target(target, decision, room.cfg.limits.min_c, wall, tz),
        "target_kind": target.reason if target is not None else None,
        "next_change": _iso(target.next_change if target is not None else None),
        "mode": st.mode,
        "preset": st.preset,
        "presets": sorted(room.schedule.presets),
        "override": None if st.override_temp is None else {
            "temp": st.override_temp, "until": _iso(st.override_until)},
        "min_c": room.cfg.limits.min_c,
        "max_c": room.cfg.limits.max_c,
        "demand_w": None if decision is None else round(decision.demand_w, 1),
        "action": room_action(room),
        "reason": room_reason(service, room),
        "energy_kwh": round(room.energy_kwh, 4),
        "heaters": [h.id for h in room.heaters],
        "timezone": str(tz) if tz is not None else None,
        "planner": planner_view(room),
    }


def planner_view(room: RoomRuntime) -> dict[str, Any] | None:
    """An mpc room's planner: what it runs (`planner`: mpc, or why its pid fallback), the learned room model's
    figures and, while it plans, the plan's summary; None for a room with another controller."""
    controller = room.control.controller
    if not isinstance(controller, MpcController):
        return None
    out: dict[str, Any] = {"controller": "mpc", "planner": controller.note or "mpc"}
    if controller.model is not None:
        out.update(controller.model.summary())
    if controller.plan is not None and controller.active:
        out.update(controller.plan.summary())
    return out


def heater_view(service: Service, h: HeaterRuntime) -> dict[str, Any]:
    now, wall = service.clock.monotonic(), service.clock.now()
    machine = h.machine
    hold = heater_hold(service, h)
    tz = room_tz(service.rooms[h.room_id])
    snap = machine.last_snapshot if machine is not None else None
    return {
        "id": h.id,
        "room": h.room_id,
        "model": h.spec.display if h.spec is not None else None,
        "state": machine.state.value if machine is not None else "unknown",
        "level": (machine.confirmed_level or "standby") if machine is not None else "unknown",
        "wanted": (machine.wanted_level or "standby") if machine is not None else None,
        "control": "auto" if h.controlled else "manual",
        "manual_level": h.manual_level,
        "levels": ["standby", *h.usable_levels_w()] if h.spec is not None else [],
        "watts": None if machine is None else round(machine.estimated_wall_w, 0),
        "chip_temp": snap.chip_temp_max_c if snap is not None else None,
        "remote_off": h.remote_off,
        "hold": None if hold is None else {
            "code": hold.code,
            "until": _iso(wall_time(hold.until, now, wall, tz)) if hold.until is not None else None,
            "since": _iso(wall_time(hold.since, now, wall, tz)) if hold.since is not None else None,
            "detail": hold.detail,
        },
        "reason": describe_hold(hold, now, wall, tz),
        **follow_view(service, h),
    }


def follow_view(service: Service, h: HeaterRuntime) -> dict[str, Any]:
    """When the miner will follow what it was last told (a manual level, or its room's want): `follows` in words
    ("now" or e.g. "level dwell 40 s") and `follows_at` (local time, when known)."""
    now, wall = service.clock.monotonic(), service.clock.now()
    if h.remote_off:
        return {"follows": describe_hold(HeaterHold("remote_off"), now, wall), "follows_at": None}
    machine = h.machine
    level = h.manual_level if not h.controlled else (machine.wanted_level if machine is not None else None)
    hold = explain_follow(machine, now, level)
    tz = room_tz(service.rooms[h.room_id])
    return {
        "follows": "now" if hold is None else describe_hold(hold, now, wall, tz),
        "follows_at": None if hold is None or hold.until is None else _iso(wall_time(hold.until, now, wall, tz)),
    }


def state_document(service: Service) -> dict[str, Any]:
    return {
        "api": API_VERSION,
        "version": __version__,
        "time": _iso(service.clock.now()),
        "mqtt_connected": bool(service.link.connected),
        "away": service.away.document(),
        "rooms": [room_view(service, room) for room in service.rooms.values()],
        "heaters": [heater_view(service, h) for h in service.heaters.values()],
        "outdoor": outdoor_view(service),
    }


def outdoor_view(service: Service) -> dict[str, Any] | None:
    """The house's outdoor temperature (None when no `outdoor:` is configured)."""
    cfg = service.config.outdoor
    if cfg is None or cfg.topic is None:
        return None
    now = service.clock.monotonic()
    at = service.outdoor_at
    return {
        "topic": cfg.topic,
        "reading": service.outdoor_c,
        "age_s": None if at is None else round(now - at, 1),
        "stale": service._outdoor(now) is None,
    }
