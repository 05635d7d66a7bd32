"""A stand-in for the Azure CLI, so azure-identity's real credential chain yields a token."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

#: Prefix of every token the stand-in prints; the audience (resource) follows it.
TOKEN_PREFIX = "batchapi-double."
#: The resource azure-batch asks for (its scope minus "/.default").
BATCH_RESOURCE = "https://batch.core.windows.net/"
#: The resource azure-storage-blob asks for.
STORAGE_RESOURCE = "https://storage.azure.com"
#: Tenant the stand-in's storage tokens claim to come from.
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

# A shell script rather than Python: it runs once per credential call, and sh starts in
# milliseconds. It answers only the one command AzureCliCredential runs.
_SCRIPT = """#!/bin/sh
if [ "$1" != "account" ] || [ "$2" != "get-access-token" ]; then
    echo "ERROR: this stand-in only answers 'az account get-access-token'" >&2
    exit 2
fi
resource=""
while [ $# -gt 0 ]; do
    if [ "$1" = "--resource" ]; then
        resource="$2"
        shift
    fi
    shift
done
case "$resource" in
    {storage}|{storage}/) token="{storage_token}" ;;
    *) token="{prefix}$resource" ;;
esac
printf '{"accessToken": "%s", ' "$token"
printf '"expiresOn": "2100-01-01 00:00:00.000000", "expires_on": 4102444800, '
printf '"tokenType": "Bearer"}\\n'
"""


def _base64url(value: dict[str, object]) -> str:
    text = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


def storage_token() -> str:
    """The bearer token the stand-in prints for blob storage: a JWT as Entra ID issues one.

    Azurite (``--oauth basic``) decodes the token without checking its signature and wants
    iat, nbf and exp around now, an issuer starting ``https://sts.windows.net/`` and the
    audience ``https://storage.azure.com`` (src/blob/authentication/BlobTokenAuthenticator).

    Returns
    -------
    str
        ``<header>.<claims>.<signature>``, base64url encoded.
    """
    header = {"typ": "JWT", "alg": "RS256", "kid": "batchapi-double"}
    claims = {
        "aud": STORAGE_RESOURCE,
        "iss": f"https://sts.windows.net/{TENANT_ID}/",
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "exp": 4_102_444_800,
        "oid": "11111111-1111-1111-1111-111111111111",
        "tid": TENANT_ID,
        "sub": "batchapi-double",
        "ver": "1.0",
    }
    signature = base64.urlsafe_b64encode(b"not signed").rstrip(b"=").decode()
    return f"{_base64url(header)}.{_base64url(claims)}.{signature}"


def token_for(resource: str) -> str:
    """The access token the stand-in prints for a resource.

    Parameters
    ----------
    resource : str
        The ``--resource`` argument azure-identity passes, e.g. ``https://batch.core.windows.net/``.

    Returns
    -------
    str
        The bearer token.
    """
    return TOKEN_PREFIX + resource


def audience_of(token: str) -> str | None:
    """The resource a stand-in token was issued for.

    Parameters
    ----------
    token : str
        A bearer token taken from an Authorization header.

    Returns
    -------
    str or None
        The resource, or None when the token did not come from the stand-in.
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    return token[len(TOKEN_PREFIX) :]


def write_fake_az(directory: Path) -> Path:
    """Write an executable ``az`` into a directory meant to go first on PATH.

    Parameters
    ----------
    directory : Path
        An existing directory holding nothing else of importance.

    Returns
    -------
    Path
        The path of the script.
    """
    path = directory / "az"
    path.write_text(
        _SCRIPT.replace("{prefix}", TOKEN_PREFIX)
        .replace("{storage_token}", storage_token())
        .replace("{storage}", STORAGE_RESOURCE)
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
