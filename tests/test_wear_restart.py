"""Wear survives restarts (issue 12, item 3).

First the heater machine in virtual time: a machine's `export_wear()`, restored into a fresh machine (the
process after a `kill -9`), keeps `max_wakes_per_hour`, `min_off`, `min_on` and the level dwell, and a
restart inside the soft-on lead time waits for the scheduled soft on instead of sending another.
Then the real thing: `thermostat run` as a process, real mosquitto, a simulated miner over TCP, `kill -9`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest
from heater_fakes import EPOCH, FakeMiner, Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thermostat.adapters.store import Store
from thermostat.core.heater import HeaterMachine, HeaterSettings, HeaterState, HeaterWear, PendingSoft
from thermostat.domain.actions import CommandKind
from thermostat.miners.models import MINI3, MODELS
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

S = HeaterState
K = CommandKind
SETTINGS = HeaterSettings(min_on_s=600, min_off_s=600, max_wakes_per_hour=2, min_level_dwell_s=120)


def restart(h: Harness, settings: HeaterSettings = SETTINGS) -> Harness:
    """What `kill -9` and a new process do: the wear goes through the store (epoch seconds) into a new machine
    that knows nothing else; the wanted level is resumed as the service resumes it."""
    stored = h.m.export_wear(h.t).shifted(EPOCH)
    fresh = HeaterMachine("h", h.m.spec, settings, h.t)
    fresh.want(h.m.requested_level, h.t, reason="resumed after restart")
    fresh.restore_wear(stored.shifted(-EPOCH), h.t)
    new = Harness(fresh, h.miner, h.t)
    new.commands = h.commands  # one record of what the miner was sent, across both processes
    return new


def wake_then_stop(h: Harness, run_s: float = 700) -> None:
    h.want("super")
    h.run_for(run_s)
    h.want(None, reason="room off", safety=True)
    h.run_for(200)


def test_wake_cap_holds_across_restarts() -> None:
    settings = HeaterSettings(min_on_s=60, min_off_s=60, max_wakes_per_hour=2)
    h = Harness(HeaterMachine("h", MINI3, settings, 0.0), FakeMiner(MINI3))
    h.run_for(10)
    for _ in range(2):
        wake_then_stop(h, 300)
        assert h.m.state == S.STANDBY
        h = restart(h, settings)
        h.run_for(30)
    assert len(h.miner.wakes) == 2
    first_wake = h.miner.wakes[0]
    h.want("super", reason="room cold")
    h.run_until(first_wake + 3500)
    assert len(h.miner.wakes) == 2, "a restart forgot the wake history"
    assert h.m.state == S.STANDBY and h.m.earliest_wake(h.t) >= first_wake + 3590
    h.run_until(first_wake + 3700)
    assert len(h.miner.wakes) == 3 and h.miner.wakes[2] >= first_wake + 3600


def test_min_off_holds_across_a_restart() -> None:
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), FakeMiner(MINI3))
    h.run_for(10)
    wake_then_stop(h)
    assert h.m.state == S.STANDBY
    off_at = next(e.time for e in reversed(h.events) if e.to_state == S.STANDBY)
    h = restart(h)
    h.want("super")
    h.run_until(off_at + 590)
    assert len(h.miner.wakes) == 1, "woken again inside min_off after a restart"
    h.run_until(off_at + 700)
    assert len(h.miner.wakes) == 2


def test_min_on_and_level_dwell_hold_across_a_restart() -> None:
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), FakeMiner(MINI3))
    h.run_for(10)
    h.want("super")
    while h.m.state != S.RUNNING:
        h.run_for(1)
    assert h.m.confirmed_level == "super"
    woken = h.miner.wakes[0]
    level_at = next(e.time for e in h.events if e.to_state == S.SETTING_FAN)  # super read back
    h.run_for(10)
    h = restart(h)
    h.run_for(30)  # recalibrating after the mode change, then running again
    assert h.m.state == S.RUNNING and not h.sent(K.SOFT_ON)[1:]
    h.want("eco")  # a level change inside the dwell: deferred
    h.run_until(level_at + 110)
    assert h.miner.level == "super"
    h.run_until(level_at + 150)
    assert h.miner.level == "eco"
    h.want(None)  # not a safety standby: waits for min_on from the wake before the restart
    h.run_until(woken + 590)
    assert h.miner.hashing_level(h.t) is not None, "stopped inside min_on after a restart"
    h.run_until(woken + 700)
    assert h.miner.hashing_level(h.t) is None


def test_restart_inside_the_soft_on_lead_waits_for_it() -> None:
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), FakeMiner(MINI3))
    h.run_for(10)
    h.want("super")
    while not h.sent(K.SOFT_ON):
        h.run_for(0.5)
    scheduled = h.sent(K.SOFT_ON)[0][1].at_miner_time
    assert scheduled is not None
    wear = h.m.export_wear(h.t)
    assert wear.pending == PendingSoft(K.SOFT_ON, scheduled) and len(wear.wakes) == 1
    h.run_for(2)  # killed 2 s into the 5 s lead
    h = restart(h)
    h.run_for(600)
    assert len(h.sent(K.SOFT_ON)) == 1, "a second soft on was sent after the restart"
    assert len(h.miner.wakes) == 1 and h.m.wakes_last_hour(h.t) == 1
    assert h.m.state == S.RUNNING and h.m.confirmed_level == "super"


def test_restart_after_a_lost_soft_on_sends_it_again_as_the_same_wake() -> None:
    miner = FakeMiner(MINI3, lost_softons=1)
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), miner)
    h.run_for(10)
    h.want("super")
    while not h.sent(K.SOFT_ON):
        h.run_for(0.5)
    h = restart(h)
    h.run_for(600)
    assert len(h.sent(K.SOFT_ON)) == 2  # the lost one, then one resend once it is overdue
    assert len(h.miner.wakes) == 1 and h.m.wakes_last_hour(h.t) == 1
    assert h.m.state == S.RUNNING


def test_restart_inside_the_soft_off_lead_waits_for_it() -> None:
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), FakeMiner(MINI3))
    h.run_for(10)
    h.want("super")
    h.run_for(700)
    h.want(None)
    while not h.sent(K.SOFT_OFF):
        h.run_for(0.5)
    assert h.m.export_wear(h.t).pending is not None
    h = restart(h)
    h.run_for(120)
    assert len(h.sent(K.SOFT_OFF)) == 1 and h.m.state == S.STANDBY
    off_at = next(e.time for e in reversed(h.events) if e.to_state == S.STANDBY)
    h.want("super")  # min_off counts from the verified standby after the restart
    h.run_until(off_at + 590)
    assert len(h.miner.wakes) == 1


def test_hashing_found_after_restart_without_our_wake_may_stop_at_once() -> None:
    """A run the previous process did not wake (found on at its start) still has no on-since."""
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), FakeMiner(MINI3, level="super", on=True))
    h.want("super")
    h.run_for(60)
    assert h.m.state == S.RUNNING and h.m.export_wear(h.t).on_since is None
    h = restart(h)
    h.want(None)
    h.run_for(60)
    assert h.sent(K.SOFT_OFF) and h.miner.hashing_level(h.t) is None


def test_restore_only_before_the_first_poll() -> None:
    h = Harness(HeaterMachine("h", MINI3, SETTINGS, 0.0), FakeMiner(MINI3))
    h.run_for(5)
    with pytest.raises(RuntimeError):
        h.m.restore_wear(HeaterWear(), h.t)


def test_future_times_from_a_clock_that_went_back_count_as_now() -> None:
    m = HeaterMachine("h", MINI3, SETTINGS, 100.0)
    m.restore_wear(HeaterWear(wakes=(5000.0,), off_since=9000.0), 100.0)
    wear = m.export_wear(100.0)
    assert wear.off_since == 100.0 and max(wear.wakes) <= 100.0 + SETTINGS.soft_on_lead_s + 1.0


times = st.one_of(st.none(), st.floats(-1e7, 1e7, allow_nan=False))


@given(wakes=st.lists(st.floats(-1e7, 1e7, allow_nan=False), max_size=5), on=times, off=times, level=times,
       offset=st.floats(-2e9, 2e9, allow_nan=False))
def test_shifted_moves_every_time_and_back(wakes: list[float], on: float | None, off: float | None,
                                           level: float | None, offset: float) -> None:
    wear = HeaterWear(tuple(wakes), on, off, level, "eco", PendingSoft(K.SOFT_ON, 123))
    moved = wear.shifted(offset)
    assert moved.pending == wear.pending and moved.level == "eco"
    assert (moved.on_since is None) == (on is None) and (moved.off_since is None) == (off is None)
    back = moved.shifted(-offset)
    assert back.wakes == pytest.approx(wear.wakes, abs=1e-3)
    for a, b in ((back.on_since, on), (back.off_since, off), (back.level_since, level)):
        assert (a is None and b is None) or a == pytest.approx(b, abs=1e-3)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            st.floats(0, 1500) | st.sampled_from([5.0, 610.0, 620.0, 700.0]),  # delay before the want
            st.sampled_from([None, "eco", "super"]),
            st.none() | st.floats(0, 900) | st.sampled_from([1.0, 3.0, 6.0, 200.0]),  # a restart this long after
        ),
        min_size=1, max_size=12,
    ),
)
def test_restarts_at_any_moment_never_break_the_wear_rules(
    steps: list[tuple[float, str | None, float | None]]
) -> None:
    """Judged on the miner, not the machine: boots per sliding hour within the cap, and no boot sooner than
    `min_off` after the miner went off, with restarts (export, new machine, restore) anywhere, also inside a
    soft on/off lead."""
    settings_ = HeaterSettings(min_on_s=600, min_off_s=600, max_wakes_per_hour=2)
    h = Harness(HeaterMachine("h", MINI3, settings_, 0.0), FakeMiner(MINI3), max_dt=60.0)
    events: list[tuple[float, int, str | None]] = []
    t = 0.0
    for delay, level, restart_after in steps:
        t += delay
        events.append((t, 1, level))
        if restart_after is not None:
            events.append((t + restart_after, 0, None))
    for at, kind, level in sorted(events, key=lambda e: (e[0], e[1])):
        h.run_until(at)
        if kind == 0:
            h = restart(h, settings_)
        else:
            h.want(level)
    h.run_for(3 * 3600)
    boots = h.miner.wakes
    for b in boots:
        assert sum(1 for x in boots if b - 3600.0 + 1e-6 < x <= b) <= 2, boots
    offs = []
    trace = h.miner._trace
    for (_, prev_on, _, _), (t_off, on_at, _, _) in itertools.pairwise(trace):
        if prev_on is not None and on_at is None:
            offs.append(t_off)
    for off in offs:
        later = [b for b in boots if b > off]
        if later:
            assert later[0] - off >= settings_.min_off_s - 1e-6, (off, later[0], boots, offs)


# ---------------------------------------------------------------- a real `thermostat run` process, kill -9


def write_config(tmp: Path, broker_port: int, miner_port: int) -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: thermo, client_id: thermo-wear}}
rooms:
  living:
    sensor: {{topic: sensors/living, json_key: temperature, stale_after: 10m}}
    target: 21
    control: {{mode: hysteresis}}
    heaters: [m1]
heaters:
  m1: {{host: 127.0.0.1, port: {miner_port}, model: mini3, min_on: 2s, min_off: 2s, max_wakes_per_hour: 2}}
state: {{path: {tmp / 'state.db'}}}
"""
    )
    return path


class Process:
    def __init__(self, config: Path) -> None:
        self.cmd = [sys.executable, "-m", "thermostat", "run", "--config", str(config)]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "run.log"  # every run's log, for a failing test's reader

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def publish(port: int, topic: str, payload: str) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1)


async def until(pred: Callable[[], bool], timeout: float, what: str, tick: Callable[[], object] | None = None,
                ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if tick is not None:
            result = tick()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def softons(miner: SimMiner) -> int:
    return sum(1 for _, r in miner.commands_log if "softon" in r)


@pytest.mark.broker
def test_kill_9_restarts_do_not_break_the_wake_cap(tmp_path: Path, mqtt_broker: object) -> None:
    """Three wake requests in a few minutes with `max_wakes_per_hour: 2`, a `kill -9` and a restart between
    them: the third is refused, because the wake history survived the restarts."""
    port: int = mqtt_broker.port  # type: ignore[attr-defined]

    async def scenario() -> None:
        miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2,
                         start_state="standby")
        server = await serve_miner(miner, "127.0.0.1", 0)
        proc = Process(write_config(tmp_path, port, server_port(server)))

        async def cold() -> None:  # repeated: the process may not have subscribed yet
            await publish(port, "thermo/room/living/mode/set", "heat")
            await publish(port, "sensors/living", json.dumps({"temperature": 17.0}))

        async def off() -> None:
            await publish(port, "thermo/room/living/mode/set", "off")

        try:
            for cycle in range(3):
                proc.start()
                if cycle < 2:
                    await until(lambda: miner.hashing, 60, f"wake {cycle + 1}", cold)
                    await asyncio.sleep(3.0)  # past min_on
                    await until(lambda: not miner.hashing and miner.state == "In Idle", 60, "standby", off)
                    await asyncio.sleep(4.0)  # past min_off; the verified standby is persisted
                    proc.kill9()
                else:
                    for _ in range(20):
                        await cold()
                        await asyncio.sleep(1.0)
            assert miner.wakes == 2, f"{miner.wakes} wakes with max_wakes_per_hour: 2 across kill -9"
            assert softons(miner) == 2
        finally:
            proc.stop()
            await close_server(server)

    asyncio.run(scenario())


@pytest.mark.broker
def test_kill_9_inside_the_soft_on_lead_sends_no_second_soft_on(tmp_path: Path, mqtt_broker: object) -> None:
    port: int = mqtt_broker.port  # type: ignore[attr-defined]

    async def scenario() -> None:
        miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2,
                         start_state="standby")
        server = await serve_miner(miner, "127.0.0.1", 0)
        proc = Process(write_config(tmp_path, port, server_port(server)))

        async def cold() -> None:
            await publish(port, "sensors/living", json.dumps({"temperature": 17.0}))

        try:
            proc.start()
            await until(lambda: softons(miner) >= 1, 30, "the soft on", cold)
            proc.kill9()  # well inside the 5 s lead: the miner is still in standby
            assert not miner.hashing
            proc.start()
            await until(lambda: miner.hashing and miner.calibrated, 60, "the scheduled wake", cold)
            await asyncio.sleep(3.0)
            assert softons(miner) == 1, "the restarted process sent a second soft on"
            assert miner.wakes == 1
            store = Store(tmp_path / "state.db")
            try:
                row = store.get_heater_state("m1")
                assert len(row.wakes) == 1, f"one wake counted twice: {row.wakes}"
            finally:
                store.close()
        finally:
            proc.stop()
            await close_server(server)

    asyncio.run(scenario())
