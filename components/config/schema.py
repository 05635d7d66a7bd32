"""The stack file's keys: one table that both the validator and the JSON Schema read.

Each setting is a `Field`: its kind, a description, and the rule its value follows. The
validator walks these tables (shape.py), and `json_schema()` renders them, so the two cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchtasks import rules
from batchtasks.rules import Rule

NAMESPACE = "batchtasks"
LOCATION_KEY = "azure-native:location"


@dataclass(frozen=True)
class Field:
    """One setting of the stack file.

    Attributes
    ----------
    kind
        string, boolean, integer, scalar (string, number or boolean), object, list or map.
    doc
        What the setting means; published as the JSON Schema description.
    required
        Whether an object must have it.
    fields
        The keys of an object.
    item
        The kind of a list's items or of a map's values.
    key_rule
        The rule for a map's keys.
    rule
        The rule a string follows (`batchtasks.rules`; plain non-blank text when None).
    minimum, maximum, also
        The range of an integer, and single values allowed outside it.
    min_items
        The fewest items a list or map may have.
    exactly_one
        Keys of an object of which exactly one must be given.
    default
        The value used when the setting is absent (documentation and the validator).
    """

    kind: str
    doc: str
    required: bool = False
    fields: Mapping[str, Field] | None = None
    item: Field | None = None
    key_rule: Rule | None = None
    rule: Rule | None = None
    minimum: int | None = None
    maximum: int | None = None
    also: tuple[int, ...] = ()
    min_items: int = 0
    exactly_one: tuple[str, ...] = ()
    default: Any = None


def _string(doc: str, **kwargs: Any) -> Field:
    return Field("string", doc, **kwargs)


def _object(doc: str, fields: Mapping[str, Field], **kwargs: Any) -> Field:
    return Field("object", doc, fields=fields, **kwargs)


def _duration(doc: str) -> Field:
    return _string(doc, rule=rules.DURATION)


MOUNT = _object("A blob container (or a folder of one) bind-mounted into the task's container.", {
    "source": _string("Declared container name, optionally followed by /folder inside it.",
                      required=True, rule=rules.MOUNT_SOURCE),
    "target": _string("Absolute path inside the task's container.", required=True,
                      rule=rules.MOUNT_TARGET),
})


def _output(path_doc: str, templated: bool) -> Field:
    path_rule: dict[str, Any] = {} if templated else {"rule": rules.BLOB_PATH}
    return _object("Files uploaded to a writable container after the task runs.", {
        "pattern": _string("File pattern, relative to the task's working directory (at most "
                           "one '..', to the task's own directory)." + (
                               " May use the sweep's {axis} placeholders." if templated else ""),
                           required=True, **({} if templated else
                                             {"rule": rules.OUTPUT_PATTERN})),
        "container": _string("Declared container with access write.", required=True,
                             rule=rules.CONTAINER_NAME),
        "path": _string(path_doc, **path_rule),
        "when": _string("When to upload.", rule=rules.UPLOAD_CONDITION,
                        default="taskCompletion"),
    })


def _task_fields(templated: bool) -> dict[str, Field]:
    placeholder = " May use the sweep's {axis} placeholders." if templated else ""
    depends_item = (_string("Task id template.") if templated
                    else _string("Task id.", rule=rules.BATCH_ID))
    return {
        "command": _string("Command line run inside the container." + placeholder,
                           rule=rules.COMMAND_LINE),
        "image": _string("Container image, e.g. myregistry.azurecr.io/model:1.2.",
                         rule=rules.IMAGE),
        "workingDirectory": _string("Where the command starts.",
                                    rule=rules.WORKING_DIRECTORY),
        "mounts": Field("list", "Containers bind-mounted into the task.", item=MOUNT),
        "runOptions": _string("Extra docker run options, from an allow-list: "
                              + ", ".join(f"--{name}" for name in rules.RUN_OPTION_TABLE)
                              + " (see the README).", rule=rules.RUN_OPTIONS),
        "env": Field("map", "Environment variables (numbers become strings, booleans true/false)."
                     + placeholder, item=Field("scalar", "Value."), key_rule=rules.VARIABLE_NAME),
        "secretEnv": Field("map", "Environment variables read from secret config keys: "
                           "NAME: key of a `batchtasks:<key>: {secure: ...}` entry.",
                           item=_string("Config key holding a secret.",
                                        rule=rules.SECRET_KEY),
                           key_rule=rules.VARIABLE_NAME),
        "outputs": Field("list", "Files uploaded after the task runs.", item=_output(
            "Blob path in the container (a folder when the pattern has wildcards)."
            + placeholder, templated)),
        "maxWallClockTime": _duration("Longest the task may run, ISO 8601 (e.g. PT2H)."),
        "retention": _duration("How long the node keeps the task's files, ISO 8601 "
                               "(e.g. P7D)."),
        "retries": Field("integer", "Retries after a failure (-1: without limit).",
                         minimum=-1, maximum=rules.INT32_MAX),
        "dependsOn": Field("list", "Ids of tasks of the same job that must succeed first."
                           + placeholder, item=depends_item),
        "elevation": _string("User the task runs as.", rule=rules.ELEVATION,
                             default="admin"),
        "scope": _string("Auto-user scope.", rule=rules.SCOPE, default="pool"),
    }


TASK_FIELDS = _task_fields(templated=False)
SWEEP_TASK_FIELDS = _task_fields(templated=True)
_SCALAR = Field("scalar", "Axis value.")
_ASSIGNMENT = Field("map", "Axis values, by axis name.", item=_SCALAR, key_rule=rules.VARIABLE_NAME,
                    min_items=1)

TASK = _object("A task.", {
    "id": _string("Task id, unique in the job ignoring case.", required=True,
                  rule=rules.BATCH_ID),
    **TASK_FIELDS,
})
SWEEP = _object("Tasks expanded from a matrix of axis values.", {
    "id": _string("Name of the sweep.", required=True, rule=rules.BATCH_ID),
    "taskId": _string("Task id template, e.g. {disease}-{state}.", required=True),
    "matrix": Field("map", "Axes and their values; the sweep runs their cartesian product.",
                    item=Field("list", "Values of the axis.", item=_SCALAR, min_items=1),
                    key_rule=rules.VARIABLE_NAME, min_items=1, required=True),
    "include": Field("list", "Combinations to add after exclude: each gives a value for "
                     "every axis (values need not be listed in the matrix); one already "
                     "present is not added twice.",
                     item=_ASSIGNMENT),
    "exclude": Field("list", "Combinations to remove: those matching all the given axes.",
                     item=_ASSIGNMENT),
    **SWEEP_TASK_FIELDS,
})
DEFAULTS = _object("Task fields every task and sweep of the job inherits; a task's own "
                   "value replaces the default, except env, which merges by name.",
                   {name: spec for name, spec in TASK_FIELDS.items() if name != "dependsOn"})

LOGS = _object("Where each task's stdout and stderr are uploaded.", {
    "container": _string("Declared container with access write.", required=True,
                         rule=rules.CONTAINER_NAME),
    "subdir": _string("Folder in the container (default: the job id).", rule=rules.BLOB_PATH),
})
# A task as the task resources take it: the task fields, with the job's logs.
TASK_SPEC = _object("A resolved task.", {**TASK_FIELDS, "logs": LOGS})

JOB = _object("A Batch job and its tasks.", {
    "id": _string("Job id, unique ignoring case.", required=True,
                  rule=rules.BATCH_ID),
    "onAllTasksComplete": _string("What happens when every task has completed.",
                                  rule=rules.COMPLETION_MODE, default="noAction"),
    "priority": Field("integer", "Job priority.", minimum=rules.PRIORITY_MIN,
                      maximum=rules.PRIORITY_MAX, default=0),
    "maxParallelTasks": Field("integer", "Most tasks running at once (-1: no limit).",
                              minimum=1, maximum=rules.INT32_MAX, also=(-1,), default=-1),
    "replaceRunningTasks": Field("boolean", "Whether a changed task may be replaced while it "
                                 "runs.", default=False),
    "adopt": Field("boolean", "Take over an existing job of this id that another tool or "
                   "script made (its tasks with equal definitions are kept).", default=False),
    "constraints": _object("Job constraints.", {
        "maxWallClockTime": _duration("Longest the job may run, ISO 8601."),
        "maxTaskRetryCount": Field("integer", "Retries per task (-1: without limit).",
                                   minimum=-1, maximum=rules.INT32_MAX),
    }),
    "logs": LOGS,
    "defaults": DEFAULTS,
    "tasks": Field("list", "Tasks.", item=TASK, default=()),
    "sweeps": Field("list", "Sweeps.", item=SWEEP, default=()),
})

POOL = _object("The Batch pool the jobs run on.", {
    "id": _string("Pool id.", required=True, rule=rules.BATCH_ID),
    "create": Field("boolean", "Whether this stack creates the pool (needs batch.account).",
                    default=False),
    "vmSize": _string("VM size, e.g. Standard_D4s_v3 (when create is true).",
                      rule=rules.VM_SIZE),
    "maxNodes": Field("integer", "Most nodes (when create is true; default 1).", minimum=1,
                      maximum=rules.INT32_MAX),
    "image": _object("Marketplace image of the nodes (when create is true; give it with "
                     "nodeAgentSkuId, or leave both out for BatchStorage's Ubuntu 22.04 "
                     "image).", {
        "publisher": _string("Publisher.", required=True, rule=rules.TEXT),
        "offer": _string("Offer.", required=True, rule=rules.TEXT),
        "sku": _string("SKU.", required=True, rule=rules.TEXT),
        "version": _string("Version.", rule=rules.TEXT,
                           default="latest"),
    }),
    "nodeAgentSkuId": _string("Node agent SKU, e.g. 'batch.node.ubuntu 22.04' (when create "
                              "is true; given with image, or left out with it).",
                              rule=rules.TEXT),
})

TOP = {
    "resourceGroup": _string("Resource group of the stack's Azure resources.", required=True,
                             rule=rules.RESOURCE_GROUP),
    "storage": _object("The storage account and its blob containers.", {
        "account": _string("Storage account name.", required=True,
                           rule=rules.ACCOUNT_NAME),
        "create": Field("boolean", "Whether this stack creates the account.", default=False),
        "containers": Field("list", "Blob containers.", default=(), item=_object(
            "A blob container.", {
                "name": _string("Container name.", required=True,
                                rule=rules.CONTAINER_NAME),
                "access": _string("What tasks may do with it.", rule=rules.ACCESS,
                                  default="write"),
            })),
    }, required=True),
    "identity": _object("The user-assigned identity the nodes use: create one (name) or use an "
                        "existing one (resourceId).", {
        "name": _string("Name of the identity to create.", rule=rules.IDENTITY_NAME),
        "resourceId": _string("Resource id of an existing user-assigned identity.",
                              rule=rules.IDENTITY_ID),
    }, required=True, exactly_one=("name", "resourceId")),
    "registry": _object("A private container registry the nodes pull from.", {
        "server": _string("Login server, e.g. myregistry.azurecr.io.", required=True,
                          rule=rules.REGISTRY_SERVER),
        "resourceId": _string("Resource id of the registry (grants the identity AcrPull).",
                              rule=rules.REGISTRY_ID),
    }),
    "batch": _object("The Batch account and pool.", {
        "account": _string("Batch account name (required when the pool is created).",
                           rule=rules.ACCOUNT_NAME),
        "endpoint": _string("Account endpoint, e.g. https://myaccount.eastus.batch.azure.com.",
                            required=True, rule=rules.BATCH_ENDPOINT),
        "pool": POOL,
    }, required=True),
    "jobs": Field("list", "Batch jobs.", item=JOB, default=()),
}
LOCATION = _string("Azure region of the stack's resources, e.g. eastus.", required=True,
                   rule=rules.LOCATION)


def _render(spec: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"description": spec.doc}
    if spec.default is not None:
        out["default"] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    if spec.kind == "string":
        out.update((spec.rule or rules.TEXT).json_schema())
    elif spec.kind == "scalar":
        out["type"] = ["string", "number", "boolean"]
    elif spec.kind in ("boolean", "integer"):
        out["type"] = spec.kind
        bounds = {key: value for key, value in (("minimum", spec.minimum),
                                                ("maximum", spec.maximum)) if value is not None}
        if spec.also:
            out["anyOf"] = [bounds, *({"const": value} for value in spec.also)]
        else:
            out.update(bounds)
    elif spec.kind == "list":
        out["type"] = "array"
        out["items"] = _render(spec.item) if spec.item else {}
        if spec.min_items:
            out["minItems"] = spec.min_items
    elif spec.kind == "map":
        out["type"] = "object"
        out["additionalProperties"] = _render(spec.item) if spec.item else {}
        if spec.key_rule:
            out["propertyNames"] = spec.key_rule.json_schema()
        if spec.min_items:
            out["minProperties"] = spec.min_items
    else:
        fields = spec.fields or {}
        out["type"] = "object"
        out["properties"] = {name: _render(sub) for name, sub in fields.items()}
        required = [name for name, sub in fields.items() if sub.required]
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        if spec.exactly_one:
            out["oneOf"] = [{"required": [name]} for name in spec.exactly_one]
    return out


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a stack file's `config:` block.

    Keys of the `batchtasks:` namespace that are not settings must be secrets
    (``{secure: ...}``), which tasks read through `secretEnv`; other namespaces are free.

    Returns
    -------
    dict
        The schema, ready for `json.dumps`.
    """
    properties = {f"{NAMESPACE}:{name}": _render(spec) for name, spec in TOP.items()}
    properties[LOCATION_KEY] = _render(LOCATION)
    settings = "|".join(sorted(TOP))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "batchtasks stack configuration",
        "description": "The `config:` block of stacks/Pulumi.<stack>.yaml.",
        "type": "object",
        "properties": properties,
        "required": [*(f"{NAMESPACE}:{name}" for name, spec in TOP.items() if spec.required),
                     LOCATION_KEY],
        "patternProperties": {
            # Any other key of the namespace must be a secret named by some secretEnv.
            f"^{NAMESPACE}:(?!(?:{settings})$)": {
                "description": "A secret read by tasks through secretEnv.",
                "type": "object",
                "properties": {"secure": rules.SECRET_VALUE.json_schema()},
                "required": ["secure"],
                "additionalProperties": False,
            },
        },
    }

