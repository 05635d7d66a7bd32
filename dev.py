"""Run batchtasks from a fresh clone: `python3 dev.py preview ...` or `python3 dev.py test ...`.

Creates the project's virtualenv (`.venv`, the one Pulumi.yaml names) on first use, installs the
project with its test extra into it whenever pyproject.toml changes, then runs the command there.
Needs only Python 3.11+ with venv and pip.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".bootstrap-stamp"


def _venv_bin(name: str) -> Path:
    """Return the path of an executable inside the project virtualenv."""
    scripts = "Scripts" if os.name == "nt" else "bin"
    return VENV / scripts / name


def _ensure_environment() -> None:
    """Create .venv and install the project into it when missing or out of date."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not _venv_bin("python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    python = str(_venv_bin("python"))
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[test]",
        ],
        check=True,
    )
    STAMP.write_text(wanted)


def _typecheck_path() -> Path:
    """Return a directory holding `batchtasks` as a link to components/, for mypy.

    mypy cannot follow the editable install's import hook, which maps the import name onto the
    folder; a link under the import name lets it check the package by that name.
    """
    path = VENV / "typecheck"
    link = path / "batchtasks"
    if not link.is_symlink():
        path.mkdir(parents=True, exist_ok=True)
        # Relative, so the link survives moving the clone.
        link.symlink_to(Path("..", "..", "components"), target_is_directory=True)
    return path


def main(argv: list[str]) -> int:
    """Dispatch `test` to ruff, mypy and pytest, `bench` to the benchmarks, the rest to batchtasks.

    Parameters
    ----------
    argv
        The command line after the script name.

    Returns
    -------
    int
        The exit code of the command that ran.
    """
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python3 dev.py test [pytest args] | bench [options] | <batchtasks verb> ...")
        return 2 if not argv else 0
    _ensure_environment()
    if argv[0] == "bench":
        return subprocess.run(
            [str(_venv_bin("python")), "-m", "bench.run", *argv[1:]], cwd=ROOT
        ).returncode
    if argv[0] == "test":
        # All four run, so one report shows every failure; any failure fails the command.
        lint = subprocess.run([str(_venv_bin("ruff")), "check", str(ROOT)], cwd=ROOT)
        layout = subprocess.run([str(_venv_bin("ruff")), "format", "--check", str(ROOT)], cwd=ROOT)
        types = subprocess.run(
            [str(_venv_bin("mypy")), "-p", "batchtasks"],
            cwd=ROOT,
            env={**os.environ, "MYPYPATH": str(_typecheck_path())},
        )
        tests = subprocess.run([str(_venv_bin("python")), "-m", "pytest", *argv[1:]], cwd=ROOT)
        return lint.returncode or layout.returncode or types.returncode or tests.returncode
    return subprocess.run([str(_venv_bin("batchtasks")), *argv], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
