"""Fuzzing `batchtasks preview` with the example stack: every key path, hostile values.

Each example replaces the value at one key path of the example stack (or splices raw text into
one of its lines) and runs the command as a user would. Whatever the value, the answer is a
preview (exit 0) or a list of problems (exit 5, invalid), never a traceback. The number of examples
bounds the time; nothing here measures it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtasks.cli import main
from batchtasks.config.yamlfile import read_yaml
from batchtasks.exits import Exit

DEV_STACK = Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.dev.yaml"
DEV_TEXT = DEV_STACK.read_text(encoding="utf-8")
DOCUMENT, _ = read_yaml(DEV_TEXT, lambda key: True)
LINES = DEV_TEXT.splitlines()

Path_ = tuple[Any, ...]


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key path of the document, containers and scalars alike."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(DOCUMENT)

# Text a careless or hostile user might write: YAML 1.1 booleans and numbers, control and
# invisible characters, Markdown and shell syntax, option-looking text, paths out of the task.
_TRICKY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "NO",
        "yes",
        "on",
        "06",
        "3.10",
        "12:30",
        "0x1F",
        "1_000",
        ".inf",
        "~",
        "null",
        "--privileged",
        "--network=host",
        "-v /:/host",
        "/",
        "//",
        "/etc/shadow",
        "../../x",
        "$AZ_BATCH_NODE_MOUNTS_DIRX",
        "`",
        "``",
        "a|b",
        "**bold**",
        "![x](https://e.example/x)",
        "\x00",
        "\x1b[2J",
        "\r\n",
        "\u202e",
        "\u200b",
        "x" * 5000,
        "P9999999999W",
        "PT1H",
        "{state}",
        "{{",
        "}",
        "{nope}",
        "$(id)",
        "; rm -rf /",
        "\"'",
        "\ud7ff",
        "é☃",
    ]
)
_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        _TRICKY_TEXT,
        st.text(max_size=40),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_TRICKY_TEXT, st.text(max_size=10)), children, max_size=4),
    ),
    max_leaves=12,
)
# Raw YAML syntax spliced into a line: anchors, aliases, tags, flow brackets, directives.
_RAW = st.one_of(
    st.sampled_from(
        [
            "*a",
            "&a",
            "!!binary x",
            "!foo",
            "[",
            "]",
            "{",
            "}",
            "? ",
            ": ",
            "- ",
            "<<: *a",
            "%YAML 1.1",
            "---",
            "...",
            "'",
            '"',
            "|",
            ">",
            "#",
            "\t",
            "[" * 200,
            "{a: " * 100,
            "&a [*a]",
            "*" + "a" * 300,
        ]
    ),
    st.text(max_size=30),
)


def _replaced(node: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(node, dict):
        copy = dict(node)
        copy[head] = _replaced(node[head], tuple(rest), value)
        return copy
    copy_list = list(node)
    copy_list[head] = _replaced(node[head], tuple(rest), value)
    return copy_list


def _run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pulumi.fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main(["preview", "--config-file", str(path)])
    out, err = capsys.readouterr()
    assert code in (Exit.OK, Exit.INVALID), err
    assert "Traceback" not in out + err
    if code == Exit.INVALID:
        assert err.startswith("batchtasks: invalid configuration"), err


# More examples on demand (BATCHTASKS_FUZZ_EXAMPLES=1000); the default keeps the suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("BATCHTASKS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    derandomize=os.environ.get("BATCHTASKS_FUZZ_RANDOM") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(path=st.sampled_from(PATHS), value=_VALUES)
def test_any_value_at_any_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path_, value: Any
) -> None:
    # JSON text is YAML: the value reaches the reader exactly as generated.
    document = _replaced(DOCUMENT, path, value)
    _run(tmp_path, json.dumps(document, ensure_ascii=False), capsys)


@FUZZ
@given(
    line=st.integers(min_value=0, max_value=len(LINES) - 1),
    raw=_RAW,
    column=st.integers(min_value=0, max_value=80),
)
def test_any_text_spliced_into_any_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: int, raw: str, column: int
) -> None:
    lines = list(LINES)
    target = lines[line]
    lines[line] = target[:column] + raw + target[column:]
    _run(tmp_path, "\n".join(lines) + "\n", capsys)
