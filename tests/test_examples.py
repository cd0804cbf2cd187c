"""Every example configuration and schedule the repository ships validates, so a newcomer's copy starts clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermostat.config import load_config, load_schedule
from thermostat.sim.scenario import load_scenario, shipped_scenarios

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = sorted([*(ROOT / "schedules").glob("*.yaml"), *(ROOT / "thermostat" / "data" / "schedules").glob("*.yaml")])
CONFIGS = sorted((ROOT / "deploy").glob("*.yaml"))
EXTRA_SCENARIOS = sorted((ROOT / "thermostat" / "sim" / "scenarios" / "extra").glob("*.yaml"))


def test_there_are_examples_to_check() -> None:
    assert len(SCHEDULES) >= 3 and CONFIGS and EXTRA_SCENARIOS


@pytest.mark.parametrize("path", SCHEDULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_schedule_validates(path: Path) -> None:
    schedule = load_schedule(path)
    assert schedule.presets, f"{path.name}: an example schedule should name its presets"


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name.startswith("house")], ids=lambda p: p.name)
def test_house_config_validates(path: Path) -> None:
    config = load_config(path)
    assert config.rooms and config.heaters


@pytest.mark.parametrize("name", shipped_scenarios())
def test_shipped_scenario_validates(name: str) -> None:
    assert load_scenario(name).heaters


@pytest.mark.parametrize("path", EXTRA_SCENARIOS, ids=lambda p: p.name)
def test_extra_scenario_validates(path: Path) -> None:
    assert load_scenario(path).heaters
