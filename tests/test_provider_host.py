"""The Batch providers through Pulumi's real provider host, over gRPC, as `pulumi up` runs them.

Each resource is registered by the real program under mocks; its inputs, `__provider` included,
go to `python -m pulumi.dynamic` started in the project directory, which unpickles the provider
and calls the Batch API double. This catches what calling provider methods directly hides:
pickling and import problems, the wire format (integers as floats, unknowns, secrets).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from batchapi import DELETING_FOREVER, BatchApiDouble
from batchtasks.batch import buckets
from batchtasks.batch.tasks import encode_template, set_specs
from batchtasks.config import parse_stack_config
from batchtasks.program import declare_stack
from bench.provider import with_task
from providerhost import (
    PROVIDER_KEY,
    UNKNOWN,
    HostCallError,
    ProviderHost,
    Registration,
    ResourceState,
    capture_registrations,
    contains_secret,
)
from tests.state_contract import PROJECT_DIR, small_stack

JOB_ID = "sweep-job"
POOL_ID = "pool-1"
SECRET_VALUE = "tok-7f3a9c1e5b"
DISEASES = ("covid", "flu", "rsv")
STATES = ("ca", "ny", "tx", "fl")
SWEEP_IDS = sorted(f"{disease}-{state}" for disease in DISEASES for state in STATES)


def stack_settings(endpoint: str) -> dict[str, Any]:
    """A small stack: one job, a 12-task sweep and one task reading a secret."""
    matrix = {"disease": list(DISEASES), "state": list(STATES)}
    return small_stack(endpoint, name="test", job_id=JOB_ID, matrix=matrix, pool_id=POOL_ID)


@pytest.fixture(scope="module")
def registered(batch_api_server: BatchApiDouble) -> dict[str, Registration]:
    """What the real program registers for the small stack, by resource type name."""
    config = parse_stack_config(stack_settings(batch_api_server.endpoint), location="eastus")
    found = capture_registrations(
        lambda: declare_stack(config, lambda key: pulumi.Output.secret(SECRET_VALUE))
    )
    return {r.type.rsplit(":", 1)[1]: r for r in found}


@pytest.fixture(scope="module")
def host(batch_api_server: BatchApiDouble) -> Iterator[ProviderHost]:
    """One provider host for the module, reaching the double like a deployment reaches Azure."""
    with ProviderHost(PROJECT_DIR, batch_api_server.client_env()) as started:
        started.configure({"batchtasks:resourceGroup": "rg-test"})
        yield started


def checked(
    host: ProviderHost,
    reg: Registration,
    news: dict[str, Any] | None = None,
    olds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check inputs as the engine does before Diff, Create and Update; fail on any failure."""
    outcome = host.check(reg.urn, olds or {}, reg.inputs if news is None else news)
    assert outcome.failures == []
    return outcome.inputs


def created(
    host: ProviderHost, reg: Registration, news: dict[str, Any] | None = None
) -> tuple[dict[str, Any], ResourceState]:
    """Check and create a resource; return its checked inputs and its state."""
    inputs = checked(host, reg, news)
    return inputs, host.create(reg.urn, inputs)


def requests(api: BatchApiDouble) -> Counter[str]:
    """The requests since the last look, then start counting afresh."""
    counts = api.counts()
    api.reset_counts()
    return counts


def writes(counts: Counter[str]) -> Counter[str]:
    """The requests that change something on the service."""
    return Counter({route: n for route, n in counts.items() if not route.startswith("GET ")})


# ------------------------------------------------------------------ the serialized providers


def test_program_registers_small_providers_pickled_by_reference(
    registered: dict[str, Registration],
) -> None:
    assert set(registered) == {"Job", "Task", "TaskSet", "JobCompletion"}
    for reg in registered.values():
        assert isinstance(reg.provider, str)
        assert len(reg.provider) < 1024, f"{reg.type}: {len(reg.provider)} bytes"
        # By reference: the pickle names the importable class instead of carrying its code.
        assert b"batchtasks.batch." in base64.b64decode(reg.provider), reg.type


def test_host_unpickles_every_provider_from_the_project(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    for reg in registered.values():
        outcome = host.check(reg.urn, {}, reg.inputs)
        assert outcome.failures == [], reg.type
        assert outcome.inputs[PROVIDER_KEY] == reg.provider
    assert batch_api.total_requests() == 0
    assert host.running


def test_configure_answers_that_secrets_arrive_in_plaintext(host: ProviderHost) -> None:
    # The engine then strips secret markers from requests, so providers see plain values.
    assert host.configure({"batchtasks:resourceGroup": "rg-test"}) is False


# ------------------------------------------------------------------ round trips


def test_job_round_trip(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["Job"]
    inputs, state = created(host, reg)
    assert state.id == JOB_ID
    job = batch_api.job(JOB_ID)
    assert job is not None
    assert (job["poolInfo"]["poolId"], job["priority"]) == (POOL_ID, 10)
    # Created with noAction: terminateJob with no tasks would end the job at once.
    assert job["onAllTasksComplete"] == "noaction"
    assert requests(batch_api) == Counter({"POST job": 1})

    refreshed = host.read(reg.urn, state.id, state.outputs, inputs)
    # The service's own completion mode: noAction until BatchJobCompletion switches it.
    assert (refreshed.id, refreshed.outputs) == (
        state.id,
        {**state.outputs, "onAllTasksComplete": "noAction"},
    )
    assert requests(batch_api) == Counter({"GET job": 1})
    batch_api.update_job_fields(JOB_ID, onAllTasksComplete="terminatejob")
    refreshed = host.read(reg.urn, state.id, state.outputs, inputs)
    assert (refreshed.id, refreshed.outputs) == (state.id, state.outputs)
    assert refreshed.inputs is not None
    assert refreshed.inputs["onAllTasksComplete"] == "terminateJob"
    requests(batch_api)

    assert host.diff(reg.urn, state.id, state.outputs, inputs).changes is False
    moved = host.diff(
        reg.urn, state.id, state.outputs, checked(host, reg, {**inputs, "poolId": "pool-2"})
    )
    assert (moved.changes, moved.replaces, moved.delete_before_replace) == (True, ["poolId"], True)
    news = checked(host, reg, {**inputs, "priority": 20}, inputs)
    change = host.diff(reg.urn, state.id, state.outputs, news)
    assert (change.changes, change.replaces) == (True, [])
    assert requests(batch_api).total() == 0

    updated = host.update(reg.urn, state.id, state.outputs, news)
    assert updated.outputs["priority"] == 20
    assert batch_api.job(JOB_ID)["priority"] == 20
    assert requests(batch_api) == Counter({"PATCH job": 1})

    host.delete(reg.urn, state.id, updated.outputs)
    assert batch_api.job(JOB_ID)["state"] == "deleting"
    assert requests(batch_api)["DELETE job"] == 1
    assert host.read(reg.urn, state.id, updated.outputs, news).id == ""


def test_task_set_round_trip(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["TaskSet"]
    batch_api.add_job(JOB_ID, POOL_ID)
    inputs, state = created(host, reg)
    assert state.id == f"{JOB_ID}/{reg.name}"
    stored = batch_api.tasks(JOB_ID)
    assert sorted(stored) == SWEEP_IDS
    assert stored["flu-ny"]["commandLine"] == "python -m model --disease flu --state ny"
    assert stored["flu-ny"]["constraints"]["maxTaskRetryCount"] == 1
    # One collection for all 12 tasks; at most one listing, to find an interrupted run's tasks.
    counts = requests(batch_api)
    assert writes(counts) == Counter({"POST addtaskcollection": 1})
    assert counts.total() - writes(counts).total() <= 1

    refreshed = host.read(reg.urn, state.id, state.outputs, inputs)
    assert (refreshed.id, refreshed.outputs) == (state.id, state.outputs)
    assert requests(batch_api) == Counter({"GET job": 1, "GET tasks": 1})

    assert host.diff(reg.urn, state.id, state.outputs, inputs).changes is False
    news = checked(host, reg, with_task(inputs, "flu-ny", command="python -m model --v2"), inputs)
    change = host.diff(reg.urn, state.id, state.outputs, news)
    # One task is replaced inside the set; the set itself stays.
    assert (change.changes, change.replaces) == (True, [])
    assert requests(batch_api).total() == 0

    updated = host.update(reg.urn, state.id, state.outputs, news)
    assert batch_api.tasks(JOB_ID)["flu-ny"]["commandLine"] == "python -m model --v2"
    added = [json.loads(r.body) for r in batch_api.requests if r.route == "POST addtaskcollection"]
    assert [[task["id"] for task in body["value"]] for body in added] == [["flu-ny"]]
    assert requests(batch_api) == Counter(
        {"GET job": 1, "GET tasks": 1, "DELETE task": 1, "POST addtaskcollection": 1}
    )

    longer = checked(host, reg, with_task(news, "rsv-tx", maxWallClockTime="PT3H"), news)
    host.update(reg.urn, state.id, updated.outputs, longer)
    assert batch_api.tasks(JOB_ID)["rsv-tx"]["constraints"]["maxWallClockTime"] == "PT3H"
    assert requests(batch_api) == Counter({"PUT task": 1})

    host.delete(reg.urn, state.id, {**updated.outputs, **longer})
    assert batch_api.tasks(JOB_ID) == {}
    assert requests(batch_api) == Counter({"GET job": 1, "GET tasks": 1, "DELETE task": 12})


def test_task_round_trip(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["Task"]
    batch_api.add_job(JOB_ID, POOL_ID)
    inputs, state = created(host, reg)
    assert state.id == f"{JOB_ID}/summary"
    assert list(batch_api.tasks(JOB_ID)) == ["summary"]
    assert requests(batch_api) == Counter({"POST addtaskcollection": 1})

    refreshed = host.read(reg.urn, state.id, state.outputs, inputs)
    assert (refreshed.id, refreshed.outputs) == (state.id, state.outputs)
    assert requests(batch_api) == Counter({"GET job": 1, "GET task": 1})

    assert host.diff(reg.urn, state.id, state.outputs, inputs).changes is False
    other = checked(host, reg, {**inputs, "task": {**inputs["task"], "command": "true"}}, inputs)
    replace = host.diff(reg.urn, state.id, state.outputs, other)
    assert (replace.changes, replace.replaces, replace.delete_before_replace) == (
        True,
        ["task"],
        True,
    )
    news = checked(host, reg, {**inputs, "task": {**inputs["task"], "retries": 3}}, inputs)
    change = host.diff(reg.urn, state.id, state.outputs, news)
    assert (change.changes, change.replaces) == (True, [])
    assert requests(batch_api).total() == 0

    updated = host.update(reg.urn, state.id, state.outputs, news)
    assert batch_api.tasks(JOB_ID)["summary"]["constraints"]["maxTaskRetryCount"] == 3
    assert requests(batch_api) == Counter({"PUT task": 1})

    host.delete(reg.urn, state.id, updated.outputs)
    assert batch_api.tasks(JOB_ID) == {}
    assert requests(batch_api) == Counter({"GET job": 1, "GET tasks": 1, "DELETE task": 1})
    assert host.read(reg.urn, state.id, updated.outputs, news).id == ""


def test_job_completion_round_trip(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["JobCompletion"]
    batch_api.add_job(JOB_ID, POOL_ID)
    batch_api.add_task(JOB_ID, "covid-ca")
    inputs, state = created(host, reg)
    assert state.id == f"{JOB_ID}/completion"
    assert batch_api.job(JOB_ID)["onAllTasksComplete"] == "terminatejob"
    assert batch_api.job(JOB_ID)["state"] == "active"  # a task is still to run
    assert requests(batch_api) == Counter({"GET job": 1, "PATCH job": 1})

    refreshed = host.read(reg.urn, state.id, state.outputs, inputs)
    assert (refreshed.id, refreshed.outputs) == (state.id, state.outputs)
    assert host.diff(reg.urn, state.id, state.outputs, inputs).changes is False
    moved = host.diff(
        reg.urn, state.id, state.outputs, checked(host, reg, {**inputs, "jobId": "other-job"})
    )
    assert (moved.changes, moved.replaces) == (True, ["jobId"])
    assert requests(batch_api) == Counter({"GET job": 1})  # the read; diffs call nothing

    # Applying again is harmless, also once the job has completed.
    batch_api.set_task_state(JOB_ID, "covid-ca", "completed")
    assert batch_api.job(JOB_ID)["state"] == "completed"
    host.update(reg.urn, state.id, state.outputs, inputs)
    assert requests(batch_api) == Counter({"GET job": 1, "PATCH job": 1})

    # Deleting the switch leaves the job alone: the job's own resource deletes it.
    host.delete(reg.urn, state.id, state.outputs)
    assert batch_api.job(JOB_ID) is not None
    assert writes(requests(batch_api)).total() == 0


# ------------------------------------------------------------------ check, preview, errors


def test_check_reports_each_bad_input_with_its_property(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    job = registered["Job"]
    outcome = host.check(job.urn, {}, {**job.inputs, "priority": 5000, "jobId": "bad id"})
    assert {path for path, _ in outcome.failures} == {"priority", "jobId"}
    assert any("5000" in reason for path, reason in outcome.failures if path == "priority")
    back = host.check(job.urn, job.inputs, {**job.inputs, "onAllTasksComplete": "noAction"})
    assert [path for path, _ in back.failures] == ["onAllTasksComplete"]

    sweep = registered["TaskSet"]
    bad = with_task(
        sweep.inputs,
        "covid-ca",
        command=" ",
        outputs=[{"pattern": "out/*", "container": "nowhere"}],
    )
    outcome = host.check(sweep.urn, {}, bad)
    assert {path for path, _ in outcome.failures} == {
        "tasks.covid-ca.command",
        "tasks.covid-ca.outputs[0].container",
    }
    assert batch_api.total_requests() == 0


def test_unknown_inputs_during_preview_pass_check_and_diff(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    # On a first preview the storage outputs do not exist yet.
    sweep = registered["TaskSet"]
    news = {**sweep.inputs, "identityResourceId": UNKNOWN, "containerUrls": UNKNOWN}
    outcome = host.check(sweep.urn, {}, news)
    assert outcome.failures == []
    change = host.diff(sweep.urn, f"{JOB_ID}/{sweep.name}", sweep.inputs, news)
    assert (change.changes, change.replaces) == (True, [])

    job = registered["Job"]
    news = {**job.inputs, "endpoint": UNKNOWN, "poolId": UNKNOWN}
    assert host.check(job.urn, {}, news).failures == []
    change = host.diff(job.urn, JOB_ID, job.inputs, news)
    assert change.changes is True
    assert sorted(change.replaces) == ["endpoint", "poolId"]
    assert batch_api.total_requests() == 0


def test_provider_failure_comes_back_with_the_hosts_traceback(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["TaskSet"]
    inputs = checked(host, reg)
    with pytest.raises(HostCallError) as raised:
        host.create(reg.urn, inputs)  # no job yet
    assert raised.value.method == "Create"
    assert "Traceback" in raised.value.details
    assert "BatchOperationError" in raised.value.details
    assert "JobNotFound" in raised.value.details
    assert host.running


# ------------------------------------------------------------------ secrets


def test_secret_reaches_the_task_but_no_message(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["Task"]
    assert contains_secret(reg.inputs["secrets"])  # the program registers it as a secret
    messages: list[str] = []

    bad = {
        **reg.inputs,
        "task": {
            **reg.inputs["task"],
            "command": "",
            "secretEnv": {"API_TOKEN": "apiToken", "OTHER": "missing"},
        },
    }
    outcome = host.check(reg.urn, {}, bad)
    assert {path for path, _ in outcome.failures} == {"task.command", "task.secretEnv.OTHER"}
    messages += [reason for _, reason in outcome.failures]

    inputs = checked(host, reg)
    with pytest.raises(HostCallError) as raised:
        host.create(reg.urn, inputs)  # no job yet
    messages.append(raised.value.details)

    batch_api.add_job(JOB_ID, POOL_ID)
    host.create(reg.urn, inputs)
    environment = batch_api.tasks(JOB_ID)["summary"]["environmentSettings"]
    assert {"name": "API_TOKEN", "value": SECRET_VALUE} in environment

    messages.append(host.stderr_text())
    assert all(SECRET_VALUE not in message for message in messages)


# ------------------------------------------------------------------ job replacement


def test_every_task_resource_takes_its_job_id_from_the_job(
    registered: dict[str, Registration],
) -> None:
    # The engine replaces dependents of a replaced job by following property dependencies
    # only: each task resource's jobId must come from the BatchJob's output.
    job = registered["Job"]
    for kind in ("Task", "TaskSet", "JobCompletion"):
        reg = registered[kind]
        sources = reg.property_dependencies.get("jobId", [])
        # The URN's type part carries the parent chain (Stack$...$type): compare its end.
        found = [
            (urn.rsplit("::", 2)[1].rsplit("$", 1)[-1], urn.rsplit("::", 1)[1]) for urn in sources
        ]
        assert found == [(job.type, job.name)], kind
        assert reg.inputs["jobId"] == JOB_ID, kind


def test_a_replaced_job_replaces_its_task_resources(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    # What the engine sends a dependent of a job being replaced: its own inputs with the
    # dependent property (jobId) unknown, unchecked.
    for kind in ("Task", "TaskSet", "JobCompletion"):
        reg = registered[kind]
        inputs = checked(host, reg)
        change = host.diff(reg.urn, f"{JOB_ID}/{reg.name}", inputs, {**inputs, "jobId": UNKNOWN})
        assert (change.changes, change.replaces, change.delete_before_replace) == (
            True,
            ["jobId"],
            True,
        ), kind
    assert batch_api.total_requests() == 0


def test_job_replacement_keeps_running_tasks_unless_allowed(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    batch_api.add_job(JOB_ID, POOL_ID)
    sweep = registered["TaskSet"]
    inputs, state = created(host, sweep)
    batch_api.set_task_state(JOB_ID, "flu-ny", "running")
    change = host.diff(sweep.urn, state.id, state.outputs, {**inputs, "jobId": UNKNOWN})
    assert change.replaces == ["jobId"]
    # The replacement starts by deleting the set: refused while a task runs, nothing deleted.
    with pytest.raises(HostCallError) as raised:
        host.delete(sweep.urn, state.id, state.outputs)
    assert "flu-ny" in raised.value.details
    assert "replaceRunningTasks" in raised.value.details
    assert sorted(batch_api.tasks(JOB_ID)) == SWEEP_IDS
    job = registered["Job"]
    with pytest.raises(HostCallError) as raised:
        host.delete(job.urn, JOB_ID, checked(host, job))
    assert "running" in raised.value.details
    assert batch_api.job(JOB_ID) is not None
    # Allowed: the set's tasks go, then the job.
    allowed = {**state.outputs, "replaceRunningTasks": True}
    host.delete(sweep.urn, state.id, allowed)
    assert batch_api.tasks(JOB_ID) == {}


def test_second_delete_of_a_job_meets_job_being_deleted_and_is_done(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["Job"]
    inputs, state = created(host, reg)
    batch_api.deleting_polls = DELETING_FOREVER
    host.delete(reg.urn, state.id, state.outputs)
    requests(batch_api)
    # The first answer was lost, say: destroy runs again and meets JobBeingDeleted.
    host.delete(reg.urn, state.id, state.outputs)
    assert requests(batch_api)["DELETE job"] == 1
    assert batch_api.job(JOB_ID)["state"] == "deleting"
    assert host.read(reg.urn, state.id, state.outputs, inputs).id == ""


def test_service_errors_reach_the_user_without_azure_core_text(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["TaskSet"]
    batch_api.add_job(JOB_ID, POOL_ID)
    batch_api.set_job_state(JOB_ID, "completed")
    with pytest.raises(HostCallError) as raised:
        host.create(reg.urn, checked(host, reg))
    details = raised.value.details
    assert "JobCompleted" in details and "new id" in details
    for raw in ("RequestId", "azure.core", "ResourceExistsError", "HttpResponseError"):
        assert raw not in details


# ------------------------------------------------------------------ a crash mid-create


def crash_mid_create(
    batch_api: BatchApiDouble, reg: Registration, inputs: dict[str, Any], after_tasks: int
) -> None:
    """Start creating through a host of its own and SIGKILL it once `after_tasks` tasks
    landed, as a crash would; the engine never hears back."""
    with ProviderHost(PROJECT_DIR, batch_api.client_env()) as doomed:
        doomed.configure({"batchtasks:resourceGroup": "rg-test"})
        outcome: list[BaseException] = []

        def create() -> None:
            try:
                doomed.create(reg.urn, inputs)
            except HostCallError as error:
                outcome.append(error)

        worker = threading.Thread(target=create)
        worker.start()
        deadline = time.monotonic() + 60
        while len(batch_api.tasks(JOB_ID)) < after_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        doomed.kill()
        worker.join(timeout=30)
        assert outcome, "the create finished before the kill"


@pytest.mark.parametrize("edited", [False, True], ids=["same", "edited"])
def test_host_killed_mid_create_then_a_fresh_host_ends_with_the_declared_tasks(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration], edited: bool
) -> None:
    created(host, registered["Job"])  # names this stack in its metadata
    reg = registered["TaskSet"]
    template = set_specs(reg.inputs)["covid-ca"]
    tasks = {
        f"run-{index:04d}": {**template, "command": f"python -m run {index}"}
        for index in range(500)
    }
    # One request at a time, each a little slow: the kill lands after a collection is stored,
    # before its answer (the double works first, then waits out the latency).
    inputs = checked(
        host,
        reg,
        {**reg.inputs, "tasks": buckets.pack(tasks), "retryPolicy": {"concurrency": 1.0}},
    )
    batch_api.latency = 0.05
    try:
        crash_mid_create(batch_api, reg, inputs, after_tasks=100)
    finally:
        batch_api.latency = 0.0
    landed = batch_api.tasks(JOB_ID)
    assert 100 <= len(landed) < 500
    if edited:
        # The next `up` declares a task that already landed differently.
        first = sorted(landed)[0]
        tasks = {**tasks, first: {**template, "command": "python -m run v2"}}
        inputs = checked(host, reg, {**inputs, "tasks": buckets.pack(tasks)})
    host.create(reg.urn, inputs)  # the module's host: a fresh process, as after a crash
    stored = batch_api.tasks(JOB_ID)
    assert sorted(stored) == sorted(tasks)
    for task_id, spec in tasks.items():
        assert stored[task_id]["commandLine"] == spec["command"]


def test_shards_of_a_job_that_ends_itself_replacing_every_task_in_chain_order_lose_none(
    host: ProviderHost, batch_api: BatchApiDouble
) -> None:
    # Two shards changing at once each counted the other's tasks as incomplete, both deleted
    # theirs and the job completed with nothing left to add to. The program chains a
    # terminateJob job's task resources; the engine then runs their updates in that order.
    settings = stack_settings(batch_api.endpoint)
    settings["jobs"][0]["sweeps"][0]["shards"] = 2
    del settings["jobs"][0]["tasks"]
    settings.pop("apiToken")
    config = parse_stack_config(settings, location="eastus")
    found = {
        r.name: r
        for r in capture_registrations(lambda: declare_stack(config, pulumi.Output.secret))
    }
    shard_names = [f"{JOB_ID}.grid", f"{JOB_ID}.grid.shard-1"]
    batch_api.add_job(JOB_ID, POOL_ID)
    states = {name: created(host, found[name]) for name in shard_names}
    assert sorted(batch_api.tasks(JOB_ID)) == SWEEP_IDS
    created(host, found[f"{JOB_ID}.completion"])

    for name in shard_names:  # the chain's order: shard 1 waits for shard 0
        inputs, state = states[name]
        template = {**json.loads(inputs["template"]), "image": "example.azurecr.io/model:2"}
        news = checked(host, found[name], {**inputs, "template": encode_template(template)}, inputs)
        host.update(found[name].urn, state.id, state.outputs, news)

    live = batch_api.tasks(JOB_ID)
    assert sorted(live) == SWEEP_IDS
    assert {task["containerSettings"]["imageName"] for task in live.values()} == {
        "example.azurecr.io/model:2"
    }
    assert batch_api.job(JOB_ID)["state"] == "active"
