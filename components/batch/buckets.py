"""Buckets: how a task set stores its tasks in a few JSON texts (pure, no I/O).

The engine hands a resource's inputs to every Check, Diff and Update as protobuf values, and
turning a map of 12,500 entries into Python and back costs far more than the diff itself. A set
therefore keeps its tasks in at most BUCKET_COUNT JSON texts, each task in the bucket a stable
hash of its lower-case id picks (another part of the hash than the shard's), so:

- a task keeps its bucket whatever other tasks the set has, and a change to one task changes
  the text of one bucket: a diff compares 256 strings and decodes only the buckets that differ;
- Pulumi's own diff display decodes JSON text, so a preview still names the task that changed,
  inside its bucket.

A bucket's key is `#` and two hex digits; no Batch task id can hold `#`, so a map keyed this way
cannot be a set stored one entry per task (the layout of sets made before buckets).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

BUCKET_COUNT = 256
BUCKET_PREFIX = "#"
# The byte of the id's SHA-256 that picks the bucket: shards take the low bits of the first 8.
_BUCKET_BYTE = 8
_BUCKET_KEYS = frozenset(f"{BUCKET_PREFIX}{byte:02x}" for byte in range(BUCKET_COUNT))


class BucketError(ValueError):
    """A stored bucket that cannot be read: its key and what is wrong with it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key!r}: {reason}")
        self.key = key
        self.reason = reason


def bucket_of(task_id: str) -> str:
    """Return the key of the bucket a task belongs to (`#00` to `#ff`).

    Parameters
    ----------
    task_id
        The task id (compared ignoring case, as Batch does).

    Returns
    -------
    str
        `#` and the hex of one byte of the SHA-256 of the lower-case id: the same in every
        process and Python version.
    """
    digest = hashlib.sha256(task_id.lower().encode("utf-8")).digest()
    return f"{BUCKET_PREFIX}{digest[_BUCKET_BYTE]:02x}"


def is_bucketed(tasks: Mapping[str, Any]) -> bool:
    """Tell whether a set's stored `tasks` map holds buckets rather than one entry per task."""
    return any(key.startswith(BUCKET_PREFIX) for key in tasks)


def pack(values: Mapping[str, Any]) -> dict[str, str]:
    """Return tasks (id -> stored value) as bucket key -> canonical JSON text, keys sorted.

    Parameters
    ----------
    values
        Task id -> what the set stores for the task (its axis values, or its whole spec).

    Returns
    -------
    dict[str, str]
        Only the buckets that hold a task; each text is `{id: value}` with keys sorted at every
        level and no spaces, so equal tasks always make equal text.

    Raises
    ------
    ValueError
        If a value holds something JSON cannot carry exactly (NaN or infinity).
    """
    grouped: dict[str, dict[str, Any]] = {}
    for task_id, value in values.items():
        grouped.setdefault(bucket_of(task_id), {})[task_id] = value
    return {
        key: json.dumps(grouped[key], sort_keys=True, separators=(",", ":"), allow_nan=False)
        for key in sorted(grouped)
    }


def unpack(buckets: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Return the tasks held in buckets as task id -> stored value.

    Parameters
    ----------
    buckets
        Bucket key -> JSON text, as `pack` makes them.
    keys
        The buckets to read (those absent are skipped); default: every bucket.

    Returns
    -------
    dict[str, Any]
        Task id -> value, bucket by bucket.

    Raises
    ------
    BucketError
        If a key is not a bucket key, a text is not a JSON object, or a task sits in a bucket
        its id does not hash to (the state was edited, or written by something else).
    """
    tasks: dict[str, Any] = {}
    for key in buckets if keys is None else keys:
        if key not in buckets:
            continue
        text = buckets[key]
        if key not in _BUCKET_KEYS:
            raise BucketError(key, f"is not a bucket key ({BUCKET_PREFIX}00 to {BUCKET_PREFIX}ff)")
        try:
            held = json.loads(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):
            held = None
        if not isinstance(held, dict):
            raise BucketError(key, "must be the JSON text of an object of task id -> task")
        if misplaced := sorted(task_id for task_id in held if bucket_of(task_id) != key):
            shown = ", ".join(repr(task_id) for task_id in misplaced[:5])
            raise BucketError(key, f"holds task(s) that belong to other buckets: {shown}")
        tasks.update(held)
    return tasks


def differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Return the keys of the buckets whose text differs between two stored maps, or that one
    side has alone."""
    if old == new:
        return []  # the no-op run: one comparison in C
    changed = [key for key, text in new.items() if old.get(key) != text]
    return changed + [key for key in old if key not in new]
