"""`thermostat run --config FILE`: the household service in the foreground (systemd runs this)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from thermostat.commands._argtypes import config_argument, config_path
from thermostat.config import Config, ConfigError, config_warnings, load_config
from thermostat.service import Service

log = logging.getLogger("thermostat")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the heating service (SIGHUP reloads the config)")
    config_argument(parser)
    parser.set_defaults(func=_main)


def _main(args: Any) -> int:
    try:
        config = load_config(config_path(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    _configure_logging(config, args.verbose)
    for warning in config_warnings(config):
        log.warning("%s", warning)
    try:
        return asyncio.run(serve(config_path(args), config))
    except KeyboardInterrupt:
        return 130


def _configure_logging(config: Config, verbose: int) -> None:
    level = logging.DEBUG if verbose >= 2 else getattr(logging, config.log.level.upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    if config.log.format == "json":
        formatter: logging.Formatter = _JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers or [logging.StreamHandler()]:
        handler.setFormatter(formatter)
        if handler not in root.handlers:
            root.addHandler(handler)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "message": record.getMessage()})


async def serve(path: Path, config: Config, *, clock: Any = None, stop: asyncio.Event | None = None,
                reload: asyncio.Event | None = None, **service_kwargs: Any) -> int:
    """Run the service until SIGTERM/SIGINT (or `stop`); SIGHUP (or `reload`) re-reads `path`: a valid
    config replaces the running one (heaters are left as they are and reconciled, not re-commanded); an
    invalid one is logged and the old one keeps running."""
    stop = stop or asyncio.Event()
    reload = reload or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig, event in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, reload)):
        try:
            loop.add_signal_handler(sig, event.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    previous: Service | None = None
    while True:
        service = Service(config, clock=clock, previous=previous, **service_kwargs)
        service_stop = asyncio.Event()
        task = asyncio.create_task(service.run(service_stop))
        while True:
            waiters = [asyncio.ensure_future(e.wait()) for e in (stop, reload)] + [task]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters[:2]:
                w.cancel()
            if task.done():
                task.result()  # a crash propagates
                return 1
            if stop.is_set():
                _say_what_stopping_waits_for(service)
                service_stop.set()
                await task
                return 0
            reload.clear()
            try:
                new_config = load_config(path)
            except ConfigError as exc:
                log.error("reload refused, keeping the running configuration:\n%s", exc)
                continue
            log.info("reloading configuration from %s", path)
            service.handover()
            service_stop.set()
            await task
            config, previous = new_config, service
            break


def _say_what_stopping_waits_for(service: Service) -> None:
    """Stopping can take a while (every miner must confirm standby); say so at once, or Ctrl-C looks ignored."""
    heaters = ", ".join(service.heaters) or "no heaters"
    if service.exit_action == "standby":
        log.warning("stopping: sending %s to standby (safety.on_exit) and waiting up to %.0f s for the miners to "
                    "confirm", heaters, service.timings.exit_timeout_s)
    else:
        log.warning("stopping: leaving %s as they are (safety.on_exit: leave)", heaters)
