"""Input checks shared by the Batch providers' `check` methods (pure, no network).

Each function returns (property path, reason) pairs, so `check` can report every bad property at
once as Pulumi CheckFailures. Values not known yet (preview) are skipped, never errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from batchtasks import validation
from batchtasks.batch.spec import is_unknown, is_unknown_as_a_whole

Problem = tuple[str, str]

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TASK_SPEC_KEYS = frozenset({
    "command", "image", "workingDirectory", "mounts", "runOptions", "env", "secretEnv",
    "outputs", "maxWallClockTime", "retention", "retries", "dependsOn", "elevation", "scope",
    "logs",
})
WORKING_DIRECTORIES = {"taskworkingdirectory", "containerimagedefault"}


def _known(value: Any) -> bool:
    return value is not None and not is_unknown(value)


def endpoint_problems(value: Any, path: str = "endpoint") -> list[Problem]:
    """Check a Batch account endpoint: an https URL."""
    if not _known(value):
        return [] if is_unknown(value) else [(path, "is required")]
    if not isinstance(value, str) or not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?/?", value):
        return [(path, f"{value!r} must be an https URL such as "
                       "https://<account>.<region>.batch.azure.com")]
    return []


def id_problems(value: Any, path: str) -> list[Problem]:
    """Check a Batch job or task id."""
    if is_unknown(value):
        return []
    problem = validation.batch_id_problem(value)
    return [(path, f"{value!r} {problem}")] if problem else []


def _int_problems(value: Any, path: str, low: int, high: int | None = None) -> list[Problem]:
    if not _known(value):
        return []
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        return [(path, f"{value!r} must be a whole number")]
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        return [(path, f"{value!r} must be {bound}")]
    return []


def duration_problems(value: Any, path: str) -> list[Problem]:
    """Check an ISO 8601 duration such as PT1H or P7D."""
    if not _known(value):
        return []
    problem = validation.duration_problem(value)
    return [(path, f"{value!r} {problem}")] if problem else []


def task_spec_problems(task_id: str, spec: Any, path: str,
                       containers: Mapping[str, Any] | None,
                       secret_keys: Mapping[str, Any] | None) -> list[Problem]:
    """Check one task spec as the task providers take it.

    Parameters
    ----------
    task_id
        The task's id.
    spec
        The spec (camelCase fields, without the id).
    path
        Property path of the spec, for messages.
    containers
        Declared container name -> URL, or None when not known yet.
    secret_keys
        Config key -> secret value, or None when not known yet.

    Returns
    -------
    list[Problem]
        Every (property path, reason) found.
    """
    problems = id_problems(task_id, f"{path}.id")
    if is_unknown_as_a_whole(spec):
        return problems
    if not isinstance(spec, Mapping):
        return [*problems, (path, "must be an object of task fields")]
    problems += [(f"{path}.{key}", "is not a task field") for key in spec
                 if key not in TASK_SPEC_KEYS]
    for key in ("command", "image"):
        value = spec.get(key)
        if not is_unknown(value) and (not isinstance(value, str) or not value.strip()):
            problems.append((f"{path}.{key}", f"{value!r} must be a non-empty string"))
    working_directory = spec.get("workingDirectory")
    if _known(working_directory) and str(working_directory).lower() not in WORKING_DIRECTORIES:
        problems.append((f"{path}.workingDirectory", f"{working_directory!r} must be "
                         "taskWorkingDirectory or containerImageDefault"))
    for index, mount in enumerate(spec.get("mounts") or ()):
        where = f"{path}.mounts[{index}]"
        if not isinstance(mount, Mapping):
            problems.append((where, "must have source and target"))
            continue
        for key, rule in (("source", validation.mount_source_problem),
                          ("target", validation.mount_target_problem)):
            problem = rule(mount.get(key))
            if problem:
                problems.append((f"{where}.{key}", f"{mount.get(key)!r} {problem}"))
    for index, output in enumerate(spec.get("outputs") or ()):
        where = f"{path}.outputs[{index}]"
        if not isinstance(output, Mapping) or not output.get("pattern"):
            problems.append((f"{where}.pattern", "is required"))
            continue
        problems += _container_problems(output.get("container"), f"{where}.container", containers)
        when = output.get("when", "taskCompletion")
        if validation.upload_condition_problem(when):
            problems.append((f"{where}.when", f"{when!r} "
                             f"{validation.upload_condition_problem(when)}"))
    logs = spec.get("logs")
    if isinstance(logs, Mapping):
        problems += _container_problems(logs.get("container"), f"{path}.logs.container",
                                        containers)
    for key in ("maxWallClockTime", "retention"):
        problems += duration_problems(spec.get(key), f"{path}.{key}")
    problems += _int_problems(spec.get("retries"), f"{path}.retries", -1)
    for index, dependency in enumerate(spec.get("dependsOn") or ()):
        problems += id_problems(dependency, f"{path}.dependsOn[{index}]")
    for name in list(spec.get("env") or {}) + list(spec.get("secretEnv") or {}):
        if not ENV_NAME.fullmatch(str(name)):
            problems.append((f"{path}.env.{name}", f"{name!r} is not a valid variable name"))
    for name, key in (spec.get("secretEnv") or {}).items():
        if secret_keys is not None and not is_unknown(secret_keys) and key not in secret_keys:
            problems.append((f"{path}.secretEnv.{name}",
                             f"{key!r} names no value in the resource's secrets"))
    if _known(spec.get("elevation")) and spec["elevation"] not in ("admin", "nonadmin"):
        problems.append((f"{path}.elevation", f"{spec['elevation']!r} must be admin or nonadmin"))
    if _known(spec.get("scope")) and spec["scope"] not in ("pool", "task"):
        problems.append((f"{path}.scope", f"{spec['scope']!r} must be pool or task"))
    return problems


def _container_problems(name: Any, path: str,
                        containers: Mapping[str, Any] | None) -> list[Problem]:
    if containers is None or is_unknown(containers) or is_unknown(name):
        return []
    if name not in containers:
        return [(path, f"{name!r} is not a declared container "
                       f"({', '.join(sorted(containers)) or 'none'})")]
    return []


def job_problems(news: Mapping[str, Any], olds: Mapping[str, Any]) -> list[Problem]:
    """Check a BatchJob's inputs, including the one-way onAllTasksComplete switch."""
    problems = endpoint_problems(news.get("endpoint"))
    problems += id_problems(news.get("jobId"), "jobId")
    pool_id = news.get("poolId")
    if not is_unknown(pool_id):
        problems += id_problems(pool_id, "poolId")
    problems += _int_problems(news.get("priority"), "priority", -1000, 1000)
    max_parallel = news.get("maxParallelTasks")
    if _known(max_parallel) and max_parallel != -1:
        problems += _int_problems(max_parallel, "maxParallelTasks", 1)
    mode = news.get("onAllTasksComplete", "noAction")
    if _known(mode) and str(mode).lower() not in ("noaction", "terminatejob"):
        problems.append(("onAllTasksComplete", f"{mode!r} must be noAction or terminateJob"))
    elif (str(olds.get("onAllTasksComplete", "")).lower() == "terminatejob"
          and _known(mode) and str(mode).lower() == "noaction"):
        problems.append(("onAllTasksComplete",
                         "cannot go from terminateJob back to noAction: Batch rejects that change "
                         "(400). Keep terminateJob, or give the job a new id"))
    constraints = news.get("constraints")
    if isinstance(constraints, Mapping):
        problems += duration_problems(constraints.get("maxWallClockTime"),
                                      "constraints.maxWallClockTime")
        problems += _int_problems(constraints.get("maxTaskRetryCount"),
                                  "constraints.maxTaskRetryCount", -1)
    return problems
