"""What the project's users do today: one `create_task` call per task, in a loop.

Each task is built with the seed's functions (`get_container_settings`,
`output_task_files_to_blob`, `get_task_config`) exactly as a submission script does, and sent
with one BatchClient (DefaultAzureCredential, the SDK's default retries) to the same Batch API
double, at the same latency, as the providers.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.identity import DefaultAzureCredential

from batchtasks import task as seed
from batchtasks.storage import MOUNTS_DIR
from bench.double import DoubleProcess
from bench.stacks import (
    COMMAND_TEMPLATE,
    IMAGE,
    INPUT_MOUNTS,
    JOB_ID,
    LOG_CONTAINER,
    OUTPUT_CONTAINER,
    POOL_ID,
    REGISTRY_SERVER,
    RETRIES,
    axis_values,
)

STORAGE_ACCOUNT = "stbench"


@contextmanager
def client_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore the previous values."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def seed_task(
    location: str, scenario: str, identity_resource_id: str
) -> batch_models.BatchTaskCreateOptions:
    """Build one task of the benchmark's sweep the way a submission script does.

    Parameters
    ----------
    location, scenario
        The task's place in the matrix.
    identity_resource_id
        ARM id of the pool's user-assigned identity.

    Returns
    -------
    BatchTaskCreateOptions
        The task, equal to what the task set sends for the same task (its displayName aside).
    """
    identity = batch_models.BatchNodeIdentityReference(resource_id=identity_resource_id)
    registry = batch_models.ContainerRegistryReference(
        registry_server=REGISTRY_SERVER, identity_reference=identity
    )
    container_settings = seed.get_container_settings(
        IMAGE,
        az_mount_dir=MOUNTS_DIR,
        working_directory="taskWorkingDirectory",
        mount_pairs=[{"source": source, "target": target} for source, target in INPUT_MOUNTS],
        registry=registry,
    )
    output = seed.output_task_files_to_blob(
        "output/**/*",
        OUTPUT_CONTAINER,
        STORAGE_ACCOUNT,
        path=f"{location}/{scenario}",
        upload_condition="taskSuccess",
        compute_node_identity_reference=identity,
    )
    environment = {
        "MODEL_SEED": "20250601",
        "REPORT_DATE": "2025-06-02",
        "LOCATION": location,
        "SCENARIO": scenario,
    }
    return seed.get_task_config(
        f"{location}-{scenario}",
        COMMAND_TEMPLATE.format(location=location, scenario=scenario),
        container_settings=container_settings,
        log_blob_container=LOG_CONTAINER,
        log_blob_account=STORAGE_ACCOUNT,
        log_subdir=JOB_ID,
        log_compute_node_identity_reference=identity,
        output_files=[output],
        environment_settings=[
            batch_models.EnvironmentSetting(name=name, value=value)
            for name, value in sorted(environment.items())
        ],
        constraints=batch_models.BatchTaskConstraints(
            max_wall_clock_time=datetime.timedelta(hours=2),
            retention_time=datetime.timedelta(days=7),
            max_task_retry_count=RETRIES,
        ),
    )


def measure_baseline(
    api: DoubleProcess, n: int, latency: float, identity_resource_id: str, limit: int | None = None
) -> dict[str, Any]:
    """Add the N-task sweep one `create_task` call at a time; measure requests and wall time.

    Parameters
    ----------
    api
        A started Batch API double; it is emptied, given `latency` and a job first.
    n
        Number of tasks in the sweep.
    latency
        Seconds the double waits before answering each request.
    identity_resource_id
        ARM id of the identity the tasks reference.
    limit
        Add only the first `limit` tasks and extrapolate the wall time linearly to N.

    Returns
    -------
    dict
        n, latency_s, tasks measured, requests, wall_s (measured or extrapolated to N),
        measured_wall_s, extrapolated, and the body of the first task as the service holds it.
    """
    api.reset()
    api.latency = latency
    api.add_job(JOB_ID, POOL_ID)
    axes = axis_values(n)
    cells = [(location, scenario) for location in axes["location"] for scenario in axes["scenario"]]
    measured = cells if limit is None or limit >= n else cells[:limit]
    with client_environment(api.client_env()):
        start = time.perf_counter()
        with BatchClient(api.endpoint, DefaultAzureCredential()) as client:
            for location, scenario in measured:
                client.create_task(JOB_ID, seed_task(location, scenario, identity_resource_id))
        wall = time.perf_counter() - start
    stored = api.task_count(JOB_ID)
    if stored != len(measured):
        raise RuntimeError(f"the loop left {stored} tasks, not {len(measured)}")
    extrapolated = len(measured) < n
    first = f"{measured[0][0]}-{measured[0][1]}"
    return {
        "n": n,
        "latency_s": latency,
        "tasks_measured": len(measured),
        "requests": round(api.total_requests() * n / len(measured)),
        "requests_measured": api.total_requests(),
        "measured_wall_s": round(wall, 3),
        "wall_s": round(wall * n / len(measured), 3),
        "extrapolated": extrapolated,
        "first_task": api.task(JOB_ID, first),
    }
