"""Azurite, the Azure Storage emulator from npm, run for one test session over HTTPS with a
trustme certificate and OAuth (``--oauth basic``), on an ephemeral port of 127.0.0.1.

`.ci/run` installs it into ``.tools/`` (git-ignored). Without it, tests that need it skip with
the reason on a developer machine, and fail when ``CI=true``: CI must never skip them.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

ROOT = Path(__file__).resolve().parent.parent
LOCAL_BINARY = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
_LISTENING = re.compile(r"successfully listens on (https://127\.0\.0\.1:\d+)")
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    endpoint: str
    ca_path: Path

    @property
    def account_url(self) -> str:
        """The account's blob URL (IP style: the account is the first path segment)."""
        return f"{self.endpoint}/{ACCOUNT}"


def azurite_binary() -> str | None:
    """Return the azurite-blob executable: $BATCHTASKS_AZURITE, .tools/, then PATH."""
    named = os.environ.get("BATCHTASKS_AZURITE")
    if named:
        return named
    if LOCAL_BINARY.exists():
        return str(LOCAL_BINARY)
    return shutil.which("azurite-blob")


def require_azurite() -> str:
    """Return the executable, or skip (fail under CI=true) saying how to install it."""
    binary = azurite_binary()
    node = shutil.which("node")
    if binary and node:
        return binary
    reason = (
        "Azurite is not installed (run `bash .ci/run`, or `npm install --prefix .tools "
        "azurite@3`; it needs node)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI must run the blob storage tests")
    pytest.skip(reason)


def _die_with_parent() -> None:
    # Azurite must not outlive the test run, even when pytest is killed.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def running_azurite(binary: str) -> Iterator[Azurite]:
    """Start Azurite with TLS and OAuth on an ephemeral port; stop it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    process = subprocess.Popen(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--cert",
            str(workdir / "cert.pem"),
            "--key",
            str(workdir / "key.pem"),
            "--oauth",
            "basic",
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            "64",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_die_with_parent if os.name == "posix" else None,
    )
    endpoint: list[str] = []
    seen: list[str] = []
    found = threading.Event()

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            match = _LISTENING.search(line)
            if match and not endpoint:
                endpoint.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        if not found.wait(STARTUP_SECONDS) or not endpoint:
            raise RuntimeError("Azurite did not start: " + "".join(seen[-20:]))
        yield Azurite(endpoint[0], workdir / "ca.pem")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
