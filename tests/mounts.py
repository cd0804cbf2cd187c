"""Real file-system conditions for the store tests: a tiny tmpfs that can be filled (disk full) and a
read-only bind mount (root ignores file modes, so chmod alone would not stop the service from writing).

Both need the right to mount (root in this test environment); `require_mount()` fails the test with the
reason otherwise, rather than pretend the condition was tested.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def require_mount(tmp: Path) -> None:
    probe = tmp / "mount-probe"
    probe.mkdir(exist_ok=True)
    result = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    if result.returncode != 0:
        pytest.fail(f"these tests need to mount a tmpfs (root): {result.stderr.strip()}")
    _run("umount", str(probe))


@contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    result = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    assert result.returncode == 0, result.stderr
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


@contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[Path]:
    """`view` shows `source` read-only (a bind mount remounted ro): writes fail with EROFS, even for root."""
    view.mkdir(parents=True, exist_ok=True)
    result = _run("mount", "--bind", str(source), str(view))
    assert result.returncode == 0, result.stderr
    try:
        result = _run("mount", "-o", "remount,bind,ro", str(view))
        assert result.returncode == 0, result.stderr
        yield view
    finally:
        _run("umount", "-l", str(view))


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte; returns the filler file (delete it to free)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
