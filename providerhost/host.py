"""Drive the dynamic providers through Pulumi's own provider host, the way `pulumi up` does.

`pulumi up` does not call a dynamic provider's methods in the program's process: it starts
`python -m pulumi.dynamic` in the project directory and speaks gRPC to it (the ResourceProvider
service), sending each resource's properties as a protobuf Struct that carries the pickled
provider under `__provider`. `ProviderHost` starts that module and plays the engine's part;
`capture_registrations` runs a program under `AzureMocks` and returns what each dynamic resource
registered, `__provider` included, so the host gets exactly what the program would send.

Nothing here depends on pytest: benchmarks import it too.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import grpc
import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from batchtasks.preview.mocks import AzureMocks

PROVIDER_KEY = "__provider"
# What the engine sends for a value not known yet (during preview).
UNKNOWN = rpc.UNKNOWN
DYNAMIC_TYPE_PREFIX = "pulumi-python:dynamic"
START_TIMEOUT_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 120.0
# The engine takes gRPC messages of up to 400 MiB from providers (as the SDK's own clients do).
MAX_MESSAGE_BYTES = 400 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


class HostCallError(Exception):
    """The provider host aborted a call; the message carries the host's traceback.

    Attributes
    ----------
    method
        The gRPC method, e.g. "Create".
    code
        The gRPC status code the host answered with.
    details
        The host's text: for a provider exception, its formatted traceback.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method} aborted in the provider host ({code.name}):\n{details}")
        self.method = method
        self.code = code
        self.details = details


class HostStartError(Exception):
    """The provider host did not start; the message carries what it wrote to stderr."""


@dataclass(frozen=True)
class CheckOutcome:
    """A Check answer.

    Attributes
    ----------
    inputs
        The checked inputs (the engine sends these on to Diff, Create and Update).
    failures
        (property, reason) pairs, in the provider's order.
    """

    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


@dataclass(frozen=True)
class DiffOutcome:
    """A Diff answer.

    Attributes
    ----------
    changes
        True (some), False (none) or None (unknown).
    replaces
        Properties whose change replaces the resource.
    delete_before_replace
        Whether the old resource goes before the new one comes.
    """

    changes: bool | None
    replaces: list[str]
    delete_before_replace: bool


@dataclass(frozen=True)
class ResourceState:
    """What Create, Read or Update returned.

    Attributes
    ----------
    id
        The resource id ("" when Read found nothing).
    outputs
        The output properties, `__provider` included, with secret markers removed.
    secrets
        Top-level output keys that came back marked secret.
    inputs
        The inputs Read asked the engine to keep, or None.
    """

    id: str
    outputs: dict[str, Any]
    secrets: frozenset[str] = frozenset()
    inputs: dict[str, Any] | None = None


def secret(value: Any) -> dict[str, Any]:
    """Mark a value secret, as the engine's wire format does.

    Parameters
    ----------
    value
        Any plain value.

    Returns
    -------
    dict
        The value wrapped with Pulumi's secret signature.
    """
    return rpc.wrap_rpc_secret(value)


def contains_secret(value: Any) -> bool:
    """Tell whether a value, or anything inside it, is marked secret."""
    if rpc.is_rpc_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_secret(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_secret(item) for item in value)
    return False


def strip_secrets(value: Any) -> Any:
    """Return a value with every secret marker removed (its plain content kept)."""
    if rpc.is_rpc_secret(value):
        return strip_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, Mapping):
        return {key: strip_secrets(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strip_secrets(item) for item in value]
    return value


def resource_urn(stack: str, project: str, type_: str, name: str) -> str:
    """Return the URN pulumi gives a resource parented to the stack.

    Parameters
    ----------
    stack, project
        Stack and project names.
    type_
        The resource type, e.g. "pulumi-python:dynamic/batch:TaskSet".
    name
        The resource's logical name.

    Returns
    -------
    str
        "urn:pulumi:<stack>::<project>::<type>::<name>".
    """
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def _to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    # The host process reads exactly what serialize_properties writes, as it does from the engine.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def _from_struct(struct: struct_pb2.Struct) -> tuple[dict[str, Any], frozenset[str]]:
    raw = rpc.deserialize_properties(struct, keep_unknowns=True)
    secrets = frozenset(key for key, value in raw.items() if contains_secret(value))
    return strip_secrets(raw), secrets


class ProviderHost:
    """`python -m pulumi.dynamic` in a subprocess, called over gRPC as the engine calls it.

    Parameters
    ----------
    cwd
        The project directory (the host imports the pickled providers' modules from there).
    env
        Variables set for the host on top of this process's environment, e.g. what a Batch
        API double's `client_env()` returns.
    start_timeout
        Seconds to wait for the host to print its port.

    Attributes
    ----------
    accept_secrets
        What the host answered to Configure. When False the engine sends secrets as plain
        values, so this class strips secret markers from requests too.
    """

    def __init__(
        self,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        *,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.cwd = Path(cwd)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.accept_secrets = False
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: list[bytes] = []
        self._pumps: list[threading.Thread] = []
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start the host and connect to it.

        Returns
        -------
        ProviderHost
            Itself, started.

        Raises
        ------
        HostStartError
            If the host exits or prints no port in time; the message has its stderr.
        """
        if self._process is not None:
            return self
        self._stderr = []
        # Unbuffered, as the language host runs it: the port must reach the pipe at once.
        self._process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic"],
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        # Both pipes are read all the time, so a chatty provider never blocks on a full pipe.
        self._pumps = [
            threading.Thread(
                target=_pump,
                args=(self._process.stdout, lines.put),
                name="providerhost-stdout",
                daemon=True,
            ),
            threading.Thread(
                target=_pump,
                args=(self._process.stderr, self._stderr.append),
                name="providerhost-stderr",
                daemon=True,
            ),
        ]
        for pump in self._pumps:
            pump.start()
        try:
            self.port = int(self._first_line(lines).strip())
            # The engine's own message size limits: a big task set's answer exceeds gRPC's
            # default 4 MB.
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=CHANNEL_OPTIONS)
            grpc.channel_ready_future(self._channel).result(timeout=self.start_timeout)
        except (queue.Empty, ValueError, grpc.FutureTimeoutError):
            self.stop()
            text = self.stderr_text()
            raise HostStartError(f"the provider host did not start; its stderr:\n{text}") from None
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        return self

    def _first_line(self, lines: queue.Queue[bytes]) -> bytes:
        """Wait for the host's first line of stdout; give up early if it exits."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                return lines.get(timeout=0.05)
            except queue.Empty:
                if self._process is None or self._process.poll() is not None:
                    break
        raise queue.Empty

    def stop(self) -> None:
        """Close the channel and end the host process (its stderr stays readable)."""
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # The pipes reach end of file once the host has exited; let the readers finish.
            for pump in self._pumps:
                pump.join(timeout=5)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    def kill(self) -> None:
        """Kill the host process at once (SIGKILL), as a crash or an out-of-memory kill
        would: no cleanup runs in it. The channel is closed; `start` begins a fresh host."""
        process = self._process
        if process is not None:
            process.kill()
            process.wait()
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stderr_text(self) -> str:
        """Return everything the host wrote to stderr so far."""
        return b"".join(list(self._stderr)).decode(errors="replace")

    @property
    def pid(self) -> int | None:
        """The host process's id while it runs (for measuring its memory), else None."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the host process is alive."""
        return self._process is not None and self._process.poll() is None

    # ----------------------------------------------------------------- the engine's calls

    def _call(self, method: str, request: Any) -> Any:
        # A failing provider method comes back as UNKNOWN with the host's formatted traceback.
        if self._stub is None:
            raise RuntimeError("the provider host is not started; call start() first")
        try:
            return getattr(self._stub, method)(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            raise HostCallError(method, error.code(), error.details() or "") from None

    def _wire(self, props: Mapping[str, Any] | None) -> struct_pb2.Struct:
        props = dict(props or {})
        return _to_struct(props if self.accept_secrets else strip_secrets(props))

    def configure(self, config: Mapping[str, Any] | None = None) -> bool:
        """Send the stack config, as the engine does before any other call.

        Parameters
        ----------
        config
            "<namespace>:<key>" -> value (objects as JSON strings, as the engine sends them).

        Returns
        -------
        bool
            Whether the host accepts secrets (see `accept_secrets`).
        """
        config = dict(config or {})
        request = provider_pb2.ConfigureRequest(
            variables={key: str(value) for key, value in config.items()},
            args=_to_struct(config),
            acceptSecrets=True,
            acceptResources=True,
        )
        response = self._call("Configure", request)
        self.accept_secrets = response.acceptSecrets
        return self.accept_secrets

    def check(
        self, urn: str, olds: Mapping[str, Any] | None, news: Mapping[str, Any]
    ) -> CheckOutcome:
        """Validate new inputs against the old ones.

        Parameters
        ----------
        urn
            The resource's URN.
        olds, news
            Old inputs ({} when creating) and new inputs, `__provider` included.

        Returns
        -------
        CheckOutcome
            The checked inputs and any failures.
        """
        response = self._call(
            "Check",
            provider_pb2.CheckRequest(urn=urn, olds=self._wire(olds), news=self._wire(news)),
        )
        inputs, _ = _from_struct(response.inputs)
        return CheckOutcome(inputs, [(f.property, f.reason) for f in response.failures])

    def diff(
        self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> DiffOutcome:
        """Compare the old outputs with the new (checked) inputs.

        Returns
        -------
        DiffOutcome
            Whether anything changes and what forces a replacement.
        """
        response = self._call(
            "Diff",
            provider_pb2.DiffRequest(id=id_, urn=urn, olds=self._wire(olds), news=self._wire(news)),
        )
        changes = {
            provider_pb2.DiffResponse.DIFF_SOME: True,
            provider_pb2.DiffResponse.DIFF_NONE: False,
        }.get(response.changes)
        return DiffOutcome(changes, list(response.replaces), response.deleteBeforeReplace)

    def create(self, urn: str, props: Mapping[str, Any], *, preview: bool = False) -> ResourceState:
        """Create the resource from its checked inputs.

        Returns
        -------
        ResourceState
            The new id and outputs.
        """
        response = self._call(
            "Create",
            provider_pb2.CreateRequest(urn=urn, properties=self._wire(props), preview=preview),
        )
        outputs, secrets = _from_struct(response.properties)
        return ResourceState(response.id, outputs, secrets)

    def read(
        self, urn: str, id_: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
    ) -> ResourceState:
        """Read the resource's live state (refresh, or import when `props` is empty).

        Returns
        -------
        ResourceState
            The id ("" when gone), outputs and any inputs the provider returned.
        """
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(
                id=id_,
                urn=urn,
                properties=self._wire(props),
                inputs=self._wire(inputs) if inputs is not None else None,
            ),
        )
        outputs, secrets = _from_struct(response.properties)
        new_inputs = _from_struct(response.inputs)[0] if response.HasField("inputs") else None
        return ResourceState(response.id, outputs, secrets, new_inputs)

    def update(
        self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> ResourceState:
        """Update the resource in place from old outputs to new (checked) inputs.

        Returns
        -------
        ResourceState
            The same id and the new outputs.
        """
        response = self._call(
            "Update",
            provider_pb2.UpdateRequest(
                id=id_, urn=urn, olds=self._wire(olds), news=self._wire(news)
            ),
        )
        outputs, secrets = _from_struct(response.properties)
        return ResourceState(id_, outputs, secrets)

    def delete(self, urn: str, id_: str, props: Mapping[str, Any]) -> None:
        """Delete the resource, given its outputs."""
        self._call(
            "Delete", provider_pb2.DeleteRequest(id=id_, urn=urn, properties=self._wire(props))
        )


def _pump(stream: IO[bytes], sink: Callable[[bytes], None]) -> None:
    try:
        for line in iter(stream.readline, b""):
            sink(line)
    except (OSError, ValueError):
        pass  # the pipe was closed under us


# --------------------------------------------------------------------- what the program registers


@dataclass(frozen=True)
class Registration:
    """One dynamic resource as the program registered it.

    Attributes
    ----------
    type
        The resource type, e.g. "pulumi-python:dynamic/batch:Task".
    name
        The logical name.
    urn
        The URN pulumi gives it (see `resource_urn`).
    inputs
        The registered inputs, `__provider` as a plain string, secret values still marked.
    property_dependencies
        Input name -> URNs of the resources its value came from, as the RegisterResource
        request carried them (what the engine's dependent replacement follows).
    """

    type: str
    name: str
    urn: str
    inputs: dict[str, Any] = field(default_factory=dict)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        """The serialized provider the host unpickles."""
        return self.inputs[PROVIDER_KEY]


def capture_registrations(
    program: Callable[[], Any],
    *,
    project: str = "batchtasks",
    stack: str = "dev",
    preview: bool = False,
) -> list[Registration]:
    """Run a program under `AzureMocks` and return its dynamic resources' registrations.

    Parameters
    ----------
    program
        Registers resources (e.g. calls `declare_stack`); its result is ignored.
    project, stack
        Names used in URNs.
    preview
        Run as a preview.

    Returns
    -------
    list[Registration]
        The dynamic resources, in registration order.
    """
    mocks = AzureMocks().install(project=project, stack=stack, preview=preview)

    @pulumi.runtime.test
    def run() -> None:
        program()

    run()
    found = []
    for resource in mocks.resources:
        type_ = resource["type"]
        if not type_.startswith(DYNAMIC_TYPE_PREFIX):
            continue
        inputs = dict(resource["inputs"])
        # A provider that captured a secret is registered as a secret; the host wants the string.
        inputs[PROVIDER_KEY] = strip_secrets(inputs[PROVIDER_KEY])
        found.append(
            Registration(
                type_,
                resource["name"],
                resource_urn(stack, project, type_, resource["name"]),
                inputs,
                dict(mocks.property_dependencies.get(resource["urn"], {})),
            )
        )
    return found
