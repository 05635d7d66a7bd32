"""Rules for the names and paths that Azure Batch and Azure Storage accept.

Each `*_problem` function returns None for a valid value, or a short phrase saying what is wrong,
so that the task builders can raise at once and the config loader can collect every error first.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONTAINER_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
ACCOUNT_NAME_PATTERN = re.compile(r"[a-z0-9]{3,24}")
# Characters that would end a `--mount` option or start another one on the container command line.
MOUNT_PATH_FORBIDDEN = re.compile(r"[\s,=\"'`\\;$&|<>(){}]")
UPLOAD_CONDITIONS = {"taskcompletion": "taskCompletion", "taskfailure": "taskFailure",
                     "tasksuccess": "taskSuccess"}


def batch_id_problem(value: Any) -> str | None:
    """Say what is wrong with a Batch job or task id.

    Parameters
    ----------
    value
        The candidate id.

    Returns
    -------
    str | None
        None if valid, otherwise why it is not.
    """
    if not isinstance(value, str):
        return "must be a string"
    if not TASK_ID_PATTERN.fullmatch(value):
        return "must be 1-64 letters, digits, '-' or '_'"
    return None


def container_name_problem(value: Any) -> str | None:
    """Say what is wrong with a blob container name (3-63 lowercase letters, digits, single '-')."""
    if not isinstance(value, str):
        return "must be a string"
    if not CONTAINER_NAME_PATTERN.fullmatch(value):
        return ("must be 3-63 lowercase letters, digits and single hyphens, "
                "starting and ending with a letter or digit")
    return None


def account_name_problem(value: Any) -> str | None:
    """Say what is wrong with a storage account name (3-24 lowercase letters and digits)."""
    if not isinstance(value, str):
        return "must be a string"
    if not ACCOUNT_NAME_PATTERN.fullmatch(value):
        return "must be 3-24 lowercase letters and digits"
    return None


def command_line_problem(value: Any) -> str | None:
    """Say what is wrong with a task command line (a non-empty string)."""
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    return None


def upload_condition_problem(value: Any) -> str | None:
    """Say what is wrong with an output upload condition (the three Batch values, any case)."""
    if not isinstance(value, str) or value.lower() not in UPLOAD_CONDITIONS:
        return "must be one of taskCompletion, taskFailure, taskSuccess"
    return None


def normalise_upload_condition(value: str) -> str:
    """Return the Batch spelling of an upload condition given in any case.

    Raises
    ------
    ValueError
        If the value is not one of the three conditions.
    """
    problem = upload_condition_problem(value)
    if problem:
        raise ValueError(f"upload_condition: {value!r} {problem}")
    return UPLOAD_CONDITIONS[value.lower()]


def mount_source_problem(value: Any) -> str | None:
    """Say what is wrong with a mount source, a path relative to the node's mount directory."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if MOUNT_PATH_FORBIDDEN.search(value):
        return "must not contain whitespace, commas, quotes, '=' or shell characters"
    if value.startswith("/"):
        return "must be relative to the mount directory"
    if ".." in value.split("/"):
        return "must not climb out of the mount directory with '..'"
    return None


def mount_target_problem(value: Any) -> str | None:
    """Say what is wrong with a mount target, an absolute path inside the container."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if MOUNT_PATH_FORBIDDEN.search(value):
        return "must not contain whitespace, commas, quotes, '=' or shell characters"
    if not value.startswith("/"):
        return "must be an absolute path"
    if ".." in value.split("/"):
        return "must not contain '..'"
    return None


def mount_dir_problem(value: Any) -> str | None:
    """Say what is wrong with the node directory that holds the mounts."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    # `$` is allowed here only as the documented node variable, expanded by the node agent.
    rest = value.replace("$AZ_BATCH_NODE_MOUNTS_DIR", "", 1)
    if MOUNT_PATH_FORBIDDEN.search(rest):
        return "must not contain whitespace, commas, quotes, '=' or shell characters"
    return None


# Weeks, days, hours, minutes, seconds: a duration Batch can hold as a fixed length of time.
DURATION = (r"P(?!$)(?:([0-9]+)W)?(?:([0-9]+)D)?"
            r"(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?")
DURATION_HINT = ("must be an ISO 8601 duration in weeks, days, hours, minutes and seconds, "
                 "e.g. PT30M, PT1H, P7D, P1DT2H (years and months have no fixed length)")
DURATION_PATTERN = re.compile(DURATION)


def duration_problem(value: Any) -> str | None:
    """Say what is wrong with a duration (ISO 8601, fixed length: PT1H, P7D, P1DT2H)."""
    if not isinstance(value, str) or not DURATION_PATTERN.fullmatch(value):
        return DURATION_HINT
    return None


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
        raise ValueError(f"duration: {value!r} {DURATION_HINT}")
    weeks, days, hours, minutes, seconds = (float(part) if part else 0.0
                                            for part in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def ensure(parameter: str, value: Any, problem: str | None) -> None:
    """Raise a ValueError naming the parameter and value when a problem was found.

    Parameters
    ----------
    parameter
        Name of the parameter (or key path) being checked.
    value
        The offending value, quoted in the message.
    problem
        What a `*_problem` function returned.

    Raises
    ------
    ValueError
        If problem is not None.
    """
    if problem is not None:
        raise ValueError(f"{parameter}: {value!r} {problem}")


IMAGE_NAME_FORBIDDEN = re.compile(r"[\s\"'`\\;$&|<>(){}]")
ENDPOINT_SUBDOMAIN_PATTERN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
                                        r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?::[0-9]{1,5})?/?")


def image_name_problem(value: Any) -> str | None:
    """Say what is wrong with a container image reference (non-empty, no whitespace or quotes)."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if IMAGE_NAME_FORBIDDEN.search(value):
        return "must not contain whitespace, quotes or shell characters"
    return None


def blob_endpoint_subdomain_problem(value: Any) -> str | None:
    """Say what is wrong with the blob endpoint domain that follows the account name.

    A valid value is a DNS name such as ``blob.core.windows.net``, optionally with a port, with or
    without a trailing '/'.
    """
    if not isinstance(value, str) or not ENDPOINT_SUBDOMAIN_PATTERN.fullmatch(value):
        return "must be a domain name such as 'blob.core.windows.net/'"
    return None
