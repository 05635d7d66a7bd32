"""Shared fixtures: one Batch API double per session, reset for every test; a fake clock for
every provider run in the test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.batch import BatchClient
from azure.identity import DefaultAzureCredential

from batchapi import BatchApiDouble
from batchtasks.batch.retrying import RetryingProvider
from tests.fakeclock import FakeClock


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock every provider created in this process waits on: no test waits real time.

    Providers run by the real provider host (another process) keep the system clock; their
    tests give small delays through the `retryPolicy` input instead.
    """
    fake = FakeClock()
    monkeypatch.setattr(RetryingProvider, "clock", fake)
    return fake


@pytest.fixture(scope="session")
def batch_api_server() -> Iterator[BatchApiDouble]:
    """The running double, shared by the whole session."""
    with BatchApiDouble() as double:
        yield double


@pytest.fixture
def batch_api(batch_api_server: BatchApiDouble, monkeypatch: pytest.MonkeyPatch) -> BatchApiDouble:
    """The double, emptied, with this process's environment pointing clients at it."""
    batch_api_server.reset()
    for name, value in batch_api_server.client_env().items():
        monkeypatch.setenv(name, value)
    return batch_api_server


@pytest.fixture
def batch_client(batch_api: BatchApiDouble) -> Iterator[BatchClient]:
    """A real BatchClient with DefaultAzureCredential, retrying with tiny backoffs."""
    client = BatchClient(
        batch_api.endpoint,
        DefaultAzureCredential(),
        retry_backoff_factor=0.01,
        retry_backoff_max=0.05,
    )
    with client:
        yield client
