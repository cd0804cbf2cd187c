"""argparse `type=` converters shared by the sub-commands: a bad number is a one-line usage error (exit 2)
before anything is opened, never a traceback or a NaN that slips through a `<= 0` check."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def finite(text: str) -> float:
    """Any finite number (nan and inf are refused)."""
    return _number(text)


def positive(text: str) -> float:
    """A finite number above zero (seconds, speeds, hours)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number at or above zero."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def tcp_port(text: str) -> int:
    """A TCP port 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {text!r}")
    return value


def config_argument(parser: argparse.ArgumentParser) -> None:
    """The house configuration as `FILE` or `--config FILE` (`-c FILE`), exactly one of them: `run` and
    `check-config` take both forms, so the one learnt from either command works with the other. After
    parsing, `config_path(args)` is the file."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("config_file", nargs="?", type=Path, metavar="FILE", help="house configuration (YAML)")
    which.add_argument("--config", "-c", dest="config_option", type=Path, metavar="FILE",
                       help="the same, as an option")


def config_path(args: argparse.Namespace) -> Path:
    path: Path = args.config_file if args.config_file is not None else args.config_option
    return path
