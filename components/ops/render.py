"""Status as text: a terminal table, JSON, Markdown (a CI job summary or PR comment), and the
one-line progress a non-terminal gets. Pure functions of a `StackReport`.

Service text (failure messages, ids) is untrusted: control characters are dropped for the
terminal, and Markdown cells escape everything that could format, link or break the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from batchtasks.escape import code_span, one_line
from batchtasks.ops.report import FailedTask, JobReport, StackReport, shown_ids

# Longest failure message shown in a table cell; JSON carries it whole.
MESSAGE_CHARS = 160
# Cells made only of these are shown as they are; anything else goes in a code span.
_PLAIN_CELL = re.compile(r"[A-Za-z0-9 _.,:;/=@'()*-]*")
COUNT_COLUMNS = ("active", "preparing", "running", "succeeded", "failed")


def plain(text: Any) -> str:
    """Return untrusted text on one visible line (controls and escapes written out)."""
    return one_line(text, 100_000)


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Return text cut to `limit` characters, marked with an ellipsis when cut."""
    return one_line(text, limit)


def md(text: Any, limit: int = MESSAGE_CHARS) -> str:
    """Return untrusted text fit for a Markdown table cell or line: as it is when it holds
    nothing Markdown reads, else a code span (no markup, link, tag or `|` takes effect)."""
    line = one_line(text, limit)
    return line if _PLAIN_CELL.fullmatch(line) else code_span(text, limit)


def logs_where(job: JobReport, task: FailedTask) -> str:
    """Say where a failed task's logs are: its node while it lasts, then the blob upload."""
    places = []
    if task.node:
        places.append(f"node {task.node}")
    if job.job.logs is not None:
        target = job.job.logs
        places.append(f"blob {target.container}/{target.prefix(task.id)}/")
    return ", then ".join(places) if places else "none (no log container declared)"


def _failure_text(task: FailedTask) -> str:
    parts = [part for part in (task.category, task.code) if part]
    head = "/".join(parts)
    message = plain(task.message or "")
    return f"{head}: {message}" if head and message else head or message or "-"


def when(timestamp: str | None) -> str:
    """Return a service timestamp to the second, e.g. ``2025-06-02 07:38:56Z``."""
    if not timestamp:
        return "-"
    return timestamp.replace("T", " ").split(".", 1)[0].removesuffix("Z") + "Z"


def _exit(task: FailedTask) -> str:
    return "-" if task.exit_code is None else str(task.exit_code)


def _ids_note(job: JobReport) -> str:
    return "" if job.ids_checked else "*"


def job_row(job: JobReport) -> list[str]:
    """Return a job's summary cells: id, state, declared, counts, missing, undeclared."""
    counts = job.counts
    return [
        job.id,
        job.state or "not in Batch",
        str(job.declared),
        *(str(getattr(counts, name)) for name in COUNT_COLUMNS),
        f"{len(job.missing)}{_ids_note(job)}",
        f"{len(job.undeclared)}{_ids_note(job)}",
    ]


JOB_HEADER = ["job", "state", "declared", *COUNT_COLUMNS, "missing", "undeclared"]
FAILURE_HEADER = ["job", "task", "exit", "failure", "retries", "node", "start", "end", "logs"]


def failure_row(job: JobReport, task: FailedTask) -> list[str]:
    """Return a failed task's cells."""
    name = task.id if task.declared else f"{task.id} (undeclared)"
    return [
        job.id,
        name,
        _exit(task),
        _failure_text(task),
        str(task.retries),
        task.node or "-",
        when(task.start),
        when(task.end),
        logs_where(job, task),
    ]


def _aligned(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    table = [list(header), *([shorten(plain(cell)) for cell in row] for row in rows)]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]


def _notes(report: StackReport) -> list[str]:
    notes = []
    if any(not job.ids_checked for job in report.jobs):
        notes.append(
            "* task counts match the declaration, so task ids were not listed "
            "(--check-ids lists them)"
        )
    for job in report.jobs:
        if job.missing and job.state is not None:
            notes.append(f"{job.id}: missing from Batch: {shown_ids(job.missing)}")
        if job.undeclared:
            notes.append(f"{job.id}: in Batch but not declared: {shown_ids(job.undeclared)}")
    return notes


def render_table(report: StackReport) -> str:
    """Return status as aligned columns for a terminal."""
    lines = _aligned(JOB_HEADER, (job_row(job) for job in report.jobs))
    failures = [failure_row(job, task) for job in report.jobs for task in job.failures]
    if failures:
        lines += ["", "failed tasks:", *_aligned(FAILURE_HEADER, failures)]
    notes = _notes(report)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(cell) for cell in row) + " |" for row in rows]
    return lines


def render_markdown(report: StackReport, title: str = "batchtasks status") -> str:
    """Return status as Markdown: a summary line, a table of jobs, a table of failed tasks."""
    verdict = (
        "all declared tasks succeeded"
        if report.succeeded
        else "; ".join(report.problems()) or "in progress"
    )
    lines = [f"### {md(title)}", "", md(verdict, 2000), ""]
    lines += _md_table(JOB_HEADER, (job_row(job) for job in report.jobs))
    failures = [failure_row(job, task) for job in report.jobs for task in job.failures]
    if failures:
        lines += ["", "#### Failed tasks", ""]
        lines += _md_table(FAILURE_HEADER, failures)
    notes = _notes(report)
    if notes:
        lines += [""] + [f"- {md(note, 2000)}" for note in notes]
    return "\n".join(lines) + "\n"


def _failure_document(job: JobReport, task: FailedTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "declared": task.declared,
        "exitCode": task.exit_code,
        "category": task.category,
        "code": task.code,
        "message": task.message,
        "retries": task.retries,
        "node": task.node,
        "start": task.start,
        "end": task.end,
        "logs": logs_where(job, task),
    }


def status_document(report: StackReport) -> dict[str, Any]:
    """Return status as a JSON-ready document (camelCase keys, ids in full)."""
    jobs = []
    for job in report.jobs:
        counts = {name: getattr(job.counts, name) for name in COUNT_COLUMNS}
        jobs.append(
            {
                "id": job.id,
                "state": job.state,
                "declared": job.declared,
                "counts": counts,
                "idsChecked": job.ids_checked,
                "missing": list(job.missing),
                "undeclared": list(job.undeclared),
                "done": job.done,
                "succeeded": job.succeeded,
                "failures": [_failure_document(job, task) for task in job.failures],
                "requests": job.requests,
            }
        )
    return {
        "done": report.done,
        "succeeded": report.succeeded,
        "problems": report.problems(),
        "requests": report.requests,
        "jobs": jobs,
    }


def render_json(report: StackReport) -> str:
    """Return status as indented JSON."""
    return json.dumps(status_document(report), indent=2) + "\n"


RENDERERS = {"table": render_table, "json": render_json, "markdown": render_markdown}


def progress_line(job: JobReport) -> str:
    """Return one plain line of a job's progress, for logs that are not a terminal."""
    counts = job.counts
    if job.state is None:
        return f"{job.id}: not in Batch"
    done = counts.completed
    return (
        f"{job.id}: {job.state}, {done}/{job.declared} completed ({counts.succeeded} "
        f"succeeded, {counts.failed} failed), {counts.running} running, {counts.preparing} "
        f"preparing, {counts.active} waiting"
    )
