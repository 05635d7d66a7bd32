"""Turn a stack's `batchtasks:` settings into a validated `StackConfig`, or say what is wrong.

Every problem is collected before anything is raised, so one run lists them all. Secret values
are never read: a secret key is only checked to exist and to be marked secure.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from batchtasks import fields, rules
from batchtasks.config import schema
from batchtasks.config.model import (
    BatchConfig,
    ConfigError,
    ConfigProblem,
    ContainerConfig,
    IdentityConfig,
    JobConfig,
    PoolConfig,
    RegistryConfig,
    StackConfig,
    StorageConfig,
    SweepConfig,
)
from batchtasks.config.shape import INVALID, Problems, child, clean, get, item
from batchtasks.config.sweep import (
    SpecTemplate,
    Template,
    compile_template,
    describe,
    expand_matrix,
    longest_texts,
    scalar_text,
)
from batchtasks.config.yamlfile import YamlFileError, read_yaml

PREFIX = f"{schema.NAMESPACE}:"
# Batch accepts at most this many characters of task ids in one task's dependsOn.
MAX_DEPENDS_ON_CHARS = 64_000
_POOL_CREATE_ONLY = ("vmSize", "maxNodes", "image", "nodeAgentSkuId")
# Task fields in the order a TaskSpec lists them.
_SPEC_ORDER = tuple(field.key for field in fields.STACK_TASK_FIELDS)


def _is_secure(value: Any) -> bool:
    """Whether a value is a `{secure: ...}` marker (well formed or not)."""
    return isinstance(value, Mapping) and "secure" in value


def _secure_problem(value: Mapping[Any, Any]) -> str | None:
    """Say what is wrong with a `{secure: <ciphertext>}` marker."""
    if list(value) != ["secure"]:
        return "must hold only the key secure (written by pulumi config set --secret)"
    return rules.SECRET_VALUE.problem(value["secure"])


class _Stack:
    """What the job checks need to know about the rest of the stack."""

    def __init__(
        self, problems: Problems, raw_keys: Collection[str], secure: Collection[str]
    ) -> None:
        self.problems = problems
        self.raw_keys = raw_keys
        self.secure = secure
        self.access: dict[str, str] = {}
        self.secret_refs: set[str] = set()
        # The pool's task slots per node, and whether the stack file states it.
        self.task_slots = 1
        self.task_slots_stated = False

    def container(self, name: Any, path: str, write: bool) -> None:
        """Check that a container is declared, and writable when tasks write to it."""
        if not isinstance(name, str):
            return
        base = name.split("/", 1)[0]
        if base not in self.access:
            declared = ", ".join(self.access) or "none"
            self.problems.add(path, f"is not a declared container (declared: {declared})", name)
        elif write and self.access[base] != "write":
            self.problems.add(path, "is read-only", name)

    def secret(self, key: str, path: str) -> None:
        """Check that a secretEnv names a secret config key."""
        self.secret_refs.add(key)
        if key in schema.TOP:
            self.problems.add(path, "names a setting, not a secret", key)
        elif key not in self.raw_keys and key not in self.secure:
            self.problems.add(
                path,
                f"names {PREFIX}{key}, which is not in the stack config "
                f"(set it with: pulumi config set --secret {key} <value>)",
                key,
            )
        elif key not in self.secure:
            self.problems.add(
                path,
                f"names {PREFIX}{key}, which is not a secret (set it with: "
                f"pulumi config set --secret {key} <value>)",
                key,
            )


class _Fields:
    """A task's fields after merging the job's defaults, each with the path it was written at."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.paths: dict[str, str] = {}
        self.env: dict[str, tuple[Any, str]] = {}

    def take(self, fields: Mapping[str, Any], path: str) -> None:
        for key, value in fields.items():
            if value is INVALID or key == "id":
                continue
            if key == "env":
                for name, text in value.items():
                    if text is not INVALID:
                        self.env[name] = (text, child(child(path, "env"), name))
            else:
                self.values[key] = value
                self.paths[key] = child(path, key)

    def get(self, key: str) -> Any:
        return self.values.get(key)


def _check_fields(fields: Mapping[str, Any], path: str, stack: _Stack) -> None:
    """Check one task, sweep or defaults block's own fields against the declared containers."""
    targets: dict[str, int] = {}
    for index, mount in enumerate(get(fields, "mounts", [])):
        mount_path = item(child(path, "mounts"), index)
        stack.container(get(mount, "source"), f"{mount_path}.source", write=False)
        target = get(mount, "target")
        if target is not None:
            # Compared as the container runtime reads them: //data/./x/ is /data/x.
            first = targets.setdefault(rules.normalise_mount_target(target), index)
            if first != index:
                stack.problems.add(
                    f"{mount_path}.target",
                    f"repeats the target of mounts[{first}] (the same folder once normalised)",
                    target,
                )
    for index, output in enumerate(get(fields, "outputs", [])):
        stack.container(
            get(output, "container"), f"{item(child(path, 'outputs'), index)}.container", write=True
        )
    for name, key in get(fields, "secretEnv", {}).items():
        if key is not INVALID:
            stack.secret(key, child(child(path, "secretEnv"), name))


def _check_merged(merged: _Fields, path: str, stack: _Stack) -> None:
    """Check what only shows once the defaults are merged in."""
    problems = stack.problems
    for key in ("image", "command"):
        if key not in merged.values:
            problems.add(child(path, key), "is required (on the task or in the job's defaults)")
    slots = merged.get("requiredSlots")
    if slots is not None and slots > stack.task_slots:
        stated = "" if stack.task_slots_stated else ", the default; state the pool's value there"
        problems.add(
            merged.paths["requiredSlots"],
            f"is more than batch.pool.taskSlotsPerNode "
            f"({stack.task_slots}{stated}): a task "
            "that needs more slots than a node has "
            "never runs",
            slots,
        )
    secret_env = merged.get("secretEnv") or {}
    for name in secret_env:
        if name in merged.env:
            problems.add(
                child(merged.paths["secretEnv"], name),
                f"is also set in env ({merged.env[name][1]})",
            )


def _spec(
    task_id: Any, merged: _Fields, logs: dict[str, str] | None, rendered: Mapping[str, Any]
) -> dict[str, Any]:
    """Assemble a TaskSpec: camelCase, defaults merged, empty values left out (a sweep's
    template spec too, given the id's and the templated fields' markers)."""
    out: dict[str, Any] = {"id": task_id}
    for key in _SPEC_ORDER:
        value = rendered[key] if key in rendered else merged.values.get(key)
        if key == "env":
            value = rendered.get("env") or {
                name: scalar_text(text) for name, (text, _) in merged.env.items()
            }
        elif key == "mounts" and value:
            value = [
                {"source": mount["source"], "target": mount["target"]}
                for mount in value
                if mount is not INVALID
            ]
        elif key == "outputs" and value and "outputs" not in rendered:
            value = [
                _output(output, output.get("path")) for output in value if output is not INVALID
            ]
        elif isinstance(value, dict | list) and key not in rendered:
            # Defaults are shared by every task; each spec gets its own copy.
            value = copy.copy(value)
        if value is None or value == "" or value == [] or value == {}:
            continue
        if fields.OMITTED.get(key) == value:
            continue
        out[key] = value
    if logs:
        out["logs"] = dict(logs)
    return out


def _output(output: Mapping[str, Any], path: str | None) -> dict[str, Any]:
    out = {"pattern": get(output, "pattern"), "container": get(output, "container")}
    if path:
        out["path"] = path
    out["when"] = get(output, "when", "taskCompletion")
    return out


class _Made:
    """How a sweep made a task, spelled out only when a message says it: a million tasks would
    otherwise hold a million sentences no one reads.

    Parameters
    ----------
    path
        Key path of the sweep.
    axes, combination
        The matrix's axis names and this task's values.
    as_origin
        Spell it as the task's origin (`<path> (a='x', ...)`) rather than as a clause
        (` (made from a='x', ...)`).
    """

    __slots__ = ("as_origin", "axes", "combination", "path")

    def __init__(
        self, path: str, axes: Sequence[str], combination: Sequence[Any], as_origin: bool
    ) -> None:
        self.path = path
        self.axes = axes
        self.combination = combination
        self.as_origin = as_origin

    def __str__(self) -> str:
        described = describe(self.axes, self.combination)
        return f"{self.path} ({described})" if self.as_origin else f" (made from {described})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


# What a task without dependsOn records for the dependency check: one shared entry.
_NO_DEPENDS: tuple[list[str], str, str] = ([], "", "")


class _Job:
    """The tasks of one job as they are built, for the checks that span the whole job."""

    def __init__(self, job_id: str, problems: Problems) -> None:
        self.job_id = job_id
        self.problems = problems
        self.by_lower: dict[str, tuple[str, str | _Made]] = {}
        self.ids: list[str] = []
        self.depends: list[tuple[list[str], str, str | _Made]] = []
        # Set when a sweep could not be expanded: its ids are unknown, so a dependsOn naming
        # no task may only be a consequence.
        self.incomplete = False
        self.on_failure_paths: dict[str, None] = {}

    def note_on_failure(self, merged: _Fields) -> None:
        """Remember where a task's onFailure was written, to check the job uses dependencies."""
        if "onFailure" in merged.values:
            self.on_failure_paths.setdefault(merged.paths["onFailure"], None)

    def check_on_failure(self, uses_dependencies: bool) -> None:
        """onFailure acts on dependents: Batch refuses it in a job without task dependencies."""
        if uses_dependencies:
            return
        for path in self.on_failure_paths:
            self.problems.add(
                path,
                f"has no effect: no task of job {self.job_id!r} has "
                "dependsOn, and Batch takes a dependency action only in a "
                "job that uses task dependencies",
            )

    def add(
        self,
        task_id: str,
        origin: str | _Made,
        where: str | _Made,
        id_path: str,
        depends: list[str],
        depends_path: str,
        cap_key: str | None = None,
    ) -> None:
        """Record a task; `origin` says where it was declared, `where` how a sweep made it."""
        lower = task_id.lower()
        if lower in self.by_lower:
            other, other_origin = self.by_lower[lower]
            self.problems.add(
                id_path,
                f"repeats task id {other!r} of {other_origin}; task ids "
                f"are unique in a job, ignoring case{where}",
                task_id,
                cap_key=cap_key,
            )
            return
        self.by_lower[lower] = (task_id, origin)
        self.ids.append(task_id)
        self.depends.append((depends, depends_path, where) if depends else _NO_DEPENDS)

    def check_dependencies(self) -> bool:
        """Check every dependsOn names a task of the job, and that there is no cycle."""
        index = {task_id: number for number, task_id in enumerate(self.ids)}
        edges: list[list[int]] = [[] for _ in self.ids]
        used = False
        for number, (depends, path, where) in enumerate(self.depends):
            used = used or bool(depends)
            task_id = self.ids[number]
            if sum(map(len, depends)) + len(depends) - 1 > MAX_DEPENDS_ON_CHARS:
                self.problems.add(
                    path,
                    f"lists {len(depends)} task ids; Batch accepts at most "
                    f"{MAX_DEPENDS_ON_CHARS} characters of them{where}",
                )
            for dep in depends:
                if dep == task_id:
                    self.problems.add(
                        path, f"makes task {task_id!r} depend on itself{where}", dep, cap_key=path
                    )
                elif dep in index:
                    edges[number].append(index[dep])
                elif not self.incomplete:
                    close = self.by_lower.get(dep.lower())
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    self.problems.add(
                        path,
                        f"names no task of job {self.job_id!r}{hint}{where}",
                        dep,
                        cap_key=path,
                    )
        for cycle in _cycles(edges):
            names = " -> ".join(self.ids[number] for number in [*cycle, cycle[0]])
            self.problems.add(self.depends[cycle[0]][1], f"makes a dependency cycle: {names}")
        return used


def _cycles(edges: list[list[int]]) -> list[list[int]]:
    """Return one cycle from each strongly connected group of tasks that has one (Tarjan)."""
    count = len(edges)
    order = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    groups: list[list[int]] = []
    counter = 0
    for root in range(count):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            node, next_edge = work.pop()
            if next_edge == 0:
                order[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            if next_edge < len(edges[node]):
                work.append((node, next_edge + 1))
                target = edges[node][next_edge]
                if order[target] == -1:
                    work.append((target, 0))
                elif on_stack[target]:
                    low[node] = min(low[node], order[target])
                continue
            if low[node] == order[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    cycles = []
    for group in groups:
        members = set(group)
        start = min(group)
        seen: dict[int, int] = {}
        walk: list[int] = []
        node = start
        while node not in seen:
            seen[node] = len(walk)
            walk.append(node)
            node = next(target for target in edges[node] if target in members)
        cycles.append(walk[seen[node] :])
    return cycles


def _storage(cleaned: Any, stack: _Stack) -> StorageConfig | None:
    if not isinstance(cleaned, dict):
        return None
    path = f"{PREFIX}storage"
    containers = []
    for index, entry in enumerate(get(cleaned, "containers", [])):
        name = get(entry, "name")
        if name is None:
            continue
        if name in stack.access:
            first = next(
                number
                for number, other in enumerate(cleaned["containers"])
                if get(other, "name") == name
            )
            stack.problems.add(
                f"{item(f'{path}.containers', index)}.name",
                f"repeats the container of containers[{first}]",
                name,
            )
            continue
        stack.access[name] = get(entry, "access", "write")
        containers.append(ContainerConfig(name, stack.access[name]))
    account = get(cleaned, "account")
    if account is None:
        return None
    return StorageConfig(account, get(cleaned, "create", False), tuple(containers))


def _identity(cleaned: Any) -> IdentityConfig | None:
    if not isinstance(cleaned, dict):
        return None
    return IdentityConfig(get(cleaned, "name"), get(cleaned, "resourceId"))


def _registry(cleaned: Any, problems: Problems) -> RegistryConfig | None:
    if not isinstance(cleaned, dict) or get(cleaned, "server") is None:
        return None
    server, resource_id = cleaned["server"], get(cleaned, "resourceId")
    host = server.split(":", 1)[0].lower()
    if resource_id and host.endswith(".azurecr.io"):
        name = (
            rules.arm_id_parts(resource_id)[2] if rules.REGISTRY_ID.fullmatch(resource_id) else ""
        )
        if name.lower() != host.split(".", 1)[0]:
            problems.add(
                f"{PREFIX}registry.resourceId",
                f"names registry {name!r}, but registry.server is {server!r}",
                resource_id,
            )
    return RegistryConfig(server, resource_id)


def _batch(cleaned: Any, stack: _Stack) -> BatchConfig | None:
    if not isinstance(cleaned, dict):
        return None
    problems = stack.problems
    path = f"{PREFIX}batch"
    account, endpoint = get(cleaned, "account"), get(cleaned, "endpoint")
    if account and endpoint:
        match = rules.BATCH_ENDPOINT.fullmatch(endpoint)
        host = endpoint.removeprefix("https://").split("/", 1)[0].split(":", 1)[0].lower()
        if match and ".batch." in host and match.group(1).lower() != account:
            problems.add(
                f"{path}.endpoint",
                f"is not the endpoint of batch.account {account!r} "
                f"(expected https://{account}.<region>.batch."
                "azure.com)",
                endpoint,
            )
    pool = get(cleaned, "pool")
    if not isinstance(pool, dict):
        return None
    pool_path = f"{path}.pool"
    create = get(pool, "create", False)
    if create:
        if "account" not in cleaned:
            problems.add(f"{path}.account", "is required when batch.pool.create is true")
        if "vmSize" not in pool:
            problems.add(child(pool_path, "vmSize"), "is required when create is true")
        # Without both, the pool takes BatchStorage's image and node agent, which belong
        # together; a custom image needs its own node agent SKU, and the other way round.
        for key, other in (("image", "nodeAgentSkuId"), ("nodeAgentSkuId", "image")):
            if key in pool and other not in pool:
                problems.add(
                    child(pool_path, other),
                    f"is required when {key} is given (an "
                    "image and its node agent SKU go together; leave both out for "
                    "the default Ubuntu 22.04 image)",
                )
    else:
        for key in _POOL_CREATE_ONLY:
            if key in pool:
                problems.add(child(pool_path, key), "is only used when create is true")
    image = get(pool, "image")
    if image is not None:
        image = {
            key: get(image, key, "latest" if key == "version" else None)
            for key in ("publisher", "offer", "sku", "version")
        }
    slots = get(pool, "taskSlotsPerNode")
    stack.task_slots, stack.task_slots_stated = slots or 1, slots is not None
    pool_id = get(pool, "id")
    if endpoint is None or pool_id is None:
        return None
    return BatchConfig(
        account,
        endpoint,
        PoolConfig(
            pool_id,
            create,
            get(pool, "vmSize"),
            get(pool, "maxNodes", 1 if create else None),
            image,
            get(pool, "nodeAgentSkuId"),
            slots,
        ),
    )


def _logs(cleaned: Any, job_id: str, path: str, stack: _Stack) -> dict[str, str] | None:
    if not isinstance(cleaned, dict) or get(cleaned, "container") is None:
        return None
    stack.container(cleaned["container"], f"{path}.container", write=True)
    return {"container": cleaned["container"], "subdir": get(cleaned, "subdir", job_id)}


def _plain_task(
    task: dict[str, Any],
    defaults: Any,
    path: str,
    defaults_path: str,
    logs: dict[str, str] | None,
    job: _Job,
    stack: _Stack,
) -> dict[str, Any] | None:
    _check_fields(task, path, stack)
    merged = _Fields()
    if isinstance(defaults, dict):
        merged.take(defaults, defaults_path)
    merged.take(task, path)
    _check_merged(merged, path, stack)
    job.note_on_failure(merged)
    task_id = get(task, "id")
    if task_id is None:
        return None
    depends = [dep for dep in get(task, "dependsOn", []) if dep is not INVALID]
    job.add(task_id, path, "", f"{path}.id", depends, f"{path}.dependsOn")
    if stack.problems:
        return None
    spec = _spec(task_id, merged, logs, {})
    if problem := rules.task_body_problem(spec):
        stack.problems.add(path, problem)
        return None
    return spec


def _sweep(
    sweep: dict[str, Any],
    defaults: Any,
    path: str,
    defaults_path: str,
    logs: dict[str, str] | None,
    job: _Job,
    stack: _Stack,
) -> SweepConfig | None:
    problems = stack.problems
    _check_fields(sweep, path, stack)
    merged = _Fields()
    if isinstance(defaults, dict):
        merged.take(defaults, defaults_path)
    merged.take(
        {
            key: value
            for key, value in sweep.items()
            if key not in ("taskId", "matrix", "include", "exclude", "shards")
        },
        path,
    )
    _check_merged(merged, path, stack)
    job.note_on_failure(merged)
    matrix = get(sweep, "matrix")
    if not isinstance(matrix, dict):
        job.incomplete = True
        return None
    axes = {axis: number for number, axis in enumerate(matrix)}
    combos = expand_matrix(
        matrix, get(sweep, "include", []), get(sweep, "exclude", []), path, problems
    )

    def compiled(text: Any, text_path: str) -> Template | None:
        if not isinstance(text, str):
            return Template((scalar_text(text),))
        return compile_template(text, axes, text_path, problems)

    id_text = get(sweep, "taskId")
    task_id = compiled(id_text, f"{path}.taskId") if id_text is not None else None
    command = (
        compiled(merged.get("command"), merged.paths["command"])
        if "command" in merged.values
        else None
    )
    env = {
        name: (compiled(text, text_path), text_path)
        for name, (text, text_path) in merged.env.items()
    }
    outputs_path = merged.paths.get("outputs", "")
    outputs = [
        (
            index,
            output,
            compiled(output["pattern"], f"{item(outputs_path, index)}.pattern")
            if get(output, "pattern") is not None
            else None,
            compiled(output["path"], f"{item(outputs_path, index)}.path")
            if get(output, "path") is not None
            else None,
        )
        for index, output in enumerate(merged.get("outputs") or [])
        if output is not INVALID
    ]
    depends_path = merged.paths.get("dependsOn", f"{path}.dependsOn")
    depends = [
        compiled(dep, item(depends_path, index))
        for index, dep in enumerate(merged.get("dependsOn") or [])
        if dep is not INVALID
    ]
    if combos is None or task_id is None:
        job.incomplete = True
        return None
    axis_names = list(matrix)
    id_path = f"{path}.taskId"
    values: list[tuple[str, ...]] = []
    for combo in combos:
        # Text values are their own text: the combination then serves as the texts.
        texts = (
            combo
            if all(type(value) is str for value in combo)
            else tuple(scalar_text(value) for value in combo)
        )
        where = _Made(path, axis_names, combo, as_origin=False)
        produced = task_id.render(texts)
        if rules.BATCH_ID.problem(produced):
            job.incomplete = True
            problems.add(
                id_path,
                f"makes an invalid task id: {rules.BATCH_ID.problem(produced)}{where}",
                produced,
                cap_key=id_path,
            )
            continue
        if command is not None and not command.constant:
            produced_command = command.render(texts)
            if not produced_command.strip():
                problems.add(
                    merged.paths["command"],
                    f"makes an empty command{where}",
                    produced_command,
                    cap_key=merged.paths["command"],
                )
        for index, output, pattern_template, template in outputs:
            out_path = template.render(texts) if template is not None else None
            pattern = (
                pattern_template.render(texts)
                if pattern_template is not None
                else get(output, "pattern")
            )
            for key, rule, text in (
                ("path", rules.BLOB_PATH, out_path),
                ("pattern", rules.OUTPUT_PATTERN, pattern),
            ):
                problem = rule.problem(text) if text is not None else None
                if problem:
                    where_path = f"{item(outputs_path, index)}.{key}"
                    problems.add(
                        where_path,
                        f"makes a bad {key}: {problem}{where}",
                        text,
                        cap_key=where_path,
                    )
        produced_depends = [template.render(texts) for template in depends if template is not None]
        job.add(
            produced,
            _Made(path, axis_names, combo, as_origin=True),
            where,
            id_path,
            produced_depends,
            depends_path,
            cap_key=id_path,
        )
        values.append(texts)
    sweep_id = get(sweep, "id")
    shards = get(sweep, "shards")
    if shards is not None and (problem := rules.shard_count_problem(shards)):
        problems.add(f"{path}.shards", problem, shards)
    if problems or sweep_id is None:
        return None
    renderer = SpecTemplate(
        _spec(task_id.marker(), merged, logs, _marked_fields(command, env, outputs, depends))
    )
    # A body only grows with the length of each text in it: when the task made of each axis's
    # longest texts fits, every task does, and only a sweep near the limit is sized task by task.
    if rules.task_body_problem(renderer.render(longest_texts(values, len(axis_names)))):
        for texts in values:
            spec = renderer.render(texts)
            if problem := rules.task_body_problem(spec):
                problems.add(path, f"{problem} (task {spec['id']!r})", cap_key=f"{path} body")
    if problems:
        return None
    return SweepConfig(sweep_id, renderer, tuple(axis_names), tuple(values), shards)


def _marked_fields(
    command: Template | None,
    env: Mapping[str, tuple[Template | None, str]],
    outputs: list[tuple[int, Any, Template | None, Template | None]],
    depends: list[Template | None],
) -> dict[str, Any]:
    """Return a sweep's templated fields as its template spec holds them (markers where the
    text is made from placeholders), for `_spec` to merge with the rest."""
    marked: dict[str, Any] = {}
    if command is not None and not command.constant:
        marked["command"] = command.marker()
    marked["env"] = {
        name: template.marker() for name, (template, _) in env.items() if template is not None
    }
    if outputs:
        marked["outputs"] = [
            _output(
                {
                    **output,
                    "pattern": pattern.marker() if pattern is not None else get(output, "pattern"),
                },
                path.marker() if path is not None else None,
            )
            for _index, output, pattern, path in outputs
        ]
    marked_depends = [template.marker() for template in depends if template is not None]
    if marked_depends:
        marked["dependsOn"] = marked_depends
    return marked


def _job(cleaned: dict[str, Any], path: str, stack: _Stack) -> JobConfig | None:
    job_id = get(cleaned, "id")
    job = _Job(job_id or "", stack.problems)
    logs = _logs(get(cleaned, "logs"), job_id or "", f"{path}.logs", stack)
    defaults = get(cleaned, "defaults")
    defaults_path = f"{path}.defaults"
    if isinstance(defaults, dict):
        _check_fields(defaults, defaults_path, stack)
    tasks = []
    for index, task in enumerate(get(cleaned, "tasks", [])):
        if isinstance(task, dict):
            tasks.append(
                _plain_task(
                    task, defaults, item(f"{path}.tasks", index), defaults_path, logs, job, stack
                )
            )
    sweeps = []
    sweep_names: dict[str, int] = {}
    for index, sweep in enumerate(get(cleaned, "sweeps", [])):
        if not isinstance(sweep, dict):
            continue
        sweep_path = item(f"{path}.sweeps", index)
        name = get(sweep, "id")
        if name is not None and sweep_names.setdefault(name.lower(), index) != index:
            stack.problems.add(
                f"{sweep_path}.id", f"repeats the id of sweeps[{sweep_names[name.lower()]}]", name
            )
        sweeps.append(_sweep(sweep, defaults, sweep_path, defaults_path, logs, job, stack))
    uses_dependencies = job.check_dependencies()
    job.check_on_failure(uses_dependencies)
    constraints = get(cleaned, "constraints")
    if isinstance(constraints, dict):
        constraints = {
            key: value for key, value in constraints.items() if value is not INVALID
        } or None
    if stack.problems or job_id is None:
        return None
    return JobConfig(
        id=job_id,
        on_all_tasks_complete=get(cleaned, "onAllTasksComplete", "noAction"),
        priority=get(cleaned, "priority", 0),
        max_parallel_tasks=get(cleaned, "maxParallelTasks", -1),
        constraints=constraints,
        replace_running_tasks=get(cleaned, "replaceRunningTasks", False),
        uses_task_dependencies=uses_dependencies,
        tasks=tuple(task for task in tasks if task is not None),
        sweeps=tuple(sweep for sweep in sweeps if sweep is not None),
        adopt=get(cleaned, "adopt", False),
    )


def _jobs(cleaned: Any, stack: _Stack) -> list[JobConfig | None]:
    jobs: list[JobConfig | None] = []
    names: dict[str, int] = {}
    for index, job in enumerate(cleaned if isinstance(cleaned, list) else []):
        if not isinstance(job, dict):
            continue
        path = item(f"{PREFIX}jobs", index)
        job_id = get(job, "id")
        if job_id is not None and names.setdefault(job_id.lower(), index) != index:
            stack.problems.add(
                f"{path}.id",
                f"repeats the id of jobs[{names[job_id.lower()]}] "
                "(job ids are unique ignoring case)",
                job_id,
            )
        jobs.append(_job(job, path, stack))
    return jobs


def parse_stack_config(
    raw: Mapping[str, Any], location: str | None = None, secure_keys: Collection[str] | None = None
) -> StackConfig:
    """Validate a stack's `batchtasks:` settings and resolve its jobs' tasks.

    Parameters
    ----------
    raw
        The `batchtasks:` namespace without its prefix: top-level key to value.
    location
        The `azure-native:location` setting.
    secure_keys
        Names of the top-level keys that hold secrets; None to recognise the stack file's
        ``{secure: ...}`` markers in `raw`. Secret values are never read or shown.

    Returns
    -------
    StackConfig
        The validated settings, with every task resolved to a TaskSpec dict.

    Raises
    ------
    ConfigError
        Listing every problem found, each with its key path.
    """
    problems = Problems()
    if not isinstance(raw, Mapping):
        problems.add(schema.NAMESPACE, "settings must be a mapping of keys to values")
        raise ConfigError(problems.result())
    if secure_keys is None:
        secure = {key for key, value in raw.items() if _is_secure(value)}
        for key in sorted(secure, key=str):
            # The value itself is never shown: it is meant to be a secret.
            problem = _secure_problem(raw[key])
            if problem:
                problems.add(f"{PREFIX}{key}.secure", problem)
    else:
        secure = set(secure_keys)
    stack = _Stack(problems, set(raw), secure)
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        if key in schema.TOP:
            if key in secure:
                problems.add(
                    f"{PREFIX}{key}",
                    "is a secret; settings are plain values "
                    "(a secret belongs in its own key, named by a "
                    "task's secretEnv)",
                )
            else:
                cleaned[key] = clean(value, schema.TOP[key], f"{PREFIX}{key}", problems)
    for key, spec in schema.TOP.items():
        if spec.required and key not in raw:
            problems.add(f"{PREFIX}{key}", "is required")
    if location is None:
        problems.add(schema.LOCATION_KEY, "is required (the Azure region, e.g. eastus)")
    else:
        clean(location, schema.LOCATION, schema.LOCATION_KEY, problems)
    storage = _storage(cleaned.get("storage"), stack)
    identity = _identity(cleaned.get("identity"))
    registry = _registry(cleaned.get("registry"), problems)
    batch = _batch(cleaned.get("batch"), stack)
    jobs = _jobs(cleaned.get("jobs", []), stack)
    for key in raw:
        if key not in schema.TOP and key not in stack.secret_refs:
            close = (
                difflib.get_close_matches(key, list(schema.TOP), n=1)
                if isinstance(key, str)
                else []
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(
                f"{PREFIX}{key}",
                f"unknown key{hint} (expected one of: "
                f"{', '.join(schema.TOP)}; a key holding a secret "
                "must be named by some task's secretEnv)",
            )
    if problems or storage is None or identity is None or batch is None or location is None:
        raise ConfigError(problems.result())
    return StackConfig(
        get(cleaned, "resourceGroup"),
        location,
        storage,
        identity,
        registry,
        batch,
        tuple(job for job in jobs if job is not None),
    )


def load_stack_file(path: str | Path) -> StackConfig:
    """Read and validate a stack file (stacks/Pulumi.<stack>.yaml).

    Parameters
    ----------
    path
        The stack file. Keys ``batchtasks:<key>`` and ``azure-native:location`` of its
        `config:` block are read; other namespaces are left to their owners. Secure values are
        never decrypted.

    Returns
    -------
    StackConfig
        The validated settings.

    Raises
    ------
    ConfigError
        If the file is not YAML, or listing every problem of its settings.
    OSError
        If the file cannot be read.
    """
    return load_stack_text(Path(path).read_bytes().decode("utf-8", "surrogateescape"))


def load_stack_text(text: str) -> StackConfig:
    """Validate a stack file's text (see `load_stack_file`).

    Parameters
    ----------
    text
        The stack file's content; undecodable bytes (as surrogate escapes) are refused.

    Returns
    -------
    StackConfig
        The validated settings.

    Raises
    ------
    ConfigError
        If the text is not YAML, or listing every problem of its settings.
    """
    bad = next((index for index, char in enumerate(text) if "\udc80" <= char <= "\udcff"), None)
    if bad is not None:
        line = text.count("\n", 0, bad) + 1
        raise ConfigError([ConfigProblem("config", f"is not UTF-8 text (line {line})")])
    try:
        document, read_problems = read_yaml(text, _is_ours)
    except YamlFileError as error:
        raise ConfigError([error.problem]) from None
    if document is None:
        document = {}
    config = document.get("config") if isinstance(document, Mapping) else INVALID
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ConfigError(
            [
                ConfigProblem(
                    "config", "must be a mapping of keys to values (the stack file's config: block)"
                )
            ]
        )
    raw: dict[str, Any] = {}
    problems = Problems()
    location = None
    for key, value in config.items():
        if not isinstance(key, str) or ":" not in key:
            problems.add(
                child("config", key),
                f"is not namespaced (write {PREFIX}{key} for a setting of this project)",
            )
        elif key == schema.LOCATION_KEY:
            location = value
        elif key.startswith(PREFIX):
            raw[key.removeprefix(PREFIX)] = value
    found = [*read_problems, *problems.result()]
    try:
        stack = parse_stack_config(raw, location)
    except ConfigError as error:
        # A value the reader already refused is not reported twice.
        refused = {problem.path for problem in read_problems}
        raise ConfigError(
            [*found, *(problem for problem in error.problems if problem.path not in refused)]
        ) from None
    if found:
        raise ConfigError(found)
    return stack


def _is_ours(key: str) -> bool:
    """Whether a config key's plain scalars must keep their text (the project's settings)."""
    return key.startswith(PREFIX) or key == schema.LOCATION_KEY
