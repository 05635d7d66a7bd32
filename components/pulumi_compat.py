"""Every use of Pulumi internals, in one place.

The Python SDK's public API has no way to list the stack's config keys, to recognise a value
that is not known yet inside a dynamic provider, or to watch registrations under mocks. What this
package needs of the SDK beyond that API is reached only through this module, so a new SDK
release (pyproject bounds it to 3.x) is checked here and in `tests/test_pulumi_compat.py`.
"""

from __future__ import annotations

from typing import Any

from pulumi import output as _output
from pulumi.runtime import config as _config
from pulumi.runtime import is_config_secret
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc as _rpc

# The string the engine sends, and the provider host passes on in some paths, for a value not
# known yet (during preview).
UNKNOWN: str = _rpc.UNKNOWN

# Mock monitor of `pulumi.runtime.set_mocks`; the preview subclasses it to see each request's
# parent, URN and property dependencies, which `Mocks.new_resource` is not given.
MockMonitor = _mocks.MockMonitor


def is_unknown_value(value: Any) -> bool:
    """Tell whether a value (not looking inside it) is one Pulumi does not know yet.

    Parameters
    ----------
    value
        A property value as a dynamic provider receives it.

    Returns
    -------
    bool
        True for the provider host's decoded unknown object and for the sentinel string.
    """
    # The host decodes unknowns into `pulumi.output.Unknown` objects in check and diff; other
    # paths (and older hosts) pass the sentinel string.
    return isinstance(value, _output.Unknown) or (isinstance(value, str) and value == UNKNOWN)


def config_values() -> dict[str, Any]:
    """Return every config value of the running stack, by its full key (`namespace:key`).

    Returns
    -------
    dict
        The process's PULUMI_CONFIG values, overridden by those the runtime was given.
    """
    return {**_config.get_config_env(), **_config.CONFIG.get()}


def secret_config_keys(keys: set[str] | list[str]) -> set[str]:
    """Return which of these full config keys hold secrets.

    Parameters
    ----------
    keys
        Full config keys (`namespace:key`), e.g. those of `config_values()`.

    Returns
    -------
    set
        The keys the runtime or the PULUMI_CONFIG_SECRET_KEYS environment marks as secret.
    """
    from_env = set(_config.get_config_secret_keys_env())
    return {key for key in keys if key in from_env or is_config_secret(key)}


def is_secret_value(value: Any) -> bool:
    """Tell whether a value received under mocks is a wrapped secret.

    Parameters
    ----------
    value
        A resource input as the mocks received it.

    Returns
    -------
    bool
        True when it carries Pulumi's secret marker.
    """
    return bool(_rpc.is_rpc_secret(value))


def unwrap_secret_value(value: Any) -> Any:
    """Return the value inside a wrapped secret (see `is_secret_value`)."""
    return _rpc.unwrap_rpc_secret(value)
