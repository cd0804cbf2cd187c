"""A simulated Antminer on LuxOS, plus `AntminerSim`, the base it shares with the Braiins OS simulator.

Pure models like `SimMiner` (thermostat/sim/miner.py): no sockets, no asyncio; `handle(request_bytes)`
answers one raw request (JSON or plain text, as cgminer does) with the reply bytes ending in NUL, or None
for "close without replying". Time comes from an injected ``time_fn`` (epoch seconds). The attributes the
bench, the TCP server and the demo house read are the same as `SimMiner`'s: ``spec``, ``faults``,
``reachable``, ``update()``, ``set_inlet_temp()``, ``wall_w``, ``hashing``, ``level_name``,
``calibrated``, ``wakes``, ``mode_changes``, ``commands_log``, ``reboots``.

`AntminerSim` (shared behaviour)
-------------------------------
* Phases: ``SLEEP`` (curtailed / paused: ``standby_wall_w``, fans stopped, no hashing), ``INIT`` (hash
  boards initialising after a wake or a profile change, `boot_seconds`, no hashing, power ramping from
  standby to half the level's watts), ``WORK`` (hashing; power and hashrate ramp from half to full over
  `calibration_seconds`), ``FAULT`` (injected), and while the controller restarts (`reboot()`,
  `power_loss()`) ``DEAD``/``BOOT``: the API does not answer. After a restart the unit mines again
  (assumed: curtail/pause is runtime state, not saved), so the heater sees the Avalon Q's case.
* The daemon's ``Elapsed`` runs through sleep and wake; only a restart resets it.
* Thermal: chips approach ``inlet + (TarT − 25 °C) × wall / level wall`` with a 45 s lag; automatic fans
  (30-90 % by load) in work, 0 in sleep. No fan command.
* Pool-changing commands are refused with E/45 and change nothing (a deliberate sim difference).
* Reply-level faults of `SimFaults` (``garbage``, ``truncate``) apply as in `SimMiner`; the socket-level
  ones are applied by thermostat/sim/server.py.

`LuxOSSim`
----------
* Sessions: ``logon`` opens the one session (refused while one is active, as the seed matrix says);
  ``session`` shows it (empty string when none); ``logoff <sid>`` and ``kill`` end it. A session unused for
  `session_timeout_s` (assumed 600 s; undocumented) expires. Privileged commands (``curtail``,
  ``profileset``, ``logoff``) without the live session id as first parameter are refused (E, "Invalid
  session id").
* ``curtail <sid>,sleep`` sleeps at once; ``curtail <sid>,wakeup`` starts INIT (the wake delay).
* ``profileset <sid>,<profile>``: the profile names are ``spec.fw_profiles``; an unknown one is refused. A
  change while hashing re-initialises the boards for `profile_switch_s`; while asleep it is stored.
* Reads: ``version``, ``summary`` (``GHS 5s``), ``config`` (``CurtailMode`` None/Sleep, ``Profile``),
  ``devdetails`` (per board ``Model``, ``Profile``), ``power`` (``Watts``), ``temps``, ``fans``,
  ``profiles``, ``session``. Key names follow thermostat/miners/luxos.py (several are guesses, see there).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from thermostat.domain.spec import Level, ModelSpec
from thermostat.sim.events import BadRequest, EventDrivenSim, parse_request
from thermostat.sim.miner import SimFaults

TAU_CHIP_S = 45.0
REF_INLET_C = 25.0
FAN_RPM_MAX = 6600
POOL_COMMANDS = frozenset(
    {"setpool", "addpool", "removepool", "switchpool", "enablepool", "disablepool", "poolpriority"}
)


class AntPhase(Enum):
    SLEEP = "sleep"
    INIT = "init"
    WORK = "work"
    FAULT = "fault"
    DEAD = "dead"  # no mains
    BOOT = "boot"  # controller restarting: API silent


@dataclass
class SimReply:
    status: str
    code: int
    msg: str
    sections: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)


def ok(code: int, msg: str, *sections: tuple[str, list[dict[str, Any]]]) -> SimReply:
    return SimReply("S", code, msg, list(sections))


def error(code: int, msg: str) -> SimReply:
    return SimReply("E", code, msg)


class AntminerSim(EventDrivenSim):
    """Shared model of an Antminer as a heater. Subclasses add their API in `_dispatch`."""

    description = "cgminer"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        time_fn: Callable[[], float],
        boot_seconds: float = 60.0,
        calibration_seconds: float = 60.0,
        clock_skew_s: float = 0.0,
        start_state: str = "standby",
        start_level: str | None = None,
        seed: int = 0,
        offline_seconds: float = 30.0,
        initial_uptime_s: float = 3600.0,
        inlet_temp_c: float = 20.0,
    ) -> None:
        if start_state not in ("standby", "mining"):
            raise ValueError(f"start_state must be 'standby' or 'mining', not {start_state!r}")
        self.spec = spec
        self.time_fn = time_fn
        self.boot_seconds = float(boot_seconds)
        self.calibration_seconds = float(calibration_seconds)
        self.clock_skew_s = float(clock_skew_s)
        self.offline_seconds = float(offline_seconds)
        self.seed = seed
        self.faults = SimFaults()
        self.commands_log: list[tuple[float, str]] = []
        self.wakes = 0
        self.mode_changes = 0
        self.reboots = 0
        level = spec.level(start_level) if start_level else spec.top_level
        self._workmode = level.workmode
        self._inlet = float(inlet_temp_c)
        now = float(time_fn())
        self._t = now
        self._boot_at = now - initial_uptime_s
        self._phase = AntPhase.WORK if start_state == "mining" else AntPhase.SLEEP
        self._phase_since = now - max(initial_uptime_s, self.calibration_seconds)
        self._init_s = self.boot_seconds  # length of the current INIT (a profile switch is shorter)
        self._power_back_at: float | None = None
        self._accepted = 10_000 + (zlib.crc32(f"{spec.key}-{seed}".encode()) % 5000)
        self._chip = self._chip_eq()

    # ------------------------------------------------------------------ observables


    @property
    def phase(self) -> AntPhase:
        self.update()
        return self._phase

    @property
    def state(self) -> str:
        return self.phase.value

    @property
    def reachable(self) -> bool:
        self.update()
        return self._phase not in (AntPhase.DEAD, AntPhase.BOOT)

    @property
    def workmode(self) -> int:
        self.update()
        return self._workmode

    @property
    def worklevel(self) -> int:
        return 0

    @property
    def level(self) -> Level:
        self.update()
        return self._level()

    @property
    def level_name(self) -> str:
        return self.level.name

    @property
    def soft_off(self) -> bool:
        return self.phase == AntPhase.SLEEP

    @property
    def calibrated(self) -> bool:
        """Hashing at the level's full rate (the ramp after INIT is over)."""
        self.update()
        return self._phase == AntPhase.WORK and self._work_fraction(self._t) >= 1.0

    @property
    def uptime_s(self) -> float:
        self.update()
        return self._t - self._boot_at

    @property
    def wall_w(self) -> float:
        self.update()
        return self._wall_at(self._t)

    @property
    def dc_w(self) -> float:
        w = self.wall_w
        return w * self.spec.psu_efficiency if self._phase in (AntPhase.INIT, AntPhase.WORK) else 0.0

    @property
    def hashing(self) -> bool:
        return self.ths > 0

    @property
    def ths(self) -> float:
        self.update()
        return self._ths_at(self._t)

    @property
    def fan_pct(self) -> int:
        self.update()
        if self._phase not in (AntPhase.INIT, AntPhase.WORK):
            return 0
        load = self._wall_at(self._t) / max(1.0, self.spec.top_level.wall_w)
        return round(min(90.0, max(30.0, 30.0 + 60.0 * load)))

    @property
    def chip_temp_c(self) -> float:
        self.update()
        return self._chip

    @property
    def inlet_temp_c(self) -> float:
        return self._inlet


    # ------------------------------------------------------------------ events


    def reboot(self) -> None:
        """Restart the controller now: the API is silent for `offline_seconds`, then it mines."""
        self.update()
        self.reboots += 1
        self._set_phase(AntPhase.BOOT)

    def power_loss(self, outage_s: float = 0.0) -> None:
        self.update()
        self._set_phase(AntPhase.DEAD)
        self._power_back_at = self._t + max(0.0, outage_s)
        self.update()

    def enter_fault(self) -> None:
        self.update()
        self._set_phase(AntPhase.FAULT)

    def _next_event(self) -> tuple[float, Callable[[], None]] | None:
        p = self._phase
        if p == AntPhase.DEAD and self._power_back_at is not None:
            return self._power_back_at, self._power_back
        if p == AntPhase.BOOT:
            return self._phase_since + self.offline_seconds, self._booted
        if p == AntPhase.INIT:
            return self._phase_since + self._init_s, lambda: self._set_phase(AntPhase.WORK)
        return None

    def _power_back(self) -> None:
        self._power_back_at = None
        self.reboots += 1
        self._set_phase(AntPhase.BOOT)

    def _booted(self) -> None:
        self._boot_at = self._t
        self._start_init(self.boot_seconds)
        self._on_restart()

    def _on_restart(self) -> None:
        """Hook: protocol state a restart clears (LuxOS sessions)."""

    def _set_phase(self, phase: AntPhase) -> None:
        self._phase = phase
        self._phase_since = self._t

    def _start_init(self, seconds: float) -> None:
        self._init_s = max(0.0, seconds)
        self._set_phase(AntPhase.INIT)

    def _sleep(self) -> None:
        if self._phase in (AntPhase.INIT, AntPhase.WORK):
            self._set_phase(AntPhase.SLEEP)

    def _wake(self) -> bool:
        if self._phase != AntPhase.SLEEP:
            return False
        self.wakes += 1
        self._start_init(self.boot_seconds)
        return True

    # ------------------------------------------------------------------ physics

    def _level(self) -> Level:
        for lv in self.spec.levels:
            if lv.workmode == self._workmode:
                return lv
        return self.spec.top_level

    def _work_fraction(self, t: float) -> float:
        if self.calibration_seconds <= 0:
            return 1.0
        return min(1.0, 0.5 + 0.5 * (t - self._phase_since) / self.calibration_seconds)

    def _wall_at(self, t: float) -> float:
        p = self._phase
        lv = self._level()
        if p == AntPhase.DEAD:
            return 0.0
        if p == AntPhase.INIT:
            frac = 1.0 if self._init_s <= 0 else min(1.0, (t - self._phase_since) / self._init_s)
            return self.spec.standby_wall_w + (0.5 * lv.wall_w - self.spec.standby_wall_w) * frac
        if p == AntPhase.WORK:
            return lv.wall_w * self._work_fraction(t)
        return self.spec.standby_wall_w

    def _ths_at(self, t: float) -> float:
        if self._phase != AntPhase.WORK:
            return 0.0
        return self.spec.nominal_ths.get(self._level().name, 0.0) * self._work_fraction(t)

    def _chip_eq(self) -> float:
        lv = self._level()
        load = self._wall_at(self._t) / max(1.0, lv.wall_w)
        return self._inlet + (lv.chip_target_c - REF_INLET_C) * load

    def _advance(self, t_end: float) -> None:
        while self._t < t_end - 1e-9:
            # 5 s steps; at most ~200 steps for a long stretch (the lag has long settled by then)
            step = min(max(5.0, (t_end - self._t) / 200.0), t_end - self._t)
            if self._phase == AntPhase.WORK:
                self._accepted += int(step)  # a share a second, roughly
            self._t += step
            self._chip += (self._chip_eq() - self._chip) * (1.0 - math.exp(-step / TAU_CHIP_S))

    # ------------------------------------------------------------------ the API

    def handle(self, request: bytes) -> bytes | None:
        """Answer one raw request (as read from the socket). None: close without replying."""
        self.update()
        text = request.decode("utf-8", errors="replace").strip().strip("\x00").strip()
        self.commands_log.append((self._t, text))
        if not self.reachable:
            return None
        try:
            as_json, command, param = parse_request(text)
        except BadRequest:
            return self._finish(error(23, "Invalid JSON"), True)
        if command in POOL_COMMANDS:
            reply = error(45, f"Access denied to '{command}' command")
        else:
            reply = self._dispatch(command, param) or error(14, "Invalid command")
        self.update()
        return self._finish(reply, as_json)

    def _dispatch(self, command: str, param: str | None) -> SimReply | None:
        raise NotImplementedError

    def _finish(self, reply: SimReply, as_json: bool) -> bytes:
        head = {"STATUS": reply.status, "When": int(self.now), "Code": reply.code, "Msg": reply.msg,
                "Description": self.description}
        if as_json:
            obj: dict[str, Any] = {"STATUS": [head]}
            for name, items in reply.sections:
                obj[name] = items
            obj["id"] = 1
            body = json.dumps(obj, separators=(",", ":"))
        else:
            parts = [",".join(f"{k}={_text(v)}" for k, v in head.items())]
            for name, items in reply.sections:
                for i, item in enumerate(items):
                    parts.append(",".join([f"{name}={i}", *(f"{k}={_text(v)}" for k, v in item.items())]))
            body = "|".join(parts) + "|"
        data = body.encode()
        if self.faults.garbage:
            return b"\x8b\x1f\xff{STATUS=?" + bytes(range(1, 24)) + b"}}]|\x00"
        if self.faults.truncate:
            return data[: max(1, len(data) // 2)]
        return data + b"\x00"

    # -- shared read sections

    def _temps(self) -> list[dict[str, Any]]:
        chip = round(self._chip, 1)
        board = self._inlet + (chip - self._inlet) * 0.8
        return [{"TEMPS": i, "ID": i, "Board": round(board + i * 0.5, 1), "Chip": round(chip + i * 0.5, 1)}
                for i in range(3)]

    def _fans(self) -> list[dict[str, Any]]:
        pct = self.fan_pct
        return [{"FAN": i, "ID": i, "RPM": round(FAN_RPM_MAX * pct / 100) + (i * 30 if pct else 0), "Speed": pct}
                for i in range(self.spec.fans)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("=", "\\=")


class LuxOSSim(AntminerSim):
    """An Antminer on LuxOS. See the module docstring."""

    description = "LUXminer 2024.11.1"

    def __init__(
        self, spec: ModelSpec, *, session_timeout_s: float = 600.0, profile_switch_s: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(spec, **kwargs)
        if not spec.fw_profiles:
            raise ValueError(f"{spec.display}: a LuxOS model row needs fw_profiles")
        self.session_timeout_s = float(session_timeout_s)
        self.profile_switch_s = float(profile_switch_s)
        self.logons = 0
        self._sid: str | None = None
        self._sid_used = 0.0

    @property
    def session_id(self) -> str | None:
        self.update()
        self._expire()
        return self._sid

    @property
    def profile(self) -> str:
        return self.spec.fw_profiles[self.workmode]

    def _on_restart(self) -> None:
        self._sid = None

    def _expire(self) -> None:
        if self._sid is not None and self._t - self._sid_used > self.session_timeout_s:
            self._sid = None

    def _dispatch(self, command: str, param: str | None) -> SimReply | None:
        self._expire()
        reads: dict[str, Callable[[], SimReply]] = {
            "version": self._r_version,
            "summary": self._r_summary,
            "config": self._r_config,
            "devdetails": self._r_devdetails,
            "power": lambda: ok(0, "Power", ("POWER", [{"Watts": round(self._wall_at(self._t)), "PSU": True}])),
            "temps": lambda: ok(0, "Temps", ("TEMPS", self._temps())),
            "fans": lambda: ok(0, "Fans", ("FANS", self._fans())),
            "profiles": self._r_profiles,
            "session": lambda: ok(0, "Session", ("SESSION", [{"SessionID": self._sid or ""}])),
            "logon": self._logon,
            "kill": self._kill,
        }
        if command in reads:
            return reads[command]()
        privileged: dict[str, Callable[[list[str]], SimReply]] = {
            "curtail": self._curtail,
            "profileset": self._profileset,
            "logoff": lambda args: self._kill(),
        }
        if command in privileged:
            args = [a.strip() for a in (param or "").split(",")]
            if self._sid is None or args[0] != self._sid:
                return error(45, "Invalid session id")
            self._sid_used = self._t
            return privileged[command](args[1:])
        return None

    # -- session

    def _logon(self) -> SimReply:
        if self._sid is not None:
            return error(45, "Another session is already active")
        self.logons += 1
        self._sid = f"{zlib.crc32(f'{self.spec.key}-{self.seed}-{self.logons}'.encode()) & 0xFFFFFFFF:08X}"
        self._sid_used = self._t
        return ok(0, "Logon", ("SESSION", [{"SessionID": self._sid}]))

    def _kill(self) -> SimReply:
        self._sid = None
        return ok(0, "Session ended", ("SESSION", [{"SessionID": ""}]))

    # -- control

    def _curtail(self, args: list[str]) -> SimReply:
        action = args[0].lower() if args else ""
        if action == "sleep":
            self._sleep()
            return ok(0, "Curtail sleep", ("CURTAIL", [{"Action": "sleep"}]))
        if action == "wakeup":
            woke = self._wake()
            return ok(0, "Curtail wakeup" if woke else "Curtail wakeup: not sleeping",
                      ("CURTAIL", [{"Action": "wakeup"}]))
        return error(46, f"Invalid curtail mode '{action}'")

    def _profileset(self, args: list[str]) -> SimReply:
        name = args[0] if args else ""
        if name not in self.spec.fw_profiles:
            return error(47, f"Invalid profile '{name}'")
        mode = self.spec.fw_profiles.index(name)
        if mode != self._workmode:
            self._workmode = mode
            self.mode_changes += 1
            if self._phase in (AntPhase.INIT, AntPhase.WORK):
                self._start_init(self.profile_switch_s)
        return ok(0, f"Profile set to {name}", ("PROFILE", [{"Profile": name}]))

    # -- reads

    def _r_version(self) -> SimReply:
        return ok(22, "LUXminer versions", ("VERSION", [{
            "API": "3.7", "LUXminer": "2024.11.1", "Miner": self.description, "Type": self.spec.version_model,
        }]))

    def _r_summary(self) -> SimReply:
        ths = self._ths_at(self._t)
        return ok(11, "Summary", ("SUMMARY", [{
            "Elapsed": int(self._t - self._boot_at),
            "GHS 5s": round(ths * 1000.0, 2),
            "GHS av": round(self.spec.nominal_ths.get(self._level().name, 0.0) * 930.0, 2),
            "Accepted": self._accepted,
            "Rejected": self._accepted // 400,
            "Hardware Errors": 0,
        }]))

    def _r_config(self) -> SimReply:
        return ok(33, "CGMiner config", ("CONFIG", [{
            "ASC Count": 3, "PGA Count": 0, "Pool Count": 1, "Strategy": "Failover", "Log Interval": 5,
            "Profile": self.spec.fw_profiles[self._workmode],
            "CurtailMode": "Sleep" if self._phase == AntPhase.SLEEP else "None",
            "Version": "2024.11.1",
        }]))

    def _r_devdetails(self) -> SimReply:
        prof = self.spec.fw_profiles[self._workmode]
        chips = self.spec.total_asics // 3
        return ok(69, "Device Details", ("DEVDETAILS", [
            {"DEVDETAILS": i, "Name": "ASC", "ID": i, "Driver": "bitmain", "Model": self.spec.version_model,
             "Chips": chips, "Profile": prof}
            for i in range(3)
        ]))

    def _r_profiles(self) -> SimReply:
        return ok(0, "Profiles", ("PROFILES", [
            {"Profile Name": self.spec.fw_profiles[lv.workmode], "Watts": round(lv.wall_w),
             "Hashrate": self.spec.nominal_ths.get(lv.name, 0.0)}
            for lv in self.spec.levels if 0 <= lv.workmode < len(self.spec.fw_profiles)
        ]))
