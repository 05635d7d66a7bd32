"""`batchtasks rerun --failed`: reactivate failed tasks, leaving the declaration and the Pulumi
state untouched (Batch's reactivate keeps each task's id and spec and resets its retry count).

Batch reactivates only failed tasks, and only in a job that has not completed (nor is
terminating or being deleted). A completed job (onAllTasksComplete: terminateJob) cannot take
them back: the way to rerun is a new job, and the command shows that stack-file edit.

Exit codes: 0 done (or nothing to do, or --dry-run), 1 some task was refused or the job cannot
take them, 2 usage (including a refusal to act without --yes when no one can be asked).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from azure.core.exceptions import HttpResponseError

from batchtasks.batch.client import error_code, error_message
from batchtasks.exits import Exit
from batchtasks.ops.declared import DeclaredJob, DeclaredStack
from batchtasks.ops.edit import edit_diff, next_job_id, rename_job
from batchtasks.ops.reads import Reader
from batchtasks.ops.render import plain
from batchtasks.ops.report import ENDED_JOB_STATES, shown_ids

# Reactivations in flight at once.
CONCURRENCY = 8


@dataclass(frozen=True)
class RerunOptions:
    """Which jobs and tasks, and whether to act."""

    job: str | None = None
    tasks: tuple[str, ...] = ()
    dry_run: bool = False
    yes: bool = False


@dataclass
class JobPlan:
    """What rerun would do for one job.

    Attributes
    ----------
    reactivate
        Failed declared tasks to reactivate.
    skipped
        Task -> why it is left alone (not failed, not declared, not found).
    ended
        The job's state when it can take no task back (completed, terminating, deleting).
    """

    job: DeclaredJob
    state: str | None
    reactivate: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """Whether Batch refuses to reactivate anything in this job."""
        return self.state in ENDED_JOB_STATES


def plan_job(reader: Reader, job: DeclaredJob, wanted: Sequence[str]) -> JobPlan:
    """Find a job's failed tasks (one filtered list), narrowed to `wanted` ids if given.

    Parameters
    ----------
    reader
        The Batch reader.
    job
        The declared job.
    wanted
        Task ids asked for with --task (empty: every failed declared task).

    Returns
    -------
    JobPlan
        The tasks to reactivate and the ones left alone, with reasons.
    """
    state = reader.job_state(job.id)
    plan = JobPlan(job, state)
    if state is None:
        return plan
    failed = {task["id"].lower(): task["id"] for task in reader.failed(job.id)}
    if wanted:
        for task_id in wanted:
            if task_id.lower() in failed:
                plan.reactivate.append(failed[task_id.lower()])
            elif not job.has_task(task_id):
                plan.skipped[task_id] = "not declared in the stack file"
            else:
                plan.skipped[task_id] = "has not failed"
        return plan
    for task_id in sorted(failed.values(), key=str.lower):
        if job.has_task(task_id):
            plan.reactivate.append(task_id)
        else:
            plan.skipped[task_id] = "failed, but not declared in the stack file"
    return plan


def completed_job_advice(plan: JobPlan, stack: DeclaredStack) -> str:
    """Explain why a completed job cannot rerun its tasks and show the stack-file edit that does.

    Parameters
    ----------
    plan
        The job's plan (its state is completed, terminating or deleting).
    stack
        The declared stack (for the file and the ids already taken).

    Returns
    -------
    str
        The explanation and a unified diff giving the job a new id.
    """
    job = plan.job
    count = len(plan.reactivate)
    new_id = next_job_id(job.id, [other.id for other in stack.jobs])
    lines = [
        f"job {job.id!r} is {plan.state}: Batch reactivates tasks only in an active job, so "
        f"its {count} failed task(s) cannot run again there ({shown_ids(plan.reactivate)}).",
        f"To rerun, give the job a new id in {stack.path} and run `pulumi up`: the new job "
        f"runs every task the job declares (not only the failed ones), and the update "
        f"deletes job {job.id!r} with its task records (uploaded logs stay in blob storage).",
    ]
    if job.logs is not None:
        lines.append(
            f"Logs go to {job.logs.container}/{job.logs.subdir}/<task>/; if the job "
            "sets logs.subdir, the new job's uploads replace the old ones there, so "
            "change it too to keep both."
        )
    try:
        text = Path(stack.path).read_text(encoding="utf-8")
    except OSError:
        text = ""
    edited = rename_job(text, job.id, new_id) if text else None
    if edited is None:
        lines.append(f"  change the job's `id: {job.id}` to `id: {new_id}`")
    else:
        lines += ["", edit_diff(text, edited, str(stack.path)).rstrip("\n")]
    return "\n".join(lines) + "\n"


def _describe(plans: Sequence[JobPlan]) -> list[str]:
    lines = []
    for plan in plans:
        if plan.state is None:
            lines.append(f"job {plan.job.id!r}: not in Batch (run `pulumi up`)")
            continue
        if plan.reactivate and not plan.ended:
            lines.append(
                f"job {plan.job.id!r}: reactivate {len(plan.reactivate)} failed "
                f"task(s): {shown_ids(plan.reactivate)}"
            )
        elif not plan.reactivate:
            lines.append(f"job {plan.job.id!r}: no failed declared task to rerun")
        for task_id, reason in plan.skipped.items():
            lines.append(f"  {plain(task_id)}: {reason}, left alone")
    return lines


def reactivate(reader: Reader, job_id: str, task_ids: Sequence[str]) -> dict[str, str]:
    """Reactivate tasks; return task -> refusal reason for those Batch refused.

    Parameters
    ----------
    reader
        The Batch reader (its client and retry budget).
    job_id
        The job.
    task_ids
        The failed tasks.

    Returns
    -------
    dict[str, str]
        The refusals (TaskNotCompleted, TaskSucceeded, JobCompleted, ...), by task id.
    """
    refused: dict[str, str] = {}

    def one(task_id: str) -> None:
        try:
            reader.call(lambda: reader.client.reactivate_task(job_id, task_id))
        except HttpResponseError as error:
            code = error_code(error)
            reason = {
                "TaskNotCompleted": "it is running again already (not completed)",
                "TaskSucceeded": "it has succeeded since",
                "TaskNotFound": "it no longer exists",
            }.get(code or "")
            refused[task_id] = reason or plain(error_message(error))

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(one, task_ids))
    return refused


def run_rerun(
    reader: Reader,
    stack: DeclaredStack,
    jobs: Sequence[DeclaredJob],
    options: RerunOptions,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    ask: Callable[[str], bool] | None = None,
) -> int:
    """Plan, confirm and reactivate the failed tasks of the chosen jobs.

    Parameters
    ----------
    reader
        The Batch reader of this run.
    stack
        The declared stack.
    jobs
        The jobs to consider.
    options
        Tasks, --dry-run, --yes.
    out, err
        Where the plan and results, and the refusals, go.
    ask
        Asks the user a yes/no question; None when nobody can be asked (no terminal).

    Returns
    -------
    int
        The exit code (see the module docstring).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    plans = [plan_job(reader, job, options.tasks) for job in jobs]
    for line in _describe(plans):
        print(line, file=out)
    status = Exit.OK
    for plan in plans:
        if plan.ended and plan.reactivate:
            print("", file=out)
            out.write(completed_job_advice(plan, stack))
            status = Exit.FAILED
        if options.tasks and plan.skipped:
            status = Exit.FAILED
    todo = [plan for plan in plans if plan.reactivate and not plan.ended]
    count = sum(len(plan.reactivate) for plan in todo)
    if not todo or options.dry_run:
        if options.dry_run and todo:
            print(f"dry run: {count} task(s) would be reactivated; nothing changed", file=out)
        return status
    if not options.yes:
        if ask is None:
            print(
                f"batchtasks: refusing to reactivate {count} task(s) without --yes: there is "
                "no terminal to ask for confirmation",
                file=err,
            )
            return Exit.USAGE
        if not ask(f"Reactivate {count} task(s)? [y/N] "):
            print("nothing changed", file=out)
            return status
    for plan in todo:
        refused = reactivate(reader, plan.job.id, plan.reactivate)
        done = len(plan.reactivate) - len(refused)
        print(f"job {plan.job.id!r}: reactivated {done} task(s)", file=out)
        for task_id, reason in sorted(refused.items()):
            print(
                f"batchtasks: job {plan.job.id!r}, task {task_id!r} not reactivated: {reason}",
                file=err,
            )
        if refused:
            status = Exit.FAILED
    return status
