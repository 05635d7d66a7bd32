"""Typed result of a validated stack configuration, and the errors that stop one."""

from __future__ import annotations

import reprlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from batchtasks.config.sweep import SpecTemplate

# Longest repr quoted in a problem; a whole mis-typed section would drown the message.
MAX_SHOWN = 120


def _limited_repr() -> reprlib.Repr:
    # Bounded work whatever the value: a value shared through YAML aliases can stand for
    # billions of nodes, and repr() would build them all to show 120 characters.
    limited = reprlib.Repr()
    limited.maxlevel = 4
    limited.maxdict = limited.maxlist = limited.maxtuple = limited.maxset = 8
    limited.maxstring = limited.maxother = MAX_SHOWN + 2
    return limited


def shown(value: Any) -> str:
    """Return the repr of a bad value, shortened to MAX_SHOWN characters (bounded work)."""
    text = (
        repr(value)
        if isinstance(value, str | int | float | bool | None)
        else _limited_repr().repr(value)
    )
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the stack configuration.

    Attributes
    ----------
    path
        Key path of the offending setting, e.g. ``batchtasks:jobs[0].tasks[1].image``.
    message
        What is wrong with it.
    value
        Repr of the offending value, or None when the problem is a missing or unknown key
        (or a value that must not be shown, such as a secret).
    """

    path: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}: {self.value} {self.message}"


class ConfigError(Exception):
    """Every problem found in a stack configuration, one per line.

    Attributes
    ----------
    problems
        The problems, in the order of the stack file.
    """

    def __init__(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class ContainerConfig:
    """A blob container and whether tasks may write to it ("read" or "write")."""

    name: str
    access: str


@dataclass(frozen=True)
class StorageConfig:
    """The storage account, whether this stack creates it, and its containers."""

    account: str
    create: bool
    containers: tuple[ContainerConfig, ...]


@dataclass(frozen=True)
class IdentityConfig:
    """The user-assigned identity: a name to create, or the resource id of an existing one."""

    name: str | None
    resource_id: str | None


@dataclass(frozen=True)
class RegistryConfig:
    """A private container registry, pulled from with the identity (AcrPull on resource_id)."""

    server: str
    resource_id: str | None


@dataclass(frozen=True)
class PoolConfig:
    """The Batch pool that runs the jobs; created by this stack when `create` is true.

    `image` is the REST shape ``{publisher, offer, sku, version}``; `task_slots_per_node` is
    None when the stack file does not state it (a created pool then gets Batch's default, 1).
    """

    id: str
    create: bool
    vm_size: str | None
    max_nodes: int | None
    image: dict[str, str] | None
    node_agent_sku_id: str | None
    task_slots_per_node: int | None = None


@dataclass(frozen=True)
class BatchConfig:
    """The Batch account, its https endpoint and the pool."""

    account: str | None
    endpoint: str
    pool: PoolConfig


class SweepTasks(Sequence[dict[str, Any]]):
    """A sweep's tasks (TaskSpec dicts), each rendered from the template when it is read, so a
    sweep of a million tasks holds only their axis values.

    Parameters
    ----------
    template
        The sweep's compiled template spec.
    values
        Per task, its axis values as text.
    """

    def __init__(self, template: SpecTemplate, values: Sequence[Sequence[str]]) -> None:
        self.template = template
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self.template.render(texts) for texts in self.values[index]]
        return self.template.render(self.values[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        render = self.template.render
        return (render(texts) for texts in self.values)


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: its name, its template spec, each task's axis values and its shard count.

    Attributes
    ----------
    id
        The sweep's name.
    template
        The compiled template spec: the merged task spec, id included, whose strings made from
        placeholders are markers (see `batchtasks.config.sweep`).
    axes
        The matrix's axis names, in order.
    values
        Per task, in matrix order, its axis values as text.
    shards
        The shard count the stack file fixes (None: from the task count, see
        `batchtasks.batch.shards`).
    """

    id: str
    template: SpecTemplate
    axes: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    shards: int | None = None

    @property
    def tasks(self) -> SweepTasks:
        """The tasks the matrix expands to (TaskSpec dicts, rendered as read)."""
        return SweepTasks(self.template, self.values)

    def task_values(self) -> dict[str, tuple[str, ...]]:
        """Return task id -> its axis values as text, in matrix order."""
        render_id = self.template.render_key
        return {render_id("id", texts): texts for texts in self.values}

    def set_template(self) -> dict[str, Any]:
        """Return the template spec without the id, as a BatchTaskSet stores it."""
        spec: Mapping[str, Any] = self.template.spec
        return {key: value for key, value in spec.items() if key != "id"}


@dataclass(frozen=True)
class JobConfig:
    """A Batch job with its fully resolved tasks (TaskSpec dicts) and sweeps.

    `constraints` is the REST shape ``{maxWallClockTime, maxTaskRetryCount}`` or None.
    """

    id: str
    on_all_tasks_complete: str
    priority: int
    max_parallel_tasks: int
    constraints: dict[str, Any] | None
    replace_running_tasks: bool
    uses_task_dependencies: bool
    tasks: tuple[dict[str, Any], ...]
    sweeps: tuple[SweepConfig, ...]
    adopt: bool = False

    def task_ids(self) -> list[str]:
        """Return every declared task id in file order; a sweep's come from its id template
        alone, without rendering its tasks."""
        ids = [task["id"] for task in self.tasks]
        for sweep in self.sweeps:
            ids.extend(sweep.task_values())
        return ids

    def task_count(self) -> int:
        """Return how many tasks the job declares, without rendering a sweep's tasks."""
        return len(self.tasks) + sum(len(sweep.values) for sweep in self.sweeps)

    def images(self) -> set[str]:
        """Return the images the job's tasks run, without rendering a sweep's tasks: an image
        is never one of the fields a sweep varies per task, so a sweep's is its template's."""
        specs = [*self.tasks, *(sweep.template.spec for sweep in self.sweeps)]
        return {spec["image"] for spec in specs if spec.get("image")}


@dataclass(frozen=True)
class StackConfig:
    """A validated stack configuration."""

    resource_group: str
    location: str
    storage: StorageConfig
    identity: IdentityConfig
    registry: RegistryConfig | None
    batch: BatchConfig
    jobs: tuple[JobConfig, ...]
