"""BatchJob and BatchJobCompletion: a Batch job, and the switch that lets it end, as resources.

A job declared `onAllTasksComplete: terminateJob` is created with noAction: a job that has no
tasks yet and terminateJob completes at once, and a completed job takes no tasks. The program
adds a BatchJobCompletion that depends on every task resource of the job and makes the switch
once the tasks are in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from azure.batch import models as batch_models
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

from batchtasks.batch import checks, ownership, sdk_compat
from batchtasks.batch.client import (
    SERVICE_ERRORS,
    BatchOperationError,
    RetryPolicy,
    body_matches,
    call_with_retries,
    error_code,
    is_gone,
    live_job,
    make_client,
    operation_error,
    service_errors,
)
from batchtasks.batch.diff import (
    JOB_COMPLETION_INPUTS,
    JOB_STORED_INPUTS,
    completion_mode,
    job_change,
    same,
)
from batchtasks.batch.inputs import as_job_completion_inputs, as_job_inputs
from batchtasks.batch.retrying import RetryingProvider
from batchtasks.batch.spec import build_job_body, is_unknown

# How long a replaced job may take to finish deleting before its successor is created.
DELETE_WAIT_SECONDS = 600.0


def read_job(client: Any, props: Mapping[str, Any], policy: RetryPolicy) -> dict[str, Any] | None:
    """Return the job's REST body, or None when it is gone or being deleted."""
    return live_job(client, props["jobId"], policy)


def _live_mode(live: Mapping[str, Any]) -> str:
    """The service's completion mode (lower case on the wire) in the declared spelling."""
    return completion_mode(live.get("onAllTasksComplete"))


def _inputs_of(outs: Mapping[str, Any]) -> dict[str, Any]:
    # What read hands back as the resource's inputs, so refresh shows drift as a diff.
    return {key: value for key, value in outs.items() if key not in OUTPUT_ONLY}


# Outputs that are not inputs of BatchJob.
OUTPUT_ONLY = ("adopted",)


class BatchJobProvider(RetryingProvider):
    """Provider for BatchJob: create or adopt, read, update in place where Batch allows, else
    replace."""

    serialize_as_secret_always = False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the job's inputs; refuse terminateJob -> noAction, which Batch rejects."""
        new = as_job_inputs(news)
        problems = checks.job_problems(news, olds)
        if not problems:
            news = {**news, "onAllTasksComplete": completion_mode(new.get("onAllTasksComplete"))}
        return CheckResult(news, [CheckFailure(path, reason) for path, reason in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Update priority, maxParallelTasks, constraints, the completion mode and the owner in
        place; replace the job for anything else."""
        in_place, replace = job_change(olds, news)
        other = [key for key in JOB_STORED_INPUTS if not same(olds.get(key), news.get(key))]
        return DiffResult(
            changes=bool(in_place or replace or other), replaces=replace, delete_before_replace=True
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the job (with noAction; see BatchJobCompletion) recording its owner, waiting
        out a predecessor of the same id that is still being deleted; adopt an existing job
        that names this stack, or any matching one with `adopt: true`."""
        inputs = as_job_inputs(props)
        client = make_client(inputs["endpoint"])
        job_id = inputs["jobId"]
        body = {
            **build_job_body(props),
            "metadata": ownership.as_list(ownership.owner_entries(inputs.get("owner") or {})),
        }
        job = batch_models.BatchJobCreateOptions(body)
        policy = self.policy(props)
        deadline = policy.clock.monotonic() + DELETE_WAIT_SECONDS
        while True:
            try:
                call_with_retries(lambda: client.create_job(job), policy)
                return CreateResult(job_id, outs={**props, "adopted": False})
            except SERVICE_ERRORS as error:
                code = error_code(error) if isinstance(error, HttpResponseError) else None
                if code == "JobBeingDeleted" and policy.clock.monotonic() < deadline:
                    # A replaced job of the same id is still going; watch it until it is gone.
                    self._wait_until_gone(client, inputs["jobId"], policy)
                    continue
                if code == "JobExists":
                    adopted = self._adopt(client, props, body)
                    return CreateResult(job_id, outs={**props, "adopted": adopted})
                raise operation_error(job_id, "creating the job", error) from None

    def _wait_until_gone(self, client: Any, job_id: str, policy: RetryPolicy) -> None:
        """Poll a job that is being deleted once, pausing for the policy's poll interval while
        it still exists."""
        try:
            call_with_retries(lambda: client.get_job(job_id), policy)
        except SERVICE_ERRORS as error:
            if isinstance(error, HttpResponseError) and error.status_code == 404:
                return
            raise operation_error(job_id, "waiting for the old job to go", error) from None
        policy.clock.sleep(policy.poll_interval)

    def _adopt(self, client: Any, props: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
        """A job with this id exists: take it over when it names this stack (a lost response,
        an interrupted up) or `adopt` is set and it is the declared job; otherwise explain.
        Returns whether the job was adopted from elsewhere."""
        inputs = as_job_inputs(props)
        job_id = inputs["jobId"]
        live = read_job(client, props, self.policy(props))
        if live is None:
            raise BatchOperationError(
                f"job {job_id!r} exists but is being deleted; nothing was changed. Wait until "
                "it is gone and run again, or choose another job id."
            )
        metadata = ownership.as_dict(live.get("metadata"))
        owner = inputs.get("owner") or {}
        ours = ownership.names_stack(metadata, owner)
        if not ours and not inputs.get("adopt"):
            raise BatchOperationError(
                f"job {job_id!r} already exists and is not this stack's "
                f"({ownership.describe(metadata)}); nothing was changed. Set `adopt: true` on "
                "the job in the stack file to take it over, delete it, or choose another job "
                "id."
            )
        wanted = {key: body[key] for key in ("poolInfo", "usesTaskDependencies") if key in body}
        state = live.get("state")
        if state != "active" or not body_matches(wanted, live):
            raise BatchOperationError(
                f"job {job_id!r} already exists (state {state!r}, pool "
                f"{live.get('poolInfo', {}).get('poolId')!r}, usesTaskDependencies "
                f"{bool(live.get('usesTaskDependencies'))}) and is not the declared job (pool "
                f"{inputs.get('poolId')!r}, usesTaskDependencies "
                f"{bool(inputs.get('usesTaskDependencies'))}, state active); nothing was changed."
                " Delete it, or choose another job id."
            )
        adopted = not ours or metadata.get(ownership.ADOPTED) == "true"
        entries = {**metadata, **ownership.owner_entries(owner, adopted=adopted)}
        changes: dict[str, Any] = {}
        if entries != metadata:
            changes["metadata"] = ownership.as_list(entries)
        for key in ("priority", "maxParallelTasks", "constraints"):
            if key in body and not body_matches(body[key], live.get(key)):
                changes[key] = body[key]
        if not changes:
            return adopted  # exactly the job an earlier, interrupted create made
        options = batch_models.BatchJobUpdateOptions(changes)
        with service_errors(job_id, "taking over the existing job"):
            call_with_retries(lambda: client.update_job(job_id, options), self.policy(props))
        return adopted

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Change priority, maxParallelTasks, constraints and the owner; the completion mode is
        applied by BatchJobCompletion once the tasks are in."""
        old, new = as_job_inputs(olds), as_job_inputs(news)
        body = build_job_body(news)
        old_body = build_job_body(olds)
        changes: dict[str, Any] = {}
        for key in ("priority", "maxParallelTasks", "constraints"):
            if key in body and body[key] != old_body.get(key):
                changes[key] = body[key]
        client = make_client(new["endpoint"])
        if not same(old.get("owner"), new.get("owner")):
            live = read_job(client, news, self.policy(news)) or {}
            metadata = ownership.as_dict(live.get("metadata"))
            adopted = metadata.get(ownership.ADOPTED) == "true"
            entries = {
                **metadata,
                **ownership.owner_entries(new.get("owner") or {}, adopted=adopted),
            }
            changes["metadata"] = ownership.as_list(entries)
        if changes:
            options = batch_models.BatchJobUpdateOptions(changes)
            with service_errors(new["jobId"], "updating the job"):
                call_with_retries(
                    lambda: client.update_job(new["jobId"], options), self.policy(news)
                )
        return UpdateResult(outs={**news, "adopted": old.get("adopted", False)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Read the job back as the service has it: gone or being deleted leaves the state;
        priority, parallelism, constraints and the completion mode show drift."""
        inputs = as_job_inputs(props)
        job_id = id_ or inputs["jobId"]
        client = make_client(inputs["endpoint"])
        live = read_job(client, {**props, "jobId": job_id}, self.policy(props))
        if live is None:
            return ReadResult("", {})
        outs = dict(props)
        outs["jobId"] = live["id"]
        outs["poolId"] = live.get("poolInfo", {}).get("poolId", inputs.get("poolId"))
        if "usesTaskDependencies" in props or live.get("usesTaskDependencies"):
            outs["usesTaskDependencies"] = bool(live.get("usesTaskDependencies", False))
        for key in ("priority", "maxParallelTasks"):
            # Only settings the program declares: reading in the service's defaults for the rest
            # would show a change after every refresh.
            if key in live and inputs.get(key) is not None:
                outs[key] = live[key]
        declared = inputs.get("constraints")
        if declared and live.get("constraints"):
            outs["constraints"] = {
                key: live["constraints"].get(key, value) for key, value in declared.items()
            }
        # The service's own mode: a terminateJob job reads noAction until its
        # BatchJobCompletion has run, and that resource's read shows it too.
        outs["onAllTasksComplete"] = _live_mode(live)
        return ReadResult(live["id"], outs, _inputs_of(outs))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the job; running tasks only with replaceRunningTasks. A job already gone or
        being deleted is done. The delete is not waited for: a successor of the same id waits
        out the deleting job when it is created."""
        inputs = as_job_inputs(props)
        client = make_client(inputs["endpoint"])
        job_id = inputs["jobId"]
        policy = self.policy(props)
        try:
            if not inputs.get("replaceRunningTasks"):
                counts = call_with_retries(lambda: client.get_job_task_counts(job_id), policy)
                running = counts.task_counts.running
                if running:
                    raise BatchOperationError(
                        f"job {job_id!r} has {running} running task(s); nothing was deleted. "
                        "Wait for them to finish, or set replaceRunningTasks: true."
                    )
            # Without begin_delete_job's poller: see sdk_compat.delete_job.
            call_with_retries(lambda: sdk_compat.delete_job(client, job_id), policy)
        except SERVICE_ERRORS as error:
            if not is_gone(error):
                raise operation_error(job_id, "deleting the job", error) from None


class BatchJobCompletionProvider(RetryingProvider):
    """Provider for BatchJobCompletion: sets onAllTasksComplete once the job's tasks are in."""

    serialize_as_secret_always = False

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Re-apply when the mode changes; a new or replaced job (its id unknown, as the engine
        sends it when the job is replaced) means a new switch; a new retryPolicy alone is kept
        (an update that calls nothing)."""
        changed = [
            key
            for key in JOB_COMPLETION_INPUTS
            if is_unknown(news.get(key)) or not same(olds.get(key), news.get(key))
        ]
        moved = [key for key in changed if JOB_COMPLETION_INPUTS[key] == "replace"]
        return DiffResult(changes=bool(changed), replaces=moved, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Switch the job to the declared completion mode."""
        inputs = as_job_completion_inputs(props)
        self._apply(props)
        return CreateResult(f"{inputs['jobId']}/completion", outs=dict(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Switch the job to the new completion mode (again, when nothing changed); a change of
        stored inputs alone (the retry policy) is only kept."""
        changed = [key for key in JOB_COMPLETION_INPUTS if not same(olds.get(key), news.get(key))]
        if not changed or any(JOB_COMPLETION_INPUTS[key] != "stored" for key in changed):
            self._apply(news)
        return UpdateResult(outs=dict(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Read the job's completion mode: a job gone (or being deleted) takes the switch with
        it; a job the service reports as noAction shows as drift, so `up` switches it again."""
        inputs = as_job_completion_inputs(props)
        live = read_job(make_client(inputs["endpoint"]), props, self.policy(props))
        if live is None:
            return ReadResult("", {})
        outs = {**props, "onAllTasksComplete": _live_mode(live)}
        return ReadResult(id_ or f"{inputs['jobId']}/completion", outs, dict(outs))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Mark the job released: its job or its tasks go next (a destroy, a job replacement),
        so deleting its last incomplete tasks no longer loses anything."""
        inputs = as_job_completion_inputs(props)
        client = make_client(inputs["endpoint"])
        live = read_job(client, props, self.policy(props))
        if (
            live is None
            or _live_mode(live) != "terminateJob"
            or live.get("state") in ("completed", "terminating")
        ):
            return  # nothing left for the guard to protect
        metadata = {**ownership.as_dict(live.get("metadata")), ownership.RELEASED: "true"}
        options = batch_models.BatchJobUpdateOptions(
            metadata=[
                batch_models.BatchMetadataItem(name=item["name"], value=item["value"])
                for item in ownership.as_list(metadata)
            ]
        )
        try:
            call_with_retries(
                lambda: client.update_job(inputs["jobId"], options), self.policy(props)
            )
        except SERVICE_ERRORS as error:
            if not (
                is_gone(error) or error_code_of(error) in ("JobCompleted", "JobBeingTerminated")
            ):
                raise operation_error(
                    inputs["jobId"], "releasing the job's completion", error
                ) from None

    def _apply(self, props: Mapping[str, Any]) -> None:
        inputs = as_job_completion_inputs(props)
        mode = completion_mode(inputs.get("onAllTasksComplete"))
        if mode != "terminateJob":
            return  # noAction is how the job was created; there is nothing to switch
        client = make_client(inputs["endpoint"])
        changes: dict[str, Any] = {"onAllTasksComplete": "terminatejob"}
        live = read_job(client, props, self.policy(props))
        if live is not None:
            # Switched on again (a new job, or a re-applied one): its tasks are guarded again.
            metadata = ownership.as_dict(live.get("metadata"))
            if metadata.pop(ownership.RELEASED, None) is not None:
                changes["metadata"] = ownership.as_list(metadata)
        options = batch_models.BatchJobUpdateOptions(changes)
        try:
            call_with_retries(
                lambda: client.update_job(inputs["jobId"], options), self.policy(props)
            )
        except SERVICE_ERRORS as error:
            if error_code_of(error) != "JobCompleted":
                raise operation_error(
                    inputs["jobId"], "switching the job to terminateJob", error
                ) from None


def error_code_of(error: BaseException) -> str | None:
    """The Batch error code of a service error; None for connection failures."""
    return error_code(error) if isinstance(error, HttpResponseError) else None


class BatchJob(Resource, module="batch", name="Job"):
    """A Batch job on a pool.

    Parameters
    ----------
    name
        Resource name.
    job_id, endpoint, pool_id
        The job's id, the Batch account endpoint and the pool it runs on.
    priority, max_parallel_tasks, constraints
        Updated in place when they change (constraints: camelCase maxWallClockTime,
        maxTaskRetryCount).
    uses_task_dependencies
        Needed when any task has dependsOn; changing it means a new job.
    on_all_tasks_complete
        noAction or terminateJob; terminateJob takes effect through BatchJobCompletion.
    replace_running_tasks
        Allow deleting the job while tasks run.
    adopt
        Take over an existing job of this id that another tool made (see `ownership`).
    opts
        Pulumi resource options.

    Attributes
    ----------
    jobId
        The job's id as an output: task and completion resources take it from here, so that
        replacing the job replaces them too.
    """

    jobId: pulumi.Output[str]  # Pulumi output names follow the inputs

    def __init__(
        self,
        name: str,
        *,
        job_id: str,
        endpoint: pulumi.Input[str],
        pool_id: pulumi.Input[str],
        priority: int | None = None,
        max_parallel_tasks: int | None = None,
        constraints: Mapping[str, Any] | None = None,
        uses_task_dependencies: bool = False,
        on_all_tasks_complete: str = "noAction",
        replace_running_tasks: bool = False,
        retry_policy: Mapping[str, Any] | None = None,
        adopt: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            # Recorded in the job's metadata, so a later create can tell the job is ours.
            "owner": {
                "project": pulumi.get_project(),
                "stack": pulumi.get_stack(),
                "resource": name,
            },
            "adopt": adopt,
            "adopted": None,
            "jobId": job_id,
            "endpoint": endpoint,
            "poolId": pool_id,
            "priority": priority,
            "maxParallelTasks": max_parallel_tasks,
            "constraints": dict(constraints) if constraints else None,
            "usesTaskDependencies": uses_task_dependencies,
            "onAllTasksComplete": on_all_tasks_complete,
            "replaceRunningTasks": replace_running_tasks,
            "retryPolicy": dict(retry_policy) if retry_policy else None,
        }
        super().__init__(BatchJobProvider(), name, props, opts)


class BatchJobCompletion(Resource, module="batch", name="JobCompletion"):
    """Applies a job's onAllTasksComplete once its tasks are in (depends on the task resources).

    Parameters
    ----------
    name
        Resource name.
    job_id, endpoint
        The job and the Batch account endpoint.
    on_all_tasks_complete
        The declared mode; terminateJob is applied, noAction needs no call.
    opts
        Pulumi resource options; `depends_on` must list the job's task resources.
    """

    def __init__(
        self,
        name: str,
        *,
        job_id: pulumi.Input[str],
        endpoint: pulumi.Input[str],
        on_all_tasks_complete: str,
        retry_policy: Mapping[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "jobId": job_id,
            "endpoint": endpoint,
            "onAllTasksComplete": completion_mode(on_all_tasks_complete),
            "retryPolicy": dict(retry_policy) if retry_policy else None,
        }
        super().__init__(BatchJobCompletionProvider(), name, props, opts)
