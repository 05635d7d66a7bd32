"""Render a stack preview as JSON (REST bodies, for tools) or Markdown (for a pull request)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from batchtasks.escape import code_span, one_line
from batchtasks.preview.against import Changes, JobChanges
from batchtasks.preview.build import JobPreview, StackPreview, TaskPreview

# Longest cell text in a Markdown table; big sweeps stay readable one row per task.
COMMAND_CHARS = 80
CELL_CHARS = 100
# JSON levels spread over lines: document, section, job's task list.
EXPANDED_DEPTH = 3


def changes_document(changes: Changes) -> dict[str, Any]:
    """Return the changes as plain JSON data.

    Parameters
    ----------
    changes
        The comparison of two previews.

    Returns
    -------
    dict
        {"against", "resources": {"added", "removed", "changed"}, "jobs": [...], "warnings"}.
    """
    return {
        "against": changes.against,
        "resources": {
            "added": [{"type": kind, "name": name} for kind, name in changes.added],
            "removed": [{"type": kind, "name": name} for kind, name in changes.removed],
            "changed": [{"type": kind, "name": name, "fields": list(fields)}
                        for kind, name, fields in changes.changed],
        },
        "jobs": [_job_changes_document(job) for job in changes.jobs],
        "warnings": list(changes.warnings),
    }


def _job_changes_document(job: JobChanges) -> dict[str, Any]:
    fields = job.tasks.changed_fields or {}
    return {
        "id": job.job_id,
        "change": job.change,
        "fields": list(job.fields),
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
        {"resources": [{"type", "name", "parent", "inputs"}], "jobs": [job body],
        "tasks": {job id: [task body]}}, plus "changes" when given.
    """
    document: dict[str, Any] = {
        "resources": [dict(resource) for resource in preview.resources],
        "jobs": [job.body for job in preview.jobs],
        "tasks": {job.id: [task.body for task in job.tasks] for job in preview.jobs},
    }
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
        items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: "
                 f"{dump_json(item, depth - 1, inner)}" for key, item in value.items()]
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


def _mounts(spec: Mapping[str, Any]) -> str:
    return ", ".join(code(f"{m.get('source')} → {m.get('target')}", 60)
                     for m in spec.get("mounts") or ())


def _outputs(spec: Mapping[str, Any]) -> str:
    cells = []
    for output in spec.get("outputs") or ():
        where = "/".join(part for part in (output.get("container"), output.get("path")) if part)
        cells.append(code(f"{output.get('pattern')} → {where}", 60))
    return ", ".join(cells)


def _task_row(task: TaskPreview) -> list[str]:
    return [code(task.id), code(str(task.spec.get("image", ""))),
            code(str(task.spec.get("command", "")), COMMAND_CHARS), _mounts(task.spec),
            _outputs(task.spec)]


def _job_lines(job: JobPreview) -> list[str]:
    inputs = job.inputs
    facts = [f"pool {code(str(inputs.get('poolId')))}"]
    for key, label in (("priority", "priority"), ("maxParallelTasks", "max parallel tasks"),
                       ("onAllTasksComplete", "when all tasks complete")):
        if inputs.get(key) is not None:
            facts.append(f"{label} {code(str(inputs[key]))}")
    if inputs.get("usesTaskDependencies"):
        facts.append("uses task dependencies")
    if inputs.get("replaceRunningTasks"):
        facts.append("may replace running tasks")
    lines = [f"## Job {code(job.id)}: {len(job.tasks)} task(s)", "", ", ".join(facts) + ".", ""]
    lines += _table(("Task", "Image", "Command", "Mounts", "Outputs"),
                    (_task_row(task) for task in job.tasks))
    return [*lines, ""]


def _change_lines(changes: Changes) -> list[str]:
    lines = [f"## Changes against {code(changes.against)}", ""]
    if not changes.has_changes:
        return [*lines, "No changes.", ""]
    for warning in changes.warnings:
        # A blank line between them: adjacent quote lines would merge into one paragraph.
        lines += [f"> **Warning:** {warning}", ""]
    resource_rows = [*([code(name), code(kind), "added"] for kind, name in changes.added),
                     *([code(name), code(kind), "removed"] for kind, name in changes.removed),
                     *([code(name), code(kind), "changed: " + ", ".join(fields)]
                       for kind, name, fields in changes.changed)]
    if resource_rows:
        lines += ["### Resources", ""]
        lines += _table(("Resource", "Type", "Change"), resource_rows)
        lines.append("")
    for job in changes.jobs:
        lines += _job_change_lines(job)
    return lines


def _job_change_lines(job: JobChanges) -> list[str]:
    plan = job.tasks
    title = f"### Job {code(job.job_id)}: {job.change}"
    if job.fields:
        title += f" ({', '.join(job.fields)})"
    counts = (f"{len(plan.added)} added, {len(plan.removed)} removed, "
              f"{len(plan.replaced)} replaced, {len(plan.updated)} updated in place, "
              f"{plan.unchanged} unchanged.")
    lines = [title, "", counts, ""]
    fields = plan.changed_fields or {}
    rows = [*([code(task_id), "added", ""] for task_id in plan.added),
            *([code(task_id), "removed", ""] for task_id in plan.removed),
            *([code(task_id), "replaced", ", ".join(fields.get(task_id, ()))]
              for task_id in plan.replaced),
            *([code(task_id), "updated in place", ", ".join(fields.get(task_id, ()))]
              for task_id in plan.updated)]
    if rows:
        lines += [*_table(("Task", "Change", "Changed fields"), rows), ""]
    return lines


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
        Changes and warnings (when compared), the resources, and per job a table of its tasks.
    """
    total = sum(len(job.tasks) for job in preview.jobs)
    lines = [f"# Preview of stack {code(preview.stack)}", "",
             f"{len(preview.resources)} resources, {len(preview.jobs)} job(s), {total} task(s). "
             "Rendered offline; secret values show as `[secret]`.", ""]
    if changes is not None:
        lines += _change_lines(changes)
    lines += ["## Resources", ""]
    lines += _table(("Resource", "Type", "Parent"),
                    ([code(r["name"]), code(r["type"]), code(r["parent"] or "")]
                     for r in preview.resources))
    lines.append("")
    for job in preview.jobs:
        lines += _job_lines(job)
    return "\n".join(lines).rstrip("\n") + "\n"
