"""The inputs each dynamic resource registers, as TypedDicts (camelCase, as in the state).

`batchtasks.batch.diff` holds, per resource, what a change to each of these inputs does; a test
checks both cover exactly the inputs the resources register.
"""

from __future__ import annotations

from typing import Any, TypedDict


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
    priority: int | None
    maxParallelTasks: int | None
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
