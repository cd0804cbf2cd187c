"""One place that builds the right simulated miner for a model row, by firmware family.

The bench, the demo house and the tests call `make_sim_miner`; a new firmware family adds its simulator
here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thermostat.miners.models import ModelSpec
from thermostat.sim.miner import SimMiner


def make_sim_miner(spec: ModelSpec, *, time_fn: Callable[[], float], **kwargs: Any) -> SimMiner:
    """A simulated miner speaking `spec`'s firmware protocol (keyword arguments as `SimMiner`)."""
    if spec.family == "avalon":
        return SimMiner(spec, time_fn=time_fn, **kwargs)
    raise ValueError(f"no simulator for firmware family {spec.family!r} ({spec.display})")
