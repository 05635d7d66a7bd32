"""What status reports about each job, computed from what Batch said: no I/O here.

`reads` fetches the facts (a job's state, its task counts, its failed tasks, and its task ids
only when the counts disagree with the declaration); this module turns them into a
`JobReport`, and `StackReport` says whether a wait is over and how it ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchtasks.ops.declared import DeclaredJob

# Job states in which no task will run again (terminating ends in completed).
ENDED_JOB_STATES = frozenset({"completed", "terminating", "deleting"})
# Shown ids of missing or undeclared tasks; the counts are always exact.
SHOWN_IDS = 20


@dataclass(frozen=True)
class TaskCounts:
    """Tasks by state, as Batch counts them; `preparing` is split out of Batch's `running`."""

    active: int = 0
    preparing: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def completed(self) -> int:
        """Tasks that have finished, either way."""
        return self.succeeded + self.failed

    @property
    def total(self) -> int:
        """Every task Batch holds for the job."""
        return self.active + self.preparing + self.running + self.completed

    @property
    def incomplete(self) -> int:
        """Tasks still waiting or running."""
        return self.active + self.preparing + self.running


@dataclass(frozen=True)
class FailedTask:
    """A task that completed with a failure, as its executionInfo and nodeInfo report it.

    Attributes
    ----------
    exit_code
        The process exit code, or None when the task failed before running (a pre-processing
        or upload failure, say).
    category, code, message
        The failureInfo of the service (category ``usererror`` or ``servererror``).
    retries
        Retries used (executionInfo.retryCount).
    node
        The node of the last attempt (nodeInfo.nodeId), if any.
    start, end
        Start and end of the last attempt, ISO 8601 text.
    declared
        Whether the stack file declares this task.
    """

    id: str
    exit_code: int | None
    category: str | None
    code: str | None
    message: str | None
    retries: int
    node: str | None
    start: str | None
    end: str | None
    declared: bool = True


@dataclass(frozen=True)
class JobReport:
    """One job as status shows it.

    Attributes
    ----------
    state
        The job's Batch state, or None when the job does not exist in Batch.
    counts
        Tasks by state (all zero when the job does not exist).
    missing, undeclared
        Declared task ids Batch does not hold, and ids Batch holds that the stack file does
        not declare. Exact when `ids_checked`; otherwise the counts agreed with the
        declaration and both are taken to be empty.
    ids_checked
        Whether the task ids were listed (done only when the counts disagree, or on request).
    failures
        The failed tasks, declared ones first.
    requests
        Batch requests this read of the job took.
    """

    job: DeclaredJob
    state: str | None
    counts: TaskCounts
    missing: tuple[str, ...] = ()
    undeclared: tuple[str, ...] = ()
    ids_checked: bool = False
    failures: tuple[FailedTask, ...] = ()
    requests: int = 0

    @property
    def id(self) -> str:
        """The job id."""
        return self.job.id

    @property
    def declared(self) -> int:
        """How many tasks the stack file declares for the job."""
        return len(self.job.task_ids)

    @property
    def done(self) -> bool:
        """Whether nothing more will happen: every task ended, or the job cannot run more."""
        # Declared tasks missing from Batch will never run: they make the result a failure,
        # not a longer wait.
        return self.state is None or self.state in ENDED_JOB_STATES or (self.counts.incomplete == 0)

    @property
    def succeeded(self) -> bool:
        """Whether every declared task exists and succeeded."""
        return (
            self.state is not None
            and not self.missing
            and self.counts.failed == 0
            and self.counts.incomplete == 0
            and self.counts.succeeded >= self.declared
        )

    def problems(self) -> list[str]:
        """Return why this job has not (fully) succeeded, one line each, for summaries."""
        lines = []
        if self.state is None:
            lines.append(f"job {self.id!r} does not exist in Batch (run `pulumi up`)")
            return lines
        if self.counts.failed:
            lines.append(f"job {self.id!r}: {self.counts.failed} task(s) failed")
        if self.missing:
            lines.append(
                f"job {self.id!r}: {len(self.missing)} declared task(s) missing from "
                f"Batch: {shown_ids(self.missing)}"
            )
        if self.state in ENDED_JOB_STATES and self.counts.incomplete:
            lines.append(
                f"job {self.id!r} is {self.state} with {self.counts.incomplete} "
                "task(s) that never completed"
            )
        return lines


def shown_ids(ids: Sequence[str], limit: int = SHOWN_IDS) -> str:
    """Return ids joined for a message, the first `limit` of them and how many more."""
    head = ", ".join(ids[:limit])
    return head if len(ids) <= limit else f"{head} and {len(ids) - limit} more"


def task_counts(raw: Any, preparing: int = 0) -> TaskCounts:
    """Build counts from Batch's taskCounts (active, running, completed, succeeded, failed).

    Parameters
    ----------
    raw
        The ``taskCounts`` object (a mapping or the SDK's model).
    preparing
        How many of Batch's `running` tasks are in fact preparing (Batch counts them together).

    Returns
    -------
    TaskCounts
        The counts.
    """

    def value(name: str) -> int:
        found = raw.get(name) if hasattr(raw, "get") else getattr(raw, name, 0)
        return int(found or 0)

    running = value("running")
    preparing = min(preparing, running)
    return TaskCounts(
        value("active"), preparing, running - preparing, value("succeeded"), value("failed")
    )


def failed_task(raw: dict[str, Any], job: DeclaredJob) -> FailedTask:
    """Build a FailedTask from a task's REST body (id, executionInfo, nodeInfo).

    Parameters
    ----------
    raw
        The task as the service returns it, camelCase.
    job
        Its declared job, to tell whether the task is declared.

    Returns
    -------
    FailedTask
        Its exit code, failure info, retries, node and times.
    """
    info = raw.get("executionInfo") or {}
    failure = info.get("failureInfo") or {}
    exit_code = info.get("exitCode")
    return FailedTask(
        id=raw["id"],
        exit_code=int(exit_code) if exit_code is not None else None,
        category=failure.get("category"),
        code=failure.get("code"),
        message=failure.get("message"),
        retries=int(info.get("retryCount") or 0),
        node=(raw.get("nodeInfo") or {}).get("nodeId"),
        start=info.get("startTime"),
        end=info.get("endTime"),
        declared=job.has_task(raw["id"]),
    )


def compare_ids(
    job: DeclaredJob, present: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (declared ids Batch lacks, ids Batch has that are not declared), ignoring case.

    Parameters
    ----------
    job
        The declared job.
    present
        The task ids Batch lists for it.

    Returns
    -------
    tuple
        Missing ids in declaration order; undeclared ids sorted.
    """
    present_ids = list(present)
    lower = {task_id.lower() for task_id in present_ids}
    missing = tuple(task_id for task_id in job.task_ids if task_id.lower() not in lower)
    undeclared = tuple(sorted(task_id for task_id in present_ids if not job.has_task(task_id)))
    return missing, undeclared


def counts_agree(job: DeclaredJob, counts: TaskCounts) -> bool:
    """Tell whether Batch holds as many tasks as the job declares.

    When it does, listing the ids (one request per 1,000 tasks) is skipped: a missing task and
    an undeclared one would have to cancel out exactly, which only happens when tasks were added
    or deleted outside the stack file.
    """
    return counts.total == len(job.task_ids)


@dataclass(frozen=True)
class StackReport:
    """Every job of one status read, with the requests it took."""

    jobs: tuple[JobReport, ...]
    requests: int = field(default=0)

    @property
    def done(self) -> bool:
        """Whether every job is done (see `JobReport.done`)."""
        return all(job.done for job in self.jobs)

    @property
    def succeeded(self) -> bool:
        """Whether every declared task of every job succeeded."""
        return all(job.succeeded for job in self.jobs)

    def problems(self) -> list[str]:
        """Return the failure summary, one line per problem."""
        return [line for job in self.jobs for line in job.problems()]
