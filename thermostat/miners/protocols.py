"""Which wire protocol serves a model row, and the pieces the cgminer-derived families share.

`ModelSpec.family` names the firmware family; `protocol_for(spec)` returns its `Family`: pure functions
with one shape for every family, so the executors (`execute_sync` below, for the bench and the tests,
`MinerClient.execute` over TCP) drive any family the same way:

* ``requests_for(command, spec)``: the validated wire requests (InvalidValue/Unsupported before any I/O).
  Families whose control commands need a session id show a placeholder id there (see luxos.py).
* ``plan(command, spec, session)``: the generator both executors drive. It yields one `Request` at a time,
  receives the raw reply bytes, and returns the `Outcome`. A plan may send several requests (a poll made
  of several reads; a LuxOS session dance before a control command) or none at all (a command the family
  carries out by doing nothing, e.g. "automatic fan" on firmware that always runs its own fan control).

Every request is a `avalon.Request`, built and encoded through `avalon.guard`: no family can send a
pool-changing command.

Decisions:

* Families are registered by module path and imported lazily, so this module (which the family modules
  import for the shared pieces below) and the family modules do not form an import cycle.
* `SessionCache` is the only protocol state: one small object per miner, owned by whoever owns the
  connection to that miner (`MinerClient` keeps one per instance; `execute_sync` takes one optionally and
  otherwise starts from nothing, i.e. asks the miner for its session every time). Families without
  sessions ignore it.
* A multi-request poll reads its parts one connection at a time (cgminer serves one request per
  connection). Required parts that fail end the poll with that failure; optional parts that fail
  (an older firmware without `power`, say) are left out of the snapshot.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from thermostat.domain.actions import Command, Outcome, OutcomeKind
from thermostat.domain.snapshot import Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import Plan, Reply, Request, check_status, decode_reply, outcome_for_error
from thermostat.miners.errors import Busy, ForbiddenCommand, MalformedReply, MinerError, Refused

#: family name -> module implementing `requests_for` and `plan` (plus `parse_poll` for non-Avalon families)
FAMILY_MODULES: dict[str, str] = {
    "avalon": "thermostat.miners.avalon",
    "luxos": "thermostat.miners.luxos",
    "braiins": "thermostat.miners.braiins",
}


@dataclass
class SessionCache:
    """Per-miner protocol state kept between commands (today: the LuxOS session id, or None)."""

    session_id: str | None = None

    def clear(self) -> None:
        self.session_id = None


@dataclass(frozen=True)
class Family:
    name: str
    requests_for: Callable[[Command, ModelSpec], list[Request]]
    plan: Callable[[Command, ModelSpec, SessionCache | None], Plan]


def protocol_for(spec: ModelSpec) -> Family:
    """The protocol functions of `spec.family` (ValueError for a family nobody registered)."""
    path = FAMILY_MODULES.get(spec.family)
    if path is None:
        raise ValueError(f"no wire protocol for firmware family {spec.family!r} ({spec.display})")
    module = cast(Any, importlib.import_module(path))
    if spec.family == "avalon":
        avalon_plan = module.plan

        def plan(command: Command, spec: ModelSpec, session: SessionCache | None = None) -> Plan:
            return cast(Plan, avalon_plan(command, spec))

        return Family(spec.family, module.requests_for, plan)
    return Family(spec.family, module.requests_for, module.plan)


def execute_sync(
    send: Callable[[Request], bytes], command: Command, spec: ModelSpec, *, session: SessionCache | None = None
) -> Outcome:
    """Carry out `command` through a synchronous `send` (e.g. an in-process simulated miner).

    The same executor drives every firmware family's plan (`protocol_for`). `session` is an optional
    `SessionCache` kept per miner by the caller (LuxOS session id); without one, a family that needs a
    session asks the miner for it each time. InvalidValue/Unsupported are raised before anything is sent;
    transport errors raised by `send` (MinerError subclasses, TimeoutError, OSError) become Outcome kinds.
    """
    steps = protocol_for(spec).plan(command, spec, session)
    try:
        request = next(steps)
        while True:
            try:
                raw = send(request) or b""  # None (a simulator closing without reply) counts as EOF
            except (MinerError, TimeoutError, OSError) as exc:
                if isinstance(exc, ForbiddenCommand):
                    raise
                return outcome_for_error(command, exc)
            request = steps.send(raw)
    except StopIteration as stop:
        result: Outcome = stop.value
        return result


# --------------------------------------------------------------------------------------------------
# Shared by the cgminer-derived families (LuxOS, BOSminer legacy API)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollPart:
    request: Request
    required: bool = True


def poll_plan(parts: Sequence[PollPart], parse: Callable[[dict[str, Reply]], Snapshot]) -> Plan:
    """Read every part (one request per connection), then parse the replies that answered.

    A required part that is refused/malformed ends the poll with that Outcome; an optional one is dropped.
    """
    replies: dict[str, Reply] = {}
    for part in parts:
        raw = yield part.request
        try:
            reply = check_status(decode_reply(raw if raw is not None else b""))
        except (Refused, MalformedReply) as exc:
            if part.required:
                return failure_outcome(exc, part.request.command)
            continue
        replies[part.request.command] = reply
    try:
        snap = parse(replies)
    except (Refused, MalformedReply) as exc:
        return failure_outcome(exc, "poll")
    return Outcome(OutcomeKind.OK, "poll", snapshot=snap)


def failure_outcome(exc: Refused | MalformedReply, what: str) -> Outcome:
    if isinstance(exc, Busy):
        return Outcome(OutcomeKind.BUSY, f"{what}: {exc.msg}")
    if isinstance(exc, Refused):
        return Outcome(OutcomeKind.REFUSED, f"{what}: {exc.msg}")
    return Outcome(OutcomeKind.MALFORMED, f"{what}: {exc}")


def reply_outcome(raw: bytes | None, what: str) -> tuple[Outcome, Reply | None]:
    """One control reply → (Outcome, the decoded reply when it was a success)."""
    try:
        reply = check_status(decode_reply(raw if raw is not None else b""))
    except (Refused, MalformedReply) as exc:
        return failure_outcome(exc, what), None
    return Outcome(OutcomeKind.OK, reply.msg or what), reply


def no_request(outcome: Outcome) -> Plan:
    """A plan that sends nothing and returns `outcome`."""
    if False:  # pragma: no cover - makes this function a generator
        yield Request("version")
    return outcome


_NUM_RE = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?")


def num(value: Any) -> float | None:
    """A finite number from a JSON/text value (bools and junk → None)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            f = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str) and _NUM_RE.fullmatch(value.strip().rstrip("%").strip()):
        f = float(value.strip().rstrip("%").strip())
    else:
        return None
    return f if math.isfinite(f) else None


def integer(value: Any) -> int | None:
    f = num(value)
    return int(f) if f is not None else None


def section(replies: dict[str, Reply], command: str, name: str) -> list[dict[str, Any]]:
    reply = replies.get(command)
    return list(reply.sections.get(name, [])) if reply is not None else []


def first(replies: dict[str, Reply], command: str, name: str) -> dict[str, Any]:
    items = section(replies, command, name)
    return items[0] if items else {}


def hashrate_ths(entry: dict[str, Any]) -> float | None:
    """The short-window hashrate of a SUMMARY/DEVS entry in TH/s ("GHS 5s" or "MHS 5s"), never the average."""
    ghs = num(entry.get("GHS 5s"))
    if ghs is not None:
        return ghs / 1000.0
    mhs = num(entry.get("MHS 5s"))
    return mhs / 1e6 if mhs is not None else None


def max_of(entries: Sequence[dict[str, Any]], *needles: str) -> float | None:
    """Max over every numeric value whose key contains one of `needles` (case-insensitive)."""
    values = [
        v for e in entries for k, raw in e.items()
        if isinstance(k, str) and any(n in k.lower() for n in needles) and (v := num(raw)) is not None
    ]
    return max(values) if values else None
