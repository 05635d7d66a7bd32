"""Pure diff rules for Batch jobs and tasks: what changes in place and what must be replaced.

Batch lets a task change only its constraints after creation; anything else means deleting the
task and adding it again under the same id. A job changes priority, maxParallelTasks, constraints
and noAction -> terminateJob in place; the rest means a new job. Nothing here calls the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchtasks.batch.spec import CONSTRAINT_FIELDS, is_unknown, is_unknown_as_a_whole

# Every BatchJob input and what a change to it does: "update" (Batch changes the job in place),
# "replace" (a new job), "stored" (kept in the state only, so that delete and later operations
# read the new value: still an update, pulumi/pulumi#9086), "output" (set by the provider, seeded
# as None by the resource; never a change).
JOB_INPUTS = {
    "jobId": "replace",
    "endpoint": "replace",
    "poolId": "replace",
    "usesTaskDependencies": "replace",
    "priority": "update",
    "maxParallelTasks": "update",
    "constraints": "update",
    "onAllTasksComplete": "update",
    "owner": "stored",
    "adopt": "stored",
    "adopted": "output",
    "replaceRunningTasks": "stored",
    "retryPolicy": "stored",
}
# BatchJobCompletion: "replace" (a new switch), "update" (the switch is applied again), "stored"
# (as for the job: an update that calls nothing, so later operations read the new value).
JOB_COMPLETION_INPUTS = {
    "endpoint": "replace",
    "jobId": "replace",
    "onAllTasksComplete": "update",
    "retryPolicy": "stored",
}
# Task resources: "replace" (where the tasks live: a change moves every task), "tasks" (the task
# specs, compared task by task through `fields`), "body" (shared inputs that reach the task
# bodies, compared by `plan_tasks`), "stored" (as for the job), "shard" (a set's place in its
# sweep, {index, count}: absent is shard 0 of 1, so state made before sharding does not change;
# check refuses a new count, since tasks would move between sets; otherwise as "stored").
_TASK_TARGET_INPUTS = {
    "endpoint": "replace",
    "jobId": "replace",
    "identityResourceId": "body",
    "containerUrls": "body",
    "mountsDir": "body",
    "registryServer": "body",
    "secrets": "body",
    "replaceRunningTasks": "stored",
    "retryPolicy": "stored",
    "owner": "stored",
}
# A set's `template` (the sweep's template spec, or None) is read with its `tasks`.
TASK_SET_INPUTS = {
    **_TASK_TARGET_INPUTS,
    "setName": "body",
    "shard": "shard",
    "template": "tasks",
    "tasks": "tasks",
}
TASK_INPUTS = {**_TASK_TARGET_INPUTS, "taskId": "tasks", "task": "tasks"}


def inputs_of_kind(table: Mapping[str, str], kind: str) -> tuple[str, ...]:
    """Return the inputs of a table that have the given kind, in table order."""
    return tuple(name for name, each in table.items() if each == kind)


JOB_UPDATABLE_INPUTS = inputs_of_kind(JOB_INPUTS, "update")
JOB_REPLACE_INPUTS = inputs_of_kind(JOB_INPUTS, "replace")
JOB_STORED_INPUTS = inputs_of_kind(JOB_INPUTS, "stored")
# The same for BatchTask and BatchTaskSet (one table apart from the task inputs).
TASK_LOCATION_INPUTS = inputs_of_kind(TASK_SET_INPUTS, "replace")
TASK_STORED_INPUTS = inputs_of_kind(TASK_SET_INPUTS, "stored")
# The inputs that hold a set's task specs (read together by `tasks.set_specs`).
SET_SPEC_INPUTS = inputs_of_kind(TASK_SET_INPUTS, "tasks")
# Shared task inputs that end up in every task body alike (containerUrls and secrets reach only
# the tasks that use them). setName is every task's displayName, its owner marker, which Batch
# cannot change in place: a new name replaces every task.
ALL_TASK_INPUTS = ("identityResourceId", "mountsDir", "registryServer", "setName")


def _numeric(value: Any) -> Any:
    # The wire format turns integers into floats; 3 and 3.0 are the same setting.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _numeric(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_numeric(item) for item in value]
    return value


def same(old: Any, new: Any) -> bool:
    """Compare two input values as Pulumi delivers them (floats for ints, tuples for lists)."""
    return _numeric(old) == _numeric(new)


def _differs(old_value: Any, new_value: Any) -> bool:
    """Tell whether two unequal-looking field values differ as settings (not 3 against 3.0)."""
    return is_unknown(new_value) or not same(old_value, new_value)


def task_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Classify the change between two specs of the same task.

    Parameters
    ----------
    old, new
        Task specs (camelCase, without the id).

    Returns
    -------
    tuple[str, list[str]]
        "none", "update" (constraints only) or "replace", and the changed field names.
    """
    # Equal values are the common case and compare in C; state never holds an unknown, so an
    # equal new value is known. Only unequal ones need the unknown walk and the int/float look.
    get_old, get_new = old.get, new.get
    changed = sorted(
        key
        for key in old.keys() | new.keys()
        if get_old(key) != get_new(key) and _differs(get_old(key), get_new(key))
    )
    if not changed:
        return "none", []
    if all(key in CONSTRAINT_FIELDS for key in changed):
        return "update", changed
    return "replace", changed


@dataclass(frozen=True)
class TaskPlan:
    """The task-by-task change between two states of a task resource.

    Attributes
    ----------
    added, removed, replaced, updated
        Task ids, sorted; replaced tasks are deleted and added again, updated ones get new
        constraints in place.
    unchanged
        How many tasks stay as they are.
    changed_fields
        Task id -> the fields that changed, for replaced and updated tasks.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: int = 0
    changed_fields: Mapping[str, tuple[str, ...]] | None = None

    @property
    def has_changes(self) -> bool:
        """True when any task is added, removed, replaced or updated."""
        return bool(self.added or self.removed or self.replaced or self.updated)


class _SharedChanges:
    """Which shared inputs changed between two states, worked out once for all their tasks."""

    def __init__(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> None:
        self.everywhere = [
            name
            for name in ALL_TASK_INPUTS
            if is_unknown(news.get(name)) or not same(olds.get(name), news.get(name))
        ]
        self.old_urls = olds.get("containerUrls") or {}
        self.new_urls = news.get("containerUrls") or {}
        self.urls_changed = is_unknown(self.new_urls) or not same(self.old_urls, self.new_urls)
        self.old_secrets = olds.get("secrets") or {}
        self.new_secrets = news.get("secrets") or {}
        self.secrets_changed = is_unknown(self.new_secrets) or not same(
            self.old_secrets, self.new_secrets
        )

    def affecting(self, spec: Mapping[str, Any]) -> list[str]:
        """Return the shared inputs whose change alters this task's body."""
        reasons = list(self.everywhere)
        if self.urls_changed:
            used = {output.get("container") for output in spec.get("outputs", ())}
            if spec.get("logs"):
                used.add(spec["logs"].get("container"))
            if is_unknown(self.new_urls) or any(
                self.old_urls.get(c) != self.new_urls.get(c) for c in used
            ):
                reasons.append("containerUrls")
        if self.secrets_changed:
            keys = set(spec.get("secretEnv", {}).values())
            if is_unknown(self.new_secrets) or any(
                self.old_secrets.get(k) != self.new_secrets.get(k) for k in keys
            ):
                reasons.append("secrets")
        return reasons


def plan_tasks(olds: Mapping[str, Any], news: Mapping[str, Any]) -> TaskPlan:
    """Work out which tasks a change to a task resource adds, removes, replaces or updates.

    Parameters
    ----------
    olds, news
        The resource's old state and new inputs; each has `tasks` (id -> spec) and the shared
        inputs (identityResourceId, containerUrls, mountsDir, registryServer, secrets).

    Returns
    -------
    TaskPlan
        The task-by-task plan; ids are compared ignoring case, as Batch does.
    """
    old_tasks = {
        task_id.lower(): (task_id, spec) for task_id, spec in (olds.get("tasks") or {}).items()
    }
    new_tasks = {
        task_id.lower(): (task_id, spec) for task_id, spec in (news.get("tasks") or {}).items()
    }
    shared_changes = _SharedChanges(olds, news)
    added: list[str] = []
    replaced: list[str] = []
    updated: list[str] = []
    changed_fields: dict[str, tuple[str, ...]] = {}
    unchanged = 0
    for key, (task_id, new_spec) in new_tasks.items():
        if key not in old_tasks:
            added.append(task_id)
            continue
        old_id, old_spec = old_tasks[key]
        if is_unknown_as_a_whole(new_spec):
            # A spec not known yet (preview) may change anything; task_change sees unknown
            # fields inside a known spec.
            replaced.append(task_id)
            changed_fields[task_id] = tuple(sorted(old_spec))
            continue
        # Equal specs (the common case, and a cheap comparison) need no field-by-field look.
        kind, fields = ("none", []) if old_spec == new_spec else task_change(old_spec, new_spec)
        shared = shared_changes.affecting(new_spec)
        if old_id != task_id:
            kind, fields = "replace", [*fields, "id"]
        if shared:
            kind, fields = "replace", [*fields, *shared]
        if kind == "none":
            unchanged += 1
            continue
        (replaced if kind == "replace" else updated).append(task_id)
        changed_fields[task_id] = tuple(fields)
    removed = [task_id for key, (task_id, _) in old_tasks.items() if key not in new_tasks]
    return TaskPlan(
        tuple(sorted(added)),
        tuple(sorted(removed)),
        tuple(sorted(replaced)),
        tuple(sorted(updated)),
        unchanged,
        changed_fields,
    )


def job_change(olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Classify a change to a BatchJob's inputs.

    Parameters
    ----------
    olds, news
        Old state and new inputs of the job.

    Returns
    -------
    tuple[list[str], list[str]]
        The inputs that change in place, and those that force a new job.
    """
    in_place = [
        name
        for name in JOB_UPDATABLE_INPUTS
        if is_unknown(news.get(name)) or not same(olds.get(name), news.get(name))
    ]
    replace = [
        name
        for name in JOB_REPLACE_INPUTS
        if is_unknown(news.get(name)) or not same(olds.get(name), news.get(name))
    ]
    return in_place, replace


def completion_mode(value: Any) -> str:
    """Return onAllTasksComplete in its declared spelling (noAction or terminateJob)."""
    return "terminateJob" if str(value or "").lower() == "terminatejob" else "noAction"
