"""The LuxOS (Luxor firmware for Antminers) API on port 4028, as pure functions (no I/O).

Same wire protocol as cgminer (avalon-api.md §1: one JSON request per connection, NUL-terminated reply,
STATUS S/I/W/E); every request is an `avalon.Request`, so `avalon.guard` refuses pool commands here too.
Facts used: avalon-api.md §7 and the command matrix in ../shared/reference/seeds/003_*.txt.

Commands used
-------------
* Reads (no session): ``summary``, ``config``, ``devdetails`` (one entry per hash board, with its
  ``Profile``), and, optional, ``power``, ``temps``, ``fans``; plus ``session`` (the active session id,
  empty when there is none).
* Control (session id first): ``curtail <sid>,sleep`` = SOFT_OFF, ``curtail <sid>,wakeup`` = SOFT_ON
  (both act at once: `Command.at_miner_time` is ignored), ``profileset <sid>,<profile>`` = SET_LEVEL.
* ``logon`` opens a session (``SESSION[0].SessionID``). The matrix says it is a single-session mutex that
  fails while a session exists, so we never call it blindly: first ``session`` (reuse what is there),
  ``logon`` only when that is empty. We never ``logoff`` (another tool may be using the same session) and
  never ``kill``.

Levels
------
The ladder is the model row's power profiles: ``Level.workmode`` is an index into ``spec.fw_profiles``
(the firmware's profile names), ``worklevel`` is always 0. A poll reads the profile each board runs
(``devdetails`` ``Profile``, the most common one when boards differ) and maps it back to a workmode; an
unknown profile reads as off-ladder (workmode None), which the heater corrects by setting its level.

State derivation (first match wins)
-----------------------------------
1. STANDBY  when ``config`` ``CurtailMode`` is ``Sleep`` (curtailed).
2. MINING   when the 5 s hashrate of ``summary`` is > 0.
3. STARTING otherwise (waking, or re-initialising after a profile change).
FAULT is never derived: a unit that stops hashing stays STARTING and the heater's wake/confirm deadlines
handle it. ``calibrated`` is None (LuxOS reports no calibration flag), so the heater waits for MINING.

Session handling (`plan`)
-------------------------
A control command runs ``[session] [logon] <command>``; with a `SessionCache` holding an id the first two
are skipped. A refusal that mentions the session (expired, invalid) clears the cache and the dance runs once
more. `MinerClient` keeps one cache per miner; `execute_sync` without a cache asks the miner every time
(one extra read per control command: control commands are minutes apart).

Guessed, not from a source (kept as data so a site can correct them): the key ``CurtailMode`` and its
value ``Sleep``; the ``POWER``/``Watts``, ``TEMPS``, ``FANS`` layouts (read leniently: any numeric key with
"chip"/"board" in its name); the profile names in the model row; the word "session" in a refusal caused by
a bad session id. No fan command is used (not in the sources): SET_FAN with -1 (automatic) is answered OK
without sending anything, a fixed duty is REFUSED. REBOOT is Unsupported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator
from typing import Any

from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState, Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import AUTO_FAN, Plan, Reply, Request, check_status, decode_reply
from thermostat.miners.errors import InvalidValue, MalformedReply, Refused, Unsupported
from thermostat.miners.protocols import (
    PollPart,
    SessionCache,
    first,
    hashrate_ths,
    integer,
    max_of,
    no_request,
    num,
    poll_plan,
    reply_outcome,
    section,
)

POLL_PARTS = (
    PollPart(Request("summary")),
    PollPart(Request("config")),
    PollPart(Request("devdetails")),
    PollPart(Request("power"), required=False),
    PollPart(Request("temps"), required=False),
    PollPart(Request("fans"), required=False),
)
CURTAIL_KEY = "CurtailMode"  # guessed key of CONFIG[0]
SLEEP_VALUES = frozenset({"sleep", "sleeping"})
PLACEHOLDER_SESSION = "SESSIONID"  # what `requests_for` shows where the live session id goes
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROFILE_RE = re.compile(r"[A-Za-z0-9_.+-]{1,32}")
_SESSION_ERROR_RE = re.compile(r"session", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Commands → requests
# --------------------------------------------------------------------------------------------------


def _checked_session(session_id: object) -> str:
    if not isinstance(session_id, str) or not _SESSION_RE.fullmatch(session_id):
        raise InvalidValue(f"not a LuxOS session id: {session_id!r}")
    return session_id


def profile_for(spec: ModelSpec, level: object) -> str:
    """The firmware profile name of ladder level `level` (InvalidValue when there is none)."""
    if not isinstance(level, str) or level not in spec.level_names:
        raise InvalidValue(f"{spec.display} has no level {level!r}; known: {', '.join(spec.level_names)}")
    mode = spec.level(level).workmode
    if not 0 <= mode < len(spec.fw_profiles):
        raise InvalidValue(f"{spec.display}: level {level} has no firmware profile (workmode {mode})")
    name = spec.fw_profiles[mode]
    if not _PROFILE_RE.fullmatch(name):
        raise InvalidValue(f"refusing to format LuxOS profile name {name!r}")
    return name


def curtail_request(session_id: str, *, sleep: bool) -> Request:
    return Request("curtail", f"{_checked_session(session_id)},{'sleep' if sleep else 'wakeup'}")


def profileset_request(session_id: str, profile: str) -> Request:
    if not _PROFILE_RE.fullmatch(profile):
        raise InvalidValue(f"refusing to format LuxOS profile name {profile!r}")
    return Request("profileset", f"{_checked_session(session_id)},{profile}")


def _check_fan(spec: ModelSpec, pct: object) -> int:
    if type(pct) is int and (pct == AUTO_FAN or spec.fan_min_pct <= pct <= spec.fan_max_pct):
        return pct
    raise InvalidValue(f"fan percent must be -1 or {spec.fan_min_pct}..{spec.fan_max_pct}, got {pct!r}")


def requests_for(command: Command, spec: ModelSpec, session_id: str = PLACEHOLDER_SESSION) -> list[Request]:
    """The wire requests for `command`, validated (InvalidValue/Unsupported). Control requests carry
    `session_id` (a placeholder by default; `plan` fills in the live one). Session requests are not listed."""
    kind = command.kind
    if kind == CommandKind.POLL:
        return [part.request for part in POLL_PARTS]
    if kind in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF):
        if not spec.has_standby:
            raise Unsupported(f"{spec.display} has no standby")
        return [curtail_request(session_id, sleep=kind == CommandKind.SOFT_OFF)]
    if kind == CommandKind.SET_LEVEL:
        return [profileset_request(session_id, profile_for(spec, command.level))]
    if kind == CommandKind.SET_FAN:
        _check_fan(spec, command.fan_pct)
        return []  # no fan command on this API: see the module docstring
    if kind == CommandKind.REBOOT:
        raise Unsupported(f"{spec.display}: reboot is not driven over the LuxOS API by this engine")
    raise Unsupported(f"{kind.value} is not a miner command (smart plug commands go to the plug driver)")


# --------------------------------------------------------------------------------------------------
# Replies → Snapshot
# --------------------------------------------------------------------------------------------------


def session_id_of(reply: Reply) -> str | None:
    """``SESSION[0].SessionID`` of a `session`/`logon` reply; None when empty or not a plain token."""
    check_status(reply)
    entries = reply.sections.get("SESSION", [])
    value = entries[0].get("SessionID") if entries else None
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return value if _SESSION_RE.fullmatch(value) else None


def _active_profile(boards: list[dict[str, Any]]) -> str | None:
    names = [str(b["Profile"]).strip() for b in boards if isinstance(b.get("Profile"), str | int)]
    names = [n for n in names if n]
    if not names:
        return None
    return Counter(names).most_common(1)[0][0]


def derive_state(curtail: str, ths: float | None) -> MinerState:
    if curtail.strip().lower() in SLEEP_VALUES:
        return MinerState.STANDBY
    if ths is not None and ths > 0:
        return MinerState.MINING
    return MinerState.STARTING


def parse_poll(replies: dict[str, Reply], spec: ModelSpec) -> Snapshot:
    """The replies of one poll (command → Reply, successes only) → Snapshot. MalformedReply when a
    required part is missing."""
    summary = first(replies, "summary", "SUMMARY")
    if not summary:
        raise MalformedReply("LuxOS summary reply has no SUMMARY section")
    if "config" not in replies:
        raise MalformedReply("LuxOS poll has no config reply")
    config = first(replies, "config", "CONFIG")
    boards = section(replies, "devdetails", "DEVDETAILS")
    curtail = str(config.get(CURTAIL_KEY, "") or "")
    ths = hashrate_ths(summary)
    state = derive_state(curtail, ths)
    profile = _active_profile(boards)
    workmode = spec.fw_profiles.index(profile) if profile in spec.fw_profiles else None
    models = {str(b.get("Model", "")).strip().lower() for b in boards}
    power = first(replies, "power", "POWER")
    temps = section(replies, "temps", "TEMPS")
    fans = section(replies, "fans", "FANS")
    rpms = [r for r in (integer(f.get("RPM")) for f in fans) if r is not None]
    speeds = [s for s in (integer(f.get("Speed")) for f in fans) if s is not None]
    return Snapshot(
        state=state,
        model=spec.key if spec.version_model.lower() in models else None,
        firmware=str(config["Version"]) if isinstance(config.get("Version"), str) else None,
        workmode=workmode,
        worklevel=0 if workmode is not None else None,
        power_w=num(power.get("Watts")),
        hashrate_ths=ths,
        board_temp_c=max_of(temps, "board"),
        chip_temp_max_c=max_of(temps, "chip"),
        fan_rpm=max(rpms) if rpms else None,
        fan_pct=max(speeds) if speeds else None,
        calibrated=None,
        uptime_s=integer(summary.get("Elapsed")),
        miner_time=replies["summary"].when,
        extra={"profile": profile or "", "curtail": curtail},
    )


# --------------------------------------------------------------------------------------------------
# The plan both executors drive
# --------------------------------------------------------------------------------------------------

def _open_session() -> Generator[Request, bytes, str | Outcome]:
    """``session`` (reuse), else ``logon``. Returns the session id or an Outcome on failure."""
    raw = yield Request("session")
    try:
        sid = session_id_of(decode_reply(raw if raw is not None else b""))
    except (Refused, MalformedReply):
        sid = None  # an old firmware without `session`, or an odd reply: try logon
    if sid is not None:
        return sid
    raw = yield Request("logon")
    outcome, reply = reply_outcome(raw, "logon")
    if reply is None:
        return outcome
    try:
        sid = session_id_of(reply)
    except (Refused, MalformedReply) as exc:
        return Outcome(OutcomeKind.MALFORMED, f"logon: {exc}")
    if sid is None:
        return Outcome(OutcomeKind.MALFORMED, "logon: no usable SESSION[0].SessionID in the reply")
    return sid


def _session_plan(command: Command, spec: ModelSpec, cache: SessionCache) -> Plan:
    for attempt in range(2):
        if cache.session_id is None:
            got = yield from _open_session()
            if isinstance(got, Outcome):
                return got
            cache.session_id = got
        request = requests_for(command, spec, cache.session_id)[0]
        raw = yield request
        outcome, _ = reply_outcome(raw, request.command)
        if outcome.kind == OutcomeKind.REFUSED and _SESSION_ERROR_RE.search(outcome.message):
            cache.clear()
            if attempt == 0:
                continue
        return outcome
    raise AssertionError("unreachable")  # pragma: no cover


def plan(command: Command, spec: ModelSpec, session: SessionCache | None = None) -> Plan:
    """Validate `command` now (InvalidValue/Unsupported before anything is sent) and return the plan."""
    requests_for(command, spec)
    if command.kind == CommandKind.POLL:
        return poll_plan(POLL_PARTS, lambda replies: parse_poll(replies, spec))
    if command.kind == CommandKind.SET_FAN:
        if command.fan_pct == AUTO_FAN:
            return no_request(Outcome(OutcomeKind.OK, "fan left to the firmware's automatic control"))
        return no_request(Outcome(OutcomeKind.REFUSED, "LuxOS: no fan command on this engine's API use"))
    return _session_plan(command, spec, session if session is not None else SessionCache())
