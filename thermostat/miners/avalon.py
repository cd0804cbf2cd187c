"""The cgminer API of Canaan Avalon home miners, as pure functions (no I/O).

Encoding requests, decoding replies (JSON and plain-text forms), parsing `version` and the `MM ID0`
string of `litestats`/`estats`/`stats` into a `Snapshot`, turning a `Command` into validated wire
requests, and turning replies into an `Outcome`. The TCP client (client.py) and the in-process bench
both drive the same `plan()` so their behaviour cannot drift apart.

Facts used here are in ../shared/reference/avalon-api.md (§1 wire protocol, §3.2 keys, §3.3 PS[],
§3.5 soft off/on, §8 pitfalls).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from thermostat.domain.actions import Command, CommandKind, Outcome, OutcomeKind
from thermostat.domain.snapshot import MinerState, Snapshot
from thermostat.domain.spec import ModelSpec
from thermostat.miners.errors import (
    Busy,
    ForbiddenCommand,
    InvalidValue,
    MalformedReply,
    MinerError,
    MinerTimeout,
    Refused,
    Unreachable,
    Unsupported,
)
from thermostat.miners.models import model_from_ver_string, model_from_version

# --------------------------------------------------------------------------------------------------
# Requests and the single guard every request passes through
# --------------------------------------------------------------------------------------------------

#: Commands that change pools. The engine heats rooms; it never touches where the miner mines.
FORBIDDEN_COMMANDS = frozenset(
    {"setpool", "addpool", "removepool", "switchpool", "enablepool", "disablepool", "poolpriority"}
)
_COMMAND_RE = re.compile(r"[a-z][a-z0-9_]*(\+[a-z][a-z0-9_]*)*")
MAX_TIMESTAMP = 10**10  # year 2286: anything above is not a miner clock reading
REBOOT_MAX_DELAY_S = 300
AUTO_FAN = -1


def guard(command: str, parameter: str | None) -> None:
    """Refuse anything but a plain command name, and every pool-changing command (also inside `a+b`).

    Called when a `Request` is built and again when it is encoded, so no path to the wire skips it.
    """
    if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
        raise ForbiddenCommand(f"not a plain cgminer command name: {command!r}")
    for piece in command.split("+"):
        if piece in FORBIDDEN_COMMANDS:
            raise ForbiddenCommand(f"pool-changing command {piece!r} is never sent by this engine")
    if parameter is not None:
        if not isinstance(parameter, str):
            raise ForbiddenCommand(f"request parameter must be a string, not {type(parameter).__name__}")
        if any(ch in parameter for ch in "\x00\r\n|"):
            raise ForbiddenCommand("request parameter contains a NUL, newline or '|'")


@dataclass(frozen=True)
class Request:
    command: str
    parameter: str | None = None

    def __post_init__(self) -> None:
        guard(self.command, self.parameter)

    def __str__(self) -> str:
        return self.command if self.parameter is None else f"{self.command}|{self.parameter}"


@functools.lru_cache(maxsize=256)  # a poll sends the same few requests again and again
def encode_json(request: Request) -> bytes:
    """`{"command":"ascset","parameter":"0,fan-spd,80"}` (the whole request, for one write)."""
    guard(request.command, request.parameter)
    body: dict[str, str] = {"command": request.command}
    if request.parameter is not None:
        body["parameter"] = request.parameter
    return json.dumps(body, separators=(",", ":")).encode()


def encode_text(request: Request) -> bytes:
    """`ascset|0,fan-spd,80` (the plain-text form; the server splits at the first '|')."""
    guard(request.command, request.parameter)
    return str(request).encode()


def encode(request: Request, form: str) -> bytes:
    if form == "json":
        return encode_json(request)
    if form == "text":
        return encode_text(request)
    raise ValueError(f"unknown protocol form {form!r} (json or text)")


# --------------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: str  # S, I, W, E, F
    code: int | None
    msg: str
    when: int | None  # the miner's epoch clock at the time of the request
    description: str
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    form: str = "json"

    @property
    def ok(self) -> bool:
        return self.status in ("S", "I") and not _failure_text(self.msg)


_FAILURE_WORDS = ("failed", "error", "unknown", "invalid")
_BUSY_RE = re.compile(r"is\s+caling|don'?t\s+permit", re.IGNORECASE)


def _failure_text(msg: str) -> bool:
    low = msg.lower()
    return any(word in low for word in _FAILURE_WORDS)


def check_status(reply: Reply) -> Reply:
    """Return the reply when it is a success (S or I without failure text); raise Busy/Refused otherwise."""
    if reply.ok:
        return reply
    if _BUSY_RE.search(reply.msg):
        raise Busy(reply.status, reply.code, reply.msg)
    raise Refused(reply.status, reply.code, reply.msg)


_INT_TEXT_RE = re.compile(r"[+-]?\d{1,19}")
_FLOAT_TEXT_RE = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?")


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _int_text(value)
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            f = float(value)
        except OverflowError:
            return None
        return f if math.isfinite(f) else None
    if isinstance(value, str):
        return _float_text(value)
    return None


# A poll reads some thirty numbers out of text, and most of them repeat from poll to poll (levels, fan duty,
# temperatures): the text → number step is remembered for the most recent few thousand distinct strings.
@functools.lru_cache(maxsize=4096)
def _int_text(value: str) -> int | None:
    text = value.strip().rstrip("%").strip()
    if _INT_TEXT_RE.fullmatch(text):
        return int(text)
    f = _float_text(text)
    return int(f) if f is not None else None


@functools.lru_cache(maxsize=4096)
def _float_text(value: str) -> float | None:
    text = value.strip().rstrip("%").strip()
    if not _FLOAT_TEXT_RE.fullmatch(text):
        return None
    f = float(text)
    return f if math.isfinite(f) else None


_BARE_NONFINITE_RE = re.compile(r"(?<=[:\[,])\s*-?(inf|nan|Infinity|NaN)\s*(?=[,}\]])")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    # Known firmware defects: bare inf/nan, a stray leading comma, junk after the last brace.
    fixed = _BARE_NONFINITE_RE.sub("null", text).lstrip(",")
    end = fixed.rfind("}")
    if end >= 0:
        fixed = fixed[: end + 1]
    try:
        return json.loads(fixed)
    except (ValueError, RecursionError) as exc:
        raise MalformedReply(f"reply is not valid JSON: {exc}") from None


def _decode_json(text: str) -> Reply:
    data = _load_json(text)
    if not isinstance(data, dict):
        raise MalformedReply("JSON reply is not an object")
    status_list = data.get("STATUS")
    if isinstance(status_list, dict):
        status_list = [status_list]
    if not isinstance(status_list, list) or not status_list or not isinstance(status_list[0], dict):
        raise MalformedReply("JSON reply has no STATUS object")
    head = status_list[0]
    sections: dict[str, list[dict[str, Any]]] = {}
    for key, value in data.items():
        if key in ("STATUS", "id") or not isinstance(key, str):
            continue
        items = value if isinstance(value, list) else [value]
        sections[key] = [item for item in items if isinstance(item, dict)]
    return _make_reply(head, sections, "json")


def _make_reply(head: dict[str, Any], sections: dict[str, list[dict[str, Any]]], form: str) -> Reply:
    status = head.get("STATUS")
    if not isinstance(status, str) or not status.strip():
        raise MalformedReply("reply has no STATUS letter")
    msg = head.get("Msg", "")
    description = head.get("Description", "")
    return Reply(
        status=status.strip().upper()[:1],
        code=_to_int(head.get("Code")),
        msg=msg if isinstance(msg, str) else str(msg),
        when=_to_int(head.get("When")),
        description=description if isinstance(description, str) else str(description),
        sections=sections,
        form=form,
    )


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on `sep` where it is not backslash-escaped (text-form escaping, API >= 1.7); keep escapes."""
    parts: list[str] = []
    buf: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\":
            buf.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _bracket_valued(key: str) -> bool:
    """Keys whose value is a `Key[value] ...` string that may hold unescaped commas."""
    return key.startswith("MM ID") or key == "HBinfo"


def _split_text_section(section: str) -> list[tuple[str, str | None]]:
    """Split one text-form section into (key, value) items.

    Items are separated by unescaped commas, except inside the brackets/braces of an MM string value
    (``MM ID0=... SYSTEMSTATU[Work: In Work, Hash Board: 1] ...,MM Count=1``). A truncated MM string
    (unbalanced bracket) runs to the end of the section. A piece without '=' after the first item is
    glued back onto the previous value (an unescaped comma inside an ordinary value).
    """
    items: list[tuple[str, str | None]] = []
    i, n = 0, len(section)
    while i <= n:
        # key: up to '=' or ','
        j = i
        while j < n and section[j] not in "=,":
            j += 2 if section[j] == "\\" else 1
        piece = _unescape(section[i:j])
        key = piece.strip()
        if j >= n or section[j] == ",":
            if items and key:
                prev_key, prev_val = items[-1]
                items[-1] = (prev_key, (prev_val or "") + "," + piece)
            elif key:
                items.append((key, None))
            i = j + 1
            continue
        # value: after '='
        k = j + 1
        depth = 0
        bracketed = _bracket_valued(key)
        while k < n:
            ch = section[k]
            if ch == "\\":
                k += 2
                continue
            if bracketed and ch in "[{":
                depth += 1
            elif bracketed and ch in "]}":
                depth = max(0, depth - 1)
            elif ch == "," and depth == 0:
                break
            k += 1
        value = section[j + 1 : min(k, n)]
        items.append((key, value if bracketed else _unescape(value)))
        i = k + 1
    return items


def _decode_text(text: str) -> Reply:
    raw_sections = [s for s in _split_unescaped(text, "|") if s.strip()]
    if not raw_sections:
        raise MalformedReply("empty text reply")
    head_items = _split_text_section(raw_sections[0])
    head = {k: v for k, v in head_items if v is not None}
    if "STATUS" not in head:
        raise MalformedReply("text reply does not start with STATUS=")
    sections: dict[str, list[dict[str, Any]]] = {}
    for raw in raw_sections[1:]:
        items = _split_text_section(raw)
        if not items:
            continue
        name = items[0][0]
        entry: dict[str, Any] = {}
        for key, value in items:
            if value is not None:
                entry[key] = value
        sections.setdefault(name, []).append(entry)
    return _make_reply(head, sections, "text")


def decode_reply(raw: bytes) -> Reply:
    """Decode one reply (either form). Trailing NULs/whitespace are stripped. Raises only MalformedReply."""
    if not isinstance(raw, bytes | bytearray):
        raise MalformedReply(f"reply must be bytes, not {type(raw).__name__}")
    body = bytes(raw).split(b"\x00", 1)[0].strip()
    if not body:
        raise MalformedReply("empty reply (connection closed without an answer)")
    text = body.decode("utf-8", errors="replace")
    try:
        if text.lstrip(",").lstrip().startswith("{"):
            return _decode_json(text)
        return _decode_text(text)
    except MalformedReply:
        raise
    except Exception as exc:  # defensive: hostile input must never escape as anything else
        raise MalformedReply(f"undecodable reply: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# The MM ID0 string
# --------------------------------------------------------------------------------------------------

_WRAPPER_RE = re.compile(r"\s*'?[\w ]{1,32}'?\s*:\s*\{")


def _parse_flat_mm(text: str) -> dict[str, str] | None:
    """The common case, with C string operations: a run of `Key[value]` tokens without nested brackets.

    None when the string is anything else (a nested bracket, a stray ']'): the careful scanner decides then.
    Same result as the scanner: keys stripped, empty or over-long keys skipped, a truncated tail dropped.
    Split at every ']', the string is flat exactly when each piece but the last (the tail, dropped) holds one '['."""
    pieces = text.split("]")
    out: dict[str, str] = {}
    for i in range(len(pieces) - 1):
        raw_key, bracket, value = pieces[i].partition("[")
        if not bracket or "[" in value:
            return None
        key = raw_key.strip()
        if key and len(key) <= 64:
            out[key] = value
    return out


def parse_mm_string(text: str) -> dict[str, str]:
    """`Key[value] Key[value] ...` → {Key: value}.

    Keys may contain spaces (``Nonce Mask[25]``); values may contain spaces and commas
    (``SYSTEMSTATU[Work: In Work, Hash Board: 1]``). The Avalon Q wrapping ``'STATS':{...}`` is removed.
    A trailing token without its closing bracket (a truncated reply) is dropped rather than guessed.
    Never raises for any string input.
    """
    if not isinstance(text, str):
        return {}
    match = _WRAPPER_RE.match(text)
    if match:
        text = text[match.end() :].rstrip()
        if text.endswith("}"):
            text = text[:-1]
    fast = _parse_flat_mm(text)
    return fast if fast is not None else _scan_mm(text)


def _scan_mm(text: str) -> dict[str, str]:
    """The careful scanner behind `parse_mm_string`: brackets may nest, a truncated tail is dropped."""
    out: dict[str, str] = {}
    pos, n = 0, len(text)
    while pos < n:
        open_at = text.find("[", pos)
        if open_at < 0:
            break
        key = text[pos:open_at].strip()
        # the matching ']' (brackets may nest): jump from bracket to bracket with str.find, not char by char
        depth, k = 1, open_at + 1
        close_at = -1
        while True:
            close = text.find("]", k)
            if close < 0:
                break
            inner = text.find("[", k, close)
            if inner >= 0:
                depth += 1
                k = inner + 1
                continue
            depth -= 1
            if depth == 0:
                close_at = close
                break
            k = close + 1
        if close_at < 0:
            break  # truncated value: drop it
        if key and len(key) <= 64:
            out[key] = text[open_at + 1 : close_at]
        pos = close_at + 1
    return out


# --------------------------------------------------------------------------------------------------
# version
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    spec: ModelSpec | None  # None for anything that is not a known home model
    prod: str | None
    model: str | None
    firmware: str | None
    dna: str | None
    mac: str | None
    hwtype: str | None = None
    miner_time: int | None = None  # STATUS When of the version reply

    @property
    def is_avalon(self) -> bool:
        return self.spec is not None or "avalon" in (self.prod or "").lower()


def _str_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def parse_version(reply: Reply) -> VersionInfo:
    """The VERSION section of a `version` reply. Unknown models give spec None (never an error)."""
    check_status(reply)
    entries = reply.sections.get("VERSION") or []
    if not entries:
        raise MalformedReply("version reply has no VERSION section")
    v = entries[0]
    model = _str_or_none(v.get("MODEL"))
    prod = _str_or_none(v.get("PROD"))
    hwtype = _str_or_none(v.get("HWTYPE"))
    firmware = None
    for key in ("CGVERSION", "LVERSION", "VERSION", "BVERSION"):
        firmware = _str_or_none(v.get(key))
        if firmware:
            break
    return VersionInfo(
        spec=model_from_version(model, prod, hwtype),
        prod=prod,
        model=model,
        firmware=firmware,
        dna=_str_or_none(v.get("DNA")),
        mac=_str_or_none(v.get("MAC")),
        hwtype=hwtype,
        miner_time=reply.when,
    )


# --------------------------------------------------------------------------------------------------
# stats → Snapshot
# --------------------------------------------------------------------------------------------------

_SYS_RE = re.compile(r"In\s+(Init|Work|Idle|Fault)", re.IGNORECASE)


def _find_mm_string(reply: Reply) -> tuple[str, dict[str, Any]]:
    for entry in reply.sections.get("STATS", []):
        for key in ("MM ID0", "MM ID0:Summary"):
            value = entry.get(key)
            if isinstance(value, str):
                return value, entry
        for key, value in entry.items():
            if isinstance(key, str) and key.startswith("MM ID") and isinstance(value, str):
                return value, entry
    raise MalformedReply("stats reply has no MM ID0 string")


def derive_state(mm: dict[str, str]) -> MinerState:
    """The miner's state from its own status keys, never from GHSavg/GHSmm (they stay high in standby).

    Rule, first match wins (``sys`` is the X of SYSTEMSTATU[Work: In X, ...]):

    1. FAULT    if sys is Fault, or STATE[3].
    2. STANDBY  if sys is Idle, or STATE[2], or SoftOFF != 0 while sys is not Work.
    3. STARTING if sys is Init, or sys is Work with GHSspd == 0.
    4. MINING   if sys is Work (GHSspd > 0, or GHSspd absent as in a truncated reply).
    Without SYSTEMSTATU: STATE[0] → STARTING, STATE[1] → by GHSspd as above; without STATE either:
    GHSspd > 0 → MINING, GHSspd == 0 with SoftOFF[0] → STARTING. Anything else is MalformedReply.
    """
    match = _SYS_RE.search(mm.get("SYSTEMSTATU", ""))
    sys_state = match.group(1).lower() if match else None
    state_num = _to_int(mm.get("STATE"))
    soft_off = _to_int(mm.get("SoftOFF"))
    ghs = _to_float(mm.get("GHSspd"))

    if sys_state == "fault" or state_num == 3:
        return MinerState.FAULT
    if sys_state == "idle" or state_num == 2 or (soft_off not in (None, 0) and sys_state != "work"):
        return MinerState.STANDBY
    if sys_state == "init" or (sys_state is None and state_num == 0):
        return MinerState.STARTING
    if sys_state == "work" or (sys_state is None and state_num == 1):
        return MinerState.STARTING if ghs is not None and ghs <= 0 else MinerState.MINING
    if ghs is not None and ghs > 0:
        return MinerState.MINING
    if ghs is not None and soft_off == 0:
        return MinerState.STARTING
    raise MalformedReply("stats reply does not tell the miner state (no SYSTEMSTATU, STATE, SoftOFF, GHSspd)")


_USED_KEYS = frozenset(
    {
        "Ver", "LVer", "DNA", "SYSTEMSTATU", "STATE", "Elapsed", "ITemp", "Temp", "OTemp", "HBOTemp",
        "HBTemp", "HBITemp", "TMax", "TarT", "Fan1", "Fan2", "Fan3", "Fan4", "FanR", "PS", "GHSspd",
        "SoftOFF", "WORKMODE", "WORKLEVEL", "MPO", "ADJ",
    }
)  # fmt: skip


def _temp(value: str | None) -> float | None:
    t = _to_float(value)
    if t is None or t <= -273:
        return None  # -273 means "no sensor" (Nano 3S ITemp)
    return t


def parse_stats(reply: Reply) -> Snapshot:
    """A `litestats`/`estats`/`stats` reply → Snapshot. Raises Refused/Busy or MalformedReply only."""
    check_status(reply)
    text, entry = _find_mm_string(reply)
    mm = parse_mm_string(text)
    state = derive_state(mm)

    ver = mm.get("Ver")
    spec = model_from_ver_string(ver)
    firmware = _str_or_none(mm.get("LVer"))
    if firmware is None and ver:
        stamp = re.search(r"\d{8}_[0-9A-Za-z_]+", ver)  # e.g. 25011701_3f53b19
        firmware = stamp.group(0) if stamp else None

    ps = [_to_float(p) for p in mm.get("PS", "").split()]
    if spec is not None and spec.wall_power_source == "mpo":
        power_w = _to_float(mm.get("MPO"))  # PS[] holds no watts on this firmware (Nano 3)
    else:
        power_w = ps[6] if len(ps) > 6 else None
    # PS[4] is DC watts to the hash board on Mini 3 / Q. The Nano 3S layout has PS[1] = PS[4] = 0
    # (PS[2] in mV), so there PS[4] is not a power reading.
    dc_power_w = ps[4] if len(ps) > 4 and ps[1] not in (None, 0.0) else None

    fans = [f for f in (_to_int(mm.get(f"Fan{i}")) for i in range(1, 5)) if f is not None]
    ghs = _to_float(mm.get("GHSspd"))
    adj = _to_int(mm.get("ADJ"))
    uptime = _to_int(mm.get("Elapsed"))
    if uptime is None:
        uptime = _to_int(entry.get("Elapsed"))

    workmode = _to_int(mm.get("WORKMODE"))
    if workmode is None and "WORKMODE" not in mm and spec is not None and spec.max_workmode == 0:
        workmode = 0  # a model with one work mode reports only WORKLEVEL (Nano 3)

    inlet = _temp(mm.get("ITemp")) if "ITemp" in mm else _temp(mm.get("Temp"))
    if spec is not None and not spec.inlet_sensor:
        inlet = None  # no room-air sensor: the Nano 3S says -273, the Nano 3's Temp[] is air inside its case
    outlet = _temp(mm.get("OTemp")) if "OTemp" in mm else _temp(mm.get("HBOTemp"))
    board = _temp(mm.get("HBTemp")) if "HBTemp" in mm else _temp(mm.get("HBITemp"))

    return Snapshot(
        state=state,
        model=spec.key if spec else None,
        firmware=firmware,
        dna=_str_or_none(mm.get("DNA")),
        workmode=workmode,
        worklevel=_to_int(mm.get("WORKLEVEL")),
        power_w=power_w,
        dc_power_w=dc_power_w,
        hashrate_ths=ghs / 1000.0 if ghs is not None else None,
        inlet_temp_c=inlet,
        outlet_temp_c=outlet,
        board_temp_c=board,
        chip_temp_max_c=_temp(mm.get("TMax")),
        fan_rpm=max(fans) if fans else None,
        fan_pct=_to_int(mm.get("FanR")),
        calibrated=(adj == 1) if adj is not None else None,
        chip_target_c=_temp(mm.get("TarT")),
        mpo_w=_to_float(mm.get("MPO")),
        uptime_s=uptime,
        miner_time=reply.when,
        soft_off_reason=_to_int(mm.get("SoftOFF")),
        extra={k: v for k, v in mm.items() if k not in _USED_KEYS},
    )


def parse_pools(reply: Reply) -> list[dict[str, Any]]:
    """The POOLS section of a `pools` reply (read-only)."""
    check_status(reply)
    return list(reply.sections.get("POOLS", []))


# --------------------------------------------------------------------------------------------------
# Commands → validated requests
# --------------------------------------------------------------------------------------------------

_ASCSET_PART_RE = re.compile(r"-?[A-Za-z0-9_]+(?:[-:][A-Za-z0-9_]+)*")


def _checked_int(name: str, value: object, lo: int, hi: int) -> int:
    """An exact int (not bool/float/str) within [lo, hi], or InvalidValue."""
    if type(value) is not int:
        raise InvalidValue(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise InvalidValue(f"{name} {value} out of range {lo}..{hi}")
    return value


def ascset(option: str, *values: object) -> Request:
    """`ascset|0,<option>[,<value>...]`. Every part is checked so nothing can add extra arguments."""
    parts = [option, *(str(v) for v in values)]
    for part in parts:
        if not _ASCSET_PART_RE.fullmatch(part):
            raise InvalidValue(f"refusing to format ascset argument {part!r}")
    return Request("ascset", ",".join(["0", *parts]))


def level_requests(spec: ModelSpec, level: object) -> list[Request]:
    if not isinstance(level, str) or level not in spec.level_names:
        raise InvalidValue(f"{spec.display} has no level {level!r}; known: {', '.join(spec.level_names)}")
    lv = spec.level(level)
    mode = _checked_int("workmode", lv.workmode, 0, spec.max_workmode)
    if mode not in spec.worklevel_range:
        raise InvalidValue(f"{spec.display}: no worklevel range for workmode {mode}")
    lo, hi = spec.worklevel_range[mode]
    wl = _checked_int("worklevel", lv.worklevel, lo, hi)
    if spec.max_workmode == 0:
        return [ascset("worklevel", "set", wl)]  # one work mode: the level is all there is (Nano 3)
    return [ascset("workmode", "set", mode), ascset("worklevel", "set", wl)]


def fan_request(spec: ModelSpec, pct: object) -> Request:
    if type(pct) is int and pct == AUTO_FAN:
        return ascset("fan-spd", AUTO_FAN)
    return ascset("fan-spd", _checked_int("fan percent", pct, spec.fan_min_pct, spec.fan_max_pct))


def soft_request(spec: ModelSpec, on: bool, at_miner_time: object) -> Request:
    if not spec.has_standby:
        raise Unsupported(f"{spec.display} has no soft off/on (use a smart plug or its lowest level)")
    ts = _checked_int("at_miner_time", at_miner_time, 1, MAX_TIMESTAMP)
    return ascset("softon" if on else "softoff", f"1:{ts}")


def reboot_request(delay_s: object = 0) -> Request:
    return ascset("reboot", _checked_int("reboot delay", delay_s, 0, REBOOT_MAX_DELAY_S))


def led_request(spec: ModelSpec, on: object) -> Request:
    if not spec.has_locate_led:
        raise Unsupported(f"{spec.display} has no locate LED")
    if not isinstance(on, bool):
        raise InvalidValue(f"LED state must be a bool, got {on!r}")
    return ascset("led", "1-1" if on else "1-0")


def lcd_request(spec: ModelSpec, on: object) -> Request:
    if not spec.has_lcd:
        raise Unsupported(f"{spec.display} has no display")
    if not isinstance(on, bool):
        raise InvalidValue(f"LCD state must be a bool, got {on!r}")
    return ascset("lcd", "0:1" if on else "0:0")


POLL_REQUEST = Request("litestats")
POLL_FALLBACK = Request("estats")


def requests_for(command: Command, spec: ModelSpec) -> list[Request]:
    """The wire requests carrying out `command` on a `spec` miner, validated (InvalidValue/Unsupported).

    POLL gives `litestats` only; the executors fall back to `estats` when it is refused as invalid.
    """
    kind = command.kind
    if kind == CommandKind.POLL:
        return [POLL_REQUEST]
    if kind == CommandKind.SET_LEVEL:
        return level_requests(spec, command.level)
    if kind == CommandKind.SET_FAN:
        return [fan_request(spec, command.fan_pct)]
    if kind in (CommandKind.SOFT_ON, CommandKind.SOFT_OFF):
        return [soft_request(spec, kind == CommandKind.SOFT_ON, command.at_miner_time)]
    if kind == CommandKind.REBOOT:
        return [reboot_request(0)]
    raise Unsupported(f"{kind.value} is not a miner command (smart plug commands go to the plug driver)")


# --------------------------------------------------------------------------------------------------
# Replies → Outcome, and the plan both executors drive
# --------------------------------------------------------------------------------------------------


def _invalid_command(exc: Refused) -> bool:
    return exc.code == 14 or "invalid command" in exc.msg.lower()


def interpret_one(command: Command, raw: bytes) -> Outcome:
    """One reply to one request of `command` → Outcome (never raises). None counts as an empty reply."""
    raw = raw if raw is not None else b""
    if command.kind == CommandKind.SOFT_ON and not bytes(raw).strip(b"\x00 \r\n\t"):
        return Outcome(OutcomeKind.UNCONFIRMED, "soft on: connection closed without a reply; verify by polling")
    try:
        reply = decode_reply(raw)
        if command.kind == CommandKind.POLL:
            return Outcome(OutcomeKind.OK, reply.msg, snapshot=parse_stats(reply))
        check_status(reply)
        return Outcome(OutcomeKind.OK, reply.msg)
    except Busy as exc:
        return Outcome(OutcomeKind.BUSY, exc.msg)
    except Refused as exc:
        return Outcome(OutcomeKind.REFUSED, exc.msg)
    except MalformedReply as exc:
        return Outcome(OutcomeKind.MALFORMED, str(exc))


def interpret(command: Command, replies: Sequence[bytes]) -> Outcome:
    """Replies to the requests of `command`, in order → Outcome: the first non-OK one, else the last OK."""
    if not replies:
        return Outcome(OutcomeKind.MALFORMED, "no reply")
    outcome = Outcome(OutcomeKind.MALFORMED, "no reply")
    for raw in replies:
        outcome = interpret_one(command, raw)
        if not outcome.ok:
            return outcome
    return outcome


def outcome_for_error(command: Command, exc: BaseException) -> Outcome:
    """A transport exception raised while carrying out `command` → Outcome."""
    if isinstance(exc, MinerTimeout | TimeoutError):
        sent = exc.sent if isinstance(exc, MinerTimeout) else True
        if command.kind == CommandKind.SOFT_ON and sent:
            return Outcome(OutcomeKind.UNCONFIRMED, f"soft on: no reply ({exc}); verify by polling")
        return Outcome(OutcomeKind.TIMEOUT, str(exc) or "timeout")
    if isinstance(exc, Busy):
        return Outcome(OutcomeKind.BUSY, exc.msg)
    if isinstance(exc, Refused):
        return Outcome(OutcomeKind.REFUSED, exc.msg)
    if isinstance(exc, MalformedReply):
        return Outcome(OutcomeKind.MALFORMED, str(exc))
    if isinstance(exc, Unreachable | OSError):
        return Outcome(OutcomeKind.UNREACHABLE, str(exc) or type(exc).__name__)
    raise exc


#: A plan yields the next Request, receives its raw reply, and returns the Outcome.
Plan = Generator[Request, bytes, Outcome]


def plan(command: Command, spec: ModelSpec) -> Plan:
    """Validate `command` now (raises InvalidValue/Unsupported before anything is sent) and return the
    generator both executors drive: requests are sequential and the first non-OK reply ends the plan."""
    requests = requests_for(command, spec)
    return _run_plan(command, requests)


def _run_plan(command: Command, requests: list[Request]) -> Plan:
    if command.kind == CommandKind.POLL:
        raw = yield requests[0]
        outcome = interpret_one(command, raw)
        if outcome.kind == OutcomeKind.REFUSED and _refused_as_invalid(raw):
            raw = yield POLL_FALLBACK
            outcome = interpret_one(command, raw)
        return outcome
    outcome = Outcome(OutcomeKind.MALFORMED, "no request")
    for request in requests:
        raw = yield request
        outcome = interpret_one(command, raw)
        if not outcome.ok:
            return outcome
    return outcome


def _refused_as_invalid(raw: bytes) -> bool:
    try:
        check_status(decode_reply(raw))
    except Refused as exc:
        return _invalid_command(exc)
    except MinerError:
        return False
    return False

