"""Shards: how a big sweep splits over several BatchTaskSet resources (pure, no I/O).

One resource carries its old inputs, old outputs and new inputs in every Diff and Update, and
Pulumi caps one message at 400 MiB, so a sweep past about 12,500 tasks is split over K task
sets, K a power of two. Each task goes to the shard a stable hash of its lower-case id picks
(Batch ids are unique ignoring case), so a new axis value adds tasks without moving any other
task between resources; K itself is fixed once a sweep exists (the providers' check refuses a
change, since moved tasks would be deleted and added again: rerun).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, TypeVar

from batchtasks import rules

# Most tasks one shard holds when the sweep does not fix its shard count.
SHARD_SIZE = 12_500
SHARD_SUFFIX = ".shard-"

Spec = TypeVar("Spec")


def shard_count(task_count: int, size: int = SHARD_SIZE) -> int:
    """Return the shard count of a sweep: the smallest power of two K with ceil(N/K) <= size.

    Parameters
    ----------
    task_count
        How many tasks the sweep has.
    size
        Most tasks per shard.

    Returns
    -------
    int
        K: 1 up to `size` tasks, 2 up to twice that, and so on.

    Raises
    ------
    ValueError
        If size is not positive.
    """
    if size < 1:
        raise ValueError(f"size: {size!r} must be at least 1")
    count = 1
    while -(-task_count // count) > size:
        count *= 2
    return count


def shard_of(task_id: str, count: int) -> int:
    """Return the shard (0 to count-1) a task belongs to.

    The first 8 bytes of the SHA-256 of the lower-case id, masked by count-1: the same in every
    process and Python version (never `hash()`, which is salted per process), and a task keeps
    its shard whatever other tasks the sweep has.

    Parameters
    ----------
    task_id
        The task id (compared ignoring case, as Batch does).
    count
        The sweep's shard count, a power of two.

    Returns
    -------
    int
        The shard index.

    Raises
    ------
    ValueError
        If count is not a power of two.
    """
    if count < 1 or count & (count - 1):
        raise ValueError(f"count: {count!r} must be a power of two")
    digest = hashlib.sha256(task_id.lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & (count - 1)


def shard_name(set_name: str, index: int) -> str:
    """Return the resource name of a shard: shard 0 keeps the sweep's own `<job>.<sweep>` (so
    stacks made before sharding keep their resource), shard i > 0 is `<job>.<sweep>.shard-<i>`,
    which no task or sweep can take (Batch ids have no dots)."""
    return set_name if index == 0 else f"{set_name}{SHARD_SUFFIX}{index}"


def split(tasks: Mapping[str, Spec], count: int) -> list[dict[str, Spec]]:
    """Return a sweep's tasks (id -> spec) split into `count` shards, in declaration order.

    Parameters
    ----------
    tasks
        Task id -> spec.
    count
        The shard count, a power of two.

    Returns
    -------
    list[dict]
        One map per shard, index i holding the tasks with shard_of(id) == i.
    """
    shards: list[dict[str, Spec]] = [{} for _ in range(count)]
    for task_id, spec in tasks.items():
        shards[shard_of(task_id, count)][task_id] = spec
    return shards


def shard_problem(value: Any) -> str | None:
    """Say what is wrong with a task set's `shard` input (None, or {index, count})."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"index", "count"}:
        return "must be {index, count}"
    count, index = value["count"], value["index"]
    if problem := rules.shard_count_problem(count):
        return f"count {problem}"
    if rules.Range("shard index", 0, int(count) - 1).problem(index):
        return f"index must be an integer from 0 to {int(count) - 1}"
    return None


def shard_input(value: Any) -> tuple[int, int]:
    """Return (index, count) from a task set's `shard` input; state without it (a set made
    before sharding) is shard 0 of 1. Integers may arrive as floats over the wire."""
    if not isinstance(value, Mapping):
        return 0, 1
    index, count = value.get("index", 0), value.get("count", 1)
    return int(index or 0), int(count or 1)
