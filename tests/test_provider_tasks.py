"""BatchTaskSet and BatchTask providers against the Batch API double.

The providers run as Pulumi calls them (camelCase inputs, integers as floats, check before
create) with the real azure-batch client and the real azure-identity chain over HTTPS. Every
fault scenario ends by checking that the job holds exactly the declared tasks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from batchapi import BatchApiDouble
from batchtasks.batch.client import (
    BatchOperationError,
    RetryPolicy,
    call_with_retries,
    make_client,
)
from batchtasks.batch.spec import UNKNOWN, build_task_body
from batchtasks.batch.tasks import BatchTaskProvider, BatchTaskSetProvider, task_context
from tests.fakeclock import FakeClock

JOB = "weekly"
IDENTITY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/batch"
)
URLS = {
    "forecasts": "https://acct.blob.core.windows.net/forecasts",
    "logs": "https://acct.blob.core.windows.net/logs",
}
POLICY = {"maxAttempts": 4, "maxSeconds": 20, "baseDelay": 0.01, "maxDelay": 0.05}
SECRET = "s3cr3t-token-value"


def spec(index: int, **changes: Any) -> dict[str, Any]:
    """A forecast task spec as the stack config produces it."""
    return {
        "command": f"python -m model --run {index}",
        "image": "cr.azurecr.io/model:1",
        "mounts": [{"source": "forecasts", "target": "/out"}],
        "outputs": [
            {
                "pattern": "out/*.csv",
                "container": "forecasts",
                "path": f"runs/{index}",
                "when": "taskSuccess",
            }
        ],
        "maxWallClockTime": "PT1H",
        "retries": 2,
        **changes,
    }


def sweep(count: int, start: int = 0) -> dict[str, dict[str, Any]]:
    """Task id -> spec for `count` tasks."""
    return {f"run-{index:04d}": spec(index) for index in range(start, start + count)}


def set_props(
    api: BatchApiDouble, tasks: Mapping[str, Any] | str, **changes: Any
) -> dict[str, Any]:
    """A BatchTaskSet's inputs (`tasks` may be Pulumi's unknown value)."""
    return {
        "endpoint": api.endpoint,
        "jobId": JOB,
        "identityResourceId": IDENTITY,
        "containerUrls": URLS,
        "mountsDir": "/mnt/batch/tasks/fsmounts",
        "registryServer": None,
        "secrets": {},
        "replaceRunningTasks": False,
        "retryPolicy": dict(POLICY),
        "setName": "forecast",
        "tasks": dict(tasks) if isinstance(tasks, Mapping) else tasks,
        **changes,
    }


def task_props(
    api: BatchApiDouble, task_id: str, task: Mapping[str, Any] | str, **changes: Any
) -> dict[str, Any]:
    """A BatchTask's inputs."""
    props = set_props(api, {}, **changes)
    del props["setName"], props["tasks"]
    return {**props, "taskId": task_id, "task": dict(task) if isinstance(task, Mapping) else task}


def wire(value: Any) -> Any:
    """What Pulumi's wire format makes of a value: integers arrive as floats."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {key: wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [wire(item) for item in value]
    return value


def checked(provider: Any, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """Run `check` as the engine does before create and update, and return what it sends on."""
    result = provider.check(olds, wire(news))
    assert result.failures == []
    return wire(result.inputs)


def create(provider: Any, props: dict[str, Any]) -> dict[str, Any]:
    """Check then create; return the state Pulumi would keep."""
    return provider.create(checked(provider, {}, props)).outs


def update(provider: Any, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """Check, diff and update as `pulumi up` does; return the new state."""
    inputs = checked(provider, olds, news)
    diff = provider.diff("id", olds, inputs)
    assert diff.changes and not diff.replaces
    return provider.update("id", olds, inputs).outs


def declared_tasks(provider: Any, props: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Task id -> the REST body the provider builds for each declared task."""
    context = task_context(props)
    return {
        task_id: build_task_body(task_id, task, context)
        for task_id, task in provider.tasks_of(props).items()
    }


def assert_holds_exactly(
    api: BatchApiDouble,
    provider: Any,
    props: Mapping[str, Any],
    others: frozenset[str] = frozenset(),
) -> None:
    """The job holds the declared tasks (plus `others`), none twice, each with its built body."""
    stored = api.tasks(props["jobId"])
    declared = declared_tasks(provider, props)
    assert sorted(stored) == sorted([*declared, *others])
    for task_id, body in declared.items():
        live = stored[task_id]
        for key, value in body.items():
            if key == "constraints":
                # The service fills in the constraints a task leaves out.
                assert live[key] == {**live[key], **value}, (task_id, key)
            else:
                assert live[key] == value, (task_id, key)


@pytest.fixture
def api(batch_api: BatchApiDouble) -> BatchApiDouble:
    """The double holding an empty job `weekly`, with counters cleared."""
    batch_api.add_job(JOB, "pool", usesTaskDependencies=True)
    return batch_api


@pytest.fixture
def task_set() -> BatchTaskSetProvider:
    return BatchTaskSetProvider()


def created(api: BatchApiDouble, provider: Any, props: dict[str, Any]) -> dict[str, Any]:
    """Create the resource, then clear the double's counters."""
    outs = create(provider, props)
    api.reset_counts()
    return outs


# --- create, update, no-op: the minimal calls ------------------------------------------------


def test_create_chunks_250_tasks_into_three_collections(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(250))
    outs = create(task_set, props)
    # One list call first: an interrupted earlier create may have left tasks to remove.
    assert api.counts() == {"GET tasks": 1, "POST addtaskcollection": 3}
    assert outs["tasks"] == checked(task_set, {}, props)["tasks"]
    assert_holds_exactly(api, task_set, props)
    stored = api.tasks(JOB)["run-0007"]
    assert stored["commandLine"] == "python -m model --run 7"
    assert stored["containerSettings"]["imageName"] == "cr.azurecr.io/model:1"
    assert stored["displayName"] == "forecast"
    assert stored["constraints"]["maxTaskRetryCount"] == 2


def test_update_adding_250_tasks_sends_three_collections(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(10)))
    news = set_props(api, sweep(260))
    update(task_set, olds, news)
    assert api.counts() == {"POST addtaskcollection": 3}
    assert_holds_exactly(api, task_set, news)


def test_one_changed_command_is_list_delete_add(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(20)))
    tasks = sweep(20)
    tasks["run-0003"] = spec(3, command="python -m model --run 3 --fast")
    news = set_props(api, tasks)
    update(task_set, olds, news)
    assert api.counts() == {
        "GET job": 1,
        "GET tasks": 1,
        "DELETE task": 1,
        "POST addtaskcollection": 1,
    }
    assert_holds_exactly(api, task_set, news)


def test_in_a_large_set_a_changed_task_is_read_alone_not_listed(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    # Listing 2,000 tasks takes two pages; one changed task is one GET of that task.
    olds = created(api, task_set, set_props(api, sweep(2000)))
    tasks = sweep(2000)
    tasks["run-0003"] = spec(3, command="python -m model --run 3 --fast")
    news = set_props(api, tasks)
    update(task_set, olds, news)
    assert api.counts() == {
        "GET job": 1,
        "GET task": 1,
        "DELETE task": 1,
        "POST addtaskcollection": 1,
    }
    assert_holds_exactly(api, task_set, news)
    api.set_task_state(JOB, "run-0004", "running")
    tasks["run-0004"] = spec(4, image="cr.azurecr.io/model:2")
    with pytest.raises(BatchOperationError, match="run-0004"):
        update(task_set, news, set_props(api, tasks))


def test_one_changed_retries_is_one_put(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(20)))
    tasks = sweep(20)
    tasks["run-0003"] = spec(3, retries=5)
    news = set_props(api, tasks)
    update(task_set, olds, news)
    assert api.counts() == {"PUT task": 1}
    assert api.tasks(JOB)["run-0003"]["constraints"]["maxTaskRetryCount"] == 5
    assert_holds_exactly(api, task_set, news)


def test_no_op_update_and_diff_and_check_make_no_request(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(30))
    olds = created(api, task_set, props)
    inputs = checked(task_set, olds, props)
    assert not task_set.diff("id", olds, inputs).changes
    task_set.update("id", olds, inputs)
    assert api.total_requests() == 0


def test_diff_reads_texts_first_but_decides_on_the_specs(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(30)))
    # The same specs stored as other JSON text (an older encoding): no change.
    respaced = {
        task_id: json.dumps(json.loads(text), indent=1) for task_id, text in olds["tasks"].items()
    }
    assert not task_set.diff("id", {**olds, "tasks": respaced}, olds).changes
    # One task's text differs: that task is the change.
    tasks = sweep(30)
    tasks["run-0007"] = spec(7, command="python -m model --run 7 --fast")
    assert task_set.diff("id", olds, checked(task_set, olds, set_props(api, tasks))).changes
    # A shared input every body carries changed: the set changes though no text did.
    moved = checked(task_set, olds, set_props(api, sweep(30), mountsDir="/mnt/elsewhere"))
    assert moved["tasks"] == olds["tasks"]
    assert task_set.diff("id", olds, moved).changes
    update(task_set, olds, moved)
    assert api.tasks(JOB)["run-0007"]["containerSettings"]["containerRunOptions"] == (
        "--mount type=bind,source=/mnt/elsewhere/forecasts,target=/out"
    )


def test_check_finds_a_bad_value_in_any_task_of_a_shape(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    # Tasks of one shape are checked whole once, then by their own values: a bad value in
    # the thousandth task is found, with the same message as when it is the first.
    tasks = sweep(1000)
    tasks["run-0999"] = spec(999, command="  ")
    tasks["run-0500"] = spec(500, dependsOn=["not an id"])
    found = {
        failure.property: failure.reason
        for failure in task_set.check({}, wire(set_props(api, tasks))).failures
    }
    alone = {
        failure.property: failure.reason
        for failure in task_set.check(
            {}, wire(set_props(api, {"run-0999": tasks["run-0999"], "run-0500": tasks["run-0500"]}))
        ).failures
    }
    assert found == alone
    assert {"tasks.run-0999.command", "tasks.run-0500.dependsOn[0]"} <= set(found)


def test_check_finds_a_bad_value_in_any_task_of_a_template(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    # A set's template is checked with its first task, then every task by the strings its
    # texts make, all tasks at once: a bad one anywhere is found with the message it gets
    # when it is checked alone.
    template = json.dumps(
        {
            **spec(0),
            "command": {"$t": ["python -m model --run ", 0]},
            "env": {"REGION": {"$t": [1]}},
            "outputs": [{**spec(0)["outputs"][0], "path": {"$t": ["runs/", 0]}}],
        },
        sort_keys=True,
    )
    tasks = {f"run-{index:04d}": json.dumps([str(index), "east"]) for index in range(1000)}
    bad = {
        "run-0999": json.dumps(["../up", "east"]),  # the output path climbs out
        "run-0500": json.dumps(["500", "ea\tst"]),  # a control character in an env value
        "run-0400": '["400",4]',  # an axis value that is not text
        "run-0300": '["300"',  # not JSON
        "run-0100": '["100"]',  # fewer values than the template reads
        "run 0050": json.dumps(["50", "east"]),  # not a Batch id
        "run-0060": json.dumps({**spec(60), "command": " "}),  # a whole spec, stored as such
    }
    tasks.update(bad)
    tasks["run-0200"] = '["200","east"] '  # JSON text with a trailing space reads the same

    def failures(texts: dict[str, str]) -> dict[str, str]:
        props = wire(set_props(api, texts, template=template))
        return {f.property: f.reason for f in task_set.check({}, props).failures}

    found = failures(tasks)
    alone: dict[str, str] = {}
    for task_id, text in bad.items():
        alone.update(failures({task_id: text}))
    assert found == alone
    assert {
        "tasks.run-0999.outputs[0].path",
        "tasks.run-0500.env.REGION",
        "tasks.run-0400",
        "tasks.run-0300",
        "tasks.run-0100",
        "tasks.run 0050.id",
        "tasks.run-0060.command",
    } == set(found)
    assert "must not contain control characters" in found["tasks.run-0500.env.REGION"]
    good = {task_id: text for task_id, text in tasks.items() if task_id not in bad}
    assert failures(good) == {}


def test_check_reports_text_nested_too_deeply_to_read(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    # Text nested past the interpreter's recursion limit is refused like any unreadable text,
    # at its key, never with a traceback.
    deep = "[" * 200_000 + "]" * 200_000
    template = json.dumps({**spec(0), "command": {"$t": ["python -m model --run ", 0]}})
    tasks = {"run-0001": json.dumps(["1"]), "run-0002": deep}
    props = wire(set_props(api, tasks, template=template))
    found = {f.property for f in task_set.check({}, props).failures}
    assert found == {"tasks.run-0002"}
    props = wire(set_props(api, {"run-0001": json.dumps(["1"])}, template=deep))
    assert [f.property for f in task_set.check({}, props).failures] == ["template"]


def test_mixed_update_touches_only_what_changed(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(20)))
    tasks = sweep(17)  # run-0017..19 removed
    tasks.update(sweep(150, start=100))  # 150 added
    tasks["run-0001"] = spec(1, image="cr.azurecr.io/model:2")  # replaced
    tasks["run-0002"] = spec(2, mounts=[])  # replaced
    for index in (4, 5, 6, 7):  # constraints only
        tasks[f"run-{index:04d}"] = spec(index, maxWallClockTime="PT3H")
    news = set_props(api, tasks)
    update(task_set, olds, news)
    assert api.counts() == {
        "GET job": 1,
        "GET tasks": 1,
        "DELETE task": 5,
        "POST addtaskcollection": 2,
        "PUT task": 4,
    }
    assert_holds_exactly(api, task_set, news)


def test_updates_run_with_bounded_concurrency(
    api: BatchApiDouble, task_set: BatchTaskSetProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    olds = created(
        api, task_set, set_props(api, sweep(24), retryPolicy={**POLICY, "concurrency": 3})
    )
    in_flight, peak, lock = [0], [0], threading.Lock()
    original = api.service.replace_task

    def slow_replace(*args: Any) -> Any:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return original(*args)

    monkeypatch.setattr(api.service, "replace_task", slow_replace)
    news = set_props(
        api,
        {task_id: {**task, "retries": 7} for task_id, task in sweep(24).items()},
        retryPolicy={**POLICY, "concurrency": 3},
    )
    update(task_set, olds, news)
    assert api.counts() == {"PUT task": 24}
    assert 1 < peak[0] <= 3
    assert_holds_exactly(api, task_set, news)


# --- running tasks are protected --------------------------------------------------------------


def test_replacing_a_running_task_fails_before_changing_anything(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(10)))
    api.set_task_state(JOB, "run-0002", "running")
    api.set_task_state(JOB, "run-0005", "preparing")
    api.set_task_state(JOB, "run-0006", "completed")
    tasks = {
        task_id: {**task, "image": "cr.azurecr.io/model:2"} for task_id, task in sweep(9).items()
    }  # run-0009 removed, the rest replaced
    news = set_props(api, tasks)
    before = api.tasks(JOB)
    with pytest.raises(BatchOperationError) as caught:
        update(task_set, olds, news)
    message = str(caught.value)
    assert "run-0002" in message and "run-0005" in message and "run-0006" not in message
    assert "replaceRunningTasks" in message and "Nothing was changed" in message
    assert api.counts() == {"GET tasks": 1}
    assert api.tasks(JOB) == before


def test_removing_a_running_task_is_refused_too(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(3)))
    api.set_task_state(JOB, "run-0002", "running")
    with pytest.raises(BatchOperationError, match="run-0002"):
        update(task_set, olds, set_props(api, sweep(2)))
    assert sorted(api.tasks(JOB)) == ["run-0000", "run-0001", "run-0002"]


def test_replace_running_tasks_true_kills_and_replaces(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(5), replaceRunningTasks=True))
    api.set_task_state(JOB, "run-0002", "running")
    tasks = sweep(5)
    tasks["run-0002"] = spec(2, command="python -m model --run 2 --again")
    news = set_props(api, tasks, replaceRunningTasks=True)
    update(task_set, olds, news)
    assert api.counts() == {"GET job": 1, "DELETE task": 1, "POST addtaskcollection": 1}
    assert api.tasks(JOB)["run-0002"]["state"] == "active"
    assert_holds_exactly(api, task_set, news)


def test_delete_of_a_set_with_running_tasks(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    outs = created(api, task_set, set_props(api, sweep(4)))
    api.set_task_state(JOB, "run-0001", "running")
    with pytest.raises(BatchOperationError, match="run-0001"):
        task_set.delete("id", outs)
    assert len(api.tasks(JOB)) == 4
    task_set.delete("id", {**outs, "replaceRunningTasks": True})
    assert api.tasks(JOB) == {}


# --- read, refresh, import, delete -------------------------------------------------------------


def test_task_deleted_out_of_band_leaves_state_and_is_added_again(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(5))
    outs = created(api, task_set, props)
    assert task_set.read("weekly/forecast", outs).outs == outs
    api.delete_task_out_of_band(JOB, "run-0003")
    api.reset_counts()
    refreshed = task_set.read("weekly/forecast", outs)
    assert api.counts() == {"GET job": 1, "GET tasks": 1}
    assert refreshed.id == "weekly/forecast"
    assert sorted(refreshed.outs["tasks"]) == ["run-0000", "run-0001", "run-0002", "run-0004"]
    api.reset_counts()
    update(task_set, refreshed.outs, props)
    assert api.counts() == {"POST addtaskcollection": 1}
    assert_holds_exactly(api, task_set, props)


def test_set_whose_tasks_or_job_are_gone_leaves_state(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    outs = created(api, task_set, set_props(api, sweep(2)))
    for task_id in sweep(2):
        api.delete_task_out_of_band(JOB, task_id)
    assert task_set.read("weekly/forecast", outs).id == ""
    api.delete_job_out_of_band(JOB)
    assert task_set.read("weekly/forecast", outs).id == ""


def test_import_of_an_existing_set(api: BatchApiDouble, task_set: BatchTaskSetProvider) -> None:
    props = set_props(api, sweep(5))
    created(api, task_set, props)  # made earlier, outside this stack
    declared = checked(task_set, {}, props)
    result = task_set.read("weekly/forecast", declared)
    assert result.id == "weekly/forecast"
    assert api.counts() == {"GET job": 1, "GET tasks": 1}
    assert not task_set.diff(result.id, result.outs, declared).changes


def test_import_of_an_existing_task(api: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    props = task_props(api, "flu-ca", spec(1))
    api.add_task(JOB, **_as_add_task(declared_tasks(provider, props)["flu-ca"]))
    declared = checked(provider, {}, props)
    result = provider.read("weekly/flu-ca", declared)
    assert result.id == "weekly/flu-ca"
    assert result.outs["task"] == declared["task"]
    assert not provider.diff(result.id, result.outs, declared).changes


def test_import_of_a_task_that_differs_shows_the_live_command(api: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    props = task_props(api, "flu-ca", spec(1))
    body = declared_tasks(provider, props)["flu-ca"]
    api.add_task(JOB, **_as_add_task({**body, "commandLine": "python -m old"}))
    declared = checked(provider, {}, props)
    result = provider.read("weekly/flu-ca", declared)
    assert result.outs["task"]["command"] == "python -m old"
    assert provider.diff(result.id, result.outs, declared).replaces == ["task"]


def _as_add_task(body: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments of BatchApiDouble.add_task for a REST task body."""
    rest = dict(body)
    return {"task_id": rest.pop("id"), "command_line": rest.pop("commandLine"), **rest}


def test_single_task_lifecycle(api: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    props = task_props(api, "flu-ca", spec(1))
    outs = create(provider, props)
    assert api.counts() == {"POST addtaskcollection": 1}
    assert_holds_exactly(api, provider, props)
    api.reset_counts()
    news = task_props(api, "flu-ca", spec(1, retention="P1D"))
    outs = update(provider, outs, news)
    assert api.counts() == {"PUT task": 1}
    assert api.tasks(JOB)["flu-ca"]["constraints"]["retentionTime"] == "P1D"
    assert provider.read("weekly/flu-ca", outs).outs["task"]["retention"] == "P1D"
    api.delete_task_out_of_band(JOB, "flu-ca")
    assert provider.read("weekly/flu-ca", outs).id == ""
    provider.delete("weekly/flu-ca", outs)  # already gone: fine


def test_delete_removes_only_the_sets_own_tasks(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    outs = created(api, task_set, set_props(api, sweep(3)))
    api.add_task(JOB, "someone-elses")
    api.delete_task_out_of_band(JOB, "run-0001")
    task_set.delete("id", outs)
    assert sorted(api.tasks(JOB)) == ["someone-elses"]


def test_delete_after_the_job_is_gone(api: BatchApiDouble, task_set: BatchTaskSetProvider) -> None:
    outs = created(api, task_set, set_props(api, sweep(3)))
    api.delete_job_out_of_band(JOB)
    task_set.delete("id", outs)
    BatchTaskProvider().delete("weekly/x", task_props(api, "x", spec(1)))


# --- preview: unknown values -------------------------------------------------------------------


def test_unknown_inputs_are_pending_in_check_and_diff(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(3)))
    tasks = sweep(3)
    tasks["run-0001"] = spec(1, image=UNKNOWN, outputs=[{"pattern": "*.csv", "container": UNKNOWN}])
    for news in (
        set_props(api, tasks),
        set_props(api, sweep(3), containerUrls=UNKNOWN, secrets=UNKNOWN),
        set_props(api, sweep(3), identityResourceId=UNKNOWN),
        set_props(api, sweep(3), containerUrls={**URLS, "forecasts": UNKNOWN}),
        set_props(api, UNKNOWN),
    ):
        news = wire(news)
        assert task_set.check(olds, news).failures == []
        result = task_set.diff("id", olds, news)
        assert result.changes and result.replaces == []
    for name in ("endpoint", "jobId"):
        news = wire(set_props(api, sweep(3), **{name: UNKNOWN}))
        assert task_set.check(olds, news).failures == []
        assert task_set.diff("id", olds, news).replaces == [name]
    assert api.total_requests() == 0


def test_a_template_not_known_yet_leaves_the_tasks_pending(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    # During preview a template may come from another resource's output.
    template = json.dumps({"command": "run", "image": "img:1"}, sort_keys=True)
    olds = created(api, task_set, set_props(api, {"a": '["a"]'}, template=template))
    news = wire(set_props(api, {"a": '["a"]'}, template=UNKNOWN))
    assert task_set.check(olds, news).failures == []
    result = task_set.diff("id", olds, news)
    assert result.changes and result.replaces == []
    assert api.total_requests() == 0


def test_unknown_task_spec_of_a_single_task_is_pending(api: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    olds = wire(task_props(api, "flu-ca", spec(1)))
    for news in (
        task_props(api, "flu-ca", UNKNOWN),
        task_props(api, "flu-ca", spec(1, command=UNKNOWN)),
        task_props(api, "flu-ca", spec(1, retries=UNKNOWN)),
    ):
        news = wire(news)
        assert provider.check(olds, news).failures == []
        assert provider.diff("weekly/flu-ca", olds, news).changes
    assert api.total_requests() == 0


# --- credentials and serialisation -------------------------------------------------------------


def test_serialized_providers_are_tiny_and_hold_no_secret(api: BatchApiDouble) -> None:
    props = set_props(
        api, {"a": spec(1, secretEnv={"TOKEN": "apiToken"})}, secrets={"apiToken": SECRET}
    )
    for provider in (BatchTaskSetProvider(), BatchTaskProvider()):
        api.reset()
        api.add_job(JOB, "pool")
        single = task_props(api, "a", props["tasks"]["a"], secrets=props["secrets"])
        outs = create(provider, props if isinstance(provider, BatchTaskSetProvider) else single)
        provider.read("id", outs)
        pickled = serialize_provider(provider)
        assert len(pickled) < 1024
        for text in (SECRET, api.endpoint, "127.0.0.1", IDENTITY):
            assert text not in pickled
        assert api.tasks(JOB)["a"]["environmentSettings"] == [{"name": "TOKEN", "value": SECRET}]


# --- faults: retries, lost responses, idempotency ---------------------------------------------


@pytest.mark.parametrize(("status", "retry_after"), [(503, 0), (429, None), (500, None)])
def test_throttling_and_server_errors_are_retried(
    api: BatchApiDouble, task_set: BatchTaskSetProvider, status: int, retry_after: float | None
) -> None:
    props = set_props(api, sweep(150))
    api.inject("POST addtaskcollection", status, retry_after=retry_after, times=2)
    outs = create(task_set, props)
    assert api.counts() == {"GET tasks": 1, "POST addtaskcollection": 4}
    assert_holds_exactly(api, task_set, props)
    api.reset_counts()
    tasks = sweep(150)
    tasks["run-0001"] = spec(1, command="changed")
    tasks["run-0002"] = spec(2, retries=9)
    news = set_props(api, tasks)
    for route in ("GET tasks", "DELETE task", "PUT task"):
        api.inject(route, status, retry_after=retry_after, times=2)
    update(task_set, outs, news)
    assert api.counts() == {
        "GET job": 1,
        "GET tasks": 3,
        "DELETE task": 3,
        "PUT task": 3,
        "POST addtaskcollection": 1,
    }
    assert_holds_exactly(api, task_set, news)


def test_retry_after_is_honoured_and_capped(batch_api: BatchApiDouble, clock: FakeClock) -> None:
    client = make_client(batch_api.endpoint)
    batch_api.add_job(JOB, "pool")
    policy = RetryPolicy.from_inputs({**POLICY, "maxDelay": 0.5}, clock)
    batch_api.inject("GET job", 503, retry_after=0.25)
    batch_api.inject("GET job", 429, retry_after=30)
    batch_api.inject("GET job", 503)
    job = call_with_retries(lambda: client.get_job(JOB), policy)
    assert job.id == JOB
    assert clock.sleeps[:2] == [0.25, 0.5]
    assert 0 < clock.sleeps[2] <= 0.04  # no Retry-After: the policy's own back-off
    assert batch_api.counts() == {"GET job": 4}


def test_waits_use_the_service_s_retry_after_at_full_length(
    api: BatchApiDouble, task_set: BatchTaskSetProvider, clock: FakeClock
) -> None:
    # The default policy, as a stack runs it: the waits cost the test no time on the fake clock.
    props = set_props(api, sweep(3))
    del props["retryPolicy"]
    api.inject("POST addtaskcollection", 503, retry_after=20, times=2)
    create(task_set, props)
    assert clock.sleeps == [20.0, 20.0]
    assert sorted(api.tasks(JOB)) == ["run-0000", "run-0001", "run-0002"]


def test_persistent_failure_names_job_tasks_and_last_error(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(
        api, sweep(3), retryPolicy={**POLICY, "concurrency": 1}, secrets={"apiToken": SECRET}
    )
    props["tasks"]["run-0000"]["secretEnv"] = {"TOKEN": "apiToken"}
    api.inject("POST addtaskcollection", 503, retry_after=0, times=50)
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, props)
    message = str(caught.value)
    assert "'weekly'" in message
    assert "run-0000, run-0001, run-0002" in message
    assert "503" in message and "ServerBusy" in message
    assert SECRET not in message
    assert api.counts() == {"GET tasks": 1, "POST addtaskcollection": 4}  # maxAttempts


def test_time_budget_ends_retries_and_still_names_the_service_error(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(2), retryPolicy={**POLICY, "maxSeconds": 1, "maxDelay": 5})
    api.inject("POST addtaskcollection", 429, retry_after=3, times=50)
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, props)
    message = str(caught.value)
    assert "run-0000" in message and "429" in message and "TooManyRequests" in message
    assert api.counts() == {"GET tasks": 1, "POST addtaskcollection": 1}


def test_lost_add_response_counts_the_existing_tasks(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(120))
    api.drop_after_commit("POST addtaskcollection", times=2)
    create(task_set, props)
    assert api.counts()["POST addtaskcollection"] == 4
    assert_holds_exactly(api, task_set, props)


def test_lost_response_for_one_task(api: BatchApiDouble) -> None:
    provider = BatchTaskProvider()
    props = task_props(api, "flu-ca", spec(1))
    api.drop_after_commit("POST addtaskcollection")
    create(provider, props)
    assert api.counts() == {"POST addtaskcollection": 2, "GET task": 1}
    assert_holds_exactly(api, provider, props)


def test_existing_task_with_another_definition_is_a_clear_error(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(3))
    body = declared_tasks(task_set, props)["run-0001"]
    api.add_task(JOB, **_as_add_task({**body, "commandLine": "python -m other"}))
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, props)
    assert "run-0001" in str(caught.value) and "different definition" in str(caught.value)


def test_lost_delete_and_put_responses_are_harmless(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(4)))
    tasks = sweep(3)
    tasks["run-0001"] = spec(1, retries=4)
    news = set_props(api, tasks)
    api.drop_after_commit("DELETE task")
    api.drop_after_commit("PUT task")
    update(task_set, olds, news)
    assert_holds_exactly(api, task_set, news)


def test_per_task_server_errors_are_retried(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(50))
    api.collection_server_errors(["run-0003", "RUN-0040"], times=2)
    create(task_set, props)
    assert api.counts() == {"GET tasks": 1, "POST addtaskcollection": 3}
    assert_holds_exactly(api, task_set, props)


def test_persistent_per_task_server_error_names_the_task(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    props = set_props(api, sweep(50))
    api.collection_server_errors(["run-0003"], times=4)  # every attempt
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, props)
    message = str(caught.value)
    assert "'weekly'" in message and "run-0003" in message and "ServerBusy" in message
    assert "run-0004" not in message  # it was added
    assert len(api.tasks(JOB)) == 49
    api.reset_counts()
    create(task_set, props)  # the next `up`
    assert api.counts()["POST addtaskcollection"] == 1
    assert_holds_exactly(api, task_set, props)


def test_client_errors_are_reported_with_code_and_message(
    batch_api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    batch_api.add_job(JOB, "pool")  # without usesTaskDependencies
    tasks = sweep(3)
    tasks["run-0002"] = spec(2, dependsOn=["run-0001"])
    props = set_props(batch_api, tasks, secrets={"apiToken": SECRET})
    props["tasks"]["run-0002"]["secretEnv"] = {"TOKEN": "apiToken"}
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, props)
    message = str(caught.value)
    assert "run-0002" in message and "TaskDependenciesNotSpecifiedOnJob" in message
    assert "did not specify that it would use task dependencies" in message
    assert "run-0001" not in message.replace("run-0002", "")  # run-0001 was added
    assert SECRET not in message
    assert sorted(batch_api.tasks(JOB)) == ["run-0000", "run-0001"]


def test_413_halves_the_collection(api: BatchApiDouble, task_set: BatchTaskSetProvider) -> None:
    props = set_props(api, sweep(100))
    api.inject("POST addtaskcollection", 413, code="RequestBodyTooLarge")
    create(task_set, props)
    sizes = [
        request.body.count(b'"commandLine"')
        for request in api.requests
        if request.route == "POST addtaskcollection"
    ]
    assert sizes == [100, 50, 50]
    assert_holds_exactly(api, task_set, props)


def test_adding_to_a_completed_job_explains_why(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    api.set_job_state(JOB, "completed")
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, set_props(api, sweep(2)))
    message = str(caught.value)
    assert "JobCompleted" in message and "completed job" in message and "new id" in message
    assert api.counts() == {"GET tasks": 1, "POST addtaskcollection": 1}


def test_adding_to_a_missing_job_explains_why(
    batch_api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    with pytest.raises(BatchOperationError, match=r"JobNotFound.*refresh"):
        create(task_set, set_props(batch_api, sweep(2)))


# --- interrupted runs converge ----------------------------------------------------------------


def interrupted_create(api: BatchApiDouble, task_set: BatchTaskSetProvider, count: int) -> None:
    """A create whose first chunk meets persistent 503 while the later chunks go in."""
    props = set_props(api, sweep(count), retryPolicy={**POLICY, "concurrency": 1})
    api.inject("POST addtaskcollection", 503, retry_after=0, times=4)
    with pytest.raises(BatchOperationError, match="run-0000"):
        create(task_set, props)
    assert len([task for task in api.tasks(JOB) if task.startswith("run-")]) == count - 100
    api.reset_counts()


def test_interrupted_create_then_same_declaration(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    interrupted_create(api, task_set, 150)
    props = set_props(api, sweep(150))
    create(task_set, props)
    assert_holds_exactly(api, task_set, props)


def test_interrupted_create_then_a_task_removed(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    api.add_task(JOB, "someone-elses")
    interrupted_create(api, task_set, 150)
    tasks = sweep(150)
    del tasks["run-0120"]  # it went in with the interrupted run
    props = set_props(api, tasks)
    create(task_set, props)
    assert_holds_exactly(api, task_set, props, others=frozenset({"someone-elses"}))


def test_interrupted_create_then_every_added_task_removed(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    interrupted_create(api, task_set, 150)
    props = set_props(api, sweep(100))  # run-0100..0149 went in, now undeclared
    create(task_set, props)
    assert_holds_exactly(api, task_set, props)


def test_interrupted_update_then_up_again(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    olds = created(api, task_set, set_props(api, sweep(20)))
    tasks = sweep(10)
    tasks.update(sweep(110, start=500))
    tasks["run-0001"] = spec(1, command="changed")
    tasks["run-0002"] = spec(2, retries=8)
    news = set_props(api, tasks, retryPolicy={**POLICY, "concurrency": 1})
    api.inject("POST addtaskcollection", 503, retry_after=0, times=4)
    with pytest.raises(BatchOperationError):
        update(task_set, olds, news)
    update(task_set, olds, news)  # the state is still the old one
    assert_holds_exactly(api, task_set, news)


# --- errors never show secrets ----------------------------------------------------------------


@pytest.mark.parametrize("fault", ["exists", "completed", "busy"])
def test_errors_never_show_secret_values(
    api: BatchApiDouble, task_set: BatchTaskSetProvider, fault: str
) -> None:
    props = set_props(
        api, {"a": spec(1, secretEnv={"TOKEN": "apiToken"})}, secrets={"apiToken": SECRET}
    )
    actions: dict[str, Callable[[], None]] = {
        "exists": lambda: api.add_task(
            JOB, "a", environmentSettings=[{"name": "TOKEN", "value": SECRET + "-old"}]
        ),
        "completed": lambda: api.set_job_state(JOB, "completed"),
        "busy": lambda: api.inject("*", 503, retry_after=0, times=100),
    }
    actions[fault]()
    with pytest.raises(BatchOperationError) as caught:
        create(task_set, props)
    assert "'weekly'" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


# --- the set's name: every task's owner marker --------------------------------------------------


def test_a_new_set_name_replaces_every_task_under_the_running_guard(
    api: BatchApiDouble, task_set: BatchTaskSetProvider
) -> None:
    # Batch cannot change a task's displayName in place: a renamed set (an alias) replaces its
    # tasks, so each one carries the marker an interrupted create is recognised by.
    olds = created(api, task_set, set_props(api, sweep(5)))
    api.set_task_state(JOB, "run-0001", "running")
    news = set_props(api, sweep(5), setName="forecast-v2")
    before = api.tasks(JOB)
    with pytest.raises(BatchOperationError, match="run-0001"):
        update(task_set, olds, news)
    assert api.tasks(JOB) == before
    api.set_task_state(JOB, "run-0001", "completed")
    update(task_set, olds, news)
    assert {task["displayName"] for task in api.tasks(JOB).values()} == {"forecast-v2"}
    assert_holds_exactly(api, task_set, news)
