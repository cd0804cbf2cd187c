"""The controller registry: a controller by name, for the service, the bench and the demo.

Its own module because `mpc` builds on `thermostat.core.control` (its pid fallback, the `Forecast`), so the registry
that knows both sits above them.
"""

from __future__ import annotations

import inspect
from typing import Any

from thermostat.core.control import (
    BangBangController,
    Controller,
    HysteresisController,
    PidController,
    TpiController,
)
from thermostat.core.mpc import MpcController

CONTROLLERS: dict[str, Any] = {
    "pid": PidController,
    "hysteresis": HysteresisController,
    "bang-bang": BangBangController,
    "tpi": TpiController,
    "mpc": MpcController,
}


def make_controller(name: str, *, max_w: float, unit_w: float | None = None, **settings: Any) -> Controller:
    """Build a controller by name ("pid", "hysteresis", "bang-bang", "tpi", "mpc") with its keyword settings.

    Raises ValueError for an unknown name or setting (the message lists what is accepted).
    """
    key = name.strip().lower().replace("_", "-")
    if key == "bangbang":
        key = "bang-bang"
    if key not in CONTROLLERS:
        raise ValueError(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
    cls = CONTROLLERS[key]
    try:
        return cls(max_w=max_w, unit_w=unit_w, **settings)  # type: ignore[no-any-return]
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "max_w", "unit_w")]
        raise ValueError(f"controller {key!r}: {exc}; accepted settings: {', '.join(accepted)}") from None
