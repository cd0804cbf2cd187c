"""How fast the service answered each fault of a soak, read from its own log.

The observer (soak_observer.py) proves the bounds: no heat with a silent sensor beyond `stale_after + 60 s`,
and so on. This adds the figures behind them, per fault kind: how long after the fault began (or ended) the
service logged the matching event, e.g. `sensor_silent`: "no temperature reading ... heaters to standby" after
the sensor fell silent; `miner_hang`: "marked faulty" after the miner hung, "recovered from fault" after it
answered again. Every service log line is stamped by the harness with the simulated time it arrived
(`[  11.8894 h] ...`, hours since the soak's start), so these are simulated seconds.

Pure: `response_times(fault_list, log_text)` takes the soak's JSON fault list and the service log's text.
`python -m thermostat.sim.soak_timings RUN.json service.log` prints the table for a finished run.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermostat.sim.soak import percentile

_STAMPED = re.compile(r"^\[\s*(-?[0-9.]+) h\] \S+ \S+ (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: (.*)$")
BURST_WINDOW_S = 600.0  # lines counted after a hostile burst


@dataclass(frozen=True)
class Measure:
    """One figure: the first log line matching `pattern` (`{target}` is the fault's room or heater) after the
    fault's start (`after="start"`) or end (`after="end"`), before the next fault starts."""

    name: str
    pattern: str
    after: str = "start"


MEASURES: dict[str, tuple[Measure, ...]] = {
    "sensor_silent": (
        Measure("to standby", r"room {target}: no temperature reading for more than"),
        Measure("reading back", r"room {target}: temperature reading back", "end"),
    ),
    "sensor_jump": (
        Measure("jump confirmed", r"room {target}: reading jumped to .* confirmed"),
        Measure("to standby (above max)", r"room {target}: safety standby: room .* above its maximum"),
    ),
    "sensor_stuck": (Measure("to standby (stuck)", r"room {target}: safety standby: sensor stuck"),),
    "miner_hang": (
        Measure("first missed answer", r"heater {target}: miner at .* not answering"),
        Measure("marked faulty", r"heater {target}: marked faulty"),
        Measure("answering again", r"heater {target}: miner at .* answering again", "end"),
        Measure("recovered from fault", r"heater {target}: recovered from fault", "end"),
    ),
    "miner_restart": (
        Measure("first missed answer", r"heater {target}: miner at .* not answering"),
        Measure("answering again", r"heater {target}: miner at .* answering again", "end"),
        Measure("recovered from fault", r"heater {target}: recovered from fault", "end"),
    ),
    "state_unwritable": (  # the file is a directory at the restart: reported, state kept in memory
        Measure("problem raised", r"problem: state file .* (cannot be written|is a directory)"),
    ),
    "disk_full": (
        Measure("problem raised", r"problem: state file .* cannot be written"),
        Measure("problem resolved", r"resolved: state file", "end"),
    ),
    "state_damaged": (Measure("moved aside, running", r"state file .* was damaged .* moved to"),),
    "sighup_broken": (Measure("reload refused", r"reload refused"),),
    "broker_restart": (Measure("broker loss noticed", r"MQTT broker .* lost or unreachable"),),
    "broker_outage": (Measure("broker loss noticed", r"MQTT broker .* lost or unreachable"),),
}


def _lines(log_text: str) -> list[tuple[float, str]]:
    """(t, message) of every stamped line, t in simulated seconds since the soak's start."""
    return [(float(m.group(1)) * 3600.0, m.group(2)) for raw in log_text.splitlines()
            if (m := _STAMPED.match(raw))]


def response_times(fault_list: list[dict[str, Any]], log_text: str) -> dict[str, dict[str, list[float]]]:
    """kind -> measure -> seconds (one per fault in which the event was seen)."""
    stamped = _lines(log_text)
    faults = sorted(fault_list, key=lambda f: f["start_h"])
    out: dict[str, dict[str, list[float]]] = {}
    for i, f in enumerate(faults):
        start = f["start_h"] * 3600.0
        end = start + f["duration_s"]
        until = faults[i + 1]["start_h"] * 3600.0 if i + 1 < len(faults) else float("inf")
        figures = out.setdefault(f["kind"], {})
        for measure in MEASURES.get(f["kind"], ()):
            pattern = re.compile(measure.pattern.format(target=re.escape(f["target"])))
            ref = start if measure.after == "start" else end
            seen = next((t for t, msg in stamped if ref - 1.0 <= t < until and pattern.search(msg)), None)
            if seen is not None:
                figures.setdefault(measure.name, []).append(max(0.0, seen - ref))
        if f["kind"] == "mqtt_burst":
            logged = sum(1 for t, _ in stamped if start - 1.0 <= t < min(until, start + BURST_WINDOW_S))
            figures.setdefault(f"log lines, {BURST_WINDOW_S / 60:.0f} min after", []).append(float(logged))
    return out


def format_response_table(times: dict[str, dict[str, list[float]]], speed: float) -> list[str]:
    """One row per kind and event: simulated seconds, and the real seconds they took at `speed`. Steps that
    take real time (a process start, a socket timeout) are stretched by the speed-up: a 1 s start is
    `speed` simulated seconds; the real column shows them as they are."""
    lines = [f"{'fault kind':<24}{'event':<30}{'n':>4}{'p50 s':>8}{'p90 s':>8}{'max s':>8}{'max real s':>12}"
             "   (simulated s after the fault began, or ended for events after it)"]
    for kind, figures in times.items():
        for name, values in figures.items():
            p50, p90 = percentile(values, 0.5), percentile(values, 0.9)
            assert p50 is not None and p90 is not None
            real = "-" if name.startswith("log lines") else f"{max(values) / speed:.1f}"
            lines.append(f"{kind:<24}{name:<30}{len(values):>4}{p50:>8.0f}{p90:>8.0f}{max(values):>8.0f}{real:>12}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m thermostat.sim.soak_timings RUN.json service.log", file=sys.stderr)
        return 2
    summary = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    log_text = Path(argv[1]).read_text(encoding="utf-8", errors="replace")
    times = response_times(summary["fault_list"], log_text)
    for line in format_response_table(times, float(summary["options"]["speed"])):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
