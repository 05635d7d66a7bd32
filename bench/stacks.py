"""The benchmark's workload: one job whose one sweep declares N realistic container tasks.

Each task is what the project's users run today: a container image, two read-only blob mounts,
one output upload whose path is templated from the sweep's axes, environment variables, retries
and log upload. The matrix has two axes whose product is exactly N.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

JOB_ID = "bench-job"
SWEEP_ID = "runs"
POOL_ID = "bench-pool"
LOCATION = "eastus"
# Used where no Batch API double is running (the offline preview never calls it).
PREVIEW_ENDPOINT = "https://babench.eastus.batch.azure.com"
IMAGE = "benchregistry.azurecr.io/forecast-model:2025.06.1"
REGISTRY_SERVER = "benchregistry.azurecr.io"
LOG_CONTAINER = "batch-logs"
OUTPUT_CONTAINER = "forecasts"
INPUT_MOUNTS = (("nssp-etl", "/data/nssp"), ("population", "/data/population"))
RETRIES = 2
MAX_WALL_CLOCK = "PT2H"
RETENTION = "P7D"
COMMAND_TEMPLATE = (
    "python -m forecast.run --location {location} --scenario {scenario} "
    "--data /data/nssp --population /data/population --out output "
    "--draws 4000 --chains 4"
)


def matrix_shape(n: int) -> tuple[int, int]:
    """Split N into two axis lengths whose product is N, as close to square as possible.

    Parameters
    ----------
    n
        Number of tasks, at least 1.

    Returns
    -------
    tuple[int, int]
        (locations, scenarios), with locations >= scenarios.

    Raises
    ------
    ValueError
        If n is below 1.
    """
    if n < 1:
        raise ValueError(f"n: {n!r} must be at least 1")
    scenarios = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return n // scenarios, scenarios


def axis_values(n: int) -> dict[str, list[str]]:
    """Return the sweep's matrix for N tasks: location and scenario codes.

    Parameters
    ----------
    n
        Number of tasks.

    Returns
    -------
    dict[str, list[str]]
        Axis name -> values; the product of the lengths is n.
    """
    locations, scenarios = matrix_shape(n)
    return {
        "location": [f"loc{i:05d}" for i in range(locations)],
        "scenario": [f"sc{i:04d}" for i in range(scenarios)],
    }


def task_ids(n: int) -> list[str]:
    """Return the ids the sweep gives its N tasks, in matrix order."""
    axes = axis_values(n)
    return [
        f"{location}-{scenario}" for location in axes["location"] for scenario in axes["scenario"]
    ]


def stack_settings(n: int, endpoint: str = PREVIEW_ENDPOINT) -> dict[str, Any]:
    """Return the `batchtasks:` settings (without the namespace) of the N-task stack.

    Parameters
    ----------
    n
        Number of tasks in the sweep.
    endpoint
        The Batch account endpoint the job and tasks are created at.

    Returns
    -------
    dict
        Settings `batchtasks.config.parse_stack_config` accepts.
    """
    return {
        "resourceGroup": "rg-bench",
        "storage": {
            "account": "stbench",
            "create": True,
            "containers": [
                {"name": INPUT_MOUNTS[0][0], "access": "read"},
                {"name": INPUT_MOUNTS[1][0], "access": "read"},
                {"name": OUTPUT_CONTAINER, "access": "write"},
                {"name": LOG_CONTAINER, "access": "write"},
            ],
        },
        "identity": {"name": "id-bench"},
        "registry": {"server": REGISTRY_SERVER},
        "batch": {
            "account": "babench",
            "endpoint": endpoint,
            "pool": {
                "id": POOL_ID,
                "create": True,
                "vmSize": "Standard_D4s_v3",
                "maxNodes": 10,
                "image": {
                    "publisher": "microsoft-dsvm",
                    "offer": "ubuntu-hpc",
                    "sku": "2204",
                    "version": "latest",
                },
                "nodeAgentSkuId": "batch.node.ubuntu 22.04",
            },
        },
        "jobs": [
            {
                "id": JOB_ID,
                "onAllTasksComplete": "noAction",
                "priority": 100,
                "maxParallelTasks": 40,
                "logs": {"container": LOG_CONTAINER},
                "defaults": {
                    "image": IMAGE,
                    "workingDirectory": "taskWorkingDirectory",
                    "mounts": [
                        {"source": source, "target": target} for source, target in INPUT_MOUNTS
                    ],
                    "env": {"MODEL_SEED": "20250601", "REPORT_DATE": "2025-06-02"},
                    "maxWallClockTime": MAX_WALL_CLOCK,
                    "retention": RETENTION,
                    "retries": RETRIES,
                },
                "sweeps": [
                    {
                        "id": SWEEP_ID,
                        "taskId": "{location}-{scenario}",
                        "matrix": axis_values(n),
                        "command": COMMAND_TEMPLATE,
                        "env": {"LOCATION": "{location}", "SCENARIO": "{scenario}"},
                        "outputs": [
                            {
                                "pattern": "output/**/*",
                                "container": OUTPUT_CONTAINER,
                                "path": "{location}/{scenario}",
                                "when": "taskSuccess",
                            }
                        ],
                    }
                ],
            }
        ],
    }


def write_stack_file(directory: Path, n: int, endpoint: str = PREVIEW_ENDPOINT) -> Path:
    """Write the N-task stack as `Pulumi.bench<n>.yaml` in a directory.

    Parameters
    ----------
    directory
        Where to write (a temporary directory, never the project).
    n
        Number of tasks.
    endpoint
        The Batch account endpoint.

    Returns
    -------
    Path
        The stack file.
    """
    config: dict[str, Any] = {"azure-native:location": LOCATION}
    config.update(
        {f"batchtasks:{key}": value for key, value in stack_settings(n, endpoint).items()}
    )
    path = Path(directory) / f"Pulumi.bench{n}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
    return path
