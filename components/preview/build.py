"""The offline preview of a stack: run the program under mocks and collect what it declares.

The program is the real one (`declare_stack`); only the engine is mocked. Secrets are never read:
every secret the program asks for is the placeholder `[secret]`, itself a Pulumi secret, and
anything the mocks receive as a secret is shown as the placeholder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from batchtasks.batch.diff import SET_SPEC_INPUTS
from batchtasks.batch.spec import SECRET_PLACEHOLDER, build_job_body
from batchtasks.batch.tasks import (
    TaskBodies,
    set_specs,
    spec_template,
    stored_tasks,
    task_context,
)
from batchtasks.batch.template import TemplateBodyBuilder
from batchtasks.config import StackConfig
from batchtasks.preview.offline import DYNAMIC_PREFIX, JOB_TYPE, PreviewMocks, run_offline
from batchtasks.program import NAMESPACE, declare_stack
from batchtasks.pulumi_compat import is_secret_value, unwrap_secret_value

TASK_TYPE = f"{DYNAMIC_PREFIX}batch:Task"
TASK_SET_TYPE = f"{DYNAMIC_PREFIX}batch:TaskSet"
COMPLETION_TYPE = f"{DYNAMIC_PREFIX}batch:JobCompletion"
# Pickled provider code: nothing a reviewer reads.
HIDDEN_INPUTS = ("__provider",)
# Inputs every task resource of a job shares, as `plan_tasks` takes them.
SHARED_TASK_INPUTS = (
    "jobId",
    "endpoint",
    "identityResourceId",
    "containerUrls",
    "mountsDir",
    "registryServer",
    "replaceRunningTasks",
)
# Order of a job's resources after the job itself.
_BATCH_ORDER = {JOB_TYPE: 0, TASK_TYPE: 1, TASK_SET_TYPE: 2, COMPLETION_TYPE: 3}


@dataclass(frozen=True)
class TaskPreview:
    """One declared task: its spec as the program registered it and its REST body (empty
    when the preview was made without bodies)."""

    id: str
    spec: Mapping[str, Any]
    body: dict[str, Any]


@dataclass(frozen=True)
class JobPreview:
    """One job: its BatchJob inputs, its REST body as declared, and its tasks.

    Attributes
    ----------
    task_inputs
        Every task resource of the job merged: ``{"tasks": {id: spec}, "secrets": ...}`` plus
        the shared inputs, the shape `plan_tasks` compares.
    """

    id: str
    inputs: dict[str, Any]
    body: dict[str, Any]
    tasks: tuple[TaskPreview, ...]
    task_inputs: dict[str, Any]


@dataclass(frozen=True)
class StackPreview:
    """What the program declares for a stack, rendered without Azure.

    Attributes
    ----------
    stack
        The stack name.
    config
        The validated config the program ran with.
    resources
        Every registered resource as {"type", "name", "parent", "inputs"}: parent is the parent
        resource's name (None under the stack), inputs have secrets masked and no provider code.
    jobs
        The jobs, in the order of the stack file.
    with_bodies
        Whether each task's REST body was built (`TaskPreview.body`; empty otherwise).
    """

    stack: str
    config: StackConfig
    resources: tuple[dict[str, Any], ...]
    jobs: tuple[JobPreview, ...]
    with_bodies: bool = False

    def job(self, job_id: str) -> JobPreview | None:
        """Return the job with this id, ignoring case as Batch does, or None."""
        return next((job for job in self.jobs if job.id.lower() == job_id.lower()), None)


def placeholder_secret(_key: str) -> pulumi.Output[str]:
    """Stand in for a secret config value: the preview never decrypts one."""
    return pulumi.Output.secret(SECRET_PLACEHOLDER)


def _mask(value: Any) -> Any:
    """Replace every leaf of a value with the secret placeholder, keeping its shape."""
    if isinstance(value, Mapping):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return SECRET_PLACEHOLDER


def clean_inputs(value: Any) -> Any:
    """Return recorded inputs as a reviewer reads them.

    Parameters
    ----------
    value
        Inputs as the mocks received them.

    Returns
    -------
    Any
        The same shape with secrets masked as `[secret]` and whole-number floats (the wire
        format's integers) as ints.
    """
    if is_secret_value(value):
        return _mask(unwrap_secret_value(value))
    if isinstance(value, Mapping):
        # Sorted: maps reach the mocks in no fixed order, and a preview must not churn.
        return {key: clean_inputs(value[key]) for key in sorted(value) if key not in HIDDEN_INPUTS}
    if isinstance(value, list | tuple):
        return [clean_inputs(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _declared_ids(config: StackConfig, job_id: str) -> list[str]:
    """Return the job's task ids in the order of the stack file."""
    job = next((job for job in config.jobs if job.id == job_id), None)
    return job.task_ids() if job is not None else []


def _resource_order(resources: list[dict[str, Any]], job_ids: list[str]) -> list[dict[str, Any]]:
    """Order resources the same way on every run: registration order depends on threads.

    Storage and the other Azure resources first, then each job (in stack file order) with its
    tasks and completion; children follow their parent, sorted by name.
    """
    job_rank = {job_id.lower(): index for index, job_id in enumerate(job_ids)}

    def top_key(resource: dict[str, Any]) -> tuple[int, int, str]:
        rank = _BATCH_ORDER.get(resource["type"])
        if rank is None:
            return -1, 0, resource["name"]
        job_id = str(resource["inputs"].get("jobId", "")).lower()
        return job_rank.get(job_id, len(job_rank)), rank, resource["name"]

    urns = {resource["urn"] for resource in resources}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for resource in resources:
        parent = resource["parent"] if resource["parent"] in urns else None
        children.setdefault(parent, []).append(resource)
    ordered: list[dict[str, Any]] = []

    def visit(parent: str | None) -> None:
        kids = children.get(parent, [])
        kids.sort(key=top_key if parent is None else (lambda r: (r["name"], r["type"])))
        for kid in kids:
            ordered.append(kid)
            visit(kid["urn"])

    visit(None)
    return ordered


def _job_preview(
    job_id: str,
    job_inputs: dict[str, Any],
    task_resources: list[dict[str, Any]],
    declared: Sequence[str],
    with_bodies: bool,
    check_bodies: bool,
) -> JobPreview:
    """Merge a job's task resources; build every REST body, or only check that each can be
    built, or neither."""
    found: dict[str, tuple[dict[str, Any], TaskBodies]] = {}
    merged: dict[str, Any] = {"tasks": {}, "secrets": {}}
    for resource in task_resources:
        inputs = resource["inputs"]
        for key in SHARED_TASK_INPUTS:
            merged.setdefault(key, inputs.get(key))
        merged["secrets"].update(inputs.get("secrets") or {})
        if resource["type"] == TASK_TYPE:
            specs = {inputs["taskId"]: inputs["task"]}
        else:
            specs = inputs.get("tasks") or {}  # decoded when recorded
        # A sweep's bodies are built from what the program registered (its axis values).
        stored = resource.get("stored") or {}
        template = spec_template(stored.get("template"))
        bodies = TaskBodies(
            TemplateBodyBuilder(task_context(inputs)),
            specs,
            template,
            stored_tasks(stored) if template is not None else None,
        )
        for task_id, spec in specs.items():
            found[task_id] = (spec, bodies)
    position = {task_id: index for index, task_id in enumerate(declared)}
    ordered = sorted(found, key=lambda task_id: (position.get(task_id, len(position)), task_id))
    tasks = []
    for task_id in ordered:
        spec, bodies = found[task_id]
        merged["tasks"][task_id] = spec
        body: dict[str, Any] = {}
        try:
            if with_bodies:
                body = json.loads(bodies.build_text(task_id))
            elif check_bodies:
                bodies.check(task_id)
        except ValueError as error:
            raise ValueError(f"job {job_id!r}, task {task_id!r}: {error}") from None
        tasks.append(TaskPreview(task_id, spec, body))
    try:
        job_body = build_job_body(job_inputs, create=False)
    except ValueError as error:
        raise ValueError(f"job {job_id!r}: {error}") from None
    return JobPreview(job_id, job_inputs, job_body, tuple(tasks), merged)


def _readable(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Return a resource's inputs as a reviewer reads them (see `clean_inputs`), with a task
    set's specs (stored in buckets of JSON text, whole or as axis values of its template) as
    objects, keyed by task id.

    The specs skip the generic walk: they are the program's canonical JSON (whole numbers as
    integers, no secret inside), read through the set's template, which then says no more;
    walking 100,000 specs value by value took longer than the rest of the preview together,
    and would copy the parts the template's tasks share.
    """
    inputs = resource["inputs"]
    tasks = inputs.get("tasks")
    if (
        resource["type"] != TASK_SET_TYPE
        or not isinstance(tasks, Mapping)
        or is_secret_value(tasks)
    ):
        return clean_inputs(inputs)
    readable = clean_inputs(
        {key: value for key, value in inputs.items() if key not in SET_SPEC_INPUTS}
    )
    specs = set_specs(inputs)
    readable["tasks"] = {
        task_id: spec if isinstance(spec, dict) else clean_inputs(spec)
        for task_id, spec in sorted(specs.items())
    }
    return dict(sorted(readable.items()))


def preview_stack(
    config: StackConfig, stack: str = "dev", *, with_bodies: bool = True, check_bodies: bool = True
) -> StackPreview:
    """Run the program for a config under mocks and collect its resources, jobs and tasks.

    Parameters
    ----------
    config
        The validated stack config.
    stack
        The stack name (it appears in URNs).
    with_bodies
        Build every task's REST body and keep it; the bodies are most of the time and memory
        a large sweep takes.
    check_bodies
        Without the bodies, still check that each task's body can be built (the same errors,
        in a fraction of the time); a preview only compared against needs neither.

    Returns
    -------
    StackPreview
        Everything the program declares, with REST bodies and secrets masked.

    Raises
    ------
    ValueError
        If a builder rejects a value; the message names the job and task.
    """

    def program() -> None:
        declare_stack(config, placeholder_secret)

    run = run_offline(program, mocks=PreviewMocks(), project=NAMESPACE, stack=stack, preview=True)
    # `stored`: what the program registered, from which a sweep's bodies are built.
    recorded = [
        {**resource, "inputs": _readable(resource), "stored": resource["inputs"]}
        for resource in run.resources
    ]
    job_ids = [job.id for job in config.jobs]
    ordered = _resource_order(recorded, job_ids)
    names = {resource["urn"]: resource["name"] for resource in ordered}
    resources = tuple(
        {
            "type": r["type"],
            "name": r["name"],
            "parent": names.get(r["parent"]),
            "inputs": r["inputs"],
        }
        for r in ordered
    )
    jobs = []
    for resource in ordered:
        if resource["type"] != JOB_TYPE:
            continue
        job_id = resource["inputs"]["jobId"]
        task_resources = [
            r
            for r in ordered
            if r["type"] in (TASK_TYPE, TASK_SET_TYPE) and r["inputs"].get("jobId") == job_id
        ]
        jobs.append(
            _job_preview(
                job_id,
                resource["inputs"],
                task_resources,
                _declared_ids(config, job_id),
                with_bodies,
                check_bodies,
            )
        )
    return StackPreview(stack, config, resources, tuple(jobs), with_bodies)
