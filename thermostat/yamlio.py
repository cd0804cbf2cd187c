"""YAML loading and `file:line:col: field: message` error reports, shared by config and schedule files.

ruamel.yaml in round-trip mode is used because it speaks YAML 1.2 (``22:00`` and ``off`` stay strings,
no base-60 integers), refuses duplicate keys, and keeps the line/column of every key and item (``.lc``).
Pydantic validates the CommentedMap/CommentedSeq it returns as plain dicts and lists; when validation
fails, the error's ``loc`` tuple is walked back through the loaded tree to find where the value was written.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

MAX_BYTES = 1_000_000  # a configuration or schedule file is a few kB; anything this big is a mistake

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem in one file, located by its path of keys/indices in the loaded tree."""

    loc: Loc
    message: str
    on_key: bool = False  # point at the key itself (unknown/invalid key) rather than at its value


class YamlFileError(Exception):
    """A file that could not be read or parsed; `errors` are already formatted report lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def display_path(path: Path) -> str:
    """The path as the user should see it in a report (relative to the cwd when below it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file. Raises `YamlFileError` with one formatted line (never a traceback)."""
    name = display_path(path)
    try:
        if path.is_dir():
            raise YamlFileError([f"{name}: is a directory, not a YAML file"])
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise YamlFileError([f"{name}: file not found"]) from None
    except PermissionError:
        raise YamlFileError([f"{name}: permission denied"]) from None
    except OSError as exc:
        raise YamlFileError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_BYTES:
        raise YamlFileError([f"{name}: file is larger than {MAX_BYTES} bytes; not a configuration file"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError([f"{name}: not UTF-8 text (byte {exc.start})"]) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML 1.2 text (round-trip mode, so positions are kept)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in problem:
            problem = problem.split(" with value")[0]  # do not echo values (they may be secrets)
            if exc.context_mark is not None:
                problem += f" (first defined on line {exc.context_mark.line + 1})"
        if mark is None:
            raise YamlFileError([f"{name}: YAML error: {problem}"]) from None
        raise YamlFileError([f"{name}:{mark.line + 1}:{mark.column + 1}: YAML error: {problem}"]) from None
    except YAMLError as exc:
        raise YamlFileError([f"{name}: YAML error: {exc}"]) from None
    except RecursionError:
        raise YamlFileError([f"{name}: YAML error: nesting too deep"]) from None


# --------------------------------------------------------------------------- locations


def locate(data: Any, loc: Loc, on_key: bool = False) -> tuple[int, int] | None:
    """1-based (line, col) of the node at `loc` in a round-trip tree, or of its nearest existing ancestor.

    Parts of `loc` that do not exist in the tree (pydantic adds union tags and ``[key]`` markers) are skipped.
    """
    return _walk(data, loc, on_key)[0]


def shown_path(data: Any, loc: Loc) -> str:
    """`loc` as the user wrote it: parts absent from the file (union tags) are left out, except a missing
    last key (the one the error is about)."""
    return _walk(data, loc, False)[1]


def _walk(data: Any, loc: Loc, on_key: bool) -> tuple[tuple[int, int], str]:
    node = data
    pos = (1, 1)
    shown: list[str] = []
    last = len(loc) - 1
    while last > 0 and loc[last] == "[key]":
        last -= 1  # an error about a key: point at the key itself
    for i, part in enumerate(loc):
        if isinstance(node, CommentedMap):
            key = _find_key(node, part)
            if key is _MISSING:
                if i == last and part != "[key]":
                    shown.append(str(part))
                continue
            try:
                if (on_key and i == last) or not _has_value_pos(node, key):
                    line, col = node.lc.key(key)
                else:
                    line, col = node.lc.value(key)
                pos = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            shown.append(str(key))
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            try:
                line, col = node.lc.item(part)
                pos = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            shown.append(str(part))
            node = node[part]
        elif i == last and part != "[key]" and not isinstance(node, CommentedMap | CommentedSeq):
            continue
    return pos, ".".join(shown) if shown else "(top level)"


_MISSING = object()


def _find_key(node: CommentedMap, part: str | int) -> Any:
    if part in node:
        return part
    for key in node:  # YAML keys that are not strings (numbers, dates) appear in pydantic locs as strings
        if str(key) == str(part):
            return key
    return _MISSING


def _has_value_pos(node: CommentedMap, key: Any) -> bool:
    value = node[key]
    # ruamel records the value position of scalars; for a nested block mapping the "value" position is that
    # of its first key, which reads oddly in a report, so point at the key of the entry instead.
    return not (isinstance(value, CommentedMap | CommentedSeq) and len(value) > 0 and not _is_flow(value))


def _is_flow(value: Any) -> bool:
    fa = getattr(value, "fa", None)
    return bool(fa is not None and fa.flow_style())


def format_problem(name: str, data: Any, problem: Problem) -> tuple[tuple[int, int], str]:
    pos, path = _walk(data, problem.loc, problem.on_key)
    return pos, f"{name}:{pos[0]}:{pos[1]}: {path}: {problem.message}"


def format_problems(name: str, data: Any, problems: Iterable[Problem]) -> list[str]:
    """Formatted lines, sorted by position in the file, duplicates removed."""
    seen: set[str] = set()
    out: list[tuple[tuple[int, int], str]] = []
    for p in problems:
        pos, line = format_problem(name, data, p)
        if line not in seen:
            seen.add(line)
            out.append((pos, line))
    out.sort(key=lambda item: item[0])
    return [line for _, line in out]


# --------------------------------------------------------------------------- pydantic errors

_SECRET_PARTS = ("password", "secret", "token")


def problems_from_validation_error(exc: ValidationError, root: type[BaseModel] | None = None) -> list[Problem]:
    """Turn pydantic errors into Problems; unknown keys get a did-you-mean suggestion from `root`'s fields."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        etype = err["type"]
        msg = err["msg"]
        if etype == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            known = sorted(model_fields_at(root, loc[:-1])) if root is not None else []
            msg = f"unknown key {key!r}" + did_you_mean(key, known)
            problems.append(Problem(loc, msg, on_key=True))
            continue
        if etype == "missing":
            problems.append(Problem(loc, "required key is missing", on_key=True))
            continue
        plain = _plain_message(etype, err)
        if plain is not None:
            problems.append(Problem(loc, plain, on_key="[key]" in loc))
            continue
        if etype == "value_error" and msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif etype == "assertion_error" and msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        value = err.get("input")
        secret = any(s in str(part).lower() for part in loc for s in _SECRET_PARTS)
        if (
            not secret
            and etype not in ("value_error", "literal_error", "enum")
            and isinstance(value, str | int | float | bool)
        ):
            shown = repr(value) if isinstance(value, str) else str(value)
            if len(shown) <= 60:
                msg += f" (got {shown})"
        problems.append(Problem(loc, msg, on_key="[key]" in loc))
    return problems


def _yaml_kind(value: object) -> str:
    """What a YAML reader would call the value the user wrote."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = repr(value) if len(value) <= 40 else repr(value[:37] + "...")
        return f"the text {shown}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _plain_message(etype: str, err: Any) -> str | None:
    """Our own wording for pydantic errors whose text names its internals ("instance of RoomConfig",
    "Dictionary should have at least 1 item after validation"); None keeps pydantic's message."""
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping (key: value lines), got {_yaml_kind(value)}"
    if etype == "list_type":
        return f"must be a list, got {_yaml_kind(value)}"
    if etype in ("too_short", "too_long") and isinstance(value, dict | list | tuple):
        what = "entry" if isinstance(value, dict) else "item"
        bound = ctx.get("min_length" if etype == "too_short" else "max_length")
        if etype == "too_short":
            need = "at least one " + what if bound == 1 else f"at least {bound} {what}s"
        else:
            need = f"at most {bound} {what}{'s' if bound != 1 else ''}"
        count = len(value)
        return f"needs {need}, has {count}" if count else f"needs {need}, has none"
    return None


def did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if options and len(options) <= 12:
        return f"; expected one of: {', '.join(options)}"
    return ""


def model_fields_at(root: Any, loc: Loc) -> set[str]:
    """Field names of the model(s) found by following `loc` from the type `root` (for suggestions)."""
    candidates: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in _expand(candidates):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                fields = tp.model_fields
                if isinstance(part, str) and part in fields:
                    nxt.append(fields[part].annotation)
                elif _literal_values(tp, part):
                    nxt.append(tp)  # a discriminated-union tag in the loc: stay on this member
            else:
                origin = typing.get_origin(tp)
                args = typing.get_args(tp)
                if origin in (dict, Mapping) and len(args) == 2:
                    nxt.append(args[1])
                elif origin in (list, tuple, Sequence) and args:
                    nxt.append(args[0])
        candidates = nxt
    names: set[str] = set()
    for tp in _expand(candidates):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            names.update(tp.model_fields)
    return names


def _expand(types_: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = list(types_)
    while stack:
        tp = stack.pop(0)
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            stack.append(typing.get_args(tp)[0])
        elif origin is typing.Union or origin is types.UnionType:
            stack.extend(typing.get_args(tp))
        else:
            out.append(tp)
    return out


def _literal_values(model: type[BaseModel], part: Any) -> bool:
    for f in model.model_fields.values():
        if typing.get_origin(f.annotation) is typing.Literal and part in typing.get_args(f.annotation):
            return True
    return False
