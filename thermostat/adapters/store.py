"""SQLite persistence: one file, WAL, one committed transaction per write.

What is kept, so that a restart resumes where it stopped (no extra miner wake, no lost override):

=============  ===============================================================================
table          contents
=============  ===============================================================================
rooms          per room: mode (off/heat), preset (away, eco, … or None), override, manual level
heaters        per heater: last wanted level, controlled-by-thermostat flag, last confirmed level,
               recent wake times (for the wake cap), time of the last on/off change, manual level, and
               the wear state of its heater machine (on/off/level since, a pending soft on/off)
learned        named learned values (e.g. ``pid.<room>.integral``) with the time they were learned
history        bounded time series: reading, target, level, watts (room and/or heater); `prune()`
energy         per-room kWh counter, monotone (only `add_energy` with a value >= 0)
=============  ===============================================================================

Room and heater rows hold a JSON object: unknown keys are ignored and missing keys take their
defaults when read, so a field can be added without a migration. The schema version lives in
``PRAGMA user_version``; a file written by a newer version is refused rather than guessed at.

Times are wall-clock epoch seconds (UTC, ``datetime.timestamp()``): monotonic time does not survive a
restart. Durability: every write is a committed transaction in WAL mode with
``synchronous=NORMAL`` (the default here), which survives the process being killed (``kill -9``) at
any point; pass ``synchronous="FULL"`` to survive power loss as well, at one fsync per write.
`SafeStore.batch()` groups the writes of one control tick into one transaction.

A `Store` is meant for one thread (the service's event loop); other processes or threads may open
their own `Store` on the same file to read (WAL readers never block the writer).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

SCHEMA_VERSION = 2

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS heaters (
    heater TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS learned (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    room TEXT,
    heater TEXT,
    reading REAL,
    target REAL,
    level TEXT,
    watts REAL
);
CREATE INDEX IF NOT EXISTS history_ts ON history(ts);
CREATE INDEX IF NOT EXISTS history_room_ts ON history(room, ts);
CREATE TABLE IF NOT EXISTS energy (
    room TEXT PRIMARY KEY,
    kwh REAL NOT NULL,
    updated REAL NOT NULL
);
"""

# v2: the fitted room models (mpc, docs/control.md) and the outdoor temperature history they are fitted on
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS thermal_models (
    room TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    fitted REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outdoor (
    ts REAL NOT NULL,
    temp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outdoor_ts ON outdoor(ts);
"""


class StoreError(RuntimeError):
    """The file cannot be used (written by a newer version, not a database, …)."""


@dataclass(frozen=True)
class RoomState:
    mode: Literal["off", "heat"] = "heat"
    preset: str | None = None  # None = follow the schedule ("none" in Home Assistant); "away", "eco", …
    override_temp: float | None = None  # a manual target that beats the schedule
    override_until: datetime | None = None  # aware; None with override_temp set = until the next block
    override_set_at: datetime | None = None  # when the override was made (to find "the next block")
    manual_level: str | None = None  # None/"auto" = controller decides; "standby" or a ladder level name
    override_label: str | None = None  # "boost" for an override made by the boost preset (shown as the preset)
    updated: float = 0.0  # epoch seconds of the last put (filled in by the store)


@dataclass(frozen=True)
class HeaterState:
    wanted_level: str | None = None  # last level the allocator wanted ("standby" or a ladder name)
    confirmed_level: str | None = None  # last level the miner was seen running
    controlled: bool = True  # "controlled by the thermostat" switch
    manual_level: str | None = None  # per-miner manual level select; None = auto
    wakes: tuple[float, ...] = ()  # epoch seconds of recent wakes (standby → running), oldest first
    last_onoff_change: float | None = None  # epoch seconds of the last standby/running transition
    # wear of the heater machine (core/heater.py HeaterWear), epoch seconds; None = never / unknown
    on_since: float | None = None  # the wake of the current run
    off_since: float | None = None  # the verified standby min_off counts from
    level_since: float | None = None  # the last confirmed level change
    wear_level: str | None = None  # the level confirmed when the wear was saved
    pending_soft: Literal["soft_on", "soft_off"] | None = None  # a soft on/off sent, not yet verified ...
    pending_at_miner: int | None = None  # ... scheduled at this Unix time of the miner's own clock
    updated: float = 0.0


@dataclass(frozen=True)
class HistoryRow:
    ts: float
    room: str | None = None
    heater: str | None = None
    reading: float | None = None
    target: float | None = None
    level: str | None = None
    watts: float | None = None


_Row = TypeVar("_Row", RoomState, HeaterState)
_DATETIME_FIELDS = {"override_until", "override_set_at"}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _encode(state: RoomState | HeaterState) -> str:
    # The fields are flat (text, numbers, a tuple of numbers, datetimes): a shallow copy, not `asdict`'s deep one.
    names = _FIELD_NAMES.get(type(state))
    if names is None:
        names = _FIELD_NAMES[type(state)] = tuple(f.name for f in fields(state) if f.name != "updated")
    data: dict[str, Any] = {name: getattr(state, name) for name in names}
    for key in _DATETIME_FIELDS & data.keys():
        value = data[key]
        if value is not None:
            if value.tzinfo is None:
                raise ValueError(f"{key} must be an aware datetime")
            data[key] = value.isoformat()
    if "wakes" in data:
        data["wakes"] = list(data["wakes"])
    return json.dumps(data, sort_keys=True, allow_nan=False)


def _decode(cls: type[_Row], text: str, updated: float) -> _Row:
    raw = json.loads(text)
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k in known and k != "updated"}
    for key in _DATETIME_FIELDS & kwargs.keys():
        if kwargs[key] is not None:
            kwargs[key] = datetime.fromisoformat(kwargs[key])
    if "wakes" in kwargs:
        kwargs["wakes"] = tuple(float(t) for t in kwargs["wakes"])
    kwargs["updated"] = updated
    return cls(**kwargs)


class Store:
    def __init__(self, path: str | Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        self.path = Path(path)
        self.read_only = False
        # isolation_level=None: we open and commit every transaction ourselves (`_tx`).
        self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=10.0)
        try:
            self._db.execute("PRAGMA busy_timeout = 10000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL (journal_mode={mode})")
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open_read_only(cls, path: str | Path) -> Store:
        """A reader for another process's state file (the CLI's history and energy): never creates, migrates or
        writes it; a missing, unreadable or newer-version file raises StoreError."""
        store = cls.__new__(cls)
        store.path = Path(path)
        store.read_only = True
        if not store.path.is_file():
            raise StoreError(f"{store.path}: no such state file (has the service run with this configuration?)")
        try:
            store._db = sqlite3.connect(f"{store.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{store.path}: {exc}") from exc
        try:
            version = store.schema_version
        except sqlite3.DatabaseError as exc:
            store._db.close()
            raise StoreError(f"{store.path}: {exc}") from exc
        if version > SCHEMA_VERSION or version < 1:
            store._db.close()
            raise StoreError(f"{store.path} has schema version {version}; this program reads 1..{SCHEMA_VERSION}")
        return store

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write inside is one committed transaction (all or nothing)."""
        with self._tx():
            yield

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._db.in_transaction:  # inside `transaction()`: the outer one commits or rolls back
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}; this program knows up to {SCHEMA_VERSION}"
                )
            if version < 1:
                for statement in _SCHEMA_V1.split(";"):
                    if statement.strip():
                        db.execute(statement)
            if version < 2:
                for statement in _SCHEMA_V2.split(";"):
                    if statement.strip():
                        db.execute(statement)
            # Later versions: `if version < 3: ...` here, each step idempotent.
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rooms and heaters ---------------------------------------------------------------------

    def get_room_state(self, room: str) -> RoomState:
        """The stored state, or the defaults for a room never stored."""
        row = self._db.execute("SELECT data, updated FROM rooms WHERE room = ?", (room,)).fetchone()
        return RoomState() if row is None else _decode(RoomState, row[0], row[1])

    def put_room_state(self, room: str, state: RoomState, now: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rooms(room, data, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(room) DO UPDATE SET data = excluded.data, updated = excluded.updated",
                (room, _encode(state), now),
            )

    def get_heater_state(self, heater: str) -> HeaterState:
        row = self._db.execute("SELECT data, updated FROM heaters WHERE heater = ?", (heater,)).fetchone()
        return HeaterState() if row is None else _decode(HeaterState, row[0], row[1])

    def put_heater_state(self, heater: str, state: HeaterState, now: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO heaters(heater, data, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(heater) DO UPDATE SET data = excluded.data, updated = excluded.updated",
                (heater, _encode(state), now),
            )

    def rooms(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT room FROM rooms ORDER BY room")]

    def heaters(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT heater FROM heaters ORDER BY heater")]

    # --- learned values ------------------------------------------------------------------------

    def get_learned(self, key: str) -> tuple[Any, float] | None:
        """``(value, ts)`` as stored by `put_learned`, or None."""
        row = self._db.execute("SELECT value, ts FROM learned WHERE key = ?", (key,)).fetchone()
        return None if row is None else (json.loads(row[0]), float(row[1]))

    def put_learned(self, key: str, value: Any, ts: float) -> None:
        """Any JSON-encodable value (no NaN/inf)."""
        text = json.dumps(value, allow_nan=False)
        with self._tx() as db:
            db.execute(
                "INSERT INTO learned(key, value, ts) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, ts = excluded.ts",
                (key, text, ts),
            )

    # --- history -------------------------------------------------------------------------------

    def record_history(
        self,
        ts: float,
        *,
        room: str | None = None,
        heater: str | None = None,
        reading: float | None = None,
        target: float | None = None,
        level: str | None = None,
        watts: float | None = None,
    ) -> None:
        self.record_history_rows([HistoryRow(ts, room, heater, reading, target, level, watts)])

    def record_history_rows(self, rows: Sequence[HistoryRow]) -> None:
        """Several rows in one transaction (one control tick's worth)."""
        values = [
            (r.ts, r.room, r.heater, _real(r.reading), _real(r.target), r.level, _real(r.watts)) for r in rows
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO history(ts, room, heater, reading, target, level, watts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def history(
        self,
        *,
        room: str | None = None,
        heater: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        """Rows in time order (oldest first), optionally filtered."""
        where: list[str] = []
        args: list[Any] = []
        if room is not None:
            where.append("room = ?")
            args.append(room)
        if heater is not None:
            where.append("heater = ?")
            args.append(heater)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        sql = "SELECT ts, room, heater, reading, target, level, watts FROM history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [HistoryRow(*row) for row in self._db.execute(sql, args)]

    def history_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM history").fetchone()[0])

    def prune(self, older_than: float, *, max_rows: int | None = None) -> int:
        """Delete history rows with ``ts < older_than`` and, with `max_rows`, the oldest rows beyond it.

        Returns the number of rows deleted. Other tables are never pruned.
        """
        with self._tx() as db:
            deleted = db.execute("DELETE FROM history WHERE ts < ?", (older_than,)).rowcount
            deleted += db.execute("DELETE FROM outdoor WHERE ts < ?", (older_than,)).rowcount
            if max_rows is not None:
                if max_rows < 0:
                    raise ValueError("max_rows must be >= 0")
                deleted += db.execute(
                    "DELETE FROM history WHERE id IN "
                    "(SELECT id FROM history ORDER BY ts DESC, id DESC LIMIT -1 OFFSET ?)",
                    (max_rows,),
                ).rowcount
        return int(deleted)

    # --- room models and outdoor history ----------------------------------------------------------

    def put_thermal_model(self, room: str, data: dict[str, Any], fitted: float) -> None:
        """The room's fitted thermal model (`ThermalModel.to_dict()`), replacing the previous one."""
        text = json.dumps(data, allow_nan=False)
        with self._tx() as db:
            db.execute(
                "INSERT INTO thermal_models(room, data, fitted) VALUES (?, ?, ?) "
                "ON CONFLICT(room) DO UPDATE SET data = excluded.data, fitted = excluded.fitted",
                (room, text, fitted),
            )

    def get_thermal_model(self, room: str) -> tuple[dict[str, Any], float] | None:
        row = self._db.execute("SELECT data, fitted FROM thermal_models WHERE room = ?", (room,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return (data, float(row[1])) if isinstance(data, dict) else None

    def record_outdoor(self, ts: float, temp: float) -> None:
        if not math.isfinite(temp):
            raise ValueError(f"outdoor temperature must be finite, got {temp!r}")
        with self._tx() as db:
            db.execute("INSERT INTO outdoor(ts, temp) VALUES (?, ?)", (ts, float(temp)))

    def outdoor_history(self, since: float | None = None) -> list[tuple[float, float]]:
        sql = "SELECT ts, temp FROM outdoor"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE ts >= ?"
            args.append(since)
        return [(float(a), float(b)) for a, b in self._db.execute(sql + " ORDER BY ts", args)]

    # --- energy --------------------------------------------------------------------------------

    def add_energy(self, room: str, kwh: float, now: float = 0.0) -> float:
        """Add to the room's counter and return the new total. Negative or non-finite → ValueError."""
        if not math.isfinite(kwh) or kwh < 0:
            raise ValueError(f"energy increments must be finite and >= 0, got {kwh!r}")
        with self._tx() as db:
            db.execute(
                "INSERT INTO energy(room, kwh, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(room) DO UPDATE SET kwh = kwh + excluded.kwh, updated = excluded.updated",
                (room, kwh, now),
            )
            total = db.execute("SELECT kwh FROM energy WHERE room = ?", (room,)).fetchone()[0]
        return float(total)

    def energy(self, room: str) -> float:
        row = self._db.execute("SELECT kwh FROM energy WHERE room = ?", (room,)).fetchone()
        return 0.0 if row is None else float(row[0])


def _real(value: float | None) -> float | None:
    """NaN/inf become NULL: SQLite would store NaN as NULL anyway, and inf is never a measurement."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)



# --- the service's store: degrades instead of failing ------------------------------------------------------


def _is_damage(exc: BaseException) -> bool:
    """The file's content is bad (moving it aside helps), as opposed to the disk or its permissions."""
    cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ is not None else exc
    if isinstance(cause, StoreError):
        return "schema version" in str(cause)  # written by a newer version; "cannot switch to WAL" is the disk
    if isinstance(cause, sqlite3.OperationalError):  # read-only, disk full, cannot open, I/O error
        return False
    return isinstance(cause, sqlite3.DatabaseError | ValueError | KeyError | TypeError)


def _plain(exc: BaseException) -> str:
    text = str(exc.__cause__ or exc) if isinstance(exc, StoreError) else str(exc)
    text = " ".join(text.split())  # one log line
    return (text[:157] + "...") if len(text) > 160 else text or type(exc).__name__


class SafeStore:
    """The store the service uses: it never raises into the control path and never stops the service.

    Everything the service reads (room and heater state, learned values, energy totals) is kept in memory and
    read from there; every write updates memory first and is then written to SQLite. A write that fails (disk
    full, read-only, I/O error) is kept pending and retried with backoff (`retry_min_s` doubling up to
    `retry_max_s`); `problem` says what is wrong in plain words until a write succeeds again.

    At start, a file that cannot be opened, checked (``PRAGMA quick_check``), read or written is handled so:
    a damaged file (not a database, malformed, written by a newer version) is moved aside to
    ``<name>.damaged-<UTC timestamp>`` (with its -wal/-shm) and a fresh file is made in its place; if the file
    is sound but cannot be written (read-only, disk full), it is left alone and what can still be read from it
    is used. Without a usable file the service runs on state in memory and keeps trying to open the file.
    A directory at the path is left alone and never retried.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        retry_min_s: float = 1.0,
        retry_max_s: float = 300.0,
        max_pending_history: int = 10_000,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._wall = wall
        self._synchronous: Literal["NORMAL", "FULL"] = synchronous
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._backoff = retry_min_s
        self._next_try = -math.inf
        self._db: Store | None = None
        self._start_problem: str | None = None  # what was found at start (stays until a restart)
        self._write_problem: str | None = None  # why writes fail now (cleared by the next write that succeeds)
        self.moved_to: Path | None = None  # where a damaged file was moved at start
        self.write_failures = 0
        self.history_dropped = 0
        self._rooms: dict[str, RoomState] = {}
        self._heaters: dict[str, HeaterState] = {}
        self._learned: dict[str, tuple[Any, float]] = {}
        self._energy: dict[str, float] = {}
        self._energy_in_file: dict[str, float] = {}
        self._dirty_rooms: set[str] = set()
        self._dirty_heaters: set[str] = set()
        self._dirty_learned: set[str] = set()
        self._history: deque[HistoryRow] = deque(maxlen=max_pending_history)
        self._models: dict[str, tuple[dict[str, Any], float]] = {}  # fitted room models (mpc)
        self._dirty_models: set[str] = set()
        self._outdoor: deque[tuple[float, float]] = deque(maxlen=max_pending_history)
        self._retry_open = True
        self._batching = 0  # inside `batch()`: writes wait for its end
        self.transactions = 0  # committed flushes (for the scale benchmark and its tests)
        self._open_at_start()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside are kept in memory and flushed together, in one transaction, at the end (one control
        tick's room states, heater wants, energy and history rows). Never raises from the flush."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def hold(self) -> None:
        """Keep writes in memory until the matching `release()` (`batch()` for callers that cannot use a `with`:
        the service holds the writes of one pass of its event loop, a burst of heater commands)."""
        self._batching += 1

    def release(self) -> None:
        """End a `hold()`: the last one flushes what was written meanwhile, in one transaction. Never raises."""
        self._batching = max(0, self._batching - 1)
        if not self._batching:
            self.flush()

    def _write_soon(self) -> None:
        if not self._batching:
            self.flush()

    # --- start ---------------------------------------------------------------------------------------

    def _open_at_start(self) -> None:
        if self.path.is_dir():
            self._retry_open = False
            self._start_problem = (f"state file {self.path} is a directory; "
                                   f"running on state in memory only (not saved)")
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            store = self._open_checked()
        except Exception as exc:  # any failure to open means: degrade, never stop
            if _is_damage(exc):
                self._move_aside(exc)
            else:
                self._read_what_can_be_read()
                self._failed(exc, self._clock(), at_start=True)
            return
        self._adopt(store, load=True)

    def _open_checked(self) -> Store:
        store = Store(self.path, synchronous=self._synchronous)
        try:
            row = store._db.execute("PRAGMA quick_check").fetchone()
            if row is None or str(row[0]).lower() != "ok":
                raise sqlite3.DatabaseError("database disk image is malformed (quick_check failed)")
            self._load_from(store)
            store.put_learned("store.opened", self._wall(), self._wall())  # proves the file can be written
        except BaseException:
            store.close()
            raise
        return store

    def _load_from(self, store: Store) -> None:
        rooms = {r: store.get_room_state(r) for r in store.rooms()}
        heaters = {h: store.get_heater_state(h) for h in store.heaters()}
        rows = store._db.execute("SELECT key, value, ts FROM learned")
        learned = {k: (json.loads(v), float(ts)) for k, v, ts in rows}
        energy = {r: float(k) for r, k in store._db.execute("SELECT room, kwh FROM energy")}
        self._rooms, self._heaters, self._learned = rooms, heaters, learned
        self._energy, self._energy_in_file = dict(energy), dict(energy)

    def _read_what_can_be_read(self) -> None:
        """A sound file that cannot be written (read-only, disk full): its state is still the best start."""
        if not self.path.is_file():
            return
        for uri in (f"file:{self.path}?mode=ro", f"file:{self.path}?immutable=1"):
            try:
                db = sqlite3.connect(uri, uri=True)
            except sqlite3.Error:
                continue
            try:
                reader = Store.__new__(Store)
                reader.path, reader._db = self.path, db
                self._load_from(reader)
                self._energy_in_file = {}  # unknown until the file can be opened for writing
                return
            except Exception:  # unreadable too: start empty
                continue
            finally:
                db.close()

    def _move_aside(self, exc: BaseException) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            os.replace(self.path, target)
        except OSError as move_exc:
            self._start_problem = (f"state file {self.path} is damaged ({_plain(exc)}) and could not be moved "
                                   f"aside ({move_exc.strerror or move_exc}); running on state in memory only "
                                   f"(not saved)")
            self._retry_open = False
            return
        self.moved_to = target
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            try:
                if side.exists():
                    os.replace(side, target.with_name(target.name + suffix))
            except OSError:
                pass
        self._start_problem = (f"state file {self.path} was damaged ({_plain(exc)}) and moved to {target.name}; "
                               f"started with empty state")
        try:
            fresh = self._open_checked()
        except Exception as fresh_exc:
            self._failed(fresh_exc, self._clock(), at_start=True)
            return
        self._adopt(fresh, load=False)

    def _adopt(self, store: Store, *, load: bool) -> None:
        self._db = store
        if not load:  # a fresh file: write what is in memory
            self._dirty_rooms |= set(self._rooms)
            self._dirty_heaters |= set(self._heaters)
            self._dirty_learned |= set(self._learned)

    # --- writing ---------------------------------------------------------------------------------------

    @property
    def persistent(self) -> bool:
        """True while writes reach the file (nothing pending)."""
        return self._db is not None and not self._pending()

    def _pending(self) -> bool:
        return bool(self._dirty_rooms or self._dirty_heaters or self._dirty_learned or self._history
                    or self._dirty_models or self._outdoor
                    or any(self._energy.get(r, 0.0) > self._energy_in_file.get(r, 0.0) + 1e-12 for r in self._energy))

    def flush(self, *, force: bool = False) -> bool:
        """Write what is pending, unless waiting for the next retry. True when nothing is left pending."""
        now = self._clock()
        if not force and now < self._next_try:
            return False
        if self._db is None:
            if not self._retry_open:
                return False
            try:
                store = Store(self.path, synchronous=self._synchronous)
            except Exception as exc:
                self._failed(exc, now)
                return False
            self._db = store
            self._energy_in_file = {r: store.energy(r) for r in self._energy}
            self._dirty_rooms |= set(self._rooms)
            self._dirty_heaters |= set(self._heaters)
            self._dirty_learned |= set(self._learned)
        if not self._pending():
            return True
        db = self._db
        # Everything pending goes in one transaction: all of it is written, or none of it and it stays pending.
        rooms, heaters, learned = sorted(self._dirty_rooms), sorted(self._dirty_heaters), sorted(self._dirty_learned)
        history, models, outdoor = list(self._history), sorted(self._dirty_models), list(self._outdoor)
        in_file: dict[str, float] = {}
        try:
            wall = self._wall()
            with db.transaction():
                for room in rooms:
                    db.put_room_state(room, self._rooms[room], wall)
                for heater in heaters:
                    db.put_heater_state(heater, self._heaters[heater], wall)
                for key in learned:
                    value, ts = self._learned[key]
                    db.put_learned(key, value, ts)
                for room, total in self._energy.items():
                    delta = total - self._energy_in_file.get(room, 0.0)
                    if delta > 0:
                        in_file[room] = db.add_energy(room, delta, wall)
                if history:
                    db.record_history_rows(history)
                for room in models:
                    data, fitted = self._models[room]
                    db.put_thermal_model(room, data, fitted)
                for ts, temp in outdoor:
                    db.record_outdoor(ts, temp)
            self.transactions += 1
            self._dirty_rooms.difference_update(rooms)
            self._dirty_heaters.difference_update(heaters)
            self._dirty_learned.difference_update(learned)
            self._dirty_models.difference_update(models)
            self._energy_in_file.update(in_file)
            for _ in history:
                self._history.popleft()
            for _ in outdoor:
                self._outdoor.popleft()
        except Exception as exc:  # never into the control path
            try:
                if db._db.in_transaction:
                    db._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._failed(exc, now)
            return False
        self._backoff = self.retry_min_s
        self._next_try = -math.inf
        self._write_problem = None
        return True

    def _failed(self, exc: BaseException, now: float, *, at_start: bool = False) -> None:
        if not at_start:
            self.write_failures += 1
        what = "cannot be used" if at_start else "cannot be written"
        self._write_problem = (f"state file {self.path} {what} ({_plain(exc)}); "
                               f"changes kept in memory, retrying")
        self._next_try = now + self._backoff
        self._backoff = min(self._backoff * 2, self.retry_max_s)

    @property
    def start_problem(self) -> str | None:
        """What was wrong with the state file at start (damaged and moved aside, a directory); kept until a
        restart."""
        return self._start_problem

    @property
    def write_problem(self) -> str | None:
        """Why changes cannot be written now; None once a write succeeds again."""
        return self._write_problem

    @property
    def problem(self) -> str | None:
        """Both, in plain words; None while every change is written and nothing was found at start."""
        if self._write_problem and self._start_problem:
            return f"{self._start_problem}; {self._write_problem}"
        return self._write_problem or self._start_problem

    # --- the Store interface the service uses -----------------------------------------------------------

    def get_room_state(self, room: str) -> RoomState:
        return self._rooms.get(room, RoomState())

    def put_room_state(self, room: str, state: RoomState, now: float) -> None:
        _encode(state)  # a value that cannot be stored is the caller's bug: raise now, not at every retry
        self._rooms[room] = replace_updated(state, now)
        self._dirty_rooms.add(room)
        self._write_soon()

    def get_heater_state(self, heater: str) -> HeaterState:
        return self._heaters.get(heater, HeaterState())

    def put_heater_state(self, heater: str, state: HeaterState, now: float) -> None:
        _encode(state)  # a value that cannot be stored is the caller's bug: raise now, not at every retry
        self._heaters[heater] = replace_updated(state, now)
        self._dirty_heaters.add(heater)
        self._write_soon()

    def get_learned(self, key: str) -> tuple[Any, float] | None:
        return self._learned.get(key)

    def put_learned(self, key: str, value: Any, ts: float) -> None:
        json.dumps(value, allow_nan=False)
        self._learned[key] = (value, ts)
        self._dirty_learned.add(key)
        self._write_soon()

    def add_energy(self, room: str, kwh: float, now: float = 0.0) -> float:
        if not math.isfinite(kwh) or kwh < 0:
            raise ValueError(f"energy increments must be finite and >= 0, got {kwh!r}")
        total = self._energy.get(room, 0.0) + kwh
        self._energy[room] = total
        self._write_soon()
        return total

    def energy(self, room: str) -> float:
        return self._energy.get(room, 0.0)

    def record_history(self, ts: float, *, room: str | None = None, heater: str | None = None,
                       reading: float | None = None, target: float | None = None, level: str | None = None,
                       watts: float | None = None) -> None:
        if len(self._history) == self._history.maxlen:
            self.history_dropped += 1
        self._history.append(HistoryRow(ts, room, heater, reading, target, level, watts))
        self._write_soon()

    def history(self, **kwargs: Any) -> list[HistoryRow]:
        if self._db is None:
            return []
        try:
            return self._db.history(**kwargs)
        except sqlite3.Error:
            return []

    def get_thermal_model(self, room: str) -> tuple[dict[str, Any], float] | None:
        if room in self._models:
            return self._models[room]
        if self._db is None:
            return None
        try:
            return self._db.get_thermal_model(room)
        except (sqlite3.Error, ValueError):
            return None

    def put_thermal_model(self, room: str, data: dict[str, Any], fitted: float) -> None:
        json.dumps(data, allow_nan=False)
        self._models[room] = (data, fitted)
        self._dirty_models.add(room)
        self._write_soon()

    def record_outdoor(self, ts: float, temp: float) -> None:
        if not math.isfinite(temp):
            raise ValueError(f"outdoor temperature must be finite, got {temp!r}")
        self._outdoor.append((ts, float(temp)))
        self._write_soon()

    def outdoor_history(self, since: float | None = None) -> list[tuple[float, float]]:
        if self._db is None:
            return []
        try:
            return self._db.outdoor_history(since)
        except sqlite3.Error:
            return []

    def prune(self, older_than: float, *, max_rows: int | None = None) -> int:
        if self._db is None:
            return 0
        try:
            return self._db.prune(older_than, max_rows=max_rows)
        except sqlite3.Error as exc:
            self._failed(exc, self._clock())
            return 0

    def close(self) -> None:
        self.flush(force=True)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        self._retry_open = False


def replace_updated(state: _Row, now: float) -> _Row:
    return replace(state, updated=now)


__all__ = ["SCHEMA_VERSION", "HeaterState", "HistoryRow", "RoomState", "SafeStore", "Store", "StoreError"]
