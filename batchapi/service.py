"""In-memory Batch service: jobs, tasks, the service's rules, and its wire-shaped bodies.

Bodies are stored as the client sent them (camelCase), plus the fields the service adds
(state, url, eTag, timestamps) and the defaults it reports back. Every public method takes
the lock, so HTTP handler threads and test code can call them concurrently.
"""

from __future__ import annotations

import copy
import functools
import itertools
import random
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .execution import TaskExecution

MAX_COLLECTION_TASKS = 100
# The service refuses a request body of 1 MB or more: 1,000,000 bytes and up meet a 413.
MAX_BODY_BYTES = 1_000_000
# A deleting_polls value meaning "stays deleting for as long as anyone looks".
DELETING_FOREVER = -1

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FOREVER = "P10675199DT2H48M5.4775807S"

_JOB_CREATE_KEYS = frozenset(
    {
        "id",
        "displayName",
        "usesTaskDependencies",
        "priority",
        "allowTaskPreemption",
        "maxParallelTasks",
        "constraints",
        "jobManagerTask",
        "jobPreparationTask",
        "jobReleaseTask",
        "commonEnvironmentSettings",
        "poolInfo",
        "onAllTasksComplete",
        "onTaskFailure",
        "networkConfiguration",
        "metadata",
    }
)
_JOB_PATCH_KEYS = frozenset(
    {
        "priority",
        "allowTaskPreemption",
        "maxParallelTasks",
        "constraints",
        "poolInfo",
        "onAllTasksComplete",
        "metadata",
        "networkConfiguration",
    }
)
_JOB_PUT_KEYS = frozenset(
    {
        "priority",
        "allowTaskPreemption",
        "maxParallelTasks",
        "constraints",
        "poolInfo",
        "onAllTasksComplete",
        "metadata",
    }
)
_TASK_CREATE_KEYS = frozenset(
    {
        "id",
        "displayName",
        "exitConditions",
        "commandLine",
        "containerSettings",
        "resourceFiles",
        "outputFiles",
        "environmentSettings",
        "affinityInfo",
        "constraints",
        "requiredSlots",
        "userIdentity",
        "multiInstanceSettings",
        "dependsOn",
        "applicationPackageReferences",
    }
)
_TASK_PUT_KEYS = frozenset({"constraints"})

# What the service reports for properties a client left out.
_JOB_DEFAULTS: dict[str, Any] = {
    "usesTaskDependencies": False,
    "priority": 0,
    "allowTaskPreemption": False,
    "maxParallelTasks": -1,
    "onAllTasksComplete": "noaction",
    "onTaskFailure": "noaction",
}
_ALL_TASKS_COMPLETE = frozenset({"noaction", "terminatejob"})
JOB_STATES = frozenset(
    {"active", "disabling", "disabled", "enabling", "terminating", "completed", "deleting"}
)
TASK_STATES = frozenset({"active", "preparing", "running", "completed"})
# A job in one of these states refuses writes, with this error code.
_JOB_BUSY = {
    "deleting": "JobBeingDeleted",
    "terminating": "JobBeingTerminated",
    "completed": "JobCompleted",
    "disabling": "JobDisabled",
    "disabled": "JobDisabled",
}


class BatchError(Exception):
    """A service error, sent as a Batch error body with an HTTP status.

    Parameters
    ----------
    status : int
        HTTP status code.
    code : str
        Batch error code, e.g. ``TaskExists``.
    message : str
        Human-readable text.
    values : dict[str, str] or None
        Extra key/value details (the body's ``values`` list).
    """

    def __init__(
        self, status: int, code: str, message: str, values: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.values = values or {}


@dataclass
class Reply:
    """A successful answer: status, JSON body (or None) and extra headers."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A file's bytes, sent as they are instead of a JSON body.
    raw: bytes | None = None


@dataclass
class Page:
    """One page of a list: the items and the offset of the next page, if any."""

    items: list[dict[str, Any]]
    next_offset: int | None


@dataclass
class _Cursor:
    """Where a task listing stopped: the job listed and the matching bodies after the page, so
    the next page resumes there instead of skipping `offset` bodies again (paging through a job
    of N tasks costs N, not N * N / page size)."""

    job: _Job
    rest: Iterator[dict[str, Any]]


# Listings resumed from where they stopped; older ones are scanned again from the start.
_CURSORS_KEPT = 16


@dataclass
class _Job:
    body: dict[str, Any]
    # Keyed by lower-case id: the service treats ids case-insensitively but keeps their case.
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    incomplete: int = 0
    # GETs left before a deleting job disappears or a terminating job completes.
    polls_left: int = 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _invalid(name: str, value: Any, reason: str) -> BatchError:
    return BatchError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        {"PropertyName": name, "PropertyValue": str(value), "Reason": reason},
    )


def _missing(name: str) -> BatchError:
    return BatchError(
        400,
        "MissingRequiredProperty",
        "A required property was not specified in the request body.",
        {"PropertyName": name},
    )


def _unsupported(names: Iterable[str]) -> BatchError:
    return BatchError(
        400,
        "UnsupportedProperty",
        "One of the properties specified in the request body is not supported.",
        {"PropertyName": ",".join(sorted(names))},
    )


def _check_keys(body: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = set(body) - allowed
    if extra:
        raise _unsupported(extra)


def _check_id(value: Any) -> str:
    if value is None:
        raise _missing("id")
    if not isinstance(value, str) or not _ID.match(value):
        raise _invalid("id", value, "ids are 1 to 64 letters, digits, hyphens and underscores")
    return value


def _job_not_found(job_id: str) -> BatchError:
    return BatchError(404, "JobNotFound", "The specified job does not exist.")


def _task_not_found(task_id: str) -> BatchError:
    return BatchError(404, "TaskNotFound", "The specified task does not exist.")


def _select(body: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return copy.deepcopy(body)
    return {k: copy.deepcopy(body[k]) for k in select if k in body}


def parse_state_filter(text: str | None) -> frozenset[str] | None:
    """Parse the one $filter form the double supports: ``state eq 'x'`` joined by ``or``.

    Parameters
    ----------
    text : str or None
        The $filter query value.

    Returns
    -------
    frozenset[str] or None
        The states asked for, or None when there is no filter.

    Raises
    ------
    BatchError
        400 InvalidQueryParameterValue for any other filter.
    """
    if not text:
        return None
    states = set()
    for clause in re.split(r"\s+or\s+", text.strip()):
        match = re.fullmatch(r"\(?\s*state\s+eq\s+'(\w+)'\s*\)?", clause.strip())
        if not match:
            raise BatchError(
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
                {"QueryParameterName": "$filter", "QueryParameterValue": text},
            )
        states.add(match.group(1))
    return frozenset(states)


class BatchService(TaskExecution):
    """Thread-safe in-memory state of one Batch account's jobs and tasks.

    Parameters
    ----------
    base_url : str
        The account endpoint, used to build ``url`` fields.
    deleting_polls : int
        How many GETs of a deleted job still see state ``deleting`` before it is gone.
    terminating_polls : int
        How many GETs of a terminated job still see ``terminating`` before ``completed``.
    """

    def __init__(self, base_url: str, deleting_polls: int = 1, terminating_polls: int = 1) -> None:
        self.base_url = base_url
        self.deleting_polls = deleting_polls
        self.terminating_polls = terminating_polls
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        # (job key, $filter, next offset) -> where that listing stopped (see _Cursor).
        self._cursors: dict[tuple[str, str | None, int], _Cursor] = {}
        # Add-collection results come back shuffled; seeded, so a failing run repeats.
        self._order = random.Random(0)
        self._etags = itertools.count(0x8DC0000000000)
        self._init_execution()

    # ----------------------------------------------------------------- helpers (lock held)

    def _stamp(self, body: dict[str, Any], now: str | None = None) -> None:
        body["eTag"] = f"0x{next(self._etags):X}"
        body["lastModified"] = now or _now()

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id.lower())
        if job is None:
            raise _job_not_found(job_id)
        return job

    def _writable_job(self, job_id: str) -> _Job:
        job = self._job(job_id)
        code = _JOB_BUSY.get(job.body["state"])
        if code:
            raise BatchError(409, code, f"The specified job is {job.body['state']}.")
        return job

    def _task(self, job: _Job, task_id: str) -> dict[str, Any]:
        task = job.tasks.get(task_id.lower())
        if task is None:
            raise _task_not_found(task_id)
        return task

    def _set_job_state(self, job: _Job, state: str) -> None:
        body = job.body
        if body["state"] == state:
            return
        now = _now()
        body["previousState"] = body["state"]
        body["previousStateTransitionTime"] = body["stateTransitionTime"]
        body["state"] = state
        body["stateTransitionTime"] = now
        if state == "completed":
            body.setdefault("executionInfo", {})["endTime"] = now
        self._stamp(body)

    def _set_task_state(self, job: _Job, task: dict[str, Any], state: str, exit_code: int) -> None:
        was_complete = task["state"] == "completed"
        if task["state"] != state:
            now = _now()
            task["previousState"] = task["state"]
            task["previousStateTransitionTime"] = task["stateTransitionTime"]
            task["state"] = state
            task["stateTransitionTime"] = now
            info = task.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
            if state in ("running", "completed"):
                info.setdefault("startTime", now)
            if state == "completed":
                info["endTime"] = now
                info["exitCode"] = exit_code
                info["result"] = "success" if exit_code == 0 else "failure"
            self._stamp(task)
        job.incomplete += int(was_complete) - int(state == "completed")
        self._maybe_complete(job)

    def _maybe_complete(self, job: _Job) -> None:
        # The service ends a terminatejob job as soon as no task is left incomplete,
        # including a job that has no tasks at all.
        body = job.body
        if (
            body["state"] == "active"
            and body.get("onAllTasksComplete") == "terminatejob"
            and job.incomplete == 0
        ):
            self._set_job_state(job, "completed")
            body["executionInfo"]["terminateReason"] = "AllTasksComplete"

    def _validate_job_fields(self, body: dict[str, Any]) -> None:
        mode = body.get("onAllTasksComplete")
        if mode is not None and mode not in _ALL_TASKS_COMPLETE:
            raise _invalid("onAllTasksComplete", mode, "expected noaction or terminatejob")
        priority = body.get("priority")
        if priority is not None and not (isinstance(priority, int) and -1000 <= priority <= 1000):
            raise _invalid("priority", priority, "priority lies between -1000 and 1000")
        parallel = body.get("maxParallelTasks")
        if parallel is not None and not (
            isinstance(parallel, int) and (parallel == -1 or parallel >= 1)
        ):
            raise _invalid("maxParallelTasks", parallel, "expected -1 or a positive integer")
        if "poolInfo" in body and not isinstance(body["poolInfo"], dict):
            raise _invalid("poolInfo", body["poolInfo"], "expected an object")

    def _new_task(self, job: _Job, body: Any, now: str) -> dict[str, Any]:
        # `body` becomes the stored task: callers pass a body no one else holds.
        if not isinstance(body, dict):
            raise BatchError(400, "InvalidRequestBody", "A task must be a JSON object.")
        task_id = _check_id(body.get("id"))
        _check_keys(body, _TASK_CREATE_KEYS)
        if not body.get("commandLine"):
            raise _missing("commandLine")
        # A dependency action on failure also needs the job's task dependencies (REST docs).
        acts_on_dependents = any(
            isinstance(options, dict) and "dependencyAction" in options
            for options in (body.get("exitConditions") or {}).values()
        )
        if (body.get("dependsOn") or acts_on_dependents) and not job.body.get(
            "usesTaskDependencies"
        ):
            raise BatchError(
                400,
                "TaskDependenciesNotSpecifiedOnJob",
                "A task was specified as depending on other tasks, but the job did not "
                "specify that it would use task dependencies.",
            )
        if task_id.lower() in job.tasks:
            raise BatchError(409, "TaskExists", "The specified task already exists.")
        task = _as_service_spells(body)
        task["constraints"] = self._task_constraints(job, body.get("constraints"))
        task.setdefault("requiredSlots", 1)
        task.update(
            url=f"{job.body['url']}/tasks/{task_id}",
            creationTime=now,
            state="active",
            stateTransitionTime=now,
            executionInfo={"retryCount": 0, "requeueCount": 0},
        )
        self._stamp(task, now)
        job.tasks[task_id.lower()] = task
        job.incomplete += 1
        return task

    @staticmethod
    def _task_constraints(job: _Job, given: Any) -> dict[str, Any]:
        if given is not None and not isinstance(given, dict):
            raise _invalid("constraints", given, "expected an object")
        retries = job.body.get("constraints", {}).get("maxTaskRetryCount", 0)
        constraints = {
            "maxWallClockTime": _FOREVER,
            "retentionTime": "P7D",
            "maxTaskRetryCount": retries,
        }
        constraints.update(given or {})
        return _durations_spelled(constraints)

    def _insert_job(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BatchError(400, "InvalidRequestBody", "A job must be a JSON object.")
        job_id = _check_id(body.get("id"))
        _check_keys(body, _JOB_CREATE_KEYS)
        if "poolInfo" not in body:
            raise _missing("poolInfo")
        self._validate_job_fields(body)
        existing = self._jobs.get(job_id.lower())
        if existing is not None:
            if existing.body["state"] == "deleting":
                raise BatchError(409, "JobBeingDeleted", "The specified job is being deleted.")
            raise BatchError(409, "JobExists", "The specified job already exists.")
        now = _now()
        stored = copy.deepcopy(body)
        for key, value in _JOB_DEFAULTS.items():
            stored.setdefault(key, value)
        stored["constraints"] = _durations_spelled(
            {
                "maxWallClockTime": _FOREVER,
                "maxTaskRetryCount": 0,
                **(body.get("constraints") or {}),
            }
        )
        stored.update(
            url=f"{self.base_url}/jobs/{job_id}",
            creationTime=now,
            state="active",
            stateTransitionTime=now,
            executionInfo={"startTime": now, "poolId": body["poolInfo"].get("poolId")},
        )
        self._stamp(stored)
        job = _Job(stored)
        self._jobs[job_id.lower()] = job
        self._maybe_complete(job)
        return stored

    def _change_job(self, job: _Job, body: dict[str, Any], replace: bool) -> None:
        self._validate_job_fields(body)
        current = job.body
        new_pool = body.get("poolInfo")
        if (
            new_pool is not None
            and new_pool != current["poolInfo"]
            and current["state"] not in ("disabled",)
        ):
            raise BatchError(
                409,
                "OperationInvalidForCurrentState",
                "The pool of a job can change only while the job is disabled.",
            )
        mode = body.get("onAllTasksComplete", "noaction" if replace else None)
        if mode == "noaction" and current.get("onAllTasksComplete") == "terminatejob":
            raise _invalid(
                "onAllTasksComplete", mode, "a job set to terminatejob cannot go back to noaction"
            )
        if replace:
            for key, value in _JOB_DEFAULTS.items():
                if key in _JOB_PUT_KEYS:
                    current[key] = value
            current["constraints"] = {"maxWallClockTime": _FOREVER, "maxTaskRetryCount": 0}
            current.pop("metadata", None)
        for key, value in body.items():
            if key == "constraints":
                current[key] = _durations_spelled(
                    {
                        "maxWallClockTime": _FOREVER,
                        "maxTaskRetryCount": 0,
                        **(value or {}),
                    }
                )
            else:
                current[key] = copy.deepcopy(value)
        self._stamp(current)
        self._maybe_complete(job)

    # ----------------------------------------------------------------- wire operations

    def create_job(self, body: Any) -> Reply:
        """POST /jobs."""
        with self._lock:
            stored = self._insert_job(body)
            return Reply(201, None, _created_headers(stored))

    def get_job(self, job_id: str, select: list[str] | None) -> Reply:
        """GET /jobs/{jobId}: a deleting or terminating job moves on as it is polled."""
        with self._lock:
            job = self._job(job_id)
            state = job.body["state"]
            if state in ("deleting", "terminating"):
                if state == "deleting" and job.polls_left == DELETING_FOREVER:
                    pass
                elif job.polls_left <= 0:
                    if state == "deleting":
                        del self._jobs[job_id.lower()]
                        raise _job_not_found(job_id)
                    self._set_job_state(job, "completed")
                else:
                    job.polls_left -= 1
            return Reply(200, _select(job.body, select), _entity_headers(job.body))

    def list_jobs(
        self,
        states: frozenset[str] | Callable[[dict[str, Any]], bool] | None,
        select: list[str] | None,
        offset: int,
        limit: int,
    ) -> Page:
        """GET /jobs."""
        with self._lock:
            bodies = (j.body for j in self._jobs.values())
            return _page(bodies, states, select, offset, limit)[0]

    def update_job(self, job_id: str, body: Any, replace: bool) -> Reply:
        """PATCH (merge) or PUT (replace) /jobs/{jobId}."""
        if not isinstance(body, dict):
            raise BatchError(400, "InvalidRequestBody", "A job must be a JSON object.")
        _check_keys(body, _JOB_PUT_KEYS if replace else _JOB_PATCH_KEYS)
        if replace and "poolInfo" not in body:
            raise _missing("poolInfo")
        with self._lock:
            job = self._writable_job(job_id)
            self._change_job(job, body, replace)
            return Reply(200, None, _entity_headers(job.body))

    def delete_job(self, job_id: str) -> Reply:
        """DELETE /jobs/{jobId}: the job turns ``deleting``, then disappears."""
        with self._lock:
            job = self._job(job_id)
            if job.body["state"] == "deleting":
                raise BatchError(409, "JobBeingDeleted", "The specified job is being deleted.")
            self._set_job_state(job, "deleting")
            job.polls_left = self.deleting_polls
            return Reply(202)

    def terminate_job(self, job_id: str, body: Any) -> Reply:
        """POST /jobs/{jobId}/terminate: ``terminating``, then ``completed``."""
        reason = body.get("terminateReason") if isinstance(body, dict) else None
        with self._lock:
            job = self._writable_job(job_id)
            self._set_job_state(job, "terminating")
            job.body["executionInfo"]["terminateReason"] = reason or "UserTerminate"
            for task in job.tasks.values():
                if task["state"] in ("preparing", "running"):
                    self._set_task_state(job, task, "completed", 1)
            job.polls_left = self.terminating_polls
            if job.polls_left <= 0:
                self._set_job_state(job, "completed")
            return Reply(202)

    def task_counts(self, job_id: str) -> Reply:
        """GET /jobs/{jobId}/taskcounts."""
        with self._lock:
            job = self._job(job_id)
            counts = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
            slots = dict(counts)
            for task in job.tasks.values():
                state = "running" if task["state"] == "preparing" else task["state"]
                size = task.get("requiredSlots", 1)
                counts[state] += 1
                slots[state] += size
                if state == "completed":
                    outcome = task["executionInfo"].get("result", "success")
                    bucket = "succeeded" if outcome == "success" else "failed"
                    counts[bucket] += 1
                    slots[bucket] += size
            return Reply(200, {"taskCounts": counts, "taskSlotCounts": slots})

    def create_task(self, job_id: str, body: Any, *, owned: bool = False) -> Reply:
        """POST /jobs/{jobId}/tasks. With ``owned`` (a body parsed for this request alone) the
        body becomes the stored task without a copy."""
        with self._lock:
            job = self._writable_job(job_id)
            task = self._new_task(job, body if owned else copy.deepcopy(body), _now())
            return Reply(201, None, _created_headers(task))

    def add_collection(
        self,
        job_id: str,
        body: Any,
        server_error: Callable[[str], bool],
        client_error: Callable[[str], BatchError | None] = lambda _task_id: None,
        *,
        owned: bool = False,
    ) -> Reply:
        """POST /jobs/{jobId}/addtaskcollection, with a result per task, in no particular
        order (the service does not promise request order). With ``owned`` (a body parsed
        for this request alone) its tasks become the stored tasks without a copy.

        ``server_error(task_id)`` says whether to answer a task with ``servererror``
        instead of adding it; ``client_error(task_id)`` returns an error to answer it with as
        ``clienterror``, or None.
        """
        values = body.get("value") if isinstance(body, dict) else None
        if not isinstance(values, list):
            raise _missing("value")
        if not owned:
            values = copy.deepcopy(values)
        if len(values) > MAX_COLLECTION_TASKS:
            raise _invalid(
                "value", len(values), f"at most {MAX_COLLECTION_TASKS} tasks per collection"
            )
        with self._lock:
            job = self._writable_job(job_id)
            results = []
            now = _now()  # one clock reading per request: the tasks arrive together
            for value in values:
                task_id = value.get("id") if isinstance(value, dict) else None
                if isinstance(task_id, str) and server_error(task_id):
                    error = BatchError(503, "ServerBusy", "The server is busy.")
                    results.append(_task_result("servererror", task_id, error=error))
                    continue
                refusal = client_error(task_id) if isinstance(task_id, str) else None
                if refusal is not None:
                    results.append(_task_result("clienterror", task_id, error=refusal))
                    continue
                try:
                    task = self._new_task(job, value, now)
                except BatchError as error:
                    results.append(_task_result("clienterror", task_id, error=error))
                else:
                    results.append(_task_result("success", task["id"], task=task))
            self._order.shuffle(results)
            return Reply(200, {"value": results})

    def list_tasks(
        self,
        job_id: str,
        states: frozenset[str] | Callable[[dict[str, Any]], bool] | None,
        select: list[str] | None,
        offset: int,
        limit: int,
        filter_text: str | None = None,
    ) -> Page:
        """GET /jobs/{jobId}/tasks; `filter_text` is the $filter `states` was compiled from,
        which a resumed listing must match."""
        with self._lock:
            job = self._job(job_id)
            key = job_id.lower()
            cursor = self._cursors.pop((key, filter_text, offset), None)
            rest = cursor.rest if cursor is not None and cursor.job is job else None
            try:
                page, after = _page(job.tasks.values(), states, select, offset, limit, rest)
            except RuntimeError:
                # The tasks changed since the previous page: count the offset again.
                page, after = _page(job.tasks.values(), states, select, offset, limit)
            if after is not None and page.next_offset is not None:
                self._cursors[key, filter_text, page.next_offset] = _Cursor(job, after)
                while len(self._cursors) > _CURSORS_KEPT:
                    del self._cursors[next(iter(self._cursors))]
            return page

    def get_task(self, job_id: str, task_id: str, select: list[str] | None) -> Reply:
        """GET /jobs/{jobId}/tasks/{taskId}."""
        with self._lock:
            task = self._task(self._job(job_id), task_id)
            return Reply(200, _select(task, select), _entity_headers(task))

    def replace_task(self, job_id: str, task_id: str, body: Any) -> Reply:
        """PUT /jobs/{jobId}/tasks/{taskId}: only the constraints may change."""
        if not isinstance(body, dict):
            raise BatchError(400, "InvalidRequestBody", "A task must be a JSON object.")
        _check_keys(body, _TASK_PUT_KEYS)
        with self._lock:
            job = self._job(job_id)
            if job.body["state"] == "deleting":
                raise BatchError(409, "JobBeingDeleted", "The specified job is being deleted.")
            task = self._task(job, task_id)
            task["constraints"] = self._task_constraints(job, body.get("constraints"))
            self._stamp(task)
            return Reply(200, None, _entity_headers(task))

    def delete_task(self, job_id: str, task_id: str) -> Reply:
        """DELETE /jobs/{jobId}/tasks/{taskId}."""
        with self._lock:
            job = self._job(job_id)
            self._remove_task(job, task_id)
            return Reply(200)

    def terminate_task(self, job_id: str, task_id: str) -> Reply:
        """POST /jobs/{jobId}/tasks/{taskId}/terminate."""
        with self._lock:
            job = self._job(job_id)
            task = self._task(job, task_id)
            if task["state"] == "completed":
                raise BatchError(409, "TaskCompleted", "The specified task is completed.")
            self._set_task_state(job, task, "completed", 1)
            task["executionInfo"]["failureInfo"] = {
                "category": "usererror",
                "code": "TaskEnded",
                "message": "Task Was Ended by User Request",
            }
            return Reply(204)

    def _remove_task(self, job: _Job, task_id: str) -> None:
        task = job.tasks.pop(task_id.lower(), None)
        if task is None:
            raise _task_not_found(task_id)
        if task["state"] != "completed":
            job.incomplete -= 1
        self._maybe_complete(job)

    # ----------------------------------------------------------------- direct access

    def reset(self) -> None:
        """Forget every job and task."""
        with self._lock:
            self._jobs.clear()
            self._cursors.clear()
            self._reset_execution()

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Copies of all stored job bodies, keyed by id as created."""
        with self._lock:
            return {j.body["id"]: copy.deepcopy(j.body) for j in self._jobs.values()}

    def tasks(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Copies of a job's stored task bodies, keyed by id as created."""
        with self._lock:
            return {t["id"]: copy.deepcopy(t) for t in self._job(job_id).tasks.values()}

    def add_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a job as if a client had sent ``body``; returns a copy of what is stored."""
        with self._lock:
            return copy.deepcopy(self._insert_job(body))

    def add_task(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a task whatever the job's state; returns a copy of what is stored."""
        with self._lock:
            task = self._new_task(self._job(job_id), copy.deepcopy(body), _now())
            return copy.deepcopy(task)

    def set_job_state(self, job_id: str, state: str) -> None:
        """Force a job's state (e.g. ``disabled``), bypassing the service's transitions."""
        if state not in JOB_STATES:
            raise ValueError(f"state: {state!r} is not one of {sorted(JOB_STATES)}")
        with self._lock:
            self._set_job_state(self._job(job_id), state)

    def update_job_fields(self, job_id: str, fields: dict[str, Any]) -> None:
        """Overwrite stored job fields, bypassing the service's rules."""
        with self._lock:
            job = self._job(job_id)
            job.body.update(copy.deepcopy(fields))
            self._stamp(job.body)

    def set_task_state(self, job_id: str, task_id: str, state: str, exit_code: int = 0) -> None:
        """Move a task to a state as a node would (``running``, ``completed``...)."""
        if state not in TASK_STATES:
            raise ValueError(f"state: {state!r} is not one of {sorted(TASK_STATES)}")
        with self._lock:
            job = self._job(job_id)
            self._set_task_state(job, self._task(job, task_id), state, exit_code)

    def delete_task_out_of_band(self, job_id: str, task_id: str) -> None:
        """Remove a task as someone else (portal, script) would."""
        with self._lock:
            self._remove_task(self._job(job_id), task_id)

    def delete_job_out_of_band(self, job_id: str) -> None:
        """Remove a job and its tasks at once, as if deleted elsewhere long ago."""
        with self._lock:
            self._job(job_id)
            del self._jobs[job_id.lower()]


def _page(
    bodies: Iterable[dict[str, Any]],
    states: frozenset[str] | Callable[[dict[str, Any]], bool] | None,
    select: list[str] | None,
    offset: int,
    limit: int,
    rest: Iterator[dict[str, Any]] | None = None,
) -> tuple[Page, Iterator[dict[str, Any]] | None]:
    # `states` is a set of states (jobs) or a compiled $filter (see odata.parse_filter). `rest`
    # holds the matching bodies from `offset` on, when a previous page stopped there. A dict
    # changed since that page raises RuntimeError here.
    if rest is None:
        matching = (
            b
            for b in bodies
            if states is None or (states(b) if callable(states) else b["state"] in states)
        )
        rest = itertools.islice(matching, offset, None)
    chunk = list(itertools.islice(rest, limit + 1))
    more = len(chunk) > limit
    items = [_select(b, select) for b in chunk[:limit]]
    after = itertools.chain(chunk[limit:], rest) if more else None
    return Page(items, offset + limit if more else None), after


# Task properties holding enums, which the service answers in lower case whatever was sent.
_DURATION_KEYS = ("maxWallClockTime", "retentionTime")
_ISO_DURATION = re.compile(
    r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


def _lower_at(body: Any, key: str) -> None:
    if isinstance(body, dict):
        value = body.get(key)
        if isinstance(value, str):
            body[key] = value.lower()


def _as_service_spells(task: dict[str, Any]) -> dict[str, Any]:
    """Spell a task's enums the way the service answers them: lower case."""
    container = task.get("containerSettings")
    _lower_at(container, "workingDirectory")
    identity = task.get("userIdentity")
    auto_user = identity.get("autoUser") if isinstance(identity, dict) else None
    _lower_at(auto_user, "scope")
    _lower_at(auto_user, "elevationLevel")
    for output in task.get("outputFiles") or ():
        _lower_at(
            output.get("uploadOptions") if isinstance(output, dict) else None, "uploadCondition"
        )
    for mount in (container or {}).get("containerHostBatchBindMounts") or ():
        _lower_at(mount, "source")
    return task


def dotnet_duration(value: Any) -> Any:
    """Return an ISO 8601 duration as the service (.NET's TimeSpan) writes it back: days,
    hours, minutes and seconds, zero parts left out, seven decimal places at most
    (PT60M -> PT1H, P1W -> P7D, PT0S for nothing). Values it cannot read stay as sent."""
    return _dotnet_duration(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=1024)  # a job's tasks repeat a few durations thousands of times
def _dotnet_duration(value: str) -> str:
    match = _ISO_DURATION.fullmatch(value)
    if match is None or value in ("P", "PT"):
        return value
    weeks, days, hours, minutes = (int(part) if part else 0 for part in match.groups()[:4])
    # Ticks of 100 ns, as .NET counts them; Decimal keeps the seventh decimal place exact.
    seconds = Decimal(match.group(5) or 0)
    whole_seconds = ((weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60
    ticks = whole_seconds * 10_000_000 + int(seconds * 10_000_000)
    days_part, rest = divmod(ticks, 86_400 * 10_000_000)
    hours_part, rest = divmod(rest, 3_600 * 10_000_000)
    minutes_part, rest = divmod(rest, 60 * 10_000_000)
    whole, fraction = divmod(rest, 10_000_000)
    text = "P" + (f"{days_part}D" if days_part else "")
    clock = (f"{hours_part}H" if hours_part else "") + (f"{minutes_part}M" if minutes_part else "")
    if whole or fraction:
        clock += f"{whole}.{fraction:07d}".rstrip("0").rstrip(".") + "S"
    if clock:
        text += "T" + clock
    return text if text != "P" else "PT0S"


def _durations_spelled(constraints: dict[str, Any]) -> dict[str, Any]:
    for key in _DURATION_KEYS:
        if isinstance(constraints.get(key), str):
            constraints[key] = dotnet_duration(constraints[key])
    return constraints


def _entity_headers(body: dict[str, Any]) -> dict[str, str]:
    return {
        "ETag": body["eTag"],
        "Last-Modified": _rfc1123(body["lastModified"]),
        "DataServiceId": body["url"],
    }


def _created_headers(body: dict[str, Any]) -> dict[str, str]:
    return {**_entity_headers(body), "Location": body["url"]}


def _rfc1123(timestamp: str) -> str:
    moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def error_body(error: BatchError, request_id: str) -> dict[str, Any]:
    """The JSON body Batch sends with an error status.

    Parameters
    ----------
    error : BatchError
        The error.
    request_id : str
        The request's id, which the service appends to the message.

    Returns
    -------
    dict[str, Any]
        ``{"code", "message": {"lang", "value"}, "values"?}``.
    """
    body: dict[str, Any] = {
        "code": error.code,
        "message": {
            "lang": "en-US",
            "value": f"{error.message}\nRequestId:{request_id}\nTime:{_now()}",
        },
    }
    if error.values:
        body["values"] = [{"key": k, "value": v} for k, v in error.values.items()]
    return body


def _task_result(
    status: str,
    task_id: Any,
    *,
    task: dict[str, Any] | None = None,
    error: BatchError | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"status": status, "taskId": task_id}
    if task is not None:
        result.update(eTag=task["eTag"], lastModified=task["lastModified"], location=task["url"])
    if error is not None:
        result["error"] = {
            "code": error.code,
            "message": {"lang": "en-US", "value": error.message},
        }
        if error.values:
            result["error"]["values"] = [{"key": k, "value": v} for k, v in error.values.items()]
    return result
