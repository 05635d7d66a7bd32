"""Sharded sweeps through Pulumi's real provider host against the Batch API double.

The real program registers the shards of a sweep under mocks; each shard's inputs, `__provider`
included, go to `python -m pulumi.dynamic`, which calls the double over HTTPS. What a user
would notice: every task lands exactly once, an added task touches one resource, an interrupted
create of one shard never deletes another shard's tasks, and a changed shard count is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from batchapi import BatchApiDouble
from batchtasks.batch.shards import shard_of
from batchtasks.batch.tasks import stored_tasks, with_stored_tasks
from batchtasks.config import parse_stack_config
from batchtasks.program import declare_stack
from providerhost import ProviderHost, Registration, ResourceState, capture_registrations
from tests.test_provider_host import crash_mid_create

PROJECT_DIR = Path(__file__).resolve().parent.parent
JOB_ID = "sweep-job"  # what `crash_mid_create` watches
TASK_SET = "pulumi-python:dynamic/batch:TaskSet"
JOB = "pulumi-python:dynamic/batch:Job"


def stack(endpoint: str, first: int, second: int, **sweep_keys: Any) -> dict[str, Any]:
    """One job holding one sweep of first x second tasks."""
    return {
        "resourceGroup": "rg-test",
        "storage": {"account": "sttest", "create": True, "containers": [{"name": "results"}]},
        "identity": {"name": "id-test"},
        "batch": {"account": "batest", "endpoint": endpoint, "pool": {"id": "pool-1"}},
        "jobs": [
            {
                "id": JOB_ID,
                "defaults": {"image": "example.azurecr.io/model:1", "retries": 1},
                "sweeps": [
                    {
                        "id": "grid",
                        "taskId": "r{a}-{b}",
                        "matrix": {"a": list(range(first)), "b": list(range(second))},
                        "command": "python -m model --a {a} --b {b}",
                        "outputs": [
                            {"pattern": "out/*", "container": "results", "path": "{a}/{b}"}
                        ],
                        **sweep_keys,
                    }
                ],
            }
        ],
    }


def registrations(settings: dict[str, Any]) -> tuple[Registration, list[Registration]]:
    """The job and the task sets (sorted by name) the real program registers."""
    config = parse_stack_config(settings, location="eastus")
    found = capture_registrations(lambda: declare_stack(config, pulumi.Output.secret))
    (job,) = [reg for reg in found if reg.type == JOB]
    return job, sorted((reg for reg in found if reg.type == TASK_SET), key=lambda r: r.name)


@pytest.fixture(scope="module")
def host(batch_api_server: BatchApiDouble) -> Iterator[ProviderHost]:
    with ProviderHost(PROJECT_DIR, batch_api_server.client_env()) as started:
        started.configure({"batchtasks:resourceGroup": "rg-test"})
        yield started


def checked(host: ProviderHost, reg: Registration, olds: dict[str, Any] | None = None) -> dict:
    outcome = host.check(reg.urn, olds or {}, reg.inputs)
    assert outcome.failures == [], reg.name
    return outcome.inputs


def create_all(host: ProviderHost, sets: list[Registration]) -> dict[str, ResourceState]:
    return {reg.name: host.create(reg.urn, checked(host, reg)) for reg in sets}


def requests(api: BatchApiDouble) -> Counter[str]:
    counts = api.counts()
    api.reset_counts()
    return counts


def commands(api: BatchApiDouble) -> dict[str, str]:
    return {task_id: body["commandLine"] for task_id, body in api.tasks(JOB_ID).items()}


def test_a_30000_task_sweep_is_four_sets_and_an_added_task_touches_one(
    host: ProviderHost, batch_api: BatchApiDouble
) -> None:
    endpoint = batch_api.endpoint
    job, sets = registrations(stack(endpoint, 100, 300))
    assert [reg.name for reg in sets] == [
        "sweep-job.grid",
        "sweep-job.grid.shard-1",
        "sweep-job.grid.shard-2",
        "sweep-job.grid.shard-3",
    ]
    host.create(job.urn, checked(host, job))
    requests(batch_api)
    states = create_all(host, sets)
    created = requests(batch_api)
    stored = batch_api.tasks(JOB_ID)
    declared = [task_id for reg in sets for task_id in stored_tasks(reg.inputs)]
    assert len(declared) == len(set(declared)) == len(stored) == 30_000
    assert sorted(stored) == sorted(declared)
    # Each set lists the job once (strays of an interrupted create) and adds its own tasks.
    assert created["POST addtaskcollection"] == sum(
        -(-len(stored_tasks(reg.inputs)) // 100) for reg in sets
    )
    assert len({state.id for state in states.values()}) == 4

    # One more combination: exactly one set sees a change, and one request adds the task.
    _, grown = registrations(stack(endpoint, 100, 300, include=[{"a": 999, "b": 0}]))
    changed = []
    for old, new in zip(sets, grown, strict=True):
        state = states[old.name]
        inputs = checked(host, new, state.outputs)
        diff = host.diff(new.urn, state.id, state.outputs, inputs)
        assert not diff.replaces
        if diff.changes:
            changed.append(new.name)
            host.update(new.urn, state.id, state.outputs, inputs)
    owner = shard_of("r999-0", 4)
    assert changed == [sets[owner].name]
    updated = requests(batch_api)
    assert updated["POST addtaskcollection"] == 1 and "DELETE task" not in updated
    assert len(batch_api.tasks(JOB_ID)) == 30_001


def test_an_interrupted_create_of_shard_1_leaves_shard_0_alone(
    host: ProviderHost, batch_api: BatchApiDouble
) -> None:
    job, sets = registrations(stack(batch_api.endpoint, 20, 40, shards=2))
    host.create(job.urn, checked(host, job))  # names this stack in its metadata
    first, second = sets
    host.create(first.urn, checked(host, first))
    before = commands(batch_api)
    assert sorted(before) == sorted(stored_tasks(first.inputs))
    # One request at a time, each a little slow: the kill lands after a collection is stored,
    # before its answer (the double works first, then waits out the latency).
    slow = {**second.inputs, "retryPolicy": {"concurrency": 1.0}}
    inputs = host.check(second.urn, {}, slow).inputs
    batch_api.latency = 0.05
    try:
        crash_mid_create(batch_api, second, inputs, after_tasks=len(before) + 100)
    finally:
        batch_api.latency = 0.0
    landed = set(batch_api.tasks(JOB_ID)) - set(before)
    assert 100 <= len(landed) < len(stored_tasks(second.inputs))
    # The next run declares shard 1 without one task that landed: that one is its stray.
    dropped = sorted(landed)[0]
    tasks = {key: value for key, value in stored_tasks(second.inputs).items() if key != dropped}
    requests(batch_api)
    fewer = with_stored_tasks(second.inputs, tasks)
    host.create(second.urn, host.check(second.urn, {}, fewer).inputs)
    assert requests(batch_api)["DELETE task"] == 1  # the stray, nothing of shard 0
    after = commands(batch_api)
    assert sorted(after) == sorted([*stored_tasks(first.inputs), *tasks])
    assert {task_id: after[task_id] for task_id in before} == before
    for task_id in tasks:
        a, b = task_id.removeprefix("r").split("-")
        assert after[task_id] == f"python -m model --a {a} --b {b}"


def test_check_refuses_a_changed_shard_count(host: ProviderHost, batch_api: BatchApiDouble) -> None:
    job, sets = registrations(stack(batch_api.endpoint, 10, 10, shards=2))
    host.create(job.urn, checked(host, job))
    states = create_all(host, sets)
    _, doubled = registrations(stack(batch_api.endpoint, 10, 10, shards=4))
    requests(batch_api)
    outcome = host.check(doubled[0].urn, states[sets[0].name].outputs, doubled[0].inputs)
    ((prop, reason),) = outcome.failures
    assert prop == "shard"
    for part in ("'sweep-job.grid'", "over 2 task set(s)", "over 4", "`shards: 2`"):
        assert part in reason
    assert batch_api.total_requests() == 0
