"""Stack files, and the jobs `pulumi up` would have submitted for them, for the tests and
benchmarks of the day-two commands (`batchtasks status / logs / rerun` read both).

Beside the package, like `batchapi/`: never installed.
"""

from __future__ import annotations

from pathlib import Path

from batchapi import BatchApiDouble
from batchtasks.task import DEFAULT_LOG_FILE_PATTERN

IDENTITY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/id-ops"
)


def write_stack(directory: Path, endpoint: str, jobs: str, name: str = "ops") -> Path:
    """Write a stack file whose Batch endpoint is `endpoint` and whose jobs are `jobs` (YAML
    items, indented for `batchtasks:jobs:`); return its path."""
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(
        f"""config:
  azure-native:location: eastus
  batchtasks:resourceGroup: rg-ops
  batchtasks:storage:
    account: stopslogs
    containers:
      - name: batch-logs
  batchtasks:identity:
    resourceId: {IDENTITY}
  batchtasks:batch:
    endpoint: {endpoint}
    pool:
      id: pool
  batchtasks:jobs:
{jobs}""",
        encoding="utf-8",
    )
    return path


def sweep_job(
    job_id: str, count: int, *, logs: bool = True, terminate: bool = False, retries: int = 0
) -> str:
    """Return the YAML of a job declaring one sweep of `count` tasks ``t-1``..``t-<count>``."""
    values = ", ".join(str(n) for n in range(1, count + 1))
    lines = [f"    - id: {job_id}"]
    if terminate:
        lines.append("      onAllTasksComplete: terminateJob")
    if logs:
        lines += ["      logs:", "        container: batch-logs"]
    lines += [
        "      sweeps:",
        "        - id: s",
        '          taskId: "t-{n}"',
        "          matrix:",
        f"            n: [{values}]",
        "          command: run {n}",
        "          image: busybox",
        f"          retries: {retries}",
    ]
    return "\n".join(lines) + "\n"


def submit(
    double: BatchApiDouble,
    job_id: str,
    task_ids: list[str],
    *,
    log_container_url: str | None = None,
    subdir: str | None = None,
    retries: int = 0,
) -> None:
    """Create a job and its tasks in the double, as `pulumi up` would have.

    With `log_container_url`, each task uploads ``../std*.txt`` there under
    ``<subdir>/<task id>``, the shape the task builders give the log upload.
    """
    double.add_job(job_id)
    for task_id in task_ids:
        body: dict[str, object] = {"constraints": {"maxTaskRetryCount": retries}}
        if log_container_url is not None:
            path = f"{subdir or job_id}/{task_id}"
            body["outputFiles"] = [
                {
                    "filePattern": DEFAULT_LOG_FILE_PATTERN,
                    "destination": {"container": {"containerUrl": log_container_url, "path": path}},
                    "uploadOptions": {"uploadCondition": "taskcompletion"},
                }
            ]
        double.add_task(job_id, task_id, f"run {task_id}", **body)
