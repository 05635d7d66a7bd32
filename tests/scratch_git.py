"""Scratch git repositories, for the tests of `--against` and of the GitHub example."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# git as the tests run it: an identity of its own, no signing, `main` as the first branch, so
# the user's global configuration changes nothing.
GIT = (
    "git",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
)


def require_git() -> None:
    """Skip the calling test where git is not installed; fail it under CI=true, where it must
    be."""
    if shutil.which("git") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("git is required in CI")
        pytest.skip("git is not installed")


def commit_all(directory: Path, message: str) -> None:
    """Make `directory` a repository (unless it is one) and commit everything in it."""
    if not (directory / ".git").exists():
        subprocess.run([*GIT, "init", "-q"], cwd=directory, check=True)
    subprocess.run([*GIT, "add", "."], cwd=directory, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", message], cwd=directory, check=True)
