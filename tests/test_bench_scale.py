"""The short version of `thermostat bench-scale`: 20 heaters in 4 rooms for about 20 s. It asserts that the harness
measures (CPU and RSS of the service process, a poll gap for every heater, a fan-out time for every heater) and
that the service polls every heater at its configured period; the goal figures are the benchmark's, not a test's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermostat import cli
from thermostat.sim.scale import POLL_PERIOD_S, percentile, poll_gaps

pytestmark = pytest.mark.broker


def test_bench_scale_short_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scale.json"
    assert cli.main(["bench-scale", "--heaters", "20", "--rooms", "4", "--seconds", "20", "--json", str(out)]) == 0
    [r] = json.loads(out.read_text())
    assert (r["heaters"], r["rooms"]) == (20, 4)
    assert r["cpu_pct"] > 0 and r["rss_mb"] > 10  # measured from /proc of the service's own process
    assert r["heaters_polled"] == 20  # every heater polled in the window
    assert r["readings_published"] > 0
    # settled heaters are polled every POLL_PERIOD_S; a gap far off it means the service or the harness is wrong
    assert 0.8 * POLL_PERIOD_S < r["poll_gap_p50_s"] <= r["poll_gap_p99_s"] <= r["poll_gap_max_s"] < 3 * POLL_PERIOD_S
    # the fan-out (mode off for every room) reached every heater as a command
    assert r["fanout_heaters"] == 20 and r["fanout_reached"] == 20
    assert 0 < r["fanout_p50_ms"] <= r["fanout_p99_ms"] <= r["fanout_max_ms"] < 10_000
    table = capsys.readouterr().out
    assert "gap p99" in table and "20/20" in table


def test_bench_scale_refuses_rooms_without_heaters(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench-scale", "--heaters", "4", "--rooms", "5"]) == 2
    assert "at least one heater" in capsys.readouterr().err
    assert cli.main(["bench-scale", "--heaters", "10,20", "--rooms", "2"]) == 2
    assert "one --rooms value per --heaters value" in capsys.readouterr().err


def test_poll_gaps_and_percentiles() -> None:
    polls = [0.0, 15.0, 30.5, 45.0, 61.0]
    assert poll_gaps(polls, 20.0, 50.0) == [15.5, 14.5]  # polls in the window, each gap from its predecessor
    assert poll_gaps(polls, 100.0, 200.0) == []
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 99) == 4.0
    assert percentile([], 50) is None
