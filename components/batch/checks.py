"""Input checks shared by the Batch providers' `check` methods (pure, no network).

A task spec and a job's settings are checked against the stack file's own field tables
(`batchtasks.config.schema`), with the rules of `batchtasks.rules`: a program that gives the
resources their inputs directly gets exactly the protection the stack file gives.

Each function returns (property path, reason) pairs, so `check` can report every bad property at
once as Pulumi CheckFailures. Values not known yet (preview) are skipped, never errors.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from batchtasks import fields as fields_table
from batchtasks import rules
from batchtasks.batch.spec import JSON_ERRORS, is_unknown, is_unknown_as_a_whole
from batchtasks.batch.template import split_spec
from batchtasks.config import schema
from batchtasks.config.shape import Problems, child, clean, item
from batchtasks.config.sweep import MARKER_KEY, SpecTemplate, Template, longest_texts
from batchtasks.rules import Rule

Problem = tuple[str, str]

TASK_SPEC_KEYS = frozenset(schema.TASK_SPEC.fields or ())
# The shape key of the tasks a set renders from its template: they share every field that does
# not vary (`template_problems` makes sure only varying fields hold markers).
TEMPLATE_SHAPE = "template"
# Job inputs checked with the stack file's job fields.
_JOB_FIELDS = ("priority", "maxParallelTasks", "constraints")


def _known(value: Any) -> bool:
    return value is not None and not is_unknown(value)


def _rule_problems(value: Any, rule: Rule, path: str) -> list[Problem]:
    if not _known(value):
        return []
    problem = rule.problem(value)
    return [(path, f"{value!r} {problem}")] if problem else []


def _field_problems(value: Any, field: schema.Field, path: str) -> list[Problem]:
    """Check a value against a stack-file field, skipping what is not known yet."""
    found = Problems()
    clean(value, field, path, found, pending=is_unknown_as_a_whole)
    return [
        (
            problem.path,
            problem.message if problem.value is None else f"{problem.value} {problem.message}",
        )
        for problem in found.result()
    ]


def endpoint_problems(value: Any, path: str = "endpoint") -> list[Problem]:
    """Check a Batch account endpoint: an https URL."""
    if value is None:
        return [(path, "is required")]
    return _rule_problems(value, rules.BATCH_ENDPOINT, path)


def id_problems(value: Any, path: str) -> list[Problem]:
    """Check a Batch job or task id."""
    if is_unknown(value):
        return []
    problem = rules.BATCH_ID.problem(value)
    return [(path, f"{value!r} {problem}")] if problem else []


def duration_problems(value: Any, path: str) -> list[Problem]:
    """Check an ISO 8601 duration such as PT1H or P7D."""
    return _rule_problems(value, rules.DURATION, path)


def task_spec_problems(
    task_id: str,
    spec: Any,
    path: str,
    containers: Mapping[str, Any] | None,
    secret_keys: Mapping[str, Any] | None,
) -> list[Problem]:
    """Check one task spec as the task providers take it, with the stack file's rules.

    Parameters
    ----------
    task_id
        The task's id.
    spec
        The spec (camelCase fields, without the id).
    path
        Property path of the spec, for messages.
    containers
        Declared container name -> URL, or None when not known yet.
    secret_keys
        Config key -> secret value, or None when not known yet.

    Returns
    -------
    list[Problem]
        Every (property path, reason) found.
    """
    problems = id_problems(task_id, f"{path}.id")
    if is_unknown_as_a_whole(spec):
        return problems
    if not isinstance(spec, Mapping):
        return [*problems, (path, "must be an object of task fields")]
    problems += _field_problems(spec, schema.TASK_SPEC, path)
    if not is_unknown(spec) and (too_big := rules.task_body_problem(spec)):
        problems.append((path, too_big))
    for key in ("command", "image"):
        if key not in spec:
            problems.append((f"{path}.{key}", "is required"))
    for index, output in enumerate(_items(spec.get("outputs"))):
        if isinstance(output, Mapping):
            problems += _container_problems(
                output.get("container"), f"{path}.outputs[{index}].container", containers
            )
    logs = spec.get("logs")
    if isinstance(logs, Mapping):
        problems += _container_problems(logs.get("container"), f"{path}.logs.container", containers)
    secret_env = spec.get("secretEnv")
    if isinstance(secret_env, Mapping) and secret_keys is not None and not is_unknown(secret_keys):
        for name, key in secret_env.items():
            if not is_unknown(key) and key not in secret_keys:
                problems.append(
                    (
                        f"{path}.secretEnv.{name}",
                        f"{key!r} names no value in the resource's secrets",
                    )
                )
    return problems


def template_problems(template: Any, path: str = "template") -> list[Problem]:
    """Check a task set's template spec before any task is read through it.

    Parameters
    ----------
    template
        The JSON text of the template spec.
    path
        Property path of the template, for messages.

    Returns
    -------
    list[Problem]
        What is wrong with it: not JSON text of an object, an id in it, or a marker in a field
        that cannot vary per task. Its fields are checked with the first task rendered from it.
    """
    if not isinstance(template, str):
        return [(path, "must be the JSON text of the sweep's template spec")]
    try:
        decoded = json.loads(template)
    except JSON_ERRORS as error:
        return [(path, f"is not JSON text ({error})")]
    if not isinstance(decoded, Mapping):
        return [(path, "must be the JSON text of an object of task fields")]
    problems: list[Problem] = []
    if "id" in decoded:
        problems.append((f"{path}.id", "must not be given: each task's id is its key in tasks"))
    for key in SpecTemplate(decoded).varying_keys():
        if key not in fields_table.VARYING_KEYS:
            problems.append(
                (
                    f"{path}.{key}",
                    f"holds a {MARKER_KEY!r} marker, but {key} is the same for every task of a "
                    f"set (only {', '.join(fields_table.VARYING_KEYS)} vary)",
                )
            )
    return problems


def task_map_problems(
    tasks: Mapping[str, Any],
    path_of: Callable[[str], str],
    containers: Mapping[str, Any] | None,
    secret_keys: Mapping[str, Any] | None,
    *,
    shape_of: Callable[[str, Any], str | None] | None = None,
) -> list[Problem]:
    """Check many task specs, each shape once: what `task_spec_problems` finds for each.

    The first task of each shape (its fields other than the varying ones) is checked whole;
    when that finds nothing, the shape's other tasks need only their id and varying fields
    checked, since everything else about them is the same. A task whose own values fail is
    checked whole again, so its problems read exactly as `task_spec_problems` gives them.

    Parameters
    ----------
    tasks
        Task id -> spec.
    path_of
        Task id -> property path of its spec, for messages.
    containers, secret_keys
        As for `task_spec_problems`.
    shape_of
        Task id, spec -> a shape key known beforehand (TEMPLATE_SHAPE for tasks rendered from
        one template), or None to work it out from the spec.

    Returns
    -------
    list[Problem]
        Every (property path, reason) found.
    """
    fields = schema.TASK_SPEC.fields or {}
    clean_shapes: set[str] = set()
    problems: list[Problem] = []
    for task_id, spec in tasks.items():
        path = path_of(task_id)
        known = shape_of(task_id, spec) if shape_of is not None else None
        split = (
            (known,)
            if known is not None
            else split_spec(spec)
            if isinstance(spec, Mapping) and "command" in spec and not is_unknown_as_a_whole(spec)
            else None
        )
        if split is not None and split[0] in clean_shapes:
            found = id_problems(task_id, f"{path}.id")
            # The shape was checked whole once; each task's own values are checked here.
            for key in fields_table.VARYING_KEYS:
                if key in spec and not found:
                    found = _field_problems(spec[key], fields[key], child(path, key))
            # Varying values make each task's body its own size; a task too big is checked
            # whole below, for the message.
            if not found and rules.task_body_problem(spec):
                found = [("", "")]
            if not found:
                continue
        found = task_spec_problems(task_id, spec, path, containers, secret_keys)
        if split is not None and not found:
            clean_shapes.add(split[0])
        problems += found
    return problems


def _leaf_field(steps: tuple[str | int, ...]) -> schema.Field | None:
    """Return the stack-file field at a path of keys and list positions in a task spec."""
    field: schema.Field | None = schema.TASK_SPEC
    for step in steps:
        if field is None:
            return None
        if field.kind == "object":
            field = (field.fields or {}).get(str(step))
        elif field.kind in ("map", "list"):
            field = field.item
        else:
            return None
    return field


def _at(spec: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        spec = spec[step]
    return spec


def _dotted(path: str, steps: tuple[str | int, ...]) -> str:
    for step in steps:
        path = item(path, step) if isinstance(step, int) else child(path, step)
    return path


# Marked fields whose values other inputs vouch for (declared containers, secret keys): a task
# with a marker there is checked whole.
_CROSS_CHECKED = frozenset({"container", "secretEnv", "logs"})


def template_task_problems(
    template: SpecTemplate,
    texts: Mapping[str, Sequence[str]],
    path_of: Callable[[str], str],
    containers: Mapping[str, Any] | None,
    secret_keys: Mapping[str, Any] | None,
) -> list[Problem]:
    """Check the tasks a set renders from its template: what `task_spec_problems` finds for
    each, with the template's fields checked once.

    The first task is rendered and checked whole; when that finds nothing, every other task
    needs only its id and the strings its texts make (each with the rule of its field), since
    the rest is the template's: those are checked for all tasks at once, field by field, and
    no other task's spec is rendered unless one fails. The body size is checked once, for the
    longest texts of each axis, and task by task only when those do not fit. A task whose own
    values fail is checked whole again, so its problems read exactly as `task_spec_problems`
    gives them.

    Parameters
    ----------
    template
        The set's compiled template spec (`template_problems` found nothing in it).
    texts
        Task id -> its axis values as text (at least `template.positions` of them).
    path_of, containers, secret_keys
        As for `task_map_problems`.

    Returns
    -------
    list[Problem]
        Every (property path, reason) found.
    """
    leaves = [(steps, marker, _leaf_field(steps)) for steps, marker in template.marked_leaves()]
    if not texts or any(
        field is None or _CROSS_CHECKED.intersection(map(str, steps))
        for steps, _marker, field in leaves
    ):
        return task_map_problems(
            {task_id: template.render(values) for task_id, values in texts.items()},
            path_of,
            containers,
            secret_keys,
            shape_of=lambda _id, _spec: TEMPLATE_SHAPE,
        )
    ids, values = list(texts), list(texts.values())
    widest = template.render(longest_texts(values, template.positions))
    all_fit = rules.task_body_problem(widest) is None
    problems: list[Problem] = []
    for position, task_id in enumerate(ids):
        found = task_spec_problems(
            task_id, template.render(values[position]), path_of(task_id), containers, secret_keys
        )
        problems += found
        if not found:
            rest = slice(position + 1, None)
            return problems + _own_value_problems(
                template, leaves, ids[rest], values[rest], all_fit, path_of, containers, secret_keys
            )
    return problems


_Leaf = tuple[tuple[str | int, ...], Template, schema.Field | None]


def _own_value_problems(
    template: SpecTemplate,
    leaves: Sequence[_Leaf],
    ids: Sequence[str],
    values: Sequence[Sequence[str]],
    all_fit: bool,
    path_of: Callable[[str], str],
    containers: Mapping[str, Any] | None,
    secret_keys: Mapping[str, Any] | None,
) -> list[Problem]:
    """Check tasks of a template one task of which passed whole: their ids and the strings
    their texts make; a task found wanting is checked whole."""
    # A control character in a marker's string is one in its literals or in a text: with
    # neither holding any, no string needs searching.
    control_free = rules.free_of_control_characters(
        itertools.chain(
            itertools.chain.from_iterable(marker.literals for _steps, marker, _field in leaves),
            itertools.chain.from_iterable(values),
        )
    )
    if (
        all_fit
        and control_free
        and rules.BATCH_ID.all_follow(ids)
        and all(_all_follow(marker, values, field) for _steps, marker, field in leaves)
    ):
        return []  # the usual case: every task's own values are good, no task rendered
    problems: list[Problem] = []
    for task_id, task_values in zip(ids, values, strict=True):
        path = path_of(task_id)
        spec = template.render(task_values)
        found = id_problems(task_id, f"{path}.id")
        for steps, _marker, field in leaves:
            if found:
                break
            assert field is not None
            found = _field_problems(_at(spec, steps), field, _dotted(path, steps))
        if not found and not all_fit and rules.task_body_problem(spec):
            found = [("", "")]
        if found:
            problems += task_spec_problems(task_id, spec, path, containers, secret_keys)
    return problems


def _all_follow(
    marker: Template, values: Sequence[Sequence[str]], field: schema.Field | None
) -> bool:
    """Tell whether `_field_problems` finds nothing in the string a marker makes for any of
    many tasks, given that neither its literals nor the texts hold a control character (False
    also when the field's kind is not one a marker's string is checked for here)."""
    if field is None:
        return False
    if field.kind == "string":
        rule = field.rule or rules.TEXT
        if rule.only_not_blank and any(literal.strip() for literal in marker.literals):
            return True  # every string holds that literal, so none is blank
        return rule.all_follow(marker.render_all(values), control_free=True)
    # A scalar's string is refused only for a control character.
    return field.kind == "scalar"


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _container_problems(
    name: Any, path: str, containers: Mapping[str, Any] | None
) -> list[Problem]:
    if containers is None or is_unknown(containers) or is_unknown(name):
        return []
    if name not in containers:
        return [
            (
                path,
                f"{name!r} is not a declared container ({', '.join(sorted(containers)) or 'none'})",
            )
        ]
    return []


def job_problems(news: Mapping[str, Any], olds: Mapping[str, Any]) -> list[Problem]:
    """Check a BatchJob's inputs, including the one-way onAllTasksComplete switch."""
    problems = endpoint_problems(news.get("endpoint"))
    problems += id_problems(news.get("jobId"), "jobId")
    pool_id = news.get("poolId")
    if not is_unknown(pool_id):
        problems += id_problems(pool_id, "poolId")
    job_fields = schema.JOB.fields or {}
    for key in _JOB_FIELDS:
        if news.get(key) is not None:
            problems += _field_problems(news[key], job_fields[key], key)
    mode = news.get("onAllTasksComplete", "noAction")
    mode_problems = _rule_problems(mode, rules.COMPLETION_MODE, "onAllTasksComplete")
    if mode_problems:
        problems += mode_problems
    elif (
        str(olds.get("onAllTasksComplete", "")).lower() == "terminatejob"
        and _known(mode)
        and str(mode).lower() == "noaction"
    ):
        problems.append(
            (
                "onAllTasksComplete",
                "cannot go from terminateJob back to noAction: Batch rejects that change "
                "(400). Keep terminateJob, or give the job a new id",
            )
        )
    return problems
