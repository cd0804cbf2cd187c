"""Words for counts in messages and logs: "1 room", "2 rooms"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for exactly one: counted(1, "room") == "1 room"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
