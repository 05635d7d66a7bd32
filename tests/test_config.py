"""Stack configuration: the example stack, resolution of tasks, and every kind of mistake."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from batchtasks.config import (
    ConfigError,
    ConfigProblem,
    json_schema,
    load_stack_file,
    parse_duration,
    parse_stack_config,
)
from batchtasks.config import sweep as sweep_module
from tests.namespaces import namespace

DEV_STACK = Path(__file__).resolve().parent.parent / "stacks" / "Pulumi.dev.yaml"
IDENTITY_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-x/"
    "providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-x"
)
REGISTRY_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-x/"
    "providers/Microsoft.ContainerRegistry/registries/myregistry"
)


def base() -> dict[str, Any]:
    """A small valid `batchtasks:` namespace: one job with a task and a sweep."""
    jobs = [
        {
            "id": "job-1",
            "logs": {"container": "logs"},
            "defaults": {
                "image": "example.azurecr.io/model:1",
                "mounts": [{"source": "inputs", "target": "/data"}],
                "env": {"MODE": "full", "SEED": 7},
            },
            "tasks": [
                {
                    "id": "summary",
                    "command": "python summarise.py",
                    "dependsOn": ["a-x"],
                    "secretEnv": {"TOKEN": "apiToken"},
                    "outputs": [{"pattern": "out/*", "container": "results", "path": "summary"}],
                }
            ],
            "sweeps": [
                {
                    "id": "grid",
                    "taskId": "{letter}-{mark}",
                    "matrix": {"letter": ["a", "b"], "mark": ["x", "y"]},
                    "command": "python run.py --letter {letter} --mark {mark}",
                    "env": {"MARK": "{mark}"},
                    "outputs": [
                        {"pattern": "out/*", "container": "results", "path": "{letter}/{mark}"}
                    ],
                }
            ],
        }
    ]
    return namespace(jobs, apiToken={"secure": "v1:abc:def"})


def parse(raw: dict[str, Any], **kwargs: Any):
    return parse_stack_config(raw, kwargs.pop("location", "eastus"), **kwargs)


def problems_of(raw: Any, **kwargs: Any) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, **kwargs)
    return caught.value.problems


def job(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["jobs"][0]


def task(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["jobs"][0]["tasks"][0]


def sweep(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["jobs"][0]["sweeps"][0]


def set_in(getter: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any):
    def mutate(raw: dict[str, Any]) -> None:
        getter(raw)[key] = value

    return mutate


def do(*steps: Callable[[dict[str, Any]], Any]):
    def mutate(raw: dict[str, Any]) -> None:
        for step in steps:
            step(raw)

    return mutate


J = "batchtasks:jobs[0]"
T = f"{J}.tasks[0]"
S = f"{J}.sweeps[0]"

# (name, change to the valid base, key path of the problem, words of its message)
BAD: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    (
        "misspelt top-level key",
        set_in(lambda r: r, "storgae", {"account": "x"}),
        "batchtasks:storgae",
        "unknown key",
    ),
    (
        "misspelt nested key",
        set_in(lambda r: r["storage"], "containres", []),
        "batchtasks:storage.containres",
        "did you mean 'containers'",
    ),
    (
        "bad storage account name",
        set_in(lambda r: r["storage"], "account", "My_Account"),
        "batchtasks:storage.account",
        "3-24 lowercase",
    ),
    (
        "bad container name",
        set_in(lambda r: r["storage"]["containers"][0], "name", "In_Puts"),
        "batchtasks:storage.containers[0].name",
        "lowercase",
    ),
    (
        "repeated container",
        lambda r: r["storage"]["containers"].append({"name": "logs"}),
        "batchtasks:storage.containers[3].name",
        "repeats the container of containers[2]",
    ),
    (
        "unknown access",
        set_in(lambda r: r["storage"]["containers"][0], "access", "readwrite"),
        "batchtasks:storage.containers[0].access",
        "must be one of read, write",
    ),
    (
        "identity both ways",
        set_in(lambda r: r["identity"], "resourceId", IDENTITY_ID),
        "batchtasks:identity",
        "only one of name, resourceId",
    ),
    (
        "identity neither way",
        lambda r: r["identity"].pop("name"),
        "batchtasks:identity",
        "must give one of name or resourceId",
    ),
    (
        "identity id not an identity",
        lambda r: r.update(identity={"resourceId": REGISTRY_ID}),
        "batchtasks:identity.resourceId",
        "user-assigned identity",
    ),
    (
        "registry server as URL",
        set_in(lambda r: r, "registry", {"server": "https://myregistry.azurecr.io"}),
        "batchtasks:registry.server",
        "host name",
    ),
    (
        "registry id of another registry",
        set_in(lambda r: r, "registry", {"server": "other.azurecr.io", "resourceId": REGISTRY_ID}),
        "batchtasks:registry.resourceId",
        "names registry 'myregistry'",
    ),
    (
        "http endpoint",
        set_in(lambda r: r["batch"], "endpoint", "http://batest.eastus.batch.azure.com"),
        "batchtasks:batch.endpoint",
        "https URL",
    ),
    (
        "endpoint of another account",
        set_in(lambda r: r["batch"], "account", "other"),
        "batchtasks:batch.endpoint",
        "not the endpoint of batch.account 'other'",
    ),
    (
        "pool created without account",
        do(
            set_in(lambda r: r["batch"]["pool"], "create", True),
            set_in(lambda r: r["batch"]["pool"], "vmSize", "Standard_D4s_v3"),
            set_in(
                lambda r: r["batch"]["pool"], "image", {"publisher": "p", "offer": "o", "sku": "s"}
            ),
            set_in(lambda r: r["batch"]["pool"], "nodeAgentSkuId", "batch.node.ubuntu 22.04"),
        ),
        "batchtasks:batch.account",
        "required when batch.pool.create is true",
    ),
    (
        "pool created without vm size",
        set_in(lambda r: r["batch"]["pool"], "create", True),
        "batchtasks:batch.pool.vmSize",
        "required when create is true",
    ),
    (
        "pool image without its node agent",
        do(
            set_in(lambda r: r["batch"], "account", "batest"),
            set_in(lambda r: r["batch"]["pool"], "create", True),
            set_in(lambda r: r["batch"]["pool"], "vmSize", "Standard_D4s_v3"),
            set_in(
                lambda r: r["batch"]["pool"], "image", {"publisher": "p", "offer": "o", "sku": "s"}
            ),
        ),
        "batchtasks:batch.pool.nodeAgentSkuId",
        "required when image is given",
    ),
    (
        "pool setting that does nothing",
        set_in(lambda r: r["batch"]["pool"], "vmSize", "Standard_A1"),
        "batchtasks:batch.pool.vmSize",
        "only used when create is true",
    ),
    (
        "no nodes",
        set_in(lambda r: r["batch"]["pool"], "maxNodes", 0),
        "batchtasks:batch.pool.maxNodes",
        "at least 1",
    ),
    ("job id with a space", set_in(job, "id", "weekly forecast"), f"{J}.id", "letters, digits"),
    (
        "job ids equal ignoring case",
        lambda r: r["jobs"].append({"id": "JOB-1"}),
        "batchtasks:jobs[1].id",
        "repeats the id of jobs[0]",
    ),
    (
        "unknown completion action",
        set_in(job, "onAllTasksComplete", "terminate"),
        f"{J}.onAllTasksComplete",
        "noAction, terminateJob",
    ),
    (
        "priority out of range",
        set_in(job, "priority", 5000),
        f"{J}.priority",
        "between -1000 and 1000",
    ),
    (
        "zero parallel tasks",
        set_in(job, "maxParallelTasks", 0),
        f"{J}.maxParallelTasks",
        "at least 1 (or -1)",
    ),
    (
        "job retry count not a number",
        set_in(job, "constraints", {"maxTaskRetryCount": "two"}),
        f"{J}.constraints.maxTaskRetryCount",
        "must be an integer",
    ),
    (
        "logs to an undeclared container",
        set_in(job, "logs", {"container": "stdout"}),
        f"{J}.logs.container",
        "not a declared container (declared: inputs, results, logs)",
    ),
    (
        "logs to a read-only container",
        set_in(job, "logs", {"container": "inputs"}),
        f"{J}.logs.container",
        "is read-only",
    ),
    (
        "absolute logs folder",
        set_in(job, "logs", {"container": "logs", "subdir": "/x"}),
        f"{J}.logs.subdir",
        "relative blob path",
    ),
    (
        "sweep writes to a read-only container",
        set_in(lambda r: sweep(r)["outputs"][0], "container", "inputs"),
        f"{S}.outputs[0].container",
        "is read-only",
    ),
    (
        "mount of an undeclared container",
        set_in(task, "mounts", [{"source": "raw", "target": "/r"}]),
        f"{T}.mounts[0].source",
        "not a declared container",
    ),
    (
        "relative mount target",
        set_in(task, "mounts", [{"source": "inputs", "target": "data"}]),
        f"{T}.mounts[0].target",
        "absolute path",
    ),
    (
        "mount target twice",
        set_in(
            task,
            "mounts",
            [{"source": "inputs", "target": "/d"}, {"source": "results", "target": "/d/"}],
        ),
        f"{T}.mounts[1].target",
        "repeats the target of mounts[0]",
    ),
    (
        "mount source climbing out",
        set_in(task, "mounts", [{"source": "inputs/../x", "target": "/d"}]),
        f"{T}.mounts[0].source",
        "'..'",
    ),
    (
        "unknown upload condition",
        set_in(task, "outputs", [{"pattern": "x", "container": "results", "when": "always"}]),
        f"{T}.outputs[0].when",
        "taskSuccess, taskFailure, taskCompletion",
    ),
    (
        "empty output pattern",
        set_in(task, "outputs", [{"pattern": " ", "container": "results"}]),
        f"{T}.outputs[0].pattern",
        "must not be empty",
    ),
    (
        "duration in words",
        set_in(task, "maxWallClockTime", "2 hours"),
        f"{T}.maxWallClockTime",
        "ISO 8601",
    ),
    (
        "duration in months",
        set_in(task, "retention", "P1M"),
        f"{T}.retention",
        "months have no fixed length",
    ),
    ("retries below -1", set_in(task, "retries", -2), f"{T}.retries", "at least -1"),
    ("retries as a fraction", set_in(task, "retries", 1.5), f"{T}.retries", "integer"),
    ("unknown elevation", set_in(task, "elevation", "root"), f"{T}.elevation", "admin, nonadmin"),
    (
        "unknown working directory",
        set_in(task, "workingDirectory", "/work"),
        f"{T}.workingDirectory",
        "taskWorkingDirectory",
    ),
    (
        "shell in run options",
        set_in(task, "runOptions", "--rm; rm -rf /"),
        f"{T}.runOptions",
        "no quotes, '$', ';'",
    ),
    (
        "privileged container",
        set_in(task, "runOptions", "--rm --privileged"),
        f"{T}.runOptions",
        "privileges are not granted through config",
    ),
    (
        "volume through run options",
        set_in(task, "runOptions", "-tv /:/host"),
        f"{T}.runOptions",
        "mounts belong in `mounts`",
    ),
    (
        "host network",
        set_in(task, "runOptions", "--network host"),
        f"{T}.runOptions",
        "--network=host",
    ),
    ("bad env name", set_in(task, "env", {"1BAD": "x"}), f"{T}.env['1BAD']", "not a valid name"),
    (
        "env value a list",
        set_in(task, "env", {"PATHS": ["a", "b"]}),
        f"{T}.env.PATHS",
        "string, number or boolean",
    ),
    (
        "env and secretEnv share a name",
        set_in(task, "env", {"TOKEN": "x"}),
        f"{T}.secretEnv.TOKEN",
        "also set in env",
    ),
    (
        "secretEnv of a missing key",
        set_in(task, "secretEnv", {"TOKEN": "apiTokn"}),
        f"{T}.secretEnv.TOKEN",
        "not in the stack config",
    ),
    (
        "secretEnv of a plain key",
        do(
            set_in(lambda r: r, "apiToken", "plain"),
            set_in(task, "secretEnv", {"TOKEN": "apiToken"}),
        ),
        f"{T}.secretEnv.TOKEN",
        "not a secret",
    ),
    (
        "secretEnv of a setting",
        set_in(task, "secretEnv", {"TOKEN": "storage"}),
        f"{T}.secretEnv.TOKEN",
        "names a setting",
    ),
    (
        "dependency on nothing",
        set_in(task, "dependsOn", ["c-x"]),
        f"{T}.dependsOn",
        "names no task of job 'job-1'",
    ),
    (
        "dependency in the wrong case",
        set_in(task, "dependsOn", ["A-X"]),
        f"{T}.dependsOn",
        "did you mean 'a-x'",
    ),
    (
        "dependency on itself",
        set_in(task, "dependsOn", ["summary"]),
        f"{T}.dependsOn",
        "depend on itself",
    ),
    (
        "dependency cycle",
        set_in(sweep, "dependsOn", ["summary"]),
        f"{T}.dependsOn",
        "dependency cycle: summary -> a-x -> summary",
    ),
    (
        "defaults cannot depend",
        set_in(lambda r: job(r)["defaults"], "dependsOn", ["x"]),
        f"{J}.defaults.dependsOn",
        "unknown key",
    ),
    (
        "task id given by a sweep",
        set_in(task, "id", "B-Y"),
        f"{S}.taskId",
        "repeats task id 'B-Y' of batchtasks:jobs[0].tasks[0]",
    ),
    (
        "template collapses ids",
        set_in(sweep, "taskId", "run-{letter}"),
        f"{S}.taskId",
        "repeats task id 'run-a'",
    ),
    (
        "template of a missing axis",
        set_in(sweep, "taskId", "{letter}-{county}"),
        f"{S}.taskId",
        "{county}, which is not an axis",
    ),
    (
        "template makes a bad id",
        set_in(sweep, "matrix", {"letter": ["a", "b c"], "mark": ["x"]}),
        f"{S}.taskId",
        "made from letter='b c', mark='x'",
    ),
    (
        "command of a missing axis",
        set_in(sweep, "command", "run {leter}"),
        f"{S}.command",
        "{leter}, which is not an axis",
    ),
    (
        "output path of a missing axis",
        set_in(sweep, "outputs", [{"pattern": "o", "container": "results", "path": "{state}"}]),
        f"{S}.outputs[0].path",
        "{state}",
    ),
    (
        "env value of a missing axis",
        set_in(sweep, "env", {"M": "{marks}"}),
        f"{S}.env.M",
        "{marks}",
    ),
    (
        "dependency template of a missing axis",
        set_in(sweep, "dependsOn", ["{x}-setup"]),
        f"{S}.dependsOn[0]",
        "{x}",
    ),
    (
        "format spec in a template",
        set_in(sweep, "command", "run {letter:>3}"),
        f"{S}.command",
        "plain {axis} placeholders",
    ),
    (
        "unclosed brace",
        set_in(sweep, "command", "run {letter"),
        f"{S}.command",
        "not a valid template",
    ),
    (
        "output path that climbs out",
        set_in(sweep, "outputs", [{"pattern": "o", "container": "results", "path": "../{letter}"}]),
        f"{S}.outputs[0].path",
        "makes a bad path",
    ),
    (
        "exclude of a missing axis",
        set_in(sweep, "exclude", [{"county": "x"}]),
        f"{S}.exclude[0].county",
        "not an axis",
    ),
    (
        "exclude that matches nothing",
        set_in(sweep, "exclude", [{"letter": "z"}]),
        f"{S}.exclude[0]",
        "matches no combination",
    ),
    (
        "include without every axis",
        set_in(sweep, "include", [{"letter": "c"}]),
        f"{S}.include[0]",
        "missing: mark",
    ),
    (
        "empty axis",
        set_in(sweep, "matrix", {"letter": [], "mark": ["x"]}),
        f"{S}.matrix.letter",
        "at least 1",
    ),
    (
        "repeated axis value",
        set_in(sweep, "matrix", {"letter": ["a", "a"], "mark": ["x"]}),
        f"{S}.matrix.letter[1]",
        "repeats item 0",
    ),
    (
        "axis value not a scalar",
        set_in(sweep, "matrix", {"letter": [{"a": 1}], "mark": ["x"]}),
        f"{S}.matrix.letter[0]",
        "string, number or boolean",
    ),
    (
        "repeated sweep id",
        lambda r: job(r)["sweeps"].append(
            dict(sweep(r), id="GRID", taskId="other-{letter}-{mark}")
        ),
        f"{J}.sweeps[1].id",
        "repeats the id of sweeps[0]",
    ),
    (
        "image nowhere",
        lambda r: job(r)["defaults"].pop("image"),
        f"{T}.image",
        "required (on the task or in the job's defaults)",
    ),
    ("task without id", lambda r: task(r).pop("id"), f"{T}.id", "is required"),
    (
        "defaults template of a missing axis",
        do(
            lambda r: sweep(r).pop("command"),
            set_in(lambda r: job(r)["defaults"], "command", "run {nope}"),
        ),
        f"{J}.defaults.command",
        "{nope}, which is not an axis",
    ),
    (
        "resource group ending in a dot",
        set_in(lambda r: r, "resourceGroup", "rg."),
        "batchtasks:resourceGroup",
        "not ending with '.'",
    ),
    (
        "too many combinations",
        set_in(
            sweep, "matrix", {"a": list(range(1000)), "b": list(range(1000)), "c": list(range(2))}
        ),
        f"{S}.matrix",
        "makes 2000000 combinations; a sweep may have at most 1000000",
    ),
]


def test_corpus_is_large_and_distinct() -> None:
    assert len(BAD) >= 30
    assert len({name for name, *_ in BAD}) == len(BAD)


@pytest.mark.parametrize(
    ("change", "path", "words"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_config_names_its_key_path(
    change: Callable[[dict[str, Any]], Any], path: str, words: str
) -> None:
    raw = base()
    change(raw)
    problems = problems_of(raw)
    matching = [problem for problem in problems if problem.path == path]
    assert matching, f"no problem at {path}; got:\n" + "\n".join(map(str, problems))
    assert any(words in problem.message for problem in matching), "\n".join(map(str, problems))


def test_base_config_is_valid() -> None:
    stack = parse(base())
    assert [t["id"] for t in stack.jobs[0].sweeps[0].tasks] == ["a-x", "a-y", "b-x", "b-y"]


def test_message_quotes_path_and_bad_value() -> None:
    raw = base()
    sweep(raw)["outputs"][0]["container"] = "inputs"
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert (
        "batchtasks:jobs[0].sweeps[0].outputs[0].container: 'inputs' is read-only"
        in str(caught.value).splitlines()
    )


def test_every_problem_is_reported_at_once() -> None:
    raw = base()
    raw["storage"]["account"] = "BAD"
    task(raw)["retries"] = "three"
    sweep(raw)["taskId"] = "{nope}"
    raw["jobs"].append("not a job")
    problems = problems_of(raw)
    paths = {problem.path for problem in problems}
    assert {
        "batchtasks:storage.account",
        f"{T}.retries",
        f"{S}.taskId",
        "batchtasks:jobs[1]",
    } <= paths
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert len(str(caught.value).splitlines()) == len(caught.value.problems)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: r.update(storage=["sttest"]), "batchtasks:storage"),
        (lambda r: r.update(jobs={"id": "job-1"}), "batchtasks:jobs"),
        (lambda r: job(r).update(tasks=["summary"]), f"{J}.tasks[0]"),
        (lambda r: task(r).update(mounts="inputs:/data"), f"{T}.mounts"),
        (lambda r: task(r).update(env=["A=1"]), f"{T}.env"),
        (lambda r: sweep(r).update(matrix=["letter", "mark"]), f"{S}.matrix"),
        (lambda r: sweep(r).update(include={"letter": "c"}), f"{S}.include"),
        (lambda r: r["storage"]["containers"].append(7), "batchtasks:storage.containers[3]"),
        (lambda r: r["batch"].update(pool=None), "batchtasks:batch.pool"),
        (lambda r: sweep(r).update(taskId=12), f"{S}.taskId"),
        (lambda r: task(r).update(dependsOn="a-x"), f"{T}.dependsOn"),
        (lambda r: job(r).update(defaults=[]), f"{J}.defaults"),
        (lambda r: r["storage"].update({3: "x"}), "batchtasks:storage[3]"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_wrong_types_are_problems_not_crashes(
    change: Callable[[dict[str, Any]], Any], path: str
) -> None:
    raw = base()
    change(raw)
    assert path in {problem.path for problem in problems_of(raw)}


def _paths(node: Any, trail: tuple[Any, ...] = ()):
    yield trail
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node if isinstance(node, list) else [])
    )
    for key, value in children:
        yield from _paths(value, (*trail, key))


@pytest.mark.parametrize("replacement", [None, 0, 2.5, "x", [], {}, True, [{}], {"a": [1]}])
def test_any_value_of_any_type_anywhere_gives_problems_not_crashes(replacement: Any) -> None:
    for trail in list(_paths(base()))[1:]:
        raw = base()
        node = raw
        for key in trail[:-1]:
            node = node[key]
        node[trail[-1]] = copy.deepcopy(replacement)
        try:
            parse(raw)
        except ConfigError as error:
            assert error.problems, trail


@pytest.mark.parametrize("raw", [None, [], "config", 3])
def test_settings_that_are_not_a_mapping(raw: Any) -> None:
    assert [problem.path for problem in problems_of(raw)] == ["batchtasks"]


def test_missing_settings_are_each_named() -> None:
    problems = problems_of({}, location=None)
    assert {problem.path for problem in problems} == {
        "batchtasks:resourceGroup",
        "batchtasks:storage",
        "batchtasks:identity",
        "batchtasks:batch",
        "azure-native:location",
    }


def test_secret_values_never_appear_in_problems() -> None:
    raw = base()
    raw["apiToken"] = "plaintext-secret-1"
    raw["unusedSecret"] = "plaintext-secret-2"
    raw["storage"] = "plaintext-secret-3"
    with pytest.raises(ConfigError) as caught:
        parse(raw, secure_keys={"apiToken", "unusedSecret", "storage"})
    text = str(caught.value)
    assert "plaintext-secret" not in text
    assert "batchtasks:unusedSecret: unknown key" in text
    assert "batchtasks:storage: is a secret" in text


def test_secure_keys_given_by_the_runtime_are_secrets() -> None:
    raw = base()
    raw["apiToken"] = "decrypted by the runtime"
    stack = parse(raw, secure_keys={"apiToken"})
    assert stack.jobs[0].tasks[0]["secretEnv"] == {"TOKEN": "apiToken"}
    # A secret the runtime knows of need not be in the settings it passed.
    del raw["apiToken"]
    assert parse(raw, secure_keys=["apiToken"]).jobs[0].tasks[0]["secretEnv"]


def test_unreferenced_secure_key_is_unknown() -> None:
    raw = base()
    raw["apiTokn"] = {"secure": "v1:x:y"}
    assert "batchtasks:apiTokn" in {problem.path for problem in problems_of(raw)}


def test_dev_stack_resolves_the_forecasting_pipeline() -> None:
    stack = load_stack_file(DEV_STACK)
    assert stack.location == "eastus"
    assert stack.resource_group == "rg-forecasting"
    assert {c.name: c.access for c in stack.storage.containers} == {
        "nssp-etl": "read",
        "population": "read",
        "forecasts": "write",
        "batch-logs": "write",
    }
    assert stack.batch.pool.create and stack.batch.account
    (weekly,) = stack.jobs
    assert weekly.on_all_tasks_complete == "terminateJob"
    assert weekly.uses_task_dependencies
    (forecast,) = weekly.sweeps
    ids = [spec["id"] for spec in forecast.tasks]
    assert len(ids) == 3 * 12 - 1 + 2
    assert "rsv-az" not in ids and {"covid-us", "flu-us"} <= set(ids)
    covid_ca = forecast.tasks[ids.index("covid-ca")]
    assert "--disease covid --state ca" in covid_ca["command"]
    assert covid_ca["outputs"][0]["path"] == "covid/ca"
    assert covid_ca["outputs"][0]["container"] == "forecasts"
    assert covid_ca["env"]["DISEASE"] == "covid"
    assert covid_ca["logs"] == {"container": "batch-logs", "subdir": "weekly-forecast"}
    (summary,) = weekly.tasks
    assert set(summary["dependsOn"]) <= set(ids)
    assert summary["secretEnv"] == {"DASHBOARD_TOKEN": "dashboardToken"}
    # The dashboard token's ciphertext is read by no one and shown nowhere.
    assert "Zk9yZWNhc3Qt" not in repr(stack)


def test_task_spec_merges_defaults_and_omits_what_is_unset() -> None:
    raw = base()
    task(raw).update(
        env={"MODE": "quick", "VERBOSE": True},
        image="other:2",
        elevation="nonadmin",
        scope="task",
        retries=0,
    )
    sweep(raw)["outputs"][0]["when"] = "TASKSUCCESS"
    stack = parse(raw)
    summary = stack.jobs[0].tasks[0]
    assert summary == {
        "id": "summary",
        "command": "python summarise.py",
        "image": "other:2",
        "mounts": [{"source": "inputs", "target": "/data"}],
        "env": {"MODE": "quick", "SEED": "7", "VERBOSE": "true"},
        "secretEnv": {"TOKEN": "apiToken"},
        "outputs": [
            {
                "pattern": "out/*",
                "container": "results",
                "path": "summary",
                "when": "taskCompletion",
            }
        ],
        "retries": 0,
        "dependsOn": ["a-x"],
        "elevation": "nonadmin",
        "scope": "task",
        "logs": {"container": "logs", "subdir": "job-1"},
    }
    b_y = stack.jobs[0].sweeps[0].tasks[3]
    assert b_y == {
        "id": "b-y",
        "command": "python run.py --letter b --mark y",
        "image": "example.azurecr.io/model:1",
        "mounts": [{"source": "inputs", "target": "/data"}],
        "env": {"MODE": "full", "SEED": "7", "MARK": "y"},
        "outputs": [
            {"pattern": "out/*", "container": "results", "path": "b/y", "when": "taskSuccess"}
        ],
        "logs": {"container": "logs", "subdir": "job-1"},
    }


def test_task_list_replaces_the_default_list() -> None:
    raw = base()
    task(raw)["mounts"] = []
    assert "mounts" not in parse(raw).jobs[0].tasks[0]


def test_default_templates_render_in_sweeps() -> None:
    raw = base()
    job(raw)["defaults"]["env"]["WHO"] = "{letter}"
    stack = parse(raw)
    assert stack.jobs[0].sweeps[0].tasks[2]["env"]["WHO"] == "b"
    # A plain task has no axes: its values are taken as written.
    assert stack.jobs[0].tasks[0]["env"]["WHO"] == "{letter}"


def test_include_exclude_and_escaped_braces() -> None:
    raw = base()
    sweep(raw).update(
        exclude=[{"mark": "y"}],
        include=[{"letter": "c", "mark": 3}, {"letter": "a", "mark": "x"}],
        command="echo {{literal}} {letter}{mark}",
    )
    tasks = parse(raw).jobs[0].sweeps[0].tasks
    assert [t["id"] for t in tasks] == ["a-x", "b-x", "c-3"]
    assert tasks[2]["command"] == "echo {literal} c3"


def test_exclude_entries_drop_what_they_match_on_a_three_axis_matrix() -> None:
    raw = base()
    axes = {"letter": ["a", "b", "c"], "mark": ["x", "y"], "n": [1, 2, 3, 4]}
    excludes = [{"letter": "b"}, {"mark": "y", "n": 2}, {"n": 4}, {"letter": "b"}, {"n": "3"}]
    sweep(raw).update(matrix=axes, taskId="{letter}-{mark}-{n}", exclude=excludes)
    sweep(raw)["command"] = "run {letter} {mark} {n}"
    del task(raw)["dependsOn"]
    tasks = parse(raw).jobs[0].sweeps[0].tasks
    expected = [
        f"{letter}-{mark}-{n}"
        for letter in axes["letter"]
        for mark in axes["mark"]
        for n in axes["n"]
        if letter != "b" and (mark, n) != ("y", 2) and n not in (3, 4)
    ]
    assert [t["id"] for t in tasks] == expected


def test_include_past_the_combination_cap_is_refused_at_its_key_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sweep_module, "MAX_COMBINATIONS", 4)
    raw = base()
    sweep(raw)["include"] = [{"letter": "c", "mark": "x"}]  # the matrix makes 4
    problems = problems_of(raw)
    assert [(p.path, p.message) for p in problems] == [
        (f"{S}.include", "makes 5 combinations with the matrix; a sweep may have at most 4")
    ]


def test_dependencies_and_job_flags() -> None:
    raw = base()
    sweep(raw)["dependsOn"] = ["setup-{letter}"]
    job(raw)["tasks"] += [{"id": "setup-a", "command": "s"}, {"id": "setup-b", "command": "s"}]
    job(raw).update(
        priority=-5,
        maxParallelTasks=-1,
        replaceRunningTasks=True,
        constraints={"maxWallClockTime": "P1DT2H", "maxTaskRetryCount": -1},
    )
    parsed = parse(raw).jobs[0]
    assert parsed.uses_task_dependencies
    assert parsed.sweeps[0].tasks[2]["dependsOn"] == ["setup-b"]
    assert (parsed.priority, parsed.max_parallel_tasks, parsed.replace_running_tasks) == (
        -5,
        -1,
        True,
    )
    assert parsed.constraints == {"maxWallClockTime": "P1DT2H", "maxTaskRetryCount": -1}
    plain = base()
    del task(plain)["dependsOn"]
    assert not parse(plain).jobs[0].uses_task_dependencies


def test_pool_created_by_the_stack_gets_defaults() -> None:
    raw = base()
    raw["batch"]["account"] = "batest"
    raw["batch"]["pool"].update(
        create=True,
        vmSize="Standard_D4s_v3",
        nodeAgentSkuId="n",
        image={"publisher": "p", "offer": "o", "sku": "s"},
    )
    pool = parse(raw).batch.pool
    assert (pool.max_nodes, pool.image["version"]) == (1, "latest")


def test_minimal_created_pool_needs_no_image_or_node_agent() -> None:
    raw = base()
    raw["batch"]["account"] = "batest"
    raw["batch"]["pool"].update(create=True, vmSize="Standard_D4s_v3", maxNodes=2)
    pool = parse(raw).batch.pool
    assert (pool.create, pool.image, pool.node_agent_sku_id, pool.max_nodes) == (
        True,
        None,
        None,
        2,
    )


def test_problems_from_one_sweep_mistake_are_capped() -> None:
    raw = base()
    sweep(raw)["matrix"] = {"letter": [f"l{i}" for i in range(50)], "mark": ["x", "y"]}
    sweep(raw)["taskId"] = "same"
    problems = problems_of(raw)
    repeats = [problem for problem in problems if problem.path == f"{S}.taskId"]
    assert len(repeats) == 6
    assert repeats[-1].message == "... and 94 more like the above"


def test_ten_thousand_task_sweep() -> None:
    raw = base()
    sweep(raw)["matrix"] = {
        "letter": [f"l{i}" for i in range(100)],
        "mark": [f"m{i}" for i in range(100)],
    }
    task(raw)["dependsOn"] = ["l99-m99"]
    sweep(raw)["dependsOn"] = ["summary-0"]
    job(raw)["tasks"].append({"id": "summary-0", "command": "prepare"})
    tasks = parse(raw).jobs[0].sweeps[0].tasks
    assert len(tasks) == 10_000
    assert tasks[-1]["id"] == "l99-m99" and tasks[-1]["outputs"][0]["path"] == "l99/m99"


def test_dependency_list_too_long_for_batch() -> None:
    raw = base()
    sweep(raw)["matrix"] = {
        "letter": [f"letter{i:03d}" for i in range(100)],
        "mark": [f"mark{i:04d}" for i in range(60)],
    }
    task(raw)["dependsOn"] = [f"letter{i:03d}-mark{j:04d}" for i in range(100) for j in range(60)]
    problems = problems_of(raw)
    assert any(p.path == f"{T}.dependsOn" and "64000 characters" in p.message for p in problems)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_stack_file_that_is_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_file(write(tmp_path, "config:\n  batchtasks:jobs: [\n"))
    (problem,) = caught.value.problems
    assert problem.path == "config" and "not valid YAML at line" in problem.message


def test_stack_file_keys_need_a_namespace(tmp_path: Path) -> None:
    config = {"config": {f"batchtasks:{key}": value for key, value in base().items()}}
    config["config"]["azure-native:location"] = "eastus"
    config["config"]["azure-native:subscriptionId"] = "ignored"
    config["config"]["resourceGroup"] = "rg-x"
    with pytest.raises(ConfigError) as caught:
        load_stack_file(write(tmp_path, yaml.safe_dump(config)))
    assert [str(p) for p in caught.value.problems] == [
        "config.resourceGroup: is not namespaced (write batchtasks:resourceGroup for a setting "
        "of this project)"
    ]
    del config["config"]["resourceGroup"]
    assert load_stack_file(write(tmp_path, yaml.safe_dump(config))).jobs


def test_durations() -> None:
    assert parse_duration("P1DT2H") == timedelta(days=1, hours=2)
    assert parse_duration("PT1.5S") == timedelta(seconds=1.5)
    for bad in ("P", "PT", "P1Y", "1H", "PT1H30", "P1DT"):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_duration(bad)


def dev_config() -> dict[str, Any]:
    return yaml.safe_load(DEV_STACK.read_text(encoding="utf-8"))["config"]


def test_json_schema_accepts_the_dev_stack() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(dev_config())


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["batchtasks:storage"].update(containres=[]),
        lambda c: c.update({"batchtasks:storgae": {"account": "x"}}),
        lambda c: c["batchtasks:jobs"][0]["sweeps"][0].update(taskIds="x"),
        lambda c: c["batchtasks:storage"]["containers"][0].update(access="readwrite"),
        lambda c: c["batchtasks:identity"].update(resourceId="/x"),
        lambda c: c["batchtasks:jobs"][0].update(maxParallelTasks=0),
        lambda c: c["batchtasks:jobs"][0]["defaults"].update(maxWallClockTime="2h"),
        lambda c: c["batchtasks:jobs"][0]["sweeps"][0]["outputs"][0].update(when="later"),
        lambda c: c.pop("azure-native:location"),
    ],
)
def test_json_schema_rejects_what_the_validator_rejects(
    change: Callable[[dict[str, Any]], Any],
) -> None:
    config = dev_config()
    change(config)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, json_schema(), cls=jsonschema.Draft202012Validator)
    raw = {
        key.removeprefix("batchtasks:"): value
        for key, value in config.items()
        if key.startswith("batchtasks:")
    }
    with pytest.raises(ConfigError):
        parse_stack_config(raw, config.get("azure-native:location"))


def test_json_schema_accepts_any_case_upload_condition() -> None:
    config = dev_config()
    config["batchtasks:jobs"][0]["sweeps"][0]["outputs"][0]["when"] = "TaskSuccess"
    jsonschema.validate(config, json_schema(), cls=jsonschema.Draft202012Validator)


def test_problem_is_frozen_and_copyable() -> None:
    problem = ConfigProblem("batchtasks:x", "is wrong", "'v'")
    assert str(problem) == "batchtasks:x: 'v' is wrong"
    assert copy.deepcopy(problem) == problem
    assert str(ConfigProblem("batchtasks:x", "is required")) == "batchtasks:x: is required"
