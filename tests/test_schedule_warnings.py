"""Schedules that catch mistakes: warnings for what is valid but probably not meant, and every bad value at its
own line, all at once (issue 13 item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermostat import cli
from thermostat.config import ConfigError, config_warnings, load_config, load_schedule, schedule_file_warnings
from thermostat.schedule_file import load_schedule_and_warnings

OUT_OF_ORDER = """\
timezone: Europe/Berlin
presets:
  comfort: 27
  eco: 18
week:
  mon-fri:
    - {at: "22:00", preset: eco}
    - {at: "06:00", preset: comfort}
  sat-sun:
    - {at: "07:00", temp: 20}
"""

MANY_BAD = """\
timezone: Europe/Berlin
presets:
  comfort: 70
  eco: 18
  Night: 16
week:
  mon-fri:
    - {at: "06:00", preset: comfort}
    - {at: "25:00", temp: 19}
  sat-sun:
    - {at: "07:00", temp: 72}
    - {at: "07:00", preset: nope}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_blocks_out_of_order_warn_at_their_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", OUT_OF_ORDER)
    schedule = load_schedule(path)  # valid: the blocks are applied in time order
    assert [b.at.hour for b in schedule.week[0]] == [6, 22]
    warnings = schedule_file_warnings(path)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path.name}:8:") or warnings[0].startswith(f"{path}:8:")
    assert "week.mon-fri.1.at" in warnings[0] and "time order" in warnings[0]


def test_in_order_schedule_has_no_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", OUT_OF_ORDER.replace('"22:00", preset: eco}\n    - {at: "06:00"',
                                                           '"05:00", preset: eco}\n    - {at: "06:00"'))
    assert schedule_file_warnings(path) == []


def test_one_reading_gives_the_schedule_and_the_warnings_of_two(tmp_path: Path) -> None:
    """`schedule show` reads its file once (load_schedule_and_warnings); it must agree with the two readings."""
    path = _write(tmp_path, "s.yaml", OUT_OF_ORDER)
    schedule, warnings = load_schedule_and_warnings(path)
    assert warnings == schedule_file_warnings(path) and len(warnings) == 1
    assert schedule.week == load_schedule(path).week and schedule.presets == {"comfort": 27, "eco": 18}
    bad = _write(tmp_path, "bad.yaml", MANY_BAD)
    with pytest.raises(ConfigError) as once:
        load_schedule_and_warnings(bad)
    with pytest.raises(ConfigError) as alone:
        load_schedule(bad)
    assert once.value.errors == alone.value.errors
    assert {int(line.split(":")[1]) for line in once.value.errors} == {3, 5, 9, 11, 12}


def test_every_bad_value_at_its_own_line_with_a_fahrenheit_hint(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", MANY_BAD)
    with pytest.raises(ConfigError) as info:
        load_schedule(path)
    lines = info.value.errors
    by_line = {int(line.split(":")[1]): line for line in lines}
    assert set(by_line) == {3, 5, 9, 11, 12}, lines
    assert "70 °C is outside 0..35 °C" in by_line[3] and "°F, write 21.1" in by_line[3]
    assert "preset name 'Night'" in by_line[5]
    assert "25:00" in by_line[9]
    assert "°F, write 22.2" in by_line[11]
    assert "07:00 already used by block 0" in " ".join(lines) and "unknown preset 'nope'" in by_line[12]
    assert not any("Input should" in line for line in lines)


def test_preset_above_room_max_is_a_located_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sched = _write(tmp_path, "s.yaml", OUT_OF_ORDER)
    house = _write(tmp_path, "house.yaml", """\
rooms:
  living:
    sensor: {topic: z2m/living}
    schedule: s.yaml
    limits: {max_c: 26}
    heaters: [a]
heaters:
  a: {host: 192.168.1.50, model: mini3}
""")
    config = load_config(house)
    warnings = config_warnings(config)
    above = [w for w in warnings if "above max_c" in w]
    assert len(above) == 1 and ":3:" in above[0] and "preset 'comfort' 27 °C" in above[0]
    assert "held at 26 °C" in above[0] and "'living'" in above[0]
    assert any("time order" in w for w in warnings)
    assert sched.exists()
    assert cli.main(["check-config", str(house)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "above max_c" in err


def test_schedule_show_week_prints_seven_days_and_warnings(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "s.yaml", OUT_OF_ORDER)
    assert cli.main(["schedule", "show", str(path), "--date", "2026-03-25", "--week"]) == 0
    out, err = capsys.readouterr()
    days = [line for line in out.splitlines() if line.startswith(f"{path}: ")]
    assert [d.split()[1] for d in days] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert "2026-03-23" in days[0] and "2026-03-29" in days[-1]
    assert "DST" in out  # 2026-03-29 is the spring-forward Sunday in Berlin
    assert "time order" in err
