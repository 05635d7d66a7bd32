"""Sweep matrices and the `{axis}` templates their tasks are written with."""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchtasks.config.shape import Problems, child, item

# A matrix this large is a mistake, and expanding it would exhaust memory before saying so.
MAX_COMBINATIONS = 100_000


def scalar_text(value: Any) -> str:
    """Return a scalar as text: booleans as YAML spells them (true/false), others with str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(axes: Sequence[str], combination: Sequence[Any]) -> str:
    """Return a combination as text, e.g. ``disease='flu', state='ny'``."""
    return ", ".join(f"{axis}={value!r}" for axis, value in zip(axes, combination, strict=True))


@dataclass(frozen=True)
class Template:
    """A string with `{axis}` placeholders, split once so rendering is a join."""

    pieces: tuple[str | int, ...]

    def render(self, texts: Sequence[str]) -> str:
        """Return the string for one combination, given its axis values as text."""
        return "".join(texts[piece] if isinstance(piece, int) else piece for piece in self.pieces)

    @property
    def constant(self) -> bool:
        """Whether the template has no placeholder."""
        return all(isinstance(piece, str) for piece in self.pieces)


def compile_template(
    text: str, axes: Mapping[str, int], path: str, problems: Problems
) -> Template | None:
    """Split a template into literal text and axis positions.

    Parameters
    ----------
    text
        The template; `{axis}` is replaced, `{{` and `}}` stand for braces.
    axes
        Axis names and their positions in a combination.
    path
        Key path of the template, for problems.
    problems
        Where problems are recorded.

    Returns
    -------
    Template | None
        The template, or None if it is malformed or names something that is not an axis.
    """
    pieces: list[str | int] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        problems.add(
            path, f"is not a valid template ({error}; write {{{{ and }}}} for literal braces)", text
        )
        return None
    ok = True
    for literal, name, spec, conversion in parsed:
        if literal:
            pieces.append(literal)
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            problems.add(
                path,
                "may only use plain {axis} placeholders (write {{ and }} for literal braces)",
                text,
            )
            ok = False
        elif name not in axes:
            problems.add(
                path,
                f"uses {{{name}}}, which is not an axis of the matrix (axes: {', '.join(axes)})",
                text,
            )
            ok = False
        else:
            pieces.append(axes[name])
    return Template(tuple(pieces)) if ok else None


def expand_matrix(
    matrix: Mapping[str, list[Any]],
    include: Sequence[Any],
    exclude: Sequence[Any],
    path: str,
    problems: Problems,
) -> list[tuple[Any, ...]] | None:
    """Return the combinations of a sweep, in order.

    The cartesian product of the axes, in the order written, less every combination that
    matches all the keys of some `exclude` entry; then each `include` entry (which gives a value
    for every axis) is added unless already present. Values are compared as text.

    Parameters
    ----------
    matrix
        Axis name to its values (cleaned: a list of scalars, or INVALID).
    include, exclude
        Cleaned lists of axis assignments.
    path
        Key path of the sweep.
    problems
        Where problems are recorded.

    Returns
    -------
    list[tuple] | None
        One tuple of axis values per combination, or None if the matrix is unusable.
    """
    axes = list(matrix)
    usable = True
    for axis, values in matrix.items():
        if not isinstance(values, list):
            usable = False
            continue
        first: dict[str, int] = {}
        for index, value in enumerate(values):
            if not isinstance(value, str | int | float | bool):
                usable = False
                continue
            earlier = first.setdefault(scalar_text(value), index)
            if earlier != index:
                problems.add(
                    item(child(f"{path}.matrix", axis), index),
                    f"repeats item {earlier} of the axis",
                    value,
                )
                usable = False
    if not usable or not axes:
        return None
    size = math.prod(len(values) for values in matrix.values())
    if size > MAX_COMBINATIONS:
        problems.add(
            f"{path}.matrix",
            f"makes {size} combinations; a sweep may have at most {MAX_COMBINATIONS}",
        )
        return None
    combinations = list(itertools.product(*matrix.values()))
    keys = [tuple(scalar_text(value) for value in combo) for combo in combinations]
    position = {axis: index for index, axis in enumerate(axes)}
    dropped: set[int] = set()
    for index, entry in enumerate(exclude):
        entry_path = item(f"{path}.exclude", index)
        wanted = _assignment(entry, position, entry_path, problems)
        if wanted is None:
            continue
        matched = [
            number
            for number, key in enumerate(keys)
            if all(key[axis] == text for axis, text in wanted)
        ]
        if not matched:
            problems.add(entry_path, "matches no combination of the matrix", entry)
        dropped.update(matched)
    result = [combo for number, combo in enumerate(combinations) if number not in dropped]
    present = {key for number, key in enumerate(keys) if number not in dropped}
    for index, entry in enumerate(include):
        entry_path = item(f"{path}.include", index)
        wanted = _assignment(entry, position, entry_path, problems)
        if wanted is None:
            continue
        missing = [axis for axis in axes if axis not in entry]
        if missing:
            problems.add(
                entry_path,
                f"must give a value for every axis (missing: {', '.join(missing)})",
                entry,
            )
            continue
        combo = tuple(entry[axis] for axis in axes)
        key = tuple(scalar_text(value) for value in combo)
        if key not in present:
            present.add(key)
            result.append(combo)
    if not result:
        problems.add(
            f"{path}.exclude",
            "removes every combination of the matrix, so the sweep "
            "would make no task (remove the sweep instead)",
        )
        return None
    return result


def _assignment(
    entry: Any, position: Mapping[str, int], path: str, problems: Problems
) -> list[tuple[int, str]] | None:
    if not isinstance(entry, dict):
        return None
    wanted = []
    for axis, value in entry.items():
        if not isinstance(value, str | int | float | bool):
            return None
        if axis not in position:
            problems.add(
                child(path, axis), f"is not an axis of the matrix (axes: {', '.join(position)})"
            )
            return None
        wanted.append((position[axis], scalar_text(value)))
    return wanted
