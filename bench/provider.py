"""The providers at scale, driven through Pulumi's real provider host as `pulumi up` drives them.

The program registers the N-task stack under mocks; its BatchJob and BatchTaskSet inputs,
`__provider` included, go to `python -m pulumi.dynamic`, which calls the Batch API double. Every
step counts the requests the double received and the wall time the engine would wait.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from batchtasks.batch.shards import shard_of
from batchtasks.batch.tasks import decode_tasks, stored_tasks, with_stored_tasks
from batchtasks.config import parse_stack_config
from batchtasks.program import declare_stack
from bench.double import DoubleProcess
from bench.stacks import JOB_ID, LOCATION, stack_settings, task_ids
from providerhost import (
    PROVIDER_KEY,
    ProviderHost,
    Registration,
    capture_registrations,
    strip_secrets,
)

PROJECT = "batchtasks"
STACK = "bench"
CHANGED_COMMAND = "python -m forecast.run --version 2"
CHANGED_RETRIES = 5
# A task id no sweep of bench.stacks declares: the task one step adds.
ADDED_TASK = "added-1"
# Past this size the destroy steps are left out (the double deletes tasks one at a time).
DESTROY_LIMIT = 10_000


class EngineSizedHost(ProviderHost):
    """A ProviderHost that counts the seconds spent waiting for the host's answers.

    Attributes
    ----------
    host_seconds
        Seconds spent in gRPC calls to the host (sending, the host's work, the answer); the
        rest of a step is this process encoding requests and decoding answers, the engine's
        part, which the Pulumi engine does in Go.
    """

    host_seconds: float = 0.0
    largest_request: int = 0
    largest_answer: int = 0

    def _call(self, method: str, request: Any) -> Any:
        # The engine refuses a message past 400 MiB (MAX_MESSAGE_BYTES) either way.
        self.largest_request = max(self.largest_request, request.ByteSize())
        start = time.perf_counter()
        try:
            answer = super()._call(method, request)
        finally:
            self.host_seconds += time.perf_counter() - start
        self.largest_answer = max(self.largest_answer, answer.ByteSize())
        return answer


def reset_peak_memory(pid: int | None) -> None:
    """Start a process's peak resident set over from its current size (Linux's clear_refs)."""
    if pid is None:
        return
    # Not Linux, or not allowed: the peak then counts from the process's start.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")


def peak_memory_mb(pid: int | None) -> float | None:
    """Return a process's peak resident set in MB (VmHWM), or None when it cannot be read."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


@dataclass
class Step:
    """What one engine step cost: requests by route, and wall time.

    Attributes
    ----------
    requests
        Route ("GET tasks", "POST addtaskcollection", ...) -> number of requests.
    wall_s
        Seconds from the first host call of the step to the last answer.
    host_s
        Of which seconds waiting for the provider host (see `EngineSizedHost.host_seconds`).
    largest_request, largest_answer
        Bytes of the largest gRPC message sent to the host and received from it (the engine
        takes up to 400 MiB).
    host_peak_mb, double_peak_mb
        Peak resident memory of the provider host and of the Batch API double during the step.
    """

    requests: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    host_s: float = 0.0
    largest_request: int = 0
    largest_answer: int = 0
    host_peak_mb: float | None = None
    double_peak_mb: float | None = None

    @property
    def reads(self) -> int:
        """Requests that change nothing (GET)."""
        return sum(n for route, n in self.requests.items() if route.startswith("GET "))

    @property
    def writes(self) -> int:
        """Requests that change something (POST, PUT, PATCH, DELETE)."""
        return self.requests.total() - self.reads

    def as_dict(self) -> dict[str, Any]:
        """Return the step as plain data for results.json."""
        return {
            "requests": self.requests.total(),
            "reads": self.reads,
            "writes": self.writes,
            "by_route": dict(sorted(self.requests.items())),
            "wall_s": round(self.wall_s, 3),
            "host_s": round(self.host_s, 3),
            "largest_request_mb": round(self.largest_request / 2**20, 2),
            "largest_answer_mb": round(self.largest_answer / 2**20, 2),
            "host_peak_mb": self.host_peak_mb,
            "double_peak_mb": self.double_peak_mb,
        }


@contextmanager
def step(api: DoubleProcess, host: EngineSizedHost) -> Iterator[Step]:
    """Measure the requests, wall time, host time, largest messages and peak memory of the
    calls made inside the block."""
    api.reset_counts()
    result = Step()
    host_before = host.host_seconds
    host.largest_request = host.largest_answer = 0
    reset_peak_memory(host.pid)
    reset_peak_memory(api.pid)
    start = time.perf_counter()
    yield result
    result.wall_s = time.perf_counter() - start
    result.host_s = host.host_seconds - host_before
    result.requests = api.counts()
    result.largest_request, result.largest_answer = host.largest_request, host.largest_answer
    result.host_peak_mb, result.double_peak_mb = peak_memory_mb(host.pid), peak_memory_mb(api.pid)


@dataclass(frozen=True)
class StackRegistrations:
    """The dynamic resources the program registers for the N-task stack.

    Attributes
    ----------
    job
        The BatchJob.
    sets
        The BatchTaskSet resources, one per shard of the sweep (shard 0 first).
    """

    job: Registration
    sets: tuple[Registration, ...]

    def holding(self, task_id: str) -> int:
        """Return the index in `sets` of the set that declares a task."""
        return next(
            index for index, reg in enumerate(self.sets) if task_id in stored_tasks(reg.inputs)
        )


def registrations(n: int, endpoint: str) -> StackRegistrations:
    """Run the real program under mocks for the N-task stack; return its dynamic resources.

    Parameters
    ----------
    n
        Number of tasks in the sweep.
    endpoint
        The Batch endpoint the resources are declared at (the double's).

    Returns
    -------
    StackRegistrations
        The job and its task sets.
    """
    config = parse_stack_config(stack_settings(n, endpoint), location=LOCATION)
    # Each capture starts from a fresh root stack, so a second size does not see the first.
    pulumi.runtime.reset_options(project=PROJECT, stack=STACK, preview=False)
    found = capture_registrations(
        lambda: declare_stack(config, lambda key: pulumi.Output.secret(f"unused-{key}")),
        project=PROJECT,
        stack=STACK,
    )
    kinds = [(reg.type.rsplit(":", 1)[1], reg) for reg in found]
    (job,) = [reg for kind, reg in kinds if kind == "Job"]
    sets = sorted((reg for kind, reg in kinds if kind == "TaskSet"), key=_shard_index)
    return StackRegistrations(job, tuple(sets))


def _shard_index(reg: Registration) -> int:
    shard = reg.inputs.get("shard") or {}
    return int(shard.get("index", 0)) if isinstance(shard, dict) else 0


def stored_bytes(regs: StackRegistrations, n: int) -> dict[str, float]:
    """Return the JSON size per task of every task set's registered inputs together, with and
    without the serialized providers (what Pulumi keeps in state for their inputs)."""
    totals = [stored_bytes_per_task(reg.inputs, n) for reg in regs.sets]
    return {
        "bytes_per_task": sum(total["bytes_per_task"] for total in totals),
        "bytes_per_task_with_provider": sum(
            total["bytes_per_task_with_provider"] for total in totals
        ),
        "provider_bytes": totals[0]["provider_bytes"],
    }


def stored_bytes_per_task(inputs: dict[str, Any], n: int) -> dict[str, float]:
    """Return the JSON size of a task set's registered inputs per task, with and without the
    serialized provider (what Pulumi keeps in state for the resource's inputs)."""
    plain = strip_secrets(inputs)
    without = {key: value for key, value in plain.items() if key != PROVIDER_KEY}
    return {
        "bytes_per_task": len(json.dumps(without)) / n,
        "bytes_per_task_with_provider": len(json.dumps(plain)) / n,
        "provider_bytes": len(str(plain.get(PROVIDER_KEY, ""))),
    }


def with_task(inputs: dict[str, Any], task_id: str, **changes: Any) -> dict[str, Any]:
    """Return a task set's inputs with some fields of one task changed: that task stored as a
    whole spec, which a set reads beside the tasks rendered from its template, in the layout
    the inputs have."""
    stored = stored_tasks(inputs)
    spec = decode_tasks({task_id: stored[task_id]}, inputs.get("template"))[task_id]
    return with_stored_tasks(inputs, {**stored, task_id: {**spec, **changes}})


def with_added_task(inputs: dict[str, Any], task_id: str) -> dict[str, Any]:
    """Return a task set's inputs with one more task: a copy of its first task under a new id,
    stored as a whole spec."""
    stored = stored_tasks(inputs)
    like = next(iter(stored))
    spec = decode_tasks({like: stored[like]}, inputs.get("template"))[like]
    return with_stored_tasks(inputs, {**stored, task_id: spec})


class _Engine:
    """The engine's side of `pulumi up` and `pulumi destroy` for one resource."""

    def __init__(self, host: ProviderHost, reg: Registration) -> None:
        self.host = host
        self.reg = reg
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.id = ""

    def checked(self, news: dict[str, Any]) -> dict[str, Any]:
        outcome = self.host.check(self.reg.urn, self.inputs, news)
        if outcome.failures:
            raise RuntimeError(f"{self.reg.name}: check failed: {outcome.failures[:5]}")
        return outcome.inputs

    def create(self) -> None:
        self.inputs = {}
        news = self.checked(self.reg.inputs)
        state = self.host.create(self.reg.urn, news)
        self.inputs, self.outputs, self.id = news, state.outputs, state.id

    def up(self, news: dict[str, Any]) -> bool:
        """Check and diff; update when something changed. Return whether it did."""
        checked = self.checked(news)
        diff = self.host.diff(self.reg.urn, self.id, self.outputs, checked)
        if diff.replaces:
            raise RuntimeError(f"{self.reg.name}: unexpected replacement of {diff.replaces}")
        if not diff.changes:
            return False
        state = self.host.update(self.reg.urn, self.id, self.outputs, checked)
        self.inputs, self.outputs = checked, state.outputs
        return True

    def read(self) -> str:
        return self.host.read(self.reg.urn, self.id, self.outputs, self.inputs).id

    def delete(self) -> None:
        self.host.delete(self.reg.urn, self.id, self.outputs)


def timed_diffs(
    host: EngineSizedHost, engines: list[_Engine], news: list[dict[str, Any]]
) -> dict[str, Any]:
    """`timed_diff` of every task set, the seconds summed (the engine diffs each resource)."""
    each = [timed_diff(host, engine, inputs) for engine, inputs in zip(engines, news, strict=True)]
    summed: dict[str, Any] = {
        key: round(sum(diff[key] for diff in each), 3)
        for key in ("check_s", "check_host_s", "diff_s", "diff_host_s")
    }
    summed["changes"] = sum(diff["changes"] for diff in each)
    summed["sets"] = len(each)
    return summed


def timed_diff(host: EngineSizedHost, engine: _Engine, news: dict[str, Any]) -> dict[str, Any]:
    """Check and Diff one resource against its state: wall seconds of each, and of those the
    seconds spent waiting for the provider host (its decoding, the provider's work, its
    encoding of the answer), the part the Go engine would leave."""
    before, start = host.host_seconds, time.perf_counter()
    checked = engine.checked(news)
    check_s, check_host_s = time.perf_counter() - start, host.host_seconds - before
    before, start = host.host_seconds, time.perf_counter()
    diff = host.diff(engine.reg.urn, engine.id, engine.outputs, checked)
    return {
        "check_s": round(check_s, 3),
        "check_host_s": round(check_host_s, 3),
        "diff_s": round(time.perf_counter() - start, 3),
        "diff_host_s": round(host.host_seconds - before, 3),
        "changes": bool(diff.changes),
    }


def measure_provider(
    api: DoubleProcess,
    regs: StackRegistrations,
    n: int,
    latency: float,
    project_dir: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Create, re-apply, change and destroy the N-task stack through the provider host.

    Parameters
    ----------
    api
        A started Batch API double; it is emptied and given `latency` first.
    regs
        The program's registrations for this N at this double (see `registrations`).
    n
        Number of tasks.
    latency
        Seconds the double waits before answering each request.
    project_dir
        The project root, where the provider host imports the providers from.
    log
        Where progress lines go.

    Returns
    -------
    dict
        Per step: requests (total, reads, writes, by route) and wall seconds, over every task
        set (one per shard, each step's calls one after another); `first_task`, the body of the
        sweep's first task as the service holds it.
    """
    api.reset()
    api.latency = latency
    results: dict[str, Any] = {"n": n, "latency_s": latency, "sets": len(regs.sets)}
    first_task = task_ids(n)[0]
    with EngineSizedHost(project_dir, api.client_env()) as host:
        host.configure({"batchtasks:resourceGroup": "rg-bench"})
        job = _Engine(host, regs.job)
        sets = [_Engine(host, reg) for reg in regs.sets]
        # The set that holds the first task: the one the one-task changes go to.
        tasks = sets[regs.holding(first_task)]

        with step(api, host) as measured:
            job.create()
        results["job_create"] = measured.as_dict()
        with step(api, host) as measured:
            for engine in sets:
                engine.create()
        results["set_create"] = measured.as_dict()
        stored = api.task_count(JOB_ID)
        # One body as the service holds it, to compare with the per-task loop's.
        results["first_task"] = api.task(JOB_ID, first_task)
        if stored != n:
            raise RuntimeError(f"the set created {stored} tasks, not {n}")
        results["set_create"]["state_outputs_bytes_per_task"] = (
            sum(len(json.dumps(engine.outputs)) for engine in sets) / n
        )
        log(
            f"  create: job {results['job_create']['wall_s']} s, "
            f"set {results['set_create']['requests']} requests, "
            f"{results['set_create']['wall_s']} s"
        )

        with step(api, host) as measured:
            changed = [job.up(regs.job.inputs), *(engine.up(engine.reg.inputs) for engine in sets)]
        if any(changed):
            raise RuntimeError("a no-op up found changes")
        results["noop_up"] = measured.as_dict()
        # The sets' Diffs alone, as the engine calls them with nothing changed and with one
        # task's command changed (what a preview of a big sweep waits for).
        results["set_diff_noop"] = timed_diffs(host, sets, [engine.inputs for engine in sets])
        results["set_diff_one_change"] = timed_diffs(
            host,
            sets,
            [
                with_task(engine.inputs, first_task, command=CHANGED_COMMAND)
                if engine is tasks
                else engine.inputs
                for engine in sets
            ],
        )
        with step(api, host) as measured:
            if any(engine.read() == "" for engine in sets):
                raise RuntimeError("refresh lost a task set")
        results["refresh"] = measured.as_dict()

        with step(api, host) as measured:
            tasks.up(with_task(tasks.inputs, first_task, command=CHANGED_COMMAND))
        results["command_changed"] = measured.as_dict()
        with step(api, host) as measured:
            tasks.up(with_task(tasks.inputs, first_task, retries=CHANGED_RETRIES))
        results["retries_changed"] = measured.as_dict()
        live = api.task(JOB_ID, first_task) or {}
        if (live["commandLine"], live["constraints"]["maxTaskRetryCount"]) != (
            CHANGED_COMMAND,
            CHANGED_RETRIES,
        ):
            raise RuntimeError(f"the changes did not reach task {first_task!r}")
        # One more task: the engine checks and diffs every set; only the one its id hashes to
        # changes.
        added_to = sets[shard_of(ADDED_TASK, len(sets))]
        with step(api, host) as measured:
            updated = [
                engine.up(
                    with_added_task(engine.inputs, ADDED_TASK)
                    if engine is added_to
                    else engine.inputs
                )
                for engine in sets
            ]
        results["task_added"] = {**measured.as_dict(), "sets_updated": sum(updated)}
        if api.task(JOB_ID, ADDED_TASK) is None or api.task_count(JOB_ID) != n + 1:
            raise RuntimeError(f"adding task {ADDED_TASK!r} did not leave {n + 1} tasks")
        log(
            f"  no-op up {results['noop_up']['requests']}, refresh "
            f"{results['refresh']['requests']}, command {results['command_changed']['requests']},"
            f" retries {results['retries_changed']['requests']}, one task added "
            f"{results['task_added']['requests']} requests "
            f"({results['task_added']['sets_updated']} set updated)"
        )

        if n > DESTROY_LIMIT:
            return results  # destroying so many tasks in the double outlasts the host's deadline
        # `pulumi destroy`: the set is deleted_with its job, so only the job is deleted.
        with step(api, host) as measured:
            job.delete()
        results["destroy"] = measured.as_dict()
        # The delete is not waited for: Batch shows the job as deleting until it is gone.
        if (api.job(JOB_ID) or {"state": "deleting"})["state"] != "deleting":
            raise RuntimeError("destroy left the job")

        # For information: what deleting the sets on their own would cost.
        job.create()
        for engine in sets:
            engine.create()
        with step(api, host) as measured:
            for engine in sets:
                engine.delete()
        results["set_delete"] = measured.as_dict()
        job.delete()
        log(
            f"  destroy {results['destroy']['requests']} requests "
            f"{results['destroy']['wall_s']} s; set alone {results['set_delete']['requests']} "
            f"requests {results['set_delete']['wall_s']} s"
        )
    return results
