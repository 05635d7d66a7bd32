"""BatchStorage: the storage, identity, roles and pool a Batch container task needs.

One `pulumi.ComponentResource` (type `batchtasks:azure:BatchStorage`) provisions, with
pulumi-azure-native, a hardened storage account (or uses an existing one), private blob containers
each declared `read` or `write`, a user-assigned managed identity (or uses an existing one), the
least-privilege role assignments for that identity, and optionally a Batch pool that mounts every
container with blobfuse through the identity. Its outputs are what task code needs: account name,
container URLs and mount paths, the identity's ids and the pool id.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import authorization, batch, managedidentity, storage

from batchtasks import rules

TYPE_TOKEN = "batchtasks:azure:BatchStorage"
# Where pool mounts land on an Ubuntu node ($AZ_BATCH_NODE_MOUNTS_DIR).
MOUNTS_DIR = "/mnt/batch/tasks/fsmounts"

STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ROLE_FOR_ACCESS = {"read": STORAGE_BLOB_DATA_READER, "write": STORAGE_BLOB_DATA_CONTRIBUTOR}
_ROLE_LABEL = {"read": "reader", "write": "contributor"}

# Namespace of the role assignment GUIDs. Changing it renames (replaces) every assignment.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("0f3b2c1e-7d4a-5e6b-8c9d-a1b2c3d4e5f6")

_STORAGE_SKUS = tuple(sku.value for sku in storage.SkuName)


@dataclass(frozen=True)
class ContainerArgs:
    """A blob container and what the identity may do in it ("read" or "write")."""

    name: str
    access: str = "write"


@dataclass(frozen=True)
class PoolArgs:
    """A Batch pool to create in an existing Batch account (in the same resource group).

    The image defaults are the Ubuntu HPC image and node agent current as of azure-batch 15.
    """

    batch_account_name: str | None
    pool_id: str
    vm_size: str = "Standard_D4ds_v5"
    max_nodes: int = 4
    image_publisher: str = "microsoft-dsvm"
    image_offer: str = "ubuntu-hpc"
    image_sku: str = "2204"
    image_version: str = "latest"
    node_agent_sku_id: str = "batch.node.ubuntu 22.04"
    prefetch_images: tuple[str, ...] = ()
    task_slots_per_node: int = 1


@dataclass(frozen=True)
class BatchStorageArgs:
    """Typed arguments of `BatchStorage`.

    Exactly one of identity_name (a new identity) and identity_resource_id (an existing one) is
    given, and at most one of pool and existing_pool_id.
    """

    resource_group_name: str
    account_name: str
    containers: tuple[ContainerArgs, ...]
    location: str | None = None
    create_account: bool = False
    sku: str = "Standard_LRS"
    identity_name: str | None = None
    identity_resource_id: str | None = None
    registry_server: str | None = None
    registry_resource_id: str | None = None
    pool: PoolArgs | None = None
    existing_pool_id: str | None = None


def _container_output(located: dict[str, Any], access: str, mount_path: str) -> dict[str, str]:
    """Return one entry of `BatchStorage.containers` from the container's resolved name and URL."""
    return {
        "name": located["name"],
        "url": located["url"],
        "access": access,
        "mountPath": mount_path,
    }


def role_definition_id(subscription_id: str, role_id: str) -> str:
    """Return the full ARM id of a built-in role in a subscription.

    Parameters
    ----------
    subscription_id
        Subscription GUID.
    role_id
        Role definition GUID.

    Returns
    -------
    str
        "/subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/<role>".
    """
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization"
        f"/roleDefinitions/{role_id}"
    )


def role_assignment_guid(scope: str, principal: str, role_id: str) -> str:
    """Return the deterministic name (a GUID) of a role assignment.

    Parameters
    ----------
    scope
        What the role is granted on, as a stable string known when the program starts.
    principal
        Who gets it, as a stable string known when the program starts.
    role_id
        Role definition GUID.

    Returns
    -------
    str
        The same GUID for the same three strings (ignoring case, as ARM does), on every run.
    """
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, "|".join((scope, principal, role_id)).lower()))


def container_scope_key(resource_group_name: str, account_name: str, container_name: str) -> str:
    """Return a container's ARM scope without the subscription, which is unknown until deployment.

    Parameters
    ----------
    resource_group_name, account_name, container_name
        Where the container lives.

    Returns
    -------
    str
        "resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<account>/blobServices/
        default/containers/<container>".
    """
    return (
        f"resourceGroups/{resource_group_name}/providers/Microsoft.Storage/storageAccounts/"
        f"{account_name}/blobServices/default/containers/{container_name}"
    )


def autoscale_formula(max_nodes: int) -> str:
    """Return a Batch autoscale formula driven by pending tasks.

    $PendingTasks counts active and running tasks, so nodes that run tasks are kept; with no tasks
    the target drops to zero, and `taskcompletion` lets running tasks finish before a node leaves.

    Parameters
    ----------
    max_nodes
        Upper bound on dedicated nodes.

    Returns
    -------
    str
        The formula text.
    """
    return "\n".join(
        (
            "$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);",
            "$tasks = $samples < 70 ? max(0, $PendingTasks.GetSample(1)) : "
            "max($PendingTasks.GetSample(1), "
            "avg($PendingTasks.GetSample(TimeInterval_Minute * 5)));",
            f"$TargetDedicatedNodes = max(0, min($tasks, {max_nodes}));",
            "$TargetLowPriorityNodes = 0;",
            "$NodeDeallocationOption = taskcompletion;",
        )
    )


def registry_server_for(args: BatchStorageArgs) -> str | None:
    """Return the registry login server the pool pulls from, if any.

    Parameters
    ----------
    args
        Component arguments; registry_server wins, else the server of registry_resource_id.

    Returns
    -------
    str | None
        For example "myregistry.azurecr.io", or None without a registry.
    """
    if args.registry_server:
        return args.registry_server
    if args.registry_resource_id and rules.REGISTRY_ID.fullmatch(args.registry_resource_id):
        return f"{rules.arm_id_parts(args.registry_resource_id)[2].lower()}.azurecr.io"
    return None


def _pool_problems(pool: Any) -> list[str]:
    if not isinstance(pool, PoolArgs):
        return [f"pool: {pool!r} must be a PoolArgs"]
    problems: list[str] = []
    if pool.batch_account_name is None:
        problems.append("pool.batch_account_name: None pool needs a Batch account")
    elif problem := rules.ACCOUNT_NAME.problem(pool.batch_account_name):
        problems.append(f"pool.batch_account_name: {pool.batch_account_name!r} {problem}")
    if problem := rules.BATCH_ID.problem(pool.pool_id):
        problems.append(f"pool.pool_id: {pool.pool_id!r} {problem}")
    for field, bounds in (
        ("max_nodes", rules.MAX_NODES),
        ("task_slots_per_node", rules.TASK_SLOTS_PER_NODE),
    ):
        value = getattr(pool, field)
        if problem := bounds.problem(value):
            problems.append(f"pool.{field}: {value!r} {problem}")
    for field, rule in (
        ("vm_size", rules.VM_SIZE),
        ("image_publisher", rules.TEXT),
        ("image_offer", rules.TEXT),
        ("image_sku", rules.TEXT),
        ("image_version", rules.TEXT),
        ("node_agent_sku_id", rules.TEXT),
    ):
        value = getattr(pool, field)
        if problem := rule.problem(value):
            problems.append(f"pool.{field}: {value!r} {problem}")
    if isinstance(pool.prefetch_images, str) or not isinstance(pool.prefetch_images, Sequence):
        problems.append(
            f"pool.prefetch_images: {pool.prefetch_images!r} must be a tuple of image names"
        )
    else:
        for i, image in enumerate(pool.prefetch_images):
            if problem := rules.IMAGE.problem(image):
                problems.append(f"pool.prefetch_images[{i}]: {image!r} {problem}")
    return problems


def _container_problems(containers: Any) -> list[str]:
    if isinstance(containers, str) or not isinstance(containers, Sequence):
        return [f"containers: {containers!r} must be a tuple of ContainerArgs"]
    if not containers:
        return ["containers: () must declare at least one container"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        if not isinstance(container, ContainerArgs):
            problems.append(f"containers[{i}]: {container!r} must be a ContainerArgs")
            continue
        if problem := rules.CONTAINER_NAME.problem(container.name):
            problems.append(f"containers[{i}].name: {container.name!r} {problem}")
        elif container.name in seen:
            problems.append(f"containers[{i}].name: {container.name!r} is declared twice")
        seen.add(container.name)
        if problem := rules.ACCESS.problem(container.access):
            problems.append(f"containers[{i}].access: {container.access!r} {problem}")
    return problems


def batch_storage_problems(args: BatchStorageArgs) -> list[str]:
    """List everything wrong with BatchStorage arguments, each naming its field and value.

    Parameters
    ----------
    args
        The arguments to check.

    Returns
    -------
    list[str]
        One message per problem, empty if the arguments are valid.
    """
    problems: list[str] = []
    if problem := rules.RESOURCE_GROUP.problem(args.resource_group_name):
        problems.append(f"resource_group_name: {args.resource_group_name!r} {problem}")
    if problem := rules.ACCOUNT_NAME.problem(args.account_name):
        problems.append(f"account_name: {args.account_name!r} {problem}")
    problems.extend(_container_problems(args.containers))
    if args.location is not None and (problem := rules.LOCATION.problem(args.location)):
        problems.append(f"location: {args.location!r} {problem}")
    if not isinstance(args.create_account, bool):
        problems.append(f"create_account: {args.create_account!r} must be true or false")
    if args.sku not in _STORAGE_SKUS:
        problems.append(f"sku: {args.sku!r} must be one of {', '.join(_STORAGE_SKUS)}")

    if args.identity_name is not None and args.identity_resource_id is not None:
        problems.append(
            f"identity_name: {args.identity_name!r} and identity_resource_id: "
            f"{args.identity_resource_id!r} are both given; give a new identity's "
            "name or an existing identity's resource id, not both"
        )
    elif args.identity_name is None and args.identity_resource_id is None:
        problems.append("identity_name: None needs a value, or give identity_resource_id")
    elif args.identity_name is not None and (
        problem := rules.IDENTITY_NAME.problem(args.identity_name)
    ):
        problems.append(f"identity_name: {args.identity_name!r} {problem}")
    elif args.identity_resource_id is not None and (
        problem := rules.IDENTITY_ID.problem(args.identity_resource_id)
    ):
        problems.append(f"identity_resource_id: {args.identity_resource_id!r} {problem}")

    if args.registry_resource_id is not None and (
        problem := rules.REGISTRY_ID.problem(args.registry_resource_id)
    ):
        problems.append(f"registry_resource_id: {args.registry_resource_id!r} {problem}")
    if args.registry_server is not None and (
        problem := rules.REGISTRY_SERVER.problem(args.registry_server)
    ):
        problems.append(f"registry_server: {args.registry_server!r} {problem}")

    if args.pool is not None:
        problems.extend(_pool_problems(args.pool))
        if args.existing_pool_id is not None:
            problems.append(
                f"existing_pool_id: {args.existing_pool_id!r} cannot be given with a "
                "pool to create; give one or the other"
            )
    elif args.existing_pool_id is not None and (
        problem := rules.BATCH_ID.problem(args.existing_pool_id)
    ):
        problems.append(f"existing_pool_id: {args.existing_pool_id!r} {problem}")
    return problems


class BatchStorage(pulumi.ComponentResource):
    """Storage account, blob containers, identity, role assignments and optional Batch pool.

    Parameters
    ----------
    name
        Logical name of the component; children are named "<name>-<part>".
    args
        What to provision.
    opts
        Options of the component itself.

    Raises
    ------
    ValueError
        Before any resource is registered, listing every problem in args.

    Attributes
    ----------
    account_name, account_id
        The storage account's name and ARM id.
    identity_id, identity_client_id, identity_principal_id
        The user-assigned identity's resource id, client id and principal (object) id.
    pool_id
        The Batch pool id tasks run on (None if neither pool nor existing_pool_id was given).
    container_urls
        Container name -> "https://<account>.blob.core.windows.net/<container>".
    containers
        Container name -> {"name", "url", "access", "mountPath"}.
    mount_paths
        Container name -> "<MOUNTS_DIR>/<container>", the path a task on the pool reads and
        writes (plain strings).
    """

    account_name: pulumi.Output[str]
    account_id: pulumi.Output[str]
    identity_id: pulumi.Output[str]
    identity_client_id: pulumi.Output[str]
    identity_principal_id: pulumi.Output[str]
    pool_id: pulumi.Output[str | None]
    container_urls: pulumi.Output[dict[str, str]]
    containers: dict[str, pulumi.Output[dict[str, str]]]
    mount_paths: dict[str, str]

    def __init__(
        self, name: str, args: BatchStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems = batch_storage_problems(args)
        if problems:
            raise ValueError(
                f"BatchStorage {name!r}: invalid arguments:\n- " + "\n- ".join(problems)
            )
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name = name
        self._args = args
        subscription = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).subscription_id

        self._make_account(subscription)
        blob_containers = {
            c.name: storage.BlobContainer(
                f"{name}-{c.name}",
                account_name=self.account_name,
                container_name=c.name,
                resource_group_name=args.resource_group_name,
                public_access=storage.PublicAccess.NONE,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for c in args.containers
        }
        self._make_identity()
        assignments = self._assign_roles(subscription, blob_containers)
        self._make_pool(blob_containers, assignments)

        self.mount_paths = {c.name: f"{MOUNTS_DIR}/{c.name}" for c in args.containers}
        urls = {
            c: pulumi.Output.concat(
                "https://", self.account_name, ".blob.core.windows.net/", blob.name
            )
            for c, blob in blob_containers.items()
        }
        self.container_urls = pulumi.Output.all(**urls)
        self.containers = {
            c.name: pulumi.Output.all(name=blob_containers[c.name].name, url=urls[c.name]).apply(
                functools.partial(
                    _container_output, access=c.access, mount_path=self.mount_paths[c.name]
                )
            )
            for c in args.containers
        }
        self.register_outputs(
            {
                "account_name": self.account_name,
                "account_id": self.account_id,
                "identity_id": self.identity_id,
                "identity_client_id": self.identity_client_id,
                "identity_principal_id": self.identity_principal_id,
                "pool_id": self.pool_id,
                "container_urls": self.container_urls,
                "containers": self.containers,
                "mount_paths": self.mount_paths,
            }
        )

    def _make_account(self, subscription: pulumi.Output[str]) -> None:
        args = self._args
        if not args.create_account:
            # An existing account is referenced, never adopted: destroying the stack leaves it.
            self.account_name = pulumi.Output.from_input(args.account_name)
            self.account_id = subscription.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/resourceGroups/{args.resource_group_name}"
                    f"/providers/Microsoft.Storage/storageAccounts/{args.account_name}"
                )
            )
            return
        account = storage.StorageAccount(
            f"{self._name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=args.sku),
            # Hardening: TLS 1.2+ over HTTPS only, nothing public, and no keys: identities only.
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.account_name = account.name
        self.account_id = account.id

    def _make_identity(self) -> None:
        args = self._args
        if args.identity_resource_id is not None:
            # Checked by batch_storage_problems.
            _, group, identity_name = rules.arm_id_parts(args.identity_resource_id)
            # The lookup runs in the provider's subscription, where the identity must live.
            found = managedidentity.get_user_assigned_identity_output(
                resource_group_name=group,
                resource_name=identity_name,
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            self.identity_id = pulumi.Output.from_input(args.identity_resource_id)
            self.identity_client_id = found.client_id
            self.identity_principal_id = found.principal_id
            return
        identity = managedidentity.UserAssignedIdentity(
            f"{self._name}-identity",
            resource_name_=args.identity_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.identity_id = identity.id
        self.identity_client_id = identity.client_id
        self.identity_principal_id = identity.principal_id

    def _principal_key(self) -> str:
        args = self._args
        if args.identity_resource_id is not None:
            return args.identity_resource_id
        return (
            f"resourceGroups/{args.resource_group_name}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{args.identity_name}"
        )

    def _assign_roles(
        self,
        subscription: pulumi.Output[str],
        blob_containers: dict[str, storage.BlobContainer],
    ) -> list[authorization.RoleAssignment]:
        """Grant the identity its roles, under names that are GUIDs fixed by the arguments.

        A Pulumi resource name and the ARM name must be plain strings when the program starts,
        but the subscription and a new identity's principal id are Outputs. So the GUID hashes
        what is known up front: the scope without its subscription (resource group, account,
        container), the identity's name or resource id, and the role. A rerun or an import then
        finds the same assignment instead of adding a duplicate.
        """
        args = self._args
        principal = self._principal_key()
        # Fixed ARM names mean a replacement must delete the old assignment first.
        opts = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        assignments: list[authorization.RoleAssignment] = []
        for c in args.containers:
            role = ROLE_FOR_ACCESS[c.access]
            scope = container_scope_key(args.resource_group_name, args.account_name, c.name)
            assignments.append(
                authorization.RoleAssignment(
                    f"{self._name}-{c.name}-{_ROLE_LABEL[c.access]}",
                    role_assignment_name=role_assignment_guid(scope, principal, role),
                    principal_id=self.identity_principal_id,
                    principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                    role_definition_id=subscription.apply(
                        functools.partial(role_definition_id, role_id=role)
                    ),
                    scope=blob_containers[c.name].id,
                    opts=opts,
                )
            )
        if args.registry_resource_id is not None:
            registry_subscription = rules.arm_id_parts(args.registry_resource_id)[0]
            # The role definition comes from the registry's own subscription, which may differ.
            assignments.append(
                authorization.RoleAssignment(
                    f"{self._name}-acrpull",
                    role_assignment_name=role_assignment_guid(
                        args.registry_resource_id, principal, ACR_PULL
                    ),
                    principal_id=self.identity_principal_id,
                    principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                    role_definition_id=role_definition_id(registry_subscription, ACR_PULL),
                    scope=args.registry_resource_id,
                    opts=opts,
                )
            )
        return assignments

    def _make_pool(
        self,
        blob_containers: dict[str, storage.BlobContainer],
        assignments: list[authorization.RoleAssignment],
    ) -> None:
        args = self._args
        if args.pool is None:
            self.pool_id = pulumi.Output.from_input(args.existing_pool_id)
            return
        pool = args.pool
        node_identity = batch.ComputeNodeIdentityReferenceArgs(resource_id=self.identity_id)
        server = registry_server_for(args)
        registries = (
            [batch.ContainerRegistryArgs(registry_server=server, identity_reference=node_identity)]
            if server
            else None
        )
        mounts = [
            batch.MountConfigurationArgs(
                azure_blob_file_system_configuration=batch.AzureBlobFileSystemConfigurationArgs(
                    account_name=self.account_name,
                    container_name=blob.name,
                    relative_mount_path=c,
                    identity_reference=node_identity,
                )
            )
            for c, blob in blob_containers.items()
        ]
        created = batch.Pool(
            f"{self._name}-pool",
            account_name=pool.batch_account_name,
            resource_group_name=args.resource_group_name,
            pool_name=pool.pool_id,
            vm_size=pool.vm_size,
            task_slots_per_node=pool.task_slots_per_node,
            identity=batch.BatchPoolIdentityArgs(
                type=batch.PoolIdentityType.USER_ASSIGNED,
                user_assigned_identities=[self.identity_id],
            ),
            deployment_configuration=batch.DeploymentConfigurationArgs(
                virtual_machine_configuration=batch.VirtualMachineConfigurationArgs(
                    image_reference=batch.ImageReferenceArgs(
                        publisher=pool.image_publisher,
                        offer=pool.image_offer,
                        sku=pool.image_sku,
                        version=pool.image_version,
                    ),
                    node_agent_sku_id=pool.node_agent_sku_id,
                    container_configuration=batch.ContainerConfigurationArgs(
                        type=batch.ContainerType.DOCKER_COMPATIBLE,
                        container_image_names=list(pool.prefetch_images) or None,
                        container_registries=registries,
                    ),
                )
            ),
            mount_configuration=mounts,
            scale_settings=batch.ScaleSettingsArgs(
                auto_scale=batch.AutoScaleSettingsArgs(
                    formula=autoscale_formula(pool.max_nodes), evaluation_interval="PT5M"
                )
            ),
            # Nodes mount the containers and pull images as they start: the roles come first.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=assignments, delete_before_replace=True
            ),
        )
        self.pool_id = created.name
