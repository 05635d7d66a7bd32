"""BatchJob and BatchJobCompletion providers against the Batch API double.

The providers run as Pulumi calls them (camelCase inputs, integers as floats) with the real
azure-batch client and the real azure-identity chain over HTTPS.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from batchapi import BatchApiDouble
from batchtasks.batch import sdk_compat
from batchtasks.batch.client import BatchOperationError, make_client
from batchtasks.batch.job import (
    DELETE_WAIT_SECONDS,
    BatchJobCompletionProvider,
    BatchJobProvider,
)
from batchtasks.batch.spec import UNKNOWN
from batchtasks.batch.tasks import BatchTaskSetProvider
from tests.fakeclock import FakeClock

JOB = "weekly"
OWNER = {"project": "batchtasks", "stack": "test", "resource": "job-weekly"}
POLICY = {"maxAttempts": 4.0, "maxSeconds": 20.0, "baseDelay": 0.01, "maxDelay": 0.05}


def job_props(api: BatchApiDouble, **changes: Any) -> dict[str, Any]:
    """A BatchJob's inputs as the provider receives them (integers as floats)."""
    return {
        "endpoint": api.endpoint,
        "jobId": JOB,
        "poolId": "pool",
        "priority": 10.0,
        "maxParallelTasks": 4.0,
        "constraints": {"maxWallClockTime": "P1D", "maxTaskRetryCount": 2.0},
        "usesTaskDependencies": False,
        "onAllTasksComplete": "noAction",
        "replaceRunningTasks": False,
        "retryPolicy": dict(POLICY),
        "owner": dict(OWNER),
        "adopt": False,
        **changes,
    }


def completion_props(api: BatchApiDouble, mode: str = "terminateJob") -> dict[str, Any]:
    """A BatchJobCompletion's inputs."""
    return {
        "endpoint": api.endpoint,
        "jobId": JOB,
        "onAllTasksComplete": mode,
        "retryPolicy": dict(POLICY),
    }


def create(provider: BatchJobProvider, props: dict[str, Any]) -> dict[str, Any]:
    """Check then create, as the engine does; return the state Pulumi would keep."""
    result = provider.check({}, props)
    assert result.failures == []
    return provider.create(result.inputs).outs


@pytest.fixture
def jobs(batch_api: BatchApiDouble) -> BatchJobProvider:
    # A deleted job disappears at the first poll, so deletes need no polling wait.
    batch_api.deleting_polls = 0
    return BatchJobProvider()


def test_create_sends_the_declared_job(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    outs = create(jobs, job_props(batch_api, usesTaskDependencies=True))
    assert batch_api.counts() == {"POST job": 1}
    stored = batch_api.job(JOB)
    assert stored["poolInfo"] == {"poolId": "pool"}
    assert (stored["priority"], stored["maxParallelTasks"]) == (10, 4)
    assert stored["constraints"] == {"maxWallClockTime": "P1D", "maxTaskRetryCount": 2}
    assert stored["usesTaskDependencies"] is True
    assert stored["onAllTasksComplete"] == "noaction"
    assert outs["jobId"] == JOB


def test_terminatejob_job_completes_only_after_its_tasks_are_in(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    create(jobs, job_props(batch_api, onAllTasksComplete="terminateJob"))
    stored = batch_api.job(JOB)
    assert (stored["state"], stored["onAllTasksComplete"]) == ("active", "noaction")
    tasks = BatchTaskSetProvider()
    tasks.create(
        {
            "endpoint": batch_api.endpoint,
            "jobId": JOB,
            "setName": "runs",
            "identityResourceId": "/identity",
            "containerUrls": {},
            "mountsDir": "/mnt/batch/tasks/fsmounts",
            "retryPolicy": dict(POLICY),
            "tasks": {f"t{i}": {"command": "true", "image": "busybox"} for i in range(3)},
        }
    )
    assert batch_api.job(JOB)["state"] == "active"
    assert batch_api.job(JOB)["onAllTasksComplete"] == "noaction"
    batch_api.reset_counts()
    completion = BatchJobCompletionProvider()
    result = completion.create(completion_props(batch_api))
    assert result.id == "weekly/completion"
    # One read (to keep the job's metadata), one switch.
    assert batch_api.counts() == {"GET job": 1, "PATCH job": 1}
    stored = batch_api.job(JOB)
    assert (stored["state"], stored["onAllTasksComplete"]) == ("active", "terminatejob")
    for task_id in ("t0", "t1", "t2"):
        batch_api.set_task_state(JOB, task_id, "completed")
    assert batch_api.job(JOB)["state"] == "completed"
    # Applying it again to the completed job is no error.
    completion.update("weekly/completion", result.outs, completion_props(batch_api))


def test_noaction_completion_makes_no_call(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    create(jobs, job_props(batch_api))
    batch_api.reset_counts()
    BatchJobCompletionProvider().create(completion_props(batch_api, "noAction"))
    assert batch_api.total_requests() == 0


def test_in_place_updates(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    olds = create(jobs, job_props(batch_api))
    batch_api.reset_counts()
    news = job_props(
        batch_api,
        priority=-5.0,
        maxParallelTasks=16.0,
        constraints={"maxWallClockTime": "P2D", "maxTaskRetryCount": 3.0},
    )
    diff = jobs.diff(JOB, olds, jobs.check(olds, news).inputs)
    assert diff.changes and diff.replaces == []
    assert batch_api.total_requests() == 0
    jobs.update(JOB, olds, news)
    assert batch_api.counts() == {"PATCH job": 1}
    stored = batch_api.job(JOB)
    assert (stored["priority"], stored["maxParallelTasks"]) == (-5, 16)
    assert stored["constraints"] == {"maxWallClockTime": "P2D", "maxTaskRetryCount": 3}


def test_noaction_to_terminatejob_switches_through_the_completion(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    olds = create(jobs, job_props(batch_api))
    completion = BatchJobCompletionProvider()
    done = completion.create(completion_props(batch_api, "noAction")).outs
    batch_api.add_task(JOB, "t0")
    batch_api.reset_counts()
    news = jobs.check(olds, job_props(batch_api, onAllTasksComplete="terminateJob")).inputs
    assert jobs.diff(JOB, olds, news).replaces == []
    jobs.update(JOB, olds, news)
    assert batch_api.total_requests() == 0  # the job resource leaves the switch to completion
    new_done = completion_props(batch_api)
    assert completion.diff("c", done, new_done).replaces == []
    completion.update("c", done, new_done)
    assert batch_api.counts() == {"GET job": 1, "PATCH job": 1}
    assert batch_api.job(JOB)["onAllTasksComplete"] == "terminatejob"
    assert batch_api.job(JOB)["state"] == "active"


def test_terminatejob_to_noaction_is_refused_with_the_reason(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    olds = create(jobs, job_props(batch_api, onAllTasksComplete="terminateJob"))
    failures = jobs.check(olds, job_props(batch_api)).failures
    assert [failure.property for failure in failures] == ["onAllTasksComplete"]
    assert "Batch rejects" in failures[0].reason


@pytest.mark.parametrize(
    ("name", "value"),
    [("poolId", "other-pool"), ("usesTaskDependencies", True), ("jobId", "monthly")],
)
def test_other_changes_replace_the_job(
    batch_api: BatchApiDouble, jobs: BatchJobProvider, name: str, value: Any
) -> None:
    olds = create(jobs, job_props(batch_api))
    batch_api.add_task(JOB, "t0")
    batch_api.reset_counts()
    news = jobs.check(olds, job_props(batch_api, **{name: value})).inputs
    diff = jobs.diff(JOB, olds, news)
    assert diff.replaces == [name] and diff.delete_before_replace
    assert batch_api.total_requests() == 0
    jobs.delete(JOB, olds)
    jobs.create(news)
    stored = batch_api.job(news["jobId"])
    field = {"poolId": "poolInfo", "jobId": "id"}.get(name, name)
    assert stored[field] == ({"poolId": value} if name == "poolId" else value)
    # The old job, when its id differs, may still be finishing its delete.
    assert [job_id for job_id, job in batch_api.jobs().items() if job["state"] != "deleting"] == [
        news["jobId"]
    ]
    assert batch_api.tasks(news["jobId"]) == {}


def test_unknown_values_are_pending(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    olds = job_props(batch_api)
    for name, replaces in (
        ("poolId", ["poolId"]),
        ("endpoint", ["endpoint"]),
        ("priority", []),
        ("constraints", []),
        ("jobId", ["jobId"]),
    ):
        news = job_props(batch_api, **{name: UNKNOWN})
        assert jobs.check(olds, news).failures == []
        diff = jobs.diff(JOB, olds, news)
        assert diff.changes and diff.replaces == replaces
    assert batch_api.total_requests() == 0


def test_read_after_create_matches_the_state(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    outs = create(jobs, job_props(batch_api, onAllTasksComplete="terminateJob"))
    BatchJobCompletionProvider().create(completion_props(batch_api))
    batch_api.reset_counts()
    result = jobs.read(JOB, outs)
    assert batch_api.counts() == {"GET job": 1}
    assert result.id == JOB
    assert not jobs.diff(JOB, result.outs, outs).changes
    assert result.inputs == {key: value for key, value in result.outs.items() if key != "adopted"}


def test_read_sees_changes_made_out_of_band(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    outs = create(jobs, job_props(batch_api))
    batch_api.service.update_job(JOB, {"priority": 99}, replace=False)
    result = jobs.read(JOB, outs)
    assert result.outs["priority"] == 99
    assert jobs.diff(JOB, result.outs, outs).changes


def test_job_deleted_out_of_band_leaves_state(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    outs = create(jobs, job_props(batch_api))
    batch_api.delete_job_out_of_band(JOB)
    assert jobs.read(JOB, outs).id == ""
    create(jobs, job_props(batch_api))  # the next `up` creates it again
    assert batch_api.job(JOB)["state"] == "active"


def test_job_being_deleted_leaves_state(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    outs = create(jobs, job_props(batch_api))
    batch_api.deleting_polls = 5
    batch_api.service.delete_job(JOB)
    assert jobs.read(JOB, outs).id == ""


@pytest.mark.parametrize(
    ("declared", "live"),
    [
        ({}, {}),
        (
            {"priority": 10.0, "maxParallelTasks": 4.0, "usesTaskDependencies": True},
            {"priority": 10, "maxParallelTasks": 4, "usesTaskDependencies": True},
        ),
        (
            {"onAllTasksComplete": "terminateJob", "constraints": {"maxTaskRetryCount": 3.0}},
            {"onAllTasksComplete": "terminatejob", "constraints": {"maxTaskRetryCount": 3}},
        ),
    ],
)
def test_import_of_an_existing_job(
    batch_api: BatchApiDouble,
    jobs: BatchJobProvider,
    declared: dict[str, Any],
    live: dict[str, Any],
) -> None:
    batch_api.add_job(JOB, "pool", **live)
    inputs = jobs.check(
        {}, {"endpoint": batch_api.endpoint, "jobId": JOB, "poolId": "pool", **declared}
    ).inputs
    result = jobs.read(JOB, inputs)
    assert result.id == JOB
    # Pulumi refuses an import whose read-back state differs from the declared inputs.
    assert not jobs.diff(JOB, result.outs, inputs).changes
    other = jobs.check({}, {**inputs, "poolId": "other-pool", "priority": 11.0}).inputs
    assert jobs.diff(JOB, jobs.read(JOB, other).outs, other).changes


def test_delete_uses_the_delete_operation_without_a_poller(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    outs = create(jobs, job_props(batch_api))
    batch_api.add_task(JOB, "t0")
    batch_api.reset_counts()
    jobs.delete(JOB, outs)
    assert batch_api.job(JOB)["state"] == "deleting"
    assert batch_api.counts() == {"GET taskcounts": 1, "DELETE job": 1}


def test_delete_with_running_tasks(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    outs = create(jobs, job_props(batch_api))
    batch_api.add_task(JOB, "t0")
    batch_api.set_task_state(JOB, "t0", "running")
    with pytest.raises(BatchOperationError, match="1 running task"):
        jobs.delete(JOB, outs)
    assert batch_api.job(JOB)["state"] == "active"
    jobs.delete(JOB, {**outs, "replaceRunningTasks": True})
    assert batch_api.job(JOB)["state"] == "deleting"


def test_delete_of_a_job_already_gone(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    outs = create(jobs, job_props(batch_api))
    batch_api.delete_job_out_of_band(JOB)
    jobs.delete(JOB, outs)
    jobs.delete(JOB, {**outs, "replaceRunningTasks": True})


def test_faults_are_retried(batch_api: BatchApiDouble, jobs: BatchJobProvider) -> None:
    batch_api.inject("POST job", 503, retry_after=0)
    batch_api.inject("POST job", 429)
    outs = create(jobs, job_props(batch_api))
    batch_api.inject("PATCH job", 500)
    jobs.update(JOB, outs, job_props(batch_api, priority=1.0))
    batch_api.inject("GET job", 503, retry_after=0)
    assert jobs.read(JOB, outs).outs["priority"] == 1
    batch_api.inject("GET taskcounts", 503, retry_after=0)
    batch_api.inject("DELETE job", 503, retry_after=0)
    jobs.delete(JOB, outs)
    assert batch_api.counts() == {
        "POST job": 3,
        "PATCH job": 2,
        "GET job": 2,
        "GET taskcounts": 2,
        "DELETE job": 2,
    }
    assert batch_api.job(JOB)["state"] == "deleting"


def test_lost_create_response_adopts_the_job(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    batch_api.drop_after_commit("POST job")
    create(jobs, job_props(batch_api))
    assert batch_api.counts() == {"POST job": 2, "GET job": 1}
    assert list(batch_api.jobs()) == [JOB]


def test_existing_job_that_is_not_the_declared_one(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    batch_api.add_job(JOB, "another-pool")
    with pytest.raises(BatchOperationError, match=r"not this stack's.*adopt: true"):
        create(jobs, job_props(batch_api))
    with pytest.raises(BatchOperationError, match=r"another-pool.*not the declared job"):
        create(jobs, job_props(batch_api, adopt=True))
    assert batch_api.counts()["PATCH job"] == 0


def test_persistent_failure_names_the_job_and_the_service_error(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    batch_api.inject("POST job", 400, code="InvalidPropertyValue")
    with pytest.raises(BatchOperationError) as caught:
        create(jobs, job_props(batch_api))
    assert "'weekly'" in str(caught.value) and "InvalidPropertyValue" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_serialized_providers_are_tiny_and_hold_nothing(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    outs = create(jobs, job_props(batch_api, onAllTasksComplete="terminateJob"))
    jobs.read(JOB, outs)
    completion = BatchJobCompletionProvider()
    completion.create(completion_props(batch_api))
    for provider in (jobs, completion):
        pickled = serialize_provider(provider)
        assert len(pickled) < 1024
        assert batch_api.endpoint not in pickled and "127.0.0.1" not in pickled


def test_replacement_waits_for_its_predecessor_to_finish_deleting(
    batch_api: BatchApiDouble, jobs: BatchJobProvider, clock: FakeClock
) -> None:
    create(jobs, job_props(batch_api))
    batch_api.deleting_polls = 1
    # Pulumi deletes the old job first (delete_before_replace); Batch takes a while to finish.
    # The raw delete starts it without leaving a poller behind.
    sdk_compat.delete_job(make_client(batch_api.endpoint), JOB)
    policy = {**POLICY, "pollInterval": 5.0}
    create(jobs, job_props(batch_api, poolId="pool2", retryPolicy=policy))
    assert batch_api.job(JOB)["poolInfo"] == {"poolId": "pool2"}
    assert batch_api.counts()["GET job"] >= 1
    # Each look at the deleting job is followed by one pause of the policy's poll interval.
    assert clock.sleeps == [5.0]


def test_a_predecessor_that_never_finishes_deleting_ends_the_wait(
    batch_api: BatchApiDouble, jobs: BatchJobProvider, clock: FakeClock
) -> None:
    create(jobs, job_props(batch_api))
    batch_api.deleting_polls = 10_000
    sdk_compat.delete_job(make_client(batch_api.endpoint), JOB)
    policy = {**POLICY, "pollInterval": 60.0}
    with pytest.raises(BatchOperationError) as caught:
        create(jobs, job_props(batch_api, poolId="pool2", retryPolicy=policy))
    assert "'weekly'" in str(caught.value) and "JobBeingDeleted" in str(caught.value)
    # The wait is bounded by DELETE_WAIT_SECONDS of the policy's clock, in poll-interval steps.
    assert set(clock.sleeps) == {60.0}
    assert sum(clock.sleeps) == DELETE_WAIT_SECONDS
    assert batch_api.job(JOB)["state"] == "deleting"


def test_a_completion_s_new_retry_policy_alone_is_kept_without_a_call(
    batch_api: BatchApiDouble, jobs: BatchJobProvider
) -> None:
    create(jobs, job_props(batch_api))
    completion = BatchJobCompletionProvider()
    olds = completion.create(completion_props(batch_api)).outs
    batch_api.reset_counts()
    news = {**completion_props(batch_api), "retryPolicy": {**POLICY, "maxAttempts": 9.0}}
    diff = completion.diff("weekly/completion", olds, news)
    assert diff.changes is True and not diff.replaces
    outs = completion.update("weekly/completion", olds, news).outs
    assert batch_api.total_requests() == 0
    # Later operations (read, delete) take their retries from the kept value.
    assert completion.policy(outs).max_attempts == 9
