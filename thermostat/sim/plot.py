"""Bench and demo plots (matplotlib, Agg backend: no display needed).

Bench: one PNG per scenario, one panel per controller, sharing the time axis. Each panel shows the air temperature,
the comfort band (target − 0.5 … target + 1.0 K, shaded), the setpoint the controller regulated to when it
differs from the target (pre-heat / optimal stop, dashed), the outdoor temperature (same °C axis) and, on the
right axis, each heater's level (0 = standby, 1 = the lowest rung, ... as a step line).

`plot_results(results, path)`: with one scenario the figure is written to `path`; with several, one file per
scenario named `<stem>_<scenario><suffix>` next to `path` (e.g. bench.png → bench_mild_week.png). Returns the
paths written. Results without a trace (`run_one(..., keep_trace=False)`) are skipped.

Demo (`plot_demo`): the room chart of `thermostat.adapters.chart` (temperatures, heater watts) for the run, with
what the mpc planner published in the room state drawn over it: the predicted air temperature of a few plans (from
the moment each was made), the plan's next power (`plan_next_w`) beside the actual heat, the stretches in which the
room ran its pid fallback shaded, and below, those plans over their whole horizon (predicted air against the
schedule's band, planned power per hour).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from thermostat.adapters.chart import RoomChart, draw_room_chart
from thermostat.core.kpi import Kpi
from thermostat.sim.bench import BenchResult

BAND_LOW_K = Kpi().band_low_k
BAND_HIGH_K = Kpi().band_high_k


def output_paths(path: str | Path, scenarios: Sequence[str]) -> dict[str, Path]:
    """Where each scenario's figure goes (see the module docstring)."""
    p = Path(path)
    if len(scenarios) <= 1:
        return {s: p for s in scenarios}
    suffix = p.suffix or ".png"
    return {s: p.with_name(f"{p.stem}_{s}{suffix}") for s in scenarios}


def plot_results(results: Sequence[BenchResult], path: str | Path) -> list[Path]:
    scenarios: list[str] = []
    for r in results:
        if r.trace is not None and r.scenario not in scenarios:
            scenarios.append(r.scenario)
    paths = output_paths(path, scenarios)
    written = []
    for scenario in scenarios:
        runs = [r for r in results if r.scenario == scenario and r.trace is not None]
        plot_scenario(runs, paths[scenario])
        written.append(paths[scenario])
    return written


def plot_scenario(runs: Sequence[BenchResult], path: str | Path) -> Path:
    """One figure: a panel per run (controller) of one scenario."""
    n = len(runs)
    fig, axes = plt.subplots(n, 1, figsize=(14, 3.2 * n + 0.6), sharex=True, squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        tr = run.trace
        assert tr is not None
        t = tr.t_h
        low = [x - BAND_LOW_K for x in tr.target_c]
        high = [x + BAND_HIGH_K for x in tr.target_c]
        ax.fill_between(t, low, high, step="post", color="tab:green", alpha=0.15, linewidth=0, label="comfort band")
        ax.step(t, tr.target_c, where="post", color="tab:green", linewidth=0.8, label="target")
        if tr.setpoint_c and any(abs(a - b) > 1e-9 for a, b in zip(tr.setpoint_c, tr.target_c, strict=True)):
            ax.step(t, tr.setpoint_c, where="post", color="tab:purple", linewidth=0.8, linestyle="--",
                    label="setpoint (pre-heat / stop)")
        ax.plot(t, tr.air_c, color="tab:red", linewidth=1.0, label="air")
        ax.plot(t, tr.outdoor_c, color="tab:blue", linewidth=0.8, alpha=0.8, label="outdoor")
        ax.set_ylabel("°C")
        ax.grid(True, alpha=0.3)
        ax.set_title(
            f"{run.controller}: discomfort {run.discomfort_kh:.1f} K·h, energy {run.energy_kwh:.1f} kWh "
            f"(floor {run.energy_floor_kwh:.1f}), wakes {run.wakes}, level changes {run.level_changes}",
            fontsize=10, loc="left",
        )
        lv = ax.twinx()
        top = 1
        for i, (heater, levels) in enumerate(sorted(tr.levels.items())):
            if levels:
                top = max(top, max(levels))
            offset = 0.06 * i  # keep several heaters' lines apart
            lv.step(t, [x + offset for x in levels], where="post", linewidth=0.7, alpha=0.6, color=f"C{4 + i}",
                    label=f"{heater} level")
        lv.set_ylim(-0.2, top + 0.6)
        lv.set_yticks(range(0, top + 1))
        lv.set_ylabel("level (0 = standby)")
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = lv.get_legend_handles_labels()
        ax.legend(handles + h2, labels + l2, loc="upper right", fontsize=7, ncol=4, framealpha=0.8)
    axes[-1, 0].set_xlabel("hours")
    fig.suptitle(f"bench: {runs[0].scenario}" if runs else "bench", fontsize=12)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90, format="png")
    plt.close(fig)
    return out


# --------------------------------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class PublishedPlan:
    """One plan as the room state published it: when it was made, the reading then, and per `step` after it the
    predicted air temperature at the step's end (`plan_air_c`) and the mean planned power (`plan_power_w`)."""

    made: datetime
    step: timedelta
    air_now_c: float | None
    air_c: tuple[float, ...]
    power_w: tuple[float, ...]

    @property
    def end(self) -> datetime:
        return self.made + self.step * len(self.air_c)

    def air_points(self, until: datetime | None = None) -> tuple[list[datetime], list[float]]:
        times = [self.made] if self.air_now_c is not None else []
        values = [self.air_now_c] if self.air_now_c is not None else []
        for k, value in enumerate(self.air_c, start=1):
            when = self.made + self.step * k
            if until is not None and when > until:
                break
            times.append(when)
            values.append(value)
        return times, [float(v) for v in values]


@dataclass(frozen=True)
class DemoPlot:
    """What `plot_demo` drew of the planner (also written into the PNG's text chunks)."""

    plans: tuple[str, ...]  # local HH:MM of each plan drawn
    planned_points: int  # room states with a `plan_next_w` drawn as the planned power
    fallback_spans: int  # stretches shaded as pid fallback


def plot_demo(path: str | Path, chart: RoomChart, *, planned_w: Sequence[tuple[datetime, float | None]],
              fallback: Sequence[tuple[datetime, datetime]], plans: Sequence[PublishedPlan],
              band: Sequence[tuple[datetime, float]], caption: str | None = None) -> DemoPlot:
    """The demo's figure: `chart` over the run with the planner's state on it, and `plans` over their horizon.

    `planned_w`: (time, plan_next_w or None while mpc did not plan) per published room state; `fallback`: (start,
    end) of the stretches without an mpc plan; `band`: (time, target) over the run and the plans' horizon;
    `caption`: a line above the power panel (the room's reason as published). The chart's outdoor temperature goes
    into the title (on the °C axis it would squash the room's curves)."""
    # without a plan there is no horizon to show: the run's two panels only
    fig = plt.figure(figsize=(11, 13 if plans else 7), layout="constrained")
    grid = fig.add_gridspec(4 if plans else 2, 1, height_ratios=[3, 2, 3, 1.6] if plans else [3, 2])
    # Any: matplotlib's stubs type the x values as floats, while it converts datetimes itself (dates units)
    temps: Any = fig.add_subplot(grid[0])
    power: Any = fig.add_subplot(grid[1], sharex=temps)
    outdoor = [v for v in chart.outdoor if v is not None]
    title = chart.title
    if outdoor:
        title += f" — outdoor {outdoor[0]:.1f} → {outdoor[-1]:.1f} °C"
    draw_room_chart(temps, power, replace(chart, outdoor=[], title=title))
    tz = chart.tz
    end = chart.times[-1] if chart.times else None
    colours = [matplotlib.colormaps["plasma"](x) for x in _spread(len(plans), 0.05, 0.8)]
    labels = []
    for plan, colour in zip(plans, colours, strict=True):
        label = plan.made.astimezone(tz).strftime("%H:%M")
        labels.append(label)
        times, values = plan.air_points(until=end)
        temps.plot(times, values, color=colour, lw=1.3, ls=":", marker="o", ms=3,
                   label=f"plan at {label}: predicted air")
        for ax in (temps, power):
            ax.axvline(plan.made, color=colour, lw=0.8, ls=":", alpha=0.8)
    temps.legend(loc="lower right", fontsize=7, ncol=2)
    for i, (a, b) in enumerate(fallback):
        power.axvspan(a, b, color="0.5", alpha=0.25, lw=0,
                      label="no mpc plan (pid fallback)" if i == 0 else None)
    drawn = [(t, w) for t, w in planned_w if w is not None]
    if drawn:
        # a gap (NaN) breaks the line where mpc was not planning
        power.step([t for t, _ in planned_w], [math.nan if w is None else float(w) for _, w in planned_w],
                   where="post", color="black", lw=1.3, label="mpc: planned power now (plan_next_w)")
    power.legend(loc="upper right", fontsize=7)
    if caption:
        power.set_title(caption, fontsize=9, loc="left")
    temps.tick_params(labelbottom=False)
    power.tick_params(axis="x", labelrotation=30)
    if plans:
        _draw_horizon(fig.add_subplot(grid[2]), fig.add_subplot(grid[3]), chart, plans, colours, labels, band)
    drawn_plot = DemoPlot(plans=tuple(labels), planned_points=len(drawn), fallback_spans=len(fallback))
    fig.savefig(Path(path), dpi=100, format="png", metadata={
        "Title": chart.title,
        "thermostat:plans": ",".join(drawn_plot.plans),
        "thermostat:planned_points": str(drawn_plot.planned_points),
    })
    plt.close(fig)
    return drawn_plot


def _draw_horizon(ahead: Any, ahead_w: Any, chart: RoomChart, plans: Sequence[PublishedPlan], colours: list[Any],
                  labels: list[str], band: Sequence[tuple[datetime, float]]) -> None:
    """The plans over their whole horizon: predicted air against the band above, planned power below."""
    ahead_w.sharex(ahead)
    tz = chart.tz
    if band:
        b_times = [t for t, _ in band]
        b_vals = [v for _, v in band]
        ahead.fill_between(b_times, [v - BAND_LOW_K for v in b_vals], [v + BAND_HIGH_K for v in b_vals],
                           step="post", color="tab:green", alpha=0.15, linewidth=0, label="comfort band")
        ahead.step(b_times, b_vals, where="post", color="tab:green", lw=0.8, label="target")
    if chart.true_air:
        air = [(t, v) for t, v in zip(chart.times, chart.true_air, strict=False) if v is not None]
        ahead.plot([t for t, _ in air], [v for _, v in air], color="tab:red", lw=1.0, label="air (true), the run")
    for plan, colour, label in zip(plans, colours, labels, strict=True):
        times, values = plan.air_points()
        ahead.plot(times, values, color=colour, lw=1.2, marker="o", ms=3, label=f"plan at {label}")
        if plan.power_w:
            p_times = [plan.made + plan.step * k for k in range(len(plan.power_w) + 1)]
            ahead_w.step(p_times, [*plan.power_w, plan.power_w[-1]], where="post", color=colour, lw=1.1,
                         label=f"plan at {label}")
    ahead.set_ylabel("°C")
    ahead.grid(alpha=0.3)
    ahead.legend(loc="upper right", fontsize=7, ncol=2)
    hours = max(((p.end - p.made).total_seconds() / 3600 for p in plans), default=0.0)
    ahead.set_title(f"the mpc plans as published in the room state (plan_air_c, plan_power_w): the next {hours:g} h",
                    fontsize=10)
    ahead.tick_params(labelbottom=False)
    ahead_w.set_ylabel("planned W\n(mean per step)")
    ahead_w.grid(alpha=0.3)
    ahead_w.set_ylim(bottom=0)
    ahead_w.xaxis.set_major_formatter(mdates.DateFormatter("%a %H:%M", tz=tz))  # type: ignore[no-untyped-call]
    ahead_w.set_xlabel(f"simulated local time ({tz.key})")


def _spread(n: int, lo: float, hi: float) -> list[float]:
    if n <= 1:
        return [lo] * n
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]
