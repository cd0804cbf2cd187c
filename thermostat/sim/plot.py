"""Bench plots (matplotlib, Agg backend: no display needed).

One PNG per scenario, one panel per controller, sharing the time axis. Each panel shows the air temperature,
the comfort band (target − 0.5 … target + 1.0 K, shaded), the setpoint the controller regulated to when it
differs from the target (pre-heat / optimal stop, dashed), the outdoor temperature (same °C axis) and, on the
right axis, each heater's level (0 = standby, 1 = the lowest rung, ... as a step line).

`plot_results(results, path)`: with one scenario the figure is written to `path`; with several, one file per
scenario named `<stem>_<scenario><suffix>` next to `path` (e.g. bench.png → bench_mild_week.png). Returns the
paths written. Results without a trace (`run_one(..., keep_trace=False)`) are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

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
