"""The inputs each dynamic resource registers, as TypedDicts (camelCase, as in the state).

`batchtasks.batch.diff` holds, per resource, what a change to each of these inputs does; a test
checks both cover exactly the inputs the resources register. A provider method receives its
inputs as the engine's plain dict (the base class's `dict[str, Any]`); it reads them through
the typed view of its resource (`as_job_inputs`, ...), taken once at the top of the method, so
mypy checks every read against the TypedDict. Integers arrive as floats over the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast


class TaskTargetInputs(TypedDict, total=False):
    """Inputs every task resource takes from its TaskTarget and secrets."""

    jobId: str
    endpoint: str
    identityResourceId: str
    containerUrls: dict[str, str]
    mountsDir: str
    registryServer: str | None
    secrets: dict[str, str]
    replaceRunningTasks: bool
    retryPolicy: dict[str, Any] | None
    owner: dict[str, str] | None


class TaskSetInputs(TaskTargetInputs, total=False):
    """BatchTaskSet inputs: the sweep's name (the marker of its tasks, shared by its shards),
    the shard this set is ({index, count}), its template spec as canonical JSON text (None in the
    layout without one), and task id -> the task's axis values (or whole spec) as JSON text."""

    setName: str
    shard: dict[str, int]
    template: str | None
    tasks: dict[str, Any]


class TaskInputs(TaskTargetInputs, total=False):
    """BatchTask inputs: one task's id and spec."""

    taskId: str
    task: dict[str, Any]


class JobInputs(TypedDict, total=False):
    """BatchJob inputs; `adopted` is an output the provider sets."""

    owner: dict[str, str]
    adopt: bool
    adopted: bool | None
    jobId: str
    endpoint: str
    poolId: str
    priority: int | float | None
    maxParallelTasks: int | float | None
    constraints: dict[str, Any] | None
    usesTaskDependencies: bool
    onAllTasksComplete: str
    replaceRunningTasks: bool
    retryPolicy: dict[str, Any] | None


class JobCompletionInputs(TypedDict, total=False):
    """BatchJobCompletion inputs."""

    jobId: str
    endpoint: str
    onAllTasksComplete: str
    retryPolicy: dict[str, Any] | None


def _mapping(props: Any, resource: str) -> Mapping[str, Any]:
    if not isinstance(props, Mapping):
        raise TypeError(f"{resource} inputs must be a mapping, not {type(props).__name__}")
    return props


def as_job_inputs(props: Any) -> JobInputs:
    """Return a BatchJob's inputs (or state) as its typed view.

    Raises
    ------
    TypeError
        When `props` is not a mapping.
    """
    return cast(JobInputs, _mapping(props, "BatchJob"))


def as_job_completion_inputs(props: Any) -> JobCompletionInputs:
    """Return a BatchJobCompletion's inputs (or state) as its typed view.

    Raises
    ------
    TypeError
        When `props` is not a mapping.
    """
    return cast(JobCompletionInputs, _mapping(props, "BatchJobCompletion"))


def as_task_target_inputs(props: Any) -> TaskTargetInputs:
    """Return the inputs every task resource has (of a BatchTask or a BatchTaskSet) as their
    typed view.

    Raises
    ------
    TypeError
        When `props` is not a mapping.
    """
    return cast(TaskTargetInputs, _mapping(props, "task resource"))


def as_task_set_inputs(props: Any) -> TaskSetInputs:
    """Return a BatchTaskSet's inputs (or state) as its typed view.

    Raises
    ------
    TypeError
        When `props` is not a mapping.
    """
    return cast(TaskSetInputs, _mapping(props, "BatchTaskSet"))


def as_task_inputs(props: Any) -> TaskInputs:
    """Return a BatchTask's inputs (or state) as its typed view.

    Raises
    ------
    TypeError
        When `props` is not a mapping.
    """
    return cast(TaskInputs, _mapping(props, "BatchTask"))
