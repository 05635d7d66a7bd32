"""A local HTTPS double of the Azure Batch data-plane API for tests and benchmarks."""

from .server import API_VERSION, BatchApiDouble, RecordedRequest
from .service import DELETING_FOREVER, MAX_BODY_BYTES, MAX_COLLECTION_TASKS, BatchError

__all__ = [
    "API_VERSION",
    "DELETING_FOREVER",
    "MAX_BODY_BYTES",
    "MAX_COLLECTION_TASKS",
    "BatchApiDouble",
    "BatchError",
    "RecordedRequest",
]
