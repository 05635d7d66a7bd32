"""BatchJob and BatchJobCompletion: a Batch job, and the switch that lets it end, as resources.

A job declared `onAllTasksComplete: terminateJob` is created with noAction: a job that has no
tasks yet and terminateJob completes at once, and a completed job takes no tasks. The program
adds a BatchJobCompletion that depends on every task resource of the job and makes the switch
once the tasks are in (DESIGN.md, decision 8).
"""

from __future__ import annotations

import time
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
    ResourceProvider,
    UpdateResult,
)

from batchtasks.batch import checks
from batchtasks.batch.client import (
    BatchOperationError,
    RetryPolicy,
    body_matches,
    call_with_retries,
    error_code,
    error_message,
    make_client,
)
from batchtasks.batch.diff import completion_mode, job_change
from batchtasks.batch.spec import build_job_body

# How long a replaced job may take to finish deleting before its successor is created.
DELETE_WAIT_SECONDS = 600.0


def _policy(props: Mapping[str, Any]) -> RetryPolicy:
    return RetryPolicy.from_inputs(props.get("retryPolicy"))


class BatchJobProvider(ResourceProvider):
    """Provider for BatchJob: create, read, update in place where Batch allows, else replace."""

    serialize_as_secret_always = False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the job's inputs; refuse terminateJob -> noAction, which Batch rejects."""
        problems = checks.job_problems(news, olds)
        if not problems:
            news = {**news, "onAllTasksComplete": completion_mode(news.get("onAllTasksComplete"))}
        return CheckResult(news, [CheckFailure(path, reason) for path, reason in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Update priority, maxParallelTasks, constraints and the completion mode in place;
        replace the job for anything else."""
        in_place, replace = job_change(olds, news)
        return DiffResult(changes=bool(in_place or replace), replaces=replace,
                          delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the job (with noAction; see BatchJobCompletion), waiting out a predecessor of
        the same id that is still being deleted."""
        client = make_client(props["endpoint"])
        body = build_job_body(props)
        job = batch_models.BatchJobCreateOptions(body)
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while True:
            try:
                call_with_retries(lambda: client.create_job(job), _policy(props))
                break
            except HttpResponseError as error:
                code = error_code(error)
                if code == "JobBeingDeleted" and time.monotonic() < deadline:
                    # A replaced job of the same id is still going; watch it until it is gone.
                    self._wait_until_gone(client, props)
                    continue
                if code == "JobExists":
                    self._accept_existing(client, props, body)
                    break
                raise BatchOperationError(
                    f"job {props['jobId']!r}: create failed: {error_message(error)}") from error
        return CreateResult(props["jobId"], outs=dict(props))

    def _wait_until_gone(self, client: Any, props: Mapping[str, Any]) -> None:
        """Poll a job that is being deleted once, pausing briefly while it still exists."""
        try:
            call_with_retries(lambda: client.get_job(props["jobId"]), _policy(props))
        except HttpResponseError as error:
            if error.status_code == 404:
                return
            raise
        time.sleep(2)

    def _accept_existing(self, client: Any, props: Mapping[str, Any],
                         body: Mapping[str, Any]) -> None:
        """A job with this id exists (a lost response, or made earlier): adopt it when it is the
        declared job, otherwise explain."""
        live = call_with_retries(lambda: client.get_job(props["jobId"]), _policy(props)).as_dict()
        wanted = {key: body[key] for key in ("poolInfo", "usesTaskDependencies") if key in body}
        if live.get("state") in ("completed", "terminating", "deleting") or not body_matches(
                wanted, live):
            raise BatchOperationError(
                f"job {props['jobId']!r} already exists (state {live.get('state')!r}, pool "
                f"{live.get('poolInfo', {}).get('poolId')!r}) and is not the declared job. "
                "Import it, delete it, or choose another job id.")

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Change priority, maxParallelTasks and constraints; the completion mode is applied by
        BatchJobCompletion once the tasks are in."""
        body = build_job_body(news)
        changes: dict[str, Any] = {}
        for key in ("priority", "maxParallelTasks", "constraints"):
            if key in body and body[key] != build_job_body(olds).get(key):
                changes[key] = body[key]
        if changes:
            client = make_client(news["endpoint"])
            options = batch_models.BatchJobUpdateOptions(changes)
            call_with_retries(lambda: client.update_job(news["jobId"], options), _policy(news))
        return UpdateResult(outs=dict(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Read the job back: gone or being deleted leaves the state; `pulumi import` by job id
        takes the live settings."""
        job_id = id_ or props["jobId"]
        client = make_client(props["endpoint"])
        try:
            live = call_with_retries(lambda: client.get_job(job_id), _policy(props)).as_dict()
        except HttpResponseError as error:
            if error.status_code == 404:
                return ReadResult("", {})
            raise
        if live.get("state") == "deleting":
            return ReadResult("", {})
        outs = dict(props)
        outs["jobId"] = live["id"]
        outs["poolId"] = live.get("poolInfo", {}).get("poolId", props.get("poolId"))
        if "usesTaskDependencies" in props or live.get("usesTaskDependencies"):
            outs["usesTaskDependencies"] = bool(live.get("usesTaskDependencies", False))
        for key in ("priority", "maxParallelTasks"):
            # Only settings the program declares: reading in the service's defaults for the rest
            # would show a change after every refresh and make `pulumi import` fail.
            if key in live and props.get(key) is not None:
                outs[key] = live[key]
        if props.get("constraints") and live.get("constraints"):
            outs["constraints"] = {key: live["constraints"].get(key, value)
                                   for key, value in props["constraints"].items()}
        if str(live.get("onAllTasksComplete", "")).lower() == "terminatejob":
            outs["onAllTasksComplete"] = "terminateJob"
        else:
            # noAction on the service is what a terminateJob job looks like until its
            # BatchJobCompletion runs; keep the declaration.
            outs["onAllTasksComplete"] = completion_mode(props.get("onAllTasksComplete"))
        return ReadResult(live["id"], outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the job and wait until it is gone; running tasks only with replaceRunningTasks.
        Uses the delete operation, not 15.1's begin_terminate_job, which raises before sending
        when called without options."""
        client = make_client(props["endpoint"])
        job_id = props["jobId"]
        policy = _policy(props)
        try:
            if not props.get("replaceRunningTasks"):
                counts = call_with_retries(lambda: client.get_job_task_counts(job_id), policy)
                running = counts.task_counts.running
                if running:
                    raise BatchOperationError(
                        f"job {job_id!r} has {running} running task(s); nothing was deleted. "
                        "Wait for them to finish, or set replaceRunningTasks: true.")
            poller = call_with_retries(
                lambda: client.begin_delete_job(job_id, polling_interval=1), policy)
            poller.result(timeout=DELETE_WAIT_SECONDS)
        except HttpResponseError as error:
            if error.status_code != 404:
                raise


class BatchJobCompletionProvider(ResourceProvider):
    """Provider for BatchJobCompletion: sets onAllTasksComplete once the job's tasks are in."""

    serialize_as_secret_always = False

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Re-apply when the mode or the job changes."""
        changed = [key for key in ("endpoint", "jobId", "onAllTasksComplete")
                   if olds.get(key) != news.get(key)]
        moved = [key for key in changed if key != "onAllTasksComplete"]
        return DiffResult(changes=bool(changed), replaces=moved)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Switch the job to the declared completion mode."""
        self._apply(props)
        return CreateResult(f"{props['jobId']}/completion", outs=dict(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Switch the job to the new completion mode."""
        self._apply(news)
        return UpdateResult(outs=dict(news))

    def _apply(self, props: Mapping[str, Any]) -> None:
        mode = completion_mode(props.get("onAllTasksComplete"))
        if mode != "terminateJob":
            return  # noAction is how the job was created; there is nothing to switch
        client = make_client(props["endpoint"])
        options = batch_models.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob")
        try:
            call_with_retries(lambda: client.update_job(props["jobId"], options), _policy(props))
        except HttpResponseError as error:
            if error_code(error) != "JobCompleted":
                raise


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
    opts
        Pulumi resource options.
    """

    def __init__(self, name: str, *, job_id: str, endpoint: pulumi.Input[str],
                 pool_id: pulumi.Input[str], priority: int | None = None,
                 max_parallel_tasks: int | None = None,
                 constraints: Mapping[str, Any] | None = None,
                 uses_task_dependencies: bool = False, on_all_tasks_complete: str = "noAction",
                 replace_running_tasks: bool = False,
                 retry_policy: Mapping[str, Any] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "jobId": job_id, "endpoint": endpoint, "poolId": pool_id, "priority": priority,
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

    def __init__(self, name: str, *, job_id: pulumi.Input[str], endpoint: pulumi.Input[str],
                 on_all_tasks_complete: str,
                 retry_policy: Mapping[str, Any] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"jobId": job_id, "endpoint": endpoint,
                 "onAllTasksComplete": completion_mode(on_all_tasks_complete),
                 "retryPolicy": dict(retry_policy) if retry_policy else None}
        super().__init__(BatchJobCompletionProvider(), name, props, opts)
