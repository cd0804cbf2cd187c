"""Per-model facts about Canaan Avalon home miners, kept as data.

One `ModelSpec` row per model. The driver, the simulator, the heater state machine and the
allocator all read these rows; none of them branches on a model name. A new model is a new row.

Sources are in ../shared/reference/avalon-api.md (§2 identification, §3.2 keys, §3.3 PS[], §3.4 modes,
§3.5 standby). Watts marked ``assumed`` are not from an official source: they are documented
defaults that a household can override per heater in the configuration (``levels_w``).
"""

from __future__ import annotations

from thermostat.domain.spec import Level, ModelSpec

MINI3 = ModelSpec(
    key="mini3",
    display="Avalon Mini 3",
    version_model="Mini3",
    version_prod="Avalon Mini3",
    hwtype="M_MM1v1_X1",
    ver_prefix="Mini3",
    stats_key="MM ID0",
    stats_wrapped=False,
    has_standby=True,
    has_locate_led=False,
    has_lcd=True,
    fans=1,
    # WORKMODE 0 Heater (level -1 Eco, 0 Super), 1 Mining, 2 Night (avalon-api.md §3.4).
    levels=(
        Level("night", "Night", 2, 0, 400.0, 65, "assumed: quiet mode, about half of Mining"),
        Level("eco", "Heater Eco", 0, -1, 550.0, 70, "assumed: between Night and Super"),
        Level("super", "Heater Super", 0, 0, 750.0, 75, "assumed: a little under Mining"),
        Level("mining", "Mining", 1, 0, 824.0, 75, "measured: PS[6]=824 W in Mining (pyasic#312)"),
    ),
    max_workmode=2,
    worklevel_range={0: (-1, 0), 1: (0, 0), 2: (0, 0)},
    chip_temp_limit_c=95.0,
    total_asics=66,
    nominal_ths={"night": 18.0, "eco": 25.0, "super": 34.0, "mining": 37.5},
)

NANO3S = ModelSpec(
    key="nano3s",
    display="Avalon Nano 3S",
    version_model="Nano3s",
    version_prod="Avalon Nano3s",
    hwtype="N_MM1v1_X1",
    ver_prefix="Nano3s",
    stats_key="MM ID0",
    stats_wrapped=False,
    has_standby=False,  # no softoff/softon in its firmware (avalon-api.md §3.5)
    has_locate_led=False,
    has_lcd=True,
    fans=1,
    levels=(
        Level("low", "Low", 0, 0, 70.0, 80, "assumed: Nano 3 Low is MPO 60 W"),
        Level("mid", "Mid", 1, 0, 100.0, 85, "assumed: Nano 3 Mid is MPO 90 W"),
        Level("high", "High", 2, 0, 133.0, 90, "measured: PS[6]=133 W, MPO 133 in High"),
    ),
    max_workmode=2,
    worklevel_range={0: (0, 0), 1: (0, 0), 2: (0, 0)},
    standby_wall_w=0.0,  # no standby: a smart plug cuts it to zero
    chip_temp_limit_c=100.0,
    inlet_sensor=False,
    total_asics=12,
    nominal_ths={"low": 3.5, "mid": 5.0, "high": 6.6},
)

NANO3 = ModelSpec(
    key="nano3",
    display="Avalon Nano 3",
    # `version` of the older MM318 firmware (pyasic#199): PROD Avalon0o, MODEL 0o3, HWTYPE PMMv1_X1.
    version_model="0o3",
    version_prod="Avalon0o",
    hwtype="PMMv1_X1",
    ver_prefix="nano3",  # estats Ver[nano3-24071801_42c628d] (miner-samples/nano3-estats.txt)
    stats_key="MM ID0",
    stats_wrapped=False,
    has_standby=False,  # assumed: no softoff/softon in any Nano source (like the Nano 3S, avalon-api.md §3.5)
    has_locate_led=False,
    has_lcd=False,  # an LED ring (Led[1]) and no LcdOnoff[] in the capture
    fans=1,
    # One work mode; WORKLEVEL carries Low/Mid/High and WORKMODE[] is absent (capture; [EXG] _parse_stats_nano3).
    # Watts are the firmware's MPO per level (ATA0/1/2 first fields 60/90/125 in the capture); a user measured
    # 60/80/100 W at the wall (miner-sentinel#16), so Mid and High may read up to 25 W high.
    levels=(
        Level("low", "Low", 0, 0, 60.0, 80, "firmware: ATA0 MPO 60 (capture); user measured 60 W at the wall"),
        Level("mid", "Mid", 0, 1, 90.0, 85, "firmware: MPO[90] at WORKLEVEL 1 (capture); user measured 80 W"),
        Level("high", "High", 0, 2, 125.0, 90, "firmware: ATA2 MPO 125 (capture); user measured 100 W"),
    ),
    max_workmode=0,
    worklevel_range={0: (0, 2)},
    standby_wall_w=0.0,  # no standby: a smart plug cuts it to zero
    chip_temp_limit_c=100.0,
    # Temp[38] with OTemp[41] while the chips run at 85 °C: Temp[] reads air inside the case, not the room.
    inlet_sensor=False,
    total_asics=10,  # TA[10]
    # PS[0 0 0 3 2792 89 324]: PS[6]=324 at MPO 90 is no wall power (miner-sentinel#16, PR #21): use MPO[].
    wall_power_source="mpo",
    # GHSspd 2631, GHSmm 3204 in Mid (capture); Low/High scaled by MPO (assumed).
    nominal_ths={"low": 1.75, "mid": 2.63, "high": 3.65},
)

Q = ModelSpec(
    key="q",
    display="Avalon Q",
    version_model="Q",
    version_prod="Avalon Q",
    hwtype="Q_MM1v1_X1",
    ver_prefix="Q",
    stats_key="MM ID0:Summary",
    stats_wrapped=True,
    has_standby=True,
    has_locate_led=False,  # its live `ascset|0,help` has no `led` (asic-rs ascset_help.json; issue 16)
    has_lcd=True,
    fans=4,
    levels=(
        Level("eco", "Eco", 0, 0, 800.0, 65, "measured: MPO 800 in Eco (asic-rs sample)"),
        Level("standard", "Standard", 1, 0, 1300.0, 80, "assumed: Exergy docs ~1,300 W"),
        Level("super", "Super", 2, 0, 1670.0, 85, "measured: PS[6]=1670 W in Super (asic-rs)"),
    ),
    max_workmode=2,
    worklevel_range={0: (0, 0), 1: (0, 0), 2: (0, 0)},
    standby_wall_w=17.0,  # a Q standby sample reads PS[6]=17
    psu_efficiency=0.957,  # measured: PS[4]/PS[6] = 1598/1670 in Super (asic-rs sample)
    chip_temp_limit_c=95.0,
    total_asics=160,
    nominal_ths={"eco": 50.0, "standard": 75.0, "super": 96.8},
)

# Other firmware families (issue 9). Antminers have no inlet air sensor (chip and board temperatures only),
# no display and no locate LED we drive. Their watts are far above an Avalon's: garage/workshop heaters.

LUXOS_S21 = ModelSpec(
    key="luxos-s21",
    display="Antminer S21 (LuxOS)",
    version_model="Antminer S21",
    version_prod="Antminer S21",
    hwtype="LUXOS_S21",
    ver_prefix="LUXOS_S21",  # never matches an Avalon Ver[...] string
    stats_key="",
    stats_wrapped=False,
    has_standby=True,  # `curtail` sleep / wakeup (docs/luxos-braiins.md)
    has_locate_led=False,
    has_lcd=False,
    fans=4,
    # LuxOS power profiles as the ladder: workmode = index into fw_profiles, worklevel always 0.
    levels=(
        Level("eco", "Profile eco", 0, 0, 2200.0, 70, "assumed: ~63 % of stock, LuxOS underclock profile"),
        Level("low", "Profile low", 1, 0, 2800.0, 72, "assumed: ~80 % of stock"),
        Level("stock", "Profile default", 2, 0, 3500.0, 75, "assumed: Bitmain nameplate S21 200 TH/s, 3500 W"),
        Level("boost", "Profile boost", 3, 0, 3900.0, 78, "assumed: ~+11 % overclock profile"),
    ),
    max_workmode=3,
    worklevel_range={0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 0)},
    standby_wall_w=25.0,  # assumed: control board + PSU idle while curtailed (fans stopped)
    psu_efficiency=0.93,  # assumed: APW12 class PSU
    chip_temp_limit_c=90.0,
    inlet_sensor=False,
    total_asics=324,  # 3 boards × 108 chips
    nominal_ths={"eco": 140.0, "low": 165.0, "stock": 200.0, "boost": 215.0},
    family="luxos",
    # Profile names are a guess (plausible LuxOS frequency presets); kept as data so a site can change them.
    fw_profiles=("385MHz", "435MHz", "default", "525MHz"),
)

BRAIINS_S19 = ModelSpec(
    key="braiins-s19",
    display="Antminer S19 (Braiins OS)",
    version_model="Antminer S19",
    version_prod="Antminer S19",
    hwtype="BRAIINS_S19",
    ver_prefix="BRAIINS_S19",  # never matches an Avalon Ver[...] string
    stats_key="",
    stats_wrapped=False,
    has_standby=True,  # legacy API `pause` / `resume`
    has_locate_led=False,
    has_lcd=False,
    fans=4,
    # The legacy API cannot set a power target (that is gRPC/config): one level, whatever the tuner runs.
    levels=(Level("on", "Mining", 0, 0, 3250.0, 75, "assumed: Bitmain nameplate S19 95 TH/s, 3250 W"),),
    max_workmode=0,
    worklevel_range={0: (0, 0)},
    standby_wall_w=25.0,  # assumed: control board + PSU idle while paused
    psu_efficiency=0.93,  # assumed: APW12 class PSU
    chip_temp_limit_c=90.0,
    inlet_sensor=False,
    total_asics=228,  # 3 boards × 76 chips
    nominal_ths={"on": 95.0},
    family="braiins",
)

MODELS: dict[str, ModelSpec] = {m.key: m for m in (MINI3, NANO3S, NANO3, Q, LUXOS_S21, BRAIINS_S19)}


def model_from_version(model: str | None, prod: str | None = None, hwtype: str | None = None) -> ModelSpec | None:
    """Identify a model from `version` fields; None for anything we do not know (never raises)."""
    for spec in MODELS.values():
        if model is not None and model.strip().lower() == spec.version_model.lower():
            return spec
        if prod is not None and prod.strip().lower() == spec.version_prod.lower():
            return spec
        if hwtype is not None and hwtype.strip().upper() == spec.hwtype.upper():
            return spec
    return None


def model_from_ver_string(ver: str | None) -> ModelSpec | None:
    """Identify a model from the estats `Ver[...]` value, e.g. ``Mini3-25011701_3f53b19``."""
    if not ver:
        return None
    head = ver.split("-", 1)[0].strip().lower()
    for spec in MODELS.values():
        if head == spec.ver_prefix.lower():
            return spec
    return None
