"""Run Pulumi programs under `AzureMocks` and hand back what they registered and output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchtasks.preview.offline import OfflineRun, run_offline

# Tests name the result of a run `Run`.
Run = OfflineRun


def run_program(program: Callable[[], dict[str, Any]], preview: bool = False) -> Run:
    """Run a program under fresh `AzureMocks` and resolve the outputs it returns.

    Parameters
    ----------
    program
        Registers resources and returns a dict of Outputs (or plain values) to resolve.
    preview
        Run as a preview.

    Returns
    -------
    Run
        The mocks (with every registration) and the resolved outputs.
    """
    return run_offline(program, preview=preview)
