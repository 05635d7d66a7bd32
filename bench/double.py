"""The Batch API double in a process of its own, so its work does not share the benchmark's CPU
time and interpreter lock.

`DoubleProcess` starts `batchapi.BatchApiDouble` in a child process (spawned, so it does not
inherit the benchmark's memory) and offers the calls the benchmark makes (reset, latency, jobs,
tasks, request counts) over a pipe. The double's handler disables Nagle's algorithm
(TCP_NODELAY), so small answers are not held back waiting for an acknowledgement.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections import Counter
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self


def _serve(connection: Connection, latency: float) -> None:
    """Child process: run the double and answer calls until told to stop."""
    from batchapi import BatchApiDouble

    # The double keeps every task it is sent, a few million objects at 100,000 tasks, and the
    # cyclic collector's passes over them cost more than parsing the requests (5 ms instead of
    # 2 ms per 100-task collection). Stored tasks hold no cycles: reference counting frees
    # them, and what cycles a request leaves are collected at each reset.
    gc.disable()
    with BatchApiDouble(latency=latency) as api:
        connection.send({"endpoint": api.endpoint, "client_env": api.client_env()})
        while True:
            name, args, kwargs = connection.recv()
            if name == "stop":
                connection.send(None)
                return
            try:
                if name == "set_latency":
                    api.latency = args[0]
                    result: Any = None
                elif name == "task_count":
                    result = len(api.tasks(args[0]))
                elif name == "task":
                    result = api.tasks(args[0]).get(args[1])
                else:
                    result = getattr(api, name)(*args, **kwargs)
                if name == "reset":
                    gc.collect()
                connection.send(("ok", result))
            except Exception as error:  # the benchmark re-raises it in its own process
                connection.send(("error", f"{type(error).__name__}: {error}"))


class DoubleProcess:
    """A Batch API double running in a child process.

    Parameters
    ----------
    latency
        Seconds from a request's arrival to its answer, the double's work included.

    Examples
    --------
    >>> with DoubleProcess() as api:
    ...     api.reset(); api.latency = 0.05
    """

    def __init__(self, latency: float = 0.0) -> None:
        self._latency = self._initial_latency = latency
        self._connection: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.endpoint = ""
        self._client_env: dict[str, str] = {}

    def __enter__(self) -> Self:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self._latency), name="batchapi-double", daemon=True
        )
        self._process.start()
        self._connection = parent
        started = parent.recv()
        self.endpoint = started["endpoint"]
        self._client_env = started["client_env"]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            try:
                self._connection.send(("stop", (), {}))
                self._connection.recv()
            except (OSError, EOFError):
                pass
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
        self._connection = self._process = None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._connection is None:
            raise RuntimeError("the Batch API double process is not running")
        self._connection.send((name, args, kwargs))
        status, result = self._connection.recv()
        if status == "error":
            raise RuntimeError(f"Batch API double: {result}")
        return result

    # --- what the benchmark calls ------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The double's process id while it runs (for measuring its memory), else None."""
        return self._process.pid if self._process is not None else None

    @property
    def latency(self) -> float:
        """Seconds from a request's arrival to its answer, the double's work included."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._call("set_latency", value)
        self._latency = value

    def client_env(self) -> dict[str, str]:
        """Environment variables a client needs to reach the double."""
        return dict(self._client_env)

    def reset(self) -> None:
        """Forget all jobs, tasks, faults and counts."""
        self._call("reset")
        self._latency = self._initial_latency

    def reset_counts(self) -> None:
        """Clear the request counters."""
        self._call("reset_counts")

    def counts(self) -> Counter[str]:
        """Requests received per route since the last reset."""
        return Counter(self._call("counts"))

    def total_requests(self) -> int:
        """Requests received since the last reset."""
        return int(self._call("total_requests"))

    def add_job(self, job_id: str, pool_id: str = "pool", **fields: Any) -> dict[str, Any]:
        """Create a job directly, as a client would have."""
        return dict(self._call("add_job", job_id, pool_id, **fields))

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One stored job body, or None."""
        return self._call("job", job_id)

    def task_count(self, job_id: str) -> int:
        """How many tasks a job holds."""
        return int(self._call("task_count", job_id))

    def task(self, job_id: str, task_id: str) -> dict[str, Any] | None:
        """One stored task body (by its id as created), or None."""
        return self._call("task", job_id, task_id)
