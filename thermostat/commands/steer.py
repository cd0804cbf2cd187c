"""`thermostat override ROOM TEMP [--for 2h | --until 18:30] | ROOM --cancel` and
`thermostat away [--until 2026-12-27T16:00 | --for 3d] [--temp 15] | --cancel`: steer the running service.

Both send the same MQTT commands Home Assistant sends (docs/mqtt.md) and wait for the service's state to show the
change, so what they print is what the service now does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from thermostat.adapters.mqtt_request import Reply, request
from thermostat.commands._shared import add_config_option, load_or_explain
from thermostat.config import Config, ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ov = subparsers.add_parser(
        "override", help="hold a room at a temperature for a while (or cancel that)",
        description="Hold ROOM at TEMP °C until the next schedule block, for a duration, or until a local time; "
        "--cancel returns it to its schedule. Needs the service running.")
    ov.add_argument("room", help="room id")
    ov.add_argument("temp", nargs="?", type=float, help="target °C")
    when = ov.add_mutually_exclusive_group()
    when.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 2h, 90m, 1h30m")
    when.add_argument("--until", metavar="TIME", help='local time "18:30" (next occurrence) or "2026-12-27T16:00"')
    when.add_argument("--cancel", action="store_true", help="back to the schedule")
    ov.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the service (default 10)")
    add_config_option(ov)
    ov.set_defaults(func=run_override)

    away = subparsers.add_parser(
        "away", help="the whole house away (holiday) until a date, with a return pre-heat; or cancel",
        description="Every room holds its away temperature (--temp, else its schedule's `away` preset, else "
        "15 °C) until the end, and starts heating back early enough to be warm at the return. Without "
        "options: show the current away.")
    end = away.add_mutually_exclusive_group()
    end.add_argument("--until", metavar="TIME", help='"2026-12-27T16:00", "2026-12-27" or "18:30" (local)')
    end.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 3d, 36h")
    end.add_argument("--cancel", action="store_true", help="end the away now")
    away.add_argument("--temp", type=float, help="°C for every room while away")
    away.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the service (default 10)")
    add_config_option(away)
    away.set_defaults(func=run_away)


def _password(config: Config) -> str | None:
    secret = config.mqtt.read_password()
    return secret.get_secret_value() if secret is not None else None


def _local(iso: object, config: Config, room: str | None = None) -> str:
    if not isinstance(iso, str) or not iso:
        return "the next schedule change"
    tz = config.schedule_for(room or next(iter(config.rooms))).tz
    when = datetime.fromisoformat(iso).astimezone(tz)
    today = datetime.now(UTC).astimezone(tz).date()
    return f"{when:%H:%M}" if when.date() == today else f"{when:%a %d %b %H:%M}"


def _send(config: Config, topic: str | None, payload: str, watch: str, error: str, answered: object,
          timeout: float) -> Reply:
    try:
        password = _password(config)
    except ConfigError as exc:
        return Reply(False, str(exc))
    return asyncio.run(request(config.mqtt, topic, payload, watch=[watch], error_topics=[error],
                               answered=answered, timeout_s=timeout, password=password))  # type: ignore[arg-type]


def _state(payload: bytes) -> dict[str, object] | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def run_override(args: argparse.Namespace) -> int:
    config = load_or_explain(args, "override")
    if config is None:
        return 1
    if args.room not in config.rooms:
        print(f"thermostat override: no room {args.room!r} (rooms: {', '.join(config.rooms)})", file=sys.stderr)
        return 2
    if args.cancel == (args.temp is not None):
        print("thermostat override: give a temperature, or --cancel", file=sys.stderr)
        return 2
    base = f"{config.mqtt.base_topic}/room/{args.room}"
    if args.cancel:
        payload = "cancel"
    else:
        doc: dict[str, object] = {"temp": args.temp}
        if args.duration:
            doc["for"] = args.duration
        elif args.until:
            doc["until"] = args.until
        payload = json.dumps(doc)

    def answered(_topic: str, data: bytes) -> str | None:
        state = _state(data)
        if state is None:
            return None
        if args.cancel:
            if state.get("target_reason") == "override":
                return None
            return f"{args.room}: override cancelled, {state.get('target')} °C from the {state.get('target_reason')}"
        if state.get("target_reason") != "override" or state.get("target") != args.temp:
            return None
        until = _local(state.get("next_change"), config, args.room)
        return f"{args.room}: {args.temp:g} °C until {until} (override)"

    reply = _send(config, f"{base}/override/set", payload, f"{base}/state", f"{base}/error", answered, args.timeout)
    print(reply.text, file=sys.stdout if reply.ok else sys.stderr)
    return 0 if reply.ok else 1


def run_away(args: argparse.Namespace) -> int:
    config = load_or_explain(args, "away")
    if config is None:
        return 1
    base = config.mqtt.base_topic
    if args.cancel:
        payload = "cancel"
    elif args.until or args.duration:
        doc: dict[str, object] = {"until": args.until} if args.until else {"for": args.duration}
        if args.temp is not None:
            doc["temp"] = args.temp
        payload = json.dumps(doc)
    elif args.temp is not None:
        print("thermostat away: --temp needs --until or --for", file=sys.stderr)
        return 2
    else:
        payload = ""  # show only

    def answered(_topic: str, data: bytes) -> str | None:
        state = _state(data)
        if state is None:
            return None
        active = bool(state.get("active"))
        if args.cancel and active:
            return None
        if payload and not args.cancel and not active:
            return None
        if not active:
            return "the house is not away" if not args.cancel else "away cancelled: every room follows its schedule"
        temp = state.get("temp")
        what = f"{temp} °C" if temp is not None else "each room's away temperature"
        return f"away until {_local(state.get('until'), config)} ({what}); heating back from " \
               f"{_local(state.get('heating_back_from'), config)}"

    topic = f"{base}/away/set" if payload else None
    reply = _send(config, topic, payload, f"{base}/away/state", f"{base}/away/error", answered,
                  args.timeout)
    print(reply.text, file=sys.stdout if reply.ok else sys.stderr)
    return 0 if reply.ok else 1
