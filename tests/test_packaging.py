"""What the wheel ships: every subpackage of components/ and the py.typed marker."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_every_subpackage_is_listed_so_the_wheel_carries_it() -> None:
    # The packages are listed by hand (the folder is mapped to another name); a subpackage
    # missing from the list installs from a checkout but is absent from the wheel.
    folder = ROOT / SETUPTOOLS["package-dir"]["batchtasks"]
    found = {
        ".".join(("batchtasks", *init.parent.relative_to(folder).parts))
        for init in folder.rglob("__init__.py")
    }
    assert found == set(SETUPTOOLS["packages"])


def test_the_typed_marker_ships() -> None:
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["batchtasks"]
    assert (ROOT / "components" / "py.typed").is_file()


def test_the_test_doubles_are_not_installed() -> None:
    assert not {"batchapi", "providerhost", "stackfiles", "tests", "bench"} & {
        name.split(".")[0] for name in SETUPTOOLS["packages"]
    }
