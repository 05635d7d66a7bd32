"""Compare two previews of a stack: what `pulumi up` would add, remove, replace or update.

The old config comes from another stack file or from the stack file at a git revision. Tasks are
compared per job with the providers' own diff rules (`plan_tasks`, `job_change`), so the preview
says what the providers would do; warnings name what cannot be undone.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchtasks.batch.diff import TaskPlan, completion_mode, job_change, plan_tasks, same
from batchtasks.batch.shards import SHARD_SIZE, shard_input
from batchtasks.config import StackConfig, load_stack_file, load_stack_text
from batchtasks.escape import visible
from batchtasks.preview.build import DYNAMIC_PREFIX, TASK_SET_TYPE, JobPreview, StackPreview
from batchtasks.preview.groups import JOB_FIELD, TaskGroup, group_tasks, value_text

# How many task ids a warning names before it only counts.
SHOWN_IDS = 5
# Warning kinds, most urgent first: a sweep whose shard count changes (`pulumi up` refuses the
# whole change), tasks that may be running when they are deleted, jobs replaced with all their
# tasks, removals, completed jobs that take no new task, then the rest.
WARNING_KINDS = (
    "shards",
    "running",
    "job-replaced",
    "removed",
    "completed-job",
    "refused",
    "access",
)


class AgainstError(Exception):
    """The --against reference is neither a stack file nor a git revision holding the file."""


def load_against(reference: str, stack_file: Path) -> StackConfig:
    """Read the config to compare with: a stack file, or the stack file at a git revision.

    Parameters
    ----------
    reference
        Path of a stack file, or a git revision (`main`, `HEAD~1`, a commit).
    stack_file
        The stack file being previewed; at a revision, the file at the same path is read.

    Returns
    -------
    StackConfig
        The validated old config.

    Raises
    ------
    AgainstError
        If the reference is no file and git cannot show the stack file at it.
    ConfigError
        If the old config is invalid.
    """
    if Path(reference).is_file():
        return load_stack_file(reference)
    return load_stack_text(_text_at_revision(reference, Path(stack_file)))


def _git(
    arguments: list[str], directory: Path, reference: str
) -> subprocess.CompletedProcess[bytes]:
    """Run git in `directory`; the reference only ever follows --end-of-options."""
    try:
        return subprocess.run(
            ["git", *arguments],
            cwd=directory,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError as error:
        raise AgainstError(
            f"--against {reference!r} is not a file, and git cannot run: {error}"
        ) from None


def _last_line(completed: subprocess.CompletedProcess[bytes], fallback: str) -> str:
    """Return git's last line of complaint, with anything unprintable escaped."""
    lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
    return visible(lines[-1] if lines else fallback)


def _text_at_revision(reference: str, stack_file: Path) -> str:
    """Return the stack file's text at a git revision of the repository holding it.

    The revision is resolved to a commit first (``rev-parse --verify --end-of-options``), so
    a reference is never read as an option, a path or a blob; the stack file must lie inside
    the repository (after following links).
    """
    directory = stack_file.absolute().parent
    stack_file = stack_file.resolve()
    top = _git(["rev-parse", "--show-toplevel"], directory, reference)
    if top.returncode != 0:
        raise AgainstError(
            f"--against {reference!r} is not a file, nor a git revision holding "
            f"{stack_file.name}: {str(stack_file)!r} is not in a git "
            f"repository ({_last_line(top, 'git failed')})"
        )
    try:
        relative = stack_file.relative_to(Path(os.fsdecode(top.stdout.strip())).resolve())
    except ValueError:
        raise AgainstError(
            f"--against {reference!r}: the stack file {str(stack_file)!r} is "
            "outside the git repository of its folder"
        ) from None
    commit = _git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{reference}^{{commit}}"],
        directory,
        reference,
    )
    if commit.returncode != 0 or not commit.stdout.strip():
        raise AgainstError(
            f"--against {reference!r} is not a file, nor a git revision holding "
            f"{stack_file.name}: {_last_line(commit, 'no such revision')}"
        )
    sha = commit.stdout.decode("ascii", "replace").strip()
    shown = _git(
        ["cat-file", "blob", "--end-of-options", f"{sha}:{relative.as_posix()}"],
        directory,
        reference,
    )
    if shown.returncode != 0:
        raise AgainstError(
            f"--against {reference!r} is not a file, nor a git revision holding "
            f"{stack_file.name}: {_last_line(shown, 'git cat-file failed')}"
        )
    return shown.stdout.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class JobChanges:
    """How one job changes.

    Attributes
    ----------
    job_id
        The job.
    change
        "added", "removed", "replaced" (a new job), "updated" (in place) or "unchanged".
    fields
        The job inputs that change (those forcing the new job, when replaced).
    tasks
        The task-by-task plan; a replaced job re-runs every task it keeps ("job" among the
        fields of each).
    groups
        The task changes grouped by kind and edit, with old and new values (see `groups`).
    values
        Old and new value of each job field in `fields`, as text.
    """

    job_id: str
    change: str
    fields: tuple[str, ...]
    tasks: TaskPlan
    groups: tuple[TaskGroup, ...] = ()
    values: tuple[tuple[str, str | None, str | None], ...] = ()

    @property
    def destructive(self) -> bool:
        """True when the job is replaced or removed, or any of its tasks is."""
        return self.change in ("replaced", "removed") or bool(
            self.tasks.replaced or self.tasks.removed
        )


@dataclass(frozen=True)
class ChangeWarning:
    """Something a change does that cannot be undone, or that Batch will refuse.

    Attributes
    ----------
    kind
        One of `WARNING_KINDS`.
    text
        The warning, one sentence or two; ids and names in backticks.
    """

    kind: str
    text: str


@dataclass(frozen=True)
class Changes:
    """Everything that differs between an old and a new preview of a stack.

    Attributes
    ----------
    against
        What the old config is (the --against reference).
    added, removed
        Azure resources (not jobs or tasks) as (type, name).
    changed
        Azure resources whose inputs differ: (type, name, changed input names).
    jobs
        Per job, new jobs in stack file order, then removed ones.
    warnings
        One per destructive or one-way change, most urgent kind first.
    """

    against: str
    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    changed: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    jobs: tuple[JobChanges, ...] = ()
    warnings: tuple[ChangeWarning, ...] = field(default_factory=tuple)

    @property
    def destructive(self) -> bool:
        """True when any task is replaced or removed, or any job replaced or removed."""
        return any(job.destructive for job in self.jobs)

    @property
    def has_changes(self) -> bool:
        """True when anything is added, removed or changed (a warning says something is:
        a new shard count changes no task, but adds or removes task sets)."""
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.warnings
            or any(job.change != "unchanged" or job.tasks.has_changes for job in self.jobs)
        )


def _ids(task_ids: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(task_ids[:SHOWN_IDS])
    more = len(task_ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _azure_changes(
    old: StackPreview, new: StackPreview
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str, tuple[str, ...]]]]:
    """Compare the resources that are not jobs or tasks, by type and name."""

    def azure(preview: StackPreview) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (r["type"], r["name"]): r["inputs"]
            for r in preview.resources
            if not r["type"].startswith(DYNAMIC_PREFIX)
        }

    olds, news = azure(old), azure(new)
    added = [key for key in news if key not in olds]
    removed = [key for key in olds if key not in news]
    changed = []
    for key, inputs in news.items():
        if key in olds:
            fields = tuple(
                sorted(
                    name
                    for name in set(inputs) | set(olds[key])
                    if not same(olds[key].get(name), inputs.get(name))
                )
            )
            if fields:
                changed.append((*key, fields))
    return added, removed, changed


def _storage_warnings(old: StackConfig, new: StackConfig) -> list[ChangeWarning]:
    """Warn for containers removed or whose access changes."""
    warnings = []
    old_access = {c.name: c.access for c in old.storage.containers}
    new_access = {c.name: c.access for c in new.storage.containers}
    for name, access in old_access.items():
        if name not in new_access:
            warnings.append(
                ChangeWarning(
                    "removed",
                    f"container `{name}` is removed: the "
                    "blob container and every blob in it are "
                    "deleted",
                )
            )
        elif new_access[name] != access:
            warnings.append(
                ChangeWarning(
                    "access",
                    f"container `{name}` changes access {access} -> {new_access[name]}: "
                    "the identity's role on it is replaced, and tasks "
                    + ("can no longer write to it" if access == "write" else "may now write to it"),
                )
            )
    return warnings


def _shard_counts(preview: StackPreview) -> dict[str, int]:
    """Return each sweep's shard count (by its marker `<job>.<sweep>`) as the program
    registered its task sets; a set without the input is one of one."""
    return {
        str(r["inputs"].get("setName")): shard_input(r["inputs"].get("shard"))[1]
        for r in preview.resources
        if r["type"] == TASK_SET_TYPE
    }


def _shard_warnings(old: StackPreview, new: StackPreview) -> list[ChangeWarning]:
    """Warn for a sweep whose shard count changes: the providers' check refuses it."""
    olds, news = _shard_counts(old), _shard_counts(new)
    warnings = []
    for job_index, job in enumerate(new.config.jobs):
        for sweep_index, sweep in enumerate(job.sweeps):
            name = f"{job.id}.{sweep.id}"
            if name not in olds or olds[name] == news.get(name, olds[name]):
                continue
            was, now = olds[name], news[name]
            why = (
                f"`shards: {sweep.shards}` is set"
                if sweep.shards
                else f"it has {len(sweep.tasks):,} tasks and, without `shards:`, takes one set "
                f"per {SHARD_SIZE:,}"
            )
            warnings.append(
                ChangeWarning(
                    "shards",
                    f"sweep `{sweep.id}` of job `{job.id}` is held by {_counted(was, 'task set')} "
                    f"and would be split over {now} ({why}): `pulumi up` refuses this before "
                    "changing anything, since its tasks would move between resources and run "
                    f"again. Write `shards: {was}` on the sweep "
                    f"(`batchtasks:jobs[{job_index}].sweeps[{sweep_index}].shards`) to keep "
                    "every task where it is.",
                )
            )
    return warnings


def _counted(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")


def _running_warning(job_id: str, plan: TaskPlan, replace_running: bool) -> ChangeWarning:
    """Name the tasks a change deletes that may be running: offline nobody can tell which."""
    going = [*plan.replaced, *plan.removed]
    parts = [
        f"{_counted(len(ids), 'task')} {verb}"
        for ids, verb in ((plan.replaced, "replaced"), (plan.removed, "removed"))
        if ids
    ]
    consequence = (
        "`pulumi up` kills those that are (replaceRunningTasks is set)"
        if replace_running
        else "`pulumi up` reads their states first and stops before changing anything if "
        "any is (set replaceRunningTasks to kill them instead)"
    )
    return ChangeWarning(
        "running",
        f"job `{job_id}`: {' and '.join(parts)} ({_ids(going)}) may be running; the "
        f"preview cannot tell offline: {consequence}. Their files on the node are deleted.",
    )


def _job_values(
    old: JobPreview, new: JobPreview, names: list[str]
) -> tuple[tuple[str, str | None, str | None], ...]:
    return tuple(
        (name, value_text(old.inputs.get(name)), value_text(new.inputs.get(name))) for name in names
    )


def _job_changes(
    job_id: str, old: JobPreview | None, new: JobPreview | None
) -> tuple[JobChanges, list[ChangeWarning]]:
    """Classify one job's change and its tasks', with the warnings they call for."""
    empty: dict[str, Any] = {"tasks": {}}
    old_tasks = old.task_inputs if old else empty
    new_tasks = new.task_inputs if new else empty
    plan = plan_tasks(old_tasks, new_tasks)
    warnings: list[ChangeWarning] = []
    if new is None:
        count = len(old_tasks["tasks"])
        warnings.append(
            ChangeWarning(
                "removed",
                f"job `{job_id}` is removed: it is deleted with its "
                f"{_counted(count, 'task')}, running or not, and their files on the nodes",
            )
        )
        return JobChanges(
            job_id, "removed", (), plan, group_tasks(plan, old_tasks, empty)
        ), warnings
    if old is None:
        return JobChanges(job_id, "added", (), plan, group_tasks(plan, empty, new_tasks)), warnings
    in_place, replace = job_change(old.inputs, new.inputs)
    if replace:
        kept = tuple(
            sorted(
                task_id
                for task_id in new_tasks["tasks"]
                if task_id.lower() in {old_id.lower() for old_id in old_tasks["tasks"]}
            )
        )
        fields = dict(plan.changed_fields or {})
        for task_id in kept:
            fields[task_id] = (*fields.get(task_id, ()), JOB_FIELD)
        plan = TaskPlan(plan.added, plan.removed, kept, (), 0, fields)
        total = len(new_tasks["tasks"])
        warnings.append(
            ChangeWarning(
                "job-replaced",
                f"job `{job_id}` is replaced ({', '.join(replace)} changes): the "
                f"job is deleted with every task in it, running or not, and created anew; all "
                f"{_counted(total, 'task')} run again",
            )
        )
        change, job_fields = "replaced", tuple(replace)
    else:
        change = "updated" if in_place else "unchanged"
        job_fields = tuple(in_place)
        if (
            completion_mode(old.inputs.get("onAllTasksComplete")) == "terminateJob"
            and completion_mode(new.inputs.get("onAllTasksComplete")) == "noAction"
        ):
            warnings.append(
                ChangeWarning(
                    "refused",
                    f"job `{job_id}` goes from terminateJob back to noAction: Batch "
                    "refuses that change; keep terminateJob or give the job a new id",
                )
            )
        if not same(old_tasks.get("identityResourceId"), new_tasks.get("identityResourceId")):
            warnings.append(
                ChangeWarning(
                    "running",
                    f"job `{job_id}`: the identity changes, so every one of its tasks is replaced",
                )
            )
        if plan.replaced or plan.removed:
            warnings.append(
                _running_warning(job_id, plan, bool(new.inputs.get("replaceRunningTasks")))
            )
        arriving = [*plan.added, *plan.replaced]
        if arriving and completion_mode(new.inputs.get("onAllTasksComplete")) == "terminateJob":
            warnings.append(
                ChangeWarning(
                    "completed-job",
                    f"job `{job_id}` ends itself (terminateJob): if it has already "
                    f"completed, it takes no new task, and Batch refuses the "
                    f"{_counted(len(arriving), 'task')} this change adds ({_ids(arriving)})",
                )
            )
    groups = group_tasks(plan, old_tasks, new_tasks)
    return JobChanges(
        job_id, change, job_fields, plan, groups, _job_values(old, new, list(job_fields))
    ), warnings


def compare(old: StackPreview, new: StackPreview, against: str) -> Changes:
    """Work out what changes from the old preview to the new one.

    Parameters
    ----------
    old, new
        Previews of the old and the new config.
    against
        What the old config is, for the report.

    Returns
    -------
    Changes
        Resource, job and task changes, and a warning per destructive or one-way change.
    """
    added, removed, changed = _azure_changes(old, new)
    warnings = _shard_warnings(old, new) + _storage_warnings(old.config, new.config)
    jobs = []
    for job in new.jobs:
        job_changes, job_warnings = _job_changes(job.id, old.job(job.id), job)
        jobs.append(job_changes)
        warnings += job_warnings
    for job in old.jobs:
        if new.job(job.id) is None:
            job_changes, job_warnings = _job_changes(job.id, job, None)
            jobs.append(job_changes)
            warnings += job_warnings
    # Most urgent first; within a kind, in stack file order.
    warnings.sort(key=lambda warning: WARNING_KINDS.index(warning.kind))
    return Changes(
        against, tuple(added), tuple(removed), tuple(changed), tuple(jobs), tuple(warnings)
    )
