"""HTTPS front of the Batch double: routing, auth, faults, counters, and the test-facing API.

The real azure-batch client and azure-identity chain reach it with no hook in product code:
the server's CA goes into REQUESTS_CA_BUNDLE, a stand-in ``az`` goes first on PATH, and
AZURE_TOKEN_CREDENTIALS picks the CLI credential (see ``BatchApiDouble.client_env``).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import trustme

from .faults import FaultPlan
from .login import BATCH_RESOURCE, audience_of, write_fake_az
from .odata import parse_filter
from .service import MAX_BODY_BYTES, BatchError, BatchService, Page, Reply, error_body

API_VERSION = "2025-06-01"
DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class RecordedRequest:
    """One request the double received.

    ``route`` is the counter key (``"POST addtaskcollection"``); ``status`` is None when
    the response was deliberately lost.
    """

    method: str
    route: str
    path: str
    query: dict[str, str]
    status: int | None
    body: bytes


@dataclass(frozen=True)
class _Route:
    kind: str
    job_id: str | None = None
    task_id: str | None = None
    file_path: str | None = None


def route_of(method: str, path: str) -> _Route:
    """Classify a request path into the route kinds the counters use.

    Parameters
    ----------
    method : str
        HTTP method.
    path : str
        URL path, still percent-encoded.

    Returns
    -------
    _Route
        The kind (``job``, ``jobs``, ``terminatejob``, ``taskcounts``, ``task``, ``tasks``,
        ``addtaskcollection``, ``terminatetask``, ``reactivatetask``, ``taskfile`` or
        ``unknown``) and the ids (and file path) in the path.
    """
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if not parts or parts[0] != "jobs":
        return _Route("unknown")
    if len(parts) == 1:
        return _Route("jobs" if method == "GET" else "job")
    job = parts[1]
    if len(parts) == 2:
        return _Route("job", job)
    if len(parts) == 3:
        kinds = {
            "terminate": "terminatejob",
            "taskcounts": "taskcounts",
            "addtaskcollection": "addtaskcollection",
        }
        if parts[2] == "tasks":
            return _Route("tasks" if method == "GET" else "task", job)
        return _Route(kinds.get(parts[2], "unknown"), job)
    if parts[2] != "tasks":
        return _Route("unknown")
    if len(parts) == 4:
        return _Route("task", job, parts[3])
    if len(parts) == 5 and parts[4] == "terminate":
        return _Route("terminatetask", job, parts[3])
    if len(parts) == 5 and parts[4] == "reactivate":
        return _Route("reactivatetask", job, parts[3])
    if len(parts) >= 6 and parts[4] == "files":
        return _Route("taskfile", job, parts[3], "/".join(parts[5:]))
    return _Route("unknown")


class _LostResponse(Exception):
    """The work is done; the answer must never reach the client."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: answers go out at once instead of waiting for the client's acknowledgement.
    disable_nagle_algorithm = True
    # Idle keep-alive connections end after this; the client simply reconnects.
    timeout = 30
    server: _TlsServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        double = self.server.double
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        route = route_of(self.command, url.path)
        key = f"{self.command} {route.kind}"
        request_id = str(uuid.uuid4())
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        arrived = time.monotonic()
        outcome: Reply | BatchError | None
        try:
            outcome = self._answer(double, route, key, query, raw, length)
        except _LostResponse:
            outcome = None
        except BatchError as error:
            outcome = error
        except Exception as error:  # a defect in the double: say so rather than hang up
            outcome = BatchError(500, "InternalError", f"Batch API double failed: {error!r}")
        # Record before answering, so a client that got its answer sees it counted.
        status = None if outcome is None else outcome.status
        double._record(RecordedRequest(self.command, key, url.path, query, status, raw))
        data = b"" if outcome is None else self._encoded(outcome, request_id)
        # The latency is the request's time at the service, its work (the answer's bytes too)
        # included: the service's servers work on concurrent requests in parallel, where this
        # process has one CPU.
        remaining = double.latency - (time.monotonic() - arrived)
        if remaining > 0:
            time.sleep(remaining)
        if outcome is None:
            self.close_connection = True
        elif isinstance(outcome, BatchError):
            self._send_error(outcome, request_id, data)
        else:
            self._send(outcome, request_id, data)

    def _answer(
        self,
        double: BatchApiDouble,
        route: _Route,
        key: str,
        query: dict[str, str],
        raw: bytes,
        length: int,
    ) -> Reply:
        self._authorize()
        version = query.get("api-version")
        if version is None:
            raise BatchError(
                400,
                "MissingRequiredQueryParameter",
                "A query parameter that's mandatory for this request is not specified.",
                {"QueryParameterName": "api-version"},
            )
        if version != API_VERSION:
            raise BatchError(
                400,
                "UnsupportedRequestVersion",
                "The specified request version is not supported.",
                {"QueryParameterName": "api-version", "QueryParameterValue": version},
            )
        fault = double.faults.take_error(key)
        if fault is not None:
            error = BatchError(fault.status, fault.code, "Injected fault.")
            if fault.retry_after is not None:
                error.values["RetryAfter"] = f"{fault.retry_after:g}"
            raise error
        if length >= MAX_BODY_BYTES:
            raise BatchError(
                413,
                "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.",
                {"MaxLimit": str(MAX_BODY_BYTES)},
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError as error:
            raise BatchError(
                400, "InvalidRequestBody", "The specified Request Body is not syntactically valid."
            ) from error
        reply = self._dispatch(double, route, query, body)
        if double.faults.take_drop(key):
            raise _LostResponse
        late = double.faults.take_error_after_commit(key)
        if late is not None:
            # The work is done, yet the client hears a server error (and may retry).
            raise BatchError(late.status, late.code, "Injected fault after the work was done.")
        return reply

    def _authorize(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            raise BatchError(
                401, "AuthenticationFailed", "Server failed to authenticate the request."
            )
        if audience_of(token) != BATCH_RESOURCE:
            raise BatchError(
                401,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource.",
            )

    def _dispatch(
        self, double: BatchApiDouble, route: _Route, query: dict[str, str], body: Any
    ) -> Reply:
        service = double.service
        method, kind = self.command, route.kind
        job, task = route.job_id or "", route.task_id or ""
        select = [s.strip() for s in query["$select"].split(",")] if "$select" in query else None
        if kind == "jobs":
            states, offset, limit = self._listing(query)
            page = service.list_jobs(states, select, offset, limit)
            return self._page_reply(double, "/jobs", "jobs", query, page)
        if kind == "tasks":
            states, offset, limit = self._listing(query)
            page = service.list_tasks(job, states, select, offset, limit, query.get("$filter"))
            return self._page_reply(double, f"/jobs/{job}/tasks", "tasks", query, page)
        handlers = {
            ("POST", "job"): lambda: service.create_job(body),
            ("GET", "job"): lambda: service.get_job(job, select),
            ("PATCH", "job"): lambda: service.update_job(job, body, replace=False),
            ("PUT", "job"): lambda: service.update_job(job, body, replace=True),
            ("DELETE", "job"): lambda: service.delete_job(job),
            ("POST", "terminatejob"): lambda: service.terminate_job(job, body),
            ("GET", "taskcounts"): lambda: service.task_counts(job),
            # The body was parsed for this request alone: the service keeps it without a copy.
            ("POST", "task"): lambda: service.create_task(job, body, owned=True),
            ("POST", "addtaskcollection"): lambda: service.add_collection(
                job,
                body,
                double.faults.take_task_error,
                double.faults.take_task_refusal,
                owned=True,
            ),
            ("GET", "task"): lambda: service.get_task(job, task, select),
            ("PUT", "task"): lambda: service.replace_task(job, task, body),
            ("DELETE", "task"): lambda: service.delete_task(job, task),
            ("POST", "terminatetask"): lambda: service.terminate_task(job, task),
            ("POST", "reactivatetask"): lambda: service.reactivate_task(job, task),
            ("HEAD", "taskfile"): lambda: service.task_file_properties(
                job, task, route.file_path or ""
            ),
            ("GET", "taskfile"): lambda: service.task_file(
                job,
                task,
                route.file_path or "",
                self.headers.get("ocp-range") or self.headers.get("Range"),
            ),
        }
        handler = handlers.get((method, kind))
        if handler is None:
            raise BatchError(
                400,
                "InvalidUri",
                "The requested URI does not represent any resource on the server.",
            )
        reply = handler()
        if reply.body is not None and kind in ("job", "task"):
            entity = "jobs" if kind == "job" else "tasks"
            reply.body = {"odata.metadata": f"{double.endpoint}/$metadata#{entity}/@Element"} | (
                reply.body
            )
        return reply

    @staticmethod
    def _listing(query: dict[str, str]) -> tuple[frozenset[str] | None, int, int]:
        try:
            limit = int(query.get("maxresults", DEFAULT_PAGE_SIZE))
            offset = int(query.get("$skiptoken", 0))
        except ValueError as error:
            raise BatchError(
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
            ) from error
        if not 1 <= limit <= DEFAULT_PAGE_SIZE:
            raise BatchError(
                400,
                "OutOfRangeQueryParameterValue",
                "A query parameter specified in the request URI is outside the permissible range.",
                {"QueryParameterName": "maxresults", "QueryParameterValue": str(limit)},
            )
        return parse_filter(query.get("$filter")), offset, limit

    @staticmethod
    def _page_reply(
        double: BatchApiDouble, path: str, entity: str, query: dict[str, str], page: Page
    ) -> Reply:
        body: dict[str, Any] = {
            "odata.metadata": f"{double.endpoint}/$metadata#{entity}",
            "value": page.items,
        }
        if page.next_offset is not None:
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = str(page.next_offset)
            body["odata.nextLink"] = f"{double.endpoint}{path}?{urlencode(params)}"
        return Reply(200, body)

    def _encoded(self, outcome: Reply | BatchError, request_id: str) -> bytes:
        """The answer's body as sent (a HEAD answer says how long it would be, sends none)."""
        if isinstance(outcome, BatchError):
            body = {
                "odata.metadata": f"{self.server.double.endpoint}/$metadata"
                "#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
                **error_body(outcome, request_id),
            }
            return json.dumps(body).encode()
        if outcome.raw is not None:
            return outcome.raw
        return json.dumps(outcome.body).encode() if outcome.body is not None else b""

    def _send(self, reply: Reply, request_id: str, data: bytes) -> None:
        if reply.raw is not None:
            self._send_raw(reply, data, request_id)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name != "Content-Length":
                self.send_header(name, value)
        if self.command == "HEAD":
            # Properties travel in headers; HEAD sends no body, but says how long it would be.
            self._common_headers(
                request_id, int(reply.headers.get("Content-Length", 0)), content_type=None
            )
            return
        self._common_headers(request_id, len(data))
        self.wfile.write(data)

    def _send_raw(self, reply: Reply, data: bytes, request_id: str) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self._common_headers(request_id, len(data), content_type="application/octet-stream")
        self.wfile.write(data)

    def _send_error(self, error: BatchError, request_id: str, data: bytes) -> None:
        self.send_response(error.status)
        retry_after = error.values.get("RetryAfter")
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self._common_headers(request_id, len(data))
        if self.command != "HEAD":  # a HEAD answer has no body, errors included
            self.wfile.write(data)

    def _common_headers(
        self,
        request_id: str,
        length: int,
        content_type: str | None = "application/json;odata=minimalmetadata",
    ) -> None:
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("request-id", request_id)
        self.send_header("DataServiceVersion", "3.0")
        client_request_id = self.headers.get("client-request-id")
        if client_request_id:
            self.send_header("client-request-id", client_request_id)
        self.end_headers()


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext, double: BatchApiDouble) -> None:
        super().__init__((double.host, 0), _Handler)
        self.context = context
        self.double = double

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the connection's own thread, so one slow
        # client cannot stall accept() for the others.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request are routine here (lost-response faults, retries).
        pass


class BatchApiDouble:
    """A local HTTPS double of the Batch data-plane API, run in a background thread.

    Parameters
    ----------
    host : str
        Address to listen on; the certificate covers ``127.0.0.1`` and ``localhost``.
    latency : float
        Seconds from a request's arrival (its body read) to its answer being sent, the double's
        work on it and the answer's bytes included (a request whose work takes longer is
        answered when done); the wait holds no state.
    deleting_polls : int
        GETs of a deleted job that still see ``deleting`` before it is gone;
        ``DELETING_FOREVER`` keeps it deleting for as long as anyone looks.
    terminating_polls : int
        GETs of a terminated job that still see ``terminating`` before ``completed``.

    Examples
    --------
    >>> with BatchApiDouble() as api:
    ...     os.environ.update(api.client_env())
    ...     client = BatchClient(api.endpoint, DefaultAzureCredential())
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        latency: float = 0.0,
        deleting_polls: int = 1,
        terminating_polls: int = 1,
    ) -> None:
        self.host = host
        self._defaults = (latency, deleting_polls, terminating_polls)
        self.latency = latency
        self.faults = FaultPlan()
        self.service = BatchService("", deleting_polls, terminating_polls)
        self._server: _TlsServer | None = None
        self._thread: threading.Thread | None = None
        self._workdir: Path | None = None
        self._log_lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._counts: Counter[str] = Counter()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Issue a CA and certificate, write the stand-in ``az``, and start serving.

        Returns
        -------
        BatchApiDouble
            Itself, started.
        """
        if self._server is not None:
            return self
        workdir = Path(tempfile.mkdtemp(prefix="batchapi-"))
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        (workdir / "bin").mkdir()
        write_fake_az(workdir / "bin")
        self._workdir = workdir
        self._server = _TlsServer(context, self)
        self.service.base_url = self.endpoint
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="batchapi-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the CA file and the stand-in ``az``."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._server = self._thread = self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all jobs, tasks, faults and counts; restore latency and poll settings."""
        self.service.reset()
        self.faults.clear()
        self.reset_counts()
        latency, deleting, terminating = self._defaults
        self.latency = latency
        self.service.deleting_polls = deleting
        self.service.terminating_polls = terminating

    # ----------------------------------------------------------------- how clients connect

    def _started(self) -> tuple[_TlsServer, Path]:
        if self._server is None or self._workdir is None:
            raise RuntimeError("the Batch API double is not started; call start() first")
        return self._server, self._workdir

    @property
    def endpoint(self) -> str:
        """The account URL to give BatchClient, e.g. ``https://127.0.0.1:50123``."""
        server, _ = self._started()
        return f"https://{self.host}:{server.server_address[1]}"

    @property
    def ca_bundle_path(self) -> str:
        """Path of the PEM file holding the CA that signed the server's certificate."""
        return str(self._started()[1] / "ca.pem")

    @property
    def az_dir(self) -> str:
        """Directory holding the stand-in ``az`` executable."""
        return str(self._started()[1] / "bin")

    def client_env(self) -> dict[str, str]:
        """Environment variables a client process needs to reach the double.

        Returns
        -------
        dict[str, str]
            REQUESTS_CA_BUNDLE, PATH (stand-in ``az`` first) and AZURE_TOKEN_CREDENTIALS.
        """
        path = os.environ.get("PATH", "")
        return {
            "REQUESTS_CA_BUNDLE": self.ca_bundle_path,
            "PATH": self.az_dir + (os.pathsep + path if path else ""),
            "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
        }

    # ----------------------------------------------------------------- counters and log

    def _record(self, request: RecordedRequest) -> None:
        with self._log_lock:
            self._log.append(request)
            self._counts[request.route] += 1

    def counts(self) -> Counter[str]:
        """Requests received per route, keyed like ``"POST addtaskcollection"``.

        Returns
        -------
        Counter[str]
            A copy; ``.total()`` gives the number of all requests.
        """
        with self._log_lock:
            return Counter(self._counts)

    def total_requests(self) -> int:
        """Number of requests received since the last reset."""
        with self._log_lock:
            return len(self._log)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Copy of the request log, oldest first."""
        with self._log_lock:
            return list(self._log)

    def reset_counts(self) -> None:
        """Clear the counters and the request log."""
        with self._log_lock:
            self._log.clear()
            self._counts.clear()

    # ----------------------------------------------------------------- faults

    def inject(
        self,
        route: str,
        status: int = 503,
        *,
        retry_after: float | None = None,
        times: int = 1,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests on ``route`` with an error (503 unless given),
        changing nothing; the parameters are those of `FaultPlan.inject`."""
        self.faults.inject(route, status, retry_after=retry_after, times=times, code=code)

    def drop_after_commit(self, route: str, times: int = 1) -> None:
        """Do the next ``times`` requests on ``route``, then hang up without answering.

        Parameters
        ----------
        route : str
            Counter key such as ``"POST addtaskcollection"``, or ``"*"``.
        times : int
            How many responses are lost.
        """
        self.faults.drop_after_commit(route, times)

    def collection_server_errors(self, task_ids: list[str], times: int = 1) -> None:
        """Report these tasks as ``servererror`` (not added) in add-collection results.

        Parameters
        ----------
        task_ids : list[str]
            Task ids, compared ignoring case.
        times : int
            Failed attempts per task before one succeeds.
        """
        self.faults.collection_server_errors(task_ids, times)

    def error_after_commit(self, route: str, status: int = 500, times: int = 1) -> None:
        """Do the next ``times`` requests on ``route``, then answer ``status`` anyway.

        Parameters
        ----------
        route : str
            Counter key such as ``"POST addtaskcollection"``, or ``"*"``.
        status : int
            A 5xx status.
        times : int
            How many requests are answered so.
        """
        self.faults.error_after_commit(route, status, times)

    def collection_client_errors(
        self, task_ids: list[str], code: str, message: str, values: dict[str, str] | None = None
    ) -> None:
        """Refuse these tasks as ``clienterror`` in add-collection results, every time.

        Parameters
        ----------
        task_ids : list[str]
            Task ids, compared ignoring case.
        code, message : str
            Batch error code and message.
        values : dict or None
            Detail values (``PropertyName``, ``Reason``, ...).
        """
        self.faults.collection_client_errors(task_ids, code, message, values)

    # ----------------------------------------------------------------- state access

    @property
    def deleting_polls(self) -> int:
        """GETs of a deleted job that still see ``deleting`` (settable; reset restores)."""
        return self.service.deleting_polls

    @deleting_polls.setter
    def deleting_polls(self, value: int) -> None:
        self.service.deleting_polls = value

    @property
    def terminating_polls(self) -> int:
        """GETs of a terminated job that still see ``terminating`` (settable)."""
        return self.service.terminating_polls

    @terminating_polls.setter
    def terminating_polls(self, value: int) -> None:
        self.service.terminating_polls = value

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Stored job bodies (copies) keyed by job id as created."""
        return self.service.jobs()

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One stored job body (copy), found ignoring case, or None."""
        return next((b for k, b in self.jobs().items() if k.lower() == job_id.lower()), None)

    def tasks(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Stored task bodies (copies) of a job, keyed by task id as created.

        Raises
        ------
        BatchError
            404 JobNotFound if the job does not exist.
        """
        return self.service.tasks(job_id)

    def add_job(self, job_id: str, pool_id: str = "pool", **fields: Any) -> dict[str, Any]:
        """Create a job directly, as a client would have (camelCase ``fields``).

        Parameters
        ----------
        job_id : str
            The job id.
        pool_id : str
            ``poolInfo.poolId``.
        **fields : Any
            Further REST properties, e.g. ``onAllTasksComplete="terminatejob"``.

        Returns
        -------
        dict[str, Any]
            The stored body.
        """
        return self.service.add_job({"id": job_id, "poolInfo": {"poolId": pool_id}, **fields})

    def add_task(
        self, job_id: str, task_id: str, command_line: str = "true", **fields: Any
    ) -> dict[str, Any]:
        """Add a task directly, whatever the job's state (camelCase ``fields``).

        Returns
        -------
        dict[str, Any]
            The stored body.
        """
        body = {"id": task_id, "commandLine": command_line, **fields}
        return self.service.add_task(job_id, body)

    def set_job_state(self, job_id: str, state: str) -> None:
        """Force a job's state, e.g. ``disabled``."""
        self.service.set_job_state(job_id, state)

    def update_job_fields(self, job_id: str, **fields: Any) -> None:
        """Change stored job fields (wire spelling) as someone outside the program would,
        bypassing the service's rules."""
        self.service.update_job_fields(job_id, fields)

    def set_task_state(self, job_id: str, task_id: str, state: str, exit_code: int = 0) -> None:
        """Move a task to ``active``, ``preparing``, ``running`` or ``completed``.

        A completed task with a nonzero ``exit_code`` counts as failed.
        """
        self.service.set_task_state(job_id, task_id, state, exit_code)

    def start_task(
        self, job_id: str, task_id: str, node_id: str = "tvm-1", preparing: bool = False
    ) -> None:
        """Schedule a task on a node, as the pool would (see `TaskExecution.start_task`)."""
        self.service.start_task(job_id, task_id, node_id, preparing)

    def finish_task(
        self,
        job_id: str,
        task_id: str,
        exit_code: int | None = 0,
        failure: dict[str, str] | None = None,
    ) -> str:
        """End a task's attempt; retried while its budget lasts (`TaskExecution.finish_task`)."""
        return self.service.finish_task(job_id, task_id, exit_code, failure)

    def write_task_file(self, job_id: str, task_id: str, name: str, data: bytes) -> None:
        """Append to a task's file on its node, e.g. ``stdout.txt``."""
        self.service.write_task_file(job_id, task_id, name, data)

    def lose_node(self, node_id: str) -> None:
        """Remove a node: the task file API answers 404 for every task that ran there."""
        self.service.lose_node(node_id)

    def delete_task_out_of_band(self, job_id: str, task_id: str) -> None:
        """Remove a task as someone outside the program would."""
        self.service.delete_task_out_of_band(job_id, task_id)

    def delete_job_out_of_band(self, job_id: str) -> None:
        """Remove a job and its tasks at once, as someone outside the program would."""
        self.service.delete_job_out_of_band(job_id)
