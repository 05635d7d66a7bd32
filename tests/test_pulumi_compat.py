"""The Pulumi internals batchtasks relies on, checked against the installed SDK.

Each test pins one fact `batchtasks.pulumi_compat` assumes; a new SDK that changes it fails
here, naming the fact, instead of somewhere downstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from batchtasks import pulumi_compat
from batchtasks.preview.offline import run_offline


def serialised(make: Callable[[], Any]) -> Any:
    """Serialise a value as the SDK does when it sends a resource's inputs to the engine."""

    async def send() -> Any:
        return await rpc.serialize_property(make(), [], None)

    # A loop of its own, left unset: asyncio.run would unset the thread's loop, which the mocked
    # program runs of later tests use.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(send())
    finally:
        loop.close()


def unknown_output() -> pulumi.Output[Any]:
    """An Output whose value is not known, as one is during preview (needs a running loop)."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(3)]
    for future, value in zip(futures, (None, False, False), strict=True):
        future.set_result(value)
    return pulumi.Output(set(), *futures)


@pytest.fixture
def runtime_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty runtime config and environment, restored afterwards."""
    for name in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    pulumi.runtime.set_all_config({}, [])
    yield
    pulumi.runtime.set_all_config({}, [])


def test_the_sdk_is_the_major_version_the_adapter_was_written_for() -> None:
    assert metadata.version("pulumi").split(".")[0] == "3"


def test_an_unknown_output_reaches_the_engine_as_the_sentinel() -> None:
    assert serialised(unknown_output) == pulumi_compat.UNKNOWN


def test_unknowns_are_recognised_as_the_sentinel_and_as_the_host_decodes_them() -> None:
    # The provider host decodes with keep_unknowns in check and diff.
    decoded = rpc.deserialize_property(pulumi_compat.UNKNOWN, keep_unknowns=True)
    assert pulumi_compat.is_unknown_value(decoded)
    assert pulumi_compat.is_unknown_value(pulumi_compat.UNKNOWN)
    for known in ("", "04da6b54", None, 0, {"a": pulumi_compat.UNKNOWN}, [decoded]):
        # Only the value itself: looking inside maps and lists is the caller's choice.
        assert not pulumi_compat.is_unknown_value(known), known


def test_config_values_merge_the_environment_and_the_runtime(
    runtime_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"batchtasks:a": "env", "batchtasks:b": "env"}))
    pulumi.runtime.set_all_config({"batchtasks:b": "runtime", "other:c": "x"})
    assert pulumi_compat.config_values() == {
        "batchtasks:a": "env",
        "batchtasks:b": "runtime",
        "other:c": "x",
    }


def test_secret_keys_come_from_the_runtime_and_the_environment(
    runtime_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["batchtasks:fromEnv"]))
    pulumi.runtime.set_all_config(
        {"batchtasks:fromRuntime": "s", "batchtasks:plain": "p"}, ["batchtasks:fromRuntime"]
    )
    keys = {"batchtasks:fromEnv", "batchtasks:fromRuntime", "batchtasks:plain"}
    assert pulumi_compat.secret_config_keys(keys) == {
        "batchtasks:fromEnv",
        "batchtasks:fromRuntime",
    }


def test_secrets_received_under_mocks_are_recognised_and_unwrapped() -> None:
    def program() -> dict[str, Any]:
        pulumi.CustomResource("test:index:Thing", "thing", {"token": pulumi.Output.secret("token")})
        return {}

    run = run_offline(program)
    wrapped = run.resources[0]["inputs"]["token"]
    assert pulumi_compat.is_secret_value(wrapped)
    assert pulumi_compat.unwrap_secret_value(wrapped) == "token"
    assert not pulumi_compat.is_secret_value("token")
    assert not pulumi_compat.is_secret_value({"value": "token"})


def test_the_mock_monitor_has_the_hooks_the_preview_overrides() -> None:
    for name in ("RegisterResource", "ReadResource", "make_urn"):
        assert callable(getattr(pulumi_compat.MockMonitor, name, None)), name
    assert pulumi_compat.MockMonitor.__init__.__code__.co_varnames[:2] == ("self", "mocks")
