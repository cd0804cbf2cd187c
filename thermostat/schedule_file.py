"""Schedule files: one YAML file to a validated `Schedule`, with `file:line:col: field: message` errors.

This is the part of loading that needs only the schedule's own models (thermostat.core.schedule), not the
house configuration's: `thermostat schedule show` and `schedule check` import this module and never build the
configuration models. thermostat.config reads the schedules a house names through the same functions and
re-exports `ConfigError`, `load_schedule` and `schedule_file_warnings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from thermostat.core.schedule import Schedule, ScheduleError, ScheduleSpec, raw_problems, schedule_warnings
from thermostat.yamlio import (
    Problem,
    YamlFileError,
    display_path,
    format_problems,
    load_yaml_file,
    problems_from_validation_error,
)


class ConfigError(Exception):
    """Every problem found, one formatted line each; `str()` is the newline-joined report."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class Limits(Protocol):
    """A room's target bounds (thermostat.config.LimitsConfig), for the warnings about clamped temperatures."""

    @property
    def min_c(self) -> float: ...

    @property
    def max_c(self) -> float: ...


def load_mapping(p: Path, when_empty: str, when_not_mapping: str) -> dict[str, Any]:
    """The YAML document of `p`, which must be a non-empty mapping; otherwise a located ConfigError."""
    name = display_path(p)
    try:
        data = load_yaml_file(p)
    except YamlFileError as exc:
        raise ConfigError(exc.errors) from None
    if data is None:
        raise ConfigError([f"{name}: {when_empty}"])
    if not isinstance(data, dict):
        raise ConfigError([f"{name}:1:1: (top level): {when_not_mapping}"])
    return data


def read_schedule(p: Path) -> tuple[Schedule, dict[str, Any]]:
    """The schedule in `p` and the loaded YAML tree (for locating warnings). Raises ConfigError."""
    name = display_path(p)
    data = load_mapping(p, "file is empty", "a schedule must be a mapping (timezone, presets, week)")
    try:
        return Schedule.from_data(data, name=p.stem), data
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, ScheduleSpec)
        problems += [Problem(sp.loc, sp.message, sp.on_key) for sp in raw_problems(data)]
    except ScheduleError as exc:
        problems = [Problem(sp.loc, sp.message, sp.on_key) for sp in exc.problems]
    raise ConfigError(format_problems(name, data, problems))


def warning_lines(p: Path, data: dict[str, Any], rooms: Mapping[str, Limits]) -> list[str]:
    """`file:line:col: field: warning` lines for the valid schedule `data` read from `p`: blocks written out of
    time order and, for each room given with its limits, temperatures the room will clamp."""
    found = schedule_warnings(data)
    for rid, limits in rooms.items():
        found += schedule_warnings(data, min_c=limits.min_c, max_c=limits.max_c, room=rid)
    return format_problems(display_path(p), data, [Problem(w.loc, w.message, w.on_key) for w in found])


def load_schedule(path: str | Path) -> Schedule:
    """Load and validate one schedule file. Raises ConfigError with `file:line:col` lines."""
    return read_schedule(Path(path))[0]


def load_schedule_and_warnings(path: str | Path) -> tuple[Schedule, list[str]]:
    """`load_schedule` and `schedule_file_warnings` from one reading of the file. Raises ConfigError."""
    p = Path(path)
    schedule, data = read_schedule(p)
    return schedule, warning_lines(p, data, {})


def schedule_file_warnings(path: str | Path, *, rooms: Mapping[str, Limits] | None = None) -> list[str]:
    """`file:line:col: field: warning` lines for a valid schedule file: blocks written out of time order and,
    for each room given with its limits, temperatures the room will clamp. Raises ConfigError if invalid."""
    p = Path(path)
    _, data = read_schedule(p)
    return warning_lines(p, data, rooms or {})
