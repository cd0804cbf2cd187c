"""A small scripted miner double for the heater state machine tests, and a virtual-time harness.

`FakeMiner` reacts to `Command`s the way §3.4/§3.5 of avalon-api.md describe an Avalon: soft on/off
are scheduled on the miner's own (possibly skewed) clock, a wake boots (`In Init`) and then calibrates,
a mode change while calibrating is refused (BUSY), softon's reply is lost (UNCONFIRMED), and the test
can inject unreachable windows, reboots, power loss, lost softons, hot chips and a dead fan. It records
what it hashed and when (`segments`), so properties can be checked against the miner, not the machine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from thermostat.core.heater import HeaterMachine, TransitionEvent
from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState, Snapshot
from thermostat.domain.spec import ModelSpec

EPOCH = 1_767_225_600.0  # 2026-01-01: the miner clock is now + EPOCH + skew_s
BUSY_MSG = "ASC 0 set failed: current mode 1 is caling Don't permit switch mode"


@dataclass
class FakeMiner:
    spec: ModelSpec
    level: str = ""  # current work mode (ladder name); "" = the bottom level
    on: bool = False  # out of standby at t=0 (True: already booted and calibrated)
    skew_s: float = 0.0  # miner clock minus true time
    boot_s: float = 90.0  # In Init after a wake / reboot
    calib_s: float = 60.0  # ADJ[0] after boot
    recalib_s: float = 20.0  # ADJ[0] after a mode change
    softon_reply: OutcomeKind = OutcomeKind.UNCONFIRMED  # softon closes the connection
    lost_softons: int = 0  # the next N softons are dropped (TIMEOUT, not applied)
    busy_next: int = 0  # the next N SET_LEVELs are refused BUSY whatever the calibration
    hot_levels: frozenset[str] = frozenset()  # chip over the limit while hashing in these
    fan_dead: bool = False
    standby_survives_reboot: bool = False  # after a reboot/power loss: back in standby (else hashing)
    reboot_blackout_s: float = 30.0  # no API while rebooting / after power comes back
    powered: bool = True  # smart plug state (plug heaters)
    calls: list[tuple[float, Command]] = field(default_factory=list)
    _trace: list[tuple[float, float | None, str, bool]] = field(default_factory=list)  # (t, on_at, level, powered)
    wakes: list[float] = field(default_factory=list)  # true times a softon / plug on started a boot
    _on_at: float | None = None
    _calib_end: float = 0.0
    _uptime_start: float = -10_000.0
    _pending: list[tuple[float, str]] = field(default_factory=list)  # (true time, "on"/"off"/"reboot"/...)
    _blackouts: list[tuple[float, float]] = field(default_factory=list)
    _now: float = 0.0

    def __post_init__(self) -> None:
        self.level = self.level or self.spec.bottom_level.name
        if self.on:
            self._on_at = -10_000.0
        self._record(0.0)

    # ---------------------------------------------------------------- script

    def unreachable(self, start: float, end: float) -> None:
        self._blackouts.append((start, end))

    def reboot_at(self, t: float) -> None:
        self._pending.append((t, "reboot"))

    def power_loss(self, start: float, end: float) -> None:
        self._pending.append((start, "power_off"))
        self._pending.append((end, "power_on"))

    # ---------------------------------------------------------------- time

    def advance(self, now: float) -> None:
        self._pending.sort()
        while self._pending and self._pending[0][0] <= now:
            t, what = self._pending.pop(0)
            self._apply(t, what)
        self._now = max(self._now, now)

    def _apply(self, t: float, what: str) -> None:
        if what == "on" and self._on_at is None and self.powered:
            self._boot(t)
            self.wakes.append(t)
        elif what == "off" and self._on_at is not None:
            self._on_at = None
        elif what == "reboot" and self.powered:
            self._blackouts.append((t, t + self.reboot_blackout_s))
            self._uptime_start = t
            if self._on_at is not None or not self.standby_survives_reboot:
                self._boot(t)
        elif what == "power_off":
            self.powered = False
            self._on_at = None
        elif what == "power_on":
            self.powered = True
            self._uptime_start = t
            self._blackouts.append((t, t + self.reboot_blackout_s))
            if not self.standby_survives_reboot:
                self._boot(t)  # the Q comes back hashing in its last mode
        self._record(t)

    def _boot(self, t: float) -> None:
        self._on_at = t
        self._calib_end = t + self.boot_s + self.calib_s

    def _record(self, t: float) -> None:
        self._trace.append((t, self._on_at, self.level, self.powered))

    def miner_clock(self, now: float) -> float:
        return now + EPOCH + self.skew_s

    def hashing_level(self, now: float) -> str | None:
        if not self.powered or self._on_at is None or now < self._on_at + self.boot_s:
            return None
        return self.level

    # ---------------------------------------------------------------- API

    def reachable(self, now: float) -> bool:
        return self.powered and not any(a <= now < b for a, b in self._blackouts)

    def snapshot(self, now: float) -> Snapshot:
        spec = self.spec
        lv = spec.level(self.level)
        if self._on_at is None:
            state, calibrated, power, ths, rpm = MinerState.STANDBY, False, spec.standby_wall_w, 0.0, 0
        elif now < self._on_at + self.boot_s:
            state, calibrated, power, ths, rpm = MinerState.STARTING, False, 60.0, 0.0, 2000
        else:
            state, calibrated, power = MinerState.MINING, now >= self._calib_end, lv.wall_w
            ths, rpm = spec.nominal_ths.get(lv.name, 1.0), 0 if self.fan_dead else 3000
        hot = state == MinerState.MINING and self.level in self.hot_levels
        return Snapshot(
            state=state,
            model=spec.key,
            workmode=lv.workmode,
            worklevel=lv.worklevel,
            power_w=power,
            hashrate_ths=ths,
            chip_temp_max_c=spec.chip_temp_limit_c + 5 if hot else 70.0,
            fan_rpm=rpm,
            calibrated=calibrated,
            uptime_s=int(now - self._uptime_start),
            miner_time=int(self.miner_clock(now)),
            soft_off_reason=1 if state == MinerState.STANDBY else 0,
        )

    def execute(self, cmd: Command, now: float) -> Outcome:
        self.advance(now)
        self.calls.append((now, cmd))
        k = cmd.kind
        if k == CommandKind.PLUG_ON:
            if not self.powered:
                self.powered = True
                self._uptime_start = now
                self._blackouts.append((now, now + self.reboot_blackout_s))
                self._boot(now)
                self.wakes.append(now)
                self._record(now)
            return Outcome(OutcomeKind.OK)
        if k == CommandKind.PLUG_OFF:
            if self.powered:
                self.powered = False
                self._on_at = None
                self._record(now)
            return Outcome(OutcomeKind.OK)
        if not self.reachable(now):
            return Outcome(OutcomeKind.UNREACHABLE, "connection refused")
        if k == CommandKind.POLL:
            return Outcome(OutcomeKind.OK, snapshot=self.snapshot(now))
        if k in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF):
            if not self.spec.has_standby:
                return Outcome(OutcomeKind.REFUSED, "ASC 0 set failed: unknown option")
            assert cmd.at_miner_time is not None
            at = max(now, cmd.at_miner_time - EPOCH - self.skew_s)
            if k == CommandKind.SOFT_ON:
                if self.lost_softons > 0:
                    self.lost_softons -= 1
                    return Outcome(OutcomeKind.TIMEOUT)
                self._pending.append((at, "on"))
                self.advance(now)
                return Outcome(self.softon_reply)
            self._pending.append((at, "off"))
            self.advance(now)
            return Outcome(OutcomeKind.OK, f"ASC 0 set info: success softoff:{cmd.at_miner_time}")
        if k == CommandKind.SET_LEVEL:
            assert cmd.level is not None
            if self.busy_next > 0:
                self.busy_next -= 1
                return Outcome(OutcomeKind.BUSY, BUSY_MSG)
            if cmd.level == self.level:
                return Outcome(OutcomeKind.OK)
            if self._on_at is not None and now < self._calib_end:
                return Outcome(OutcomeKind.BUSY, BUSY_MSG)
            self.level = cmd.level
            if self._on_at is not None:
                self._calib_end = now + self.recalib_s
            self._record(now)
            return Outcome(OutcomeKind.OK)
        if k == CommandKind.SET_FAN:
            return Outcome(OutcomeKind.OK)
        return Outcome(OutcomeKind.REFUSED, "unsupported")

    def hashing_at(self, t: float) -> str | None:
        """The level hashed at true time t (None when idle, booting or unpowered)."""
        entry = None
        for e in self._trace:
            if e[0] <= t:
                entry = e
        if entry is None:
            return None
        _, on_at, level, powered = entry
        return level if powered and on_at is not None and t >= on_at + self.boot_s else None

    def hashing_timeline(self, until: float) -> list[tuple[float, float, str | None]]:
        """(start, end, level hashed or None) intervals from 0 to `until` (call `advance(until)` first)."""
        points = {0.0, until}
        for t, on_at, _, _ in self._trace:
            points.add(t)
            if on_at is not None:
                points.add(on_at + self.boot_s)
        ts = sorted(p for p in points if 0.0 <= p <= until)
        out: list[tuple[float, float, str | None]] = []
        for a, b in itertools.pairwise(ts):
            lv = self.hashing_at(a)
            if out and out[-1][2] == lv:
                out[-1] = (out[-1][0], b, lv)
            else:
                out.append((a, b, lv))
        return out


class Harness:
    """Runs a machine against a FakeMiner in virtual time (commands complete instantly)."""

    def __init__(self, machine: HeaterMachine, miner: FakeMiner, t: float = 0.0, max_dt: float = 5.0) -> None:
        self.m = machine
        self.miner = miner
        self.t = t
        self.max_dt = max_dt
        self.events: list[TransitionEvent] = []
        self.commands: list[tuple[float, Command, Outcome]] = []

    def want(self, level: str | None, *, reason: str = "", safety: bool = False) -> None:
        self.m.want(level, self.t, reason=reason, safety=safety)

    def run_until(self, until: float) -> None:
        same_t = 0
        while self.t < until:
            cmds = self.m.step(self.t)
            for c in cmds:
                out = self.miner.execute(c, self.t)
                self.commands.append((self.t, c, out))
                self.m.on_outcome(c, out, self.t)
            self.events.extend(self.m.drain_events())
            if cmds:
                same_t += 1
                assert same_t < 50, f"machine spins at t={self.t}: {self.events[-5:]}"
                continue
            same_t = 0
            nxt = min(self.m.next_due(self.t), until, self.t + self.max_dt)
            self.t = max(nxt, self.t + 0.5)
        self.miner.advance(self.t)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.t + seconds)

    def sent(self, kind: CommandKind) -> list[tuple[float, Command, Outcome]]:
        return [c for c in self.commands if c[1].kind == kind]

    def states(self) -> list[str]:
        return [e.to_state.value for e in self.events]
