"""Opt-in checks against a real Azure Batch account.

Skipped unless these are set (see the README, "Testing against a real Batch account"):

- BATCHTASKS_LIVE_ENDPOINT: https://<account>.<region>.batch.azure.com
- BATCHTASKS_LIVE_POOL_ID: an existing pool that runs containers (docker-compatible)
- BATCHTASKS_LIVE_IDENTITY_ID: ARM id of a user-assigned identity attached to that pool
- BATCHTASKS_LIVE_CONTAINER_URL: https://<account>.blob.core.windows.net/<container> the
  identity may write to

Credentials come from DefaultAzureCredential (az login, a managed identity, or AZURE_CLIENT_ID /
AZURE_TENANT_ID / AZURE_FEDERATED_TOKEN_FILE in CI). Every job made here is deleted at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from batchtasks.batch.client import RetryPolicy, TaskWriter, make_client
from batchtasks.batch.job import BatchJobCompletionProvider, BatchJobProvider
from batchtasks.batch.tasks import BatchTaskSetProvider

LIVE = {
    name: os.environ.get(f"BATCHTASKS_LIVE_{name}")
    for name in ("ENDPOINT", "POOL_ID", "IDENTITY_ID", "CONTAINER_URL")
}

pytestmark = pytest.mark.skipif(
    not all(LIVE.values()),
    reason="set BATCHTASKS_LIVE_ENDPOINT, _POOL_ID, _IDENTITY_ID and _CONTAINER_URL to run "
    "against a real Batch account",
)


@pytest.fixture
def job() -> Iterator[dict]:
    props = {
        "endpoint": LIVE["ENDPOINT"],
        "jobId": f"batchtasks-live-{uuid.uuid4().hex[:12]}",
        "poolId": LIVE["POOL_ID"],
        "onAllTasksComplete": "terminateJob",
        "replaceRunningTasks": True,
    }
    BatchJobProvider().create(props)
    yield props
    BatchJobProvider().delete(props["jobId"], props)


def task_set(job: dict, tasks: dict) -> dict:
    container = LIVE["CONTAINER_URL"].rstrip("/").rsplit("/", 1)[-1]
    return {
        "endpoint": job["endpoint"],
        "jobId": job["jobId"],
        "setName": "live",
        "identityResourceId": LIVE["IDENTITY_ID"],
        "containerUrls": {container: LIVE["CONTAINER_URL"]},
        "mountsDir": "/mnt/batch/tasks/fsmounts",
        "secrets": {},
        "replaceRunningTasks": True,
        "tasks": tasks,
    }


def test_job_with_a_sweep_lives_through_create_update_read_and_delete(job: dict) -> None:
    spec = {
        "command": "/bin/sh -c 'echo hello'",
        "image": "docker.io/library/busybox:1.36",
        "retries": 0,
    }
    props = task_set(job, {f"hello-{n}": dict(spec) for n in range(3)})
    provider = BatchTaskSetProvider()
    assert provider.check({}, props).failures == []
    provider.create(props)
    changed = {
        **props,
        "tasks": {**props["tasks"], "hello-0": {**spec, "retries": 2}, "hello-3": dict(spec)},
    }
    provider.update("live", props, changed)
    writer = TaskWriter(make_client(job["endpoint"]), job["jobId"], RetryPolicy())
    live = writer.existing_tasks()
    assert set(live) == {"hello-0", "hello-1", "hello-2", "hello-3"}
    assert live["hello-0"]["constraints"]["maxTaskRetryCount"] == 2
    assert set(provider.read("live", changed).outs["tasks"]) == set(changed["tasks"])
    BatchJobCompletionProvider().create(job)
    provider.delete("live", changed)
    assert writer.existing_tasks() == {}
