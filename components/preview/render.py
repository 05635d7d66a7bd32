"""Render a stack preview as JSON (REST bodies, for tools) or Markdown (for a pull request)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from batchtasks import fields
from batchtasks.escape import ELLIPSIS, code_span, one_line
from batchtasks.preview.against import Changes, JobChanges
from batchtasks.preview.build import JobPreview, StackPreview, TaskPreview
from batchtasks.preview.graph import legend, mermaid
from batchtasks.preview.groups import JOB_FIELD, FieldChange, TaskGroup

# Longest cell text in a Markdown table; big sweeps stay readable one row per task.
COMMAND_CHARS = 80
CELL_CHARS = 100
# Longest text of one item of a list cell (a mount, an output).
LIST_ITEM_CHARS = 60
# JSON levels spread over lines: document, section, job's task list.
EXPANDED_DEPTH = 3
# Characters kept on each side of a difference when a long value is shortened.
DIFF_CONTEXT = 24
# A change list stays a readable comment (GitHub caps one at 65,536 characters): at most this
# many groups per job and task ids per group; the JSON format carries them all.
SHOWN_GROUPS = 20
SHOWN_GROUP_IDS = 200
# A job of more tasks than this shows one table row per sweep, not per task, and at most this
# many rows of single tasks (a 100,000-task sweep must not make a 100,000-row table).
SHOWN_TASK_ROWS = 100
CHANGE_WORDS = {
    "added": "added",
    "removed": "removed",
    "replaced": "replaced",
    "updated": "updated in place",
}


def changes_document(changes: Changes) -> dict[str, Any]:
    """Return the changes as plain JSON data.

    Parameters
    ----------
    changes
        The comparison of two previews.

    Returns
    -------
    dict
        {"against", "destructive", "resources": {"added", "removed", "changed"},
        "jobs": [...], "warnings": [{"kind", "text"}]}; each job carries its per-kind counts
        ("summary"), the old and new value of each changed job field ("values"), the task ids
        by kind ("tasks") and the grouped changes with values ("groups").
    """
    return {
        "against": changes.against,
        "destructive": changes.destructive,
        "resources": {
            "added": [{"type": kind, "name": name} for kind, name in changes.added],
            "removed": [{"type": kind, "name": name} for kind, name in changes.removed],
            "changed": [
                {"type": kind, "name": name, "fields": list(fields)}
                for kind, name, fields in changes.changed
            ],
        },
        "jobs": [_job_changes_document(job) for job in changes.jobs],
        "warnings": [{"kind": warning.kind, "text": warning.text} for warning in changes.warnings],
    }


def _summary(job: JobChanges) -> dict[str, int]:
    plan = job.tasks
    return {
        "added": len(plan.added),
        "removed": len(plan.removed),
        "replaced": len(plan.replaced),
        "updated": len(plan.updated),
        "unchanged": plan.unchanged,
    }


def _job_changes_document(job: JobChanges) -> dict[str, Any]:
    fields = job.tasks.changed_fields or {}
    return {
        "id": job.job_id,
        "change": job.change,
        "fields": list(job.fields),
        "values": [{"field": name, "old": old, "new": new} for name, old, new in job.values],
        "summary": _summary(job),
        "groups": [group.as_dict() for group in job.groups],
        "tasks": {
            "added": list(job.tasks.added),
            "removed": list(job.tasks.removed),
            "replaced": {task_id: list(fields.get(task_id, ())) for task_id in job.tasks.replaced},
            "updated": {task_id: list(fields.get(task_id, ())) for task_id in job.tasks.updated},
            "unchanged": job.tasks.unchanged,
        },
    }


def preview_document(preview: StackPreview, changes: Changes | None = None) -> dict[str, Any]:
    """Return the preview as plain JSON data.

    Parameters
    ----------
    preview
        The stack preview.
    changes
        The comparison with an old config, or None.

    Returns
    -------
    dict
        {"resources": [{"type", "name", "parent", "inputs"}], "jobs": [job body]}, plus
        "tasks": {job id: [task body]} when the preview built the bodies, and "changes" when
        given.
    """
    document: dict[str, Any] = {
        "resources": [dict(resource) for resource in preview.resources],
        "jobs": [job.body for job in preview.jobs],
    }
    if preview.with_bodies:
        document["tasks"] = {job.id: [task.body for task in job.tasks] for job in preview.jobs}
    if changes is not None:
        document["changes"] = changes_document(changes)
    return document


def dump_json(value: Any, depth: int = EXPANDED_DEPTH, indent: str = "") -> str:
    """Return JSON text with the outer `depth` levels indented and the rest on one line each.

    One task body per line diffs and greps well, and leaves the work to the C encoder: an
    indented dump of a 10,000-task preview took seconds in the pure-Python one.

    Parameters
    ----------
    value
        JSON data.
    depth
        How many levels of containers to spread over lines.
    indent
        The indentation of the line `value` starts on.

    Returns
    -------
    str
        The JSON text (no trailing newline).
    """
    inner = indent + "  "
    if depth > 0 and isinstance(value, dict) and value:
        items = [
            f"{inner}{json.dumps(key, ensure_ascii=False)}: {dump_json(item, depth - 1, inner)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if depth > 0 and isinstance(value, list) and value:
        items = [inner + dump_json(item, depth - 1, inner) for item in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def render_json(preview: StackPreview, changes: Changes | None = None) -> str:
    """Render the preview as JSON text (see `preview_document`): resources, jobs and changes
    spread over lines, one task body per line."""
    return dump_json(preview_document(preview, changes)) + "\n"


def shorten(text: str, limit: int) -> str:
    """Return text on one visible line, cut to `limit` characters with an ellipsis."""
    return one_line(text, limit)


def code(text: str, limit: int = CELL_CHARS) -> str:
    """Return text as a code span fit for a table cell (see `escape.code_span`)."""
    return code_span(text, limit)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _columns(job: JobPreview) -> list[fields.TaskField]:
    """Return the task fields shown as columns: from the field table, optional ones when set."""
    return [
        field
        for field in fields.TASK_FIELDS
        if field.column
        and (not field.column_when_set or any(task.spec.get(field.key) for task in job.tasks))
    ]


def _cell(field: fields.TaskField, spec: Mapping[str, Any]) -> str:
    value = spec.get(field.key)
    if value is None or value == [] or value == {}:
        return ""
    pieces = field.cell(value)
    if len(pieces) == 1:
        limit = COMMAND_CHARS if field.key == "command" else CELL_CHARS
        return code(pieces[0], limit)
    return ", ".join(code(piece, LIST_ITEM_CHARS) for piece in pieces)


def _task_row(task: TaskPreview, columns: list[fields.TaskField]) -> list[str]:
    return [code(task.id), *(_cell(field, task.spec) for field in columns)]


def _sweep_row(
    sweep_id: str, tasks: list[TaskPreview], columns: list[fields.TaskField]
) -> list[str]:
    """One row for a whole sweep: a value every task shares as it is, else the first task's,
    marked as varying."""
    first = tasks[0]
    name = f"sweep {code(sweep_id)}: {len(tasks):,} tasks, {code(first.id)} … {code(tasks[-1].id)}"
    cells = [name]
    for field in columns:
        value = first.spec.get(field.key)
        cell = _cell(field, first.spec)
        if any(task.spec.get(field.key) != value for task in tasks):
            cell = f"{cell or '*(none)*'} *(each task its own; {code(first.id)}'s)*"
        cells.append(cell)
    return cells


def _task_rows(
    preview: StackPreview, job: JobPreview, columns: list[fields.TaskField]
) -> list[list[str]]:
    """The rows of a job's task table: one per task, or, for a large job, one per sweep."""
    if len(job.tasks) <= SHOWN_TASK_ROWS:
        return [_task_row(task, columns) for task in job.tasks]
    config = next((item for item in preview.config.jobs if item.id == job.id), None)
    by_id = {task.id: task for task in job.tasks}
    rows: list[list[str]] = []
    swept: set[str] = set()
    for sweep in config.sweeps if config is not None else ():
        tasks = [by_id[spec["id"]] for spec in sweep.tasks if spec["id"] in by_id]
        swept.update(task.id for task in tasks)
        if tasks:
            rows.append(_sweep_row(sweep.id, tasks, columns))
    singles = [task for task in job.tasks if task.id not in swept]
    rows += [_task_row(task, columns) for task in singles[:SHOWN_TASK_ROWS]]
    if len(singles) > SHOWN_TASK_ROWS:
        rest = len(singles) - SHOWN_TASK_ROWS
        rows.append([f"and {rest:,} more single tasks (`--format json` lists them all)"])
    return rows


def _job_lines(preview: StackPreview, job: JobPreview) -> list[str]:
    inputs = job.inputs
    facts = [f"pool {code(str(inputs.get('poolId')))}"]
    for key, label in (
        ("priority", "priority"),
        ("maxParallelTasks", "max parallel tasks"),
        ("onAllTasksComplete", "when all tasks complete"),
    ):
        if inputs.get(key) is not None:
            facts.append(f"{label} {code(str(inputs[key]))}")
    if inputs.get("usesTaskDependencies"):
        facts.append("uses task dependencies")
    if inputs.get("replaceRunningTasks"):
        facts.append("may replace running tasks")
    lines = [f"## Job {code(job.id)}: {len(job.tasks)} task(s)", "", ", ".join(facts) + ".", ""]
    columns = _columns(job)
    lines += _table(
        ("Task", *(str(field.column) for field in columns)), _task_rows(preview, job, columns)
    )
    return [*lines, ""]


def _summary_line(job: JobChanges) -> str:
    counts = _summary(job)
    return (
        f"- {code(job.job_id)} (job {job.change}): {counts['added']} added, "
        f"{counts['removed']} removed, {counts['replaced']} replaced, "
        f"{counts['updated']} updated in place, {counts['unchanged']} unchanged."
    )


def _change_lines(changes: Changes) -> list[str]:
    lines = [f"## Changes against {code(changes.against)}", ""]
    if not changes.has_changes:
        return [*lines, "No changes.", ""]
    lines += [*(_summary_line(job) for job in changes.jobs), ""]
    for warning in changes.warnings:
        # A blank line between them: adjacent quote lines would merge into one paragraph.
        lines += [f"> **Warning:** {warning.text}", ""]
    resource_rows = [
        *([code(name), code(kind), "added"] for kind, name in changes.added),
        *([code(name), code(kind), "removed"] for kind, name in changes.removed),
        *(
            [code(name), code(kind), "changed: " + ", ".join(fields)]
            for kind, name, fields in changes.changed
        ),
    ]
    if resource_rows:
        lines += ["### Resources", ""]
        lines += _table(("Resource", "Type", "Change"), resource_rows)
        lines.append("")
    for job in changes.jobs:
        lines += _job_change_lines(job)
    return lines


def around(text: str, start: int, end: int, limit: int = CELL_CHARS) -> str:
    """Shorten a long value to the part around a difference, so the difference stays visible.

    Parameters
    ----------
    text
        The whole value.
    start, end
        Where the difference lies in it.
    limit
        Longest text kept, ellipses aside.

    Returns
    -------
    str
        The value if short enough, else the difference with `DIFF_CONTEXT` characters either
        side, cut with an ellipsis where text is left out.
    """
    if len(text) <= limit:
        return text
    left = max(0, start - DIFF_CONTEXT)
    right = min(len(text), max(end, start) + DIFF_CONTEXT, left + limit)
    return (ELLIPSIS if left else "") + text[left:right] + (ELLIPSIS if right < len(text) else "")


def _value(text: str | None, start: int, end: int) -> str:
    if text is None:
        return "*(none)*"
    # Shortened here around the difference; `code` only makes it one line.
    return code(around(text, start, end), CELL_CHARS + 2 * len(ELLIPSIS)) or "*(empty)*"


def _field_line(change: FieldChange, first_id: str) -> str:
    if change.name == JOB_FIELD:
        return "  - the job is replaced: the task runs again in the new job"
    where = "" if change.same_values else f" (each task its own value; {code(first_id)}'s)"
    return (
        f"  - {code(change.name)}{where}: {_value(change.old, change.start, change.old_end)}"
        f" → {_value(change.new, change.start, change.new_end)}"
    )


def _ids_block(task_ids: tuple[str, ...]) -> list[str]:
    shown = ", ".join(code(task_id) for task_id in task_ids[:SHOWN_GROUP_IDS])
    more = len(task_ids) - SHOWN_GROUP_IDS
    if more > 0:
        shown += f" and {more:,} more (`--format json` lists them all)"
    return [
        f"  <details><summary>{len(task_ids):,} tasks</summary>",
        "",
        f"  {shown}",
        "",
        "  </details>",
        "",
    ]


def _group_lines(group: TaskGroup) -> list[str]:
    count = len(group.task_ids)
    head = f"- **{count:,} task{'' if count == 1 else 's'} {CHANGE_WORDS[group.change]}**"
    if count == 1:
        head += f": {code(group.task_ids[0])}"
    lines = [head, *(_field_line(change, group.task_ids[0]) for change in group.fields)]
    if count > 1:
        lines += ["", *_ids_block(group.task_ids)]
    return lines


def _job_change_lines(job: JobChanges) -> list[str]:
    title = f"### Job {code(job.job_id)}: {job.change}"
    if job.fields:
        title += f" ({', '.join(job.fields)})"
    lines = [title, ""]
    for name, old, new in job.values:
        lines.append(
            f"- {code(name)}: {code(old) if old is not None else '*(none)*'} → "
            f"{code(new) if new is not None else '*(none)*'}"
        )
    if job.values:
        lines.append("")
    counts = _summary(job)
    lines += [
        f"{counts['added']} added, {counts['removed']} removed, {counts['replaced']} "
        f"replaced, {counts['updated']} updated in place, {counts['unchanged']} "
        "unchanged.",
        "",
    ]
    for group in job.groups[:SHOWN_GROUPS]:
        lines += _group_lines(group)
    hidden = job.groups[SHOWN_GROUPS:]
    if hidden:
        tasks = sum(len(group.task_ids) for group in hidden)
        lines.append(
            f"- and {len(hidden):,} more groups of changes ({tasks:,} tasks): "
            "`--format json` lists them all"
        )
    if job.groups:
        lines.append("")
    return lines


def _unpinned_lines(preview: StackPreview) -> list[str]:
    """A note naming the images given by tag alone: a tag can move to a new build unseen."""
    images = sorted(
        {
            str(task.spec.get("image"))
            for job in preview.jobs
            for task in job.tasks
            if task.spec.get("image") and "@" not in str(task.spec.get("image"))
        }
    )
    if not images:
        return []
    return [
        f"> **Unpinned images:** {', '.join(code(image) for image in images)} "
        f"{'is' if len(images) == 1 else 'are'} given by tag alone, so a new build pushed "
        "under the tag would run without any change in review; `batchtasks pin` writes "
        "each tag's digest into the stack file.",
        "",
    ]


def render_markdown(preview: StackPreview, changes: Changes | None = None) -> str:
    """Render the preview as Markdown for a pull request.

    Parameters
    ----------
    preview
        The stack preview.
    changes
        The comparison with an old config, or None.

    Returns
    -------
    str
        Changes and warnings (when compared), the task graph (Mermaid), the resources, and
        per job a table of its tasks.
    """
    total = sum(len(job.tasks) for job in preview.jobs)
    lines = [
        f"# Preview of stack {code(preview.stack)}",
        "",
        f"{len(preview.resources)} resources, {len(preview.jobs)} job(s), {total} task(s). "
        "Rendered offline; secret values show as `[secret]`.",
        "",
    ]
    lines += _unpinned_lines(preview)
    if changes is not None:
        lines += _change_lines(changes)
    lines += ["## Task graph", "", legend(changes), "", *mermaid(preview, changes), ""]
    lines += ["## Resources", ""]
    lines += _table(
        ("Resource", "Type", "Parent"),
        ([code(r["name"]), code(r["type"]), code(r["parent"] or "")] for r in preview.resources),
    )
    lines.append("")
    for job in preview.jobs:
        lines += _job_lines(preview, job)
    return "\n".join(lines).rstrip("\n") + "\n"
