"""The double runs tasks the way the service reports them, read by the real azure-batch client:
states, exit codes and failure info, retries, task counts, filtered and selected lists, the
task file API and reactivate with the service's rules."""

from __future__ import annotations

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from batchapi import BatchApiDouble
from batchtasks.batch.client import error_code

FAILED = "state eq 'completed' and executionInfo/result eq 'failure'"


def _error(call: object, *args: object, **kwargs: object) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def _job_with(batch_api: BatchApiDouble, *task_ids: str, retries: int = 0) -> None:
    batch_api.add_job("job1")
    for task_id in task_ids:
        batch_api.add_task("job1", task_id, constraints={"maxTaskRetryCount": retries})


def test_a_task_runs_on_a_node_and_succeeds(batch_client: BatchClient, batch_api: BatchApiDouble):
    _job_with(batch_api, "a")
    batch_api.start_task("job1", "a", node_id="tvm-7")
    running = batch_client.get_task("job1", "a")
    assert running.state == m.BatchTaskState.RUNNING
    assert running.node_info.node_id == "tvm-7"
    assert running.execution_info.start_time is not None

    assert batch_api.finish_task("job1", "a", exit_code=0) == "completed"
    done = batch_client.get_task("job1", "a")
    assert done.state == m.BatchTaskState.COMPLETED
    assert done.execution_info.exit_code == 0
    assert done.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    assert done.execution_info.failure_info is None


def test_a_failed_attempt_is_retried_within_the_budget_then_fails(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    _job_with(batch_api, "a", retries=1)
    batch_api.start_task("job1", "a")
    assert batch_api.finish_task("job1", "a", exit_code=2) == "active"
    retried = batch_client.get_task("job1", "a")
    assert retried.state == m.BatchTaskState.ACTIVE
    assert retried.execution_info.retry_count == 1

    batch_api.start_task("job1", "a")
    assert batch_api.finish_task("job1", "a", exit_code=2) == "completed"
    failed = batch_client.get_task("job1", "a")
    assert failed.execution_info.result == m.BatchTaskExecutionResult.FAILURE
    assert failed.execution_info.exit_code == 2
    assert failed.execution_info.failure_info.category == "usererror"
    assert failed.execution_info.failure_info.code == "FailureExitCode"


def test_a_failure_before_the_process_ran_has_no_exit_code(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    _job_with(batch_api, "a")
    batch_api.start_task("job1", "a", preparing=True)
    batch_api.finish_task(
        "job1",
        "a",
        exit_code=None,
        failure={
            "category": "servererror",
            "code": "ContainerPullFailed",
            "message": "pull access denied",
        },
    )
    task = batch_client.get_task("job1", "a")
    assert task.execution_info.exit_code is None
    assert task.execution_info.failure_info.code == "ContainerPullFailed"


def test_task_counts_follow_execution(batch_client: BatchClient, batch_api: BatchApiDouble):
    _job_with(batch_api, "a", "b", "c", "d", "e")
    batch_api.start_task("job1", "a")
    batch_api.start_task("job1", "b", preparing=True)
    batch_api.start_task("job1", "c")
    batch_api.finish_task("job1", "c", exit_code=0)
    batch_api.start_task("job1", "d")
    batch_api.finish_task("job1", "d", exit_code=1)

    result = batch_client.get_job_task_counts("job1")
    counts = result.task_counts
    # Preparing tasks count as running, as the service says.
    assert (counts.active, counts.running, counts.completed) == (1, 2, 2)
    assert (counts.succeeded, counts.failed) == (1, 1)
    assert result.task_slot_counts.running == 2


def test_lists_filter_failed_tasks_and_select_properties(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    _job_with(batch_api, "ok", "bad", "waiting")
    for task_id, code in (("ok", 0), ("bad", 3)):
        batch_api.start_task("job1", task_id)
        batch_api.finish_task("job1", task_id, exit_code=code)

    failed = list(batch_client.list_tasks("job1", filter=FAILED, select=["id", "executionInfo"]))
    assert [task.id for task in failed] == ["bad"]
    assert set(failed[0].as_dict()) == {"id", "executionInfo"}
    # Enum literals compare ignoring case, as the service's do.
    upper = list(batch_client.list_tasks("job1", filter="executionInfo/result eq 'Failure'"))
    assert [task.id for task in upper] == ["bad"]
    not_completed = list(batch_client.list_tasks("job1", filter="state ne 'completed'"))
    assert [task.id for task in not_completed] == ["waiting"]

    error = _error(lambda: list(batch_client.list_tasks("job1", filter="exitCode gt 0")))
    assert error.status_code == 400
    assert error_code(error) == "InvalidQueryParameterValue"


def test_task_files_are_read_whole_or_by_range_until_the_node_goes(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    _job_with(batch_api, "a", "never")
    batch_api.start_task("job1", "a", node_id="tvm-3")
    batch_api.write_task_file("job1", "a", "stdout.txt", b"hello\n")
    batch_api.write_task_file("job1", "a", "stdout.txt", b"world\n")

    properties = batch_client.get_task_file_properties("job1", "a", "stdout.txt")
    assert properties.content_length == 12
    assert properties.is_directory is False
    whole = b"".join(batch_client.download_task_file("job1", "a", "stdout.txt"))
    assert whole == b"hello\nworld\n"
    part = b"".join(
        batch_client.download_task_file("job1", "a", "stdout.txt", ocp_range="bytes=6-11")
    )
    assert part == b"world\n"
    past_end = _error(
        lambda: b"".join(
            batch_client.download_task_file("job1", "a", "stdout.txt", ocp_range="bytes=12-20")
        )
    )
    assert past_end.status_code == 416

    # (azure-batch never reads the body of a failed streamed download: only the status shows.)
    missing = _error(lambda: b"".join(batch_client.download_task_file("job1", "a", "x.txt")))
    assert missing.status_code == 404
    unscheduled = _error(
        lambda: b"".join(batch_client.download_task_file("job1", "never", "stdout.txt"))
    )
    assert unscheduled.status_code == 409

    batch_api.lose_node("tvm-3")
    gone = _error(batch_client.get_task_file_properties, "job1", "a", "stdout.txt")
    assert gone.status_code == 404
    gone = _error(lambda: b"".join(batch_client.download_task_file("job1", "a", "stdout.txt")))
    assert gone.status_code == 404


def test_reactivate_reruns_a_failed_task_with_a_fresh_retry_budget(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    _job_with(batch_api, "a", retries=1)
    for _ in range(2):
        batch_api.start_task("job1", "a")
        batch_api.finish_task("job1", "a", exit_code=1)

    batch_client.reactivate_task("job1", "a")
    task = batch_client.get_task("job1", "a")
    assert task.state == m.BatchTaskState.ACTIVE
    assert task.execution_info.retry_count == 0
    assert task.execution_info.exit_code is None
    assert task.execution_info.failure_info is None
    assert batch_client.get_job_task_counts("job1").task_counts.active == 1


def test_reactivate_refuses_what_the_service_refuses(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    _job_with(batch_api, "ok", "running", "failed")
    batch_api.start_task("job1", "ok")
    batch_api.finish_task("job1", "ok", exit_code=0)
    batch_api.start_task("job1", "running")
    batch_api.start_task("job1", "failed")
    batch_api.finish_task("job1", "failed", exit_code=1)

    assert error_code(_error(batch_client.reactivate_task, "job1", "ok")) == "TaskSucceeded"
    assert error_code(_error(batch_client.reactivate_task, "job1", "running")) == (
        "TaskNotCompleted"
    )
    batch_api.set_job_state("job1", "completed")
    refused = _error(batch_client.reactivate_task, "job1", "failed")
    assert (refused.status_code, error_code(refused)) == (409, "JobCompleted")
    assert batch_api.tasks("job1")["failed"]["state"] == "completed"
