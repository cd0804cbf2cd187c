"""The speed-ups of issue 14 item 6 change no answer: the fast MM parse equals the careful scanner, and a settled
miner's one exact physics step lands where the 5 s sub-steps land."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thermostat.miners import avalon
from thermostat.miners.models import MINI3, NANO3, NANO3S, Q
from thermostat.sim import miner as sim_miner
from thermostat.sim.miner import SimMiner

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MM_ALPHABET = st.sampled_from([*"AB[] ,:x%-1'{}", "Nonce Mask", "PS", "SYSTEMSTATU", "Work: In Work, "])


@SETTINGS
@given(st.lists(MM_ALPHABET, max_size=40).map("".join))
def test_fast_mm_parse_equals_the_scanner_on_any_text(text: str) -> None:
    fast = avalon._parse_flat_mm(text)
    assert fast is None or fast == avalon._scan_mm(text)


@pytest.mark.parametrize("spec", [MINI3, NANO3S, NANO3, Q], ids=lambda s: s.key)
def test_fast_mm_parse_is_taken_for_every_simulated_reply(spec: object) -> None:
    m = SimMiner(spec, time_fn=lambda: 1.7e9, start_state="mining")  # type: ignore[arg-type]
    for lite in (True, False):
        text = m.mm_string(lite=lite)
        fast = avalon._parse_flat_mm(text)
        assert fast is not None and fast == avalon._scan_mm(text) and "MPO" in fast


def test_nested_or_stray_brackets_go_to_the_scanner() -> None:
    assert avalon._parse_flat_mm("A[1] B[x[y]z] C[3]") is None
    assert avalon.parse_mm_string("A[1] B[x[y]z] C[3]") == {"A": "1", "B": "x[y]z", "C": "3"}
    assert avalon._parse_flat_mm("A[1]] B[2]") is None
    assert avalon.parse_mm_string("A[1] B[2") == {"A": "1"}  # a truncated tail is dropped either way


@pytest.mark.parametrize("spec", [MINI3, NANO3S, Q], ids=lambda s: s.key)
def test_one_settled_step_lands_where_small_steps_land(spec: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(one_step: bool) -> tuple[float, float, float]:
        t = [1.7e9]
        m = SimMiner(spec, time_fn=lambda: t[0], start_state="mining", inlet_temp_c=18.0)  # type: ignore[arg-type]
        m.set_inlet_temp(24.0)  # a step in room air: the lags have something to do
        if not one_step:
            monkeypatch.setattr(m, "_advance", lambda t_end: _small_steps(m, t_end))
        for _ in range(10):
            t[0] += 60.0
            m.update()
        return m.chip_temp_c, m.outlet_temp_c, m.wall_w

    chip1, out1, w1 = run(True)
    chip2, out2, w2 = run(False)
    # within the ±1 % power wobble (about ±0.6 K on a 65 K chip rise), which the sub-steps sample and one step not
    assert chip1 == pytest.approx(chip2, abs=1.0) and out1 == pytest.approx(out2, abs=1.0)
    assert w1 == pytest.approx(w2, rel=0.02)


def _small_steps(m: SimMiner, t_end: float) -> None:
    """The pre-speed-up integration: 5 s sub-steps whatever the phase."""
    import math

    while m._t < t_end:
        step = min(sim_miner.PHYSICS_STEP_S, t_end - m._t)
        m._track_hashing(m._ghs_at(m._t + step / 2), step, m._t + step)
        m._t += step
        chip_eq, out_eq = m._thermal_eq()
        m._chip += (chip_eq - m._chip) * (1.0 - math.exp(-step / sim_miner.TAU_CHIP_S))
        m._outlet += (out_eq - m._outlet) * (1.0 - math.exp(-step / sim_miner.TAU_OUTLET_S))
