"""Task execution as the service reports it: nodes run tasks, tasks end with exit codes and
failure info, retry within their budget, write files on their node (read by the task file API
until the node goes), and failed tasks can be reactivated.

`TaskExecution` is mixed into `BatchService`; its public methods take the service lock, like
every other method there. Tests drive tasks with `start_task`, `write_task_file`,
`finish_task` and `lose_node`, exactly as a pool's nodes would move them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

# The module, not its names: service.py mixes this class in while it is still loading.
from . import service as _service

if TYPE_CHECKING:
    from .service import _Job

# What the service records for a task whose process exited non-zero.
EXIT_CODE_FAILURE = {
    "category": "usererror",
    "code": "FailureExitCode",
    "message": "The task exited with an exit code representing a failure",
}
# Job states in which reactivation is refused, with the service's error code.
_REACTIVATE_REFUSED = {
    "completed": "JobCompleted",
    "terminating": "JobBeingTerminated",
    "deleting": "JobBeingDeleted",
}


def _rfc1123(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


class _File:
    def __init__(self) -> None:
        self.data = bytearray()
        self.created = datetime.now(UTC)
        self.modified = self.created


class TaskExecution:
    """Execution, task files and reactivation for `BatchService` (a mixin)."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        base_url: str

        def _job(self, job_id: str) -> _Job: ...
        def _task(self, job: _Job, task_id: str) -> dict[str, Any]: ...
        def _set_task_state(
            self, job: _Job, task: dict[str, Any], state: str, exit_code: int
        ) -> None: ...
        def _stamp(self, body: dict[str, Any]) -> None: ...

    def _init_execution(self) -> None:
        # (job id, task id) lower case -> file name -> file; kept while the task's node lives.
        self._files: dict[tuple[str, str], dict[str, _File]] = {}
        self._lost_nodes: set[str] = set()

    def _reset_execution(self) -> None:
        self._files.clear()
        self._lost_nodes.clear()

    # ----------------------------------------------------------------- driving tasks

    def start_task(
        self, job_id: str, task_id: str, node_id: str = "tvm-1", preparing: bool = False
    ) -> None:
        """Schedule a task on a node: ``preparing`` (if asked), else ``running``.

        Parameters
        ----------
        job_id, task_id : str
            The task.
        node_id : str
            The node it runs on; its files live there until `lose_node`.
        preparing : bool
            Stop at ``preparing`` (the node is pulling the image or resource files).
        """
        with self._lock:
            job = self._job(job_id)
            task = self._task(job, task_id)
            if task["state"] not in ("active", "preparing"):
                raise ValueError(f"task {task_id!r} is {task['state']}, not active")
            pool = (job.body.get("poolInfo") or {}).get("poolId", "pool")
            task["nodeInfo"] = {
                "affinityId": f"TVM:{node_id}",
                "nodeUrl": f"{self.base_url}/pools/{pool}/nodes/{node_id}",
                "poolId": pool,
                "nodeId": node_id,
                "taskRootDirectory": f"workitems/{job_id}/job-1/{task_id}",
                "taskRootDirectoryUrl": f"{self.base_url}/pools/{pool}/nodes/{node_id}/files/"
                f"workitems/{job_id}/job-1/{task_id}",
            }
            self._lost_nodes.discard(node_id)
            self._files.setdefault((job_id.lower(), task_id.lower()), {})
            self._set_task_state(job, task, "preparing" if preparing else "running", 0)

    def finish_task(
        self,
        job_id: str,
        task_id: str,
        exit_code: int | None = 0,
        failure: Mapping[str, str] | None = None,
    ) -> str:
        """End a task's attempt as its node reports it; returns the task's new state.

        A failed attempt (non-zero exit code, or a `failure` such as a container or upload
        error, with `exit_code` None) is retried while the task's maxTaskRetryCount allows:
        the task goes back to ``active`` with retryCount raised. Otherwise it completes with
        result ``failure`` and the failureInfo.

        Parameters
        ----------
        job_id, task_id : str
            The task (running or preparing).
        exit_code : int or None
            The process exit code; None when the process never ran.
        failure : mapping or None
            failureInfo (category, code, message); for a non-zero exit code the service's
            FailureExitCode info is used when None.

        Returns
        -------
        str
            ``completed`` or, for a retried attempt, ``active``.
        """
        with self._lock:
            job = self._job(job_id)
            task = self._task(job, task_id)
            if task["state"] not in ("running", "preparing"):
                raise ValueError(f"task {task_id!r} is {task['state']}, not running")
            failed = failure is not None or exit_code != 0
            info = task["executionInfo"]
            if failed and info.get("retryCount", 0) < task["constraints"]["maxTaskRetryCount"]:
                info["retryCount"] = info.get("retryCount", 0) + 1
                info["lastRetryTime"] = _service._now()
                if exit_code is not None:
                    info["exitCode"] = exit_code
                self._set_task_state(job, task, "active", 0)
                return "active"
            self._set_task_state(job, task, "completed", 0 if exit_code is None else exit_code)
            info = task["executionInfo"]
            if exit_code is None:
                info.pop("exitCode", None)
            if failed:
                info["result"] = "failure"
                info["failureInfo"] = dict(failure or EXIT_CODE_FAILURE)
            self._stamp(task)
            return "completed"

    def write_task_file(self, job_id: str, task_id: str, name: str, data: bytes) -> None:
        """Append bytes to a file of a task on its node (``stdout.txt``, ``stderr.txt``...)."""
        with self._lock:
            task = self._task(self._job(job_id), task_id)
            if not (task.get("nodeInfo") or {}).get("nodeId"):
                raise ValueError(f"task {task_id!r} has not been scheduled on a node")
            files = self._files.setdefault((job_id.lower(), task_id.lower()), {})
            file = files.setdefault(name, _File())
            file.data.extend(data)
            file.modified = datetime.now(UTC)

    def lose_node(self, node_id: str) -> None:
        """Remove a node from the pool: the files of every task that ran there are gone."""
        with self._lock:
            self._lost_nodes.add(node_id)

    # ----------------------------------------------------------------- wire operations

    def _task_file(self, job_id: str, task_id: str, path: str) -> _File:
        job = self._job(job_id)
        task = self._task(job, task_id)
        node = (task.get("nodeInfo") or {}).get("nodeId")
        if node is None:
            raise _service.BatchError(
                409,
                "OperationInvalidForCurrentState",
                "The specified operation is not valid for the current state of the resource.",
            )
        if node in self._lost_nodes:
            raise _service.BatchError(404, "NodeNotFound", "The specified node does not exist.")
        file = self._files.get((job_id.lower(), task_id.lower()), {}).get(path)
        if file is None:
            raise _service.BatchError(
                404, "FileNotFound", "The specified file does not exist.", {"FilePath": path}
            )
        return file

    def _file_headers(self, job_id: str, task_id: str, path: str, file: _File) -> dict[str, str]:
        return {
            "ocp-batch-file-url": f"{self.base_url}/jobs/{job_id}/tasks/{task_id}/files/{path}",
            "ocp-batch-file-isdirectory": "False",
            "ocp-batch-file-mode": "0100644",
            "ocp-creation-time": _rfc1123(file.created),
            "Last-Modified": _rfc1123(file.modified),
        }

    def task_file_properties(self, job_id: str, task_id: str, path: str) -> _service.Reply:
        """HEAD /jobs/{jobId}/tasks/{taskId}/files/{filePath}: properties in headers."""
        with self._lock:
            file = self._task_file(job_id, task_id, path)
            headers = self._file_headers(job_id, task_id, path, file)
            headers["Content-Length"] = str(len(file.data))
            return _service.Reply(200, None, headers)

    def task_file(
        self, job_id: str, task_id: str, path: str, byte_range: str | None
    ) -> _service.Reply:
        """GET /jobs/{jobId}/tasks/{taskId}/files/{filePath}, whole or ``bytes=a-b``.

        The range comes from the ``ocp-range`` header (or ``Range``); a range starting past
        the end is 416 InvalidRange, as the service answers.
        """
        with self._lock:
            file = self._task_file(job_id, task_id, path)
            data = bytes(file.data)
            headers = self._file_headers(job_id, task_id, path, file)
        if byte_range:
            start, end = _parse_range(byte_range, len(data))
            data = data[start : end + 1]
        reply = _service.Reply(200, None, headers)
        reply.raw = data
        return reply

    def reactivate_task(self, job_id: str, task_id: str) -> _service.Reply:
        """POST /jobs/{jobId}/tasks/{taskId}/reactivate: a failed task in an active job only."""
        with self._lock:
            job = self._job(job_id)
            code = _REACTIVATE_REFUSED.get(job.body["state"])
            if code:
                raise _service.BatchError(409, code, f"The specified job is {job.body['state']}.")
            task = self._task(job, task_id)
            if task["state"] != "completed":
                raise _service.BatchError(
                    409,
                    "TaskNotCompleted",
                    "The specified task is not in a completed state, and the "
                    "requested operation can be performed only on completed tasks.",
                )
            if task["executionInfo"].get("result") != "failure":
                raise _service.BatchError(
                    409,
                    "TaskSucceeded",
                    "The specified task has already completed successfully, and "
                    "the requested operation cannot be performed on successful "
                    "tasks.",
                )
            requeues = task["executionInfo"].get("requeueCount", 0)
            self._set_task_state(job, task, "active", 0)
            # Reactivation forgets the exit code and failure info and resets the retries.
            task["executionInfo"] = {"retryCount": 0, "requeueCount": requeues}
            task.pop("nodeInfo", None)
            self._files.pop((job_id.lower(), task_id.lower()), None)
            return _service.Reply(204)


def _parse_range(text: str, size: int) -> tuple[int, int]:
    spec = text.strip()
    if not spec.startswith("bytes="):
        raise _service.BatchError(
            400,
            "InvalidHeaderValue",
            "The value provided for one of the HTTP headers was not in the correct format.",
            {"HeaderName": "ocp-range", "HeaderValue": text},
        )
    first, _, last = spec[len("bytes=") :].partition("-")
    try:
        start = int(first) if first else max(0, size - int(last))
        end = int(last) if first and last else size - 1
    except ValueError:
        raise _service.BatchError(
            400,
            "InvalidHeaderValue",
            "The value provided for one of the HTTP headers was not in the correct format.",
            {"HeaderName": "ocp-range", "HeaderValue": text},
        ) from None
    if start >= size or end < start:
        raise _service.BatchError(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        )
    return start, min(end, size - 1)
