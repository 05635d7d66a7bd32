"""Lifecycle against a double that behaves like the documented service: adoption, the
terminateJob guard, refresh, deletes that meet a job already going, error messages, and
collections sized as sent.

Providers are called as Pulumi calls them (check before create, integers as floats) with the
real azure-batch client over HTTPS; every fault scenario ends in exactly the declared tasks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchapi import DELETING_FOREVER, BatchApiDouble
from batchtasks.batch import ownership
from batchtasks.batch.client import (
    MAX_COLLECTION_BYTES,
    BatchOperationError,
    collection_body,
    encode_task,
)
from batchtasks.batch.job import BatchJobCompletionProvider, BatchJobProvider
from batchtasks.batch.tasks import BatchTaskProvider, BatchTaskSetProvider
from tests.test_provider_job import OWNER, completion_props, job_props
from tests.test_provider_tasks import (
    JOB,
    assert_holds_exactly,
    checked,
    create,
    declared_tasks,
    set_props,
    spec,
    sweep,
    task_props,
    update,
)

TASK_OWNER = {"project": OWNER["project"], "stack": OWNER["stack"]}


def owned_set(api: BatchApiDouble, tasks: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A BatchTaskSet's inputs, naming this stack as the owner."""
    return set_props(api, tasks, owner=dict(TASK_OWNER), **changes)


@pytest.fixture
def owned(batch_api: BatchApiDouble) -> BatchApiDouble:
    """The double holding job `weekly`, created by this stack's BatchJob provider."""
    batch_api.deleting_polls = 0
    create(BatchJobProvider(), job_props(batch_api, usesTaskDependencies=True))
    batch_api.reset_counts()
    return batch_api


def terminating_job(api: BatchApiDouble, tasks: dict[str, Any]) -> dict[str, Any]:
    """Job `weekly` declared terminateJob with a set of `tasks`, switched on; the set's state."""
    create(BatchJobProvider(), job_props(api, onAllTasksComplete="terminateJob"))
    outs = create(BatchTaskSetProvider(), owned_set(api, tasks))
    BatchJobCompletionProvider().create(completion_props(api))
    api.reset_counts()
    return outs


# ------------------------------------------------------------------ adoption


def test_created_job_records_its_owner(owned: BatchApiDouble) -> None:
    metadata = ownership.as_dict(owned.job(JOB)["metadata"])
    assert metadata == {
        "batchtasks-project": "batchtasks",
        "batchtasks-stack": "test",
        "batchtasks-resource": "job-weekly",
    }


def test_job_of_this_stack_met_at_create_is_taken_as_is(owned: BatchApiDouble) -> None:
    # An interrupted `up` created it; the next `up` creates again.
    result = BatchJobProvider().create(job_props(owned, usesTaskDependencies=True))
    assert result.outs["adopted"] is False
    assert owned.counts() == {"POST job": 1, "GET job": 1}


def test_job_of_another_stack_is_refused_even_with_the_same_settings(
    batch_api: BatchApiDouble,
) -> None:
    create(BatchJobProvider(), job_props(batch_api, owner={**OWNER, "stack": "prod"}))
    batch_api.reset_counts()
    with pytest.raises(BatchOperationError) as caught:
        create(BatchJobProvider(), job_props(batch_api))
    message = str(caught.value)
    assert "'prod'" in message and "adopt: true" in message
    assert batch_api.counts() == {"POST job": 1, "GET job": 1}  # nothing changed


def test_adopt_takes_over_a_job_a_script_made(batch_api: BatchApiDouble) -> None:
    batch_api.add_job(JOB, "pool", priority=1, metadata=[{"name": "team", "value": "fc"}])
    outs = create(BatchJobProvider(), job_props(batch_api, adopt=True))
    assert outs["adopted"] is True
    stored = batch_api.job(JOB)
    assert stored["priority"] == 10  # the declared settings are applied
    metadata = ownership.as_dict(stored["metadata"])
    assert metadata["team"] == "fc"  # foreign entries are kept
    assert ownership.created_by_stack(metadata, OWNER) is False
    assert ownership.names_stack(metadata, OWNER) is True


def test_adopted_job_keeps_equal_tasks_and_lists_different_ones(batch_api: BatchApiDouble) -> None:
    batch_api.add_job(JOB, "pool")
    create(BatchJobProvider(), job_props(batch_api, adopt=True))
    provider = BatchTaskSetProvider()
    props = owned_set(batch_api, sweep(4))
    bodies = declared_tasks(provider, checked(provider, {}, props))
    for task_id in ("run-0000", "run-0001"):
        # What an old script submitted: the same bodies, without our marker.
        body = {
            key: value
            for key, value in bodies[task_id].items()
            if key not in ("id", "commandLine", "displayName")
        }
        batch_api.add_task(JOB, task_id, bodies[task_id]["commandLine"], **body)
    batch_api.add_task(JOB, "run-0002", "python -m old-script")
    with pytest.raises(BatchOperationError) as caught:
        create(provider, props)
    message = str(caught.value)
    assert "run-0002" in message and "adopted" in message
    assert "run-0000" not in message and "run-0001" not in message
    assert batch_api.tasks(JOB)["run-0002"]["commandLine"] == "python -m old-script"
    # With the old task out of the way, the equal ones are taken over as they are.
    batch_api.delete_task_out_of_band(JOB, "run-0002")
    batch_api.reset_counts()
    create(provider, props)
    stored = batch_api.tasks(JOB)
    assert sorted(stored) == sorted(bodies)
    assert {task_id: task["commandLine"] for task_id, task in stored.items()} == {
        task_id: body["commandLine"] for task_id, body in bodies.items()
    }
    assert "displayName" not in stored["run-0000"]  # taken over as it was, not re-added
    assert batch_api.counts()["DELETE task"] == 0


def test_interrupted_create_then_edited_declaration_converges(owned: BatchApiDouble) -> None:
    # A first create landed some of the set's tasks, then the run died. The next `up`
    # declares one of them differently: the set's own task is replaced, no dead end.
    provider = BatchTaskSetProvider()
    first = owned_set(owned, sweep(3))
    create(provider, first)
    edited = owned_set(owned, {**sweep(3), "run-0001": spec(1, command="python -m model --v2")})
    create(provider, edited)
    assert owned.tasks(JOB)["run-0001"]["commandLine"] == "python -m model --v2"
    assert_holds_exactly(owned, provider, checked(provider, {}, edited))


def test_replacing_our_own_task_at_create_keeps_a_running_one(owned: BatchApiDouble) -> None:
    provider = BatchTaskSetProvider()
    create(provider, owned_set(owned, sweep(2)))
    owned.set_task_state(JOB, "run-0001", "running")
    edited = owned_set(owned, {**sweep(2), "run-0001": spec(1, command="python -m model --v2")})
    with pytest.raises(BatchOperationError, match=r"run-0001.*replaceRunningTasks"):
        create(provider, edited)
    assert owned.tasks(JOB)["run-0001"]["commandLine"] == "python -m model --run 1"


def test_task_of_another_resource_in_our_job_is_listed_not_replaced(owned: BatchApiDouble) -> None:
    owned.add_task(JOB, "run-0000", "python -m other", displayName="another-set")
    with pytest.raises(BatchOperationError, match="not added by this resource: run-0000"):
        create(BatchTaskSetProvider(), owned_set(owned, sweep(2)))
    assert owned.tasks(JOB)["run-0000"]["commandLine"] == "python -m other"


def test_a_task_moving_between_sweeps_ends_once_with_the_new_sweeps_definition(
    owned: BatchApiDouble,
) -> None:
    # Sets update in any order. Sweep b meets run-0002 while sweep a still holds it: keeping
    # it silently would let a's update delete it afterwards, so b refuses and names the holder.
    provider = BatchTaskSetProvider()
    a_state = create(provider, owned_set(owned, sweep(3), setName="weekly.a"))
    b_state = create(provider, owned_set(owned, sweep(2, start=10), setName="weekly.b"))
    moved = {**sweep(2, start=10), "run-0002": spec(2, command="python -m other")}
    b_news = owned_set(owned, moved, setName="weekly.b")
    with pytest.raises(BatchOperationError, match=r"run-0002.*marker of 'weekly.a'.*run again"):
        update(provider, b_state, b_news)
    assert owned.tasks(JOB)["run-0002"]["displayName"] == "weekly.a"
    update(provider, a_state, owned_set(owned, sweep(2), setName="weekly.a"))
    b_outs = update(provider, b_state, b_news)  # the next run: the refused update again
    live = owned.tasks(JOB)
    assert sorted(live) == ["run-0000", "run-0001", "run-0002", "run-0010", "run-0011"]
    assert live["run-0002"]["commandLine"] == "python -m other"
    assert live["run-0002"]["displayName"] == "weekly.b"
    assert_holds_exactly(owned, provider, b_outs, others=frozenset({"run-0000", "run-0001"}))


def test_a_sets_own_task_met_with_another_definition_on_update_is_replaced(
    owned: BatchApiDouble,
) -> None:
    # An interrupted update left a task of the set's own with an older definition (added by
    # the set, not in its state): the next update replaces it instead of keeping it.
    provider = BatchTaskSetProvider()
    state = create(provider, owned_set(owned, sweep(2)))
    owned.add_task(JOB, "run-0005", "python -m model --old", displayName="forecast")
    news = owned_set(owned, {**sweep(2), "run-0005": spec(5)})
    outs = update(provider, state, news)
    assert owned.tasks(JOB)["run-0005"]["commandLine"] == "python -m model --run 5"
    assert_holds_exactly(owned, provider, outs)


def test_single_task_in_our_job_is_ours(owned: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    create(provider, task_props(owned, "summary", spec(1), owner=dict(TASK_OWNER)))
    edited = task_props(
        owned, "summary", spec(1, command="python -m summary --v2"), owner=dict(TASK_OWNER)
    )
    create(provider, edited)
    assert owned.tasks(JOB)["summary"]["commandLine"] == "python -m summary --v2"


# ------------------------------------------------------------------ terminateJob guard


def test_replacing_the_last_incomplete_task_of_a_self_ending_job_is_refused(
    batch_api: BatchApiDouble,
) -> None:
    provider = BatchTaskSetProvider()
    olds = terminating_job(batch_api, sweep(2))
    batch_api.set_task_state(JOB, "run-0000", "completed")
    news = owned_set(batch_api, {**sweep(2), "run-0001": spec(1, command="python -m v2")})
    with pytest.raises(BatchOperationError) as caught:
        update(provider, olds, news)
    message = str(caught.value)
    assert "run-0001" in message and "new id" in message and "Nothing was changed" in message
    assert batch_api.counts()["DELETE task"] == 0
    assert batch_api.job(JOB)["state"] == "active"
    assert batch_api.tasks(JOB)["run-0001"]["commandLine"] == "python -m model --run 1"


def test_the_guard_lists_only_incomplete_task_ids_and_stops_at_the_first_other(
    batch_api: BatchApiDouble,
) -> None:
    # 2,500 tasks are three pages of the whole job; the guard needs one incomplete task besides
    # the ones going, so it asks for incomplete tasks only and reads one page.
    provider = BatchTaskSetProvider()
    olds = terminating_job(batch_api, sweep(2500))
    for index in range(0, 2500, 2):
        batch_api.set_task_state(JOB, f"run-{index:04d}", "completed")
    batch_api.reset_counts()
    news = owned_set(batch_api, {**sweep(2500), "run-0001": spec(1, command="python -m v2")})
    update(provider, olds, news)
    assert batch_api.tasks(JOB)["run-0001"]["commandLine"] == "python -m v2"
    listings = [r.query for r in batch_api.requests if r.route == "GET tasks"]
    assert len(listings) == 1
    assert (listings[0]["$filter"], listings[0]["$select"]) == ("state ne 'completed'", "id")


def test_replacing_a_task_while_another_is_incomplete_goes_ahead(batch_api: BatchApiDouble) -> None:
    provider = BatchTaskSetProvider()
    olds = terminating_job(batch_api, sweep(3))
    batch_api.set_task_state(JOB, "run-0000", "completed")
    news = owned_set(batch_api, {**sweep(3), "run-0001": spec(1, command="python -m v2")})
    update(provider, olds, news)
    assert batch_api.tasks(JOB)["run-0001"]["commandLine"] == "python -m v2"
    assert batch_api.job(JOB)["state"] == "active"


def test_deleting_the_last_incomplete_tasks_is_refused_until_the_job_is_released(
    batch_api: BatchApiDouble,
) -> None:
    provider = BatchTaskSetProvider()
    outs = terminating_job(batch_api, sweep(2))
    batch_api.set_task_state(JOB, "run-0000", "completed")
    with pytest.raises(BatchOperationError, match="run-0000, run-0001"):
        provider.delete("id", outs)
    assert len(batch_api.tasks(JOB)) == 2
    # A destroy or a job replacement deletes the completion switch first: released.
    BatchJobCompletionProvider().delete("c", completion_props(batch_api))
    provider.delete("id", outs)
    assert batch_api.tasks(JOB) == {}


def test_a_completed_self_ending_job_takes_no_replacement(batch_api: BatchApiDouble) -> None:
    provider = BatchTaskSetProvider()
    olds = terminating_job(batch_api, sweep(1))
    batch_api.set_task_state(JOB, "run-0000", "completed")
    assert batch_api.job(JOB)["state"] == "completed"
    news = owned_set(batch_api, {"run-0000": spec(0, command="python -m v2")})
    with pytest.raises(BatchOperationError, match=r"has completed.*new id"):
        update(provider, olds, news)
    assert batch_api.counts()["DELETE task"] == 0


# ------------------------------------------------------------------ refresh


def test_completion_read_follows_the_job(batch_api: BatchApiDouble) -> None:
    terminating_job(batch_api, sweep(1))
    completion = BatchJobCompletionProvider()
    props = completion_props(batch_api)
    assert completion.read("c", props).outs["onAllTasksComplete"] == "terminateJob"
    # Switched back out of band (a portal, a script): the drift shows, `up` applies it again.
    batch_api.update_job_fields(JOB, onAllTasksComplete="noaction")
    drifted = completion.read("c", props)
    assert drifted.outs["onAllTasksComplete"] == "noAction"
    assert drifted.inputs["onAllTasksComplete"] == "noAction"
    assert completion.diff("c", drifted.outs, props).changes
    batch_api.delete_job_out_of_band(JOB)
    assert completion.read("c", props).id == ""


def test_a_deleting_job_is_gone_for_every_resource_in_it(batch_api: BatchApiDouble) -> None:
    batch_api.deleting_polls = DELETING_FOREVER
    jobs = BatchJobProvider()
    job = create(jobs, job_props(batch_api))
    task_set, task = BatchTaskSetProvider(), BatchTaskProvider()
    set_outs = create(task_set, owned_set(batch_api, sweep(2)))
    task_outs = create(task, task_props(batch_api, "summary", spec(9)))
    jobs.delete(JOB, job)
    # It still lists its tasks, but they go with it.
    assert len(batch_api.tasks(JOB)) == 3
    assert jobs.read(JOB, job).id == ""
    assert task_set.read("id", set_outs).id == ""
    assert task.read(f"{JOB}/summary", task_outs).id == ""
    assert BatchJobCompletionProvider().read("c", completion_props(batch_api)).id == ""
    # Deletes after a lost answer: JobBeingDeleted is done, and so are the tasks in it.
    batch_api.reset_counts()
    jobs.delete(JOB, job)
    task_set.delete("id", set_outs)
    task.delete(f"{JOB}/summary", task_outs)
    assert batch_api.counts()["DELETE task"] == 0


def test_read_returns_inputs_so_refresh_shows_drift(batch_api: BatchApiDouble) -> None:
    jobs = BatchJobProvider()
    outs = create(jobs, job_props(batch_api))
    batch_api.update_job_fields(JOB, priority=99)
    result = jobs.read(JOB, outs)
    assert result.inputs is not None and result.inputs["priority"] == 99
    assert "adopted" not in result.inputs


# ------------------------------------------------------------------ messages


def test_refused_task_shows_the_services_detail_values(owned: BatchApiDouble) -> None:
    owned.collection_client_errors(
        ["run-0001"],
        "InvalidPropertyValue",
        "The value provided for one of the properties is invalid.",
        {"PropertyName": "commandLine", "Reason": "too long"},
    )
    with pytest.raises(BatchOperationError) as caught:
        create(BatchTaskSetProvider(), owned_set(owned, sweep(3)))
    message = str(caught.value)
    assert "run-0001: InvalidPropertyValue: The value provided" in message
    assert "PropertyName: commandLine" in message and "Reason: too long" in message
    assert "run-0000" not in message and "run-0002" not in message


def test_partly_added_collection_names_only_the_tasks_not_added(owned: BatchApiDouble) -> None:
    owned.collection_server_errors(["run-0003", "run-0042"], times=100)
    with pytest.raises(BatchOperationError) as caught:
        create(BatchTaskSetProvider(), owned_set(owned, sweep(60)))
    message = str(caught.value)
    assert "2 task(s) not added" in message
    assert "[run-0003, run-0042]" in message
    assert "ServerBusy: The server is busy." in message
    assert len(owned.tasks(JOB)) == 58


def test_no_request_ids_or_azure_core_wording_in_errors(owned: BatchApiDouble) -> None:
    owned.set_job_state(JOB, "deleting")
    owned.deleting_polls = DELETING_FOREVER
    with pytest.raises(BatchOperationError) as caught:
        create(BatchTaskSetProvider(), owned_set(owned, sweep(2)))
    message = str(caught.value)
    assert "JobBeingDeleted" in message and "'weekly'" in message
    for raw in ("RequestId", "Time:", "ResourceExistsError", "Code:", "\n"):
        assert raw not in message


# ------------------------------------------------------------------ sizes as sent


def wide_sweep(count: int) -> dict[str, Any]:
    """Tasks of many small environment settings: the SDK's separators add about 13%."""
    env = {f"V{index:03d}": "x" for index in range(400)}
    return {f"run-{index:04d}": spec(index, env=env) for index in range(count)}


def test_collections_are_sized_as_sent(owned: BatchApiDouble) -> None:
    provider = BatchTaskSetProvider()
    props = owned_set(owned, wide_sweep(200))
    create(provider, props)
    sent = [request for request in owned.requests if request.route == "POST addtaskcollection"]
    assert all(request.status == 200 for request in sent)  # no 413 on the way
    assert all(len(request.body) <= MAX_COLLECTION_BYTES for request in sent)
    # The size is counted over exactly the bytes sent, and a chunk is as full as it can be.
    first = [encode_task(body).data for body in json.loads(sent[0].body)["value"]]
    assert collection_body(first) == sent[0].body
    following = encode_task(json.loads(sent[1].body)["value"][0]).data
    assert len(collection_body([*first, following])) > MAX_COLLECTION_BYTES
    assert_holds_exactly(owned, provider, checked(provider, {}, props))


def test_the_double_refuses_a_body_of_1000000_bytes(owned: BatchApiDouble) -> None:
    from batchtasks.batch.client import make_client

    client = make_client(owned.endpoint)
    task = {"id": "t", "commandLine": "x"}

    # Sent by the SDK's own serialiser (", " and ": " separators), measured as it sends it.
    def sent_size(body: dict[str, Any]) -> int:
        return len(json.dumps({"value": [body]}).encode())

    padding = 1_000_000 - sent_size(task)
    task["commandLine"] = "x" * (1 + padding)
    assert sent_size(task) == 1_000_000
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as caught:
        client.create_task_collection(JOB, {"value": [task]})
    assert caught.value.status_code == 413
    task["commandLine"] = "x" * padding
    client.create_task_collection(JOB, {"value": [task]})


# ------------------------------------------------------------------ the double's own faults


def test_commit_then_server_error_ends_in_exactly_the_declared_tasks(owned: BatchApiDouble) -> None:
    owned.error_after_commit("POST addtaskcollection", 500, times=2)
    provider = BatchTaskSetProvider()
    props = owned_set(owned, sweep(150))
    create(provider, props)
    assert_holds_exactly(owned, provider, checked(provider, {}, props))


def test_service_spellings_read_back_without_drift(owned: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    props = task_props(
        owned, "summary", spec(1, maxWallClockTime="PT90M", retention="P1W"), owner=dict(TASK_OWNER)
    )
    outs = create(provider, props)
    stored = owned.tasks(JOB)["summary"]["constraints"]
    assert (stored["maxWallClockTime"], stored["retentionTime"]) == ("PT1H30M", "P7D")
    refreshed = provider.read(f"{JOB}/summary", outs)
    assert not provider.diff(refreshed.id, refreshed.outs, outs).changes
