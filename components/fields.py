"""The task-field table: every field of a task, written once.

For each field of a task spec: its stack-file key (the same key in the spec a task resource
holds), its type and schema text (a `Field`), where it lands in the Batch REST body, whether a
change updates the task in place or replaces it, and its preview column. The JSON Schema and the
parser (`batchtasks.config`), the providers' check (`batch/checks.py`), the body builder
(`batch/spec.py`), the diff (`batch/diff.py`) and the preview derive from this table, so a field
added here cannot validate in a stack file and then vanish from the task body.

How a field reaches the body (`TaskField.via`):

- ``command``: the command line;
- ``container``: an argument of the seed's `get_container_settings` (`seed_arg`);
- ``identity``: an argument of the seed's `get_user_identity` (`seed_arg`);
- ``outputs``, ``env``: output files and environment settings, built by `batch/spec.py`;
- ``direct``: `to_rest(value)` placed at the `rest` path of the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from batchtasks import rules
from batchtasks.rules import Rule


@dataclass(frozen=True)
class Field:
    """The type of one setting of the stack file, and what the JSON Schema says of it.

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


def string(doc: str, **kwargs: Any) -> Field:
    """Return a string field."""
    return Field("string", doc, **kwargs)


def obj(doc: str, fields: Mapping[str, Field], **kwargs: Any) -> Field:
    """Return an object field with the given keys."""
    return Field("object", doc, fields=fields, **kwargs)


def integer(doc: str, bounds: rules.Range, **kwargs: Any) -> Field:
    """Return an integer field whose range is a rule of the rule book."""
    return Field(
        "integer", doc, minimum=bounds.minimum, maximum=bounds.maximum, also=bounds.also, **kwargs
    )


def _duration(doc: str) -> Field:
    return string(doc, rule=rules.DURATION)


# How a field's value varies from task to task of one shape (`TaskField.varies`): "text", the
# value is one string; "values", each value of a map (as text); "items.<key>", that key of each
# item of a list, where an item has it; "list", the whole list of strings.
VARIES = ("text", "values", "items.<key>", "list")


@dataclass(frozen=True)
class TaskField:
    """One field of a task.

    Attributes
    ----------
    key
        Its key in the stack file and in a task spec.
    field
        Its type, rule and schema text.
    rest
        Where it lands in the REST body of the task (a dotted path).
    via
        How the body builder places it: command, container, identity, outputs, env or direct.
    in_place
        Whether a change updates an existing task in place (Batch allows it for constraints
        only); otherwise the task is replaced (deleted, then added again).
    varies
        How a template body leaves it open, to be filled in per task (the rest of a task's spec
        is its shape, built and checked once per shape); None: part of the shape. One of
        `VARIES` (`batch/template.py` knows each).
    column
        Its column in the preview's task table, or None.
    column_when_set
        Show the column only when some task of the job sets the field.
    cell
        Turns a value into the pieces of its preview cell.
    sweep_field
        The field as a sweep writes it (with {axis} placeholders), when it differs.
    in_task
        Whether a task, sweep or job default writes it (False: the job sets it, e.g. logs).
    in_defaults
        Whether a job's defaults may set it.
    seed_arg
        The seed builder's parameter it is passed as (container and identity fields).
    to_rest
        The REST value of a spec value (direct fields).
    example
        A valid, non-default value (documentation, and what the tests build bodies from).
    """

    key: str
    field: Field
    rest: str
    via: str
    in_place: bool = False
    varies: str | None = None
    column: str | None = None
    column_when_set: bool = False
    cell: Callable[[Any], tuple[str, ...]] = lambda value: (str(value),)
    sweep_field: Field | None = None
    in_task: bool = True
    in_defaults: bool = True
    seed_arg: str | None = None
    to_rest: Callable[[Any], Any] | None = None
    example: Any = None

    @property
    def as_swept(self) -> Field:
        """The field as a sweep writes it."""
        return self.sweep_field or self.field


_PLACEHOLDERS = " May use the sweep's {axis} placeholders."


def _templated(field: Field) -> Field:
    return replace(field, doc=field.doc + _PLACEHOLDERS)


MOUNT = obj(
    "A blob container (or a folder of one) bind-mounted into the task's container.",
    {
        "source": string(
            "Declared container name, optionally followed by /folder inside it.",
            required=True,
            rule=rules.MOUNT_SOURCE,
        ),
        "target": string(
            "Absolute path inside the task's container.", required=True, rule=rules.MOUNT_TARGET
        ),
    },
)


def _output(templated: bool) -> Field:
    doc = "Blob path in the container (a folder when the pattern has wildcards)."
    path = string(doc + _PLACEHOLDERS) if templated else string(doc, rule=rules.BLOB_PATH)
    return Field(
        "list",
        "Files uploaded after the task runs.",
        item=obj(
            "Files uploaded to a writable container after the task runs.",
            {
                "pattern": string(
                    "File pattern, relative to the task's working directory (at most "
                    "one '..', to the task's own directory)."
                    + (_PLACEHOLDERS if templated else ""),
                    required=True,
                    **({} if templated else {"rule": rules.OUTPUT_PATTERN}),
                ),
                "container": string(
                    "Declared container with access write.",
                    required=True,
                    rule=rules.CONTAINER_NAME,
                ),
                "path": path,
                "when": string(
                    "When to upload.", rule=rules.UPLOAD_CONDITION, default="taskCompletion"
                ),
            },
        ),
    )


LOGS = obj(
    "Where each task's stdout and stderr are uploaded.",
    {
        "container": string(
            "Declared container with access write.", required=True, rule=rules.CONTAINER_NAME
        ),
        "subdir": string("Folder in the container (default: the job id).", rule=rules.BLOB_PATH),
    },
)


def exit_conditions(on_failure: Mapping[str, Any]) -> dict[str, Any]:
    """Return the REST exitConditions for a task's `onFailure`.

    Batch applies `default` to every failure not covered otherwise (a non-zero exit code, and a
    pre-processing or file upload error when those are not given); both are given as well, so
    every way a task can fail has the declared effect on its dependents. Success always
    satisfies them.

    Parameters
    ----------
    on_failure
        ``{"dependents": "block" | "satisfy"}``.

    Returns
    -------
    dict
        ``{"default": {"dependencyAction": ...}, "preProcessingError": ..., "fileUploadError":
        ...}``.
    """
    action = {"dependencyAction": on_failure["dependents"]}
    return {
        "default": dict(action),
        "preProcessingError": dict(action),
        "fileUploadError": dict(action),
    }


def _mount_cells(mounts: Any) -> tuple[str, ...]:
    return tuple(f"{m.get('source')} → {m.get('target')}" for m in mounts or ())


def _output_cells(outputs: Any) -> tuple[str, ...]:
    cells = []
    for output in outputs or ():
        where = "/".join(part for part in (output.get("container"), output.get("path")) if part)
        cells.append(f"{output.get('pattern')} → {where}")
    return tuple(cells)


TASK_FIELDS: tuple[TaskField, ...] = (
    TaskField(
        "image",
        string("Container image, e.g. myregistry.azurecr.io/model:1.2.", rule=rules.IMAGE),
        rest="containerSettings.imageName",
        via="container",
        column="Image",
        seed_arg="container_image_name",
        example="myregistry.azurecr.io/model:1.2",
    ),
    TaskField(
        "command",
        string("Command line run inside the container.", rule=rules.COMMAND_LINE),
        rest="commandLine",
        via="command",
        varies="text",
        column="Command",
        sweep_field=_templated(
            string("Command line run inside the container.", rule=rules.COMMAND_LINE)
        ),
        example="python -m model --state ca",
    ),
    TaskField(
        "workingDirectory",
        string("Where the command starts.", rule=rules.WORKING_DIRECTORY),
        rest="containerSettings.workingDirectory",
        via="container",
        seed_arg="working_directory",
        example="containerImageDefault",
    ),
    TaskField(
        "mounts",
        Field("list", "Containers bind-mounted into the task.", item=MOUNT),
        rest="containerSettings.containerRunOptions",
        via="container",
        column="Mounts",
        cell=_mount_cells,
        seed_arg="mount_pairs",
        example=[{"source": "inputs", "target": "/data"}],
    ),
    TaskField(
        "runOptions",
        string(
            "Extra docker run options, from an allow-list: "
            + ", ".join(f"--{name}" for name in rules.RUN_OPTION_TABLE)
            + " (see the README).",
            rule=rules.RUN_OPTIONS,
        ),
        rest="containerSettings.containerRunOptions",
        via="container",
        seed_arg="additional_options",
        example="--rm --shm-size=1g",
    ),
    TaskField(
        "env",
        Field(
            "map",
            "Environment variables (numbers become strings, booleans true/false).",
            item=Field("scalar", "Value."),
            key_rule=rules.VARIABLE_NAME,
        ),
        rest="environmentSettings",
        via="env",
        varies="values",
        sweep_field=_templated(
            Field(
                "map",
                "Environment variables (numbers become strings, booleans true/false).",
                item=Field("scalar", "Value."),
                key_rule=rules.VARIABLE_NAME,
            )
        ),
        example={"MODE": "full"},
    ),
    TaskField(
        "secretEnv",
        Field(
            "map",
            "Environment variables read from secret config keys: "
            "NAME: key of a `batchtasks:<key>: {secure: ...}` entry.",
            item=string("Config key holding a secret.", rule=rules.SECRET_KEY),
            key_rule=rules.VARIABLE_NAME,
        ),
        rest="environmentSettings",
        via="env",
        example={"TOKEN": "apiToken"},
    ),
    TaskField(
        "outputs",
        _output(templated=False),
        rest="outputFiles",
        via="outputs",
        varies="items.path",
        column="Outputs",
        cell=_output_cells,
        sweep_field=_output(templated=True),
        example=[
            {
                "pattern": "out/*.csv",
                "container": "results",
                "path": "flu/ca",
                "when": "taskSuccess",
            }
        ],
    ),
    TaskField(
        "maxWallClockTime",
        _duration("Longest the task may run, ISO 8601 (e.g. PT2H)."),
        rest="constraints.maxWallClockTime",
        via="direct",
        in_place=True,
        to_rest=str,
        example="PT2H",
    ),
    TaskField(
        "retention",
        _duration("How long the node keeps the task's files, ISO 8601 (e.g. P7D)."),
        rest="constraints.retentionTime",
        via="direct",
        in_place=True,
        to_rest=str,
        example="P7D",
    ),
    TaskField(
        "retries",
        integer("Retries after a failure (-1: without limit).", rules.RETRIES),
        rest="constraints.maxTaskRetryCount",
        via="direct",
        in_place=True,
        to_rest=int,
        example=3,
    ),
    TaskField(
        "requiredSlots",
        integer(
            "Scheduling slots the task takes on a node (default 1); "
            "at most the pool's taskSlotsPerNode.",
            rules.REQUIRED_SLOTS,
        ),
        rest="requiredSlots",
        via="direct",
        to_rest=int,
        column="Slots",
        column_when_set=True,
        example=2,
    ),
    TaskField(
        "dependsOn",
        Field(
            "list",
            "Ids of tasks of the same job that must succeed first.",
            item=string("Task id.", rule=rules.BATCH_ID),
        ),
        rest="dependsOn.taskIds",
        via="direct",
        varies="list",
        in_defaults=False,
        sweep_field=_templated(
            Field(
                "list",
                "Ids of tasks of the same job that must succeed first.",
                item=string("Task id template."),
            )
        ),
        to_rest=list,
        example=["prepare"],
    ),
    TaskField(
        "onFailure",
        obj(
            "What the task's failure does to the tasks that depend on it "
            "(dependsOn). Without it Batch blocks them: they wait until the "
            "task is rerun and succeeds.",
            {
                "dependents": string(
                    "block: they keep waiting; satisfy: they run as if it had succeeded.",
                    required=True,
                    rule=rules.DEPENDENCY_ACTION,
                ),
            },
        ),
        rest="exitConditions",
        via="direct",
        to_rest=exit_conditions,
        column="Dependents on failure",
        column_when_set=True,
        cell=lambda value: (str(value.get("dependents")),),
        example={"dependents": "satisfy"},
    ),
    TaskField(
        "elevation",
        string("User the task runs as.", rule=rules.ELEVATION, default="admin"),
        rest="userIdentity.autoUser.elevationLevel",
        via="identity",
        seed_arg="elevation_level",
        example="nonadmin",
    ),
    TaskField(
        "scope",
        string("Auto-user scope.", rule=rules.SCOPE, default="pool"),
        rest="userIdentity.autoUser.scope",
        via="identity",
        seed_arg="scope",
        example="task",
    ),
    TaskField(
        "logs",
        LOGS,
        rest="outputFiles",
        via="outputs",
        in_task=False,
        in_defaults=False,
        example={"container": "logs", "subdir": "weekly"},
    ),
)
BY_KEY: dict[str, TaskField] = {field.key: field for field in TASK_FIELDS}
# Fields a task, sweep or job default writes in the stack file, in the order a spec lists them.
STACK_TASK_FIELDS = tuple(field for field in TASK_FIELDS if field.in_task)
# Fields whose change Batch applies to an existing task (its constraints).
IN_PLACE_KEYS = tuple(field.key for field in TASK_FIELDS if field.in_place)
# Fields a template body fills in per task (`batch/template.py`), in table order.
VARYING_FIELDS = tuple(field for field in TASK_FIELDS if field.varies is not None)
VARYING_KEYS = tuple(field.key for field in VARYING_FIELDS)
# Fields that make the container settings (a sweep's tasks share a few of them).
CONTAINER_KEYS = tuple(field.key for field in TASK_FIELDS if field.via == "container")
IDENTITY_KEYS = tuple(field.key for field in TASK_FIELDS if field.via == "identity")
# Field key -> the seed builder's parameter it is passed as.
SEED_ARGS = {field.key: field.seed_arg for field in TASK_FIELDS if field.seed_arg is not None}
DIRECT_FIELDS = tuple(field for field in TASK_FIELDS if field.via == "direct")
INTEGER_KEYS = tuple(field.key for field in TASK_FIELDS if field.field.kind == "integer")
# Values left out of a spec: the service's own default.
OMITTED = {
    field.key: field.field.default for field in TASK_FIELDS if field.field.default is not None
}
