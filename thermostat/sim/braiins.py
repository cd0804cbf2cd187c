"""A simulated Antminer on Braiins OS, answering BOSminer's legacy cgminer-compatible API.

Built on `AntminerSim` (thermostat/sim/luxos.py: phases, watts, thermal model, reply rendering, faults);
see that module for the shared behaviour. Braiins specifics:

* ``pause`` stops hashing at once (standby watts, fans stopped; reply section ``PAUSE``); ``resume``
  starts the hash boards again (INIT for `boot_seconds`, then the ramp; section ``RESUME``). Both are
  idempotent and need no session (the legacy API has no authentication).
* One level: the autotuner's power target is configuration, not an API command here, so the unit
  always mines at the model row's single level.
* Reads: ``version``, ``summary`` (``MHS 5s``), ``devs`` (per board ``Enabled``/``Status``: Alive,
  Initialising, Paused), ``temps``, ``fans``, ``tunerstatus`` (``PowerLimit``,
  ``ApproximateMinerPowerConsumption``). Key names follow thermostat/miners/braiins.py (see the guesses
  listed there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thermostat.sim.luxos import AntminerSim, AntPhase, SimReply, ok


class BraiinsSim(AntminerSim):
    """An Antminer on Braiins OS (legacy API). See the module docstring."""

    description = "BOSminer bosminer-plus-tuner 0.9.0"

    @property
    def paused(self) -> bool:
        return self.phase == AntPhase.SLEEP

    def _dispatch(self, command: str, param: str | None) -> SimReply | None:
        handlers: dict[str, Callable[[], SimReply]] = {
            "version": self._r_version,
            "summary": self._r_summary,
            "devs": self._r_devs,
            "temps": lambda: ok(0, "Temps", ("TEMPS", self._temps())),
            "fans": lambda: ok(0, "Fans", ("FANS", self._fans())),
            "tunerstatus": self._r_tuner,
            "pause": self._pause,
            "resume": self._resume,
        }
        handler = handlers.get(command)
        return handler() if handler is not None else None

    def _pause(self) -> SimReply:
        self._sleep()
        return ok(0, "Pause", ("PAUSE", [{"Paused": True}]))

    def _resume(self) -> SimReply:
        self._wake()
        return ok(0, "Resume", ("RESUME", [{"Paused": False}]))

    def _r_version(self) -> SimReply:
        return ok(22, "BOSminer versions", ("VERSION", [{
            "API": "3.7", "BOSminer": "0.9.0", "Type": self.spec.version_model,
        }]))

    def _r_summary(self) -> SimReply:
        ths = self._ths_at(self._t)
        return ok(11, "Summary", ("SUMMARY", [{
            "Elapsed": int(self._t - self._boot_at),
            "MHS 5s": round(ths * 1e6, 2),
            "MHS av": round(self.spec.nominal_ths.get(self._level().name, 0.0) * 0.93e6, 2),
            "Accepted": self._accepted,
            "Rejected": self._accepted // 400,
        }]))

    def _r_devs(self) -> SimReply:
        status = {AntPhase.SLEEP: "Paused", AntPhase.INIT: "Initialising", AntPhase.WORK: "Alive",
                  AntPhase.FAULT: "Dead"}.get(self._phase, "Alive")
        per_board = self._ths_at(self._t) * 1e6 / 3
        boards: list[dict[str, Any]] = [
            {"ASC": i, "Name": "BC5", "ID": i, "Enabled": "Y", "Status": status, "MHS 5s": round(per_board, 2)}
            for i in range(3)
        ]
        return ok(9, "3 ASC(s)", ("DEVS", boards))

    def _r_tuner(self) -> SimReply:
        return ok(0, "Tuner Status", ("TUNERSTATUS", [{
            "PowerLimit": round(self.spec.top_level.wall_w),
            "ApproximateMinerPowerConsumption": round(self._wall_at(self._t)),
            "TunerChainStatus": [],
        }]))
