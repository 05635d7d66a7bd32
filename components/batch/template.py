"""Template bodies: build one REST body per task shape through the seed's functions, then
substitute each task's own values.

A sweep's tasks differ only in a few fields (the id, the command, output paths, environment
values and dependsOn); everything else, the shape, is shared. Building every body through the
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchtasks import rules
from batchtasks.batch.spec import TaskBodyBuilder, TaskContext

# Markers stand in for the varying values while a shape's body is built. They are valid where
# they go (an id, a command line, a path, an environment value) and a shape holding the stem
# itself is built the slow way, so a marker can never be confused with a user's text.
MARKER_STEM = "zq9tpl"
ID_MARKER = f"{MARKER_STEM}id"
COMMAND_MARKER = f"{MARKER_STEM}-command"
DEPENDENCY_MARKER = f"{MARKER_STEM}-depends"


def _path_marker(index: int) -> str:
    return f"{MARKER_STEM}-path-{index}"


def _env_marker(index: int) -> str:
    return f"{MARKER_STEM}-env-{index}"


@dataclass(frozen=True)
class VaryingValues:
    """The values of one task that its shape's template leaves open.

    Attributes
    ----------
    command
        The command line.
    paths
        Output index -> its path (outputs without a path are part of the shape).
    env
        Environment variable names in the shape's order, and their values (as the spec gives
        them; the body holds their text).
    depends_on
        The task ids this task depends on, or None when it depends on none.
    """

    command: Any
    paths: tuple[tuple[int, Any], ...]
    env: tuple[tuple[str, Any], ...]
    depends_on: Any


def split_spec(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any], VaryingValues] | None:
    """Split a task spec into its shape (a key and the spec with markers) and its own values.

    Parameters
    ----------
    spec
        A task spec (camelCase fields, without the id).

    Returns
    -------
    tuple | None
        (shape key, spec with markers in the varying fields, the varying values), or None when
        the spec is not one a template can serve (the reference builder then handles it).
    """
    shape = dict(spec)
    shape["command"] = COMMAND_MARKER
    paths: list[tuple[int, Any]] = []
    outputs = spec.get("outputs")
    if outputs:
        if not isinstance(outputs, list | tuple):
            return None
        marked = []
        for index, output in enumerate(outputs):
            if not isinstance(output, Mapping):
                return None
            if output.get("path") is not None:
                paths.append((index, output["path"]))
                output = {**output, "path": _path_marker(index)}
            marked.append(output)
        shape["outputs"] = marked
    env_values: list[tuple[str, Any]] = []
    env = spec.get("env")
    if env:
        if not isinstance(env, Mapping):
            return None
        names = sorted(env)
        env_values = [(name, env[name]) for name in names]
        shape["env"] = {name: _env_marker(index) for index, name in enumerate(names)}
    depends_on = spec.get("dependsOn")
    if depends_on:
        shape["dependsOn"] = [DEPENDENCY_MARKER]
    try:
        key = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    placed = 1 + len(paths) + len(env_values) + (1 if depends_on else 0)
    if key.count(MARKER_STEM) != placed:
        return None  # the spec's own text holds the marker stem: build it the seed's way
    values = VaryingValues(spec.get("command"), tuple(paths), tuple(env_values), depends_on or None)
    return key, shape, values


# A JSON string token of a compact body text (outside strings, JSON has no quotes).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# The JSON text of a string, as json.dumps gives it (without its per-call overhead).
_text = json.encoder.encode_basestring_ascii
# How one hole in a template text takes a task's value: (task id, varying values) -> JSON text.
Filler = Callable[[str, VaryingValues], str]


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
    return lambda task_id, _values: f'"{before}{_text(task_id)[1:-1]}{after}"'


def _markers(values: VaryingValues) -> dict[str, Filler]:
    """Return marker -> how the task's value replaces the marker's JSON string."""
    markers: dict[str, Filler] = {
        ID_MARKER: lambda task_id, _values: _text(task_id),
        COMMAND_MARKER: lambda _task_id, values: _text(values.command),
        # dependsOn.taskIds is [marker]: the hole takes the ids, the brackets stay.
        DEPENDENCY_MARKER: lambda _task_id, values: json.dumps(
            list(values.depends_on), separators=(",", ":")
        )[1:-1],
    }
    for position, (index, _path) in enumerate(values.paths):
        markers[_path_marker(index)] = functools.partial(_path_text, position=position)
    for position, _item in enumerate(values.env):
        markers[_env_marker(position)] = functools.partial(_env_text, position=position)
    return markers


def _path_text(_task_id: str, values: VaryingValues, position: int) -> str:
    return _text(values.paths[position][1])


def _env_text(_task_id: str, values: VaryingValues, position: int) -> str:
    # The seed's builder gives each environment value as text.
    return _text(str(values.env[position][1]))


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

    def fill(self, task_id: str, values: VaryingValues) -> str:
        parts = [self.pieces[0]]
        for hole, piece in zip(self.holes, self.pieces[1:], strict=True):
            parts.append(hole(task_id, values))
            parts.append(piece)
        return "".join(parts)


def _cut(text: str, values: VaryingValues) -> _Template | None:
    """Cut a shape's body text at its markers, or None when a marker is not where expected."""
    markers = _markers(values)
    pieces: list[str] = []
    holes: list[Filler] = []
    position = 0
    for match in _JSON_STRING.finditer(text):
        token = match.group()
        if MARKER_STEM not in token:
            continue
        filler = _hole_filler(token, markers)
        if filler is None:
            return None
        if token == f'"{DEPENDENCY_MARKER}"' and (
            text[match.start() - 1 : match.start()] != "["
            or text[match.end() : match.end() + 1] != "]"
        ):
            return None
        pieces.append(text[position : match.start()])
        holes.append(filler)
        position = match.end()
    pieces.append(text[position:])
    return _Template(tuple(pieces), tuple(holes))


# Values unlike the markers and unlike each other, with characters JSON escapes: a shape's
# template is kept only if it reproduces the seed's body for these too.
_PROBE_ID = "probe_Task-7"
# No control characters (the seed refuses them); a blob path takes no backslash either.
_PROBE_TEXT = 'probe "quoted" \\ back/slash \u00e9\u2603'
_PROBE_PATH = 'probe "quoted" \u00e9\u2603'


def _probe(shape: Mapping[str, Any], values: VaryingValues) -> tuple[dict[str, Any], VaryingValues]:
    """Return a spec of the shape with probe values, and those values."""
    spec = dict(shape)
    spec["command"] = f"{_PROBE_TEXT} command"
    paths = tuple((index, f"{_PROBE_PATH}/{index}") for index, _path in values.paths)
    if paths:
        outputs = [dict(output) for output in shape["outputs"]]
        for index, path in paths:
            outputs[index]["path"] = path
        spec["outputs"] = outputs
    env = tuple((name, f"{_PROBE_TEXT} {name}") for name, _value in values.env)
    if env:
        spec["env"] = dict(env)
    depends_on = ["probe-a", "probe_b"] if values.depends_on else None
    if depends_on:
        spec["dependsOn"] = depends_on
    return spec, VaryingValues(spec["command"], paths, env, depends_on)


def _make_template(
    reference: TaskBodyBuilder, shape: Mapping[str, Any], values: VaryingValues
) -> _Template | None:
    """Build a shape's body through the reference builder, cut it at its markers, and keep it
    only if it gives the reference's body for probe values as well."""
    try:
        text = encode_body(reference.build(ID_MARKER, shape))
        template = _cut(text, values)
        if template is None:
            return None
        probe_spec, probe_values = _probe(shape, values)
        expected = encode_body(reference.build(_PROBE_ID, probe_spec))
    except ValueError:
        return None  # the reference reports it, for each task, with the task's own values
    if template.fill(_PROBE_ID, probe_values) != expected:
        return None
    return template


def _values_pass_seed_checks(task_id: str, values: VaryingValues) -> bool:
    """Apply the seed's checks to the values a template substitutes (the rest of the body was
    checked once, for the shape)."""
    if rules.BATCH_ID.problem(task_id) or rules.COMMAND_LINE.problem(values.command):
        return False
    # output_task_files_to_blob: a path, when given, is a blob path.
    if any(rules.BLOB_PATH.problem(path) for _index, path in values.paths):
        return False
    depends_on = values.depends_on
    return depends_on is None or (
        isinstance(depends_on, list | tuple) and all(isinstance(item, str) for item in depends_on)
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
        key, shape, values = split
        if key not in self._templates:
            self._templates[key] = _make_template(self.reference, shape, values)
        template = self._templates[key]
        if template is None or not _values_pass_seed_checks(task_id, values):
            return encode_body(self.reference.build(task_id, spec))
        return template.fill(task_id, values)

    def build(self, task_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Build the REST body of one task as a dict; see `build_text`.

        Returns
        -------
        dict
            The camelCase body of `BatchTaskCreateOptions`, as the seed builds it.
        """
        return json.loads(self.build_text(task_id, spec))
