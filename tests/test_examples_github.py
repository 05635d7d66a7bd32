"""The example GitHub Actions workflow: its shell steps run here against a scratch git
repository (the preview step) and a local stand-in for the GitHub API (the comment step, through
GITHUB_API_URL)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scratch_git import GIT
from tests.test_preview import DEV_STACK, job, write_stack

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLES = PROJECT / "examples" / "github"
MARKER = "<!-- batchtasks-preview:dev -->"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"
)


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_workflow_runs_the_extracted_scripts() -> None:
    workflow = yaml.safe_load((EXAMPLES / "preview-pr.yml").read_text())
    steps = workflow["jobs"]["preview"]["steps"]
    scripts = " ".join(step.get("run", "") for step in steps)
    assert "bash examples/github/preview.sh" in scripts
    assert "bash examples/github/comment.sh" in scripts
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}


@pytest.fixture
def pull_request(tmp_path: Path) -> Path:
    """A clone whose branch moves the image tag, with `origin/main` as the base."""
    origin = tmp_path / "origin"
    (origin / "stacks").mkdir(parents=True)
    shutil.copy(DEV_STACK, origin / "stacks" / "Pulumi.dev.yaml")
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "dev"]):
        assert run([*GIT, *command], origin).returncode == 0
    clone = tmp_path / "clone"
    assert run([*GIT, "clone", "-q", str(origin), str(clone)], tmp_path).returncode == 0
    run([*GIT, "checkout", "-q", "-b", "new-model"], clone)

    def new_image(config: dict[str, Any]) -> None:
        job(config)["defaults"]["image"] = "cfaprdbatchcr.azurecr.io/forecast-model:2025.07.0"

    write_stack(clone / "stacks", "dev", new_image)
    assert run([*GIT, "commit", "-q", "-am", "new model"], clone).returncode == 0
    return clone


def preview_env(clone: Path) -> dict[str, str]:
    batchtasks = Path(sys.executable).parent / "batchtasks"
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(clone),
        "STACK": "dev",
        "BASE_REF": "main",
        "BODY_FILE": str(clone / "body.md"),
        "BATCHTASKS": str(batchtasks),
    }


def test_preview_step_writes_the_marked_body_and_exits_4_on_destructive(pull_request: Path) -> None:
    done = run(["bash", str(EXAMPLES / "preview.sh")], pull_request, preview_env(pull_request))
    assert done.returncode == 4, done.stderr
    body = (pull_request / "body.md").read_text()
    assert body.startswith(MARKER + "\n# Preview of stack `dev`")
    assert "## Changes against `origin/main`" in body
    assert "- **38 tasks replaced**" in body


def test_preview_step_exits_0_without_destructive_change(pull_request: Path) -> None:
    run([*GIT, "reset", "-q", "--hard", "origin/main"], pull_request)
    done = run(["bash", str(EXAMPLES / "preview.sh")], pull_request, preview_env(pull_request))
    assert done.returncode == 0, done.stderr
    assert "No changes." in (pull_request / "body.md").read_text()


class GitHubStandIn:
    """Answers the three calls comment.sh makes and records them."""

    def __init__(self, comments: list[dict[str, Any]]) -> None:
        self.comments = comments
        self.calls: list[tuple[str, str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                stand_in.calls.append(("GET", self.path, self.headers["Authorization"]))
                page = int(self.path.rsplit("page=", 1)[1])
                self._answer(200, stand_in.comments if page == 1 else [])

            def _write(self) -> None:
                length = int(self.headers["Content-Length"])
                stand_in.calls.append(
                    (self.command, self.path, json.loads(self.rfile.read(length)))
                )
                self._answer(201 if self.command == "POST" else 200, {"id": 9})

            do_POST = do_PATCH = _write

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def github() -> Iterator[Any]:
    def start(comments: list[dict[str, Any]]) -> GitHubStandIn:
        stand_in = GitHubStandIn(comments)
        threading.Thread(target=stand_in.server.serve_forever, daemon=True).start()
        started.append(stand_in)
        return stand_in

    started: list[GitHubStandIn] = []
    yield start
    for stand_in in started:
        stand_in.server.shutdown()
        stand_in.server.server_close()


def comment(tmp_path: Path, api: str) -> subprocess.CompletedProcess[str]:
    body = tmp_path / "body.md"
    body.write_text(f'{MARKER}\n# Preview\n\n`quotes " and \\ stay`\n')
    env = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_API_URL": api,
        "GITHUB_TOKEN": "t0ken",
        "GITHUB_REPOSITORY": "acme/forecasts",
        "PR_NUMBER": "7",
        "BODY_FILE": str(body),
    }
    return run(["bash", str(EXAMPLES / "comment.sh")], tmp_path, env)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_comment_step_updates_the_marked_comment(tmp_path: Path, github: Any) -> None:
    api = github([{"id": 3, "body": "looks good"}, {"id": 5, "body": MARKER + "\nold preview"}])
    done = comment(tmp_path, api.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "updated comment 5"
    method, path, payload = api.calls[-1]
    assert (method, path) == ("PATCH", "/repos/acme/forecasts/issues/comments/5")
    assert payload["body"] == (tmp_path / "body.md").read_text()
    assert api.calls[0][:2] == (
        "GET",
        "/repos/acme/forecasts/issues/7/comments?per_page=100&page=1",
    )
    assert api.calls[0][2] == "Bearer t0ken"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_comment_step_adds_one_when_none_is_marked(tmp_path: Path, github: Any) -> None:
    api = github([{"id": 3, "body": "looks good"}])
    done = comment(tmp_path, api.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "added a comment"
    method, path, payload = api.calls[-1]
    assert (method, path) == ("POST", "/repos/acme/forecasts/issues/7/comments")
    assert payload["body"].startswith(MARKER)
