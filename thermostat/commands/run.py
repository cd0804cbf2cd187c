"""`thermostat run --config FILE`: the household service in the foreground (systemd runs this)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from thermostat.clock import SharedScaledClock
from thermostat.commands._argtypes import config_argument, config_path
from thermostat.config import Config, ConfigError, config_warnings, load_config
from thermostat.service import Service

log = logging.getLogger("thermostat")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the heating service (SIGHUP reloads the config)")
    config_argument(parser)
    test_only = parser.add_argument_group(
        "test only", f"a scaled clock shared with simulated miners and rooms (the soak test); refused unless "
        f"the environment sets {TEST_CLOCK_ENV}=1. Never use these on a real house.")
    test_only.add_argument("--test-clock-speed", type=float, default=None, metavar="X",
                           help="TEST ONLY: simulated seconds per real second")
    test_only.add_argument("--test-clock-origin", type=float, default=None, metavar="EPOCH",
                           help="TEST ONLY: real epoch seconds at which simulated time began")
    test_only.add_argument("--test-clock-start", type=float, default=None, metavar="EPOCH",
                           help="TEST ONLY: simulated epoch seconds at the origin")
    parser.set_defaults(func=_main)


TEST_CLOCK_ENV = "THERMOSTAT_TEST_CLOCK"
MIN_REAL_TIMEOUT_S = 0.25  # scaled I/O timeouts never go below this many real seconds (a loaded machine)


def _test_clock(args: Any) -> tuple[Any, str | None]:
    """The shared scaled clock asked for on the command line, or (None, error text)."""
    given = [args.test_clock_speed, args.test_clock_origin, args.test_clock_start]
    if all(v is None for v in given):
        return None, None
    if os.environ.get(TEST_CLOCK_ENV) != "1":
        return None, (f"thermostat run: --test-clock-* options are for tests only; set {TEST_CLOCK_ENV}=1 "
                      "to use them")
    if any(v is None for v in given):
        return None, "thermostat run: --test-clock-speed, --test-clock-origin and --test-clock-start go together"
    if args.test_clock_speed <= 0:
        return None, "thermostat run: --test-clock-speed must be positive"
    return SharedScaledClock(args.test_clock_speed, args.test_clock_origin, args.test_clock_start), None


def scale_io_timeouts(service: Any, speed: float) -> None:
    """On a scaled clock, real-second timeouts would last `speed` times longer in simulated time: divide the
    miner connect/read timeouts and the MQTT reconnect backoff by the speed (never below a floor)."""
    if speed <= 1.0:
        return
    for h in service.heaters.values():
        h.client.connect_timeout = max(MIN_REAL_TIMEOUT_S, h.client.connect_timeout / speed)
        h.client.read_timeout = max(MIN_REAL_TIMEOUT_S, h.client.read_timeout / speed)
    service.link.backoff_initial = max(0.05, service.link.backoff_initial / speed)
    service.link.backoff_max = max(MIN_REAL_TIMEOUT_S, service.link.backoff_max / speed)


def _main(args: Any) -> int:
    clock, clock_error = _test_clock(args)
    if clock_error is not None:
        print(clock_error, file=sys.stderr)
        return 2
    try:
        config = load_config(config_path(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    _configure_logging(config, args.verbose)
    for warning in config_warnings(config):
        log.warning("%s", warning)
    try:
        if clock is not None:
            log.warning("running on a TEST clock ×%g: not for a real house", clock.speed)
            return asyncio.run(serve(config_path(args), config, clock=clock, io_time_scale=clock.speed))
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
                reload: asyncio.Event | None = None, io_time_scale: float = 1.0, **service_kwargs: Any) -> int:
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
        scale_io_timeouts(service, io_time_scale)
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
