"""Faults a test arms on the double: error statuses (before or after the work is done), lost
responses, per-task server and client errors in add-collection results.

Routes are named as the request counters name them, e.g. ``"POST addtaskcollection"``;
``"*"`` matches every route.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .service import BatchError

_DEFAULT_CODES = {
    400: "InvalidInput",
    404: "ResourceNotFound",
    409: "OperationInvalidForCurrentState",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServerBusy",
}


@dataclass
class ErrorFault:
    """An error answer to send instead of doing the request's work."""

    route: str
    status: int
    code: str
    retry_after: float | None
    remaining: int


def _matches(rule_route: str, route: str) -> bool:
    return rule_route in ("*", route)


class FaultPlan:
    """Armed faults, each consumed as requests hit it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: list[ErrorFault] = []
        self._drops: dict[str, int] = {}
        self._task_errors: dict[str, int] = {}
        self._late_errors: list[ErrorFault] = []
        self._task_refusals: dict[str, BatchError] = {}

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._errors.clear()
            self._drops.clear()
            self._task_errors.clear()
            self._late_errors.clear()
            self._task_refusals.clear()

    def inject(
        self,
        route: str,
        status: int,
        *,
        retry_after: float | None = None,
        times: int = 1,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests on ``route`` with ``status``, changing nothing.

        Parameters
        ----------
        route : str
            Counter key such as ``"POST task"``, or ``"*"``.
        status : int
            HTTP status, e.g. 503, 500 or 429.
        retry_after : float or None
            Seconds to send in a Retry-After header.
        times : int
            How many requests get the error.
        code : str or None
            Batch error code; by default the service's usual code for the status.

        Raises
        ------
        ValueError
            If ``status`` is not an error status or ``times`` is not positive.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status: {status} is not an HTTP error status")
        if times < 1:
            raise ValueError(f"times: {times} must be at least 1")
        fallback = "InternalError" if status >= 500 else "InvalidInput"
        chosen = code or _DEFAULT_CODES.get(status, fallback)
        with self._lock:
            self._errors.append(ErrorFault(route, status, chosen, retry_after, times))

    def drop_after_commit(self, route: str, times: int = 1) -> None:
        """Do the next ``times`` requests on ``route``, then close without answering.

        Parameters
        ----------
        route : str
            Counter key such as ``"POST addtaskcollection"``, or ``"*"``.
        times : int
            How many responses to lose.
        """
        if times < 1:
            raise ValueError(f"times: {times} must be at least 1")
        with self._lock:
            self._drops[route] = self._drops.get(route, 0) + times

    def error_after_commit(
        self, route: str, status: int = 500, times: int = 1, code: str | None = None
    ) -> None:
        """Do the next ``times`` requests on ``route``, then answer ``status`` anyway (a
        committed write the client hears as failed).

        Parameters
        ----------
        route : str
            Counter key such as ``"POST addtaskcollection"``, or ``"*"``.
        status : int
            A 5xx status.
        times : int
            How many requests to answer so.
        code : str or None
            Batch error code; by default the service's usual code for the status.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"status: {status} is not a server error status")
        if times < 1:
            raise ValueError(f"times: {times} must be at least 1")
        chosen = code or _DEFAULT_CODES.get(status, "InternalError")
        with self._lock:
            self._late_errors.append(ErrorFault(route, status, chosen, None, times))

    def take_error_after_commit(self, route: str) -> ErrorFault | None:
        """Consume and return the first armed after-commit error for ``route``, if any."""
        with self._lock:
            for fault in self._late_errors:
                if _matches(fault.route, route):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._late_errors.remove(fault)
                    return fault
            return None

    def collection_client_errors(
        self, task_ids: Iterable[str], code: str, message: str, values: dict[str, str] | None = None
    ) -> None:
        """Refuse these tasks with ``clienterror`` in add-collection results, every time.

        Parameters
        ----------
        task_ids : Iterable[str]
            Task ids (compared ignoring case).
        code, message : str
            The Batch error code and message.
        values : dict or None
            Detail values, e.g. ``{"PropertyName": ..., "Reason": ...}``.
        """
        with self._lock:
            for task_id in task_ids:
                self._task_refusals[task_id.lower()] = BatchError(
                    400, code, message, dict(values or {})
                )

    def take_task_refusal(self, task_id: str) -> BatchError | None:
        """The armed client error for a task, if any (it stays armed)."""
        if not self._task_refusals:
            return None  # asked for every task added: skip the lock when nothing is armed
        with self._lock:
            return self._task_refusals.get(task_id.lower())

    def collection_server_errors(self, task_ids: Iterable[str], times: int = 1) -> None:
        """Answer these tasks with ``servererror`` in add-collection results, ``times`` each.

        Parameters
        ----------
        task_ids : Iterable[str]
            Task ids (compared ignoring case, as the service does).
        times : int
            How many add attempts per task fail before one succeeds.
        """
        if times < 1:
            raise ValueError(f"times: {times} must be at least 1")
        with self._lock:
            for task_id in task_ids:
                key = task_id.lower()
                self._task_errors[key] = self._task_errors.get(key, 0) + times

    def take_error(self, route: str) -> ErrorFault | None:
        """Consume and return the first armed error for ``route``, if any."""
        with self._lock:
            for fault in self._errors:
                if _matches(fault.route, route):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._errors.remove(fault)
                    return fault
            return None

    def take_drop(self, route: str) -> bool:
        """Consume one armed lost response for ``route``; True if there was one."""
        with self._lock:
            for key in (route, "*"):
                if self._drops.get(key):
                    self._drops[key] -= 1
                    return True
            return False

    def take_task_error(self, task_id: str) -> bool:
        """Consume one armed server error for a task; True if there was one."""
        if not self._task_errors:
            return False  # asked for every task added: skip the lock when nothing is armed
        with self._lock:
            key = task_id.lower()
            if self._task_errors.get(key):
                self._task_errors[key] -= 1
                return True
            return False
