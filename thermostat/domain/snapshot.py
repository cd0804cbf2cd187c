"""A typed, parsed view of one miner poll. Pure data: produced by the parser, read by the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class MinerState(StrEnum):
    MINING = "mining"  # SYSTEMSTATU "In Work" and hashing
    STARTING = "starting"  # "In Init", or "In Work" with GHSspd still 0
    STANDBY = "standby"  # "In Idle" / STATE[2] / SoftOFF != 0
    FAULT = "fault"  # "In Fault" / STATE[3]


@dataclass(frozen=True)
class Snapshot:
    """What one `litestats`/`estats` reply says. Unknown values are None; nothing here is guessed."""

    state: MinerState
    model: str | None = None  # ModelSpec.key when recognised
    firmware: str | None = None
    dna: str | None = None
    workmode: int | None = None
    worklevel: int | None = None
    power_w: float | None = None  # wall watts, PS[6] (never PS[1])
    dc_power_w: float | None = None  # PS[4] on Mini 3 / Q
    hashrate_ths: float | None = None  # GHSspd / 1000 (never GHSavg/GHSmm)
    inlet_temp_c: float | None = None  # ITemp; None when -273 (no sensor)
    outlet_temp_c: float | None = None  # OTemp, or HBOTemp on the Q
    board_temp_c: float | None = None  # HBTemp, or HBITemp on the Q
    chip_temp_max_c: float | None = None  # TMax
    fan_rpm: int | None = None  # Fan1 (max of Fan1..4)
    fan_pct: int | None = None  # FanR
    calibrated: bool | None = None  # ADJ[1]
    chip_target_c: float | None = None  # TarT
    mpo_w: float | None = None  # MPO
    uptime_s: int | None = None  # Elapsed
    miner_time: int | None = None  # STATUS When: the miner's own epoch clock
    soft_off_reason: int | None = None  # SoftOFF
    extra: dict[str, str] = field(default_factory=dict)  # every other key, kept verbatim

    def as_json(self) -> dict[str, Any]:
        """The `thermostat miner status --json` object (stable keys, unknown values null)."""
        return {
            "model": self.model,
            "firmware": self.firmware,
            "dna": self.dna,
            "state": self.state.value,
            "workmode": self.workmode,
            "worklevel": self.worklevel,
            "power_w": self.power_w,
            "dc_power_w": self.dc_power_w,
            "hashrate_ths": self.hashrate_ths,
            "inlet_temp_c": self.inlet_temp_c,
            "outlet_temp_c": self.outlet_temp_c,
            "board_temp_c": self.board_temp_c,
            "chip_temp_max_c": self.chip_temp_max_c,
            "chip_target_c": self.chip_target_c,
            "fan_rpm": self.fan_rpm,
            "fan_pct": self.fan_pct,
            "calibrated": self.calibrated,
            "uptime_s": self.uptime_s,
            "miner_time": self.miner_time,
        }
