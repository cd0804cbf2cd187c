"""One room's timeline as a PNG that reads at a glance: the comfort band, the target with its preset names, the
reading, outdoor temperature on the same °C axis, each heater's watts with its level names, and the energy used.

Used by `thermostat history --plot` and `thermostat demo`. matplotlib is imported when a chart is drawn, not when
this module is imported (the CLI must start fast).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from thermostat.core.kpi import Kpi

# Comfort band around the target, as the KPIs count it.
BAND_LOW_K = Kpi().band_low_k
BAND_HIGH_K = Kpi().band_high_k


@dataclass
class HeaterTrace:
    """One heater's wall watts and level name (None: standby/unknown) at the chart's times."""

    watts: list[float]
    levels: list[str | None]


@dataclass
class RoomChart:
    title: str
    tz: ZoneInfo
    times: list[datetime]  # aware; the x axis
    target: list[float | None]
    reading: list[float | None]
    presets: list[str | None] = field(default_factory=list)  # preset name in force at each time (optional)
    outdoor: list[float | None] = field(default_factory=list)  # optional
    true_air: list[float | None] = field(default_factory=list)  # simulated rooms only
    heaters: dict[str, HeaterTrace] = field(default_factory=dict)
    kwh: float | None = None
    x_label: str | None = None


def _runs(values: Sequence[str | None]) -> list[tuple[int, int, str]]:
    """Maximal runs of one non-empty label: (first index, last index, label)."""
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        label = values[i]
        if label:
            out.append((i, j, label))
        i = j + 1
    return out


def _points(times: list[datetime], values: Sequence[float | None]) -> tuple[list[datetime], list[float]]:
    pairs = [(t, v) for t, v in zip(times, values, strict=False) if v is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def write_room_chart(path: Path, chart: RoomChart) -> None:
    """Draw `chart` to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (temps, power) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    draw_room_chart(temps, power, chart)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_room_chart(temps: Any, power: Any, chart: RoomChart) -> None:
    """Draw `chart` on two matplotlib axes sharing the time axis: temperatures above, heater watts below (for
    figures with more panels, such as the demo's)."""
    import matplotlib.dates as mdates

    times = chart.times
    t_times, t_vals = _points(times, chart.target)
    if t_times:
        temps.fill_between(t_times, [v - BAND_LOW_K for v in t_vals], [v + BAND_HIGH_K for v in t_vals],
                           step="post", color="tab:green", alpha=0.15,
                           label=f"comfort band (−{BAND_LOW_K:g}/+{BAND_HIGH_K:g} K)")
        temps.step(t_times, t_vals, where="post", color="tab:green", label="target")
    if chart.presets and t_times:
        span = (times[-1] - times[0]).total_seconds() or 1.0
        for i, j, name in _runs(chart.presets):
            # name every stretch long enough to hold a label; short ones stay unnamed to keep the chart clean
            if (times[j] - times[i]).total_seconds() >= span / 20 and chart.target[i] is not None:
                value = chart.target[i]
                assert value is not None
                temps.annotate(name, (times[i], value + BAND_HIGH_K), xytext=(2, 2), textcoords="offset points",
                               fontsize=8, color="tab:green")
    if chart.true_air:
        a_times, a_vals = _points(times, chart.true_air)
        temps.plot(a_times, a_vals, color="tab:red", label="air (true)")
    r_times, r_vals = _points(times, chart.reading)
    if r_times:
        temps.step(r_times, r_vals, where="post", color="tab:orange", lw=1.0, label="reading")
    if chart.outdoor:
        o_times, o_vals = _points(times, chart.outdoor)
        if o_times:
            temps.plot(o_times, o_vals, color="tab:blue", lw=0.9, ls="--", label="outdoor")
    temps.set_ylabel("°C")
    temps.grid(alpha=0.3)
    temps.legend(loc="lower right", fontsize=8)
    title = chart.title + (f" — {chart.kwh:.2f} kWh" if chart.kwh is not None else "")
    temps.set_title(title)

    ids = list(chart.heaters)
    if ids and times:
        stacks = [chart.heaters[h].watts for h in ids]
        power.stackplot(times, *stacks, labels=ids, step="post", alpha=0.7)
        span = (times[-1] - times[0]).total_seconds() or 1.0
        for index, hid in enumerate(ids):
            trace = chart.heaters[hid]
            for i, j, level in _runs(trace.levels):
                if (times[j] - times[i]).total_seconds() >= span / 15:
                    mid = (i + j) // 2
                    below = sum(chart.heaters[x].watts[mid] for x in ids[:index])
                    power.annotate(level, (times[mid], below + trace.watts[mid] / 2), fontsize=8,
                                   ha="center", va="center")
        power.legend(loc="upper right", fontsize=8)
    power.set_ylabel("wall W (heat)")
    power.grid(alpha=0.3)
    hours = (times[-1] - times[0]).total_seconds() / 3600 if len(times) > 1 else 0.0
    fmt = "%H:%M" if hours <= 36 else "%a %d %H:%M"
    power.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=chart.tz))  # type: ignore[no-untyped-call]
    power.set_xlabel(chart.x_label or f"local time ({chart.tz.key})")
