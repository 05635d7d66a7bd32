"""Sweep matrices, the `{axis}` templates their tasks are written with, and template specs.

A sweep's tasks are one template spec (its merged task spec, in which each string made from
placeholders is a marker) and, per task, its axis values as text. `SpecTemplate.render` is the
one function that turns those into a task spec: the config loader builds every sweep task
through it, and a BatchTaskSet stores the template once and the texts per task and decodes its
state through it too, so the two cannot drift.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchtasks.config.shape import Problems, child, item

# A matrix this large is a mistake, and expanding it would exhaust memory before saying so.
MAX_COMBINATIONS = 1_000_000
# The key of a marker: `{"$t": [literal, axis position, ...]}` stands for a string made from
# placeholders. Environment variable names cannot hold `$` and every other object of a spec has
# fixed keys, so no user value is ever taken for a marker.
MARKER_KEY = "$t"


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
    # The pieces as a str.format pattern ("{0}-{1}"): rendering a million tasks is then a
    # C-level call each, not a Python loop over the pieces.
    _pattern: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = "".join(
            f"{{{piece}}}"
            if isinstance(piece, int)
            else piece.replace("{", "{{").replace("}", "}}")
            for piece in self.pieces
        )
        object.__setattr__(self, "_pattern", pattern)

    def render(self, texts: Sequence[str]) -> str:
        """Return the string for one combination, given its axis values as text."""
        return self._pattern.format(*texts)

    def render_all(self, values: Iterable[Sequence[str]]) -> list[str]:
        """Return the string of each of many combinations (one C-level call each)."""
        return list(itertools.starmap(self._pattern.format, values))

    @property
    def literals(self) -> tuple[str, ...]:
        """The template's literal pieces (the text between its placeholders)."""
        return tuple(piece for piece in self.pieces if isinstance(piece, str))

    @property
    def constant(self) -> bool:
        """Whether the template has no placeholder."""
        return all(isinstance(piece, str) for piece in self.pieces)

    def marker(self) -> Any:
        """Return the template as a template spec holds it: its text when constant, else a
        marker of its literal pieces and axis positions."""
        if self.constant:
            return self.render(())
        return {MARKER_KEY: list(self.pieces)}


def marker_pieces(value: Any) -> list[str | int] | None:
    """Return the pieces of a marker, or None when the value is not a well-formed marker."""
    if not isinstance(value, Mapping) or len(value) != 1 or MARKER_KEY not in value:
        return None
    pieces = value[MARKER_KEY]
    if not isinstance(pieces, list) or not all(
        isinstance(piece, str) or (type(piece) is int and piece >= 0) for piece in pieces
    ):
        return None
    return pieces


# How one part of a template spec is made for a task: given its texts, the value.
_Part = Any


def _compile(value: Any) -> tuple[bool, _Part]:
    """Return whether a template value holds markers, and how to render it (the value itself
    when it holds none: constant parts are shared by every task, never copied)."""
    pieces = marker_pieces(value)
    if pieces is not None:
        return True, Template(tuple(pieces))
    if isinstance(value, Mapping):
        parts = {key: _compile(item) for key, item in value.items()}
        if any(varies for varies, _part in parts.values()):
            return True, (
                "dict",
                tuple((key, varies, part) for key, (varies, part) in parts.items()),
            )
    elif isinstance(value, list):
        listed = [_compile(item) for item in value]
        if any(varies for varies, _part in listed):
            return True, ("list", tuple(listed))
    return False, value


def _render(part: _Part, texts: Sequence[str]) -> Any:
    if isinstance(part, Template):
        return part.render(texts)
    kind, items = part
    if kind == "dict":
        return {key: _render(sub, texts) if varies else sub for key, varies, sub in items}
    return [_render(sub, texts) if varies else sub for varies, sub in items]


class SpecTemplate:
    """A template spec compiled once, so each task is rendered by joining its strings.

    Parameters
    ----------
    spec
        The template spec: a task spec whose strings made from placeholders are markers.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self._parts = tuple((key, *_compile(value)) for key, value in spec.items())
        self.positions = max(
            (
                piece + 1
                for _key, varies, part in self._parts
                if varies
                for piece in _positions(part)
            ),
            default=0,
        )

    def render(self, texts: Sequence[str]) -> dict[str, Any]:
        """Return the task spec for one task.

        Parameters
        ----------
        texts
            The task's axis values as text, in the order of the axes.

        Returns
        -------
        dict
            The spec: markers replaced by their strings; the parts without markers are the
            template's own objects, shared by every task (read them, never change them).
        """
        return {key: _render(part, texts) if varies else part for key, varies, part in self._parts}

    def render_key(self, key: str, texts: Sequence[str]) -> Any:
        """Return one field of a task's spec (its id, say) without rendering the rest."""
        for name, varies, part in self._parts:
            if name == key:
                return _render(part, texts) if varies else part
        return None

    def marked_paths(self) -> list[tuple[str | int, ...]]:
        """Return where the spec holds markers: each a path of keys and list positions."""
        return [steps for steps, _template in self.marked_leaves()]

    def marked_leaves(self) -> list[tuple[tuple[str | int, ...], Template]]:
        """Return each marker of the spec: its path of keys and list positions, and the
        template that makes its string."""
        found: list[tuple[tuple[str | int, ...], Template]] = []

        def walk(part: _Part, prefix: tuple[str | int, ...]) -> None:
            if isinstance(part, Template):
                found.append((prefix, part))
                return
            kind, items = part
            if kind == "dict":
                for key, varies, sub in items:
                    if varies:
                        walk(sub, (*prefix, key))
            else:
                for index, (varies, sub) in enumerate(items):
                    if varies:
                        walk(sub, (*prefix, index))

        for key, varies, part in self._parts:
            if varies:
                walk(part, (key,))
        return found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpecTemplate) and self.spec == other.spec

    __hash__ = None  # type: ignore[assignment]  # equal by value, like the dict it holds

    def varying_keys(self) -> tuple[str, ...]:
        """Return the spec's keys whose values hold markers, in the spec's order."""
        return tuple(key for key, varies, _part in self._parts if varies)


def _positions(part: _Part) -> Iterator[int]:
    if isinstance(part, Template):
        yield from (piece for piece in part.pieces if isinstance(piece, int))
        return
    _kind, items = part
    for entry in items:
        varies, sub = entry[-2], entry[-1]
        if varies:
            yield from _positions(sub)


def longest_texts(values: Sequence[Sequence[str]], count: int) -> tuple[str, ...]:
    """Return, per axis position, the text whose JSON takes the most bytes.

    A task's body only grows with the length of each text in it, so the spec rendered from
    these texts is at least as large as any task's: when it fits, every task does.

    Parameters
    ----------
    values
        Per task, its axis values as text (at least one task).
    count
        How many axis positions to look at.

    Returns
    -------
    tuple[str, ...]
        One text per position.
    """
    return tuple(
        max(
            set(map(operator.itemgetter(position), values)),
            key=lambda text: len(json.dumps(text, ensure_ascii=False).encode("utf-8", "replace")),
        )
        for position in range(count)
    )


def render_spec(template: Mapping[str, Any], texts: Sequence[str]) -> dict[str, Any]:
    """Return one task's spec from a template spec and the task's axis values as text.

    Parameters
    ----------
    template
        The template spec (see `SpecTemplate`).
    texts
        The task's axis values as text.

    Returns
    -------
    dict
        The task spec, as `SpecTemplate.render` gives it.
    """
    return SpecTemplate(template).render(texts)


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
    # Axis position -> value text -> the value's index on its axis (texts are unique per axis).
    indexes: list[dict[str, int]] = []
    for axis, values in matrix.items():
        if not isinstance(values, list):
            usable = False
            continue
        first: dict[str, int] = {}
        indexes.append(first)
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
    if combinations and not exclude and not include:
        return combinations  # nothing to match: no per-combination keys needed
    keys = [tuple(scalar_text(value) for value in combo) for combo in combinations]
    position = {axis: index for index, axis in enumerate(axes)}
    lengths = [len(values) for values in matrix.values()]
    dropped: set[int] = set()
    seen: set[tuple[tuple[int, str], ...]] = set()
    for index, entry in enumerate(exclude):
        entry_path = item(f"{path}.exclude", index)
        wanted = _assignment(entry, position, entry_path, problems)
        if wanted is None:
            continue
        matched = _matching_numbers(wanted, indexes, lengths)
        if not matched:
            problems.add(entry_path, "matches no combination of the matrix", entry)
        elif tuple(sorted(wanted)) not in seen:  # a repeated entry drops nothing more
            seen.add(tuple(sorted(wanted)))
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
    if len(result) > MAX_COMBINATIONS:
        problems.add(
            f"{path}.include",
            f"makes {len(result)} combinations with the matrix; a sweep may have at most "
            f"{MAX_COMBINATIONS}",
        )
        return None
    if not result:
        problems.add(
            f"{path}.exclude",
            "removes every combination of the matrix, so the sweep "
            "would make no task (remove the sweep instead)",
        )
        return None
    return result


def _matching_numbers(
    wanted: Sequence[tuple[int, str]], indexes: Sequence[Mapping[str, int]], lengths: list[int]
) -> list[int]:
    """Return the numbers (in product order) of the combinations an exclude entry matches,
    computed from the axes it fixes: the cost is the matches, not every combination."""
    fixed: dict[int, int] = {}
    for axis, text in wanted:
        at = indexes[axis].get(text)
        if at is None or fixed.setdefault(axis, at) != at:
            return []
    numbers = [0]
    for axis, length in enumerate(lengths):
        stride = math.prod(lengths[axis + 1 :])
        if axis in fixed:
            offset = fixed[axis] * stride
            numbers = [number + offset for number in numbers]
        else:
            numbers = [number + at * stride for number in numbers for at in range(length)]
    return numbers


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
