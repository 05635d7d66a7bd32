"""Pulumi mocks that answer like pulumi-azure-native, for tests and the offline preview.

`AzureMocks` gives each resource the outputs Azure would: ARM ids, names, deterministic client and
principal ids for identities. It records every registered resource, in order, with its parent,
so that `batchtasks preview` can render the program without Azure and without the Pulumi CLI.

Pulumi's `MockResourceArgs` carries no parent, so the parent is taken from the registration
request by `RecordingMonitor`; install both with `AzureMocks.install`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from batchtasks.pulumi_compat import MockMonitor

SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
TENANT_ID = "11111111-1111-1111-1111-111111111111"
# Fixed namespace so that mock client and principal ids are the same on every run.
_MOCK_NAMESPACE = uuid.UUID("6f1c3f5e-2b0a-5d2e-9a8b-3c4d5e6f7a8b")

CLIENT_CONFIG_TOKEN = "azure-native:authorization:getClientConfig"
GET_IDENTITY_TOKEN = "azure-native:managedidentity:getUserAssignedIdentity"


def mock_guid(kind: str, *parts: str) -> str:
    """Return a GUID that depends only on its arguments (case-insensitively).

    Parameters
    ----------
    kind
        What the GUID stands for, e.g. "clientId", so that different ids of one resource differ.
    *parts
        The strings that identify the resource.

    Returns
    -------
    str
        A GUID in its usual lowercase, hyphenated form.
    """
    return str(uuid.uuid5(_MOCK_NAMESPACE, "/".join((kind, *parts)).lower()))


class AzureMocks(pulumi.runtime.Mocks):
    """Mocks returning azure-native-shaped outputs and recording every registration.

    Parameters
    ----------
    subscription_id
        Subscription used in ARM ids and returned by getClientConfig.
    tenant_id
        Tenant returned by getClientConfig and on identities.

    Attributes
    ----------
    resources
        One dict per registered resource, in registration order, with keys "type", "name",
        "parent" (the parent's URN, or None), "urn" and "inputs". The parent and URN are known
        only when installed with `install` (or `RecordingMonitor`); otherwise they are None.
    property_dependencies
        URN -> input name -> the URNs that input's value came from, as each RegisterResource
        request carried them (recorded when installed with `install`).
    calls
        One dict per provider function call, with keys "token" and "args".
    """

    def __init__(self, subscription_id: str = SUBSCRIPTION_ID, tenant_id: str = TENANT_ID) -> None:
        self.subscription_id = subscription_id
        self.tenant_id = tenant_id
        self.resources: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.property_dependencies: dict[str, dict[str, list[str]]] = {}
        # Registrations run on executor threads: the lock keeps the record whole, and the
        # thread-local carries each request's parent from the monitor to `new_resource`.
        self._lock = threading.Lock()
        self._request = threading.local()

    def install(
        self, project: str = "batchtasks", stack: str = "dev", preview: bool = False
    ) -> AzureMocks:
        """Make these mocks the Pulumi runtime's engine, recording parents.

        Parameters
        ----------
        project, stack
            Names the runtime reports (they appear in URNs).
        preview
            Whether the program runs as a preview (unknown values stay unknown).

        Returns
        -------
        AzureMocks
            self, for chaining.
        """
        pulumi.runtime.set_mocks(
            self, project=project, stack=stack, preview=preview, monitor=RecordingMonitor(self)
        )
        return self

    @contextmanager
    def registering(
        self,
        parent: str | None,
        urn: str | None,
        property_dependencies: Mapping[str, list[str]] | None = None,
    ) -> Iterator[None]:
        """Tell `new_resource`, on this thread, the parent, URN and property dependencies
        (input name -> URNs it comes from) of the request it answers."""
        self._request.parent, self._request.urn = parent, urn
        if urn is not None and property_dependencies is not None:
            with self._lock:
                self.property_dependencies[urn] = dict(property_dependencies)
        try:
            yield
        finally:
            self._request.parent = self._request.urn = None

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Return the id and outputs azure-native would give, and record the registration.

        Parameters
        ----------
        args
            What the program registered.

        Returns
        -------
        tuple[str, dict]
            The resource id and its output properties (the inputs plus computed outputs).
        """
        with self._lock:
            self.resources.append(
                {
                    "type": args.typ,
                    "name": args.name,
                    "parent": getattr(self._request, "parent", None),
                    "urn": getattr(self._request, "urn", None),
                    "inputs": dict(args.inputs),
                }
            )
        build = _OUTPUTS.get(args.typ)
        if build is None:
            # Components and dynamic resources: echo the inputs, the name stands in for an id.
            return args.resource_id or args.name, dict(args.inputs)
        return build(self, args.name, dict(args.inputs))

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Answer the azure-native functions the program calls.

        Parameters
        ----------
        args
            The function token and its arguments.

        Returns
        -------
        tuple[dict, list]
            The function's result (camelCase, as the provider returns it) and no failures.
        """
        with self._lock:
            self.calls.append({"token": args.token, "args": dict(args.args)})
        if args.token == CLIENT_CONFIG_TOKEN:
            return {
                "clientId": mock_guid("clientId", "caller"),
                "objectId": mock_guid("objectId", "caller"),
                "subscriptionId": self.subscription_id,
                "tenantId": self.tenant_id,
            }, []
        if args.token == GET_IDENTITY_TOKEN:
            group = args.args.get("resourceGroupName", "")
            name = args.args.get("resourceName", "")
            return {
                **self._identity_outputs(group, name),
                "id": self.arm_id(group, "Microsoft.ManagedIdentity/userAssignedIdentities", name),
                "location": "westeurope",
            }, []
        return {}, []

    def arm_id(self, resource_group: str, provider_type: str, *names: str) -> str:
        """Return an ARM id in this subscription.

        Parameters
        ----------
        resource_group
            Resource group name.
        provider_type
            Namespace and top-level type, for example "Microsoft.Storage/storageAccounts".
        *names
            The resource's name, then any child type and name segments, for example
            ("acct", "blobServices", "default", "containers", "data").

        Returns
        -------
        str
            "/subscriptions/<sub>/resourceGroups/<rg>/providers/<provider_type>/<names...>".
        """
        return "/".join(
            (
                f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
                f"/providers/{provider_type}",
                *names,
            )
        )

    def identity_ids(self, resource_id: str) -> dict[str, str]:
        """Return the client and principal ids the mocks give the identity with this ARM id.

        Parameters
        ----------
        resource_id
            ".../resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/
            <name>".

        Returns
        -------
        dict[str, str]
            {"clientId": ..., "principalId": ...}, the same as for the identity created or
            looked up by that resource group and name.
        """
        parts = resource_id.split("/")
        group = next(
            (parts[i + 1] for i, p in enumerate(parts[:-1]) if p.lower() == "resourcegroups"), ""
        )
        outputs = self._identity_outputs(group, parts[-1])
        return {"clientId": outputs["clientId"], "principalId": outputs["principalId"]}

    def _identity_outputs(self, resource_group: str, name: str) -> dict[str, str]:
        return {
            "name": name,
            "clientId": mock_guid("clientId", resource_group, name),
            "principalId": mock_guid("principalId", resource_group, name),
            "tenantId": self.tenant_id,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        }


def _storage_account(mocks: AzureMocks, name: str, inputs: dict) -> tuple[str, dict]:
    account = inputs.get("accountName", name)
    group = inputs.get("resourceGroupName", "")
    return mocks.arm_id(group, "Microsoft.Storage/storageAccounts", account), {
        **inputs,
        "name": account,
        "primaryEndpoints": {
            "blob": f"https://{account}.blob.core.windows.net/",
            "dfs": f"https://{account}.dfs.core.windows.net/",
            "file": f"https://{account}.file.core.windows.net/",
            "queue": f"https://{account}.queue.core.windows.net/",
            "table": f"https://{account}.table.core.windows.net/",
            "web": f"https://{account}.z6.web.core.windows.net/",
        },
        "provisioningState": "Succeeded",
        "type": "Microsoft.Storage/storageAccounts",
    }


def _blob_container(mocks: AzureMocks, name: str, inputs: dict) -> tuple[str, dict]:
    container = inputs.get("containerName", name)
    group = inputs.get("resourceGroupName", "")
    account = inputs.get("accountName", "")
    resource_id = mocks.arm_id(
        group,
        "Microsoft.Storage/storageAccounts",
        account,
        "blobServices",
        "default",
        "containers",
        container,
    )
    return resource_id, {
        **inputs,
        "name": container,
        "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
    }


def _identity(mocks: AzureMocks, name: str, inputs: dict) -> tuple[str, dict]:
    identity = inputs.get("resourceName", name)
    group = inputs.get("resourceGroupName", "")
    resource_id = mocks.arm_id(group, "Microsoft.ManagedIdentity/userAssignedIdentities", identity)
    return resource_id, {**inputs, **mocks._identity_outputs(group, identity)}


def _role_assignment(mocks: AzureMocks, name: str, inputs: dict) -> tuple[str, dict]:
    assignment = inputs.get("roleAssignmentName", name)
    scope = inputs.get("scope", "")
    resource_id = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{assignment}"
    return resource_id, {
        **inputs,
        "name": assignment,
        "type": "Microsoft.Authorization/roleAssignments",
    }


def _pool(mocks: AzureMocks, name: str, inputs: dict) -> tuple[str, dict]:
    pool = inputs.get("poolName", name)
    group = inputs.get("resourceGroupName", "")
    account = inputs.get("accountName", "")
    resource_id = mocks.arm_id(group, "Microsoft.Batch/batchAccounts", account, "pools", pool)
    outputs = {
        **inputs,
        "name": pool,
        "provisioningState": "Succeeded",
        "type": "Microsoft.Batch/batchAccounts/pools",
    }
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # The pool takes a list of identity ids but reports a map: id -> its client/principal.
        outputs["identity"] = {
            **identity,
            "userAssignedIdentities": {
                ref: mocks.identity_ids(ref) for ref in identity["userAssignedIdentities"]
            },
        }
    return resource_id, outputs


_OUTPUTS = {
    "azure-native:storage:StorageAccount": _storage_account,
    "azure-native:storage:BlobContainer": _blob_container,
    "azure-native:managedidentity:UserAssignedIdentity": _identity,
    "azure-native:authorization:RoleAssignment": _role_assignment,
    "azure-native:batch:Pool": _pool,
}


class RecordingMonitor(MockMonitor):
    """Mock monitor that hands each registration's parent and URN to `AzureMocks`.

    Parameters
    ----------
    mocks
        The mocks that answer and record the registrations.
    """

    mocks: AzureMocks

    def __init__(self, mocks: AzureMocks) -> None:
        super().__init__(mocks)

    def RegisterResource(self, request: Any) -> Any:
        """Register a resource, telling the mocks its parent, URN and property dependencies."""
        urn = self.make_urn(request.parent, request.type, request.name)
        dependencies = {
            key: list(value.urns) for key, value in request.propertyDependencies.items()
        }
        with self.mocks.registering(request.parent or None, urn, dependencies):
            return super().RegisterResource(request)

    def ReadResource(self, request: Any) -> Any:
        """Read an existing resource, telling the mocks its parent and URN."""
        urn = self.make_urn(request.parent, request.type, request.name)
        with self.mocks.registering(request.parent or None, urn):
            return super().ReadResource(request)
