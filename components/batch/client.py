"""Calls to the Batch data plane: client construction, bounded retries, chunked task collections.

Everything that talks to the service lives here, so the providers only decide *what* to do.
azure-core's own retries are switched off (`retry_total=0`): they re-send POSTs forever on
persistent 5xx and ignore a bare 429, so this module owns the retry budget instead.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from batchtasks.auth import batch_credential
from batchtasks.rules import DURATION_PATTERN, parse_duration

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_TASKS_PER_COLLECTION = 100
# The service rejects collections of 1 MB or more; keep a margin for the JSON envelope.
MAX_COLLECTION_BYTES = 1_000_000 - 16_384
# States in which deleting a task would kill work in progress.
BUSY_STATES = frozenset({"running", "preparing"})
# Tasks per page of a list call (the service's maximum).
LIST_PAGE_SIZE = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry throttled or failing requests before giving up.

    Attributes
    ----------
    max_attempts
        Attempts per request, the first included.
    max_seconds
        Wall-clock budget for one request and its retries.
    base_delay
        First back-off delay in seconds when the service gives no Retry-After; doubles each time.
    max_delay
        Longest single wait, whatever Retry-After says.
    concurrency
        Requests in flight at once for bulk adds, deletes and updates.
    """

    max_attempts: int = 6
    max_seconds: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    concurrency: int = 8

    @classmethod
    def from_inputs(cls, raw: Mapping[str, Any] | None) -> RetryPolicy:
        """Build a policy from a resource's optional `retryPolicy` input (camelCase keys)."""
        if not raw:
            return cls()
        names = {"maxAttempts": "max_attempts", "maxSeconds": "max_seconds",
                 "baseDelay": "base_delay", "maxDelay": "max_delay", "concurrency": "concurrency"}
        values = {names[key]: value for key, value in raw.items() if key in names}
        for key in ("max_attempts", "concurrency"):
            if key in values:
                values[key] = int(values[key])
        return cls(**values)


class BatchOperationError(Exception):
    """A Batch request failed for good; the message names the job, tasks and service error."""


@dataclass
class AddOutcome:
    """What happened to the tasks of one add operation.

    Attributes
    ----------
    added
        Ids now present with the declared body (including ones found already there).
    already_present
        Ids that existed before this call with an equal body (an earlier, interrupted run).
    """

    added: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)


def _wire(state: Any) -> str:
    # str() of the SDK's state enum gives "BatchTaskState.RUNNING"; compare the wire value.
    return str(getattr(state, "value", state))


def make_client(endpoint: str) -> BatchClient:
    """Create a Batch client for one operation, authenticated by identity.

    Parameters
    ----------
    endpoint
        The Batch account endpoint, https://<account>.<region>.batch.azure.com.

    Returns
    -------
    BatchClient
        A client with azure-core retries off; callers retry through `call_with_retries`.
    """
    return BatchClient(endpoint, batch_credential(), retry_total=0)


def error_code(error: HttpResponseError) -> str | None:
    """Return the Batch error code (TaskExists, JobNotFound, ...) carried by a failed response."""
    for source in (getattr(error, "error", None), getattr(error, "model", None)):
        code = getattr(source, "code", None)
        if code:
            return str(code)
    try:
        body = json.loads(error.response.text()) if error.response is not None else {}
    except (ValueError, AttributeError):
        return None
    return body.get("code") if isinstance(body, dict) else None


def error_message(error: Exception) -> str:
    """Return a one-line description of a service error, without request details."""
    if isinstance(error, HttpResponseError):
        message = getattr(getattr(error, "model", None), "message", None)
        text = getattr(message, "value", None) or str(error)
        # The service appends RequestId and Time lines to its message; keep the first line.
        text = text.strip().splitlines()[0] if text.strip() else ""
        return f"{error.status_code} {error_code(error) or ''}: {text}".replace(" :", ":")
    return f"{type(error).__name__}: {error}"


def _retry_after(error: HttpResponseError) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if headers.get(name):
            try:
                return float(headers[name]) / 1000
            except ValueError:
                pass
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def call_with_retries(
    operation: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run one request, retrying throttling, server errors and dropped connections.

    Parameters
    ----------
    operation
        The request to send; called again on each retry.
    policy
        Attempt and time budget.
    sleep
        Waits between attempts (replaceable in tests).

    Returns
    -------
    T
        What the operation returned.

    Raises
    ------
    HttpResponseError, ServiceRequestError, ServiceResponseError
        The last error, once it is not retryable or the budget is spent.
    """
    deadline = time.monotonic() + policy.max_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except HttpResponseError as error:
            if error.status_code not in RETRYABLE_STATUS or attempt >= policy.max_attempts:
                raise
            delay = _retry_after(error)
            last: Exception = error
        except (ServiceRequestError, ServiceResponseError) as error:
            # A dropped connection may hide a committed write; callers handle the
            # "already exists" that the retry can then meet.
            if attempt >= policy.max_attempts:
                raise
            delay = None
            last = error
        if delay is None:
            delay = policy.base_delay * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
        delay = min(delay, policy.max_delay)
        if time.monotonic() + delay > deadline:
            # Name the service's last answer: it is what the user needs to act on.
            raise TimeoutError(f"gave up after {attempt} attempts and {policy.max_seconds:g} s, "
                               f"last error {error_message(last)}") from last
        sleep(delay)


def _normalised(value: Any) -> Any:
    """Make service and declared values comparable: durations as timedeltas, enums any case."""
    if isinstance(value, str) and DURATION_PATTERN.fullmatch(value):
        return parse_duration(value)
    if isinstance(value, str) and value.isalpha():
        return value.lower()
    return value


def body_matches(declared: Any, existing: Any) -> bool:
    """Tell whether a task on the service carries everything a declared body says.

    The service adds fields of its own (state, url, defaults), so every declared key must be
    present and equal, and extra keys on the service side are ignored.
    """
    if isinstance(declared, Mapping):
        return isinstance(existing, Mapping) and all(
            key in existing and body_matches(value, existing[key])
            for key, value in declared.items()
        )
    if isinstance(declared, list):
        return (isinstance(existing, list) and len(declared) == len(existing)
                and all(body_matches(a, b) for a, b in zip(declared, existing, strict=True)))
    return _normalised(declared) == _normalised(existing)


def chunk_bodies(bodies: Iterable[Mapping[str, Any]], max_count: int = MAX_TASKS_PER_COLLECTION,
                 max_bytes: int = MAX_COLLECTION_BYTES) -> Iterator[list[Mapping[str, Any]]]:
    """Split task bodies into add-collection requests within the service's count and size limits.

    Parameters
    ----------
    bodies
        REST bodies of the tasks to add.
    max_count
        Most tasks in one request.
    max_bytes
        Most JSON bytes in one request.

    Returns
    -------
    Iterator[list]
        Chunks in the input order.
    """
    chunk: list[Mapping[str, Any]] = []
    size = 0
    for body in bodies:
        body_size = len(json.dumps(body, separators=(",", ":"))) + 1
        if chunk and (len(chunk) >= max_count or size + body_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(body)
        size += body_size
    if chunk:
        yield chunk


class TaskWriter:
    """The task operations one provider call makes against one job.

    Parameters
    ----------
    client
        The Batch client of this operation.
    job_id
        The job the tasks belong to.
    policy
        Retry and concurrency budget.
    """

    def __init__(self, client: BatchClient, job_id: str, policy: RetryPolicy) -> None:
        self.client = client
        self.job_id = job_id
        self.policy = policy

    def _call(self, operation: Callable[[], T]) -> T:
        return call_with_retries(operation, self.policy)

    def _map(self, function: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        items = list(items)
        if len(items) <= 1 or self.policy.concurrency <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.policy.concurrency) as pool:
            return list(pool.map(function, items))

    def _fail(self, what: str, task_ids: Sequence[str], error: Exception) -> BatchOperationError:
        shown = ", ".join(sorted(task_ids)[:20]) + (" ..." if len(task_ids) > 20 else "")
        code = error_code(error) if isinstance(error, HttpResponseError) else None
        hint = ""
        if code == "JobCompleted":
            hint = (" Batch accepts no tasks in a completed job (onAllTasksComplete: terminateJob"
                    " ends it once its tasks finish); give the job a new id to run again.")
        elif code == "JobNotFound":
            hint = " The job does not exist; run `pulumi refresh` so it is created again."
        return BatchOperationError(
            f"job {self.job_id!r}: {what} failed for {len(task_ids)} task(s) [{shown}]: "
            f"{error_message(error).rstrip('.')}.{hint}"
        )

    def task_states(self, task_ids: Sequence[str] | None = None,
                    at_least: int = 0) -> dict[str, str]:
        """Return task states keyed by lower-case id.

        Parameters
        ----------
        task_ids
            The tasks that matter, or None for all of the job's.
        at_least
            How many tasks the job holds at least; listing them costs one request per
            LIST_PAGE_SIZE, so a few tasks are read one by one when that is fewer requests.

        Returns
        -------
        dict[str, str]
            Lower-case id -> state; a task that does not exist is absent.
        """
        if task_ids is not None and len(task_ids) <= at_least // LIST_PAGE_SIZE:
            found = self._map(self._state_of, list(task_ids))
            return {task_id.lower(): state for task_id, state in zip(task_ids, found, strict=True)
                    if state is not None}
        tasks = self._call(
            lambda: list(self.client.list_tasks(self.job_id, select=["id", "state"])))
        return {task.id.lower(): _wire(task.state) for task in tasks}

    def _state_of(self, task_id: str) -> str | None:
        try:
            task = self._call(lambda: self.client.get_task(self.job_id, task_id,
                                                           select=["id", "state"]))
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise
        return _wire(task.state)

    def existing_tasks(self, select: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Return the REST bodies of every task in the job (only `select`ed properties, if
        given), keyed by lower-case id."""
        fields = list(select) if select else None
        tasks = self._call(lambda: list(self.client.list_tasks(self.job_id, select=fields)))
        return {task.id.lower(): task.as_dict() for task in tasks}

    def add(self, bodies: Iterable[dict[str, Any]]) -> AddOutcome:
        """Add tasks in chunked collections; tasks already there with the same body count as added.

        Chunks are sent as soon as they are full, so building the next bodies (when `bodies` is
        a generator) overlaps with the requests in flight.

        Parameters
        ----------
        bodies
            REST bodies of the tasks to add.

        Returns
        -------
        AddOutcome
            The ids added and those found already present.

        Raises
        ------
        BatchOperationError
            Naming the job, the tasks not added and the last service error.
        """
        outcome = AddOutcome()
        conflicts: list[dict[str, Any]] = []
        failures: list[tuple[list[str], Exception]] = []
        refusals: list[BatchOperationError] = []

        def add_chunk(chunk: list[dict[str, Any]]) -> None:
            try:
                self._add_chunk(chunk, outcome, conflicts)
            except BatchOperationError as error:
                # Already names the job and only those tasks of the chunk that were not added.
                refusals.append(error)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError,
                    TimeoutError) as error:
                failures.append(([body["id"] for body in chunk], error))

        with ThreadPoolExecutor(max_workers=max(1, self.policy.concurrency)) as pool:
            sent = [pool.submit(add_chunk, chunk) for chunk in chunk_bodies(bodies)]
        for future in sent:
            future.result()  # anything add_chunk did not expect surfaces here
        problems = [str(error) for error in refusals]
        if failures:
            ids = [task_id for chunk_ids, _ in failures for task_id in chunk_ids]
            problems.insert(0, str(self._fail("adding tasks", ids, failures[-1][1])))
        if problems:
            raise BatchOperationError(" ".join(problems))
        if conflicts:
            self._settle_conflicts(conflicts, outcome)
        return outcome

    def _add_chunk(self, chunk: list[dict[str, Any]], outcome: AddOutcome,
                   conflicts: list[dict[str, Any]]) -> None:
        remaining = {body["id"].lower(): body for body in chunk}
        deadline = time.monotonic() + self.policy.max_seconds
        attempt = 0
        while remaining:
            attempt += 1
            # The bodies are already BatchTaskCreateOptions.as_dict() output; the operation
            # serialises its argument as JSON, so the REST shape of BatchTaskGroup goes as is
            # rather than through a second round of model objects per task.
            group = {"value": list(remaining.values())}
            try:
                result = self._call(lambda group=group: self.client.create_task_collection(
                    self.job_id, group))
            except HttpResponseError as error:
                if error.status_code == 413 and len(remaining) > 1:
                    # Halve and send each half on its own.
                    bodies = list(remaining.values())
                    half = len(bodies) // 2
                    self._add_chunk(bodies[:half], outcome, conflicts)
                    self._add_chunk(bodies[half:], outcome, conflicts)
                    return
                raise
            server_errors: list[str] = []
            client_errors: list[str] = []
            for item in result.result_values or []:
                key = item.task_id.lower()
                body = remaining.get(key)
                if body is None:
                    continue
                if item.status == "success":
                    outcome.added.append(body["id"])
                    del remaining[key]
                elif item.error is not None and item.error.code == "TaskExists":
                    conflicts.append(body)
                    del remaining[key]
                elif item.status == "servererror":
                    server_errors.append(f"{item.task_id}: {item.error.code if item.error else ''}")
                else:
                    code = item.error.code if item.error else "unknown"
                    text = getattr(getattr(item.error, "message", None), "value", "")
                    client_errors.append(f"{item.task_id}: {code} {text}".strip())
            if client_errors:
                raise BatchOperationError(
                    f"job {self.job_id!r}: the service refused {len(client_errors)} task(s): "
                    + "; ".join(client_errors[:20]))
            if remaining and (attempt >= self.policy.max_attempts
                              or time.monotonic() > deadline):
                raise BatchOperationError(
                    f"job {self.job_id!r}: {len(remaining)} task(s) not added after {attempt} "
                    f"attempts [{', '.join(sorted(b['id'] for b in remaining.values())[:20])}]: "
                    f"last error {server_errors[-1] if server_errors else 'none reported'}")
            if remaining:
                time.sleep(min(self.policy.base_delay * 2 ** (attempt - 1), self.policy.max_delay))

    def _settle_conflicts(self, conflicts: list[dict[str, Any]], outcome: AddOutcome) -> None:
        """Compare tasks that already existed with their declared bodies (a lost response, or an
        earlier interrupted run): equal counts as added, different is an error."""
        if len(conflicts) == 1:
            task_id = conflicts[0]["id"]
            live = {task_id.lower(): self._call(
                lambda: self.client.get_task(self.job_id, task_id)).as_dict()}
        else:
            live = self.existing_tasks()
        different = [body["id"] for body in conflicts
                     if not body_matches(body, live.get(body["id"].lower(), {}))]
        if different:
            raise BatchOperationError(
                f"job {self.job_id!r}: task(s) already exist with a different definition: "
                f"{', '.join(sorted(different)[:20])}. Batch cannot change a task in place; "
                "delete them (or run `pulumi refresh`) and run again.")
        for body in conflicts:
            outcome.added.append(body["id"])
            outcome.already_present.append(body["id"])

    def delete(self, task_ids: Sequence[str]) -> None:
        """Delete tasks; ones already gone are fine.

        Raises
        ------
        BatchOperationError
            When a delete fails for good.
        """
        failures: list[tuple[str, Exception]] = []

        def delete_one(task_id: str) -> None:
            try:
                self._call(lambda: self.client.delete_task(self.job_id, task_id))
            except HttpResponseError as error:
                if error.status_code != 404:
                    failures.append((task_id, error))
            except (ServiceRequestError, ServiceResponseError, TimeoutError) as error:
                failures.append((task_id, error))

        self._map(delete_one, task_ids)
        if failures:
            raise self._fail("deleting tasks", [t for t, _ in failures], failures[-1][1])

    def update_constraints(self, constraints_by_id: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the constraints of existing tasks, the one change Batch allows in place.

        Raises
        ------
        BatchOperationError
            When an update fails for good.
        """
        failures: list[tuple[str, Exception]] = []

        def update_one(item: tuple[str, Mapping[str, Any]]) -> None:
            task_id, constraints = item
            task = batch_models.BatchTask({"constraints": dict(constraints)})
            try:
                self._call(lambda: self.client.replace_task(self.job_id, task_id, task))
            except (HttpResponseError, ServiceRequestError, ServiceResponseError,
                    TimeoutError) as error:
                failures.append((task_id, error))

        self._map(update_one, list(constraints_by_id.items()))
        if failures:
            raise self._fail("updating constraints", [t for t, _ in failures], failures[-1][1])
