"""The store degrades, it never stops heating safely (issue 12, bug 2).

Each start case uses a real file: truncated, random bytes, a corrupt page, a newer schema, a directory, a
read-only mount (a bind mount remounted ro: root ignores chmod) and a full disk (a tiny tmpfs filled to the
last byte). While running, write errors are retried with backoff and never raise into the caller.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest
from mounts import fill, read_only_view, require_mount, tmpfs

from thermostat.adapters.store import HeaterState, RoomState, SafeStore, Store
from thermostat.cli import main
from thermostat.config import load_config
from thermostat.miners.models import MODELS
from thermostat.service import Service
from thermostat.sim.miner import SimMiner
from thermostat.sim.server import close_server, serve_miner, server_port

WAKES = (1_700_000_000.0, 1_700_000_600.0)


def good_file(path: Path, history_rows: int = 400) -> Path:
    with Store(path) as store:
        store.put_heater_state("mini", HeaterState(wanted_level="eco", wakes=WAKES), 1.0)
        store.put_room_state("living", RoomState(mode="off"), 1.0)
        store.add_energy("living", 2.5, 1.0)
        store.record_history_rows([])
        for i in range(history_rows):  # enough pages that a damaged page hits a table
            store.record_history(float(i), room="living", reading=20.0 + i / 1000, watts=800.0)
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(32 * 1024))


def corrupt_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 2 * page + 700] = b"\xab" * 700  # the third page: a table's b-tree page
    path.write_bytes(bytes(data))


def newer_schema(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", [truncate, random_bytes, corrupt_page, newer_schema],
                         ids=["truncated", "random-bytes", "corrupt-page", "newer-schema"])
def test_a_damaged_file_is_moved_aside_and_a_fresh_one_used(tmp_path: Path,
                                                            damage: Callable[[Path], None]) -> None:
    path = good_file(tmp_path / "state.db")
    damage(path)
    original = path.read_bytes()
    store = SafeStore(path)
    assert store.moved_to is not None and store.moved_to.name.startswith("state.db.damaged-")
    assert store.moved_to.read_bytes() == original  # kept for the owner, byte for byte
    assert store.problem is not None and "moved to state.db.damaged-" in store.problem
    assert "\n" not in store.problem
    assert store.start_problem == store.problem and store.write_problem is None
    assert store.get_heater_state("mini") == HeaterState()  # empty state
    # the fresh file takes writes at once
    store.put_heater_state("mini", HeaterState(wanted_level="standby"), 5.0)
    store.close()
    with Store(path) as fresh:
        assert fresh.get_heater_state("mini").wanted_level == "standby"


def test_a_directory_is_left_alone_and_state_kept_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.mkdir()
    (path / "keep.txt").write_text("mine")
    store = SafeStore(path)
    assert store.problem is not None and "is a directory" in store.problem
    assert store.moved_to is None and (path / "keep.txt").read_text() == "mine"
    store.put_room_state("living", RoomState(mode="off"), 1.0)
    assert store.get_room_state("living").mode == "off"  # in memory
    assert store.add_energy("living", 0.5) == 0.5
    assert not store.flush(force=True)  # never retried
    store.close()


def test_a_read_only_file_is_left_alone_and_its_state_still_used(tmp_path: Path) -> None:
    require_mount(tmp_path)
    source = tmp_path / "src"
    source.mkdir()
    good_file(source / "state.db")
    before = (source / "state.db").read_bytes()
    with read_only_view(source, tmp_path / "ro") as view:
        with pytest.raises(OSError):
            (view / "probe").write_text("x")  # really read-only, even for root
        store = SafeStore(view / "state.db", retry_min_s=0.0)
        assert store.moved_to is None
        assert store.problem is not None and "cannot be used" in store.problem
        # what could be read is the best start: the wear history survives
        assert store.get_heater_state("mini").wakes == WAKES
        assert store.get_room_state("living").mode == "off"
        store.put_room_state("living", RoomState(mode="heat"), 2.0)  # no exception: kept in memory
        assert store.get_room_state("living").mode == "heat"
        assert store.problem is not None and "cannot be written" in store.problem
        assert store.start_problem is None and store.write_problem == store.problem
        store.close()
    assert (source / "state.db").read_bytes() == before


def test_a_full_disk_at_start_then_freed(tmp_path: Path) -> None:
    require_mount(tmp_path)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        good_file(disk / "state.db", history_rows=10)
        assert not (disk / "state.db-wal").exists()  # closed cleanly before the disk fills
        filler = fill(disk)
        assert filler.stat().st_size > 0
        now = [0.0]
        store = SafeStore(disk / "state.db", clock=lambda: now[0], retry_min_s=1.0, retry_max_s=8.0)
        assert store.moved_to is None and store.problem is not None
        assert store.get_heater_state("mini").wakes == WAKES  # read although it cannot be written
        store.put_room_state("living", RoomState(mode="heat"), 2.0)
        store.add_energy("living", 1.0)
        assert store.energy("living") == pytest.approx(3.5)
        filler.unlink()
        assert not store.flush()  # inside the backoff: not tried yet
        now[0] = 100.0
        assert store.flush()
        assert store.problem is None
        store.close()
        with Store(disk / "state.db") as reread:
            assert reread.get_room_state("living").mode == "heat"
            assert reread.energy("living") == pytest.approx(3.5)  # nothing counted twice, nothing lost
            assert reread.get_heater_state("mini").wakes == WAKES


def test_write_errors_while_running_are_retried_with_backoff(tmp_path: Path) -> None:
    require_mount(tmp_path)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        now = [0.0]
        store = SafeStore(disk / "state.db", clock=lambda: now[0], retry_min_s=1.0, retry_max_s=4.0)
        assert store.problem is None
        filler = fill(disk)
        attempts = []
        for step in range(40):  # 40 s of writes, one per second, on a full disk
            now[0] = float(step)
            before = store.write_failures
            store.add_energy("living", 0.01, now[0])
            store.record_history(now[0], room="living", reading=20.0, watts=800.0)
            if store.write_failures > before:
                attempts.append(now[0])
        assert store.problem is not None and "cannot be written" in store.problem
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps[:3] == [1.0, 2.0, 4.0] and max(gaps) == 4.0  # doubling up to the ceiling
        assert len(attempts) < 15  # not one attempt per write
        assert store.energy("living") == pytest.approx(0.4)
        filler.unlink()
        now[0] = 100.0
        assert store.flush()
        assert store.problem is None
        store.close()
        with Store(disk / "state.db") as reread:
            assert reread.energy("living") == pytest.approx(0.4)
            assert len(reread.history(room="living")) == 40


# --- the service starts on a damaged file (bug 2 reproduced) -----------------------------------------------


def house(tmp: Path, broker_port: int, miner_port: int, state: Path, base: str = "storefaults") -> Path:
    path = tmp / "house.yaml"
    path.write_text(
        f"""mqtt: {{host: 127.0.0.1, port: {broker_port}, base_topic: {base}, client_id: {base}}}
rooms:
  living:
    sensor: {{topic: sensors/storefaults, stale_after: 10m}}
    target: 21
    heaters: [mini]
heaters:
  mini: {{host: 127.0.0.1, port: {miner_port}, model: mini3}}
state: {{path: {state}}}
"""
    )
    return path


async def retained(port: int, topic: str) -> bytes:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic)
        msg = await asyncio.wait_for(anext(aiter(client.messages)), 5)
        return bytes(msg.payload)  # type: ignore[arg-type]


@pytest.mark.broker
@pytest.mark.parametrize("damage", [truncate, random_bytes, corrupt_page], ids=["truncated", "random", "page"])
async def test_the_service_starts_on_a_damaged_state_file(tmp_path: Path, mqtt_broker: object,
                                                          damage: Callable[[Path], None]) -> None:
    miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2)
    server = await serve_miner(miner, "127.0.0.1", 0)
    port = mqtt_broker.port  # type: ignore[attr-defined]
    state = good_file(tmp_path / "state.db")
    damage(state)
    config = load_config(house(tmp_path, port, server_port(server), state, base=f"storefaults-{damage.__name__}"))
    service = Service(config)  # on main: StoreError/DatabaseError here, before MQTT or any miner
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        deadline = time.monotonic() + 10
        while service.heaters["mini"].machine is None or service.heaters["mini"].machine.last_snapshot is None:
            assert time.monotonic() < deadline, "the heater was never polled"
            await asyncio.sleep(0.05)
        problem = json.loads(await retained(port, f"storefaults-{damage.__name__}/problem"))
        assert problem["problem"] is True and "damaged" in problem["text"]
        assert problem["problems"][0]["severity"] == "error"
        assert await retained(port, f"storefaults-{damage.__name__}/status") == b"online"
        # the fresh file takes writes: what stays reported is the damage found at start, under its own key,
        # so that a later write failure can clear ("resolved: ...") without hiding it
        start_problem = service.problems.get("store-start")
        assert start_problem is not None and "damaged" in start_problem.text
        assert service.problems.get("store") is None
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_server(server)
    assert list(tmp_path.glob("state.db.damaged-*"))


@pytest.mark.broker
def test_thermostat_run_on_random_bytes_keeps_running(tmp_path: Path, mqtt_broker: object) -> None:
    async def scenario() -> None:
        miner = SimMiner(MODELS["mini3"], time_fn=time.time, boot_seconds=2, calibration_seconds=2)
        server = await serve_miner(miner, "127.0.0.1", 0)
        port = mqtt_broker.port  # type: ignore[attr-defined]
        state = tmp_path / "state.db"
        random_bytes(state)
        path = house(tmp_path, port, server_port(server), state, base="storefaults-run")
        proc = subprocess.Popen([sys.executable, "-m", "thermostat", "run", "--config", str(path)],
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if json.loads(await retained(port, "storefaults-run/problem"))["problem"]:
                        break
                except (TimeoutError, aiomqtt.MqttError):
                    pass
                assert proc.poll() is None, "thermostat run exited"
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
            err = proc.stderr.read().decode() if proc.stderr else ""
            assert "Traceback" not in err
            assert "ERROR thermostat.problems: problem: state file" in err and "moved to state.db.damaged-" in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await close_server(server)

    asyncio.run(scenario())


# --- check-config --------------------------------------------------------------------------------------------


def test_check_config_rejects_a_directory_or_an_impossible_folder(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dir.db").mkdir()
    (tmp_path / "afile").write_text("x")
    for state, expect in ((tmp_path / "dir.db", "is a directory"),
                          (tmp_path / "afile" / "sub" / "state.db", "cannot be created")):
        path = tmp_path / "house.yaml"
        path.write_text(house(tmp_path, 1883, 4028, state).read_text().replace(
            f"state: {{path: {state}}}", f"state:\n  path: {state}"))
        assert main(["check-config", str(path)]) == 1
        err = capsys.readouterr().err
        line = err.splitlines()[0]
        assert line.startswith(f"{path}:10:9: state.path: "), err  # file:line:col of the value
        assert expect in line and "Traceback" not in err
    path.write_text(house(tmp_path, 1883, 4028, tmp_path / "new" / "folder" / "state.db").read_text())
    assert main(["check-config", str(path)]) == 0  # a folder that can be created is fine
    capsys.readouterr()


def test_a_value_that_cannot_be_stored_is_refused_at_once_and_blocks_nothing(tmp_path: Path) -> None:
    from datetime import datetime

    store = SafeStore(tmp_path / "state.db")
    with pytest.raises(ValueError, match="aware"):
        store.put_room_state("living", RoomState(override_temp=22.0, override_until=datetime(2030, 1, 1)), 1.0)
    with pytest.raises(ValueError):
        store.put_learned("k", float("nan"), 1.0)
    store.put_room_state("study", RoomState(mode="off"), 2.0)  # later writes still reach the file
    assert store.problem is None
    store.close()
    with Store(tmp_path / "state.db") as reread:
        assert reread.rooms() == ["study"]
