"""The simulated house of `thermostat demo`: broker choice, the demo configuration, the run against the real
service on a scaled clock, its summary and its plot. The command itself is `thermostat/commands/demo.py`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from thermostat.adapters import embedded_broker
from thermostat.adapters.chart import BAND_HIGH_K, BAND_LOW_K, HeaterTrace, RoomChart, write_room_chart
from thermostat.adapters.embedded_broker import EmbeddedBroker
from thermostat.clock import ScaledClock
from thermostat.config import load_config, load_schedule
from thermostat.core.heater import HeaterState
from thermostat.core.kpi import Kpi
from thermostat.core.schedule import Schedule, effective_target, target_at
from thermostat.service import Service, ServiceTimings
from thermostat.sim.house import SimHouse
from thermostat.sim.room import ROOM_PRESETS, OutdoorProfile

log = logging.getLogger("thermostat.demo")

DEMO_DAY = date(2026, 1, 12)  # a Monday outside every exception of the default schedule
DEMO_START = dtime(5, 30)
ROOM_ID = "living"
SENSOR_TOPIC = "demo/living/sensor"
EXIT_TIMEOUT_S = 15.0  # real seconds the service's exit action may take
SHUTDOWN_LIMIT_S = EXIT_TIMEOUT_S + 15.0  # then the demo gives up waiting for the service
INSTALL_HINT = (
    "thermostat demo needs an MQTT broker: install mosquitto (apt-get install mosquitto) "
    "or the embedded one (pip install 'thermostat[demo]')"
)


# --------------------------------------------------------------------------------------------------- brokers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    path = shutil.which("mosquitto")
    if path is None:
        for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
            if Path(candidate).exists():
                return candidate
    return path


class MosquittoBroker:
    """A private mosquitto on a free loopback port (anonymous, no persistence), stopped by its own PID."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = "mosquitto"

    def start(self, timeout: float = 5.0) -> None:
        for _ in range(3):
            self.port = _free_port()
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.2):
                        return
                except OSError:
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Embedded:
    def __init__(self) -> None:
        self._broker = EmbeddedBroker("127.0.0.1")
        self.host = "127.0.0.1"
        self.name = "embedded amqtt"

    @property
    def port(self) -> int:
        return self._broker.port

    def start(self) -> None:
        self._broker.start()

    def stop(self) -> None:
        self._broker.stop()


def pick_broker(choice: str, workdir: Path) -> MosquittoBroker | _Embedded | None:
    binary = find_mosquitto() if choice in ("auto", "mosquitto") else None
    if binary is not None:
        return MosquittoBroker(binary, workdir)
    if choice in ("auto", "embedded") and embedded_broker.available():
        return _Embedded()
    return None


# --------------------------------------------------------------------------------------------------- setup


def packaged_schedule_text(name: str = "default") -> str:
    """A schedule shipped inside the package (thermostat/data/schedules/NAME.yaml)."""
    return resources.files("thermostat").joinpath("data", "schedules", f"{name}.yaml").read_text(encoding="utf-8")


def heater_ids(models: list[str]) -> dict[str, str]:
    """["mini3", "q", "mini3"] -> {"mini3-a": "mini3", "q-a": "q", "mini3-b": "mini3"}."""
    ids: dict[str, str] = {}
    for model in models:
        n = sum(1 for m in ids.values() if m == model)
        ids[f"{model}-{chr(ord('a') + n)}"] = model
    return ids


def demo_config_yaml(*, mqtt_port: int, heaters: dict[str, int], models: dict[str, str]) -> str:
    """The demo's house configuration (YAML). Paths are relative to the config file's directory."""
    lines = [
        "# written by `thermostat demo`",
        "mqtt:",
        "  host: 127.0.0.1",
        f"  port: {mqtt_port}",
        "  base_topic: thermostat-demo",
        "  client_id: thermostat-demo",
        "rooms:",
        f"  {ROOM_ID}:",
        "    name: Living room",
        f"    sensor: {{topic: {SENSOR_TOPIC}, json_key: temperature, stale_after: 30m}}",
        "    schedule: schedule.yaml",
        "    limits: {min_c: 7, max_c: 26}",
        "    control: {mode: pid}",
        f"    heaters: [{', '.join(heaters)}]",
        "heaters:",
    ]
    for hid, port in heaters.items():
        lines.append(f"  {hid}: {{host: 127.0.0.1, port: {port}, model: {models[hid]}}}")
    lines += ["state: {path: state.db}", "log: {level: warning}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- summary


@dataclass
class DemoResult:
    samples: list[Any] = field(default_factory=list)
    interrupted: bool = False
    service_crashed: str | None = None
    final_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands_sent: int = 0
    command_errors: int = 0
    readings: int = 0
    readings_rejected: int = 0
    metered_kwh: float = 0.0
    wakes: dict[str, int] = field(default_factory=dict)
    real_seconds: float = 0.0


def _target_at(schedule: Schedule, when: datetime, min_c: float, max_c: float) -> float:
    return min(max(effective_target(schedule, when).temp, min_c), max_c)


def summarize(result: DemoResult, schedule: Schedule, *, min_c: float = 7.0, max_c: float = 26.0,
              speed: float = 1.0) -> dict[str, Any]:
    samples = result.samples
    kpi = Kpi(band_low_k=BAND_LOW_K, band_high_k=BAND_HIGH_K)
    targets = [_target_at(schedule, s.when, min_c, max_c) for s in samples]
    in_band_s = 0.0
    comfort_s = 0.0
    comfort_in_band_s = 0.0
    comfort_start: Any = None
    reached: Any = None
    top = max(targets) if targets else math.nan
    for i, (s, target) in enumerate(zip(samples, targets, strict=True)):
        kpi.add(s.t, s.air_c, target, s.total_w, s.outdoor_c)
        kpi.note_levels(s.levels)
        rose = (i > 0 and target > targets[i - 1]) or (i == 0 and target == top)
        if rose and comfort_start is None:  # the first comfort block of the run
            comfort_start = s
        if comfort_start is not None and reached is None and s.air_c >= target - BAND_LOW_K:
            reached = s
        if i + 1 < len(samples):
            dt = samples[i + 1].t - s.t
            ok = target - BAND_LOW_K <= s.air_c <= target + BAND_HIGH_K
            in_band_s += dt if ok else 0.0
            if target == top:
                comfort_s += dt
                comfort_in_band_s += dt if ok else 0.0
    k = kpi.result()
    tz = schedule.tz

    def local(s: Any) -> str | None:
        return None if s is None else s.when.astimezone(tz).strftime("%H:%M")

    final = result.final_states
    all_standby = bool(final) and all(v["state"] == "standby" and not v["miner_hashing"] for v in final.values())
    return {
        "start": local(samples[0]) if samples else None,
        "end": local(samples[-1]) if samples else None,
        "simulated_hours": k.duration_h,
        "real_seconds": round(result.real_seconds, 1),
        "speed": speed,
        "interrupted": result.interrupted,
        "service_crashed": result.service_crashed,
        "band_low_k": BAND_LOW_K,
        "band_high_k": BAND_HIGH_K,
        "comfort_target_c": top,
        "comfort_start": local(comfort_start),
        "reached_band": reached is not None,
        "reached_band_at": local(reached),
        "minutes_to_band": None if reached is None or comfort_start is None
        else (reached.t - comfort_start.t) / 60.0,
        "minutes_in_band": in_band_s / 60.0,
        "comfort_minutes": comfort_s / 60.0,
        "comfort_minutes_in_band": comfort_in_band_s / 60.0,
        "max_overshoot_k": k.max_overshoot_k,
        "discomfort_kh": k.discomfort_kh,
        "rms_error_k": k.rms_error_k,
        "final_air_c": samples[-1].air_c if samples else None,
        "energy_kwh": k.energy_kwh,
        "metered_kwh": result.metered_kwh,
        "wakes": sum(result.wakes.values()),
        "wakes_by_heater": dict(result.wakes),
        "level_changes": k.level_changes,
        "commands_sent": result.commands_sent,
        "command_errors": result.command_errors,
        "readings": result.readings,
        "readings_rejected": result.readings_rejected,
        "heaters_at_exit": final,
        "all_heaters_standby": all_standby,
    }


def format_summary(s: dict[str, Any]) -> list[str]:
    def num(v: Any, fmt: str, none: str = "-") -> str:
        return none if v is None else format(v, fmt)

    lines = [
        f"summary: {s['start']} → {s['end']} simulated ({s['simulated_hours']:.2f} h in {s['real_seconds']:.0f} s"
        f" real, ×{s['speed']:g}){'  — interrupted' if s['interrupted'] else ''}",
    ]
    if s["reached_band"]:
        lines.append(
            f"  comfort block from {s['comfort_start']} (target {s['comfort_target_c']:.1f} °C): band reached at "
            f"{s['reached_band_at']}, {s['minutes_to_band']:.0f} min after the block began"
        )
    else:
        lines.append(f"  comfort block from {s['comfort_start']} (target {num(s['comfort_target_c'], '.1f')} °C): "
                     "band NOT reached")
    lines += [
        f"  in band (−{s['band_low_k']:g}/+{s['band_high_k']:g} K): {s['minutes_in_band']:.0f} min of the run, "
        f"{s['comfort_minutes_in_band']:.0f} of {s['comfort_minutes']:.0f} comfort min",
        f"  max overshoot {s['max_overshoot_k']:.2f} K, RMS error {s['rms_error_k']:.2f} K, "
        f"discomfort {s['discomfort_kh']:.2f} K·h, final air {num(s['final_air_c'], '.2f')} °C",
        f"  energy {s['energy_kwh']:.2f} kWh (metered by the service {s['metered_kwh']:.2f} kWh)",
        f"  wakes {s['wakes']} ({', '.join(f'{k} {v}' for k, v in s['wakes_by_heater'].items())}), "
        f"level changes {s['level_changes']}, commands sent {s['commands_sent']} ({s['command_errors']} failed)",
        f"  sensor readings {s['readings']} accepted, {s['readings_rejected']} rejected",
    ]
    ends = ", ".join(f"{hid} {v['state']} ({v['miner_state']}, {v['miner_w']:.0f} W)"
                     for hid, v in s["heaters_at_exit"].items())
    verdict = "every heater ended in standby" if s["all_heaters_standby"] else "NOT every heater ended in standby"
    lines.append(f"  at exit: {ends} — {verdict}")
    if s["service_crashed"]:
        lines.append(f"  the service crashed: {s['service_crashed']}")
    return lines


# --------------------------------------------------------------------------------------------------- plot


def write_plot(path: Path, result: DemoResult, schedule: Schedule, *, min_c: float = 7.0, max_c: float = 26.0) -> None:
    samples = result.samples
    tz = schedule.tz
    ids = list(samples[0].watts) if samples else []
    chart = RoomChart(
        title="thermostat demo: living room, real service, simulated miners",
        tz=tz,
        times=[s.when.astimezone(tz) for s in samples],
        target=[_target_at(schedule, s.when, min_c, max_c) for s in samples],
        presets=[target_at(schedule, s.when).preset for s in samples],
        reading=[s.reported_c for s in samples],
        true_air=[s.air_c for s in samples],
        outdoor=[s.outdoor_c for s in samples],
        heaters={h: HeaterTrace([s.watts[h] for s in samples], [s.levels[h] for s in samples]) for h in ids},
        kwh=result.metered_kwh,
        x_label=f"simulated local time ({tz.key})",
    )
    write_room_chart(path, chart)


# --------------------------------------------------------------------------------------------------- run


def _progress_line(service: Any, house: Any, clock: Any, tz: ZoneInfo) -> str:
    room = service.rooms[ROOM_ID]
    measured = room.filter.last_value
    target = room.target.temp if room.target is not None else None
    parts = []
    total = 0.0
    for hid, miner in house.sim_miners.items():
        h = service.heaters[hid]
        machine = h.machine
        watts = miner.wall_w
        total += watts
        if machine is None:
            label = "probing"
        elif machine.state == HeaterState.RUNNING and machine.confirmed_level is not None:
            label = machine.confirmed_level
        else:
            label = machine.state.value
        parts.append(f"{hid} {label}" + (f" {watts:.0f} W" if watts >= 30 else ""))
    clock_text = clock.now().astimezone(tz).strftime("%H:%M")
    room_text = "  --  " if measured is None else f"{measured:4.1f} °C"
    target_text = "--" if target is None else f"{target:.1f}"
    return f"{clock_text}  room {room_text}  target {target_text}  {ROOM_ID}: {', '.join(parts)}  total {total:.0f} W"


async def run_demo(args: argparse.Namespace, broker_host: str, broker_port: int, workdir: Path,
                   out: Any = sys.stdout) -> tuple[DemoResult, Schedule]:
    models = heater_ids([m.strip() for m in args.heaters.split(",") if m.strip()])
    (workdir / "schedule.yaml").write_text(packaged_schedule_text("default"), encoding="utf-8")

    schedule = load_schedule(workdir / "schedule.yaml")
    tz = schedule.tz
    start = datetime.combine(DEMO_DAY, DEMO_START, tzinfo=tz).astimezone(UTC)
    clock = ScaledClock(args.speed, start=start)
    start_hour = DEMO_START.hour + DEMO_START.minute / 60.0
    house = SimHouse(
        clock,
        models,
        mqtt_host=broker_host,
        mqtt_port=broker_port,
        sensor_topic=SENSOR_TOPIC,
        room_params=ROOM_PRESETS[args.room],
        initial_air_c=args.start_temp,
        outdoor=OutdoorProfile(mean_c=args.outdoor, amplitude_k=3.0, peak_hour=15.0, start_hour=start_hour),
    )
    result = DemoResult(samples=house.history)
    ports = await house.start()
    config_path = workdir / "thermostat-demo.yaml"
    config_path.write_text(demo_config_yaml(mqtt_port=broker_port, heaters=ports, models=models), encoding="utf-8")
    config = load_config(config_path)
    service = Service(config, clock=clock, timings=ServiceTimings(exit_timeout_s=EXIT_TIMEOUT_S))

    interrupt = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, interrupt.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass

    house_stop = asyncio.Event()
    service_stop = asyncio.Event()
    real0 = time.monotonic()
    house_task = asyncio.create_task(house.run(house_stop), name="house")
    service_task = asyncio.create_task(service.run(service_stop), name="service")
    end_t = args.hours * 3600.0
    progress_every = 2.0  # real seconds
    next_progress = time.monotonic()
    try:
        while clock.monotonic() < end_t and not interrupt.is_set() and not service_task.done():
            if not args.quiet and time.monotonic() >= next_progress:
                print(_progress_line(service, house, clock, tz), file=out, flush=True)
                next_progress += progress_every
            remaining_real = (end_t - clock.monotonic()) / args.speed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupt.wait(), max(0.01, min(0.25, remaining_real)))
        if not args.quiet:
            print(_progress_line(service, house, clock, tz), file=out, flush=True)
        result.interrupted = interrupt.is_set()
        if result.interrupted and not args.quiet:
            print("interrupted: stopping the service (heaters to standby)…", file=out, flush=True)
        elif not args.quiet:
            print("stopping the service (heaters to standby)…", file=out, flush=True)
        service_stop.set()
        try:
            # bounded: the exit action has its own timeout; never hang the demo on a stuck shutdown
            await asyncio.wait_for(asyncio.shield(service_task), SHUTDOWN_LIMIT_S)
        except TimeoutError:
            result.service_crashed = f"the service did not stop within {SHUTDOWN_LIMIT_S:.0f} s"
            log.error("%s; cancelling it", result.service_crashed)
            service_task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(service_task, 5.0)
        except Exception as exc:  # reported in the summary; the house is still closed below
            log.exception("the service crashed")
            result.service_crashed = f"{type(exc).__name__}: {exc}"
    finally:
        if not service_task.done():
            service_stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(service_task, SHUTDOWN_LIMIT_S)
        house_stop.set()
        with contextlib.suppress(Exception):
            await house_task
        result.real_seconds = time.monotonic() - real0
        for hid, miner in house.sim_miners.items():
            h = service.heaters[hid]
            result.final_states[hid] = {
                "state": h.machine.state.value if h.machine is not None else "unknown",
                "miner_state": miner.state,
                "miner_hashing": miner.hashing,
                "miner_w": round(miner.wall_w, 1),
            }
            result.wakes[hid] = miner.wakes
            result.commands_sent += h.commands_sent
            result.command_errors += h.command_errors
        result.readings = service.counters.get("readings", 0)
        result.readings_rejected = service.counters.get("readings_rejected", 0)
        result.metered_kwh = service.rooms[ROOM_ID].energy_kwh
        await house.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return result, schedule
