"""Template bodies: build one REST body per task shape through the seed's functions, then
substitute each task's own values.

A sweep's tasks differ only in the id and the fields the task-field table marks `varies` (today
the command, environment values, output paths and dependsOn), each in the way its `varies` says;
everything else, the shape, is shared. Building every body through the
seed's model layer costs most of a large create or preview, so `TemplateBodyBuilder` builds each
shape's body once, with marker values in the varying fields, through the reference builder
(`spec.TaskBodyBuilder`, itself the seed's functions), cuts its compact JSON text at the
markers, and fills in each task's values there. A template is kept only if it also reproduces
the reference's body for probe values (quotes, backslashes, non-ASCII); each value substituted is
checked with the rule the seed applies to that parameter, and a value that fails, or a shape
without a template, goes through the reference builder: errors and bodies are exactly the seed's
(tests/test_template.py proves the equality over generated shapes).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from batchtasks import fields, rules
from batchtasks.batch.spec import TaskBodyBuilder, TaskContext
from batchtasks.config.sweep import SpecTemplate, Template
from batchtasks.fields import TaskField

# Markers stand in for the varying values while a shape's body is built. They are valid where
# they go (an id, a command line, a path, an environment value, a task id) and a shape holding
# the stem itself is built the slow way, so a marker can never be confused with a user's text.
MARKER_STEM = "zq9tpl"
ID_MARKER = f"{MARKER_STEM}id"
# The JSON text of a string, as json.dumps gives it (without its per-call overhead).
_text = json.encoder.encode_basestring_ascii
# Axis markers stand in for a sweep's axis values when its template spec is rendered once to
# find where each value lands (`SweepBodies`); not the markers' stem, so they stay in the holes.
AXIS_STEM = "zq8axis"
_AXIS_MARKER = re.compile(AXIS_STEM + r"(\d+)x")
# Probe values: unlike the markers and unlike each other, with characters JSON escapes. No
# control characters (the seed refuses them); a blob path takes no backslash either.
_PROBE_ID = "probe_Task-7"
_PROBE_TEXT = 'probe "quoted" \\ back/slash \u00e9\u2603'
_PROBE_PATH = 'probe "quoted" \u00e9\u2603'

# A place inside a field's value: () for the value itself, a map's key, or an index into a list
# and the key of that item.
Where = tuple[str | int, ...]


def _marker(index: int) -> str:
    """The marker of a shape's hole number `index`."""
    return f"{MARKER_STEM}-{index}"


def _list_items(value: Any) -> str:
    # A whole list's hole: its marker stands alone in a list, so the hole takes the items.
    return json.dumps(list(value), separators=(",", ":"))[1:-1]


def _as_text(value: Any) -> str:
    # The seed's builder gives each environment value as text.
    return _text(str(value))


class Way:
    """How template bodies leave one varying field open: where its value varies, how a task's
    value is written into the body text, and the rule that value must follow (the table's rule
    for that place, which the seed applies to that parameter).

    Parameters
    ----------
    field
        A task field the table marks `varies` (one of `fields.VARIES`).

    Raises
    ------
    ValueError
        For a `varies` this module does not know.
    """

    def __init__(self, field: TaskField) -> None:
        self.field = field
        self.kind = kind = field.varies or ""
        self.item_key = kind.removeprefix("items.") if kind.startswith("items.") else None
        item = field.field.item
        self.whole_list = kind == "list"
        self.encode: Callable[[Any], str] = _text
        if kind == "text":
            self.rule = field.field.rule
        elif kind in ("values", "list"):
            self.rule = item.rule if item is not None else None
            self.encode = _as_text if kind == "values" else _list_items
        elif self.item_key is not None and item is not None and item.fields is not None:
            self.rule = item.fields[self.item_key].rule
        else:
            raise ValueError(
                f"task field {field.key!r}: varies={kind!r} is none of {fields.VARIES}"
            )

    def open(self, value: Any, first: int) -> tuple[Any, list[tuple[Where, Any]]] | None:
        """Return the value with markers (numbered from `first`) in its varying places, and
        those places with the task's values; None when no template can serve the value."""
        kind = self.kind
        if kind == "text":
            return (value, []) if value is None else (_marker(first), [((), value)])
        if not value:
            return value, []
        if self.whole_list:
            return [_marker(first)], [((), value)]
        if kind == "values":
            if not isinstance(value, Mapping):
                return None
            names = sorted(value)
            marked = {name: _marker(first + n) for n, name in enumerate(names)}
            return marked, [((name,), value[name]) for name in names]
        key = self.item_key or ""
        if not isinstance(value, list | tuple):
            return None
        items: list[Any] = []
        places: list[tuple[Where, Any]] = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                return None
            if item.get(key) is not None:
                places.append(((index, key), item[key]))
                item = {**item, key: _marker(first + len(places) - 1)}
            items.append(item)
        return items, places

    def passes(self, value: Any) -> bool:
        """Tell whether a task's value at one place follows the rule there."""
        rule = self.rule
        if self.whole_list:
            return isinstance(value, list | tuple) and all(
                isinstance(each, str) and (rule is None or rule.problem(each) is None)
                for each in value
            )
        if self.kind == "values":
            return rule is None or rule.problem(value) is None
        return isinstance(value, str) and (rule is None or rule.problem(value) is None)

    def probe(self, where: Where) -> Any:
        """A value for one place that is valid there and unlike any marker."""
        if self.whole_list:
            return ["probe-a", "probe_b"]
        if self.kind == "text":
            return f"{_PROBE_TEXT} {self.field.key}"
        if self.kind == "values":
            return f"{_PROBE_TEXT} {where[0]}"
        return f"{_PROBE_PATH}/{where[0]}"


# One Way per field the table marks `varies`, in table order.
WAYS = tuple(Way(field) for field in fields.VARYING_FIELDS)


class Hole(NamedTuple):
    """One place of a task spec that its shape's template leaves open, with the task's value."""

    way: Way
    where: Where
    value: Any

    @property
    def field(self) -> TaskField:
        """The task field the place is in."""
        return self.way.field

    def probe(self) -> Any:
        """A probe value for this place (see `Way.probe`)."""
        return self.way.probe(self.where)


def _placed(value: Any, where: Where, put: Any) -> Any:
    """Return `value` with `put` at `where` (copies along the way; the value is not changed)."""
    if not where:
        return put
    head, rest = where[0], where[1:]
    if isinstance(value, Mapping):
        return {**value, head: _placed(value[head], rest, put)}
    items = list(value)
    items[int(head)] = _placed(items[int(head)], rest, put)
    return items


def fill_holes(
    spec: Mapping[str, Any], holes: tuple[Hole, ...], values: list[Any]
) -> dict[str, Any]:
    """Return the spec with each hole's place holding the value given for it."""
    filled = dict(spec)
    for hole, value in zip(holes, values, strict=True):
        key = hole.field.key
        filled[key] = _placed(filled[key], hole.where, value)
    return filled


def split_spec(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any], tuple[Hole, ...]] | None:
    """Split a task spec into its shape (a key and the spec with markers) and its own values.

    The places that vary are those of the fields the task-field table marks `varies`, each
    opened as its `Way` says.

    Parameters
    ----------
    spec
        A task spec (camelCase fields, without the id).

    Returns
    -------
    tuple | None
        (shape key, spec with markers in the varying places, the holes with the task's values,
        in marker order), or None when the spec is not one a template can serve (the reference
        builder then handles it).
    """
    shape = dict(spec)
    holes: list[Hole] = []
    for way in WAYS:
        key = way.field.key
        if key not in spec:
            continue
        opened = way.open(spec[key], len(holes))
        if opened is None:
            return None
        shape[key], places = opened
        holes += [Hole(way, where, value) for where, value in places]
    try:
        key = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    if key.count(MARKER_STEM) != len(holes):
        return None  # the spec's own text holds the marker stem: build it the seed's way
    return key, shape, tuple(holes)


# A JSON string token of a compact body text (outside strings, JSON has no quotes).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# How one hole in a template text takes a task's value: (task id, the task's holes) -> JSON text.
Filler = Callable[[str, tuple[Hole, ...]], str]


def encode_body(body: Mapping[str, Any]) -> str:
    """Return a task body as the compact JSON text that is sent and compared.

    Parameters
    ----------
    body
        A REST body.

    Returns
    -------
    str
        JSON without spaces, non-ASCII escaped, keys in the body's order.
    """
    return json.dumps(body, separators=(",", ":"))


def _hole_filler(token: str, markers: Mapping[str, Filler]) -> Filler | None:
    """Return how a JSON string token holding a marker takes its value, or None when the token
    is not one this module places."""
    text = token[1:-1]
    if text in markers:
        return markers[text]
    # The id also appears inside the log upload's path (<subdir>/<id>): a marker inside text.
    before, marker, after = text.partition(ID_MARKER)
    if not marker or MARKER_STEM in before or MARKER_STEM in after:
        return None
    return lambda task_id, _holes: f'"{before}{_text(task_id)[1:-1]}{after}"'


def _markers(holes: tuple[Hole, ...]) -> dict[str, Filler]:
    """Return marker -> how the task's value replaces the marker's JSON string."""
    markers: dict[str, Filler] = {ID_MARKER: lambda task_id, _holes: _text(task_id)}
    for index, hole in enumerate(holes):
        markers[_marker(index)] = functools.partial(_hole_text, index=index, encode=hole.way.encode)
    return markers


def _hole_text(
    _task_id: str, holes: tuple[Hole, ...], index: int, encode: Callable[[Any], str]
) -> str:
    return encode(holes[index].value)


@dataclass(frozen=True)
class _Template:
    """A shape's body text cut at the holes its tasks' values fill.

    Attributes
    ----------
    pieces
        The fixed text before, between and after the holes (one more than `holes`).
    holes
        How each hole takes a task's value.
    """

    pieces: tuple[str, ...]
    holes: tuple[Filler, ...]

    def fill(self, task_id: str, holes: tuple[Hole, ...]) -> str:
        parts = [self.pieces[0]]
        for hole, piece in zip(self.holes, self.pieces[1:], strict=True):
            parts.append(hole(task_id, holes))
            parts.append(piece)
        return "".join(parts)


def _cut(text: str, holes: tuple[Hole, ...]) -> _Template | None:
    """Cut a shape's body text at its markers, or None when a marker is not where expected."""
    markers = _markers(holes)
    # A whole list's hole takes the items: its marker must stand alone in its list.
    alone = {f'"{_marker(index)}"' for index, hole in enumerate(holes) if hole.way.whole_list}
    pieces: list[str] = []
    fillers: list[Filler] = []
    position = 0
    for match in _JSON_STRING.finditer(text):
        token = match.group()
        if MARKER_STEM not in token:
            continue
        filler = _hole_filler(token, markers)
        if filler is None:
            return None
        if token in alone and (
            text[match.start() - 1 : match.start()] != "["
            or text[match.end() : match.end() + 1] != "]"
        ):
            return None
        pieces.append(text[position : match.start()])
        fillers.append(filler)
        position = match.end()
    pieces.append(text[position:])
    return _Template(tuple(pieces), tuple(fillers))


def _make_template(
    reference: TaskBodyBuilder, shape: Mapping[str, Any], holes: tuple[Hole, ...]
) -> _Template | None:
    """Build a shape's body through the reference builder, cut it at its markers, and keep it
    only if it gives the reference's body for probe values as well."""
    probes = tuple(Hole(hole.way, hole.where, hole.probe()) for hole in holes)
    try:
        text = encode_body(reference.build(ID_MARKER, shape))
        template = _cut(text, holes)
        if template is None:
            return None
        probe_spec = fill_holes(shape, probes, [hole.value for hole in probes])
        expected = encode_body(reference.build(_PROBE_ID, probe_spec))
    except ValueError:
        return None  # the reference reports it, for each task, with the task's own values
    if template.fill(_PROBE_ID, probes) != expected:
        return None
    return template


def _values_pass_seed_checks(task_id: str, holes: tuple[Hole, ...]) -> bool:
    """Apply the seed's checks to the values a template substitutes (the rest of the body was
    checked once, for the shape)."""
    return rules.BATCH_ID.problem(task_id) is None and all(
        hole.way.passes(hole.value) for hole in holes
    )


class TemplateBodyBuilder:
    """Builds the REST bodies of a job's tasks from one template per task shape.

    Gives exactly the bodies (and errors) of `spec.TaskBodyBuilder`, the seed's path, which it
    uses for each shape's template and for any task a template cannot serve.

    Parameters
    ----------
    context
        The job's shared inputs.
    """

    def __init__(self, context: TaskContext) -> None:
        self.reference = TaskBodyBuilder(context)
        self._templates: dict[str, _Template | None] = {}
        # Shared inputs holding the marker stem would look like markers in every body.
        self._enabled = MARKER_STEM not in repr(context)

    def build_text(self, task_id: str, spec: Mapping[str, Any]) -> str:
        """Build the REST body Batch takes to add one container task, as compact JSON text.

        Parameters
        ----------
        task_id
            The task's id in its job.
        spec
            The task spec (without its id).

        Returns
        -------
        str
            `encode_body` of the seed's `BatchTaskCreateOptions` body.

        Raises
        ------
        ValueError
            As the seed's builders raise it, if a field is invalid or names a container
            without a URL.
        """
        split = split_spec(spec) if self._enabled else None
        if split is None:
            return encode_body(self.reference.build(task_id, spec))
        template = self.template_for(*split)
        holes = split[2]
        if template is None or not _values_pass_seed_checks(task_id, holes):
            return encode_body(self.reference.build(task_id, spec))
        return template.fill(task_id, holes)

    def check(self, task_id: str, spec: Mapping[str, Any]) -> None:
        """Check that a task's REST body can be built, without building it; see `build_text`.

        A task its shape's template serves needs only the seed's checks on its own values (the
        shape was built once); any other goes through the reference builder.

        Raises
        ------
        ValueError
            As `build_text` raises it.
        """
        split = split_spec(spec) if self._enabled else None
        if split is None:
            self.reference.build(task_id, spec)
            return
        if self.template_for(*split) is None or not _values_pass_seed_checks(task_id, split[2]):
            self.reference.build(task_id, spec)

    def template_for(
        self, key: str, shape: Mapping[str, Any], holes: tuple[Hole, ...]
    ) -> _Template | None:
        """Return the template of one shape (`split_spec`'s parts), made once per builder;
        None when the shape's tasks go through the reference builder."""
        if not self._enabled:
            return None
        if key not in self._templates:
            self._templates[key] = _make_template(self.reference, shape, holes)
        return self._templates[key]

    def build(self, task_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Build the REST body of one task as a dict; see `build_text`.

        Returns
        -------
        dict
            The camelCase body of `BatchTaskCreateOptions`, as the seed builds it.
        """
        return json.loads(self.build_text(task_id, spec))


# How one hole's value is made from a task's axis values.
_ValueMaker = Callable[[Sequence[str]], Any]


def _value_maker(value: Any) -> _ValueMaker | None:
    """Return how a hole's value is made from axis values, given its value rendered with axis
    markers; None when it is not one this module can make (the task is then rendered)."""
    if isinstance(value, str):
        pieces: list[str | int] = []
        position = 0
        for match in _AXIS_MARKER.finditer(value):
            pieces += [value[position : match.start()], int(match.group(1))]
            position = match.end()
        pieces.append(value[position:])
        return Template(tuple(pieces)).render
    if isinstance(value, list):
        makers = [_value_maker(item) if isinstance(item, str) else None for item in value]
        if any(maker is None for maker in makers):
            return None
        return lambda texts: [maker(texts) for maker in makers if maker is not None]
    if AXIS_STEM in repr(value):
        return None
    return lambda _texts: value  # a constant of another type (an environment value, say)


class SweepBodies:
    """Builds a sweep's task bodies straight from each task's axis values.

    The sweep's template spec is rendered once with axis markers for its values and split into
    its shape and holes; a task's hole values are then made from its axis values by one format
    call each, checked and filled in, without rendering or splitting its spec. Gives exactly
    `builder.build_text(task_id, template.render(texts))` (tests/test_template.py), which it
    falls back to for a task whose values fail the seed's checks, and for every task when
    an axis value lands outside the holes (an output pattern, say).

    Parameters
    ----------
    builder
        The job's template body builder (its templates and reference are shared).
    template
        The sweep's compiled template spec.
    """

    def __init__(self, builder: TemplateBodyBuilder, template: SpecTemplate) -> None:
        self.builder = builder
        self.template = template
        # Made at the first task (whose values bound the markers' number), then kept.
        self._plan: tuple[_Template, tuple[Hole, ...], tuple[_ValueMaker, ...]] | None = None
        self._planned = False

    def _make_plan(self) -> tuple[_Template, tuple[Hole, ...], tuple[_ValueMaker, ...]] | None:
        positions = self.template.positions
        try:
            # With empty values every string is its literals joined: the stem there (in one
            # piece or across several) would read as an axis marker.
            literals = json.dumps(self.template.render([""] * positions))
        except (TypeError, ValueError):
            return None
        if AXIS_STEM in literals:
            return None  # the template's own text holds the stem: every task is rendered
        markers = [f"{AXIS_STEM}{index}x" for index in range(positions)]
        split = split_spec(self.template.render(markers))
        if split is None or AXIS_STEM in split[0]:
            return None
        template = self.builder.template_for(*split)
        makers = [_value_maker(hole.value) for hole in split[2]]
        if template is None or any(maker is None for maker in makers):
            return None
        return template, split[2], tuple(maker for maker in makers if maker is not None)

    def build_text(self, task_id: str, texts: Sequence[str]) -> str:
        """Build one task's REST body as compact JSON text; see `TemplateBodyBuilder.build_text`.

        Parameters
        ----------
        task_id
            The task's id in its job.
        texts
            The task's axis values (at least the template's `positions`).

        Raises
        ------
        ValueError
            As the seed's builders raise it.
        """
        filled = self._filled(task_id, texts)
        if filled is not None:
            return filled[0].fill(task_id, filled[1])
        return self.builder.build_text(task_id, self.template.render(texts))

    def check(self, task_id: str, texts: Sequence[str]) -> None:
        """Check that one task's REST body can be built, without building it; see
        `build_text`.

        Raises
        ------
        ValueError
            As `build_text` raises it.
        """
        if self._filled(task_id, texts) is None:
            self.builder.check(task_id, self.template.render(texts))

    def _filled(
        self, task_id: str, texts: Sequence[str]
    ) -> tuple[_Template, tuple[Hole, ...]] | None:
        """Return the sweep's template and the task's holes when its values pass the seed's
        checks; None when the task must take the builder's own path."""
        if len(texts) < self.template.positions:
            return None  # rendering raises as the seed's path does
        if not self._planned:
            self._plan, self._planned = self._make_plan(), True
        if self._plan is None:
            return None
        template, holes, makers = self._plan
        filled = tuple(
            Hole(hole.way, hole.where, make(texts))
            for hole, make in zip(holes, makers, strict=True)
        )
        return (template, filled) if _values_pass_seed_checks(task_id, filled) else None
