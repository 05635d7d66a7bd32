"""The `batchtasks:` namespace of a small valid stack, around the jobs a test declares."""

from __future__ import annotations

from typing import Any


def namespace(
    jobs: list[dict[str, Any]], *, pool: dict[str, Any] | None = None, **settings: Any
) -> dict[str, Any]:
    """Return a stack's `batchtasks:` settings: resource group, storage (an `inputs` container
    to read, `results` and `logs` to write), identity and Batch account on `pool` (default
    `pool-1`), then `settings` and `jobs`."""
    return {
        "resourceGroup": "rg-test",
        "storage": {
            "account": "sttest",
            "containers": [
                {"name": "inputs", "access": "read"},
                {"name": "results"},
                {"name": "logs"},
            ],
        },
        "identity": {"name": "id-test"},
        "batch": {
            "endpoint": "https://batest.eastus.batch.azure.com",
            "pool": pool or {"id": "pool-1"},
        },
        **settings,
        "jobs": jobs,
    }
