"""The state contract: what earlier releases wrote into stacks' state still works here.

Each `tests/fixtures/state-contract-<version>.json` holds, for one release, every dynamic
resource's type, `__provider` (the base64 dill pickle), input names and inputs, and the Check and
Diff answers that release's provider host gave (see `tests/state_contract.py`). This checkout
must unpickle those providers in the real provider host and answer the same; new inputs may be
added (the recorded ones must still be accepted), but none may be dropped or renamed without a
shim (see CONTRIBUTING.md and CHANGELOG.md).
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import pulumi
import pytest

from batchtasks.config import parse_stack_config
from batchtasks.program import declare_stack
from providerhost import PROVIDER_KEY, ProviderHost, capture_registrations
from tests.state_contract import FIXTURES_DIR, PROJECT_DIR, SECRET_VALUE, provider_class

CONTRACTS = sorted(FIXTURES_DIR.glob("state-contract-*.json"))
# Changes no recorded Diff answer covers, whose answer was fixed after 0.2.0 (CHANGELOG.md,
# "Unreleased (structure)"): per resource type, how the change is made and that it is an update.
# 0.2.0 saw neither as a change, so the new value never reached the state.
FIXED_AFTER_0_2_0 = {
    "JobCompletion": {"retryPolicy": ("retryPolicy", {"maxAttempts": 9.0})},
    "TaskSet": {"setName": ("setName", "renamed")},
}
RULES = (
    "state-affecting: keep a shim so existing stacks still refresh, update and destroy, and "
    "record the change in CHANGELOG.md"
)


def load(path: Path) -> dict[str, Any]:
    """Read one release's recorded contract."""
    return json.loads(path.read_text())


def resources(path: Path) -> list[dict[str, Any]]:
    """The recorded dynamic resources of one contract."""
    return list(load(path)["resources"])


@pytest.fixture(scope="module")
def host() -> Iterator[ProviderHost]:
    """The real provider host, started in the project directory as the engine starts it."""
    with ProviderHost(PROJECT_DIR, {}) as started:
        yield started


def test_every_release_since_the_rename_has_a_recorded_contract() -> None:
    assert [path.name for path in CONTRACTS][:1] == ["state-contract-0.2.0.json"]
    for path in CONTRACTS:
        kinds = {resource["type"].rsplit(":", 1)[1] for resource in resources(path)}
        assert kinds == {"Job", "JobCompletion", "Task", "TaskSet"}, path.name


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.stem)
def test_recorded_providers_name_classes_this_checkout_still_has(path: Path) -> None:
    for resource in resources(path):
        module, _, name = resource["providerClass"].rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        assert cls is not None, f"{resource['providerClass']} is gone: {RULES}"
        provider = dill.loads(base64.b64decode(resource["provider"]))
        assert isinstance(provider, cls), resource["type"]


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.stem)
def test_the_host_unpickles_recorded_providers_and_accepts_recorded_inputs(
    host: ProviderHost, path: Path
) -> None:
    host.configure(load(path)["hostConfig"])
    for resource in resources(path):
        outcome = host.check(resource["urn"], {}, resource["inputs"])
        assert [list(failure) for failure in outcome.failures] == resource["checkFailures"], (
            f"{resource['type']}: recorded inputs no longer pass check: {RULES}"
        )
        assert outcome.inputs[PROVIDER_KEY] == resource["provider"]
        # New inputs may appear with defaults; every recorded one keeps its checked value.
        for key, value in resource["checkedInputs"].items():
            assert outcome.inputs.get(key) == value, f"{resource['type']}.{key}: {RULES}"


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.stem)
def test_diff_answers_as_recorded(host: ProviderHost, path: Path) -> None:
    host.configure(load(path)["hostConfig"])
    for resource in resources(path):
        stored = resource["checkedInputs"]
        for label, recorded in resource["diffs"].items():
            checked = host.check(resource["urn"], stored, recorded["news"])
            assert [list(f) for f in checked.failures] == recorded["checkFailures"]
            diff = host.diff(resource["urn"], resource["name"], stored, checked.inputs)
            where = f"{resource['type']} {label}"
            assert diff.changes == recorded["changes"], f"{where}: {RULES}"
            assert sorted(diff.replaces) == recorded["replaces"], f"{where}: {RULES}"
            assert diff.delete_before_replace == recorded["deleteBeforeReplace"], where
    assert host.running


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.stem)
def test_recorded_state_sees_a_new_completion_retry_policy_or_set_name_as_an_update(
    host: ProviderHost, path: Path
) -> None:
    host.configure(load(path)["hostConfig"])
    seen = set()
    for resource in resources(path):
        kind = resource["type"].rsplit(":", 1)[1]
        for label, (key, value) in FIXED_AFTER_0_2_0.get(kind, {}).items():
            # Not an answer any contract records: a recorded one must stay as recorded.
            assert label not in resource["diffs"], f"{kind} {label} has a recorded answer"
            stored = resource["checkedInputs"]
            news = {**copy.deepcopy(resource["inputs"]), key: value}
            checked = host.check(resource["urn"], stored, news)
            assert list(checked.failures) == []
            diff = host.diff(resource["urn"], resource["name"], stored, checked.inputs)
            assert (diff.changes, list(diff.replaces)) == (True, []), f"{kind} {label}"
            seen.add(kind)
    assert seen == set(FIXED_AFTER_0_2_0)


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.stem)
def test_the_program_still_registers_every_recorded_resource_and_input(path: Path) -> None:
    contract = load(path)
    config = parse_stack_config(contract["stackSettings"], location="eastus")
    now = {
        (reg.type, reg.name): reg
        for reg in capture_registrations(
            lambda: declare_stack(config, lambda _key: pulumi.Output.secret(SECRET_VALUE)),
            project="batchtasks",
            stack="fixture",
        )
    }
    for resource in contract["resources"]:
        reg = now.get((resource["type"], resource["name"]))
        assert reg is not None, f"{resource['type']} {resource['name']} is no longer registered"
        missing = set(resource["inputNames"]) - set(reg.inputs)
        assert not missing, f"{resource['type']} no longer registers {sorted(missing)}: {RULES}"
        # The pickle may change (dill versions); the class it names may not.
        assert provider_class(reg.provider) == resource["providerClass"], (
            f"{resource['type']}: {RULES}"
        )
