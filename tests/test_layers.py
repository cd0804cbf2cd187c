"""The import graph points one way: each layer imports only the layers below it (docs/architecture.md).

A module's imports are read with `ast` (function-level imports included), so a loop cannot hide inside a function
or behind TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "thermostat"

# What each top-level part of the package may import (besides itself). Lower layers first.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "clock": set(),
    "yamlio": set(),
    "core": {"domain"},
    "miners": {"domain"},
    "schedule_file": {"domain", "core", "yamlio"},
    "config": {"domain", "core", "miners", "yamlio", "schedule_file"},
    "adapters": {"domain", "core", "miners", "clock", "config", "yamlio", "schedule_file"},
    "service": {"domain", "core", "miners", "clock", "config", "yamlio", "schedule_file", "adapters"},
    "sim": {"domain", "core", "miners", "clock", "config", "yamlio", "schedule_file", "adapters", "service"},
    "commands": {"domain", "core", "miners", "clock", "config", "yamlio", "schedule_file", "adapters", "service",
                 "sim"},
    "cli": {"commands"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "thermostat":
                names = [alias.name for alias in node.names]
            elif node.module.startswith("thermostat."):
                names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("thermostat.")]
        for name in names:
            if name != "__version__":
                found.add((name, node.lineno))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    part = _part(path)
    assert part in ALLOWED, f"{part} is a new top-level part: give it a place in ALLOWED and docs/architecture.md"
    wrong = sorted((name, line) for name, line in _imported_parts(path) if name != part and name not in ALLOWED[part])
    assert not wrong, f"{path.relative_to(PACKAGE)} imports above its layer: {wrong}"


def test_the_rule_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from thermostat.miners.models import MODELS\n", encoding="utf-8")
    assert ("miners", 2) in _imported_parts(bad)
