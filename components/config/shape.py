"""Check a raw setting against its `Field` table: types, known keys, required keys, rules.

Cleaning keeps the layout of the input so that later checks can still name key paths:
a value that breaks its rule becomes `INVALID` in place (list positions stay put), and its
problem has already been recorded.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from batchtasks.config.model import ConfigProblem, shown
from batchtasks.config.schema import Field
from batchtasks.rules import TEXT, Range, control_character_problem

# Tells whether a value is not known yet, so it is left unchecked.
Pending = Callable[[Any], bool]
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class _Invalid:
    """Marker for a value whose problem has been recorded."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()


class Problems:
    """The problems found so far, in order, without repeats.

    Problems about values produced by a sweep can come by the thousand from one mistake, so
    each `cap_key` keeps its first `CAP` problems and counts the rest.
    """

    CAP = 5

    def __init__(self) -> None:
        self._seen: dict[ConfigProblem, None] = {}
        self._counts: dict[str, int] = {}
        self._paths: dict[str, str] = {}

    def add(
        self, path: str, message: str, value: Any = INVALID, *, cap_key: str | None = None
    ) -> None:
        """Record a problem; `value` (left out for a missing key or a secret) is quoted."""
        if cap_key is not None:
            count = self._counts[cap_key] = self._counts.get(cap_key, 0) + 1
            self._paths.setdefault(cap_key, path)
            if count > self.CAP:
                return
        quoted = None if value is INVALID else shown(value)
        self._seen.setdefault(ConfigProblem(path, message, quoted), None)

    def result(self) -> list[ConfigProblem]:
        """Return the problems, with a line for each capped group saying how many were left out."""
        out = list(self._seen)
        for key, count in self._counts.items():
            if count > self.CAP:
                out.append(
                    ConfigProblem(
                        self._paths[key], f"... and {count - self.CAP} more like the above"
                    )
                )
        return out

    def __bool__(self) -> bool:
        return bool(self._seen)


def child(path: str, key: Any) -> str:
    """Return the key path of a mapping's key."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def item(path: str, index: int) -> str:
    """Return the key path of a list's item."""
    return f"{path}[{index}]"


def get(obj: Any, key: str, default: Any = None) -> Any:
    """Return a cleaned object's valid value for key, or default when absent or invalid."""
    if not isinstance(obj, dict):
        return default
    value = obj.get(key, INVALID)
    return default if value is INVALID else value


def _unknown_key(path: str, key: Any, known: Mapping[str, Field], problems: Problems) -> None:
    names = list(known)
    close = difflib.get_close_matches(key, names, n=1) if isinstance(key, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    problems.add(child(path, key), f"unknown key{hint} (expected one of: {', '.join(names)})")


def _integer(value: Any, spec: Field, path: str, problems: Problems) -> Any:
    problem = Range("integer", spec.minimum, spec.maximum, spec.also).problem(value)
    if problem:
        problems.add(path, problem, value)
        return INVALID
    return int(value)


def _string(value: Any, spec: Field, path: str, problems: Problems) -> Any:
    rule = spec.rule or TEXT
    problem = rule.problem(value)
    if problem:
        problems.add(path, problem, value)
        return INVALID
    # A choice is kept in its canonical spelling.
    return rule.canonical(value) if rule.choices else value


def clean(
    value: Any, spec: Field, path: str, problems: Problems, pending: Pending | None = None
) -> Any:
    """Check a raw value against its field and return it cleaned, or INVALID.

    Parameters
    ----------
    value
        The raw value from the stack file.
    spec
        Its field.
    path
        Its key path, for problems.
    problems
        Where problems are recorded.
    pending
        Tells which values are not known yet (a provider's check during preview): those are
        kept as they are, unchecked.

    Returns
    -------
    Any
        Objects as dicts (a bad key's value replaced by INVALID), lists as lists (a bad item
        replaced by INVALID), maps as dicts without bad entries, enum strings in their canonical
        spelling, integers as int; INVALID when the value itself is unusable. A map keeps a bad
        key or value as INVALID under its key, so a matrix axis with bad values is still known.
    """
    if pending is not None and pending(value):
        return value
    kind = spec.kind
    if kind == "string":
        return _string(value, spec, path, problems)
    if kind == "integer":
        return _integer(value, spec, path, problems)
    if kind == "boolean":
        if not isinstance(value, bool):
            problems.add(path, "must be true or false", value)
            return INVALID
        return value
    if kind == "scalar":
        if isinstance(value, str) and (control := control_character_problem(value)):
            problems.add(path, control, value)
            return INVALID
        if isinstance(value, float) and not math.isfinite(value):
            problems.add(path, "must be a finite number", value)
            return INVALID
        if isinstance(value, str | bool | int | float):
            return value
        problems.add(path, "must be a string, number or boolean", value)
        return INVALID
    if kind == "list":
        if not isinstance(value, list):
            problems.add(path, "must be a list", value)
            return INVALID
        if len(value) < spec.min_items:
            problems.add(path, f"must have at least {spec.min_items} item(s)", value)
            return INVALID
        assert spec.item is not None
        return [
            clean(entry, spec.item, item(path, index), problems, pending)
            for index, entry in enumerate(value)
        ]
    if not isinstance(value, Mapping):
        problems.add(path, "must be a mapping of keys to values", value)
        return INVALID
    if kind == "map":
        return _map(value, spec, path, problems, pending)
    return _object(value, spec, path, problems, pending)


def _map(
    value: Mapping[Any, Any], spec: Field, path: str, problems: Problems, pending: Pending | None
) -> Any:
    if len(value) < spec.min_items:
        problems.add(path, f"must have at least {spec.min_items} entry", value)
        return INVALID
    out: dict[str, Any] = {}
    for key, entry in value.items():
        if not isinstance(key, str) or (spec.key_rule and spec.key_rule.problem(key)):
            hint = spec.key_rule.message if spec.key_rule else "must be a string"
            problems.add(child(path, key), f"is not a valid name: {hint}")
            out[str(key)] = INVALID
            continue
        assert spec.item is not None
        out[key] = clean(entry, spec.item, child(path, key), problems, pending)
    return out


def _object(
    value: Mapping[Any, Any], spec: Field, path: str, problems: Problems, pending: Pending | None
) -> Any:
    fields = spec.fields or {}
    out: dict[str, Any] = {}
    for key, entry in value.items():
        if key not in fields:
            _unknown_key(path, key, fields, problems)
            continue
        out[key] = clean(entry, fields[key], child(path, key), problems, pending)
    for key, sub in fields.items():
        if sub.required and key not in value:
            problems.add(child(path, key), "is required")
    if spec.exactly_one:
        given = [key for key in spec.exactly_one if key in value]
        if len(given) != 1:
            names = " or ".join(spec.exactly_one)
            rule = (
                f"must give one of {names}"
                if not given
                else f"must give only one of {', '.join(given)}"
            )
            problems.add(path, rule)
    return out
