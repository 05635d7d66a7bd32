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
from batchtasks.config import StackConfig, load_stack_file, load_stack_text
from batchtasks.escape import visible
from batchtasks.preview.build import DYNAMIC_PREFIX, JobPreview, StackPreview

# How many task ids a warning names before it only counts.
SHOWN_IDS = 5


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


def _git(arguments: list[str], directory: Path, reference: str
         ) -> subprocess.CompletedProcess[bytes]:
    """Run git in `directory`; the reference only ever follows --end-of-options."""
    try:
        return subprocess.run(["git", *arguments], cwd=directory, capture_output=True,
                              check=False, stdin=subprocess.DEVNULL)
    except OSError as error:
        raise AgainstError(f"--against {reference!r} is not a file, and git cannot run: "
                           f"{error}") from None


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
        raise AgainstError(f"--against {reference!r} is not a file, nor a git revision holding "
                           f"{stack_file.name}: {str(stack_file)!r} is not in a git "
                           f"repository ({_last_line(top, 'git failed')})")
    try:
        relative = stack_file.relative_to(Path(os.fsdecode(top.stdout.strip())).resolve())
    except ValueError:
        raise AgainstError(f"--against {reference!r}: the stack file {str(stack_file)!r} is "
                           "outside the git repository of its folder") from None
    commit = _git(["rev-parse", "--verify", "--quiet", "--end-of-options",
                   f"{reference}^{{commit}}"], directory, reference)
    if commit.returncode != 0 or not commit.stdout.strip():
        raise AgainstError(f"--against {reference!r} is not a file, nor a git revision holding "
                           f"{stack_file.name}: {_last_line(commit, 'no such revision')}")
    sha = commit.stdout.decode("ascii", "replace").strip()
    shown = _git(["cat-file", "blob", "--end-of-options", f"{sha}:{relative.as_posix()}"],
                 directory, reference)
    if shown.returncode != 0:
        raise AgainstError(f"--against {reference!r} is not a file, nor a git revision holding "
                           f"{stack_file.name}: {_last_line(shown, 'git cat-file failed')}")
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
    """

    job_id: str
    change: str
    fields: tuple[str, ...]
    tasks: TaskPlan


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
        One line per destructive or one-way change.
    """

    against: str
    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    changed: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    jobs: tuple[JobChanges, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_changes(self) -> bool:
        """True when anything is added, removed or changed."""
        return bool(self.added or self.removed or self.changed
                    or any(job.change != "unchanged" or job.tasks.has_changes
                           for job in self.jobs))


def _ids(task_ids: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(task_ids[:SHOWN_IDS])
    more = len(task_ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _azure_changes(old: StackPreview, new: StackPreview) -> tuple[
        list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str, tuple[str, ...]]]]:
    """Compare the resources that are not jobs or tasks, by type and name."""
    def azure(preview: StackPreview) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["type"], r["name"]): r["inputs"] for r in preview.resources
                if not r["type"].startswith(DYNAMIC_PREFIX)}

    olds, news = azure(old), azure(new)
    added = [key for key in news if key not in olds]
    removed = [key for key in olds if key not in news]
    changed = []
    for key, inputs in news.items():
        if key in olds:
            fields = tuple(sorted(name for name in set(inputs) | set(olds[key])
                                  if not same(olds[key].get(name), inputs.get(name))))
            if fields:
                changed.append((*key, fields))
    return added, removed, changed


def _storage_warnings(old: StackConfig, new: StackConfig) -> list[str]:
    """Warn for containers removed or whose access changes."""
    warnings = []
    old_access = {c.name: c.access for c in old.storage.containers}
    new_access = {c.name: c.access for c in new.storage.containers}
    for name, access in old_access.items():
        if name not in new_access:
            warnings.append(f"container `{name}` is removed: the blob container and every blob "
                            "in it are deleted")
        elif new_access[name] != access:
            warnings.append(f"container `{name}` changes access {access} -> {new_access[name]}: "
                            "the identity's role on it is replaced, and tasks "
                            + ("can no longer write to it" if access == "write"
                               else "may now write to it"))
    return warnings


def _job_changes(job_id: str, old: JobPreview | None, new: JobPreview | None
                 ) -> tuple[JobChanges, list[str]]:
    """Classify one job's change and its tasks', with the warnings they call for."""
    empty: dict[str, Any] = {"tasks": {}}
    old_tasks = old.task_inputs if old else empty
    new_tasks = new.task_inputs if new else empty
    plan = plan_tasks(old_tasks, new_tasks)
    warnings: list[str] = []
    if new is None:
        count = len(old_tasks["tasks"])
        warnings.append(f"job `{job_id}` is removed: it is deleted with its {count} task(s) and "
                        "their files on the nodes")
        return JobChanges(job_id, "removed", (), plan), warnings
    if old is None:
        return JobChanges(job_id, "added", (), plan), warnings
    in_place, replace = job_change(old.inputs, new.inputs)
    running = ("running ones are killed (replaceRunningTasks)"
               if new.inputs.get("replaceRunningTasks")
               else "running ones are refused unless replaceRunningTasks is set")
    if replace:
        kept = tuple(sorted(task_id for task_id in new_tasks["tasks"]
                            if task_id.lower() in {old_id.lower() for old_id in
                                                   old_tasks["tasks"]}))
        fields = dict(plan.changed_fields or {})
        for task_id in kept:
            fields[task_id] = (*fields.get(task_id, ()), "job")
        plan = TaskPlan(plan.added, plan.removed, kept, (), 0, fields)
        warnings.append(f"job `{job_id}` is replaced ({', '.join(replace)} changes): the job is "
                        f"deleted and created anew, and every one of its "
                        f"{len(new_tasks['tasks'])} task(s) is re-run; {running}")
        change, job_fields = "replaced", tuple(replace)
    else:
        change = "updated" if in_place else "unchanged"
        job_fields = tuple(in_place)
        if (completion_mode(old.inputs.get("onAllTasksComplete")) == "terminateJob"
                and completion_mode(new.inputs.get("onAllTasksComplete")) == "noAction"):
            warnings.append(f"job `{job_id}` goes from terminateJob back to noAction: Batch "
                            "refuses that change; keep terminateJob or give the job a new id")
        if not same(old_tasks.get("identityResourceId"), new_tasks.get("identityResourceId")):
            warnings.append(f"job `{job_id}`: the identity changes, so every one of its tasks "
                            "is replaced")
        going = [*plan.replaced, *plan.removed]
        if going:
            warnings.append(f"job `{job_id}`: {len(plan.replaced)} task(s) replaced and "
                            f"{len(plan.removed)} removed ({_ids(going)}): their files on the "
                            f"node are deleted; {running}")
        arriving = [*plan.added, *plan.replaced]
        if arriving and completion_mode(new.inputs.get("onAllTasksComplete")) == "terminateJob":
            warnings.append(f"job `{job_id}` ends itself (terminateJob): if it has already "
                            f"completed, Batch refuses the {len(arriving)} task(s) it would add")
    return JobChanges(job_id, change, job_fields, plan), warnings


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
    warnings = _storage_warnings(old.config, new.config)
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
    return Changes(against, tuple(added), tuple(removed), tuple(changed), tuple(jobs),
                   tuple(warnings))
