"""One place that builds the right simulated miner for a model row, by firmware family.

The bench, the demo house and the tests call `make_sim_miner`; a new firmware family adds its simulator
here and nowhere else.

Families: ``avalon`` → `SimMiner` (thermostat/sim/miner.py), ``luxos`` → `LuxOSSim`, ``braiins`` →
`BraiinsSim` (thermostat/sim/luxos.py, thermostat/sim/braiins.py). All take the same keyword arguments
(``start_state``, ``start_level``, ``boot_seconds``, ``calibration_seconds``, ``seed``, ``inlet_temp_c``,
...) and share the attributes the bench, the TCP server and the house use (`SimulatedMiner`).

Typing note: `make_sim_miner` is declared to return `SimMiner` because bench.py and house.py annotate
their miner dicts with `SimMiner`; they only use the `SimulatedMiner` attributes. Once those annotations
say `SimulatedMiner`, the return type here should say so too (the `cast` goes away).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from thermostat.domain.spec import ModelSpec
from thermostat.sim.braiins import BraiinsSim
from thermostat.sim.luxos import LuxOSSim
from thermostat.sim.miner import SimFaults, SimMiner


class SimulatedMiner(Protocol):
    """What the bench, the TCP server and the demo house need from any simulated miner."""

    spec: ModelSpec
    faults: SimFaults
    wakes: int
    mode_changes: int
    commands_log: list[tuple[float, str]]

    @property
    def reachable(self) -> bool: ...
    @property
    def wall_w(self) -> float: ...
    @property
    def hashing(self) -> bool: ...
    @property
    def level_name(self) -> str: ...
    @property
    def calibrated(self) -> bool: ...
    def update(self) -> None: ...
    def set_inlet_temp(self, c: float) -> None: ...
    def handle(self, request: bytes) -> bytes | None: ...


def make_sim_miner(spec: ModelSpec, *, time_fn: Callable[[], float], **kwargs: Any) -> SimMiner:
    """A simulated miner speaking `spec`'s firmware protocol (keyword arguments as `SimMiner`)."""
    if spec.family == "avalon":
        return SimMiner(spec, time_fn=time_fn, **kwargs)
    if spec.family == "luxos":
        return cast(SimMiner, LuxOSSim(spec, time_fn=time_fn, **kwargs))
    if spec.family == "braiins":
        return cast(SimMiner, BraiinsSim(spec, time_fn=time_fn, **kwargs))
    raise ValueError(f"no simulator for firmware family {spec.family!r} ({spec.display})")
