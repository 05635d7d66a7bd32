"""Functions for building the definition of a container task within an Azure Batch job.

The seed's four builders, returning azure-batch 15.x models. They are pure: no I/O, except that
``output_task_files_to_blob`` and ``get_task_config`` read ``AZURE_USER_ASSIGNED_IDENTITY`` when
no identity reference is given. Every argument is checked, and a bad one raises at once with an
error naming the parameter and the value.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import PurePosixPath
from typing import Any, TypeVar

from azure.batch.models import (
    AutoUserScope,
    AutoUserSpecification,
    BatchNodeIdentityReference,
    BatchTaskContainerSettings,
    BatchTaskCreateOptions,
    ContainerRegistryReference,
    ContainerWorkingDirectory,
    ElevationLevel,
    OutputFile,
    OutputFileBlobContainerDestination,
    OutputFileDestination,
    OutputFileUploadCondition,
    OutputFileUploadConfiguration,
    UserIdentity,
)

from batchtasks import rules
from batchtasks.auth import get_compute_node_identity_reference

DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN = "blob.core.windows.net/"
DEFAULT_AZ_MOUNT_DIR = "$AZ_BATCH_NODE_MOUNTS_DIR"
DEFAULT_LOG_FILE_PATTERN = "../std*.txt"

_E = TypeVar("_E", bound=Enum)


def create_bind_mount_string(az_mount_dir: str, source_path: str, target_path: str) -> str:
    """Create a valid OCI bind mount string for a container task mounting blob storage.

    Parameters
    ----------
    az_mount_dir
        Directory on the node in which to look for directories or volumes to mount, such as
        ``$AZ_BATCH_NODE_MOUNTS_DIR`` (expanded by the node).
    source_path
        Path relative to ``az_mount_dir`` to use as the source.
    target_path
        Absolute path within the container to bind to the source path.

    Returns
    -------
    str
        A ``--mount type=bind,source=...,target=...`` option, as a string.

    Raises
    ------
    ValueError
        If a path is empty, contains a comma, whitespace, quote, ``=`` or shell character (which
        would inject options into the container command line), if the source climbs out of the
        mount directory, or if the target is not absolute.
    """
    rules.MOUNT_DIR.ensure("az_mount_dir", az_mount_dir)
    rules.MOUNT_SOURCE.ensure("source_path", source_path)
    rules.MOUNT_TARGET.ensure("target_path", target_path)
    return f"--mount type=bind,source={az_mount_dir}/{source_path},target={target_path}"


def get_container_settings(
    container_image_name: str,
    az_mount_dir: str = DEFAULT_AZ_MOUNT_DIR,
    working_directory: str | ContainerWorkingDirectory | None = None,
    mount_pairs: Sequence[Mapping[str, str]] | None = None,
    additional_options: str = "",
    registry: ContainerRegistryReference | None = None,
    **kwargs: Any,
) -> BatchTaskContainerSettings:
    """Create container settings with bind mounts for a container run in an Azure Batch task.

    Parameters
    ----------
    container_image_name
        Name of the OCI container image to use.
    az_mount_dir
        Directory on the node in which to look for directories or volumes to mount.
        Default ``"$AZ_BATCH_NODE_MOUNTS_DIR"``, expanded by the node.
    working_directory
        Working directory for the task within the container: ``"taskWorkingDirectory"``,
        ``"containerImageDefault"`` (the image's own WORKDIR), in any case, or a
        ``ContainerWorkingDirectory``. If None (the default), defer to the Batch default, the
        task working directory, which is typically not the image's WORKDIR.
    mount_pairs
        Directories to bind when the container runs, as a list of dictionaries with ``"source"``
        (relative to ``az_mount_dir``) and ``"target"`` (absolute in the container) keys.
        None (the default) means no mounts.
    additional_options
        Additional flags and options for the container run command, as a string. They come
        before the mount options. Default ``""``. They follow the stack file's `runOptions`
        rule (``batchtasks.rules.RUN_OPTIONS``): plain flags and values only, nothing that
        mounts host paths or grants privileges.
    registry
        ``ContainerRegistryReference`` of a private registry from which to pull the image.
        Default None.
    **kwargs
        Additional keyword arguments passed to the ``BatchTaskContainerSettings`` constructor.

    Returns
    -------
    BatchTaskContainerSettings
        The settings. ``containerRunOptions`` is omitted when there are no options at all.

    Raises
    ------
    ValueError
        If any argument is invalid; the message names the parameter and the value.
    TypeError
        If a keyword argument is not one ``BatchTaskContainerSettings`` accepts.
    """
    _check_model_kwargs(
        "get_container_settings",
        BatchTaskContainerSettings,
        kwargs,
        set_here={"image_name", "container_run_options", "registry", "working_directory"},
    )
    rules.IMAGE.ensure("container_image_name", container_image_name)
    if working_directory is not None:
        working_directory = _enum_member(
            "working_directory", working_directory, ContainerWorkingDirectory
        )
    if not isinstance(additional_options, str):
        raise ValueError(f"additional_options: {additional_options!r} must be a string")
    rules.RUN_OPTIONS.ensure("additional_options", additional_options.strip())
    if registry is not None and not isinstance(registry, ContainerRegistryReference):
        raise ValueError(
            f"registry: {registry!r} must be a ContainerRegistryReference, "
            f"not {type(registry).__name__}"
        )
    options = [additional_options.strip()] if additional_options.strip() else []
    options.extend(
        create_bind_mount_string(az_mount_dir, source, target)
        for source, target in _mount_pairs(mount_pairs)
    )
    return BatchTaskContainerSettings(
        image_name=container_image_name,
        working_directory=working_directory,
        container_run_options=" ".join(options) or None,
        registry=registry,
        **kwargs,
    )


def output_task_files_to_blob(
    file_pattern: str,
    blob_container: str,
    blob_account: str,
    path: str | None = None,
    upload_condition: str | OutputFileUploadCondition = "taskCompletion",
    blob_endpoint_subdomain: str | None = DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN,
    compute_node_identity_reference: BatchNodeIdentityReference | None = None,
    **kwargs: Any,
) -> OutputFile:
    """Get an ``OutputFile`` that uploads files from a Batch task to a blob storage container.

    Parameters
    ----------
    file_pattern
        File pattern to match when uploading, relative to the task working directory.
    blob_container
        Name of the Azure blob storage container to which to upload the files.
    blob_account
        Name of the storage account that holds ``blob_container``.
    path
        Path within the container to which to upload the file(s). If ``file_pattern`` contains
        wildcards, ``path`` is the virtual directory that receives the files under their own
        names; otherwise it is the full blob name (the file is renamed). If None (the default),
        upload to the root of the container.
    upload_condition
        When to upload: ``"taskCompletion"`` (always, the default), ``"taskFailure"`` or
        ``"taskSuccess"``, in any case, or an ``OutputFileUploadCondition``.
    blob_endpoint_subdomain
        The domain that follows the account name in the blob endpoint, with or without a
        trailing ``/``. Default ``"blob.core.windows.net/"``; pass another cloud's domain to use
        it. None means the default.
    compute_node_identity_reference
        ``BatchNodeIdentityReference`` of the user-assigned identity the node uses to write to the
        container. If None (the default), obtain one via
        ``auth.get_compute_node_identity_reference()`` (``AZURE_USER_ASSIGNED_IDENTITY``).
    **kwargs
        Additional keyword arguments passed to the ``OutputFile`` constructor.

    Returns
    -------
    OutputFile
        An ``OutputFile`` for ``get_task_config``.

    Raises
    ------
    ValueError
        If ``compute_node_identity_reference`` is not a ``BatchNodeIdentityReference``, if none is
        given and ``AZURE_USER_ASSIGNED_IDENTITY`` is unset, or if any other argument is invalid.
    TypeError
        If a keyword argument is not one ``OutputFile`` accepts.
    """
    _check_model_kwargs(
        "output_task_files_to_blob",
        OutputFile,
        kwargs,
        set_here={"file_pattern", "destination", "upload_options"},
    )
    rules.OUTPUT_PATTERN.ensure("file_pattern", file_pattern)
    rules.CONTAINER_NAME.ensure("blob_container", blob_container)
    rules.ACCOUNT_NAME.ensure("blob_account", blob_account)
    if path is not None:
        rules.BLOB_PATH.ensure("path", path)
    condition = _upload_condition("upload_condition", upload_condition)
    if blob_endpoint_subdomain is None:
        blob_endpoint_subdomain = DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN
    rules.BLOB_ENDPOINT_SUBDOMAIN.ensure("blob_endpoint_subdomain", blob_endpoint_subdomain)
    if compute_node_identity_reference is None:
        compute_node_identity_reference = get_compute_node_identity_reference()
    _ensure_identity_reference("compute_node_identity_reference", compute_node_identity_reference)

    container_url = f"https://{blob_account}.{blob_endpoint_subdomain.rstrip('/')}/{blob_container}"
    return OutputFile(
        file_pattern=file_pattern,
        destination=OutputFileDestination(
            container=OutputFileBlobContainerDestination(
                container_url=container_url,
                path=path,
                identity_reference=compute_node_identity_reference,
            )
        ),
        upload_options=OutputFileUploadConfiguration(upload_condition=condition),
        **kwargs,
    )


def get_user_identity(
    elevation_level: str | ElevationLevel = "admin",
    scope: str | AutoUserScope = "pool",
) -> UserIdentity:
    """Get an auto-user identity under which to run a task.

    Parameters
    ----------
    elevation_level
        ``"admin"`` (the default) or ``"nonAdmin"``, in any case, or an ``ElevationLevel``.
        Admin lets the task read and write the mounted volumes.
    scope
        ``"pool"`` (the default, the auto-user shared by the pool's tasks) or ``"task"``, in any
        case, or an ``AutoUserScope``.

    Returns
    -------
    UserIdentity
        The identity.

    Raises
    ------
    ValueError
        If either value is not one of its options.
    """
    return UserIdentity(
        auto_user=AutoUserSpecification(
            scope=_enum_member("scope", scope, AutoUserScope),
            elevation_level=_enum_member("elevation_level", elevation_level, ElevationLevel),
        )
    )


def get_task_config(
    task_id: str,
    base_call: str,
    container_settings: BatchTaskContainerSettings | None = None,
    user_identity: UserIdentity | None = None,
    log_blob_container: str | None = None,
    log_blob_account: str | None = None,
    log_subdir: str | None = None,
    log_file_pattern: str = DEFAULT_LOG_FILE_PATTERN,
    log_upload_condition: str | OutputFileUploadCondition = "taskCompletion",
    log_compute_node_identity_reference: BatchNodeIdentityReference | None = None,
    output_files: Sequence[OutputFile] | OutputFile | None = None,
    *,
    log_blob_endpoint_subdomain: str | None = DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN,
    **kwargs: Any,
) -> BatchTaskCreateOptions:
    """Create a batch task with a given base call and set of container settings.

    If ``user_identity`` is not set, the task runs as the pool's admin auto-user, which can read
    and write the mounted volumes.

    Parameters
    ----------
    task_id
        Identifier of the task: 1-64 letters, digits, ``-`` or ``_``.
    base_call
        The command line of the task, as a string.
    container_settings
        Container settings for the task, for example from ``get_container_settings``.
        Default None.
    user_identity
        User identity under which to run the task. If None, the pool-scoped admin auto-user
        (``get_user_identity()``). Default None.
    log_blob_container
        If given, upload the task's logs (by default its stdout and stderr files) to this blob
        container. If None, the logs are not kept.
    log_blob_account
        Storage account that holds ``log_blob_container``. Required with it; otherwise ignored.
    log_subdir
        Virtual directory of ``log_blob_container`` under which the logs go, in a directory named
        after the task. If None, ``<task_id>`` at the container root. Ignored without
        ``log_blob_container``.
    log_file_pattern
        File pattern for the logs. Default ``"../std*.txt"``, the stdout and stderr files of a
        Linux Batch task, one directory above its working directory.
    log_upload_condition
        When to upload the logs: ``"taskCompletion"`` (always, the default), ``"taskFailure"``
        or ``"taskSuccess"``, in any case, or an ``OutputFileUploadCondition``.
    log_compute_node_identity_reference
        ``BatchNodeIdentityReference`` the node uses to write the logs. If None (the default),
        obtain one via ``auth.get_compute_node_identity_reference()``. Ignored without
        ``log_blob_container``.
    output_files
        ``OutputFile`` or list of them to upload besides the logs. They come first in the task's
        output files, the log upload last.
    log_blob_endpoint_subdomain
        Blob endpoint domain for the log upload, as ``blob_endpoint_subdomain`` of
        ``output_task_files_to_blob``. Default ``"blob.core.windows.net/"``; None means the
        default. Keyword only.
    **kwargs
        Additional keyword arguments passed to the ``BatchTaskCreateOptions`` constructor, such
        as ``environment_settings``, ``constraints`` or ``depends_on``.

    Returns
    -------
    BatchTaskCreateOptions
        The task configuration.

    Raises
    ------
    ValueError
        If any argument is invalid; the message names the parameter and the value.
    TypeError
        If a keyword argument is not one ``BatchTaskCreateOptions`` accepts.
    """
    _check_model_kwargs(
        "get_task_config",
        BatchTaskCreateOptions,
        kwargs,
        set_here={"id", "command_line", "container_settings", "user_identity", "output_files"},
    )
    rules.BATCH_ID.ensure("task_id", task_id)
    rules.COMMAND_LINE.ensure("base_call", base_call)
    if container_settings is not None and not isinstance(
        container_settings, BatchTaskContainerSettings
    ):
        raise ValueError(
            f"container_settings: {container_settings!r} must be a BatchTaskContainerSettings, "
            f"not {type(container_settings).__name__}"
        )
    if user_identity is None:
        user_identity = get_user_identity()
    elif not isinstance(user_identity, UserIdentity):
        raise ValueError(
            f"user_identity: {user_identity!r} must be a UserIdentity, "
            f"not {type(user_identity).__name__}"
        )
    files = _output_file_list(output_files)
    if log_blob_container is not None:
        files.append(
            _log_output_file(
                task_id,
                log_blob_container,
                log_blob_account,
                log_subdir,
                log_file_pattern,
                log_upload_condition,
                log_compute_node_identity_reference,
                log_blob_endpoint_subdomain,
            )
        )
    return BatchTaskCreateOptions(
        id=task_id,
        command_line=base_call,
        container_settings=container_settings,
        user_identity=user_identity,
        output_files=files or None,
        **kwargs,
    )


def _log_output_file(
    task_id: str,
    container: str,
    account: str | None,
    subdir: str | None,
    file_pattern: str,
    upload_condition: str | OutputFileUploadCondition,
    identity_reference: BatchNodeIdentityReference | None,
    endpoint_subdomain: str | None,
) -> OutputFile:
    """Build the log upload of ``get_task_config``, checking each value under its own name."""
    rules.CONTAINER_NAME.ensure("log_blob_container", container)
    if account is None:
        raise ValueError("log_blob_account: None; it is required when log_blob_container is given")
    rules.ACCOUNT_NAME.ensure("log_blob_account", account)
    if subdir is not None and not isinstance(subdir, str):
        raise ValueError(f"log_subdir: {subdir!r} must be a string")
    if subdir:
        rules.BLOB_PATH.ensure("log_subdir", subdir)
    rules.OUTPUT_PATTERN.ensure("log_file_pattern", file_pattern)
    condition = _upload_condition("log_upload_condition", upload_condition)
    if endpoint_subdomain is None:
        endpoint_subdomain = DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN
    rules.BLOB_ENDPOINT_SUBDOMAIN.ensure("log_blob_endpoint_subdomain", endpoint_subdomain)
    if identity_reference is None:
        identity_reference = get_compute_node_identity_reference()
    _ensure_identity_reference("log_compute_node_identity_reference", identity_reference)
    return output_task_files_to_blob(
        file_pattern=file_pattern,
        blob_container=container,
        blob_account=account,
        path=PurePosixPath(subdir or "", task_id).as_posix(),
        upload_condition=condition,
        blob_endpoint_subdomain=endpoint_subdomain,
        compute_node_identity_reference=identity_reference,
    )


def _mount_pairs(mount_pairs: Sequence[Mapping[str, str]] | None) -> list[tuple[str, str]]:
    """Return (source, target) for each mount pair, raising on a malformed pair."""
    if mount_pairs is None:
        return []
    if isinstance(mount_pairs, str | bytes | Mapping) or not isinstance(mount_pairs, Sequence):
        raise ValueError(
            f"mount_pairs: {mount_pairs!r} must be a list of dicts with 'source' and 'target'"
        )
    pairs = []
    for index, pair in enumerate(mount_pairs):
        name = f"mount_pairs[{index}]"
        if not isinstance(pair, Mapping):
            raise ValueError(f"{name}: {pair!r} must be a dict with 'source' and 'target'")
        missing = [key for key in ("source", "target") if key not in pair]
        if missing:
            raise ValueError(f"{name}: {dict(pair)!r} has no {' or '.join(map(repr, missing))}")
        rules.MOUNT_SOURCE.ensure(f"{name}['source']", pair["source"])
        rules.MOUNT_TARGET.ensure(f"{name}['target']", pair["target"])
        pairs.append((pair["source"], pair["target"]))
    return pairs


def _output_file_list(output_files: Sequence[OutputFile] | OutputFile | None) -> list[OutputFile]:
    """Return the user's output files as a new list, raising on anything not an OutputFile."""
    if output_files is None:
        return []
    if isinstance(output_files, OutputFile):
        return [output_files]
    # A model is itself a Mapping, so test Sequence only after ruling out a single OutputFile.
    if isinstance(output_files, str | bytes) or not isinstance(output_files, Sequence):
        raise ValueError(f"output_files: {output_files!r} must be an OutputFile or a list of them")
    for index, item in enumerate(output_files):
        if not isinstance(item, OutputFile):
            raise ValueError(
                f"output_files[{index}]: {item!r} must be an OutputFile, not {type(item).__name__}"
            )
    return list(output_files)


def _upload_condition(
    parameter: str, value: str | OutputFileUploadCondition
) -> OutputFileUploadCondition:
    """Return the upload condition given in the seed's spelling, any case, or as the enum."""
    rules.UPLOAD_CONDITION.ensure(parameter, value)
    return _enum_member(parameter, value, OutputFileUploadCondition)


def _enum_member(parameter: str, value: Any, enum: type[_E]) -> _E:
    """Return the member of a str enum whose value matches, ignoring case."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        for member in enum:
            if member.value.lower() == value.lower():
                return member
    options = ", ".join(repr(member.value) for member in enum)
    raise ValueError(f"{parameter}: {value!r} must be one of {options} (any case)")


def _ensure_identity_reference(parameter: str, value: Any) -> None:
    """Raise unless value is a BatchNodeIdentityReference, as the seed documents."""
    if not isinstance(value, BatchNodeIdentityReference):
        raise ValueError(
            f"{parameter}: {value!r} must be a BatchNodeIdentityReference, "
            f"not {type(value).__name__}"
        )


@functools.cache
def _model_keywords(model: type) -> frozenset[str]:
    """Return the keyword arguments an azure-batch model's constructor accepts."""
    # The models declare their fields as keyword-only parameters of an overloaded __init__;
    # reading them keeps this in step with the installed SDK.
    names: set[str] = set()
    for overload in typing.get_overloads(inspect.getattr_static(model, "__init__")):
        names.update(
            name
            for name, parameter in inspect.signature(overload).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        )
    return frozenset(names)


def _check_model_kwargs(
    function: str, model: type, kwargs: Mapping[str, Any], set_here: set[str]
) -> None:
    """Raise a TypeError naming unknown keyword arguments and listing the valid ones."""
    if not kwargs:
        return  # the common case; reading signatures is slow next to building a task
    valid = _model_keywords(model) - set_here
    unknown = sorted(set(kwargs) - valid)
    if not unknown:
        return
    clashing = [name for name in unknown if name in set_here]
    hint = f" ({', '.join(clashing)} set by {function} itself)" if clashing else ""
    raise TypeError(
        f"{function}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}"
        f"{hint}; {model.__name__} accepts: {', '.join(sorted(valid)) or 'none'}"
    )
