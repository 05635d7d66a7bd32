"""Pure rules of the Batch providers: diffs, chunking, body comparison, input checks."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from batchtasks.batch import checks
from batchtasks.batch.client import (
    body_matches,
    chunk_bodies,
    collection_body,
    collection_size,
)
from batchtasks.batch.diff import job_change, plan_tasks, task_change
from batchtasks.batch.job import BatchJobProvider
from batchtasks.batch.spec import UNKNOWN, TaskContext, build_job_body, build_task_body
from batchtasks.batch.tasks import BatchTaskProvider, BatchTaskSetProvider
from tests.test_provider_tasks import IDENTITY, URLS

SPEC = {
    "command": "python -m model --state ca",
    "image": "cr.azurecr.io/model:1",
    "mounts": [{"source": "forecasts", "target": "/out"}],
    "outputs": [
        {"pattern": "out/*.csv", "container": "forecasts", "path": "flu/ca", "when": "taskSuccess"}
    ],
    "maxWallClockTime": "PT1H",
    "retries": 2,
}


def shared(**changes: object) -> dict:
    base = {
        "endpoint": "https://acct.eastus.batch.azure.com",
        "jobId": "weekly",
        "identityResourceId": IDENTITY,
        "containerUrls": URLS,
        "mountsDir": "/mnt/batch/tasks/fsmounts",
        "secrets": {},
    }
    return {**base, **changes}


def task_set(tasks: dict, **changes: object) -> dict:
    return {**shared(**changes), "setName": "forecast", "tasks": tasks}


class TestTaskChange:
    def test_constraints_only_update_in_place(self) -> None:
        for field, value in (("maxWallClockTime", "PT2H"), ("retention", "P1D"), ("retries", 5)):
            assert task_change(SPEC, {**SPEC, field: value}) == ("update", [field])

    def test_anything_else_replaces(self) -> None:
        kind, fields = task_change(SPEC, {**SPEC, "command": "other", "retries": 3})
        assert kind == "replace"
        assert fields == ["command", "retries"]

    def test_integer_sent_as_float_is_no_change(self) -> None:
        assert task_change(SPEC, {**SPEC, "retries": 2.0}) == ("none", [])

    def test_unknown_value_counts_as_change(self) -> None:
        assert task_change(SPEC, {**SPEC, "image": UNKNOWN})[0] == "replace"


class TestPlanTasks:
    def test_reports_each_task_id_by_kind(self) -> None:
        olds = task_set({"a": SPEC, "b": SPEC, "c": SPEC, "d": SPEC})
        news = task_set(
            {"a": SPEC, "b": {**SPEC, "command": "x"}, "c": {**SPEC, "retries": 9}, "e": SPEC}
        )
        plan = plan_tasks(olds, news)
        assert (plan.added, plan.removed, plan.replaced, plan.updated) == (
            ("e",),
            ("d",),
            ("b",),
            ("c",),
        )
        assert plan.unchanged == 1
        assert plan.changed_fields == {"b": ("command",), "c": ("retries",)}

    def test_identity_change_replaces_every_task(self) -> None:
        olds = task_set({"a": SPEC, "b": SPEC})
        plan = plan_tasks(olds, task_set({"a": SPEC, "b": SPEC}, identityResourceId="/other"))
        assert plan.replaced == ("a", "b")

    def test_container_url_change_replaces_only_tasks_writing_there(self) -> None:
        plain = {"command": "echo", "image": "busybox"}
        olds = task_set({"a": SPEC, "b": plain})
        urls = {**URLS, "forecasts": "https://other.blob.core.windows.net/forecasts"}
        plan = plan_tasks(olds, task_set({"a": SPEC, "b": plain}, containerUrls=urls))
        assert plan.replaced == ("a",)
        assert plan.unchanged == 1

    def test_changed_secret_replaces_only_tasks_that_read_it(self) -> None:
        reader = {**SPEC, "secretEnv": {"TOKEN": "apiToken"}}
        olds = task_set({"a": reader, "b": SPEC}, secrets={"apiToken": "one"})
        plan = plan_tasks(olds, task_set({"a": reader, "b": SPEC}, secrets={"apiToken": "two"}))
        assert plan.replaced == ("a",)

    def test_ids_compare_ignoring_case_but_a_case_change_replaces(self) -> None:
        plan = plan_tasks(task_set({"Flu-CA": SPEC}), task_set({"flu-ca": SPEC}))
        assert plan.replaced == ("flu-ca",)
        assert not plan.added and not plan.removed

    def test_no_change_is_empty(self) -> None:
        assert not plan_tasks(task_set({"a": SPEC}), task_set({"a": dict(SPEC)})).has_changes


class TestJobRules:
    JOB: ClassVar[dict] = {
        "endpoint": "https://acct.eastus.batch.azure.com",
        "jobId": "weekly",
        "poolId": "pool",
        "priority": 10,
        "onAllTasksComplete": "noAction",
    }

    def test_in_place_and_replacing_changes(self) -> None:
        assert job_change(self.JOB, {**self.JOB, "priority": 20}) == (["priority"], [])
        assert job_change(self.JOB, {**self.JOB, "poolId": "other"}) == ([], ["poolId"])
        assert job_change(self.JOB, {**self.JOB, "usesTaskDependencies": True})[1] == [
            "usesTaskDependencies"
        ]

    def test_terminate_to_noaction_is_refused_in_check(self) -> None:
        olds = {**self.JOB, "onAllTasksComplete": "terminateJob"}
        result = BatchJobProvider().check(olds, dict(self.JOB))
        assert [f.property for f in result.failures] == ["onAllTasksComplete"]
        assert "400" in result.failures[0].reason

    def test_noaction_to_terminate_updates_in_place(self) -> None:
        provider = BatchJobProvider()
        result = provider.diff(
            "weekly", self.JOB, {**self.JOB, "onAllTasksComplete": "terminateJob"}
        )
        assert result.changes and result.replaces == []

    def test_job_body_is_created_noaction_but_shows_declared(self) -> None:
        job = {
            **self.JOB,
            "onAllTasksComplete": "terminateJob",
            "maxParallelTasks": 4.0,
            "constraints": {"maxWallClockTime": "P1D", "maxTaskRetryCount": 2.0},
        }
        assert build_job_body(job)["onAllTasksComplete"] == "noaction"
        declared = build_job_body(job, create=False)
        assert declared == {
            "id": "weekly",
            "poolInfo": {"poolId": "pool"},
            "priority": 10,
            "maxParallelTasks": 4,
            "usesTaskDependencies": False,
            "constraints": {"maxWallClockTime": "P1D", "maxTaskRetryCount": 2},
            "onAllTasksComplete": "terminatejob",
        }


class TestChecks:
    def test_reports_every_bad_property_at_once(self) -> None:
        bad = {
            **SPEC,
            "command": " ",
            "retries": "many",
            "maxWallClockTime": "1 hour",
            "mounts": [{"source": "../etc", "target": "data"}],
            "outputs": [{"pattern": "*.csv", "container": "nowhere", "when": "always"}],
            "colour": "blue",
        }
        result = BatchTaskSetProvider().check({}, task_set({"bad id!": bad}))
        paths = {failure.property for failure in result.failures}
        assert paths == {
            "tasks.bad id!.id",
            "tasks.bad id!.colour",
            "tasks.bad id!.command",
            "tasks.bad id!.mounts[0].source",
            "tasks.bad id!.mounts[0].target",
            "tasks.bad id!.outputs[0].container",
            "tasks.bad id!.outputs[0].when",
            "tasks.bad id!.maxWallClockTime",
            "tasks.bad id!.retries",
        }

    def test_unknown_values_during_preview_are_pending_not_errors(self) -> None:
        news = task_set({"a": SPEC}, identityResourceId=UNKNOWN, containerUrls=UNKNOWN)
        assert BatchTaskSetProvider().check({}, news).failures == []

    def test_duplicate_ids_ignoring_case(self) -> None:
        result = BatchTaskSetProvider().check({}, task_set({"a": SPEC, "A": SPEC}))
        assert any("unique ignoring case" in f.reason for f in result.failures)

    def test_floats_from_the_wire_become_integers(self) -> None:
        result = BatchTaskSetProvider().check({}, task_set({"a": {**SPEC, "retries": 2.0}}))
        assert result.failures == []
        stored = json.loads(result.inputs["tasks"]["a"])
        assert stored["retries"] == 2
        assert isinstance(stored["retries"], int)

    def test_set_stores_each_spec_as_canonical_json(self) -> None:
        reordered = dict(reversed(list(SPEC.items())))
        first = BatchTaskSetProvider().check({}, task_set({"a": SPEC})).inputs["tasks"]["a"]
        again = BatchTaskSetProvider().check({}, task_set({"a": reordered})).inputs["tasks"]["a"]
        assert first == again == json.dumps(SPEC, sort_keys=True, separators=(",", ":"))
        assert BatchTaskSetProvider().tasks_of({"tasks": {"a": first}}) == {"a": SPEC}

    def test_endpoint_must_be_https(self) -> None:
        assert checks.endpoint_problems("http://acct.batch.azure.com")[0][0] == "endpoint"


class TestTaskResourceDiff:
    def test_single_task_replaces_unless_constraints_only(self) -> None:
        provider = BatchTaskProvider()
        olds = {**shared(), "taskId": "a", "task": SPEC}
        replaced = provider.diff("weekly/a", olds, {**olds, "task": {**SPEC, "image": "new"}})
        assert replaced.replaces == ["task"] and replaced.delete_before_replace
        updated = provider.diff("weekly/a", olds, {**olds, "task": {**SPEC, "retries": 4}})
        assert updated.changes and updated.replaces == []

    def test_set_never_replaces_itself_for_task_changes(self) -> None:
        provider = BatchTaskSetProvider()
        olds = task_set({"a": SPEC})
        result = provider.diff("weekly/forecast", olds, task_set({"b": SPEC}))
        assert result.changes and result.replaces == []

    def test_moving_to_another_job_replaces_the_resource(self) -> None:
        provider = BatchTaskSetProvider()
        result = provider.diff(
            "weekly/forecast", task_set({"a": SPEC}), task_set({"a": SPEC}, jobId="monthly")
        )
        assert result.replaces == ["jobId"] and result.delete_before_replace


def test_chunks_respect_count_and_size_limits() -> None:
    small = [{"id": f"t{i}", "commandLine": "x"} for i in range(250)]
    assert [len(chunk) for chunk in chunk_bodies(small)] == [100, 100, 50]
    big = [{"id": f"t{i}", "commandLine": "x" * 300_000} for i in range(7)]
    chunks = list(chunk_bodies(big))
    # The limit holds for the bytes sent, and the size the chunker counts is theirs.
    sent = [collection_body([task.data for task in chunk]) for chunk in chunks]
    assert all(len(payload) < 1_000_000 for payload in sent)
    assert [len(payload) for payload in sent] == [
        collection_size(len(chunk), sum(len(task.data) for task in chunk)) for chunk in chunks
    ]
    assert [task.body() for chunk in chunks for task in chunk] == big
    assert json.loads(sent[0])["value"] == big[: len(chunks[0])]

    # Three bodies whose request would be exactly 1,000,000 bytes go as two requests; one byte
    # less and they go as one.
    def bodies(total: int) -> list[dict[str, Any]]:
        envelope = len(collection_body([b"", b"", b""]))
        empty = len(json.dumps({"id": "t0", "commandLine": ""}, separators=(",", ":")))
        sizes = [(total - envelope) // 3] * 3
        sizes[0] += (total - envelope) - sum(sizes)
        return [
            {"id": f"t{i}", "commandLine": "x" * (size - empty)} for i, size in enumerate(sizes)
        ]

    assert len(collection_body([t.data for t in next(chunk_bodies(bodies(999_999)))])) == 999_999
    assert [len(chunk) for chunk in chunk_bodies(bodies(999_999))] == [3]
    assert [len(chunk) for chunk in chunk_bodies(bodies(1_000_000))] == [2, 1]


def test_body_matching_ignores_service_fields_and_duration_spelling() -> None:
    declared = {
        "id": "a",
        "constraints": {"maxWallClockTime": "PT60M"},
        "outputFiles": [{"uploadOptions": {"uploadCondition": "taskCompletion"}}],
    }
    live = {
        "id": "a",
        "state": "active",
        "url": "https://x",
        "constraints": {"maxWallClockTime": "PT1H", "retentionTime": "P7D"},
        "outputFiles": [{"uploadOptions": {"uploadCondition": "taskcompletion"}}],
    }
    assert body_matches(declared, live)
    assert not body_matches({**declared, "commandLine": "other"}, {**live, "commandLine": "x"})


def test_task_body_uses_mount_dir_identity_and_masks_missing_secrets() -> None:
    context = TaskContext(
        job_id="weekly",
        identity_resource_id=IDENTITY,
        container_urls=URLS,
        mounts_dir="/mnt/batch/tasks/fsmounts",
        display_name="forecast",
    )
    body = build_task_body(
        "flu-ca",
        {
            **SPEC,
            "secretEnv": {"TOKEN": "apiToken"},
            "logs": {"container": "logs", "subdir": "weekly"},
        },
        context,
    )
    assert body["containerSettings"]["containerRunOptions"] == (
        "--mount type=bind,source=/mnt/batch/tasks/fsmounts/forecasts,target=/out"
    )
    assert body["environmentSettings"] == [{"name": "TOKEN", "value": "[secret]"}]
    assert body["outputFiles"][-1]["destination"]["container"] == {
        "containerUrl": URLS["logs"],
        "path": "weekly/flu-ca",
        "identityReference": {"resourceId": IDENTITY},
    }
    assert body["constraints"] == {"maxWallClockTime": "PT1H", "maxTaskRetryCount": 2}
    assert body["displayName"] == "forecast"


def test_providers_take_the_same_durations_as_the_stack_file() -> None:
    # Years and months have no fixed length, so Batch cannot hold them; the config says so too.
    for bad in ("P1M", "P1Y", "PT", "1h"):
        assert checks.duration_problems(bad, "retention"), bad
    for good in ("PT1H", "P7D", "P1DT2H", "PT1.5S", "P10675199DT2H48M5.4775807S"):
        assert checks.duration_problems(good, "retention") == [], good
