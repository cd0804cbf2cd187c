"""The latency benchmark command runs end to end (real mosquitto, real service, simulated miner over TCP) and
measures something: every alternating reading must produce a miner command. Timing is reported, not asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermostat import cli

pytestmark = pytest.mark.broker


def test_bench_latency_measures_each_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "latency.json"
    assert cli.main(["bench-latency", "--readings", "20", "--interval", "0.15", "--broker", "mosquitto",
                     "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["readings"] == 20
    assert result["samples"] >= 18, result  # each reading flips the wanted level
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert "p99" in capsys.readouterr().out


def test_bench_latency_refuses_a_too_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench-latency", "--readings", "3"]) == 2
    assert "at least 10" in capsys.readouterr().err
