"""Group a job's task changes for review: identical changes collapse into one group.

A group is one kind of change (added, removed, replaced, updated) with the fields it touches and
each field's old and new value. Tasks join a group when their changes are the same *edit*: the
part of each value that differs, widened to whole words. So 38 tasks whose image moves from
`...:2025.06.1` to `...:2025.07.0` make one group, and so do 38 tasks of a sweep whose command
changes `--draws 4000` to `--draws 5000`, although each task's command is its own. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import eq, itemgetter
from typing import Any

from batchtasks.batch.diff import TaskPlan
from batchtasks.batch.spec import SECRET_PLACEHOLDER

# Spec fields whose values are maps shown key by key (env.NAME), so one changed variable does
# not show every other one.
_MAPPED_FIELDS = ("env", "secretEnv", "containerUrls", "secrets")
# Fields that hold secrets: their values never show, whatever the preview received.
_SECRET_FIELDS = ("secrets",)
# Characters a shown difference never cuts through.
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# The marker field of tasks that go with a replaced job.
JOB_FIELD = "job"
CHANGE_ORDER = ("removed", "replaced", "updated", "added")


@dataclass(frozen=True)
class FieldChange:
    """One changed field of a group, with the values of the group's first task.

    Attributes
    ----------
    name
        The field (``image``, ``env.MODEL_SEED``, ``job``).
    old, new
        The values as text (JSON for lists and numbers); None when the field is absent.
    start, old_end, new_end
        ``old[start:old_end]`` becomes ``new[start:new_end]``; the rest is the same.
    same_values
        Whether every task of the group has exactly these values; when False they share only
        the edit (a sweep's per-task command, say).
    """

    name: str
    old: str | None
    new: str | None
    start: int = 0
    old_end: int = 0
    new_end: int = 0
    same_values: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Return the change as JSON data: field, old, new, sameValues."""
        return {
            "field": self.name,
            "old": self.old,
            "new": self.new,
            "sameValues": self.same_values,
        }


@dataclass(frozen=True)
class TaskGroup:
    """Tasks that change in the same way.

    Attributes
    ----------
    change
        "added", "removed", "replaced" or "updated" (in place).
    fields
        What changes, field by field (empty for added and removed tasks).
    task_ids
        The tasks, in plan order (sorted).
    """

    change: str
    fields: tuple[FieldChange, ...]
    task_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the group as JSON data: change, count, fields, tasks."""
        return {
            "change": self.change,
            "count": len(self.task_ids),
            "fields": [field.as_dict() for field in self.fields],
            "tasks": list(self.task_ids),
        }


def value_text(value: Any) -> str | None:
    """Return a field value as review text: strings as they are, the rest as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by halving (slice comparisons run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def edit_span(old: str, new: str) -> tuple[int, int, int]:
    """Find the part of two texts that differs, widened to whole words.

    Parameters
    ----------
    old, new
        The two values.

    Returns
    -------
    tuple[int, int, int]
        ``(start, old_end, new_end)``: ``old[start:old_end]`` becomes ``new[start:new_end]``.
    """
    start = _common_prefix(old, new)
    # The suffix may not overlap the prefix in either text.
    room = min(len(old), len(new)) - start
    suffix = min(_common_prefix(old[::-1], new[::-1]), room)
    old_end, new_end = len(old) - suffix, len(new) - suffix
    while start > 0 and old[start - 1] in _WORD_CHARS:
        start -= 1
    while old_end < len(old) and old[old_end] in _WORD_CHARS:
        old_end += 1
        new_end += 1
    return start, old_end, new_end


def _field_values(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """Split a changed field into (name, old value, new value), maps key by key."""
    before, after = old.get(name), new.get(name)
    if (
        name in _MAPPED_FIELDS
        and isinstance(before or {}, Mapping)
        and isinstance(after or {}, Mapping)
    ):
        before, after = before or {}, after or {}
        keys = sorted(key for key in {*before, *after} if before.get(key) != after.get(key))
        return [(f"{name}.{key}", before.get(key), after.get(key)) for key in keys]
    return [(name, before, after)]


class _Edits:
    """The edit each pair of values makes, found once per distinct pair of one field.

    A sweep's tasks repeat a few pairs (an image, a retry count) or make the same edit to
    values of their own (one flag of a templated command): the last edit seen is tried first,
    with one replace and one comparison, before looking for the difference.
    """

    def __init__(self) -> None:
        self.pairs: dict[tuple[Any, Any], tuple[str | None, str | None]] = {}
        self._last: tuple[str | None, str | None] = ("", "")

    def of(self, pair: tuple[Any, Any]) -> tuple[str | None, str | None]:
        """Return the edit a pair of values makes (the differing parts, as text)."""
        edit = self.pairs.get(pair)
        if edit is not None:
            return edit
        old, new = value_text(pair[0]), value_text(pair[1])
        last_old, last_new = self._last
        if old is None or new is None:
            edit = (old, new)
        elif (
            last_old
            and last_new is not None
            and last_old in old
            and old.replace(last_old, last_new, 1) == new
        ):
            edit = self._last
        else:
            start, old_end, new_end = edit_span(old, new)
            edit = self._last = (old[start:old_end], new[start:new_end])
        self.pairs[pair] = edit
        return edit


def _same(one: Any, other: Any) -> bool:
    """Whether two values are the same, as `list.count` compares them (identity first)."""
    return one is other or bool(one == other)


def _edit_column(
    befores: list[Any], afters: list[Any]
) -> tuple[list[Any], list[Any], list[Any] | None, bool]:
    """Return a column's old and new values (as text when values cannot key a map), each
    task's edit (None when every task makes one and the same edit), and whether each edit came
    from one pair of values only.

    The common columns of a sweep cost no work per task in Python: every task with the same
    pair of values (an image moved, a retry count raised) is one comparison each, and the same
    edit to each task's own text (one flag of a templated command) one replace each, both run
    by the interpreter's C loops.
    """
    count = len(befores)
    # The last values first: a column whose tasks each have a value of their own (a templated
    # command) then costs no pass over the column to find that they differ.
    if (
        _same(befores[-1], befores[0])
        and _same(afters[-1], afters[0])
        and befores.count(befores[0]) == count
        and afters.count(afters[0]) == count
    ):
        return befores, afters, None, True
    old_part, new_part = _Edits().of((befores[0], afters[0]))
    if isinstance(old_part, str) and old_part and isinstance(new_part, str):
        try:
            # A value without the old part comes back unchanged from the replace, and so
            # differs from its new value (the field changed for every task of the column).
            made = all(
                map(
                    eq,
                    map(str.replace, befores, repeat(old_part), repeat(new_part), repeat(1)),
                    afters,
                )
            )
        except TypeError:
            made = False  # not all text: value by value below
        if made:
            return befores, afters, None, False
    pairs = list(zip(befores, afters, strict=True))
    edits = _Edits()
    known, find = edits.pairs.get, edits.of
    try:
        found = [known(pair) or find(pair) for pair in pairs]
    except TypeError:
        # Lists and maps (mounts, outputs) cannot key a map; their text can.
        befores, afters = list(map(value_text, befores)), list(map(value_text, afters))
        pairs = list(zip(befores, afters, strict=True))
        edits = _Edits()
        known, find = edits.pairs.get, edits.of
        found = [known(pair) or find(pair) for pair in pairs]
    per_edit: dict[Any, int] = {}
    for edit in edits.pairs.values():
        per_edit[edit] = per_edit.get(edit, 0) + 1
    return befores, afters, found, max(per_edit.values(), default=1) == 1


def _in_order(held: Mapping[str, Any], ids: Sequence[str], default: Any) -> list[Any]:
    """Each id's value in a map (default where it has none), in the order of the ids.

    When the ids are the map's keys in the map's own order (a change every task of a sweep
    makes, declared in sorted order), the values are read in that order, with no lookup per
    id: the map is large and its entries are spread over memory.
    """
    if len(ids) == len(held) and list(held) == list(ids):
        return list(held.values())
    return list(map(held.get, ids, repeat(default)))


def _values(specs: list[Mapping[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    """Each spec's values of some fields (None where absent), field by field, each in one C
    loop when every spec has the field."""
    values: dict[str, list[Any]] = {}
    for name in names:
        try:
            values[name] = list(map(itemgetter(name), specs))
        except KeyError:
            values[name] = [spec.get(name) for spec in specs]
    return values


def _columns(
    fields: tuple[str, ...],
    task_ids: list[str],
    old_ids: list[str],
    olds: list[Mapping[str, Any]],
    news: list[Mapping[str, Any]],
    shared_old: Mapping[str, Any],
    shared_new: Mapping[str, Any],
) -> list[tuple[str, list[Any], list[Any]]]:
    """The changed values of tasks that change the same fields, one column per field: its
    name, each task's old value and each task's new value.

    Field by field over all the tasks at once, so the work per task is two lookups a field.
    Values stay as they are (text comes later, once per distinct pair); secrets are the
    placeholder.
    """
    columns: list[tuple[str, list[Any], list[Any]]] = []
    count = len(task_ids)
    plain = [
        name
        for name in fields
        if name not in (JOB_FIELD, "id", *_MAPPED_FIELDS)
        and name not in shared_new
        and name not in shared_old
    ]
    old_values = _values(olds, plain) if plain else {}
    new_values = _values(news, plain) if plain else {}
    for name in fields:
        if name == JOB_FIELD:
            columns.append((JOB_FIELD, [None] * count, [None] * count))
        elif name == "id":
            columns.append(("id", list(old_ids), list(task_ids)))
        elif name in shared_new or name in shared_old:
            # Shared inputs are the same for every task of the job.
            for field_name, before, after in _field_values(name, shared_old, shared_new):
                if name in _SECRET_FIELDS:
                    before = None if before is None else SECRET_PLACEHOLDER
                    after = None if after is None else SECRET_PLACEHOLDER
                columns.append((field_name, [before] * count, [after] * count))
        elif name in _MAPPED_FIELDS:
            split = [
                {key: (before, after) for key, before, after in _field_values(name, old, new)}
                for old, new in zip(olds, news, strict=True)
            ]
            for field_name in sorted({key for values in split for key in values}):
                pairs = [values.get(field_name, (None, None)) for values in split]
                columns.append(
                    (field_name, [pair[0] for pair in pairs], [pair[1] for pair in pairs])
                )
        else:
            columns.append((name, old_values[name], new_values[name]))
    return columns


def _field_change(name: str, pair: tuple[Any, Any], same_values: bool) -> FieldChange:
    old, new = value_text(pair[0]), value_text(pair[1])
    if name == JOB_FIELD:
        return FieldChange(JOB_FIELD, None, None)
    if old is None or new is None:
        return FieldChange(name, old, new, 0, len(old or ""), len(new or ""), same_values)
    return FieldChange(name, old, new, *edit_span(old, new), same_values=same_values)


def _group_kind(
    change: str,
    task_ids: tuple[str, ...],
    fields_of: Mapping[str, tuple[str, ...]],
    old_tasks: Mapping[str, Mapping[str, Any]],
    new_tasks: Mapping[str, Any],
    shared_old: Mapping[str, Any],
    shared_new: Mapping[str, Any],
) -> list[TaskGroup]:
    """Group the tasks of one kind of change (replaced or updated) by their edits."""
    by_fields: dict[tuple[str, ...], list[str]] = {}
    changed = _in_order(fields_of, task_ids, ())
    if changed and changed.count(changed[0]) == len(changed):
        by_fields[changed[0]] = list(task_ids)  # the common case: every task, the same fields
    else:
        for task_id, fields in zip(task_ids, changed, strict=True):
            by_fields.setdefault(fields, []).append(task_id)
    lowered: dict[str, str] = {}
    ranked: list[TaskGroup] = []
    for fields, ids in by_fields.items():
        old_ids = ids
        if "id" in fields:
            # Only a task whose id changes case has no old spec under its new id.
            lowered = lowered or {task_id.lower(): task_id for task_id in old_tasks}
            old_ids = [lowered.get(task_id.lower(), task_id) for task_id in ids]
        columns = _columns(
            fields,
            ids,
            old_ids,
            _in_order(old_tasks, old_ids, {}),
            _in_order(new_tasks, ids, {}),
            shared_old,
            shared_new,
        )
        edited = [_edit_column(befores, afters) for _, befores, afters in columns]
        varying = [found for _, _, found, _ in edited if found is not None]
        members: dict[tuple[Any, ...], list[int]] = {}
        if varying:
            for index, key in enumerate(zip(*varying, strict=True)):
                members.setdefault(key, []).append(index)
        else:
            # Every column makes one edit: the tasks are one group, with no work per task.
            members = {(): list(range(len(ids)))}
        for rows in members.values():
            first = rows[0]
            # A field whose edit came from one pair of values only has those values everywhere.
            changes = tuple(
                _field_change(
                    name,
                    (befores[first], afters[first]),
                    single
                    or all(
                        befores[row] == befores[first] and afters[row] == afters[first]
                        for row in rows
                    ),
                )
                for (name, _, _), (befores, afters, _, single) in zip(columns, edited, strict=True)
            )
            members_ids = tuple(ids) if len(rows) == len(ids) else tuple(ids[row] for row in rows)
            ranked.append(TaskGroup(change, changes, members_ids))
    ranked.sort(key=lambda group: (-len(group.task_ids), group.task_ids[0]))
    return ranked


def group_tasks(
    plan: TaskPlan, olds: Mapping[str, Any], news: Mapping[str, Any]
) -> tuple[TaskGroup, ...]:
    """Group a job's planned task changes by kind and edit.

    Parameters
    ----------
    plan
        The task-by-task plan (`plan_tasks`), with the changed fields of each task.
    olds, news
        The job's merged task inputs before and after: ``{"tasks": {id: spec}, ...}`` plus the
        shared inputs (identityResourceId, containerUrls, secrets, ...).

    Returns
    -------
    tuple[TaskGroup, ...]
        Removed, replaced, updated, then added groups; within a kind, the largest group first
        (ties by first task id). Secret values show as `[secret]`.
    """
    old_tasks = olds.get("tasks") or {}
    new_tasks = news.get("tasks") or {}
    shared_old = {key: value for key, value in olds.items() if key != "tasks"}
    shared_new = {key: value for key, value in news.items() if key != "tasks"}
    fields_of = plan.changed_fields or {}
    groups: list[TaskGroup] = []
    if plan.removed:
        groups.append(TaskGroup("removed", (), tuple(plan.removed)))
    for change, task_ids in (("replaced", plan.replaced), ("updated", plan.updated)):
        groups += _group_kind(
            change, task_ids, fields_of, old_tasks, new_tasks, shared_old, shared_new
        )
    if plan.added:
        groups.append(TaskGroup("added", (), tuple(plan.added)))
    return tuple(groups)
