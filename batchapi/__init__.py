"""A local HTTPS double of the Azure Batch data-plane API for tests and benchmarks."""

from .server import API_VERSION, BatchApiDouble, RecordedRequest
from .service import MAX_BODY_BYTES, MAX_COLLECTION_TASKS, BatchError

__all__ = [
    "API_VERSION",
    "MAX_BODY_BYTES",
    "MAX_COLLECTION_TASKS",
    "BatchApiDouble",
    "BatchError",
    "RecordedRequest",
]
