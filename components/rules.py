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

import json
import re
from collections.abc import Callable, Iterable, Sequence
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
        A deeper check; returns None or a specific message (also asked, for a better message,
        when the pattern does not match).
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
    _compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

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
            quote = (
                " (quote it to keep it as text)" if isinstance(value, int | float | bool) else ""
            )
            return f"must be a string{quote}"
        control = control_character_problem(value)
        if control:
            return control
        if self.choices:
            return (
                None
                if self.canonical(value) is not None
                else (f"must be one of {', '.join(self.choices)}")
            )
        if self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters ({len(value)} given)"
        if self._compiled is not None and not self._compiled.fullmatch(value):
            # The deeper check often says more precisely what is wrong.
            return (self.check(value) if self.check is not None else None) or self.message
        if self._compiled is None and self.check is None and not value.strip():
            return self.message
        return self.check(value) if self.check is not None else None

    def all_follow(self, values: Sequence[Any], *, control_free: bool = False) -> bool:
        """Tell whether `problem` finds nothing in any of many values, in a few passes over
        all of them (C loops where the rule allows, no Python call per value).

        Parameters
        ----------
        values
            The candidate values.
        control_free
            The caller knows no value holds a control character (strings made of parts it
            checked), so they are not searched again.

        Returns
        -------
        bool
            True when every value follows the rule; False when one may not (`problem` tells
            which: a value of a subclass of str, say, is left to it).
        """
        if set(map(type, values)) - {str}:
            return False
        if not control_free and not free_of_control_characters(values):
            return False
        if self.choices:
            return all(self.canonical(value) is not None for value in values)
        if self.max_length is not None and max(map(len, values), default=0) > self.max_length:
            return False
        if self._compiled is not None:
            if not all(map(self._compiled.fullmatch, values)):
                return False
        elif self.check is None:
            return all(map(str.strip, values))  # not blank
        check = self.check
        return check is None or all(check(value) is None for value in values)

    @property
    def only_not_blank(self) -> bool:
        """Whether the rule asks no more of a string without control characters than that it
        is not blank (so a string joined from parts follows it when one part does)."""
        return (
            not self.choices
            and self.max_length is None
            and self._compiled is None
            and self.check in (None, _not_blank)
        )

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
            return {
                "anyOf": [
                    {"enum": list(self.choices)},
                    {"type": "string", "pattern": f"^(?:{any_case})$"},
                ]
            }
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


@dataclass(frozen=True)
class Range:
    """A rule for a whole number: its bounds, and single values allowed outside them.

    Attributes
    ----------
    name
        What the number is.
    minimum, maximum
        The bounds (None: unbounded on that side).
    also
        Values allowed outside the bounds, such as -1 for "no limit".
    """

    name: str
    minimum: int | None = None
    maximum: int | None = None
    also: tuple[int, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Say what is wrong with a value (a whole float from the wire counts as an integer)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            return "must be an integer"
        if value in self.also or (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
        ):
            return None
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and high != INT32_MAX:
            rule = f"must be between {low} and {high}"
        elif low is not None and value < low:
            rule = f"must be at least {low}"
        else:
            # Batch holds counts as 32-bit integers.
            rule = f"must be at most {high}" + (" (Batch's limit)" if high == INT32_MAX else "")
        if self.also:
            rule += f" (or {', '.join(map(str, self.also))})"
        return rule


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


# C0 controls, DEL and C1 controls: NUL ends a string on the node, ESC starts a terminal
# sequence, CR and LF split a command line; none of them shows in a review.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def free_of_control_characters(values: Iterable[str]) -> bool:
    """Tell whether no string of many holds a control character (one search of them joined)."""
    text = "".join(values)
    # Control characters are never printable: a printable text (one quick C pass) holds none.
    return text.isprintable() or _CONTROL.search(text) is None


def control_character_problem(value: str) -> str | None:
    """Say where a string holds a control character (none may reach Batch or a review).

    Parameters
    ----------
    value
        The string.

    Returns
    -------
    str | None
        None without control characters, else which one and where.
    """
    found = _CONTROL.search(value)
    if found is None:
        return None
    return (
        f"must not contain control characters (found U+{ord(found.group()):04X} at "
        f"character {found.start() + 1}; tabs and line breaks included: a long command "
        "can be folded with YAML's >-)"
    )


# ------------------------------------------------------------------ Batch's size limits

# Batch refuses an add-collection request of 1 MB or more (413 RequestBodyTooLarge), so the
# body of one task must fit in a request of its own, with room for the request's framing.
MAX_TASK_BODY_BYTES = 1_000_000 - 16_384
# What a body adds to its spec: the SDK's separators (", ", ": ") add up to 13%, and each
# output and mount gains a container URL, an identity reference or a --mount option.
_BODY_GROWTH = 1.15
_BODY_BASE_BYTES = 2_048
_BODY_BYTES_PER_ENTRY = 768


def task_body_bytes(spec: Any) -> int:
    """Return an upper estimate of the REST body size of a task spec, in bytes of UTF-8.

    Parameters
    ----------
    spec
        A resolved task spec (JSON data).

    Returns
    -------
    int
        The estimate.
    """
    text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"), default=str)
    entries = (
        sum(len(spec.get(key) or ()) for key in ("outputs", "mounts", "env"))
        if isinstance(spec, dict)
        else 0
    )
    return (
        int(len(text.encode("utf-8", "replace")) * _BODY_GROWTH)
        + _BODY_BASE_BYTES
        + _BODY_BYTES_PER_ENTRY * entries
    )


def task_body_problem(spec: Any) -> str | None:
    """Say whether a task's REST body would be too large for Batch to take at all.

    Parameters
    ----------
    spec
        A resolved task spec.

    Returns
    -------
    str | None
        None when it fits in one add-collection request, else the sizes.
    """
    size = task_body_bytes(spec)
    if size <= MAX_TASK_BODY_BYTES:
        return None
    return (
        f"makes a task body of about {size:,} bytes; Batch takes at most 1 MB per request, "
        f"so one task must stay under {MAX_TASK_BODY_BYTES:,} bytes (move long values "
        "into a file in a mounted container)"
    )


# ------------------------------------------------------------------ Batch's integer limits

# Batch's REST API holds counts and limits as 32-bit signed integers.
INT32_MAX = 2**31 - 1
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000


def _not_blank(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


# ------------------------------------------------------------------ plain text

TEXT = Rule("text", "must not be empty", check=_not_blank)
COMMAND_LINE = Rule("command line", "must not be empty", check=_not_blank)

# ------------------------------------------------------------------ Batch names

BATCH_ID = Rule(
    "Batch id", "must be 1-64 letters, digits, '-' or '_'", pattern=r"[A-Za-z0-9_-]{1,64}"
)
# Storage and Batch accounts follow the same rule: 3-24 lowercase letters and digits.
ACCOUNT_NAME = Rule(
    "account name", "must be 3-24 lowercase letters and digits", pattern=r"[a-z0-9]{3,24}"
)
CONTAINER_NAME = Rule(
    "blob container name",
    "must be 3-63 lowercase letters, digits and single hyphens, "
    "starting and ending with a letter or digit",
    pattern=r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}",
)
VM_SIZE = Rule(
    "VM size", "must be a VM size such as Standard_D4s_v3", pattern=r"[A-Za-z0-9_]{1,64}"
)
LOCATION = Rule(
    "Azure region",
    "must be an Azure region name such as eastus",
    pattern=r"[A-Za-z][A-Za-z0-9 ]{1,62}",
)

# ------------------------------------------------------------------ Azure Resource Manager

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?::[0-9]{1,5})?"
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# Azure: 1-90 characters, letters, digits, '_', '-', '.', '(' and ')', not ending with '.'.
# Azure also takes non-ASCII letters; this rule keeps to ASCII so that every JSON Schema
# validator reads the published pattern as Python does.
_RESOURCE_GROUP = r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]"
RESOURCE_GROUP = Rule(
    "resource group name",
    "must be 1-90 letters, digits and - _ . ( ), not ending with '.'",
    pattern=_RESOURCE_GROUP,
)
_IDENTITY_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}"
IDENTITY_NAME = Rule(
    "user-assigned identity name",
    "must be 3-128 letters, digits, '-' and '_', starting with a letter or digit",
    pattern=_IDENTITY_NAME,
)
_REGISTRY_NAME = r"[A-Za-z0-9]{5,50}"


def _arm_id(provider: str, kind: str, name: str) -> str:
    return (
        f"/{ignoring_case('subscriptions')}/{_GUID}/{ignoring_case('resourceGroups')}"
        f"/{_RESOURCE_GROUP}/{ignoring_case('providers')}/{ignoring_case(provider)}"
        f"/{ignoring_case(kind)}/{name}"
    )


IDENTITY_ID = Rule(
    "user-assigned identity resource id",
    "must be an ARM id of a user-assigned identity (/subscriptions/<guid>/"
    "resourceGroups/<group>/providers/Microsoft.ManagedIdentity/"
    "userAssignedIdentities/<name>)",
    pattern=_arm_id("Microsoft.ManagedIdentity", "userAssignedIdentities", _IDENTITY_NAME),
)
REGISTRY_ID = Rule(
    "container registry resource id",
    "must be an ARM id of a container registry (/subscriptions/<guid>/"
    "resourceGroups/<group>/providers/Microsoft.ContainerRegistry/"
    "registries/<name>)",
    pattern=_arm_id("Microsoft.ContainerRegistry", "registries", _REGISTRY_NAME),
)


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
REGISTRY_SERVER = Rule(
    "registry login server",
    "must be a host name such as myregistry.azurecr.io or localhost:5000, "
    "without scheme or path (a name with a dot, localhost, or a name with "
    "a port)",
    pattern=rf"(?:{_LABEL}(?:\.{_LABEL})+|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt])"
    rf"{_PORT}|{_LABEL}:[0-9]{{1,5}}",
)
BATCH_ENDPOINT = Rule(
    "Batch account endpoint",
    "must be an https URL such as https://myaccount.eastus.batch.azure.com",
    pattern=rf"https://({_LABEL})(?:\.{_LABEL})*{_PORT}/?",
)
BLOB_ENDPOINT_SUBDOMAIN = Rule(
    "blob endpoint domain",
    "must be a domain name such as 'blob.core.windows.net/'",
    pattern=rf"{_LABEL}(?:\.{_LABEL})+{_PORT}/?",
)

# ------------------------------------------------------------------ numbers

RETRIES = Range("retry count", minimum=-1, maximum=INT32_MAX)
PRIORITY = Range("job priority", minimum=PRIORITY_MIN, maximum=PRIORITY_MAX)
MAX_PARALLEL_TASKS = Range("most tasks at once", minimum=1, maximum=INT32_MAX, also=(-1,))
MAX_NODES = Range("most nodes", minimum=1, maximum=INT32_MAX)
# Batch: a node runs at most taskSlotsPerNode slots' worth of tasks at once; the service caps it
# at 256 (and at four times the VM size's cores).
TASK_SLOTS_PER_NODE = Range("task slots per node", minimum=1, maximum=256)
REQUIRED_SLOTS = Range("required slots", minimum=1, maximum=256)
# How many task sets a sweep is split over (`shards:`), and a power of two (batch/shards.py
# places a task by masking a hash with count - 1).
SHARD_COUNT = Range("shard count", minimum=1, maximum=1024)


def shard_count_problem(value: Any) -> str | None:
    """Say what is wrong with a sweep's shard count: an integer in SHARD_COUNT, a power of two."""
    if problem := SHARD_COUNT.problem(value):
        return problem
    if int(value) & (int(value) - 1):
        return f"must be a power of two (1, 2, 4, ... {SHARD_COUNT.maximum})"
    return None


# ------------------------------------------------------------------ choices

ACCESS = Rule("container access", "must be read or write", choices=("read", "write"))
COMPLETION_MODE = Rule(
    "onAllTasksComplete",
    "must be noAction or terminateJob",
    choices=("noAction", "terminateJob"),
    ignore_case=True,
)
UPLOAD_CONDITION = Rule(
    "upload condition",
    "must be one of taskSuccess, taskFailure, taskCompletion",
    choices=("taskSuccess", "taskFailure", "taskCompletion"),
    ignore_case=True,
)
WORKING_DIRECTORY = Rule(
    "working directory",
    "must be taskWorkingDirectory or containerImageDefault",
    choices=("taskWorkingDirectory", "containerImageDefault"),
)
ELEVATION = Rule("elevation", "must be admin or nonadmin", choices=("admin", "nonadmin"))
SCOPE = Rule("auto-user scope", "must be pool or task", choices=("pool", "task"))
# What a failed task does to the tasks that depend on it (Batch's exitOptions.dependencyAction).
DEPENDENCY_ACTION = Rule(
    "dependency action", "must be block or satisfy", choices=("block", "satisfy")
)


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
SECRET_VALUE = Rule(
    "secret",
    "must be the encrypted text `pulumi config set --secret` writes (a string)",
    check=_not_blank,
)

# ------------------------------------------------------------------ container images and paths

IMAGE = Rule(
    "container image",
    "must be a container image reference (letters, digits and "
    ". _ / : @ -, starting with a letter or digit)",
    pattern=r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}",
)
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


def normalise_mount_target(value: str) -> str:
    """Return a mount target as the container runtime reads it: `//data/./x/` is `/data/x`.

    Parameters
    ----------
    value
        An absolute path inside the container.

    Returns
    -------
    str
        The path without repeated slashes, '.' segments or a trailing slash.
    """
    parts = [part for part in value.split("/") if part not in ("", ".")]
    return "/" + "/".join(parts)


def _mount_target(value: str) -> str | None:
    if not value:
        return "must be a non-empty string"
    if _MOUNT_PATH_FORBIDDEN.search(value):
        return _MOUNT_PATH_HINT
    if not value.startswith("/"):
        return "must be an absolute path"
    if ".." in value.split("/"):
        return "must not contain '..'"
    if normalise_mount_target(value) == "/":
        return "must not be the container's root directory '/'"
    return None


# The node variable naming the mount directory, as a whole name: `$AZ_BATCH_NODE_MOUNTS_DIR`
# or `${AZ_BATCH_NODE_MOUNTS_DIR}`, then the end or a '/'.
MOUNTS_DIR_VARIABLE = "$AZ_BATCH_NODE_MOUNTS_DIR"
_MOUNTS_DIR_VARIABLE = re.compile(
    r"(?:\$AZ_BATCH_NODE_MOUNTS_DIR|\$\{AZ_BATCH_NODE_MOUNTS_DIR\})"
    r"(?=/|$)"
)


def _mount_dir(value: str) -> str | None:
    if not value:
        return "must be a non-empty string"
    # `$` is allowed here only as the documented node variable, expanded by the node agent.
    rest = _MOUNTS_DIR_VARIABLE.sub("", value, count=1) if value.startswith("$") else value
    if _MOUNT_PATH_FORBIDDEN.search(rest):
        return _MOUNT_PATH_HINT + f" ('$' only as {MOUNTS_DIR_VARIABLE} itself, at the start)"
    if rest == value and not value.startswith("/"):
        return f"must be an absolute path or start with {MOUNTS_DIR_VARIABLE}"
    if ".." in value.split("/"):
        return "must not contain '..'"
    return None


MOUNT_SOURCE = Rule(
    "mount source", "must be a path relative to the mount directory", check=_mount_source
)
MOUNT_TARGET = Rule(
    "mount target", "must be an absolute path inside the container", check=_mount_target
)
MOUNT_DIR = Rule("node mount directory", "must be a directory on the node", check=_mount_dir)

# A blob path: relative, no '..' or '.' segment, no backslash or control character.
BLOB_PATH_HINT = (
    "must be a relative blob path (no leading '/', no '.' or '..' segment, "
    "no backslash), at most 1024 characters"
)
BLOB_PATH = Rule(
    "blob path", BLOB_PATH_HINT, pattern=r"(?!/)(?!(?:.*/)?\.\.?(?:/|$))[^\\\x00-\x1f]{1,1024}"
)

_GLOB = re.compile(r"[*?\[]")


def _output_pattern(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if value.startswith(("/", "~")) or re.match(r"[A-Za-z]:", value):
        return (
            "must be relative to the task's working directory (the node agent uploads "
            "from the node itself: an absolute path would copy the node's files)"
        )
    if "\\" in value or "$" in value or "%" in value:
        return "must not contain '\\', '$' or '%' (no variables: the path must be plain)"
    # The working directory is wd/ inside the task's directory: one '..' reaches the task's
    # own stdout.txt and stderr.txt, more leaves the task. A wildcard segment may match no
    # directory at all, so it counts as none.
    depth = 1
    for segment in value.split("/"):
        if segment == "..":
            depth -= 1
            if depth < 0:
                return (
                    "must not climb out of the task's directory (at most one '..', to "
                    "reach the task's stdout.txt and stderr.txt)"
                )
        elif segment not in ("", ".") and not _GLOB.search(segment):
            depth += 1
    return None


# Files a task uploads after it runs: relative to its working directory, inside its own task
# directory (the seed's log pattern, ../std*.txt, reaches the task's stdout and stderr).
OUTPUT_PATTERN = Rule(
    "output file pattern",
    "must be a file pattern relative to the task's working directory",
    check=_output_pattern,
    max_length=1024,
)

# ------------------------------------------------------------------ durations

# Weeks, days, hours, minutes, seconds: a duration Batch can hold as a fixed length of time.
_DURATION = (
    r"P(?!$)(?:([0-9]+)W)?(?:([0-9]+)D)?"
    r"(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?"
)
DURATION_PATTERN = re.compile(_DURATION)
# Batch holds durations as .NET TimeSpans in ticks of 100 ns; the longest, which Batch also
# returns for "unlimited", is P10675199DT2H48M5.4775807S.
TICKS_PER_SECOND = 10_000_000
MAX_DURATION_TICKS = 2**63 - 1
MAX_DURATION_TEXT = "P10675199DT2H48M5.4775807S"
_UNIT_SECONDS = (7 * 86_400, 86_400, 3_600, 60)
_MAX_DIGITS = 30


def duration_ticks(value: str) -> int | None:
    """Return a duration's exact length in ticks of 100 ns, or None if it is not one.

    Integer arithmetic throughout, so no duration, however long, overflows.

    Parameters
    ----------
    value
        An ISO 8601 duration in weeks, days, hours, minutes and seconds.

    Returns
    -------
    int | None
        The length in ticks (fractions of a tick are cut), or None if value is no such
        duration.
    """
    match = DURATION_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    *whole, seconds = match.groups()
    if any(part and len(part.partition(".")[0]) > _MAX_DIGITS for part in match.groups()):
        # Longer than any TimeSpan, and too long for int() to read.
        return MAX_DURATION_TICKS + 1
    ticks = sum(
        int(part) * unit * TICKS_PER_SECOND
        for part, unit in zip(whole, _UNIT_SECONDS, strict=True)
        if part
    )
    if seconds:
        integer, _, fraction = seconds.partition(".")
        ticks += int(integer) * TICKS_PER_SECOND + int((fraction + "0000000")[:7])
    return ticks


def _duration_length(value: str) -> str | None:
    ticks = duration_ticks(value)
    if ticks is not None and ticks > MAX_DURATION_TICKS:
        return (
            f"is longer than Batch can hold (at most {MAX_DURATION_TEXT}, about 29,227 "
            "years, which Batch reads as unlimited)"
        )
    return None


DURATION = Rule(
    "duration",
    "must be an ISO 8601 duration in weeks, days, hours, minutes and "
    "seconds, e.g. PT30M, PT1H, P7D, P1DT2H (years and months have no fixed length)",
    pattern=_DURATION,
    check=_duration_length,
)


def parse_duration(value: str) -> timedelta:
    """Return the length of an ISO 8601 duration such as PT1H or P1DT2H.

    Parameters
    ----------
    value
        A duration in weeks, days, hours, minutes and seconds, no longer than Batch holds.

    Returns
    -------
    timedelta
        Its length.

    Raises
    ------
    ValueError
        If the value is not such a duration, or is longer than Batch can hold (never an
        OverflowError).
    """
    problem = DURATION.problem(value)
    ticks = duration_ticks(value)
    if problem or ticks is None:
        raise ValueError(f"duration: {value!r} {problem or DURATION.message}")
    return timedelta(microseconds=ticks // 10)


# ------------------------------------------------------------------ container run options

_SIZE = r"[0-9]{1,12}[bkmgBKMG]?"
_COUNT = r"[0-9]{1,9}"


@dataclass(frozen=True)
class RunOption:
    """A docker run option a task may use: its value's form, and why it is safe.

    Attributes
    ----------
    value
        A regular expression for the value (None: the option takes no value).
    why
        Why it is allowed: what it does, and why it cannot reach outside the container.
    """

    value: str | None
    why: str


# The allow-list. Batch puts a task's containerRunOptions on the `docker create` command line
# of the node, as root: any other option (mounts, devices, capabilities, namespaces, ports,
# users, env files, log drivers, entrypoints, ...) could reach the node or change what runs
# behind the reviewed command, so it is refused.
RUN_OPTION_TABLE: dict[str, RunOption] = {
    "init": RunOption(
        None,
        "runs a tiny init as PID 1 that reaps zombies and forwards "
        "signals; nothing outside the container changes",
    ),
    "rm": RunOption(None, "removes the container when it exits; frees disk on the node"),
    "read-only": RunOption(None, "mounts the image's file system read-only; only restricts"),
    "shm-size": RunOption(
        _SIZE,
        "sizes the container's own /dev/shm (data loaders need more "
        "than 64m); memory of the container, not of the node",
    ),
    "memory": RunOption(_SIZE, "caps the container's memory; only restricts"),
    "memory-reservation": RunOption(_SIZE, "a soft memory limit; only restricts"),
    "memory-swap": RunOption(rf"-1|{_SIZE}", "caps memory plus swap; only restricts"),
    "cpus": RunOption(
        r"[0-9]{1,4}(?:\.[0-9]{1,3})?", "caps the CPUs the container may use; only restricts"
    ),
    "cpu-shares": RunOption(
        _COUNT,
        "weights CPU time against other containers on the node; only shares what the node has",
    ),
    "cpuset-cpus": RunOption(
        r"[0-9]{1,4}(?:[-,][0-9]{1,4}){0,63}",
        "pins the container to some of the node's CPUs; only restricts",
    ),
    "pids-limit": RunOption(rf"-1|{_COUNT}", "caps the processes in the container; only restricts"),
    "ulimit": RunOption(
        r"(?:nofile|nproc|stack|core|memlock|fsize)=-?[0-9]{1,19}"
        r"(?::-?[0-9]{1,19})?",
        "sets a resource limit inside the container (open files, processes, "
        "stack, core, locked memory, file size); the kernel keeps it within "
        "the node's own limits",
    ),
    "gpus": RunOption(
        r"all|[1-9][0-9]{0,2}|device=[0-9]{1,3}",
        "gives the container the node's GPUs, which GPU pools are for; no other device",
    ),
    "network": RunOption(
        r"none|bridge",
        "none cuts the container off the network, bridge is "
        "the default; the node's own network stays apart",
    ),
    "tmpfs": RunOption(
        r"/[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*(?::size=" + _SIZE + r")?",
        "mounts an empty in-memory folder inside the container (not a node path); never '/'",
    ),
    "stop-timeout": RunOption(_COUNT, "seconds Docker waits after SIGTERM before SIGKILL"),
    "label": RunOption(
        r"[A-Za-z0-9._-]{1,128}=[A-Za-z0-9._:/@+-]{0,256}",
        "metadata on the container, for the node's own tooling; changes nothing that runs",
    ),
}
_OPTION = "|".join(
    f"--{re.escape(name)}" if option.value is None else f"--{re.escape(name)}[= ](?:{option.value})"
    for name, option in RUN_OPTION_TABLE.items()
)
_RUN_OPTIONS = rf"(?:(?:{_OPTION})(?: (?:{_OPTION}))*)?"
_RUN_OPTIONS_LIST = ", ".join(f"--{name}" for name in RUN_OPTION_TABLE)


def _run_option_tokens(value: str) -> list[tuple[str, str | None]]:
    """Split options into (name, value) pairs, joining `--name value` into one."""
    tokens = value.split(" ") if value else []
    pairs: list[tuple[str, str | None]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name, equals, given = token.partition("=")
        option = RUN_OPTION_TABLE.get(name[2:]) if name.startswith("--") else None
        if (
            option is not None
            and option.value is not None
            and not equals
            and index + 1 < len(tokens)
        ):
            given = tokens[index + 1]
            index += 1
        pairs.append((name, given if (equals or given) else None))
        index += 1
    return pairs


_MOUNT_WHY = "mounts belong in `mounts`"
_PRIVILEGE_WHY = "privileges are not granted through config"
# Why the options people reach for most are refused (every other one is refused too).
REFUSED_WHY = {
    **dict.fromkeys(("mount", "volume", "volumes-from", "v", "tmpfs-host"), _MOUNT_WHY),
    **dict.fromkeys(
        (
            "privileged",
            "cap-add",
            "security-opt",
            "device",
            "device-cgroup-rule",
            "pid",
            "ipc",
            "uts",
            "userns",
            "cgroupns",
            "cgroup-parent",
            "sysctl",
            "oom-kill-disable",
            "runtime",
            "isolation",
        ),
        _PRIVILEGE_WHY,
    ),
    **dict.fromkeys(("user", "u", "group-add"), "the user is set by `elevation`, never root by id"),
    **dict.fromkeys(
        ("env", "e", "env-file"),
        "environment variables belong in `env` (and `secretEnv`), where review shows them",
    ),
    **dict.fromkeys(
        ("publish", "p", "publish-all", "P", "expose"), "tasks do not serve ports on the node"
    ),
    **dict.fromkeys(("workdir", "w"), "the working directory is `workingDirectory`"),
    "entrypoint": "what runs must be the reviewed `command`",
    **dict.fromkeys(("log-driver", "log-opt"), "logs go to the job's `logs` container"),
}
_RUN_OPTION_TEXT = re.compile(r"[A-Za-z0-9._:/@+=,-]+(?: [A-Za-z0-9._:/@+=,-]+)*")


def _run_options(value: str) -> str | None:
    if value and not _RUN_OPTION_TEXT.fullmatch(value):
        return (
            "must be options separated by single spaces, using only letters, digits and "
            ". _ : / @ + - = , (no quotes, '$', ';', '&', '|' or newlines)"
        )
    for name, given in _run_option_tokens(value):
        bare = name.lstrip("-")
        option = RUN_OPTION_TABLE.get(bare) if name.startswith("--") else None
        if option is None:
            short = not name.startswith("--") and name.startswith("-")
            why = REFUSED_WHY.get(bare) or next(
                (REFUSED_WHY[flag] for flag in bare if short and flag in REFUSED_WHY),
                "it is not on the allow-list",
            )
            return (
                f"must not use {name}: {why} (allowed: {_RUN_OPTIONS_LIST}, each as "
                "--name or --name=value)"
            )
        if option.value is None:
            if given is not None:
                return f"must give {name} without a value"
            continue
        if given is None or not re.fullmatch(option.value, given):
            if bare == "network":
                return (
                    f"must not use --network={given}: {_PRIVILEGE_WHY} (--network takes "
                    f"none or bridge; allowed options: {_RUN_OPTIONS_LIST})"
                )
            return f"must give {name} a value of the form {option.value} ({given!r} given)"
    return None


# They land on the node's `docker create` command line, so only allowed options with checked
# values pass (see RUN_OPTION_TABLE and the README).
RUN_OPTIONS = Rule(
    "container run options",
    f"must be allowed options separated by single spaces ({_RUN_OPTIONS_LIST})",
    pattern=_RUN_OPTIONS,
    check=_run_options,
)
