"""Which stack a Batch job belongs to, recorded in the job's own metadata.

`pulumi import` cannot import dynamic-provider resources (pulumi/pulumi#16175), so a job that
already exists is taken over by adoption instead: the job carries its owner (project, stack,
resource name) in Batch job metadata from the moment it is created, and a create that meets an
existing job adopts it only when it names this stack, or when the stack file says `adopt: true`.
Nothing here calls the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Metadata names this project writes on a job; any other metadata entry is left as found.
PREFIX = "batchtasks-"
PROJECT, STACK, RESOURCE = f"{PREFIX}project", f"{PREFIX}stack", f"{PREFIX}resource"
# Set on a job this stack took over rather than created: tasks already in it are not ours.
ADOPTED = f"{PREFIX}adopted"
# Set when the job's BatchJobCompletion is deleted (the job is going, or being replaced): from
# then on deleting its last incomplete tasks loses nothing that would be added back.
RELEASED = f"{PREFIX}completion-released"


def owner_entries(owner: Mapping[str, Any], *, adopted: bool = False) -> dict[str, str]:
    """Return the metadata entries naming a job's owner.

    Parameters
    ----------
    owner
        The BatchJob's `owner` input: project, stack and resource (its Pulumi name).
    adopted
        Whether the job was taken over rather than created.

    Returns
    -------
    dict[str, str]
        Metadata name -> value.
    """
    entries = {
        PROJECT: str(owner.get("project", "")),
        STACK: str(owner.get("stack", "")),
        RESOURCE: str(owner.get("resource", "")),
    }
    if adopted:
        entries[ADOPTED] = "true"
    return entries


def as_dict(metadata: Iterable[Any] | None) -> dict[str, str]:
    """Return a job's metadata list (REST `[{name, value}]` or SDK models) as name -> value."""
    found: dict[str, str] = {}
    for item in metadata or ():
        name = item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None)
        value = item.get("value") if isinstance(item, Mapping) else getattr(item, "value", None)
        if name:
            found[str(name)] = str(value or "")
    return found


def as_list(entries: Mapping[str, str]) -> list[dict[str, str]]:
    """Return name -> value as the REST metadata list, sorted by name."""
    return [{"name": name, "value": value} for name, value in sorted(entries.items())]


def names_stack(metadata: Mapping[str, str], owner: Mapping[str, Any]) -> bool:
    """Tell whether a job's metadata names this project and stack as its owner."""
    return (
        bool(metadata.get(STACK))
        and metadata.get(PROJECT) == owner.get("project")
        and metadata.get(STACK) == owner.get("stack")
    )


def created_by_stack(metadata: Mapping[str, str], owner: Mapping[str, Any]) -> bool:
    """Tell whether this stack created the job (named and not adopted): every task in it that
    carries a resource's marker was added by that resource."""
    return names_stack(metadata, owner) and metadata.get(ADOPTED) != "true"


def describe(metadata: Mapping[str, str]) -> str:
    """Return who owns a job, for messages."""
    if not metadata.get(STACK):
        return "no batchtasks owner recorded (made by another tool or script)"
    return (
        f"owned by project {metadata.get(PROJECT)!r}, stack {metadata.get(STACK)!r}, "
        f"resource {metadata.get(RESOURCE)!r}"
    )
