"""Sweep template specs: every task the loader renders from a sweep's template equals the spec
the former expansion built (tests/sweep_reference.py), over generated sweeps."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtasks.config import ConfigError, parse_stack_config
from batchtasks.config import parse as loader
from batchtasks.config.sweep import MARKER_KEY, SpecTemplate, render_spec
from tests.namespaces import namespace
from tests.sweep_reference import reference_sweep

AXES = ("disease", "state", "run")
# Axis values as a stack file gives them: text (with characters JSON and templates treat
# specially), whole numbers and booleans.
AXIS_VALUE = st.one_of(
    st.sampled_from(["ca", "ny", "Tx", "a_b", "x-1", "q"]),
    st.integers(min_value=0, max_value=99),
    st.booleans(),
)
LITERAL = st.sampled_from(["", "run ", " --flag", "{{literal}}", '"quoted" \\ ', "é☃", "-", "/"])


def _template(axes: list[str]) -> st.SearchStrategy[str]:
    """Text with `{axis}` placeholders among literal pieces (possibly none)."""
    piece = st.one_of(LITERAL, st.sampled_from([f"{{{axis}}}" for axis in axes]))
    return st.lists(piece, min_size=1, max_size=5).map("".join)


@st.composite
def sweeps(draw: st.DrawFn) -> dict[str, Any]:
    """A `batchtasks:` namespace with one job whose defaults, plain tasks and one sweep use the
    templated fields, include and exclude."""
    axes = list(AXES[: draw(st.integers(min_value=1, max_value=3))])
    matrix = {
        axis: draw(st.lists(AXIS_VALUE, min_size=1, max_size=3, unique_by=str)) for axis in axes
    }
    task_id = "t-" + "-".join(f"{{{axis}}}" for axis in axes)
    sweep: dict[str, Any] = {
        "id": "grid",
        "taskId": draw(st.sampled_from([task_id, task_id + "_x", "{" + axes[0] + "}_" + task_id])),
        "matrix": matrix,
        "command": draw(st.one_of(_template(axes), st.just("python -m constant {{x}}"))).strip()
        or "run",
    }
    first = axes[0]
    if draw(st.booleans()):
        sweep["exclude"] = [{first: matrix[first][0]}] if len(matrix[first]) > 1 else []
    if draw(st.booleans()):
        sweep["include"] = [{axis: "extra" for axis in axes}]
    if draw(st.booleans()):
        sweep["env"] = draw(
            st.dictionaries(
                st.sampled_from(["A", "B_2", "MODE"]),
                st.one_of(_template(axes), st.integers(0, 9), st.booleans()),
                max_size=3,
            )
        )
    if draw(st.booleans()):
        sweep["outputs"] = [
            {
                "pattern": draw(st.sampled_from(["out/*", "out/{" + first + "}/*", "../std*.txt"])),
                "container": "results",
                **(
                    {
                        "path": draw(
                            st.sampled_from(
                                ["p/{" + first + "}", "fixed", task_id, "/{" + first + "}"]
                            )
                        )
                    }
                    if draw(st.booleans())
                    else {}
                ),
                **({"when": "taskSuccess"} if draw(st.booleans()) else {}),
            }
        ]
    if draw(st.booleans()):
        sweep["retries"] = draw(st.integers(0, 5))
    tasks = []
    if draw(st.booleans()):
        tasks = [{"id": "prep", "command": "python prep.py"}]
        sweep["dependsOn"] = draw(st.sampled_from([["prep"], ["prep", "prep"]]))
    defaults: dict[str, Any] = {"image": "example.azurecr.io/model:1"}
    if draw(st.booleans()):
        defaults["mounts"] = [{"source": "inputs", "target": "/data"}]
    if draw(st.booleans()):
        defaults["env"] = {"MODE": "full", "SEED": 7}
    if draw(st.booleans()):
        defaults["outputs"] = [{"pattern": "logs/*", "container": "results", "path": "shared"}]
    if draw(st.booleans()):
        defaults["maxWallClockTime"] = "PT1H"
    job: dict[str, Any] = {"id": "job-1", "defaults": defaults, "sweeps": [sweep]}
    if tasks:
        job["tasks"] = tasks
    if draw(st.booleans()):
        job["logs"] = {"container": "logs"}
    return namespace([job])


def _outcome(raw: dict[str, Any]) -> tuple[str, Any]:
    """Every sweep task's spec, or the problems, as the loader gives them."""
    try:
        config = parse_stack_config(raw, "eastus")
    except ConfigError as error:
        return "problems", [str(problem) for problem in error.problems]
    return "tasks", [[list(sweep.tasks) for sweep in job.sweeps] for job in config.jobs]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sweeps())
def test_template_specs_render_exactly_the_former_expansion(raw: dict[str, Any]) -> None:
    now = _outcome(raw)
    with mock.patch.object(loader, "_sweep", reference_sweep):
        before = _outcome(raw)
    assert now == before


def test_the_template_spec_marks_only_strings_made_from_placeholders() -> None:
    config = parse_stack_config(
        {
            "resourceGroup": "rg-test",
            "storage": {"account": "sttest", "containers": [{"name": "results"}]},
            "identity": {"name": "id-test"},
            "batch": {"endpoint": "https://batest.eastus.batch.azure.com", "pool": {"id": "p"}},
            "jobs": [
                {
                    "id": "job-1",
                    "defaults": {"image": "img:1", "env": {"SEED": 7}},
                    "sweeps": [
                        {
                            "id": "grid",
                            "taskId": "{state}-{disease}",
                            "matrix": {"disease": ["flu"], "state": ["ca", "ny"]},
                            "command": "python -m run --state {state} --out {disease}",
                            "outputs": [
                                {"pattern": "out/*", "container": "results", "path": "{state}"}
                            ],
                        }
                    ],
                }
            ],
        },
        "eastus",
    )
    (sweep,) = config.jobs[0].sweeps
    spec = sweep.template.spec
    assert spec["id"] == {MARKER_KEY: [1, "-", 0]}
    assert spec["command"] == {MARKER_KEY: ["python -m run --state ", 1, " --out ", 0]}
    assert spec["env"] == {"SEED": "7"}
    assert spec["outputs"][0]["path"] == {MARKER_KEY: [1]}
    assert sweep.axes == ("disease", "state")
    assert sweep.values == (("flu", "ca"), ("flu", "ny"))
    assert sweep.task_values() == {"ca-flu": ("flu", "ca"), "ny-flu": ("flu", "ny")}
    assert render_spec(spec, ("flu", "ny"))["command"] == "python -m run --state ny --out flu"
    assert "id" not in sweep.set_template()


def test_tasks_share_the_template_parts_that_do_not_vary() -> None:
    template = SpecTemplate(
        {
            "command": {MARKER_KEY: ["run ", 0]},
            "mounts": [{"source": "inputs", "target": "/data"}],
            "env": {"A": "1", "B": {MARKER_KEY: [0]}},
            "logs": {"container": "logs", "subdir": "job"},
        }
    )
    first, second = template.render(["x"]), template.render(["y"])
    assert (first["command"], second["env"]) == ("run x", {"A": "1", "B": "y"})
    assert first["mounts"] is second["mounts"] is template.spec["mounts"]
    assert first["logs"] is second["logs"]
    assert first["env"] is not second["env"]
    assert template.positions == 1


def test_only_the_sweep_tasks_too_big_for_batch_are_refused_and_named() -> None:
    big = "b" * 990_000
    raw = {
        "resourceGroup": "rg-test",
        "storage": {"account": "sttest", "containers": [{"name": "results"}]},
        "identity": {"name": "id-test"},
        "batch": {"endpoint": "https://batest.eastus.batch.azure.com", "pool": {"id": "p"}},
        "jobs": [
            {
                "id": "job-1",
                "defaults": {"image": "img:1"},
                "sweeps": [
                    {
                        "id": "grid",
                        "taskId": "t-{n}",
                        "matrix": {"n": ["small", "large"], "arg": ["x", big]},
                        "exclude": [{"n": "small", "arg": big}, {"n": "large", "arg": "x"}],
                        "command": "python -m run {arg}",
                    }
                ],
            }
        ],
    }
    try:
        parse_stack_config(raw, "eastus")
    except ConfigError as error:
        messages = [str(problem) for problem in error.problems]
    else:
        raise AssertionError("a task body over 1 MB was accepted")
    body = [message for message in messages if "task body" in message]
    assert len(body) == 1 and "(task 't-large')" in body[0], messages
