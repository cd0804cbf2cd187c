"""What the service publishes and accepts over MQTT, in terms of its runtime objects.

The topic layout and the discovery payloads live in `thermostat.adapters.ha` (pure builders); this module
maps the service's rooms and heaters onto them, and turns parsed commands into service-level changes.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from thermostat.adapters import ha
from thermostat.core.heater import HeaterState
from thermostat.core.mpc import MpcController, plan_series
from thermostat.service import view

if TYPE_CHECKING:
    from thermostat.service.household import HeaterRuntime, RoomRuntime, Service


REMOTE_OFF = "remote off (Mining Rig Monitor)"


# Home Assistant's payload for "unknown": an empty payload is ignored and the old value stays on screen.
UNKNOWN = "None"


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def usable_reading(service: Service, room: RoomRuntime) -> float | None:
    """The room's reading if it is usable now (seen and not stale), else None."""
    now = service.clock.monotonic()
    value = room.filter.value(now)
    if value is None or room.filter.is_stale(now):
        return None
    return value


def room_state_messages(service: Service, room: RoomRuntime) -> Iterator[tuple[str, str]]:
    base = f"{service.base}/room/{room.id}"
    target = room.target
    decision = room.decision
    if room.state.mode == "off":
        action = "off"
    elif decision is not None and decision.heating:
        action = "heating"
    else:
        action = "idle"
    usable = usable_reading(service, room)
    yield f"{base}/current_temp", UNKNOWN if usable is None else _num(usable)
    humidity = view.room_humidity(service, room)
    yield f"{base}/humidity", UNKNOWN if humidity is None else _num(humidity, 0)
    yield f"{base}/target", _num(target.temp if target else None, 1)
    yield f"{base}/mode", room.state.mode
    yield f"{base}/action", action
    yield f"{base}/preset", shown_preset(room)
    yield f"{base}/energy", _num(room.energy_kwh, 3)
    tariff = service.config.tariff
    if tariff is not None and tariff.price_per_kwh is not None:
        yield f"{base}/cost", _num(room.energy_kwh * tariff.price_per_kwh, 2)
    elif tariff is not None:  # time of use / dynamic: what was spent since start, at the price in force
        yield f"{base}/cost", _num(room.cost, 2)
    yield f"{base}/demand", _num(decision.demand_w if decision else None, 0)
    # the decision, and why a heater that should heat does not (minimum off, wake cap, fault, remote off, ...)
    reason = view.room_reason(service, room)
    yield f"{base}/reason", reason
    yield f"{base}/state", _room_json(service, room, reason)


def shown_preset(room: RoomRuntime) -> str:
    """The preset HA shows: `boost` while a boost runs, else the held preset, else "none"."""
    if room.state.override_label and room.target is not None and room.target.reason == "override":
        return room.state.override_label
    return room.state.preset or "none"


def _room_json(service: Service, room: RoomRuntime, reason: str) -> str:
    target = room.target
    return json.dumps({
        "target_source": view.describe_target(target, room.decision, room.cfg.limits.min_c, service.clock.now(),
                                              view.room_tz(room)),
        "why": reason,
        "heater_reasons": {h.id: view.heater_reason(service, h) for h in room.heaters},
        "current_temp": room.filter.last_value,
        "humidity": view.room_humidity(service, room),
        "sensors": view.sensor_views(service, room),
        "target": target.temp if target else None,
        "target_reason": target.reason if target else None,
        # local time with its offset, whether the schedule or an override set it
        "next_change": target.next_change.astimezone(room.schedule.tz).isoformat()
        if target and target.next_change else None,
        "mode": room.state.mode,
        "preset": None if shown_preset(room) == "none" else shown_preset(room),
        "demand_w": room.decision.demand_w if room.decision else None,
        "reason": room.decision.reason if room.decision else None,
        "energy_kwh": round(room.energy_kwh, 4),
        "rejected_readings": {k: n for k, n in room.filter.counters().items() if k != "accepted"},
        "remote_off": [h.id for h in room.heaters if h.remote_off],
        "sensor_ok": usable_reading(service, room) is not None,
        "problems": service.problems.for_room(room.id),
        **_planner_state(service, room),
    }, default=str)


def _planner_state(service: Service, room: RoomRuntime) -> dict[str, Any]:
    """The learned room model and the current plan (mpc rooms), as flat attributes."""
    controller = room.control.controller
    out = view.planner_view(room)
    if out is None or not isinstance(controller, MpcController):
        return {}
    plan = controller.plan
    if plan is not None and controller.active:
        made = service.clock.now() - timedelta(seconds=service.clock.monotonic() - plan.start)
        power, air = plan_lists(plan_series(plan), plan.start)
        out["plan_at"] = made.astimezone(view.room_tz(room)).isoformat(timespec="seconds")
        out["plan_step_min"] = round(PLAN_STEP_S / 60)
        out["plan_air_c"] = air
        out["plan_power_w"] = power
    return out


PLAN_STEP_S = 1800.0  # the room state's plan lists: one value per half hour of the horizon


def plan_lists(series: Sequence[tuple[float, float, float]], start: float,
               step_s: float = PLAN_STEP_S) -> tuple[list[float], list[float]]:
    """A plan's steps `(end time, W, predicted air °C)` from `start` as two short lists, one value per `step_s`
    of the horizon: the mean planned power in each interval and the predicted air temperature at its end."""
    ends = [t for t, _, _ in series]
    power: list[float] = []
    air: list[float] = []
    k = 1
    while ends and start + k * step_s <= ends[-1] + 1e-6:
        lo, hi = start + (k - 1) * step_s, start + k * step_s
        energy = 0.0
        prev = start
        for end, watts, _ in series:  # the power of a step holds from the previous step's end to its own
            energy += watts * max(0.0, min(end, hi) - max(prev, lo))
            prev = end
        power.append(round(energy / step_s))
        i = bisect.bisect_left(ends, hi - 1e-6)
        if i == 0 or abs(ends[i] - hi) < 1e-6:
            value = series[i][2]
        else:  # between two step ends: linear
            (t0, _, a0), (t1, _, a1) = series[i - 1], series[i]
            value = a0 + (a1 - a0) * (hi - t0) / (t1 - t0)
        air.append(round(value, 2))
        k += 1
    return power, air


def heater_state_messages(service: Service, h: HeaterRuntime) -> Iterator[tuple[str, str]]:
    base = f"{service.base}/heater/{h.id}"
    machine = h.machine
    snap = machine.last_snapshot if machine is not None else None
    yield f"{base}/power", _num(snap.power_w if snap else None, 0)
    yield f"{base}/hashrate", _num(snap.hashrate_ths if snap else None, 2)
    yield f"{base}/chip_temp", _num(snap.chip_temp_max_c if snap else None, 1)
    yield f"{base}/inlet_temp", _num(snap.inlet_temp_c if snap else None, 1)
    yield f"{base}/outlet_temp", _num(snap.outlet_temp_c if snap else None, 1)
    yield f"{base}/fan", _num(float(snap.fan_pct) if snap and snap.fan_pct is not None else None, 0)
    yield f"{base}/state", machine.state.value if machine is not None else HeaterState.UNKNOWN.value
    level = "auto" if h.controlled else h.manual_level or "standby"
    yield f"{base}/level", level
    yield f"{base}/current_level", (machine.confirmed_level or "standby") if machine is not None else "unknown"
    yield f"{base}/controlled", "ON" if h.controlled else "OFF"
    hv = view.heater_view(service, h)
    yield f"{base}/reason", hv["reason"]
    yield f"{base}/attributes", json.dumps(
        {k: hv[k] for k in ("reason", "hold", "wanted", "control", "manual_level", "watts", "follows", "follows_at")},
        default=str)
    if service.mrm is not None and h.id in service.mrm.heaters:  # Mining Rig Monitor remote switch
        yield f"{base}/remote", "off" if h.remote_off else "on"


def discovery_messages(service: Service) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from ha.discovery_for_service(service)
