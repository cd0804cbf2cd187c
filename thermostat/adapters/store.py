"""SQLite persistence: one file, WAL, one committed transaction per write.

What is kept, so that a restart resumes where it stopped (no extra miner wake, no lost override):

=============  ===============================================================================
table          contents
=============  ===============================================================================
rooms          per room: mode (off/heat), preset (away, eco, … or None), override, manual level
heaters        per heater: last wanted level, controlled-by-thermostat flag, last confirmed level,
               recent wake times (for the wake cap), time of the last on/off change, manual level
learned        named learned values (e.g. ``pid.<room>.integral``) with the time they were learned
history        bounded time series: reading, target, level, watts (room and/or heater); `prune()`
energy         per-room kWh counter, monotone (only `add_energy` with a value >= 0)
=============  ===============================================================================

Room and heater rows hold a JSON object: unknown keys are ignored and missing keys take their
defaults when read, so a field can be added without a migration. The schema version lives in
``PRAGMA user_version``; a file written by a newer version is refused rather than guessed at.

Times are wall-clock epoch seconds (UTC, ``datetime.timestamp()``): monotonic time does not survive a
restart. Durability: every write is its own committed transaction in WAL mode with
``synchronous=NORMAL`` (the default here), which survives the process being killed (``kill -9``) at
any point; pass ``synchronous="FULL"`` to survive power loss as well, at one fsync per write.

A `Store` is meant for one thread (the service's event loop); other processes or threads may open
their own `Store` on the same file to read (WAL readers never block the writer).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

SCHEMA_VERSION = 1

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
    updated: float = 0.0  # epoch seconds of the last put (filled in by the store)


@dataclass(frozen=True)
class HeaterState:
    wanted_level: str | None = None  # last level the allocator wanted ("standby" or a ladder name)
    confirmed_level: str | None = None  # last level the miner was seen running
    controlled: bool = True  # "controlled by the thermostat" switch
    manual_level: str | None = None  # per-miner manual level select; None = auto
    wakes: tuple[float, ...] = ()  # epoch seconds of recent wakes (standby → running), oldest first
    last_onoff_change: float | None = None  # epoch seconds of the last standby/running transition
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


def _encode(state: RoomState | HeaterState) -> str:
    data: dict[str, Any] = asdict(state)
    data.pop("updated", None)
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
    def _tx(self) -> Iterator[sqlite3.Connection]:
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
            # Later versions: `if version < 2: ...` here, each step idempotent.
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
            if max_rows is not None:
                if max_rows < 0:
                    raise ValueError("max_rows must be >= 0")
                deleted += db.execute(
                    "DELETE FROM history WHERE id IN "
                    "(SELECT id FROM history ORDER BY ts DESC, id DESC LIMIT -1 OFFSET ?)",
                    (max_rows,),
                ).rowcount
        return int(deleted)

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


__all__ = ["SCHEMA_VERSION", "HeaterState", "HistoryRow", "RoomState", "Store", "StoreError"]
