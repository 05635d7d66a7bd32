"""Run a Pulumi program under `AzureMocks`, offline: no engine, no Azure, no credentials.

Each run installs fresh mocks and a fresh root stack, so a second run in the same process (the
old config of `batchtasks preview --against`) sees none of the first run's resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockResourceArgs

from batchtasks.preview.mocks import AzureMocks

# Types of the dynamic Batch providers (pulumi-python:dynamic/batch:Job, ...).
DYNAMIC_PREFIX = "pulumi-python:dynamic/"
JOB_TYPE = f"{DYNAMIC_PREFIX}batch:Job"
# The outputs of a BatchJob the program uses.
JOB_OUTPUTS_READ = ("jobId",)


@dataclass
class OfflineRun:
    """What one mocked program run registered, called and output."""

    mocks: AzureMocks
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> list[dict[str, Any]]:
        """Registered resources, in order of registration (see `AzureMocks.resources`)."""
        return self.mocks.resources

    def of_type(self, type_token: str) -> list[dict[str, Any]]:
        """Return the registered resources of one type, in registration order."""
        return [r for r in self.resources if r["type"] == type_token]

    def named(self, name: str) -> dict[str, Any]:
        """Return the one registered resource with this logical name.

        Raises
        ------
        LookupError
            If no resource, or more than one, has that name.
        """
        found = [r for r in self.resources if r["name"] == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} resources named {name!r}")
        return found[0]


class PreviewMocks(AzureMocks):
    """AzureMocks that answer dynamic resources with no outputs but a job's id.

    The program reads one Batch output, a job's `jobId` (its task resources take it from there,
    see `batchtasks.program`); echoing a sweep's task map back through Pulumi's serializer
    doubled the time of a large preview.
    """

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Record the registration; return azure-native outputs, or none for Batch resources."""
        resource_id, outputs = super().new_resource(args)
        if args.typ.startswith(DYNAMIC_PREFIX):
            kept = {key: outputs[key] for key in JOB_OUTPUTS_READ if key in outputs}
            return resource_id, kept if args.typ == JOB_TYPE else {}
        return resource_id, outputs


def run_offline(
    program: Callable[[], Any],
    *,
    mocks: AzureMocks | None = None,
    project: str = "batchtasks",
    stack: str = "dev",
    preview: bool = False,
) -> OfflineRun:
    """Run a program under mocks and resolve what it returns.

    Parameters
    ----------
    program
        Registers resources; may return a dict of Outputs (or plain values) to resolve.
    mocks
        The mocks to install (fresh `AzureMocks` when None); they must not have run before.
    project, stack
        Names the runtime reports (they appear in URNs).
    preview
        Run as a preview (unknown values stay unknown).

    Returns
    -------
    OfflineRun
        The mocks, holding every registration, and the resolved outputs.

    Raises
    ------
    Exception
        Whatever the program raises, after the runtime has settled.
    """
    # A root stack left by an earlier run would parent this run's resources; start afresh.
    pulumi.runtime.reset_options(project=project, stack=stack, preview=preview)
    run = OfflineRun((mocks or AzureMocks()).install(project=project, stack=stack, preview=preview))

    def collect(values: Any) -> None:
        if isinstance(values, dict):
            run.outputs.update(values)

    @pulumi.runtime.test
    def execute() -> pulumi.Output[None]:
        return pulumi.Output.from_input(program()).apply(collect)

    execute()
    return run
