"""Shards of a big sweep: the pure placement, the `shards` key, what the program registers, and
the set provider's check and diff of the shard input (no network)."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest

from batchapi import BatchApiDouble
from batchtasks.batch import buckets
from batchtasks.batch.shards import (
    SHARD_SIZE,
    shard_count,
    shard_name,
    shard_of,
    split,
)
from batchtasks.batch.tasks import BatchTaskSetProvider, stored_tasks
from batchtasks.config import ConfigError, json_schema, parse_stack_config
from batchtasks.preview.offline import run_offline
from batchtasks.program import declare_stack

TASK_SET = "pulumi-python:dynamic/batch:TaskSet"
COMPLETION = "pulumi-python:dynamic/batch:JobCompletion"


# --- the pure placement ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (1, 1),
        (SHARD_SIZE, 1),
        (SHARD_SIZE + 1, 2),
        (2 * SHARD_SIZE, 2),
        (2 * SHARD_SIZE + 1, 4),
        (30_000, 4),
        (1_000_000, 128),
    ],
)
def test_shard_count_is_the_smallest_power_of_two_that_keeps_shards_small(
    tasks: int, expected: int
) -> None:
    assert shard_count(tasks) == expected


def test_shard_count_takes_the_shard_size_as_a_parameter() -> None:
    assert [shard_count(n, size=10) for n in (10, 11, 21, 40, 41)] == [1, 2, 4, 4, 8]
    with pytest.raises(ValueError, match="size"):
        shard_count(5, size=0)


def test_shard_of_is_a_fixed_hash_of_the_lower_case_id() -> None:
    # Pinned: the first 8 bytes of SHA-256, masked. A change here moves tasks of live stacks.
    assert [shard_of(task_id, 1024) for task_id in ("covid-ca", "flu-ny", "rsv-tx", "a")] == [
        632,
        987,
        764,
        458,
    ]
    assert shard_of("RSV-TX", 1024) == shard_of("rsv-tx", 1024)
    assert shard_of("anything", 1) == 0
    with pytest.raises(ValueError, match="power of two"):
        shard_of("a", 3)


def test_a_new_axis_value_moves_no_task_between_shards() -> None:
    states = [f"s{number:02d}" for number in range(50)]
    before = {f"{d}-{s}": None for d in ("covid", "flu", "rsv") for s in states}
    after = {**before, **{f"{d}-s99": None for d in ("covid", "flu", "rsv")}}
    old_shards, new_shards = split(before, 8), split(after, 8)
    for index in range(8):
        assert set(old_shards[index]) <= set(new_shards[index])
    added = {task_id for shard in new_shards for task_id in shard} - set(before)
    assert added == {"covid-s99", "flu-s99", "rsv-s99"}


def test_split_places_every_task_exactly_once_in_declaration_order() -> None:
    tasks = {f"t{number}": number for number in range(1000)}
    parts = split(tasks, 4)
    assert sorted(task_id for part in parts for task_id in part) == sorted(tasks)
    assert all(list(part.values()) == sorted(part.values()) for part in parts)
    assert all(150 < len(part) < 350 for part in parts)  # a hash spreads them


def test_shard_zero_keeps_the_sweep_name_and_the_others_take_a_name_no_sweep_can() -> None:
    assert shard_name("weekly.grid", 0) == "weekly.grid"
    assert shard_name("weekly.grid", 3) == "weekly.grid.shard-3"


# --- the stack file's `shards` key -----------------------------------------------------------


def stack(tasks_per_axis: tuple[int, int] = (2, 3), **sweep_keys: Any) -> dict[str, Any]:
    """A one-job stack whose sweep has the given matrix size and extra keys."""
    first, second = tasks_per_axis
    return {
        "resourceGroup": "rg-test",
        "storage": {"account": "sttest", "containers": [{"name": "results"}]},
        "identity": {"name": "id-test"},
        "batch": {"endpoint": "https://batest.eastus.batch.azure.com", "pool": {"id": "pool-1"}},
        "jobs": [
            {
                "id": "weekly",
                "onAllTasksComplete": "terminateJob",
                "defaults": {"image": "example.azurecr.io/model:1"},
                "sweeps": [
                    {
                        "id": "grid",
                        "taskId": "{a}-{b}",
                        "matrix": {"a": list(range(first)), "b": list(range(second))},
                        "command": "python run.py {a} {b}",
                        **sweep_keys,
                    }
                ],
            }
        ],
    }


def test_shards_key_fixes_the_shard_count() -> None:
    config = parse_stack_config(stack(shards=4), location="eastus")
    assert config.jobs[0].sweeps[0].shards == 4
    assert parse_stack_config(stack(), location="eastus").jobs[0].sweeps[0].shards is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "must be a power of two (1, 2, 4, ... 1024)"),
        (0, "must be between 1 and 1024"),
        (2048, "must be between 1 and 1024"),
        ("4", "must be an integer"),
    ],
)
def test_a_bad_shards_value_names_its_key_path(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(stack(shards=value), location="eastus")
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("batchtasks:jobs[0].sweeps[0].shards", message)
    ]


def test_the_json_schema_publishes_the_shards_key() -> None:
    sweep = json_schema()["properties"]["batchtasks:jobs"]["items"]["properties"]["sweeps"]
    assert sweep["items"]["properties"]["shards"]["maximum"] == 1024


# --- what the program registers --------------------------------------------------------------


def registered(raw: dict[str, Any]) -> Any:
    config = parse_stack_config(raw, location="eastus")

    def program() -> None:
        declare_stack(config, lambda _key: pulumi.Output.secret("[secret]"))

    return run_offline(program)


def test_a_sweep_with_shards_registers_one_set_per_shard() -> None:
    run = registered(stack((10, 10), shards=4))
    sets = {resource["name"]: resource["inputs"] for resource in run.of_type(TASK_SET)}
    assert sorted(sets) == [
        "weekly.grid",
        "weekly.grid.shard-1",
        "weekly.grid.shard-2",
        "weekly.grid.shard-3",
    ]
    assert {inputs["setName"] for inputs in sets.values()} == {"weekly.grid"}
    assert sorted(inputs["shard"]["index"] for inputs in sets.values()) == [0, 1, 2, 3]
    assert {inputs["shard"]["count"] for inputs in sets.values()} == {4}
    held = [task_id for inputs in sets.values() for task_id in stored_tasks(inputs)]
    assert sorted(held) == sorted(f"{a}-{b}" for a in range(10) for b in range(10))
    for inputs in sets.values():
        index = inputs["shard"]["index"]
        assert all(shard_of(task_id, 4) == index for task_id in stored_tasks(inputs))


def test_the_completion_switch_waits_for_every_shard() -> None:
    from tests.test_program import declare

    _, mocks = declare(parse_stack_config(stack((10, 10), shards=4), location="eastus"))
    waits_for = {
        urn.rsplit("::", 1)[1] for urn in mocks.wiring["weekly.completion"]["dependencies"]
    }
    assert {shard_name("weekly.grid", index) for index in range(4)} <= waits_for


def test_a_small_sweep_stays_one_set_under_its_old_name() -> None:
    (only,) = registered(stack()).of_type(TASK_SET)
    assert only["name"] == "weekly.grid"
    assert only["inputs"]["shard"] == {"index": 0, "count": 1}


def test_past_12500_tasks_a_sweep_splits_in_two_without_a_shards_key() -> None:
    run = registered(stack((3, 4167)))  # 12,501 tasks
    sets = run.of_type(TASK_SET)
    assert sorted(resource["name"] for resource in sets) == ["weekly.grid", "weekly.grid.shard-1"]
    assert sum(len(stored_tasks(resource["inputs"])) for resource in sets) == 12_501


# --- the provider: check and diff of the shard input -----------------------------------------


def set_inputs(tasks: dict[str, Any], shard: dict[str, int] | None, **changes: Any) -> dict:
    props: dict[str, Any] = {
        "endpoint": "https://batest.eastus.batch.azure.com",
        "jobId": "weekly",
        "identityResourceId": "/subscriptions/s/id",
        "containerUrls": {},
        "mountsDir": "/mnt/batch/tasks/fsmounts",
        "secrets": {},
        "setName": "weekly.grid",
        "tasks": buckets.pack(tasks),
        **changes,
    }
    if shard is not None:
        props["shard"] = shard
    return props


def tasks_of_shard(index: int, count: int, total: int = 40) -> dict[str, Any]:
    every = {f"t-{number}": {"image": "img:1", "command": "run"} for number in range(total)}
    return split(every, count)[index]


def test_check_refuses_a_new_shard_count_and_says_what_to_write() -> None:
    provider = BatchTaskSetProvider()
    olds = set_inputs(tasks_of_shard(0, 1), None)  # state of 0.2.0: one set, no shard input
    news = set_inputs(tasks_of_shard(0, 2), {"index": 0, "count": 2})
    failures = provider.check(olds, news).failures
    assert [failure.property for failure in failures] == ["shard"]
    reason = failures[0].reason
    for part in ("'weekly.grid'", "over 1 task set", "over 2", "runs again", "`shards: 1`"):
        assert part in reason
    back = provider.check(news, set_inputs(tasks_of_shard(0, 1), {"index": 0, "count": 1}))
    assert "`shards: 2`" in back.failures[0].reason


def test_check_takes_the_same_count_and_an_empty_shard_of_several() -> None:
    provider = BatchTaskSetProvider()
    news = set_inputs(tasks_of_shard(1, 4), {"index": 1.0, "count": 4.0})  # floats: the wire
    assert provider.check(copy.deepcopy(news), news).failures == []
    assert provider.check({}, set_inputs({}, {"index": 3, "count": 4})).failures == []
    alone = provider.check({}, set_inputs({}, {"index": 0, "count": 1})).failures
    assert [failure.property for failure in alone] == ["tasks"]


def test_check_refuses_a_task_in_another_shard_and_a_bad_shard_input() -> None:
    provider = BatchTaskSetProvider()
    wrong = {**tasks_of_shard(0, 2), **dict(list(tasks_of_shard(1, 2).items())[:1])}
    (failure,) = provider.check({}, set_inputs(wrong, {"index": 0, "count": 2})).failures
    assert failure.property == "shard" and "do not belong to shard 0 of 2" in failure.reason
    for bad in ({"index": 0, "count": 3}, {"index": 4, "count": 4}, {"count": 2}):
        (failure,) = provider.check({}, set_inputs(tasks_of_shard(0, 1), bad)).failures
        assert failure.property == "shard", bad


def test_old_state_without_a_shard_diffs_as_no_change() -> None:
    provider = BatchTaskSetProvider()
    tasks = tasks_of_shard(0, 1)
    olds = set_inputs(tasks, None)
    assert provider.diff("id", olds, set_inputs(tasks, {"index": 0, "count": 1})).changes is False


def test_every_shard_has_its_own_resource_id() -> None:
    provider = BatchTaskSetProvider()
    ids = [provider.resource_id(set_inputs({}, {"index": index, "count": 4})) for index in range(4)]
    assert ids[0] == "weekly/weekly.grid" and len(set(ids)) == 4
    assert provider.resource_id(set_inputs({}, None)) == "weekly/weekly.grid"


def test_refresh_keeps_an_empty_shard_of_several_while_its_job_exists(
    batch_api: BatchApiDouble,
) -> None:
    # Dropping it from the state would leave the shard-count check without old inputs.
    batch_api.add_job("weekly", "pool")
    provider = BatchTaskSetProvider()
    empty = set_inputs({}, {"index": 3, "count": 4}, endpoint=batch_api.endpoint)
    read = provider.read("weekly/weekly.grid.shard-3", empty)
    assert (read.id, read.outs["tasks"]) == ("weekly/weekly.grid.shard-3", {})
    alone = set_inputs({"t-1": {"image": "img:1", "command": "run"}}, None)
    gone = provider.read("weekly/weekly.grid", {**alone, "endpoint": batch_api.endpoint})
    assert (gone.id, gone.outs) == ("", {})  # one set whose tasks all went leaves the state
    batch_api.delete_job_out_of_band("weekly")
    assert provider.read("weekly/weekly.grid.shard-3", empty).id == ""
