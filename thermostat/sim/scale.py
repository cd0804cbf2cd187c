"""The fleet-scale benchmark (`thermostat bench-scale`): one real service driving many simulated miners.

Parts, each in its own process so that the service's CPU and memory are measured alone:

* a private mosquitto on loopback;
* the simulated fleet: `SimMiner`s served on loopback TCP ports by one or a few fleet processes
  (``python -m thermostat.sim.scale fleet``), each recording when every miner is polled and when it receives a
  command that changes it (`ascset`);
* the real service (``python -m thermostat run``) on a generated configuration: M rooms, N heaters shared out
  round-robin, each room with its own MQTT temperature sensor;
* this process: the sensors (each room publishes a reading every 10-30 s, as battery sensors do), the
  sampling of the service's CPU time and RSS from /proc, and at the end the fan-out: target overrides for the
  rooms holding the first `fanout_heaters` heaters, published together, each heater's first command timed
  from the first publish.

The house: every room sits below its target, so every heater runs at its top level and is polled every
`POLL_PERIOD_S` (the steady state of a heating house). The fan-out change is `mode off` for those rooms
(published together), which the engine honours at once (every heater of the room to standby); a raised target
would not do as a probe, since the allocator adds heaters one by one on the 5-minute mean demand.

Times crossing processes are `time.monotonic()` readings: CLOCK_MONOTONIC is one clock for the whole machine.
With ``THERMOSTAT_SCALE_PROFILE=FILE`` in the environment the service runs under cProfile, writing FILE.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from thermostat.adapters.store import HeaterState, Store
from thermostat.miners.models import MODELS
from thermostat.sim.demo import pick_broker
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import SimFleet

POLL_PERIOD_S = 15.0  # HeaterSettings.poll_interval_s: a settled heater is polled this often
READING_EVERY_S = (10.0, 30.0)  # each room's sensor publishes at a random interval in this range
ROOM_C, TARGET_C = 20.0, 25.0  # every room below its target: every heater runs at its top level, polled
MINERS_PER_FLEET_PROCESS = 500


# ------------------------------------------------------------------------------------------ fleet process


def _is_poll(text: str) -> bool:
    return "litestats" in text or "estats" in text


def _is_change(text: str) -> bool:
    return "ascset" in text and "help" not in text


async def _serve_fleet(count: int, seed: int, ports_file: Path, result_file: Path, status_file: Path) -> None:
    polls: dict[int, list[float]] = {}
    changes: dict[int, list[float]] = {}
    index: dict[int, int] = {}

    def on_request(miner: SimMiner, text: str, _reply: bytes | None) -> None:
        i = index[id(miner)]
        if _is_poll(text):
            polls[i].append(time.monotonic())
        elif _is_change(text):
            changes[i].append(time.monotonic())

    miners = [SimMiner(MODELS["mini3"], time_fn=time.time, seed=seed + i, start_state="mining",
                       boot_seconds=30, calibration_seconds=10) for i in range(count)]
    for i, miner in enumerate(miners):
        index[id(miner)] = i
        polls[i], changes[i] = [], []
    fleet = SimFleet(miners, base_port=0, on_request=on_request)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    ports = await fleet.start()
    tmp = ports_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports))
    tmp.replace(ports_file)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            tmp = status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"polled": sum(1 for p in polls.values() if p)}))
            tmp.replace(status_file)
    finally:
        await fleet.stop()
    result = {str(port): {"polls": polls[i], "changes": changes[i]} for i, port in enumerate(ports)}
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_file)


def fleet_main(argv: list[str]) -> int:
    count, seed = int(argv[0]), int(argv[1])
    ports_file, result_file, status_file = Path(argv[2]), Path(argv[3]), Path(argv[4])
    asyncio.run(_serve_fleet(count, seed, ports_file, result_file, status_file))
    return 0


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class ScaleResult:
    heaters: int
    rooms: int
    seconds: float  # the measured window
    cpu_pct: float  # service CPU time in the window, % of one core
    rss_mb: float  # largest RSS sampled in the window
    rss_peak_mb: float  # VmHWM at the end (start-up included)
    poll_period_s: float
    poll_gap_p50_s: float | None
    poll_gap_p99_s: float | None
    poll_gap_max_s: float | None
    heaters_polled: int  # heaters polled at least once in the window
    readings_published: int
    fanout_heaters: int  # heaters of the rooms the fan-out changed
    fanout_reached: int  # of those, how many received a command within the timeout
    fanout_p50_ms: float | None
    fanout_p99_ms: float | None
    fanout_max_ms: float | None
    startup_s: float  # service start until every heater was polled once
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)  # /proc/loadavg at the start (shared machine)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 of the file


def proc_memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB (/proc/<pid>/status)."""
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


def poll_gaps(polls: list[float], start: float, end: float) -> list[float]:
    """For every poll in [start, end], the time since the heater's previous poll (which may precede `start`)."""
    return [b - a for a, b in itertools.pairwise(polls) if start <= b <= end]


def config_yaml(*, broker_port: int, ports: list[int], rooms: int, state: Path, log_level: str = "warning") -> str:
    lines = [
        "# written by `thermostat bench-scale`",
        f"mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: scale, client_id: scale-service}}",
        "safety: {on_exit: leave}",
        "dashboard: {enabled: false}",
        f"log: {{level: {log_level}}}",
        f"state: {{path: {state}}}",
        "rooms:",
    ]
    members: list[list[int]] = [[] for _ in range(rooms)]
    for i in range(len(ports)):
        members[i % rooms].append(i)
    for r in range(rooms):
        lines += [
            f"  r{r:03d}:",
            f"    sensor: {{topic: scale/sensor/r{r:03d}, stale_after: 5m}}",
            f"    target: {TARGET_C}",
            "    limits: {min_c: 5, max_c: 30}",
            "    control: {mode: hysteresis, cold_tolerance: 0.3, hot_tolerance: 0.3}",
            f"    heaters: [{', '.join(f'h{i:04d}' for i in members[r])}]",
        ]
    lines.append("heaters:")
    for i, port in enumerate(ports):
        lines.append(f"  h{i:04d}: {{host: 127.0.0.1, port: {port}, model: mini3, min_on: 0s, min_off: 0s, "
                     "max_wakes_per_hour: 60}")
    return "\n".join(lines) + "\n"


def room_members(heaters: int, rooms: int) -> list[list[int]]:
    members: list[list[int]] = [[] for _ in range(rooms)]
    for i in range(heaters):
        members[i % rooms].append(i)
    return members


def _resume_running(state: Path, heaters: int) -> None:
    """The state file of a house that was heating when the service last stopped: every heater wanted at its top
    level, so the service resumes the steady state (the miners are mining) instead of starting from standby."""
    top = MODELS["mini3"].top_level.name
    now = time.time()
    with Store(state) as store:
        for i in range(heaters):
            store.put_heater_state(f"h{i:04d}", HeaterState(wanted_level=top, confirmed_level=top), now)


def _wait_for(path: Path, timeout: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path.name}")
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a benchmark process exited early (code {p.returncode})")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_bench(heaters: int, rooms: int, seconds: float, *, fanout_heaters: int = 120,
              workdir: Path | None = None, seed: int = 1, log_level: str = "warning") -> ScaleResult:
    """Run the whole benchmark and return its figures. Needs mosquitto on PATH (or /usr/sbin)."""
    if heaters < 1 or rooms < 1 or rooms > heaters:
        raise ValueError("need at least one heater per room")
    with contextlib.ExitStack() as stack:
        tmp = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="thermostat-scale-")))
        broker = pick_broker("mosquitto", tmp)
        if broker is None:
            raise RuntimeError("bench-scale needs mosquitto (apt install mosquitto)")
        broker.start()
        stack.callback(broker.stop)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        fleets: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        n_proc = max(1, math.ceil(heaters / MINERS_PER_FLEET_PROCESS))
        share = [heaters // n_proc + (1 if k < heaters % n_proc else 0) for k in range(n_proc)]
        for k, count in enumerate(share):
            ports_file, result_file, status_file = (tmp / f"fleet{k}.ports", tmp / f"fleet{k}.result",
                                                    tmp / f"fleet{k}.status")
            proc = subprocess.Popen(
                [sys.executable, "-m", "thermostat.sim.scale", "fleet", str(count), str(seed + 10_000 * k),
                 str(ports_file), str(result_file), str(status_file)],
                env=env, stdout=subprocess.DEVNULL, stderr=(tmp / f"fleet{k}.log").open("wb"))
            stack.callback(_stop, proc)
            fleets.append((proc, ports_file, status_file))
        ports: list[int] = []
        for proc, ports_file, _ in fleets:
            _wait_for(ports_file, 120, [proc])
            ports += json.loads(ports_file.read_text())
        config = tmp / "house.yaml"
        config.write_text(config_yaml(broker_port=broker.port, ports=ports, rooms=rooms, state=tmp / "state.db",
                                      log_level=log_level))
        _resume_running(tmp / "state.db", heaters)
        load_before = os.getloadavg()
        started = time.monotonic()
        profile = os.environ.get("THERMOSTAT_SCALE_PROFILE")  # a cProfile output file for the service
        wrap = ["-m", "cProfile", "-o", profile] if profile else []
        service = subprocess.Popen([sys.executable, *wrap, "-m", "thermostat", "run", "--config", str(config)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=(tmp / "service.log").open("wb"))
        stack.callback(_stop, service)
        try:
            result, marks = asyncio.run(_measure(
                service, fleets, broker.port, heaters, rooms, seconds, fanout_heaters, started, seed))
        except RuntimeError as exc:
            tail = (tmp / "service.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError("\n".join([str(exc), *tail])) from None
        result.load_before = load_before
        _stop(service)
        figures: dict[int, dict[str, list[float]]] = {}
        for proc, _, _ in fleets:
            _stop(proc)
        for k in range(len(fleets)):
            data = json.loads((tmp / f"fleet{k}.result").read_text())
            figures.update({int(port): v for port, v in data.items()})
        _fill_from_fleet(result, marks, figures, ports, rooms)
        return result


@dataclass
class _Marks:
    window_start: float = 0.0
    window_end: float = 0.0
    fanout_start: float = 0.0
    fanout_rooms: list[int] = field(default_factory=list)


async def _measure(service: subprocess.Popen[bytes], fleets: list[tuple[subprocess.Popen[bytes], Path, Path]],
                   broker_port: int, heaters: int, rooms: int, seconds: float, fanout_heaters: int,
                   started: float, seed: int) -> tuple[ScaleResult, _Marks]:
    marks = _Marks()
    rng = random.Random(seed)
    published = 0
    members = room_members(heaters, rooms)
    quiet = logging.getLogger("thermostat.sim.scale.mqtt")  # the fan-out's commands go out together: aiomqtt
    quiet.setLevel(logging.ERROR)  # would warn about "pending publish calls" for each beyond ten
    async with aiomqtt.Client("127.0.0.1", broker_port, identifier="scale-sensors", logger=quiet) as client:

        async def sensors(stop: asyncio.Event) -> None:
            nonlocal published
            loop = asyncio.get_running_loop()
            due = [loop.time() + rng.uniform(0, READING_EVERY_S[0]) for _ in range(rooms)]
            for r in range(rooms):  # a first reading for every room at once, as after a broker restart
                await client.publish(f"scale/sensor/r{r:03d}", f"{ROOM_C:.2f}")
            while not stop.is_set():
                r = min(range(rooms), key=due.__getitem__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, due[r] - loop.time()))
                if stop.is_set():
                    return
                await client.publish(f"scale/sensor/r{r:03d}", f"{ROOM_C + rng.uniform(-0.2, 0.2):.2f}")
                published += 1
                due[r] = loop.time() + rng.uniform(*READING_EVERY_S)

        stop = asyncio.Event()
        sensor_task = asyncio.create_task(sensors(stop))
        try:
            # start-up: until every heater has been polled once
            deadline = time.monotonic() + 300
            while True:
                if service.poll() is not None:
                    raise RuntimeError(f"the service exited during start-up (code {service.returncode})")
                polled = 0
                for _, _, status_file in fleets:
                    with contextlib.suppress(OSError, ValueError):
                        polled += int(json.loads(status_file.read_text())["polled"])
                if polled >= heaters:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {polled} of {heaters} heaters polled within 300 s of the start")
                await asyncio.sleep(0.5)
            startup_s = time.monotonic() - started
            await asyncio.sleep(min(5.0, seconds / 4))  # let the start-up burst pass
            marks.window_start = time.monotonic()
            cpu0 = proc_cpu_s(service.pid)
            rss_max = 0.0
            while time.monotonic() < marks.window_start + seconds:
                rss_max = max(rss_max, proc_memory_mb(service.pid)[0])
                await asyncio.sleep(1.0)
            cpu1 = proc_cpu_s(service.pid)
            marks.window_end = time.monotonic()
            window = marks.window_end - marks.window_start
            rss_max = max(rss_max, proc_memory_mb(service.pid)[0])
            rss_peak = proc_memory_mb(service.pid)[1]
            # fan-out: overrides for the first rooms until they hold `fanout_heaters` heaters
            chosen: list[int] = []
            covered = 0
            for r in range(rooms):
                if covered >= fanout_heaters:
                    break
                chosen.append(r)
                covered += len(members[r])
            marks.fanout_rooms = chosen
            marks.fanout_start = time.monotonic()
            # mode off is honoured at once: every heater of the room to standby. The rooms' commands are handed to
            # the client together (as a house-wide automation sends them), so that what is timed is the engine,
            # not this process publishing one message per pass of its own event loop.
            await asyncio.gather(*(client.publish(f"scale/room/r{r:03d}/mode/set", "off") for r in chosen))
            await asyncio.sleep(10.0)
        finally:
            stop.set()
            await sensor_task
    return ScaleResult(
        heaters=heaters, rooms=rooms, seconds=round(window, 1), cpu_pct=round(100 * (cpu1 - cpu0) / window, 2),
        rss_mb=round(rss_max, 1), rss_peak_mb=round(rss_peak, 1), poll_period_s=POLL_PERIOD_S,
        poll_gap_p50_s=None, poll_gap_p99_s=None, poll_gap_max_s=None, heaters_polled=0,
        readings_published=published, fanout_heaters=covered, fanout_reached=0, fanout_p50_ms=None,
        fanout_p99_ms=None, fanout_max_ms=None, startup_s=round(startup_s, 1),
    ), marks


def _fill_from_fleet(result: ScaleResult, marks: _Marks, figures: dict[int, dict[str, list[float]]], ports: list[int],
                     rooms: int) -> None:
    gaps: list[float] = []
    polled = 0
    for port in ports:
        polls = figures[port]["polls"]
        if any(marks.window_start <= t <= marks.window_end for t in polls):
            polled += 1
        gaps += poll_gaps(polls, marks.window_start, marks.window_end)
    result.heaters_polled = polled
    result.poll_gap_p50_s = _round(percentile(gaps, 50), 3)
    result.poll_gap_p99_s = _round(percentile(gaps, 99), 3)
    result.poll_gap_max_s = _round(max(gaps) if gaps else None, 3)
    members = room_members(len(ports), rooms)
    delays: list[float] = []
    for r in marks.fanout_rooms:
        for i in members[r]:
            after = [t for t in figures[ports[i]]["changes"] if t >= marks.fanout_start]
            if after:
                delays.append((after[0] - marks.fanout_start) * 1000)
    result.fanout_reached = len(delays)
    result.fanout_p50_ms = _round(percentile(delays, 50), 1)
    result.fanout_p99_ms = _round(percentile(delays, 99), 1)
    result.fanout_max_ms = _round(max(delays) if delays else None, 1)
    if not gaps:
        result.notes.append("no heater was polled twice in the window: make --seconds longer than the poll period")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def format_table(results: list[ScaleResult]) -> str:
    head = (f"{'heaters':>7} {'rooms':>5} {'CPU %':>6} {'RSS MB':>6} {'gap p50':>8} {'gap p99':>8} "
            f"{'p99/period':>10} {'fan-out':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    rows = [head]
    for r in results:
        ratio = f"{r.poll_gap_p99_s / r.poll_period_s:.3f}" if r.poll_gap_p99_s is not None else "-"

        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)

        rows.append(f"{r.heaters:>7} {r.rooms:>5} {r.cpu_pct:>6.1f} {r.rss_mb:>6.1f} "
                    f"{num(r.poll_gap_p50_s, '.2f'):>8} {num(r.poll_gap_p99_s, '.2f'):>8} {ratio:>10} "
                    f"{r.fanout_reached:>3}/{r.fanout_heaters:<3} {num(r.fanout_p50_ms, '.1f'):>7} "
                    f"{num(r.fanout_p99_ms, '.1f'):>7} {num(r.fanout_max_ms, '.1f'):>7}")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "fleet":
        sys.exit(fleet_main(sys.argv[2:]))
    print("usage: python -m thermostat.sim.scale fleet COUNT SEED PORTS RESULT STATUS", file=sys.stderr)
    sys.exit(2)
