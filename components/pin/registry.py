"""Resolve an image tag to its manifest digest through the registry's /v2/ API.

`ContainerRegistryClient.get_manifest` speaks the OCI distribution API any registry serves
(`get_manifest_properties` is ACR-only) and checks the digest against the manifest's bytes.
Azure Container Registry is reached with DefaultAzureCredential; other registries anonymously,
where they allow pulls without a token exchange.
"""

from __future__ import annotations

from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import AzureError, HttpResponseError

from batchtasks.pin.images import ImageRef

_ACR_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
# Bounded: a registry that does not answer must not hang a CI step.
_CONNECT_SECONDS, _READ_SECONDS, _RETRIES = 10, 30, 2


class PinError(Exception):
    """A tag could not be resolved; the message names the image and why."""


def uses_azure_identity(host: str) -> bool:
    """Tell whether a registry host is an Azure Container Registry (reached by identity)."""
    return host.split(":", 1)[0].lower().endswith(_ACR_SUFFIXES)


def resolve_digest(image: ImageRef) -> str:
    """Return the digest the image's tag points at now.

    Parameters
    ----------
    image
        The parsed reference.

    Returns
    -------
    str
        ``sha256:<hex>`` of the manifest (of the index, for a multi-platform image).

    Raises
    ------
    PinError
        If the registry refuses, cannot be reached or has no such tag.
    """
    credential = None
    if uses_azure_identity(image.host):
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    where = f"{image.name} ({image.host}/{image.repository}:{image.tag})"
    try:
        with ContainerRegistryClient(
            f"https://{image.host}",
            credential,
            connection_timeout=_CONNECT_SECONDS,
            read_timeout=_READ_SECONDS,
            retry_total=_RETRIES,
        ) as client:
            return str(client.get_manifest(image.repository, image.tag).digest)
    except HttpResponseError as error:
        reason = (
            "no such tag"
            if error.status_code == 404
            else (f"the registry answered {error.status_code}: {error.reason}")
        )
        raise PinError(f"{where}: {reason}") from None
    except (AzureError, ValueError) as error:
        raise PinError(f"{where}: {type(error).__name__}: {error}") from None
