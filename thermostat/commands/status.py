"""`thermostat status [--config FILE] [--json]`: what the running service is doing, and why.

It reads the running service through its local API (`GET /api/state`, the endpoint the dashboard page uses),
at the address in the configuration's `dashboard` section, with the dashboard password as a bearer token
when one is configured. Exit codes: 0 shown; 1 bad configuration; 3 no service answers; 4 refused.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from thermostat.config import Config, ConfigError, load_config

DEFAULT_CONFIG = Path("/etc/thermostat/house.yaml")
TIMEOUT_S = 5.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="what the running service is doing, and why (rooms and heaters)")
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG,
                        help=f"house configuration (YAML) of the running service; default {DEFAULT_CONFIG}")
    parser.add_argument("--json", action="store_true", help="the service's status document as JSON")
    parser.set_defaults(func=_main)


def api_url(config: Config) -> str:
    host = config.dashboard.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard bind answers on loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.dashboard.port}"


class StatusError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


async def fetch_state(config: Config) -> dict[str, Any]:
    url = api_url(config) + "/api/state"
    headers = {}
    secret = config.dashboard.read_password()
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret.get_secret_value()}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http, \
                http.get(url, headers=headers) as resp:
            if resp.status == 401:
                raise StatusError(f"the service at {url} refused the dashboard password", 4)
            if resp.status != 200:
                raise StatusError(f"the service at {url} answered HTTP {resp.status}", 4)
            data = await resp.json()
    except (aiohttp.ClientConnectionError, TimeoutError):
        raise StatusError(f"no thermostat service is running: nothing answers at {url} "
                          "(start it with `thermostat run --config FILE`)", 3) from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise StatusError(f"{url} did not answer like a thermostat service: {exc}", 3) from None
    if not isinstance(data, dict) or data.get("api") != 1:
        raise StatusError(f"{url} did not answer like a thermostat service (API version 1)", 3)
    return data


def _num(value: Any, digits: int, unit: str) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no reading yet"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _planner_line(p: dict[str, Any]) -> str:
    """An mpc room: what it runs, its learned room model and the plan's next step."""
    text = str(p.get("planner") or "mpc")
    if p.get("model"):
        text += (f"; room model {p['model']}, confidence {_num(p.get('model_confidence'), 2, '')}, "
                 f"τ {_num(p.get('model_tau_h'), 1, ' h')}, UA {_num(p.get('model_ua_w_per_k'), 1, ' W/K')}")
        if p.get("model_day_gain_peak_w"):
            text += f", sun up to {_num(p.get('model_day_gain_peak_w'), 0, ' W')}"
    if p.get("plan_next_w") is not None:
        text += (f"; plan {_num(p.get('plan_next_w'), 0, ' W')} now, "
                 f"{_num(p.get('plan_min_c'), 1, '')}–{_num(p.get('plan_max_c'), 1, ' °C')} ahead")
    return text


def render(doc: dict[str, Any]) -> str:
    lines = [f"thermostat {doc.get('version', '?')} at {doc.get('time', '?')}"
             + ("" if doc.get("mqtt_connected") else "  (MQTT broker not connected)")]
    heaters = {h["id"]: h for h in doc.get("heaters", [])}
    for room in doc.get("rooms", []):
        lines.append("")
        stale = ", stale" if room.get("stale") and room.get("reading") is not None else ""
        lines.append(f"{room['name']} ({room['id']}): {_num(room.get('reading'), 1, ' °C')} "
                     f"({_age(room.get('reading_age_s'))}{stale})")
        if room.get("humidity") is not None:
            lines.append(f"  humidity {_num(room.get('humidity'), 0, ' %')}")
        sensors = room.get("sensors") or []
        if len(sensors) > 1:
            lines.append(f"  sensors  {room.get('combine', 'mean')} of "
                         + "; ".join(f"{s['topic']} {_num(s.get('reading'), 1, ' °C')}"
                                     + (" (stale)" if s.get("stale") else "") for s in sensors))
        lines.append(f"  target   {_num(room.get('target'), 1, ' °C')}  from {room.get('target_source') or '–'}")
        lines.append(f"  mode     {room['mode']}, {room['action']}, demand {_num(room.get('demand_w'), 0, ' W')}")
        if room.get("reason"):
            lines.append(f"  why      {room['reason']}")
        planner = room.get("planner")
        if planner:
            lines.append(f"  planner  {_planner_line(planner)}")
        for hid in room.get("heaters", []):
            h = heaters.get(hid)
            if h is None:
                continue
            level = h["level"]
            if h["control"] != "auto":
                level += f" (manual {h.get('manual_level') or 'standby'})"
            lines.append(f"  heater {hid}: {h['state']}, level {level}, {_num(h.get('watts'), 0, ' W')}"
                         + (f" — {h['reason']}" if h.get("reason") else ""))
    outdoor = doc.get("outdoor")
    if outdoor:  # the house's outdoor sensor, after the rooms
        shown = None if outdoor.get("stale") else outdoor.get("reading")
        lines += ["", f"outdoor {_num(shown, 1, ' °C')} ({_age(outdoor.get('age_s'))})"]
    return "\n".join(lines)


def _main(args: Any) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if not config.dashboard.enabled:
        print(f"{args.config}: dashboard.enabled is false, so the running service has no local API to read",
              file=sys.stderr)
        return 1
    try:
        doc = asyncio.run(fetch_state(config))
    except ConfigError as exc:  # the password file or variable cannot be read
        print(str(exc), file=sys.stderr)
        return 1
    except StatusError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    print(json.dumps(doc, indent=2, ensure_ascii=False) if args.json else render(doc))
    return 0
