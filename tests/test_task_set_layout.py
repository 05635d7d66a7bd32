"""A task set's state layout through Pulumi's real provider host: the sweep's template spec once,
each task's axis values in buckets of JSON text; the earlier layouts (one text per task: a whole
spec, or axis values) still read."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pytest

from batchapi import BatchApiDouble
from batchtasks.batch import buckets
from batchtasks.batch.tasks import encode_spec, set_specs, stored_tasks, with_stored_tasks
from batchtasks.config import parse_stack_config
from batchtasks.program import declare_stack
from bench.provider import registrations as bench_registrations
from bench.provider import stored_bytes_per_task
from providerhost import ProviderHost, Registration, capture_registrations, strip_secrets
from tests import test_provider_host as provider_host
from tests.state_contract import SECRET_VALUE
from tests.test_provider_host import (
    JOB_ID,
    POOL_ID,
    SWEEP_IDS,
    checked,
    created,
    requests,
    writes,
)

# The provider host and the program's registrations, shared with the provider host tests.
host = provider_host.host
registered = provider_host.registered

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "state-contract-0.2.0.json"


def with_template(inputs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A set's inputs with fields of its template spec changed (every task's)."""
    return {**inputs, "template": encode_spec({**json.loads(inputs["template"]), **changes})}


def added_ids(api: BatchApiDouble) -> list[str]:
    """The ids of the tasks the add-collection requests carried, in order."""
    return [
        task["id"]
        for request in api.requests
        if request.route == "POST addtaskcollection"
        for task in json.loads(request.body)["value"]
    ]


def with_values(inputs: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A set's inputs with some tasks' stored values set (axis values, or a whole spec)."""
    return with_stored_tasks(inputs, {**stored_tasks(inputs), **values})


def without_task(inputs: dict[str, Any], task_id: str) -> dict[str, Any]:
    """A set's inputs without one task."""
    kept = {key: value for key, value in stored_tasks(inputs).items() if key != task_id}
    return with_stored_tasks(inputs, kept)


def whole_specs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The same set as 0.2.0 stored it: no template, every task's whole spec as JSON text."""
    layout = {key: value for key, value in inputs.items() if key != "template"}
    return {
        **layout,
        "tasks": {task_id: encode_spec(spec) for task_id, spec in set_specs(inputs).items()},
    }


def axis_texts(inputs: dict[str, Any]) -> dict[str, Any]:
    """The same set as the first template layout stored it: each task's axis values as JSON
    text, keyed by task id."""
    texts = {task_id: encode_spec(values) for task_id, values in stored_tasks(inputs).items()}
    return {**inputs, "tasks": texts}


def test_a_set_stores_its_template_once_and_each_task_as_its_axis_values(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["TaskSet"]
    batch_api.add_job(JOB_ID, POOL_ID)
    inputs, state = created(host, reg)
    assert all(key.startswith("#") for key in state.outputs["tasks"])
    assert stored_tasks(state.outputs)["flu-ny"] == ["flu", "ny"]
    assert state.outputs["template"] == inputs["template"]
    stored = batch_api.tasks(JOB_ID)
    assert sorted(stored) == SWEEP_IDS
    assert stored["flu-ny"]["commandLine"] == "python -m model --disease flu --state ny"
    assert stored["flu-ny"]["outputFiles"][0]["destination"]["container"]["path"] == "flu/ny"
    requests(batch_api)

    refreshed = host.read(reg.urn, state.id, state.outputs, inputs)
    assert refreshed.outputs == state.outputs
    assert host.diff(reg.urn, state.id, state.outputs, inputs).changes is False

    # One task added (a new axis value would add a row of them; one is enough here).
    more = checked(host, reg, with_values(inputs, {"flu-wa": ["flu", "wa"]}), inputs)
    assert host.diff(reg.urn, state.id, state.outputs, more).changes is True
    state = host.update(reg.urn, state.id, state.outputs, more)
    assert added_ids(batch_api) == ["flu-wa"]
    assert writes(requests(batch_api)) == Counter({"POST addtaskcollection": 1})
    assert batch_api.tasks(JOB_ID)["flu-wa"]["commandLine"].endswith("--state wa")

    # One task removed.
    fewer = checked(host, reg, without_task(more, "covid-ca"), more)
    state = host.update(reg.urn, state.id, state.outputs, fewer)
    assert writes(requests(batch_api)) == Counter({"DELETE task": 1})
    assert "covid-ca" not in batch_api.tasks(JOB_ID)

    # Retries in the template: every task is updated in place, none replaced.
    retried = checked(host, reg, with_template(fewer, retries=4), fewer)
    assert host.diff(reg.urn, state.id, state.outputs, retried).changes is True
    state = host.update(reg.urn, state.id, state.outputs, retried)
    assert writes(requests(batch_api)) == Counter({"PUT task": 12})
    assert {
        task["constraints"]["maxTaskRetryCount"] for task in batch_api.tasks(JOB_ID).values()
    } == {4}

    # The image in the template: every task is replaced.
    rebuilt = checked(
        host, reg, with_template(retried, image="example.azurecr.io/model:2"), retried
    )
    change = host.diff(reg.urn, state.id, state.outputs, rebuilt)
    assert (change.changes, change.replaces) == (True, [])
    state = host.update(reg.urn, state.id, state.outputs, rebuilt)
    assert sorted(added_ids(batch_api)) == sorted(stored_tasks(rebuilt))
    assert writes(requests(batch_api)) == Counter({"DELETE task": 12, "POST addtaskcollection": 1})
    assert {
        task["containerSettings"]["imageName"] for task in batch_api.tasks(JOB_ID).values()
    } == {"example.azurecr.io/model:2"}

    host.delete(reg.urn, state.id, state.outputs)
    assert batch_api.tasks(JOB_ID) == {}


@pytest.mark.parametrize("layout", [whole_specs, axis_texts], ids=["0.2.0", "axis-texts"])
def test_state_in_an_earlier_layout_is_read_and_upgraded_without_a_request(
    host: ProviderHost,
    batch_api: BatchApiDouble,
    registered: dict[str, Registration],
    layout: Any,
) -> None:
    reg = registered["TaskSet"]
    batch_api.add_job(JOB_ID, POOL_ID)
    earlier, state = created(host, reg, layout(reg.inputs))
    assert sorted(state.outputs["tasks"]) == SWEEP_IDS  # one text per task
    assert set_specs(state.outputs)["flu-ny"]["command"].endswith("--state ny")
    requests(batch_api)

    news = checked(host, reg, reg.inputs, earlier)
    assert host.diff(reg.urn, state.id, state.outputs, news).changes is False
    # A refresh keeps the layout, also when a task went out of band.
    batch_api.delete_task_out_of_band(JOB_ID, "rsv-tx")
    refreshed = host.read(reg.urn, state.id, state.outputs, earlier)
    assert sorted(refreshed.outputs["tasks"]) == [t for t in SWEEP_IDS if t != "rsv-tx"]
    assert refreshed.outputs["tasks"]["flu-ny"] == state.outputs["tasks"]["flu-ny"]
    # `pulumi up` with a change elsewhere (a stored input) writes the new layout, and adds back
    # the task that went, and nothing else.
    moved = checked(host, reg, {**reg.inputs, "replaceRunningTasks": True}, earlier)
    assert host.diff(reg.urn, state.id, refreshed.outputs, moved).changes is True
    upgraded = host.update(reg.urn, state.id, refreshed.outputs, moved)
    assert added_ids(batch_api) == ["rsv-tx"]
    assert writes(requests(batch_api)) == Counter({"POST addtaskcollection": 1})
    assert all(key.startswith("#") for key in upgraded.outputs["tasks"])
    assert stored_tasks(upgraded.outputs)["flu-ny"] == ["flu", "ny"]
    # And a change to one task after the upgrade touches that task only.
    one = checked(host, reg, with_values(moved, {"flu-ny": ["flu", "nv"]}), moved)
    host.update(reg.urn, state.id, upgraded.outputs, one)
    assert added_ids(batch_api) == ["flu-ny"]
    assert batch_api.tasks(JOB_ID)["flu-ny"]["commandLine"].endswith("--state nv")


def test_the_0_2_0_state_diffs_as_no_change_against_the_new_layout(host: ProviderHost) -> None:
    contract = json.loads(FIXTURE.read_text())
    (recorded,) = [r for r in contract["resources"] if r["type"].endswith(":TaskSet")]
    assert "template" not in recorded["checkedInputs"]
    config = parse_stack_config(contract["stackSettings"], location="eastus")
    (now,) = [
        reg
        for reg in capture_registrations(
            lambda: declare_stack(config, lambda _key: pulumi.Output.secret(SECRET_VALUE)),
            project="batchtasks",
            stack="fixture",
        )
        if reg.type.endswith(":TaskSet")
    ]
    host.configure(contract["hostConfig"])
    # The recorded job id and endpoint stand where the engine would have the job's outputs.
    news = {
        key: value for key, value in strip_secrets(now.inputs).items() if not key.startswith("__")
    }
    news = {**recorded["inputs"], **news, "jobId": recorded["inputs"]["jobId"]}
    assert news["template"] and stored_tasks(news)["covid-ca"] == ["covid", "ca"]
    outcome = host.check(recorded["urn"], recorded["checkedInputs"], news)
    assert outcome.failures == []
    diff = host.diff(recorded["urn"], recorded["name"], recorded["checkedInputs"], outcome.inputs)
    assert (diff.changes, diff.replaces) == (False, [])


def test_check_refuses_a_template_marker_where_a_field_cannot_vary(
    host: ProviderHost, registered: dict[str, Registration]
) -> None:
    reg = registered["TaskSet"]
    marked = with_template(reg.inputs, image={"$t": ["example.azurecr.io/", 0]})
    outcome = host.check(reg.urn, {}, marked)
    assert [path for path, _reason in outcome.failures] == ["template.image"]
    short = with_values(reg.inputs, {"flu-ny": []})
    outcome = host.check(reg.urn, {}, short)
    assert [path for path, _reason in outcome.failures] == ["tasks.flu-ny"]
    assert "axis values" in outcome.failures[0][1]
    # A bad value rendered into a task is reported at that task, as the rule book says.
    bad_path = with_values(reg.inputs, {"flu-ny": ["flu", "../x"]})
    outcome = host.check(reg.urn, {}, bad_path)
    assert [path for path, _reason in outcome.failures] == ["tasks.flu-ny.outputs[0].path"]
    escape = with_values(reg.inputs, {"rsv-tx": ["rsv", "tx\u001b[2J"]})
    outcome = host.check(reg.urn, {}, escape)
    assert sorted(path for path, _reason in outcome.failures) == [
        "tasks.rsv-tx.command",
        "tasks.rsv-tx.outputs[0].path",
    ]


def test_the_bench_workload_stores_under_400_bytes_per_task() -> None:
    n = 1_000
    (reg,) = bench_registrations(n, "https://babench.eastus.batch.azure.com").sets
    inputs = stored_bytes_per_task(reg.inputs, n)["bytes_per_task"]
    # The outputs repeat the inputs (the engine hands Diff its old outputs).
    assert 2 * inputs < 400, inputs


def test_check_reports_a_bucket_it_cannot_read_at_its_key(
    host: ProviderHost, batch_api: BatchApiDouble, registered: dict[str, Registration]
) -> None:
    reg = registered["TaskSet"]
    stored = reg.inputs["tasks"]
    home = buckets.bucket_of("flu-ny")
    other = next(key for key in sorted(stored) if key != home)
    elsewhere = json.dumps({**json.loads(stored[other]), "flu-ny": ["flu", "ny"]})
    cases = {
        "#zz": ({**stored, "#zz": "{}"}, "is not a bucket key"),
        "flu-ny": ({**stored, "flu-ny": '["flu","ny"]'}, "is not a bucket key"),
        home: ({**stored, home: '["flu","ny"]'}, "JSON text of an object"),
        other: ({**stored, other: elsewhere}, "belong to other buckets: 'flu-ny'"),
    }
    for key, (tasks, reason) in cases.items():
        outcome = host.check(reg.urn, {}, {**reg.inputs, "tasks": tasks})
        assert [path for path, _reason in outcome.failures] == [f"tasks.{key}"], key
        assert reason in outcome.failures[0][1], outcome.failures
    assert batch_api.total_requests() == 0
