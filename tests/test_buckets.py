"""Buckets: where a task set stores each task, and that its texts change only where tasks do."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchtasks.batch import buckets
from batchtasks.batch.shards import shard_of

TASK_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
VALUES = st.lists(st.text(max_size=8), max_size=3)


def test_a_task_keeps_its_bucket_in_every_process_and_ignoring_case() -> None:
    # Pinned: the bucket of a task is part of the state layout (CHANGELOG).
    assert buckets.bucket_of("flu-ca") == buckets.bucket_of("FLU-CA") == "#16"
    assert buckets.bucket_of("r0-0") == "#d2"


@given(st.dictionaries(TASK_IDS, VALUES, max_size=40))
def test_unpack_reads_back_what_pack_stores(values: dict[str, list[str]]) -> None:
    packed = buckets.pack(values)
    assert buckets.unpack(packed) == values
    assert len(packed) <= min(len(values), buckets.BUCKET_COUNT)
    assert values == {} or buckets.is_bucketed(packed)


@given(st.dictionaries(TASK_IDS, VALUES, min_size=1, max_size=40), TASK_IDS, VALUES)
def test_a_change_to_one_task_changes_one_bucket_whatever_the_order(
    values: dict[str, list[str]], task_id: str, changed: list[str]
) -> None:
    reordered = dict(reversed(list(values.items())))
    assert buckets.pack(reordered) == buckets.pack(values)
    old, new = buckets.pack(values), buckets.pack({**values, task_id: changed})
    expected = [] if values.get(task_id) == changed else [buckets.bucket_of(task_id)]
    assert buckets.differing(old, new) == expected


def test_the_buckets_of_one_shard_spread_over_every_bucket() -> None:
    # The shard takes the low bits of the hash's first 8 bytes, the bucket another byte:
    # each of 4 shards of 40,000 tasks still fills all 256 buckets, about evenly.
    ids = [f"r{a}-{b}" for a in range(200) for b in range(200)]
    shard = [task_id for task_id in ids if shard_of(task_id, 4) == 0]
    packed = buckets.pack({task_id: ["x"] for task_id in shard})
    sizes = [len(json.loads(text)) for text in packed.values()]
    assert len(packed) == buckets.BUCKET_COUNT
    assert max(sizes) < 2 * len(shard) / buckets.BUCKET_COUNT


def test_differing_names_buckets_on_one_side_only() -> None:
    old = buckets.pack({"flu-ca": ["flu", "ca"]})
    new = buckets.pack({"flu-ny": ["flu", "ny"]})
    assert sorted(buckets.differing(old, new)) == sorted([*old, *new])
    assert buckets.unpack(old, buckets.differing(old, new)) == {"flu-ca": ["flu", "ca"]}


@pytest.mark.parametrize(
    ("buckets_map", "key", "reason"),
    [
        ({"#1": "{}"}, "#1", "is not a bucket key"),
        ({"#16": "not json"}, "#16", "JSON text of an object"),
        ({"#16": '["flu"]'}, "#16", "JSON text of an object"),
        ({"#16": None}, "#16", "JSON text of an object"),
        ({"#16": '{"flu-ny": []}'}, "#16", "belong to other buckets: 'flu-ny'"),
        ({"#16": "[" * 100_000}, "#16", "JSON text of an object"),
    ],
)
def test_unpack_names_the_bucket_it_cannot_read(
    buckets_map: dict[str, str], key: str, reason: str
) -> None:
    with pytest.raises(buckets.BucketError) as raised:
        buckets.unpack(buckets_map)
    assert (raised.value.key, reason in raised.value.reason) == (key, True)


def test_pack_refuses_what_json_cannot_carry_exactly() -> None:
    with pytest.raises(ValueError):
        buckets.pack({"flu-ca": {"retries": float("nan")}})
