"""`batchtasks logs` falls back to the log upload in blob storage once the node is gone,
through Azurite over HTTPS with OAuth, the real azure-storage-blob SDK and the identity chain
(the stand-in `az` issues the storage token): no account key anywhere."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient

from batchapi import BatchApiDouble
from batchtasks.cli import main
from stackfiles import submit, sweep_job, write_stack
from tests.azurite import Azurite, require_azurite, running_azurite

IDS = ["t-1", "t-2"]


@pytest.fixture(scope="module")
def azurite_server() -> Iterator[Azurite]:
    with running_azurite(require_azurite()) as server:
        yield server


@pytest.fixture
def azurite(
    azurite_server: Azurite,
    batch_api: BatchApiDouble,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Azurite:
    """Azurite, with clients trusting both its certificate and the Batch double's."""
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(
        Path(batch_api.ca_bundle_path).read_text() + azurite_server.ca_path.read_text()
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return azurite_server


def _upload(azurite: Azurite, container: str, name: str, data: bytes) -> None:
    service = BlobServiceClient(azurite.account_url, credential=DefaultAzureCredential())
    client = service.get_container_client(container)
    with contextlib.suppress(Exception):
        client.create_container()
    client.upload_blob(name, data, overwrite=True)


def _cli(*args: str) -> tuple[int, bytes, str]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    out.flush()
    return code, out.buffer.getvalue(), err.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def lost_task(tmp_path: Path, batch_api: BatchApiDouble, azurite: Azurite) -> Path:
    """A job whose task t-1 failed on a node that is gone since; returns the stack file."""
    stack = write_stack(tmp_path, batch_api.endpoint, sweep_job("j1", 2))
    submit(
        batch_api, "j1", IDS, log_container_url=f"{azurite.account_url}/batch-logs", subdir="weekly"
    )
    batch_api.start_task("j1", "t-1", node_id="tvm-5")
    batch_api.write_task_file("j1", "t-1", "stdout.txt", b"from the node\n")
    batch_api.finish_task("j1", "t-1", exit_code=2)
    batch_api.lose_node("tvm-5")
    return stack


def test_logs_come_from_the_upload_once_the_node_is_gone(lost_task: Path, azurite: Azurite):
    _upload(azurite, "batch-logs", "weekly/t-1/stderr.txt", b"first\nsecond\nTraceback\n")
    code, out, err = _cli(
        "logs", "--config-file", str(lost_task), "j1", "t-1", "--stderr", "--tail", "2"
    )
    assert code == 0
    assert out == b"second\nTraceback\n"
    assert f"the log upload {azurite.account_url}/batch-logs/weekly/t-1/stderr.txt" in err


def test_a_missing_upload_is_explained(lost_task: Path, azurite: Azurite):
    code, _, err = _cli("logs", "--config-file", str(lost_task), "j1", "t-1")
    assert code == 1
    assert "no log upload at" in err
    assert "the task completed but its upload is missing" in err


def test_product_code_never_holds_a_key_or_sas():
    # The read above went through DefaultAzureCredential's bearer token; nothing else may.
    package = Path(__file__).resolve().parent.parent / "components"
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8").lower()
        for needle in (
            "account_key",
            "accountkey=",
            "generate_blob_sas",
            "sas_token",
            "from_connection_string",
        ):
            assert needle not in text, f"{path.name} mentions {needle}"


def test_a_missing_azurite_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch):
    from tests import azurite as module

    monkeypatch.setattr(module, "azurite_binary", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the blob storage tests"):
        module.require_azurite()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="Azurite is not installed"):
        module.require_azurite()
