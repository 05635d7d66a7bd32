"""Where `logs` reads a task's stdout or stderr: its node (Batch's task file API) or the log
upload in blob storage. Both read byte ranges, so --tail and --follow fetch only what they show.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError

from batchtasks.ops.reads import Reader

# Task file errors that mean "the files are not on a node (any more)".
FILES_GONE_CODES = frozenset(
    {
        "TaskFilesUnavailable",
        "TaskFilesCleanedup",
        "NodeNotFound",
        "FileNotFound",
        "OperationInvalidForCurrentState",
    }
)
# How much of a file the first --tail read takes; doubled until enough lines are in.
TAIL_CHUNK = 64 * 1024


class LogSource(Protocol):
    """A file that can be sized and read by byte range."""

    @property
    def description(self) -> str:
        """Say where the file is read from."""
        ...

    def size(self) -> int | None:
        """Return the file's length in bytes, or None when it is not there."""
        ...

    def read(self, start: int, end: int) -> bytes:
        """Return bytes start..end, both included."""
        ...


@contextlib.contextmanager
def quiet_failsafe_warnings() -> Iterator[None]:
    """Silence azure-batch's warning (with a traceback) about the empty body of a HEAD error:
    HEAD answers never carry one, and the status says all there is."""
    logger = logging.getLogger("azure.batch._utils.model_base")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _batch_code(error: HttpResponseError) -> str | None:
    from batchtasks.batch.client import error_code

    return error_code(error)


@dataclass
class NodeFile:
    """A task's file on its node, through the task file API (HEAD for size, ranged GET)."""

    reader: Reader
    job_id: str
    task_id: str
    name: str
    node: str | None

    @property
    def description(self) -> str:
        """Say where the file is read from."""
        where = f"node {self.node}" if self.node else "its node"
        return f"{self.name} of task {self.task_id} from {where} (Batch task file API)"

    def size(self) -> int | None:
        """Return the file's length, or None when the node no longer holds it."""
        client = self.reader.client
        try:
            with quiet_failsafe_warnings():
                properties = self.reader.call(
                    lambda: client.get_task_file_properties(self.job_id, self.task_id, self.name)
                )
        except HttpResponseError as error:
            # A HEAD answer carries no error body, so its code is unknown: 404 (node or file
            # gone) and 409 (files unavailable or cleaned up) both mean "not on a node".
            if error.status_code in (404, 409) or _batch_code(error) in FILES_GONE_CODES:
                return None
            raise
        return int(properties.content_length)

    def read(self, start: int, end: int) -> bytes:
        """Return a byte range of the file (the service's ocp-range header)."""
        client = self.reader.client
        return self.reader.call(
            lambda: b"".join(
                client.download_task_file(
                    self.job_id, self.task_id, self.name, ocp_range=f"bytes={start}-{end}"
                )
            )
        )


@dataclass
class BlobFile:
    """A task's uploaded log file in blob storage, read with the identity (no key, no SAS)."""

    url: str
    credential: Any
    client_factory: Callable[[str, Any], Any] | None = None

    @property
    def description(self) -> str:
        """Say where the file is read from."""
        return f"the log upload {self.url}"

    def _client(self) -> Any:
        if self.client_factory is not None:
            return self.client_factory(self.url, self.credential)
        from azure.storage.blob import BlobClient

        return BlobClient.from_blob_url(self.url, credential=self.credential)

    def size(self) -> int | None:
        """Return the blob's length, or None when there is no such blob."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return int(self._client().get_blob_properties().size)
        except ResourceNotFoundError:
            return None

    def read(self, start: int, end: int) -> bytes:
        """Return a byte range of the blob."""
        data: bytes = self._client().download_blob(offset=start, length=end - start + 1).readall()
        return data


def tail_start(source: LogSource, size: int, lines: int) -> int:
    """Return the offset where the last `lines` lines of a file begin.

    Parameters
    ----------
    source
        The file.
    size
        Its length in bytes.
    lines
        How many lines to keep (a final line without a newline counts).

    Returns
    -------
    int
        The byte offset, reading only as much of the end of the file as needed.
    """
    if lines <= 0 or size == 0:
        return size
    chunk = TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        data = source.read(start, size - 1)
        # A newline at the very end closes the last line; it does not start another.
        body = data[:-1] if data.endswith(b"\n") else data
        if body.count(b"\n") >= lines:
            cut = len(body)
            for _ in range(lines):
                cut = body.rfind(b"\n", 0, cut)
            return start + cut + 1
        if start == 0:
            return 0
        chunk *= 2
