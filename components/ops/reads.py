"""Batch reads and writes of the day-two commands; everything else in `ops` is pure.

Status costs, per job: one job read, one task-counts read, one filtered list of the failed tasks
(only when some failed), one filtered list of the preparing tasks (only when some run), and
a list of task ids only when Batch holds a different number of tasks than the job declares.
Lists return up to 1,000 tasks per request, each with only the properties needed (`$select`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.batch import BatchClient
from azure.core.exceptions import HttpResponseError

from batchtasks.batch.client import LIST_PAGE_SIZE, RetryPolicy, call_with_retries
from batchtasks.ops.declared import DeclaredJob
from batchtasks.ops.report import (
    JobReport,
    TaskCounts,
    compare_ids,
    counts_agree,
    failed_task,
    task_counts,
)

T = TypeVar("T")

FAILED_FILTER = "state eq 'completed' and executionInfo/result eq 'failure'"
PREPARING_FILTER = "state eq 'preparing'"
FAILED_SELECT = ["id", "executionInfo", "nodeInfo"]
JOB_SELECT = ["id", "state", "onAllTasksComplete"]
# What `logs` needs of a task: where it ran and where its log upload goes.
TASK_SELECT = ["id", "state", "executionInfo", "nodeInfo", "outputFiles"]


def wire(value: Any) -> str:
    """Return an SDK enum (or plain string) as the service spells it, in lower case."""
    return str(getattr(value, "value", value)).lower()


@dataclass
class Reader:
    """Batch calls of one command run, counting the requests they send.

    Parameters
    ----------
    client
        The Batch client (DefaultAzureCredential, azure-core retries off).
    policy
        Retry budget for throttling and server errors.
    """

    client: BatchClient
    policy: RetryPolicy
    requests: int = 0

    def call(self, operation: Callable[[], T]) -> T:
        """Send one request with retries, counting each attempt."""

        def counted() -> T:
            self.requests += 1
            return operation()

        return call_with_retries(counted, self.policy)

    def list_pages(
        self, job_id: str, *, filter: str | None = None, select: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """List a job's tasks (REST bodies), one counted request per page of 1,000."""

        def pages() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            iterator: Iterator[Any] = self.client.list_tasks(
                job_id,
                filter=filter,
                select=list(select) if select else None,
                max_results=LIST_PAGE_SIZE,
            ).by_page()
            while True:
                self.requests += 1
                try:
                    page = next(iterator)
                except StopIteration:
                    self.requests -= 1  # the iterator ended without sending anything
                    return found
                found.extend(task.as_dict() for task in page)

        return call_with_retries(pages, self.policy)

    def job_state(self, job_id: str) -> str | None:
        """Return a job's state, or None when Batch has no such job."""
        try:
            job = self.call(lambda: self.client.get_job(job_id, select=JOB_SELECT))
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise
        return wire(job.state)

    def counts(self, job_id: str) -> dict[str, Any]:
        """Return the job's taskCounts as the service reports them."""
        result = self.call(lambda: self.client.get_job_task_counts(job_id))
        return dict(result.as_dict().get("taskCounts") or {})

    def task(self, job_id: str, task_id: str) -> dict[str, Any] | None:
        """Return one task's state, execution and node info and output files, or None."""
        try:
            task = self.call(lambda: self.client.get_task(job_id, task_id, select=TASK_SELECT))
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise
        return dict(task.as_dict())

    def failed(self, job_id: str) -> list[dict[str, Any]]:
        """Return the job's failed tasks (id, executionInfo, nodeInfo)."""
        return self.list_pages(job_id, filter=FAILED_FILTER, select=FAILED_SELECT)

    def report(self, job: DeclaredJob, *, check_ids: bool = False) -> JobReport:
        """Read one job's status in as few requests as the counts allow.

        Parameters
        ----------
        job
            The declared job.
        check_ids
            List the task ids even when the counts agree with the declaration.

        Returns
        -------
        JobReport
            The job's state, counts, failures and missing or undeclared tasks.
        """
        before = self.requests
        state = self.job_state(job.id)
        if state is None:
            return JobReport(
                job,
                None,
                TaskCounts(),
                missing=job.task_ids,
                ids_checked=True,
                requests=self.requests - before,
            )
        raw = self.counts(job.id)
        preparing = 0
        if raw.get("running"):
            preparing = len(self.list_pages(job.id, filter=PREPARING_FILTER, select=["id"]))
        counts = task_counts(raw, preparing)
        failures = []
        if counts.failed:
            failures = [failed_task(task, job) for task in self.failed(job.id)]
            failures.sort(key=lambda task: (not task.declared, task.id.lower()))
        missing: tuple[str, ...] = ()
        undeclared: tuple[str, ...] = ()
        checked = check_ids or not counts_agree(job, counts)
        if checked:
            ids = [task["id"] for task in self.list_pages(job.id, select=["id"])]
            missing, undeclared = compare_ids(job, ids)
        return JobReport(
            job,
            state,
            counts,
            missing,
            undeclared,
            checked,
            tuple(failures),
            requests=self.requests - before,
        )
