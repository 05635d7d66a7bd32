"""Template bodies give exactly the seed's bodies and errors, over generated task shapes.

The seed's path (`spec.TaskBodyBuilder`, the four functions of `components/task.py`) is the
reference: for every generated job context, shape and set of per-task values, the template
builder's text must equal the reference body's compact JSON byte for byte, and where the
reference raises, the template builder raises the same error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtasks import fields
from batchtasks.batch.spec import TaskBodyBuilder, TaskContext
from batchtasks.batch.template import (
    AXIS_STEM,
    MARKER_STEM,
    SweepBodies,
    TemplateBodyBuilder,
    encode_body,
    fill_holes,
    split_spec,
)
from batchtasks.config import ConfigError, parse_stack_config
from batchtasks.config.sweep import SpecTemplate
from batchtasks.fields import TaskField
from tests.test_sweep_template import sweeps

IDENTITY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/id-forecast"
)
URLS = {
    "nssp-etl": "https://stforecast.blob.core.windows.net/nssp-etl",
    "forecasts": "https://stforecast.blob.core.windows.net/forecasts",
    "batch-logs": "https://stsovereign.blob.core.usgovcloudapi.net/batch-logs",
}

# A sweep's job as the examples below build its bodies.
WEEKLY = TaskContext(
    job_id="weekly",
    identity_resource_id=IDENTITY,
    container_urls=URLS,
    mounts_dir="/mnt/batch/tasks/fsmounts",
    display_name="weekly.sweep",
)

# Text a user might write, including what JSON escapes and the marker stem itself.
awkward = st.sampled_from(
    [
        "",
        " ",
        "plain",
        'say "hi"',
        "back\\slash",
        "tab\there",
        "é☃",
        "\U0001f600",
        MARKER_STEM,
        f"{MARKER_STEM}id",
        "{location}",
    ]
)
text = st.one_of(awkward, st.text(max_size=12))
task_ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.sampled_from(["", "has space", "x" * 65, f"{MARKER_STEM}id"]),
)
env_names = st.sampled_from(["LOCATION", "SCENARIO", "MODEL_SEED", "TOKEN", "a_b"])


def mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """One of the valid values, or now and then (1 in 20) one the seed rejects."""
    return st.integers(0, 19).flatmap(
        lambda roll: st.sampled_from(invalid if roll == 0 and invalid else valid)
    )


def contexts() -> st.SearchStrategy[TaskContext]:
    """Job contexts: containers, mount directory, registry, secrets, owner marker."""
    return st.builds(
        TaskContext,
        job_id=st.just("weekly"),
        identity_resource_id=st.just(IDENTITY),
        container_urls=st.just(URLS),
        mounts_dir=st.sampled_from(["/mnt/batch/tasks/fsmounts", "$AZ_BATCH_NODE_MOUNTS_DIR"]),
        registry_server=st.sampled_from([None, "cfa.azurecr.io"]),
        secrets=st.sampled_from([{}, {"apiToken": "s3cr3t"}, {"apiToken": 'q"uote'}]),
        display_name=st.sampled_from([None, "weekly.sweep", f"weekly.{MARKER_STEM}id"]),
    )


@st.composite
def shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Task fields shared by a sweep's tasks (valid and invalid values alike)."""
    spec: dict[str, Any] = {
        "image": draw(mostly(["cfa.azurecr.io/forecast:1", "python:3.12"], ["bad image", ""]))
    }
    optional = {
        "workingDirectory": mostly(
            ["taskWorkingDirectory", "containerImageDefault", "ContainerImageDefault"], ["nowhere"]
        ),
        "mounts": st.lists(
            st.fixed_dictionaries(
                {
                    "source": mostly(["nssp-etl", "forecasts"], ["../up", "a b"]),
                    "target": mostly(["/data/nssp", "/out"], ["relative"]),
                }
            ),
            max_size=2,
        ),
        "runOptions": st.sampled_from(["", "--rm", "  --shm-size=1g  "]),
        "secretEnv": st.dictionaries(env_names, mostly(["apiToken"], ["missing"]), max_size=2),
        "logs": st.fixed_dictionaries(
            {"container": mostly(["batch-logs", "forecasts"], ["undeclared"])},
            optional={
                "subdir": st.sampled_from(["weekly", "a/b/", "", ".", f"{MARKER_STEM}id", 'q"uote'])
            },
        ),
        "maxWallClockTime": st.sampled_from(["PT2H", "P7D"]),
        "retention": st.sampled_from(["P7D", "PT30M"]),
        "retries": st.integers(-1, 5),
        "elevation": mostly(["admin", "nonadmin", "Admin"], ["root"]),
        "scope": st.sampled_from(["pool", "task"]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    # Outputs, env names and dependsOn presence are part of the shape; their values vary.
    spec["outputs"] = [
        {
            "pattern": draw(mostly(["output/**/*", "*.csv"], [""])),
            "container": draw(mostly(["forecasts", "batch-logs"], ["undeclared"])),
            **({"path": None} if draw(st.booleans()) else {}),
            **(
                {"when": draw(mostly(["taskSuccess", "TASKFAILURE"], ["sometimes"]))}
                if draw(st.booleans())
                else {}
            ),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    if not spec["outputs"]:
        del spec["outputs"]
    spec["env"] = dict.fromkeys(draw(st.lists(env_names, max_size=3, unique=True)), "")
    return spec


@st.composite
def tasks_of(draw: st.DrawFn, shape: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One task of a shape: its id and the shape with its own varying values."""
    spec = dict(shape)
    spec["command"] = draw(st.one_of(text, text, text, st.sampled_from([None, 3])))
    if "outputs" in shape:
        spec["outputs"] = [
            {**output, "path": draw(st.one_of(text, st.none()))}
            if draw(st.booleans())
            else dict(output)
            for output in shape["outputs"]
        ]
    spec["env"] = {
        name: draw(st.one_of(text, st.integers(-5, 5), st.booleans())) for name in shape["env"]
    }
    if not spec["env"]:
        del spec["env"]
    depends_on = draw(
        st.one_of(st.none(), st.lists(task_ids, max_size=3), mostly([None], ["not-a-list"]))
    )
    if depends_on is not None:
        spec["dependsOn"] = depends_on
    return draw(task_ids), spec


def reference_outcome(context: TaskContext, task_id: str, spec: dict[str, Any]) -> Any:
    """The seed's body as compact JSON, or the error it raises."""
    try:
        return encode_body(TaskBodyBuilder(context).build(task_id, spec))
    except (ValueError, TypeError, KeyError) as error:
        return type(error), str(error)


def template_outcome(builder: TemplateBodyBuilder, task_id: str, spec: dict[str, Any]) -> Any:
    try:
        return builder.build_text(task_id, spec)
    except (ValueError, TypeError, KeyError) as error:
        return type(error), str(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), context=contexts())
def test_template_bodies_equal_the_seeds(data: st.DataObject, context: TaskContext) -> None:
    builder = TemplateBodyBuilder(context)  # one builder per job: templates are reused
    for shape in data.draw(st.lists(shapes(), min_size=1, max_size=3)):
        for task_id, spec in data.draw(st.lists(tasks_of(shape), min_size=1, max_size=6)):
            assert template_outcome(builder, task_id, spec) == reference_outcome(
                context, task_id, spec
            )


def test_a_sweep_builds_each_shape_once_through_the_seed(monkeypatch: Any) -> None:
    context = WEEKLY
    calls: list[str] = []
    original = TaskBodyBuilder.build

    def counted(self: TaskBodyBuilder, task_id: str, spec: Any) -> dict[str, Any]:
        calls.append(task_id)
        return original(self, task_id, spec)

    shape = {
        "image": "python:3.12",
        "logs": {"container": "batch-logs", "subdir": "weekly"},
        "outputs": [{"pattern": "out/*", "container": "forecasts"}],
    }
    specs = {
        f"run-{index}": {
            **shape,
            "command": f"python run.py --index {index}",
            "env": {"INDEX": index},
            "outputs": [{**shape["outputs"][0], "path": f"runs/{index}"}],
        }
        for index in range(50)
    }
    builder = TemplateBodyBuilder(context)
    texts = {task_id: builder.build_text(task_id, spec) for task_id, spec in specs.items()}
    monkeypatch.setattr(TaskBodyBuilder, "build", counted)
    assert len(calls) == 0
    builder = TemplateBodyBuilder(context)
    assert {task_id: builder.build_text(task_id, spec) for task_id, spec in specs.items()} == texts
    assert len(calls) == 2  # the shape's template and its probe, not one per task
    body = json.loads(texts["run-7"])
    assert body["commandLine"] == "python run.py --index 7"
    assert body["outputFiles"][1]["destination"]["container"]["path"] == "weekly/run-7"
    assert body["environmentSettings"] == [{"name": "INDEX", "value": "7"}]


@pytest.mark.parametrize("field", fields.VARYING_FIELDS, ids=lambda field: field.key)
def test_every_field_the_table_marks_varies_is_filled_in_per_task(
    field: TaskField, monkeypatch: Any
) -> None:
    context = TaskContext(
        job_id="weekly",
        identity_resource_id=IDENTITY,
        container_urls={**URLS, "results": "https://stforecast.blob.core.windows.net/results"},
        mounts_dir="/mnt/batch/tasks/fsmounts",
        display_name="weekly.sweep",
    )
    spec = {"image": "python:3.12", "command": "python run.py", field.key: field.example}
    split = split_spec(spec)
    assert split is not None
    own = tuple(hole for hole in split[2] if hole.field is field)
    assert own, f"{field.key}: the template leaves no place of it open"
    # Another task of the same shape: this field's varying places hold other values.
    other = fill_holes(spec, own, [hole.probe() for hole in own])
    assert other[field.key] != spec[field.key]
    assert split_spec(other) is not None and split_spec(other)[0] == split[0]
    expected = [
        encode_body(TaskBodyBuilder(context).build(f"t-{n}", s)) for n, s in ((1, spec), (2, other))
    ]
    calls: list[str] = []
    original = TaskBodyBuilder.build

    def counted(self: TaskBodyBuilder, task_id: str, spec: Any) -> dict[str, Any]:
        calls.append(task_id)
        return original(self, task_id, spec)

    monkeypatch.setattr(TaskBodyBuilder, "build", counted)
    builder = TemplateBodyBuilder(context)
    assert [builder.build_text("t-1", spec), builder.build_text("t-2", other)] == expected
    assert len(calls) == 2  # the shape's template and its probe: both tasks were filled in


# The containers the generated sweeps name (tests/test_sweep_template.py), one left without a URL.
SWEEP_URLS = {
    "results": "https://stforecast.blob.core.windows.net/results",
    "inputs": "https://stforecast.blob.core.windows.net/inputs",
}
axis_text = st.one_of(text, st.sampled_from([AXIS_STEM, f"{AXIS_STEM}0x", "../up", "a\x00b"]))


def sweep_outcome(bodies: SweepBodies, task_id: str, texts: Any) -> Any:
    try:
        return bodies.build_text(task_id, texts)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        return type(error), str(error)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=sweeps(),
    others=st.lists(st.tuples(task_ids, st.lists(axis_text, min_size=3, max_size=3)), max_size=4),
)
def test_sweep_bodies_from_axis_values_equal_the_seeds(
    raw: dict[str, Any], others: list[tuple[str, list[str]]]
) -> None:
    # Every task of a generated sweep, and tasks with any other values (ones the seed refuses
    # among them): built straight from its axis values, the body (or error) is the seed's for
    # the spec the sweep's template renders.
    try:
        config = parse_stack_config(raw, "eastus")
    except ConfigError:
        return
    (job,) = config.jobs
    (sweep,) = job.sweeps
    template = SpecTemplate(sweep.set_template())
    context = TaskContext(
        job_id=job.id,
        identity_resource_id=IDENTITY,
        container_urls=SWEEP_URLS,
        mounts_dir="/mnt/batch/tasks/fsmounts",
        display_name=f"{job.id}.grid",
    )
    bodies = SweepBodies(TemplateBodyBuilder(context), template)
    tasks = [*sweep.task_values().items(), *((task_id, tuple(texts)) for task_id, texts in others)]
    for task_id, texts in tasks:
        expected = reference_outcome(context, task_id, template.render(texts))
        assert sweep_outcome(bodies, task_id, texts) == expected


def test_a_sweep_task_is_built_from_its_axis_values_without_rendering_its_spec(
    monkeypatch: Any,
) -> None:
    template = SpecTemplate(
        {
            "image": "python:3.12",
            "command": {"$t": ["python run.py --location ", 0, " --draws 10"]},
            "env": {"LOCATION": {"$t": [0]}, "SEED": "7"},
            "outputs": [{"pattern": "out/*", "container": "forecasts", "path": {"$t": [0]}}],
        }
    )
    context = WEEKLY
    bodies = SweepBodies(TemplateBodyBuilder(context), template)
    rendered: list[Any] = []
    original = SpecTemplate.render
    monkeypatch.setattr(
        SpecTemplate, "render", lambda self, texts: rendered.append(texts) or original(self, texts)
    )
    texts = {f"run-{index}": (f"loc{index}",) for index in range(50)}
    built = {task_id: bodies.build_text(task_id, values) for task_id, values in texts.items()}
    # Rendered twice for the first task (its literals, then with axis markers), never after.
    assert rendered == [[""], ["zq8axis0x"]]
    rendered.clear()
    body = json.loads(built["run-7"])
    assert body["commandLine"] == "python run.py --location loc7 --draws 10"
    assert body["environmentSettings"] == [
        {"name": "LOCATION", "value": "loc7"},
        {"name": "SEED", "value": "7"},
    ]
    assert body["outputFiles"][0]["destination"]["container"]["path"] == "loc7"
    # A value the seed refuses goes the seed's way, and fails as the seed fails.
    with pytest.raises(ValueError):
        bodies.build_text("run-bad", ("../up",))
    assert rendered == [("../up",)]


@pytest.mark.parametrize(
    "command",
    [
        {"$t": ["echo zq8", "axis0x ", 0]},  # literals that spell an axis marker only together
        {"$t": ["echo ", 0, "zq8axis1x"]},
        {"$t": ["run ", 0, "1x ", 0]},  # a marker followed by digits and an x
    ],
    ids=["split-stem", "whole-stem", "digits-after"],
)
def test_sweep_bodies_of_templates_written_by_hand_equal_the_seeds(command: Any) -> None:
    template = SpecTemplate({"image": "python:3.12", "command": command})
    bodies = SweepBodies(TemplateBodyBuilder(WEEKLY), template)
    for texts in (("ca",), ("zq8axis0x",), ("",)):
        expected = reference_outcome(WEEKLY, "t-1", template.render(texts))
        assert sweep_outcome(bodies, "t-1", texts) == expected


def test_too_few_axis_values_fail_as_rendering_them_does() -> None:
    template = SpecTemplate({"image": "python:3.12", "command": {"$t": ["run ", 0, " ", 2]}})
    bodies = SweepBodies(TemplateBodyBuilder(WEEKLY), template)
    with pytest.raises(IndexError) as raised:
        template.render(("a", "b"))
    assert sweep_outcome(bodies, "t-1", ("a", "b")) == (IndexError, str(raised.value))
