"""Typed errors of the miner driver.

Everything the driver can fail with derives from `MinerError`, so callers that only want "did it work"
catch one class, and callers that care (the CLI, the executors mapping errors to `OutcomeKind`s) pick
the subclass. None of these carry a traceback-worthy surprise: each message is one readable line.
"""

from __future__ import annotations


class MinerError(Exception):
    """Base class of every error raised by thermostat.miners."""


class Unreachable(MinerError):
    """The TCP connection could not be made (refused, no route, DNS failure, reset before sending)."""


class MinerTimeout(MinerError):
    """Connecting or reading took longer than allowed.

    `phase` is "connect" (nothing was sent) or "read" (the request was sent; the miner may have acted).
    """

    def __init__(self, message: str, phase: str = "read") -> None:
        super().__init__(message)
        self.phase = phase

    @property
    def sent(self) -> bool:
        return self.phase != "connect"


class MalformedReply(MinerError):
    """The reply could not be decoded or does not contain what the request needs."""


class Refused(MinerError):
    """The miner answered with a STATUS other than S/I, or with failure text in Msg."""

    def __init__(self, status: str, code: int | None, msg: str) -> None:
        self.status = status
        self.code = code
        self.msg = msg
        super().__init__(f"miner refused ({status}/{code if code is not None else '?'}): {msg}")


class Busy(Refused):
    """The miner refused because it is calibrating ("is caling Don't permit switch mode"): retry later."""

    def __init__(self, status: str, code: int | None, msg: str) -> None:
        super().__init__(status, code, msg)
        self.args = (f"miner busy, retry later ({status}/{code if code is not None else '?'}): {msg}",)


class InvalidValue(MinerError, ValueError):
    """A value for a miner command failed validation; nothing was sent."""


class Unsupported(MinerError):
    """The model has no such feature (e.g. soft off on the Nano 3S); nothing was sent."""


class ForbiddenCommand(MinerError):
    """The request is one the engine never sends (pool changes) or is not a well-formed command name."""
