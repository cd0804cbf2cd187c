"""The vocabulary between the pure core and whatever carries commands to a miner.

The heater state machine returns `Command`s; a driver (TCP in the service, in-process in the bench)
carries each one out and reports an `Outcome` back. Values here are already validated against the
model table by the machine; the wire encoder validates again before formatting anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from thermostat.domain.snapshot import Snapshot


class CommandKind(StrEnum):
    POLL = "poll"  # read litestats/estats -> Outcome.snapshot
    SOFT_ON = "soft_on"  # scheduled at `at_miner_time` on the miner's clock
    SOFT_OFF = "soft_off"
    SET_LEVEL = "set_level"  # `level` names a rung of the model's ladder (workmode + worklevel)
    SET_FAN = "set_fan"  # `fan_pct` 15..100, or -1 for automatic
    REBOOT = "reboot"
    PLUG_ON = "plug_on"  # smart plug (heaters without standby, e.g. Nano 3S)
    PLUG_OFF = "plug_off"


@dataclass(frozen=True)
class Command:
    heater: str
    kind: CommandKind
    level: str | None = None
    fan_pct: int | None = None
    at_miner_time: int | None = None


class OutcomeKind(StrEnum):
    OK = "ok"  # STATUS S or I and no failure text
    UNCONFIRMED = "unconfirmed"  # soft on answered by a closed connection: verify by polling
    BUSY = "busy"  # "is caling Don't permit switch mode": retry later
    REFUSED = "refused"  # STATUS E with any other message
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"  # connection refused / no route
    MALFORMED = "malformed"  # reply could not be parsed


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    message: str = ""
    snapshot: Snapshot | None = None  # set for a successful POLL

    @property
    def ok(self) -> bool:
        return self.kind in (OutcomeKind.OK, OutcomeKind.UNCONFIRMED)
