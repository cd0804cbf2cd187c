"""`thermostat miner ...`: talk to one Avalon miner (status, set, pools) or find them (scan).

Exit codes: 0 success; 1 the miner refused, is busy, unreachable, timed out or answered garbage;
2 a bad value or unsupported feature (nothing was sent). Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from thermostat.commands._argtypes import positive, tcp_port
from thermostat.domain.actions import Command, CommandKind, OutcomeKind
from thermostat.domain.snapshot import Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import (
    AUTO_FAN,
    REBOOT_MAX_DELAY_S,
    Request,
    VersionInfo,
    decode_reply,
    reboot_request,
)
from thermostat.miners.client import DEFAULT_PORT, MinerClient
from thermostat.miners.errors import InvalidValue, MinerError, Refused, Unsupported
from thermostat.miners.models import MODELS
from thermostat.miners.scan import scan

#: Commands `miner raw` sends: Canaan's read commands without a parameter (joinable with '+'), plus `check CMD`
#: and `ascset 0,help`. Everything else could change the miner and is refused before any connection.
RAW_READ_COMMANDS = ("version", "summary", "estats", "litestats", "stats", "pools", "devs", "edevs", "devdetails",
                     "config", "lcd", "coin")
RAW_HELP_PARAM = "0,help"

EXIT_OK = 0
EXIT_MINER = 1
EXIT_BAD_VALUE = 2
SOFT_DELAY_S = 5  # soft off/on are scheduled this long after the miner's own clock reading
_LEVEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=tcp_port, default=DEFAULT_PORT, help="cgminer API port (default 4028)")
    common.add_argument("--timeout", type=positive, default=None, help="connect/read timeout in seconds")
    common.add_argument("--text", action="store_true", help="use the plain-text protocol form instead of JSON")

    parser = subparsers.add_parser("miner", help="talk to an Avalon miner over its cgminer API (port 4028)")
    actions = parser.add_subparsers(dest="miner_action", metavar="ACTION", required=True)

    status = actions.add_parser("status", parents=[common], help="model, state, mode, watts, temperatures, fan")
    status.add_argument("host")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=_run(_status))

    setp = actions.add_parser("set", parents=[common], help="change mode, fan, standby, or reboot")
    setp.add_argument("host")
    what = setp.add_mutually_exclusive_group(required=True)
    what.add_argument("--mode", metavar="NAME", help="a level of the model's ladder (mini3: night/eco/super/mining)")
    what.add_argument("--fan", metavar="PCT|auto", help="fan duty 15-100 %% or auto")
    what.add_argument("--standby", action="store_true", help="soft off (5 s after the miner's clock)")
    what.add_argument("--wake", action="store_true", help="soft on (5 s after the miner's clock)")
    what.add_argument("--reboot", nargs="?", const="0", metavar="DELAY", help="reboot after DELAY s (0-300)")
    setp.set_defaults(func=_run(_set))

    pools = actions.add_parser("pools", parents=[common], help="list pools (read-only)")
    pools.add_argument("host")
    pools.add_argument("--json", action="store_true")
    pools.set_defaults(func=_run(_pools))

    rawp = actions.add_parser("raw", parents=[common],
                              help="send one read-only cgminer command and print the reply as JSON")
    rawp.add_argument("host")
    rawp.add_argument("raw_command", metavar="COMMAND",
                      help=f"one of {', '.join(RAW_READ_COMMANDS)}, check, or ascset with 0,help; "
                           "read commands may be joined with + (summary+devs)")
    rawp.add_argument("raw_param", metavar="PARAM", nargs="?", help="check: the command to check; ascset: 0,help")
    rawp.set_defaults(func=_run(_raw))

    scanp = actions.add_parser("scan", parents=[common], help="find Avalon miners in a network (at most a /16)")
    scanp.add_argument("cidr", help="e.g. 192.168.1.0/24")
    scanp.add_argument("--concurrency", type=int, default=64, help="probes at once (default 64)")
    scanp.add_argument("--json", action="store_true")
    scanp.set_defaults(func=_run(_scan))


class _Fail(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _run(action: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(action(args))
        except _Fail as exc:
            return _error(str(exc), exc.code)
        except (InvalidValue, Unsupported) as exc:
            return _error(str(exc), EXIT_BAD_VALUE)
        except MinerError as exc:
            return _error(str(exc), EXIT_MINER)
        except ValueError as exc:
            return _error(str(exc), EXIT_BAD_VALUE)

    return run


def _error(message: str, code: int) -> int:
    print(f"thermostat miner: {message}", file=sys.stderr)
    return code


def _client(args: argparse.Namespace, default_timeout: float = 5.0) -> MinerClient:
    timeout = args.timeout if args.timeout is not None else default_timeout
    connect_timeout = 3.0 if args.timeout is None else timeout
    return MinerClient(args.host, args.port, form="text" if args.text else "json",
                       connect_timeout=connect_timeout, read_timeout=timeout)


# --------------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------------


async def _version_or_none(client: MinerClient) -> VersionInfo | None:
    """`version`, or None when the miner refuses it (the stats Ver[] still names the model)."""
    try:
        return await client.version()
    except Refused:
        return None


def _status_object(snap: Snapshot, info: VersionInfo | None, client: MinerClient) -> dict[str, Any]:
    obj = snap.as_json()
    spec = info.spec if info is not None else None
    if spec is None and snap.model:
        spec = MODELS.get(snap.model)
    if info is not None:
        obj["firmware"] = obj["firmware"] or info.firmware
        obj["dna"] = obj["dna"] or info.dna
        obj["model"] = obj["model"] or (info.spec.key if info.spec else None)
        obj["mac"] = info.mac
        obj["prod"] = info.prod
    level = spec.level_for(snap.workmode, snap.worklevel) if spec else None
    obj["level"] = level.name if level else None
    obj["mpo_w"] = snap.mpo_w
    obj["host"] = client.host
    obj["port"] = client.port
    return obj


def _fmt(value: float | int | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "?"
    return f"{value:.{digits}f}{unit}"


def _uptime(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m"


async def _status(args: argparse.Namespace) -> int:
    client = _client(args)
    info = await _version_or_none(client)
    snap = await client.snapshot()
    obj = _status_object(snap, info, client)
    if args.json:
        print(json.dumps(obj))
        return EXIT_OK
    spec = MODELS.get(obj["model"]) if obj["model"] else None
    name = spec.display if spec else f"unknown model ({info.prod if info and info.prod else 'no version'})"
    level = spec.level(obj["level"]) if spec and obj["level"] else None
    lines = [
        f"{name} at {client.address}  firmware {obj['firmware'] or '?'}  dna {obj['dna'] or '?'}",
        f"state     {snap.state.value}",
        f"mode      workmode {_fmt(snap.workmode)} / worklevel {_fmt(snap.worklevel)}"
        + (f"  = {level.name} ({level.label})" if level else "  (not on the ladder)"),
        f"power     {_fmt(snap.power_w, ' W')} wall, {_fmt(snap.dc_power_w, ' W')} DC, MPO {_fmt(snap.mpo_w, ' W')}",
        f"hashrate  {_fmt(snap.hashrate_ths, ' TH/s', 2)}",
        f"temps     inlet {_fmt(snap.inlet_temp_c, ' °C')}, outlet {_fmt(snap.outlet_temp_c, ' °C')}, "
        f"board {_fmt(snap.board_temp_c, ' °C')}, chip max {_fmt(snap.chip_temp_max_c, ' °C')} "
        f"(target {_fmt(snap.chip_target_c, ' °C')})",
        f"fan       {_fmt(snap.fan_rpm, ' rpm')}, {_fmt(snap.fan_pct, ' %')}",
        f"uptime    {_uptime(snap.uptime_s)}   calibrated {'?' if snap.calibrated is None else snap.calibrated}",
    ]
    print("\n".join(lines))
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# set
# --------------------------------------------------------------------------------------------------


def _precheck(args: argparse.Namespace) -> None:
    """Values that are wrong for every model are rejected before any connection is made."""
    if args.mode is not None and not _LEVEL_NAME.fullmatch(args.mode):
        # Whether a well-formed name is one of the miner's levels needs its model: `_set` reads `version`
        # first and the driver names that model's levels.
        raise InvalidValue(f"mode must be a level name (letters, digits, - or _), got {args.mode!r}")
    if args.fan is not None:
        args.fan_value = _parse_fan(args.fan)
    if args.reboot is not None:
        text = str(args.reboot).strip()
        if not text.isdigit():
            raise InvalidValue(f"reboot delay must be an integer 0..{REBOOT_MAX_DELAY_S}, got {args.reboot!r}")
        reboot_request(int(text))  # validates the range


def _parse_fan(text: str) -> int:
    if text.strip().lower() == "auto":
        return AUTO_FAN
    value = text.strip()
    if not (value.isdigit() and len(value) <= 3):
        raise InvalidValue(f"fan must be 15-100 or auto, got {text!r}")
    pct = int(value)
    lo = min(spec.fan_min_pct for spec in MODELS.values())
    hi = max(spec.fan_max_pct for spec in MODELS.values())
    if not lo <= pct <= hi:
        raise InvalidValue(f"fan {pct} out of range {lo}..{hi} (or auto)")
    return pct


async def _detect(client: MinerClient) -> tuple[ModelSpec, VersionInfo]:
    info = await client.version()
    if info.spec is None:
        raise _Fail(f"{client.address} is not a known Avalon home miner ({info.prod or info.model or '?'}); "
                    "refusing to send commands", EXIT_MINER)
    return info.spec, info


async def _set(args: argparse.Namespace) -> int:
    _precheck(args)
    client = _client(args)
    spec, info = await _detect(client)
    heater = args.host
    if args.mode is not None:
        command = Command(heater, CommandKind.SET_LEVEL, level=args.mode)
    elif args.fan is not None:
        command = Command(heater, CommandKind.SET_FAN, fan_pct=args.fan_value)
    elif args.standby or args.wake:
        if not spec.has_standby:
            raise Unsupported(f"{spec.display} has no soft off/on: use a smart plug or --mode "
                              f"{spec.bottom_level.name}")
        if info.miner_time is None:
            raise _Fail(f"{client.address}: the version reply carries no miner clock (When)", EXIT_MINER)
        kind = CommandKind.SOFT_ON if args.wake else CommandKind.SOFT_OFF
        command = Command(heater, kind, at_miner_time=info.miner_time + SOFT_DELAY_S)
    else:
        outcome_reply = await client.request(reboot_request(int(str(args.reboot).strip())))
        print(f"ok: {outcome_reply.msg}")
        return EXIT_OK
    outcome = await client.execute(command, spec)
    if outcome.kind == OutcomeKind.OK:
        print(f"ok: {outcome.message}")
        return EXIT_OK
    if outcome.kind == OutcomeKind.UNCONFIRMED:
        print(f"sent, unconfirmed: {outcome.message}")
        return EXIT_OK
    if outcome.kind == OutcomeKind.BUSY:
        return _error(f"{client.address} busy (calibrating), retry later: {outcome.message}", EXIT_MINER)
    return _error(f"{client.address} {outcome.kind.value}: {outcome.message}", EXIT_MINER)


# --------------------------------------------------------------------------------------------------
# raw
# --------------------------------------------------------------------------------------------------


def raw_request(command: str, param: str | None) -> Request:
    """The one request `miner raw` may send for COMMAND [PARAM]; InvalidValue for anything that is not read-only.

    The request is still built through `Request`, so the engine's pool-command guard sees it like any other."""
    name = command.strip().lower()
    if name == "check":
        if param is None or not param.strip():
            raise InvalidValue("check needs the command to check, e.g. `miner raw HOST check summary`")
        return Request("check", param.strip())
    if name == "ascset":
        if param is None or param.replace(" ", "") != RAW_HELP_PARAM:
            raise InvalidValue(f"ascset changes the miner; `miner raw` sends only `ascset {RAW_HELP_PARAM}` "
                               "(use `miner set` to change it)")
        return Request("ascset", RAW_HELP_PARAM)
    pieces = [p for p in name.split("+")]
    refused = [p for p in pieces if p not in RAW_READ_COMMANDS]
    if refused or not pieces:
        what = ", ".join(repr(p) for p in refused) or repr(command)
        raise InvalidValue(f"{what} is not a read-only command; `miner raw` sends only: "
                           f"{', '.join(RAW_READ_COMMANDS)}, check CMD, ascset {RAW_HELP_PARAM}")
    if param is not None:
        raise InvalidValue(f"{name} takes no parameter")
    return Request("+".join(pieces))


async def _raw(args: argparse.Namespace) -> int:
    request = raw_request(args.raw_command, args.raw_param)  # refused before any connection
    client = _client(args)
    body = await client.raw(request)
    joined = _joined_reply(body) if "+" in request.command else None
    if joined is not None:
        print(json.dumps(joined, indent=2))
        statuses = [part[0].get("STATUS", [{}])[0].get("STATUS") for key, part in joined.items()
                    if key != "id" and isinstance(part, list) and part and isinstance(part[0], dict)]
        return EXIT_OK if statuses and all(st in ("S", "I") for st in statuses) else EXIT_MINER
    reply = decode_reply(body)  # MalformedReply (exit 1) for garbage
    obj: dict[str, Any]
    try:
        obj = json.loads(body.split(b"\x00", 1)[0]) if reply.form == "json" else {}
    except ValueError:
        obj = {}
    if not isinstance(obj, dict) or not obj:  # the text form, or JSON only our decoder could repair
        head = {"STATUS": reply.status, "When": reply.when, "Code": reply.code, "Msg": reply.msg,
                "Description": reply.description}
        obj = {"STATUS": [head], **reply.sections}
    print(json.dumps(obj, indent=2))
    return EXIT_OK if reply.ok else EXIT_MINER


def _joined_reply(body: bytes) -> dict[str, Any] | None:
    """A joined (`a+b`) JSON reply: one object holding each command's reply list; None if it is not one."""
    try:
        obj = json.loads(body.split(b"\x00", 1)[0])
    except ValueError:
        return None
    if not isinstance(obj, dict) or "STATUS" in obj:
        return None
    return obj


# --------------------------------------------------------------------------------------------------
# pools, scan
# --------------------------------------------------------------------------------------------------


async def _pools(args: argparse.Namespace) -> int:
    client = _client(args)
    pools = await client.pools()
    if args.json:
        print(json.dumps([{k: p.get(k) for k in ("POOL", "URL", "User", "Status", "Priority")} for p in pools]))
        return EXIT_OK
    if not pools:
        print("no pools")
    for p in pools:
        print(f"{p.get('POOL', '?')}  {p.get('Status', '?'):<6}  {p.get('URL', '?')}  user {p.get('User', '?')}")
    return EXIT_OK


async def _scan(args: argparse.Namespace) -> int:
    timeout = args.timeout if args.timeout is not None else 1.0
    if args.concurrency < 1:
        raise _Fail("--concurrency must be positive", EXIT_BAD_VALUE)
    found = await scan(args.cidr, args.port, concurrency=args.concurrency, timeout=timeout,
                       form="text" if args.text else "json")
    if args.json:
        print(json.dumps([
            {"host": f.host, "port": f.port, "model": f.info.spec.key if f.info.spec else None,
             "prod": f.info.prod, "firmware": f.info.firmware, "dna": f.info.dna, "mac": f.info.mac}
            for f in found
        ]))
        return EXIT_OK
    for f in found:
        model = f.info.spec.display if f.info.spec else f"{f.info.prod or '?'} (unsupported)"
        print(f"{f.host}:{f.port}  {model}  firmware {f.info.firmware or '?'}  mac {f.info.mac or '?'}")
    print(f"{len(found)} Avalon miner(s) found in {args.cidr}", file=sys.stderr)
    return EXIT_OK
