"""The stack file's keys: one table that both the validator and the JSON Schema read.

Each setting is a `Field`: its kind, a description, and the rule its value follows. The
validator walks these tables (shape.py), and `json_schema()` renders them, so the two cannot
drift apart.
"""

from __future__ import annotations

from typing import Any

from batchtasks import fields, rules
from batchtasks.fields import Field

NAMESPACE = "batchtasks"
LOCATION_KEY = "azure-native:location"


_string = fields.string
_object = fields.obj


def _task_fields(templated: bool) -> dict[str, Field]:
    """Return the task fields a task (or, templated, a sweep) writes: from the field table."""
    return {
        field.key: field.as_swept if templated else field.field
        for field in fields.STACK_TASK_FIELDS
    }


TASK_FIELDS = _task_fields(templated=False)
SWEEP_TASK_FIELDS = _task_fields(templated=True)
_SCALAR = Field("scalar", "Axis value.")
_ASSIGNMENT = Field(
    "map", "Axis values, by axis name.", item=_SCALAR, key_rule=rules.VARIABLE_NAME, min_items=1
)

TASK = _object(
    "A task.",
    {
        "id": _string(
            "Task id, unique in the job ignoring case.", required=True, rule=rules.BATCH_ID
        ),
        **TASK_FIELDS,
    },
)
SWEEP = _object(
    "Tasks expanded from a matrix of axis values.",
    {
        "id": _string("Name of the sweep.", required=True, rule=rules.BATCH_ID),
        "taskId": _string("Task id template, e.g. {disease}-{state}.", required=True),
        "matrix": Field(
            "map",
            "Axes and their values; the sweep runs their cartesian product.",
            item=Field("list", "Values of the axis.", item=_SCALAR, min_items=1),
            key_rule=rules.VARIABLE_NAME,
            min_items=1,
            required=True,
        ),
        "include": Field(
            "list",
            "Combinations to add after exclude: each gives a value for "
            "every axis (values need not be listed in the matrix); one already "
            "present is not added twice.",
            item=_ASSIGNMENT,
        ),
        "exclude": Field(
            "list", "Combinations to remove: those matching all the given axes.", item=_ASSIGNMENT
        ),
        "shards": fields.integer(
            "How many task sets the sweep is split over, a power of two (default: the fewest "
            "that hold at most 12,500 tasks each). Fixed once the sweep exists: give the count "
            "its state has when the task count crosses a threshold.",
            rules.SHARD_COUNT,
        ),
        **SWEEP_TASK_FIELDS,
    },
)
DEFAULTS = _object(
    "Task fields every task and sweep of the job inherits; a task's own "
    "value replaces the default, except env, which merges by name.",
    {field.key: field.field for field in fields.STACK_TASK_FIELDS if field.in_defaults},
)

# A task as the task resources take it: every field of the table.
TASK_SPEC = _object("A resolved task.", {field.key: field.field for field in fields.TASK_FIELDS})

JOB = _object(
    "A Batch job and its tasks.",
    {
        "id": _string("Job id, unique ignoring case.", required=True, rule=rules.BATCH_ID),
        "onAllTasksComplete": _string(
            "What happens when every task has completed.",
            rule=rules.COMPLETION_MODE,
            default="noAction",
        ),
        "priority": fields.integer("Job priority.", rules.PRIORITY, default=0),
        "maxParallelTasks": fields.integer(
            "Most tasks running at once (-1: no limit).", rules.MAX_PARALLEL_TASKS, default=-1
        ),
        "replaceRunningTasks": Field(
            "boolean", "Whether a changed task may be replaced while it runs.", default=False
        ),
        "adopt": Field(
            "boolean",
            "Take over an existing job of this id that another tool or "
            "script made (its tasks with equal definitions are kept).",
            default=False,
        ),
        "constraints": _object(
            "Job constraints.",
            {
                "maxWallClockTime": _string(
                    "Longest the job may run, ISO 8601.", rule=rules.DURATION
                ),
                "maxTaskRetryCount": fields.integer(
                    "Retries per task (-1: without limit).", rules.RETRIES
                ),
            },
        ),
        "logs": fields.LOGS,
        "defaults": DEFAULTS,
        "tasks": Field("list", "Tasks.", item=TASK, default=()),
        "sweeps": Field("list", "Sweeps.", item=SWEEP, default=()),
    },
)

POOL = _object(
    "The Batch pool the jobs run on.",
    {
        "id": _string("Pool id.", required=True, rule=rules.BATCH_ID),
        "create": Field(
            "boolean", "Whether this stack creates the pool (needs batch.account).", default=False
        ),
        "vmSize": _string(
            "VM size, e.g. Standard_D4s_v3 (when create is true).", rule=rules.VM_SIZE
        ),
        "maxNodes": fields.integer("Most nodes (when create is true; default 1).", rules.MAX_NODES),
        "taskSlotsPerNode": fields.integer(
            "Task slots of each node (default 1): how many slots' worth of tasks a node runs at "
            "once. Applied when create is true; for an existing pool, state its value so that "
            "requiredSlots is checked against it.",
            rules.TASK_SLOTS_PER_NODE,
        ),
        "image": _object(
            "Marketplace image of the nodes (when create is true; give it with "
            "nodeAgentSkuId, or leave both out for BatchStorage's Ubuntu 22.04 "
            "image).",
            {
                "publisher": _string("Publisher.", required=True, rule=rules.TEXT),
                "offer": _string("Offer.", required=True, rule=rules.TEXT),
                "sku": _string("SKU.", required=True, rule=rules.TEXT),
                "version": _string("Version.", rule=rules.TEXT, default="latest"),
            },
        ),
        "nodeAgentSkuId": _string(
            "Node agent SKU, e.g. 'batch.node.ubuntu 22.04' (when create "
            "is true; given with image, or left out with it).",
            rule=rules.TEXT,
        ),
    },
)

TOP = {
    "resourceGroup": _string(
        "Resource group of the stack's Azure resources.", required=True, rule=rules.RESOURCE_GROUP
    ),
    "storage": _object(
        "The storage account and its blob containers.",
        {
            "account": _string("Storage account name.", required=True, rule=rules.ACCOUNT_NAME),
            "create": Field("boolean", "Whether this stack creates the account.", default=False),
            "containers": Field(
                "list",
                "Blob containers.",
                default=(),
                item=_object(
                    "A blob container.",
                    {
                        "name": _string(
                            "Container name.", required=True, rule=rules.CONTAINER_NAME
                        ),
                        "access": _string(
                            "What tasks may do with it.", rule=rules.ACCESS, default="write"
                        ),
                    },
                ),
            ),
        },
        required=True,
    ),
    "identity": _object(
        "The user-assigned identity the nodes use: create one (name) or use an "
        "existing one (resourceId).",
        {
            "name": _string("Name of the identity to create.", rule=rules.IDENTITY_NAME),
            "resourceId": _string(
                "Resource id of an existing user-assigned identity.", rule=rules.IDENTITY_ID
            ),
        },
        required=True,
        exactly_one=("name", "resourceId"),
    ),
    "registry": _object(
        "A private container registry the nodes pull from.",
        {
            "server": _string(
                "Login server, e.g. myregistry.azurecr.io.",
                required=True,
                rule=rules.REGISTRY_SERVER,
            ),
            "resourceId": _string(
                "Resource id of the registry (grants the identity AcrPull).", rule=rules.REGISTRY_ID
            ),
        },
    ),
    "batch": _object(
        "The Batch account and pool.",
        {
            "account": _string(
                "Batch account name (required when the pool is created).", rule=rules.ACCOUNT_NAME
            ),
            "endpoint": _string(
                "Account endpoint, e.g. https://myaccount.eastus.batch.azure.com.",
                required=True,
                rule=rules.BATCH_ENDPOINT,
            ),
            "pool": POOL,
        },
        required=True,
    ),
    "jobs": Field("list", "Batch jobs.", item=JOB, default=()),
}
LOCATION = _string(
    "Azure region of the stack's resources, e.g. eastus.", required=True, rule=rules.LOCATION
)


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
        bounds = {
            key: value
            for key, value in (("minimum", spec.minimum), ("maximum", spec.maximum))
            if value is not None
        }
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
        "required": [
            *(f"{NAMESPACE}:{name}" for name, spec in TOP.items() if spec.required),
            LOCATION_KEY,
        ],
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
