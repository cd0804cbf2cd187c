"""What several sub-commands share: where the house configuration is when `--config` is not given."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from thermostat.config import Config, ConfigError, load_config

DEFAULT_CONFIG = Path("/etc/thermostat/house.yaml")
CONFIG_ENV = "THERMOSTAT_CONFIG"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, default=None,
                        help=f"house configuration (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")


def config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG


def load_or_explain(args: argparse.Namespace, prog: str) -> Config | None:
    path = config_path(args)
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
    except OSError as exc:
        print(f"thermostat {prog}: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    return None
