"""The rule book: every rule a value given to batchtasks follows, each written once.

A `Rule` is a name, what to say when a value breaks it, and how to tell: a regular expression
(written so that Python's `re` and the ECMA-262 dialect of JSON Schema read it the same way, so
the published schema states the same rule), a list of choices, and an optional deeper check for
what a pattern cannot say well. The stack-file validator, the JSON Schema, BatchStorage, the
seed's task builders and the providers' `check` all take their rules from here.

To add a rule: write it below as ``NAME = Rule("name", "must be ...", pattern=..., check=...)``
and give it to the fields that follow it (`batchtasks.config.schema`, or a builder's argument
checks). A check returns None for a good value, else a phrase that reads after the value:
``"'x' must be ..."``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

Check = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Rule:
    """One rule a string value follows.

    Attributes
    ----------
    name
        What the value is, e.g. "task id".
    message
        What to say when the value breaks the rule, e.g. "must be 1-64 letters ...".
    pattern
        A regular expression the whole value must match (None: any text that is not blank,
        unless `check` or `choices` say otherwise).
    check
        A deeper check, run when the pattern matches; returns None or a specific message.
    choices
        The allowed values in their canonical spelling (instead of a pattern).
    ignore_case
        Whether choices match in any case.
    max_length
        The most characters the value may have.
    """

    name: str
    message: str
    pattern: str | None = None
    check: Check | None = None
    choices: tuple[str, ...] = ()
    ignore_case: bool = False
    max_length: int | None = None
    _compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False,
                                              default=None)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def problem(self, value: Any) -> str | None:
        """Say what is wrong with a value.

        Parameters
        ----------
        value
            The candidate value.

        Returns
        -------
        str | None
            None if the value follows the rule, otherwise why it does not.
        """
        if not isinstance(value, str):
            # A YAML number or boolean where text is meant: the program never sees its text.
            quote = (" (quote it to keep it as text)"
                     if isinstance(value, int | float | bool) else "")
            return f"must be a string{quote}"
        if self.choices:
            return None if self.canonical(value) is not None else (
                f"must be one of {', '.join(self.choices)}")
        if self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters ({len(value)} given)"
        if self._compiled is not None and not self._compiled.fullmatch(value):
            return self.message
        if self._compiled is None and self.check is None and not value.strip():
            return self.message
        return self.check(value) if self.check is not None else None

    def fullmatch(self, value: str) -> re.Match[str] | None:
        """Return the match of the rule's pattern on the whole value (None without a pattern)."""
        return self._compiled.fullmatch(value) if self._compiled is not None else None

    def canonical(self, value: str) -> str | None:
        """Return the canonical spelling of one of the choices, or None if value is not one."""
        for choice in self.choices:
            if value == choice or (self.ignore_case and value.lower() == choice.lower()):
                return choice
        return None

    def ensure(self, parameter: str, value: Any) -> None:
        """Raise a ValueError naming the parameter and value when the value breaks the rule.

        Parameters
        ----------
        parameter
            Name of the parameter (or key path) being checked.
        value
            The value, quoted in the message.

        Raises
        ------
        ValueError
            If the value breaks the rule.
        """
        ensure(parameter, value, self.problem(value))

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of a string following this rule (without its description)."""
        if self.choices and self.ignore_case:
            any_case = "|".join(ignoring_case(choice) for choice in self.choices)
            return {"anyOf": [{"enum": list(self.choices)},
                              {"type": "string", "pattern": f"^(?:{any_case})$"}]}
        if self.choices:
            return {"enum": list(self.choices)}
        out: dict[str, Any] = {"type": "string"}
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        else:
            out["minLength"] = 1
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        return out


def ensure(parameter: str, value: Any, problem: str | None) -> None:
    """Raise a ValueError naming the parameter and value when a problem was found.

    Parameters
    ----------
    parameter
        Name of the parameter (or key path) being checked.
    value
        The offending value, quoted in the message.
    problem
        What `Rule.problem` returned.

    Raises
    ------
    ValueError
        If problem is not None.
    """
    if problem is not None:
        raise ValueError(f"{parameter}: {value!r} {problem}")


def ignoring_case(literal: str) -> str:
    """Return a regex matching `literal` in any case (JSON Schema has no case-insensitive flag)."""
    parts = []
    for char in literal:
        if char.isalpha():
            parts.append(f"[{char.upper()}{char.lower()}]")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def _not_blank(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


# ------------------------------------------------------------------ plain text

TEXT = Rule("text", "must not be empty", check=_not_blank)
COMMAND_LINE = Rule("command line", "must not be empty", check=_not_blank)
FILE_PATTERN = Rule("file pattern", "must not be empty", check=_not_blank)

# ------------------------------------------------------------------ Batch names

BATCH_ID = Rule("Batch id", "must be 1-64 letters, digits, '-' or '_'",
                pattern=r"[A-Za-z0-9_-]{1,64}")
# Storage and Batch accounts follow the same rule: 3-24 lowercase letters and digits.
ACCOUNT_NAME = Rule("account name", "must be 3-24 lowercase letters and digits",
                    pattern=r"[a-z0-9]{3,24}")
CONTAINER_NAME = Rule("blob container name",
                      "must be 3-63 lowercase letters, digits and single hyphens, "
                      "starting and ending with a letter or digit",
                      pattern=r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
VM_SIZE = Rule("VM size", "must be a VM size such as Standard_D4s_v3",
               pattern=r"[A-Za-z0-9_]{1,64}")
LOCATION = Rule("Azure region", "must be an Azure region name such as eastus",
                pattern=r"[A-Za-z][A-Za-z0-9 ]{1,62}")

# ------------------------------------------------------------------ Azure Resource Manager

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?::[0-9]{1,5})?"
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# Azure: 1-90 characters, letters, digits, '_', '-', '.', '(' and ')', not ending with '.'.
# Azure also takes non-ASCII letters; this rule keeps to ASCII so that every JSON Schema
# validator reads the published pattern as Python does.
_RESOURCE_GROUP = r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]"
RESOURCE_GROUP = Rule("resource group name", "must be 1-90 letters, digits and - _ . ( ), "
                      "not ending with '.'", pattern=_RESOURCE_GROUP)
_IDENTITY_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}"
IDENTITY_NAME = Rule("user-assigned identity name", "must be 3-128 letters, digits, '-' and "
                     "'_', starting with a letter or digit", pattern=_IDENTITY_NAME)
_REGISTRY_NAME = r"[A-Za-z0-9]{5,50}"


def _arm_id(provider: str, kind: str, name: str) -> str:
    return (f"/{ignoring_case('subscriptions')}/{_GUID}/{ignoring_case('resourceGroups')}"
            f"/{_RESOURCE_GROUP}/{ignoring_case('providers')}/{ignoring_case(provider)}"
            f"/{ignoring_case(kind)}/{name}")


IDENTITY_ID = Rule("user-assigned identity resource id",
                   "must be an ARM id of a user-assigned identity (/subscriptions/<guid>/"
                   "resourceGroups/<group>/providers/Microsoft.ManagedIdentity/"
                   "userAssignedIdentities/<name>)",
                   pattern=_arm_id("Microsoft.ManagedIdentity", "userAssignedIdentities",
                                   _IDENTITY_NAME))
REGISTRY_ID = Rule("container registry resource id",
                   "must be an ARM id of a container registry (/subscriptions/<guid>/"
                   "resourceGroups/<group>/providers/Microsoft.ContainerRegistry/"
                   "registries/<name>)",
                   pattern=_arm_id("Microsoft.ContainerRegistry", "registries", _REGISTRY_NAME))


def arm_id_parts(resource_id: str) -> tuple[str, str, str]:
    """Return the subscription, resource group and name of an ARM id that follows its rule.

    Parameters
    ----------
    resource_id
        An id accepted by IDENTITY_ID or REGISTRY_ID.

    Returns
    -------
    tuple[str, str, str]
        Subscription GUID, resource group name, resource name.
    """
    parts = resource_id.split("/")
    return parts[2], parts[4], parts[-1]


# A registry host as container runtimes read the first part of an image reference: a name with
# a dot, `localhost`, or any name with a port (docker's reference grammar).
REGISTRY_SERVER = Rule("registry login server",
                       "must be a host name such as myregistry.azurecr.io or localhost:5000, "
                       "without scheme or path (a name with a dot, localhost, or a name with "
                       "a port)",
                       pattern=rf"(?:{_LABEL}(?:\.{_LABEL})+|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt])"
                               rf"{_PORT}|{_LABEL}:[0-9]{{1,5}}")
BATCH_ENDPOINT = Rule("Batch account endpoint",
                      "must be an https URL such as https://myaccount.eastus.batch.azure.com",
                      pattern=rf"https://({_LABEL})(?:\.{_LABEL})*{_PORT}/?")
BLOB_ENDPOINT_SUBDOMAIN = Rule("blob endpoint domain",
                               "must be a domain name such as 'blob.core.windows.net/'",
                               pattern=rf"{_LABEL}(?:\.{_LABEL})+{_PORT}/?")

# ------------------------------------------------------------------ choices

ACCESS = Rule("container access", "must be read or write", choices=("read", "write"))
COMPLETION_MODE = Rule("onAllTasksComplete", "must be noAction or terminateJob",
                       choices=("noAction", "terminateJob"), ignore_case=True)
UPLOAD_CONDITION = Rule("upload condition",
                        "must be one of taskSuccess, taskFailure, taskCompletion",
                        choices=("taskSuccess", "taskFailure", "taskCompletion"),
                        ignore_case=True)
WORKING_DIRECTORY = Rule("working directory", "must be taskWorkingDirectory or "
                         "containerImageDefault",
                         choices=("taskWorkingDirectory", "containerImageDefault"))
ELEVATION = Rule("elevation", "must be admin or nonadmin", choices=("admin", "nonadmin"))
SCOPE = Rule("auto-user scope", "must be pool or task", choices=("pool", "task"))


def normalise_upload_condition(value: str) -> str:
    """Return the Batch spelling of an upload condition given in any case.

    Raises
    ------
    ValueError
        If the value is not one of the three conditions.
    """
    UPLOAD_CONDITION.ensure("upload_condition", value)
    canonical = UPLOAD_CONDITION.canonical(value)
    assert canonical is not None
    return canonical


# ------------------------------------------------------------------ names in config

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
NAME_HINT = "must be letters, digits and '_', not starting with a digit"
VARIABLE_NAME = Rule("variable name", NAME_HINT, pattern=_NAME)
SECRET_KEY = Rule("config key", "must be a config key name", pattern=r"[A-Za-z_][A-Za-z0-9_.-]*")
# What a stack file holds under `secure:`: the ciphertext `pulumi config set --secret` writes.
SECRET_VALUE = Rule("secret", "must be the encrypted text `pulumi config set --secret` writes "
                    "(a string)", check=_not_blank)

# ------------------------------------------------------------------ container images and paths

IMAGE = Rule("container image", "must be a container image reference (letters, digits and "
             ". _ / : @ -, starting with a letter or digit)",
             pattern=r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}")
# Characters that would end a `--mount` option or start another one on the container command line.
_MOUNT_PATH_FORBIDDEN = re.compile(r"[\s,=\"'`\\;$&|<>(){}]")
_MOUNT_PATH_HINT = "must not contain whitespace, commas, quotes, '=' or shell characters"


def _mount_source(value: str) -> str | None:
    if not value:
        return "must be a non-empty string"
    if _MOUNT_PATH_FORBIDDEN.search(value):
        return _MOUNT_PATH_HINT
    if value.startswith("/"):
        return "must be relative to the mount directory"
    if ".." in value.split("/"):
        return "must not climb out of the mount directory with '..'"
    return None


def _mount_target(value: str) -> str | None:
    if not value:
        return "must be a non-empty string"
    if _MOUNT_PATH_FORBIDDEN.search(value):
        return _MOUNT_PATH_HINT
    if not value.startswith("/"):
        return "must be an absolute path"
    if ".." in value.split("/"):
        return "must not contain '..'"
    return None


def _mount_dir(value: str) -> str | None:
    if not value:
        return "must be a non-empty string"
    # `$` is allowed here only as the documented node variable, expanded by the node agent.
    if _MOUNT_PATH_FORBIDDEN.search(value.replace("$AZ_BATCH_NODE_MOUNTS_DIR", "", 1)):
        return _MOUNT_PATH_HINT
    return None


MOUNT_SOURCE = Rule("mount source", "must be a path relative to the mount directory",
                    check=_mount_source)
MOUNT_TARGET = Rule("mount target", "must be an absolute path inside the container",
                    check=_mount_target)
MOUNT_DIR = Rule("node mount directory", "must be a directory on the node", check=_mount_dir)

# A blob path: relative, no '..' or '.' segment, no backslash or control character.
BLOB_PATH_HINT = ("must be a relative blob path (no leading '/', no '.' or '..' segment, "
                  "no backslash), at most 1024 characters")
BLOB_PATH = Rule("blob path", BLOB_PATH_HINT,
                 pattern=r"(?!/)(?!(?:.*/)?\.\.?(?:/|$))[^\\\x00-\x1f]{1,1024}")

# ------------------------------------------------------------------ durations

# Weeks, days, hours, minutes, seconds: a duration Batch can hold as a fixed length of time.
_DURATION = (r"P(?!$)(?:([0-9]+)W)?(?:([0-9]+)D)?"
             r"(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?")
DURATION = Rule("duration", "must be an ISO 8601 duration in weeks, days, hours, minutes and "
                "seconds, e.g. PT30M, PT1H, P7D, P1DT2H (years and months have no fixed length)",
                pattern=_DURATION)
DURATION_PATTERN = re.compile(_DURATION)


def parse_duration(value: str) -> timedelta:
    """Return the length of an ISO 8601 duration such as PT1H or P1DT2H.

    Parameters
    ----------
    value
        A duration in weeks, days, hours, minutes and seconds.

    Returns
    -------
    timedelta
        Its length.

    Raises
    ------
    ValueError
        If the value is not such a duration.
    """
    match = DURATION_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"duration: {value!r} {DURATION.message}")
    weeks, days, hours, minutes, seconds = (float(part) if part else 0.0
                                            for part in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


# ------------------------------------------------------------------ container run options

_FLAG = r"--?[A-Za-z0-9][A-Za-z0-9-]*(?:=[A-Za-z0-9._:/@+-]*)?"
_WORD = r"[A-Za-z0-9._:/@+-]+"
_MOUNT_WHY = "mounts belong in `mounts`"
_PRIVILEGE_WHY = "privileges are not granted through config"
REFUSED_FLAGS = {
    "mount": _MOUNT_WHY, "volume": _MOUNT_WHY, "volumes-from": _MOUNT_WHY,
    "privileged": _PRIVILEGE_WHY, "cap-add": _PRIVILEGE_WHY, "security-opt": _PRIVILEGE_WHY,
    "pid": _PRIVILEGE_WHY, "ipc": _PRIVILEGE_WHY, "userns": _PRIVILEGE_WHY,
    "uts": _PRIVILEGE_WHY, "device": _PRIVILEGE_WHY, "device-cgroup-rule": _PRIVILEGE_WHY,
}


def _run_option_flags(value: str) -> str | None:
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


# They land on the container runtime's command line, so only plain flags and values separated
# by single spaces pass, and flags that mount host paths or grant privileges are refused.
RUN_OPTIONS = Rule("container run options",
                   "must be flags and values separated by single spaces, using only letters, "
                   "digits and . _ : / @ + - = (no quotes, '$', ';', '&', '|' or newlines)",
                   pattern=rf"(?:(?:{_FLAG}|{_WORD})(?: (?:{_FLAG}|{_WORD}))*)?",
                   check=_run_option_flags)
