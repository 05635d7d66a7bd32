"""Rules for stack setting values that validation.py does not cover.

Each rule is a regular expression written so that Python's `re` and the ECMA-262 dialect of
JSON Schema read it the same way: the validator and the published schema share it.
"""

from __future__ import annotations

import re
from typing import Any


def ignoring_case(literal: str) -> str:
    """Return a regex matching `literal` in any case (JSON Schema has no case-insensitive flag)."""
    parts = []
    for char in literal:
        if char.isalpha():
            parts.append(f"[{char.upper()}{char.lower()}]")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
RESOURCE_GROUP = r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]"
IDENTITY_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}"
REGISTRY_NAME = r"[A-Za-z0-9]{5,50}"


def _arm_id(provider: str, kind: str, name: str) -> str:
    return (f"/{ignoring_case('subscriptions')}/{_GUID}/{ignoring_case('resourceGroups')}"
            f"/{RESOURCE_GROUP}/{ignoring_case('providers')}/{ignoring_case(provider)}"
            f"/{ignoring_case(kind)}/({name})")


IDENTITY_ID = _arm_id("Microsoft.ManagedIdentity", "userAssignedIdentities", IDENTITY_NAME)
REGISTRY_ID = _arm_id("Microsoft.ContainerRegistry", "registries", REGISTRY_NAME)
HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})+(?::[0-9]{{1,5}})?"
HTTPS_URL = rf"https://({_LABEL})(?:\.{_LABEL})*(?::[0-9]{{1,5}})?/?"
LOCATION = r"[A-Za-z][A-Za-z0-9 ]{1,62}"
IMAGE = r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}"
VM_SIZE = r"[A-Za-z0-9_]{1,64}"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
SECRET_KEY = r"[A-Za-z_][A-Za-z0-9_.-]*"
# A blob path: relative, no '..' or '.' segment, no backslash or control character.
BLOB_PATH = r"(?!/)(?!(?:.*/)?\.\.?(?:/|$))[^\\\x00-\x1f]{1,1024}"
BLOB_PATH_HINT = ("must be a relative blob path (no leading '/', no '.' or '..' segment, "
                  "no backslash), at most 1024 characters")
_FLAG = r"--?[A-Za-z0-9][A-Za-z0-9-]*(?:=[A-Za-z0-9._:/@+-]*)?"
_WORD = r"[A-Za-z0-9._:/@+-]+"
RUN_OPTIONS = rf"(?:(?:{_FLAG}|{_WORD})(?: (?:{_FLAG}|{_WORD}))*)?"

_MOUNT_WHY = "mounts belong in `mounts`"
_PRIVILEGE_WHY = "privileges are not granted through config"
REFUSED_FLAGS = {
    "mount": _MOUNT_WHY, "volume": _MOUNT_WHY, "volumes-from": _MOUNT_WHY,
    "privileged": _PRIVILEGE_WHY, "cap-add": _PRIVILEGE_WHY, "security-opt": _PRIVILEGE_WHY,
    "pid": _PRIVILEGE_WHY, "ipc": _PRIVILEGE_WHY, "userns": _PRIVILEGE_WHY,
    "uts": _PRIVILEGE_WHY, "device": _PRIVILEGE_WHY, "device-cgroup-rule": _PRIVILEGE_WHY,
}
_RUN_OPTIONS_RE = re.compile(RUN_OPTIONS)


def run_options_problem(value: Any) -> str | None:
    """Say what is wrong with extra container run options.

    They land on the container runtime's command line, so only plain flags and values separated
    by single spaces pass, and flags that mount host paths or grant privileges are refused.

    Parameters
    ----------
    value
        The candidate options string.

    Returns
    -------
    str | None
        None if acceptable, otherwise why not.
    """
    if not isinstance(value, str):
        return "must be a string"
    if not _RUN_OPTIONS_RE.fullmatch(value):
        return ("must be flags and values separated by single spaces, using only letters, "
                "digits and . _ : / @ + - = (no quotes, '$', ';', '&', '|' or newlines)")
    tokens = value.split(" ") if value else []
    for index, token in enumerate(tokens):
        if token.startswith("--"):
            name, equals, flag_value = token[2:].partition("=")
            if name in REFUSED_FLAGS:
                return f"must not use --{name}: {REFUSED_FLAGS[name]}"
            if name in ("network", "net"):
                if not equals:
                    flag_value = tokens[index + 1] if index + 1 < len(tokens) else ""
                if flag_value == "host" or flag_value.startswith("container:"):
                    return f"must not use --{name}={flag_value}: {_PRIVILEGE_WHY}"
        elif token.startswith("-") and "v" in token[1:].partition("=")[0]:
            # -v, and -v hidden in a cluster of short flags such as -tv, is --volume.
            return f"must not use -v ({token}): {_MOUNT_WHY}"
    return None

