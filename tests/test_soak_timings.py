"""The soak's response-time figures are read off the service's log as the harness stamped it."""

from __future__ import annotations

from thermostat.sim.soak_timings import format_response_table, response_times


def _line(hours: float, message: str, level: str = "WARNING") -> str:
    return f"[{hours:8.4f} h] 2026-12-02 05:55:23,007 {level} thermostat.service: {message}"


FAULTS = [
    {"kind": "sensor_silent", "target": "office", "start_h": 1.0, "duration_s": 900.0},
    {"kind": "miner_hang", "target": "mini3-a", "start_h": 2.0, "duration_s": 360.0},
    {"kind": "sensor_stuck", "target": "living", "start_h": 3.0, "duration_s": 5400.0},
    {"kind": "mqtt_burst", "target": "", "start_h": 5.0, "duration_s": 0.0},
]
LOG = "\n".join([
    "--- start 1 at simulated 1768197719",
    # another room's standby is not this fault's answer
    _line(1.05, "room living: no temperature reading for more than 300 s (last reading 20.1 °C); heaters to standby"),
    _line(1.0850, "room office: no temperature reading for more than 300 s (last reading 20.4 °C); heaters to standby"),
    _line(1.2600, "room office: temperature reading back: 20.0 °C"),  # 900 s fault ends at 1.25 h: 36 s later
    _line(2.0500, "heater mini3-a: miner at 127.0.0.1:4028 not answering properly (poll timeout); retrying"),
    _line(2.0900, "heater mini3-a: marked faulty (5 consecutive failures; last: poll timeout); it does not heat"),
    _line(2.1100, "heater mini3-a: miner at 127.0.0.1:4028 answering again"),
    _line(2.1350, "heater mini3-a: recovered from fault (recovered: 90 s of good answers)"),
    _line(4.0100, "room living: safety standby: sensor stuck at 18.0 °C for 1 h while heating"),
    _line(5.0010, "room office: reading rejected: bad_payload payload is not valid JSON"),
    _line(5.0020, "command rejected: mode: mode must be off or heat, got 'explode'"),
    _line(5.1000, "command rejected: mode: mode must be off or heat, got 'explode' (41 more like this not logged)"),
    _line(6.0000, "room office: reading rejected: bad_payload payload is not valid JSON"),  # after the window
])


def test_each_fault_gets_the_first_matching_event_of_its_own_target() -> None:
    t = response_times(FAULTS, LOG)
    assert round(t["sensor_silent"]["to standby"][0]) == 306  # 0.085 h after the start, not living's 0.05 h
    assert round(t["sensor_silent"]["reading back"][0]) == 36  # counted from the fault's end
    hang = t["miner_hang"]
    assert [round(hang[k][0]) for k in ("first missed answer", "marked faulty")] == [180, 324]
    assert round(hang["answering again"][0]) == 36 and round(hang["recovered from fault"][0]) == 126
    assert round(t["sensor_stuck"]["to standby (stuck)"][0]) == 3636
    assert t["mqtt_burst"]["log lines, 10 min after"] == [3.0]


def test_an_event_never_seen_is_left_out_not_zero() -> None:
    t = response_times(FAULTS[:1], _line(0.5, "room office: temperature reading back: 20.0 °C"))
    assert t["sensor_silent"] == {}


def test_the_table_shows_simulated_and_real_seconds() -> None:
    rows = format_response_table({"state_damaged": {"moved aside, running": [900.0, 1800.0]}}, speed=450.0)
    assert "moved aside, running" in rows[1]
    assert rows[1].split()[-4:] == ["1350", "1710", "1800", "4.0"]  # p50, p90, max, max / 450
