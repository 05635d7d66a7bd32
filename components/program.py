"""The Pulumi program: a validated stack config -> BatchStorage, jobs and their tasks.

`__main__.py` calls `run()`; `batchtasks preview` calls `declare_stack()` under mocks with the
config it read from the stack file. Both register exactly the same resources.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from batchtasks.batch import shards
from batchtasks.batch.job import BatchJob, BatchJobCompletion
from batchtasks.batch.tasks import BatchTask, BatchTaskSet, TaskTarget
from batchtasks.config import ConfigError, StackConfig, parse_stack_config
from batchtasks.pulumi_compat import config_values, secret_config_keys
from batchtasks.storage import (
    MOUNTS_DIR,
    BatchStorage,
    BatchStorageArgs,
    ContainerArgs,
    PoolArgs,
)

NAMESPACE = "batchtasks"
SecretReader = Callable[[str], pulumi.Input[str]]


def storage_args(config: StackConfig) -> BatchStorageArgs:
    """Map the stack config onto BatchStorage's typed arguments.

    Parameters
    ----------
    config
        The validated stack config.

    Returns
    -------
    BatchStorageArgs
        Storage, identity, registry and pool arguments; the pool prefetches every task image.
    """
    pool = config.batch.pool
    pool_args = None
    if pool.create:
        images = sorted({image for job in config.jobs for image in job.images()})
        optional: dict[str, Any] = {}
        if pool.vm_size:
            optional["vm_size"] = pool.vm_size
        if pool.max_nodes:
            optional["max_nodes"] = pool.max_nodes
        if pool.image:
            for key in ("publisher", "offer", "sku", "version"):
                if pool.image.get(key):
                    optional[f"image_{key}"] = pool.image[key]
        if pool.node_agent_sku_id:
            optional["node_agent_sku_id"] = pool.node_agent_sku_id
        if pool.task_slots_per_node:
            optional["task_slots_per_node"] = pool.task_slots_per_node
        pool_args = PoolArgs(
            batch_account_name=config.batch.account,
            pool_id=pool.id,
            prefetch_images=tuple(images),
            **optional,
        )
    registry = config.registry
    return BatchStorageArgs(
        resource_group_name=config.resource_group,
        account_name=config.storage.account,
        containers=tuple(ContainerArgs(c.name, c.access) for c in config.storage.containers),
        location=config.location,
        create_account=config.storage.create,
        identity_name=config.identity.name,
        identity_resource_id=config.identity.resource_id,
        registry_server=registry.server if registry else None,
        registry_resource_id=registry.resource_id if registry else None,
        pool=pool_args,
        existing_pool_id=None if pool.create else pool.id,
    )


def _without_id(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != "id"}


def _secrets_for(tasks: list[Mapping[str, Any]], read_secret: SecretReader) -> dict[str, Any]:
    """Return config key -> secret for just the keys these tasks use, so a changed secret
    touches only the tasks that read it."""
    keys = sorted({key for task in tasks for key in task.get("secretEnv", {}).values()})
    return {key: read_secret(key) for key in keys}


@dataclass
class DeclaredStack:
    """What the program registered, for stack outputs and the offline preview."""

    storage: BatchStorage
    jobs: dict[str, BatchJob]
    task_counts: dict[str, int]


def _required_pool_id(pool_id: str | None) -> str:
    """Return the pool id BatchStorage resolved; every job needs one."""
    # storage_args always gives BatchStorage a pool to create or an existing pool id, so None
    # means that contract broke: stop rather than register jobs with no pool.
    if pool_id is None:
        raise ValueError("BatchStorage has no pool id: give it a pool or existing_pool_id")
    return pool_id


def _task_options(
    options: pulumi.ResourceOptions, earlier: list[pulumi.Resource], ends_itself: bool
) -> pulumi.ResourceOptions:
    """Return the options of a job's next task resource: in a job that ends itself, it also
    depends on the one declared before it.

    A terminateJob job completes once no incomplete task is left, and each task resource's
    guard against that counts the job's other tasks: two resources changing at once would each
    count the other's tasks as still there, and both delete theirs. Chained, every change meets
    a settled job. Only such jobs give up updating their task resources in parallel.
    """
    if not ends_itself or not earlier:
        return options
    return pulumi.ResourceOptions.merge(options, pulumi.ResourceOptions(depends_on=[earlier[-1]]))


def declare_stack(config: StackConfig, read_secret: SecretReader) -> DeclaredStack:
    """Register BatchStorage, then per job a BatchJob, a BatchTask per task, a BatchTaskSet per
    sweep, and a BatchJobCompletion where the job ends itself.

    Parameters
    ----------
    config
        The validated stack config.
    read_secret
        Returns the secret held by a config key (a Pulumi secret Output).

    Returns
    -------
    DeclaredStack
        The resources registered.
    """
    storage = BatchStorage("storage", storage_args(config))
    endpoint = config.batch.endpoint
    pool_id = storage.pool_id.apply(_required_pool_id)
    jobs: dict[str, BatchJob] = {}
    counts: dict[str, int] = {}
    for job in config.jobs:
        batch_job = BatchJob(
            f"job-{job.id}",
            job_id=job.id,
            endpoint=endpoint,
            pool_id=pool_id,
            priority=job.priority,
            max_parallel_tasks=job.max_parallel_tasks,
            constraints=job.constraints,
            uses_task_dependencies=job.uses_task_dependencies,
            on_all_tasks_complete=job.on_all_tasks_complete,
            replace_running_tasks=job.replace_running_tasks,
            adopt=job.adopt,
        )
        # Tasks go when their job goes: deleting the job deletes them in one call.
        task_options = pulumi.ResourceOptions(depends_on=[batch_job], deleted_with=batch_job)
        # The job id comes from the job's output, not the config: that property dependency is
        # what makes the engine re-diff (and so replace) every task resource when the job is
        # replaced; `depends_on` alone re-diffs nothing (the engine's dependent replacement
        # follows property dependencies only).
        job_id = batch_job.jobId
        target = TaskTarget(
            job_id=job_id,
            endpoint=endpoint,
            identity_resource_id=storage.identity_id,
            container_urls=storage.container_urls,
            # Mount sources are <fsmounts dir>/<container> on the node (README, Design notes).
            mounts_dir=MOUNTS_DIR,
            registry_server=config.registry.server if config.registry else None,
            replace_running_tasks=job.replace_running_tasks,
            owner={"project": pulumi.get_project(), "stack": pulumi.get_stack()},
        )
        task_resources: list[pulumi.Resource] = []
        ends_itself = job.on_all_tasks_complete == "terminateJob"
        for task in job.tasks:
            task_resources.append(
                BatchTask(
                    f"{job.id}.{task['id']}",
                    target,
                    task["id"],
                    _without_id(task),
                    secrets=_secrets_for([task], read_secret),
                    opts=_task_options(task_options, task_resources, ends_itself),
                )
            )
        for sweep in job.sweeps:
            # A big sweep is several sets (batch/shards.py); shard 0 keeps the sweep's name.
            set_name = f"{job.id}.{sweep.id}"
            values = sweep.task_values()
            count = sweep.shards or shards.shard_count(len(values))
            # The same for every shard: secretEnv and the template are the sweep's.
            sweep_secrets = _secrets_for([sweep.template.spec], read_secret)
            set_template = sweep.set_template()
            for index, part in enumerate(shards.split(values, count)):
                task_resources.append(
                    BatchTaskSet(
                        shards.shard_name(set_name, index),
                        target,
                        part,
                        secrets=sweep_secrets,
                        opts=_task_options(task_options, task_resources, ends_itself),
                        set_name=set_name,
                        shard=(index, count),
                        template=set_template,
                    )
                )
        if ends_itself:
            BatchJobCompletion(
                f"{job.id}.completion",
                job_id=job_id,
                endpoint=endpoint,
                on_all_tasks_complete=job.on_all_tasks_complete,
                opts=pulumi.ResourceOptions(depends_on=[batch_job, *task_resources]),
            )
        jobs[job.id] = batch_job
        counts[job.id] = job.task_count()
    return DeclaredStack(storage, jobs, counts)


def export_outputs(config: StackConfig, declared: DeclaredStack) -> None:
    """Export what task code and operators need: URLs, identity ids, the pool, jobs and counts."""
    storage = declared.storage
    pulumi.export("storageAccount", storage.account_name)
    pulumi.export("containerUrls", storage.container_urls)
    pulumi.export("identityResourceId", storage.identity_id)
    pulumi.export("identityClientId", storage.identity_client_id)
    pulumi.export("identityPrincipalId", storage.identity_principal_id)
    pulumi.export("poolId", storage.pool_id)
    pulumi.export("mountPaths", storage.mount_paths)
    pulumi.export("jobIds", [job.id for job in config.jobs])
    pulumi.export("taskCounts", declared.task_counts)


def runtime_config() -> tuple[dict[str, Any], str | None, set[str]]:
    """Read the `batchtasks:` namespace from the Pulumi runtime.

    Returns
    -------
    tuple
        Top-level key -> value (objects decoded from their JSON strings), the
        `azure-native:location`, and the keys that hold secrets.
    """
    merged = config_values()
    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    for key, value in merged.items():
        if not key.startswith(prefix):
            continue
        # Structured values arrive as JSON text; plain strings stay strings even when they
        # look like numbers.
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        raw[key[len(prefix) :]] = value
    secret_keys = {
        key[len(prefix) :] for key in secret_config_keys(set(merged)) if key.startswith(prefix)
    }
    return raw, merged.get("azure-native:location"), secret_keys


def run() -> None:
    """The Pulumi program: validate the whole config first, then declare and export.

    Raises
    ------
    pulumi.RunError
        Listing every config problem, before any resource is registered.
    """
    raw, location, secret_keys = runtime_config()
    try:
        config = parse_stack_config(raw, location=location, secure_keys=secret_keys)
    except ConfigError as error:
        raise pulumi.RunError(f"invalid stack configuration:\n{error}") from None
    secrets = pulumi.Config(NAMESPACE)
    declared = declare_stack(config, secrets.require_secret)
    export_outputs(config, declared)
