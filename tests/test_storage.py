"""BatchStorage under Pulumi mocks: resource graph, roles, hardening, pool, outputs, bad args."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from batchtasks.preview.mocks import SUBSCRIPTION_ID, AzureMocks, mock_guid
from batchtasks.storage import (
    MOUNTS_DIR,
    BatchStorage,
    BatchStorageArgs,
    ContainerArgs,
    PoolArgs,
)
from tests.pulumi_support import Run, run_program

ACCOUNT = "azure-native:storage:StorageAccount"
CONTAINER = "azure-native:storage:BlobContainer"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ROLE = "azure-native:authorization:RoleAssignment"
POOL = "azure-native:batch:Pool"
COMPONENT = "batchtasks:azure:BatchStorage"

READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"

REGISTRY_SUB = "22222222-2222-2222-2222-222222222222"
REGISTRY_ID = (
    f"/subscriptions/{REGISTRY_SUB}/resourceGroups/shared/providers/"
    "Microsoft.ContainerRegistry/registries/teamacr"
)
EXISTING_IDENTITY_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/ids/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/runner"
)
RG_PREFIX = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups"

NEW_ACCOUNT = BatchStorageArgs(
    resource_group_name="rg-forecast",
    account_name="forecastdata",
    containers=(ContainerArgs("inputs", "read"), ContainerArgs("outputs", "write")),
    location="westeurope",
    create_account=True,
    identity_name="forecast-runner",
    registry_resource_id=REGISTRY_ID,
    pool=PoolArgs(
        batch_account_name="forecastbatch",
        pool_id="forecast-pool",
        max_nodes=7,
        prefetch_images=("teamacr.azurecr.io/model:1.2",),
    ),
)
EXISTING_ACCOUNT = BatchStorageArgs(
    resource_group_name="rg-forecast",
    account_name="shareddata",
    containers=(ContainerArgs("reference", "read"), ContainerArgs("results")),
    identity_resource_id=EXISTING_IDENTITY_ID,
    existing_pool_id="shared-pool",
)


def deploy(args: BatchStorageArgs, name: str = "data") -> Run:
    """Create one BatchStorage under fresh mocks and resolve all its outputs."""

    def program() -> dict[str, Any]:
        component = BatchStorage(name, args)
        return {
            "account_name": component.account_name,
            "account_id": component.account_id,
            "identity_id": component.identity_id,
            "identity_client_id": component.identity_client_id,
            "identity_principal_id": component.identity_principal_id,
            "pool_id": component.pool_id,
            "container_urls": component.container_urls,
            "containers": component.containers,
            "mount_paths": component.mount_paths,
        }

    return run_program(program)


def role_by_name(run: Run) -> dict[str, dict[str, Any]]:
    return {r["name"]: r["inputs"] for r in run.of_type(ROLE)}


def container_arm_id(group: str, account: str, container: str) -> str:
    return (
        f"{RG_PREFIX}/{group}/providers/Microsoft.Storage/storageAccounts/{account}"
        f"/blobServices/default/containers/{container}"
    )


def test_new_account_registers_the_full_graph_under_the_component() -> None:
    run = deploy(NEW_ACCOUNT)

    assert run.resources[0]["type"] == COMPONENT
    assert run.resources[0]["parent"].endswith("::pulumi:pulumi:Stack::batchtasks-dev")
    assert sorted((r["type"], r["name"]) for r in run.resources[1:]) == sorted(
        [
            (ACCOUNT, "data-account"),
            (CONTAINER, "data-inputs"),
            (CONTAINER, "data-outputs"),
            (IDENTITY, "data-identity"),
            (ROLE, "data-inputs-reader"),
            (ROLE, "data-outputs-contributor"),
            (ROLE, "data-acrpull"),
            (POOL, "data-pool"),
        ]
    )
    component_urn = run.resources[0]["urn"]
    assert component_urn.endswith("pulumi:pulumi:Stack$batchtasks:azure:BatchStorage::data")
    assert {r["parent"] for r in run.resources[1:]} == {component_urn}
    # Azure names are explicit, not left to autonaming.
    assert run.named("data-account")["inputs"]["accountName"] == "forecastdata"
    assert run.named("data-identity")["inputs"]["resourceName"] == "forecast-runner"
    assert {r["inputs"]["containerName"] for r in run.of_type(CONTAINER)} == {"inputs", "outputs"}
    assert {r["inputs"]["accountName"] for r in run.of_type(CONTAINER)} == {"forecastdata"}


def test_existing_account_and_identity_are_referenced_not_created() -> None:
    run = deploy(EXISTING_ACCOUNT, name="shared")

    assert run.of_type(ACCOUNT) == []
    assert run.of_type(IDENTITY) == []
    assert run.of_type(POOL) == []
    assert sorted((r["type"], r["name"]) for r in run.resources) == sorted(
        [
            (COMPONENT, "shared"),
            (CONTAINER, "shared-reference"),
            (CONTAINER, "shared-results"),
            (ROLE, "shared-reference-reader"),
            (ROLE, "shared-results-contributor"),
        ]
    )
    assert {r["inputs"]["accountName"] for r in run.of_type(CONTAINER)} == {"shareddata"}
    lookups = [
        c
        for c in run.mocks.calls
        if c["token"] == "azure-native:managedidentity:getUserAssignedIdentity"
    ]
    assert [c["args"] for c in lookups] == [{"resourceGroupName": "ids", "resourceName": "runner"}]
    assert run.outputs["account_id"] == (
        f"{RG_PREFIX}/rg-forecast/providers/Microsoft.Storage/storageAccounts/shareddata"
    )
    assert run.outputs["identity_id"] == EXISTING_IDENTITY_ID
    assert run.outputs["identity_client_id"] == mock_guid("clientId", "ids", "runner")
    assert run.outputs["identity_principal_id"] == mock_guid("principalId", "ids", "runner")
    assert run.outputs["pool_id"] == "shared-pool"
    assert run.outputs["container_urls"] == {
        "reference": "https://shareddata.blob.core.windows.net/reference",
        "results": "https://shareddata.blob.core.windows.net/results",
    }
    roles = role_by_name(run)
    assert roles["shared-results-contributor"]["principalId"] == mock_guid(
        "principalId", "ids", "runner"
    )


def test_new_account_is_hardened_and_containers_are_private() -> None:
    account = deploy(NEW_ACCOUNT).named("data-account")["inputs"]

    assert account["kind"] == "StorageV2"
    assert account["sku"] == {"name": "Standard_LRS"}
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["location"] == "westeurope"


def test_containers_are_private() -> None:
    run = deploy(EXISTING_ACCOUNT)
    assert [r["inputs"]["publicAccess"] for r in run.of_type(CONTAINER)] == ["None", "None"]


def test_roles_are_least_privilege_per_container_for_the_identity() -> None:
    run = deploy(NEW_ACCOUNT)
    roles = role_by_name(run)
    principal = mock_guid("principalId", "rg-forecast", "forecast-runner")
    role_prefix = (
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions"
    )

    reader = roles["data-inputs-reader"]
    assert reader["roleDefinitionId"] == f"{role_prefix}/{READER}"
    assert reader["scope"] == container_arm_id("rg-forecast", "forecastdata", "inputs")
    writer = roles["data-outputs-contributor"]
    assert writer["roleDefinitionId"] == f"{role_prefix}/{CONTRIBUTOR}"
    assert writer["scope"] == container_arm_id("rg-forecast", "forecastdata", "outputs")
    acr = roles["data-acrpull"]
    assert acr["scope"] == REGISTRY_ID
    assert acr["roleDefinitionId"] == (
        f"/subscriptions/{REGISTRY_SUB}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL}"
    )
    for inputs in roles.values():
        assert inputs["principalType"] == "ServicePrincipal"
        assert inputs["principalId"] == principal


def test_no_registry_means_no_acrpull_and_no_pool_registry() -> None:
    args = replace(NEW_ACCOUNT, registry_resource_id=None)
    run = deploy(args)
    assert "data-acrpull" not in role_by_name(run)
    container_config = run.named("data-pool")["inputs"]["deploymentConfiguration"][
        "virtualMachineConfiguration"
    ]["containerConfiguration"]
    assert "containerRegistries" not in container_config


def test_role_assignment_names_are_deterministic_guids() -> None:
    first = {n: r["roleAssignmentName"] for n, r in role_by_name(deploy(NEW_ACCOUNT)).items()}
    second = {n: r["roleAssignmentName"] for n, r in role_by_name(deploy(NEW_ACCOUNT)).items()}

    assert first == second
    assert len(set(first.values())) == 3
    for guid in first.values():
        assert str(uuid.UUID(guid)) == guid
    # Pinned: a change here would replace every deployed assignment.
    assert first["data-inputs-reader"] == "439b5332-ecdc-55aa-9b96-7e566cd398c5"


def test_role_assignment_names_change_with_identity_and_scope() -> None:
    base = role_by_name(deploy(NEW_ACCOUNT))["data-inputs-reader"]["roleAssignmentName"]
    other_identity = replace(NEW_ACCOUNT, identity_name="other-runner")
    other_account = replace(NEW_ACCOUNT, account_name="otherdata")
    assert role_by_name(deploy(other_identity))["data-inputs-reader"]["roleAssignmentName"] != base
    assert role_by_name(deploy(other_account))["data-inputs-reader"]["roleAssignmentName"] != base


def test_pool_mounts_every_container_through_the_identity() -> None:
    run = deploy(NEW_ACCOUNT)
    pool = run.named("data-pool")["inputs"]
    identity_id = (
        f"{RG_PREFIX}/rg-forecast/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/forecast-runner"
    )

    assert pool["accountName"] == "forecastbatch"
    assert pool["resourceGroupName"] == "rg-forecast"
    assert pool["poolName"] == "forecast-pool"
    assert pool["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id]}
    assert pool["mountConfiguration"] == [
        {
            "azureBlobFileSystemConfiguration": {
                "accountName": "forecastdata",
                "containerName": name,
                "relativeMountPath": name,
                "identityReference": {"resourceId": identity_id},
            }
        }
        for name in ("inputs", "outputs")
    ]
    vm = pool["deploymentConfiguration"]["virtualMachineConfiguration"]
    assert vm["containerConfiguration"] == {
        "type": "DockerCompatible",
        "containerImageNames": ["teamacr.azurecr.io/model:1.2"],
        "containerRegistries": [
            {
                "registryServer": "teamacr.azurecr.io",
                "identityReference": {"resourceId": identity_id},
            }
        ],
    }
    assert vm["imageReference"] == {
        "publisher": "microsoft-dsvm",
        "offer": "ubuntu-hpc",
        "sku": "2204",
        "version": "latest",
    }
    assert vm["nodeAgentSkuId"] == "batch.node.ubuntu 22.04"
    assert pool["vmSize"] == "Standard_D4ds_v5"
    formula = pool["scaleSettings"]["autoScale"]["formula"]
    assert "$PendingTasks" in formula
    assert "$TargetDedicatedNodes = max(0, min($tasks, 7));" in formula
    assert "$NodeDeallocationOption = taskcompletion;" in formula
    assert run.outputs["pool_id"] == "forecast-pool"


def test_explicit_registry_server_wins() -> None:
    args = replace(NEW_ACCOUNT, registry_server="teamacr.example.net")
    pool = deploy(args).named("data-pool")["inputs"]
    registries = pool["deploymentConfiguration"]["virtualMachineConfiguration"][
        "containerConfiguration"
    ]["containerRegistries"]
    assert [r["registryServer"] for r in registries] == ["teamacr.example.net"]


def test_outputs_resolve_to_what_azure_returns() -> None:
    outputs = deploy(NEW_ACCOUNT).outputs

    assert outputs["account_name"] == "forecastdata"
    assert outputs["account_id"] == (
        f"{RG_PREFIX}/rg-forecast/providers/Microsoft.Storage/storageAccounts/forecastdata"
    )
    assert outputs["identity_id"] == (
        f"{RG_PREFIX}/rg-forecast/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
        "forecast-runner"
    )
    assert outputs["identity_client_id"] == mock_guid("clientId", "rg-forecast", "forecast-runner")
    assert outputs["identity_principal_id"] == mock_guid(
        "principalId", "rg-forecast", "forecast-runner"
    )
    assert outputs["mount_paths"] == {
        "inputs": f"{MOUNTS_DIR}/inputs",
        "outputs": f"{MOUNTS_DIR}/outputs",
    }
    assert MOUNTS_DIR == "/mnt/batch/tasks/fsmounts"
    assert outputs["containers"] == {
        "inputs": {
            "name": "inputs",
            "url": "https://forecastdata.blob.core.windows.net/inputs",
            "access": "read",
            "mountPath": "/mnt/batch/tasks/fsmounts/inputs",
        },
        "outputs": {
            "name": "outputs",
            "url": "https://forecastdata.blob.core.windows.net/outputs",
            "access": "write",
            "mountPath": "/mnt/batch/tasks/fsmounts/outputs",
        },
    }


def test_outputs_in_apply_style() -> None:
    AzureMocks().install()

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        component = BatchStorage("data", NEW_ACCOUNT)

        def verify(values: list[Any]) -> None:
            urls, client_id = values
            assert urls["outputs"] == "https://forecastdata.blob.core.windows.net/outputs"
            assert client_id == mock_guid("clientId", "rg-forecast", "forecast-runner")

        return pulumi.Output.all(component.container_urls, component.identity_client_id).apply(
            verify
        )

    check()


def test_no_pool_at_all_gives_no_pool_id() -> None:
    args = replace(EXISTING_ACCOUNT, existing_pool_id=None)
    run = deploy(args)
    assert run.outputs["pool_id"] is None
    assert run.of_type(POOL) == []


def rejected(args: BatchStorageArgs) -> tuple[str, AzureMocks]:
    """Build with bad args; return the error message and the mocks (to see nothing registered)."""
    mocks = AzureMocks().install()
    messages: list[str] = []

    @pulumi.runtime.test
    def build() -> None:
        with pytest.raises(ValueError) as caught:
            BatchStorage("data", args)
        messages.append(str(caught.value))

    build()
    return messages[0], mocks


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            replace(EXISTING_ACCOUNT, containers=(ContainerArgs("inputs", "readwrite"),)),
            "containers[0].access: 'readwrite' must be one of read, write",
        ),
        (
            replace(EXISTING_ACCOUNT, identity_name="runner"),
            "identity_name: 'runner' and identity_resource_id: ",
        ),
        (
            replace(NEW_ACCOUNT, pool=PoolArgs(batch_account_name=None, pool_id="p1")),
            "pool.batch_account_name: None pool needs a Batch account",
        ),
        (
            replace(EXISTING_ACCOUNT, identity_resource_id="/subscriptions/x/runner"),
            "identity_resource_id: '/subscriptions/x/runner' must be an ARM id",
        ),
        (
            replace(NEW_ACCOUNT, existing_pool_id="other"),
            "existing_pool_id: 'other' cannot be given with a pool",
        ),
        (
            replace(EXISTING_ACCOUNT, identity_resource_id=None),
            "identity_name: None needs a value, or give identity_resource_id",
        ),
        (
            replace(EXISTING_ACCOUNT, containers=(ContainerArgs("a", "read"),)),
            "containers[0].name: 'a' must be 3-63",
        ),
        (
            replace(
                EXISTING_ACCOUNT, containers=(ContainerArgs("dup"), ContainerArgs("dup", "read"))
            ),
            "containers[1].name: 'dup' is declared twice",
        ),
        (replace(EXISTING_ACCOUNT, sku="Cheap_LRS"), "sku: 'Cheap_LRS' must be one of"),
        (
            replace(NEW_ACCOUNT, pool=PoolArgs("forecastbatch", "p1", max_nodes=0)),
            "pool.max_nodes: 0 must be at least 1",
        ),
        (
            replace(NEW_ACCOUNT, registry_server="https://teamacr.azurecr.io"),
            "registry_server: 'https://teamacr.azurecr.io' must be a host name",
        ),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(
    args: BatchStorageArgs, expected: str
) -> None:
    message, mocks = rejected(args)
    assert expected in message
    assert mocks.resources == []
    assert mocks.calls == []


def test_every_problem_is_reported_at_once() -> None:
    args = replace(
        NEW_ACCOUNT,
        account_name="Bad_Name",
        containers=(ContainerArgs("inputs", "rw"),),
        identity_resource_id=EXISTING_IDENTITY_ID,
        pool=PoolArgs(batch_account_name=None, pool_id="bad pool"),
    )
    message, _ = rejected(args)
    lines = [line for line in message.splitlines() if line.startswith("- ")]
    fields = [re.match(r"- ([\w.\[\]]+):", line).group(1) for line in lines]
    assert fields == [
        "account_name",
        "containers[0].access",
        "identity_name",
        "pool.batch_account_name",
        "pool.pool_id",
    ]


def test_mocks_echo_unknown_types_with_the_name_as_id() -> None:
    def program() -> dict[str, Any]:
        thing = pulumi.CustomResource(
            "pulumi-python:dynamic:Resource", "job-1", {"jobId": "job-1", "priority": 3}
        )
        return {"id": thing.id}

    run = run_program(program)
    assert run.outputs == {"id": "job-1"}
    assert run.resources == [
        {
            "type": "pulumi-python:dynamic:Resource",
            "name": "job-1",
            "parent": run.resources[0]["parent"],
            "urn": run.resources[0]["urn"],
            "inputs": {"jobId": "job-1", "priority": 3},
        }
    ]
    assert run.resources[0]["parent"].endswith("pulumi:pulumi:Stack::batchtasks-dev")
