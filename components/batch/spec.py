"""Pure builders: a declared task spec plus its job's shared inputs -> the Batch REST body.

A task spec is the resolved, camelCase dict the stack config produces for each task (see
`batchtasks.config`); the shared inputs (identity, container URLs, mount directory, registry,
secret values) come from BatchStorage and the stack config. Bodies are built with the seed's
functions in `components/task.py`, so a task submitted here is exactly what the seed would build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from azure.batch import models as batch_models

from batchtasks import fields
from batchtasks import task as task_builders
from batchtasks.pulumi_compat import UNKNOWN as UNKNOWN  # re-exported: callers compare with it
from batchtasks.pulumi_compat import is_unknown_value

SECRET_PLACEHOLDER = "[secret]"
# What reading a stored JSON text can raise: bad text, or text nested deeper than the interpreter
# recurses (json raises RecursionError); checks report either as text they cannot read.
JSON_ERRORS = (ValueError, RecursionError)
# Task fields a change to which Batch applies to an existing task (its constraints).
CONSTRAINT_FIELDS = fields.IN_PLACE_KEYS


def is_unknown_as_a_whole(value: Any) -> bool:
    """Tell whether a value itself is not yet known, without looking inside it (cheap on a
    map of thousands of tasks)."""
    return is_unknown_value(value)


def is_unknown(value: Any) -> bool:
    """Tell whether a value, or anything inside it, is not yet known (Pulumi preview)."""
    if is_unknown_value(value):
        return True
    if isinstance(value, Mapping):
        return any(is_unknown(key) or is_unknown(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(is_unknown(item) for item in value)
    return False


@dataclass(frozen=True)
class TaskContext:
    """What every task of a job shares: where it runs and what it may reach.

    Attributes
    ----------
    job_id
        The Batch job.
    identity_resource_id
        ARM id of the user-assigned identity used for uploads and the registry.
    container_urls
        Blob container name -> URL, from BatchStorage.
    mounts_dir
        Node directory under which the pool mounts each container by name.
    registry_server
        Private registry reached through the identity, or None.
    secrets
        Config key -> secret value, for `secretEnv`.
    display_name
        Marks which resource owns the task (its displayName on the service).
    """

    job_id: str
    identity_resource_id: str
    container_urls: Mapping[str, str]
    mounts_dir: str
    registry_server: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    display_name: str | None = None


def _account_and_subdomain(url: str) -> tuple[str, str]:
    """Split https://<account>.<subdomain>/<container> into account and endpoint subdomain."""
    host = urlsplit(url).hostname or ""
    account, _, subdomain = host.partition(".")
    return account, subdomain + "/"


def task_constraints(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the REST `constraints` of a spec, or None when it sets none.

    Parameters
    ----------
    spec
        A task spec.

    Returns
    -------
    dict | None
        camelCase constraints (maxWallClockTime, retentionTime, maxTaskRetryCount): the REST
        values of the fields that update in place.
    """
    body: dict[str, Any] = {}
    for name in CONSTRAINT_FIELDS:
        _place(body, fields.BY_KEY[name], spec)
    return body.get("constraints") or None


def _place(body: dict[str, Any], field: fields.TaskField, spec: Mapping[str, Any]) -> None:
    """Put a direct field's REST value at its path in the body (nothing when the spec has none)."""
    value = spec.get(field.key)
    if value is None or value == [] or value == {} or field.to_rest is None:
        return
    *parents, leaf = field.rest.split(".")
    target = body
    for parent in parents:
        target = target.setdefault(parent, {})
    target[leaf] = field.to_rest(value)


def _frozen(value: Any) -> Any:
    """Return a hashable copy of a spec value, for the shared-settings caches."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


class TaskBodyBuilder:
    """Builds the REST bodies of a job's tasks with the seed's functions.

    A sweep's tasks mostly share their container settings and user identity; the builder makes
    each distinct one once (the seed's builders are pure, so reuse gives the same body).

    Parameters
    ----------
    context
        The job's shared inputs.
    """

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        self.identity = batch_models.BatchNodeIdentityReference(
            resource_id=context.identity_resource_id
        )
        self.registry = None
        if context.registry_server:
            self.registry = batch_models.ContainerRegistryReference(
                registry_server=context.registry_server, identity_reference=self.identity
            )
        self._container_settings: dict[tuple, Any] = {}
        self._user_identities: dict[tuple, Any] = {}

    def _settings_for(self, spec: Mapping[str, Any]) -> Any:
        key = tuple(_frozen(spec.get(name)) for name in fields.CONTAINER_KEYS)
        if key not in self._container_settings:
            arguments = {
                fields.SEED_ARGS[name]: spec[name]
                for name in fields.CONTAINER_KEYS
                if spec.get(name) is not None
            }
            self._container_settings[key] = task_builders.get_container_settings(
                **arguments, az_mount_dir=self.context.mounts_dir, registry=self.registry
            )
        return self._container_settings[key]

    def _user_identity_for(self, spec: Mapping[str, Any]) -> Any:
        key = tuple(spec.get(name, fields.OMITTED.get(name)) for name in fields.IDENTITY_KEYS)
        if key not in self._user_identities:
            self._user_identities[key] = task_builders.get_user_identity(
                **{
                    fields.SEED_ARGS[name]: value
                    for name, value in zip(fields.IDENTITY_KEYS, key, strict=True)
                }
            )
        return self._user_identities[key]

    def build(self, task_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Build the REST body Batch takes to add one container task.

        Parameters
        ----------
        task_id
            The task's id in its job.
        spec
            The task spec (without its id).

        Returns
        -------
        dict
            The camelCase body of `BatchTaskCreateOptions`.

        Raises
        ------
        ValueError
            If a field is invalid or names a container without a URL.
        """
        context = self.context
        output_files = []
        for output in spec.get("outputs", ()):
            account, subdomain = _account_and_subdomain(
                _container_url(context, output["container"])
            )
            output_files.append(
                task_builders.output_task_files_to_blob(
                    output["pattern"],
                    output["container"],
                    account,
                    path=output.get("path"),
                    upload_condition=output.get("when", "taskCompletion"),
                    blob_endpoint_subdomain=subdomain,
                    compute_node_identity_reference=self.identity,
                )
            )
        log_options: dict[str, Any] = {}
        logs = spec.get("logs")
        if logs:
            account, subdomain = _account_and_subdomain(_container_url(context, logs["container"]))
            log_options = {
                "log_blob_container": logs["container"],
                "log_blob_account": account,
                "log_subdir": logs.get("subdir"),
                "log_compute_node_identity_reference": self.identity,
                "log_blob_endpoint_subdomain": subdomain,
            }
        extra: dict[str, Any] = {}
        # Sorted by name: maps cross the provider wire in no fixed order, and the same task must
        # give the same body in every process (a retry compares bodies after a lost response).
        values = {name: str(value) for name, value in spec.get("env", {}).items()}
        values.update(
            {
                name: context.secrets.get(key, SECRET_PLACEHOLDER)
                for name, key in spec.get("secretEnv", {}).items()
            }
        )
        environment = [
            batch_models.EnvironmentSetting(name=name, value=values[name])
            for name in sorted(values)
        ]
        if environment:
            extra["environment_settings"] = environment
        if context.display_name:
            extra["display_name"] = context.display_name
        options = task_builders.get_task_config(
            task_id,
            spec["command"],
            container_settings=self._settings_for(spec),
            user_identity=self._user_identity_for(spec),
            output_files=output_files or None,
            **log_options,
            **extra,
        )
        body = options.as_dict()
        for direct in fields.DIRECT_FIELDS:
            _place(body, direct, spec)
        return body


def build_task_body(task_id: str, spec: Mapping[str, Any], context: TaskContext) -> dict[str, Any]:
    """Build the REST body of one task; see `TaskBodyBuilder.build` (use the builder for many).

    Parameters
    ----------
    task_id
        The task's id in its job.
    spec
        The task spec (without its id).
    context
        The job's shared inputs.

    Returns
    -------
    dict
        The camelCase body of `BatchTaskCreateOptions`.
    """
    return TaskBodyBuilder(context).build(task_id, spec)


def _container_url(context: TaskContext, container: str) -> str:
    url = context.container_urls.get(container)
    if not url:
        raise ValueError(
            f"container: {container!r} has no URL among the declared containers "
            f"({', '.join(sorted(context.container_urls)) or 'none'})"
        )
    return url


def build_job_body(job: Mapping[str, Any], *, create: bool = True) -> dict[str, Any]:
    """Build the REST body Batch takes to add a job, from a BatchJob's inputs.

    Parameters
    ----------
    job
        BatchJob inputs: jobId, poolId, priority, maxParallelTasks, constraints,
        usesTaskDependencies, onAllTasksComplete.
    create
        True for the body the provider sends: a job declared terminateJob is created with
        noAction and switched once its tasks are in (a job with no tasks and terminateJob
        completes at once). False for the body as declared.

    Returns
    -------
    dict
        The camelCase body of `BatchJobCreateOptions`.
    """
    declared = job.get("onAllTasksComplete", "noAction")
    options = batch_models.BatchJobCreateOptions(
        id=job["jobId"],
        pool_info=batch_models.BatchPoolInfo(pool_id=job["poolId"]),
        priority=_int_or_none(job.get("priority")),
        max_parallel_tasks=_int_or_none(job.get("maxParallelTasks")),
        uses_task_dependencies=bool(job.get("usesTaskDependencies", False)),
        constraints=(
            batch_models.BatchJobConstraints(_job_constraints(job["constraints"]))
            if job.get("constraints")
            else None
        ),
        all_tasks_complete_mode="noaction" if create else declared.lower(),
    )
    return options.as_dict()


def _job_constraints(raw: Mapping[str, Any]) -> dict[str, Any]:
    constraints = dict(raw)
    if constraints.get("maxTaskRetryCount") is not None:
        constraints["maxTaskRetryCount"] = int(constraints["maxTaskRetryCount"])
    return constraints


def _int_or_none(value: Any) -> int | None:
    # Pulumi's wire format turns integers into floats.
    return None if value is None else int(value)
