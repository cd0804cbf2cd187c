"""thermostat.adapters.store: SQLite persistence."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from thermostat.adapters.store import SCHEMA_VERSION, HeaterState, HistoryRow, RoomState, Store, StoreError

T0 = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def test_created_on_first_open(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    assert not path.exists()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"rooms", "heaters", "learned", "history", "energy"} <= tables
    db.close()


def test_defaults_for_unknown(store: Store) -> None:
    assert store.get_room_state("nowhere") == RoomState()
    assert store.get_heater_state("nothing") == HeaterState()
    assert store.get_learned("x") is None
    assert store.energy("nowhere") == 0.0


def test_room_roundtrip(store: Store) -> None:
    state = RoomState(
        mode="off",
        preset="away",
        override_temp=22.5,
        override_until=T0 + timedelta(hours=2),
        override_set_at=T0,
        manual_level="eco",
    )
    store.put_room_state("living", state, now=100.0)
    got = store.get_room_state("living")
    assert got == RoomState(**{**state.__dict__, "updated": 100.0})
    assert got.override_until is not None and got.override_until.tzinfo is not None
    store.put_room_state("living", RoomState(), now=200.0)
    assert store.get_room_state("living") == RoomState(updated=200.0)
    assert store.rooms() == ["living"]


def test_naive_datetime_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.put_room_state("r", RoomState(override_temp=20, override_until=datetime(2026, 1, 1)), now=0)


def test_heater_roundtrip(store: Store) -> None:
    state = HeaterState(
        wanted_level="super",
        confirmed_level="eco",
        controlled=False,
        manual_level="standby",
        wakes=(1000.0, 2000.5),
        last_onoff_change=2000.5,
    )
    store.put_heater_state("mini-1", state, now=3000.0)
    assert store.get_heater_state("mini-1") == HeaterState(**{**state.__dict__, "updated": 3000.0})
    assert store.heaters() == ["mini-1"]


def test_unknown_json_keys_ignored_missing_defaulted(store: Store) -> None:
    """Forward/backward compatible rows: a newer field is ignored, a missing one takes its default."""
    store._db.execute(
        "INSERT INTO heaters(heater, data, updated) VALUES ('h', '{\"wanted_level\": \"eco\", \"future\": 1}', 5)"
    )
    assert store.get_heater_state("h") == HeaterState(wanted_level="eco", updated=5.0)


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.put_room_state("r", RoomState(preset="eco"), now=1.0)
        s.put_heater_state("h", HeaterState(wakes=(1.0,)), now=1.0)
        s.put_learned("pid.r.integral", {"i": 0.25}, ts=42.0)
        s.add_energy("r", 1.5)
        s.record_history(10.0, room="r", reading=20.1, target=21.0)
    with Store(path) as s:
        assert s.get_room_state("r").preset == "eco"
        assert s.get_heater_state("h").wakes == (1.0,)
        assert s.get_learned("pid.r.integral") == ({"i": 0.25}, 42.0)
        assert s.energy("r") == 1.5
        assert s.history(room="r") == [HistoryRow(10.0, "r", None, 20.1, 21.0, None, None)]


def test_survives_kill_9(tmp_path: Path) -> None:
    """Every write is committed before it returns: a SIGKILL right after loses nothing."""
    path = tmp_path / "k.db"
    script = (
        "import os, signal\n"
        "from thermostat.adapters.store import Store, HeaterState\n"
        f"s = Store({str(path)!r})\n"
        "s.put_heater_state('h', HeaterState(wanted_level='super', wakes=(5.0,)), now=9.0)\n"
        "s.add_energy('r', 2.0)\n"
        "s.record_history(1.0, heater='h', level='super', watts=750.0)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert proc.returncode == -9
    with Store(path) as s:
        assert s.get_heater_state("h").wanted_level == "super"
        assert s.energy("r") == 2.0
        assert s.history_count() == 1


def test_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="schema version"):
        Store(path)


def test_refuses_non_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(path)


def test_learned_roundtrip(store: Store) -> None:
    store.put_learned("k", 1.25, ts=1.0)
    store.put_learned("k", 2.5, ts=2.0)
    assert store.get_learned("k") == (2.5, 2.0)
    with pytest.raises(ValueError):
        store.put_learned("bad", math.nan, ts=3.0)
    assert store.get_learned("bad") is None


def test_history_filters_and_prune(store: Store) -> None:
    store.record_history_rows(
        [HistoryRow(float(t), room="a" if t % 2 else "b", reading=20.0 + t / 10, watts=math.nan) for t in range(100)]
    )
    assert store.history_count() == 100
    rows = store.history(room="a", since=10, until=20)
    assert [r.ts for r in rows] == [11.0, 13.0, 15.0, 17.0, 19.0]
    assert all(r.watts is None for r in rows)  # NaN stored as NULL
    assert len(store.history(limit=3)) == 3
    assert store.prune(older_than=50.0) == 50
    assert store.history_count() == 50
    assert min(r.ts for r in store.history()) == 50.0
    assert store.prune(older_than=0.0, max_rows=10) == 40
    assert [r.ts for r in store.history()] == [float(t) for t in range(90, 100)]
    assert store.prune(older_than=0.0) == 0


def test_prune_bounds_the_table_over_time(store: Store) -> None:
    keep_s = 100.0
    for t in range(0, 1000, 5):
        store.record_history(float(t), room="r", reading=20.0)
        if t % 50 == 0:
            store.prune(older_than=t - keep_s)
    assert store.history_count() <= keep_s / 5 + 50 / 5 + 1


def test_energy_monotone(store: Store) -> None:
    assert store.add_energy("r", 0.5) == 0.5
    assert store.add_energy("r", 0.0) == 0.5
    assert store.add_energy("r", 0.25) == 0.75
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            store.add_energy("r", bad)
    assert store.energy("r") == 0.75
    assert store.energy("other") == 0.0


def test_concurrent_readers(tmp_path: Path) -> None:
    """Readers in other threads (own connections) see committed values while a writer keeps writing."""
    path = tmp_path / "c.db"
    writer = Store(path)
    writer.add_energy("r", 0.0)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[list[float]] = [[], []]
    started = [threading.Event(), threading.Event()]

    def reader(i: int) -> None:
        try:
            with Store(path) as r:
                while not stop.is_set():
                    seen[i].append(r.energy("r"))
                    started[i].set()
                    r.history(room="r", limit=5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for ev in started:
        assert ev.wait(10), "reader never started"
    for i in range(200):
        writer.add_energy("r", 0.01)
        writer.record_history(float(i), room="r", reading=20.0)
    stop.set()
    for th in threads:
        th.join(10)
    writer.close()
    assert not errors
    for values in seen:
        assert values, "reader never ran"
        assert values == sorted(values), "a reader saw the counter go backwards"
    with Store(path) as s:
        assert s.energy("r") == pytest.approx(2.0)
