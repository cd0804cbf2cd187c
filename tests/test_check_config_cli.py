"""`thermostat check-config` and `thermostat schedule`: exit codes and output, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from thermostat.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "config"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ROOT / "deploy" / "house.example.yaml")
    code, out, err = run(["check-config", path], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{path}: OK"
    assert lines[1].startswith("3 rooms, 4 heaters: living (2 heaters, schedule default.yaml)")
    assert "Traceback" not in err


def test_check_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check-config", str(DATA / "many_errors.yaml")], capsys)
    assert code == 1
    assert out == ""
    assert err.count("many_errors.yaml:") == 16  # 15 errors + summary line
    assert err.rstrip().endswith("many_errors.yaml: 15 errors")


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (None, "file not found"),
        ("", "file is empty"),
        ("rooms: [\n", "YAML error"),
        ("hello\n", "(top level)"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_check_config_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, expect: str
) -> None:
    path = tmp_path / "c.yaml"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, _, err = run(["check-config", str(path)], capsys)
    assert code == 1
    assert expect in err
    assert "Traceback" not in err


def test_check_config_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rooms: {}\n")
    path.chmod(0)
    try:
        code, _, err = run(["check-config", str(path)], capsys)
    finally:
        path.chmod(0o644)
    assert code == 1
    # root can read anything; otherwise the message says why
    assert "permission denied" in err or "rooms" in err


def test_check_config_as_subprocess_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rooms:\n  x: 1\n  x: 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "thermostat", "check-config", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 1
    assert "duplicate key" in proc.stderr and "Traceback" not in proc.stderr


def test_schedule_show(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ROOT / "schedules" / "default.yaml")
    code, out, _ = run(["schedule", "show", path, "--date", "2026-10-25"], capsys)
    assert code == 0
    assert out.splitlines() == [
        f"{path}: sun 2026-10-25 (Europe/Berlin)",
        "  00:00 CEST   18.0 °C  eco        (continues the previous day)",
        "  -- DST: at 03:00 CEST clocks go back to 02:00 CET (-1 h)",
        "  08:00 CET    21.0 °C  comfort",
        "  23:00 CET    18.0 °C  eco",
    ]


def test_schedule_show_exception_day(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schedule", "show", str(ROOT / "schedules" / "default.yaml"), "--date", "2026-12-24"], capsys)
    assert code == 0
    assert "exception 'Christmas': sun program" in out.splitlines()[0]


def test_schedule_show_bad_date_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["schedule", "show", str(ROOT / "schedules" / "default.yaml"), "--date", "24.12."], capsys)
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = run(["schedule", "show", str(tmp_path / "none.yaml")], capsys)
    assert code == 1 and "file not found" in err


def test_schedule_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schedule", "check", str(ROOT / "schedules" / "office.yaml")], capsys)
    assert code == 0 and ": OK (Europe/Berlin, 3 presets" in out
    code, _, err = run(["schedule", "check", str(DATA / "schedule_bad.yaml")], capsys)
    assert code == 1
    assert "schedule_bad.yaml:5:12: week.mon-fri.0.at" in err


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("rooms:\n  living: 5\nheaters: {a: {host: h, model: mini3}}\n",
         "rooms.living: must be a mapping (key: value lines), got the number 5"),
        ("rooms: {}\nheaters: {a: {host: h, model: mini3}}\n", "rooms: needs at least one entry, has none"),
        ("mqtt: broker\nrooms: {}\nheaters: {}\n", "mqtt: must be a mapping (key: value lines), got the text 'broker'"),
        ("rooms:\n  living: {sensor: {topic: a/b}, target: 20, heaters: []}\nheaters: {a: x}\n",
         "heaters.a: must be a mapping (key: value lines), got the text 'x'"),
    ],
)
def test_config_errors_speak_yaml_not_pydantic(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                               expect: str) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(text)
    code, _, err = run(["check-config", str(path)], capsys)
    assert code == 1
    assert expect in err, err
    for leak in ("instance of", "Config", "Dictionary", "after validation", "List should"):
        assert leak not in err, err


def test_check_config_counts_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check-config", str(DATA / "minimal.yaml")], capsys)
    assert code == 0 and out.splitlines()[1].startswith("1 room, 1 heater: ")
    bad = tmp_path / "one.yaml"
    bad.write_text("rooms: {}\nheaters: {a: {host: h, model: mini3}}\n")
    code, _, err = run(["check-config", str(bad)], capsys)
    assert err.rstrip().endswith("one.yaml: 1 error")


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_config_file_as_argument_or_option(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run` and `check-config` take FILE and --config FILE alike (a missing file: same error, exit 1)."""
    missing = str(tmp_path / "none.yaml")
    for argv in ([command, missing], [command, "--config", missing], [command, "-c", missing]):
        code, _, err = run(argv, capsys)
        assert code == 1 and "file not found" in err, argv
    with pytest.raises(SystemExit) as both:
        main([command, missing, "--config", missing])
    assert both.value.code == 2 and "not allowed with" in capsys.readouterr().err
    with pytest.raises(SystemExit) as neither:
        main([command])
    assert neither.value.code == 2 and "FILE --config/-c is required" in capsys.readouterr().err
