"""The soak: the real `thermostat run` process heating a simulated house for days of accelerated time while
operational faults are injected at random (seeded), checked by an independent observer.

What runs, all on 127.0.0.1 and on one shared scaled clock (`SharedScaledClock`, simulated time = start +
(wall − origin) × speed, the same in every process):

* mosquitto, on a fixed port so it can be killed (SIGKILL) and restarted;
* one process per simulated miner (`thermostat/sim/soak_miner.py`), so it can be frozen (SIGSTOP/SIGCONT)
  or killed and restarted in another state;
* `thermostat run --test-clock-*` as a process, killed with SIGKILL and restarted on the same state file;
* here, in the harness: the rooms' physics (`thermostat.sim.room`), their sensors publishing over MQTT, the
  fault injector and the observer (`thermostat.sim.soak_observer`), which reads the miners' true state
  from their pipes and the rooms here — never the service's state.

Faults run one at a time: each starts at a planned time (no earlier than the end of the previous fault's
recovery window), lasts its drawn duration, and its recovery window (every room back in band) closes
before the next one starts. See `FAULT_KINDS` for the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt

from thermostat.clock import SharedScaledClock
from thermostat.miners.models import MODELS
from thermostat.sim.demo import find_mosquitto
from thermostat.sim.room import LARGE_ROOM, MEDIUM_ROOM, OutdoorProfile, Room, RoomParams, Sensor, SensorParams
from thermostat.sim.soak_miner import request_command
from thermostat.sim.soak_observer import HEAT_MARGIN_W, HeaterRules, Observer, RoomRules

log = logging.getLogger("thermostat.soak")

FAULT_KINDS = (
    "broker_restart",  # mosquitto SIGKILL, back after a few seconds
    "broker_outage",  # mosquitto SIGKILL, back after 2 minutes
    "miner_hang",  # one miner SIGSTOP, SIGCONT after 2-6 min: its API hangs, its power stays as it was
    "miner_restart",  # one miner SIGKILL (power lost), back after 1-3 min in the other state (mining/standby)
    "service_kill",  # the service SIGKILL, restarted after 0-60 s on the same state file
    "service_kill_in_lead",  # the service SIGKILL as soon as a miner receives a softon (inside its lead)
    "service_kill_after_stop",  # the service SIGKILL just after a heater stopped, then its room asks for heat
    "sighup_valid",  # a valid changed config, SIGHUP
    "sighup_broken",  # a broken config, SIGHUP; the valid one is put back when the fault ends
    "state_unwritable",  # SIGKILL, the state file replaced by a directory, restart; file put back at the end
    "disk_full",  # RLIMIT_FSIZE 0 on the running service (every file write fails) for 5-15 min
    "state_damaged",  # SIGKILL, the state file overwritten with random bytes, restart
    "sensor_jump",  # one room's sensor reads a plausible, sustained value above max_c for 10-20 min
    "sensor_stuck",  # one room's sensor repeats a cold value for 80-100 min (stuck_after is 1 h)
    "sensor_silent",  # one room's sensor publishes nothing for stale_after + 4-10 min
    "mqtt_burst",  # a hostile burst: garbage on sensor, command and other topics
)
SIM_START = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
TARGET_C = 21.0
MAX_C = 26.0
STALE_AFTER_S = 300.0
STUCK_AFTER_S = 3600.0  # shorter than the default 3 h, so that the stuck-sensor rule acts within a stuck fault
MIN_ON_S = 600.0
MIN_OFF_S = 600.0
MAX_WAKES = 2
STEP_S = 15.0  # room physics step (simulated s)
WARMUP_S = 1800.0
GAP_S = 300.0  # quiet time between a recovery and the next fault
SYSTEMD_RESTART_S = 10.0  # like Restart=always, RestartSec=10 (simulated s)
CRASH_LOOP_RESET_S = 30.0  # real seconds
HUP_WAIT_S = 30.0  # real seconds a SIGHUP waits for the service to install its handler
HEAT_REPEAT_REAL_S = 30.0  # real seconds the household repeats "heat" after a restart
BASE = "soak"


@dataclass(frozen=True)
class SoakRoom:
    id: str
    name: str
    params: RoomParams
    heaters: dict[str, str]  # heater id -> model key


HOUSE = (
    SoakRoom("living", "Living room", LARGE_ROOM, {"mini3-a": "mini3", "q-a": "q"}),
    SoakRoom("office", "Office", MEDIUM_ROOM, {"mini3-b": "mini3"}),
)


@dataclass
class SoakOptions:
    days: float = 1.0
    faults: int = 30
    seed: int = 1
    speed: float = 360.0
    recovery_bound_s: float = 3600.0
    workdir: Path | None = None
    progress: Callable[[str], None] | None = None


@dataclass
class Fault:
    kind: str
    start: float  # simulated epoch
    duration: float
    target: str = ""  # room or heater
    end: float | None = None
    note: str = ""
    commands: int = 0

    @property
    def label(self) -> str:
        return f"{self.kind}({self.target})" if self.target else self.kind


@dataclass
class SoakResult:
    options: dict[str, Any]
    real_seconds: float
    simulated_s: float
    faults: list[Fault]
    violations: list[dict[str, Any]]
    recoveries: list[dict[str, Any]]
    wakes: dict[str, int]
    commands_total: int
    service_starts: int
    service_log: dict[str, int] = field(default_factory=dict)
    lag_s: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plan_kinds(n: int, rng: random.Random) -> list[str]:
    """`n` fault kinds: every kind once per round (shuffled), so n ≥ len(FAULT_KINDS) covers them all."""
    out: list[str] = []
    while len(out) < n:
        block = list(FAULT_KINDS)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def draw_duration(kind: str, rng: random.Random) -> float:
    return {
        "broker_restart": lambda: rng.uniform(2.0, 10.0),
        "broker_outage": lambda: 120.0,
        "miner_hang": lambda: rng.uniform(120.0, 360.0),
        "miner_restart": lambda: rng.uniform(60.0, 180.0),
        "service_kill": lambda: rng.uniform(0.0, 60.0),
        "service_kill_in_lead": lambda: 1800.0,  # the longest wait for a softon to happen
        "service_kill_after_stop": lambda: 0.0,  # set when it ends
        "sighup_valid": lambda: 0.0,
        "sighup_broken": lambda: rng.uniform(60.0, 300.0),
        "state_unwritable": lambda: rng.uniform(300.0, 900.0),
        "disk_full": lambda: rng.uniform(300.0, 900.0),
        "state_damaged": lambda: 0.0,
        "sensor_jump": lambda: rng.uniform(600.0, 1200.0),
        "sensor_stuck": lambda: rng.uniform(4800.0, 6000.0),
        "sensor_silent": lambda: STALE_AFTER_S + rng.uniform(240.0, 600.0),
        "mqtt_burst": lambda: 0.0,
    }[kind]()


class _Clock:
    def __init__(self, speed: float) -> None:
        self.inner = SharedScaledClock(speed, time.time(), SIM_START.timestamp())

    def t(self) -> float:
        return self.inner.epoch()

    async def sleep(self, sim_s: float) -> None:
        await self.inner.sleep(sim_s)

    def args(self, prefix: str) -> list[str]:
        c = self.inner
        return [f"--{prefix}-speed", repr(c.speed), f"--{prefix}-origin", repr(c.real_origin),
                f"--{prefix}-start", repr(c.sim_start)]


class _Broker:
    def __init__(self, workdir: Path) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("the soak needs mosquitto (apt-get install mosquitto)")
        self.binary = binary
        self.port = _free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             "max_queued_messages 100000\n", encoding="utf-8")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        for _ in range(50):
            self.proc = await asyncio.create_subprocess_exec(
                self.binary, "-c", str(self.conf), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            for _ in range(100):
                if self.proc.returncode is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return
                except OSError:
                    await asyncio.sleep(0.02)
            await self.kill()
            await asyncio.sleep(0.1)  # the port may still be held for a moment
        raise RuntimeError("mosquitto did not start")

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()


class _Miner:
    """One miner process and its telemetry."""

    def __init__(self, hid: str, model: str, port: int, seed: int) -> None:
        self.hid = hid
        self.model = model
        self.port = port
        self.seed = seed
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.generation = 0
        self.w = 0.0
        self.hashing = False
        self.state = "In Idle"
        self.frozen = False
        self.on_line: Callable[[_Miner, dict[str, Any]], None] | None = None

    async def start(self, clock: _Clock, *, state: str, inlet_c: float, uptime_s: float) -> None:
        self.generation += 1
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "thermostat.sim.soak_miner", "--model", self.model, "--port", str(self.port),
            "--seed", str(self.seed), "--start-state", state, "--initial-uptime", repr(uptime_s),
            "--inlet", f"{inlet_c:.2f}", *clock.args("clock"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        first = await asyncio.wait_for(self.proc.stdout.readline(), 30.0)
        if json.loads(first or b"{}").get("k") != "ready":
            raise RuntimeError(f"simulated miner {self.hid} did not start")
        self.reader = asyncio.create_task(self._read(self.proc, self.generation))

    async def _read(self, proc: asyncio.subprocess.Process, generation: int) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if generation != self.generation:
                return
            if msg.get("k") == "s":
                self.w, self.hashing, self.state = float(msg["w"]), bool(msg["h"]), str(msg["st"])
            if self.on_line is not None:
                self.on_line(self, msg)

    def send_inlet(self, c: float) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None or self.frozen:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(f"inlet {c:.3f}\n".encode())

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        self.frozen = False
        self.w, self.hashing = 0.0, False
        if proc is None:
            return
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


class _Service:
    """`thermostat run` as a process, with systemd's Restart=always emulated."""

    def __init__(self, config: Path, clock: _Clock, log_path: Path) -> None:
        self.config = config
        self.clock = clock
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.expected_exit = False
        self.fsize_limited = False
        self.log_levels: dict[str, int] = {}  # lines of the service's log by level
        self._drains: set[asyncio.Task[None]] = set()

    async def start(self, *, disk_full: bool = False) -> None:
        """Start `thermostat run`; its output goes through a pipe (as to journald) into `log_path`.
        `disk_full`: every file write fails from the first instruction on (RLIMIT_FSIZE 0)."""
        self.expected_exit = False
        self.starts += 1
        env = {**os.environ, "THERMOSTAT_TEST_CLOCK": "1", "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as logf:
            logf.write(f"--- start {self.starts} at simulated {self.clock.t():.0f}"
                       f"{' (disk full)' if disk_full else ''}\n".encode())

        def no_file_writes() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "thermostat", "run", "--config", str(self.config),
            *self.clock.args("test-clock"), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=str(self.config.parent),
            preexec_fn=no_file_writes if disk_full else None)
        self.fsize_limited = disk_full
        drain = asyncio.create_task(self._drain(self.proc))
        self._drains.add(drain)
        drain.add_done_callback(self._drains.discard)

    async def drained(self) -> None:
        """Every line the service wrote is in the log (call after it ended)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._drains, return_exceptions=True), 10.0)

    async def _drain(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        with self.log_path.open("ab") as logf:
            while line := await proc.stdout.readline():
                # stamped with the simulated time it arrived (the service's own stamps are real time)
                logf.write(f"[{(self.clock.t() - SIM_START.timestamp()) / 3600:8.4f} h] ".encode() + line)
                parts = line.split(b" ", 3)
                if len(parts) > 2 and parts[2] in (b"DEBUG", b"INFO", b"WARNING", b"ERROR", b"CRITICAL"):
                    level = parts[2].decode()
                    self.log_levels[level] = self.log_levels.get(level, 0) + 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        self.expected_exit = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def hup(self) -> None:
        """SIGHUP, once the process has installed its handler (read from /proc, not from the service): at
        ×360 its start-up (interpreter, imports) lasts many simulated minutes in which SIGHUP's default action
        would end it, a window that is about a second per start in a real house."""
        deadline = time.monotonic() + HUP_WAIT_S
        while self.alive() and not self._catches(signal.SIGHUP) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGHUP)

    def _catches(self, sig: int) -> bool:
        """The process has a handler for `sig` (the SigCgt mask of /proc/PID/status)."""
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        except OSError:
            return True  # no /proc: send it anyway
        for line in status.splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
        return True

    def limit_file_size(self, on: bool) -> bool:
        """Every file write of the service fails (as on a full disk) while on. False if it is not running."""
        if not self.alive():
            return False
        assert self.proc is not None
        limit = 0 if on else resource.RLIM_INFINITY
        try:
            resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        except (OSError, ValueError):
            return False
        self.fsize_limited = on
        return True


def soak_schedule_yaml() -> str:
    return (f"# written by thermostat soak: one flat target, so 'back in band' is well defined\n"
            f"timezone: UTC\npresets:\n  comfort: {TARGET_C:g}\nweek:\n  mon-sun:\n"
            f"    - {{at: \"00:00\", preset: comfort}}\n")


def soak_config_yaml(mqtt_port: int, ports: dict[str, int], *, variant: int = 0) -> str:
    lines = [
        "# written by thermostat soak",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}, base_topic: {BASE}, client_id: thermostat-soak}}",
        "rooms:",
    ]
    for room in HOUSE:
        name = room.name if variant % 2 == 0 else f"{room.name} (reloaded)"
        lines += [
            f"  {room.id}:",
            f"    name: {name}",
            f"    sensor: {{topic: soak-sensors/{room.id}, json_key: temperature, stale_after: {STALE_AFTER_S:.0f}s, "
            f"stuck_after: {STUCK_AFTER_S:.0f}s}}",
            "    schedule: schedule.yaml",
            f"    limits: {{min_c: 7, max_c: {MAX_C:g}}}",
            "    control: {mode: pid}",
            f"    heaters: [{', '.join(room.heaters)}]",
        ]
    lines.append("heaters:")
    for room in HOUSE:
        for hid, model in room.heaters.items():
            lines.append(f"  {hid}: {{host: 127.0.0.1, port: {ports[hid]}, model: {model}, "
                         f"min_on: {MIN_ON_S:.0f}s, min_off: {MIN_OFF_S:.0f}s, max_wakes_per_hour: {MAX_WAKES}}}")
    lines += ["state: {path: state.db}", "log: {level: warning}", ""]
    return "\n".join(lines)


BROKEN_CONFIGS = (
    "rooms: [this is: not, a mapping\n",  # YAML syntax error
    "mqtt: {host: 127.0.0.1}\nrooms: {}\nheaters: {}\nstate: {path: 42}\n",  # schema errors
    "\x00\x01\x02 binary garbage \xff",
)
HOSTILE_SENSOR = (b"", b"nan", b"NaN", b"inf", b"-300", b"1e309", b"{\"temperature\": \"hot\"}", b"{\"temp\": 21}",
                  b"\xff\xfe\xfd", b"[1, 2, 3]", b"{\"temperature\": null}", b"{\"temperature\": 1e6}",
                  b"x" * 70000)
HOSTILE_COMMANDS = (("room/{room}/mode/set", b"explode"), ("room/{room}/target/set", b"hot"),
                    ("room/{room}/target/set", b"1e9"), ("room/{room}/preset/set", b"\xff"),
                    ("heater/{heater}/level/set", b"warp9"), ("heater/{heater}/controlled/set", b"maybe"),
                    ("room/nowhere/mode/set", b"heat"), ("heater/ghost/level/set", b"auto"),
                    ("room/{room}/override/set", b"{\"temp\": \"x\", \"until\": 5}"))


class Soak:
    def __init__(self, options: SoakOptions) -> None:
        self.opt = options
        self.rng = random.Random(options.seed)
        self.clock = _Clock(options.speed)
        self.workdir = options.workdir or Path.cwd()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rooms = {r.id: Room(params=r.params, air_c=TARGET_C, mass_c=TARGET_C - 0.5) for r in HOUSE}
        self.sensors = {r.id: Sensor(SensorParams(max_silence_s=60.0, min_interval_s=10.0), seed=options.seed + i,
                                     initial_c=TARGET_C) for i, r in enumerate(HOUSE)}
        self.outdoor = OutdoorProfile(mean_c=2.0, amplitude_k=3.0, peak_hour=15.0, start_hour=6.0)
        self.miners: dict[str, _Miner] = {}
        seed = 0
        for room in HOUSE:
            for hid, model in room.heaters.items():
                self.miners[hid] = _Miner(hid, model, _free_port(), options.seed * 10 + seed)
                seed += 1
        self.room_of = {hid: room.id for room in HOUSE for hid in room.heaters}
        start = self.clock.t()
        self.observer = Observer(
            {r.id: RoomRules(tuple(r.heaters), STALE_AFTER_S, MAX_C,
                             capacity_w=sum(MODELS[m].levels[-1].wall_w for m in r.heaters.values()),
                             stuck_after_s=STUCK_AFTER_S) for r in HOUSE},
            {hid: HeaterRules(self.room_of[hid], MODELS[m.model].standby_wall_w, MIN_OFF_S, MAX_WAKES)
             for hid, m in self.miners.items()},
            recovery_bound_s=options.recovery_bound_s, start_t=start)
        self.broker = _Broker(self.workdir)
        self.config_path = self.workdir / "house.yaml"
        self.state_path = self.workdir / "state.db"
        self.service = _Service(self.config_path, self.clock, self.workdir / "service.log")
        self.faults: list[Fault] = []
        self.sensor_mode: dict[str, tuple[str, float]] = {}  # room -> ("jump", offset) | ("stuck", value) | silent
        self.kill_on_softon: asyncio.Event | None = None
        self.windows_open: set[str] = set()
        self.heating: dict[str, bool] = {}  # heater id -> heating at its last state line
        self.on_heater_stop: Callable[[str], None] | None = None
        self.lags: list[float] = []  # simulated seconds the physics step woke up late
        self.softon_at: float | None = None  # softon's scheduled time from the request
        self.notes: list[str] = []
        self.crashes_in_a_row = 0
        self.config_variant = 0
        self._stop = asyncio.Event()
        self._reading_q: asyncio.Queue[tuple[str, float]] = asyncio.Queue(maxsize=1000)

    # ------------------------------------------------------------------ events from the miners

    def _on_miner_line(self, miner: _Miner, msg: dict[str, Any]) -> None:
        t = float(msg.get("t", self.clock.t()))
        if msg.get("k") == "s":
            heating = float(msg["w"]) > MODELS[miner.model].standby_wall_w + HEAT_MARGIN_W
            if self.heating.get(miner.hid) and not heating and self.on_heater_stop is not None:
                self.on_heater_stop(miner.hid)
            self.heating[miner.hid] = heating
            self.observer.miner_state(miner.hid, t, wall_w=float(msg["w"]), generation=miner.generation,
                                      wakes=int(msg["wk"]))
        elif msg.get("k") == "r":
            text = str(msg.get("q", ""))
            command = request_command(text)
            self.observer.miner_request(miner.hid, t, text, command)
            if "softon" in text and self.kill_on_softon is not None and not self.kill_on_softon.is_set():
                with contextlib.suppress(ValueError, IndexError):
                    self.softon_at = float(text.rsplit(":", 1)[1].strip().rstrip("\"}"))
                self.kill_on_softon.set()

    # ------------------------------------------------------------------ the run

    async def run(self) -> SoakResult:
        real0 = time.monotonic()
        asyncio.get_running_loop().set_exception_handler(_quiet_mqtt_errors)
        logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # paho inside our own clients: broker kills expected
        t0 = self.clock.t()
        end = t0 + self.opt.days * 86400.0
        await self.broker.start()
        for miner in self.miners.values():
            miner.on_line = self._on_miner_line
            await miner.start(self.clock, state="standby", inlet_c=TARGET_C, uptime_s=3600.0)
        self._write_config()
        (self.workdir / "schedule.yaml").write_text(soak_schedule_yaml(), encoding="utf-8")
        await self.service.start()
        tasks = [asyncio.create_task(self._physics(t0), name="physics"),
                 asyncio.create_task(self._publisher(), name="sensors"),
                 asyncio.create_task(self._watch_service(), name="service-watch")]
        try:
            await self._inject(t0, end)
        finally:
            self._stop.set()
            self.observer.finish(self.clock.t())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.service.kill()
            await self.service.drained()
            for miner in self.miners.values():
                if miner.frozen:
                    miner.signal(signal.SIGCONT)
                await miner.kill()
            await self.broker.kill()
        obs = self.observer
        return SoakResult(
            options={"days": self.opt.days, "faults": self.opt.faults, "seed": self.opt.seed,
                     "speed": self.opt.speed, "recovery_bound_s": self.opt.recovery_bound_s,
                     "stale_after_s": STALE_AFTER_S, "max_c": MAX_C, "min_off_s": MIN_OFF_S,
                     "max_wakes_per_hour": MAX_WAKES, "target_c": TARGET_C},
            real_seconds=time.monotonic() - real0,
            simulated_s=self.clock.t() - t0,
            faults=self.faults,
            violations=[v.as_dict() for v in obs.violations],
            recoveries=[{"fault": r.fault, "room": r.room, "seconds": r.seconds} for r in obs.recoveries],
            wakes={h: len(ts) for h, ts in obs.wake_times.items()},
            commands_total=len(obs.commands),
            service_starts=self.service.starts,
            service_log=dict(self.service.log_levels),
            lag_s={"p50": percentile(self.lags, 0.5), "p99": percentile(self.lags, 0.99),
                   "max": max(self.lags) if self.lags else None},
            notes=self.notes,
        )

    def _write_config(self, text: str | None = None) -> None:
        body = text if text is not None else soak_config_yaml(
            self.broker.port, {h: m.port for h, m in self.miners.items()}, variant=self.config_variant)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(self.config_path)

    def _progress(self, text: str) -> None:
        if self.opt.progress is not None:
            self.opt.progress(text)

    async def _physics(self, t0: float) -> None:
        t_prev = self.clock.t()
        while not self._stop.is_set():
            await self.clock.sleep(STEP_S)
            t = self.clock.t()
            self.lags.append(max(0.0, t - t_prev - STEP_S))  # how late this process woke (machine load)
            dt = max(0.0, t - t_prev)
            t_prev = t
            elapsed = t - t0
            outdoor = self.outdoor.at(elapsed)
            for room in HOUSE:
                heat = sum(self.miners[h].w for h in room.heaters)
                sim_room = self.rooms[room.id]
                sim_room.step(dt, heat, outdoor, window_open=room.id in self.windows_open)
                for hid in room.heaters:
                    self.miners[hid].send_inlet(sim_room.air_c)
                report = self.sensors[room.id].sample(elapsed, sim_room.air_c)
                self.observer.room_air(room.id, t, sim_room.air_c, TARGET_C)
                if report is not None:
                    value = self._sensor_value(room.id, report)
                    if value is not None:
                        with contextlib.suppress(asyncio.QueueFull):
                            self._reading_q.put_nowait((room.id, value))
            self.observer.check(t)

    def _sensor_value(self, rid: str, report: float) -> float | None:
        mode = self.sensor_mode.get(rid)
        if mode is None:
            return report
        kind, value = mode
        if kind == "silent":
            return None
        if kind == "jump":
            return round(report + value, 1)
        return value  # stuck

    async def _publisher(self) -> None:
        pending: tuple[str, float] | None = None
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="soak-sensors",
                                          keepalive=5, timeout=2) as client:
                    while True:
                        if pending is None:
                            pending = await self._reading_q.get()
                        rid, value = pending
                        await client.publish(f"soak-sensors/{rid}", json.dumps({"temperature": value}), qos=1,
                                             retain=True)
                        self.observer.reading_published(rid, self.clock.t(), value)
                        pending = None
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    async def _watch_service(self) -> None:
        while not self._stop.is_set():
            proc = self.service.proc
            if proc is None:
                await asyncio.sleep(0.05)
                continue
            started = self.clock.t()
            started_real = time.monotonic()
            code = await proc.wait()
            if self.service.expected_exit or self._stop.is_set():
                while self.service.proc is proc and not self._stop.is_set():
                    await asyncio.sleep(0.02)  # the injector restarts it
                continue
            t = self.clock.t()
            self.observer.service_exited(t, code, f" {t - started:.0f} s after it started")
            self._progress(f"  service exited by itself (code {code}); restarting in {SYSTEMD_RESTART_S:.0f} s")
            # crashes in a row: a run of CRASH_LOOP_RESET_S real seconds in between resets the count (start-up
            # alone takes a real second or more, several on a loaded machine)
            ran_for = time.monotonic() - started_real
            self.crashes_in_a_row = self.crashes_in_a_row + 1 if ran_for < CRASH_LOOP_RESET_S else 1
            if self.crashes_in_a_row >= 3 and self.state_path.exists():
                # what a homeowner would do after a crash loop: move the state file out of the way
                self._set_aside(self.state_path, "crash-loop")
                self.notes.append(f"t={t - self._t0():.0f}s: state file moved aside after 3 crashes in a row")
                self.crashes_in_a_row = 0
            await self.clock.sleep(SYSTEMD_RESTART_S)
            if not self._stop.is_set() and self.service.proc is proc:  # the injector may have restarted it
                await self.service.start()

    def _t0(self) -> float:
        return SIM_START.timestamp()

    def _set_aside(self, path: Path, tag: str) -> None:
        dest = path.with_name(f"{path.name}.soak-{tag}-{int(self.clock.t())}")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.replace(dest)
        for suffix in ("-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                path.with_name(path.name + suffix).unlink()

    # ------------------------------------------------------------------ faults

    async def _inject(self, t0: float, end: float) -> None:
        n = self.opt.faults
        kinds = plan_kinds(n, self.rng)
        usable = end - t0 - WARMUP_S - GAP_S
        slot = usable / max(1, n)
        # Faults whose recovery takes long push the later ones back; the run then goes on past `end` until
        # every fault has been injected, but never longer than half as long again.
        hard_end = t0 + (end - t0) * 1.5
        for i, kind in enumerate(kinds):
            planned = t0 + WARMUP_S + i * slot + self.rng.uniform(0.0, slot * 0.3)
            await self._sleep_until(max(planned, self.clock.t()))
            if self.clock.t() >= hard_end - GAP_S:
                self.notes.append(f"only {i} of {n} faults fitted into the run")
                break
            fault = Fault(kind, self.clock.t(), draw_duration(kind, self.rng))
            if kind in ("miner_hang", "miner_restart"):
                fault.target = self.rng.choice(sorted(self.miners))
            elif kind.startswith("sensor_"):
                fault.target = self.rng.choice([r.id for r in HOUSE])
            self.faults.append(fault)
            self.observer.fault_started(fault.label, fault.start)
            self._progress(f"[{(fault.start - t0) / 3600:6.2f} h] fault {i + 1}/{n}: {kind}")
            before = len(self.observer.commands)
            try:
                await self._run_fault(fault)
            except Exception as exc:  # a harness problem is reported, the soak goes on
                log.exception("fault %s failed", kind)
                fault.note = f"harness error: {exc}"
            fault.end = self.clock.t()
            self.observer.fault_ended(fault.label, fault.end)
            await self._wait_recovered(fault, hard_end)
            fault.commands = len(self.observer.commands) - before
        await self._sleep_until(end)
        if self.clock.t() > end + STEP_S:
            self.notes.append(f"the run went on {(self.clock.t() - end) / 3600:.1f} simulated h past its planned end "
                              "to inject every fault")

    async def _sleep_until(self, t: float) -> None:
        while (left := t - self.clock.t()) > 0 and not self._stop.is_set():
            await self.clock.sleep(min(left, 60.0))

    async def _wait_recovered(self, fault: Fault, end: float) -> None:
        """The recovery window: until every room is back in band (or the bound passes), then a quiet gap."""
        assert fault.end is not None
        deadline = min(end, fault.end + self.opt.recovery_bound_s + STEP_S * 2)
        while self.clock.t() < deadline:
            if not self.observer.recovering():
                break
            await self.clock.sleep(STEP_S)
        await self._sleep_until(min(end, self.clock.t() + GAP_S))

    async def _restart_service_after(self, delay_s: float) -> None:
        await self.clock.sleep(delay_s)
        await self.service.start()

    async def _run_fault(self, f: Fault) -> None:
        k = f.kind
        if k in ("broker_restart", "broker_outage"):
            await self.broker.kill()
            await self.clock.sleep(f.duration)
            await self.broker.start()
        elif k == "miner_hang":
            miner = self.miners[f.target]
            miner.frozen = True
            self.observer.miner_frozen(f.target, True, self.clock.t())
            miner.signal(signal.SIGSTOP)
            await self.clock.sleep(f.duration)
            miner.signal(signal.SIGCONT)
            miner.frozen = False
            self.observer.miner_frozen(f.target, False, self.clock.t())
        elif k == "miner_restart":
            miner = self.miners[f.target]
            state = "standby" if miner.hashing else "mining"
            f.note = f"back {state}"
            await miner.kill()
            self.observer.miner_lost_power(f.target, self.clock.t())
            await self.clock.sleep(f.duration)
            await miner.start(self.clock, state=state, inlet_c=self.rooms[self.room_of[f.target]].air_c,
                              uptime_s=0.0)
        elif k == "service_kill":
            await self.service.kill()
            await self._restart_service_after(f.duration)
        elif k == "service_kill_in_lead":
            self.kill_on_softon = asyncio.Event()
            self.softon_at = None
            idle = [r.id for r in HOUSE if any(not self.miners[h].hashing for h in r.heaters)]
            if idle:  # someone opens a window: the room cools and asks for more heat, so a heater wakes
                f.target = self.rng.choice(idle)
                self.windows_open.add(f.target)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kill_on_softon.wait(), f.duration / self.opt.speed)
            await self.service.kill()
            t = self.clock.t()
            self.windows_open.clear()
            self.kill_on_softon = None
            if self.softon_at is None:
                f.note = "no softon within the window: a plain kill"
            else:
                f.note = "killed inside the soft-on lead" if t < self.softon_at else \
                    f"killed {t - self.softon_at:.1f} s after the softon took effect (outside the lead)"
            f.duration = 0.0
            await self._restart_service_after(self.rng.uniform(1.0, 10.0))
        elif k == "service_kill_after_stop":
            # A restart must not forget when a heater stopped. The household turns a room off; the moment one
            # of its heaters stops, the service is killed and restarted, and the room is turned on again (as
            # MQTT commands, like Home Assistant). min_off must still hold for the heater that stopped.
            busy = [r.id for r in HOUSE if any(self.heating.get(h) for h in r.heaters)]
            room_id = self.rng.choice(busy or [r.id for r in HOUSE])
            stopped: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            def on_stop(hid: str) -> None:
                if self.room_of[hid] == room_id and not stopped.done():
                    stopped.set_result(hid)

            self.on_heater_stop = on_stop
            await self._household_command(room_id, "off")
            try:
                hid: str | None = await asyncio.wait_for(stopped, 600.0 / self.opt.speed)
            except TimeoutError:
                hid = None
            finally:
                self.on_heater_stop = None
            await self.service.kill()
            f.target = hid or room_id
            f.note = (f"{room_id} off; killed just after {hid} stopped" if hid is not None
                      else f"{room_id} off; no heater of it stopped within 10 min: killed anyway")
            await self._restart_service_after(self.rng.uniform(1.0, 10.0))
            # MQTT commands are not retained: repeat "heat" until the new process has surely subscribed (its
            # start-up takes seconds of real time, many simulated minutes on a loaded machine)
            restarted_real = time.monotonic()
            repeats = 0
            while repeats < MIN_OFF_S / 30.0 or time.monotonic() - restarted_real < HEAT_REPEAT_REAL_S:
                await self._household_command(room_id, "heat")
                repeats += 1
                await self.clock.sleep(30.0)
            f.duration = self.clock.t() - f.start
        elif k == "sighup_valid":
            self.config_variant += 1
            self._write_config()
            await self.service.hup()
        elif k == "sighup_broken":
            self._write_config(self.rng.choice(BROKEN_CONFIGS))
            await self.service.hup()
            await self.clock.sleep(f.duration)
            self._write_config()
        elif k == "state_unwritable":
            await self.service.kill()
            held = self._hold_state()
            self.state_path.mkdir(exist_ok=True)
            await self.service.start()
            await self.clock.sleep(f.duration)
            shutil.rmtree(self.state_path, ignore_errors=True)
            for original, aside in held:
                aside.replace(original)
        elif k == "disk_full" and self.rng.random() < 0.3:  # full before a restart
            f.note = "full at start"
            await self.service.kill()
            await self.service.start(disk_full=True)
            await self.clock.sleep(f.duration)
            self.service.limit_file_size(False)
        elif k == "disk_full":
            if not self.service.limit_file_size(True):
                f.note = "service not running: no limit set"
            if self.rng.random() < 0.5:
                quiet = HOUSE[-1].id
                f.note = (f.note + "; " if f.note else "") + f"{quiet} sensor silent meanwhile"
                self.sensor_mode[quiet] = ("silent", 0.0)
                f.duration = max(f.duration, STALE_AFTER_S + 300.0)
                await self.clock.sleep(f.duration)
                del self.sensor_mode[quiet]
            else:
                await self.clock.sleep(f.duration)
            self.service.limit_file_size(False)
        elif k == "state_damaged":
            await self.service.kill()
            how = self.rng.choice(("random", "truncated", "corrupt-page"))
            f.note = how
            self._damage_state(how)
            await self.service.start()
        elif k in ("sensor_jump", "sensor_stuck", "sensor_silent"):
            air = self.rooms[f.target].air_c
            if k == "sensor_jump":
                self.sensor_mode[f.target] = ("jump", MAX_C + 1.5 - air)
            elif k == "sensor_stuck":
                self.sensor_mode[f.target] = ("stuck", round(air - 3.0, 1))
                self.observer.sensor_stuck(f.target, True, self.clock.t())
            else:
                self.sensor_mode[f.target] = ("silent", 0.0)
            await self.clock.sleep(f.duration)
            del self.sensor_mode[f.target]
            if k == "sensor_stuck":
                self.observer.sensor_stuck(f.target, False, self.clock.t())
        elif k == "mqtt_burst":
            f.note = f"{await self._hostile_burst()} messages"

    def _hold_state(self) -> list[tuple[Path, Path]]:
        """Move the state file and its WAL out of the way (to be put back unchanged)."""
        held = []
        for suffix in ("", "-wal", "-shm", "-journal"):
            original = self.state_path.with_name(self.state_path.name + suffix)
            if original.is_file():
                aside = original.with_name(original.name + ".soak-held")
                original.replace(aside)
                held.append((original, aside))
        return held

    async def _household_command(self, room_id: str, mode: str) -> None:
        """What Home Assistant sends when the household switches a room (the service's command topic)."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(10.0):
                async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="soak-household",
                                          timeout=5) as c:
                    await c.publish(f"{BASE}/room/{room_id}/mode/set", mode.encode(), qos=1)

    def _damage_state(self, how: str) -> None:
        path = self.state_path
        for suffix in ("-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                path.with_name(path.name + suffix).unlink()
        if how == "random" or not path.exists():
            path.write_bytes(self.rng.randbytes(8192))
        elif how == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: max(1, len(data) // 3)])
        else:
            page = bytearray(path.read_bytes())
            for i in range(min(len(page), 4096), min(len(page), 8192)):
                page[i] = self.rng.randrange(256)
            page[100:200] = self.rng.randbytes(100)
            path.write_bytes(bytes(page))

    async def _hostile_burst(self) -> int:
        sent = 0
        rooms = [r.id for r in HOUSE]
        heaters = sorted(self.miners)
        try:
            async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="soak-hostile", timeout=5) as c:
                for _ in range(self.rng.randint(500, 2000)):
                    choice = self.rng.random()
                    if choice < 0.5:
                        topic, payload = f"soak-sensors/{self.rng.choice(rooms)}", self.rng.choice(HOSTILE_SENSOR)
                    elif choice < 0.9:
                        pattern, payload = self.rng.choice(HOSTILE_COMMANDS)
                        topic = f"{BASE}/" + pattern.format(room=self.rng.choice(rooms),
                                                            heater=self.rng.choice(heaters))
                    else:
                        topic, payload = f"{BASE}/{self.rng.randbytes(4).hex()}/x/set", self.rng.randbytes(32)
                    await c.publish(topic, payload, qos=0)
                    sent += 1
        except aiomqtt.MqttError as exc:
            self.notes.append(f"hostile burst cut short after {sent} messages: {exc}")
        return sent


def _quiet_mqtt_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """aiomqtt leaves a future with the disconnect error behind when the broker is killed: expected here."""
    if isinstance(context.get("exception"), aiomqtt.MqttError):
        return
    loop.default_exception_handler(context)


# --------------------------------------------------------------------------------------------------- report


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(result: SoakResult) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {}
    rec_by_fault: dict[str, list[float | None]] = {}
    for r in result.recoveries:
        rec_by_fault.setdefault(r["fault"].split("(")[0], []).append(r["seconds"])
    for kind in FAULT_KINDS:
        fs = [f for f in result.faults if f.kind == kind]
        recs = rec_by_fault.get(kind, [])
        done = [x for x in recs if x is not None]
        by_kind[kind] = {
            "injected": len(fs),
            "violations": sum(1 for v in result.violations if v["fault"].split("(")[0].removeprefix("after ") == kind),
            "recovery_p50_s": percentile(done, 0.5),
            "recovery_p90_s": percentile(done, 0.9),
            "recovery_max_s": max(done) if done else None,
            "not_recovered": sum(1 for x in recs if x is None),
            "commands_per_fault": statistics.mean(f.commands for f in fs) if fs else None,
        }
    all_done = [r["seconds"] for r in result.recoveries if r["seconds"] is not None]
    violations_by_invariant: dict[str, int] = {}
    for v in result.violations:
        violations_by_invariant[v["invariant"]] = violations_by_invariant.get(v["invariant"], 0) + 1
    return {
        "options": result.options,
        "real_seconds": round(result.real_seconds, 1),
        "simulated_days": result.simulated_s / 86400.0,
        "faults_injected": len(result.faults),
        "fault_kinds_covered": sorted({f.kind for f in result.faults}),
        "violations": len(result.violations),
        "violations_by_invariant": violations_by_invariant,
        "by_kind": by_kind,
        "recovery_s": {"p50": percentile(all_done, 0.5), "p90": percentile(all_done, 0.9),
                       "p99": percentile(all_done, 0.99), "max": max(all_done) if all_done else None},
        "wakes": result.wakes,
        "miner_commands": result.commands_total,
        "service_starts": result.service_starts,
        "service_log_lines": result.service_log,
        "harness_lag_s": result.lag_s,
        "violation_list": result.violations,
        "fault_list": [{"kind": f.kind, "target": f.target, "start_h": (f.start - SIM_START.timestamp()) / 3600,
                        "duration_s": f.duration, "commands": f.commands, "note": f.note} for f in result.faults],
        "notes": result.notes,
    }


def format_table(s: dict[str, Any]) -> list[str]:
    def m(v: Any) -> str:
        return "-" if v is None else f"{v / 60:.1f}"

    o = s["options"]
    lines = [
        f"soak: {s['simulated_days']:.2f} simulated days in {s['real_seconds']:.0f} s real (×{o['speed']:g}), "
        f"seed {o['seed']}, {s['faults_injected']} faults, {len(s['fault_kinds_covered'])}/{len(FAULT_KINDS)} kinds",
        f"{'fault kind':<22}{'n':>4}{'viol':>6}{'rec p50':>9}{'p90':>7}{'max':>7}{'not rec':>9}{'cmds/fault':>12}"
        "   (recovery in simulated minutes)",
    ]
    for kind, k in s["by_kind"].items():
        cmds = "-" if k["commands_per_fault"] is None else f"{k['commands_per_fault']:.1f}"
        lines.append(f"{kind:<22}{k['injected']:>4}{k['violations']:>6}{m(k['recovery_p50_s']):>9}"
                     f"{m(k['recovery_p90_s']):>7}{m(k['recovery_max_s']):>7}{k['not_recovered']:>9}{cmds:>12}")
    r = s["recovery_s"]
    lines.append(f"recovery to band (all faults, rooms): p50 {m(r['p50'])}, p90 {m(r['p90'])}, p99 {m(r['p99'])}, "
                 f"max {m(r['max'])} min")
    lines.append(f"wakes {s['wakes']}, miner commands {s['miner_commands']}, service starts {s['service_starts']}, "
                 f"service log lines {s['service_log_lines']}")
    lag = s["harness_lag_s"]
    if lag.get("p50") is not None:
        lines.append(f"load: the soak's own {STEP_S:g} s step woke late by p50 {lag['p50']:.1f} s, "
                     f"p99 {lag['p99']:.1f} s, max {lag['max']:.1f} s (simulated; high values: the machine "
                     "could not keep up)")
    lines.append(f"violations: {s['violations']} {s['violations_by_invariant'] or ''}".rstrip())
    for v in s["violation_list"][:60]:
        lines.append(f"  [{(v['t'] - SIM_START.timestamp()) / 3600:7.3f} h] {v['invariant']} {v['subject']}: "
                     f"{v['detail']} — during {v['fault']}")
    if len(s["violation_list"]) > 60:
        lines.append(f"  … {len(s['violation_list']) - 60} more (see the JSON)")
    for note in s["notes"]:
        lines.append(f"  note: {note}")
    return lines


WATCHDOG_SLACK_S = 300.0  # real seconds beyond the longest planned run


async def run_soak(options: SoakOptions) -> SoakResult:
    """Run a soak. A harness that hangs is an error, not a test that never ends: the run is bounded by its
    longest planned length (1.5 × days) plus `WATCHDOG_SLACK_S` real seconds."""
    limit = options.days * 86400.0 * 1.5 / options.speed + WATCHDOG_SLACK_S
    try:
        return await asyncio.wait_for(Soak(options).run(), limit)
    except TimeoutError:
        raise RuntimeError(f"the soak did not finish within {limit:.0f} real seconds (harness stuck)") from None
