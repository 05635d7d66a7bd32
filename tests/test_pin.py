"""`batchtasks pin` against a real registry: Debian's docker-registry (the CNCF distribution
registry) on 127.0.0.1 with TLS from trustme; images pushed through its HTTP API. A second one
runs with `auth: token:`, as Docker Hub and GHCR do, beside a token service the tests start."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from batchtasks.cli import main
from batchtasks.config import load_stack_file
from batchtasks.exits import Exit
from batchtasks.pin import parse_image, pin_text
from tests.test_preview import DEV_STACK

REGISTRY = shutil.which("docker-registry")
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@contextmanager
def running_registry(directory: Path, ca: trustme.CA, auth: dict[str, Any] | None) -> Iterator[str]:
    """Run docker-registry with TLS (server.pem in `directory`) on an ephemeral port of
    127.0.0.1; yield its host:port."""
    config: dict[str, Any] = {
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
    if auth is not None:
        config["auth"] = auth
    (directory / "config.yml").write_text(json.dumps(config))
    assert REGISTRY is not None
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
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


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
    with running_registry(directory, ca, None) as host:
        yield host, str(directory / "ca.pem")


def push(
    registry: tuple[str, str], repository: str, tag: str, content: bytes, token: str = ""
) -> str:
    """Push a one-layer image through the HTTP API; return its manifest digest."""
    host, ca = registry
    base = f"https://{host}/v2/{repository}"
    auth = {"Authorization": f"Bearer {token}"} if token else {}

    def blob(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"{base}/blobs/uploads/", verify=ca, timeout=10, headers=auth)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"https://{host}{location}"
        done = requests.put(
            location,
            params={"digest": digest},
            data=data,
            verify=ca,
            headers={"Content-Type": "application/octet-stream", **auth},
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
        headers={"Content-Type": MANIFEST_TYPE, **auth},
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


# ----------------------------------------------------------------- YAML forms of an image


def forms_stack(host: str) -> str:
    """The dev stack with its images as an anchor, an alias, a merge and block scalars."""
    text = DEV_STACK.read_text()
    text = text.replace(
        "        image: cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1\n",
        f"        image: &model {host}/forecast-model:2025.06.1  # the model\n",
    )
    text = text.replace(
        "          dependsOn: [covid-us",
        "          image: *model\n          dependsOn: [covid-us",
        1,
    )
    text = text.replace(
        "          dependsOn: [covid-us, flu-us, covid-ca, flu-ca, covid-ny, flu-ny]\n",
        "          dependsOn: [covid-us, flu-us, covid-ca, flu-ca, covid-ny, flu-ny]\n"
        "        - &publish\n"
        "          id: publish\n"
        "          command: python -m publish\n"
        "          image: |-\n"
        f"            {host}/summary:1.0\n"
        "        - <<: *publish\n"
        "          id: publish-again\n"
        "        - id: archive\n"
        "          command: python -m archive\n"
        "          image: >-\n"
        f"            {host}/summary:1.0\n",
        1,
    )
    return text


def test_anchors_aliases_merges_and_block_scalars_are_pinned_where_written(
    capsys: pytest.CaptureFixture[str], registry: tuple[str, str], stack: Path
) -> None:
    host = registry[0]
    model = push(registry, "forecast-model", "2025.06.1", b"model v1")
    summary = push(registry, "summary", "1.0", b"summary v1")
    before = forms_stack(host)
    stack.write_text(before)
    stack.chmod(0o640)
    code, _, err = pin(capsys, stack)
    assert (code, err) == (0, ""), err
    assert stack.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in stack.parent.iterdir()] == [stack.name]  # no temporary left
    after = stack.read_text()
    assert after == (
        before.replace(
            f"&model {host}/forecast-model:2025.06.1  # the model",
            f"&model {host}/forecast-model:2025.06.1@{model}  # the model",
        ).replace(
            f"            {host}/summary:1.0\n", f"            {host}/summary:1.0@{summary}\n"
        )
    )
    assert after.count(f"@{summary}") == 2 and after.count(f"@{model}") == 1
    assert "image: *model" in after and "<<: *publish" in after
    # What the program reads: every use of each image carries the digest.
    images = {
        task["id"]: task["image"]
        for job in load_stack_file(stack).jobs
        for task in [*job.tasks, *(t for sweep in job.sweeps for t in sweep.tasks)]
    }
    assert images["summary"] == images["covid-ca"] == f"{host}/forecast-model:2025.06.1@{model}"
    assert images["publish"] == images["publish-again"] == f"{host}/summary:1.0@{summary}"
    assert images["archive"] == f"{host}/summary:1.0@{summary}"
    assert pin(capsys, stack, "--check")[:2] == (0, "2 image(s) pinned and current\n")


def test_an_alias_also_used_as_something_else_is_refused_and_nothing_is_written(
    capsys: pytest.CaptureFixture[str], registry: tuple[str, str], stack: Path
) -> None:
    host = registry[0]
    push(registry, "forecast-model", "2025.06.1", b"model v1")
    push(registry, "summary", "1.0", b"summary v1")
    text = forms_stack(host).replace(
        '          REPORT_DATE: "2025-06-02"\n',
        '          REPORT_DATE: "2025-06-02"\n          MODEL_IMAGE: *model\n',
    )
    stack.write_text(text)
    code, _, err = pin(capsys, stack)
    assert code == Exit.FAILED
    assert (
        "batchtasks: batchtasks:jobs[0].defaults.image: its value is written at "
        "batchtasks:jobs[0].defaults.image and also used at "
        "batchtasks:jobs[0].defaults.env.MODEL_IMAGE, which is not an image"
    ) in err
    assert "nothing was written" in err
    assert stack.read_text() == text


def test_a_block_scalar_over_several_lines_is_refused_with_its_key_path() -> None:
    text = DEV_STACK.read_text().replace(
        "        image: cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1\n",
        "        image: |\n          cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1\n"
        "          second-line\n",
    )
    digest = "sha256:" + "0" * 64
    image = "cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1\nsecond-line\n"
    new_text, refused = pin_text(text, {image: digest})
    assert new_text == text
    assert refused == [
        "batchtasks:jobs[0].defaults.image: a block scalar (|) over several lines; write the "
        "image on one line to pin it"
    ]


def test_an_invalid_stack_file_is_refused_before_any_registry_is_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    text = DEV_STACK.read_text().replace("priority: 100", "priority: 5000")
    path.write_text(text)
    code = main(["pin", "--config-file", str(path)])
    err = capsys.readouterr().err
    # Asking the registry (Azure Container Registry here: an identity would be needed) would
    # have answered UNREACHABLE; the file is refused first.
    assert code == Exit.INVALID
    assert f"batchtasks: invalid configuration in {path}:" in err
    assert "batchtasks:jobs[0].priority" in err
    assert "cfaprdbatchcr" not in err
    assert path.read_text() == text


# --------------------------------------------- the distribution token flow (Docker Hub, GHCR)


@dataclass
class TokenServer:
    """A token service as Docker Hub's: anonymous pull tokens for public repositories."""

    url: str
    service: str
    issuer: str
    signer: trustme.LeafCert
    chain: list[str]
    requests: list[dict[str, object]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    private: set[str] = field(default_factory=lambda: {"private"})

    def token(self, scope: str) -> str:
        """A JWT the registry accepts for `scope` (``repository:<name>:<actions>``)."""
        _, name, actions = scope.split(":")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "",
            "aud": self.service,
            "iat": now,
            "nbf": now - 60,
            "exp": now + 300,
            "jti": os.urandom(8).hex(),
            "access": [{"type": "repository", "name": name, "actions": actions.split(",")}],
        }
        token = jwt.encode(
            claims,
            self.signer.private_key_pem.bytes(),
            algorithm="ES256",
            headers={"x5c": self.chain},
        )
        self.issued.append(token)
        return token


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, TokenServer]]:
    """A registry with `auth: token:` (as Docker Hub and GHCR run it) and its token service;
    yield (host:port, CA bundle path, the token service)."""
    if REGISTRY is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-registry is missing: .ci/run installs it with apt-get")
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    directory = tmp_path_factory.mktemp("token-registry")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "server.pem")
    )
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    # The token signer: its certificate chain goes in each token's x5c header, its CA in the
    # registry's rootcertbundle.
    signing_ca = trustme.CA()
    signer = signing_ca.issue_cert("token-signer.test")
    signing_ca.cert_pem.write_to_path(str(directory / "signing-ca.pem"))
    chain = [
        base64.b64encode(
            x509.load_pem_x509_certificate(pem.bytes()).public_bytes(serialization.Encoding.DER)
        ).decode()
        for pem in [*signer.cert_chain_pems, signing_ca.cert_pem]
    ]
    server = TokenServer("", "batchtasks-test-registry", "batchtasks-test-issuer", signer, chain)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            scope = query.get("scope", [""])[0]
            server.requests.append(
                {"query": query, "authorization": self.headers.get("Authorization")}
            )
            parts = scope.split(":")
            if len(parts) != 3 or parts[1] in server.private or "push" in parts[2]:
                body, status = b'{"details": "access denied"}', 401
            else:
                body, status = json.dumps({"token": server.token(scope)}).encode(), 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(directory / "server.pem"))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.url = f"https://127.0.0.1:{httpd.server_address[1]}/token"
    auth = {
        "token": {
            "realm": server.url,
            "service": server.service,
            "issuer": server.issuer,
            "rootcertbundle": str(directory / "signing-ca.pem"),
        }
    }
    try:
        with running_registry(directory, ca, auth) as host:
            yield host, str(directory / "ca.pem"), server
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_registry_that_wants_a_bearer_token_gets_an_anonymous_one(
    capsys: pytest.CaptureFixture[str],
    token_registry: tuple[str, str, TokenServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, ca, tokens = token_registry
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    push_token = tokens.token("repository:forecast-model:pull,push")
    model = push((host, ca), "forecast-model", "2025.06.1", b"model v1", push_token)
    # Without a token the registry refuses, with the challenge docker follows.
    refused = requests.get(
        f"https://{host}/v2/forecast-model/manifests/2025.06.1", verify=ca, timeout=10
    )
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith(f'Bearer realm="{tokens.url}"')
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        DEV_STACK.read_text().replace(
            "cfaprdbatchcr.azurecr.io/forecast-model", f"{host}/forecast-model"
        )
    )
    tokens.requests.clear()
    code, out, err = pin(capsys, stack)
    assert (code, err) == (0, ""), err
    assert f"image: {host}/forecast-model:2025.06.1@{model}\n" in stack.read_text()
    # One anonymous token request, for pull on the one repository, naming the service.
    assert tokens.requests == [
        {
            "query": {
                "scope": ["repository:forecast-model:pull"],
                "service": [tokens.service],
            },
            "authorization": None,
        }
    ]
    assert pin(capsys, stack, "--check")[0] == Exit.OK
    moved = push((host, ca), "forecast-model", "2025.06.1", b"model v2", push_token)
    code, out, err = pin(capsys, stack, "--check")
    assert code == Exit.FAILED
    assert f"pinned {model}, the tag is now {moved}" in out
    for token in tokens.issued:
        assert token not in out + err


def test_a_private_repository_behind_a_token_service_is_unreachable_without_leaking(
    capsys: pytest.CaptureFixture[str],
    token_registry: tuple[str, str, TokenServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, ca, tokens = token_registry
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    stack = tmp_path / "Pulumi.dev.yaml"
    text = DEV_STACK.read_text().replace(
        "cfaprdbatchcr.azurecr.io/forecast-model", f"{host}/private"
    )
    stack.write_text(text)
    code, out, err = pin(capsys, stack)
    assert code == Exit.UNREACHABLE
    assert (
        f"{host}/private:2025.06.1 ({host}/private:2025.06.1): the registry's token service "
        "answered 401 to an anonymous pull (the image may be private)"
    ) in err
    assert "Traceback" not in err
    assert stack.read_text() == text
    for token in tokens.issued:
        assert token not in out + err
