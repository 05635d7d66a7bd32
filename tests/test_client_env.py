"""The Batch client reads requests' environment settings once per operation, as requests would
read them for each request: proxies, NO_PROXY, the CA bundle; never ~/.netrc."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from azure.core.exceptions import (
    ClientAuthenticationError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from batchapi import BatchApiDouble
from batchtasks.batch.client import make_client

# Nothing listens on the discard port: a request sent to this proxy fails to connect.
UNREACHABLE_PROXY = "http://127.0.0.1:9"


def reaches_service(batch_api: BatchApiDouble) -> bool:
    """Ask the double for a job that does not exist: True when the answer came from it."""
    try:
        make_client(batch_api.endpoint).get_job("no-such-job")
    except ResourceNotFoundError:
        return True
    return False


PROXY_NAMES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_NAMES, "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_proxy_settings")
@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_a_proxy_in_the_environment_carries_the_requests(
    batch_api: BatchApiDouble, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, UNREACHABLE_PROXY)
    with pytest.raises(ServiceRequestError, match=r"(?i)proxy"):
        reaches_service(batch_api)


@pytest.mark.usefixtures("no_proxy_settings")
@pytest.mark.parametrize("name", ["NO_PROXY", "no_proxy"])
def test_no_proxy_lets_the_endpoint_bypass_the_proxy(
    batch_api: BatchApiDouble, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("https_proxy", UNREACHABLE_PROXY)
    monkeypatch.setenv(name, "localhost,127.0.0.1")
    assert reaches_service(batch_api)


@pytest.mark.usefixtures("no_proxy_settings")
def test_curl_ca_bundle_verifies_the_service_when_requests_bundle_is_unset(
    batch_api: BatchApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = batch_api.ca_bundle_path
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(ServiceRequestError, match=r"(?i)certificate"):
        reaches_service(batch_api)
    monkeypatch.setenv("CURL_CA_BUNDLE", bundle)
    assert reaches_service(batch_api)


@pytest.mark.usefixtures("no_proxy_settings")
def test_requests_ca_bundle_comes_before_curl_ca_bundle(
    batch_api: BatchApiDouble, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A bundle of some other authority: verifying the double's certificate with it fails.
    other = tmp_path / "other-ca.pem"
    other.write_text(trustme.CA().cert_pem.bytes().decode())
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other))
    assert reaches_service(batch_api)  # REQUESTS_CA_BUNDLE names the double's authority
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setenv("CURL_CA_BUNDLE", batch_api.ca_bundle_path)
    with pytest.raises(ServiceRequestError, match=r"(?i)certificate"):
        reaches_service(batch_api)


@pytest.mark.usefixtures("no_proxy_settings")
def test_netrc_credentials_never_replace_the_bearer_token(
    batch_api: BatchApiDouble, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # requests, reading the environment itself, would send these as basic credentials in
    # place of the identity's token, and the service would refuse the request.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    try:
        assert reaches_service(batch_api)
    except ClientAuthenticationError as error:
        pytest.fail(f"the request did not carry the bearer token: {error}")
