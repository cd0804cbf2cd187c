"""Words for counts and spans in messages and logs: "1 room", "2 rooms", "1 h 30 min"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for exactly one: counted(1, "room") == "1 room"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def span(seconds: float) -> str:
    """A duration in plain words, to the minute: span(600) == "10 min", span(5400) == "1 h 30 min"."""
    minutes = max(0, round(seconds / 60.0))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
