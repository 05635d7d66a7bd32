"""`batchtasks logs JOB TASK`: a task's stdout or stderr, from its node while the task's files
are there, else from the job's log upload in blob storage; it always says which it read.

Exit codes: 0 printed, 1 no logs (the reason is printed), 2 usage.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from batchtasks.clock import Clock
from batchtasks.exits import Exit
from batchtasks.ops.declared import STREAM_FILES, DeclaredJob
from batchtasks.ops.reads import Reader, wire
from batchtasks.ops.render import plain
from batchtasks.ops.sources import BlobFile, LogSource, NodeFile, tail_start
from batchtasks.task import DEFAULT_LOG_FILE_PATTERN


@dataclass(frozen=True)
class LogsOptions:
    """Which stream, whether to follow, how many final lines, how often to poll."""

    stream: str = "stdout"
    follow: bool = False
    tail: int | None = None
    interval: float = 2.0


class NoLogs(Exception):
    """Logs cannot be shown; the message says why, in the user's terms."""


def upload_url(task: Mapping[str, Any], job: DeclaredJob, name: str) -> str | None:
    """Return the blob URL of a task's uploaded log file, or None when it has no log upload.

    The task's own outputFiles (as Batch holds them) say where the upload goes; the stack
    file's `logs:` is the fallback for a task whose outputFiles were not returned.

    Parameters
    ----------
    task
        The task's REST body (with outputFiles), or empty.
    job
        The declared job.
    name
        ``stdout.txt`` or ``stderr.txt``.

    Returns
    -------
    str | None
        The blob URL.
    """
    for output in task.get("outputFiles") or ():
        if output.get("filePattern") != DEFAULT_LOG_FILE_PATTERN:
            continue
        container = (output.get("destination") or {}).get("container") or {}
        url = container.get("containerUrl")
        if url:
            path = (container.get("path") or "").strip("/")
            return f"{url.rstrip('/')}/{path + '/' if path else ''}{name}"
    if job.logs is not None:
        return job.logs.url(task.get("id") or "") + name
    return None


def choose_source(
    reader: Reader,
    job: DeclaredJob,
    task_id: str,
    task: Mapping[str, Any],
    name: str,
    credential: Callable[[], Any],
) -> LogSource:
    """Return the node file while it exists, else the blob upload; raise NoLogs saying why.

    Parameters
    ----------
    reader
        The Batch reader.
    job
        The declared job.
    task_id
        The task.
    task
        Its REST body (state, nodeInfo, outputFiles).
    name
        The file name of the stream.
    credential
        Makes the credential for blob storage (DefaultAzureCredential).

    Returns
    -------
    LogSource
        Where to read.

    Raises
    ------
    NoLogs
        When neither holds the file, with the reason.
    """
    state = wire(task.get("state", ""))
    node = (task.get("nodeInfo") or {}).get("nodeId")
    if state == "active" and node is None:
        raise NoLogs(
            f"task {task_id!r} of job {job.id!r} has not run yet (state active), so it has no logs"
        )
    node_file = NodeFile(reader, job.id, task_id, name, node)
    if node_file.size() is not None:
        return node_file
    if state in ("running", "preparing"):
        # Its node is there while it runs; the file just does not exist yet.
        raise NoLogs(
            f"task {task_id!r} is {state} on node {node} and has not written {name} "
            "yet (--follow waits for it)"
        )
    url = upload_url({**task, "id": task_id}, job, name)
    if url is None:
        raise NoLogs(
            f"the node no longer holds the files of task {task_id!r}, and job "
            f"{job.id!r} declares no log container (logs: in the stack file), so "
            "nothing was uploaded"
        )
    blob = BlobFile(url, credential())
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    try:
        found = blob.size()
    except ServiceRequestError as error:
        raise NoLogs(
            f"the node no longer holds the files of task {task_id!r}, and blob "
            f"storage at {url} cannot be reached ({plain(error.message or error)})"
        ) from None
    except ClientAuthenticationError as error:
        raise NoLogs(
            f"not allowed to read {url}: the identity needs Storage Blob Data Reader "
            f"on the log container ({plain(error.message or error)})"
        ) from None
    except HttpResponseError as error:
        if error.status_code == 403:
            raise NoLogs(
                f"not allowed to read {url}: the identity needs Storage Blob Data "
                "Reader on the log container"
            ) from None
        raise
    if found is None:
        when = (
            "the upload happens when the task completes"
            if state != "completed"
            else "the task completed but its upload is missing (the node may have been lost "
            "before uploading, or the identity could not write)"
        )
        raise NoLogs(
            f"the node no longer holds the files of task {task_id!r} and there is no "
            f"log upload at {url}: {when}"
        )
    return blob


def _write(out: BinaryIO, data: bytes) -> None:
    out.write(data)
    out.flush()


def run_logs(
    reader: Reader,
    job: DeclaredJob,
    task_id: str,
    options: LogsOptions,
    *,
    out: BinaryIO | None = None,
    err: TextIO | None = None,
    credential: Callable[[], Any] | None = None,
    clock: Clock | None = None,
) -> int:
    """Print a task's stdout or stderr, following it while the task runs if asked.

    Parameters
    ----------
    reader
        The Batch reader of this run.
    job
        The declared job.
    task_id
        The task.
    options
        Stream, follow, tail, poll interval.
    out, err
        Where the log bytes and the messages go (stdout's buffer and stderr by default).
    credential
        Makes the blob storage credential (DefaultAzureCredential by default).
    clock
        What the pauses between polls use (the reader's retry policy's by default).

    Returns
    -------
    int
        0 when logs were printed, 1 when there are none (the reason printed to err).
    """
    err = err or sys.stderr
    clock = clock or reader.policy.clock
    if credential is None:
        from batchtasks.auth import batch_credential

        # The same DefaultAzureCredential chain as for Batch; blob storage takes its token.
        credential = batch_credential
    name = STREAM_FILES[options.stream]
    declared = "" if job.has_task(task_id) else " (not declared in the stack file)"
    try:
        while True:
            task = reader.task(job.id, task_id)
            if task is None:
                raise NoLogs(f"task {task_id!r} does not exist in job {job.id!r}{declared}")
            try:
                source = choose_source(reader, job, task_id, task, name, credential)
                break
            except NoLogs:
                # --follow waits for a task to start and write; a completed one has no more.
                if not options.follow or wire(task.get("state", "")) == "completed":
                    raise
            clock.sleep(options.interval)
    except NoLogs as reason:
        print(f"batchtasks: no {options.stream} for task {task_id!r}: {reason}", file=err)
        return Exit.FAILED
    out = out if out is not None else sys.stdout.buffer
    print(f"batchtasks: reading {source.description}{declared}", file=err, flush=True)
    size = source.size() or 0
    offset = 0 if options.tail is None else tail_start(source, size, options.tail)
    if size > offset:
        _write(out, source.read(offset, size - 1))
        offset = size
    if not (options.follow and isinstance(source, NodeFile)):
        return Exit.OK
    while True:
        task = reader.task(job.id, task_id)
        finished = task is None or wire(task.get("state", "")) == "completed"
        size_now = source.size()
        if size_now is None:
            print(
                "batchtasks: the node no longer holds the file; stopped following "
                "(try again for the log upload)",
                file=err,
            )
            return Exit.OK
        if size_now > offset:
            _write(out, source.read(offset, size_now - 1))
            offset = size_now
        elif finished:
            return Exit.OK
        clock.sleep(options.interval)
