"""The heater state machine: one per miner, pure (sans-I/O).

It turns "I want this heater at level X (or off)" into the handshake a Canaan Avalon needs, and
verifies every step by reading the miner back. It sends nothing itself: `step(now)` returns the
command to send now (at most one in flight per heater) and `on_outcome(command, outcome, now)` is
told what happened. Time comes in as `now`, a float of monotonic seconds; the miner's own epoch
clock is only ever taken from snapshots (`Snapshot.miner_time`, the `When` of the reply).

Why it is a state machine and not "send softon, then workmode"
(../shared/reference/avalon-api.md §3.4, §3.5, §8):

* soft on/off are *scheduled* at a Unix time on the miner's clock, so the timestamp is computed from
  the freshest `When` (adjusted by the monotonic time elapsed since that poll), never from our clock;
* softon may close the connection without replying (`UNCONFIRMED`): verify by polling, resend if the
  miner is still idle well after the scheduled time;
* after waking the unit boots (`In Init`) and then calibrates (`ADJ[0]`); a work mode change while
  calibrating is refused ("is caling Don't permit switch mode", `BUSY`) — so the machine waits for
  In Work + calibrated, sets the level, retries `BUSY` with a growing delay, and reads the mode back;
* the Q restarts hashing in its last mode after a power loss even if it was in standby, and anyone on
  the LAN can change the mode: every poll is compared with what is wanted (reconciliation).

States (`HeaterState`)::

    UNKNOWN      nothing known yet: first POLL, then reconcile
    STANDBY      verified off (soft off; smart plug off; or, on a model without standby and without a
                 plug, verified in its lowest level, which stands in for standby)
    WAKING       SOFT_ON / PLUG_ON sent, polling until the miner is out of standby (answers, for a plug)
    VERIFYING    awake, polling until In Work (MINING/STARTING) and calibrated
    SETTING_MODE SET_LEVEL sent (BUSY retried with backoff), polling until workmode/worklevel confirm
    SETTING_FAN  SET_FAN sent (after a wake or a reboot only)
    RUNNING      verified hashing in `confirmed_level`; polled every `poll_interval_s`
    STOPPING     SOFT_OFF / PLUG_OFF / SET_LEVEL(lowest) sent, polling until standby is verified
    BACKOFF      a step failed; waiting (10 s, 20 s, ... 300 s), then POLL and reconcile
    FAULT        `max_failures` consecutive failures: not `available`; polled with a backoff capped at
                 `fault_poll_s`; when it answers hashing it is held in its level while its room wants heat
                 (`usable`) and parked in standby at once otherwise; recovers (→ reconcile) after
                 `fault_recover_s` of good answers

Every transition goes through `_go()`, which checks `TRANSITIONS` (an invalid one raises
`InvalidTransition`) and records a `TransitionEvent`; `drain_events()` hands them out.

Wear (per heater): `min_on_s`, `min_off_s`, `max_wakes_per_hour`, `min_level_dwell_s`. A want that the
rules do not allow yet is *deferred*: remembered and applied as soon as allowed. Safety wants
(`want(..., safety=True)`, and the machine's own over-temperature / dead-fan reactions) override
`min_on_s` and the level dwell when they reduce heat; nothing overrides `min_off_s` or the wake cap.

Decisions worth knowing (also in docs):

* A heater found hashing that we did not wake (start-up, power loss, someone else's softon) has no
  "on since": standby is re-asserted at once, not after `min_on_s`. A heater found in standby at start
  may be woken at once (`min_off_s` counts from a standby *we* verified or found while believing on).
* A model without standby and without a plug treats standby ↔ level as level changes: `min_level_dwell_s`
  applies, `min_on_s`/`min_off_s`/the wake cap do not (nothing is power-cycled).
* FAULT parks the heater in standby (soft off; lowest level on a model without standby, also with a
  plug, so that the recovery can be observed) when a safety rule or room off says standby, or when its
  room, seeing it usable again, wants no heat from it; a miner that comes back hashing while its room
  wants heat is kept hashing (no needless stop and wake). It recovers after `fault_recover_s` of good
  answers.
* Wear survives a restart: `export_wear()` gives the wake history, on/off/level since and a soft on/off
  sent but not yet verified (with its miner-clock time); `restore_wear()` in a new machine, before its
  first poll, carries them over, and a restart inside a soft on's lead waits for it instead of resending.
* A chip temperature over `spec.chip_temp_limit_c` while hashing caps the heater one level below the
  level it is in (standby below the lowest) for `safety_hold_s`; a fan at 0 rpm while hashing caps it
  at standby. Allocator wants above the cap are clamped until the hold ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState, Snapshot
from thermostat.domain.spec import ModelSpec

NEVER = -math.inf
WAKE_WINDOW_S = 3600.0  # `max_wakes_per_hour` counts the wakes of a rolling window this long
# A wake older than this no longer counts against the cap (a rolling hour), so the history drops it: a heating
# season wakes a heater over a thousand times. The hour's margin keeps a caller whose `now` goes back a little.
WAKE_HISTORY_S = 2 * WAKE_WINDOW_S


class HeaterState(StrEnum):
    UNKNOWN = "unknown"
    STANDBY = "standby"
    WAKING = "waking"
    VERIFYING = "verifying"
    SETTING_MODE = "setting_mode"
    SETTING_FAN = "setting_fan"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    FAULT = "fault"


class OffMethod(StrEnum):
    """How this heater is turned off (derived from the model row and `has_plug`)."""

    SOFT = "soft"  # ascset softoff/softon (Mini 3, Q)
    PLUG = "plug"  # smart plug (no standby on the model, plug configured)
    LOWEST = "lowest"  # no standby, no plug: the lowest level stands in for standby (Nano 3S)


S = HeaterState
_RECONCILED = frozenset({S.STANDBY, S.VERIFYING, S.SETTING_MODE, S.SETTING_FAN, S.RUNNING, S.STOPPING})
_FAILING = frozenset({S.BACKOFF, S.FAULT})

#: Allowed transitions (from → set of to). `_go()` enforces it.
TRANSITIONS: dict[HeaterState, frozenset[HeaterState]] = {
    S.UNKNOWN: _RECONCILED | {S.WAKING} | _FAILING,  # WAKING: a restart inside a soft on's lead time
    S.STANDBY: (_RECONCILED - {S.STANDBY}) | {S.WAKING} | _FAILING,
    S.WAKING: frozenset({S.VERIFYING, S.STOPPING}) | _FAILING,
    S.VERIFYING: (_RECONCILED - {S.VERIFYING}) | {S.WAKING} | _FAILING,
    S.SETTING_MODE: (_RECONCILED - {S.SETTING_MODE}) | _FAILING,
    S.SETTING_FAN: frozenset({S.RUNNING, S.STOPPING}) | _FAILING,
    S.RUNNING: (_RECONCILED - {S.RUNNING}) | _FAILING,
    S.STOPPING: (_RECONCILED - {S.STOPPING}) | _FAILING,
    S.BACKOFF: _RECONCILED | _FAILING,  # BACKOFF → BACKOFF: one more failed retry (own event)
    S.FAULT: _RECONCILED,
}

_TRANSITIONAL = frozenset({S.WAKING, S.VERIFYING, S.SETTING_MODE, S.SETTING_FAN, S.STOPPING})
_ON_STATES = frozenset({S.WAKING, S.VERIFYING, S.SETTING_MODE, S.SETTING_FAN, S.RUNNING, S.STOPPING})


class InvalidTransition(RuntimeError):
    """A transition not in `TRANSITIONS` was attempted (a bug in the machine)."""


@dataclass(frozen=True)
class TransitionEvent:
    time: float  # monotonic seconds (the `now` passed in)
    heater: str
    from_state: HeaterState
    to_state: HeaterState
    reason: str


@dataclass(frozen=True)
class PendingSoft:
    """A soft on/off sent to the miner and not yet verified: `kind` SOFT_ON or SOFT_OFF, scheduled at
    `at_miner_time` (Unix seconds on the miner's own clock, as sent)."""

    kind: CommandKind
    at_miner_time: int


@dataclass(frozen=True)
class HeaterWear:
    """What the wear rules remember, for persistence across a restart (`export_wear` / `restore_wear`).

    Times are seconds on the caller's clock (the `now` the machine was given); None = never. `shifted()`
    moves them to another clock (monotonic → epoch for storage, and back after a restart).
    """

    wakes: tuple[float, ...] = ()  # wakes (soft on / plug on) still inside the last hour, oldest first
    on_since: float | None = None  # the wake of the current run (None: off, or on but not woken by this machine)
    off_since: float | None = None  # the verified standby that `min_off_s` counts from
    level_since: float | None = None  # the last confirmed level change (the level dwell)
    level: str | None = None  # the level confirmed at export (None: standby / unknown)
    pending: PendingSoft | None = None

    def shifted(self, offset: float) -> HeaterWear:
        def move(t: float | None) -> float | None:
            return None if t is None else t + offset

        return replace(
            self,
            wakes=tuple(t + offset for t in self.wakes),
            on_since=move(self.on_since),
            off_since=move(self.off_since),
            level_since=move(self.level_since),
        )


@dataclass(frozen=True)
class HeaterSettings:
    """Every timing of the heater state machine, in seconds unless stated. Defaults in brackets."""

    poll_interval_s: float = 15.0  # POLL period when settled (STANDBY, RUNNING)
    fast_poll_s: float = 3.0  # POLL period during transitions (WAKING, VERIFYING, SETTING_*, STOPPING)
    soft_on_lead_s: float = 5.0  # softon is scheduled this far ahead of the miner's own clock
    soft_off_lead_s: float = 5.0  # softoff likewise
    soft_retry_s: float = 30.0  # resend softon/softoff (PLUG_OFF) if the miner still shows the old
    #   state this long after the scheduled time (the reply to softon is often lost)
    clock_fresh_s: float = 60.0  # a snapshot older than this is polled again before scheduling soft on/off
    wake_timeout_s: float = 300.0  # WAKING + VERIFYING must reach In Work + calibrated within this
    confirm_timeout_s: float = 240.0  # SETTING_MODE (and STOPPING to the lowest level) must read back within this
    stop_timeout_s: float = 120.0  # STOPPING by soft off / plug must verify standby within this
    busy_retry_s: float = 10.0  # first retry delay after a BUSY ("is caling") refusal; doubles ...
    busy_retry_max_s: float = 60.0  # ... up to this
    readback_polls: int = 3  # polls showing the old mode after an accepted SET_LEVEL before it is resent
    fan_pct: int | None = -1  # SET_FAN after a wake/reboot: 15..100, -1 automatic, None = never touch the fan
    backoff_base_s: float = 10.0  # BACKOFF delay after the first failure; doubles per consecutive failure ...
    backoff_max_s: float = 300.0  # ... up to this
    max_failures: int = 5  # consecutive failures (without reaching RUNNING/STANDBY) → FAULT
    fault_poll_s: float = 60.0  # in FAULT, unanswered polls back off from `backoff_base_s` (doubling) up to this
    fault_recover_s: float = 90.0  # in FAULT: this long of good answers (healthy; parked unless heat is wanted)
    #   → reconcile and available again
    min_on_s: float = 600.0  # minimum time from a wake until a non-safety standby
    min_off_s: float = 600.0  # minimum time from a verified standby until the next wake
    max_wakes_per_hour: int = 2  # wakes (softon / plug on) in any sliding 3600 s window
    min_level_dwell_s: float = 120.0  # minimum time between non-safety level changes while running
    safety_hold_s: float = 600.0  # how long an over-temperature / dead-fan cap stays after the last trigger
    plug_off_polls: int = 2  # consecutive polls without an answer that verify "plug off"
    reboot_tolerance_s: float = 30.0  # uptime this much below what elapsed time predicts = a reboot

    def __post_init__(self) -> None:
        for name in (
            "poll_interval_s", "fast_poll_s", "wake_timeout_s", "confirm_timeout_s", "stop_timeout_s",
            "busy_retry_s", "busy_retry_max_s", "backoff_base_s", "backoff_max_s", "fault_poll_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("soft_on_lead_s", "soft_off_lead_s", "soft_retry_s", "clock_fresh_s", "fault_recover_s",
                     "min_on_s", "min_off_s", "min_level_dwell_s", "safety_hold_s", "reboot_tolerance_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_failures < 1 or self.readback_polls < 1 or self.plug_off_polls < 1:
            raise ValueError("max_failures, readback_polls and plug_off_polls must be >= 1")
        if self.max_wakes_per_hour < 1:
            raise ValueError("max_wakes_per_hour must be >= 1")
        if self.fan_pct is not None and self.fan_pct != -1 and not 0 < self.fan_pct <= 100:
            raise ValueError("fan_pct must be -1 (auto), 1..100 or None")


def _in_work(snap: Snapshot) -> bool:
    return snap.state in (MinerState.MINING, MinerState.STARTING)


def _ready(snap: Snapshot) -> bool:
    """In Work and calibrated (a firmware that does not report ADJ counts as calibrated once hashing)."""
    if snap.calibrated is None:
        return snap.state == MinerState.MINING
    return _in_work(snap) and snap.calibrated


class HeaterMachine:
    """One miner as a heater. See the module docstring for the states and the rules."""

    def __init__(
        self,
        heater_id: str,
        spec: ModelSpec,
        settings: HeaterSettings | None = None,
        now: float = 0.0,
        *,
        has_plug: bool = False,
        poll_phase: float | None = None,
    ) -> None:
        if poll_phase is not None and not 0.0 <= poll_phase < 1.0:
            raise ValueError("poll_phase must be in [0, 1)")
        self.heater_id = heater_id
        # Settled polls (STANDBY, RUNNING) fall on this heater's own slot of the poll period (a fraction of it,
        # on the monotonic clock), so that many heaters' polls are spread over the period instead of bunching.
        # None: every settled poll one period after the last look.
        self.poll_phase = poll_phase
        self.spec = spec
        self.settings = settings or HeaterSettings()
        self.has_plug = has_plug
        if spec.has_standby:
            self.off_method = OffMethod.SOFT
        elif has_plug:
            self.off_method = OffMethod.PLUG
        else:
            self.off_method = OffMethod.LOWEST
        self._state = S.UNKNOWN
        self._state_since = now
        self._events: list[TransitionEvent] = []
        # what is wanted
        self._requested: str | None = None  # the allocator's latest want
        self._req_safety = False
        self._req_reason = ""
        self._target: str | None = None  # effective want (requested, clamped by a safety cap)
        self._target_safety = False
        self._target_reason = ""
        self._ceiling: int | None = None  # safety cap: ladder index, -1 = standby
        self._ceiling_until = NEVER
        self._ceiling_reason = ""
        # what is known
        self._snap: Snapshot | None = None
        self._snap_at = NEVER
        self._last_ok = False  # the last poll answered
        self._confirmed: str | None = None
        self._fan_ok = True  # no blind fan command at start; cleared by a wake or a reboot
        self._believed_on = False  # we believe the miner is out of standby (woken by us or found on)
        self._in_wake = False  # a wake attempt (softon / plug on) is under way
        # wear
        self._on_since = NEVER
        self._off_since = NEVER
        self._level_since = NEVER
        self._wakes: list[float] = []
        # the current phase
        self._inflight: Command | None = None
        self._next_at = now  # next POLL / retry
        self._deadline = math.inf
        self._cmd_due = False  # the phase's command (softon, set level, ...) must be (re)sent
        self._sched_at = NEVER  # monotonic time the last soft on/off (or plug command) takes effect
        self._set_target: str | None = None  # level being set (SETTING_MODE, STOPPING to lowest)
        self._busy_delay = self.settings.busy_retry_s
        self._readback_left = 0
        self._no_answer = 0  # consecutive unanswered polls (plug off verification)
        self._reboot_grace_used = False
        self._failures = 0
        self._last_failure = ""
        self._fault_good_since: float | None = None
        self._fault_delay = self.settings.backoff_base_s  # next unanswered-poll delay in FAULT
        self._fault_hashing_since: float | None = None  # in FAULT: answering, healthy and hashing since
        self._park_sent_at = NEVER
        self._want_seen_at = NEVER  # the last `want()` call (changed or not)
        self._soft_at_miner: int | None = None  # miner time of the last soft on/off sent
        self._restored: HeaterWear | None = None  # wear restored after a restart, until the first poll

    # ------------------------------------------------------------------ observables

    @property
    def state(self) -> HeaterState:
        return self._state

    @property
    def confirmed_level(self) -> str | None:
        """The level the miner was read back in; None in standby (also "lowest level" standby) or unknown."""
        return self._confirmed

    @property
    def wanted_level(self) -> str | None:
        """The level the machine converges to: the request, clamped by an active safety cap."""
        return self._target

    @property
    def requested_level(self) -> str | None:
        """The last level passed to `want()` (before any safety cap)."""
        return self._requested

    @property
    def available(self) -> bool:
        return self._state != S.FAULT

    @property
    def usable(self) -> bool:
        """Can give heat now: available, or in FAULT but answering again, healthy and hashing (it is held in
        its level while its room wants heat and recovers after `fault_recover_s` of good answers)."""
        return self.available or self._fault_hashing_since is not None

    @property
    def last_snapshot(self) -> Snapshot | None:
        return self._snap

    @property
    def failures(self) -> int:
        """Consecutive failures since the machine last settled (RUNNING / verified STANDBY)."""
        return self._failures

    @property
    def last_failure(self) -> str:
        return self._last_failure

    @property
    def in_flight(self) -> Command | None:
        return self._inflight

    @property
    def safety_cap(self) -> str | None:
        """"standby", a level name, or None when no safety cap is active."""
        if self._ceiling is None:
            return None
        return "standby" if self._ceiling < 0 else self.spec.levels[self._ceiling].name

    @property
    def estimated_wall_w(self) -> float:
        """Wall watts now: the last answered poll's PS[6], else the ladder (0 with the plug off)."""
        if self._state == S.STANDBY and self.off_method == OffMethod.PLUG:
            return 0.0
        if self._last_ok and self._snap is not None and self._snap.power_w is not None:
            return self._snap.power_w
        if self._confirmed is not None:
            return self.spec.level(self._confirmed).wall_w
        if self._state == S.STANDBY:
            if self.off_method == OffMethod.LOWEST:
                return self.spec.bottom_level.wall_w
            return self.spec.standby_wall_w
        if self._snap is not None and self._last_ok:
            lv = self.spec.level_for(self._snap.workmode, self._snap.worklevel)
            if self._snap.state == MinerState.MINING and lv is not None:
                return lv.wall_w
            if self._snap.state == MinerState.STANDBY:
                return self.spec.standby_wall_w
        return 0.0

    # --- read by core/explain.py (why a heater is not doing what its room wants)

    @property
    def state_since(self) -> float:
        """Monotonic time the machine entered its current state (a retry within BACKOFF does not reset it)."""
        return self._state_since

    @property
    def safety_cap_until(self) -> float | None:
        return None if self._ceiling is None else self._ceiling_until

    @property
    def safety_cap_reason(self) -> str:
        return "" if self._ceiling is None else self._ceiling_reason

    def drain_events(self) -> list[TransitionEvent]:
        out, self._events = self._events, []
        return out

    # ------------------------------------------------------------------ wear across restarts

    def export_wear(self, now: float) -> HeaterWear:
        """The wear state to persist: wakes of the last hour, on/off/level since, a pending soft on/off."""

        def known(t: float) -> float | None:
            return None if t == NEVER else t

        pending: PendingSoft | None = None
        if self._restored is not None:  # not polled yet since the restart: keep what was restored
            pending = self._restored.pending
        elif self._soft_at_miner is not None and not self._cmd_due and self.off_method == OffMethod.SOFT:
            if self._state == S.WAKING:
                pending = PendingSoft(CommandKind.SOFT_ON, self._soft_at_miner)
            elif self._state == S.STOPPING:
                pending = PendingSoft(CommandKind.SOFT_OFF, self._soft_at_miner)
        return HeaterWear(
            wakes=tuple(t for t in self._wakes if t > now - WAKE_WINDOW_S),
            on_since=known(self._on_since) if self._believed_on else None,
            off_since=known(self._off_since),
            level_since=known(self._level_since),
            level=self._confirmed,
            pending=pending,
        )

    def restore_wear(self, wear: HeaterWear, now: float) -> None:
        """Resume the wear state of a previous process (times already on this machine's clock).

        Only before the first poll (state UNKNOWN). The first poll then reconciles with it: a run we woke keeps
        its `min_on_s`, a verified standby its `min_off_s`, the wake history counts against the cap, and a soft
        on/off still pending on the miner is waited for instead of being sent again. Times in the future (a
        clock that went back) are taken as now."""
        if self._state != S.UNKNOWN or self._snap is not None:
            raise RuntimeError(f"{self.heater_id}: wear can only be restored before the first poll")
        if wear.pending is not None and wear.pending.kind not in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF):
            raise ValueError(f"pending must be a soft on or off, not {wear.pending.kind}")
        latest_wake = now + self.settings.soft_on_lead_s + 1.0

        def past(t: float | None) -> float:
            return NEVER if t is None or not math.isfinite(t) else min(t, now)

        self._wakes = sorted(min(t, latest_wake) for t in wear.wakes
                             if math.isfinite(t) and t > now - WAKE_WINDOW_S)
        self._on_since = past(wear.on_since)
        self._off_since = past(wear.off_since)
        self._level_since = past(wear.level_since)
        self._restored = wear

    # ------------------------------------------------------------------ wear rules

    def wakes_last_hour(self, now: float) -> int:
        return sum(1 for t in self._wakes if t > now - WAKE_WINDOW_S)

    def earliest_wake(self, now: float) -> float:
        """Earliest time the wear rules let a wake start (`now` if already allowed)."""
        st = self.settings
        if self.off_method == OffMethod.LOWEST:
            return max(now, self._level_since + st.min_level_dwell_s)
        t = max(now, self._off_since + st.min_off_s)
        recent = [w for w in self._wakes if w > now - WAKE_WINDOW_S]
        if len(recent) >= st.max_wakes_per_hour:
            t = max(t, recent[-st.max_wakes_per_hour] + WAKE_WINDOW_S)
        return t

    def earliest_stop(self, now: float) -> float:
        """Earliest time a non-safety standby may start (`now` if already allowed)."""
        if self.off_method == OffMethod.LOWEST:
            return max(now, self._level_since + self.settings.min_level_dwell_s)
        return max(now, self._on_since + self.settings.min_on_s)

    def earliest_level_change(self, now: float) -> float:
        """Earliest time a non-safety level change of a running heater may start."""
        return max(now, self._level_since + self.settings.min_level_dwell_s)

    def earliest_change(self, now: float) -> float:
        """Earliest time a non-safety change would be acted on: a wake when off, a level change when
        on (stopping a running heater also needs `can_stop`: see `earliest_stop`). `now` when allowed."""
        if self._state in (S.STANDBY, S.UNKNOWN) or (self._confirmed is None and self._state not in _ON_STATES):
            return self.earliest_wake(now)
        return self.earliest_level_change(now)

    def can_wake(self, now: float) -> bool:
        """True when the wear rules (min off time, wakes per hour) allow a wake now; False in FAULT."""
        return self.available and self.earliest_wake(now) <= now

    def can_stop(self, now: float) -> bool:
        """True when the minimum on time allows a non-safety standby now."""
        return self.earliest_stop(now) <= now

    # ------------------------------------------------------------------ inputs

    def want(self, level: str | None, now: float, *, reason: str = "", safety: bool = False) -> None:
        """Ask for a level (a name of the model's ladder) or None for standby. Idempotent."""
        if level is not None and level not in self.spec.level_names:
            raise ValueError(f"{self.spec.display} has no level {level!r}; known: {', '.join(self.spec.level_names)}")
        self._want_seen_at = now
        if level == self._requested:
            if safety and not self._req_safety:
                self._req_safety, self._req_reason = True, reason
                self._retarget(now)
            return
        self._requested, self._req_safety, self._req_reason = level, safety, reason
        self._retarget(now)

    def next_due(self, now: float) -> float:
        """When `step()` next needs calling if nothing else happens (for virtual-time drivers);
        calling it earlier or more often is harmless."""
        if self._inflight is not None:
            return math.inf
        cands = [self._next_at]
        if self._state in _TRANSITIONAL:
            cands.append(self._deadline)
        if self._ceiling is not None:
            cands.append(self._ceiling_until)
        if self._state == S.STANDBY and self._target is not None:
            cands.append(self.earliest_wake(now))
        if self._target is None and (self._state == S.RUNNING or (
                self._state in _TRANSITIONAL and self._state != S.STOPPING and self.off_method != OffMethod.LOWEST)):
            cands.append(self.earliest_stop(now))  # the stop may start then (STOPPING has: it waits for its polls)
        if self._state == S.RUNNING and self._target is not None and self._target != self._confirmed:
            cands.append(self.earliest_level_change(now))
        if self._state == S.FAULT and self._cmd_due:
            cands.append(now)  # the park command is due
        elif self._state == S.FAULT and self._fault_should_park(now):
            cands.append(self._park_sent_at + self.settings.soft_retry_s)  # the park again, if still hashing
        return max(now, min(cands))

    def step(self, now: float) -> list[Command]:
        """The command to send now ([] when one is outstanding or nothing is due)."""
        if self._inflight is not None:
            return []
        self._retarget(now)
        cmd = self._decide(now)
        if cmd is None:
            return []
        self._inflight = cmd
        return [cmd]

    def on_outcome(self, command: Command, outcome: Outcome, now: float) -> None:
        """Report what happened to the command `step()` returned. Outcomes of anything else are ignored."""
        if self._inflight is None or command != self._inflight:
            return
        self._inflight = None
        self._retarget(now)
        if command.kind == CommandKind.POLL:
            if outcome.ok and outcome.snapshot is not None:
                rebooted = self._record(outcome.snapshot, now)
                self._poll_ok(outcome.snapshot, now, rebooted)
            else:
                self._last_ok = False
                self._poll_failed(outcome, now)
            return
        self._command_done(command, outcome, now)

    # ------------------------------------------------------------------ internals: wanting

    def _index(self, level: str | None) -> int:
        return -1 if level is None else self.spec.level_names.index(level)

    def _retarget(self, now: float) -> None:
        if self._ceiling is not None and now >= self._ceiling_until:
            self._ceiling = None
        eff, safety, reason = self._requested, self._req_safety, self._req_reason
        if self._ceiling is not None and self._index(eff) > self._ceiling:
            eff = None if self._ceiling < 0 else self.spec.levels[self._ceiling].name
            safety, reason = True, self._ceiling_reason
        if eff != self._target:
            self._target, self._target_safety, self._target_reason = eff, safety, reason
        elif safety and not self._target_safety:
            self._target_safety, self._target_reason = True, reason

    def _cap(self, index: int, reason: str, now: float) -> None:
        """Safety: cap the heater at ladder `index` (-1 = standby) for `safety_hold_s`."""
        if self._ceiling is None or index < self._ceiling:
            self._ceiling = index
            self._ceiling_reason = f"safety: {reason}"
        self._ceiling_until = now + self.settings.safety_hold_s
        self._retarget(now)

    def _safety_check(self, snap: Snapshot, now: float) -> None:
        if snap.state != MinerState.MINING:
            return
        if snap.fan_rpm == 0:
            self._cap(-1, "fan at 0 rpm while hashing", now)
            return
        limit = self.spec.chip_temp_limit_c
        if snap.chip_temp_max_c is not None and snap.chip_temp_max_c > limit:
            lv = self.spec.level_for(snap.workmode, snap.worklevel)
            idx = self._index(lv.name) - 1 if lv is not None else -1
            self._cap(idx, f"chip {snap.chip_temp_max_c:.0f} °C over {limit:.0f} °C", now)

    def _stop_allowed(self, now: float) -> bool:
        return self._target_safety or self.can_stop(now)

    def _level_change_allowed(self, now: float, level: str | None) -> bool:
        if self._target_safety and self._index(level) < self._index(self._confirmed):
            return True
        return self.earliest_level_change(now) <= now

    def _why(self, default: str) -> str:
        return self._target_reason or default

    # ------------------------------------------------------------------ internals: state

    def _go(self, to: HeaterState, now: float, reason: str) -> None:
        if to not in TRANSITIONS[self._state]:
            raise InvalidTransition(f"{self.heater_id}: {self._state} → {to} is not allowed ({reason})")
        self._events.append(TransitionEvent(now, self.heater_id, self._state, to, reason))
        if to != self._state:
            self._state_since = now
        self._state = to

    def _set_confirmed(self, level: str | None, now: float) -> None:
        if level != self._confirmed:
            self._confirmed = level
            self._level_since = now

    def _settled(self) -> None:
        self._failures = 0
        self._last_failure = ""

    def _settled_poll_at(self, now: float) -> float:
        """When to poll a settled heater next: at this heater's next slot of the period (`poll_phase`), so never
        later than one period from now; once on the slot, every period. Without a phase: one period from now."""
        period = self.settings.poll_interval_s
        if self.poll_phase is None:
            return now + period
        to_slot = (self.poll_phase * period - now) % period
        return now + (to_slot if to_slot > 1e-3 else period)

    def _fail(self, now: float, reason: str) -> None:
        self._failures += 1
        self._last_failure = reason
        self._cmd_due = False
        if self._failures >= self.settings.max_failures:
            self._go(S.FAULT, now, f"{self._failures} consecutive failures; last: {reason}")
            self._confirmed = None
            self._believed_on = False
            self._in_wake = False
            self._fault_good_since = None
            self._fault_hashing_since = None
            self._fault_delay = self.settings.backoff_base_s
            self._park_sent_at = NEVER
            self._next_at = now + self.settings.poll_interval_s
            return
        delay = min(self.settings.backoff_base_s * 2 ** (self._failures - 1), self.settings.backoff_max_s)
        self._go(S.BACKOFF, now, f"{reason}; retry {self._failures}/{self.settings.max_failures} in {delay:.0f} s")
        self._next_at = now + delay

    def _record(self, snap: Snapshot, now: float) -> bool:
        """Keep the snapshot; True when it shows a reboot since the previous answered poll."""
        prev, prev_at = self._snap, self._snap_at
        self._snap, self._snap_at, self._last_ok = snap, now, True
        if prev is None or prev.uptime_s is None or snap.uptime_s is None:
            return False
        if snap.uptime_s < prev.uptime_s - 2:
            return True
        return snap.uptime_s + self.settings.reboot_tolerance_s < prev.uptime_s + (now - prev_at)

    def _miner_time(self, now: float, lead: float) -> int | None:
        """A timestamp `lead` s ahead on the miner's clock, from a fresh snapshot (None if there is none)."""
        snap = self._snap
        if snap is None or snap.miner_time is None or now - self._snap_at > self.settings.clock_fresh_s:
            return None
        return math.ceil(snap.miner_time + (now - self._snap_at) + lead)

    def _cmd(
        self, kind: CommandKind, *, level: str | None = None, fan_pct: int | None = None, at: int | None = None
    ) -> Command:
        return Command(self.heater_id, kind, level=level, fan_pct=fan_pct, at_miner_time=at)

    def _poll(self) -> Command:
        return Command(self.heater_id, CommandKind.POLL)

    # entering phases

    def _note_wake(self, now: float) -> None:
        """Count a wake starting now; wakes older than `WAKE_HISTORY_S` are dropped (they cannot count again)."""
        cutoff = now - WAKE_HISTORY_S
        if self._wakes and self._wakes[0] <= cutoff:
            self._wakes = [t for t in self._wakes if t > cutoff]
        self._wakes.append(now)

    def _enter_waking(self, now: float) -> None:
        self._go(S.WAKING, now, self._why(f"wake for {self._target}"))
        self._note_wake(now)
        self._on_since = now
        self._believed_on = True
        self._in_wake = True
        self._fan_ok = False
        self._deadline = now + self.settings.wake_timeout_s
        self._cmd_due = True
        self._reboot_grace_used = False
        self._next_at = now

    def _enter_verifying(self, now: float, reason: str, *, new_deadline: bool = True) -> None:
        self._go(S.VERIFYING, now, reason)
        if new_deadline:
            self._deadline = now + self.settings.wake_timeout_s
            self._reboot_grace_used = False
        self._next_at = now + self.settings.fast_poll_s

    def _enter_setting(self, level: str, now: float, reason: str) -> None:
        self._go(S.SETTING_MODE, now, reason)
        self._set_target = level
        self._deadline = now + self.settings.confirm_timeout_s
        self._busy_delay = self.settings.busy_retry_s
        self._cmd_due = True
        self._next_at = now

    def _enter_stopping(self, now: float, reason: str) -> None:
        self._go(S.STOPPING, now, reason)
        st = self.settings
        self._deadline = now + (st.confirm_timeout_s if self.off_method == OffMethod.LOWEST else st.stop_timeout_s)
        self._set_target = self.spec.bottom_level.name
        self._busy_delay = st.busy_retry_s
        self._no_answer = 0
        self._cmd_due = True
        self._next_at = now

    def _enter_standby(self, now: float, reason: str, *, verified: bool = True) -> None:
        self._go(S.STANDBY, now, reason)
        self._set_confirmed(None, now)
        self._believed_on = self.off_method == OffMethod.LOWEST
        self._in_wake = False
        if self.off_method == OffMethod.LOWEST:
            self._level_since = now
        if verified:
            self._settled()
        self._next_at = self._settled_poll_at(now)

    def _enter_running(self, level: str, now: float, reason: str) -> None:
        self._go(S.RUNNING, now, reason)
        self._set_confirmed(level, now)
        self._in_wake = False
        self._settled()
        self._next_at = self._settled_poll_at(now)

    def _after_level(self, level: str, now: float, reason: str) -> None:
        """The miner is verified in `level`: set the fan if due, else RUNNING (STANDBY for the lowest
        level standing in for standby)."""
        if self.off_method == OffMethod.LOWEST and self._target is None and level == self.spec.bottom_level.name:
            self._enter_standby(now, f"{reason} (standby)")
            return
        self._set_confirmed(level, now)
        if not self._fan_ok and self.settings.fan_pct is not None:
            self._go(S.SETTING_FAN, now, reason)
            self._cmd_due = True
            self._deadline = math.inf
            self._next_at = now
        else:
            self._enter_running(level, now, reason)

    def _settle_ready(self, snap: Snapshot, now: float, reason: str) -> None:
        """The miner is In Work and calibrated: go where the target says."""
        lv = self.spec.level_for(snap.workmode, snap.worklevel)
        cur = lv.name if lv is not None else None
        bottom = self.spec.bottom_level.name
        if self._target is None:
            if self.off_method == OffMethod.LOWEST and cur == bottom:
                self._enter_standby(now, f"{reason}; in the lowest level (standby)")
                return
            if self._stop_allowed(now):
                self._enter_stopping(now, self._why(f"{reason}; standby wanted"))
                return
            goal = cur or bottom  # standby deferred: hold the level it is in
        else:
            goal = self._target
        if cur == goal:
            self._after_level(goal, now, f"{reason}; in {goal}")
        else:
            self._enter_setting(goal, now, f"{reason}; in {cur or 'an unknown mode'}, setting {goal}")

    def _reconcile(self, snap: Snapshot, now: float, reason: str) -> None:
        """Compare what the miner shows with what is wanted and move to the state that converges."""
        if snap.state == MinerState.FAULT:
            self._fail(now, f"{reason}; miner reports a fault")
            return
        if self.off_method == OffMethod.SOFT and snap.state == MinerState.STANDBY:
            if self._believed_on:
                self._off_since = now
            if self._state != S.STANDBY:
                self._enter_standby(now, f"{reason}; found in standby")
            return
        if not self._believed_on:
            self._believed_on = True
            self._on_since = NEVER  # on, but not by our wake: standby may be re-asserted at once
        if self.off_method != OffMethod.LOWEST and self._target is None and self._stop_allowed(now):
            if self._state != S.STOPPING:
                self._enter_stopping(now, f"{reason}; hashing, standby wanted")
            return
        if not _ready(snap):
            if self._state != S.VERIFYING:
                self._enter_verifying(now, f"{reason}; waiting for In Work + calibrated")
            return
        if self._state == S.RUNNING:
            lv = self.spec.level_for(snap.workmode, snap.worklevel)
            if lv is not None and lv.name == self._confirmed == self._target:
                return
        self._settle_ready(snap, now, reason)

    # ------------------------------------------------------------------ internals: deciding

    def _decide(self, now: float) -> Command | None:
        st = self._state
        if st == S.UNKNOWN or st == S.BACKOFF or st == S.FAULT:
            return self._decide_polling_only(now)
        if st == S.STANDBY:
            return self._decide_standby(now)
        if st == S.RUNNING:
            return self._decide_running(now)
        # transitional
        soft_or_plug = self.off_method != OffMethod.LOWEST
        if st != S.STOPPING and self._target is None and soft_or_plug and self._stop_allowed(now):
            self._enter_stopping(now, self._why("standby wanted"))
            return self._decide(now)
        if now >= self._deadline:
            self._fail(now, self._timeout_reason())
            return None
        if st == S.WAKING:
            return self._decide_waking(now)
        if st == S.SETTING_MODE:
            goal = self._setting_goal()
            if goal != self._set_target:
                self._set_target, self._cmd_due, self._next_at = goal, True, now
            return self._decide_set_level(now)
        if st == S.SETTING_FAN:
            if self._cmd_due:
                self._cmd_due = False
                return self._cmd(CommandKind.SET_FAN, fan_pct=self.settings.fan_pct)
            return None
        if st == S.STOPPING:
            return self._decide_stopping(now)
        return self._poll() if now >= self._next_at else None  # VERIFYING

    def _setting_goal(self) -> str | None:
        if self._target is not None:
            return self._target
        return self.spec.bottom_level.name if self.off_method == OffMethod.LOWEST else self._set_target

    def _timeout_reason(self) -> str:
        st = self.settings
        if self._state in (S.WAKING, S.VERIFYING):
            return f"not In Work + calibrated within {st.wake_timeout_s:.0f} s"
        if self._state == S.SETTING_MODE:
            return f"{self._set_target} not confirmed within {st.confirm_timeout_s:.0f} s"
        return "standby not confirmed in time"

    def _decide_polling_only(self, now: float) -> Command | None:
        if self._state == S.FAULT:
            retry_at = self._park_sent_at + self.settings.soft_retry_s
            if self._fault_should_park(now) and not self._cmd_due and now >= retry_at:
                self._cmd_due = True
            if self._cmd_due:
                self._cmd_due = False
                self._park_sent_at = now
                self._fault_good_since = now  # the recovery run counts from the park
                return self._park_command(now)
        return self._poll() if now >= self._next_at else None

    def _fault_should_park(self, now: float) -> bool:
        """In FAULT, answering and hashing: park it when nothing wants heat from it — a safety standby or room
        off at once; a plain "no heat" only when the room decided it after seeing the heater usable again
        (a want made while it was unusable says nothing about it)."""
        since = self._fault_hashing_since
        if since is None or self._target is not None:
            return False
        return self._target_safety or self._want_seen_at > since

    def _park_command(self, now: float) -> Command:
        if self.off_method == OffMethod.SOFT:
            at = self._miner_time(now, self.settings.soft_off_lead_s)
            if at is not None:
                return self._cmd(CommandKind.SOFT_OFF, at=at)
            return self._poll()
        return self._cmd(CommandKind.SET_LEVEL, level=self.spec.bottom_level.name)

    def _decide_standby(self, now: float) -> Command | None:
        if self._target is not None:
            if self.off_method == OffMethod.LOWEST:
                if self._level_change_allowed(now, self._target):
                    self._enter_setting(self._target, now, self._why(f"{self._target} wanted"))
                    return self._decide_set_level(now)
            elif self.can_wake(now):
                self._enter_waking(now)
                return self._decide_waking(now)
        return self._poll() if now >= self._next_at else None

    def _decide_running(self, now: float) -> Command | None:
        t = self._target
        if t is None:
            if self.off_method == OffMethod.LOWEST:
                if self._level_change_allowed(now, None):
                    if self._confirmed == self.spec.bottom_level.name:
                        self._enter_standby(now, self._why("standby wanted; already in the lowest level"))
                        return None
                    self._enter_stopping(now, self._why("standby wanted: lowest level"))
                    return self._decide_stopping(now)
            elif self._stop_allowed(now):
                self._enter_stopping(now, self._why("standby wanted"))
                return self._decide_stopping(now)
        elif t != self._confirmed and self._level_change_allowed(now, t):
            self._enter_setting(t, now, self._why(f"{self._confirmed} → {t}"))
            return self._decide_set_level(now)
        return self._poll() if now >= self._next_at else None

    def _decide_waking(self, now: float) -> Command | None:
        if self._cmd_due:
            if self.off_method == OffMethod.PLUG:
                self._cmd_due = False
                self._sched_at = now
                return self._cmd(CommandKind.PLUG_ON)
            at = self._miner_time(now, self.settings.soft_on_lead_s)
            if at is None:  # no fresh miner clock: read it first (at the poll pace: it may not answer)
                return self._poll() if now >= self._next_at else None
            self._cmd_due = False
            self._sched_at = now + self.settings.soft_on_lead_s
            self._soft_at_miner = at
            # count the wake when it happens on the miner (a resent softon moves it; +1 s for rounding up)
            self._wakes[-1] = self._sched_at + 1.0
            return self._cmd(CommandKind.SOFT_ON, at=at)
        return self._poll() if now >= self._next_at else None

    def _decide_set_level(self, now: float) -> Command | None:
        if now < self._next_at:
            return None
        if self._cmd_due:
            self._cmd_due = False
            return self._cmd(CommandKind.SET_LEVEL, level=self._set_target)
        return self._poll()

    def _decide_stopping(self, now: float) -> Command | None:
        if self.off_method == OffMethod.LOWEST:
            return self._decide_set_level(now)
        if self._cmd_due:
            if self.off_method == OffMethod.PLUG:
                self._cmd_due = False
                self._sched_at = now
                return self._cmd(CommandKind.PLUG_OFF)
            at = self._miner_time(now, self.settings.soft_off_lead_s)
            if at is None:  # no fresh miner clock: read it first (at the poll pace: it may not answer)
                return self._poll() if now >= self._next_at else None
            self._cmd_due = False
            self._sched_at = now + self.settings.soft_off_lead_s
            self._soft_at_miner = at
            return self._cmd(CommandKind.SOFT_OFF, at=at)
        return self._poll() if now >= self._next_at else None

    # ------------------------------------------------------------------ internals: outcomes

    def _command_done(self, cmd: Command, out: Outcome, now: float) -> None:
        st = self._state
        fast = now + self.settings.fast_poll_s
        k = out.kind
        what = f"{cmd.kind.value} {k.value}" + (f": {out.message}" if out.message else "")
        if st == S.FAULT:  # a park command: its effect is read back by the next poll
            if k == OutcomeKind.BUSY:  # calibrating: park again after the BUSY delay, not at once (no hot loop)
                self._park_sent_at = now - self.settings.soft_retry_s + self.settings.busy_retry_s
            self._next_at = now + self.settings.poll_interval_s
            return
        if cmd.kind in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF, CommandKind.PLUG_ON, CommandKind.PLUG_OFF):
            # softon often drops the connection (UNCONFIRMED) or times out: verify by polling
            if out.ok or (k == OutcomeKind.TIMEOUT and cmd.kind in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF)):
                self._next_at = max(fast, self._sched_at)
                return
            self._fail(now, what)
            return
        if cmd.kind == CommandKind.SET_LEVEL:
            if out.ok or k in (OutcomeKind.TIMEOUT, OutcomeKind.MALFORMED):  # maybe applied: read back
                self._readback_left = self.settings.readback_polls
                self._next_at = fast
            elif k == OutcomeKind.BUSY:  # calibrating: retry later (bounded by the phase deadline)
                self._cmd_due = True
                self._next_at = now + self._busy_delay
                self._busy_delay = min(self._busy_delay * 2, self.settings.busy_retry_max_s)
            else:
                self._fail(now, what)
            return
        if cmd.kind == CommandKind.SET_FAN:
            if k in (OutcomeKind.TIMEOUT, OutcomeKind.UNREACHABLE):
                self._fail(now, what)
                return
            self._fan_ok = True  # a refusal is not worth a retry loop: the firmware keeps its own fan control
            level = self._confirmed or self.spec.bottom_level.name
            note = "fan set" if out.ok else f"fan not set ({what}); firmware fan control"
            self._enter_running(level, now, f"{note}; running in {level}")
            return
        self._fail(now, what)  # REBOOT or anything unexpected

    def _poll_failed(self, out: Outcome, now: float) -> None:
        st = self._state
        no_answer = out.kind in (OutcomeKind.UNREACHABLE, OutcomeKind.TIMEOUT)
        what = f"poll {out.kind.value}" + (f": {out.message}" if out.message else "")
        plug = self.off_method == OffMethod.PLUG
        if st == S.FAULT:  # keep looking, backing off up to `fault_poll_s`: it may come back any moment
            self._fault_good_since = None
            self._fault_hashing_since = None
            self._confirmed = None
            self._next_at = now + self._fault_delay
            self._fault_delay = min(self._fault_delay * 2, self.settings.fault_poll_s)
        elif plug and no_answer and st in (S.UNKNOWN, S.STANDBY, S.STOPPING):
            self._no_answer += 1
            self._next_at = now + self.settings.fast_poll_s
            if st == S.STANDBY:
                self._next_at = self._settled_poll_at(now)
            elif self._no_answer >= self.settings.plug_off_polls:
                verified = st == S.STOPPING
                self._enter_standby(now, "no answer: plug off" if verified else "no answer: plug assumed off",
                                    verified=verified)
                if verified:
                    self._off_since = now
        elif st in _TRANSITIONAL:
            self._next_at = now + self.settings.fast_poll_s  # expected while booting; the deadline bounds it
        else:
            self._fail(now, what)

    def _poll_ok(self, snap: Snapshot, now: float, rebooted: bool) -> None:
        st = self._state
        self._no_answer = 0
        fast = now + self.settings.fast_poll_s
        method = self.off_method
        lv = self.spec.level_for(snap.workmode, snap.worklevel)
        cur = lv.name if lv is not None else None
        if rebooted:
            self._fan_ok = False  # the fan setting does not survive a reboot
        if st == S.FAULT:
            self._fault_poll(snap, cur, now)
            return
        if st == S.UNKNOWN:
            restored, self._restored = self._restored, None
            if restored is not None:
                self._first_poll_restored(snap, cur, restored, now)
                return
            self._on_since = self._off_since = self._level_since = NEVER
            self._reconcile(snap, now, "first poll")
            if self._state == S.RUNNING:
                self._level_since = NEVER
            return
        if st == S.BACKOFF:
            self._reconcile(snap, now, "answers again" + ("; rebooted" if rebooted else ""))
            return
        if snap.state == MinerState.FAULT:
            self._fail(now, "miner reports In Fault")
            return
        if st in (S.RUNNING, S.VERIFYING, S.SETTING_MODE):
            self._safety_check(snap, now)
        if st == S.STANDBY:
            soft_idle = method == OffMethod.SOFT and snap.state == MinerState.STANDBY
            lowest_ok = method == OffMethod.LOWEST and not rebooted and cur == self.spec.bottom_level.name
            if soft_idle or lowest_ok:
                self._next_at = self._settled_poll_at(now)
                self._settled()
            else:
                what = "rebooted" if rebooted else f"found {snap.state.value} in {cur or 'an unknown mode'}"
                self._reconcile(snap, now, f"in standby but {what}")
            return
        if st == S.WAKING:
            if method == OffMethod.SOFT and snap.state == MinerState.STANDBY:
                if now >= self._sched_at + self.settings.soft_retry_s:
                    self._cmd_due = True  # the softon was lost: schedule it again (same wake)
                self._next_at = fast
                return
            self._enter_verifying(now, f"awake ({snap.state.value})", new_deadline=False)
            st = S.VERIFYING
        if st == S.VERIFYING:
            if rebooted and not self._reboot_grace_used:
                self._reboot_grace_used = True
                self._deadline = now + self.settings.wake_timeout_s
            if method == OffMethod.SOFT and snap.state == MinerState.STANDBY:
                if self._in_wake:
                    self._go(S.WAKING, now, "back in standby while waking: softon again")
                    self._cmd_due = True
                    self._next_at = now
                else:
                    self._reconcile(snap, now, "went to standby while verifying")
                return
            if _ready(snap):
                self._settle_ready(snap, now, "In Work and calibrated")
            else:
                self._next_at = fast
            return
        if rebooted and st in (S.SETTING_MODE, S.RUNNING, S.STOPPING):
            self._reconcile(snap, now, "rebooted")
            return
        if st == S.SETTING_MODE:
            if method == OffMethod.SOFT and snap.state == MinerState.STANDBY:
                self._reconcile(snap, now, "went to standby while setting the level")
            elif cur is not None and cur == self._setting_goal():
                self._after_level(cur, now, f"{cur} confirmed")
            elif cur is not None and cur == self._set_target:  # reached, but the target moved on meanwhile
                self._set_target, self._cmd_due, self._next_at = self._setting_goal(), True, now
            else:
                self._readback(now)
            return
        if st == S.RUNNING:
            if method == OffMethod.SOFT and snap.state == MinerState.STANDBY:
                self._reconcile(snap, now, "found in standby while running")
            elif cur != self._confirmed:
                self._reconcile(snap, now, f"level changed outside the controller: {cur or 'unknown mode'}")
            else:
                self._next_at = self._settled_poll_at(now)
            return
        if st == S.STOPPING:
            if method == OffMethod.LOWEST:
                if cur == self.spec.bottom_level.name:
                    self._enter_standby(now, "lowest level confirmed (standby)")
                else:
                    self._readback(now)
                return
            if method == OffMethod.SOFT and snap.state == MinerState.STANDBY:
                self._off_since = now
                self._enter_standby(now, "standby confirmed")
                return
            if now >= self._sched_at + self.settings.soft_retry_s:
                self._cmd_due = True  # still on well after the scheduled time: send it again
            self._next_at = fast
            return

    def _first_poll_restored(self, snap: Snapshot, cur: str | None, wear: HeaterWear, now: float) -> None:
        """The first poll after `restore_wear`: carry the previous process's wear over what the miner shows."""
        soft = self.off_method == OffMethod.SOFT
        idle = soft and snap.state == MinerState.STANDBY
        pending = wear.pending if soft else None
        effect_at = now  # when the pending soft command takes effect, on our clock
        if pending is not None and snap.miner_time is not None:
            effect_at = now + (pending.at_miner_time - snap.miner_time)
        if snap.state != MinerState.FAULT and pending is not None and pending.kind == CommandKind.SOFT_ON and idle:
            # killed inside the soft on's lead time (or the softon was lost): wait for it, do not send another
            self._go(S.WAKING, now, "restarted while a soft on is scheduled: waiting for it")
            if not self._wakes:
                self._wakes.append(effect_at + 1.0)
            if self._on_since == NEVER:
                self._on_since = now
            self._believed_on = self._in_wake = True
            self._fan_ok = False
            self._deadline = now + self.settings.wake_timeout_s
            self._reboot_grace_used = False
            self._cmd_due = False
            self._sched_at = effect_at
            self._soft_at_miner = pending.at_miner_time
            self._next_at = max(now + self.settings.fast_poll_s, effect_at)
            return
        if snap.state != MinerState.FAULT and pending is not None and pending.kind == CommandKind.SOFT_OFF and not idle:
            self._go(S.STOPPING, now, "restarted while a soft off is scheduled: waiting for it")
            self._believed_on = True
            self._confirmed = cur
            self._deadline = now + self.settings.stop_timeout_s
            self._set_target = self.spec.bottom_level.name
            self._no_answer = 0
            self._cmd_due = False
            self._sched_at = effect_at
            self._soft_at_miner = pending.at_miner_time
            self._next_at = max(now + self.settings.fast_poll_s, effect_at)
            return
        was_on = wear.on_since is not None or wear.level is not None
        if idle:
            self._on_since = NEVER
            if pending is not None and pending.kind == CommandKind.SOFT_OFF:
                self._off_since = min(now, effect_at)  # the scheduled soft off took effect meanwhile
            elif was_on:
                self._off_since = now  # believed on, found off: min_off counts from here
            self._believed_on = False
        else:
            # found on: a run we woke keeps its on-since (min_on); otherwise standby may be re-asserted at once
            self._believed_on = self._on_since != NEVER
        self._reconcile(snap, now, "first poll after a restart")
        if self._state in _ON_STATES:  # the level dwell holds only if it is still in the level it was in
            same_level = cur is not None and cur == wear.level and wear.level_since is not None
            self._level_since = min(wear.level_since, now) if same_level and wear.level_since is not None else NEVER

    def _readback(self, now: float) -> None:
        self._readback_left -= 1
        if self._readback_left <= 0 and not self._cmd_due:
            self._cmd_due = True  # accepted but not applied: send again
        self._next_at = now + self.settings.fast_poll_s

    def _fault_poll(self, snap: Snapshot, cur: str | None, now: float) -> None:
        st = self.settings
        self._next_at = now + st.poll_interval_s
        self._fault_delay = st.backoff_base_s
        if snap.state == MinerState.FAULT:
            self._fault_good_since = self._fault_hashing_since = None
            self._confirmed = None
            return
        if self.off_method == OffMethod.SOFT:
            parked = snap.state == MinerState.STANDBY
        else:
            parked = cur == self.spec.bottom_level.name
        if parked:
            self._fault_hashing_since = None
            self._confirmed = None
        else:
            if self._fault_hashing_since is None:
                self._fault_hashing_since = now
            self._confirmed = cur  # read back: it gives heat in this level
            self._safety_check(snap, now)
            self._retarget(now)
            if self._fault_should_park(now):
                self._fault_good_since = now  # the recovery run counts from parked
                if now >= self._park_sent_at + st.soft_retry_s:
                    self._cmd_due = True
                    self._next_at = now
                return
        if self._fault_good_since is None:
            self._fault_good_since = now
        if now - self._fault_good_since >= st.fault_recover_s:
            self._failures = 0
            self._fault_hashing_since = None
            self._on_since = NEVER  # not woken by this machine: standby may be re-asserted at once
            if parked:
                self._off_since = now
                self._believed_on = False
            else:
                self._believed_on = True
            self._reconcile(snap, now, f"recovered: {st.fault_recover_s:.0f} s of good answers")
