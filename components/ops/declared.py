"""What the stack file declares for day two: the endpoint, the jobs and their task ids.

The task ids come from the config loader: a sweep's ids are rendered from its id template with
the same axis values `pulumi up` and `batchtasks preview` use (`JobConfig.task_ids`), so the
ids here are the ids Pulumi submits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from batchtasks.config import JobConfig, StackConfig, load_stack_file

# Blob endpoint of the public Azure cloud; the task's own outputFiles say where logs really went.
BLOB_HOST_SUFFIX = "blob.core.windows.net"
# The files Batch writes for a task's standard streams, one directory above its working dir.
STREAM_FILES = {"stdout": "stdout.txt", "stderr": "stderr.txt"}


@dataclass(frozen=True)
class LogTarget:
    """Where a job's task logs are uploaded: a container and the virtual directory under it."""

    account: str
    container: str
    subdir: str

    def prefix(self, task_id: str) -> str:
        """Return the blob name prefix of one task's logs, e.g. ``weekly/covid-ca``."""
        return PurePosixPath(self.subdir or "", task_id).as_posix()

    def url(self, task_id: str) -> str:
        """Return the declared blob URL of a task's log directory (public Azure cloud)."""
        return f"https://{self.account}.{BLOB_HOST_SUFFIX}/{self.container}/{self.prefix(task_id)}/"


@dataclass(frozen=True)
class DeclaredJob:
    """One job of the stack file: its id, declared task ids in file order, and its log upload."""

    id: str
    task_ids: tuple[str, ...]
    on_all_tasks_complete: str
    logs: LogTarget | None

    def has_task(self, task_id: str) -> bool:
        """Tell whether a task id is declared, ignoring case as Batch does."""
        return task_id.lower() in self.lower_ids

    @cached_property
    def lower_ids(self) -> frozenset[str]:
        """The declared ids in lower case (Batch compares ids ignoring case)."""
        return frozenset(task_id.lower() for task_id in self.task_ids)


@dataclass(frozen=True)
class DeclaredStack:
    """The parts of a stack file the day-two commands use."""

    path: Path
    endpoint: str
    jobs: tuple[DeclaredJob, ...]

    def job(self, job_id: str) -> DeclaredJob | None:
        """Return the declared job with this id, ignoring case as Batch does, or None."""
        return next((job for job in self.jobs if job.id.lower() == job_id.lower()), None)


def _declared_logs(job: JobConfig) -> Iterator[Any]:
    """Yield each task's logs declaration in file order, reading a sweep's first task only:
    its tasks share the sweep's logs (the job's or the sweep's), so one render tells."""
    yield from (task.get("logs") for task in job.tasks)
    for sweep in job.sweeps:
        if sweep.values:
            yield sweep.template.render_key("logs", sweep.values[0])


def _log_target(job: JobConfig, account: str) -> LogTarget | None:
    logs = next((logs for logs in _declared_logs(job) if logs), None)
    if not logs:
        return None
    return LogTarget(account, logs["container"], logs.get("subdir") or "")


def declared_job(job: JobConfig, account: str) -> DeclaredJob:
    """Summarise one validated job for the day-two commands.

    Parameters
    ----------
    job
        The job as the config loader returns it (sweeps expanded).
    account
        The storage account its log container lives in.

    Returns
    -------
    DeclaredJob
        Its id, task ids in file order, completion mode and log upload.
    """
    return DeclaredJob(
        job.id, tuple(job.task_ids()), job.on_all_tasks_complete, _log_target(job, account)
    )


def declared_stack(config: StackConfig, path: Path) -> DeclaredStack:
    """Summarise a validated stack config for the day-two commands.

    Parameters
    ----------
    config
        The validated config.
    path
        The stack file it was read from (named in messages and rerun edits).

    Returns
    -------
    DeclaredStack
        The endpoint and the jobs.
    """
    account = config.storage.account
    return DeclaredStack(
        path, config.batch.endpoint, tuple(declared_job(job, account) for job in config.jobs)
    )


def read_declared(path: Path) -> DeclaredStack:
    """Read and validate a stack file, then summarise it (see `declared_stack`).

    Raises
    ------
    ConfigError
        Listing every problem of the file.
    OSError
        If the file cannot be read.
    """
    return declared_stack(load_stack_file(path), path)
