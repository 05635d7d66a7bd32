"""The azure-batch internals batchtasks relies on, checked against the installed SDK.

Each test pins one fact `batchtasks.batch.sdk_compat` assumes, against the real SDK talking to
the Batch API double; a new SDK that changes one fails here, naming the fact, instead of in a
provider's create or delete.
"""

from __future__ import annotations

import inspect
import json
from importlib import metadata
from typing import Any

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.pipeline import PipelineRequest

from batchapi import BatchApiDouble
from batchtasks.batch import sdk_compat

JOB = "Job_1"


def _seen(requests: list[Any]) -> Any:
    """A `raw_request_hook` that keeps each request the client's pipeline sends."""

    def hook(request: PipelineRequest) -> None:
        requests.append(request.http_request)

    return hook


def test_the_bound_covers_the_installed_sdk() -> None:
    major = int(metadata.version("azure-batch").split(".")[0])
    assert major == 15, "pyproject bounds azure-batch to 15.x: recheck this module first"


def test_api_version_is_the_one_public_calls_send(
    batch_client: BatchClient, batch_api: BatchApiDouble
) -> None:
    batch_client.create_job(m.BatchJobCreateOptions(id=JOB, pool_info=m.BatchPoolInfo(pool_id="p")))
    batch_api.reset_counts()
    batch_client.get_job(JOB)
    (get,) = batch_api.requests
    assert sdk_compat.api_version(batch_client) == get.query["api-version"]


def test_task_collection_request_is_the_sdks_with_the_bytes_given(
    batch_client: BatchClient, batch_api: BatchApiDouble
) -> None:
    batch_client.create_job(m.BatchJobCreateOptions(id=JOB, pool_info=m.BatchPoolInfo(pool_id="p")))
    sdk_sent: list[Any] = []
    batch_client.create_task_collection(
        JOB,
        m.BatchTaskGroup(task_values=[m.BatchTaskCreateOptions(id="a", command_line="echo a")]),
        raw_request_hook=_seen(sdk_sent),
    )
    payload = b'{"value":[{"id":"b","commandLine":"echo b"}]}'
    request = sdk_compat.task_collection_request(
        batch_client, JOB, "application/json; odata=minimalmetadata", payload
    )
    ours_sent: list[Any] = []
    response = batch_client.send_request(request, raw_request_hook=_seen(ours_sent))

    (sdk,), (ours,) = sdk_sent, ours_sent
    assert ours.method == sdk.method == "POST"
    assert ours.url == sdk.url  # endpoint, quoted path and api-version alike
    assert ours.headers["Accept"] == sdk.headers["Accept"]
    assert ours.headers["Content-Type"] == "application/json; odata=minimalmetadata"
    assert batch_api.requests[-1].body == payload  # sent byte for byte
    assert response.status_code == 200
    assert [r["taskId"] for r in json.loads(response.text())["value"]] == ["b"]
    assert sorted(batch_api.tasks(JOB)) == ["a", "b"]


def test_delete_job_sends_one_delete_and_polls_nothing(
    batch_client: BatchClient, batch_api: BatchApiDouble
) -> None:
    batch_api.deleting_polls = 2
    batch_client.create_job(m.BatchJobCreateOptions(id=JOB, pool_info=m.BatchPoolInfo(pool_id="p")))
    batch_api.reset_counts()
    assert sdk_compat.delete_job(batch_client, JOB) is None
    assert [r.route for r in batch_api.requests] == ["DELETE job"]
    assert batch_api.jobs()[JOB]["state"] == "deleting"


def test_delete_job_takes_the_job_id_as_begin_delete_job_does() -> None:
    internal = inspect.signature(BatchClient._delete_job_internal)
    public = inspect.signature(BatchClient.begin_delete_job)
    assert list(internal.parameters)[:2] == list(public.parameters)[:2] == ["self", "job_id"]


def test_list_requests_are_the_sdks_pages_and_read_the_same_tasks(
    batch_client: BatchClient, batch_api: BatchApiDouble
) -> None:
    batch_client.create_job(m.BatchJobCreateOptions(id=JOB, pool_info=m.BatchPoolInfo(pool_id="p")))
    for index in range(2_500):
        batch_api.add_task(JOB, f"t{index}", displayName="sweep")
    sdk_sent: list[Any] = []
    sdk_tasks = [
        task.as_dict()
        for task in batch_client.list_tasks(
            JOB, select=["id", "displayName"], raw_request_hook=_seen(sdk_sent)
        )
    ]
    ours_sent: list[Any] = []
    ours: list[dict[str, Any]] = []
    request: Any = sdk_compat.list_tasks_request(batch_client, JOB, select=["id", "displayName"])
    while request is not None:
        page = batch_client.send_request(request, raw_request_hook=_seen(ours_sent)).json()
        ours.extend(page["value"])
        link = page.get("odata.nextLink")
        request = sdk_compat.next_page_request(batch_client, link) if link else None

    assert [r.url for r in ours_sent] == [r.url for r in sdk_sent]  # three pages, same links
    assert len(ours_sent) == 3
    assert ours == sdk_tasks
