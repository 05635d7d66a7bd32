"""The Batch API double speaks the wire protocol the real azure-batch 15.1 client expects."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from azure.batch import BatchClient
from azure.batch import models as m
from azure.batch.models._models import BatchJobTerminateOptions
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from batchapi import BatchApiDouble
from batchtasks.batch import sdk_compat

POOL = m.BatchPoolInfo(pool_id="pool")


def _job(job_id: str = "job1", **kwargs: object) -> m.BatchJobCreateOptions:
    return m.BatchJobCreateOptions(id=job_id, pool_info=POOL, **kwargs)


def _task(task_id: str, **kwargs: object) -> m.BatchTaskCreateOptions:
    return m.BatchTaskCreateOptions(id=task_id, command_line="echo hi", **kwargs)


def _error(call: object, *args: object, **kwargs: object) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# ------------------------------------------------------------------------ jobs


def test_job_create_get_update_replace(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job(uses_task_dependencies=True, priority=5))

    job = batch_client.get_job("job1")
    assert job.state == m.BatchJobState.ACTIVE
    assert job.pool_info.pool_id == "pool"
    assert job.uses_task_dependencies is True
    assert job.all_tasks_complete_mode == m.BatchAllTasksCompleteMode.NO_ACTION
    assert job.priority == 5

    batch_client.update_job("job1", m.BatchJobUpdateOptions(priority=7, max_parallel_tasks=3))
    job = batch_client.get_job("job1")
    assert (job.priority, job.max_parallel_tasks) == (7, 3)

    # A replace resets what it leaves out to the service's defaults.
    batch_client.replace_job("job1", m.BatchJob(pool_info=POOL, priority=1))
    stored = batch_api.jobs()["job1"]
    assert (stored["priority"], stored["maxParallelTasks"]) == (1, -1)
    assert stored["usesTaskDependencies"] is True
    assert batch_api.counts()["PATCH job"] == 1
    assert batch_api.counts()["PUT job"] == 1


def test_get_job_select_returns_only_named_fields(batch_client: BatchClient):
    batch_client.create_job(_job())
    job = batch_client.get_job("job1", select=["id", "state"])
    assert set(job.as_dict()) - {"odata.metadata"} == {"id", "state"}


def test_list_jobs_shows_created_jobs(batch_client: BatchClient):
    batch_client.create_job(_job("a"))
    batch_client.create_job(_job("b"))
    assert sorted(j.id for j in batch_client.list_jobs()) == ["a", "b"]


def test_job_ids_are_unique_ignoring_case(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job("MyJob"))
    error = _error(batch_client.create_job, _job("myjob"))
    assert (error.status_code, error.error.code) == (409, "JobExists")
    assert list(batch_api.jobs()) == ["MyJob"]
    assert batch_client.get_job("MYJOB").id == "MyJob"


@pytest.mark.parametrize("job_id", ["has space", "x" * 65, "dot.ted"])
def test_invalid_job_id_is_rejected(batch_client: BatchClient, job_id: str):
    error = _error(batch_client.create_job, _job(job_id))
    assert (error.status_code, error.error.code) == (400, "InvalidPropertyValue")


def test_missing_job_is_job_not_found(batch_client: BatchClient):
    error = _error(batch_client.get_job, "nope")
    assert (error.status_code, error.error.code) == (404, "JobNotFound")


def test_deleting_job_refuses_tasks_then_goes(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_api.deleting_polls = 2
    batch_client.create_job(_job())
    batch_client.create_task("job1", _task("t1"))

    # The bare DELETE, not the poller: its background polls would race the checks below.
    sdk_compat.delete_job(batch_client, "job1")
    assert batch_api.jobs()["job1"]["state"] == "deleting"
    error = _error(batch_client.create_task, "job1", _task("t2"))
    assert (error.status_code, error.error.code) == (409, "JobBeingDeleted")

    states = [batch_client.get_job("job1").state for _ in range(2)]
    assert states == ["deleting", "deleting"]
    error = _error(batch_client.get_job, "job1")
    assert (error.status_code, error.error.code) == (404, "JobNotFound")
    assert batch_api.jobs() == {}
    assert batch_api.counts()["DELETE job"] == 1
    error = _error(batch_client.get_job, "job1")
    assert error.error.code == "JobNotFound"


def test_terminate_job_poller_finishes_completed(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_client.create_job(_job())
    batch_client.begin_terminate_job(
        "job1", BatchJobTerminateOptions(termination_reason="stop"), polling_interval=0
    ).result()
    job = batch_client.get_job("job1")
    assert job.state == m.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "stop"
    error = _error(batch_client.create_task, "job1", _task("late"))
    assert (error.status_code, error.error.code) == (409, "JobCompleted")


def test_terminatejob_job_without_tasks_completes_at_once(batch_client: BatchClient):
    batch_client.create_job(_job(all_tasks_complete_mode="terminatejob"))
    assert batch_client.get_job("job1").state == m.BatchJobState.COMPLETED


def test_terminatejob_completes_job_when_all_tasks_complete(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_client.create_job(_job())
    batch_client.create_task_collection(
        "job1", m.BatchTaskGroup(task_values=[_task("a"), _task("b")])
    )
    batch_client.update_job("job1", m.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    batch_api.set_task_state("job1", "a", "completed")
    assert batch_client.get_job("job1").state == m.BatchJobState.ACTIVE

    batch_api.set_task_state("job1", "b", "completed", exit_code=3)
    assert batch_client.get_job("job1").state == m.BatchJobState.COMPLETED
    counts = batch_client.get_job_task_counts("job1").task_counts
    assert (counts.completed, counts.succeeded, counts.failed) == (2, 1, 1)


def test_terminatejob_cannot_go_back_to_noaction(batch_client: BatchClient):
    batch_client.create_job(_job())
    batch_client.create_task("job1", _task("a"))
    batch_client.update_job("job1", m.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    error = _error(
        batch_client.update_job,
        "job1",
        m.BatchJobUpdateOptions(all_tasks_complete_mode="noaction"),
    )
    assert (error.status_code, error.error.code) == (400, "InvalidPropertyValue")


def test_disabled_job_refuses_tasks(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_api.add_job("job1")
    batch_api.set_job_state("job1", "disabled")
    error = _error(batch_client.create_task, "job1", _task("a"))
    assert (error.status_code, error.error.code) == (409, "JobDisabled")


# ------------------------------------------------------------------------ tasks


def test_task_create_get_replace_delete(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job())
    batch_client.create_task(
        "job1",
        _task(
            "Task1",
            environment_settings=[m.EnvironmentSetting(name="A", value="1")],
            constraints=m.BatchTaskConstraints(max_task_retry_count=2),
        ),
    )
    stored = batch_api.tasks("job1")["Task1"]
    assert stored["commandLine"] == "echo hi"
    assert stored["environmentSettings"] == [{"name": "A", "value": "1"}]
    assert stored["state"] == "active"

    task = batch_client.get_task("job1", "task1")
    assert task.id == "Task1"
    assert task.constraints.max_task_retry_count == 2

    batch_client.replace_task(
        "job1",
        "Task1",
        m.BatchTask(
            constraints=m.BatchTaskConstraints(max_wall_clock_time=datetime.timedelta(hours=1))
        ),
    )
    task = batch_client.get_task("job1", "Task1")
    assert task.constraints.max_wall_clock_time == datetime.timedelta(hours=1)
    # Constraints left out of a replace go back to the defaults.
    assert task.constraints.max_task_retry_count == 0

    batch_client.delete_task("job1", "TASK1")
    assert batch_api.tasks("job1") == {}
    error = _error(batch_client.get_task, "job1", "Task1")
    assert (error.status_code, error.error.code) == (404, "TaskNotFound")


def test_task_ids_are_unique_ignoring_case(batch_client: BatchClient):
    batch_client.create_job(_job())
    batch_client.create_task("job1", _task("abc"))
    error = _error(batch_client.create_task, "job1", _task("ABC"))
    assert (error.status_code, error.error.code) == (409, "TaskExists")


def test_task_in_missing_job_is_job_not_found(batch_client: BatchClient):
    error = _error(batch_client.create_task, "nojob", _task("a"))
    assert (error.status_code, error.error.code) == (404, "JobNotFound")


def test_depends_on_needs_uses_task_dependencies(batch_client: BatchClient):
    batch_client.create_job(_job())
    error = _error(
        batch_client.create_task,
        "job1",
        _task("b", depends_on=m.BatchTaskDependencies(task_ids=["a"])),
    )
    assert (error.status_code, error.error.code) == (400, "TaskDependenciesNotSpecifiedOnJob")


def test_terminate_task_completes_it(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job())
    batch_client.create_task("job1", _task("a"))
    batch_client.terminate_task("job1", "a")
    assert batch_api.tasks("job1")["a"]["state"] == "completed"


def test_add_collection_reports_each_task(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job())
    batch_api.add_task("job1", "old")
    result = batch_client.create_task_collection(
        "job1", m.BatchTaskGroup(task_values=[_task("new"), _task("OLD"), _task("bad id")])
    )
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["new"].status == m.BatchTaskAddStatus.SUCCESS
    assert by_id["OLD"].status == m.BatchTaskAddStatus.CLIENT_ERROR
    assert by_id["OLD"].error.code == "TaskExists"
    assert by_id["bad id"].error.code == "InvalidPropertyValue"
    assert sorted(batch_api.tasks("job1")) == ["new", "old"]


def test_add_collection_over_100_tasks_is_rejected(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_client.create_job(_job())
    tasks = [_task(f"t{i}") for i in range(101)]
    error = _error(batch_client.create_task_collection, "job1", m.BatchTaskGroup(task_values=tasks))
    assert error.status_code == 400
    assert batch_api.tasks("job1") == {}


def test_add_collection_over_1_mb_is_413_and_sdk_halves(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_client.create_job(_job())
    big = "x" * 15_000
    tasks = [m.BatchTaskCreateOptions(id=f"t{i}", command_line=big) for i in range(100)]
    error = _error(batch_client.create_task_collection, "job1", m.BatchTaskGroup(task_values=tasks))
    assert (error.status_code, error.error.code) == (413, "RequestBodyTooLarge")
    assert batch_api.tasks("job1") == {}

    batch_client.create_tasks("job1", tasks)
    assert len(batch_api.tasks("job1")) == 100
    assert batch_api.counts()["POST addtaskcollection"] == 4


def test_list_tasks_pages_filters_and_selects(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job())
    group = m.BatchTaskGroup(task_values=[_task(f"t{i:02}") for i in range(25)])
    batch_client.create_task_collection("job1", group)
    for i in range(0, 25, 2):
        batch_api.set_task_state("job1", f"t{i:02}", "completed")
    batch_api.reset_counts()

    listed = list(batch_client.list_tasks("job1", max_results=10))
    assert [t.id for t in listed] == [f"t{i:02}" for i in range(25)]
    assert batch_api.counts()["GET tasks"] == 3

    done = list(
        batch_client.list_tasks(
            "job1", max_results=5, filter="state eq 'completed'", select=["id", "state"]
        )
    )
    assert [t.id for t in done] == [f"t{i:02}" for i in range(0, 25, 2)]
    assert all(t.command_line is None for t in done)


def test_sdk_create_tasks_in_parallel(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job())
    batch_client.create_tasks("job1", [_task(f"t{i}") for i in range(450)], max_concurrency=4)
    assert len(batch_api.tasks("job1")) == 450
    assert batch_api.counts()["POST addtaskcollection"] == 5


# ------------------------------------------------------------------------ faults


def test_503_with_retry_after_is_retried(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_client.create_job(_job())
    batch_api.inject("POST task", 503, retry_after=0.01, times=2)
    batch_client.create_task("job1", _task("a"))
    assert batch_api.counts()["POST task"] == 3
    assert [r.status for r in batch_api.requests if r.route == "POST task"] == [503, 503, 201]
    assert "a" in batch_api.tasks("job1")


def test_500_is_retried_on_get(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_api.add_job("job1")
    batch_api.inject("GET job", 500)
    assert batch_client.get_job("job1").id == "job1"
    assert batch_api.counts()["GET job"] == 2


def test_429_on_post_retried_only_with_retry_after(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_api.add_job("job1")
    group = m.BatchTaskGroup(task_values=[_task("a")])
    batch_api.inject("POST addtaskcollection", 429, retry_after=0.01)
    batch_client.create_task_collection("job1", group)
    assert batch_api.counts()["POST addtaskcollection"] == 2

    batch_api.inject("POST addtaskcollection", 429)
    error = _error(batch_client.create_task_collection, "job1", group)
    assert (error.status_code, error.error.code) == (429, "TooManyRequests")
    assert batch_api.counts()["POST addtaskcollection"] == 3


def test_lost_response_leaves_task_created(batch_client: BatchClient, batch_api: BatchApiDouble):
    batch_api.add_job("job1")
    batch_api.drop_after_commit("POST addtaskcollection")
    with pytest.raises(ServiceResponseError):
        batch_client.create_task_collection("job1", m.BatchTaskGroup(task_values=[_task("a")]))
    assert list(batch_api.tasks("job1")) == ["a"]
    assert [r.status for r in batch_api.requests] == [None]

    result = batch_client.create_task_collection("job1", m.BatchTaskGroup(task_values=[_task("a")]))
    assert result.result_values[0].error.code == "TaskExists"


def test_collection_server_errors_then_success(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_api.add_job("job1")
    batch_api.collection_server_errors(["B"], times=1)
    group = m.BatchTaskGroup(task_values=[_task("a"), _task("b")])
    result = batch_client.create_task_collection("job1", group)
    statuses = {r.task_id: r.status for r in result.result_values}
    assert statuses == {"a": "success", "b": "servererror"}
    assert list(batch_api.tasks("job1")) == ["a"]

    # The SDK's create_tasks resubmits servererror tasks by itself.
    batch_api.collection_server_errors(["c"], times=2)
    batch_client.create_tasks("job1", [_task("c")])
    assert sorted(batch_api.tasks("job1")) == ["a", "c"]


def test_out_of_band_deletes_are_seen_by_clients(
    batch_client: BatchClient, batch_api: BatchApiDouble
):
    batch_api.add_job("job1")
    batch_api.add_task("job1", "a")
    batch_api.delete_task_out_of_band("job1", "a")
    assert _error(batch_client.get_task, "job1", "a").error.code == "TaskNotFound"
    batch_api.delete_job_out_of_band("job1")
    assert _error(batch_client.get_job, "job1").error.code == "JobNotFound"


# ------------------------------------------------------------------------ auth and env


def test_requests_without_batch_bearer_token_are_401(batch_api: BatchApiDouble):
    url = f"{batch_api.endpoint}/jobs?api-version=2025-06-01"
    bundle = batch_api.ca_bundle_path
    assert requests.get(url, verify=bundle, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer batchapi-double.https://management.azure.com/"}
    response = requests.get(url, headers=wrong, verify=bundle, timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "InvalidAuthenticationTokenAudience"


def test_client_env_lets_a_subprocess_use_the_real_chain(batch_api: BatchApiDouble):
    script = (
        "import sys\n"
        "from azure.batch import BatchClient, models as m\n"
        "from azure.identity import DefaultAzureCredential\n"
        "client = BatchClient(sys.argv[1], DefaultAzureCredential())\n"
        "client.create_job(m.BatchJobCreateOptions(id='fromchild',"
        " pool_info=m.BatchPoolInfo(pool_id='p')))\n"
    )
    env = {**os.environ, **batch_api.client_env()}
    subprocess.run(
        [sys.executable, "-c", script, batch_api.endpoint],
        env=env,
        check=True,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    assert list(batch_api.jobs()) == ["fromchild"]


def _raw(api: BatchApiDouble, method: str, path: str, body: object = None) -> requests.Response:
    token = "batchapi-double.https://batch.core.windows.net/"
    return requests.request(
        method,
        f"{api.endpoint}{path}?api-version=2025-06-01",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        verify=api.ca_bundle_path,
        timeout=5,
    )


def test_error_body_has_batch_shape(batch_api: BatchApiDouble):
    response = _raw(batch_api, "GET", "/jobs/missing")
    body = response.json()
    assert response.status_code == 404
    assert body["code"] == "JobNotFound"
    assert body["message"]["lang"] == "en-US"
    assert body["message"]["value"].startswith("The specified job does not exist.")


def test_task_replace_accepts_only_constraints(batch_api: BatchApiDouble):
    batch_api.add_job("job1")
    batch_api.add_task("job1", "a")
    response = _raw(batch_api, "PUT", "/jobs/job1/tasks/a", {"commandLine": "other"})
    assert (response.status_code, response.json()["code"]) == (400, "UnsupportedProperty")
    assert batch_api.tasks("job1")["a"]["commandLine"] == "true"
