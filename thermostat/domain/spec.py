"""The shape of a miner model's facts: its heat ladder and capabilities (the rows live in `miners/models.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Level:
    """One rung of a model's heat ladder: a work mode/level pair and what it draws at the wall."""

    name: str  # stable identifier used in config, MQTT and the allocator ("eco", "super", ...)
    label: str  # human label ("Heater Eco")
    workmode: int
    worklevel: int
    wall_w: float  # nominal wall (AC) watts in this level; all of it becomes heat
    chip_target_c: int  # TarT the firmware reports in this level
    source: str  # where wall_w comes from: "measured: ..." or "assumed: ..."


@dataclass(frozen=True)
class ModelSpec:
    key: str  # config/CLI name: "mini3", "nano3s", "q"
    display: str  # "Avalon Mini 3"
    version_model: str  # VERSION.MODEL as the firmware reports it
    version_prod: str  # VERSION.PROD
    hwtype: str  # VERSION.HWTYPE
    ver_prefix: str  # prefix of Ver[...] in estats ("Mini3-...")
    stats_key: str  # key of the MM string in STATS[0]
    stats_wrapped: bool  # value wrapped as 'STATS':{...} (Avalon Q)
    has_standby: bool  # soft off / soft on exist
    has_locate_led: bool
    has_lcd: bool
    fans: int
    levels: tuple[Level, ...]  # ascending wall watts
    max_workmode: int
    worklevel_range: dict[int, tuple[int, int]] = field(default_factory=dict)  # per workmode
    standby_wall_w: float = 12.0  # assumed controller + PSU idle draw in soft-off
    psu_efficiency: float = 0.92  # DC/wall, from Mini 3 PS[4]/PS[6] = 760/824
    chip_temp_limit_c: float = 95.0  # above this the heater is taken down a level
    fan_min_pct: int = 15
    fan_max_pct: int = 100
    inlet_sensor: bool = True  # ITemp is real (Nano 3S reports -273)
    total_asics: int = 0
    nominal_ths: dict[str, float] = field(default_factory=dict)  # TH/s per level name (sim)
    family: str = "avalon"  # firmware family: which wire protocol and simulator serve this model
    # Firmware names of the work modes, index = Level.workmode (LuxOS profile names); empty for Avalon.
    fw_profiles: tuple[str, ...] = ()
    # Where a poll's wall watts come from: "ps6" = PS[6] (Mini 3, Nano 3S, Q); "mpo" = MPO[], the rated watts of
    # the running level, for firmware whose PS[] holds no watts at all (Nano 3, avalon-api.md §3.3).
    wall_power_source: str = "ps6"

    def level(self, name: str) -> Level:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(f"{self.display} has no level {name!r}; known: {', '.join(self.level_names)}")

    @cached_property
    def level_names(self) -> tuple[str, ...]:
        # the ladder is a tuple of frozen rows: its names are worked out once (asked on every control step)
        return tuple(lv.name for lv in self.levels)

    def level_for(self, workmode: int | None, worklevel: int | None) -> Level | None:
        """The ladder rung a miner reporting this mode/level is in (None when it is off-ladder)."""
        if workmode is None:
            return None
        exact = [lv for lv in self.levels if lv.workmode == workmode and lv.worklevel == worklevel]
        if exact:
            return exact[0]
        # Models whose modes carry no separate level (Nano 3S, Q) report WORKLEVEL 0 or omit it.
        same_mode = [lv for lv in self.levels if lv.workmode == workmode]
        if len(same_mode) == 1:
            return same_mode[0]
        return None

    @property
    def top_level(self) -> Level:
        return self.levels[-1]

    @property
    def bottom_level(self) -> Level:
        return self.levels[0]
