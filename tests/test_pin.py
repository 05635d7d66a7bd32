"""`batchtasks pin` against a real registry: Debian's docker-registry (the CNCF distribution
registry) on 127.0.0.1 with TLS from trustme; images pushed through its HTTP API."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from batchtasks.cli import main
from batchtasks.pin import parse_image
from tests.test_preview import DEV_STACK

REGISTRY = shutil.which("docker-registry")
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Start the registry; yield (host:port, CA bundle path)."""
    if REGISTRY is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-registry is missing: .ci/run installs it with apt-get")
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    directory = tmp_path_factory.mktemp("registry")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    (directory / "config.yml").write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "info"},
                "storage": {"filesystem": {"rootdirectory": str(directory / "data")}},
                "http": {
                    "addr": "127.0.0.1:0",
                    "secret": "test-only",
                    "tls": {
                        "certificate": str(directory / "server.pem"),
                        "key": str(directory / "server.pem"),
                    },
                },
            }
        )
    )
    log = (directory / "registry.log").open("w+")
    process = subprocess.Popen(
        [REGISTRY, "serve", str(directory / "config.yml")], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
            found = re.search(
                r"listening on 127\.0\.0\.1:(\d+)", (directory / "registry.log").read_text()
            )
            port = found.group(1) if found else None
        assert port is not None, (directory / "registry.log").read_text()
        yield f"127.0.0.1:{port}", str(directory / "ca.pem")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def push(registry: tuple[str, str], repository: str, tag: str, content: bytes) -> str:
    """Push a one-layer image through the HTTP API; return its manifest digest."""
    host, ca = registry
    base = f"https://{host}/v2/{repository}"

    def blob(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"{base}/blobs/uploads/", verify=ca, timeout=10)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"https://{host}{location}"
        done = requests.put(
            location,
            params={"digest": digest},
            data=data,
            verify=ca,
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert done.status_code == 201, done.text
        return {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": len(data),
        }

    config = blob(json.dumps({"architecture": "amd64", "os": "linux"}).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config,
            "layers": [blob(content)],
        }
    ).encode()
    put = requests.put(
        f"{base}/manifests/{tag}",
        data=manifest,
        verify=ca,
        timeout=10,
        headers={"Content-Type": MANIFEST_TYPE},
    )
    assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.fixture
def stack(tmp_path: Path, registry: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dev stack file with its images in the test registry, one quoted, comments kept."""
    host, ca = registry
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    text = DEV_STACK.read_text().replace(
        "cfaprdbatchcr.azurecr.io/forecast-model", f"{host}/forecast-model"
    )
    text = text.replace(
        "          dependsOn: [covid-us",
        f'          image: "{host}/summary:1.0"  # the publisher\n          dependsOn: [covid-us',
        1,
    )
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text)
    return path


def pin(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["pin", "--config-file", str(path), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pin_writes_digests_keeps_the_file_and_check_sees_a_moved_tag(
    capsys: pytest.CaptureFixture[str], registry: tuple[str, str], stack: Path
) -> None:
    host = registry[0]
    model = push(registry, "forecast-model", "2025.06.1", b"model v1")
    summary = push(registry, "summary", "1.0", b"summary v1")
    before = stack.read_text()
    assert pin(capsys, stack, "--check")[0] == 1  # nothing pinned yet

    code, out, err = pin(capsys, stack)
    assert (code, err) == (0, ""), err
    after = stack.read_text()
    model_ref = f"{host}/forecast-model:2025.06.1"
    assert after == before.replace(
        f"image: {model_ref}\n", f"image: {model_ref}@{model}\n"
    ).replace(f'"{host}/summary:1.0"', f'"{host}/summary:1.0@{summary}"')
    assert "# the publisher" in after
    assert f"pinned {model_ref}@{model}" in out
    code, out, _ = pin(capsys, stack, "--check")
    assert (code, out.strip()) == (0, "2 image(s) pinned and current")

    moved = push(registry, "forecast-model", "2025.06.1", b"model v2, rebuilt")
    code, out, _ = pin(capsys, stack, "--check")
    assert code == 1
    assert f"moved: {model_ref}: pinned {model}, the tag is now {moved}" in out
    assert stack.read_text() == after  # --check changes nothing

    assert pin(capsys, stack)[0] == 0
    assert f"{model_ref}@{moved}" in stack.read_text()
    assert pin(capsys, stack, "--check")[0] == 0


def test_pinned_images_reach_the_pool_prefetch_and_the_preview_marks_none(
    capsys: pytest.CaptureFixture[str], registry: tuple[str, str], stack: Path
) -> None:
    push(registry, "forecast-model", "2025.06.1", b"model v1")
    push(registry, "summary", "1.0", b"summary v1")
    assert pin(capsys, stack)[0] == 0
    assert main(["preview", "--config-file", str(stack), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    pool = next(r for r in document["resources"] if r["name"] == "storage-pool")
    prefetched = pool["inputs"]["deploymentConfiguration"]["virtualMachineConfiguration"][
        "containerConfiguration"
    ]["containerImageNames"]
    assert prefetched and all(parse_image(image).digest for image in prefetched)
    assert main(["preview", "--config-file", str(stack)]) == 0
    assert "Unpinned images" not in capsys.readouterr().out


def test_the_preview_marks_unpinned_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--config-file", str(DEV_STACK)]) == 0
    out = capsys.readouterr().out
    assert (
        "> **Unpinned images:** `cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1` is "
        "given by tag alone"
    ) in out


def test_a_missing_tag_is_reported_and_nothing_is_written(
    capsys: pytest.CaptureFixture[str], registry: tuple[str, str], stack: Path
) -> None:
    push(registry, "summary", "1.0", b"summary v1")
    text = stack.read_text().replace("forecast-model:2025.06.1", "forecast-model:no-such-tag")
    stack.write_text(text)
    code, _, err = pin(capsys, stack)
    assert code == 1
    assert "forecast-model:no-such-tag" in err and "no such tag" in err
    assert "forecast-model:no-such-tag\n" in stack.read_text()
