"""Calls to the Batch data plane: client construction, bounded retries, chunked task collections.

Everything that talks to the service lives here, so the providers only decide *what* to do.
azure-core's own retries are switched off (`retry_total=0`): they re-send POSTs forever on
persistent 5xx and ignore a bare 429, so this module owns the retry budget instead.
"""

from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ServiceRequestError,
    ServiceResponseError,
    map_error,
)
from azure.core.rest import HttpRequest
from requests.utils import get_environ_proxies

from batchtasks.auth import batch_credential
from batchtasks.batch import sdk_compat
from batchtasks.batch.template import encode_body
from batchtasks.clock import SYSTEM_CLOCK, Clock
from batchtasks.rules import duration_ticks

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_TASKS_PER_COLLECTION = 100
# The service refuses an add-collection request body of 1 MB or more (413 RequestBodyTooLarge);
# counted in bytes of the body exactly as sent, staying under 1,000,000.
MAX_COLLECTION_BYTES = 1_000_000 - 1
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
    poll_interval
        Seconds between two looks at something the service is still doing (a job deleting).
    clock
        What every wait and deadline of this policy reads (the system's; a fake one in tests).
    """

    max_attempts: int = 6
    max_seconds: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    concurrency: int = 8
    poll_interval: float = 2.0
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False, repr=False)

    @classmethod
    def from_inputs(cls, raw: Mapping[str, Any] | None, clock: Clock = SYSTEM_CLOCK) -> RetryPolicy:
        """Build a policy from a resource's optional `retryPolicy` input (camelCase keys).

        Parameters
        ----------
        raw
            The input: maxAttempts, maxSeconds, baseDelay, maxDelay, concurrency, pollInterval,
            each optional; None or empty for the defaults.
        clock
            The clock the policy's waits use.

        Returns
        -------
        RetryPolicy
            The policy.
        """
        names = {
            "maxAttempts": "max_attempts",
            "maxSeconds": "max_seconds",
            "baseDelay": "base_delay",
            "maxDelay": "max_delay",
            "concurrency": "concurrency",
            "pollInterval": "poll_interval",
        }
        values = {names[key]: value for key, value in (raw or {}).items() if key in names}
        for key in ("max_attempts", "concurrency"):
            if key in values:
                values[key] = int(values[key])
        return cls(**values, clock=clock)


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
    different
        Id -> the service's body, for tasks that existed with a different body (not added).
    """

    added: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    different: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    return BatchClient(endpoint, batch_credential(), retry_total=0, **transport_settings(endpoint))


def transport_settings(endpoint: str) -> dict[str, Any]:
    """Read the proxy and CA settings requests takes from the environment, once per operation.

    requests reads them again for every request (it scans the whole environment twice, about a
    tenth of a request's client CPU in a 100-request add). The settings are requests' own: its
    proxies for the endpoint (HTTPS_PROXY, NO_PROXY and the rest) and REQUESTS_CA_BUNDLE, then
    CURL_CA_BUNDLE, for verification. Nothing is read from ~/.netrc, whose basic credentials
    requests would otherwise put in place of the bearer token.

    Parameters
    ----------
    endpoint
        The Batch account endpoint.

    Returns
    -------
    dict
        Keyword arguments for the client: `use_env_settings` off, `proxies` and
        `connection_verify`.
    """
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return {
        "use_env_settings": False,
        "proxies": get_environ_proxies(endpoint) or None,
        "connection_verify": bundle or True,
    }


def error_code(error: HttpResponseError) -> str | None:
    """Return the Batch error code (TaskExists, JobNotFound, ...) carried by a failed response."""
    for source in (getattr(error, "error", None), getattr(error, "model", None)):
        code = getattr(source, "code", None)
        if code:
            return str(code)
    body = _error_body(error)
    return body.get("code") if body else None


def _error_body(error: HttpResponseError) -> dict[str, Any] | None:
    """Return the JSON error body of a failed response, or None."""
    try:
        body = json.loads(error.response.text()) if error.response is not None else None
    except (ValueError, AttributeError, TypeError, AzureError):
        # AzureError: a streamed response (a task file download) whose body was never read.
        return None
    return body if isinstance(body, dict) else None


def _first_line(text: Any) -> str:
    # The service appends RequestId and Time lines to its message; keep the first line.
    text = str(text or "").strip()
    return text.splitlines()[0].strip() if text else ""


def describe_batch_error(code: Any, message: Any, values: Any) -> str:
    """Return one line for a Batch error: its code, message and detail values.

    Parameters
    ----------
    code
        The service's error code (TaskExists, InvalidPropertyValue, ...), or None.
    message
        The message text, or an object with a `value` (the SDK's BatchErrorMessage), or None.
    values
        The detail values: BatchErrorDetail models or `{"key", "value"}` mappings, or None.

    Returns
    -------
    str
        For example `InvalidPropertyValue: The value provided for one of the properties in
        the request body is invalid. (PropertyName: commandLine; Reason: too long)`.
    """
    text = _first_line(getattr(message, "value", message) if message is not None else "")
    details = []
    for item in values or ():
        key = item.get("key") if isinstance(item, Mapping) else getattr(item, "key", None)
        value = item.get("value") if isinstance(item, Mapping) else getattr(item, "value", None)
        if key or value:
            details.append(f"{key}: {_first_line(value)}")
    line = f"{code or 'error'}: {text}" if text else str(code or "error")
    return f"{line} ({'; '.join(details)})" if details else line


def error_message(error: BaseException) -> str:
    """Return a one-line description of a service error: status, code, message and detail
    values, without request ids or azure-core's own wording."""
    if isinstance(error, HttpResponseError):
        model = getattr(error, "model", None)
        body = _error_body(error) or {}
        code = error_code(error)
        message = getattr(model, "message", None) or body.get("message")
        values = getattr(model, "error_values", None) or body.get("values")
        if message is None and code is None:
            # No Batch error body (a proxy, a gateway): the reason phrase is all there is.
            return f"{error.status_code} {_first_line(getattr(error, 'reason', '')) or 'error'}"
        return f"{error.status_code} {describe_batch_error(code, message, values)}"
    if isinstance(error, BatchOperationError | TimeoutError):
        return str(error)
    # Connection failures: azure-core's text names the host and the socket error, one line.
    return f"{type(error).__name__}: {_first_line(error)}"


# Codes meaning what a delete wanted is already so (or under way).
GONE_CODES = frozenset({"JobNotFound", "TaskNotFound", "JobBeingDeleted"})


def is_gone(error: BaseException) -> bool:
    """Tell whether a failed request says its job or task is gone or being deleted."""
    return isinstance(error, HttpResponseError) and (
        error.status_code == 404 or error_code(error) in GONE_CODES
    )


SERVICE_ERRORS = (HttpResponseError, ServiceRequestError, ServiceResponseError, TimeoutError)


def operation_error(
    job_id: Any, what: str, error: BaseException, task_ids: Sequence[str] = ()
) -> BatchOperationError:
    """Return the error a user sees for a failed operation: the job, the tasks, what failed,
    the service's code, message and detail values, and what to do where that is known.

    Parameters
    ----------
    job_id
        The job the operation was on.
    what
        What was being done, e.g. "adding tasks".
    error
        The service or connection error.
    task_ids
        The tasks the failure leaves not done.

    Returns
    -------
    BatchOperationError
        To raise `from None`: azure-core's text and request ids stay out of the message.
    """
    code = error_code(error) if isinstance(error, HttpResponseError) else None
    hint = ""
    if code == "JobCompleted":
        hint = (
            " Batch accepts no tasks in a completed job (onAllTasksComplete: terminateJob"
            " ends it once its tasks finish); give the job a new id to run again."
        )
    elif code == "JobNotFound":
        hint = " The job does not exist; run `pulumi refresh` so it is created again."
    elif code == "JobBeingDeleted":
        hint = " The job is being deleted; wait until it is gone, then run again."
    tasks = f" for {len(task_ids)} task(s) [{shown_ids(task_ids)}]" if task_ids else ""
    return BatchOperationError(
        f"job {job_id!r}: {what} failed{tasks}: {error_message(error).rstrip('.')}.{hint}"
    )


def shown_ids(task_ids: Iterable[str], limit: int = 20) -> str:
    """Return sorted ids for a message, the first `limit` of them and `...` for the rest."""
    ordered = sorted(task_ids)
    return ", ".join(ordered[:limit]) + (" ..." if len(ordered) > limit else "")


@contextmanager
def service_errors(job_id: Any, what: str, task_ids: Sequence[str] = ()) -> Iterator[None]:
    """Turn a service or connection error raised inside into a BatchOperationError naming
    the job, the tasks and the service's answer (see `operation_error`)."""
    try:
        yield
    except SERVICE_ERRORS as error:
        raise operation_error(job_id, what, error, task_ids) from None


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


def call_with_retries(operation: Callable[[], T], policy: RetryPolicy) -> T:
    """Run one request, retrying throttling, server errors and dropped connections.

    Parameters
    ----------
    operation
        The request to send; called again on each retry.
    policy
        Attempt and time budget, and the clock the waits between attempts use.

    Returns
    -------
    T
        What the operation returned.

    Raises
    ------
    HttpResponseError, ServiceRequestError, ServiceResponseError
        The last error, once it is not retryable or the budget is spent.
    """
    clock = policy.clock
    deadline = clock.monotonic() + policy.max_seconds
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
        if clock.monotonic() + delay > deadline:
            # Name the service's last answer: it is what the user needs to act on.
            raise TimeoutError(
                f"gave up after {attempt} attempts and {policy.max_seconds:g} s, "
                f"last error {error_message(last)}"
            ) from last
        clock.sleep(delay)


def _normalised(value: Any) -> Any:
    """Make service and declared values comparable: durations as exact ticks (so no length
    overflows), enums any case."""
    ticks = duration_ticks(value) if isinstance(value, str) else None
    if ticks is not None:
        return ("duration", ticks)
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
        return (
            isinstance(existing, list)
            and len(declared) == len(existing)
            and all(body_matches(a, b) for a, b in zip(declared, existing, strict=True))
        )
    return _normalised(declared) == _normalised(existing)


@dataclass(frozen=True)
class EncodedTask:
    """One task body as the bytes an add-collection request carries.

    Attributes
    ----------
    task_id
        The task's id.
    data
        Its REST body as compact JSON (`template.encode_body`), ASCII.
    """

    task_id: str
    data: bytes

    def body(self) -> dict[str, Any]:
        """Return the body as a dict (to compare with a task the service holds)."""
        return dict(json.loads(self.data))


def encode_task(body: Mapping[str, Any] | EncodedTask) -> EncodedTask:
    """Return a task body as the bytes sent (an already encoded one as it is)."""
    if isinstance(body, EncodedTask):
        return body
    return EncodedTask(str(body["id"]), encode_body(body).encode("ascii"))


# The add-collection body around its tasks' bytes: {"value":[<task>,<task>,...]}.
_COLLECTION_HEAD, _COLLECTION_SEPARATOR, _COLLECTION_TAIL = b'{"value":[', b",", b"]}"


def collection_body(encoded_tasks: Sequence[bytes]) -> bytes:
    """Return the exact request body of an add-collection call for encoded task bodies.

    Parameters
    ----------
    encoded_tasks
        Task bodies (`EncodedTask.data`), in request order.

    Returns
    -------
    bytes
        The body sent (the service's size limit applies to its length).
    """
    return _COLLECTION_HEAD + _COLLECTION_SEPARATOR.join(encoded_tasks) + _COLLECTION_TAIL


def collection_size(count: int, task_bytes: int) -> int:
    """Return `len(collection_body(...))` of `count` encoded task bodies totalling
    `task_bytes`, without building it."""
    separators = len(_COLLECTION_SEPARATOR) * max(0, count - 1)
    return len(_COLLECTION_HEAD) + task_bytes + separators + len(_COLLECTION_TAIL)


def chunk_bodies(
    bodies: Iterable[Mapping[str, Any] | EncodedTask],
    max_count: int = MAX_TASKS_PER_COLLECTION,
    max_bytes: int = MAX_COLLECTION_BYTES,
) -> Iterator[list[EncodedTask]]:
    """Split task bodies into add-collection requests within the service's count and size limits.

    Parameters
    ----------
    bodies
        REST bodies of the tasks to add, as dicts or already encoded.
    max_count
        Most tasks in one request.
    max_bytes
        Most bytes in one request body as sent (see `collection_body`).

    Returns
    -------
    Iterator[list[EncodedTask]]
        Chunks in the input order. A single task too big for any request goes alone and meets
        the service's 413, which names it.
    """
    chunk: list[EncodedTask] = []
    task_bytes = 0
    for body in bodies:
        encoded = encode_task(body)
        size = len(encoded.data)
        if chunk and (
            len(chunk) >= max_count
            or collection_size(len(chunk) + 1, task_bytes + size) > max_bytes
        ):
            yield chunk
            chunk, task_bytes = [], 0
        chunk.append(encoded)
        task_bytes += size
    if chunk:
        yield chunk


# What the SDK's create_task_collection and list_tasks raise for these statuses (their map).
_COLLECTION_ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}
_COLLECTION_CONTENT_TYPE = "application/json; odata=minimalmetadata"


def post_task_collection(client: BatchClient, job_id: str, payload: bytes) -> list[Any]:
    """Send one add-collection request as bytes through the client's own pipeline.

    The request is the one the SDK's `create_task_collection` builds (its request builder, the
    client's api-version, credential and policies, and no retries of its own: see
    `make_client`), with the body given as the exact bytes to send; the answer is read as the
    service's JSON, without building a model object per task.

    Parameters
    ----------
    client
        The Batch client of this operation.
    job_id
        The job to add the tasks to.
    payload
        The request body (`collection_body`).

    Returns
    -------
    list
        The per-task results (`taskId`, `status`, `error`) as the service sent them.

    Raises
    ------
    HttpResponseError
        As the SDK raises it for a failed request (with the service's BatchError as `model`).
    """
    request = sdk_compat.task_collection_request(client, job_id, _COLLECTION_CONTENT_TYPE, payload)
    results = _sent(client, request).get("value")
    return results if isinstance(results, list) else []


def _sent(client: BatchClient, request: HttpRequest) -> dict[str, Any]:
    """Send a request through the client's pipeline; return its JSON answer, or raise what the
    SDK raises for a failed one (with the service's BatchError as `model`)."""
    response = client.send_request(request)
    if response.status_code != 200:
        map_error(
            status_code=response.status_code, response=response, error_map=_COLLECTION_ERROR_MAP
        )
        try:
            model = batch_models.BatchError(response.json())
        except (ValueError, TypeError):
            model = None
        raise HttpResponseError(response=response, model=model)
    answer = response.json()
    return answer if isinstance(answer, dict) else {}


def list_task_bodies(
    client: BatchClient,
    job_id: str,
    *,
    filter: str | None = None,
    select: Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield a job's tasks as the service's JSON bodies, page by page (the service's pages of
    up to LIST_PAGE_SIZE), without the SDK's model object per task: building one and turning
    it back into a dict costs about 70 us a task, most of a page's time, and a sharded sweep
    lists its whole job in every shard's create and refresh.

    Parameters
    ----------
    client
        The Batch client of this operation.
    job_id
        The job whose tasks are listed.
    filter, select
        `$filter` and `$select`, as `list_tasks` takes them.

    Yields
    ------
    dict
        One task's REST body (camelCase keys, as `BatchTask.as_dict()` has them).

    Raises
    ------
    HttpResponseError
        As the SDK's `list_tasks` raises it (ResourceNotFoundError for a missing job).
    """
    request: HttpRequest | None = sdk_compat.list_tasks_request(
        client, job_id, filter=filter, select=select
    )
    while request is not None:
        page = _sent(client, request)
        yield from page.get("value") or []
        next_link = page.get("odata.nextLink")
        request = sdk_compat.next_page_request(client, next_link) if next_link else None


def live_job(client: BatchClient, job_id: str, policy: RetryPolicy) -> dict[str, Any] | None:
    """Return a job's REST body, or None when it is gone or being deleted.

    Raises
    ------
    BatchOperationError
        When the read fails for another reason.
    """
    try:
        live = call_with_retries(lambda: client.get_job(job_id), policy).as_dict()
    except SERVICE_ERRORS as error:
        if is_gone(error):
            return None
        raise operation_error(job_id, "reading the job", error) from None
    return None if live.get("state") == "deleting" else live


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

    def job(self) -> dict[str, Any] | None:
        """Return the job's REST body, or None when it is gone or being deleted (a deleting job
        still lists its tasks for a while, but they go with it).

        Raises
        ------
        BatchOperationError
            When the read fails for another reason.
        """
        return live_job(self.client, self.job_id, self.policy)

    def task_states(
        self, task_ids: Sequence[str] | None = None, at_least: int = 0
    ) -> dict[str, str]:
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
            return {
                task_id.lower(): state
                for task_id, state in zip(task_ids, found, strict=True)
                if state is not None
            }
        tasks = self._call(
            lambda: list(list_task_bodies(self.client, self.job_id, select=["id", "state"]))
        )
        return {task["id"].lower(): _wire(task.get("state")) for task in tasks}

    def incomplete_elsewhere(self, task_ids: Collection[str]) -> tuple[bool, bool]:
        """Tell whether the job has an incomplete task outside `task_ids`, and whether one of
        `task_ids` is incomplete, listing only the job's incomplete tasks (`$filter` on state,
        which the task list documents) and only their ids, and stopping at the first task
        outside: one request in the usual case, however many tasks the job holds.

        Parameters
        ----------
        task_ids
            Lower-case ids of the tasks about to be deleted.

        Returns
        -------
        tuple[bool, bool]
            (an incomplete task outside `task_ids` exists, one of `task_ids` is incomplete);
            the second is only meaningful when the first is False.
        """

        def look() -> tuple[bool, bool]:
            inside = False
            pages = list_task_bodies(
                self.client, self.job_id, filter="state ne 'completed'", select=["id"]
            )
            for task in pages:
                if task["id"].lower() not in task_ids:
                    return True, inside
                inside = True
            return False, inside

        return self._call(look)

    def _state_of(self, task_id: str) -> str | None:
        try:
            task = self._call(
                lambda: self.client.get_task(self.job_id, task_id, select=["id", "state"])
            )
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise
        return _wire(task.state)

    def existing_tasks(self, select: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Return the REST bodies of every task in the job (only `select`ed properties, if
        given), keyed by lower-case id."""
        fields = list(select) if select else None
        tasks = self._call(lambda: list(list_task_bodies(self.client, self.job_id, select=fields)))
        return {task["id"].lower(): task for task in tasks}

    def add(self, bodies: Iterable[Mapping[str, Any] | EncodedTask]) -> AddOutcome:
        """Add tasks in chunked collections; tasks already there are compared, not re-added.

        Chunks are sent as soon as they are full, so building the next bodies (when `bodies` is
        a generator) overlaps with the requests in flight.

        Parameters
        ----------
        bodies
            REST bodies of the tasks to add, as dicts or already encoded (`EncodedTask`).

        Returns
        -------
        AddOutcome
            The ids added, those found already present with an equal body, and those present
            with a different one (the caller decides whether they are its own to replace).

        Raises
        ------
        BatchOperationError
            Naming the job, only the tasks not added, and the service's errors.
        """
        outcome = AddOutcome()
        conflicts: list[Mapping[str, Any]] = []
        failures: list[BatchOperationError] = []

        def add_chunk(chunk: list[EncodedTask]) -> None:
            try:
                self._add_chunk(chunk, outcome, conflicts)
            except BatchOperationError as error:
                # Names the job and only those tasks of the chunk that were not added.
                failures.append(error)

        with ThreadPoolExecutor(max_workers=max(1, self.policy.concurrency)) as pool:
            sent = [pool.submit(add_chunk, chunk) for chunk in chunk_bodies(bodies)]
        for future in sent:
            future.result()  # anything add_chunk did not expect surfaces here
        if failures:
            shown = [str(error) for error in failures[:5]]
            if len(failures) > 5:
                shown.append(f"({len(failures) - 5} more requests failed likewise.)")
            raise BatchOperationError(" ".join(shown))
        if conflicts:
            self._settle_conflicts(conflicts, outcome)
        return outcome

    def _add_chunk(
        self, chunk: list[EncodedTask], outcome: AddOutcome, conflicts: list[Mapping[str, Any]]
    ) -> None:
        remaining = {task.task_id.lower(): task for task in chunk}
        refused: list[str] = []
        clock = self.policy.clock
        deadline = clock.monotonic() + self.policy.max_seconds
        attempt = 0
        last_server_error = ""
        while remaining:
            attempt += 1
            # The bytes sized are the bytes sent: the bodies go as encoded, in one envelope.
            payload = collection_body([task.data for task in remaining.values()])
            try:
                results = self._call(
                    functools.partial(post_task_collection, self.client, self.job_id, payload)
                )
            except HttpResponseError as error:
                if error.status_code == 413 and len(remaining) > 1:
                    self._add_halves(list(remaining.values()), outcome, conflicts)
                    return
                raise operation_error(
                    self.job_id,
                    "adding tasks",
                    error,
                    [task.task_id for task in remaining.values()],
                ) from None
            except (ServiceRequestError, ServiceResponseError, TimeoutError) as error:
                raise operation_error(
                    self.job_id,
                    "adding tasks",
                    error,
                    [task.task_id for task in remaining.values()],
                ) from None
            # Results may come back in any order: match them by id.
            for item in results:
                if not isinstance(item, Mapping):
                    continue
                item_id = str(item.get("taskId", ""))
                task = remaining.get(item_id.lower())
                if task is None:
                    continue
                found_error = item.get("error")
                item_error: Mapping[str, Any] = (
                    found_error if isinstance(found_error, Mapping) else {}
                )
                message = item_error.get("message")
                described = describe_batch_error(
                    item_error.get("code"),
                    message.get("value") if isinstance(message, Mapping) else message,
                    item_error.get("values"),
                )
                status = str(item.get("status", "")).lower()
                if status == "success":
                    outcome.added.append(task.task_id)
                    del remaining[item_id.lower()]
                elif item_error.get("code") == "TaskExists":
                    conflicts.append(task.body())
                    del remaining[item_id.lower()]
                elif status == "servererror":
                    last_server_error = f"{item_id}: {described}"
                else:
                    refused.append(f"{item_id}: {described}")
                    del remaining[item_id.lower()]
            if remaining and (attempt >= self.policy.max_attempts or clock.monotonic() > deadline):
                break
            if remaining:
                clock.sleep(min(self.policy.base_delay * 2 ** (attempt - 1), self.policy.max_delay))
        problems = []
        if refused:
            problems.append(
                f"job {self.job_id!r}: the service refused {len(refused)} task(s): "
                + "; ".join(sorted(refused)[:20])
                + "."
            )
        if remaining:
            problems.append(
                f"job {self.job_id!r}: {len(remaining)} task(s) not added after {attempt} "
                f"attempts [{shown_ids(task.task_id for task in remaining.values())}]: last error "
                f"{last_server_error or 'none reported'}."
            )
        if problems:
            raise BatchOperationError(" ".join(problems))

    def _add_halves(
        self, bodies: list[EncodedTask], outcome: AddOutcome, conflicts: list[Mapping[str, Any]]
    ) -> None:
        """After a 413, send each half on its own; report what both halves left undone."""
        half = len(bodies) // 2
        problems = []
        for part in (bodies[:half], bodies[half:]):
            try:
                self._add_chunk(part, outcome, conflicts)
            except BatchOperationError as error:
                problems.append(str(error))
        if problems:
            raise BatchOperationError(" ".join(problems))

    def _settle_conflicts(self, conflicts: list[Mapping[str, Any]], outcome: AddOutcome) -> None:
        """Compare tasks that already existed with their declared bodies (a lost response, or an
        earlier interrupted run): equal counts as added, different is recorded for the caller."""
        with service_errors(
            self.job_id, "reading tasks that already exist", [body["id"] for body in conflicts]
        ):
            if len(conflicts) == 1:
                task_id = conflicts[0]["id"]
                live = {
                    task_id.lower(): self._call(
                        lambda: self.client.get_task(self.job_id, task_id)
                    ).as_dict()
                }
            else:
                live = self.existing_tasks()
        for body in conflicts:
            existing = live.get(body["id"].lower(), {})
            # The marker says which resource added a task, not what it runs: a task an old
            # script added with an equal body is equal.
            if body_matches(
                {key: value for key, value in body.items() if key != "displayName"}, existing
            ):
                outcome.added.append(body["id"])
                outcome.already_present.append(body["id"])
            else:
                outcome.different[body["id"]] = existing

    def delete(self, task_ids: Sequence[str]) -> None:
        """Delete tasks; ones already gone (or in a job being deleted) are fine.

        Raises
        ------
        BatchOperationError
            When a delete fails for good, naming the tasks not deleted.
        """
        failures: list[tuple[str, BaseException]] = []

        def delete_one(task_id: str) -> None:
            try:
                self._call(lambda: self.client.delete_task(self.job_id, task_id))
            except SERVICE_ERRORS as error:
                if not is_gone(error):
                    failures.append((task_id, error))

        self._map(delete_one, task_ids)
        if failures:
            raise operation_error(
                self.job_id, "deleting tasks", failures[-1][1], [task_id for task_id, _ in failures]
            )

    def update_constraints(self, constraints_by_id: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the constraints of existing tasks, the one change Batch allows in place.

        Raises
        ------
        BatchOperationError
            When an update fails for good.
        """
        failures: list[tuple[str, BaseException]] = []

        def update_one(item: tuple[str, Mapping[str, Any]]) -> None:
            task_id, constraints = item
            task = batch_models.BatchTask({"constraints": dict(constraints)})
            try:
                self._call(lambda: self.client.replace_task(self.job_id, task_id, task))
            except SERVICE_ERRORS as error:
                failures.append((task_id, error))

        self._map(update_one, list(constraints_by_id.items()))
        if failures:
            raise operation_error(
                self.job_id,
                "updating constraints",
                failures[-1][1],
                [task_id for task_id, _ in failures],
            )
