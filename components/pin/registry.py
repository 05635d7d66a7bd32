"""Resolve an image tag to its manifest digest through the registry's /v2/ API.

Azure Container Registry is reached with `ContainerRegistryClient.get_manifest` and
DefaultAzureCredential (it checks the digest against the manifest's bytes). Any other registry
is asked anonymously over the OCI distribution API; one that answers 401 with a
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` challenge (Docker Hub, GHCR, quay)
gets an anonymous pull token from the realm, as docker does, and is asked again with it. The
digest is checked against the manifest's bytes there too. Tokens never reach a message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from azure.containerregistry import ContainerRegistryClient
from azure.core import PipelineClient
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse

from batchtasks.pin.images import ImageRef

_ACR_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
# Bounded: a registry that does not answer must not hang a CI step.
_CONNECT_SECONDS, _READ_SECONDS, _RETRIES = 10, 30, 2
# Every manifest kind a tag can point at: multi-platform indexes first, as docker asks.
_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_DIGEST_HEADER = re.compile(r"sha256:[0-9a-f]{64}")


class PinError(Exception):
    """A tag could not be resolved; the message names the image and why.

    `unreachable` is True when the registry could not be reached or refused access (as opposed
    to answering that the tag does not exist).
    """

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


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
    where = f"{image.name} ({image.host}/{image.repository}:{image.tag})"
    try:
        if uses_azure_identity(image.host):
            return _acr_digest(image)
        return _distribution_digest(image, where)
    except HttpResponseError as error:
        if error.status_code == 404:
            raise PinError(f"{where}: no such tag") from None
        raise PinError(
            f"{where}: the registry answered {error.status_code}: {error.reason}",
            unreachable=True,
        ) from None
    except (AzureError, ValueError) as error:
        raise PinError(f"{where}: {type(error).__name__}: {error}", unreachable=True) from None


def _acr_digest(image: ImageRef) -> str:
    from azure.identity import DefaultAzureCredential

    with ContainerRegistryClient(
        f"https://{image.host}",
        DefaultAzureCredential(),
        connection_timeout=_CONNECT_SECONDS,
        read_timeout=_READ_SECONDS,
        retry_total=_RETRIES,
    ) as client:
        return str(client.get_manifest(image.repository, image.tag).digest)


@contextmanager
def _client(base_url: str) -> Iterator[PipelineClient[HttpRequest, HttpResponse]]:
    with PipelineClient[HttpRequest, HttpResponse](
        base_url,
        connection_timeout=_CONNECT_SECONDS,
        read_timeout=_READ_SECONDS,
        retry_total=_RETRIES,
    ) as client:
        yield client


def _distribution_digest(image: ImageRef, where: str) -> str:
    """The OCI distribution API: anonymous, then with an anonymous Bearer token if asked."""
    path = f"https://{image.host}/v2/{image.repository}/manifests/{image.tag}"
    with _client(f"https://{image.host}") as client:
        response = _get(client, path, {"Accept": _ACCEPT})
        if response.status_code == 401:
            token = _anonymous_token(response.headers.get("WWW-Authenticate", ""), image, where)
            response = _get(client, path, {"Accept": _ACCEPT, "Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            # Only the status reaches the message: a body may echo the request.
            raise HttpResponseError(response=response)
        body = response.read()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    stated = response.headers.get("Docker-Content-Digest")
    if stated is not None and _DIGEST_HEADER.fullmatch(stated) and stated != digest:
        raise PinError(f"{where}: the manifest does not match its digest {stated}")
    return digest


def _get(client: PipelineClient[HttpRequest, HttpResponse], url: str, headers: Any) -> Any:
    return client.send_request(HttpRequest("GET", url, headers=headers))


def _anonymous_token(challenge: str, image: ImageRef, where: str) -> str:
    """Get a pull token from the challenge's realm (the distribution token flow), sending no
    credentials."""
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() != "bearer":
        raise PinError(
            f"{where}: the registry wants credentials ({scheme or 'no challenge'}); only "
            "Azure Container Registry and anonymous pulls are supported",
            unreachable=True,
        )
    fields = dict(_CHALLENGE_PARAM.findall(params))
    realm = fields.get("realm", "")
    if urlsplit(realm).scheme != "https":
        raise PinError(f"{where}: the registry's token realm is not https", unreachable=True)
    query = {"scope": fields.get("scope") or f"repository:{image.repository}:pull"}
    if "service" in fields:
        query["service"] = fields["service"]
    with _client(realm) as client:
        response = client.send_request(HttpRequest("GET", realm, params=query))
        if response.status_code != 200:
            raise PinError(
                f"{where}: the registry's token service answered {response.status_code} to an "
                "anonymous pull (the image may be private)",
                unreachable=True,
            )
        answer = response.json()
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise PinError(f"{where}: the registry's token service sent no token", unreachable=True)
    return token
