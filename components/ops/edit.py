"""The stack-file edit that reruns a completed job: the same job under a new id. Pure text."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

_SUFFIX = re.compile(r"^(.*)-(\d+)$")


def next_job_id(job_id: str, taken: Collection[str] = ()) -> str:
    """Return a new id for a job: ``-2`` appended, or its trailing number increased.

    Parameters
    ----------
    job_id
        The completed job's id.
    taken
        Ids already used by the stack's jobs (compared ignoring case).

    Returns
    -------
    str
        An id of at most 64 characters that no job in `taken` has.
    """
    used = {job.lower() for job in taken} | {job_id.lower()}
    match = _SUFFIX.match(job_id)
    base, number = (match.group(1), int(match.group(2)) + 1) if match else (job_id, 2)
    while True:
        suffix = f"-{number}"
        candidate = base[: 64 - len(suffix)] + suffix
        if candidate.lower() not in used:
            return candidate
        number += 1


def _jobs_block(lines: list[str]) -> tuple[int, str] | None:
    """Return the index of the `batchtasks:jobs:` line and the indent of its items."""
    for index, line in enumerate(lines):
        if re.match(r"^\s*batchtasks:jobs:\s*(#.*)?$", line):
            for item in lines[index + 1 :]:
                found = re.match(r"^(\s*)- ", item)
                if found:
                    return index, found.group(1)
                if item.strip() and not item.strip().startswith("#"):
                    break
            return None
    return None


def rename_job(text: str, job_id: str, new_id: str) -> str | None:
    """Return the stack file text with one job's id changed, or None when it cannot be found.

    Only a job's own ``id:`` line (an item of ``batchtasks:jobs:``) changes; task ids are left
    alone even when one equals the job id.

    Parameters
    ----------
    text
        The stack file.
    job_id
        The job to rename.
    new_id
        Its new id.

    Returns
    -------
    str | None
        The edited text.
    """
    lines = text.splitlines(keepends=True)
    block = _jobs_block(lines)
    if block is None:
        return None
    start, indent = block
    quoted = rf"(['\"]?){re.escape(job_id)}\2"
    own_id = [
        re.compile(rf"^({re.escape(indent)}- +id: *){quoted}(\s*(#.*)?)$"),
        re.compile(rf"^({re.escape(indent)}  +id: *){quoted}(\s*(#.*)?)$"),
    ]
    in_item = False
    for index in range(start + 1, len(lines)):
        line = lines[index].rstrip("\r\n")
        ending = lines[index][len(line) :]
        if (
            line.strip()
            and not line.startswith(indent + " ")
            and not line.startswith(indent + "-")
            and not line.strip().startswith("#")
        ):
            break  # the jobs block ended
        if line.startswith(indent + "-"):
            in_item = True
        item_start = own_id[0].match(line)
        field = own_id[1].match(line) if in_item else None
        match = item_start or field
        # A field line counts only at the item's own key indent (two more than the dash).
        if (
            field
            and not item_start
            and len(field.group(1)) - len(field.group(1).lstrip()) != (len(indent) + 2)
        ):
            match = None
        if match:
            lines[index] = (
                f"{match.group(1)}{match.group(2)}{new_id}{match.group(2)}{match.group(3)}{ending}"
            )
            return "".join(lines)
    return None


def edit_diff(text: str, edited: str, path: str) -> str:
    """Return a unified diff of a stack-file edit, for the user to apply."""
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            edited.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
            n=2,
        )
    )
