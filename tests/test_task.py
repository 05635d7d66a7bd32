"""The seed's task builders on azure-batch 15.1: behaviour, validation and REST bodies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from azure.batch.models import (
    AutoUserScope,
    AutoUserSpecification,
    BatchNodeIdentityReference,
    BatchTaskConstraints,
    BatchTaskContainerSettings,
    BatchTaskCreateOptions,
    BatchTaskDependencies,
    ContainerHostBatchBindMountEntry,
    ContainerRegistryReference,
    ContainerWorkingDirectory,
    ElevationLevel,
    EnvironmentSetting,
    OutputFile,
    OutputFileUploadCondition,
    UserIdentity,
)
from azure.identity import DefaultAzureCredential

from batchtasks.auth import batch_credential, get_compute_node_identity_reference
from batchtasks.task import (
    DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN,
    create_bind_mount_string,
    get_container_settings,
    get_task_config,
    get_user_identity,
    output_task_files_to_blob,
)

ENV = "AZURE_USER_ASSIGNED_IDENTITY"
ENV_IDENTITY = (
    "/subscriptions/0000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/from-env"
)
EXPLICIT_IDENTITY = (
    "/subscriptions/0000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/explicit"
)
IMAGE = "myregistry.azurecr.io/forecast:1.2"
ADMIN_POOL_USER = {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}


@pytest.fixture(autouse=True)
def _no_ambient_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without the identity variable, whatever the shell has."""
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture
def env_identity(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, ENV_IDENTITY)
    return ENV_IDENTITY


def explicit_reference() -> BatchNodeIdentityReference:
    return BatchNodeIdentityReference(resource_id=EXPLICIT_IDENTITY)


def raises_naming(parameter: str, value: Any, call: Callable[[], Any]) -> str:
    """Assert that call raises a ValueError that starts by naming the parameter and the value."""
    with pytest.raises(ValueError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(f"{parameter}: {value!r}"), message
    return message


def _pair(source: Any = "ok", target: Any = "/ok") -> dict[str, Any]:
    return {"source": source, "target": target}


def log_upload(
    path: str,
    *,
    url: str = "https://acct01.blob.core.windows.net/logs",
    condition: str = "taskcompletion",
    identity: str = ENV_IDENTITY,
) -> dict[str, Any]:
    """The REST body of the log upload that get_task_config appends."""
    return {
        "filePattern": "../std*.txt",
        "destination": {
            "container": {
                "containerUrl": url,
                "path": path,
                "identityReference": {"resourceId": identity},
            }
        },
        "uploadOptions": {"uploadCondition": condition},
    }


# --- create_bind_mount_string ----------------------------------------------------------------


def test_bind_mount_string_format() -> None:
    assert (
        create_bind_mount_string("/mnt/batch/tasks/fsmounts", "input", "/data/input")
        == "--mount type=bind,source=/mnt/batch/tasks/fsmounts/input,target=/data/input"
    )


def test_bind_mount_string_keeps_node_variable_literal() -> None:
    assert (
        create_bind_mount_string("$AZ_BATCH_NODE_MOUNTS_DIR", "in/2024", "/in")
        == "--mount type=bind,source=$AZ_BATCH_NODE_MOUNTS_DIR/in/2024,target=/in"
    )


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("source_path", "../secrets"),
        ("source_path", "in/../../etc"),
        ("source_path", "/etc"),
        ("source_path", ""),
        ("source_path", "in,readonly=false"),
        ("source_path", "in put"),
        ("source_path", "in\tput"),
        ("source_path", 'in"put'),
        ("source_path", "in'put"),
        ("source_path", "a=b"),
        ("target_path", "relative"),
        ("target_path", ""),
        ("target_path", "/out,type=volume"),
        ("target_path", "/out --privileged"),
        ("target_path", "/out=x"),
        ("target_path", "/out/../../root"),
        ("az_mount_dir", "/mnt/my mounts"),
        ("az_mount_dir", "/mnt,x"),
        ("az_mount_dir", ""),
    ],
)
def test_bind_mount_string_rejects(parameter: str, value: str) -> None:
    arguments = {"az_mount_dir": "/mnt", "source_path": "in", "target_path": "/in"}
    arguments[parameter] = value
    raises_naming(parameter, value, lambda: create_bind_mount_string(**arguments))


# --- get_container_settings ------------------------------------------------------------------


def test_container_settings_image_only_rest_body() -> None:
    settings = get_container_settings(IMAGE)
    assert isinstance(settings, BatchTaskContainerSettings)
    assert settings.as_dict() == {"imageName": IMAGE}


def test_container_settings_options_first_then_mounts_in_order() -> None:
    settings = get_container_settings(
        IMAGE,
        mount_pairs=[
            {"source": "input", "target": "/data/in"},
            {"source": "output/run1", "target": "/data/out"},
        ],
        additional_options="--rm --shm-size=1g",
    )
    assert settings.as_dict() == {
        "imageName": IMAGE,
        "containerRunOptions": (
            "--rm --shm-size=1g"
            " --mount type=bind,source=$AZ_BATCH_NODE_MOUNTS_DIR/input,target=/data/in"
            " --mount type=bind,source=$AZ_BATCH_NODE_MOUNTS_DIR/output/run1,target=/data/out"
        ),
    }


def test_container_settings_mounts_without_options_have_no_leading_space() -> None:
    settings = get_container_settings(
        IMAGE,
        az_mount_dir="/mnt/batch/tasks/fsmounts",
        mount_pairs=[{"source": "input", "target": "/in"}],
    )
    assert settings.container_run_options == (
        "--mount type=bind,source=/mnt/batch/tasks/fsmounts/input,target=/in"
    )


def test_container_settings_options_are_trimmed_to_single_spaces() -> None:
    settings = get_container_settings(
        IMAGE, mount_pairs=[{"source": "a", "target": "/a"}], additional_options="  --rm  "
    )
    assert settings.container_run_options == (
        "--rm --mount type=bind,source=$AZ_BATCH_NODE_MOUNTS_DIR/a,target=/a"
    )


@pytest.mark.parametrize("mount_pairs", [None, []])
def test_container_settings_no_mounts(mount_pairs: list | None) -> None:
    settings = get_container_settings(IMAGE, mount_pairs=mount_pairs, additional_options="--rm")
    assert settings.as_dict() == {"imageName": IMAGE, "containerRunOptions": "--rm"}


def test_container_settings_mount_pairs_may_be_a_tuple_and_carry_extra_keys() -> None:
    settings = get_container_settings(
        IMAGE, mount_pairs=({"source": "a", "target": "/a", "note": "inputs"},)
    )
    assert settings.container_run_options == (
        "--mount type=bind,source=$AZ_BATCH_NODE_MOUNTS_DIR/a,target=/a"
    )


@pytest.mark.parametrize(
    ("working_directory", "expected"),
    [
        ("containerImageDefault", "containerImageDefault"),
        ("CONTAINERIMAGEDEFAULT", "containerImageDefault"),
        ("taskWorkingDirectory", "taskWorkingDirectory"),
        (ContainerWorkingDirectory.CONTAINER_IMAGE_DEFAULT, "containerImageDefault"),
        (ContainerWorkingDirectory.TASK_WORKING_DIRECTORY, "taskWorkingDirectory"),
    ],
)
def test_container_settings_working_directory(
    working_directory: str | ContainerWorkingDirectory, expected: str
) -> None:
    settings = get_container_settings(IMAGE, working_directory=working_directory)
    assert settings.as_dict() == {"imageName": IMAGE, "workingDirectory": expected}


def test_container_settings_registry_rest_body() -> None:
    registry = ContainerRegistryReference(
        registry_server="myregistry.azurecr.io", identity_reference=explicit_reference()
    )
    settings = get_container_settings(IMAGE, registry=registry)
    assert settings.as_dict() == {
        "imageName": IMAGE,
        "registry": {
            "registryServer": "myregistry.azurecr.io",
            "identityReference": {"resourceId": EXPLICIT_IDENTITY},
        },
    }


def test_container_settings_kwargs_reach_the_model() -> None:
    settings = get_container_settings(
        IMAGE,
        container_host_batch_bind_mounts=[
            ContainerHostBatchBindMountEntry(source="Task", is_read_only=True)
        ],
    )
    assert settings.as_dict() == {
        "imageName": IMAGE,
        "containerHostBatchBindMounts": [{"source": "Task", "isReadOnly": True}],
    }


def test_container_settings_unknown_keyword_is_named_with_the_valid_ones() -> None:
    with pytest.raises(TypeError) as caught:
        get_container_settings(IMAGE, run_options="--rm")
    message = str(caught.value)
    assert "'run_options'" in message
    assert "container_host_batch_bind_mounts" in message


def test_container_settings_keyword_it_sets_itself_is_refused() -> None:
    with pytest.raises(TypeError, match=r"'image_name'.*set by get_container_settings"):
        get_container_settings(IMAGE, image_name="other")


@pytest.mark.parametrize(
    ("parameter", "value", "arguments"),
    [
        ("container_image_name", "", {}),
        ("container_image_name", "img --privileged", {}),
        ("container_image_name", None, {}),
        ("working_directory", "imageDefault", {}),
        ("working_directory", 3, {}),
        ("additional_options", None, {}),
        ("registry", {"registryServer": "x.azurecr.io"}, {}),
        ("registry", "x.azurecr.io", {}),
        ("mount_pairs", {"source": "a", "target": "/a"}, {}),
        ("mount_pairs", "a:/a", {}),
        ("mount_pairs[0]", ("a", "/a"), {}),
        ("mount_pairs[1]", {"target": "/b"}, {"mount_pairs": [_pair(), {"target": "/b"}]}),
        ("mount_pairs[0]", {"source": "a"}, {}),
        ("mount_pairs[0]", {"src": "a", "dst": "/a"}, {}),
        ("mount_pairs[0]['source']", "../up", {"mount_pairs": [_pair(source="../up")]}),
        ("mount_pairs[0]['source']", "a,ro", {"mount_pairs": [_pair(source="a,ro")]}),
        ("mount_pairs[0]['source']", None, {"mount_pairs": [_pair(source=None)]}),
        ("mount_pairs[0]['target']", "out", {"mount_pairs": [_pair(target="out")]}),
        ("mount_pairs[0]['target']", "/o x", {"mount_pairs": [_pair(target="/o x")]}),
        ("mount_pairs[0]['target']", "/o'ut", {"mount_pairs": [_pair(target="/o'ut")]}),
        ("mount_pairs[0]['target']", "/o=ut", {"mount_pairs": [_pair(target="/o=ut")]}),
        ("az_mount_dir", "/mnt/a b", {"mount_pairs": [_pair()]}),
    ],
)
def test_container_settings_rejects(parameter: str, value: Any, arguments: dict) -> None:
    """Each bad value is reported under its own name; `arguments` overrides the default call."""
    call: dict[str, Any] = {"container_image_name": IMAGE}
    if parameter == "mount_pairs[0]":
        call["mount_pairs"] = [value]
    elif not parameter.startswith("mount_pairs["):
        call[parameter] = value
    call.update(arguments)
    raises_naming(parameter, value, lambda: get_container_settings(**call))


def test_container_settings_missing_mount_key_is_named() -> None:
    message = raises_naming(
        "mount_pairs[0]",
        {"source": "a"},
        lambda: get_container_settings(IMAGE, mount_pairs=[{"source": "a"}]),
    )
    assert "'target'" in message


# --- output_task_files_to_blob ---------------------------------------------------------------


def test_output_file_rest_body() -> None:
    output = output_task_files_to_blob(
        "out/*.csv",
        "results",
        "acct01",
        path="run1/2024",
        compute_node_identity_reference=explicit_reference(),
    )
    assert isinstance(output, OutputFile)
    assert output.as_dict() == {
        "filePattern": "out/*.csv",
        "destination": {
            "container": {
                "containerUrl": "https://acct01.blob.core.windows.net/results",
                "path": "run1/2024",
                "identityReference": {"resourceId": EXPLICIT_IDENTITY},
            }
        },
        "uploadOptions": {"uploadCondition": "taskcompletion"},
    }


def test_output_file_without_path_uploads_to_container_root(env_identity: str) -> None:
    output = output_task_files_to_blob("*.csv", "results", "acct01")
    assert output.as_dict()["destination"] == {
        "container": {
            "containerUrl": "https://acct01.blob.core.windows.net/results",
            "identityReference": {"resourceId": env_identity},
        }
    }


def test_output_file_identity_comes_from_environment(env_identity: str) -> None:
    output = output_task_files_to_blob("*.csv", "results", "acct01")
    assert output.destination.container.identity_reference.resource_id == env_identity


def test_output_file_explicit_identity_wins_over_environment(env_identity: str) -> None:
    output = output_task_files_to_blob(
        "*.csv", "results", "acct01", compute_node_identity_reference=explicit_reference()
    )
    assert output.destination.container.identity_reference.resource_id == EXPLICIT_IDENTITY


def test_output_file_without_identity_or_environment_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=f"{ENV}.*BatchNodeIdentityReference"):
        output_task_files_to_blob("*.csv", "results", "acct01")


@pytest.mark.parametrize(
    "reference",
    [EXPLICIT_IDENTITY, {"resourceId": EXPLICIT_IDENTITY}, UserIdentity(username="u")],
)
def test_output_file_rejects_identity_of_wrong_type(reference: Any) -> None:
    raises_naming(
        "compute_node_identity_reference",
        reference,
        lambda: output_task_files_to_blob(
            "*.csv", "results", "acct01", compute_node_identity_reference=reference
        ),
    )


@pytest.mark.parametrize(
    ("subdomain", "url"),
    [
        ("blob.core.windows.net/", "https://acct01.blob.core.windows.net/results"),
        ("blob.core.windows.net", "https://acct01.blob.core.windows.net/results"),
        (None, "https://acct01.blob.core.windows.net/results"),
        ("blob.core.usgovcloudapi.net/", "https://acct01.blob.core.usgovcloudapi.net/results"),
        ("blob.core.chinacloudapi.cn", "https://acct01.blob.core.chinacloudapi.cn/results"),
        ("blob.example.test:8443/", "https://acct01.blob.example.test:8443/results"),
    ],
)
def test_output_file_container_url(subdomain: str | None, url: str) -> None:
    output = output_task_files_to_blob(
        "*.csv",
        "results",
        "acct01",
        blob_endpoint_subdomain=subdomain,
        compute_node_identity_reference=explicit_reference(),
    )
    assert output.destination.container.container_url == url


def test_default_subdomain_constant() -> None:
    assert DEFAULT_AZURE_BLOB_STORAGE_ENDPOINT_SUBDOMAIN == "blob.core.windows.net/"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("taskCompletion", "taskcompletion"),
        ("taskFailure", "taskfailure"),
        ("taskSuccess", "tasksuccess"),
        ("TASKSUCCESS", "tasksuccess"),
        ("taskfailure", "taskfailure"),
        (OutputFileUploadCondition.TASK_FAILURE, "taskfailure"),
        (OutputFileUploadCondition.TASK_COMPLETION, "taskcompletion"),
    ],
)
def test_output_file_upload_condition(
    condition: str | OutputFileUploadCondition, expected: str
) -> None:
    output = output_task_files_to_blob(
        "*.csv",
        "results",
        "acct01",
        upload_condition=condition,
        compute_node_identity_reference=explicit_reference(),
    )
    assert output.as_dict()["uploadOptions"] == {"uploadCondition": expected}


@pytest.mark.parametrize(
    ("container", "account"), [("abc", "abc"), ("a" * 63, "a" * 24), ("run-2024-01", "acct01")]
)
def test_output_file_accepts_boundary_names(container: str, account: str) -> None:
    output = output_task_files_to_blob(
        "*", container, account, compute_node_identity_reference=explicit_reference()
    )
    assert output.destination.container.container_url == (
        f"https://{account}.blob.core.windows.net/{container}"
    )


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("file_pattern", ""),
        ("file_pattern", None),
        ("blob_container", "ab"),
        ("blob_container", "a" * 64),
        ("blob_container", "Results"),
        ("blob_container", "re--sults"),
        ("blob_container", "-results"),
        ("blob_container", "results-"),
        ("blob_container", "re_sults"),
        ("blob_container", None),
        ("blob_account", "ab"),
        ("blob_account", "a" * 25),
        ("blob_account", "Acct01"),
        ("blob_account", "acct-01"),
        ("blob_account", None),
        ("path", ""),
        ("path", 5),
        ("upload_condition", "always"),
        ("upload_condition", "task_completion"),
        ("upload_condition", None),
        ("blob_endpoint_subdomain", "https://blob.core.windows.net/"),
        ("blob_endpoint_subdomain", "blob core"),
        ("blob_endpoint_subdomain", "localhost"),
    ],
)
def test_output_file_rejects(parameter: str, value: Any) -> None:
    arguments: dict[str, Any] = {
        "file_pattern": "*.csv",
        "blob_container": "results",
        "blob_account": "acct01",
        "compute_node_identity_reference": explicit_reference(),
        parameter: value,
    }
    raises_naming(parameter, value, lambda: output_task_files_to_blob(**arguments))


def test_output_file_unknown_keyword_is_named() -> None:
    with pytest.raises(TypeError, match=r"'upload_headers'.*OutputFile accepts: none"):
        output_task_files_to_blob(
            "*.csv",
            "results",
            "acct01",
            compute_node_identity_reference=explicit_reference(),
            upload_headers=[],
        )


# --- get_user_identity -----------------------------------------------------------------------


def test_user_identity_default_is_pool_admin() -> None:
    identity = get_user_identity()
    assert isinstance(identity, UserIdentity)
    assert identity.as_dict() == ADMIN_POOL_USER


@pytest.mark.parametrize(
    ("elevation_level", "scope", "expected"),
    [
        ("nonAdmin", "task", {"scope": "task", "elevationLevel": "nonadmin"}),
        ("ADMIN", "Pool", {"scope": "pool", "elevationLevel": "admin"}),
        (
            ElevationLevel.NON_ADMIN,
            AutoUserScope.TASK,
            {"scope": "task", "elevationLevel": "nonadmin"},
        ),
    ],
)
def test_user_identity_accepts_strings_and_enums(
    elevation_level: Any, scope: Any, expected: dict
) -> None:
    identity = get_user_identity(elevation_level=elevation_level, scope=scope)
    assert identity.as_dict() == {"autoUser": expected}


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("elevation_level", "root"), ("elevation_level", None), ("scope", "job"), ("scope", 1)],
)
def test_user_identity_rejects(parameter: str, value: Any) -> None:
    raises_naming(parameter, value, lambda: get_user_identity(**{parameter: value}))


# --- get_task_config -------------------------------------------------------------------------


def test_task_config_minimal_rest_body() -> None:
    config = get_task_config("forecast-CA-flu_1", "python run.py --state CA")
    assert isinstance(config, BatchTaskCreateOptions)
    assert config.as_dict() == {
        "id": "forecast-CA-flu_1",
        "commandLine": "python run.py --state CA",
        "userIdentity": ADMIN_POOL_USER,
    }


def test_task_config_full_rest_body(env_identity: str) -> None:
    results = output_task_files_to_blob(
        "out/*.parquet",
        "results",
        "acct01",
        path="run1",
        compute_node_identity_reference=explicit_reference(),
    )
    config = get_task_config(
        "t1",
        "python run.py",
        container_settings=get_container_settings(
            IMAGE, mount_pairs=[{"source": "input", "target": "/in"}]
        ),
        log_blob_container="logs",
        log_blob_account="acct01",
        log_subdir="weekly",
        output_files=[results],
    )
    assert config.as_dict() == {
        "id": "t1",
        "commandLine": "python run.py",
        "containerSettings": {
            "imageName": IMAGE,
            "containerRunOptions": (
                "--mount type=bind,source=$AZ_BATCH_NODE_MOUNTS_DIR/input,target=/in"
            ),
        },
        "userIdentity": ADMIN_POOL_USER,
        "outputFiles": [
            {
                "filePattern": "out/*.parquet",
                "destination": {
                    "container": {
                        "containerUrl": "https://acct01.blob.core.windows.net/results",
                        "path": "run1",
                        "identityReference": {"resourceId": EXPLICIT_IDENTITY},
                    }
                },
                "uploadOptions": {"uploadCondition": "taskcompletion"},
            },
            log_upload("weekly/t1"),
        ],
    }


@pytest.mark.parametrize(
    ("log_subdir", "path"),
    [(None, "t1"), ("", "t1"), ("weekly", "weekly/t1"), ("a/b/", "a/b/t1")],
)
def test_task_config_log_path(env_identity: str, log_subdir: str | None, path: str) -> None:
    config = get_task_config(
        "t1", "run", log_blob_container="logs", log_blob_account="acct01", log_subdir=log_subdir
    )
    assert config.as_dict()["outputFiles"] == [log_upload(path)]


def test_task_config_log_options_are_honoured() -> None:
    config = get_task_config(
        "t1",
        "run",
        log_blob_container="logs",
        log_blob_account="acct01",
        log_file_pattern="../*.log",
        log_upload_condition="TaskFailure",
        log_compute_node_identity_reference=explicit_reference(),
        log_blob_endpoint_subdomain="blob.core.usgovcloudapi.net/",
    )
    expected = log_upload(
        "t1",
        url="https://acct01.blob.core.usgovcloudapi.net/logs",
        condition="taskfailure",
        identity=EXPLICIT_IDENTITY,
    )
    expected["filePattern"] = "../*.log"
    assert config.as_dict()["outputFiles"] == [expected]


def test_task_config_log_upload_condition_enum(env_identity: str) -> None:
    config = get_task_config(
        "t1",
        "run",
        log_blob_container="logs",
        log_blob_account="acct01",
        log_upload_condition=OutputFileUploadCondition.TASK_SUCCESS,
    )
    assert config.as_dict()["outputFiles"] == [log_upload("t1", condition="tasksuccess")]


def test_task_config_without_log_container_needs_no_identity() -> None:
    config = get_task_config("t1", "run", log_blob_account="ignored")
    assert "outputFiles" not in config.as_dict()


def test_task_config_log_without_identity_or_environment_fails() -> None:
    with pytest.raises(ValueError, match=ENV):
        get_task_config("t1", "run", log_blob_container="logs", log_blob_account="acct01")


def test_task_config_single_output_file_equals_a_list_of_one() -> None:
    output = output_task_files_to_blob(
        "*.csv", "results", "acct01", compute_node_identity_reference=explicit_reference()
    )
    single = get_task_config("t1", "run", output_files=output)
    listed = get_task_config("t1", "run", output_files=[output])
    assert single.as_dict() == listed.as_dict()
    assert single.as_dict()["outputFiles"] == [output.as_dict()]


def test_task_config_user_output_files_first_and_list_untouched(env_identity: str) -> None:
    first, second = (
        output_task_files_to_blob(pattern, "results", "acct01") for pattern in ("a/*", "b/*")
    )
    mine = [first, second]
    config = get_task_config(
        "t1", "run", log_blob_container="logs", log_blob_account="acct01", output_files=mine
    )
    patterns = [item["filePattern"] for item in config.as_dict()["outputFiles"]]
    assert patterns == ["a/*", "b/*", "../std*.txt"]
    assert mine == [first, second]


def test_task_config_given_user_identity_is_used() -> None:
    identity = UserIdentity(
        auto_user=AutoUserSpecification(scope="task", elevation_level="nonadmin")
    )
    config = get_task_config("t1", "run", user_identity=identity)
    assert config.as_dict()["userIdentity"] == {
        "autoUser": {"scope": "task", "elevationLevel": "nonadmin"}
    }


def test_task_config_kwargs_reach_the_model() -> None:
    config = get_task_config(
        "t1",
        "run",
        environment_settings=[EnvironmentSetting(name="STATE", value="CA")],
        constraints=BatchTaskConstraints(
            max_wall_clock_time=timedelta(hours=1), max_task_retry_count=2
        ),
        depends_on=BatchTaskDependencies(task_ids=["t0"]),
        display_name="California flu",
    )
    body = config.as_dict()
    assert body["environmentSettings"] == [{"name": "STATE", "value": "CA"}]
    assert body["constraints"] == {"maxWallClockTime": "PT01H00M00S", "maxTaskRetryCount": 2}
    assert body["dependsOn"] == {"taskIds": ["t0"]}
    assert body["displayName"] == "California flu"


def test_task_config_unknown_keyword_is_named_with_the_valid_ones() -> None:
    with pytest.raises(TypeError) as caught:
        get_task_config("t1", "run", max_wall_clock_time=timedelta(hours=1))
    message = str(caught.value)
    assert "'max_wall_clock_time'" in message
    for valid in ("constraints", "depends_on", "environment_settings", "resource_files"):
        assert valid in message
    assert "command_line" not in message.split("accepts:")[1]


def test_task_config_keyword_it_sets_itself_is_refused() -> None:
    with pytest.raises(TypeError, match=r"'command_line'.*set by get_task_config"):
        get_task_config("t1", "run", command_line="other")


@pytest.mark.parametrize("task_id", ["a", "a" * 64, "Forecast-CA_flu-2024"])
def test_task_config_accepts_valid_ids(task_id: str) -> None:
    assert get_task_config(task_id, "run").id == task_id


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("task_id", ""),
        ("task_id", "a" * 65),
        ("task_id", "has space"),
        ("task_id", "dot.ted"),
        ("task_id", "slash/ed"),
        ("task_id", "ünïcode"),
        ("task_id", None),
        ("base_call", ""),
        ("base_call", "   "),
        ("base_call", None),
        ("container_settings", {"imageName": IMAGE}),
        ("user_identity", "admin"),
        ("output_files", "out/*.csv"),
        ("output_files[0]", {"filePattern": "*.csv"}),
        ("log_blob_container", "Logs"),
        ("log_blob_container", "lg"),
        ("log_blob_account", "Acct"),
        ("log_blob_account", None),
        ("log_subdir", 3),
        ("log_file_pattern", ""),
        ("log_upload_condition", "whenever"),
        ("log_compute_node_identity_reference", EXPLICIT_IDENTITY),
        ("log_blob_endpoint_subdomain", "not a domain"),
    ],
)
def test_task_config_rejects(parameter: str, value: Any) -> None:
    arguments: dict[str, Any] = {
        "task_id": "t1",
        "base_call": "run",
        "log_blob_container": "logs",
        "log_blob_account": "acct01",
        "log_compute_node_identity_reference": explicit_reference(),
    }
    if parameter == "output_files[0]":
        arguments["output_files"] = [value]
    else:
        arguments[parameter] = value
    raises_naming(parameter, value, lambda: get_task_config(**arguments))


# --- auth ------------------------------------------------------------------------------------


def test_identity_reference_from_environment(env_identity: str) -> None:
    reference = get_compute_node_identity_reference()
    assert isinstance(reference, BatchNodeIdentityReference)
    assert reference.as_dict() == {"resourceId": env_identity}


@pytest.mark.parametrize("value", [None, "", "   "])
def test_identity_reference_needs_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv(ENV, value)
    with pytest.raises(ValueError, match=f"{ENV} is not set"):
        get_compute_node_identity_reference()


def test_batch_credential_is_a_new_default_credential_each_call() -> None:
    first, second = batch_credential(), batch_credential()
    assert isinstance(first, DefaultAzureCredential)
    assert first is not second
