"""One task-field table: every field reaches the REST body, and every consumer agrees with it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest

from batchapi import BatchApiDouble
from batchtasks import fields
from batchtasks.batch import checks
from batchtasks.batch.client import BatchOperationError
from batchtasks.batch.diff import task_change
from batchtasks.batch.spec import TaskContext, build_task_body
from batchtasks.batch.tasks import BatchTaskProvider
from batchtasks.config import ConfigError, json_schema, parse_stack_config
from batchtasks.preview import build
from batchtasks.preview.render import render_markdown
from batchtasks.storage import (
    BatchStorageArgs,
    ContainerArgs,
    PoolArgs,
    batch_storage_problems,
)
from tests.namespaces import namespace

IDENTITY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/batch"
)
URLS = {
    name: f"https://sttest.blob.core.windows.net/{name}" for name in ("inputs", "results", "logs")
}
CONTEXT = TaskContext(
    job_id="weekly",
    identity_resource_id=IDENTITY,
    container_urls=URLS,
    mounts_dir="/mnt/batch/tasks/fsmounts",
    secrets={"apiToken": "s3cret"},
)
BASE = {"command": "true", "image": "base.azurecr.io/base:1"}
TASK_PATH = ("batchtasks:jobs", "items", "properties", "tasks", "items", "properties")


def at(body: Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted path of a REST body, or None."""
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def stack(
    *, pool: dict[str, Any] | None = None, task: dict[str, Any] | None = None, prepare: bool = True
) -> dict[str, Any]:
    """A stack whose job holds `summary` (with `task`'s fields) and, if asked, `prepare`."""
    tasks = [{"id": "summary", **BASE, **(task or {})}]
    if prepare:
        tasks.insert(0, {"id": "prepare", **BASE})
    job = {"id": "weekly", "logs": {"container": "logs", "subdir": "weekly"}, "tasks": tasks}
    secrets = {"apiToken": {"secure": "v1:abc"}} if "secretEnv" in (task or {}) else {}
    return namespace([job], pool=pool, **secrets)


EVERY_FIELD = {field.key: field.example for field in fields.STACK_TASK_FIELDS}
EVERY_FIELD_POOL = {"id": "pool-1", "taskSlotsPerNode": 4}


def problems_at(raw: dict[str, Any]) -> dict[str, str]:
    """Key path -> message of every problem the stack file validator reports."""
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, "eastus")
    return {problem.path: problem.message for problem in caught.value.problems}


@pytest.mark.parametrize("field", fields.TASK_FIELDS, ids=lambda field: field.key)
def test_every_field_reaches_the_rest_body(field: fields.TaskField) -> None:
    without = build_task_body("t1", BASE, CONTEXT)
    given = build_task_body("t1", {**BASE, field.key: field.example}, CONTEXT)
    assert at(given, field.rest) is not None
    assert at(given, field.rest) != at(without, field.rest)
    if field.to_rest is not None:
        assert at(given, field.rest) == field.to_rest(field.example)


def test_every_field_travels_from_the_stack_file_to_the_body() -> None:
    raw = stack(pool=EVERY_FIELD_POOL, task=EVERY_FIELD)
    config = parse_stack_config(raw, "eastus")
    summary = next(task for task in config.jobs[0].tasks if task["id"] == "summary")
    for field in fields.TASK_FIELDS:
        assert summary.get(field.key) == field.example, field.key
    preview = build.preview_stack(config)
    body = next(task.body for task in preview.jobs[0].tasks if task.id == "summary")
    bare = next(task.body for task in preview.jobs[0].tasks if task.id == "prepare")
    for field in fields.TASK_FIELDS:
        assert at(body, field.rest) is not None, field.key
        if field.to_rest is not None:
            assert at(body, field.rest) == field.to_rest(field.example), field.key
        elif field.key != "logs":
            assert at(body, field.rest) != at(bare, field.rest), field.key


def test_table_and_json_schema_agree() -> None:
    schema = json_schema()["properties"]
    task_schema: Any = schema
    for step in TASK_PATH:
        task_schema = task_schema[step]
    assert set(task_schema) == {"id", *(field.key for field in fields.STACK_TASK_FIELDS)}
    job = schema["batchtasks:jobs"]["items"]["properties"]
    defaults = job["defaults"]["properties"]
    assert set(defaults) == {field.key for field in fields.STACK_TASK_FIELDS if field.in_defaults}
    sweep = job["sweeps"]["items"]["properties"]
    assert {field.key for field in fields.STACK_TASK_FIELDS} <= set(sweep)
    for field in fields.STACK_TASK_FIELDS:
        assert task_schema[field.key]["description"] == field.field.doc
        jsonschema.validate(field.example, task_schema[field.key])
        assert field.key in sweep, field.key


def test_the_providers_check_takes_exactly_the_table() -> None:
    assert frozenset(fields.BY_KEY) == checks.TASK_SPEC_KEYS
    provider = BatchTaskProvider()
    spec = {**BASE, **{field.key: field.example for field in fields.TASK_FIELDS}}
    props = {
        "endpoint": "https://acct.eastus.batch.azure.com",
        "jobId": "weekly",
        "identityResourceId": IDENTITY,
        "mountsDir": "/mnt/batch/tasks/fsmounts",
        "containerUrls": URLS,
        "secrets": {"apiToken": "s3cret"},
        "taskId": "summary",
        "task": spec,
    }
    assert provider.check({}, props).failures == []


@pytest.mark.parametrize("field", fields.TASK_FIELDS, ids=lambda field: field.key)
def test_a_change_updates_in_place_exactly_when_the_table_says(field: fields.TaskField) -> None:
    kind, changed = task_change(BASE, {**BASE, field.key: field.example})
    assert changed == [field.key]
    assert kind == ("update" if field.in_place else "replace")


class TestRequiredSlots:
    def test_reaches_the_body_and_the_pool_gets_its_slots(self) -> None:
        raw = stack(
            pool={
                "id": "pool-1",
                "create": True,
                "vmSize": "Standard_D4s_v3",
                "image": {"publisher": "p", "offer": "o", "sku": "s"},
                "nodeAgentSkuId": "batch.node.ubuntu 22.04",
                "taskSlotsPerNode": 4,
            },
            task={"requiredSlots": 4},
        )
        raw["batch"]["account"] = "batest"
        preview = build.preview_stack(parse_stack_config(raw, "eastus"))
        pool = next(r for r in preview.resources if r["type"] == "azure-native:batch:Pool")
        assert pool["inputs"]["taskSlotsPerNode"] == 4
        summary = next(task for task in preview.jobs[0].tasks if task.id == "summary")
        assert summary.body["requiredSlots"] == 4
        markdown = render_markdown(preview)
        assert "| Task | Image | Command | Mounts | Outputs | Slots |" in markdown
        assert "| `summary` | `base.azurecr.io/base:1` | `true` |  |  | `4` |" in markdown

    def test_more_slots_than_a_node_has_is_a_config_error(self) -> None:
        found = problems_at(
            stack(pool={"id": "pool-1", "taskSlotsPerNode": 2}, task={"requiredSlots": 3})
        )
        assert (
            "more than batch.pool.taskSlotsPerNode (2)"
            in found["batchtasks:jobs[0].tasks[1].requiredSlots"]
        )

    def test_an_existing_pool_must_state_its_slots(self) -> None:
        found = problems_at(stack(task={"requiredSlots": 2}))
        assert "state the pool's value there" in found["batchtasks:jobs[0].tasks[1].requiredSlots"]

    def test_slots_in_the_defaults_are_checked_for_every_task(self) -> None:
        raw = stack(pool={"id": "pool-1", "taskSlotsPerNode": 2})
        raw["jobs"][0]["defaults"] = {"requiredSlots": 8}
        assert "batchtasks:jobs[0].defaults.requiredSlots" in problems_at(raw)

    @pytest.mark.parametrize("slots", [0, 257, 1.5, "4"])
    def test_the_pool_takes_1_to_256_slots(self, slots: Any) -> None:
        assert "batchtasks:batch.pool.taskSlotsPerNode" in problems_at(
            stack(pool={"id": "pool-1", "taskSlotsPerNode": slots})
        )
        args = BatchStorageArgs(
            "rg",
            "sttest",
            (ContainerArgs("inputs"),),
            identity_name="idx",
            pool=PoolArgs("batest", "pool-1", task_slots_per_node=slots),
        )
        assert any(p.startswith("pool.task_slots_per_node") for p in batch_storage_problems(args))


class TestOnFailure:
    def test_reaches_the_body_for_every_way_a_task_fails(self) -> None:
        raw = stack(task={"dependsOn": ["prepare"]})
        raw["jobs"][0]["tasks"][0]["onFailure"] = {"dependents": "satisfy"}
        preview = build.preview_stack(parse_stack_config(raw, "eastus"))
        prepare = next(task for task in preview.jobs[0].tasks if task.id == "prepare")
        assert prepare.body["exitConditions"] == {
            "default": {"dependencyAction": "satisfy"},
            "preProcessingError": {"dependencyAction": "satisfy"},
            "fileUploadError": {"dependencyAction": "satisfy"},
        }
        assert preview.jobs[0].inputs["usesTaskDependencies"] is True
        markdown = render_markdown(preview)
        assert "| Dependents on failure |" in markdown
        assert "`satisfy` |" in markdown

    def test_without_dependencies_in_the_job_it_is_a_config_error(self) -> None:
        found = problems_at(stack(task={"onFailure": {"dependents": "satisfy"}}))
        assert (
            "no task of job 'weekly' has dependsOn"
            in found["batchtasks:jobs[0].tasks[1].onFailure"]
        )

    def test_only_block_or_satisfy(self) -> None:
        raw = stack(task={"dependsOn": ["prepare"], "onFailure": {"dependents": "cancel"}})
        assert (
            "must be one of block, satisfy"
            in problems_at(raw)["batchtasks:jobs[0].tasks[1].onFailure.dependents"]
        )


def test_the_service_receives_slots_and_exit_conditions(batch_api: BatchApiDouble) -> None:
    batch_api.add_job("weekly", "pool", usesTaskDependencies=True)
    batch_api.add_job("plain", "pool")
    provider = BatchTaskProvider()
    spec = {**BASE, "requiredSlots": 2, "onFailure": {"dependents": "satisfy"}}
    props = {
        "endpoint": batch_api.endpoint,
        "jobId": "weekly",
        "identityResourceId": IDENTITY,
        "mountsDir": "/mnt/batch/tasks/fsmounts",
        "containerUrls": URLS,
        "secrets": {},
        "retryPolicy": {"maxAttempts": 2, "baseDelay": 0.01, "maxDelay": 0.02},
        "taskId": "prepare",
        "task": copy.deepcopy(spec),
    }
    checked = provider.check({}, {**props, "task": {**spec, "requiredSlots": 2.0}})
    assert checked.failures == []
    assert checked.inputs["task"]["requiredSlots"] == 2
    provider.create(checked.inputs)
    live = batch_api.tasks("weekly")["prepare"]
    assert live["requiredSlots"] == 2
    assert live["exitConditions"]["default"] == {"dependencyAction": "satisfy"}
    # Batch refuses a dependency action in a job that does not use task dependencies.
    with pytest.raises(BatchOperationError, match=r"(?i)dependenc"):
        provider.create({**checked.inputs, "jobId": "plain"})


def _registered_inputs() -> dict[str, set[str]]:
    # Register each dynamic resource under Pulumi mocks, every optional argument set, and keep
    # the names of the inputs the engine receives.
    from batchtasks.batch.job import BatchJob, BatchJobCompletion
    from batchtasks.batch.tasks import BatchTask, BatchTaskSet, TaskTarget
    from tests.pulumi_support import run_program

    def program() -> dict[str, Any]:
        job = BatchJob(
            "job",
            job_id="weekly",
            endpoint="https://acct.westeurope.batch.azure.com",
            pool_id="pool",
            priority=1,
            max_parallel_tasks=2,
            constraints={"maxTaskRetryCount": 1},
            retry_policy={"maxAttempts": 2},
        )
        BatchJobCompletion(
            "completion",
            job_id=job.jobId,
            endpoint="https://acct.westeurope.batch.azure.com",
            on_all_tasks_complete="terminateJob",
            retry_policy={"maxAttempts": 2},
        )
        target = TaskTarget(
            job_id=job.jobId,
            endpoint="https://acct.westeurope.batch.azure.com",
            identity_resource_id="/subscriptions/s/id",
            container_urls={"out": "https://acct.blob.core.windows.net/out"},
            mounts_dir="/mnt/batch",
            registry_server="acr.azurecr.io",
            retry_policy={"maxAttempts": 2},
            owner={"project": "p", "stack": "s"},
        )
        spec = {"image": "python:3.12", "command": ["python", "-V"]}
        template = {"image": "python:3.12", "command": {"$t": ["python -m run ", 0]}}
        BatchTaskSet("sweep", target, {"a": ["x"]}, {"k": "v"}, template=template)
        BatchTask("one", target, "b", spec, {"k": "v"})
        return {}

    run = run_program(program)
    return {
        token: {name for name in run.of_type(token)[0]["inputs"] if not name.startswith("__")}
        for token in (
            "pulumi-python:dynamic/batch:Job",
            "pulumi-python:dynamic/batch:JobCompletion",
            "pulumi-python:dynamic/batch:TaskSet",
            "pulumi-python:dynamic/batch:Task",
        )
    }


def test_each_input_table_and_typed_dict_covers_exactly_the_inputs_registered() -> None:
    from batchtasks.batch import diff, inputs

    registered = _registered_inputs()
    expected = {
        "pulumi-python:dynamic/batch:Job": (diff.JOB_INPUTS, inputs.JobInputs),
        "pulumi-python:dynamic/batch:JobCompletion": (
            diff.JOB_COMPLETION_INPUTS,
            inputs.JobCompletionInputs,
        ),
        "pulumi-python:dynamic/batch:TaskSet": (diff.TASK_SET_INPUTS, inputs.TaskSetInputs),
        "pulumi-python:dynamic/batch:Task": (diff.TASK_INPUTS, inputs.TaskInputs),
    }
    for token, (table, typed) in expected.items():
        # Inputs registered as None (the job's `adopted` output) never reach the engine.
        seeded_none = set(diff.inputs_of_kind(table, "output"))
        assert registered[token] | seeded_none == set(table), token
        assert set(typed.__annotations__) == set(table), token


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [("replaceRunningTasks", False, True), ("retryPolicy", None, {"maxAttempts": 2})],
)
def test_a_stored_only_job_input_change_is_an_update_that_stores_it(
    key: str, old: Any, new: Any
) -> None:
    from batchtasks.batch.job import BatchJobProvider

    olds = {
        "jobId": "weekly",
        "endpoint": "https://acct.eastus.batch.azure.com",
        "poolId": "pool-1",
        key: old,
    }
    result = BatchJobProvider().diff("weekly", olds, {**olds, key: new})
    assert result.changes is True and not result.replaces
