"""A simulated Canaan Avalon home miner that answers the cgminer API like the real firmware.

One class, `SimMiner`, driven by a `ModelSpec` row (thermostat/miners/models.py) plus a small
per-model `SimProfile` of sim-only data (firmware strings, the order of the ``MM ID0`` tokens, PSU
voltages, fan and airflow figures). There are no per-model subclasses and no sockets or asyncio here:
`handle(request_bytes)` takes one raw request and returns the raw reply (with its trailing NUL), or
None for "close the connection without replying". Time comes from an injected ``time_fn`` returning
epoch seconds (virtual in tests and benchmarks, ``time.time`` behind the TCP server).

Behaviour modelled (sources: ../shared/reference/avalon-api.md §1, §3.2-§3.5, §8 and the real replies
in ../shared/reference/miner-samples/):

* States: ``In Idle`` (soft off / standby), ``In Init`` (booting the hash board, `boot_seconds`),
  ``In Work`` with calibration unfinished (``ADJ[0]`` and ``BAR[%]``, `calibration_seconds`) then
  ``ADJ[1]``, ``In Fault`` (only when injected). While the controller itself restarts (reboot, power
  loss) the API is unreachable for `offline_seconds` (the server resets connections, `handle` returns
  None).
* ``ascset|0,softoff,1:<ts>`` / ``softon,1:<ts>`` are schedules evaluated on the MINER's clock
  (time + clock skew); a past time acts at once. Replies I/118 ``ASC 0 set info: success softoff:<ts>``.
  With ``faults.softon_no_reply`` the softon is applied but the connection is closed without a reply
  (asic-rs notes this on the Q). Models without standby (Nano 3S) answer E/120 ``Unknown option``.
* Mode/level changes are refused with E/120 ``current mode N is caling Don't permit switch mode`` while
  ``ADJ[0]`` (during Init and calibration, which follow every wake and restart). Setting the current
  value is accepted. Out-of-range values get the firmware's texts. Changes in standby are stored and
  used at the next wake. A workmode change clamps WORKLEVEL into the new mode's range.
* Restart (``ascset|0,reboot,N``, `reboot()`, `power_loss()`, `power_on()` after `power_off()`: a smart
  plug): uptime restarts at 0, the unit passes through Init. Whether it comes back hashing after being in
  standby is the profile's ``resumes_mining_after_restart``: True on the Avalon Q (pyasic#350: it comes
  back in its last work mode even if it was in standby), False on the Mini 3 (undocumented; we assume the
  soft-off setting persists, so the fleet exercises both behaviours).
* Watts: the ladder's ``Level.wall_w`` in work (with a ±1 % deterministic wobble), ramping from
  ``standby_wall_w`` to half power during Init and from half to full power during calibration;
  ``standby_wall_w`` in Idle/Fault/controller boot; 0 with no mains. DC = wall × ``psu_efficiency``
  while the hash board is powered, else 0.
* Thermal model, first-order lags (constants below): chips approach
  ``inlet + dc_w × r_chip / airflow`` with ``TAU_CHIP_S``; outlet air approaches
  ``inlet + wall_w / (ρ·cp·airflow)`` with ``TAU_OUTLET_S``. ``r_chip`` is chosen per model so that
  the automatic fan holds the top level's TarT at ``fan_ref_pct`` with 25 °C inlet air. The automatic
  fan picks the duty that holds the level's TarT (clamped to 15-100 %); a fixed ``fan-spd`` lets the
  chips run hotter or cooler, but never above ``spec.chip_temp_limit_c``: an over-temperature guard
  (assumed, not documented) then speeds the fan up. Fans stop in Idle (FanR[0%] as on the Q standby
  sample).
* Hashrate: GHSspd = the level's nominal TH/s × 1000 when calibrated (ramping from half during
  calibration), 0.00 otherwise; GHSavg is the average over hashing time (it stays high in standby,
  like the real units); GHSmm is the nominal of the last work mode (also stays high).

* The API as the captures show it (issue 16): joined commands ``pools+estats+devs`` in the JSON form
  answer one object holding each command's whole reply list (cgminer API >= 3.1; a command with a
  parameter gets E/45 in its slot); ``check CMD`` (S/72 Exists/Access; Canaan allows everything, so
  Access follows Exists), ``coin`` (S/78), ``lockstats``; E/14 ``Invalid command`` carries no
  Description. ``ascset`` knows exactly the options of the model's own ``ascset|0,help`` list (an
  option not listed, such as ``led`` on the Q, is ``Unknown option``); LED ring (``ledset`` answers
  I/118 "led set ok" in day mode, ``ledmode``, ``nightlamp``), display, ``target-temp`` (until the next
  mode change), ``limittemp``, ``filter-clean``, ``solo-allowed``, ``time get`` act plausibly; the factory
  and tuning knobs ask for their value, then decline.
* Counters like the captures: MHS 1m/5m/15m decay exponentially toward the present rate (a Q 6,000 s
  after its soft off reads 1m 0, 5m < 1, 15m a thousandth of the average, as the real one); Diff1
  Work = hashed GH / 4.295 and shares at the pool difficulty of the profile; the Q's ``Last Share
  Time`` is cgminer uptime at the last share (frozen in standby), an epoch on the others. MPO is the
  profile's figure (the Q's DC rating: 1600 in Super while PS[6] reads 1670 at the wall).
* The Nano 3 (MM318 firmware): no SYSTEMSTATU/WORKMODE, Temp[] for case air, every ATA record,
  DNA[0000000000000000] with the unit id in HDNA, a PS[] with no watts in it (nano3-estats.txt).

Not modelled: pools (pool-changing commands are refused with E/45 and change nothing), thermal
shutdown, voltage/frequency tuning, the top-level `time` command of Canaan's table (no capture of its reply: E/14 here).
"""

from __future__ import annotations

import json
import math
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from thermostat.domain.spec import Level, ModelSpec
from thermostat.sim.events import BadRequest, EventDrivenSim, parse_request

# ---------------------------------------------------------------------------------------------
# Constants of the physical model (documented here, used below)

TAU_CHIP_S = 45.0  # chip temperature time constant (s)
TAU_OUTLET_S = 20.0  # outlet air temperature time constant (s)
AIR_RHO_CP = 1200.0  # volumetric heat capacity of air, J/(m³·K)
MIN_AIRFLOW_FRACTION = 0.15  # natural convection + chimney effect with fans stopped (fraction of max airflow)
INIT_POWER_FRACTION = 0.5  # share of the level's watts reached at the end of Init
WOBBLE = 0.01  # ±1 % deterministic variation of the work power (real PS[6] reads 808-839 W on a Mini 3)
PHYSICS_STEP_S = 5.0  # integration sub-step (s) while power ramps; a settled phase takes one exact exponential step
SETTLE_S = 600.0  # after this long in one phase the lags are settled: jump to the end
REF_INLET_C = 25.0  # inlet temperature at which `fan_ref_pct` holds TarT on the top level
CGMINER_DESC = "cgminer 4.11.1"
SHARE_AGE_S = 7.0  # a hashing miner's last share is this old (shares every few seconds at pool difficulty)
GH_PER_DIFF1 = 2**32 / 1e9  # GH of work per difficulty-1 share: Diff1 Work = hashed GH / 4.295 (Q devs sample)
SHARE_DIFF_FRACTION = 0.79  # accepted difficulty per share / pool difficulty (vardiff; Q 414101 / 524288)

# ---------------------------------------------------------------------------------------------
# Per-model simulation data (sim-only facts; the shared model facts are in ModelSpec)

# Placeholders in an MM layout: "FANS" -> Fan1..FanN, "ATA" -> ATA<workmode>, "BAR" (only while ADJ[0]),
# "CHIPS" -> PVT_T0 PVT_V0 MW0 (estats/stats only; on the Q they live in HBinfo), "LIMITEMP" (litestats only).

_MINI3_LAYOUT = (
    "HashStatus Ver LVer BVer Mcu0Ver FW DNA MEMFREE NETFAIL SYSTEMSTATU Elapsed BOOTBY LW MH DHW HW DH "
    "ITemp OTemp HBTemp TMax TAvg TarT LIMITEMP FANS FanR PS PCOMM_E "
    # the real sample is truncated here; the rest follows the Q/Nano 3S order
    "GHSspd DHspd GHSmm GHSavg WU Freq MGHS TA Core BIN PING SoftOFF ECHU ECMM PLL0 SF0 CHIPS CRC COMCRC "
    "ATA LcdOnoff WORKMODE WORKLEVEL MPO CALIALL ADJ BAR"
)
_NANO3S_LAYOUT = (
    "Ver LVer BVer FW LED LEDUser LcdOnoff LcdSwitch DNA MEMFREE PFCnt NETFAIL SYSTEMSTATU Elapsed BOOTBY "
    "LW MH DHW HW DH ITemp OTemp TMax TAvg TarT FANS FanR PS GHSspd DHspd GHSmm GHSavg WU Freq MGHS MTmax "
    "MTavg TA Core BIN PING SoftOFF ECHU ECMM PLL0 SF0 CHIPS CRC COMCRC ATA WORKMODE WORKLEVEL MPO CALIALL "
    "ADJ BAR"
)
# Nano 3 (MM318): no SYSTEMSTATU, no WORKMODE, Temp[] instead of ITemp[], every ATA record (nano3-estats.txt)
_NANO3_LAYOUT = (
    "HashStatus Ver HVer DNA HDNA PFCnt NETFAIL Elapsed LW MH DHW HW DH Temp OTemp TMax TAvg TarT FANS FanR Vo PS "
    "GHSspd DHspd GHSmm GHSavg WU Freq Led MGHS MTmax MTavg TA Core PING SoftOFF ECHU ECMM PLL0 SF0 CHIPS CRC "
    "ATA WORKLEVEL MPO ADJ"
)
_Q_LAYOUT = (
    "Ver LVer BVer HashMcu0Ver FanMcuVer CPU FW DNA STATE MEMFREE NETFAIL SSID RSSI NetDevType SYSTEMSTATU "
    "Elapsed BOOTBY LW MH DHW HW DH ITemp HBITemp HBOTemp TMax TAvg TarT FANS FanR SoftOffTime SoftOnTime "
    "Filter FanErr SoloAllowed PS PCOMM_E GHSspd DHspd GHSmm GHSavg WU Freq MGHS TA Core BIN PING SoftOFF "
    "ECHU ECMM PLL0 SF0 CRC COMCRC ATA LcdOnoff Activation WORKMODE WORKLEVEL MPO CALIALL ADJ BAR NonceMask"
)


@dataclass(frozen=True)
class SimProfile:
    firmware: str
    mm_layout: tuple[str, ...]
    static_tokens: dict[str, str]  # MM tokens with a fixed value
    version_extra: tuple[tuple[str, str], ...]  # VERSION keys after CGVERSION (before DNA/MAC)
    version_tail: tuple[tuple[str, str], ...]  # VERSION keys after MAC
    help_options: tuple[str, ...]
    ps_layout: str  # "dc": PS[0 rail hashV A DC setpoint wall]; "nano": PS[0 0 mV A 0 voltcmd wall]
    ctrl_rail: int  # PS[1], controller rail ×100 (≈1210, constant even in standby; 0 on the Nano layout)
    hash_v_top: float  # hash-board volts on the top level
    fan_rpm_max: int  # RPM at 100 % duty
    airflow_m3h_max: float  # all fans at 100 %
    fan_ref_pct: float  # automatic duty that holds the top level's TarT at 25 °C inlet
    resumes_mining_after_restart: bool
    hbinfo: bool = False  # per-chip arrays in a separate HBinfo key (Q) instead of inside the MM string
    mm_elapsed_lead_s: int = 13  # MM Elapsed runs a little ahead of cgminer's STATS Elapsed
    swtype: str = "MM319"
    version_fw_keys: tuple[str, ...] = ("LVERSION", "BVERSION", "CGVERSION")
    stats_id: str = "AVALON0"  # STATS[0] ID
    stats_tail: tuple[tuple[str, Any], ...] = ()  # STATS[0] keys after the MM string (Nano 3: MM Count, Nonce Mask)
    mpo_w: dict[str, int] = field(default_factory=dict)  # MPO[] per level when it is not the wall watts (Q: DC)
    # ATA records of every level, keyed by the index shown (Nano 3 prints all three); empty: only the current one
    ata_records: dict[int, str] = field(default_factory=dict)
    pool_diff: float = 131072.0  # pool share difficulty: sets how many shares the hashing earns
    share_time_counter: bool = False  # devs/pools `Last Share Time` is cgminer uptime at the share (Q), not an epoch
    dna_zero: bool = False  # the firmware reports DNA[0000000000000000] (Nano 3; HDNA is the unique one)


_COMMON_HELP_HEAD = ("help", "voltage", "fan-spd")

PROFILES: dict[str, SimProfile] = {
    "mini3": SimProfile(
        firmware="25011701_3f53b19",
        mm_layout=tuple(_MINI3_LAYOUT.split()),
        static_tokens={
            "HashStatus": "0",
            "Mcu0Ver": "Mini3_hb_v1.0",
            "FW": "Release",
            "Core": "A3197S",
            "BIN": "48",
            "PLL0": "1204 3112 2398 1877",
            "SF0": "459 480 501 522",
        },
        version_extra=(("MCUVERSION", "Mini3_hb_v1.0"),),
        version_tail=(),
        help_options=(
            *_COMMON_HELP_HEAD,
            "lcd",
            "hash-sn-read",
            "workmode",
            "worklevel",
            "work_mode_lvl",
            "reboot",
            "softon",
            "softoff",
            "smart-speed",
            "target-temp",
            "limittemp",
            "filter-clean",
            "facopts",
            "faclock",
            "frequency",
            "loop",
            "password",
            "qr_auth",
            "time",
        ),
        ps_layout="dc",
        ctrl_rail=1210,
        hash_v_top=20.83,
        fan_rpm_max=3000,
        airflow_m3h_max=100.0,
        fan_ref_pct=70.0,
        resumes_mining_after_restart=False,
    ),
    "nano3s": SimProfile(
        firmware="25021401_56abae7",
        mm_layout=tuple(_NANO3S_LAYOUT.split()),
        static_tokens={
            "FW": "Release",
            "LcdSwitch": "2",
            "PFCnt": "0",
            "Core": "A3197S",
            "BIN": "60",
            "PLL0": "499 254 423 648",
            "SF0": "432 450 471 492",
        },
        version_extra=(),
        version_tail=(("UPAPI", "2"),),
        help_options=(
            *_COMMON_HELP_HEAD,
            "ledmode",
            "ledset",
            "lcd",
            "nightlamp",
            "wallpaper",
            "hash-sn-read",
            "volt-adjust-switch",
            "workmode",
            "worklevel",
            "work_mode_lvl",
            "reboot",
            "filter-clean",
            "facopts",
            "faclock",
            "frequency",
            "loop",
            "password",
            "qr_auth",
        ),
        ps_layout="nano",
        ctrl_rail=0,
        hash_v_top=27.541,
        pool_diff=40000.0,  # Last Share Difficulty 40000 on a Nano 3S (lcd capture)
        fan_rpm_max=4600,
        airflow_m3h_max=30.0,
        fan_ref_pct=35.0,
        resumes_mining_after_restart=True,  # it has no standby at all
    ),
    "nano3": SimProfile(
        firmware="24071801_42c628d",
        mm_layout=tuple(_NANO3_LAYOUT.split()),
        static_tokens={
            "HashStatus": "1",
            "HVer": "24071801_b906c52_6223725",
            "PFCnt": "7",
            "Vo": "0",
            "Freq": "0.00",
            "Led": "1",
            "Core": "A3198S",
            "PLL0": "0 1151 229 390",
            "SF0": "100 441 461 481",
        },
        version_extra=(),
        version_tail=(),
        # assumed: the Nano 3S list without the display options (no `ascset|0,help` capture of a Nano 3)
        help_options=(
            *_COMMON_HELP_HEAD,
            "ledmode",
            "ledset",
            "nightlamp",
            "hash-sn-read",
            "workmode",
            "worklevel",
            "work_mode_lvl",
            "reboot",
            "frequency",
            "loop",
            "password",
            "qr_auth",
        ),
        ps_layout="nano3",
        ctrl_rail=0,
        hash_v_top=27.92,
        fan_rpm_max=7400,  # Fan1[3030] at FanR[41%]
        airflow_m3h_max=30.0,
        fan_ref_pct=48.0,
        resumes_mining_after_restart=True,  # it has no standby at all
        swtype="MM318_X2",
        version_fw_keys=("VERSION", "LVERSION", "BVERSION", "CGVERSION"),
        stats_id="AVANANO0",
        stats_tail=(("MM Count", 1), ("Nonce Mask", 1)),
        ata_records={0: "60-80-310-100:293:313:333", 1: "90-85-324-100:441:461:481", 2: "125-90-344-100:568:588:608"},
        pool_diff=40000.0,
        dna_zero=True,
    ),
    "q": SimProfile(
        firmware="25052801_14a19a2",
        mm_layout=tuple(_Q_LAYOUT.split()),
        static_tokens={
            "HashMcu0Ver": "Q_hb_v1.1",
            "FanMcuVer": "Q_fb_v1.2",
            "CPU": "K230",
            "FW": "Release",
            "SSID": "",
            "RSSI": "0",
            "NetDevType": "0",
            "FanErr": "0",
            "SoloAllowed": "1",
            "Activation": "0",
            "Core": "A3197S",
            "BIN": "36",
            "PLL0": "8843 5769 5098 4610",
            "SF0": "258 276 297 318",
            "NonceMask": "25",
        },
        version_extra=(("HBMCUVERSION", "Q_hb_v1.1"), ("FANMCUVERSION", "Q_fb_v1.2")),
        version_tail=(),
        # the live `ascset|0,help` of a Q (asic-rs ascset_help.json)
        help_options=(
            "help",
            "voltage",
            "fan-spd",
            "lcd",
            "hash-sn-read",
            "hash-sn-write",
            "volt-tuning",
            "workmode",
            "worklevel",
            "work_mode_lvl",
            "reboot",
            "softon",
            "softoff",
            "filter-clean",
            "facopts",
            "faclock",
            "activate",
            "solo-allowed",
            "frequency",
            "loop",
            "password",
            "qr_auth",
            "time",
        ),
        ps_layout="dc",
        ctrl_rail=1221,
        hash_v_top=24.21,
        fan_rpm_max=4000,
        airflow_m3h_max=330.0,
        fan_ref_pct=65.0,
        resumes_mining_after_restart=True,
        hbinfo=True,
        # MPO is the DC rating: 800 in Eco, 1600 in Super while PS[6] reads 1670 at the wall (asic-rs samples);
        # Standard is assumed at the same DC/wall ratio as Super (1300 W × 0.957).
        mpo_w={"eco": 800, "standard": 1245, "super": 1600},
        pool_diff=524288.0,
        share_time_counter=True,
    ),
}


def profile_for(spec: ModelSpec) -> SimProfile:
    """The sim profile of a model; an unknown row borrows the Mini 3 layout (it still answers)."""
    prof = PROFILES.get(spec.key, PROFILES["mini3"])
    if spec.stats_wrapped and not prof.hbinfo:
        prof = PROFILES["q"]
    return prof


# ---------------------------------------------------------------------------------------------
# Faults


@dataclass
class SimFaults:
    """Injected misbehaviour. The TCP server reads the socket-level ones (refuse, hang, delay);
    `SimMiner.handle` applies the reply-level ones (garbage, truncate, softon without reply)."""

    refuse_connections: bool = False  # the server resets every connection at once
    hang: bool = False  # the server accepts, reads the request and never answers
    reply_delay_s: float = 0.0  # the server waits this long (real seconds) before answering
    garbage: bool = False  # replies are bytes that are neither JSON nor cgminer text
    truncate: bool = False  # replies are cut in half and lose their NUL terminator
    softon_no_reply: bool = False  # softon is applied but the connection closes without a reply
    refuse_mode_changes: int = 0  # the next N mode/level changes answer "is caling"


class Phase(Enum):
    DEAD = "dead"  # no mains power
    BOOT = "boot"  # controller (Linux + cgminer) starting after a restart: API unreachable
    INIT = "init"
    WORK = "work"
    IDLE = "idle"
    FAULT = "fault"


_STATE_TEXT = {
    Phase.DEAD: "In Idle",  # never reported: unreachable
    Phase.BOOT: "In Init",  # never reported: unreachable
    Phase.INIT: "In Init",
    Phase.WORK: "In Work",
    Phase.IDLE: "In Idle",
    Phase.FAULT: "In Fault",
}
_STATE_NUM = {"In Init": 0, "In Work": 1, "In Idle": 2, "In Fault": 3}

_POOL_COMMANDS = frozenset(
    {"setpool", "addpool", "removepool", "switchpool", "enablepool", "disablepool", "poolpriority", "poolquota"}
)
_JOIN_DENIED = frozenset({"ascset", "check"})  # commands with parameters cannot be joined
_SOFT_TS = re.compile(r"^\s*\d+\s*:\s*(\d+)\s*$")
_INT = re.compile(r"^\s*-?\d+\s*$")


def _invalid_command() -> _Reply:
    return _Reply("E", 14, "Invalid command", description=False)


@dataclass
class _Reply:
    status: str  # S I W E F
    code: int
    msg: str
    sections: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    description: bool = True  # the firmware's E/14 "Invalid command" carries no Description


def _ok() -> _Reply:
    return _Reply("S", 119, "ASC 0 set OK")


def _info(text: str) -> _Reply:
    return _Reply("I", 118, f"ASC 0 set info: {text}")


def _failed(text: str) -> _Reply:
    return _Reply("E", 120, f"ASC 0 set failed: {text}")


class SimMiner(EventDrivenSim):
    """One simulated miner. See the module docstring for the behaviour."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        time_fn: Callable[[], float],
        boot_seconds: float = 90.0,
        calibration_seconds: float = 60.0,
        clock_skew_s: float = 0.0,
        start_state: str = "standby",
        start_level: str | None = None,
        seed: int = 0,
        dna: str | None = None,
        offline_seconds: float = 20.0,
        initial_uptime_s: float = 3600.0,
        inlet_temp_c: float = 20.0,
    ) -> None:
        if start_state not in ("standby", "mining"):
            raise ValueError(f"start_state must be 'standby' or 'mining', not {start_state!r}")
        self.spec = spec
        self.profile = profile_for(spec)
        self.time_fn = time_fn
        self.boot_seconds = float(boot_seconds)
        self.calibration_seconds = float(calibration_seconds)
        self.offline_seconds = float(offline_seconds)
        self.clock_skew_s = float(clock_skew_s)
        self.faults = SimFaults()
        self.commands_log: list[tuple[float, str]] = []
        self.wakes = 0
        self.mode_changes = 0
        self.reboots = 0

        rng = random.Random(seed)
        self._seed = seed
        self.dna = dna or f"02010000{zlib.crc32(f'{spec.key}-{seed}'.encode()) & 0xFFFFFFFF:08x}"
        self.mac = "e0e1a9" + f"{zlib.crc32(self.dna.encode()) & 0xFFFFFF:06x}"
        self._wobble_phase = rng.uniform(0.0, 2 * math.pi)
        n = max(1, spec.total_asics)
        self._chip_offsets = [rng.uniform(-5.0, 5.0) for _ in range(n)]
        self._chip_mv = [rng.randint(270, 306) for _ in range(n)]
        self._chip_mw = [rng.randint(280, 340) for _ in range(n)]

        level = spec.level(start_level) if start_level else spec.top_level
        self._level_cache: dict[tuple[int, int], Level] = {}
        self._mm_plan_cache: list[tuple[str, str]] | None = None
        self._builders_cache: dict[str, Callable[[], _Reply]] | None = None
        self._workmode = level.workmode
        self._worklevel = level.worklevel
        self._fan_set: int = -1  # -1 automatic
        self._lcd_on = True
        self._led_on = False
        self._led_mode = 0  # LED ring: 0 day (ledset applies), 1 dark (nightlamp)
        self._led_user = "0-100-100-5-0-255"  # effect-bright-colortemp-r-g-b (Nano 3S capture)
        self._night_lamp = "0"
        self._target_c: int | None = None  # `target-temp` override of TarT until the next mode change or restart
        self._limit_c = 30  # Limitemp[] (Mini 3 `limittemp`)
        self._solo_allowed = 1
        self._filter_from = 0.0  # `filter-clean` resets the filter counter
        self._inlet = float(inlet_temp_c)

        now = float(time_fn())
        self._t = now
        self._boot_at = now - initial_uptime_s  # controller start (uptime origin)
        self._bootby = "0x01.00000000"
        if start_state == "mining" or not spec.has_standby:
            self._soft_off = False
            self._phase = Phase.WORK
        else:
            self._soft_off = True
            self._phase = Phase.IDLE
        self._phase_since = now - initial_uptime_s / 2
        self._calibrated = True
        self._calibrating_since = now
        self._soft_off_at: int | None = None  # pending schedule, miner-clock epoch
        self._soft_on_at: int | None = None
        self._soft_off_shown = 0  # SoftOffTime / SoftOnTime (last schedules)
        self._soft_on_shown = 0
        self._soft_off_reason = 4 if self._soft_off else 0
        self._reboot_at: float | None = None  # true time
        self._power_back_at: float | None = None

        # hashing history: GHSavg = hashed / hashing time. Pre-loaded so GHSavg is realistic from the start.
        nominal = spec.nominal_ths.get(level.name, 0.0) * 1000.0
        self._hash_time = 3600.0
        self._hashed_gh = nominal * 0.93 * self._hash_time
        self._lw = 1_000_000 + rng.randint(0, 10_000_000)
        # MHS 1m/5m/15m: exponentially decaying averages of the hashrate, as cgminer keeps them
        start_ghs = nominal if self._phase == Phase.WORK else 0.0
        self._ghs_windows = {60.0: start_ghs, 300.0: start_ghs, 900.0: start_ghs}
        self._last_share_t = now - 20.0 if self._phase == Phase.WORK else self._phase_since

        # thermal state
        r_top = self._level_dc(spec.top_level)
        span = spec.top_level.chip_target_c - REF_INLET_C
        self._r_chip = span * (self.profile.fan_ref_pct / 100.0) / r_top if r_top > 0 else 0.05
        self._chip = self._chip_target_eq()
        self._outlet = self._outlet_eq()

    # ------------------------------------------------------------------ public properties


    @property
    def state(self) -> str:
        self.update()
        return _STATE_TEXT[self._phase]

    @property
    def phase(self) -> Phase:
        self.update()
        return self._phase

    @property
    def reachable(self) -> bool:
        """False while the controller restarts or has no power: the API does not answer."""
        self.update()
        return self._phase not in (Phase.DEAD, Phase.BOOT)

    @property
    def workmode(self) -> int:
        self.update()
        return self._workmode

    @property
    def worklevel(self) -> int:
        self.update()
        return self._worklevel

    @property
    def level(self) -> Level:
        self.update()
        return self._cur_level()

    def _cur_level(self) -> Level:
        key = (self._workmode, self._worklevel)
        cached = self._level_cache.get(key)
        if cached is not None:
            return cached
        lv = self.spec.level_for(self._workmode, self._worklevel)
        if lv is None:
            same = [x for x in self.spec.levels if x.workmode == self._workmode]
            lv = same[0] if same else self.spec.bottom_level
        self._level_cache[key] = lv
        return lv

    @property
    def level_name(self) -> str:
        self.update()
        return self._cur_level().name

    @property
    def calibrated(self) -> bool:
        """ADJ[1]: calibration of the current mode is finished (also true in standby)."""
        self.update()
        return self._is_calibrated()

    def _is_calibrated(self) -> bool:
        if self._phase == Phase.INIT:
            return False
        if self._phase == Phase.WORK:
            return self._calibrated
        return True

    @property
    def uptime_s(self) -> float:
        self.update()
        return max(0.0, self._t - self._boot_at)

    @property
    def wall_w(self) -> float:
        self.update()
        return self._wall_at(self._t)

    @property
    def dc_w(self) -> float:
        self.update()
        if self._phase not in (Phase.INIT, Phase.WORK):
            return 0.0
        return self.wall_w * self.spec.psu_efficiency

    @property
    def hashing(self) -> bool:
        self.update()
        return self._phase == Phase.WORK

    @property
    def ghs(self) -> float:
        """Real-time hashrate (GHSspd)."""
        self.update()
        return self._ghs_at(self._t)

    @property
    def fan_pct(self) -> int:
        self.update()
        return self._fan_pct()

    @property
    def chip_temp_c(self) -> float:
        self.update()
        return self._chip

    @property
    def outlet_temp_c(self) -> float:
        self.update()
        return self._outlet

    @property
    def inlet_temp_c(self) -> float:
        return self._inlet

    @property
    def soft_off(self) -> bool:
        """The firmware's standby setting (what a restart comes back to on models that keep it)."""
        self.update()
        return self._soft_off

    # ------------------------------------------------------------------ public control



    def reboot(self, delay_s: float = 0.0) -> None:
        """Restart the controller (like `ascset|0,reboot,N`)."""
        self.update()
        if delay_s <= 0:
            self._restart(power_loss=False)
        else:
            self._reboot_at = self._t + delay_s

    def power_loss(self, outage_s: float = 0.0) -> None:
        """Cut mains for `outage_s` seconds, then restart (see `SimProfile.resumes_mining_after_restart`)."""
        self.update()
        self._set_phase(Phase.DEAD)
        self._reboot_at = None
        self._power_back_at = self._t + max(0.0, outage_s)
        self.update()

    def power_off(self) -> None:
        """Mains cut until `power_on()` (a smart plug switched off): no answer, no watts."""
        self.update()
        self._set_phase(Phase.DEAD)
        self._reboot_at = None
        self._power_back_at = None

    def power_on(self) -> None:
        """Mains back (a smart plug switched on): the controller boots as after a power loss. No-op when powered."""
        self.update()
        if self._phase == Phase.DEAD:
            self._restart(power_loss=True)
        self.update()

    def refuse_next_mode_changes(self, n: int) -> None:
        """The next `n` mode/level changes are answered "current mode N is caling ..."."""
        self.faults.refuse_mode_changes = max(0, int(n))

    def set_clock_skew(self, seconds: float) -> None:
        self.update()
        self.clock_skew_s = float(seconds)

    def enter_fault(self) -> None:
        """Report `In Fault` (no hashing, standby watts) until the next restart."""
        self.update()
        self._set_phase(Phase.FAULT)

    # ------------------------------------------------------------------ the API

    def handle(self, request: bytes) -> bytes | None:
        """Answer one raw request (as read from the socket). None: close without replying."""
        self.update()
        text = request.decode("utf-8", errors="replace").strip().strip("\x00").strip()
        self.commands_log.append((self._t, text))
        if self._phase in (Phase.DEAD, Phase.BOOT):  # unreachable (see `reachable`), already up to date
            return None
        try:
            as_json, command, param = parse_request(text)
        except BadRequest:
            return self._finish(_Reply("E", 23, "Invalid JSON"), True)
        if as_json and "+" in command:
            return self._encode(json.dumps(self._joined(command), separators=(",", ":")))
        reply = self._dispatch(command, param)
        self.update()  # a schedule in the past acts at once
        if reply is None:
            return None
        return self._finish(reply, as_json)

    # ------------------------------------------------------------------ dispatch

    def _builders(self) -> dict[str, Callable[[], _Reply]]:
        """The read commands of Canaan's command table that take no parameter (the joinable ones)."""
        if self._builders_cache is None:
            self._builders_cache = self._make_builders()
        return self._builders_cache

    def _make_builders(self) -> dict[str, Callable[[], _Reply]]:
        return {
            "version": self._r_version,
            "summary": self._r_summary,
            "stats": lambda: self._r_stats("stats"),
            "estats": lambda: self._r_stats("estats"),
            "litestats": lambda: self._r_stats("litestats"),
            "pools": self._r_pools,
            "devs": self._r_devs,
            "edevs": self._r_devs,
            "config": self._r_config,
            "devdetails": self._r_devdetails,
            "lcd": self._r_lcd,
            "coin": self._r_coin,
            "lockstats": lambda: _Reply("W", 124, "Lock stats not enabled"),
        }

    def _dispatch(self, command: str, param: str | None) -> _Reply | None:
        builders = self._builders()
        if command in builders:
            return builders[command]()
        if command == "check":
            return self._r_check(param)
        if command == "ascset":
            return self._ascset(param or "")
        if command in _POOL_COMMANDS:
            # Deliberate sim difference: pools are never changed (the real firmware would accept).
            return _Reply("E", 45, f"Access denied to '{command}' command")
        return _invalid_command()

    def _joined(self, command: str) -> dict[str, Any]:
        """`a+b+c` in JSON (cgminer API >= 3.1): one object holding each command's whole reply in a list.

        Duplicates are answered once and blank pieces ignored; a command that is not a plain report (ascset,
        check, pool commands) gets an E/45 access-denied reply in its slot, an unknown one E/14."""
        builders = self._builders()
        out: dict[str, Any] = {}
        for piece in command.split("+"):
            name = piece.strip()
            if not name or name in out:
                continue
            if name in builders:
                reply = builders[name]()
            elif name in _JOIN_DENIED or name in _POOL_COMMANDS:
                reply = _Reply("E", 45, f"Access denied to '{name}' command")
            else:
                reply = _invalid_command()
            out[name] = [self._json_object(reply)]
        out["id"] = 1
        return out

    def _r_check(self, param: str | None) -> _Reply:
        if param is None or not param.strip():
            return _Reply("E", 71, "Missing check cmd")
        name = param.strip()
        known = name in self._builders() or name in _JOIN_DENIED or name in _POOL_COMMANDS
        # Canaan firmware allows every command to everyone (no api-allow groups), so Access follows Exists.
        flag = "Y" if known else "N"
        return _Reply("S", 72, "Check command", [("CHECK", [{"Exists": flag, "Access": flag}])])

    def _r_coin(self) -> _Reply:
        item: dict[str, Any] = {
            "Hash Method": "sha256",
            "Current Block Time": round(self.uptime_s * 0.98 + 0.178978, 6),
            "Current Block Hash": f"{zlib.crc32(str(int(self.now) // 600).encode()):064x}",
            "LP": True,
            "Network Difficulty": 126271255279306.98,
        }
        return _Reply("S", 78, "CGMiner coin", [("COIN", [item])])

    def _ascset(self, param: str) -> _Reply | None:
        parts = param.split(",", 2)
        if len(parts) < 2 or not parts[1].strip():
            return _Reply("E", 120, "ASC 0 set failed: missing option")
        if parts[0].strip() != "0":
            return _Reply("E", 107, f"Invalid ASC id {parts[0].strip()} - range is 0 - 0")
        opt = parts[1].strip()
        setting = parts[2].strip() if len(parts) > 2 else None
        # Only what the model's own `ascset|0,help` lists exists on it; anything else is "Unknown option".
        unavailable = (opt in ("softoff", "softon") and not self.spec.has_standby) or (
            opt == "lcd" and not self.spec.has_lcd
        )
        if opt not in self.profile.help_options or unavailable:
            return _failed(f"Unknown option: {opt}")
        handler = self._ascset_handlers().get(opt)
        if handler is None:
            # Factory and expert knobs (voltage/frequency tuning, serial numbers, passwords, activation):
            # the firmware checks for a value first; the simulator then declines rather than pretend.
            if setting is None or not setting.strip():
                return _failed(f"missing {opt} setting")
            return _failed(f"{opt} is not available on this simulated miner")
        return handler(setting)

    def _ascset_handlers(self) -> dict[str, Callable[[str | None], _Reply | None]]:
        return {
            "help": lambda _s: _info("|".join(self.profile.help_options) + "|"),
            "workmode": self._as_workmode,
            "worklevel": self._as_worklevel,
            "work_mode_lvl": self._as_work_mode_lvl,
            "fan-spd": self._as_fan,
            "reboot": self._as_reboot,
            "voltage": self._as_voltage,
            "softoff": lambda s: self._as_soft(s, on=False),
            "softon": lambda s: self._as_soft(s, on=True),
            "led": self._as_led,
            "lcd": self._as_lcd,
            "ledmode": self._as_ledmode,
            "ledset": self._as_ledset,
            "nightlamp": self._as_nightlamp,
            "target-temp": self._as_target_temp,
            "limittemp": self._as_limittemp,
            "filter-clean": self._as_filter_clean,
            "solo-allowed": self._as_solo_allowed,
            "smart-speed": lambda s: self._as_flag("smart-speed", s),
            "time": self._as_time,
        }

    # -- workmode / worklevel

    def _mode_change(self, mode: int, level: int) -> _Reply:
        """Checks shared by the three setters, after range checks."""
        if mode == self._workmode and level == self._worklevel:
            return _ok()
        if not self._is_calibrated() or self.faults.refuse_mode_changes > 0:
            if self._is_calibrated():
                self.faults.refuse_mode_changes -= 1
            return _failed(f"current mode {self._workmode} is caling Don't permit switch mode")
        self._workmode = mode
        self._worklevel = level
        self._target_c = None  # target-temp resets on a work-mode change
        self.mode_changes += 1
        return _ok()

    def _check_mode(self, mode: int) -> _Reply | None:
        if mode < 0 or mode > self.spec.max_workmode:
            return _failed(f"error:1 not support set workmode max_mode[{self.spec.max_workmode}]")
        return None

    def _check_level(self, mode: int, level: int) -> _Reply | None:
        lo, hi = self.spec.worklevel_range.get(mode, (0, 0))
        if level < lo or level > hi:
            return _failed(f"worklevel unknown argument level range:{lo} ~ {hi}")
        return None

    def _clamped_level(self, mode: int) -> int:
        lo, hi = self.spec.worklevel_range.get(mode, (0, 0))
        return min(max(self._worklevel, lo), hi)

    @staticmethod
    def _split_setting(setting: str | None) -> tuple[str, list[str]]:
        if setting is None:
            return "", []
        bits = [b.strip() for b in setting.split(",")]
        return bits[0].lower(), bits[1:]

    def _as_workmode(self, setting: str | None) -> _Reply:
        verb, args = self._split_setting(setting)
        if verb == "get":
            return _info(f"workmode {self._workmode}")
        if verb != "set":
            return _failed("missing workmode setting" if not verb else "workmode unknown argument")
        if len(args) != 1 or not _INT.match(args[0]):
            return _failed("missing workmode setting")
        mode = int(args[0])
        return self._check_mode(mode) or self._mode_change(mode, self._clamped_level(mode))

    def _as_worklevel(self, setting: str | None) -> _Reply:
        verb, args = self._split_setting(setting)
        if verb == "get":
            return _info(f"worklevel {self._worklevel}")
        if verb != "set":
            return _failed("missing worklevel setting" if not verb else "worklevel unknown argument")
        if len(args) != 1 or not _INT.match(args[0]):
            return _failed("missing worklevel setting")
        level = int(args[0])
        return self._check_level(self._workmode, level) or self._mode_change(self._workmode, level)

    def _as_work_mode_lvl(self, setting: str | None) -> _Reply:
        verb, args = self._split_setting(setting)
        if verb == "get":
            return _info(f"workmode {self._workmode} worklevel {self._worklevel}")
        if verb != "set":
            return _failed("missing work_mode_lvl setting" if not verb else "work_mode_lvl unknown argument")
        if len(args) != 2 or not all(_INT.match(a) for a in args):
            return _failed("missing work_mode_lvl setting")
        mode, level = int(args[0]), int(args[1])
        return self._check_mode(mode) or self._check_level(mode, level) or self._mode_change(mode, level)

    # -- other options

    def _as_fan(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _failed("missing fan-spd setting")
        if _INT.match(setting):
            value = int(setting)
            if value == -1 or self.spec.fan_min_pct <= value <= self.spec.fan_max_pct:
                self._fan_set = value
                return _ok()
        return _failed("invalid fan value, valid range 15-100 for stable pwm,-1 for auto adjust")

    def _as_soft(self, setting: str | None, *, on: bool) -> _Reply | None:
        name = "softon" if on else "softoff"
        if setting is None or not setting.strip():
            return _failed(f"missing {name} setting")
        m = _SOFT_TS.match(setting)
        if not m:
            return _failed(f"{name} unknown argument")
        ts = int(m.group(1))
        if on:
            self._soft_on_at = ts
            self._soft_on_shown = ts
            if self.faults.softon_no_reply:
                return None
        else:
            self._soft_off_at = ts
            self._soft_off_shown = ts
        return _info(f"success {name}:{ts}")

    def _as_reboot(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _failed("missing reboot setting")
        if not _INT.match(setting) or not 0 <= int(setting) <= 300:
            return _failed("reboot unknown argument, range 0-300")
        self._reboot_at = self._t + int(setting)
        return _ok()

    def _as_led(self, setting: str | None) -> _Reply:
        if setting is None:
            return _failed("missing led setting")
        value = setting.strip()
        if value == "1-255":
            return _info(f"LED[{int(self._led_on)}]")
        if value in ("1-1", "1-0"):
            self._led_on = value == "1-1"
            return _ok()
        return _failed("led unknown argument")

    def _as_lcd(self, setting: str | None) -> _Reply:
        if setting is None:
            return _failed("missing lcd setting")
        value = setting.strip()
        if value in ("0:0", "0:1"):
            self._lcd_on = value == "0:1"
            return _ok()
        return _failed("lcd unknown argument")

    def _as_voltage(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _info(f"PS[{self._ps_string()}]")
        return _failed("voltage is not available on this simulated miner")

    def _as_ledmode(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _failed("missing ledmode setting")
        if setting.strip() not in ("0", "1"):
            return _failed("ledmode unknown argument, 0 day 1 dark")
        self._led_mode = int(setting)
        return _ok()

    def _as_ledset(self, setting: str | None) -> _Reply:
        """`effect-bright-colortemp-r-g-b`: effects 0 off, 1 on, 2 flash, 3 breath, 4 loop; day mode only."""
        if setting is None or not setting.strip():
            return _failed("missing ledset setting")
        bits = setting.strip().split("-")
        limits = (4, 100, 100, 255, 255, 255)
        if len(bits) != 6 or not all(b.isdigit() and int(b) <= hi for b, hi in zip(bits, limits, strict=True)):
            return _failed("ledset unknown argument, effect-bright-colortemp-r-g-b")
        if self._led_mode != 0:
            return _failed("led set failed, not in day mode")
        self._led_user = "-".join(str(int(b)) for b in bits)
        return _info("led set ok")

    def _as_nightlamp(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _failed("missing nightlamp setting")
        if not _INT.match(setting):
            return _failed("nightlamp unknown argument")
        self._night_lamp = setting.strip()
        return _ok()

    def _as_target_temp(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _failed("missing target-temp setting")
        if not _INT.match(setting) or not 50 <= int(setting) <= 90:
            return _failed("target-temp unknown argument, range 50-90")
        self._target_c = int(setting)
        return _ok()

    def _as_limittemp(self, setting: str | None) -> _Reply:
        if setting is None or not setting.strip():
            return _failed("missing limittemp setting")
        if not _INT.match(setting) or not 20 <= int(setting) <= 50:
            return _failed("limittemp unknown argument, range 20-50")
        self._limit_c = int(setting)
        return _ok()

    def _as_filter_clean(self, setting: str | None) -> _Reply:
        if setting is None or setting.strip() != "1":
            return _failed("missing filter-clean setting" if not setting else "filter-clean unknown argument")
        self._filter_from = self.uptime_s
        return _ok()

    def _as_solo_allowed(self, setting: str | None) -> _Reply:
        if setting is None or setting.strip() not in ("0", "1"):
            return _failed("missing solo-allowed setting" if not setting else "solo-allowed unknown argument")
        self._solo_allowed = int(setting)
        return _ok()

    @staticmethod
    def _as_flag(name: str, setting: str | None) -> _Reply:
        if setting is None or setting.strip() not in ("0", "1"):
            return _failed(f"missing {name} setting" if not setting else f"{name} unknown argument")
        return _ok()

    def _as_time(self, setting: str | None) -> _Reply:
        verb, _args = self._split_setting(setting)
        if verb == "get":
            return _info(f"time {int(self.now)}")
        if verb == "set":
            return _failed("time is not available on this simulated miner")  # the clock skew is a test knob
        return _failed("missing time setting")

    # ------------------------------------------------------------------ events and physics

    def _next_event(self) -> tuple[float, Callable[[], None]] | None:
        p = self._phase
        if (
            (p in (Phase.IDLE, Phase.FAULT) or (p == Phase.WORK and self._calibrated))
            and self._reboot_at is None
            and self._soft_off_at is None
            and self._soft_on_at is None
        ):
            return None  # settled, nothing scheduled: the common case, answered without building the list
        cands: list[tuple[float, Callable[[], None]]] = []
        if p == Phase.DEAD and self._power_back_at is not None:
            cands.append((self._power_back_at, lambda: self._restart(power_loss=True)))
        if p == Phase.BOOT:
            cands.append((self._phase_since + self.offline_seconds, self._boot_done))
        if p == Phase.INIT:
            cands.append((self._phase_since + self.boot_seconds, self._init_done))
        if p == Phase.WORK and not self._calibrated:
            cands.append((self._calibrating_since + self.calibration_seconds, self._calibration_done))
        if p not in (Phase.DEAD,):
            if self._reboot_at is not None:
                cands.append((self._reboot_at, lambda: self._restart(power_loss=False)))
            if self._soft_off_at is not None:
                cands.append((self._soft_off_at - self.clock_skew_s, self._apply_soft_off))
            if self._soft_on_at is not None:
                cands.append((self._soft_on_at - self.clock_skew_s, self._apply_soft_on))
        if not cands:
            return None
        return min(cands, key=lambda c: c[0])

    def _set_phase(self, phase: Phase) -> None:
        self._phase = phase
        self._phase_since = self._t

    def _restart(self, *, power_loss: bool) -> None:
        self._reboot_at = None
        self._power_back_at = None
        self._boot_at = self._t
        self._bootby = "0x01.00000000" if power_loss else "0x02.00000000"
        self._target_c = None
        self.reboots += 1
        if self.profile.resumes_mining_after_restart:
            self._soft_off = False
            self._soft_off_reason = 0
        self._set_phase(Phase.BOOT)

    def _boot_done(self) -> None:
        self._set_phase(Phase.INIT)

    def _init_done(self) -> None:
        if self._soft_off:
            self._set_phase(Phase.IDLE)
        else:
            self._set_phase(Phase.WORK)
            self._calibrated = False
            self._calibrating_since = self._t

    def _calibration_done(self) -> None:
        self._calibrated = True

    def _apply_soft_off(self) -> None:
        self._soft_off_at = None
        self._soft_off = True
        self._soft_off_reason = 4
        if self._phase in (Phase.INIT, Phase.WORK):
            self._set_phase(Phase.IDLE)

    def _apply_soft_on(self) -> None:
        self._soft_on_at = None
        self._soft_off = False
        self._soft_off_reason = 0
        if self._phase == Phase.IDLE:
            self.wakes += 1
            self._set_phase(Phase.INIT)

    def _level_dc(self, level: Level) -> float:
        return level.wall_w * self.spec.psu_efficiency

    def _wall_at(self, t: float) -> float:
        p = self._phase
        if p == Phase.DEAD:
            return 0.0
        if p in (Phase.BOOT, Phase.IDLE, Phase.FAULT):
            return self.spec.standby_wall_w
        full = self._cur_level().wall_w
        sb = self.spec.standby_wall_w
        if p == Phase.INIT:
            frac = min(1.0, max(0.0, (t - self._phase_since) / max(self.boot_seconds, 1e-9)))
            return sb + (full * INIT_POWER_FRACTION - sb) * frac
        wobble = 1.0 + WOBBLE * math.sin(2 * math.pi * t / 97.0 + self._wobble_phase)
        return full * self._work_fraction(t) * wobble

    def _work_fraction(self, t: float) -> float:
        if self._phase != Phase.WORK:
            return 0.0
        if self._calibrated:
            return 1.0
        frac = min(1.0, max(0.0, (t - self._calibrating_since) / max(self.calibration_seconds, 1e-9)))
        return INIT_POWER_FRACTION + (1.0 - INIT_POWER_FRACTION) * frac

    def _ghs_at(self, t: float) -> float:
        if self._phase != Phase.WORK:
            return 0.0
        nominal = self.spec.nominal_ths.get(self._cur_level().name, 0.0) * 1000.0
        wobble = 1.0 + 0.015 * math.sin(2 * math.pi * t / 61.0 + self._wobble_phase)
        return nominal * self._work_fraction(t) * wobble

    def _fan_pct(self) -> int:
        if self._phase not in (Phase.INIT, Phase.WORK):
            return 0
        return self._fan_pct_at(self._wall_at(self._t) * self.spec.psu_efficiency)

    def _fan_pct_at(self, dc: float) -> int:
        guard = self._fan_needed(self.spec.chip_temp_limit_c, dc)
        if self._fan_set != -1:
            return max(self._fan_set, guard)  # over-temperature guard (assumed) overrides a low fixed fan
        return max(guard, self._fan_needed(self._chip_target_c(), dc))

    def _chip_target_c(self) -> int:
        """TarT: the level's chip target, or the `target-temp` override."""
        return self._target_c if self._target_c is not None else self._cur_level().chip_target_c

    def _fan_needed(self, chip_c: float, dc: float) -> int:
        """Duty that holds the chips at `chip_c` at `dc` watts and the present inlet (clamped 15-100 %)."""
        headroom = chip_c - self._inlet
        if headroom <= 1.0:
            return self.spec.fan_max_pct
        pct = 100.0 * dc * self._r_chip / headroom
        return round(min(self.spec.fan_max_pct, max(self.spec.fan_min_pct, pct)))

    def _thermal_eq(self) -> tuple[float, float]:
        """Where the chips and the outlet air are heading at the present power, fan and inlet."""
        wall = self._wall_at(self._t)
        if self._phase in (Phase.INIT, Phase.WORK):
            dc = wall * self.spec.psu_efficiency
            airflow = max(MIN_AIRFLOW_FRACTION, self._fan_pct_at(dc) / 100.0)
        else:
            dc, airflow = 0.0, MIN_AIRFLOW_FRACTION
        flow_m3s = self.profile.airflow_m3h_max / 3600.0 * airflow
        return self._inlet + dc * self._r_chip / airflow, self._inlet + wall / (AIR_RHO_CP * flow_m3s)

    def _chip_target_eq(self) -> float:
        return self._thermal_eq()[0]

    def _outlet_eq(self) -> float:
        return self._thermal_eq()[1]

    def _advance(self, t_end: float) -> None:
        """Integrate the lags and the hashing counters from self._t to t_end within one phase."""
        dt_total = t_end - self._t
        if dt_total <= 0:
            return
        steady = self._phase in (Phase.IDLE, Phase.DEAD, Phase.FAULT, Phase.BOOT) or (
            self._phase == Phase.WORK and self._calibrated
        )
        if dt_total > SETTLE_S and steady:
            # constant targets (apart from the wobble): integrate the counters, then jump to steady state
            ghs_mean = self._ghs_at(t_end)
            if self._phase == Phase.WORK:
                self._hashed_gh += ghs_mean * dt_total
                self._hash_time += dt_total
                self._lw += int(dt_total * 230)
            self._track_hashing(ghs_mean, dt_total, t_end)
            self._t = t_end
            self._chip, self._outlet = self._thermal_eq()
            return
        # Constant targets: one exact exponential step is as good as many small ones (the ±1 % wobble aside).
        max_step = dt_total if steady else PHYSICS_STEP_S
        while self._t < t_end:
            step = min(max_step, t_end - self._t)
            mid = self._t + step / 2
            ghs = self._ghs_at(mid)
            if self._phase == Phase.WORK:
                self._hashed_gh += ghs * step
                self._hash_time += step
                self._lw += int(step * 230)
            self._track_hashing(ghs, step, self._t + step)
            self._t += step
            chip_eq, out_eq = self._thermal_eq()
            self._chip += (chip_eq - self._chip) * (1.0 - math.exp(-step / TAU_CHIP_S))
            self._outlet += (out_eq - self._outlet) * (1.0 - math.exp(-step / TAU_OUTLET_S))

    def _track_hashing(self, ghs: float, dt: float, t_end: float) -> None:
        """The MHS windows decay toward `ghs` over `dt`; a hashing miner finds a share every few seconds."""
        windows = self._ghs_windows
        for tau, value in windows.items():
            if value != ghs:  # a window already at `ghs` stays there exactly (a miner long in standby: 0)
                windows[tau] = ghs + (value - ghs) * math.exp(-dt / tau)
        if ghs > 0:
            self._last_share_t = t_end - SHARE_AGE_S

    # ------------------------------------------------------------------ reply building

    def _finish(self, reply: _Reply, as_json: bool) -> bytes:
        return self._encode(self._render_json(reply) if as_json else self._render_text(reply))

    def _encode(self, body: str) -> bytes:
        data = body.encode()
        if self.faults.garbage:
            return b"\x8b\x1f\xff{STATUS=?" + bytes(range(1, 24)) + b"}}]|\x00"
        if self.faults.truncate:
            return data[: max(1, len(data) // 2)]
        return data + b"\x00"

    def _status(self, reply: _Reply) -> dict[str, Any]:
        status: dict[str, Any] = {
            "STATUS": reply.status, "When": int(self._now()), "Code": reply.code, "Msg": reply.msg
        }
        if reply.description:
            status["Description"] = CGMINER_DESC
        return status

    def _json_object(self, reply: _Reply) -> dict[str, Any]:
        obj: dict[str, Any] = {"STATUS": [self._status(reply)]}
        for name, items in reply.sections:
            obj[name] = items
        obj["id"] = 1
        return obj

    def _render_json(self, reply: _Reply) -> str:
        return json.dumps(self._json_object(reply), separators=(",", ":"))

    @staticmethod
    def _text_value(key: str, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            if key in ("Wait", "Max", "Min") or (
                key.startswith("Pool ") and key != "Pool Rejected%" and key != ("Pool Stale%")
            ):
                return f"{value:.6f}"
            return f"{value:.2f}"
        return str(value)

    def _render_text(self, reply: _Reply) -> str:
        st = self._status(reply)
        out = [",".join(f"{k}={v}" for k, v in st.items())]
        for name, items in reply.sections:
            for item in items:
                first = next(iter(item), None)
                head = "" if first in ("STATS", "POOL", "ASC", "DEVDETAILS") else f"{name},"
                out.append(head + ",".join(f"{k}={self._text_value(k, v)}" for k, v in item.items()))
        return "|".join(out) + "|"

    # -- sections

    def _r_version(self) -> _Reply:
        fw = self.profile.firmware
        item: dict[str, Any] = {
            "CGMiner": "4.11.1",
            "API": "3.7",
            "PROD": self.spec.version_prod,
            "MODEL": self.spec.version_model,
            "HWTYPE": self.spec.hwtype,
            "SWTYPE": self.profile.swtype,
        }
        item.update((key, fw) for key in self.profile.version_fw_keys)
        item.update(self.profile.version_extra)
        item["DNA"] = self.dna
        item["MAC"] = self.mac
        item.update(self.profile.version_tail)
        return _Reply("S", 22, "CGMiner versions", [("VERSION", [item])])

    def _mhs(self) -> dict[str, float]:
        """MHS av (since start), 5s (now) and the decaying 1m/5m/15m windows, in MH/s."""
        avg = self._hashed_gh / self._hash_time * 1000.0 if self._hash_time > 0 else 0.0
        w = self._ghs_windows
        return {
            "MHS av": round(avg, 2),
            "MHS 5s": round(self._ghs_at(self._t) * 1000.0, 2),
            "MHS 1m": round(w[60.0] * 1000.0, 2),
            "MHS 5m": round(w[300.0] * 1000.0, 2),
            "MHS 15m": round(w[900.0] * 1000.0, 2),
        }

    def _shares(self) -> dict[str, Any]:
        """Share counters from the work done: Diff1 Work = hashed GH / 4.295, shares at the pool difficulty."""
        diff1 = int(self._hashed_gh / GH_PER_DIFF1)
        share_diff = self.profile.pool_diff * SHARE_DIFF_FRACTION
        acc = int(diff1 / share_diff)
        rej = acc // 445
        return {
            "Accepted": acc,
            "Rejected": rej,
            "Diff1": diff1,
            "Difficulty Accepted": float(round(acc * share_diff)),
            "Difficulty Rejected": float(rej * self.profile.pool_diff * 0.75),
            "Last Share Difficulty": self.profile.pool_diff,
        }

    def _last_share_time(self) -> int:
        """`Last Share Time`: cgminer uptime at the last share on the Q (a small counter), else an epoch."""
        if self.profile.share_time_counter:
            return max(0, int(self._last_share_t - self._boot_at) - self.profile.mm_elapsed_lead_s)
        return int(self._last_share_t + self.clock_skew_s)

    def _last_valid_work(self) -> int:
        return int(self._last_share_t + self.clock_skew_s + SHARE_AGE_S - 2.0)

    def _r_summary(self) -> _Reply:
        mhs = self._mhs()
        sh = self._shares()
        elapsed = self._cg_elapsed()
        item: dict[str, Any] = {
            "Elapsed": elapsed,
            **mhs,
            "Found Blocks": 0,
            "Getworks": elapsed // 56,
            "Accepted": sh["Accepted"],
            "Rejected": sh["Rejected"],
            "Hardware Errors": 0,
            "Utility": round(sh["Accepted"] / max(1, elapsed) * 60, 2),
            "Discarded": 0,
            "Stale": 0,
            "Get Failures": 0,
            "Local Work": self._lw // 88,
            "Remote Failures": 0,
            "Network Blocks": elapsed // 600,
            "Total MH": round(self._hashed_gh * 1000.0, 1),
            "Work Utility": round(sh["Diff1"] / max(1, elapsed) * 60, 2),
            "Difficulty Accepted": sh["Difficulty Accepted"],
            "Difficulty Rejected": sh["Difficulty Rejected"],
            "Difficulty Stale": 0.0,
            "Best Share": 354914572,
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.2007,
            "Pool Rejected%": 0.2129,
            "Pool Stale%": 0.0,
            "Last getwork": 0,
        }
        return _Reply("S", 11, "Summary", [("SUMMARY", [item])])

    def _r_devs(self) -> _Reply:
        mhs = self._mhs()
        sh = self._shares()
        item: dict[str, Any] = {
            "ASC": 0,
            "Name": "AVALON",
            "ID": 0,
            "Enabled": "Y",
            "Status": "Alive",
            "Temperature": 0.0,
            **mhs,
            "Accepted": sh["Accepted"],
            "Rejected": sh["Rejected"],
            "Hardware Errors": 0,
            "Utility": 1.4,
            "Last Share Pool": 0,
            "Last Share Time": self._last_share_time(),
            "Total MH": round(self._hashed_gh * 1000, 1),
            "Diff1 Work": sh["Diff1"],
            "Difficulty Accepted": sh["Difficulty Accepted"],
            "Difficulty Rejected": sh["Difficulty Rejected"],
            "Last Share Difficulty": sh["Last Share Difficulty"],
            "Last Valid Work": self._last_valid_work(),
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.2007,
            "Device Elapsed": int(self._uptime()),
        }
        return _Reply("S", 9, "1 ASC(s)", [("DEVS", [item])])

    def _r_pools(self) -> _Reply:
        sh = self._shares()
        item: dict[str, Any] = {
            "POOL": 0,
            "URL": "stratum+tcp://pool.example.invalid:3333",
            "Status": "Alive",
            "Priority": 0,
            "Quota": 1,
            "Long Poll": "N",
            "Getworks": int(self._uptime()) // 56,
            "Accepted": sh["Accepted"],
            "Rejected": sh["Rejected"],
            "Works": self._lw // 170,
            "Discarded": 0,
            "Stale": 0,
            "Get Failures": 0,
            "Remote Failures": 0,
            "User": f"sim.{self.spec.key}",
            "Password": "x",
            "Last Share Time": self._last_share_time(),
            "Diff1 Shares": sh["Diff1"],
            "Proxy Type": "",
            "Proxy": "",
            "Difficulty Accepted": sh["Difficulty Accepted"],
            "Difficulty Rejected": sh["Difficulty Rejected"],
            "Difficulty Stale": 0.0,
            "Last Share Difficulty": sh["Last Share Difficulty"],
            "Work Difficulty": sh["Last Share Difficulty"],
            "Has Vmask": True,
            "Has Stratum": True,
            "Stratum Active": True,
            "Stratum URL": "stratum+tcp://pool.example.invalid:3333",
            "Stratum Difficulty": sh["Last Share Difficulty"],
            "Has GBT": False,
            "Best Share": 354914572,
            "Pool Rejected%": 0.2129,
            "Pool Stale%": 0.0,
            "Bad Work": 0,
            "Current Block Height": 907089,
            "Current Block Version": 536870912,
        }
        return _Reply("S", 7, "1 Pool(s)", [("POOLS", [item])])

    def _r_config(self) -> _Reply:
        item: dict[str, Any] = {
            "ASC Count": 1,
            "PGA Count": 0,
            "Pool Count": 1,
            "Strategy": "Failover",
            "Log Interval": 5,
            "Device Code": "AVALON",
            "OS": "Linux",
            "Hotplug": "None",
        }
        return _Reply("S", 33, "CGMiner config", [("CONFIG", [item])])

    def _r_devdetails(self) -> _Reply:
        item: dict[str, Any] = {
            "DEVDETAILS": 0,
            "Name": "AVALON",
            "ID": 0,
            "Driver": "avalon",
            "Kernel": "",
            "Model": "",
            "Device Path": "",
        }
        return _Reply("S", 69, "Device Details", [("DEVDETAILS", [item])])

    def _r_lcd(self) -> _Reply:
        mhs = self._mhs()
        item: dict[str, Any] = {
            "Elapsed": self._cg_elapsed(),
            "GHS av": round(mhs["MHS av"] / 1000, 2),
            "GHS 5m": round(mhs["MHS 5m"] / 1000, 2),
            "GHS 5s": round(mhs["MHS 5s"] / 1000, 2),
            "Temperature": 0.0,
            "Last Share Difficulty": self.profile.pool_diff,
            "Last Share Time": int(self._last_share_t + self.clock_skew_s),  # an epoch here (Nano 3S lcd)
            "Best Share": 354914572,
            "Last Valid Work": self._last_valid_work(),
            "Found Blocks": 0,
            "Current Pool": "stratum+tcp://pool.example.invalid:3333",
            "User": f"sim.{self.spec.key}",
        }
        return _Reply("S", 125, "LCD", [("LCD", [item])])

    def _r_stats(self, kind: str) -> _Reply:
        mm = self.mm_string(lite=kind == "litestats")
        value = f"'STATS':{{{mm}}}" if self.spec.stats_wrapped else mm
        if kind == "litestats":
            items: list[dict[str, Any]] = [{self.spec.stats_key: value}]
        else:
            first: dict[str, Any] = {
                "STATS": 0,
                "ID": self.profile.stats_id,
                "Elapsed": self._cg_elapsed(),
                "Calls": 0,
                "Wait": 0.0,
                "Max": 0.0,
                "Min": 99999999.0,
                self.spec.stats_key: value,
            }
            first.update(self.profile.stats_tail)
            if self.profile.hbinfo:
                first["HBinfo"] = "'HB0':{" + " ".join(self._chip_tokens()) + "}"
            items = [first]
            if kind == "stats":
                items.append(self._pool_stats())
        return _Reply("S", 70, "CGMiner stats", [("STATS", items)])

    def _cg_elapsed(self) -> int:
        return max(0, int(self._uptime()) - self.profile.mm_elapsed_lead_s)

    def _pool_stats(self) -> dict[str, Any]:
        recv = 23 * int(self._uptime()) + 1000
        return {
            "STATS": 1,
            "ID": "POOL0",
            "Elapsed": self._cg_elapsed(),
            "Calls": 0,
            "Wait": 0.0,
            "Max": 0.0,
            "Min": 99999999.0,
            "Pool Calls": 0,
            "Pool Attempts": 0,
            "Pool Wait": 0.0,
            "Pool Max": 0.0,
            "Pool Min": 99999999.0,
            "Pool Av": 0.0,
            "Work Had Roll Time": False,
            "Work Can Roll": False,
            "Work Had Expire": False,
            "Work Roll Time": 0,
            "Work Diff": 524288.0,
            "Min Diff": 100000.0,
            "Max Diff": 524288.0,
            "Min Diff Count": 1,
            "Max Diff Count": 60,
            "Times Sent": recv // 980,
            "Bytes Sent": recv // 6,
            "Times Recv": recv // 555,
            "Bytes Recv": recv,
            "Net Bytes Sent": recv // 6,
            "Net Bytes Recv": recv,
        }

    # -- the MM string

    def _chip_tokens(self) -> list[str]:
        temps = " ".join(f"{round(self._chip + off):3d}" for off in self._chip_offsets)
        volts = " ".join(f"{v:3d}" for v in self._chip_mv)
        works = " ".join(f"{w:3d}" for w in self._chip_mw)
        return [f"PVT_T0[{temps}]", f"PVT_V0[{volts}]", f"MW0[{works}]"]

    def _ps_string(self) -> str:
        wall = round(self._wall_at(self._t))
        powered = self._phase in (Phase.INIT, Phase.WORK)
        top = self.spec.top_level.wall_w
        volts = self.profile.hash_v_top * (0.85 + 0.15 * self._cur_level().wall_w / top)
        setpoint = round(volts * 100) + 2
        dc = round(self._dc_now())
        if self.profile.ps_layout == "nano3":
            # Nano 3 (MM318): PS[0 0 0 3 2792 89 324] at MPO 90. No field is watts (miner-sentinel#16); the
            # meaning of [3..6] is undocumented, so only the shape is reproduced: small [3], a ~2.8 V-ish [4],
            # [5] just under MPO, [6] ≈ 3.6 × MPO.
            mpo = self._mpo()
            if not powered:
                return "0 0 0 0 0 0 0"
            return f"0 0 0 3 {round(volts * 100)} {mpo - 1} {round(3.6 * mpo)}"
        if self.profile.ps_layout == "nano":
            mv = round(volts * 1000) if powered else 0
            amps = round(dc / volts) if powered else 0
            voltcmd = round(3756 * self._cur_level().wall_w / top)
            return f"0 0 {mv} {amps} 0 {voltcmd} {wall}"
        hashv = round(volts * 100) if powered else 4
        amps = round(dc / volts) if powered else 0
        return f"0 {self.profile.ctrl_rail} {hashv} {amps} {dc} {setpoint} {wall}"

    def _mm_constants(self) -> dict[str, str]:
        """MM tokens that never change for this miner (firmware, identity, fixed counters): rendered once."""
        spec = self.spec
        fw = self.profile.firmware
        return {
            "Ver": f"{spec.ver_prefix}-{fw}",
            "LVer": fw,
            "BVer": fw,
            "DNA": "0000000000000000" if self.profile.dna_zero else self.dna,
            "HDNA": self.dna,
            "MEMFREE": str(64000 + (self._seed * 37) % 4000),
            "NETFAIL": "0 0 0 0 0 0 0 0",
            "MH": "0",
            "DHW": "0",
            "HW": "0",
            "DH": "1.768%",
            "PCOMM_E": "0",
            "TA": str(spec.total_asics),
            "PING": "17",
            "ECHU": "0",
            "ECMM": "0",
            "CRC": "0",
            "COMCRC": "0",
            "CALIALL": "7",
        }

    def _mm_values(self, lite: bool) -> dict[str, Callable[[], str | None]]:
        spec = self.spec
        state = _STATE_TEXT[self._phase]
        working = self._phase == Phase.WORK
        chip = self._chip if self._phase in (Phase.INIT, Phase.WORK) else 0.0
        avg_ghs = self._hashed_gh / self._hash_time if self._hash_time > 0 else 0.0
        level = self._cur_level()
        mpo = self._mpo()
        tart = self._chip_target_c()
        top = spec.top_level.wall_w
        voltcmd = round(
            (3756 if self.profile.ps_layout == "nano" else self.profile.hash_v_top * 100 - 19)
            * (0.85 + 0.15 * level.wall_w / top)
        )
        calib = self._work_fraction(self._t) if working else 0.0
        bar = 0 if self._phase != Phase.WORK else round(100 * (calib - INIT_POWER_FRACTION) / (1 - INIT_POWER_FRACTION))
        nominal_mm = spec.nominal_ths.get(level.name, 0.0) * 1000.0 * 1.03
        return {
            "STATE": lambda: str(_STATE_NUM[state]),
            "SYSTEMSTATU": lambda: f"Work: {state}, Hash Board: 1",
            "Elapsed": lambda: str(int(self._uptime())),
            "BOOTBY": lambda: self._bootby,
            "LW": lambda: str(self._lw),
            "ITemp": lambda: str(round(self._inlet)) if spec.inlet_sensor else "-273",
            # Nano 3 Temp[]: air inside the case, most of the way from the inlet to the outlet (38 vs OTemp 41)
            "Temp": lambda: str(round(self._inlet + 0.85 * (self._outlet - self._inlet))),
            "OTemp": lambda: str(round(self._outlet)),
            "HBTemp": lambda: str(round((self._chip + self._outlet) / 2)),
            # Q board inlet/outlet sit ~10/8 K under the chips when hashing (HBITemp 75, HBOTemp 77 at TarT 85)
            # and at room air in standby (27/27 with ITemp 26): asic-rs samples.
            "HBITemp": lambda: str(round(self._inlet + 0.8 * (self._chip - self._inlet))),
            "HBOTemp": lambda: str(round(self._inlet + 0.84 * (self._chip - self._inlet))),
            "TMax": lambda: str(round(chip + 4)) if chip else "0",
            "TAvg": lambda: str(round(chip)),
            "TarT": lambda: str(tart),
            "LIMITEMP": lambda: str(self._limit_c) if lite else None,
            "LED": lambda: f"{self._led_mode}-{self._night_lamp}",
            "LEDUser": lambda: self._led_user,
            "SoloAllowed": lambda: str(self._solo_allowed),
            "FanR": lambda: f"{self._fan_pct()}%",
            "SoftOffTime": lambda: str(self._soft_off_shown),
            "SoftOnTime": lambda: str(self._soft_on_shown),
            "Filter": lambda: str(int((self._uptime() - self._filter_from) // 2)),
            "PS": self._ps_string,
            "GHSspd": lambda: f"{self._ghs_at(self._t):.2f}",
            "DHspd": lambda: "1.768%" if working else "0.000%",
            "GHSmm": lambda: f"{nominal_mm:.2f}",
            "GHSavg": lambda: f"{avg_ghs:.2f}",
            "WU": lambda: f"{avg_ghs * 14.0:.2f}",
            "Freq": lambda: f"{280 + 200 * level.wall_w / top:.2f}",
            "MGHS": lambda: f"{avg_ghs:.2f}",
            "MTmax": lambda: str(round(chip + 4)) if chip else "0",
            "MTavg": lambda: str(round(chip)),
            "SoftOFF": lambda: str(self._soft_off_reason),
            "LcdOnoff": lambda: str(int(self._lcd_on)),
            "WORKMODE": lambda: str(self._workmode),
            "WORKLEVEL": lambda: str(self._worklevel),
            "MPO": lambda: str(mpo),
            "ADJ": lambda: "1" if self._is_calibrated() else "0",
            "BAR": lambda: None if self._is_calibrated() else str(max(0, bar)),
            "ATA": lambda: f"{mpo}-{tart}-{voltcmd}-{int(280 + 150 * level.wall_w / top)}-20",
        }

    # Reply building runs after `handle` has brought the physics up to date: read the state, do not update again.
    def _uptime(self) -> float:
        return max(0.0, self._t - self._boot_at)

    def _now(self) -> float:
        return self._t + self.clock_skew_s

    def _dc_now(self) -> float:
        if self._phase not in (Phase.INIT, Phase.WORK):
            return 0.0
        return self._wall_at(self._t) * self.spec.psu_efficiency

    def _mpo(self) -> int:
        """MPO[]: the level's rated watts (the DC rating on the Q, where the wall reads higher)."""
        level = self._cur_level()
        return self.profile.mpo_w.get(level.name, round(level.wall_w))

    def _mm_plan(self) -> list[tuple[str, str]]:
        """The layout resolved once: ("lit", token) for fixed tokens, (placeholder or key, shown name) otherwise."""
        if self._mm_plan_cache is None:
            static = self.profile.static_tokens
            constants = self._mm_constants()
            plan: list[tuple[str, str]] = []
            for key in self.profile.mm_layout:
                if key == "NonceMask":
                    plan.append(("lit", f"Nonce Mask[{static['NonceMask']}]"))
                elif key in static and key not in ("FANS", "CHIPS", "ATA"):
                    plan.append(("lit", f"{key}[{static[key]}]"))
                elif key in constants:
                    plan.append(("lit", f"{key}[{constants[key]}]"))
                elif key == "ATA" and self.profile.ata_records:
                    records = sorted(self.profile.ata_records.items())
                    plan.append(("lit", " ".join(f"ATA{i}[{rec}]" for i, rec in records)))
                else:
                    plan.append((key, "Limitemp" if key == "LIMITEMP" else key))
            self._mm_plan_cache = plan
        return self._mm_plan_cache

    def mm_string(self, *, lite: bool = False) -> str:
        """The body of the MM ID0 value: `Key[value]` tokens in the model's order."""
        values = self._mm_values(lite)
        tokens: list[str] = []
        for key, shown in self._mm_plan():
            if key == "lit":
                tokens.append(shown)
            elif key == "FANS":
                rpm = round(self.profile.fan_rpm_max * self._fan_pct() / 100.0)
                tokens.extend(
                    f"Fan{i}[{max(0, rpm + (i - 1) * 7 - 7) if rpm else 0}]" for i in range(1, self.spec.fans + 1)
                )
            elif key == "CHIPS":
                if not lite and not self.profile.hbinfo:
                    tokens.extend(self._chip_tokens())
            elif key == "ATA":
                tokens.append(f"ATA{self._workmode}[{values['ATA']()}]")
            else:
                getter = values.get(key)
                value = getter() if getter else "0"
                if value is not None:
                    tokens.append(f"{shown}[{value}]")
        return " ".join(tokens)
