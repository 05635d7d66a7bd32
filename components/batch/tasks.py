"""BatchTask and BatchTaskSet: container tasks in a Batch job as Pulumi dynamic resources.

Both resources hold their tasks as a map of task id -> spec (a BatchTask is a set of one), so one
provider core serves both. A set made from a sweep stores the sweep's template spec once
(`template`) and per task only its axis values, in buckets of JSON text (`batch/buckets.py`), so
the engine carries a few hundred strings instead of a map of thousands; `stored_tasks` and
`decode_tasks` read that and the earlier layouts (one JSON text per task: a whole spec, or axis
values). Providers capture nothing: each operation builds its client and credential afresh,
since a provider is pickled into every resource's state (CONTRIBUTING.md, the state contract).
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from azure.core.exceptions import HttpResponseError
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from batchtasks import fields
from batchtasks.batch import buckets, checks, ownership
from batchtasks.batch.buckets import BucketError
from batchtasks.batch.client import (
    BUSY_STATES,
    SERVICE_ERRORS,
    BatchOperationError,
    EncodedTask,
    TaskWriter,
    body_matches,
    call_with_retries,
    is_gone,
    live_job,
    make_client,
    operation_error,
    service_errors,
    shown_ids,
)
from batchtasks.batch.diff import (
    TASK_LOCATION_INPUTS,
    TASK_SET_INPUTS,
    TASK_STORED_INPUTS,
    completion_mode,
    inputs_of_kind,
    plan_tasks,
    same,
)
from batchtasks.batch.inputs import as_task_inputs, as_task_set_inputs, as_task_target_inputs
from batchtasks.batch.retrying import RetryingProvider
from batchtasks.batch.shards import shard_input, shard_name, shard_of, shard_problem
from batchtasks.batch.spec import (
    JSON_ERRORS,
    TaskContext,
    build_task_body,
    is_unknown,
    is_unknown_as_a_whole,
    task_constraints,
)
from batchtasks.batch.template import SweepBodies, TemplateBodyBuilder
from batchtasks.config.sweep import SpecTemplate

# Inputs besides a task's own spec that its body depends on (`plan_tasks` compares them).
SHARED_BODY_INPUTS = inputs_of_kind(TASK_SET_INPUTS, "body")


def task_context(props: Mapping[str, Any]) -> TaskContext:
    """Return the shared inputs of a task resource as a TaskContext."""
    inputs = as_task_set_inputs(props)
    return TaskContext(
        job_id=inputs["jobId"],
        identity_resource_id=inputs["identityResourceId"],
        container_urls=inputs.get("containerUrls") or {},
        mounts_dir=inputs["mountsDir"],
        registry_server=inputs.get("registryServer"),
        secrets=inputs.get("secrets") or {},
        display_name=inputs.get("setName"),
    )


def encode_spec(spec: Any) -> Any:
    """Return a task spec or axis-value list as the canonical JSON text a set made before buckets
    stores for a task (one text per task, keyed by task id); other values as given."""
    if isinstance(spec, Mapping | list):
        return json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return spec


def encode_template(template: Mapping[str, Any]) -> str:
    """Return a set's template spec as the canonical JSON text it stores (once per set)."""
    return json.dumps(template, sort_keys=True, separators=(",", ":"))


def spec_template(template: Any) -> SpecTemplate | None:
    """Return a set's `template` input compiled, or None when the set has none (the layout
    that stores a whole spec per task).

    Raises
    ------
    ValueError
        If the template is not the JSON text of an object.
    """
    if template is None:
        return None
    try:
        decoded = json.loads(template) if isinstance(template, str) else template
    except RecursionError:
        raise ValueError("is nested too deeply to read") from None
    if not isinstance(decoded, Mapping):
        raise ValueError("must be the JSON text of an object of task fields")
    return SpecTemplate(decoded)


def axis_texts(value: Any, template: SpecTemplate) -> list[str] | None:
    """Return a task's axis values when they are what the template needs, else None."""
    if (
        isinstance(value, list)
        and len(value) >= template.positions
        and all(isinstance(text, str) for text in value)
    ):
        return value
    return None


def decode_spec(value: Any, template: SpecTemplate | None = None) -> Any:
    """Return one task's spec from what a set stores for it (its axis values, rendered through
    the set's template, or a whole spec; either as JSON text in the layout before buckets);
    unknowns and bad values as given (check reports them)."""
    decoded = value
    if isinstance(value, str) and not is_unknown_as_a_whole(value):
        try:
            decoded = json.loads(value)
        except JSON_ERRORS:
            return value  # check reports it: a spec must be an object of task fields
    if template is not None and isinstance(decoded, list):
        texts = axis_texts(decoded, template)
        return value if texts is None else template.render(texts)
    return decoded


def decode_tasks(tasks: Any, template: Any = None) -> Any:
    """Return a set's tasks as task id -> spec, from its `tasks` and `template` inputs (an
    unknown map as given): the one reader of both layouts a set's state can have.

    Parameters
    ----------
    tasks
        Task id -> what the set stores for it (`stored_tasks`): its axis values (with a
        template) or its whole spec, as values or as JSON text.
    template
        The set's template spec (JSON text, or already decoded), or None.

    Returns
    -------
    Any
        Task id -> spec; parts of the specs that do not vary are shared between tasks.
    """
    if is_unknown_as_a_whole(template):
        return template  # preview: tasks rendered from a template not known yet are unknown
    if isinstance(tasks, Mapping):
        compiled = template if isinstance(template, SpecTemplate) else spec_template(template)
        return {task_id: decode_spec(spec, compiled) for task_id, spec in tasks.items()}
    return tasks if is_unknown_as_a_whole(tasks) else {}


def stored_tasks(props: Mapping[str, Any]) -> Any:
    """Return what a set stores per task, task id -> axis values or whole spec (as JSON text in
    the layout before buckets); an unknown map as given.

    Raises
    ------
    BucketError
        If the set's buckets cannot be read (check reports it at `tasks.<bucket>`).
    """
    tasks = props.get("tasks")
    if not isinstance(tasks, Mapping):
        return tasks if is_unknown_as_a_whole(tasks) else {}
    return buckets.unpack(tasks) if buckets.is_bucketed(tasks) else dict(tasks)


def with_stored_tasks(props: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return props with a set's tasks replaced by `values` (task id -> stored value), in the
    layout props have: buckets, or one JSON text per task for a set made before them (a
    refresh does not change the layout under an unchanged program)."""
    tasks = props.get("tasks")
    if isinstance(tasks, Mapping) and tasks and not buckets.is_bucketed(tasks):
        return {
            **props,
            "tasks": {task_id: encode_spec(value) for task_id, value in values.items()},
        }
    return {**props, "tasks": buckets.pack(values)}


def _stored_of(props: Mapping[str, Any], task_ids: Collection[str]) -> Any:
    """Return what a set stores for some of its tasks (and maybe others), reading only the
    buckets that hold them: an update adding a few tasks to a big set unpacks a few buckets."""
    tasks = props.get("tasks")
    if isinstance(tasks, Mapping) and buckets.is_bucketed(tasks):
        return buckets.unpack(tasks, sorted({buckets.bucket_of(task_id) for task_id in task_ids}))
    return stored_tasks(props)


def set_specs(props: Mapping[str, Any]) -> Any:
    """Return a set's tasks as task id -> spec, from its inputs or state (see decode_tasks)."""
    return decode_tasks(stored_tasks(props), props.get("template"))


def _axis_values(stored: Mapping[str, Any], template: SpecTemplate) -> dict[str, list[str]]:
    """Return task id -> axis values for the stored values (lists, or their JSON texts) that
    hold what the template needs (as `decode_spec` reads them); the others are left out."""
    values = list(stored.values())
    if values and set(map(type, values)) <= {str}:
        decoder = json.JSONDecoder()
        texts = values
        try:
            # raw_decode skips json.loads's whitespace scans: a text it reads to its end is
            # what json.loads reads.
            decoded = list(map(decoder.raw_decode, texts))
        except JSON_ERRORS:
            decoded = []
        values = list(map(operator.itemgetter(0), decoded))
        if list(map(operator.itemgetter(1), decoded)) != list(map(len, texts)):
            values = []
    # Whole passes in C: every value a list of enough strings.
    if (
        len(values) == len(stored)
        and set(map(type, values)) <= {list}
        and min(map(len, values), default=template.positions) >= template.positions
        and set(map(type, itertools.chain.from_iterable(values))) <= {str}
    ):
        return dict(zip(stored, values, strict=True))
    # Some value is not a list of axis values: each is read on its own, as decode_spec does.
    found = {task_id: _read_axis_texts(value, template) for task_id, value in stored.items()}
    return {task_id: values for task_id, values in found.items() if values is not None}


def _read_axis_texts(value: Any, template: SpecTemplate) -> list[str] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except JSON_ERRORS:
            return None
    return axis_texts(value, template)


def _shown(value: Any) -> str:
    """Return the start of a stored value as a message shows it."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:60])


def _normalise_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    # Integers arrive as floats over the wire; store them as the whole numbers they are.
    normalised = dict(spec)
    for key in fields.INTEGER_KEYS:
        if isinstance(normalised.get(key), float):
            normalised[key] = int(normalised[key])
    return normalised


class _StoredSpecs(Mapping[str, Any]):
    """A set's tasks as task id -> spec, each rendered from what the set stores when read."""

    def __init__(self, stored: Mapping[str, Any], template: SpecTemplate | None) -> None:
        self.stored = stored
        self.template = template

    def __getitem__(self, task_id: str) -> Any:
        return decode_spec(self.stored[task_id], self.template)

    def __iter__(self) -> Iterator[str]:
        return iter(self.stored)

    def __len__(self) -> int:
        return len(self.stored)


class TaskBodies:
    """Builds the REST bodies of one task resource's tasks: a task its set stores as axis values
    straight from them through the sweep's template (`SweepBodies`), any other from its spec;
    the same bytes and errors either way.

    Parameters
    ----------
    builder
        The body builder of the operation (or of the preview's job).
    specs
        Task id -> spec, read only for the tasks not built from axis values.
    template
        The set's compiled template spec, or None (a BatchTask, or a set without one).
    stored
        Task id -> what the set stores (`stored_tasks`), holding at least the tasks asked for.
    """

    def __init__(
        self,
        builder: TemplateBodyBuilder,
        specs: Mapping[str, Any],
        template: SpecTemplate | None = None,
        stored: Mapping[str, Any] | None = None,
    ) -> None:
        self.builder = builder
        self.specs = specs
        self.sweep = None if template is None else SweepBodies(builder, template)
        self.stored = stored or {}

    def _texts(self, task_id: str) -> list[str] | None:
        if self.sweep is None:
            return None
        return axis_texts(self.stored.get(task_id), self.sweep.template)

    def build_text(self, task_id: str) -> str:
        """Return one task's REST body as compact JSON text (`TemplateBodyBuilder.build_text`).

        Raises
        ------
        ValueError
            As the seed's builders raise it.
        """
        texts = self._texts(task_id)
        if self.sweep is not None and texts is not None:
            return self.sweep.build_text(task_id, texts)
        return self.builder.build_text(task_id, self.specs[task_id])

    def check(self, task_id: str) -> None:
        """Check that one task's REST body can be built, without building it.

        Raises
        ------
        ValueError
            As `build_text` raises it.
        """
        texts = self._texts(task_id)
        if self.sweep is not None and texts is not None:
            self.sweep.check(task_id, texts)
        else:
            self.builder.check(task_id, self.specs[task_id])


class _TaskProviderCore(RetryingProvider):
    """What BatchTask and BatchTaskSet share; subclasses map their inputs to `tasks`."""

    serialize_as_secret_always = False

    # --- mapping between a resource's own inputs and the tasks map -------------------------
    def tasks_of(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Return the resource's tasks as id -> spec."""
        raise NotImplementedError

    def resource_id(self, props: Mapping[str, Any]) -> str:
        """Return the Pulumi id of the resource."""
        raise NotImplementedError

    def with_tasks(self, props: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, Any]:
        """Return props with the tasks map replaced."""
        raise NotImplementedError

    def _view(self, props: Mapping[str, Any]) -> dict[str, Any]:
        return {**props, "tasks": self.tasks_of(props)}

    def task_count(self, props: Mapping[str, Any]) -> int:
        """Return how many tasks the resource holds."""
        return len(self.tasks_of(props))

    def _tasks_unknown(self, news: Mapping[str, Any]) -> bool:
        """Tell whether the tasks input as a whole is not known yet (preview)."""
        return is_unknown_as_a_whole(self.tasks_of(news))

    def _views_to_compare(
        self, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the old and new views `plan_tasks` needs to find every change: here both
        whole; a set narrows them to the tasks whose stored text differs."""
        return self._view(olds), self._view(news)

    # --- Pulumi operations -------------------------------------------------------------------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate every input and report each bad property at once."""
        return self.check_tasks(news, self.tasks_of(news))

    def check_tasks(self, news: dict[str, Any], tasks: Any) -> CheckResult:
        """Validate every input, the tasks as given (keyed by task id: `task_problems` and
        `checked_inputs` take them), and report each bad property at once."""
        problems = checks.endpoint_problems(news.get("endpoint"))
        problems += checks.id_problems(news.get("jobId"), "jobId")
        for name in ("identityResourceId", "mountsDir"):
            if news.get(name) in (None, ""):
                problems.append((name, "is required"))
        if not is_unknown_as_a_whole(tasks) and not tasks and not self.may_be_empty(news):
            problems.append(("tasks", "must declare at least one task"))
        containers = news.get("containerUrls")
        secrets = news.get("secrets") or {}
        seen: dict[str, str] = {}
        if isinstance(tasks, Mapping):
            problems += self.task_problems(news, tasks, containers, secrets)
        ids = list(tasks) if isinstance(tasks, Mapping) else []
        # Ids that repeat ignoring case are rare: looked for one by one only when some do.
        for task_id in ids if len(set(map(str.lower, ids))) < len(ids) else ():
            path = self.task_path(task_id)
            if task_id.lower() in seen:
                problems.append(
                    (
                        path,
                        f"{task_id!r} repeats {seen[task_id.lower()]!r}: Batch "
                        "ids are unique ignoring case",
                    )
                )
            seen[task_id.lower()] = task_id
        if not problems and isinstance(tasks, Mapping):
            news = self.checked_inputs(news, tasks)
        return CheckResult(news, [CheckFailure(path, reason) for path, reason in problems])

    def may_be_empty(self, props: Mapping[str, Any]) -> bool:
        """Tell whether the resource may hold no task (one shard of a sweep split in several)."""
        return False

    def task_problems(
        self,
        news: Mapping[str, Any],
        tasks: Mapping[str, Any],
        containers: Mapping[str, Any] | None,
        secrets: Mapping[str, Any] | None,
    ) -> list[checks.Problem]:
        """Return the problems of the resource's task specs (each shape checked once)."""
        return checks.task_map_problems(tasks, self.task_path, containers, secrets)

    def checked_inputs(self, news: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, Any]:
        """Return the inputs check hands back once they passed: specs with whole numbers."""
        return self.with_tasks(
            news,
            {
                task_id: _normalise_spec(spec) if isinstance(spec, Mapping) else spec
                for task_id, spec in tasks.items()
            },
        )

    def task_ids(self, props: Mapping[str, Any]) -> list[str]:
        """Return the ids of the resource's tasks."""
        return list(self.tasks_of(props))

    def kept_tasks(self, props: Mapping[str, Any], live: Collection[str]) -> dict[str, Any] | None:
        """Return the props with only the tasks whose lower-case ids are in `live`, or None
        when none is left."""
        tasks = {
            task_id: spec
            for task_id, spec in self.tasks_of(props).items()
            if task_id.lower() in live
        }
        return self.with_tasks(props, tasks) if tasks else None

    def task_path(self, task_id: str) -> str:
        """Return the property path of one task's spec, for messages."""
        return f"tasks.{task_id}"

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Compare old state and new inputs without calling the service."""
        moved = [
            name
            for name in TASK_LOCATION_INPUTS
            if is_unknown(news.get(name)) or not same(olds.get(name), news.get(name))
        ]
        if moved:
            return DiffResult(changes=True, replaces=moved, delete_before_replace=True)
        if self._tasks_unknown(news):
            # During preview the whole map may be pending: some change, not yet known which.
            return DiffResult(changes=True, replaces=[], delete_before_replace=True)
        plan = plan_tasks(*self._views_to_compare(olds, news))
        other = [name for name in TASK_STORED_INPUTS if not same(olds.get(name), news.get(name))]
        if shard_input(olds.get("shard")) != shard_input(news.get("shard")):
            other.append("shard")
        return DiffResult(
            changes=plan.has_changes or bool(other), replaces=[], delete_before_replace=True
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Add the declared tasks; tasks an interrupted run already added count when equal."""
        view = self.view_to_create(props)
        context = task_context(props)
        writer = self._writer(props)
        builder = TemplateBodyBuilder(context)
        # A generator: bodies are built while earlier chunks are in flight.
        bodies = self.bodies(builder, props, view["tasks"], view["tasks"])
        if context.display_name:
            self._remove_strays(writer, view, context.display_name)
        outcome = writer.add(bodies)
        if outcome.different:
            self._replace_own(writer, props, view, outcome.different, builder)
        return CreateResult(self.resource_id(props), outs=dict(props))

    def _replace_own(
        self,
        writer: TaskWriter,
        props: Mapping[str, Any],
        view: Mapping[str, Any],
        different: Mapping[str, Mapping[str, Any]],
        builder: TemplateBodyBuilder,
    ) -> None:
        """Tasks that existed with another definition: in a job this stack created, the ones
        carrying this resource's marker are its own (an interrupted create, then an edited
        declaration) and are replaced, under the running and terminateJob guards; any other
        is listed and nothing of it is changed."""
        inputs = as_task_target_inputs(props)
        job_id = inputs["jobId"]
        job = writer.job()
        metadata = ownership.as_dict((job or {}).get("metadata"))
        created = ownership.created_by_stack(metadata, inputs.get("owner") or {})
        marker = task_context(props).display_name
        # The marker names the sweep, which every shard of it shares: only a task this shard
        # declares is this resource's to replace.
        declared = {task_id.lower() for task_id in view["tasks"]}
        ours = sorted(
            task_id
            for task_id, live in different.items()
            if created
            and task_id.lower() in declared
            # A BatchTask has no marker, and no task of its own carries one.
            and (live.get("displayName") or None) == marker
        )
        others = sorted(set(different) - set(ours))
        if others:
            origin = (
                "the job was adopted, so only tasks with equal definitions are taken over"
                if metadata.get(ownership.ADOPTED) == "true"
                else "they were not added by this resource"
            )
            held = sorted(
                {
                    str(different[task_id].get("displayName"))
                    for task_id in others
                    if different[task_id].get("displayName") not in (None, marker)
                }
            )
            moved = (
                f" They carry the marker of {', '.join(repr(name) for name in held)}: a task "
                "moving from there to here is removed by that resource's own update or delete "
                "(`pulumi up --continue-on-error` lets it run after this refusal); once it is "
                "gone, a run again adds it here."
                if created and held
                else ""
            )
            raise BatchOperationError(
                f"job {job_id!r}: {len(others)} task(s) already exist with a different "
                f"definition and {origin}: {shown_ids(others)}. Nothing of them was changed."
                f"{moved} Batch cannot change a task in place; delete them, or give the "
                "declared tasks new ids, and run again."
            )
        states = {task_id.lower(): str(live.get("state")) for task_id, live in different.items()}
        self._refuse_busy(writer, ours, props, states)
        self._refuse_ending(writer, props, ours, job, adding_back=True)
        writer.delete(ours)
        again = writer.add(self.bodies(builder, props, view["tasks"], ours))
        if again.different:
            raise BatchOperationError(
                f"job {job_id!r}: task(s) {shown_ids(again.different)} came back with another "
                "definition while being replaced; something else writes to this job."
            )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Make the minimal calls: delete removed and replaced tasks, add new and replaced ones in
        chunked collections, update constraints of the rest in place."""
        new = as_task_target_inputs(news)
        # Decoded once: a big set's specs are thousands of JSON texts.
        old_view, new_view = self._views_to_compare(olds, news)
        plan = plan_tasks(old_view, new_view)
        writer = self._writer(news)
        going = [*plan.removed, *plan.replaced]
        arriving = [*plan.replaced, *plan.added]
        if going:
            with service_errors(new["jobId"], "reading the states of tasks to delete", going):
                self._refuse_busy(writer, going, news, at_least=self.task_count(olds))
            self._refuse_ending(writer, news, going, adding_back=bool(arriving))
            writer.delete(going)
        new_tasks = new_view["tasks"]
        context = task_context(news)
        if arriving:
            builder = TemplateBodyBuilder(context)
            outcome = writer.add(self.bodies(builder, news, new_tasks, arriving))
            if outcome.different:
                # As on create: a task found with another definition is replaced only when it
                # is this resource's own; one another resource holds (a task moved between
                # sweeps) is refused, or that resource's update would delete it afterwards.
                self._replace_own(writer, news, new_view, outcome.different, builder)
        if plan.updated:
            writer.update_constraints(
                {task_id: task_constraints(new_tasks[task_id]) or {} for task_id in plan.updated}
            )
        return UpdateResult(outs=dict(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the resource's tasks; running ones only with replaceRunningTasks."""
        inputs = as_task_target_inputs(props)
        writer = self._writer(props)
        task_ids = self.task_ids(props)
        try:
            self._refuse_busy(writer, task_ids, props)
        except SERVICE_ERRORS as error:
            if is_gone(error):
                return  # the job is gone or going, and its tasks with it
            raise operation_error(
                inputs["jobId"], "reading the states of tasks to delete", error, task_ids
            ) from None
        job = writer.job()
        if job is None:
            return  # being deleted: its tasks go with it
        self._refuse_ending(writer, props, task_ids, job)
        writer.delete(task_ids)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Read the tasks back; ones deleted out of band leave the state, so `up` adds them."""
        inputs = as_task_target_inputs(props)
        writer = self._writer(props)
        if writer.job() is None:
            return ReadResult("", {})  # gone or being deleted, and its tasks with it
        try:
            live = writer.task_states()
        except SERVICE_ERRORS as error:
            if is_gone(error):
                return ReadResult("", {})
            raise operation_error(inputs["jobId"], "reading tasks", error) from None
        outs = self.kept_tasks(props, live)
        if outs is None:
            return ReadResult("", {})
        return ReadResult(id_ or self.resource_id(props), outs, dict(outs))

    # --- helpers -----------------------------------------------------------------------------
    def view_to_create(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Return the props with `tasks` as task id -> spec, as create reads them."""
        return self._view(props)

    def bodies(
        self,
        builder: TemplateBodyBuilder,
        props: Mapping[str, Any],
        specs: Mapping[str, Any],
        task_ids: Iterable[str],
    ) -> Iterator[EncodedTask]:
        """Return the REST bodies of some of the resource's tasks, built one by one as they
        are taken (while earlier chunks are in flight).

        Parameters
        ----------
        builder
            The operation's body builder.
        props
            The resource's inputs.
        specs
            Task id -> spec, holding at least `task_ids`.
        task_ids
            The tasks, in the order their bodies are wanted.
        """
        ids = list(task_ids)
        made = self.task_bodies(builder, props, specs, ids)
        return (EncodedTask(task_id, made.build_text(task_id).encode("ascii")) for task_id in ids)

    def task_bodies(
        self,
        builder: TemplateBodyBuilder,
        props: Mapping[str, Any],
        specs: Mapping[str, Any],
        task_ids: Collection[str],
    ) -> TaskBodies:
        """Return the builder of these tasks' bodies: here each from its spec."""
        return TaskBodies(builder, specs)

    def _writer(self, props: Mapping[str, Any]) -> TaskWriter:
        inputs = as_task_target_inputs(props)
        policy = self.policy(props)
        return TaskWriter(make_client(inputs["endpoint"]), inputs["jobId"], policy)

    def _refuse_busy(
        self,
        writer: TaskWriter,
        task_ids: list[str],
        props: Mapping[str, Any],
        states: Mapping[str, str] | None = None,
        at_least: int = 0,
    ) -> None:
        """Fail before changing anything when tasks to delete are running, unless allowed.

        `states` (lower-case id -> state) saves the reads when already known; `at_least` (how
        many tasks the job holds) lets a few tasks be read one by one instead of listing all.
        """
        inputs = as_task_target_inputs(props)
        if inputs.get("replaceRunningTasks"):
            return
        if states is None:
            states = writer.task_states(task_ids, at_least=at_least)
        busy = sorted(task_id for task_id in task_ids if states.get(task_id.lower()) in BUSY_STATES)
        if busy:
            raise BatchOperationError(
                f"job {inputs['jobId']!r}: {len(busy)} task(s) to delete or replace are running: "
                f"{', '.join(busy[:20])}{' ...' if len(busy) > 20 else ''}. Nothing was changed. "
                "Wait for them to finish, or set replaceRunningTasks: true to kill them."
            )

    def _refuse_ending(
        self,
        writer: TaskWriter,
        props: Mapping[str, Any],
        task_ids: Sequence[str],
        job: Mapping[str, Any] | None = None,
        *,
        adding_back: bool = False,
    ) -> None:
        """Fail before changing anything when deleting these tasks would end a job that ends
        itself: with no incomplete task left, Batch completes the job, and a completed job
        takes no task, so nothing could be added back. A job whose BatchJobCompletion was
        deleted (it is being destroyed or replaced) is released from this guard."""
        inputs = as_task_target_inputs(props)
        if not task_ids:
            return
        job_id = inputs["jobId"]
        live = job if job is not None else writer.job()
        if live is None or completion_mode(live.get("onAllTasksComplete")) != "terminateJob":
            return
        if ownership.as_dict(live.get("metadata")).get(ownership.RELEASED) == "true":
            return
        way_out = (
            "Nothing was changed. Give the job a new id in the stack file (jobs[].id) to "
            "run these tasks again in a new job."
        )
        if live.get("state") in ("completed", "terminating") and adding_back:
            raise BatchOperationError(
                f"job {job_id!r} has completed (onAllTasksComplete: terminateJob) and takes no "
                f"task, so task(s) {shown_ids(task_ids)} could not be added back. {way_out}"
            )
        going = {task_id.lower() for task_id in task_ids}
        with service_errors(job_id, "reading task states", task_ids):
            elsewhere, among_going = writer.incomplete_elsewhere(going)
        if elsewhere:
            return
        if not among_going:
            return  # every task has completed already: the job has nothing left to end
        raise BatchOperationError(
            f"job {job_id!r} ends itself (onAllTasksComplete: terminateJob) and deleting "
            f"task(s) {shown_ids(task_ids)} would leave it with no incomplete task: Batch would "
            f"complete the job, and a completed job takes no task. {way_out}"
        )

    def _remove_strays(self, writer: TaskWriter, view: Mapping[str, Any], owner: str) -> None:
        """Before a create, delete tasks an interrupted earlier create of this resource added
        but the declaration no longer has, so the job ends with exactly the declared tasks.
        Checked on every create: nothing else tells that an earlier run went part of the way."""
        declared = {task_id.lower() for task_id in view["tasks"]}
        # Every shard of a sweep carries the sweep's marker: a stray of this resource is one
        # its shard would hold, or one shard's create would delete the others' tasks.
        index, count = shard_input(view.get("shard"))
        try:
            existing = writer.existing_tasks(select=["id", "displayName", "state"])
        except SERVICE_ERRORS as error:
            if isinstance(error, HttpResponseError) and error.status_code == 404:
                return  # no job: nothing to remove, and the add explains the missing job
            raise operation_error(
                view["jobId"], "listing the job's tasks (no task added)", error
            ) from None
        strays = [
            body["id"]
            for key, body in existing.items()
            if body.get("displayName") == owner
            and key not in declared
            and (count == 1 or shard_of(key, count) == index)
        ]
        if strays:
            states = {key: str(body.get("state")) for key, body in existing.items()}
            self._refuse_busy(writer, strays, view, states)
            writer.delete(strays)


class BatchTaskSetProvider(_TaskProviderCore):
    """Provider for BatchTaskSet: many tasks (a sweep, or one shard of it) in one resource,
    diffed task by task."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate as every task resource does, plus the template (once, before any task is read
        through it) and the shard: a valid {index, count}, every task in the shard its id hashes
        to, and the same count as the state has. The buckets are read once, before any task."""
        try:
            stored = stored_tasks(news)
        except BucketError as error:
            return CheckResult(news, [CheckFailure(f"tasks.{error.key}", error.reason)])
        template = news.get("template")
        template_problems = (
            checks.template_problems(template)
            if template is not None and not is_unknown_as_a_whole(template)
            else []
        )
        result = (
            CheckResult(news, [CheckFailure(path, reason) for path, reason in template_problems])
            if template_problems
            else self.check_tasks(news, self._tasks_to_check(news, stored))
        )
        failures = list(result.failures or [])
        shard = news.get("shard")
        if problem := shard_problem(shard):
            return CheckResult(result.inputs, [*failures, CheckFailure("shard", problem)])
        index, count = shard_input(shard)
        misplaced = sorted(
            task_id
            for task_id in (stored if isinstance(stored, Mapping) and count > 1 else ())
            if shard_of(task_id, count) != index
        )
        if misplaced:
            # Strays are found by shard: a task in the wrong set would be another's stray.
            failures.append(
                CheckFailure(
                    "shard",
                    f"task(s) {shown_ids(misplaced)} do not belong to shard {index} of "
                    f"{count}: a task's shard follows from its id (batchtasks.batch.shards)",
                )
            )
        if refusal := self._count_change(olds, news):
            failures.append(CheckFailure("shard", refusal))
        return CheckResult(result.inputs, failures)

    def may_be_empty(self, props: Mapping[str, Any]) -> bool:
        """A shard of a sweep split over several sets may hold no task: every shard is
        registered, so a change of the count always meets a set that exists (and is refused)."""
        return shard_problem(props.get("shard")) is None and shard_input(props.get("shard"))[1] > 1

    @staticmethod
    def _count_change(olds: Mapping[str, Any], news: Mapping[str, Any]) -> str | None:
        """Refuse a new shard count for a set that exists: the tasks would move between
        resources, and a task that moves is deleted by one and added by another (it runs
        again). State without the input (a set made before sharding) is 1 shard."""
        if not olds or shard_problem(olds.get("shard")):
            return None
        old, new = shard_input(olds.get("shard"))[1], shard_input(news.get("shard"))[1]
        if old == new:
            return None
        sweep = news.get("setName") or olds.get("setName")
        return (
            f"sweep {sweep!r} is split over {old} task set(s) in the state and would be split "
            f"over {new}: tasks would move between resources, and a task that moves is deleted "
            f"and added again, so it runs again. Nothing was changed. To keep every task where "
            f"it is, write `shards: {old}` on the sweep in the stack file."
        )

    def tasks_of(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Return the set's tasks as task id -> spec (through its template, when it has one)."""
        return set_specs(props)

    def task_count(self, props: Mapping[str, Any]) -> int:
        """Return how many tasks the set holds, without rendering them."""
        return len(self.task_ids(props))

    def task_ids(self, props: Mapping[str, Any]) -> list[str]:
        """Return the ids of the set's tasks, without rendering them."""
        stored = stored_tasks(props)
        return list(stored) if isinstance(stored, Mapping) else []

    def _tasks_unknown(self, news: Mapping[str, Any]) -> bool:
        """Tell whether the tasks map as a whole is not known yet, without decoding it."""
        return is_unknown_as_a_whole(news.get("tasks")) or is_unknown_as_a_whole(
            news.get("template")
        )

    @staticmethod
    def _tasks_to_check(news: Mapping[str, Any], stored: Any) -> Any:
        """Return the tasks check reads: with a known template, the stored values as they are
        (`task_problems` reads each once, and renders a task only when it must); else the
        decoded specs."""
        template = news.get("template")
        if template is None or is_unknown_as_a_whole(template) or is_unknown_as_a_whole(stored):
            return decode_tasks(stored, template)
        return stored

    def task_problems(
        self,
        news: Mapping[str, Any],
        tasks: Mapping[str, Any],
        containers: Mapping[str, Any] | None,
        secrets: Mapping[str, Any] | None,
    ) -> list[checks.Problem]:
        """Return the problems of the set's tasks: with a template, `tasks` holds the stored
        values (see `_tasks_to_check`); the first task rendered from the template is checked
        whole and every other one for its own values only (they share everything else); a
        task stored as a whole spec is checked as one."""
        template = news.get("template")
        if template is None:
            return super().task_problems(news, tasks, containers, secrets)
        compiled = spec_template(template)
        assert compiled is not None  # check refused a template it cannot read
        # A list (or a text that opens a JSON array) holds axis values; any other is a spec.
        lists = {
            task_id: value
            for task_id, value in tasks.items()
            if isinstance(value, list) or (isinstance(value, str) and value.startswith("["))
        }
        values = _axis_values(lists, compiled)
        problems: list[checks.Problem] = [
            (
                self.task_path(task_id),
                f"{_shown(value)} must be an array of the task's axis values as text "
                f"(at least {compiled.positions}), or a task spec object",
            )
            for task_id, value in lists.items()
            if task_id not in values
        ]
        problems += checks.template_task_problems(
            compiled, values, self.task_path, containers, secrets
        )
        whole = {
            task_id: decode_spec(text, compiled)
            for task_id, text in (tasks.items() if len(lists) < len(tasks) else ())
            if task_id not in lists
        }
        return problems + checks.task_map_problems(whole, self.task_path, containers, secrets)

    def checked_inputs(self, news: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, Any]:
        """Return the inputs as given when the set has a template or buckets (JSON text keeps
        whole numbers whole); else as the layout before buckets stores them."""
        stored = news.get("tasks")
        if news.get("template") is None and not (
            isinstance(stored, Mapping) and buckets.is_bucketed(stored)
        ):
            return super().checked_inputs(news, tasks)
        return dict(news)

    def kept_tasks(self, props: Mapping[str, Any], live: Collection[str]) -> dict[str, Any] | None:
        """Return the props with only the live tasks, stored as they were (in the same layout,
        and the texts of untouched buckets unchanged)."""
        stored = stored_tasks(props)
        kept = {task_id: value for task_id, value in stored.items() if task_id.lower() in live}
        outs = dict(props) if len(kept) == len(stored) else with_stored_tasks(props, kept)
        # A shard of several stays while its job does, even with no task (none hashed to it,
        # or all were deleted out of band): the shard-count check needs every shard's state.
        return outs if kept or self.may_be_empty(props) else None

    def _views_to_compare(
        self, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Text first: when no shared input that reaches the bodies changed, a task whose
        stored text is the same on both sides cannot have changed, so only the buckets whose
        texts differ (or, in the layout before buckets, the tasks) are decoded and compared.

        The views then hold just those tasks: the plan's added, removed, replaced and updated
        tasks are the whole set's, its `unchanged` count only theirs.
        """
        old_texts, new_texts = olds.get("tasks"), news.get("tasks")
        if (
            not isinstance(old_texts, Mapping)
            or not isinstance(new_texts, Mapping)
            # Tasks read through different templates (or layouts) can be equal in different
            # texts: every task is decoded and compared then.
            or olds.get("template") != news.get("template")
            or buckets.is_bucketed(old_texts) != buckets.is_bucketed(new_texts)
            or any(
                not same(olds.get(name), news.get(name)) or is_unknown(news.get(name))
                for name in SHARED_BODY_INPUTS
            )
        ):
            return self._view(olds), self._view(news)
        differing = buckets.differing(old_texts, new_texts)
        if buckets.is_bucketed(new_texts):
            old_part = buckets.unpack(old_texts, differing)
            new_part = buckets.unpack(new_texts, differing)
        else:
            old_part = {key: old_texts[key] for key in differing if key in old_texts}
            new_part = {key: new_texts[key] for key in differing if key in new_texts}
        return (
            {**olds, "tasks": decode_tasks(old_part, olds.get("template"))},
            {**news, "tasks": decode_tasks(new_part, news.get("template"))},
        )

    def task_bodies(
        self,
        builder: TemplateBodyBuilder,
        props: Mapping[str, Any],
        specs: Mapping[str, Any],
        task_ids: Collection[str],
    ) -> TaskBodies:
        """Return the builder of these tasks' bodies: a task stored as its axis values is built
        straight from them through the sweep's template (the same bytes, without rendering its
        spec), reading only the buckets that hold the tasks."""
        if isinstance(specs, _StoredSpecs):
            return TaskBodies(builder, specs, specs.template, specs.stored)
        template = spec_template(props.get("template"))
        if template is None:
            return TaskBodies(builder, specs)
        return TaskBodies(builder, specs, template, _stored_of(props, task_ids))

    def view_to_create(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Return the props with `tasks` as task id -> spec, each rendered only when read: a
        create builds most bodies straight from the axis values (see `bodies`)."""
        compiled = spec_template(props.get("template"))
        return {**props, "tasks": _StoredSpecs(stored_tasks(props), compiled)}

    def resource_id(self, props: Mapping[str, Any]) -> str:
        """Return `<job id>/<set name>`, with `.shard-<i>` for shards past the first."""
        index = shard_input(props.get("shard"))[0]
        return f"{props['jobId']}/{shard_name(props.get('setName') or 'tasks', index)}"

    def with_tasks(self, props: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, Any]:
        """Return props with the tasks replaced, each spec stored whole (which a set with a
        template reads as well), in the layout props have."""
        return with_stored_tasks(props, tasks)


class BatchTaskProvider(_TaskProviderCore):
    """Provider for BatchTask: one task; a change other than constraints replaces it."""

    def tasks_of(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Return {taskId: task}."""
        task_id, spec = props.get("taskId"), props.get("task")
        return {task_id: spec} if isinstance(task_id, str) and spec is not None else {}

    def resource_id(self, props: Mapping[str, Any]) -> str:
        """Return `<job id>/<task id>`."""
        return f"{props['jobId']}/{props['taskId']}"

    def with_tasks(self, props: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, Any]:
        """Return props with `task` replaced by the single spec in tasks."""
        ((task_id, spec),) = tasks.items()
        return {**props, "taskId": task_id, "task": spec}

    def task_path(self, task_id: str) -> str:
        """Return `task`, the property holding the spec."""
        return "task"

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace the task unless only its constraints changed."""
        result = super().diff(id_, olds, news)
        if result.replaces:
            return result
        plan = plan_tasks(self._view(olds), self._view(news))
        if plan.replaced or plan.added or plan.removed:
            return DiffResult(changes=True, replaces=["task"], delete_before_replace=True)
        return result

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Read the task; a task deleted out of band leaves the state. Supports import by
        `<job id>/<task id>`: the live task's command, image and constraints are taken over."""
        inputs = as_task_inputs(props)
        if not inputs.get("endpoint"):
            raise BatchOperationError("reading a task needs its endpoint, job and spec inputs")
        job_id, _, task_id = (id_ or self.resource_id(props)).partition("/")
        client = make_client(inputs["endpoint"])
        policy = self.policy(props)
        if live_job(client, job_id, policy) is None:
            return ReadResult("", {})  # gone or being deleted, and the task with it
        try:
            live = call_with_retries(lambda: client.get_task(job_id, task_id), policy).as_dict()
        except SERVICE_ERRORS as error:
            if is_gone(error):
                return ReadResult("", {})
            raise operation_error(job_id, "reading the task", error, [task_id]) from None
        spec = dict(inputs.get("task") or {})
        declared = build_task_body(task_id, spec, task_context({**props, "jobId": job_id}))
        if not body_matches(declared, live):
            spec["command"] = live.get("commandLine", spec.get("command"))
            spec["image"] = live.get("containerSettings", {}).get("imageName", spec.get("image"))
        constraints = live.get("constraints") or {}
        for field, rest in (
            (name, fields.BY_KEY[name].rest.removeprefix("constraints."))
            for name in fields.IN_PLACE_KEYS
        ):
            # Constraints are the part of a task that can drift in place: take the live value.
            if (
                field in spec
                and rest in constraints
                and not body_matches(spec[field], constraints[rest])
            ):
                spec[field] = constraints[rest]
        outs = {**props, "jobId": job_id, "taskId": live.get("id", task_id), "task": spec}
        return ReadResult(f"{job_id}/{outs['taskId']}", outs, dict(outs))


@dataclass(frozen=True)
class TaskTarget:
    """Where a job's tasks run and what they may reach: shared by its task resources.

    Attributes
    ----------
    job_id, endpoint
        The job and the Batch account endpoint.
    identity_resource_id, container_urls, mounts_dir, registry_server
        From BatchStorage: the identity for uploads and the registry, container name -> URL,
        the node directory holding the mounts, and the private registry (or None).
    replace_running_tasks
        Allow deleting or replacing running tasks.
    retry_policy
        Overrides of RetryPolicy (camelCase keys), or None.
    owner
        This project and stack (`project`, `stack`): a task found in a job whose metadata
        names them, and carrying this resource's marker, was added by this resource.
    """

    job_id: pulumi.Input[str]
    endpoint: pulumi.Input[str]
    identity_resource_id: pulumi.Input[str]
    container_urls: pulumi.Input[Mapping[str, str]]
    mounts_dir: str
    registry_server: pulumi.Input[str] | None = None
    replace_running_tasks: bool = False
    retry_policy: Mapping[str, Any] | None = None
    owner: Mapping[str, str] | None = None

    def inputs(self, secrets: pulumi.Input[Mapping[str, str]] | None) -> dict[str, Any]:
        """Return the resource inputs these settings and the given secrets make."""
        return {
            "jobId": self.job_id,
            "endpoint": self.endpoint,
            "identityResourceId": self.identity_resource_id,
            "containerUrls": self.container_urls,
            "mountsDir": self.mounts_dir,
            "registryServer": self.registry_server,
            "secrets": secrets or {},
            "replaceRunningTasks": self.replace_running_tasks,
            "retryPolicy": dict(self.retry_policy) if self.retry_policy else None,
            "owner": dict(self.owner) if self.owner else None,
        }


def _options(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    # Secret values passed in stay secrets in the state the provider returns.
    return pulumi.ResourceOptions.merge(
        pulumi.ResourceOptions(additional_secret_outputs=["secrets"]), opts
    )


class BatchTaskSet(Resource, module="batch", name="TaskSet"):
    """Many container tasks of one job (a sweep) as one resource, diffed task by task.

    Parameters
    ----------
    name
        Resource name.
    target
        The job, endpoint and BatchStorage outputs the tasks use.
    tasks
        Task id -> its axis values as text when a template is given, else task id -> task
        spec (see `components/config/`); stored in buckets (`batch/buckets.py`).
    secrets
        Config key -> secret value for the tasks' secretEnv.
    opts
        Pulumi resource options.
    set_name
        The sweep's name, which marks the tasks it owns (their displayName); every shard of
        a sweep shares it. Default: the resource name.
    shard
        (index, count): which shard of the sweep this set holds (see `batch/shards.py`).
    template
        The sweep's template spec without the id (`SweepConfig.set_template`), stored once;
        each task's spec is rendered from it and the task's axis values.
    """

    jobId: pulumi.Output[str]  # Pulumi output names follow the inputs
    tasks: pulumi.Output[dict]

    def __init__(
        self,
        name: str,
        target: TaskTarget,
        tasks: Mapping[str, Mapping[str, Any]] | Mapping[str, Sequence[str]],
        secrets: pulumi.Input[Mapping[str, str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        *,
        set_name: str | None = None,
        shard: tuple[int, int] = (0, 1),
        template: Mapping[str, Any] | None = None,
    ) -> None:
        props = {
            **target.inputs(secrets),
            "setName": set_name or name,
            "shard": {"index": shard[0], "count": shard[1]},
            "template": None if template is None else encode_template(template),
            "tasks": _packed(tasks),
        }
        super().__init__(BatchTaskSetProvider(), name, props, _options(opts))


def _packed(tasks: Mapping[str, Any]) -> dict[str, str]:
    """Return a set's tasks (id -> spec or axis values) in buckets of JSON text.

    Raises
    ------
    TypeError
        If a task is not plain data (a Pulumi Output, say): a set stores its tasks as text.
    """
    values = {
        task_id: dict(value)
        if isinstance(value, Mapping)
        else list(value)
        if isinstance(value, list | tuple)
        else value  # check reports it: a spec must be an object of task fields
        for task_id, value in tasks.items()
    }
    try:
        return buckets.pack(values)
    except (TypeError, ValueError):
        pass
    refused = [task_id for task_id, value in values.items() if not _is_json(value)]
    raise TypeError(
        f"BatchTaskSet task(s) {shown_ids(refused)}: a set stores its tasks as JSON text, so each "
        "must be plain data (a task spec or its axis values; no Pulumi Output, no NaN)"
    )


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


class BatchTask(Resource, module="batch", name="Task"):
    """One container task in a Batch job, so a small job reads task by task in a preview.

    Parameters
    ----------
    name
        Resource name.
    target
        The job, endpoint and BatchStorage outputs the task uses.
    task_id, task
        The task's id and spec.
    secrets
        Config key -> secret value for the task's secretEnv.
    opts
        Pulumi resource options.
    """

    jobId: pulumi.Output[str]  # Pulumi output names follow the inputs
    taskId: pulumi.Output[str]
    task: pulumi.Output[dict]

    def __init__(
        self,
        name: str,
        target: TaskTarget,
        task_id: str,
        task: Mapping[str, Any],
        secrets: pulumi.Input[Mapping[str, str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {**target.inputs(secrets), "taskId": task_id, "task": dict(task)}
        super().__init__(BatchTaskProvider(), name, props, _options(opts))
