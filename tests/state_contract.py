"""Record what this release writes into a stack's state, so later checkouts can be held to it.

Every dynamic resource's state holds its type token, its input names and `__provider`: a dill
pickle that names the provider class by module path. A stack created by this release is
refreshed, updated and destroyed by later ones, so each later checkout must still unpickle these
providers and answer Check and Diff for these inputs as this release did.

`record()` runs the real program under mocks for a small fixed stack and asks the real provider
host (`python -m pulumi.dynamic`) for the answers; nothing reaches Batch (Check and Diff make no
requests). Record a release's fixture with

    python -m tests.state_contract tests/fixtures/state-contract-<version>.json
"""

from __future__ import annotations

import base64
import copy
import json
import pickletools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi

from batchtasks.batch.tasks import stored_tasks
from batchtasks.config import parse_stack_config
from batchtasks.program import declare_stack
from bench.provider import with_task
from providerhost import (
    PROVIDER_KEY,
    ProviderHost,
    Registration,
    capture_registrations,
    strip_secrets,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
# Fixed and fake: the fixture must not depend on where it was recorded.
ENDPOINT = "https://batest.eastus.batch.azure.com"
SECRET_VALUE = "fixture-token"
HOST_CONFIG = {"batchtasks:resourceGroup": "rg-fixture"}


def small_stack(
    endpoint: str, *, name: str, job_id: str, matrix: Mapping[str, list[str]], pool_id: str
) -> dict[str, Any]:
    """A small stack that registers every dynamic resource type: a job that ends itself, a
    sweep over `matrix` (disease x state, a BatchTaskSet) and a single task reading a secret
    (BatchTask); `name` goes into the resource group, account and identity names."""
    return {
        "resourceGroup": f"rg-{name}",
        "storage": {
            "account": f"st{name}",
            "create": True,
            "containers": [
                {"name": "inputs", "access": "read"},
                {"name": "results", "access": "write"},
            ],
        },
        "identity": {"name": f"id-{name}"},
        "batch": {"account": "batest", "endpoint": endpoint, "pool": {"id": pool_id}},
        "jobs": [
            {
                "id": job_id,
                "onAllTasksComplete": "terminateJob",
                "priority": 10,
                "defaults": {
                    "image": "example.azurecr.io/model:1",
                    "maxWallClockTime": "PT1H",
                    "retries": 1,
                    "mounts": [{"source": "inputs", "target": "/data"}],
                },
                "sweeps": [
                    {
                        "id": "grid",
                        "taskId": "{disease}-{state}",
                        "matrix": {axis: list(values) for axis, values in matrix.items()},
                        "command": "python -m model --disease {disease} --state {state}",
                        "outputs": [
                            {
                                "pattern": "out/*",
                                "container": "results",
                                "path": "{disease}/{state}",
                            }
                        ],
                    }
                ],
                "tasks": [
                    {
                        "id": "summary",
                        "command": "python -m summary",
                        "secretEnv": {"API_TOKEN": "apiToken"},
                    }
                ],
            }
        ],
        "apiToken": {"secure": "v1:not-read"},
    }


def stack_settings() -> dict[str, Any]:
    """The stack this release's contract is recorded for."""
    return small_stack(
        ENDPOINT,
        name="fixture",
        job_id="weekly",
        matrix={"disease": ["covid", "flu"], "state": ["ca", "ny"]},
        pool_id="pool-1",
    )


def registrations() -> list[Registration]:
    """The dynamic resources the program registers for the fixture stack."""
    config = parse_stack_config(stack_settings(), location="eastus")
    return capture_registrations(
        lambda: declare_stack(config, lambda _key: pulumi.Output.secret(SECRET_VALUE)),
        project="batchtasks",
        stack="fixture",
    )


def provider_class(provider: str) -> str:
    """Return `module.Class` of the provider a pickle names, read without unpickling it."""
    strings: list[str] = []
    for opcode, argument, _position in pickletools.genops(base64.b64decode(provider)):
        if isinstance(argument, str):
            strings.append(argument)
        elif (
            opcode.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-1].endswith("Provider")
        ):
            return f"{strings[-2]}.{strings[-1]}"
    return ""


def _changed_task(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A change to the first task's spec of a BatchTaskSet."""

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        return with_task(inputs, sorted(stored_tasks(inputs))[0], **{field: value})

    return change


def _changed(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A change to one input, or to one field of a BatchTask's spec."""

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        if key.startswith("task."):
            return {**inputs, "task": {**inputs["task"], key[len("task.") :]: value}}
        return {**inputs, key: value}

    return change


# Per resource type: a change of each kind whose Diff answer the contract records.
CHANGES: dict[str, dict[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "Job": {"priority": _changed("priority", 20.0), "pool": _changed("poolId", "pool-2")},
    "JobCompletion": {"mode": _changed("onAllTasksComplete", "noAction")},
    "Task": {"command": _changed("task.command", "python -m summary --again")},
    "TaskSet": {
        "command": _changed_task("command", "python -m model --again"),
        "retries": _changed_task("retries", 3),
    },
}


def _answers(host: ProviderHost, reg: Registration, inputs: dict[str, Any]) -> dict[str, Any]:
    """Check the registered inputs, then Diff them against themselves and against each change."""
    kind = reg.type.rsplit(":", 1)[1]
    check = host.check(reg.urn, {}, inputs)
    stored = check.inputs
    diffs = {}
    for label, change in {"none": lambda same: same, **CHANGES.get(kind, {})}.items():
        news = change(copy.deepcopy(inputs))
        checked = host.check(reg.urn, stored, news)
        diff = host.diff(reg.urn, reg.name, stored, checked.inputs)
        diffs[label] = {
            "news": news,
            "checkFailures": [list(f) for f in checked.failures],
            "changes": diff.changes,
            "replaces": sorted(diff.replaces),
            "deleteBeforeReplace": diff.delete_before_replace,
        }
    return {
        "checkedInputs": stored,
        "checkFailures": [list(f) for f in check.failures],
        "diffs": diffs,
    }


def record() -> dict[str, Any]:
    """Return this checkout's state contract: per dynamic resource its type, name, provider
    (pickle and class), registered input names and inputs, and its Check and Diff answers."""
    resources = []
    with ProviderHost(PROJECT_DIR, {}) as host:
        host.configure(HOST_CONFIG)
        for reg in registrations():
            # The engine strips secret markers before the host sees them (it accepts none).
            inputs = strip_secrets(reg.inputs)
            resources.append(
                {
                    "type": reg.type,
                    "name": reg.name,
                    "urn": reg.urn,
                    "providerClass": provider_class(reg.provider),
                    "provider": reg.provider,
                    "inputNames": sorted(key for key in inputs if key != PROVIDER_KEY),
                    "inputs": inputs,
                    **_answers(host, reg, inputs),
                }
            )
    return {"stackSettings": stack_settings(), "hostConfig": HOST_CONFIG, "resources": resources}


def main(argv: list[str]) -> int:
    """Write the contract of this checkout to the path given."""
    if len(argv) != 1:
        print("usage: python -m tests.state_contract <fixture.json>", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
