"""A stand-in for the Azure CLI, so azure-identity's real credential chain yields a token."""

from __future__ import annotations

import stat
from pathlib import Path

#: Prefix of every token the stand-in prints; the audience (resource) follows it.
TOKEN_PREFIX = "batchapi-double."
#: The resource azure-batch asks for (its scope minus "/.default").
BATCH_RESOURCE = "https://batch.core.windows.net/"

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
printf '{"accessToken": "%s%s", ' "{prefix}" "$resource"
printf '"expiresOn": "2100-01-01 00:00:00.000000", "expires_on": 4102444800, '
printf '"tokenType": "Bearer"}\\n'
"""


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
    path.write_text(_SCRIPT.replace("{prefix}", TOKEN_PREFIX))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
