"""Review the week (issue 13 item 3): `thermostat history` and `thermostat energy` read a real SQLite state file
written by the store, read-only, and integrate energy without inventing it across outages."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from thermostat import cli
from thermostat.adapters.report import chart_from_timeline, energy_by_period, room_timeline
from thermostat.adapters.store import HistoryRow, Store, StoreError
from thermostat.core.schedule import Schedule

BERLIN = ZoneInfo("Europe/Berlin")
HOUSE = """\
rooms:
  living:
    sensor: {topic: z2m/living}
    target: 21
    heaters: [m1, q1]
heaters:
  m1: {host: 127.0.0.1, model: mini3}
  q1: {host: 127.0.0.2, model: q}
state: {path: state.db}
tariff: {price_per_kwh: 0.30, currency: EUR}
"""


def _day(start: float) -> list[HistoryRow]:
    """Two hours of rows every 60 s: m1 at 800 W for the first hour then standby (12 W); q1 standby, then a
    30-minute stop of the service (no rows), then q1 woken at 1600 W for 30 minutes."""
    rows: list[HistoryRow] = []
    for minute in range(120):
        ts = start + minute * 60
        if 60 <= minute < 90:
            continue  # the service was not running
        rows.append(HistoryRow(ts, room="living", reading=19.0 + minute / 60, target=21.0))
        on = minute < 60
        rows.append(HistoryRow(ts, heater="m1", level="eco" if on else "standby", watts=800.0 if on else 12.0))
        q_on = minute >= 90
        rows.append(HistoryRow(ts, heater="q1", level="super" if q_on else "standby", watts=1600.0 if q_on else 0.0))
    return rows


@pytest.fixture
def house(tmp_path: Path) -> tuple[Path, float]:
    path = tmp_path / "house.yaml"
    path.write_text(HOUSE, encoding="utf-8")
    start = time.time() - 3 * 3600
    with Store(tmp_path / "state.db") as store:
        store.record_history_rows(_day(start))
    return path, start


def test_energy_integrates_samples_and_skips_outages(house: tuple[Path, float]) -> None:
    _, start = house
    rows = _day(start)
    table = {e.heater: e for e in energy_by_period(rows, {"m1": "living", "q1": "living"}, BERLIN, "month",
                                                   lambda ts: 0.30)}
    # m1: 59 one-minute intervals at 800 W, then its last row before the outage holds for the 180 s cap only
    # (not the 31 minutes to the next row); after the outage 29 intervals at 12 W.
    m1 = table["m1"]
    on_s = 59 * 60 + 180
    assert m1.kwh == pytest.approx(800.0 * on_s / 3.6e6 + 12.0 * 29 * 60 / 3.6e6, rel=1e-9)
    assert m1.hours_on == pytest.approx(on_s / 3600)
    assert m1.wakes == 0 and m1.cost == pytest.approx(m1.kwh * 0.30)
    q1 = table["q1"]
    assert q1.kwh == pytest.approx(1600.0 * 29 * 60 / 3.6e6)  # the last sample has no interval after it
    assert q1.wakes == 1


def test_room_timeline_marks_heaters_off_after_a_gap(house: tuple[Path, float]) -> None:
    _, start = house
    points = room_timeline(_day(start), "living", ["m1", "q1"])
    assert len(points) == 90
    assert points[0].heaters["m1"] == ("eco", 800.0) and points[0].heaters["q1"] == (None, 0.0)
    assert points[-1].heaters["q1"] == ("super", 1600.0)
    assert points[0].in_band is False and points[-1].in_band is True  # 19.0 vs 21 → out; 20.98 → in


def test_energy_command(house: tuple[Path, float], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = house
    assert cli.main(["energy", "--config", str(path), "--by", "day", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    assert "m1" in out and "q1" in out and "EUR" in out
    total = float(out.strip().splitlines()[-1].split()[1])
    assert total == pytest.approx((800.0 * (59 * 60 + 180) + 12.0 * 29 * 60 + 1600.0 * 29 * 60) / 3.6e6, abs=0.006)


def test_history_text_csv_and_plot(house: tuple[Path, float], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path, start = house
    assert cli.main(["history", "living", "--config", str(path), "--since", "24h", "--lines", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("living: 90 samples")
    assert len([line for line in out if "m1" in line and "W" in line]) == 10
    assert cli.main(["history", "--config", str(path), "--csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 3 * 90
    first = datetime.fromisoformat(table[0]["time"])
    assert first.utcoffset() is not None
    assert abs(first.timestamp() - start) < 1.0
    plot = tmp_path / "week.png"
    assert cli.main(["history", "living", "--config", str(path), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_history_errors_are_plain(house: tuple[Path, float], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = house
    assert cli.main(["history", "attic", "--config", str(path)]) == 2
    assert "no room 'attic'" in capsys.readouterr().err
    assert cli.main(["history", "--config", str(path), "--since", "a while"]) == 2
    assert "--since" in capsys.readouterr().err
    (tmp_path / "state.db").unlink()
    assert cli.main(["energy", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "no such state file" in err and "Traceback" not in err


def test_read_only_store_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with Store(db) as store:
        store.record_history(time.time(), room="living", reading=20.0)
    before = db.read_bytes()
    reader = Store.open_read_only(db)
    assert len(reader.history()) == 1
    with pytest.raises(Exception):  # noqa: B017 - sqlite3's "attempt to write a readonly database"
        reader.record_history(time.time(), room="living", reading=21.0)
    reader.close()
    assert db.read_bytes() == before
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        Store.open_read_only(junk)
    assert junk.read_bytes() == b"not a database at all" * 100
    with pytest.raises(StoreError):
        Store.open_read_only(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_energy_periods_follow_local_time() -> None:
    # 23:30 local on 31 Jan and 00:30 local on 1 Feb (Berlin, UTC+1) fall in different days, weeks and months.
    a = datetime(2026, 1, 31, 22, 30, tzinfo=UTC).timestamp()
    b = datetime(2026, 1, 31, 23, 30, tzinfo=UTC).timestamp()
    rows = [HistoryRow(a, heater="m1", level="eco", watts=600.0), HistoryRow(a + 60, heater="m1", level="eco",
                                                                             watts=600.0),
            HistoryRow(b, heater="m1", level="eco", watts=600.0), HistoryRow(b + 60, heater="m1", level="eco",
                                                                             watts=600.0)]
    for by, keys in (("day", ["2026-01-31", "2026-02-01"]), ("month", ["2026-01", "2026-02"]),
                     ("week", ["2026-W05"])):
        got = [e.period for e in energy_by_period(rows, {"m1": "living"}, BERLIN, by)]  # type: ignore[arg-type]
        assert got == keys, by


def test_the_history_chart_names_the_schedule_presets(house: tuple[Path, float]) -> None:
    _, start = house
    points = room_timeline(_day(start), "living", ["m1", "q1"])
    schedule = Schedule.from_data({"timezone": "Europe/Berlin", "presets": {"comfort": 21.0},
                                   "week": {"daily": [{"at": "00:00", "preset": "comfort"}]}})
    chart = chart_from_timeline(points, ["m1", "q1"], BERLIN, "living", 1.0, schedule)
    assert chart.presets == ["comfort"] * len(points)
    assert chart_from_timeline(points, ["m1", "q1"], BERLIN, "living").presets == []
