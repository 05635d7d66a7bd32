"""The real Mermaid parser (the npm `mermaid` package under node, with jsdom for the window its
sanitizer wants at load time), to check the charts the preview writes as GitHub would read them.

`.ci/run` installs it into ``.tools/`` (git-ignored). Without it, tests that need it skip with
the reason on a developer machine, and fail when ``CI=true``: CI must never skip them.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
SCRIPT = Path(__file__).with_name("mermaid_parse.mjs")
TIMEOUT_SECONDS = 300


def require_mermaid() -> str:
    """Return the node executable, or skip (fail under CI=true) saying how to install mermaid."""
    node = shutil.which("node")
    modules = TOOLS / "node_modules"
    if node and (modules / "mermaid").is_dir() and (modules / "jsdom").is_dir():
        return node
    reason = (
        "the mermaid parser is not installed (run `bash .ci/run`, or `npm install --prefix "
        ".tools mermaid@11 jsdom@25`; it needs node)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI must check the charts with the real parser")
    pytest.skip(reason)


def parse_charts(charts: list[str]) -> list[dict[str, Any]]:
    """Parse each chart (its text without the fence) with mermaid; return what it understood.

    Returns
    -------
    list[dict[str, Any]]
        Per chart: ``ok`` and ``error``, or the ``vertices`` (id, text, type, classes),
        ``subgraphs`` (id, title, nodes, classes), ``edges`` (start, end, text) and ``classes``,
        every text decoded as a browser would show it.
    """
    node = require_mermaid()
    done = subprocess.run(
        [node, str(SCRIPT), str(TOOLS)],
        input=json.dumps(charts),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    for result in results:
        for vertex in result.get("vertices", ()):
            vertex["text"] = shown(vertex["text"])
        for subgraph in result.get("subgraphs", ()):
            subgraph["title"] = shown(subgraph["title"])
        for edge in result.get("edges", ()):
            edge["text"] = shown(edge["text"])
    return results


def shown(text: str) -> str:
    """Text as the browser shows it: mermaid's entity placeholders back to HTML entities (its
    own decodeEntities), then the entities resolved."""
    text = text.replace("\ufb02\xb0\xb0", "&#").replace("\ufb02\xb0", "&").replace("\xb6\xdf", ";")
    return html.unescape(text)
