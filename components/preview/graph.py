"""The task graph of a stack as a Mermaid flowchart, for the Markdown preview.

Jobs are subgraphs; each sweep is one node with its task count (never one node per task), each
single task a node; dependsOn edges run from what is needed to what needs it, and an edge that
touches only part of a sweep says how many of its tasks. Compared with an old config, nodes are
marked added, removed or changed, in words and in colour. No text from the stack file reaches
the chart as it is: node ids are generated, and labels keep only letters, digits and a few safe
characters, everything else written as a Mermaid entity code, so no value can end a label, add
an edge or a directive, or close the Markdown fence. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchtasks.preview.against import Changes, JobChanges
from batchtasks.preview.build import StackPreview

# Single tasks shown per job before the rest fold into one node.
SHOWN_SINGLE_TASKS = 40
# Characters a label keeps as they are; anything else becomes an entity code (#35; for '#').
# Not ':': Mermaid drops the last ';' of any line matching `style.*:\S*#.*;` or
# `classDef.*:\S*#.*;` before it parses, which would cut an entity code short.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,+-()")
_LONGEST_LABEL = 80
_CLASSES = {
    "added": "fill:#dafbe1,stroke:#1a7f37,color:#0d3b1b",
    "removed": "fill:#ffebe9,stroke:#cf222e,color:#5c0c12,stroke-dasharray:4 3",
    "changed": "fill:#fff8c5,stroke:#9a6700,color:#3d2b00",
}


def label(text: str) -> str:
    """Return text as the inside of a quoted Mermaid label that nothing can break out of.

    Parameters
    ----------
    text
        Any text (ids come from the stack file).

    Returns
    -------
    str
        At most `_LONGEST_LABEL` characters of it, every character outside a small safe set
        (letters, digits, space and ``_.,+-()``) written as ``#<code>;``.
    """
    text = str(text)
    if len(text) > _LONGEST_LABEL:
        text = text[: _LONGEST_LABEL - 1] + "…"
    return "".join(char if char in _SAFE else f"#{ord(char)};" for char in text)


@dataclass
class _Node:
    key: str
    title: str
    task_ids: list[str]
    sweep: bool
    mark: str | None = None
    note: str = ""


@dataclass
class _Job:
    key: str
    job_id: str
    title: str
    nodes: list[_Node] = field(default_factory=list)
    mark: str | None = None
    removed: bool = False


def _counted(count: int, what: str) -> str:
    return f"{count:,} {what}" + ("" if count == 1 else "s")


def _mark(node: _Node, changed: JobChanges | None) -> None:
    """Mark a node from its job's task plan: added, changed (with counts) or untouched."""
    if changed is None:
        return
    plan = changed.tasks
    ids = set(node.task_ids)
    counts = {
        kind: len(ids.intersection(task_ids))
        for kind, task_ids in (
            ("added", plan.added),
            ("replaced", plan.replaced),
            ("updated", plan.updated),
        )
    }
    if counts["added"] == len(ids):
        node.mark = "added"
    elif any(counts.values()):
        node.mark = "changed"
        if node.sweep:
            node.note = ", ".join(f"{count:,} {kind}" for kind, count in counts.items() if count)
        else:
            node.note = next(kind for kind, count in counts.items() if count)


def _jobs(preview: StackPreview, changes: Changes | None) -> list[_Job]:
    by_id = {job.job_id.lower(): job for job in changes.jobs} if changes else {}
    jobs = []
    for index, config in enumerate(preview.config.jobs):
        job = _Job(f"j{index}", config.id, config.id)
        changed = by_id.get(config.id.lower())
        if changed is not None and changed.change in ("added", "replaced", "updated"):
            job.mark = "added" if changed.change == "added" else "changed"
            job.title += f" ({'new job' if changed.change == 'replaced' else changed.change})"
        for number, sweep in enumerate(config.sweeps):
            job.nodes.append(
                _Node(
                    f"{job.key}s{number}",
                    f"{sweep.id}: {_counted(len(sweep.tasks), 'task')}",
                    [task["id"] for task in sweep.tasks],
                    True,
                )
            )
        singles = [task["id"] for task in config.tasks]
        for number, task_id in enumerate(singles[:SHOWN_SINGLE_TASKS]):
            job.nodes.append(_Node(f"{job.key}t{number}", task_id, [task_id], False))
        if len(singles) > SHOWN_SINGLE_TASKS:
            rest = singles[SHOWN_SINGLE_TASKS:]
            job.nodes.append(
                _Node(f"{job.key}more", f"{len(rest):,} more single tasks", rest, True)
            )
        for node in job.nodes:
            _mark(node, changed)
        if changed is not None and changed.tasks.removed:
            job.nodes.append(
                _Node(f"{job.key}gone", "", list(changed.tasks.removed), True, "removed")
            )
        jobs.append(job)
    for number, changed in enumerate(
        job for job in (changes.jobs if changes else ()) if job.change == "removed"
    ):
        gone = _Job(
            f"r{number}",
            changed.job_id,
            f"{changed.job_id} (removed)",
            mark="removed",
            removed=True,
        )
        gone.nodes.append(
            _Node(f"{gone.key}gone", "", list(changed.tasks.removed), True, "removed")
        )
        jobs.append(gone)
    return jobs


def _node_line(node: _Node) -> str:
    if node.mark == "removed":
        text = f"{_counted(len(node.task_ids), 'task')} removed"
    else:
        text = node.title
    if node.mark == "added":
        text += " (added)"
    elif node.note:
        text += f" ({node.note})"
    shape = ('[["', '"]]') if node.sweep else ('["', '"]')
    line = f"    {node.key}{shape[0]}{label(text)}{shape[1]}"
    return line + (f":::{node.mark}" if node.mark else "")


def _edges(preview: StackPreview, jobs: Sequence[_Job]) -> list[str]:
    """One edge per pair of nodes with a dependency, labelled with how many tasks when only
    part of a sweep takes part."""
    lines = []
    for job in jobs:
        owner: dict[str, _Node] = {}
        for node in job.nodes:
            if node.mark != "removed":
                owner.update((task_id.lower(), node) for task_id in node.task_ids)
        preview_job = None if job.removed else preview.job(job.job_id)
        if preview_job is None:
            continue
        pairs: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
        nodes = {node.key: node for node in job.nodes}
        for task in preview_job.tasks:
            needs: Any = task.spec.get("dependsOn") or ()
            target = owner.get(task.id.lower())
            if target is None:
                continue
            for needed in needs:
                source = owner.get(str(needed).lower())
                if source is None:
                    continue
                used, dependents = pairs.setdefault((source.key, target.key), (set(), set()))
                used.add(str(needed).lower())
                dependents.add(task.id.lower())
        for (source_key, target_key), (used, dependents) in pairs.items():
            source, target = nodes[source_key], nodes[target_key]
            parts = []
            if source.sweep and len(used) < len(source.task_ids):
                parts.append(f"{len(used):,} of {len(source.task_ids):,}")
            if target.sweep and len(dependents) < len(target.task_ids):
                parts.append(f"to {len(dependents):,} of {len(target.task_ids):,}")
            arrow = f" -->|{label(', '.join(parts))}| " if parts else " --> "
            lines.append(f"  {source_key}{arrow}{target_key}")
    return lines


def mermaid(preview: StackPreview, changes: Changes | None = None) -> list[str]:
    """Return the stack's task graph as the lines of a fenced Mermaid block.

    Parameters
    ----------
    preview
        The stack preview (its config gives the sweeps and single tasks).
    changes
        The comparison with an old config, to mark nodes added, removed or changed; or None.

    Returns
    -------
    list[str]
        The block, fence lines included; a flowchart from left to right.
    """
    jobs = _jobs(preview, changes)
    lines = ["```mermaid", "flowchart LR"]
    for job in jobs:
        lines.append(f'  subgraph {job.key}["{label("job " + job.title)}"]')
        lines += [_node_line(node) for node in job.nodes]
        lines.append("  end")
        if job.mark:
            lines.append(f"  class {job.key} {job.mark}")
    lines += _edges(preview, jobs)
    used = {node.mark for job in jobs for node in job.nodes} | {job.mark for job in jobs}
    lines += [f"  classDef {name} {style}" for name, style in _CLASSES.items() if name in used]
    return [*lines, "```"]


def legend(changes: Changes | None) -> str:
    """Return the sentence that explains the chart's shapes and marks."""
    text = (
        "Each sweep is one node with its task count; an arrow runs from a task to those "
        "that depend on it, and says how many when only part of a sweep takes part."
    )
    if changes is not None:
        text += " Marked: added (green), changed (yellow, with counts), removed (red, dashed)."
    return text
