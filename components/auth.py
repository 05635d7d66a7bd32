"""Identities: the credential clients use, and the identity compute nodes use for blob storage.

No account keys or SAS tokens: clients authenticate with azure-identity, and nodes reach blob
storage with the pool's user-assigned managed identity.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from azure.batch.models import BatchNodeIdentityReference

if TYPE_CHECKING:
    from azure.identity import DefaultAzureCredential

USER_ASSIGNED_IDENTITY_ENV = "AZURE_USER_ASSIGNED_IDENTITY"


def get_compute_node_identity_reference() -> BatchNodeIdentityReference:
    """Reference the user-assigned identity named in the environment.

    Compute nodes use this identity to upload task output files to blob storage.

    Returns
    -------
    BatchNodeIdentityReference
        A reference whose resource id is the value of ``AZURE_USER_ASSIGNED_IDENTITY``.

    Raises
    ------
    ValueError
        If ``AZURE_USER_ASSIGNED_IDENTITY`` is unset or blank.
    """
    resource_id = os.environ.get(USER_ASSIGNED_IDENTITY_ENV, "").strip()
    if not resource_id:
        raise ValueError(
            f"{USER_ASSIGNED_IDENTITY_ENV} is not set: set it to the resource id of the pool's "
            "user-assigned identity, or pass a BatchNodeIdentityReference explicitly"
        )
    return BatchNodeIdentityReference(resource_id=resource_id)


def batch_credential() -> DefaultAzureCredential:
    """Make a credential for the Batch data-plane client.

    ``DefaultAzureCredential`` honours ``AZURE_CLIENT_ID`` (a user-assigned identity),
    ``AZURE_TENANT_ID``, ``AZURE_TOKEN_CREDENTIALS`` and the rest of azure-identity's environment.
    Make one per operation rather than keeping it, so nothing holds a credential between calls.

    Returns
    -------
    DefaultAzureCredential
        A new credential.
    """
    # Imported here so that the pure task builders do not pay for loading azure-identity.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
