"""Allocator: a room's heat demand (W) → the wanted level of each of its heaters.

Pure and stateful (it remembers demand history, PWM cycles and run time): no I/O, `now` is float seconds on the
injected monotonic clock. Call `allocate()` once per control step with the heaters as the state machines see them.

Rules (`Allocator`):

1. Ladders. Each heater climbs its own model ladder (`ModelSpec.levels`, watts from `HeaterView.levels_w` when the
   household overrides them). A model without standby (Nano 3S) and without a smart plug cannot be switched off:
   its lowest level is its "off" and it is regulated on the rungs above.
2. How many heaters run. Heaters are ordered (below); the first n run. n grows as soon as the short-window
   (5 min) mean demand exceeds what the running ones can give; it shrinks only when the running set has been
   unchanged for the long window (45 min) and the mean demand over that window is below
   `standby_fraction` (50 %) of the lead's lowest level (last heater → standby) or below `drop_fraction` (90 %)
   of what n − 1 heaters can give. A small dip therefore never puts a heater to standby; a long low spell does.
   A demand from a plan that has already decided its stops and priced its wakes (`allocate(planned=True)`: mpc
   with its model) uses `planned_standby_window_s` (10 min) for that window instead: the wait is for pid's noise.
   A heater in standby wakes only when the smoothed demand (below) reaches `wake_fraction` (100 %) of its lowest
   level: between 50 % and 100 % nothing changes (hysteresis), so warm afternoons do not cycle standby.
   For a heater that cannot be switched off the fractions apply to its first step up from "off" (Nano 3S:
   Low 70 W → Mid 100 W: it leaves Low at 100 W and falls back below 85 W), and the ladder watts of a running
   heater are its whole output (its Low is not added again on top).
3. Between levels. Levels, duty and wakes follow an EMA of the demand (`smooth_s`, 10 min; a jump larger than
   `snap_fraction` of the capacity is followed at once). The demand is filled heater by heater in order, rung by
   rung; the one heater whose next rung would overshoot alternates between its two adjacent levels over a long
   PWM cycle (45 min): the upper level for duty × cycle (duty = the fraction of the rung step needed), then the
   lower one. That step (heater and rung pair) is sticky: it is kept while the demand stays within it ±
   `pair_hysteresis` (30 %) of its size, the duty clamped to 0..1, so noise at a rung boundary neither moves the
   pair nor restarts the cycle. Segments shorter than `min_segment_s` are not started; the time owed is carried
   into the next cycle so the mean stays right. PWM never uses standby: stopping and waking a miner is slow and
   capped.
4. Rotation. Among equals (same model and ladder) one heater leads (runs first and climbs first). Once per
   `rotate_period_s` (a day) the lead passes to the equal with the least accumulated run time, unless that one
   has run more than `rotate_margin` of a period longer; when the new lead takes over, the old one keeps running
   until the new one is up.
   Unequal heaters are ordered by capacity, largest first.
5. Permissions. Unavailable heaters (fault, unreachable) get None and are not counted. A change the view says is
   not allowed (can_wake / can_stop / can_change false: wake caps, minimum on/off, level dwell) is never
   returned: the heater keeps its current level instead.

`SimpleAllocator` is the switch behaviour of the bang-bang and TPI baselines: demand > 0 → the top level of as
many heaters as the demand covers (at least one), 0 → standby.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from thermostat.domain.spec import ModelSpec

_EPS = 1e-6
_FULL_SHARE = 0.99  # a smoothed demand this close to a heater's top level counts as asking for all of it


@dataclass(frozen=True)
class _Rungs:
    ladder: tuple[tuple[str, float], ...]  # (level name, watts) ascending
    above_lowest: tuple[tuple[str, float], ...]  # the rungs of a heater that cannot stop (its lowest is "off")
    group: tuple[str, tuple[float, ...]]  # (model key, ladder watts): equals share a group


@dataclass(frozen=True)
class HeaterView:
    """What the allocator needs to know about one heater at this step.

    id: heater id; spec: its model row; levels_w: the usable ladder as level name → wall watts (empty = the
    model's whole ladder at nominal watts; when given, only the named levels are used, with these watts);
    current: the confirmed or wanted level (None = standby / plug off); available: False for a heater in fault or
    unreachable; can_wake / can_stop / can_change: whether the heater state machine would accept a wake, a stop,
    or a level change now (wake caps, minimum off/on times, level dwell); has_plug: a smart plug can cut it
    (makes a model without standby switchable: None then means plug off).
    """

    id: str
    spec: ModelSpec
    levels_w: Mapping[str, float] = field(default_factory=dict)
    current: str | None = None
    available: bool = True
    can_wake: bool = True
    can_stop: bool = True
    can_change: bool = True
    has_plug: bool = False

    def ladder(self) -> tuple[tuple[str, float], ...]:
        """(level name, watts) ascending."""
        return self._rungs.ladder

    @cached_property
    def _rungs(self) -> _Rungs:
        # worked out once per view (the engine hands the same view again while a heater's state is unchanged)
        if self.levels_w:
            known = set(self.spec.level_names)
            unknown = [name for name in self.levels_w if name not in known]
            if unknown:
                raise ValueError(f"heater {self.id}: {self.spec.display} has no level {unknown[0]!r}; "
                                 f"known: {', '.join(self.spec.level_names)}")
            rungs = [(name, float(w)) for name, w in self.levels_w.items()]
        else:
            rungs = [(lv.name, lv.wall_w) for lv in self.spec.levels]
        ladder = tuple(sorted(rungs, key=lambda r: r[1]))
        return _Rungs(ladder, ladder[1:], (self.spec.key, tuple(w for _, w in ladder)))

    @property
    def group(self) -> tuple[str, tuple[float, ...]]:
        """Which heaters are equals (same model and ladder watts): the lead rotates among them."""
        return self._rungs.group

    # The properties below are asked for many times per step and depend only on the (frozen) fields: worked out
    # once per view (the engine hands the same view again while a heater's state stays the same).
    @cached_property
    def switchable(self) -> bool:
        return self.spec.has_standby or self.has_plug

    @cached_property
    def off_level(self) -> str | None:
        """What "off" means for this heater: None (standby / plug off) or its lowest level."""
        if self.switchable:
            return None
        ladder = self.ladder()
        return ladder[0][0] if ladder else None

    @cached_property
    def off_w(self) -> float:
        """Heat it gives while "off" (the lowest level of an unswitchable heater; standby draw is ignored)."""
        if self.switchable:
            return 0.0
        ladder = self.ladder()
        return ladder[0][1] if ladder else 0.0

    def on_ladder(self) -> tuple[tuple[str, float], ...]:
        """The rungs it is regulated on: the whole ladder, or all but the lowest ("off") of an unswitchable one."""
        return self._on_rungs

    @cached_property
    def _on_rungs(self) -> tuple[tuple[str, float], ...]:
        rungs = self._rungs
        return rungs.ladder if self.switchable else rungs.above_lowest

    @cached_property
    def running(self) -> bool:
        return self.current is not None and self.current != self.off_level


@dataclass(frozen=True)
class AllocatorSettings:
    pwm_cycle_s: float = 2700.0  # alternate between two adjacent levels over this cycle
    min_segment_s: float = 120.0  # do not start a PWM segment shorter than this (the time is carried over)
    short_window_s: float = 300.0  # mean demand over this decides waking / adding heaters
    standby_window_s: float = 2700.0  # mean demand over this (and a stable set this long) decides stopping
    planned_standby_window_s: float = 600.0  # ... for a demand whose on/off a plan already decided (mpc)
    standby_fraction: float = 0.5  # last heater to standby below this share of its lowest level
    drop_fraction: float = 0.9  # drop the n-th heater below this share of what n − 1 heaters give
    wake_fraction: float = 1.0  # wake from standby when the smoothed demand reaches this share of the lowest level
    smooth_s: float = 600.0  # time constant of the demand EMA that picks levels, duty and wakes
    snap_fraction: float = 0.35  # ... a jump larger than this share of the running capacity is followed at once
    pair_hysteresis: float = 0.3  # keep the rung pair until the demand leaves it by this share of its step
    rotate_period_s: float = 86400.0  # lead rotation among equals at most this often
    rotate_margin: float = 0.5  # ...to an equal that has not run more than this share of a period longer
    max_dt_s: float = 600.0  # cap on one step for run-time accounting

    def __post_init__(self) -> None:
        if (self.pwm_cycle_s <= 0 or self.rotate_period_s <= 0 or self.standby_window_s <= 0
                or self.planned_standby_window_s <= 0):
            raise ValueError("pwm_cycle_s, rotate_period_s, standby_window_s and planned_standby_window_s must be > 0")
        if not 0 <= self.min_segment_s < self.pwm_cycle_s / 2:
            raise ValueError("min_segment_s must be within 0 .. pwm_cycle_s / 2")
        if self.smooth_s < 0 or self.snap_fraction <= 0 or self.pair_hysteresis < 0:
            raise ValueError("smooth_s and pair_hysteresis must be >= 0, snap_fraction > 0")


@dataclass
class _Pwm:
    pair: tuple[str, str]
    cycle_start: float
    last_t: float
    last_hi: bool
    hi_time: float = 0.0
    carry: float = 0.0
    budget: float = 0.0
    latched: bool = False


class _DemandHistory:
    """Piecewise-constant demand samples; time-weighted means over trailing windows.

    Each sample keeps the running integral of the demand up to its time, so a mean is two lookups (a bisection)
    rather than a pass over the window: the allocator asks for two means every control step."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.samples: deque[tuple[float, float, float]] = deque()  # (t, demand from t on, ∫ demand dt up to t)

    def add(self, now: float, demand: float) -> None:
        samples = self.samples
        if samples:
            t_last, d_last, cum_last = samples[-1]
            if now <= t_last:
                if now == t_last:
                    samples[-1] = (t_last, demand, cum_last)
                return
            samples.append((now, demand, cum_last + d_last * (now - t_last)))
        else:
            samples.append((now, demand, 0.0))
        while len(samples) > 2 and samples[1][0] <= now - self.keep_s:
            samples.popleft()

    def mean(self, now: float, window: float) -> float:
        samples = self.samples
        if not samples:
            return 0.0
        begin = max(now - window, samples[0][0])  # before the oldest sample nothing is known: not counted
        if now <= begin:
            return samples[-1][1]
        return (self._integral(now) - self._integral(begin)) / (now - begin)

    def _integral(self, t: float) -> float:
        """The running integral of the demand at time t (at or after the oldest sample)."""
        samples = self.samples
        last = samples[-1]
        if t < last[0]:
            last = samples[max(0, bisect.bisect_right(samples, t, key=_sample_time) - 1)]
        return last[2] + last[1] * (t - last[0])


def _sample_time(sample: tuple[float, float, float]) -> float:
    return sample[0]


class Allocator:
    """Demand → wanted level per heater (see the module docstring for the rules)."""

    def __init__(self, settings: AllocatorSettings | None = None) -> None:
        self.settings = settings or AllocatorSettings()
        s = self.settings
        self._hist = _DemandHistory(max(s.standby_window_s, s.planned_standby_window_s, s.short_window_s)
                                    + s.max_dt_s)
        self._first_t: float | None = None
        self._last_now: float | None = None
        self.runtime_s: dict[str, float] = {}
        self._epoch: int | None = None
        self._leads: dict[tuple[str, tuple[float, ...]], str] = {}
        self._pwm: dict[str, _Pwm] = {}
        self._n_seen: int | None = None
        self._n_changed_at = 0.0
        self._ema: float | None = None  # smoothed demand (W)
        self._seg: tuple[tuple[tuple[str, tuple[float, ...]], ...], int] | None = None  # (run set, fill step)

    # -- ordering -------------------------------------------------------------------------------------------

    def order(self, now: float, heaters: Sequence[HeaterView]) -> list[HeaterView]:
        """Available heaters in lead order (first = lead).

        Within each group of equals (same model and ladder) the lead changes once per rotation epoch: at the
        first call of an epoch the equal with the least run time takes over unless it has run more than
        `rotate_margin` × period longer than the current lead (so near-equal run times alternate daily).
        """
        s = self.settings
        epoch = math.floor(now / s.rotate_period_s)
        if len(heaters) == 1:  # the common room: one heater leads its own group, nothing to rotate or sort
            only = heaters[0]
            self._epoch = epoch
            self._leads[only.group] = only.id
            return [only]
        groups: dict[tuple[str, tuple[float, ...]], list[HeaterView]] = {}
        for h in heaters:
            groups.setdefault(self._group(h), []).append(h)
        new_epoch = epoch != self._epoch
        self._epoch = epoch
        for g, members in groups.items():
            lead = self._leads.get(g)
            ids = [h.id for h in members]
            if lead not in ids:
                lead = min(ids, key=lambda i: (self.runtime_s.get(i, 0.0), i))
                self._leads[g] = lead
            elif new_epoch and len(ids) > 1:
                others = [i for i in ids if i != lead]
                cand = min(others, key=lambda i: (self.runtime_s.get(i, 0.0), i))
                margin = s.rotate_margin * s.rotate_period_s
                if self.runtime_s.get(cand, 0.0) <= self.runtime_s.get(lead, 0.0) + margin:
                    self._leads[g] = cand

        def key(h: HeaterView) -> tuple[float, str, tuple[float, ...], int, float, str]:
            g = self._group(h)
            top = g[1][-1] if g[1] else 0.0
            return (-top, g[0], g[1], 0 if self._leads.get(g) == h.id else 1, self.runtime_s.get(h.id, 0.0), h.id)

        return sorted(heaters, key=key)

    @staticmethod
    def _group(h: HeaterView) -> tuple[str, tuple[float, ...]]:
        return h.group

    # -- main -----------------------------------------------------------------------------------------------

    def allocate(self, now: float, demand_w: float, heaters: Sequence[HeaterView], *,
                 planned: bool = False) -> dict[str, str | None]:
        """`planned`: the demand comes from a plan that has already decided when the heaters stop, pricing the
        wakes (mpc): stopping then waits `planned_standby_window_s` instead of `standby_window_s`."""
        s = self.settings
        demand = max(0.0, demand_w) if math.isfinite(demand_w) else 0.0
        result: dict[str, str | None] = {}
        avail: list[HeaterView] = []
        for h in heaters:
            if not h.available:
                result[h.id] = None
            elif not h.on_ladder():
                result[h.id] = h.off_level
            else:
                avail.append(h)

        # bookkeeping: run time, demand history, stability of the running set
        if self._first_t is None:
            self._first_t = now
            self._n_changed_at = now
        dt = 0.0 if self._last_now is None else min(max(0.0, now - self._last_now), s.max_dt_s)
        self._last_now = now
        for h in avail:
            if h.running:
                self.runtime_s[h.id] = self.runtime_s.get(h.id, 0.0) + dt
        self._hist.add(now, demand)
        self._smooth(demand, dt, avail)
        n_cur = sum(1 for h in avail if h.running)
        if n_cur != self._n_seen:
            self._n_seen = n_cur
            self._n_changed_at = now

        order = self.order(now, avail)
        n = self._count(now, n_cur, order, s.planned_standby_window_s if planned else s.standby_window_s)

        # which heaters: preferred order, skipping standby heaters that may not wake now
        want: list[HeaterView] = []
        for h in order:
            if len(want) >= n:
                break
            if h.running or h.can_wake:
                want.append(h)
        want_ids = {h.id for h in want}
        missing = sum(1 for h in want if not h.running)  # still waking: keep a surplus heater for the hand-over
        run_set: list[HeaterView] = []
        for h in order:
            if h.id in want_ids:
                run_set.append(h)
            elif h.running and (not h.can_stop or missing > 0):
                run_set.append(h)
                if h.can_stop:
                    missing -= 1

        # fill the (smoothed) demand rung by rung in order; the fill step being modulated is sticky
        run_ids = {h.id for h in run_set}
        base_heat = sum(h.off_w for h in avail if h.id not in run_ids)
        desired, pwm_used = self._fill(now, self._ema_now(), base_heat, run_set)
        for hid in list(self._pwm):
            if hid not in pwm_used:
                del self._pwm[hid]

        for h in avail:
            off = h.off_level
            want_level = desired.get(h.id, off)
            result[h.id] = self._permitted(h, want_level)
            st = self._pwm.get(h.id)
            if st is not None:
                st.last_hi = result[h.id] == st.pair[1]
        return result

    def _smooth(self, demand: float, dt: float, avail: Sequence[HeaterView]) -> None:
        """The demand EMA (time constant `smooth_s`); a jump beyond `snap_fraction` of the capacity is taken at once
        (a setpoint change, a window), so smoothing never delays a large correction."""
        s = self.settings
        cap = sum(h.on_ladder()[-1][1] for h in avail)
        if self._ema is None or s.smooth_s <= 0 or abs(demand - self._ema) > s.snap_fraction * cap:
            self._ema = demand
        else:
            self._ema += (1.0 - math.exp(-dt / s.smooth_s)) * (demand - self._ema)

    def _ema_now(self) -> float:
        return self._ema if self._ema is not None else 0.0

    def _fill(
        self, now: float, demand: float, base_heat: float, run_set: Sequence[HeaterView]
    ) -> tuple[dict[str, str | None], set[str]]:
        """Levels for the running heaters. The fill is a chain of steps (one heater one rung up, in order);
        the demand falls within one step, whose heater alternates between that step's two levels (PWM).
        The step is kept while the demand stays within it ± `pair_hysteresis` × its size (the duty is
        clamped meanwhile), so noise around a rung boundary neither moves the pair nor restarts the cycle."""
        s = self.settings
        steps: list[tuple[HeaterView, int, float]] = []  # heater, rung index it climbs from, watts
        for h in run_set:
            rungs = h.on_ladder()
            steps.extend((h, i, rungs[i + 1][1] - rungs[i][1]) for i in range(len(rungs) - 1))
        key = tuple((h.id, self._group(h)[1]) for h in run_set)
        start = base_heat + sum(h.on_ladder()[0][1] for h in run_set)
        points = [start]
        for _h, _i, w in steps:
            points.append(points[-1] + w)
        j: int | None = None
        if steps:
            if self._seg is not None and self._seg[0] == key and self._seg[1] < len(steps):
                k = self._seg[1]
                band = s.pair_hysteresis * steps[k][2]
                lo_ok = k == 0 or demand >= points[k] - band
                hi_ok = k == len(steps) - 1 or demand <= points[k + 1] + band
                if lo_ok and hi_ok:
                    j = k
            if j is None:
                j = 0
                while j < len(steps) - 1 and demand >= points[j + 1] - _EPS:
                    j += 1
            self._seg = (key, j)
        else:
            self._seg = None
        climbed: dict[str, int] = {h.id: 0 for h in run_set}
        desired: dict[str, str | None] = {}
        pwm_used: set[str] = set()
        if j is not None:
            for h, i, _w in steps[:j]:
                climbed[h.id] = i + 1
            h, i, w = steps[j]
            duty = (demand - points[j]) / w if w > _EPS else 0.0
            rungs = h.on_ladder()
            if duty >= 1.0 - _EPS:
                climbed[h.id] = i + 1
            elif duty > _EPS:
                desired[h.id] = self._pwm_level(now, h, (rungs[i][0], rungs[i + 1][0]), duty)
                pwm_used.add(h.id)
        for h in run_set:
            if h.id not in desired:
                desired[h.id] = h.on_ladder()[climbed[h.id]][0]
        return desired, pwm_used

    def _count(self, now: float, n_cur: int, order: list[HeaterView], window_s: float) -> int:
        """How many heaters should run (hysteresis on the short and long demand means; the long one over
        `window_s`)."""
        s = self.settings
        k = len(order)
        if k == 0:
            return 0
        short = self._hist.mean(now, s.short_window_s)
        tops = [h.on_ladder()[-1][1] for h in order]
        offs = [h.off_w for h in order]  # heat of a heater left "off" (the Low of a heater that cannot stop)

        def cap(m: int) -> float:
            """Heat with the first m heaters at their top and the others off. A running heater's ladder watts
            are its whole output, so only the heaters left off add their off heat."""
            return sum(tops[:m]) + sum(offs[m:])

        def on_threshold(h: HeaterView, fraction: float) -> float:
            """Demand at which `fraction` of the heater's first step up from off is reached, the other heaters
            off (for a switchable heater: fraction × its lowest level)."""
            return h.off_w + fraction * (h.on_ladder()[0][1] - h.off_w) + sum(offs) - h.off_w

        n = min(n_cur, k)
        if n == 0:
            smooth = self._ema_now()
            lead = order[0]
            # A demand at (nearly) all the lead heater can give always wakes it: a smoothed demand only approaches
            # its cap, so for a one-level heater (lowest == top) `wake_fraction` of the lowest would never be reached.
            threshold = min(on_threshold(lead, s.wake_fraction), _FULL_SHARE * cap(1))
            if smooth >= threshold and smooth > _EPS:
                n = 1
            else:
                return 0
        while n < k and short > cap(n) + _EPS:
            n += 1
        if n != n_cur or self._first_t is None or now - self._n_changed_at < window_s:
            return n
        long = self._hist.mean(now, window_s)
        if n == 1:
            lead = next((h for h in order if h.running), order[0])
            if long < on_threshold(lead, s.standby_fraction):
                return 0
        elif long < s.drop_fraction * cap(n - 1):
            return n - 1
        return n

    def _pwm_level(self, now: float, h: HeaterView, pair: tuple[str, str], duty: float) -> str:
        s = self.settings
        cycle = s.pwm_cycle_s
        duty = min(1.0, max(0.0, duty))
        st = self._pwm.get(h.id)
        if st is None or st.pair != pair:
            st = _Pwm(pair=pair, cycle_start=now, last_t=now, last_hi=h.current == pair[1])
            self._pwm[h.id] = st
            step_est = 60.0
        else:
            step_est = max(0.0, now - st.last_t) or 60.0
            if st.last_hi:
                st.hi_time += min(now - st.last_t, s.max_dt_s)
            st.last_t = now
            while now - st.cycle_start >= cycle - _EPS:
                st.carry = min(cycle, max(-cycle, st.budget - st.hi_time))
                st.cycle_start += cycle
                st.hi_time = 0.0
                st.latched = False
                if now - st.cycle_start >= cycle:  # a long gap: start afresh
                    st.cycle_start = now
                    st.carry = 0.0
        st.budget = duty * cycle + st.carry
        remaining = st.budget - st.hi_time
        if st.budget >= cycle - s.min_segment_s:
            hi = True  # (almost) the whole cycle high: no short low segment
        elif st.latched:
            hi = False
        elif st.last_hi:
            hi = remaining >= step_est / 2
        else:
            hi = remaining >= max(s.min_segment_s, step_est / 2) and st.hi_time == 0.0
        if not hi and st.hi_time > 0.0:
            st.latched = True
        return pair[1] if hi else pair[0]

    @staticmethod
    def _permitted(h: HeaterView, wanted: str | None) -> str | None:
        off = h.off_level
        wanted_on = wanted is not None and wanted != off
        if not h.running:
            if wanted_on:
                return wanted if h.can_wake else h.current if h.current is not None else off
            return off
        if not wanted_on:
            return off if h.can_stop else h.current
        if wanted != h.current:
            return wanted if h.can_change else h.current
        return wanted


class SimpleAllocator:
    """The baselines' switch: demand > 0 → the top level of ceil(demand / unit) heaters (unit = the first
    available heater's top level; TPI's max_w → all, bang-bang's unit_w → one), 0 → standby (or the lowest level
    of an unswitchable heater). Heaters are used in the given order; permissions are respected as in `Allocator`.
    """

    def __init__(self, settings: AllocatorSettings | None = None) -> None:
        self.settings = settings or AllocatorSettings()

    def allocate(self, now: float, demand_w: float, heaters: Sequence[HeaterView], *,
                 planned: bool = False) -> dict[str, str | None]:
        result: dict[str, str | None] = {}
        avail = [h for h in heaters if h.available and h.on_ladder()]
        for h in heaters:
            if h not in avail:
                result[h.id] = None if not h.available else h.off_level
        if not avail:
            return result
        unit = avail[0].on_ladder()[-1][1]
        demand = max(0.0, demand_w) if math.isfinite(demand_w) else 0.0
        n = min(len(avail), math.ceil(demand / unit - 1e-6)) if demand > _EPS else 0
        for i, h in enumerate(avail):
            wanted = h.on_ladder()[-1][0] if i < n else h.off_level
            result[h.id] = Allocator._permitted(h, wanted)
        return result
