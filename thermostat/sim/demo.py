"""The simulated house of `thermostat demo`: broker choice, the demo configuration, the run against the real
service on a scaled clock, its summary and its plot. The command itself is `thermostat/commands/demo.py`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from thermostat.adapters import embedded_broker
from thermostat.adapters.chart import BAND_HIGH_K, BAND_LOW_K, HeaterTrace, RoomChart
from thermostat.adapters.embedded_broker import EmbeddedBroker
from thermostat.adapters.store import HistoryRow, Store
from thermostat.clock import ScaledClock, VirtualClock
from thermostat.config import load_config, load_schedule
from thermostat.core.heater import HeaterState
from thermostat.core.kpi import Kpi
from thermostat.core.schedule import Schedule, effective_target, target_at
from thermostat.core.thermal_model import Sample, true_figures
from thermostat.service import Service, ServiceTimings
from thermostat.sim.bench import BenchResult, run_one
from thermostat.sim.house import SimHouse
from thermostat.sim.plot import DemoPlot, PublishedPlan, plot_demo
from thermostat.sim.room import ROOM_PRESETS, OutdoorProfile, Room, RoomParams
from thermostat.sim.scenario import Scenario
from thermostat.yamlio import load_yaml_file

log = logging.getLogger("thermostat.demo")

DEMO_DAY = date(2026, 1, 12)  # a Monday outside every exception of the default schedule
DEMO_START = dtime(5, 30)
ROOM_ID = "living"
SENSOR_TOPIC = "demo/living/sensor"
OUTDOOR_TOPIC = "demo/outdoor"
FORECAST_TOPIC = "demo/outdoor/forecast"
BASE_TOPIC = "thermostat-demo"
STATE_TOPIC = f"{BASE_TOPIC}/room/{ROOM_ID}/state"
OUTDOOR_AMPLITUDE_K = 3.0  # the simulated weather: mean ± this, warmest at 15:00
OUTDOOR_PEAK_HOUR = 15.0
OUTDOOR_EVERY_S = 600.0  # the outdoor sensor reports every 10 simulated minutes ...
FORECAST_EVERY_S = 3600.0  # ... and the forecast (24 hourly points) is renewed every hour
LEARN_HOURS = 72.0  # history written before the start: mpc's room model needs two to three days
MAX_LEARN_HOURS = 14 * 24.0  # the service fits its model to the last 14 days
LEARN_SEED = 1000  # the learning run's sensor noise differs from the demo's
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


def demo_config_yaml(*, mqtt_port: int, heaters: dict[str, int], models: dict[str, str],
                     dashboard_port: int = 8480) -> str:
    """The demo's house configuration (YAML). Paths are relative to the config file's directory. The demo
    gives the dashboard a free port of its own, so that a thermostat already running on this machine (on the
    default 8480) and the demo do not collide."""
    lines = [
        "# written by `thermostat demo`",
        "mqtt:",
        "  host: 127.0.0.1",
        f"  port: {mqtt_port}",
        f"  base_topic: {BASE_TOPIC}",
        "  client_id: thermostat-demo",
        f"outdoor: {{topic: {OUTDOOR_TOPIC}, forecast_topic: {FORECAST_TOPIC}}}",
        "rooms:",
        f"  {ROOM_ID}:",
        "    name: Living room",
        f"    sensor: {{topic: {SENSOR_TOPIC}, json_key: temperature, stale_after: 30m}}",
        "    schedule: schedule.yaml",
        "    limits: {min_c: 7, max_c: 26}",
        "    control: {mode: mpc}",
        f"    heaters: [{', '.join(heaters)}]",
        "heaters:",
    ]
    for hid, port in heaters.items():
        lines.append(f"  {hid}: {{host: 127.0.0.1, port: {port}, model: {models[hid]}}}")
    lines += [f"dashboard: {{host: 127.0.0.1, port: {dashboard_port}}}", "state: {path: state.db}",
              "log: {level: warning}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- learning


@dataclass(frozen=True)
class Learned:
    """The learning run: what was written into the demo's state database, and where the room ended."""

    hours: float
    seconds: float  # real seconds for the run and the writing
    readings: int  # history rows with a reading
    rows: int
    outdoor_rows: int
    end_air_c: float
    end_mass_c: float
    pid_discomfort_kh: float
    wakes: int


def learning_scenario(*, models: list[str], room: str, outdoor_mean_c: float, schedule_data: dict[str, Any],
                      end: datetime, hours: float, tz: ZoneInfo) -> Scenario:
    """The demo's own room, heaters, weather and schedule for `hours` before `end`, as a bench scenario: the
    house the demo then runs, heated by pid, sensor as in the demo (reports at least every 10 minutes)."""
    start = (end - timedelta(hours=hours)).astimezone(tz)
    return Scenario.model_validate({
        "name": "demo-learning",
        "description": "the days before the demo: its room heated by pid",
        "duration_h": hours,
        "step_s": 60.0,
        "seed": LEARN_SEED,
        "start": start,
        "outdoor": {"mean_c": outdoor_mean_c, "amplitude_k": OUTDOOR_AMPLITUDE_K, "peak_hour": OUTDOOR_PEAK_HOUR},
        "room": {"preset": room, "initial_air_c": 18.0},
        "sensor": {"max_silence_s": 600.0},
        "heaters": [{"model": m} for m in models],
        "schedule": schedule_data,
    })


def run_learning(scenario: Scenario) -> tuple[list[Sample], Room, BenchResult]:
    """Run `scenario` with pid through the bench (the real heater machines, allocator and controller against the
    simulated miners, in virtual time). Returns the history (one sample per minute, as the service records it),
    the room at the end (the same physics replayed from the recorded heat: the bench keeps only the air
    temperature in its trace, the demo's house also needs the mass) and the bench's result."""
    history: list[Sample] = []
    result = run_one(scenario, "pid", history=history, keep_trace=True)
    room = scenario.build_room()
    outdoor = scenario.build_outdoor()
    gains = scenario.build_gains()
    for sample in history[:-1]:  # the bench steps the room once a minute with the heat of the minute's start
        room.step(scenario.step_s, sample.heat_w, outdoor.at(sample.t), gains.at(sample.t))
    return history, room, result


def write_learning(store_path: Path, history: list[Sample], *, start: datetime, schedule: Schedule) -> tuple[int, int]:
    """The learning run's history into the state database in the service's own format: one room row a minute
    (reading, target, the heaters' wall watts) and an outdoor reading every OUTDOOR_EVERY_S. Returns the row
    counts (history, outdoor). No model is written: the service fits its own at start."""
    epoch0 = start.timestamp()
    rows: list[HistoryRow] = []
    outdoor: list[tuple[float, float]] = []
    target = target_at(schedule, start)
    for sample in history:
        ts = epoch0 + sample.t
        if target.next_change is not None and ts >= target.next_change.timestamp():
            target = target_at(schedule, datetime.fromtimestamp(ts, UTC))
        rows.append(HistoryRow(ts, room=ROOM_ID, reading=sample.air_c, target=target.temp, watts=sample.heat_w))
        if sample.outdoor_c is not None and sample.t % OUTDOOR_EVERY_S < 1e-6:
            outdoor.append((ts, sample.outdoor_c))
    with Store(store_path) as store, store.transaction():
        store.record_history_rows(rows)
        for ts, temp in outdoor:
            store.record_outdoor(ts, temp)
    return len(rows), len(outdoor)


def learn_house(store_path: Path, *, models: list[str], room: str, outdoor_mean_c: float, schedule_path: Path,
                schedule: Schedule, end: datetime, hours: float) -> Learned:
    """Before the demo: `hours` of pid on the demo's room, written into its state database."""
    t0 = time.monotonic()
    data = load_yaml_file(schedule_path)
    scenario = learning_scenario(models=models, room=room, outdoor_mean_c=outdoor_mean_c, schedule_data=dict(data),
                                 end=end, hours=hours, tz=schedule.tz)
    history, final, result = run_learning(scenario)
    rows, outdoor_rows = write_learning(store_path, history, start=end - timedelta(hours=hours), schedule=schedule)
    return Learned(hours=hours, seconds=time.monotonic() - t0, readings=sum(s.air_c is not None for s in history),
                   rows=rows, outdoor_rows=outdoor_rows, end_air_c=final.air_c, end_mass_c=final.mass_c,
                   pid_discomfort_kh=result.discomfort_kh, wakes=result.wakes)


async def fit_before_start(workdir: Path, models: dict[str, str], start: datetime) -> float:
    """The service's own room-model fit (`Service.refit_models`, what it runs at every start and nightly) on the
    demo's state database, with the clock standing at the demo's start: a fit takes a few real seconds, which at
    ×180 would be many simulated minutes of pid fallback. The service stores the model; the demo's service then
    starts with it, as after a restart (and fits again at start, as always). Returns the real seconds it took."""
    t0 = time.monotonic()
    path = workdir / "thermostat-demo.yaml"
    # the heaters' ports are not known yet and not needed: the fit reads only the state database
    path.write_text(demo_config_yaml(mqtt_port=1883, heaters=dict.fromkeys(models, 1), models=models),
                    encoding="utf-8")
    fitter = Service(load_config(path), clock=VirtualClock(start))
    try:
        await fitter.refit_models()
    finally:
        fitter.store.close()
    return time.monotonic() - t0


def room_figures(params: RoomParams) -> dict[str, float]:
    """The simulated room's true dominant time constant and UA (what a fitted model should find)."""
    tau_s, gain = true_figures(params.c_air_j_per_k, params.c_mass_j_per_k, params.h_am_w_per_k,
                               params.h_ao_w_per_k, params.h_mo_w_per_k)
    return {"tau_h": round(tau_s / 3600.0, 1), "ua_w_per_k": round(1.0 / gain, 1)}


# --------------------------------------------------------------------------------------------------- outside


@dataclass(frozen=True)
class StateSample:
    """A room state document as published on STATE_TOPIC, with the simulated time it arrived."""

    when: datetime
    data: dict[str, Any]


async def publish_weather(house: SimHouse, clock: ScaledClock, host: str, port: int, stop: asyncio.Event) -> None:
    """The house's outdoor sensor and weather forecast: its own outdoor profile, published retained."""
    next_forecast = -math.inf
    while not stop.is_set():
        try:
            async with aiomqtt.Client(host, port, identifier="thermostat-demo-weather", keepalive=10,
                                      timeout=5) as client:
                while not stop.is_set():
                    t = house.elapsed()
                    await client.publish(OUTDOOR_TOPIC, f"{house.outdoor.at(t):.2f}", qos=1, retain=True)
                    if t >= next_forecast:
                        now = clock.now()
                        points = [{"datetime": (now + timedelta(hours=h)).isoformat(timespec="seconds"),
                                   "temperature": round(house.outdoor.at(t + h * 3600.0), 2)} for h in range(25)]
                        await client.publish(FORECAST_TOPIC, json.dumps(points), qos=1, retain=True)
                        next_forecast = t + FORECAST_EVERY_S
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), OUTDOOR_EVERY_S / clock.speed)
        except aiomqtt.MqttError as exc:
            log.warning("demo weather: MQTT error (%s); retrying", exc)
            await asyncio.sleep(0.5)


async def record_states(clock: ScaledClock, host: str, port: int, out: list[StateSample],
                        ready: asyncio.Event) -> None:
    """Every room state document the service publishes, as Home Assistant would see it (until cancelled)."""
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier="thermostat-demo-recorder", keepalive=10,
                                      timeout=5) as client:
                await client.subscribe(STATE_TOPIC, qos=1)
                ready.set()
                async for msg in client.messages:
                    try:
                        data = json.loads(bytes(msg.payload))
                    except ValueError:
                        continue
                    if isinstance(data, dict):
                        out.append(StateSample(clock.now(), data))
        except aiomqtt.MqttError as exc:
            log.warning("demo recorder: MQTT error (%s); retrying", exc)
            await asyncio.sleep(0.5)


# --------------------------------------------------------------------------------------------------- summary


@dataclass
class DemoResult:
    samples: list[Any] = field(default_factory=list)
    states: list[StateSample] = field(default_factory=list)  # the room state documents, as published
    learned: Learned | None = None
    room_truth: dict[str, float] = field(default_factory=dict)  # the simulated room's tau_h and ua_w_per_k
    start_air_c: float | None = None
    fit_seconds: float | None = None  # real seconds of the service's fit before the clock started
    stopped_at: datetime | None = None  # simulated time the run ended (the service's exit action follows)
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


MODEL_KEYS = ("model", "model_confidence", "model_tau_h", "model_ua_w_per_k", "model_rmse_k", "model_span_h")


def run_states(result: DemoResult) -> list[StateSample]:
    """The room states published during the run (not those of the exit action)."""
    end = result.stopped_at
    return [st for st in result.states if end is None or st.when <= end]


def planned(st: StateSample) -> bool:
    """The state says the room's power came from an mpc plan (not from the pid fallback)."""
    data = st.data
    return (data.get("planner") == "mpc" and isinstance(data.get("plan_air_c"), list) and "plan_step_min" in data
            and isinstance(data.get("plan_at"), str))


def planner_summary(states: list[StateSample], tz: ZoneInfo) -> dict[str, Any]:
    """What the published room states say about the planner: from when it planned, for how long, its model."""
    mpc = [st for st in states if planned(st)]
    plans = {st.data.get("plan_at") for st in mpc}
    mpc_s = total_s = 0.0
    for a, b in itertools.pairwise(states):  # a state holds until the next one
        dt = (b.when - a.when).total_seconds()
        total_s += dt
        mpc_s += dt if planned(a) else 0.0
    last = states[-1].data if states else {}
    model = {k: last[k] for k in MODEL_KEYS if k in last}
    return {
        "states_published": len(states),
        # when the first plan was made (its `plan_at`; the state carrying it may arrive a little later)
        "mpc_from": datetime.fromisoformat(mpc[0].data["plan_at"]).astimezone(tz).strftime("%H:%M") if mpc else None,
        "mpc_minutes": mpc_s / 60.0,
        "state_minutes": total_s / 60.0,
        "plans_published": len(plans),
        "planner_at_exit": last.get("planner"),
        "reason_at_exit": last.get("reason"),
        "model": model or None,
        "final_room_state": last or None,
    }


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
        "start_air_c": result.start_air_c,
        "fit_seconds": None if result.fit_seconds is None else round(result.fit_seconds, 1),
        "learning": None if result.learned is None else asdict(result.learned),
        "room_truth": dict(result.room_truth),
        **planner_summary(run_states(result), tz),
    }


def format_summary(s: dict[str, Any]) -> list[str]:
    def num(v: Any, fmt: str, none: str = "-") -> str:
        return none if v is None else format(v, fmt)

    lines = [
        f"summary: {s['start']} → {s['end']} simulated ({s['simulated_hours']:.2f} h in {s['real_seconds']:.0f} s"
        f" real, ×{s['speed']:g}){'  — interrupted' if s['interrupted'] else ''}",
    ]
    learned = s["learning"]
    if learned is None:
        lines.append("  learning run: none (--learn-hours 0): the room has no history, mpc can only run its pid "
                     "fallback")
    else:
        lines.append(
            f"  learning run: {learned['hours']:g} h of pid on this room and its heaters before the start "
            f"({learned['readings']} readings, {learned['outdoor_rows']} outdoor readings written to the state "
            f"database in {learned['seconds']:.1f} s); the room starts at {s['start_air_c']:.2f} °C")
    model, truth = s["model"], s["room_truth"]
    if model and "model_confidence" in model:
        fitted = "the service's own fit" + (f", {s['fit_seconds']:.1f} s before the clock started"
                                            if s["fit_seconds"] is not None else "")
        lines.append(
            f"  room model ({fitted}): {model['model']}, confidence "
            f"{model['model_confidence']:.2f}, τ {model['model_tau_h']:.1f} h (the simulated room: "
            f"{truth.get('tau_h', math.nan):.1f} h), UA {model['model_ua_w_per_k']:.1f} W/K "
            f"({truth.get('ua_w_per_k', math.nan):.1f})")
    else:
        lines.append("  room model: none fitted")
    if s["mpc_from"] is not None:
        lines.append(
            f"  planner: mpc planned from {s['mpc_from']}, {s['mpc_minutes']:.0f} of {s['state_minutes']:.0f} min "
            f"of published room states, {s['plans_published']} plans published; at the end: {s['planner_at_exit']}")
    else:
        lines.append(f"  planner: mpc did NOT plan (at the end: {s['planner_at_exit']})")
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


def select_plans(states: list[StateSample], n: int = 4) -> list[StateSample]:
    """Up to `n` states with distinct plans, spread over the run: the first plan, the last and between."""
    firsts: dict[str, StateSample] = {}
    for st in states:
        if planned(st):
            firsts.setdefault(st.data["plan_at"], st)
    chosen = list(firsts.values())
    if len(chosen) <= n:
        return chosen
    return [chosen[round(i * (len(chosen) - 1) / (n - 1))] for i in range(n)]


def published_plan(st: StateSample) -> PublishedPlan:
    data = st.data
    now = data.get("current_temp")
    return PublishedPlan(made=datetime.fromisoformat(data["plan_at"]),
                         step=timedelta(minutes=float(data["plan_step_min"])),
                         air_now_c=float(now) if isinstance(now, int | float) else None,
                         air_c=tuple(float(v) for v in data["plan_air_c"]),
                         power_w=tuple(float(v) for v in data["plan_power_w"]))


def write_plot(path: Path, result: DemoResult, schedule: Schedule, *, min_c: float = 7.0,
               max_c: float = 26.0) -> DemoPlot:
    samples = result.samples
    ids = list(samples[0].watts) if samples else []
    states = run_states(result)
    plans = [published_plan(st) for st in select_plans(states)]
    planned_w = [(st.when, float(st.data["plan_next_w"]) if planned(st) and "plan_next_w" in st.data else None)
                 for st in states]
    end = samples[-1].when if samples else None
    fallback = []
    for i, st in enumerate(states):
        if planned(st) or (i > 0 and not planned(states[i - 1])):
            continue
        j = i
        while j + 1 < len(states) and not planned(states[j + 1]):
            j += 1
        until = states[j + 1].when if j + 1 < len(states) else end or st.when
        fallback.append((st.when, until))
    band: list[tuple[datetime, float]] = []
    if samples:  # the schedule's target from the start to the end of the last plan, as steps at its changes
        horizon_end = max([p.end for p in plans], default=samples[-1].when)
        at = samples[0].when
        while at < horizon_end:
            band.append((at, _target_at(schedule, at, min_c, max_c)))
            change = target_at(schedule, at).next_change
            at = horizon_end if change is None or change <= at else min(change, horizon_end)
        band.append((horizon_end, _target_at(schedule, horizon_end, min_c, max_c)))
    caption = None
    if states:
        last = states[-1]
        model = last.data.get("model_confidence")
        caption = (f"room state at {last.when.astimezone(schedule.tz):%H:%M}: reason \"{last.data.get('reason')}\", "
                   f"planner {last.data.get('planner')}"
                   + (f", model {last.data.get('model')} (confidence {model:.2f})" if isinstance(model, float) else ""))
    return plot_demo(path, _room_chart(result, schedule, min_c=min_c, max_c=max_c, ids=ids), planned_w=planned_w,
                     fallback=fallback, plans=plans, band=band, caption=caption)


def _room_chart(result: DemoResult, schedule: Schedule, *, min_c: float, max_c: float, ids: list[str]) -> RoomChart:
    samples = result.samples
    tz = schedule.tz
    return RoomChart(
        title="thermostat demo: living room, real service (mpc), simulated miners",
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
    note = room.control.controller.note
    return (f"{clock_text}  room {room_text}  target {target_text}  {ROOM_ID}: {', '.join(parts)}  total {total:.0f} W"
            + (f"  [{note}]" if note else ""))


async def run_demo(args: argparse.Namespace, broker_host: str, broker_port: int, workdir: Path,
                   out: Any = sys.stdout) -> tuple[DemoResult, Schedule]:
    models = heater_ids([m.strip() for m in args.heaters.split(",") if m.strip()])
    (workdir / "schedule.yaml").write_text(packaged_schedule_text("default"), encoding="utf-8")

    schedule = load_schedule(workdir / "schedule.yaml")
    tz = schedule.tz
    start = datetime.combine(DEMO_DAY, DEMO_START, tzinfo=tz).astimezone(UTC)
    learned: Learned | None = None
    fit_seconds = 0.0
    initial_air, initial_mass = (args.start_temp if args.start_temp is not None else 17.0), None
    if args.learn_hours > 0:
        if not args.quiet:
            print(f"learning run: {args.learn_hours:g} h of pid on the room before the start (virtual time)…",
                  file=out, flush=True)
        learned = learn_house(workdir / "state.db", models=list(models.values()), room=args.room,
                              outdoor_mean_c=args.outdoor, schedule_path=workdir / "schedule.yaml",
                              schedule=schedule, end=start, hours=args.learn_hours)
        initial_air, initial_mass = learned.end_air_c, learned.end_mass_c
        fit_seconds = await fit_before_start(workdir, models, start)
        if not args.quiet:
            print(f"learning run: {learned.rows} history rows written in {learned.seconds:.1f} s, the service's "
                  f"room model fitted to them in {fit_seconds:.1f} s; the room is at {initial_air:.2f} °C",
                  file=out, flush=True)
    clock = ScaledClock(args.speed, start=start)  # after the learning run and the fit: the simulated day starts now
    start_hour = DEMO_START.hour + DEMO_START.minute / 60.0
    params = ROOM_PRESETS[args.room]
    house = SimHouse(
        clock,
        models,
        mqtt_host=broker_host,
        mqtt_port=broker_port,
        sensor_topic=SENSOR_TOPIC,
        room_params=params,
        initial_air_c=initial_air,
        initial_mass_c=initial_mass,
        outdoor=OutdoorProfile(mean_c=args.outdoor, amplitude_k=OUTDOOR_AMPLITUDE_K, peak_hour=OUTDOOR_PEAK_HOUR,
                               start_hour=start_hour),
    )
    result = DemoResult(samples=house.history, learned=learned, room_truth=room_figures(params),
                        start_air_c=initial_air, fit_seconds=fit_seconds if learned is not None else None)
    ports = await house.start()
    config_path = workdir / "thermostat-demo.yaml"
    dashboard_port = _free_port()
    config_path.write_text(demo_config_yaml(mqtt_port=broker_port, heaters=ports, models=models,
                                            dashboard_port=dashboard_port), encoding="utf-8")
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
    recording = asyncio.Event()
    recorder = asyncio.create_task(record_states(clock, broker_host, broker_port, result.states, recording),
                                   name="recorder")
    with contextlib.suppress(TimeoutError):  # without it the plot lacks the plans; the run itself goes on
        await asyncio.wait_for(recording.wait(), 5.0)
    house_task = asyncio.create_task(house.run(house_stop), name="house")
    weather_task = asyncio.create_task(publish_weather(house, clock, broker_host, broker_port, house_stop),
                                       name="weather")
    service_task = asyncio.create_task(service.run(service_stop), name="service")
    if not args.quiet:
        print(f"dashboard: http://127.0.0.1:{dashboard_port}/ while the demo runs", file=out, flush=True)
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
        result.stopped_at = clock.now()
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
        with contextlib.suppress(Exception):
            await asyncio.wait_for(weather_task, 5.0)
        recorder.cancel()
        with contextlib.suppress(BaseException):
            await recorder
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
