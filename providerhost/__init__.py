"""Drive the dynamic providers through Pulumi's own provider host, the way `pulumi up` does.

Shared by the tests and the benchmarks; see `providerhost.host`.
"""

from providerhost.host import (
    CALL_TIMEOUT_SECONDS,
    DYNAMIC_TYPE_PREFIX,
    PROVIDER_KEY,
    START_TIMEOUT_SECONDS,
    UNKNOWN,
    CheckOutcome,
    DiffOutcome,
    HostCallError,
    HostStartError,
    ProviderHost,
    Registration,
    ResourceState,
    capture_registrations,
    contains_secret,
    resource_urn,
    secret,
    strip_secrets,
)

__all__ = [
    "CALL_TIMEOUT_SECONDS",
    "DYNAMIC_TYPE_PREFIX",
    "PROVIDER_KEY",
    "START_TIMEOUT_SECONDS",
    "UNKNOWN",
    "CheckOutcome",
    "DiffOutcome",
    "HostCallError",
    "HostStartError",
    "ProviderHost",
    "Registration",
    "ResourceState",
    "capture_registrations",
    "contains_secret",
    "resource_urn",
    "secret",
    "strip_secrets",
]
