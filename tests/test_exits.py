"""One exit-code scheme across the commands: the README's table is `Exit`, and every command
answers an invalid stack file alike (the loader's problems, exit 5, nothing touched)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batchtasks.cli import main
from batchtasks.exits import Exit
from tests.test_preview import PROJECT, write_stack


def test_the_readme_table_is_the_enum() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- exit-codes -->", 1)[1].split("<!-- /exit-codes -->", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", table, re.M)
    assert [(int(code), name) for code, name in rows] == [(e.value, e.name) for e in Exit]


@pytest.mark.parametrize(
    "argv",
    [
        ["preview"],
        ["pin"],
        ["pin", "--check"],
        ["status"],
        ["status", "--wait"],
        ["logs", "weekly-forecast", "summary"],
        ["rerun", "--failed", "--yes"],
    ],
)
def test_every_command_refuses_an_invalid_stack_file_alike(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    def broken(config: dict[str, object]) -> None:
        config["batchtasks:jobs"][0]["priority"] = 5000  # type: ignore[index]

    stack = write_stack(tmp_path, "broken", broken)
    before = stack.read_bytes()
    code = main([*argv[:1], "--config-file", str(stack), *argv[1:]])
    out, err = capsys.readouterr()
    assert (code, out) == (Exit.INVALID, "")
    assert err.startswith(f"batchtasks: invalid configuration in {stack}:"), err
    assert "batchtasks:jobs[0].priority" in err
    assert stack.read_bytes() == before
