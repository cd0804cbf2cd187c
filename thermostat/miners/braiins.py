"""The Braiins OS legacy API (BOSminer's cgminer-compatible API on port 4028), as pure functions (no I/O).

Same wire protocol as cgminer (avalon-api.md §1); every request is an `avalon.Request`, so `avalon.guard`
refuses pool commands here too. Facts used: avalon-api.md §7 (legacy API ``pause``/``resume``, reply
sections ``PAUSE``/``RESUME``) and the command matrix in ../shared/reference/seeds/003_*.txt (reads on
4028: ``summary``, ``devs``, ``temps``, ``fans``, ``tunerstatus``).

Note on sources: the seed matrix says BraiinsOS keeps 4028 read-only and moves control to gRPC (port
50051, with a login token). Our §7 notes (from pyasic's BOSminer backend) say the legacy API has
``pause``/``resume``. This module drives the legacy API as the issue asks; on a Braiins OS+ release that
refuses them there, the heater sees REFUSED outcomes and backs off (it never hashes unwanted). gRPC is not
implemented.

Commands used
-------------
* POLL: ``summary`` and ``devs`` (required), ``temps``, ``fans``, ``tunerstatus`` (optional).
* SOFT_OFF = ``pause``, SOFT_ON = ``resume``; both act at once (`Command.at_miner_time` is ignored).
* SET_LEVEL: the ladder has one level ("on"): the legacy API cannot set a power target (that lives in the
  configuration / gRPC), so there is nothing to send; a model row with more levels is Unsupported.
* SET_FAN: no fan command on this API; -1 (automatic) is answered OK without sending, a fixed duty REFUSED.
* REBOOT: Unsupported (a restart is a gRPC/web action on Braiins OS).

State derivation (first match wins)
-----------------------------------
1. STANDBY  when every board in ``devs`` is paused: ``Status`` ``Paused``/``Disabled`` or ``Enabled`` N.
2. FAULT    when every board is ``Dead``/``NoStart`` (and not paused).
3. MINING   when the 5 s hashrate of ``summary`` ("MHS 5s", or "GHS 5s") is > 0.
4. STARTING otherwise (resuming: boards initialising, hashrate still 0).
The level is read as workmode 0 / worklevel 0 (the one rung) in every state. Power is
``tunerstatus`` ``ApproximateMinerPowerConsumption`` when present; None otherwise (the heater then uses the
ladder's watts). ``calibrated`` is None: the heater waits for MINING.

Guessed, not from a source: how ``devs`` shows a paused board (we accept the three forms above; the
simulator shows ``Status`` Paused), the ``TEMPS``/``FANS`` layouts (read leniently) and the tuner's key.
"""

from __future__ import annotations

from typing import Any

from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState, Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.avalon import AUTO_FAN, Plan, Reply, Request
from thermostat.miners.errors import InvalidValue, MalformedReply, Unsupported
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
    PollPart(Request("devs")),
    PollPart(Request("temps"), required=False),
    PollPart(Request("fans"), required=False),
    PollPart(Request("tunerstatus"), required=False),
)
PAUSE_REQUEST = Request("pause")
RESUME_REQUEST = Request("resume")
PAUSED_STATUS = frozenset({"paused", "disabled"})
DEAD_STATUS = frozenset({"dead", "nostart"})
TUNER_POWER_KEY = "ApproximateMinerPowerConsumption"


# --------------------------------------------------------------------------------------------------
# Commands → requests
# --------------------------------------------------------------------------------------------------


def _check_level(spec: ModelSpec, level: object) -> str:
    if not isinstance(level, str) or level not in spec.level_names:
        raise InvalidValue(f"{spec.display} has no level {level!r}; known: {', '.join(spec.level_names)}")
    if len(spec.levels) != 1:
        raise Unsupported(f"{spec.display}: the Braiins OS legacy API cannot choose between levels")
    return level


def requests_for(command: Command, spec: ModelSpec) -> list[Request]:
    """The wire requests for `command`, validated (InvalidValue/Unsupported before anything is sent)."""
    kind = command.kind
    if kind == CommandKind.POLL:
        return [part.request for part in POLL_PARTS]
    if kind in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF):
        if not spec.has_standby:
            raise Unsupported(f"{spec.display} has no standby")
        return [RESUME_REQUEST if kind == CommandKind.SOFT_ON else PAUSE_REQUEST]
    if kind == CommandKind.SET_LEVEL:
        _check_level(spec, command.level)
        return []  # the one level is where it mines: nothing to send
    if kind == CommandKind.SET_FAN:
        pct = command.fan_pct
        if not (type(pct) is int and (pct == AUTO_FAN or spec.fan_min_pct <= pct <= spec.fan_max_pct)):
            raise InvalidValue(f"fan percent must be -1 or {spec.fan_min_pct}..{spec.fan_max_pct}, got {pct!r}")
        return []
    if kind == CommandKind.REBOOT:
        raise Unsupported(f"{spec.display}: reboot is not available on the Braiins OS legacy API")
    raise Unsupported(f"{kind.value} is not a miner command (smart plug commands go to the plug driver)")


# --------------------------------------------------------------------------------------------------
# Replies → Snapshot
# --------------------------------------------------------------------------------------------------


def _board_paused(board: dict[str, Any]) -> bool:
    status = str(board.get("Status", "")).strip().lower()
    enabled = str(board.get("Enabled", "Y")).strip().upper()
    return status in PAUSED_STATUS or enabled == "N"


def derive_state(boards: list[dict[str, Any]], ths: float | None) -> MinerState:
    if boards and all(_board_paused(b) for b in boards):
        return MinerState.STANDBY
    if boards and all(str(b.get("Status", "")).strip().lower() in DEAD_STATUS for b in boards):
        return MinerState.FAULT
    if ths is not None and ths > 0:
        return MinerState.MINING
    return MinerState.STARTING


def parse_poll(replies: dict[str, Reply], spec: ModelSpec) -> Snapshot:
    """The replies of one poll (command → Reply, successes only) → Snapshot."""
    summary = first(replies, "summary", "SUMMARY")
    if not summary:
        raise MalformedReply("BOSminer summary reply has no SUMMARY section")
    if "devs" not in replies:
        raise MalformedReply("BOSminer poll has no devs reply")
    boards = section(replies, "devs", "DEVS")
    ths = hashrate_ths(summary)
    temps = section(replies, "temps", "TEMPS")
    fans = section(replies, "fans", "FANS")
    tuner = first(replies, "tunerstatus", "TUNERSTATUS")
    rpms = [r for r in (integer(f.get("RPM")) for f in fans) if r is not None]
    speeds = [s for s in (integer(f.get("Speed")) for f in fans) if s is not None]
    rung = spec.levels[0]
    return Snapshot(
        state=derive_state(boards, ths),
        model=spec.key,
        workmode=rung.workmode,
        worklevel=rung.worklevel,
        power_w=num(tuner.get(TUNER_POWER_KEY)),
        hashrate_ths=ths,
        board_temp_c=max_of(temps, "board"),
        chip_temp_max_c=max_of(temps, "chip"),
        fan_rpm=max(rpms) if rpms else None,
        fan_pct=max(speeds) if speeds else None,
        calibrated=None,
        uptime_s=integer(summary.get("Elapsed")),
        miner_time=replies["summary"].when,
        extra={"boards": str(len(boards))},
    )


# --------------------------------------------------------------------------------------------------
# The plan both executors drive
# --------------------------------------------------------------------------------------------------


def _one(request: Request) -> Plan:
    raw = yield request
    outcome, _ = reply_outcome(raw, request.command)
    return outcome


def plan(command: Command, spec: ModelSpec, session: SessionCache | None = None) -> Plan:
    """Validate `command` now (InvalidValue/Unsupported before anything is sent) and return the plan.
    The legacy API has no sessions: `session` is ignored."""
    requests = requests_for(command, spec)
    if command.kind == CommandKind.POLL:
        return poll_plan(POLL_PARTS, lambda replies: parse_poll(replies, spec))
    if command.kind == CommandKind.SET_FAN:
        if command.fan_pct == AUTO_FAN:
            return no_request(Outcome(OutcomeKind.OK, "fan left to the firmware's automatic control"))
        return no_request(Outcome(OutcomeKind.REFUSED, "Braiins OS legacy API: no fan command"))
    if not requests:  # SET_LEVEL of the one level
        return no_request(Outcome(OutcomeKind.OK, f"{command.level}: the only level, nothing to set"))
    return _one(requests[0])
