"""Run Pulumi programs under `AzureMocks` and hand back what they registered and output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.mocks import AzureMocks


@dataclass
class Run:
    """What one mocked program run registered, called and output."""

    mocks: AzureMocks
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> list[dict[str, Any]]:
        """Registered resources, in order (see `AzureMocks.resources`)."""
        return self.mocks.resources

    def of_type(self, type_token: str) -> list[dict[str, Any]]:
        """Return the registered resources of one type, in registration order."""
        return [r for r in self.resources if r["type"] == type_token]

    def named(self, name: str) -> dict[str, Any]:
        """Return the one registered resource with this logical name."""
        found = [r for r in self.resources if r["name"] == name]
        assert len(found) == 1, f"{len(found)} resources named {name!r}"
        return found[0]


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
    run = Run(AzureMocks().install(preview=preview))

    @pulumi.runtime.test
    def execute() -> pulumi.Output[None]:
        return pulumi.Output.from_input(program()).apply(run.outputs.update)

    execute()
    return run
